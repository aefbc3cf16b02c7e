//! The monorepo filter benchmark: 1,000 pipelines on one repository, each with 2 to 8 path
//! patterns (half in the CodePipeline dialect, half in the GitHub Actions dialect), and one push
//! to `main` touching 1,000 paths.
//!
//! Group `monorepo`:
//! - `decide_1000_pipelines_1000_paths`: `Pipelines::matching` (per-event preparation included).
//!   Target: under 5 ms median on one core.
//! - `explain_1000_pipelines_1000_paths`: `Pipelines::explain`, the same decision with reasons.
//! - `naive_baseline`: every pipeline, every path, every pattern matched one by one with
//!   pre-compiled [`Glob`]s; compare its median with `decide_...` for the speed-up.
//! - `compile_1000_definitions`: `Pipelines::load_texts` on the 1,000 generated files (YAML
//!   parse, validation, glob compile). Target: under 200 ms.
//!
//! The monorepo, the definitions and the event come from a fixed-seed xorshift generator, so
//! every run measures the same input. Setup checks that the naive baseline and `matching` start
//! the same pipelines (for the push, for each of its paths alone, and for pushes to other
//! branches), then prints a one-line summary.
//!
//! Run with `cargo bench --bench filter`.

use std::collections::{BTreeSet, HashSet};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use switchyard::diag::Severity;
use switchyard::event::{ChangeEvent, Source, SourceKind};
use switchyard::glob::{Dialect, Glob};
use switchyard::pipeline::Pipelines;

const SEED: u64 = 0x5eed_f11e_7e25_0001;
const PIPELINES: usize = 1_000;
const PATHS: usize = 1_000;
const SERVICES: usize = 300;
const LIBS: usize = 40;
/// Services and libraries the push touches (the rest are touched only through shared files).
const HOT_SERVICES: usize = 60;
/// Services whose documentation alone the push touches (so excludes and `!` negations decide).
const DOC_SERVICES: usize = 20;
const HOT_LIBS: usize = 12;
const REPOSITORY: &str = "https://github.com/acme/mono.git";
const BRANCH: &str = "main";

const WORDS: &[&str] = &[
    "auth", "billing", "cache", "config", "db", "events", "gateway", "handler", "index", "jobs",
    "metrics", "orders", "payments", "queue", "router", "search", "session", "storage", "users",
    "worker",
];
const ROLES: &[&str] = &["build", "test", "deploy", "lint"];

/// A tiny xorshift64 generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// CodePipeline criteria: includes and excludes, excludes win.
#[derive(Debug, Default)]
struct IncExc {
    includes: Vec<String>,
    excludes: Vec<String>,
}

/// A GitHub name or path list: ordered (`!` negates, last match wins) or `*-ignore`.
#[derive(Debug)]
enum GhRule {
    Ordered(Vec<String>),
    Ignore(Vec<String>),
}

/// A generated pipeline filter, as plain pattern texts (the YAML is written from it).
#[derive(Debug)]
enum SpecFilter {
    CodePipeline { branches: IncExc, paths: IncExc },
    GitHub { branches: GhRule, paths: GhRule },
}

#[derive(Debug)]
struct Spec {
    name: String,
    filter: SpecFilter,
}

impl Spec {
    fn path_patterns(&self) -> Vec<(Dialect, &str)> {
        match &self.filter {
            SpecFilter::CodePipeline { paths, .. } => paths
                .includes
                .iter()
                .chain(&paths.excludes)
                .map(|p| (Dialect::CodePipeline, p.as_str()))
                .collect(),
            SpecFilter::GitHub {
                paths: GhRule::Ordered(list) | GhRule::Ignore(list),
                ..
            } => list
                .iter()
                .map(|p| (Dialect::GitHub, p.strip_prefix('!').unwrap_or(p)))
                .collect(),
        }
    }
}

/// Adds `pattern` unless the list already has it.
fn push_new(list: &mut Vec<String>, pattern: String) {
    if !list.contains(&pattern) {
        list.push(pattern);
    }
}

/// Draws distinct patterns from `shape` until `list` holds `n` of them.
fn fill(
    list: &mut Vec<String>,
    n: usize,
    rng: &mut Rng,
    mut shape: impl FnMut(&mut Rng) -> String,
) {
    while list.len() < n {
        let p = shape(rng);
        push_new(list, p);
    }
}

fn cp_include(rng: &mut Rng, s: usize) -> String {
    let l = rng.below(LIBS);
    let other = rng.below(SERVICES);
    match rng.below(14) {
        0..=3 => format!("services/svc-{s}/**"),
        4 => format!("services/svc-{s}/src/*.{{rs,toml}}"),
        5 => format!("services/svc-{s}/**/test_*.py"),
        6 => format!("libs/lib-{l}/**/*.rs"),
        7 => format!("libs/lib-{l}/**"),
        8 => "proto/**/*.proto".to_owned(),
        9 => "Cargo.{toml,lock}".to_owned(),
        10 => "**/Dockerfile".to_owned(),
        11 => format!("services/svc-{s}/Dockerfile"),
        12 => format!("services/svc-{other}/**"),
        _ => format!("services/svc-{s}/**/*.{{py,pyi}}"),
    }
}

fn cp_exclude(rng: &mut Rng, s: usize) -> String {
    match rng.below(6) {
        0..=2 => "**/*.md".to_owned(),
        3 => format!("services/svc-{s}/docs/**"),
        4 => "**/test_*.py".to_owned(),
        _ => format!("services/svc-{s}/**/*.snap"),
    }
}

fn gh_include(rng: &mut Rng, s: usize) -> String {
    let l = rng.below(LIBS);
    let other = rng.below(SERVICES);
    match rng.below(15) {
        0..=3 => format!("services/svc-{s}/**"),
        4 => format!("services/svc-{s}/src/**.rs"),
        5 => format!("services/svc-{s}/**/test_*.py"),
        6 => format!("libs/lib-{l}/**/*.rs"),
        7 => format!("libs/lib-{l}/**"),
        8 => "proto/**/*.proto".to_owned(),
        9 => "Cargo.toml".to_owned(),
        10 => "Cargo.lock".to_owned(),
        11 => "**/Dockerfile".to_owned(),
        12 => format!("services/svc-{other}/**"),
        13 => format!("services/svc-{s}/api/v[12]/**"),
        _ => format!("services/svc-{s}/**/*.py"),
    }
}

fn gh_negation(rng: &mut Rng, s: usize) -> String {
    match rng.below(5) {
        0..=2 => "!**/*.md".to_owned(),
        3 => format!("!services/svc-{s}/docs/**"),
        _ => "!**/test_*.py".to_owned(),
    }
}

fn gh_ignore(rng: &mut Rng, s: usize) -> String {
    let other = rng.below(SERVICES);
    match rng.below(7) {
        0 | 1 => "**/*.md".to_owned(),
        2 => "docs/**".to_owned(),
        3 => format!("services/svc-{other}/**"),
        4 => "**/test_*.py".to_owned(),
        5 => "proto/**".to_owned(),
        _ => format!("services/svc-{s}/docs/**"),
    }
}

/// Generates the 1,000 pipeline filters.
fn generate_specs(rng: &mut Rng) -> Vec<Spec> {
    (0..PIPELINES)
        .map(|i| {
            let s = i % SERVICES;
            let role = ROLES[i / SERVICES];
            let name = format!("svc-{s}-{role}");
            let total = 2 + rng.below(7);
            let filter = if (i + i / SERVICES).is_multiple_of(2) {
                let branches = match rng.below(10) {
                    0..=3 => IncExc {
                        includes: vec!["main".into()],
                        excludes: vec![],
                    },
                    4..=6 => IncExc {
                        includes: vec!["main".into(), "release/**".into()],
                        excludes: vec![],
                    },
                    7 => IncExc {
                        includes: vec!["release/**".into()],
                        excludes: vec![],
                    },
                    _ => IncExc {
                        includes: vec!["**".into()],
                        excludes: vec!["wip/**".into(), "dependabot/**".into()],
                    },
                };
                let excludes = if total >= 3 {
                    1 + rng.below(2)
                } else {
                    rng.below(2)
                };
                let mut paths = IncExc::default();
                fill(&mut paths.includes, total - excludes, rng, |r| {
                    cp_include(r, s)
                });
                fill(&mut paths.excludes, excludes, rng, |r| cp_exclude(r, s));
                SpecFilter::CodePipeline { branches, paths }
            } else {
                let branches = match rng.below(10) {
                    0..=3 => GhRule::Ordered(vec!["main".into()]),
                    4..=6 => GhRule::Ordered(vec!["main".into(), "release/**".into()]),
                    7 => GhRule::Ordered(vec!["release/**".into()]),
                    8 => GhRule::Ordered(vec!["**".into(), "!wip/**".into()]),
                    _ => GhRule::Ignore(vec!["wip/**".into(), "dependabot/**".into()]),
                };
                let paths = if rng.chance(20) {
                    let mut list = Vec::new();
                    fill(&mut list, total, rng, |r| gh_ignore(r, s));
                    GhRule::Ignore(list)
                } else {
                    // Includes first, then `!` negations, sometimes a re-include at the end.
                    let reinclude = total >= 4 && rng.chance(25);
                    let negations = (1 + rng.below(2)).min(total - 1 - usize::from(reinclude));
                    let includes = total - negations - usize::from(reinclude);
                    let mut list = Vec::new();
                    fill(&mut list, includes, rng, |r| gh_include(r, s));
                    fill(&mut list, includes + negations, rng, |r| gh_negation(r, s));
                    if reinclude {
                        push_new(&mut list, format!("services/svc-{s}/docs/api/**"));
                    }
                    GhRule::Ordered(list)
                };
                SpecFilter::GitHub { branches, paths }
            };
            Spec { name, filter }
        })
        .collect()
}

fn quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|p| format!("\"{p}\"")).collect();
    format!("[{}]", items.join(", "))
}

fn inc_exc_yaml(c: &IncExc) -> String {
    if c.excludes.is_empty() {
        format!("{{includes: {}}}", quoted(&c.includes))
    } else {
        format!(
            "{{includes: {}, excludes: {}}}",
            quoted(&c.includes),
            quoted(&c.excludes)
        )
    }
}

/// Writes a spec as a definition file, in its dialect.
fn to_yaml(spec: &Spec) -> String {
    let name = &spec.name;
    let head = format!("pipeline: {name}\nrepository: {REPOSITORY}\n");
    let body = match &spec.filter {
        SpecFilter::CodePipeline { branches, paths } => format!(
            "triggers:\n  - gitConfiguration:\n      sourceActionName: Source\n      push:\n        - branches: {}\n          filePaths: {}\n",
            inc_exc_yaml(branches),
            inc_exc_yaml(paths)
        ),
        SpecFilter::GitHub { branches, paths } => {
            let rule = |key: &str, rule: &GhRule| match rule {
                GhRule::Ordered(list) => format!("    {key}: {}\n", quoted(list)),
                GhRule::Ignore(list) => format!("    {key}-ignore: {}\n", quoted(list)),
            };
            format!(
                "on:\n  push:\n{}{}",
                rule("branches", branches),
                rule("paths", paths)
            )
        }
    };
    format!("{head}{body}start: {{exec: [\"./run\", \"{name}\"]}}\n")
}

/// Picks `n` distinct numbers below `max`.
fn distinct(rng: &mut Rng, n: usize, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while out.len() < n {
        let x = rng.below(max);
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// One changed path of the monorepo, 1 to 5 levels deep.
fn gen_path(rng: &mut Rng, services: &[usize], hot_libs: &[usize]) -> String {
    let (hot_services, doc_services) = services.split_at(HOT_SERVICES);
    let word = rng.pick(WORDS);
    let n = rng.below(40);
    match rng.below(100) {
        0..=4 => {
            let s = doc_services[rng.below(doc_services.len())];
            match rng.below(4) {
                0 => format!("services/svc-{s}/README.md"),
                1 => format!("services/svc-{s}/docs/api/{word}-{n}.md"),
                _ => format!("services/svc-{s}/docs/{word}-{n}.md"),
            }
        }
        5..=69 => {
            let s = hot_services[rng.below(hot_services.len())];
            let base = format!("services/svc-{s}");
            match rng.below(12) {
                0 => {
                    let file =
                        rng.pick(&["Cargo.toml", "Dockerfile", "README.md", "pyproject.toml"]);
                    format!("{base}/{file}")
                }
                1..=3 => {
                    let dir = rng.pick(&["src", "src/handlers", "src/model", "src/api/v1"]);
                    match rng.below(6) {
                        0 => format!("{base}/{dir}/mod.rs"),
                        1 => format!("{base}/{dir}/{word}.toml"),
                        _ => format!("{base}/{dir}/{word}_{n}.rs"),
                    }
                }
                4 | 5 => {
                    let dir = rng.pick(&["tests", "tests/integration", "tests/unit"]);
                    if rng.chance(15) {
                        format!("{base}/{dir}/snapshots/{word}_{n}.snap")
                    } else {
                        format!("{base}/{dir}/test_{word}_{n}.py")
                    }
                }
                6 | 7 => {
                    let dir = rng.pick(&["docs", "docs/api", "docs/guides"]);
                    format!("{base}/{dir}/{word}-{n}.md")
                }
                8 => format!("{base}/scripts/{word}_{n}.py"),
                9 => {
                    if rng.chance(30) {
                        format!("{base}/deploy/Dockerfile")
                    } else {
                        format!("{base}/deploy/k8s/{word}-{n}.yaml")
                    }
                }
                10 => {
                    let v = 1 + rng.below(3);
                    format!("{base}/api/v{v}/{word}_{n}.py")
                }
                _ => format!("{base}/{word}/{word}_{n}.py"),
            }
        }
        70..=84 => {
            let l = hot_libs[rng.below(hot_libs.len())];
            let base = format!("libs/lib-{l}");
            match rng.below(8) {
                0 => format!("{base}/Cargo.toml"),
                1 => format!("{base}/README.md"),
                _ => {
                    let dir = rng.pick(&["src", "src/internal", "tests", "benches"]);
                    format!("{base}/{dir}/{word}_{n}.rs")
                }
            }
        }
        85..=92 => {
            let topic = rng.pick(&["architecture", "runbooks", "onboarding", "adr/2024", "api"]);
            format!("docs/{topic}/{word}-{n}.md")
        }
        93..=97 => {
            let v = 1 + rng.below(2);
            format!("proto/{word}/v{v}/{word}_{n}.proto")
        }
        _ => rng
            .pick(&[
                "Cargo.toml",
                "Cargo.lock",
                "README.md",
                ".github/workflows/ci.yml",
                "Makefile",
                "rust-toolchain.toml",
                "deploy/Dockerfile",
            ])
            .to_owned(),
    }
}

/// The 1,000 distinct changed paths of the push.
fn generate_paths(rng: &mut Rng) -> Vec<String> {
    let services = distinct(rng, HOT_SERVICES + DOC_SERVICES, SERVICES);
    let hot_libs = distinct(rng, HOT_LIBS, LIBS);
    let mut seen = HashSet::new();
    let mut paths = Vec::with_capacity(PATHS);
    while paths.len() < PATHS {
        let p = gen_path(rng, &services, &hot_libs);
        if seen.insert(p.clone()) {
            paths.push(p);
        }
    }
    paths
}

fn push_event(paths: &[String]) -> ChangeEvent {
    let json = serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": REPOSITORY,
        "kind": "push",
        "ref": format!("refs/heads/{BRANCH}"),
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "changed_paths": paths,
        "changed_paths_complete": true,
        "pull_request": null,
    });
    let source = Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    };
    ChangeEvent::from_json(json.to_string().as_bytes(), source)
        .unwrap_or_else(|e| panic!("the generated event is invalid: {e}"))
}

// ---- The naive baseline: each pipeline, each path, each pattern, one by one. ----

fn compile(pattern: &str, dialect: Dialect) -> Glob {
    Glob::new(pattern, dialect).unwrap_or_else(|e| panic!("{pattern:?}: {e:?}"))
}

struct NaiveIncExc {
    includes: Vec<Glob>,
    excludes: Vec<Glob>,
}

impl NaiveIncExc {
    fn new(c: &IncExc) -> NaiveIncExc {
        let all = |v: &[String]| {
            v.iter()
                .map(|p| compile(p, Dialect::CodePipeline))
                .collect()
        };
        NaiveIncExc {
            includes: all(&c.includes),
            excludes: all(&c.excludes),
        }
    }

    /// (no includes, or one matches) and no exclude matches.
    fn passes(&self, name: &str) -> bool {
        (self.includes.is_empty() || self.includes.iter().any(|g| g.is_match(name)))
            && !self.excludes.iter().any(|g| g.is_match(name))
    }
}

enum NaiveGh {
    /// (negated, glob), in the order written.
    Ordered(Vec<(bool, Glob)>),
    Ignore(Vec<Glob>),
}

impl NaiveGh {
    fn new(rule: &GhRule) -> NaiveGh {
        match rule {
            GhRule::Ordered(list) => NaiveGh::Ordered(
                list.iter()
                    .map(|p| match p.strip_prefix('!') {
                        Some(rest) => (true, compile(rest, Dialect::GitHub)),
                        None => (false, compile(p, Dialect::GitHub)),
                    })
                    .collect(),
            ),
            GhRule::Ignore(list) => {
                NaiveGh::Ignore(list.iter().map(|p| compile(p, Dialect::GitHub)).collect())
            }
        }
    }

    /// Ordered: the last matching pattern decides. Ignore: no pattern matches.
    fn passes(&self, name: &str) -> bool {
        match self {
            NaiveGh::Ordered(list) => list
                .iter()
                .rev()
                .find(|(_, g)| g.is_match(name))
                .is_some_and(|(negated, _)| !negated),
            NaiveGh::Ignore(list) => !list.iter().any(|g| g.is_match(name)),
        }
    }
}

enum NaiveFilter {
    CodePipeline {
        branches: NaiveIncExc,
        paths: NaiveIncExc,
    },
    GitHub {
        branches: NaiveGh,
        paths: NaiveGh,
    },
}

struct Naive {
    name: String,
    filter: NaiveFilter,
}

impl Naive {
    fn new(spec: &Spec) -> Naive {
        let filter = match &spec.filter {
            SpecFilter::CodePipeline { branches, paths } => NaiveFilter::CodePipeline {
                branches: NaiveIncExc::new(branches),
                paths: NaiveIncExc::new(paths),
            },
            SpecFilter::GitHub { branches, paths } => NaiveFilter::GitHub {
                branches: NaiveGh::new(branches),
                paths: NaiveGh::new(paths),
            },
        };
        Naive {
            name: spec.name.clone(),
            filter,
        }
    }

    /// A branch push: the branch passes and at least one path passes (for `paths-ignore`: not
    /// every path is ignored, i.e. one path matches no ignore pattern).
    fn starts(&self, branch: &str, paths: &[String]) -> bool {
        match &self.filter {
            NaiveFilter::CodePipeline { branches, paths: p } => {
                branches.passes(branch) && paths.iter().any(|x| p.passes(x))
            }
            NaiveFilter::GitHub { branches, paths: p } => {
                branches.passes(branch) && paths.iter().any(|x| p.passes(x))
            }
        }
    }
}

fn naive_matching<'a>(naive: &'a [Naive], branch: &str, paths: &[String]) -> Vec<&'a str> {
    naive
        .iter()
        .filter(|n| n.starts(branch, paths))
        .map(|n| n.name.as_str())
        .collect()
}

// ---- Setup and benchmarks. ----

struct Fixture {
    files: Vec<(String, String)>,
    pipelines: Pipelines,
    event: ChangeEvent,
    naive: Vec<Naive>,
}

fn setup() -> Fixture {
    let mut rng = Rng(SEED);
    let specs = generate_specs(&mut rng);
    let files: Vec<(String, String)> = specs
        .iter()
        .map(|s| (format!("triggers/{}.yaml", s.name), to_yaml(s)))
        .collect();
    let paths = generate_paths(&mut rng);
    let event = push_event(&paths);

    let (pipelines, diags) = Pipelines::load_texts(&files, Path::new("/"));
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        for d in &errors {
            eprintln!("{d:?}");
        }
        panic!("{} errors in the generated definitions", errors.len());
    }
    assert_eq!(pipelines.list.len(), PIPELINES, "every definition loads");

    let naive: Vec<Naive> = specs.iter().map(Naive::new).collect();
    let started = check_agreement(&pipelines, &files, &naive, &event, BRANCH);
    // The same check, harder: each changed path alone (so excludes and `!` negations decide
    // often), and the whole push to branches other than `main`.
    let mut single = event.clone();
    for path in &event.changed_paths {
        single.changed_paths = vec![path.clone()];
        check_agreement(&pipelines, &files, &naive, &single, BRANCH);
    }
    for branch in ["release/2.0", "wip/spike", "feature/x"] {
        let mut other = event.clone();
        other.git_ref = format!("refs/heads/{branch}");
        check_agreement(&pipelines, &files, &naive, &other, branch);
    }

    let distinct_patterns: HashSet<(Dialect, &str)> =
        specs.iter().flat_map(Spec::path_patterns).collect();
    assert_eq!(distinct_patterns.len(), pipelines.sets.paths.len());
    let warnings = diags.len() - errors.len();
    eprintln!(
        "monorepo: {} pipelines, {} distinct path patterns, {} changed paths, {} pipelines started ({} warnings)",
        pipelines.list.len(),
        distinct_patterns.len(),
        event.changed_paths.len(),
        started,
        warnings
    );
    Fixture {
        files,
        pipelines,
        event,
        naive,
    }
}

/// Panics, showing the first pipelines concerned, unless `matching` and the naive baseline
/// start the same pipelines for `event` (a push to `branch`). Returns how many start.
fn check_agreement(
    pipelines: &Pipelines,
    files: &[(String, String)],
    naive: &[Naive],
    event: &ChangeEvent,
    branch: &str,
) -> usize {
    let fast: BTreeSet<&str> = pipelines
        .matching(event)
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let slow: BTreeSet<&str> = naive_matching(naive, branch, &event.changed_paths)
        .into_iter()
        .collect();
    if fast != slow {
        let decisions = pipelines.explain(event);
        for name in fast.symmetric_difference(&slow).take(5) {
            let yaml = files
                .iter()
                .find(|(f, _)| *f == format!("triggers/{name}.yaml"))
                .map(|(_, y)| y.as_str())
                .unwrap_or_default();
            let reason = decisions
                .iter()
                .find(|d| d.pipeline == *name)
                .map(|d| d.reason.as_str())
                .unwrap_or_default();
            eprintln!(
                "{name}: matching says {}, naive says {}\n  reason: {reason}\n{yaml}",
                fast.contains(name),
                slow.contains(name)
            );
        }
        let shown: Vec<&String> = event.changed_paths.iter().take(3).collect();
        panic!(
            "matching and the naive baseline disagree on {} pipelines for a push to {} of {} paths (first: {shown:?})",
            fast.symmetric_difference(&slow).count(),
            event.git_ref,
            event.changed_paths.len()
        );
    }
    fast.len()
}

fn monorepo(c: &mut Criterion) {
    let fx = setup();
    let mut group = c.benchmark_group("monorepo");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.bench_function("decide_1000_pipelines_1000_paths", |b| {
        b.iter(|| black_box(fx.pipelines.matching(black_box(&fx.event))).len())
    });
    group.bench_function("explain_1000_pipelines_1000_paths", |b| {
        b.iter(|| black_box(fx.pipelines.explain(black_box(&fx.event))).len())
    });

    // The slow ones run whole iterations per sample.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("naive_baseline", |b| {
        b.iter(|| {
            naive_matching(
                black_box(&fx.naive),
                black_box(BRANCH),
                black_box(&fx.event.changed_paths),
            )
            .len()
        })
    });
    group.bench_function("compile_1000_definitions", |b| {
        b.iter(|| Pipelines::load_texts(black_box(&fx.files), Path::new("/")))
    });
    group.finish();
}

criterion_group!(benches, monorepo);
criterion_main!(benches);
