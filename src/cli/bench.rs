//! `switchyard bench`: runs the lab's `switchyard-bench` from beside this binary (the shipped
//! build leaves it out), measuring this binary.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context as _;

use super::Global;
use crate::diag::Hinted;

/// Compare events, webhooks and polling on real local servers; print a table.
///
/// Runs `switchyard-bench` from beside this binary with the arguments given, measuring this
/// binary; `switchyard bench --help` lists its flags (--quick, --repos, --pushes, --rate,
/// --interval, --sweep, --output, --plots, --markdown, ...). Built with
/// `cargo build --release -p switchyard -p switchyard-lab`, or run `.ci/bench`.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// The arguments of `switchyard-bench`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let me = std::env::current_exe().context("cannot find this binary's own path")?;
    let program = me.with_file_name("switchyard-bench");
    if !program.is_file() {
        return Err(Hinted::new(
            format!(
                "{}: no such file: `switchyard bench` runs the lab's program from beside this binary",
                program.display()
            ),
            "build both with `cargo build --release -p switchyard -p switchyard-lab`, or run `.ci/bench`",
        )
        .into());
    }
    let err = std::process::Command::new(&program)
        .args(args.args)
        .env("SWITCHYARD_BIN", &me)
        .exec();
    Err(err).with_context(|| format!("cannot run {}", program.display()))
}
