//! Tidy: ARCHITECTURE.md and the code agree (as rust-analyzer's tidy test keeps its own house).
//!
//! - every outside engine (hyper, the AWS SDK, git2, rusqlite, …) is imported only by the
//!   modules the document's table "Who knows which engine" names;
//! - every source file has a row in the code map, and every row names a file or folder that
//!   exists;
//! - no two modules of `src/` import each other, directly or around a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// Every `.rs` file below `dir`, relative to the repository root, with `/` separators.
fn rust_files(dir: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join(dir), &mut files);
    let mut out: Vec<String> = files
        .iter()
        .filter_map(|p| p.strip_prefix(root()).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    out.sort();
    out
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
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {heading:?}"));
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

/// Source text without `//` comments (doc comments included): what the compiler reads.
fn code(path: &str) -> String {
    let text = std::fs::read_to_string(root().join(path)).expect("a source file");
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

#[test]
fn every_source_file_has_a_row_in_the_code_map() {
    let text = architecture();
    let rows = table_after(&text, "## Code map");
    let named: BTreeSet<String> = rows.iter().flat_map(|r| ticked(&r[0])).collect();
    for place in &named {
        assert!(
            root().join(place).exists(),
            "the code map names {place}, which does not exist\nhint: remove or rename its row"
        );
    }
    let mut missing = Vec::new();
    for dir in ["src", "core", "benches", "tests", "lab"] {
        for file in rust_files(dir) {
            let name = file.rsplit('/').next().unwrap_or_default();
            // A module's tests are the module's (`tests.rs`, or a tests/ folder of a crate's
            // own integration tests is covered by its folder's row).
            if name == "tests.rs" {
                continue;
            }
            let folder = format!("{}/", &file[..file.rfind('/').unwrap_or(0)]);
            let module_folder = file.strip_suffix("/mod.rs").map(|d| format!("{d}/"));
            let covered = named.contains(&file)
                || named.contains(&folder)
                || module_folder.is_some_and(|d| named.contains(&d));
            if !covered {
                missing.push(file);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "source files without a row in ARCHITECTURE.md's code map:\n{}\nhint: add a row (the \
         file, or its folder) saying what it is for",
        missing.join("\n")
    );
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `a::b`; `src/lib.rs` → the root, `""`.
fn module_of(file: &str) -> Option<String> {
    let rel = file.strip_prefix("src/")?.strip_suffix(".rs")?;
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    if rel == "lib" || rel == "main" || rel.ends_with("/tests") || rel == "tests" {
        return None;
    }
    Some(rel.replace('/', "::"))
}

#[test]
fn no_two_modules_import_each_other() {
    let modules: BTreeMap<String, String> = rust_files("src")
        .into_iter()
        .filter_map(|f| module_of(&f).map(|m| (m, f)))
        .collect();
    // module → the modules it names as `crate::…` (the longest module prefix of each path),
    // leaving out its own ancestors and descendants.
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, file) in &modules {
        let code = code(file);
        let code = code
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or(&code);
        for (i, _) in code.match_indices("crate::") {
            let path: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            let target = (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|m| modules.contains_key(m));
            if let Some(target) = target {
                let related = target == *module
                    || module.starts_with(&format!("{target}::"))
                    || target.starts_with(&format!("{module}::"));
                if !related {
                    let (key, _) = modules.get_key_value(&target).expect("a module");
                    edges.entry(module).or_default().insert(key);
                }
            }
        }
    }
    // A circle is an edge a → b with a path b → … → a.
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m) {
                stack.extend(edges.get(m).into_iter().flatten().copied());
            }
        }
        false
    };
    let circles: Vec<String> = edges
        .iter()
        .flat_map(|(a, bs)| bs.iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| reaches(b, a))
        .map(|(a, b)| format!("{a} imports {b}, which leads back to {a}"))
        .collect();
    assert!(
        circles.is_empty(),
        "modules in a circle:\n{}\nhint: move what both need into a module below them both",
        circles.join("\n")
    );
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
        module_of("src/store/sqlite/mod.rs").as_deref(),
        Some("store::sqlite")
    );
    assert_eq!(module_of("src/store/sqlite/tests.rs"), None);
    assert_eq!(
        ticked("`hyper`, `hyper_util` (the server)"),
        ["hyper", "hyper_util"]
    );
}
