//! `switchyard serve`: loads the configuration and the definitions, starts the server
//! ([`crate::serve::start`]) and serves until SIGINT or SIGTERM, then drains and stops.

use std::process::ExitCode;

use super::{Global, block_on};

/// Run the webhook receivers and the dispatcher until SIGINT/SIGTERM, then drain and stop.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let (config, pipelines) = crate::load::both(global.config.as_deref(), &global.triggers)?;
    block_on(async {
        let server = crate::serve::start(config, pipelines).await?;
        crate::telemetry::say(&format!("switchyard listening on http://{}", server.addr));
        signal().await;
        server.stop().await;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => tracing::info!("SIGINT: draining"),
                    _ = term.recv() => tracing::info!("SIGTERM: draining"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
