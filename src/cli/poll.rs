//! `switchyard poll --once`: one polling pass over the configured repositories, stored as
//! `serve` stores it (cursors move, starts wait for `serve` to dispatch them); prints the
//! change events found, and each repository's failure with its hint.

use std::process::ExitCode;
use std::sync::Arc;

use super::{Global, block_on, error_text};
use crate::config::Config;
use crate::diag::Hint as _;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::outcome::IntakeOutcome;
use crate::pipeline::Pipelines;
use crate::sources::poll::{PollError, PollReport, Poller};
use crate::store::{Role, Store, StoreError};

/// One polling pass over the configured repositories; prints the change events found.
///
/// What it finds is stored as `serve` stores it: the cursors move and the starts wait for
/// `serve` to dispatch them. The first pass of a repository records its refs and finds
/// nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One pass, then exit (the only mode: `serve` polls continuously).
    #[arg(long)]
    once: bool,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    if !args.once {
        anyhow::bail!("`switchyard poll` needs --once; `switchyard serve` polls continuously");
    }
    let (config, pipelines) = crate::load::both(global.config.as_deref(), &global.triggers)?;
    if config.poll.is_empty() {
        anyhow::bail!("no repositories to poll: add them under `poll:` in switchyard.yaml");
    }
    let results = block_on(async { Ok(once(&config, pipelines).await?) })?;
    let mut events = Vec::new();
    let mut failed = 0;
    for result in results {
        match result {
            Ok(report) if report.elsewhere => eprintln!(
                "{}: polled by a serve replica now (it holds the lease); skipped",
                report.repository
            ),
            Ok(report) if report.baseline => eprintln!(
                "{}: first poll, {} refs recorded as the baseline",
                report.repository, report.refs
            ),
            Ok(report) => {
                let new = report
                    .found
                    .iter()
                    .filter(|(_, o)| matches!(o, IntakeOutcome::Accepted { .. }))
                    .count();
                eprintln!(
                    "{}: {} refs, {} changed ({new} new)",
                    report.repository,
                    report.refs,
                    report.found.len()
                );
                events.extend(report.found.into_iter().map(|(e, _)| e));
            }
            Err(e) => {
                failed += 1;
                eprint!("{}", error_text(&e.hinted()));
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&events)?);
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One pass over `config.poll`, stored like `serve` stores it, with the store opened as a
/// tool beside a running `serve`. Fails only when the store cannot be opened; each
/// repository's result is in the list, in configuration order.
pub async fn once(
    config: &Config,
    pipelines: Pipelines,
) -> Result<Vec<Result<PollReport, PollError>>, StoreError> {
    let location = config
        .store_location()
        .map_err(|message| StoreError::Open {
            path: "store.postgres".into(),
            message,
        })?;
    let store = Store::open_checked_at(&location, Role::Tool, Arc::default()).await?;
    let metrics = Arc::new(Metrics::default());
    let intake = Intake::new(Arc::new(pipelines), store.clone(), Arc::clone(&metrics));
    let poller = Arc::new(Poller::new(
        &config.poll,
        &config.polling,
        &config.state_dir,
        intake,
        store,
        metrics,
    ));
    Ok(poller.poll_all_once().await)
}
