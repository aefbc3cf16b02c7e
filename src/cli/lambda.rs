//! `switchyard lambda`: answers AWS Lambda invocations until the Runtime API stops
//! ([`crate::lambda::run`]); also what the binary does when its file is named `bootstrap`.

use std::path::Path;
use std::process::ExitCode;

use super::{Global, block_on};

/// Answer AWS Lambda invocations (EventBridge events, SQS batches, function URL webhooks).
///
/// Runs inside Lambda only (it reads AWS_LAMBDA_RUNTIME_API). The binary does this with no
/// arguments when its file is named `bootstrap`, as the provided.al2023 runtime expects.
/// The configuration is --config, else $SWITCHYARD_CONFIG, else switchyard.yaml in
/// $LAMBDA_TASK_ROOT, else the environment (SWITCHYARD_SECRET_GITHUB and the like); the
/// definitions are --triggers, else $SWITCHYARD_TRIGGERS, else $LAMBDA_TASK_ROOT/triggers.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    // `--triggers` has a default; only a value the user gave overrides the package's.
    let triggers = (global.triggers != Path::new("triggers")).then_some(global.triggers.as_path());
    block_on(crate::lambda::run(global.config.as_deref(), triggers))?;
    Ok(ExitCode::SUCCESS)
}
