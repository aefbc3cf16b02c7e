//! Branch, tag and path glob patterns of the AWS CodePipeline and GitHub Actions filter dialects,
//! compiled into a matcher that never backtracks.
//!
//! A pattern is parsed into one or more token programs (CodePipeline `{a,b}` groups expand into
//! several programs), and a name is matched by simulating all programs at once as a Thompson NFA
//! over a bitset of states. Matching therefore takes at most O(states * len(name)) steps and cannot
//! fail; only building a [`Glob`] can fail, with a [`GlobError`] that points at the offending
//! character. Each glob also carries a [`Strategy`] that lets a pattern set find candidates (or
//! decide a match outright) without running the NFA.

use std::collections::HashSet;
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not, Shl};

/// Upper bound on the number of programs a CodePipeline `{...}` expansion may produce.
const MAX_ALTERNATIVES: usize = 1024;
/// Upper bound on the total number of tokens across all programs of an expanded pattern.
const MAX_EXPANDED_TOKENS: usize = 1 << 20;
/// Number of 64-bit state-set words kept on the stack while matching (256 NFA states).
const STACK_WORDS: usize = 4;

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
    /// All programs laid out one after another, each terminated by [`Inst::Match`].
    insts: Vec<Inst>,
    /// Character classes referenced by index from `insts`.
    classes: Vec<Class>,
    /// Index of the first instruction of each program.
    starts: Vec<usize>,
    /// Number of leading literal instructions every program shares with the General prefix.
    skip: usize,
    /// Bit-parallel tables, present when all programs fit in 128 states.
    bits: Option<Box<Bits>>,
}

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
    /// Anything else: must run [`Glob::is_match`]. `prefix` is a literal every match starts
    /// with: the pattern's leading literal text (for several `{...}` alternatives, the common
    /// part of theirs); it may be empty.
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
    fn at(kind: GlobErrorKind, position: usize) -> GlobError {
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

    /// A suggestion for fixing the pattern.
    pub fn hint(&self) -> String {
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

/// A set of characters from a bracket expression; never matches '/'.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Class {
    negated: bool,
    /// Membership of the ASCII characters, before negation.
    ascii: u128,
    /// Inclusive ranges (single characters are `(c, c)`), consulted for non-ASCII characters.
    ranges: Vec<(char, char)>,
}

impl Class {
    fn new(negated: bool, ranges: Vec<(char, char)>) -> Class {
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

    fn matches(&self, c: char) -> bool {
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
enum Atom {
    Lit(char),
    Class(Class),
}

/// One element of a token program.
///
/// The lexers only produce `Star` for each `*`; [`classify`] then turns runs of stars into
/// `Star`, `StarStar` or `DirStar`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Tok {
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

/// One NFA state. Programs are laid out consecutively; state `s` continues at `s + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inst {
    Lit(char),
    AnyOne,
    Class(usize),
    /// Epsilon to the next state; loops on any character except '/'.
    Star,
    /// Epsilon to the next state; loops on any character.
    StarStar,
    /// Epsilon to the following `DirLoop` and to the state after it.
    DirEnter,
    /// Loops on any character; a '/' also moves to the next state.
    DirLoop,
    OptLit(char),
    OptClass(usize),
    PlusLit(char),
    PlusClass(usize),
    /// Accepting end of a program.
    Match,
}

/// A top-level element of a CodePipeline pattern before brace expansion.
enum Item {
    Tok(Tok),
    Group {
        /// Character offset of the `{`.
        position: usize,
        alternatives: Vec<Vec<Tok>>,
    },
}

impl Glob {
    /// Compiles `pattern` in `dialect`.
    pub fn new(pattern: &str, dialect: Dialect) -> Result<Glob, GlobError> {
        let programs = parse_programs(pattern, dialect)?;
        Ok(Glob::compile(pattern, dialect, programs))
    }

    /// True when the whole `name` matches the pattern.
    pub fn is_match(&self, name: &str) -> bool {
        match &self.strategy {
            Strategy::General { prefix } => match name.strip_prefix(prefix.as_str()) {
                Some(rest) => self.run(rest, self.skip),
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

    fn compile(pattern: &str, dialect: Dialect, programs: Vec<Vec<Tok>>) -> Glob {
        let strategy = strategy_of(&programs);
        let skip = match &strategy {
            Strategy::General { prefix } => prefix.chars().count(),
            _ => 0,
        };
        let mut insts = Vec::new();
        let mut classes = Vec::new();
        let mut starts = Vec::with_capacity(programs.len());
        let mut class_index = |class: Class| {
            classes.push(class);
            classes.len() - 1
        };
        for program in programs {
            starts.push(insts.len());
            for tok in program {
                match tok {
                    Tok::Lit(c) => insts.push(Inst::Lit(c)),
                    Tok::AnyOne => insts.push(Inst::AnyOne),
                    Tok::Class(class) => insts.push(Inst::Class(class_index(class))),
                    Tok::Star => insts.push(Inst::Star),
                    Tok::StarStar => insts.push(Inst::StarStar),
                    Tok::DirStar => insts.extend([Inst::DirEnter, Inst::DirLoop]),
                    Tok::Opt(Atom::Lit(c)) => insts.push(Inst::OptLit(c)),
                    Tok::Opt(Atom::Class(class)) => insts.push(Inst::OptClass(class_index(class))),
                    Tok::Plus(Atom::Lit(c)) => insts.push(Inst::PlusLit(c)),
                    Tok::Plus(Atom::Class(class)) => {
                        insts.push(Inst::PlusClass(class_index(class)))
                    }
                }
            }
            insts.push(Inst::Match);
        }
        let mut glob = Glob {
            pattern: pattern.to_owned(),
            dialect,
            strategy,
            insts,
            classes,
            starts,
            skip,
            bits: None,
        };
        glob.bits = Bits::build(&glob).map(Box::new);
        glob
    }

    /// Runs the NFA on `name`, starting every program `skip` literal states in.
    fn run(&self, name: &str, skip: usize) -> bool {
        match &self.bits {
            Some(bits) => self.run_bits(bits, name, skip),
            None => self.run_sets(name, skip),
        }
    }

    /// Bit-parallel simulation for programs of at most 128 states.
    fn run_bits(&self, bits: &Bits, name: &str, skip: usize) -> bool {
        bits.run(self, name, skip)
    }

    /// Sparse-bitset simulation for programs of any size.
    fn run_sets(&self, name: &str, skip: usize) -> bool {
        let words = self.insts.len().div_ceil(64);
        if words <= STACK_WORDS {
            let mut cur = [0u64; STACK_WORDS];
            let mut next = [0u64; STACK_WORDS];
            self.simulate(name, skip, &mut cur[..words], &mut next[..words])
        } else {
            let mut cur = vec![0u64; words];
            let mut next = vec![0u64; words];
            self.simulate(name, skip, &mut cur, &mut next)
        }
    }

    fn simulate(&self, name: &str, skip: usize, cur: &mut [u64], next: &mut [u64]) -> bool {
        let (mut cur, mut next) = (cur, next);
        for &start in &self.starts {
            self.add(cur, start + skip);
        }
        for ch in name.chars() {
            next.fill(0);
            for (w, &word) in cur.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let state = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let (advance, stay) = self.moves(state, ch);
                    if stay {
                        self.add(next, state);
                    }
                    if advance {
                        self.add(next, state + 1);
                    }
                }
            }
            if next.iter().all(|&w| w == 0) {
                return false;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        cur.iter().enumerate().any(|(w, &word)| {
            let mut bits = word;
            while bits != 0 {
                let state = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if self.insts.get(state) == Some(&Inst::Match) {
                    return true;
                }
            }
            false
        })
    }

    /// Adds `state` and everything reachable from it without consuming input.
    fn add(&self, set: &mut [u64], mut state: usize) {
        loop {
            if !insert(set, state) {
                // Already present, so its epsilon closure is present too.
                return;
            }
            match self.insts.get(state) {
                Some(Inst::Star | Inst::StarStar | Inst::OptLit(_) | Inst::OptClass(_)) => {
                    state += 1;
                }
                Some(Inst::DirEnter) => {
                    // The DirLoop state has no epsilon moves of its own.
                    insert(set, state + 1);
                    state += 2;
                }
                _ => return,
            }
        }
    }

    /// The consuming moves of `state` on `ch`: (to the next state, back to itself).
    fn moves(&self, state: usize, ch: char) -> (bool, bool) {
        let class = |index: usize| {
            self.classes
                .get(index)
                .is_some_and(|class| class.matches(ch))
        };
        match self.insts.get(state) {
            Some(&(Inst::Lit(c) | Inst::OptLit(c))) => (c == ch, false),
            Some(Inst::AnyOne) => (ch != '/', false),
            Some(&(Inst::Class(i) | Inst::OptClass(i))) => (class(i), false),
            Some(Inst::Star) => (false, ch != '/'),
            Some(Inst::StarStar) => (false, true),
            Some(Inst::DirLoop) => (ch == '/', true),
            Some(&Inst::PlusLit(c)) => (c == ch, c == ch),
            Some(&Inst::PlusClass(i)) => {
                let hit = class(i);
                (hit, hit)
            }
            Some(Inst::DirEnter | Inst::Match) | None => (false, false),
        }
    }
}

/// An unsigned integer used as a set of NFA states, one bit per state.
trait StateWord:
    Copy
    + Eq
    + fmt::Debug
    + BitAnd<Output = Self>
    + BitOr<Output = Self>
    + BitOrAssign
    + Not<Output = Self>
    + Shl<u32, Output = Self>
{
    /// Number of states the word holds.
    const BITS: u32;
    /// The empty set.
    const ZERO: Self;
    /// The set holding only `state`, which must be below `BITS`.
    fn bit(state: usize) -> Self;
}

impl StateWord for u64 {
    const BITS: u32 = u64::BITS;
    const ZERO: Self = 0;
    fn bit(state: usize) -> Self {
        1u64.checked_shl(u32::try_from(state).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }
}

impl StateWord for u128 {
    const BITS: u32 = u128::BITS;
    const ZERO: Self = 0;
    fn bit(state: usize) -> Self {
        1u128
            .checked_shl(u32::try_from(state).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }
}

/// Bit-parallel tables for one of the two word sizes.
#[derive(Clone, Debug)]
enum Bits {
    /// At most 64 states.
    Small(BitNfa<u64>),
    /// At most 128 states.
    Large(BitNfa<u128>),
}

impl Bits {
    fn build(glob: &Glob) -> Option<Bits> {
        let states = glob.insts.len();
        if states <= 64 {
            Some(Bits::Small(BitNfa::build(glob)))
        } else if states <= 128 {
            Some(Bits::Large(BitNfa::build(glob)))
        } else {
            None
        }
    }

    fn run(&self, glob: &Glob, name: &str, skip: usize) -> bool {
        match self {
            Bits::Small(bits) => bits.run(glob, name, skip),
            Bits::Large(bits) => bits.run(glob, name, skip),
        }
    }
}

/// Precomputed bit masks for simulating a program whose states fit in one word `W`.
#[derive(Clone, Debug)]
struct BitNfa<W> {
    /// Row of `rows` for each ASCII character.
    ascii_row: [u8; 128],
    /// Row shared by all non-ASCII characters, when the pattern names none of them.
    other_row: Option<u8>,
    /// Distinct (advance, stay) move masks.
    rows: Vec<(W, W)>,
    /// States with an epsilon move to the next state.
    epsilon: W,
    /// `DirEnter` states, which also have an epsilon move two states on.
    dir_enter: W,
    /// `Match` states.
    accept: W,
    /// States from which every remaining input is accepted.
    sure: W,
    /// First state of every program.
    starts: W,
}

impl<W: StateWord> BitNfa<W> {
    /// Builds the tables; the caller guarantees that `glob.insts` fits in `W`.
    fn build(glob: &Glob) -> BitNfa<W> {
        let mut rows: Vec<(W, W)> = Vec::new();
        let mut row_of = |masks: (W, W)| {
            let row = match rows.iter().position(|&r| r == masks) {
                Some(row) => row,
                None => {
                    rows.push(masks);
                    rows.len() - 1
                }
            };
            // At most 129 distinct rows (128 ASCII characters and one other) ever exist.
            row as u8
        };
        let mut ascii_row = [0u8; 128];
        for (code, slot) in (0u8..).zip(ascii_row.iter_mut()) {
            *slot = row_of(Self::move_masks(glob, char::from(code)));
        }
        let names_non_ascii = glob.insts.iter().any(|inst| match *inst {
            Inst::Lit(c) | Inst::OptLit(c) | Inst::PlusLit(c) => !c.is_ascii(),
            _ => false,
        }) || glob
            .classes
            .iter()
            .any(|class| class.ranges.iter().any(|&(_, hi)| !hi.is_ascii()));
        // Every non-ASCII character moves like U+0080 unless the pattern names one.
        let other_row = (!names_non_ascii).then(|| row_of(Self::move_masks(glob, '\u{80}')));
        let mut epsilon = W::ZERO;
        let mut dir_enter = W::ZERO;
        let mut accept = W::ZERO;
        let mut sure = W::ZERO;
        for (state, inst) in glob.insts.iter().enumerate() {
            let bit = W::bit(state);
            match inst {
                Inst::Star | Inst::StarStar | Inst::OptLit(_) | Inst::OptClass(_) => {
                    epsilon |= bit;
                }
                Inst::DirEnter => {
                    epsilon |= bit;
                    dir_enter |= bit;
                }
                Inst::Match => accept |= bit,
                _ => {}
            }
            if accepts_everything_from(glob.insts.get(state..).unwrap_or_default()) {
                sure |= bit;
            }
        }
        let starts = glob
            .starts
            .iter()
            .fold(W::ZERO, |acc, &start| acc | W::bit(start));
        BitNfa {
            ascii_row,
            other_row,
            rows,
            epsilon,
            dir_enter,
            accept,
            sure,
            starts,
        }
    }

    /// The consuming moves of every state on `ch` as (advance, stay) masks.
    fn move_masks(glob: &Glob, ch: char) -> (W, W) {
        let mut advance = W::ZERO;
        let mut stay = W::ZERO;
        for state in 0..glob.insts.len() {
            let (adv, st) = glob.moves(state, ch);
            if adv {
                advance |= W::bit(state);
            }
            if st {
                stay |= W::bit(state);
            }
        }
        (advance, stay)
    }

    fn row(&self, row: u8) -> (W, W) {
        self.rows
            .get(usize::from(row))
            .copied()
            .unwrap_or((W::ZERO, W::ZERO))
    }

    fn run(&self, glob: &Glob, name: &str, skip: usize) -> bool {
        let Some(skip) = u32::try_from(skip).ok().filter(|&skip| skip < W::BITS) else {
            return false;
        };
        let mut cur = self.closure(self.starts << skip);
        if name.is_ascii() {
            for &byte in name.as_bytes() {
                let row = self.ascii_row.get(usize::from(byte)).copied().unwrap_or(0);
                match self.step(cur, self.row(row)) {
                    Step::Continue(next) => cur = next,
                    Step::Done(answer) => return answer,
                }
            }
        } else {
            for ch in name.chars() {
                let masks = match u8::try_from(ch) {
                    Ok(byte) if byte.is_ascii() => {
                        self.row(self.ascii_row.get(usize::from(byte)).copied().unwrap_or(0))
                    }
                    _ => match self.other_row {
                        Some(row) => self.row(row),
                        None => Self::move_masks(glob, ch),
                    },
                };
                match self.step(cur, masks) {
                    Step::Continue(next) => cur = next,
                    Step::Done(answer) => return answer,
                }
            }
        }
        cur & self.accept != W::ZERO
    }

    /// Consumes one character described by its (advance, stay) masks.
    fn step(&self, cur: W, (advance, stay): (W, W)) -> Step<W> {
        if cur & self.sure != W::ZERO {
            return Step::Done(true);
        }
        let next = ((cur & advance) << 1) | (cur & stay);
        if next == W::ZERO {
            return Step::Done(false);
        }
        Step::Continue(self.closure(next))
    }

    /// Adds every state reachable from `set` through epsilon moves.
    fn closure(&self, mut set: W) -> W {
        let mut frontier = set & self.epsilon;
        while frontier != W::ZERO {
            let reached = ((frontier << 1) | ((frontier & self.dir_enter) << 2)) & !set;
            set |= reached;
            frontier = reached & self.epsilon;
        }
        set
    }
}

/// Outcome of consuming one character in the bit-parallel simulation.
enum Step<W> {
    Continue(W),
    Done(bool),
}

/// True when the instructions from the start of `insts` up to the next `Match` accept every
/// string (conservative: false when unsure).
fn accepts_everything_from(insts: &[Inst]) -> bool {
    let mut after_dirs = false;
    let mut universal = false;
    let mut in_dir = false;
    for inst in insts {
        match inst {
            Inst::Match => return universal,
            Inst::StarStar => universal = true,
            Inst::DirEnter => {
                after_dirs = true;
                in_dir = true;
                continue;
            }
            // A DirLoop is harmless only right after its DirEnter.
            Inst::DirLoop if in_dir => {}
            Inst::Star => universal |= after_dirs,
            Inst::OptLit(_) | Inst::OptClass(_) => {}
            _ => return false,
        }
        in_dir = false;
    }
    false
}

/// Sets bit `state`; returns false when it was already set (or out of range).
fn insert(set: &mut [u64], state: usize) -> bool {
    let bit = 1u64 << (state % 64);
    match set.get_mut(state / 64) {
        Some(word) if *word & bit == 0 => {
            *word |= bit;
            true
        }
        _ => false,
    }
}

/// Parses `pattern` into deduplicated, classified token programs.
fn parse_programs(pattern: &str, dialect: Dialect) -> Result<Vec<Vec<Tok>>, GlobError> {
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

/// Lexes a CodePipeline pattern, collecting `{...}` groups.
fn lex_codepipeline(chars: &[char]) -> Result<Vec<Item>, GlobError> {
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
fn expand(items: Vec<Item>) -> Result<Vec<Vec<Tok>>, GlobError> {
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

/// Lexes a GitHub pattern, folding `?` and `+` into the preceding atom.
fn lex_github(chars: &[char]) -> Result<Vec<Tok>, GlobError> {
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
fn strategy_of(programs: &[Vec<Tok>]) -> Strategy {
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

#[cfg(test)]
mod tests;
