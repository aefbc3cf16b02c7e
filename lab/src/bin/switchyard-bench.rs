//! `switchyard-bench`, the program behind `switchyard bench`: parses the flags, runs the
//! comparison against the `switchyard` binary beside it (or `$SWITCHYARD_BIN`), prints the
//! table and writes what was asked; fails when a change was lost or started twice.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Parser;

use switchyard_lab::bench::{self, Options, report};

/// Compare events, webhooks and polling on real local servers; print a table.
///
/// Starts a git daemon with --repos repositories, a moto server (unless --moto names one)
/// and `switchyard serve` per scenario; makes --pushes real pushes per scenario at --rate,
/// announcing each as a signed GitHub webhook and a CodeCommit EventBridge event; runs each
/// source alone, all three together, all three with announcements dropped, and polling
/// alone at each --sweep interval. Needs git and moto_server (`.ci/test` installs it). The
/// `switchyard` it measures is $SWITCHYARD_BIN, else the one beside this program.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard-bench",
    bin_name = "switchyard bench",
    version,
    about
)]
struct Cli {
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
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

/// The `switchyard` to measure: `$SWITCHYARD_BIN` (`switchyard bench` sets it to itself),
/// else the one beside this program.
fn serve_bin() -> anyhow::Result<PathBuf> {
    let bin = match std::env::var_os("SWITCHYARD_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => std::env::current_exe()
            .context("cannot find this program's own path")?
            .with_file_name("switchyard"),
    };
    if !bin.is_file() {
        bail!(
            "{}: no such file: the switchyard binary to measure\nhint: build it beside this program (`cargo build --release -p switchyard -p switchyard-lab`, or `.ci/bench`), or name it in SWITCHYARD_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// A duration flag (`500ms`, `5s`, `1m`).
fn duration_flag(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    switchyard::diag::parse_duration(text).with_context(|| {
        format!("{flag} {text:?} is not a duration: write a number and a unit, e.g. 500ms, 5s, 1m")
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut opts = Options::defaults(serve_bin()?, cli.quick);
    opts.repos = cli.repos.unwrap_or(opts.repos);
    opts.pushes = cli.pushes.unwrap_or(opts.pushes);
    opts.rate = cli.rate.unwrap_or(opts.rate);
    if let Some(text) = &cli.interval {
        opts.interval = duration_flag("--interval", text)?;
    }
    if let Some(list) = &cli.sweep {
        opts.sweep = list
            .split(',')
            .map(|t| duration_flag("--sweep", t.trim()))
            .collect::<anyhow::Result<_>>()?;
    }
    opts.drop_webhooks = cli.drop_webhooks.unwrap_or(opts.drop_webhooks);
    opts.drop_events = cli.drop_events.unwrap_or(opts.drop_events);
    opts.moto = cli.moto;
    opts.output = cli.output.clone();
    opts.plots = cli.plots.clone();
    opts.extrapolate = cli.extrapolate;
    opts.quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchyard-bench")
        .build()
        .context("cannot start the async runtime")?;
    let results = runtime.block_on(bench::run(opts))?;
    print!("{}", report::table(&results));
    if let Some(path) = &cli.output {
        bench::write_json(&results, path)?;
        eprintln!("every measurement: {}", path.display());
    }
    if let Some(dir) = &cli.plots {
        for path in report::plots(&results, dir)? {
            eprintln!("plot: {}", path.display());
        }
    }
    if let Some(path) = &cli.markdown {
        std::fs::write(path, report::markdown(&results))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("tables as Markdown: {}", path.display());
    }
    // Latency targets depend on the machine and are reported; a lost or doubled start is a
    // fault of switchyard's and fails the run.
    let faulty = bench::faults(&results);
    if !faulty.is_empty() {
        bail!("changes were lost or started twice: {}", faulty.join("; "));
    }
    Ok(())
}
