//! A pattern parsed into deduplicated, classified token programs: the dialect's lexer, then
//! runs of `*` told apart.

use std::collections::HashSet;

use super::codepipeline::{expand, lex_codepipeline};
use super::github::lex_github;
use super::program::Tok;
use super::{Dialect, GlobError};

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
