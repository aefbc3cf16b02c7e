//! The GitHub Actions dialect's parser: `*`, `**`, `?` and `+` folded into the preceding atom,
//! classes of letters, digits and ranges, `\`.

use super::program::{Atom, Class, Tok};
use super::{GlobError, GlobErrorKind};

/// Lexes a GitHub pattern, folding `?` and `+` into the preceding atom.
pub(super) fn lex_github(chars: &[char]) -> Result<Vec<Tok>, GlobError> {
    let mut toks: Vec<Tok> = Vec::new();
    let mut after_quantifier = false;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let tok = match c {
            '?' | '+' => {
                if after_quantifier {
                    return Err(GlobError::at(GlobErrorKind::DoubleQuantifier(c), i));
                }
                let Some(last) = toks.pop() else {
                    return Err(GlobError::at(GlobErrorKind::NothingToRepeat(c), i));
                };
                let wrap = |atom| {
                    if c == '?' {
                        Tok::Opt(atom)
                    } else {
                        Tok::Plus(atom)
                    }
                };
                toks.push(match last {
                    Tok::Lit(l) => wrap(Atom::Lit(l)),
                    Tok::Class(class) => wrap(Atom::Class(class)),
                    // A quantifier after `*` or `**` changes nothing.
                    other => other,
                });
                after_quantifier = true;
                i += 1;
                continue;
            }
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
            '[' => {
                let (class, end) = parse_github_class(chars, i)?;
                i = end;
                Tok::Class(class)
            }
            _ => {
                i += 1;
                Tok::Lit(c)
            }
        };
        toks.push(tok);
        after_quantifier = false;
    }
    Ok(toks)
}

/// The kind of character a GitHub range endpoint is: lowercase, uppercase or digit.
fn github_range_kind(c: char) -> u8 {
    if c.is_ascii_lowercase() {
        0
    } else if c.is_ascii_uppercase() {
        1
    } else {
        2
    }
}

/// Parses a GitHub bracket expression whose `[` is at `open`; returns the class and the index
/// just past its `]`.
fn parse_github_class(chars: &[char], open: usize) -> Result<(Class, usize), GlobError> {
    let body = open + 1;
    let Some(len) = chars
        .get(body..)
        .and_then(|rest| rest.iter().position(|&c| c == ']'))
    else {
        return Err(GlobError::at(GlobErrorKind::UnclosedClass, open));
    };
    if len == 0 {
        return Err(GlobError::at(GlobErrorKind::EmptyClass, open));
    }
    let close = body + len;
    let member = |k: usize| chars.get(k).copied().filter(|_| k < close);
    let mut ranges = Vec::new();
    let mut k = body;
    while let Some(c) = member(k) {
        if !c.is_ascii_alphanumeric() {
            return Err(GlobError::at(GlobErrorKind::GitHubClassChar(c), k));
        }
        if member(k + 1) == Some('-') {
            let Some(to) = member(k + 2) else {
                return Err(GlobError::at(GlobErrorKind::GitHubClassChar('-'), k + 1));
            };
            if !to.is_ascii_alphanumeric() {
                return Err(GlobError::at(GlobErrorKind::GitHubClassChar(to), k + 2));
            }
            if github_range_kind(c) != github_range_kind(to) {
                return Err(GlobError::at(GlobErrorKind::GitHubClassChar('-'), k + 1));
            }
            if c > to {
                return Err(GlobError::at(
                    GlobErrorKind::ReversedRange { from: c, to },
                    k,
                ));
            }
            ranges.push((c, to));
            k += 3;
        } else {
            ranges.push((c, c));
            k += 1;
        }
    }
    Ok((Class::new(false, ranges), close + 1))
}
