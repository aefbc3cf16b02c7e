//! How a pattern set finds candidates for a glob without running its matcher: the [`Strategy`]
//! of a pattern, derived from its token programs.

use super::program::Tok;

/// How a pattern set can find candidates for a glob without running it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The glob matches exactly this one name (no meta characters after unescaping).
    Literal(String),
    /// The glob matches exactly the names that start with this literal (e.g. `services/a/**` ->
    /// "services/a/").
    Prefix(String),
    /// The glob matches exactly the names that end with this literal suffix, which contains no
    /// '/' (e.g. `**/*.md` and GitHub `**.md` -> ".md"; `**/*.tar.gz` -> ".tar.gz").
    Suffix(String),
    /// The glob matches exactly the names whose last segment equals this literal (e.g.
    /// `**/Makefile` -> "Makefile"), i.e. name == it or name ends with "/" + it.
    BaseName(String),
    /// Matches everything, including the empty name and names containing '/'.
    Everything,
    /// Anything else: must run [`Glob::is_match`](super::Glob::is_match). `prefix` is a literal
    /// every match starts with: the pattern's leading literal text (for several `{...}`
    /// alternatives, the common part of theirs); it may be empty.
    General {
        /// A literal every matching name starts with.
        prefix: String,
    },
}

impl Strategy {
    /// Decides a match from the strategy alone when possible.
    ///
    /// Returns `Some(answer)` for the exact strategies and for a General strategy whose prefix
    /// the name lacks; returns `None` when the full matcher has to run.
    pub fn quick_match(&self, name: &str) -> Option<bool> {
        match self {
            Strategy::Literal(lit) => Some(name == lit),
            Strategy::Prefix(prefix) => Some(name.starts_with(prefix.as_str())),
            Strategy::Suffix(suffix) => Some(name.ends_with(suffix.as_str())),
            Strategy::BaseName(base) => Some(
                name.strip_suffix(base.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.ends_with('/')),
            ),
            Strategy::Everything => Some(true),
            Strategy::General { prefix } => {
                if name.starts_with(prefix.as_str()) {
                    None
                } else {
                    Some(false)
                }
            }
        }
    }
}

/// True when the (all-nullable) token sequence matches every string.
fn is_universal(toks: &[Tok]) -> bool {
    let mut after_dirs = false;
    let mut universal = false;
    for tok in toks {
        match tok {
            Tok::StarStar => universal = true,
            Tok::DirStar => after_dirs = true,
            // `(.*/)?` then `[^/]*` covers every string: split it after its last '/'.
            Tok::Star => universal |= after_dirs,
            Tok::Opt(_) => {}
            _ => return false,
        }
    }
    universal
}

/// The characters of a run of `Lit` tokens.
fn literal_text(toks: &[Tok]) -> String {
    toks.iter()
        .filter_map(|tok| match tok {
            Tok::Lit(c) => Some(*c),
            _ => None,
        })
        .collect()
}

fn leading_literals(program: &[Tok]) -> usize {
    program
        .iter()
        .take_while(|tok| matches!(tok, Tok::Lit(_)))
        .count()
}

/// The exact strategy of one program, or General with its literal prefix.
fn program_strategy(program: &[Tok]) -> Strategy {
    let (lead, rest) = program.split_at(leading_literals(program));
    let prefix = literal_text(lead);
    if rest.is_empty() {
        return Strategy::Literal(prefix);
    }
    if is_universal(rest) {
        return if prefix.is_empty() {
            Strategy::Everything
        } else {
            Strategy::Prefix(prefix)
        };
    }
    let trail = program
        .iter()
        .rev()
        .take_while(|tok| matches!(tok, Tok::Lit(_)))
        .count();
    let (head, tail) = program.split_at(program.len() - trail);
    let suffix = literal_text(tail);
    if !suffix.is_empty() && !suffix.contains('/') {
        if is_universal(head) {
            return Strategy::Suffix(suffix);
        }
        if head == [Tok::DirStar] {
            return Strategy::BaseName(suffix);
        }
    }
    Strategy::General { prefix }
}

/// The strategy of a whole (possibly expanded) pattern.
pub(super) fn strategy_of(programs: &[Vec<Tok>]) -> Strategy {
    let mut strategies: Vec<Strategy> = programs.iter().map(|p| program_strategy(p)).collect();
    if strategies.contains(&Strategy::Everything) {
        return Strategy::Everything;
    }
    if strategies.len() == 1
        && let Some(only) = strategies.pop()
    {
        return only;
    }
    let mut common: Option<Vec<char>> = None;
    for program in programs {
        let lead = literal_text(&program[..leading_literals(program)]);
        common = Some(match common {
            None => lead.chars().collect(),
            Some(mut chars) => {
                let same = chars
                    .iter()
                    .zip(lead.chars())
                    .take_while(|(a, b)| **a == *b)
                    .count();
                chars.truncate(same);
                chars
            }
        });
    }
    Strategy::General {
        prefix: common.unwrap_or_default().into_iter().collect(),
    }
}
