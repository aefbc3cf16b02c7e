//! A change planned again with today's definitions (`changes replay`, the status page's
//! button): each pipeline that starts it now gets a new start, numbered per (change,
//! pipeline), unless it has one waiting, running or succeeded already (a duplicate).
//!
//! Works on the store beside a running `serve`, opened as a [`Role::Tool`]: a replay writes
//! new pending starts, which `serve`'s dispatcher picks up within a second.
//!
//! [`Role::Tool`]: crate::store::Role::Tool

use std::fmt;

use serde::Serialize;

use crate::diag::{Hint, Hinted, did_you_mean};
use crate::event::ChangeEvent;
use crate::outcome::Decision;
use crate::pipeline::Pipelines;
use crate::store::{ReplayRequest, Replayed, Store, StoreError};

/// Why a replay cannot be asked as it was.
#[derive(Debug)]
pub enum ReplayError {
    Store(StoreError),
    NoSuchPipeline {
        name: String,
        hint: String,
    },
    OtherRepository {
        pipeline: String,
        watches: String,
        change: String,
        repository: String,
    },
    Deferred(String),
    BadEvent(String, String),
}

impl ReplayError {
    /// What is wrong, without the hint.
    fn message(&self) -> String {
        match self {
            ReplayError::Store(e) => e.to_string(),
            ReplayError::NoSuchPipeline { name, .. } => format!("no pipeline named {name:?}"),
            ReplayError::OtherRepository {
                pipeline,
                watches,
                change,
                repository,
            } => format!(
                "pipeline {pipeline:?} watches {watches}, and change {change} is to {repository}"
            ),
            ReplayError::Deferred(change) => {
                format!("change {change} is still waiting for its changed paths")
            }
            ReplayError::BadEvent(change, e) => {
                format!("the stored event of change {change} does not parse: {e}")
            }
        }
    }
}

impl Hint for ReplayError {
    /// How to ask instead; empty for the store's errors and a stored event that does not parse.
    fn hint(&self) -> String {
        match self {
            ReplayError::NoSuchPipeline { hint, .. } => hint.clone(),
            ReplayError::OtherRepository { repository, .. } => {
                format!("replay it with a pipeline of {repository}, or without --pipeline")
            }
            ReplayError::Deferred(_) => {
                "it is decided and started once they are known; replay it after that".to_owned()
            }
            ReplayError::Store(_) | ReplayError::BadEvent(..) => String::new(),
        }
    }

    /// The message and the hint apart (the error's own text holds both).
    fn hinted(&self) -> Hinted {
        Hinted::new(self.message(), self.hint())
    }
}

/// The message, then the hint on a line of its own: the status page's `replay_problem` reads
/// the two from this text.
impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Store(e) => fmt::Display::fmt(e, f),
            other => fmt::Display::fmt(&other.hinted(), f),
        }
    }
}

impl std::error::Error for ReplayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the store's error stands for itself.
            ReplayError::Store(e) => e.source(),
            _ => None,
        }
    }
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> ReplayError {
        ReplayError::Store(e)
    }
}

/// What `changes replay` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayReport {
    pub change: String,
    /// Today's decisions of the pipelines replayed.
    pub decisions: Vec<Decision>,
    pub replayed: Vec<ReplayLine>,
}

/// One pipeline's replay: a new start, or the start that makes it a duplicate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayLine {
    pub pipeline: String,
    pub start_id: String,
    pub duplicate: bool,
    pub replay: Option<u32>,
    pub state: String,
}

impl ReplayLine {
    fn of(r: &Replayed) -> ReplayLine {
        ReplayLine {
            pipeline: r.pipeline.clone(),
            start_id: r.start_id.clone(),
            duplicate: r.replay.is_none(),
            replay: r.replay,
            state: r.state.as_str().to_owned(),
        }
    }
}

/// Plans change `id` (or a unique prefix) again with today's definitions, for every pipeline
/// that watches its repository or only `pipeline`: each that starts it gets a new start
/// (numbered replay of the change and pipeline), unless it has one waiting, running or
/// succeeded already (a duplicate).
pub async fn replay(
    store: &Store,
    pipelines: &Pipelines,
    id: &str,
    pipeline: Option<&str>,
) -> Result<ReplayReport, ReplayError> {
    let record = store.change(id).await?;
    if record.deferred {
        return Err(ReplayError::Deferred(record.id));
    }
    let event: ChangeEvent = serde_json::from_str(&record.event)
        .map_err(|e| ReplayError::BadEvent(record.id.clone(), e.to_string()))?;
    if let Some(name) = pipeline {
        let Some(p) = pipelines.get(name) else {
            let names: Vec<&str> = pipelines.list.iter().map(|p| p.name.as_str()).collect();
            let hint = match did_you_mean(name, &names) {
                Some(near) => format!("did you mean {near:?}?"),
                None => format!("the pipelines are: {}", names.join(", ")),
            };
            return Err(ReplayError::NoSuchPipeline {
                name: name.to_owned(),
                hint,
            });
        };
        if p.repository != event.repository {
            return Err(ReplayError::OtherRepository {
                pipeline: name.to_owned(),
                watches: p.repository.to_string(),
                change: record.id,
                repository: event.repository.to_string(),
            });
        }
    }
    let decisions: Vec<Decision> = pipelines
        .decisions(&event)
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| pipeline.is_none_or(|name| d.pipeline == name))
        .collect();
    let starting: Vec<String> = decisions
        .iter()
        .filter(|d| d.start)
        .map(|d| d.pipeline.clone())
        .collect();
    let replayed = if starting.is_empty() {
        Vec::new()
    } else {
        store
            .replay(ReplayRequest {
                change_id: record.id.clone(),
                git_ref: event.git_ref.clone(),
                pipelines: starting,
            })
            .await?
    };
    for r in &replayed {
        match r.replay {
            Some(n) => {
                tracing::info!(change_id = %record.id, pipeline = %r.pipeline, start_id = %r.start_id, replay = n, "change replayed: a new start")
            }
            None => {
                tracing::info!(change_id = %record.id, pipeline = %r.pipeline, start_id = %r.start_id, "change replay is a duplicate")
            }
        }
    }
    Ok(ReplayReport {
        change: record.id,
        decisions,
        replayed: replayed.iter().map(ReplayLine::of).collect(),
    })
}
