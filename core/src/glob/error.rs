//! Why a glob pattern could not be compiled, and where: [`GlobError`], its kinds, the message and
//! the hint a person reads.

use std::fmt;

use super::codepipeline::MAX_ALTERNATIVES;
use crate::diag::Hint;

/// Why a pattern could not be compiled, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobError {
    /// What is wrong.
    pub kind: GlobErrorKind,
    /// Offset in CHARACTERS (not bytes) into the pattern where the problem is.
    pub position: usize,
}

/// The kinds of pattern errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobErrorKind {
    /// A `[` without a closing `]`.
    UnclosedClass,
    /// A GitHub `[]` with nothing inside.
    EmptyClass,
    /// A range whose first character sorts after its last, like `[z-a]`.
    ReversedRange {
        /// First character of the range as written.
        from: char,
        /// Last character of the range as written.
        to: char,
    },
    /// A CodePipeline `{` inside another `{...}` group.
    NestedAlternates,
    /// A CodePipeline `{` without a closing `}`.
    UnclosedAlternates,
    /// A CodePipeline `}` outside any `{...}` group.
    UnopenedAlternates,
    /// CodePipeline `{...}` groups that expand into too many alternatives.
    TooManyAlternatives,
    /// A `\` at the very end of the pattern.
    DanglingEscape,
    /// A GitHub `?` or `+` with no preceding character or class.
    NothingToRepeat(char),
    /// A GitHub `?` or `+` directly after another quantifier.
    DoubleQuantifier(char),
    /// A character other than an ASCII letter, digit or range inside GitHub brackets.
    GitHubClassChar(char),
}

/// Renders a character for a message, escaping control characters.
fn show(c: char) -> String {
    if c.is_control() {
        c.escape_default().to_string()
    } else {
        c.to_string()
    }
}

impl GlobError {
    pub(super) fn at(kind: GlobErrorKind, position: usize) -> GlobError {
        GlobError { kind, position }
    }

    /// A one-line description of the problem (lowercase, no trailing period).
    pub fn message(&self) -> String {
        match &self.kind {
            GlobErrorKind::UnclosedClass => r#"unclosed "[" in pattern"#.to_owned(),
            GlobErrorKind::EmptyClass => r#"empty "[]" character class"#.to_owned(),
            GlobErrorKind::ReversedRange { from, to } => format!(
                r#"reversed range "{}-{}" in character class"#,
                show(*from),
                show(*to)
            ),
            GlobErrorKind::NestedAlternates => r#"nested "{" inside a "{...}" group"#.to_owned(),
            GlobErrorKind::UnclosedAlternates => r#"unclosed "{" in pattern"#.to_owned(),
            GlobErrorKind::UnopenedAlternates => {
                r#"unmatched "}" outside any "{...}" group"#.to_owned()
            }
            GlobErrorKind::TooManyAlternatives => {
                format!(r#""{{...}}" groups expand to more than {MAX_ALTERNATIVES} alternatives"#)
            }
            GlobErrorKind::DanglingEscape => r#"trailing "\" escapes nothing"#.to_owned(),
            GlobErrorKind::NothingToRepeat(c) => {
                format!(
                    r#""{}" at the start of the pattern has nothing to repeat"#,
                    show(*c)
                )
            }
            GlobErrorKind::DoubleQuantifier(c) => {
                format!(r#""{}" directly follows another "?" or "+""#, show(*c))
            }
            GlobErrorKind::GitHubClassChar(c) => format!(
                r#"character "{}" is not allowed inside "[...]" in a GitHub pattern"#,
                show(*c)
            ),
        }
    }
}

impl Hint for GlobError {
    /// A suggestion for fixing the pattern.
    fn hint(&self) -> String {
        match &self.kind {
            GlobErrorKind::UnclosedClass => {
                r#"close the class with "]", or escape the bracket as "\[" to match a literal "[""#
                    .to_owned()
            }
            GlobErrorKind::EmptyClass => {
                r#"list at least one letter, digit or range inside the brackets, or escape them as "\[\]" to match them literally"#
                    .to_owned()
            }
            GlobErrorKind::ReversedRange { from, to } => format!(
                r#"write the range from low to high: "{}-{}""#,
                show(*to),
                show(*from)
            ),
            GlobErrorKind::NestedAlternates => {
                r#"CodePipeline does not allow nested alternatives: write "{a,b,c}" as one flat group"#
                    .to_owned()
            }
            GlobErrorKind::UnclosedAlternates => {
                r#"close the group with "}", or escape the brace as "\{" to match a literal "{""#
                    .to_owned()
            }
            GlobErrorKind::UnopenedAlternates => {
                r#"escape it as "\}" to match a literal "}""#.to_owned()
            }
            GlobErrorKind::TooManyAlternatives => format!(
                r#"split the pattern into several patterns or use fewer "{{...}}" groups; together they may expand to at most {MAX_ALTERNATIVES} alternatives"#
            ),
            GlobErrorKind::DanglingEscape => {
                r#"remove the trailing "\", or write "\\" to match a literal backslash"#.to_owned()
            }
            GlobErrorKind::NothingToRepeat(c) => {
                format!(r#"escape it as "\{0}" to match a literal "{0}""#, show(*c))
            }
            GlobErrorKind::DoubleQuantifier(c) => format!(
                r#"put a single "?" or "+" after a character or "[...]" class, or escape it as "\{0}" to match a literal "{0}""#,
                show(*c)
            ),
            GlobErrorKind::GitHubClassChar(_) => {
                r#"GitHub brackets take only letters, digits and ranges a-z, A-Z, 0-9; match other characters outside the brackets (escape special ones with "\")"#
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for GlobError {}
