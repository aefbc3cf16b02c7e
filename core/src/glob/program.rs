//! The token program both dialect parsers produce and the matcher and the strategies read:
//! tokens and character classes.

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
