//! The CodePipeline dialect's parser: `*`, `**`, `?`, `[...]`, `[!...]`, `\` and the expansion of
//! `{a,b}` groups into several token programs.

use super::program::{Class, Tok};
use super::{GlobError, GlobErrorKind};

/// Upper bound on the number of programs a CodePipeline `{...}` expansion may produce.
pub(super) const MAX_ALTERNATIVES: usize = 1024;
/// Upper bound on the total number of tokens across all programs of an expanded pattern.
const MAX_EXPANDED_TOKENS: usize = 1 << 20;

/// A top-level element of a CodePipeline pattern before brace expansion.
pub(super) enum Item {
    Tok(Tok),
    Group {
        /// Character offset of the `{`.
        position: usize,
        alternatives: Vec<Vec<Tok>>,
    },
}

/// Lexes a CodePipeline pattern, collecting `{...}` groups.
pub(super) fn lex_codepipeline(chars: &[char]) -> Result<Vec<Item>, GlobError> {
    let mut items = Vec::new();
    // The open group: position of its `{`, finished alternatives, the current alternative.
    let mut group: Option<(usize, Vec<Vec<Tok>>, Vec<Tok>)> = None;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let tok = match c {
            '\\' => {
                let Some(&escaped) = chars.get(i + 1) else {
                    return Err(GlobError::at(GlobErrorKind::DanglingEscape, i));
                };
                i += 2;
                Tok::Lit(escaped)
            }
            '*' => {
                i += 1;
                Tok::Star
            }
            '?' => {
                i += 1;
                Tok::AnyOne
            }
            '[' => {
                let (class, end) = parse_codepipeline_class(chars, i)?;
                i = end;
                Tok::Class(class)
            }
            '{' => {
                if group.is_some() {
                    return Err(GlobError::at(GlobErrorKind::NestedAlternates, i));
                }
                group = Some((i, Vec::new(), Vec::new()));
                i += 1;
                continue;
            }
            '}' => {
                let Some((position, mut alternatives, current)) = group.take() else {
                    return Err(GlobError::at(GlobErrorKind::UnopenedAlternates, i));
                };
                alternatives.push(current);
                items.push(Item::Group {
                    position,
                    alternatives,
                });
                i += 1;
                continue;
            }
            ',' if group.is_some() => {
                if let Some((_, alternatives, current)) = &mut group {
                    alternatives.push(std::mem::take(current));
                }
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                Tok::Lit(c)
            }
        };
        match &mut group {
            Some((_, _, current)) => current.push(tok),
            None => items.push(Item::Tok(tok)),
        }
    }
    if let Some((position, _, _)) = group {
        return Err(GlobError::at(GlobErrorKind::UnclosedAlternates, position));
    }
    Ok(items)
}

/// Parses a CodePipeline bracket expression whose `[` is at `open`; returns the class and the
/// index just past its `]`.
fn parse_codepipeline_class(chars: &[char], open: usize) -> Result<(Class, usize), GlobError> {
    let mut k = open + 1;
    let negated = chars.get(k) == Some(&'!');
    if negated {
        k += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(k) else {
            return Err(GlobError::at(GlobErrorKind::UnclosedClass, open));
        };
        if c == ']' && !first {
            return Ok((Class::new(negated, ranges), k + 1));
        }
        first = false;
        match (chars.get(k + 1), chars.get(k + 2)) {
            (Some('-'), Some(&to)) if to != ']' => {
                if c > to {
                    return Err(GlobError::at(
                        GlobErrorKind::ReversedRange { from: c, to },
                        k,
                    ));
                }
                ranges.push((c, to));
                k += 3;
            }
            _ => {
                ranges.push((c, c));
                k += 1;
            }
        }
    }
}

/// Expands CodePipeline `{...}` groups into the cartesian product of programs.
pub(super) fn expand(items: Vec<Item>) -> Result<Vec<Vec<Tok>>, GlobError> {
    let mut programs: Vec<Vec<Tok>> = vec![Vec::new()];
    let mut total = 0usize;
    let mut last_group = 0;
    for item in items {
        match item {
            Item::Tok(tok) => {
                total = total.saturating_add(programs.len());
                if programs.len() > 1 && total > MAX_EXPANDED_TOKENS {
                    return Err(GlobError::at(
                        GlobErrorKind::TooManyAlternatives,
                        last_group,
                    ));
                }
                for program in &mut programs {
                    program.push(tok.clone());
                }
            }
            Item::Group {
                position,
                alternatives,
            } => {
                last_group = position;
                let count = programs.len().saturating_mul(alternatives.len());
                let alternative_tokens: usize = alternatives.iter().map(Vec::len).sum();
                total = total
                    .saturating_mul(alternatives.len())
                    .saturating_add(programs.len().saturating_mul(alternative_tokens));
                if count > MAX_ALTERNATIVES || (count > 1 && total > MAX_EXPANDED_TOKENS) {
                    return Err(GlobError::at(GlobErrorKind::TooManyAlternatives, position));
                }
                let mut expanded = Vec::with_capacity(count);
                for program in &programs {
                    for alternative in &alternatives {
                        let mut joined = Vec::with_capacity(program.len() + alternative.len());
                        joined.extend_from_slice(program);
                        joined.extend_from_slice(alternative);
                        expanded.push(joined);
                    }
                }
                programs = expanded;
            }
        }
    }
    Ok(programs)
}
