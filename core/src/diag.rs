//! Errors a person reads: what is wrong, then a `hint:` line with the fix. A finding in a file is
//! a [`Diagnostic`] (`file:line:col: message`); any other error that knows its fix is a
//! [`Hinted`], or an error type that gives one through [`Hint`]. All three print the hint the
//! same way, on a line of its own after the message, wherever they are shown: a command's
//! error, a log line, a start's last error, the status page.

use std::fmt;
use std::time::Duration;

use crate::yaml::{Node, Pos, Value};

/// How bad a diagnostic is: errors fail `check`, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about one spot of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    pub severity: Severity,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Pos { line, col } = self.pos;
        let level = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        if line == 0 {
            write!(f, "{}: {level}{}", self.file, self.message)?;
        } else {
            write!(f, "{}:{line}:{col}: {level}{}", self.file, self.message)?;
        }
        write_hint(f, &self.hint)
    }
}

/// Writes `\nhint: HINT` (nothing for an empty hint): the one way a hint is printed.
pub fn write_hint(f: &mut impl fmt::Write, hint: &str) -> fmt::Result {
    if hint.is_empty() {
        Ok(())
    } else {
        write!(f, "\nhint: {hint}")
    }
}

/// An error with the fix for it: `message`, then `hint: …` on a line of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl Hinted {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Hinted {
        Hinted {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        write_hint(f, &self.hint)
    }
}

impl std::error::Error for Hinted {}

/// An error type whose values know their fix.
pub trait Hint: std::error::Error {
    /// How to fix it, as the `hint:` line says it.
    fn hint(&self) -> String;

    /// The error with its hint, to print or to pass on.
    fn hinted(&self) -> Hinted {
        Hinted::new(self.to_string(), self.hint())
    }
}

/// The diagnostics of one file, collected while reading it.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    file: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Collects diagnostics for `file` (as the user should see its name).
    pub fn new(file: impl Into<String>) -> Diagnostics {
        Diagnostics {
            file: file.into(),
            items: Vec::new(),
        }
    }

    /// The file's name as shown.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records an error.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.push(Severity::Error, pos, message.into(), hint.into());
    }

    /// Records a warning.
    pub fn warn(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.push(Severity::Warning, pos, message.into(), hint.into());
    }

    fn push(&mut self, severity: Severity, pos: Pos, message: String, hint: String) {
        self.items.push(Diagnostic {
            file: self.file.clone(),
            pos,
            severity,
            message,
            hint,
        });
    }

    /// Number of errors so far.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let first_upper = |s: &str| s.chars().next().map(char::is_uppercase);
    candidates
        .iter()
        .map(|c| {
            let score = strsim::jaro_winkler(&word.to_ascii_lowercase(), &c.to_ascii_lowercase());
            // Between `includes` and `Includes`, suggest the spelling style the user writes.
            let style = if first_upper(c) == first_upper(word) {
                0.01
            } else {
                0.0
            };
            (score + style, *c)
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Reads a mapping whose keys form a closed set, reporting unknown keys with a suggestion.
#[derive(Debug)]
pub struct MapReader<'n> {
    node: &'n Node,
    entries: &'n [(Node, Node)],
}

impl<'n> MapReader<'n> {
    /// Starts reading `node` as a mapping named `what`; `None` (with an error) when it is not one.
    pub fn new(node: &'n Node, what: &str, d: &mut Diagnostics) -> Option<MapReader<'n>> {
        match &node.value {
            Value::Map(entries) => Some(MapReader { node, entries }),
            _ => {
                d.error(
                    node.pos,
                    format!("{what} must be a mapping, found {}", node.kind_name()),
                    format!("write {what} as `key: value` lines"),
                );
                None
            }
        }
    }

    /// The mapping node itself.
    pub fn node(&self) -> &'n Node {
        self.node
    }

    /// The entry for `key`, as (key node, value node).
    pub fn entry(&self, key: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// The entry for the first of several spellings of one key that is present.
    pub fn entry_any(&self, keys: &[&str]) -> Option<(&'n Node, &'n Node)> {
        keys.iter().find_map(|k| self.entry(k))
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Reports every key not in `known`, suggesting the closest known key; `what` names the
    /// mapping in messages. Returns how many keys were unknown.
    pub fn deny_unknown(&self, known: &[&str], what: &str, d: &mut Diagnostics) -> usize {
        let before = d.error_count();
        for (key, _) in self.entries {
            let Some(name) = key.as_str() else {
                d.error(
                    key.pos,
                    format!("{what} has a key that is not text"),
                    "keys are names",
                );
                continue;
            };
            if known.contains(&name) {
                continue;
            }
            let hint = match did_you_mean(name, known) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("{what} takes {}", list_keys(known)),
            };
            d.error(key.pos, format!("unknown key `{name}` in {what}"), hint);
        }
        d.error_count() - before
    }
}

fn list_keys(known: &[&str]) -> String {
    let quoted: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    quoted.join(", ")
}

/// Reads a required scalar string; reports and returns `None` when it is not one.
pub fn scalar<'n>(node: &'n Node, what: &str, d: &mut Diagnostics) -> Option<&'n str> {
    match node.as_str() {
        Some(s) if !node.is_null() => Some(s),
        _ => {
            d.error(
                node.pos,
                format!("{what} must be a single value, found {}", node.kind_name()),
                format!("write {what} as text, e.g. `{what}: value`"),
            );
            None
        }
    }
}

/// Reads a list of scalars; a single scalar is taken as a one-item list.
pub fn scalar_list<'n>(node: &'n Node, what: &str, d: &mut Diagnostics) -> Vec<&'n Node> {
    match &node.value {
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if item.as_str().is_some() && !item.is_null() {
                    out.push(item);
                } else {
                    d.error(
                        item.pos,
                        format!(
                            "each item of {what} must be text, found {}",
                            item.kind_name()
                        ),
                        "quote patterns that start with `*`, `!`, `[` or `{`",
                    );
                }
            }
            out
        }
        Value::Scalar(..) if !node.is_null() => vec![node],
        _ => {
            d.error(
                node.pos,
                format!("{what} must be a list, found {}", node.kind_name()),
                format!("write {what} as a list, e.g. `[\"main\"]`"),
            );
            Vec::new()
        }
    }
}

/// Parses a duration as jiff's friendly format writes it (`500ms`, `30s`, `5m`, `1h`, `7d`,
/// `2w`, `1h30m`, `90 minutes`) or ISO 8601 (`PT1H`), a day being 24 hours; `None` for
/// anything else, a negative duration, or months and years (whose length varies).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let span: jiff::Span = text.parse().ok()?;
    let exact = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    Duration::try_from(exact).ok()
}

/// An error with its causes, `outer: cause: root cause`: the drivers' own texts are often
/// short ("error connecting to server") and the useful part is further down the chain.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let secs = Duration::from_secs;
        let cases = [
            ("500ms", Some(Duration::from_millis(500))),
            ("30s", Some(secs(30))),
            ("90s", Some(secs(90))),
            ("5m", Some(secs(300))),
            ("15m", Some(secs(900))),
            ("1h", Some(secs(3600))),
            ("2h", Some(secs(7200))),
            ("3d", Some(secs(3 * 86_400))),
            ("7d", Some(secs(7 * 86_400))),
            ("336h", Some(secs(336 * 3600))),
            ("0s", Some(secs(0))),
            ("2w", Some(secs(14 * 86_400))),
            ("1h30m", Some(secs(5400))),
            ("PT1H", Some(secs(3600))),
            ("14 days", Some(secs(14 * 86_400))),
            ("90 minutes", Some(secs(5400))),
            ("30", None),
            ("s", None),
            ("", None),
            ("soon", None),
            ("3 fortnights", None),
            ("-5m", None),
            ("5m ago", None),
            ("1 month", None),
            ("99999999999999999d", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_hinted_error_prints_its_hint_on_a_line_of_its_own() {
        let e = Hinted::new("--limit 0 is out of range", "ask for 1 to 10000 changes");
        assert_eq!(
            e.to_string(),
            "--limit 0 is out of range\nhint: ask for 1 to 10000 changes"
        );
        assert_eq!(Hinted::new("no hint", "").to_string(), "no hint");
    }

    #[test]
    fn typos_get_suggestions() {
        let known = ["branches", "tags", "paths", "branches-ignore"];
        assert_eq!(did_you_mean("branchs", &known), Some("branches"));
        assert_eq!(did_you_mean("Branches", &known), Some("branches"));
        assert_eq!(did_you_mean("tag", &known), Some("tags"));
        assert_eq!(did_you_mean("zzz", &known), None);
    }

    #[test]
    fn renders_file_line_col_and_hint() {
        let mut d = Diagnostics::new("triggers/api.yaml");
        d.error(
            Pos { line: 12, col: 9 },
            "tags and branches cannot share one push filter",
            "x",
        );
        d.warn(Pos { line: 1, col: 1 }, "never matches", "");
        let text: Vec<String> = d.items.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "triggers/api.yaml:12:9: tags and branches cannot share one push filter\nhint: x",
                "triggers/api.yaml:1:1: warning: never matches",
            ]
        );
    }
}
