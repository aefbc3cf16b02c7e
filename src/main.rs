//! The `switchyard` command: parses arguments, calls the library, maps errors to exit codes.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};

use switchyard::event::{ChangeEvent, Source, SourceKind};
use switchyard::pipeline::Pipelines;

/// A trigger dispatcher: which pipelines must start because a repository changed.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// The service configuration (default ./switchyard.yaml; built-in defaults when it is absent).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The directory of pipeline definitions.
    #[arg(long, global = true, value_name = "DIR", default_value = "triggers")]
    triggers: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate switchyard.yaml and every file in triggers/; exit 1 on any error.
    Check,
    /// Say for every pipeline whether one change event would start it, and why.
    Explain {
        /// The change event (JSON); `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => {
            let report = switchyard::check::run(cli.config.as_deref(), &cli.triggers);
            print!("{}", report.render());
            Ok(if report.errors() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Explain { event, format } => {
            let bytes = if event.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .context("cannot read the event from standard input")?;
                buf
            } else {
                std::fs::read(&event).with_context(|| format!("cannot read {}", event.display()))?
            };
            let source = Source {
                kind: SourceKind::Manual,
                provider: None,
                delivery_id: None,
            };
            let change = ChangeEvent::from_json(&bytes, source)
                .with_context(|| format!("{} is not a valid change event", event.display()))?;
            let (pipelines, diags) = Pipelines::load_dir(&cli.triggers);
            let errors: Vec<_> = diags
                .iter()
                .filter(|d| d.severity == switchyard::diag::Severity::Error)
                .collect();
            if !errors.is_empty() {
                for d in &errors {
                    eprintln!("{d}");
                }
                bail!(
                    "{} has errors: run `switchyard check` and fix them first",
                    cli.triggers.display()
                );
            }
            let explanation = switchyard::explain::explain(&pipelines, &change);
            match format {
                Format::Text => print!("{}", explanation.render_text(&change)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
