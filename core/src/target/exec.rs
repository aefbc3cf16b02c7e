//! `exec`: run a program with argv as written — never through a shell — with the change event
//! on standard input and in the file named by `SWITCHYARD_EVENT`, and the start's facts in
//! `SWITCHYARD_*` variables. Exit status 0 is success; anything else is a failure to retry.

use super::{Attempt, Failure, Kind, Program, Run};
use crate::diag::Diagnostics;
use crate::yaml::{Node, Value};

/// `exec: [PROGRAM, ARG…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub argv: Vec<String>,
}

/// What the program transport runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(&'static str, String)>,
    /// The event's JSON: on standard input and in the event file.
    pub input: String,
    /// The event file's name in the transport's directory (`START_ID.json`).
    pub file_name: String,
}

/// How the program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Its exit status; `None` when a signal killed it.
    pub code: Option<i32>,
    /// The end of what it wrote to standard error.
    pub stderr: String,
}

impl Kind for Exec {
    type Via = Program;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<Exec> {
        let Value::Seq(items) = &value.value else {
            d.error(
                value.pos,
                format!("{what} must be a list of arguments, never a shell string"),
                "write the program and its arguments as a list, e.g. `exec: [\"./ci/run-pipeline\", \"api-build\"]`",
            );
            return None;
        };
        let mut argv = Vec::with_capacity(items.len());
        for item in items {
            match item.as_str() {
                Some(arg) if !item.is_null() || matches!(item.value, Value::Scalar(_, false)) => {
                    argv.push(arg.to_owned())
                }
                _ => d.error(
                    item.pos,
                    format!(
                        "each argument of {what} must be text, found {}",
                        item.kind_name()
                    ),
                    "quote the argument",
                ),
            }
        }
        if argv.is_empty() && items.is_empty() {
            d.error(
                value.pos,
                format!("{what} is empty"),
                "name the program to run, e.g. `exec: [\"./ci/run-pipeline\"]`",
            );
            return None;
        }
        if argv.first().is_some_and(String::is_empty) {
            d.error(
                items[0].pos,
                format!("{what} names an empty program"),
                "the first item is the program to run",
            );
            return None;
        }
        (argv.len() == items.len()).then_some(Exec { argv })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Command, Failure> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| Failure::dead("start.exec is empty"))?;
        let e = a.event;
        Ok(Command {
            program: program.clone(),
            args: args.to_vec(),
            env: vec![
                ("SWITCHYARD_PIPELINE", a.pipeline.to_owned()),
                ("SWITCHYARD_START_ID", a.start_id.to_owned()),
                ("SWITCHYARD_CHANGE_ID", e.id.clone()),
                ("SWITCHYARD_REPOSITORY", e.repository.to_string()),
                ("SWITCHYARD_REF", e.git_ref.clone()),
                ("SWITCHYARD_SHA", e.sha().to_owned()),
                ("SWITCHYARD_BEFORE", e.before.clone()),
                ("SWITCHYARD_SOURCE", e.source.kind.to_string()),
                ("SWITCHYARD_ATTEMPT", a.number.to_string()),
                ("TRACEPARENT", a.traceparent.to_string()),
            ],
            input: a.event_json.to_owned(),
            file_name: format!("{}.json", a.start_id),
        })
    }

    fn judge(&self, exit: Exit) -> Result<Run, Failure> {
        if exit.code == Some(0) {
            return Ok(Run::unnamed());
        }
        let program = self.argv.first().map_or("", String::as_str);
        let last = exit.stderr.trim().lines().last().unwrap_or("").trim();
        let how = match exit.code {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        };
        Err(Failure::retry(if last.is_empty() {
            format!("{program:?} ended with {how}")
        } else {
            format!("{program:?} ended with {how}: {last}")
        }))
    }
}
