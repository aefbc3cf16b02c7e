//! `switchyard explain`: whether each pipeline would start for one change event, and why
//! ([`crate::explain`]), as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Format, Global, read_input};
use crate::event::{ChangeEvent, Source, SourceKind};

/// Say for every pipeline whether one change event would start it, and why.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The change event (JSON); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    event: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&args.event)?;
    let source = Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    };
    let change = ChangeEvent::from_json(&bytes, source)
        .with_context(|| format!("{} is not a valid change event", args.event.display()))?;
    let pipelines = crate::load::pipelines(&global.triggers)?;
    let explanation = crate::explain::explain(&pipelines, &change);
    match args.format {
        Format::Text => print!("{}", explanation.render_text(&change)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
    }
    Ok(ExitCode::SUCCESS)
}
