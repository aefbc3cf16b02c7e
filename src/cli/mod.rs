//! The `switchyard` command line: the commands, one module each with its arguments and its
//! `run` (as uv's `commands/`), the global flags, the one async runtime the commands use, and
//! the one way an error is printed (message, causes, then the hint).

pub mod aws;
pub mod bench;
pub mod changes;
pub mod check;
pub mod explain;
pub mod lambda;
pub mod normalize;
pub mod outbox;
pub mod poll;
pub mod serve;

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::diag::Hinted;
use crate::store::{Role, Store};

/// A trigger dispatcher: which pipelines must start because a repository changed.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The flags every command takes.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// The service configuration (default ./switchyard.yaml; built-in defaults when it is absent).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory of pipeline definitions.
    #[arg(long, global = true, value_name = "DIR", default_value = "triggers")]
    pub triggers: PathBuf,
    /// Log lines on standard error: text or json (one object a line); default
    /// $SWITCHYARD_LOG_FORMAT, else text.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Serve(serve::Args),
    Lambda(lambda::Args),
    Bench(bench::Args),
    Check(check::Args),
    Explain(explain::Args),
    Normalize(normalize::Args),
    Poll(poll::Args),
    Aws(aws::Args),
    Outbox(outbox::Args),
    Changes(changes::Args),
}

impl Cli {
    /// The command line, or `switchyard lambda` when the binary is named `bootstrap`: Lambda's
    /// provided.al2023 runtime starts the package's `bootstrap` with no arguments.
    pub fn from_env() -> Cli {
        let bootstrap = std::env::args_os()
            .next()
            .map(PathBuf::from)
            .is_some_and(|p| p.file_name().is_some_and(|n| n == "bootstrap"));
        if bootstrap {
            Cli::parse_from(["switchyard", "lambda"])
        } else {
            Cli::parse()
        }
    }
}

/// Output format of the commands that print reports.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs `future` to its end on the commands' one async runtime (multi-threaded, all drivers).
pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchyard")
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// Opens the configuration's store beside a running server (as a tool: it never touches a
/// running start) and prints what `f` says of it.
pub fn on_store(
    global: &Global,
    f: impl AsyncFnOnce(&Store) -> anyhow::Result<String>,
) -> anyhow::Result<std::process::ExitCode> {
    let location = crate::load::store_location(global.config.as_deref())?;
    let text = block_on(async {
        let store = Store::open_checked_at(&location, Role::Tool, Default::default()).await?;
        f(&store).await
    })?;
    print!("{text}");
    Ok(std::process::ExitCode::SUCCESS)
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// An error as a command prints it: `error: MESSAGE`, each cause on a line `  caused by: …`,
/// then the hint of every [`Hinted`] in the chain on a line `hint: …` of its own. (A `Hinted`
/// is found as an error of the chain, not as an `anyhow` context: make it the error, and add
/// context above it.)
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut hints = Vec::new();
    let mut next = Some(error);
    let mut first = true;
    while let Some(e) = next {
        let message = match e.downcast_ref::<Hinted>() {
            Some(h) => {
                if !h.hint.is_empty() {
                    hints.push(h.hint.as_str());
                }
                h.message.clone()
            }
            None => e.to_string(),
        };
        let prefix = if first { "error: " } else { "  caused by: " };
        let _ = writeln!(out, "{prefix}{message}");
        first = false;
        next = e.source();
    }
    for hint in hints {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

/// A library error as a command reports it: with its hint (a [`Hinted`]) when it has one,
/// else as it is, causes and all.
pub fn with_hint<E: crate::diag::Hint + Send + Sync + 'static>(e: E) -> anyhow::Error {
    if e.hint().is_empty() {
        anyhow::Error::new(e)
    } else {
        anyhow::Error::new(e.hinted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_prints_its_causes_then_its_hint() {
        let plain = anyhow::anyhow!("no start with id \"abc\"");
        assert_eq!(
            error_text(plain.as_ref()),
            "error: no start with id \"abc\"\n"
        );

        let hinted = anyhow::Error::new(Hinted::new(
            "--limit 0 is out of range",
            "ask for 1 to 10000 changes",
        ));
        assert_eq!(
            error_text(hinted.as_ref()),
            "error: --limit 0 is out of range\nhint: ask for 1 to 10000 changes\n"
        );

        // The hint comes last, after the causes, wherever the hinted error is in the chain.
        let chained = anyhow::Error::new(Hinted::new("cannot store", "free some space"))
            .context("poll failed");
        assert_eq!(
            error_text(chained.as_ref()),
            "error: poll failed\n  caused by: cannot store\nhint: free some space\n"
        );
    }

    #[test]
    fn the_arguments_are_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
