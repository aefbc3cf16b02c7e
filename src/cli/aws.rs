//! `switchyard aws setup`: the queue, its dead-letter queue and the EventBridge rules the
//! definitions need, made idempotently ([`crate::aws::setup`]), or planned with `--dry-run`.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Global, block_on};
use crate::aws::setup::Request;

/// AWS resources for the EventBridge source.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create (idempotently) the queue, its dead-letter queue and policy, and the EventBridge
    /// rules and targets for the repositories in triggers/.
    Setup {
        /// The queue's name (its dead-letter queue is NAME-dlq).
        #[arg(long, value_name = "NAME")]
        queue: String,
        /// The event bus the rules listen on.
        #[arg(long, value_name = "NAME", default_value = "default")]
        bus: String,
        /// Print what would be made; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let Action::Setup {
        queue,
        bus,
        dry_run,
    } = args.action;
    let (config, pipelines) = crate::load::both(global.config.as_deref(), &global.triggers)?;
    let request = Request {
        queue,
        bus,
        dry_run,
    };
    let report = block_on(async {
        let eb = config.eventbridge.as_ref();
        let sdk = crate::aws::sdk_config(
            eb.map(|e| e.region.as_str()),
            eb.and_then(|e| e.endpoint_url.as_deref()),
        )
        .await;
        Ok(crate::aws::setup::run(&sdk, &request, &pipelines).await?)
    })?;
    print!("{}", report.render());
    if dry_run {
        eprintln!("dry run: nothing was changed");
    }
    Ok(ExitCode::SUCCESS)
}
