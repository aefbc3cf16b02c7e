//! The `switchyard` command: parses the arguments, sets up logging, runs the command
//! (`switchyard::cli`, one module each) and prints an error with its causes and its hint.

use std::process::ExitCode;

use switchyard::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let Cli { global, command } = Cli::from_env();
    // Spans are exported (when OTEL_EXPORTER_OTLP_ENDPOINT is set) by `serve` only.
    let export = matches!(command, Command::Serve(_));
    let variable = std::env::var(switchyard::telemetry::FORMAT_VARIABLE).ok();
    let telemetry =
        switchyard::telemetry::LogFormat::choose(global.log_format.as_deref(), variable.as_deref())
            .map_err(anyhow::Error::new)
            .and_then(|format| switchyard::telemetry::init(format, export));
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprint!("{}", cli::error_text(e.as_ref()));
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve(args) => cli::serve::run(args, &global),
        Command::Lambda(args) => cli::lambda::run(args, &global),
        Command::Bench(args) => cli::bench::run(args, &global),
        Command::Check(args) => cli::check::run(args, &global),
        Command::Explain(args) => cli::explain::run(args, &global),
        Command::Normalize(args) => cli::normalize::run(args, &global),
        Command::Poll(args) => cli::poll::run(args, &global),
        Command::Aws(args) => cli::aws::run(args, &global),
        Command::Outbox(args) => cli::outbox::run(args, &global),
        Command::Changes(args) => cli::changes::run(args, &global),
    };
    let code = result.unwrap_or_else(|e| {
        eprint!("{}", cli::error_text(e.as_ref()));
        ExitCode::from(1)
    });
    telemetry.shutdown();
    code
}
