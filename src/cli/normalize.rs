//! `switchyard normalize`: a provider's raw webhook payload turned into change events by the
//! receivers' own code, printed as a JSON array.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Global, read_input};
use crate::config::{Provider, UnknownProvider};
use crate::diag::{Hint as _, Hinted};
use crate::event::{ChangeEvent, Source, SourceKind};
use crate::sources::providers::{self, Normalized};

/// Turn a provider's raw webhook payload into change events; prints a JSON array.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose payload: github, gitlab, bitbucket, gitea (Forgejo too) or standard.
    #[arg(long, value_name = "PROVIDER")]
    provider: String,
    /// A delivery header, `Name: value` (e.g. `X-GitHub-Event: push`); repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The payload (JSON); `-` reads standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<ExitCode> {
    let provider: Provider = args
        .provider
        .parse()
        .map_err(|e: UnknownProvider| Hinted::new(format!("--provider: {e}"), e.hint()))?;
    let map = providers::parse_headers(&args.headers).map_err(anyhow::Error::msg)?;
    let body = read_input(&args.file)?;
    let file = args.file.display();
    let events = if provider == Provider::Standard {
        let source = Source {
            kind: SourceKind::Webhook,
            provider: Some("standard".into()),
            delivery_id: None,
        };
        vec![
            ChangeEvent::from_json(&body, source)
                .with_context(|| format!("{file} is not a valid change event"))?,
        ]
    } else {
        match providers::normalize(provider, &map, &body, jiff::Timestamp::now())
            .with_context(|| format!("{file} cannot be normalized"))?
        {
            Normalized::Changes(events) => events,
            Normalized::Ping => {
                eprintln!("a ping: no change");
                Vec::new()
            }
            Normalized::Ignored(reason) => {
                eprintln!("no change: {reason}");
                Vec::new()
            }
        }
    };
    println!("{}", serde_json::to_string_pretty(&events)?);
    Ok(ExitCode::SUCCESS)
}
