//! `switchyard check`: prints every problem of `switchyard.yaml` and `triggers/` with the
//! summary ([`crate::check`]); exit 1 on any error.

use std::process::ExitCode;

use super::Global;

/// Validate switchyard.yaml and every file in triggers/; exit 1 on any error.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let report = crate::check::run(global.config.as_deref(), &global.triggers);
    print!("{}", report.render());
    Ok(if report.errors() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
