//! The `switchyard` command: parses arguments, calls the library, maps errors to exit codes.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};

use switchyard::config::Provider;
use switchyard::event::{ChangeEvent, Source, SourceKind};
use switchyard::outcome::IntakeOutcome;
use switchyard::pipeline::Pipelines;
use switchyard::sources::providers::Normalized;
use switchyard::store::{Role, Store};

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
    /// Run the webhook receivers and the dispatcher until SIGINT/SIGTERM, then drain and stop.
    Serve,
    /// Answer AWS Lambda invocations (EventBridge events, SQS batches, function URL webhooks).
    ///
    /// Runs inside Lambda only (it reads AWS_LAMBDA_RUNTIME_API). The binary does this with no
    /// arguments when its file is named `bootstrap`, as the provided.al2023 runtime expects.
    /// The configuration is --config, else $SWITCHYARD_CONFIG, else switchyard.yaml in
    /// $LAMBDA_TASK_ROOT, else the environment (SWITCHYARD_SECRET_GITHUB and the like); the
    /// definitions are --triggers, else $SWITCHYARD_TRIGGERS, else $LAMBDA_TASK_ROOT/triggers.
    Lambda,
    /// Compare events, webhooks and polling on real local servers; print a table.
    ///
    /// Starts a git daemon with --repos repositories, a moto server (unless --moto names one)
    /// and `switchyard serve` per scenario; makes --pushes real pushes per scenario at --rate,
    /// announcing each as a signed GitHub webhook and a CodeCommit EventBridge event; runs each
    /// source alone, all three together, all three with announcements dropped, and polling
    /// alone at each --sweep interval. Needs git and moto_server (`.ci/test` installs it).
    Bench {
        /// The CI smoke run: 4 repositories, 10 pushes per scenario, under a minute.
        #[arg(long)]
        quick: bool,
        /// Repositories on the git daemon (default 20; 4 with --quick).
        #[arg(long, value_name = "K")]
        repos: Option<usize>,
        /// Pushes per scenario (default 100; 10 with --quick).
        #[arg(long, value_name = "N")]
        pushes: Option<usize>,
        /// Pushes per second (default 2; 5 with --quick).
        #[arg(long, value_name = "PER_SECOND")]
        rate: Option<f64>,
        /// The polling interval of the scenarios that poll (default 5s; 1s with --quick).
        #[arg(long, value_name = "DURATION")]
        interval: Option<String>,
        /// The polling intervals of the sweep, comma-separated (default 1s,5s,30s,60s).
        #[arg(long, value_name = "LIST")]
        sweep: Option<String>,
        /// Share of webhook announcements lost in the fault scenario (default 0.25).
        #[arg(long, value_name = "P")]
        drop_webhooks: Option<f64>,
        /// Share of event announcements lost in the fault scenario (default 0.25).
        #[arg(long, value_name = "P")]
        drop_events: Option<f64>,
        /// A running moto server to use instead of starting one.
        #[arg(long, value_name = "URL")]
        moto: Option<String>,
        /// Write the JSON of every measurement here.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Write the SVG plots into this directory.
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
        /// Write the tables as Markdown (for a README) here.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// The repository count the request rates are extrapolated to.
        #[arg(long, value_name = "K", default_value_t = 1000)]
        extrapolate: usize,
    },
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
    /// Turn a provider's raw webhook payload into change events; prints a JSON array.
    Normalize {
        /// Whose payload: github, gitlab, bitbucket, gitea (Forgejo too) or standard.
        #[arg(long, value_name = "PROVIDER")]
        provider: String,
        /// A delivery header, `Name: value` (e.g. `X-GitHub-Event: push`); repeatable.
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// The payload (JSON); `-` reads standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// One polling pass over the configured repositories; prints the change events found.
    ///
    /// What it finds is stored as `serve` stores it: the cursors move and the starts wait for
    /// `serve` to dispatch them. The first pass of a repository records its refs and finds
    /// nothing.
    Poll {
        /// One pass, then exit (the only mode: `serve` polls continuously).
        #[arg(long)]
        once: bool,
    },
    /// AWS resources for the EventBridge source.
    Aws {
        #[command(subcommand)]
        action: AwsAction,
    },
    /// The starts waiting, failing or dead-lettered; retry or drop one.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
}

#[derive(Debug, Subcommand)]
enum AwsAction {
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

#[derive(Debug, Subcommand)]
enum OutboxAction {
    /// List pending, failed and dead-lettered starts (all starts with --all).
    List {
        /// Show starts in every state, succeeded and superseded ones included.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Reopen a dead-lettered or failed start with a fresh set of attempts.
    Retry {
        /// The start id (a unique prefix is enough).
        start_id: String,
    },
    /// Drop a start so that it never runs.
    Drop {
        /// The start id (a unique prefix is enough).
        start_id: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    // Lambda's provided.al2023 runtime starts the package's `bootstrap` with no arguments.
    let bootstrap = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .is_some_and(|p| p.file_name().is_some_and(|n| n == "bootstrap"));
    let cli = if bootstrap {
        Cli::parse_from(["switchyard", "lambda"])
    } else {
        Cli::parse()
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
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

/// A duration flag (`500ms`, `5s`, `1m`).
fn duration_flag(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    switchyard::diag::parse_duration(text).with_context(|| {
        format!("{flag} {text:?} is not a duration: write a number and a unit, e.g. 500ms, 5s, 1m")
    })
}

/// Reads a file, or standard input for `-`.
fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
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

fn state_dir(config: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    let (config, diags) = switchyard::config::Config::load(config);
    match config {
        Some(c) => Ok(c.state_dir),
        None => {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            bail!("the configuration has errors:\n{}", text.join("\n"))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("switchyard")
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(switchyard::serve::run(cli.config.as_deref(), &cli.triggers))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            quick,
            repos,
            pushes,
            rate,
            interval,
            sweep,
            drop_webhooks,
            drop_events,
            moto,
            output,
            plots,
            markdown,
            extrapolate,
        } => {
            let mut opts = switchyard::bench::Options::defaults(quick);
            opts.repos = repos.unwrap_or(opts.repos);
            opts.pushes = pushes.unwrap_or(opts.pushes);
            opts.rate = rate.unwrap_or(opts.rate);
            if let Some(text) = interval {
                opts.interval = duration_flag("--interval", &text)?;
            }
            if let Some(list) = sweep {
                opts.sweep = list
                    .split(',')
                    .map(|t| duration_flag("--sweep", t.trim()))
                    .collect::<anyhow::Result<_>>()?;
            }
            opts.drop_webhooks = drop_webhooks.unwrap_or(opts.drop_webhooks);
            opts.drop_events = drop_events.unwrap_or(opts.drop_events);
            opts.moto = moto;
            opts.output = output.clone();
            opts.plots = plots.clone();
            opts.extrapolate = extrapolate;
            opts.quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("switchyard-bench")
                .build()
                .context("cannot start the async runtime")?;
            let results = runtime.block_on(switchyard::bench::run(opts))?;
            print!("{}", switchyard::bench::report::table(&results));
            if let Some(path) = &output {
                switchyard::bench::write_json(&results, path)?;
                eprintln!("every measurement: {}", path.display());
            }
            if let Some(dir) = &plots {
                for path in switchyard::bench::report::plots(&results, dir)? {
                    eprintln!("plot: {}", path.display());
                }
            }
            if let Some(path) = &markdown {
                std::fs::write(path, switchyard::bench::report::markdown(&results))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("tables as Markdown: {}", path.display());
            }
            // Latency targets depend on the machine and are reported; a lost or doubled start
            // is a fault of switchyard's and fails the run.
            let faulty: Vec<String> = results
                .scenarios
                .iter()
                .filter(|s| s.missed > 0 || s.started_twice > 0)
                .map(|s| {
                    format!(
                        "{}: {} missed, {} started twice",
                        s.name, s.missed, s.started_twice
                    )
                })
                .collect();
            if !faulty.is_empty() {
                bail!("changes were lost or started twice: {}", faulty.join("; "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lambda => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("switchyard")
                .build()
                .context("cannot start the async runtime")?;
            // `--triggers` has a default; only a value the user gave overrides the package's.
            let triggers =
                (cli.triggers != std::path::Path::new("triggers")).then_some(cli.triggers);
            runtime.block_on(switchyard::lambda::run(
                cli.config.as_deref(),
                triggers.as_deref(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Aws {
            action:
                AwsAction::Setup {
                    queue,
                    bus,
                    dry_run,
                },
        } => {
            let (config, pipelines) =
                switchyard::serve::load(cli.config.as_deref(), &cli.triggers)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let request = switchyard::aws::setup::Request {
                queue,
                bus,
                dry_run,
            };
            let report = runtime.block_on(async {
                let eb = config.eventbridge.as_ref();
                let sdk = switchyard::aws::sdk_config(
                    eb.map(|e| e.region.as_str()),
                    eb.and_then(|e| e.endpoint_url.as_deref()),
                )
                .await;
                switchyard::aws::setup::run(&sdk, &request, &pipelines).await
            })?;
            print!("{}", report.render());
            if dry_run {
                eprintln!("dry run: nothing was changed");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Poll { once } => {
            if !once {
                bail!("`switchyard poll` needs --once; `switchyard serve` polls continuously");
            }
            let (config, pipelines) =
                switchyard::serve::load(cli.config.as_deref(), &cli.triggers)?;
            if config.poll.is_empty() {
                bail!("no repositories to poll: add them under `poll:` in switchyard.yaml");
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let results = runtime.block_on(switchyard::sources::poll::once(&config, pipelines))?;
            let mut events = Vec::new();
            let mut failed = 0;
            for result in results {
                match result {
                    Ok(report) if report.baseline => eprintln!(
                        "{}: first poll, {} refs recorded as the baseline",
                        report.repository, report.refs
                    ),
                    Ok(report) => {
                        let new = report
                            .found
                            .iter()
                            .filter(|(_, o)| matches!(o, IntakeOutcome::Accepted { .. }))
                            .count();
                        eprintln!(
                            "{}: {} refs, {} changed ({new} new)",
                            report.repository,
                            report.refs,
                            report.found.len()
                        );
                        events.extend(report.found.into_iter().map(|(e, _)| e));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e}\n  hint: {}", e.hint());
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&events)?);
            Ok(if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Normalize {
            provider,
            headers,
            file,
        } => {
            let provider: Provider =
                provider
                    .parse()
                    .map_err(|e: switchyard::config::UnknownProvider| {
                        anyhow::anyhow!("--provider: {e}\nhint: {}", e.hint())
                    })?;
            let map = switchyard::sources::providers::parse_headers(&headers)
                .map_err(anyhow::Error::msg)?;
            let body = read_input(&file)?;
            let now = jiff::Timestamp::now();
            let events =
                if provider == Provider::Standard {
                    let source = Source {
                        kind: SourceKind::Webhook,
                        provider: Some("standard".into()),
                        delivery_id: None,
                    };
                    vec![ChangeEvent::from_json(&body, source).with_context(|| {
                        format!("{} is not a valid change event", file.display())
                    })?]
                } else {
                    match switchyard::sources::providers::normalize(provider, &map, &body, now)
                        .with_context(|| format!("{} cannot be normalized", file.display()))?
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
        Command::Outbox { action } => {
            let dir = state_dir(cli.config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let text = runtime.block_on(async {
                let store = Store::open_checked(&dir, Role::Tool, Default::default()).await?;
                match action.unwrap_or(OutboxAction::List {
                    all: false,
                    format: Format::Text,
                }) {
                    OutboxAction::List { all, format } => {
                        let states = if all {
                            &[][..]
                        } else {
                            switchyard::outbox::DEFAULT_STATES
                        };
                        switchyard::outbox::list(&store, states, matches!(format, Format::Json))
                            .await
                    }
                    OutboxAction::Retry { start_id } => {
                        switchyard::outbox::retry(&store, &start_id).await
                    }
                    OutboxAction::Drop { start_id } => {
                        switchyard::outbox::drop_start(&store, &start_id).await
                    }
                }
            })?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
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
            let bytes = read_input(&event)?;
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
