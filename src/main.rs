//! The `switchyard` command: parses arguments, calls the library, maps errors to exit codes.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};

use switchyard::config::Provider;
use switchyard::diag::Hint as _;
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
    /// Log lines on standard error: text or json (one object a line); default
    /// $SWITCHYARD_LOG_FORMAT, else text.
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
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
    /// Runs `switchyard-bench` from beside this binary with the arguments given, measuring this
    /// binary; `switchyard bench --help` lists its flags (--quick, --repos, --pushes, --rate,
    /// --interval, --sweep, --output, --plots, --markdown, ...). Built with
    /// `cargo build --release -p switchyard -p switchyard-lab`, or run `.ci/bench`.
    #[command(disable_help_flag = true)]
    Bench {
        /// The arguments of `switchyard-bench`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
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
    /// Every change received: why each pipeline started or not, what the starts did; replay.
    Changes {
        #[command(subcommand)]
        action: ChangesAction,
    },
}

#[derive(Debug, Subcommand)]
enum ChangesAction {
    /// The newest changes: repository, ref, sha, first source, sightings, starts.
    List {
        /// Only changes of this repository (any spelling of its URL).
        #[arg(long, value_name = "R")]
        repository: Option<String>,
        /// Only changes this pipeline decided on or started.
        #[arg(long, value_name = "P")]
        pipeline: Option<String>,
        /// Only changes received within this long (90s, 15m, 2h, 7d).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// At most this many changes.
        #[arg(long, value_name = "N", default_value_t = switchyard::changes::DEFAULT_LIMIT)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// One change: its event, every sighting, each pipeline's decision and reason, its starts.
    Show {
        /// The change id (a unique prefix of 4 characters or more is enough).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Decide a change again with today's definitions and start what they start now, as new
    /// starts (a replay asked twice is a duplicate).
    Replay {
        /// The change id (a unique prefix of 4 characters or more is enough).
        id: String,
        /// Only this pipeline.
        #[arg(long, value_name = "P")]
        pipeline: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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
    // Spans are exported (when OTEL_EXPORTER_OTLP_ENDPOINT is set) by `serve` only.
    let export = matches!(cli.command, Command::Serve);
    let variable = std::env::var(switchyard::telemetry::FORMAT_VARIABLE).ok();
    let telemetry =
        switchyard::telemetry::LogFormat::choose(cli.log_format.as_deref(), variable.as_deref())
            .and_then(|format| switchyard::telemetry::init(format, export));
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    };
    telemetry.shutdown();
    code
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

/// Where the configuration's store is (`outbox` works on SQLite and PostgreSQL alike).
fn store_location(config: Option<&std::path::Path>) -> anyhow::Result<switchyard::store::Location> {
    let (config, diags) = switchyard::config::Config::load(config);
    match config {
        Some(c) => c.store_location().map_err(anyhow::Error::msg),
        None => {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            bail!("the configuration has errors:\n{}", text.join("\n"))
        }
    }
}

/// `switchyard bench`: runs `switchyard-bench` from beside this binary (the lab's program,
/// which the shipped build leaves out) with `args`, measuring this binary.
fn bench(args: &[std::ffi::OsString]) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let me = std::env::current_exe().context("cannot find this binary's own path")?;
    let program = me.with_file_name("switchyard-bench");
    if !program.is_file() {
        bail!(
            "{}: no such file: `switchyard bench` runs the lab's program from beside this binary\nhint: build both with `cargo build --release -p switchyard -p switchyard-lab`, or run `.ci/bench`",
            program.display()
        );
    }
    let err = std::process::Command::new(&program)
        .args(args)
        .env("SWITCHYARD_BIN", &me)
        .exec();
    Err(err).with_context(|| format!("cannot run {}", program.display()))
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
        Command::Bench { args } => bench(&args),
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
                    Ok(report) if report.elsewhere => eprintln!(
                        "{}: polled by a serve replica now (it holds the lease); skipped",
                        report.repository
                    ),
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
        Command::Outbox { action } => on_store(cli.config.as_deref(), async |store| {
            Ok(
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
                        switchyard::outbox::list(store, states, matches!(format, Format::Json))
                            .await?
                    }
                    OutboxAction::Retry { start_id } => {
                        switchyard::outbox::retry(store, &start_id).await?
                    }
                    OutboxAction::Drop { start_id } => {
                        switchyard::outbox::drop_start(store, &start_id).await?
                    }
                },
            )
        }),
        Command::Changes { action } => changes(&cli.config, &cli.triggers, action),
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
            let pipelines = load_pipelines(&cli.triggers)?;
            let explanation = switchyard::explain::explain(&pipelines, &change);
            match format {
                Format::Text => print!("{}", explanation.render_text(&change)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `switchyard changes …`.
fn changes(
    config: &Option<PathBuf>,
    triggers: &std::path::Path,
    action: ChangesAction,
) -> anyhow::Result<ExitCode> {
    on_store(config.as_deref(), async |store| {
        Ok(match action {
            ChangesAction::List {
                repository,
                pipeline,
                since,
                limit,
                format,
            } => {
                if limit == 0 || limit > switchyard::changes::MAX_LIMIT {
                    bail!(
                        "--limit {limit} is out of range\nhint: {}",
                        switchyard::changes::limit_hint()
                    );
                }
                let repository = match repository {
                    Some(r) => Some(
                        switchyard::repo::RepoId::parse(
                            &r,
                            std::env::current_dir().ok().as_deref(),
                        )
                        .map_err(|e| anyhow::anyhow!("--repository {r:?}: {e}"))?
                        .as_str()
                        .to_owned(),
                    ),
                    None => None,
                };
                let since_ms = match since {
                    Some(s) => Some(
                        switchyard::changes::since(&s, switchyard::store::now_ms()).ok_or_else(
                            || {
                                anyhow::anyhow!(
                                    "--since {s:?} is not a duration\nhint: {}",
                                    switchyard::changes::SINCE_HINT
                                )
                            },
                        )?,
                    ),
                    None => None,
                };
                let query = switchyard::store::ChangeQuery {
                    repository,
                    pipeline,
                    since_ms,
                    limit,
                };
                switchyard::changes::list(store, query, matches!(format, Format::Json)).await?
            }
            ChangesAction::Show { id, format } => {
                switchyard::changes::show(store, &id, matches!(format, Format::Json)).await?
            }
            ChangesAction::Replay {
                id,
                pipeline,
                format,
            } => {
                let pipelines = load_pipelines(triggers)?;
                let report =
                    switchyard::changes::replay(store, &pipelines, &id, pipeline.as_deref())
                        .await?;
                match format {
                    Format::Text => report.render_text(),
                    Format::Json => format!("{:#}\n", serde_json::json!(report)),
                }
            }
        })
    })
}

/// Opens the configuration's store beside a running server (as a tool: it never touches a
/// running start), on a runtime of its own, and prints what `f` says of it.
fn on_store(
    config: Option<&std::path::Path>,
    f: impl AsyncFnOnce(&Store) -> anyhow::Result<String>,
) -> anyhow::Result<ExitCode> {
    let location = store_location(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let text = runtime.block_on(async {
        let store = Store::open_checked_at(&location, Role::Tool, Default::default()).await?;
        f(&store).await
    })?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The definitions of `triggers`, refusing them when any has an error.
fn load_pipelines(triggers: &std::path::Path) -> anyhow::Result<Pipelines> {
    let (pipelines, diags) = Pipelines::load_dir(triggers);
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
            triggers.display()
        );
    }
    Ok(pipelines)
}
