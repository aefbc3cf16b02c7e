//! Branch, tag and path glob patterns of the AWS CodePipeline and GitHub Actions filter dialects,
//! compiled into a matcher that never backtracks.
//!
//! A pattern is parsed into one or more token programs (CodePipeline `{a,b}` groups expand into
//! several programs), and a name is matched by simulating all programs at once as a Thompson NFA
//! over a bitset of states. Matching therefore takes at most O(states * len(name)) steps and cannot
//! fail; only building a [`Glob`] can fail, with a [`GlobError`] that points at the offending
//! character. Each glob also carries a [`Strategy`] that lets a pattern set find candidates (or
//! decide a match outright) without running the NFA.
//!
//! The parts: `codepipeline.rs` and `github.rs` parse the two dialects into the token programs of
//! `program.rs`; `nfa.rs` compiles and runs them; `strategy.rs` derives the [`Strategy`];
//! `error.rs` holds [`GlobError`].

mod codepipeline;
mod error;
mod github;
mod nfa;
mod parse;
mod program;
mod strategy;

pub use error::{GlobError, GlobErrorKind};
pub use strategy::Strategy;

use nfa::Nfa;
use parse::parse_programs;
use strategy::strategy_of;

/// The filter dialect a pattern is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// AWS CodePipeline V2 trigger globs: `*`, `**`, `?`, `[...]`, `[!...]`, `{a,b}`, `\`.
    CodePipeline,
    /// GitHub Actions `branches`/`tags`/`paths` filters: `*`, `**`, `?` and `+` as quantifiers,
    /// `[...]` with letters, digits and ranges only, `\`.
    GitHub,
}

/// A compiled glob pattern that matches whole names (branch short names or repository paths).
#[derive(Clone, Debug)]
pub struct Glob {
    pattern: String,
    dialect: Dialect,
    strategy: Strategy,
    /// Number of leading literal instructions every program shares with the General prefix.
    skip: usize,
    /// The programs compiled into one NFA.
    nfa: Nfa,
}

impl Glob {
    /// Compiles `pattern` in `dialect`.
    pub fn new(pattern: &str, dialect: Dialect) -> Result<Glob, GlobError> {
        let programs = parse_programs(pattern, dialect)?;
        let strategy = strategy_of(&programs);
        let skip = match &strategy {
            Strategy::General { prefix } => prefix.chars().count(),
            _ => 0,
        };
        Ok(Glob {
            pattern: pattern.to_owned(),
            dialect,
            strategy,
            skip,
            nfa: Nfa::compile(programs),
        })
    }

    /// True when the whole `name` matches the pattern.
    pub fn is_match(&self, name: &str) -> bool {
        match &self.strategy {
            Strategy::General { prefix } => match name.strip_prefix(prefix.as_str()) {
                Some(rest) => self.nfa.run(rest, self.skip),
                None => false,
            },
            exact => exact.quick_match(name).unwrap_or(false),
        }
    }

    /// The pattern text as given to [`Glob::new`].
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The dialect the pattern was compiled in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// How a pattern set can find candidates for this glob without running it.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// True when the glob matches every name, including empty ones and ones containing '/'
    /// (e.g. `**`, `**/**`, `**/*`).
    pub fn matches_everything(&self) -> bool {
        self.strategy == Strategy::Everything
    }
}

/// Escapes a literal name so that `Glob::new(&escape(name, d), d)` matches exactly `name` and
/// nothing else.
pub fn escape(name: &str, dialect: Dialect) -> String {
    let special: &[char] = match dialect {
        Dialect::CodePipeline => &['*', '?', '[', ']', '{', '}', '\\', ','],
        Dialect::GitHub => &['*', '?', '+', '[', ']', '\\', '!'],
    };
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
