//! A second matcher, for measurement: token programs translated into one regex-automata meta
//! regex (lazy DFA, falling back to its PikeVM), as globset does, to compare with `nfa.rs`.

use std::fmt::Write;

use regex_automata::meta::Regex;

use super::program::{Atom, Class, Tok};

/// Translates `programs`, each without its first `skip` tokens (literals the caller strips), into
/// one regex that matches a whole name when any program does; `None` over regex-automata's size
/// limits.
pub(super) fn compile(programs: &[Vec<Tok>], skip: usize) -> Option<Regex> {
    Regex::new(&translate(programs, skip)).ok()
}

/// The regex text of `programs`: `(?s)\A(?:p1|p2|...)\z`, in Unicode mode (one character is one
/// scalar value, as in the NFA).
pub(super) fn translate(programs: &[Vec<Tok>], skip: usize) -> String {
    let mut out = String::from(r"(?s)\A(?:");
    for (i, program) in programs.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for tok in program.get(skip..).unwrap_or_default() {
            match tok {
                Tok::Lit(c) => literal(&mut out, *c),
                Tok::AnyOne => out.push_str("[^/]"),
                Tok::Class(class) => self::class(&mut out, class),
                Tok::Star => out.push_str("[^/]*"),
                Tok::StarStar => out.push_str(".*"),
                Tok::DirStar => out.push_str("(?:.*/)?"),
                Tok::Opt(atom) => {
                    self::atom(&mut out, atom);
                    out.push('?');
                }
                Tok::Plus(atom) => {
                    self::atom(&mut out, atom);
                    out.push('+');
                }
            }
        }
    }
    out.push_str(r")\z");
    out
}

fn atom(out: &mut String, atom: &Atom) {
    match atom {
        Atom::Lit(c) => literal(out, *c),
        Atom::Class(class) => self::class(out, class),
    }
}

/// One character: ASCII letters and digits as they are, everything else as `\x{...}`.
fn literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        hex(out, c);
    }
}

fn hex(out: &mut String, c: char) {
    let _ = write!(out, r"\x{{{:X}}}", u32::from(c));
}

/// A bracket expression, which never matches '/': `[^/...]` or `[...--/]`.
fn class(out: &mut String, class: &Class) {
    out.push_str(if class.negated { "[^/" } else { "[" });
    for &(lo, hi) in &class.ranges {
        hex(out, lo);
        if lo != hi {
            out.push('-');
            hex(out, hi);
        }
    }
    if !class.negated {
        out.push_str("--/");
    }
    out.push(']');
}
