//! The token program both dialect parsers produce and the matcher and the strategies read:
//! tokens, character classes, and the parse of a pattern into deduplicated programs.

use std::collections::HashSet;

use super::codepipeline::{expand, lex_codepipeline};
use super::github::lex_github;
use super::{Dialect, GlobError};

/// A set of characters from a bracket expression; never matches '/'.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Class {
    negated: bool,
    /// Membership of the ASCII characters, before negation.
    ascii: u128,
    /// Inclusive ranges (single characters are `(c, c)`), consulted for non-ASCII characters.
    pub(super) ranges: Vec<(char, char)>,
}

impl Class {
    pub(super) fn new(negated: bool, ranges: Vec<(char, char)>) -> Class {
        let mut ascii = 0u128;
        for &(lo, hi) in &ranges {
            for code in u32::from(lo)..=u32::from(hi).min(127) {
                ascii |= 1u128 << code;
            }
        }
        Class {
            negated,
            ascii,
            ranges,
        }
    }

    pub(super) fn matches(&self, c: char) -> bool {
        if c == '/' {
            return false;
        }
        let code = u32::from(c);
        let inside = if code < 128 {
            (self.ascii >> code) & 1 == 1
        } else {
            self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
        };
        inside != self.negated
    }
}

/// Something a GitHub `?` or `+` can repeat.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Atom {
    Lit(char),
    Class(Class),
}

/// One element of a token program.
///
/// The lexers only produce `Star` for each `*`; [`classify`] then turns runs of stars into
/// `Star`, `StarStar` or `DirStar`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Tok {
    /// Exactly this character.
    Lit(char),
    /// Any one character except '/' (CodePipeline `?`).
    AnyOne,
    /// One character from the class.
    Class(Class),
    /// Zero or more characters except '/'.
    Star,
    /// Zero or more characters of any kind.
    StarStar,
    /// Zero or more whole directories: `(.*/)?`.
    DirStar,
    /// Zero or one of the atom (GitHub `?`).
    Opt(Atom),
    /// One or more of the atom (GitHub `+`).
    Plus(Atom),
}

/// Parses `pattern` into deduplicated, classified token programs.
pub(super) fn parse_programs(pattern: &str, dialect: Dialect) -> Result<Vec<Vec<Tok>>, GlobError> {
    let chars: Vec<char> = pattern.chars().collect();
    let raw = match dialect {
        Dialect::CodePipeline => expand(lex_codepipeline(&chars)?)?,
        Dialect::GitHub => vec![lex_github(&chars)?],
    };
    let mut seen = HashSet::new();
    let mut programs = Vec::with_capacity(raw.len());
    for program in raw {
        let program = classify(&program);
        if !seen.contains(&program) {
            seen.insert(program.clone());
            programs.push(program);
        }
    }
    Ok(programs)
}

/// Turns runs of `*` into `Star` (one), `DirStar` (two or more at the start of a segment and
/// followed by '/', which is consumed) or `StarStar` (two or more elsewhere).
fn classify(toks: &[Tok]) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while let Some(tok) = toks.get(i) {
        if *tok != Tok::Star {
            out.push(tok.clone());
            i += 1;
            continue;
        }
        let mut end = i;
        while toks.get(end) == Some(&Tok::Star) {
            end += 1;
        }
        if end - i == 1 {
            out.push(Tok::Star);
        } else {
            let segment_start = i == 0 || toks.get(i - 1) == Some(&Tok::Lit('/'));
            if segment_start && toks.get(end) == Some(&Tok::Lit('/')) {
                end += 1;
                // `(.*/)?(.*/)?` is the same as `(.*/)?`.
                if out.last() != Some(&Tok::DirStar) {
                    out.push(Tok::DirStar);
                }
            } else {
                out.push(Tok::StarStar);
            }
        }
        i = end;
    }
    out
}
