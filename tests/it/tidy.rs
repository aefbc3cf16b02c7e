//! Tidy: ARCHITECTURE.md, the README, `docs/` and the code agree (as rust-analyzer's tidy test
//! keeps its own house).
//!
//! - every outside engine (hyper, the AWS SDK, git2, rusqlite, …) is imported only by the
//!   modules the document's table "Who knows which engine" names;
//! - the code map has one short row per module or folder: every row names a crate's top-level
//!   module (a file or a folder of `src/`), or a folder, that exists; every source file lies
//!   under a row; what a folder holds inside is its own module documentation's to say;
//! - no circles: neither between the top-level modules of a crate nor between the files (or
//!   folders) of one folder, with `crate::`, `super::` and `self::` paths and `use` groups all
//!   resolved;
//! - no command of `src/cli/` imports another;
//! - the README stays short and links every page of `docs/`, and every relative link of the
//!   README, `docs/` and ARCHITECTURE.md leads to a file that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn architecture() -> String {
    read("ARCHITECTURE.md")
}

/// The crates' source roots, and the name `crate::` means in each.
const CRATES: &[&str] = &["src", "core/src", "lab/src"];

/// Every file below `dir` with extension `ext`, relative to the repository root, with `/`
/// separators, sorted.
fn files(dir: &str, ext: &str) -> Vec<String> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, ext, out);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&root().join(dir), ext, &mut found);
    let mut out: Vec<String> = found
        .iter()
        .filter_map(|p| p.strip_prefix(root()).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    out.sort();
    out
}

fn rust_files(dir: &str) -> Vec<String> {
    files(dir, "rs")
}

/// The text in backticks of a Markdown table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The rows (cells, trimmed) of the first Markdown table after the line `heading`.
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    text[start..]
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2) // the header and the separator
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Source text without `//` comments (doc comments included) and without a file's inline
/// `#[cfg(test)] mod tests { … }`: what the shipped code reads.
fn code(path: &str) -> String {
    let text = read(path);
    let text = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or(&text);
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (a URL) is kept; a line that starts a comment is not.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `path` (a file) lies in `place`: a folder (`src/aws/`), a file (`src/lambda.rs`),
/// or below a file's own folder (`src/sources/poll/git/tests.rs` is `git.rs`'s).
fn lies_in(path: &str, place: &str) -> bool {
    if place.ends_with('/') {
        return path.starts_with(place);
    }
    path == place
        || place
            .strip_suffix(".rs")
            .is_some_and(|stem| path.starts_with(&format!("{stem}/")))
}

/// Whether `code` uses the crate `name` (`aws_sdk_*` matches every crate of that prefix).
fn uses_crate(code: &str, name: &str) -> bool {
    let (stem, prefix) = match name.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    code.match_indices(stem).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return false;
        }
        let mut rest = &code[i + stem.len()..];
        if prefix {
            rest = rest.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
        }
        rest.starts_with("::") || (code[..i].trim_end().ends_with("use") && rest.starts_with(';'))
    })
}

#[test]
fn outside_engines_are_imported_only_where_architecture_md_says() {
    let text = architecture();
    let rows = table_after(&text, "Who knows which engine");
    assert!(!rows.is_empty(), "the table of engines is empty");
    let mut files = rust_files("src");
    files.extend(rust_files("core/src"));
    let mut wrong = Vec::new();
    for row in &rows {
        let (crates, places) = (ticked(&row[0]), ticked(&row[1]));
        assert!(
            !crates.is_empty() && !places.is_empty(),
            "a bad row: {row:?}"
        );
        for place in &places {
            assert!(
                root().join(place).exists(),
                "the engines table names {place}, which does not exist"
            );
        }
        for file in &files {
            let code = code(file);
            for name in &crates {
                if uses_crate(&code, name) && !places.iter().any(|p| lies_in(file, p)) {
                    wrong.push(format!(
                        "{file} uses {name}, which ARCHITECTURE.md gives only to {}",
                        places.join(", ")
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nhint: move the code behind the module that owns the engine, or change the table \
         \"Who knows which engine\" in ARCHITECTURE.md (and say why)",
        wrong.join("\n")
    );
}

/// The places a code-map row may name: a crate's root file or top-level module (a file or a
/// folder of its source root), or a folder of the repository outside the crates' sources.
fn mappable(place: &str) -> bool {
    if let Some(krate) = CRATES.iter().find(|c| place.starts_with(&format!("{c}/"))) {
        let rest = &place[krate.len() + 1..];
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        // `src/lib.rs`, `src/store/`, `src/metrics.rs`, `lab/src/bin/` (the lab's programs).
        return parts.len() == 1;
    }
    // A folder of the repository, or one level inside one: `deploy/`, `tests/it/`, `benches/`.
    place.ends_with('/') && place.matches('/').count() <= 2
}

/// The most characters a code-map row's description may have.
const ROW_MAX: usize = 300;

#[test]
fn the_code_map_has_one_short_row_per_module_or_folder() {
    let text = architecture();
    let rows = table_after(&text, "## Code map");
    let mut named = BTreeSet::new();
    let mut wrong = Vec::new();
    for row in &rows {
        let places = ticked(&row[0]);
        if places.len() != 1 {
            wrong.push(format!(
                "the row {:?} names {} places, not one",
                row[0],
                places.len()
            ));
        }
        let description = row.get(1).map_or(0, |d| d.chars().count());
        if description > ROW_MAX {
            wrong.push(format!(
                "the row of {} says {description} characters, more than {ROW_MAX}: the detail belongs in the module's own `//!` documentation",
                row[0]
            ));
        }
        for place in places {
            if !root().join(&place).exists() {
                wrong.push(format!("the code map names {place}, which does not exist"));
            } else if !mappable(&place) {
                wrong.push(format!(
                    "the code map names {place}, a file inside a folder: name its top-level module or folder"
                ));
            }
            named.insert(place);
        }
    }
    for dir in ["src", "core", "benches", "tests", "lab"] {
        for file in rust_files(dir) {
            if !named.iter().any(|place| lies_in(&file, place)) {
                wrong.push(format!("{file} lies under no row of the code map"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nhint: ARCHITECTURE.md's code map has one short row for each top-level module of a \
         crate (`src/NAME.rs` or `src/NAME/`) and for each folder (`tests/it/`, `benches/`); \
         add, shorten or merge rows",
        wrong.join("\n")
    );
}

/// The module of a file of the crate rooted at `krate`: `src/a/b.rs` and `src/a/b/mod.rs` are
/// `a::b`; the root (`lib.rs`, `main.rs`) is `""`; `None` for a test file.
fn module_of(krate: &str, file: &str) -> Option<String> {
    let rel = file
        .strip_prefix(&format!("{krate}/"))?
        .strip_suffix(".rs")?;
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    if rel.ends_with("/tests") || rel == "tests" {
        return None;
    }
    if rel == "lib" || rel == "main" {
        return Some(String::new());
    }
    Some(rel.replace('/', "::"))
}

/// Every path a `use` tree or an expression names after a `crate::`, `super::` or `self::`
/// prefix, as written: `crate::a::{b, c::d}` gives `crate::a::b` and `crate::a::c::d`.
fn paths(code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| bytes[i..].starts_with(p.as_bytes()));
        let boundary = i == 0 || !(word(bytes[i - 1]) || bytes[i - 1] == b':');
        match starts {
            Some(_) if boundary => {
                let (trees, end) = tree(code, i);
                out.extend(trees);
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// The paths of the use tree starting at `at`, and where it ends.
fn tree(code: &str, at: usize) -> (Vec<String>, usize) {
    let bytes = code.as_bytes();
    let mut i = at;
    let mut prefix = String::new();
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        prefix.push_str(&code[start..i]);
        if bytes[i..].starts_with(b"::") {
            i += 2;
            if bytes.get(i) == Some(&b'{') {
                let mut out = Vec::new();
                i += 1;
                loop {
                    while i < bytes.len() && (bytes[i] as char).is_whitespace()
                        || bytes.get(i) == Some(&b',')
                    {
                        i += 1;
                    }
                    if i >= bytes.len() || bytes[i] == b'}' {
                        return (out, i + 1);
                    }
                    let (inner, end) = tree(code, i);
                    for p in inner {
                        out.push(format!("{prefix}::{p}"));
                    }
                    if end <= i {
                        return (out, i + 1);
                    }
                    i = end;
                }
            }
            prefix.push_str("::");
            continue;
        }
        // A rename (`x as y`) or a glob ends the path as it is.
        return (vec![prefix.trim_end_matches("::").to_owned()], i);
    }
}

/// The module a written path names, for a file of module `from`: `super::` and `self::`
/// resolved, then the longest prefix that is a module of the crate.
fn resolve(path: &str, from: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    match parts.first().copied() {
        Some("crate") => {
            base.clear();
            parts.remove(0);
        }
        Some("self") => {
            parts.remove(0);
        }
        Some("super") => {
            while parts.first() == Some(&"super") {
                parts.remove(0);
                base.pop();
            }
        }
        _ => return None,
    }
    base.extend(parts);
    (1..=base.len())
        .rev()
        .map(|n| base[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// The edges between modules of one crate: module → the modules it names.
fn edges(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let files: BTreeMap<String, String> = rust_files(krate)
        .into_iter()
        .filter_map(|f| module_of(krate, &f).map(|m| (m, f)))
        .collect();
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &files {
        for path in paths(&code(file)) {
            if let Some(target) = resolve(&path, module, &modules)
                && &target != module
            {
                out.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    out
}

/// `module` as seen from `folder`: the child of `folder` it lies in, `None` outside the folder
/// or for the folder itself.
fn child_of(folder: &str, module: &str) -> Option<String> {
    let rest = if folder.is_empty() {
        module
    } else {
        module.strip_prefix(folder)?.strip_prefix("::")?
    };
    let first = rest.split("::").next().filter(|f| !f.is_empty())?;
    Some(if folder.is_empty() {
        first.to_owned()
    } else {
        format!("{folder}::{first}")
    })
}

/// The circles of a graph: each edge a → b from which a is reached again.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                stack.extend(graph.get(&m).into_iter().flatten().cloned());
            }
        }
        false
    };
    graph
        .iter()
        .flat_map(|(a, bs)| bs.iter().map(move |b| (a.clone(), b.clone())))
        .filter(|(a, b)| reaches(b, a))
        .collect()
}

/// Every circle of a crate: between its top-level modules, and between the children of each
/// folder.
fn crate_circles(krate: &str) -> Vec<String> {
    let edges = edges(krate);
    let mut folders: BTreeSet<String> = BTreeSet::new();
    folders.insert(String::new());
    for file in rust_files(krate) {
        if let Some(m) = module_of(krate, &file) {
            let parts: Vec<&str> = m.split("::").collect();
            for n in 1..parts.len() {
                folders.insert(parts[..n].join("::"));
            }
        }
    }
    let mut out = Vec::new();
    for folder in &folders {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, tos) in &edges {
            let Some(a) = child_of(folder, from) else {
                continue;
            };
            for to in tos {
                if let Some(b) = child_of(folder, to)
                    && a != b
                {
                    graph.entry(a.clone()).or_default().insert(b);
                }
            }
        }
        for (a, b) in circles(&graph) {
            let place = if folder.is_empty() {
                format!("{krate}/")
            } else {
                format!("{krate}/{}/", folder.replace("::", "/"))
            };
            out.push(format!(
                "in {place}: {a} imports {b}, which leads back to {a}"
            ));
        }
    }
    out
}

#[test]
fn no_modules_and_no_files_of_a_folder_import_each_other() {
    let found: Vec<String> = CRATES.iter().flat_map(|k| crate_circles(k)).collect();
    assert!(
        found.is_empty(),
        "modules in a circle:\n{}\nhint: move what both need into a module below them both",
        found.join("\n")
    );
}

#[test]
fn no_command_imports_another() {
    let commands: BTreeSet<String> = rust_files("src/cli")
        .iter()
        .filter_map(|f| module_of("src", f))
        .filter(|m| m != "cli")
        .collect();
    let edges = edges("src");
    let mut wrong = Vec::new();
    for command in &commands {
        for target in edges.get(command).into_iter().flatten() {
            if commands.contains(target) {
                wrong.push(format!("{command} imports {target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nhint: what two commands share goes to cli/mod.rs, or below (core's load, the \
         library)",
        wrong.join("\n")
    );
}

/// Every relative link target of a Markdown text (not `http…`, not a pure `#anchor`), without
/// its anchor.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("](") {
        let rest = &text[i + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = rest[..end].split('#').next().unwrap_or_default().trim();
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        out.push(target.to_owned());
    }
    out
}

/// The README's length, at most.
const README_LINES: usize = 220;

#[test]
fn the_readme_is_short_and_every_doc_and_link_is_reachable() {
    let readme = read("README.md");
    let mut wrong = Vec::new();
    let lines = readme.lines().count();
    if lines > README_LINES {
        wrong.push(format!(
            "README.md has {lines} lines, more than {README_LINES}: move a topic to docs/"
        ));
    }
    let linked: BTreeSet<String> = links(&readme).into_iter().collect();
    for page in files("docs", "md") {
        if !linked.contains(&page) {
            wrong.push(format!("README.md links no {page}"));
        }
    }
    let mut texts = vec![("README.md".to_owned(), readme)];
    texts.push(("ARCHITECTURE.md".to_owned(), architecture()));
    for page in files("docs", "md") {
        let text = read(&page);
        texts.push((page, text));
    }
    for (name, text) in &texts {
        let dir = Path::new(name).parent().unwrap_or(Path::new(""));
        for target in links(text) {
            if !root().join(dir).join(&target).exists() {
                wrong.push(format!("{name} links {target}, which does not exist"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checks_see_what_they_look_for() {
    // The scanner itself: imports, paths, wildcards, and not comments or longer names.
    assert!(uses_crate("use hyper::HeaderMap;", "hyper"));
    assert!(uses_crate("let x = rusqlite::params![];", "rusqlite"));
    assert!(uses_crate("use aws_sdk_sqs::Client;", "aws_sdk_*"));
    assert!(!uses_crate("use hyper_util::rt;", "hyper"));
    assert!(!uses_crate("let my_hyper::x;", "hyper"));
    assert!(!uses_crate("crate::hyper::x", "hyper"));
    assert!(!uses_crate("", "git2"));
    assert!(lies_in(
        "src/sources/poll/git/tests.rs",
        "src/sources/poll/git.rs"
    ));
    assert!(lies_in("src/aws/setup.rs", "src/aws/"));
    assert!(!lies_in("src/awsx.rs", "src/aws/"));
    assert_eq!(
        module_of("src", "src/store/sqlite/mod.rs").as_deref(),
        Some("store::sqlite")
    );
    assert_eq!(module_of("src", "src/store/sqlite/tests.rs"), None);
    assert_eq!(
        module_of("core/src", "core/src/lib.rs").as_deref(),
        Some("")
    );
    assert_eq!(
        ticked("`hyper`, `hyper_util` (the server)"),
        ["hyper", "hyper_util"]
    );
    // Paths: groups, nesting, `super::` and `self::`.
    assert_eq!(
        paths("use super::{sql, tips::{self, Tips}};\nlet x = crate::store::now_ms();"),
        [
            "super::sql",
            "super::tips::self",
            "super::tips::Tips",
            "crate::store::now_ms"
        ]
    );
    let modules: BTreeSet<String> = [
        "store",
        "store::sqlite",
        "store::sqlite::sql",
        "store::sqlite::tips",
        "glob",
        "glob::program",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(
        resolve("super::tips::Tips", "store::sqlite::sql", &modules).as_deref(),
        Some("store::sqlite::tips")
    );
    assert_eq!(
        resolve("super::super::Store", "store::sqlite::sql", &modules).as_deref(),
        Some("store")
    );
    assert_eq!(
        resolve("self::program::Tok", "glob", &modules).as_deref(),
        Some("glob::program")
    );
    assert_eq!(resolve("std::fmt", "glob", &modules), None);
    // Circles: two files of one folder, and two top-level modules through their children.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(circles(&graph).len(), 2);
    assert_eq!(
        child_of("store", "store::sqlite::sql").as_deref(),
        Some("store::sqlite")
    );
    assert_eq!(child_of("", "dispatch::http").as_deref(), Some("dispatch"));
    assert_eq!(child_of("store", "store"), None);
    assert!(mappable("src/store/") && mappable("src/lib.rs") && mappable("tests/it/"));
    assert!(!mappable("src/store/sqlite/") && !mappable("src/dispatch/http.rs"));
    assert!(!mappable("tests/it/deploy/") && !mappable("benches/intake.rs"));
    assert_eq!(
        links("see [a](docs/a.md#x), [b](https://x/y) and [c](#top)"),
        ["docs/a.md"]
    );
}
