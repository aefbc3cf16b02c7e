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
    bits: Option<Box<BitNfa>>,
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
    /// Matches everything.
    Everything,
    /// Anything else: must run [`Glob::is_match`]. `prefix` is the longest literal prefix every
    /// match starts with (may be empty).
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
        glob.bits = BitNfa::build(&glob).map(Box::new);
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
    fn run_bits(&self, bits: &BitNfa, name: &str, skip: usize) -> bool {
        let Some(start) = u32::try_from(skip)
            .ok()
            .and_then(|skip| bits.starts.checked_shl(skip))
        else {
            return false;
        };
        let mut cur = bits.closure(start);
        for ch in name.chars() {
            let (advance, stay) = bits.masks(self, ch);
            let next = ((cur & advance) << 1) | (cur & stay);
            if next == 0 {
                return false;
            }
            cur = bits.closure(next);
        }
        cur & bits.accept != 0
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

    /// The consuming moves of every state on `ch` as bit masks (at most 128 states).
    fn move_masks(&self, ch: char) -> (u128, u128) {
        let mut advance = 0u128;
        let mut stay = 0u128;
        for state in 0..self.insts.len().min(128) {
            let (adv, st) = self.moves(state, ch);
            advance |= u128::from(adv) << state;
            stay |= u128::from(st) << state;
        }
        (advance, stay)
    }
}

/// Precomputed bit masks for simulating a program of at most 128 states in one `u128`.
#[derive(Clone, Debug)]
struct BitNfa {
    /// Row of `rows` for each ASCII character.
    ascii_row: [u8; 128],
    /// Row shared by all non-ASCII characters, when the pattern names none of them.
    other_row: Option<u8>,
    /// Distinct (advance, stay) move masks.
    rows: Vec<(u128, u128)>,
    /// States with an epsilon move to the next state.
    epsilon: u128,
    /// `DirEnter` states, which also have an epsilon move two states on.
    dir_enter: u128,
    /// `Match` states.
    accept: u128,
    /// First state of every program.
    starts: u128,
}

impl BitNfa {
    fn build(glob: &Glob) -> Option<BitNfa> {
        if glob.insts.len() > 128 {
            return None;
        }
        let mut rows: Vec<(u128, u128)> = Vec::new();
        let mut row_of = |masks: (u128, u128)| match rows.iter().position(|&r| r == masks) {
            Some(row) => row,
            None => {
                rows.push(masks);
                rows.len() - 1
            }
        };
        let mut ascii_row = [0u8; 128];
        for (code, slot) in (0u8..).zip(ascii_row.iter_mut()) {
            // At most 128 distinct rows exist at this point, so the index fits in a u8.
            *slot = row_of(glob.move_masks(char::from(code))) as u8;
        }
        let names_non_ascii = glob.insts.iter().any(|inst| match *inst {
            Inst::Lit(c) | Inst::OptLit(c) | Inst::PlusLit(c) => !c.is_ascii(),
            _ => false,
        }) || glob
            .classes
            .iter()
            .any(|class| class.ranges.iter().any(|&(_, hi)| !hi.is_ascii()));
        // Every non-ASCII character moves like U+0080 unless the pattern names one.
        let other_row = (!names_non_ascii).then(|| row_of(glob.move_masks('\u{80}')) as u8);
        let mut epsilon = 0u128;
        let mut dir_enter = 0u128;
        let mut accept = 0u128;
        for (state, inst) in glob.insts.iter().enumerate() {
            let bit = 1u128 << state;
            match inst {
                Inst::Star | Inst::StarStar | Inst::OptLit(_) | Inst::OptClass(_) => epsilon |= bit,
                Inst::DirEnter => {
                    epsilon |= bit;
                    dir_enter |= bit;
                }
                Inst::Match => accept |= bit,
                _ => {}
            }
        }
        let starts = glob
            .starts
            .iter()
            .fold(0u128, |acc, &start| acc | (1u128 << start));
        Some(BitNfa {
            ascii_row,
            other_row,
            rows,
            epsilon,
            dir_enter,
            accept,
            starts,
        })
    }

    /// The (advance, stay) masks for `ch`.
    fn masks(&self, glob: &Glob, ch: char) -> (u128, u128) {
        let row = match usize::try_from(u32::from(ch)) {
            Ok(code) if code < 128 => self.ascii_row.get(code).copied(),
            _ => self.other_row,
        };
        match row {
            Some(row) => self.rows.get(usize::from(row)).copied().unwrap_or_default(),
            None => glob.move_masks(ch),
        }
    }

    /// Adds every state reachable from `set` through epsilon moves.
    fn closure(&self, mut set: u128) -> u128 {
        let mut frontier = set & self.epsilon;
        while frontier != 0 {
            let reached = ((frontier << 1) | ((frontier & self.dir_enter) << 2)) & !set;
            set |= reached;
            frontier = reached & self.epsilon;
        }
        set
    }
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
mod tests {
    use super::*;
    use proptest::prelude::{Just, any, prop_assert, prop_assert_eq, prop_oneof, proptest};
    use proptest::strategy::Strategy as Gen;

    const CP: Dialect = Dialect::CodePipeline;
    const GH: Dialect = Dialect::GitHub;

    fn glob(pattern: &str, dialect: Dialect) -> Glob {
        match Glob::new(pattern, dialect) {
            Ok(glob) => glob,
            Err(err) => panic!(
                "{pattern:?} ({dialect:?}) failed at {}: {err}",
                err.position
            ),
        }
    }

    /// The NFA run from the true program starts, bypassing the strategy; checks that the
    /// bit-parallel and the sparse-set simulations agree.
    fn nfa(glob: &Glob, name: &str) -> bool {
        let sets = glob.run_sets(name, 0);
        if let Some(bits) = &glob.bits {
            assert_eq!(
                glob.run_bits(bits, name, 0),
                sets,
                "{:?} {name:?}",
                glob.pattern
            );
        }
        sets
    }

    #[rustfmt::skip]
    const MATCH_CASES: &[(Dialect, &str, &str, bool)] = &[
        // `*` stays within a segment.
        (CP, "*", "abc", true),
        (CP, "*", "", true),
        (CP, "*", "a/b", false),
        (CP, "feature/*", "feature/x", true),
        (CP, "feature/*", "feature/", true),
        (CP, "feature/*", "feature/x/y", false),
        (CP, "feature/*", "feature", false),
        (CP, "*.rs", "main.rs", true),
        (CP, "*.rs", "src/main.rs", false),
        (GH, "*", "abc", true),
        (GH, "*", "a/b", false),
        (GH, "feature/*", "feature/x", true),
        (GH, "feature/*", "feature/x/y", false),
        // `**` crosses '/'.
        (CP, "**", "a/b/c", true),
        (CP, "**", "", true),
        (CP, "a**", "ab/c/d", true),
        (CP, "a**", "b/a", false),
        (GH, "**", "a/b/c", true),
        (GH, "**", "", true),
        // `dir/**`.
        (CP, "a/**", "a/b/c", true),
        (CP, "a/**", "a/", true),
        (CP, "a/**", "a", false),
        (CP, "a/**", "b/c", false),
        (GH, "feature/**", "feature/a/b", true),
        (GH, "feature/**", "feature", false),
        (GH, "feature/**", "other/a", false),
        // `**/` matches zero or more whole directories.
        (CP, "**/README.md", "README.md", true),
        (CP, "**/README.md", "a/b/README.md", true),
        (CP, "**/README.md", "aREADME.md", false),
        (CP, "**/README.md", "a/README.mdx", false),
        (CP, "a/**/b", "a/b", true),
        (CP, "a/**/b", "a/x/y/b", true),
        (CP, "a/**/b", "a/xb", false),
        (CP, "a/**/b", "ab", false),
        (CP, "a/**/**/b", "a/b", true),
        (CP, "a/**/**/b", "a/x/b", true),
        (CP, "src/**/*.rs", "src/main.rs", true),
        (CP, "src/**/*.rs", "src/a/b/c.rs", true),
        (CP, "src/**/*.rs", "src/a/b/c.rsx", false),
        (CP, "src/**/*.rs", "lib/a.rs", false),
        (GH, "**/x.md", "x.md", true),
        (GH, "**/x.md", "a/b/x.md", true),
        (GH, "**/x.md", "ax.md", false),
        (GH, "docs/**/*.md", "docs/a.md", true),
        (GH, "docs/**/*.md", "docs/a/b.txt", false),
        // `**` not at the start of a segment is plain `.*`.
        (CP, "x**/y", "x/y", true),
        (CP, "x**/y", "xa/b/y", true),
        (CP, "x**/y", "xy", false),
        (CP, "**.md", "a/b.md", true),
        (CP, "**.md", "a/b.mdx", false),
        (GH, "x**/y", "xa/b/y", true),
        (GH, "x**/y", "xy", false),
        // GitHub `**` inside a segment.
        (GH, "**.js", "js/index.js", true),
        (GH, "**.js", "a.js", true),
        (GH, "**.js", "a.jsx", false),
        (GH, "releases/**-alpha", "releases/beta/3-alpha", true),
        (GH, "releases/**-alpha", "releases/-alpha", true),
        (GH, "releases/**-alpha", "releases/beta/3-beta", false),
        // CodePipeline `?`: exactly one character, never '/'.
        (CP, "?", "a", true),
        (CP, "?", "", false),
        (CP, "?", "ab", false),
        (CP, "a?c", "abc", true),
        (CP, "a?c", "a/c", false),
        (CP, "v?.?", "v1.2", true),
        (CP, "v?.?", "v10.2", false),
        // CodePipeline classes.
        (CP, "[abc]", "b", true),
        (CP, "[abc]", "d", false),
        (CP, "[abc]", "", false),
        (CP, "[a-z]x", "qx", true),
        (CP, "[a-z]x", "Qx", false),
        (CP, "[!a-z]", "Q", true),
        (CP, "[!a-z]", "q", false),
        (CP, "[!a-z]", "/", false),
        (CP, "[]a]", "]", true),
        (CP, "[]a]", "a", true),
        (CP, "[]a]", "b", false),
        (CP, "[!]a]", "]", false),
        (CP, "[!]a]", "b", true),
        (CP, "[*?\\]", "*", true),
        (CP, "[*?\\]", "?", true),
        (CP, "[*?\\]", "\\", true),
        (CP, "[*?\\]", "a", false),
        (CP, "[^a]", "^", true),
        (CP, "[^a]", "b", false),
        (CP, "[/]", "/", false),
        (CP, "a[-]b", "a-b", true),
        (CP, "[a-]", "-", true),
        (CP, "[a-]", "b", false),
        (CP, "[{,}]", ",", true),
        (CP, "[{,}]", "x", false),
        // CodePipeline alternatives.
        (CP, "{a,b}", "a", true),
        (CP, "{a,b}", "b", true),
        (CP, "{a,b}", "c", false),
        (CP, "{a,b}", "ab", false),
        (CP, "release/{v1,v2}/*", "release/v2/x", true),
        (CP, "release/{v1,v2}/*", "release/v3/x", false),
        (CP, "main{,-next}", "main", true),
        (CP, "main{,-next}", "main-next", true),
        (CP, "main{,-next}", "main-", false),
        (CP, "{src,lib}/**/*.{rs,toml}", "lib/a/Cargo.toml", true),
        (CP, "{src,lib}/**/*.{rs,toml}", "lib/a/x.py", false),
        (CP, "{a/,b}**/x", "a/x", true),
        (CP, "{a/,b}**/x", "a/y/z/x", true),
        (CP, "{a/,b}**/x", "bz/x", true),
        (CP, "{a/,b}**/x", "bx", false),
        (CP, "{[0-9],?x}", "7", true),
        (CP, "{[0-9],?x}", "ax", true),
        (CP, "{[0-9],?x}", "a", false),
        (CP, "a,b", "a,b", true),
        (CP, "a,b", "a", false),
        // Literal `+` and `!` in CodePipeline.
        (CP, "v1+build", "v1+build", true),
        (CP, "v1+build", "v11build", false),
        (CP, "!x", "!x", true),
        (CP, "!x", "x", false),
        // GitHub `?` and `+` quantifiers.
        (GH, "*.jsx?", "page.js", true),
        (GH, "*.jsx?", "page.jsx", true),
        (GH, "*.jsx?", "page.jsxx", false),
        (GH, "*.jsx?", "page.j", false),
        (GH, "a?", "ab", false),
        (GH, "a?", "", true),
        (GH, "v[12].[0-9]+.[0-9]+", "v1.10.1", true),
        (GH, "v[12].[0-9]+.[0-9]+", "v2.0.99", true),
        (GH, "v[12].[0-9]+.[0-9]+", "v1..1", false),
        (GH, "v[12].[0-9]+.[0-9]+", "v3.1.1", false),
        (GH, "v[12].[0-9]+.[0-9]+", "v1.1a.1", false),
        (GH, "a+", "aaa", true),
        (GH, "a+", "", false),
        (GH, "ba+c", "bc", false),
        (GH, "ba+c", "baac", true),
        (GH, "[ab]?c", "c", true),
        (GH, "[ab]?c", "ac", true),
        (GH, "[ab]?c", "abc", false),
        (GH, "[ab]+c", "abbac", true),
        (GH, "[ab]+c", "c", false),
        (GH, "/+x", "//x", true),
        (GH, "/+x", "x", false),
        (GH, "*?", "abc", true),
        (GH, "*?", "a/b", false),
        (GH, "**+", "a/b", true),
        (GH, "a*+", "abc", true),
        (GH, "a*+", "b", false),
        // GitHub classes.
        (GH, "[CB]", "C", true),
        (GH, "[CB]", "c", false),
        (GH, "[1-2]", "2", true),
        (GH, "[1-2]", "3", false),
        (GH, "[0-9a-z]x", "qx", true),
        (GH, "[0-9a-z]x", "Qx", false),
        // Literal `{`, `}`, `,` and `!` in GitHub.
        (GH, "{a,b}", "{a,b}", true),
        (GH, "{a,b}", "a", false),
        (GH, "a!b", "a!b", true),
        (GH, "a!b", "ab", false),
        // Escapes.
        (CP, "\\*", "*", true),
        (CP, "\\*", "a", false),
        (CP, "a\\{b\\}", "a{b}", true),
        (CP, "a\\{b\\}", "ab", false),
        (CP, "\\?", "?", true),
        (CP, "\\?", "a", false),
        (CP, "\\[a]", "[a]", true),
        (CP, "\\[a]", "a", false),
        (CP, "\\a\\,", "a,", true),
        (CP, "\\\\", "\\", true),
        (CP, "\\*\\*/x", "**/x", true),
        (CP, "\\*\\*/x", "a/x", false),
        (GH, "\\*", "*", true),
        (GH, "\\*", "x", false),
        (GH, "a\\?", "a?", true),
        (GH, "a\\?", "a", false),
        (GH, "a\\??", "a", true),
        (GH, "a\\??", "a?", true),
        (GH, "a\\+", "a+", true),
        (GH, "a\\+", "aa", false),
        (GH, "\\!x", "!x", true),
        (GH, "\\[a]", "[a]", true),
        (GH, "\\[a]", "a", false),
        // Case sensitivity.
        (CP, "Main", "Main", true),
        (CP, "Main", "main", false),
        (CP, "[A-Z]*", "main", false),
        (GH, "Main", "main", false),
        (GH, "[a-z]+", "abc", true),
        (GH, "[a-z]+", "aBc", false),
        // Unicode names.
        (CP, "café/*", "café/ü", true),
        (CP, "café/*", "cafe/ü", false),
        (CP, "caf?", "café", true),
        (CP, "?", "日本", false),
        (CP, "??", "日本", true),
        (CP, "[é-ë]", "ê", true),
        (CP, "[é-ë]", "e", false),
        (CP, "[!é]", "x", true),
        (CP, "[!é]", "é", false),
        (GH, "日本/*", "日本/語", true),
        (GH, "日本/*", "日本/語/x", false),
        (GH, "é+", "ééé", true),
        (GH, "é+", "e", false),
    ];

    #[test]
    fn match_table() {
        for &(dialect, pattern, name, expected) in MATCH_CASES {
            let g = glob(pattern, dialect);
            assert_eq!(
                g.is_match(name),
                expected,
                "{dialect:?} {pattern:?} against {name:?}"
            );
            assert_eq!(
                nfa(&g, name),
                expected,
                "{dialect:?} {pattern:?} against {name:?} (NFA)"
            );
        }
    }

    fn err(kind: GlobErrorKind, position: usize) -> GlobError {
        GlobError { kind, position }
    }

    #[test]
    fn error_table() {
        use GlobErrorKind::*;
        let eleven_groups = "{a,b}".repeat(11);
        let cases: Vec<(Dialect, &str, GlobError)> = vec![
            (CP, "a[bc", err(UnclosedClass, 1)),
            (CP, "[]", err(UnclosedClass, 0)),
            (CP, "[!]", err(UnclosedClass, 0)),
            (CP, "é[a", err(UnclosedClass, 1)),
            (CP, "{a,[b}", err(UnclosedClass, 3)),
            (CP, "x[z-a]", err(ReversedRange { from: 'z', to: 'a' }, 2)),
            (CP, "{a,{b}}", err(NestedAlternates, 3)),
            (CP, "x{a,b", err(UnclosedAlternates, 1)),
            (CP, "日{a,b", err(UnclosedAlternates, 1)),
            (CP, "a}b", err(UnopenedAlternates, 1)),
            (CP, "{a}}", err(UnopenedAlternates, 3)),
            (CP, &eleven_groups, err(TooManyAlternatives, 50)),
            (CP, "ab\\", err(DanglingEscape, 2)),
            (GH, "?a", err(NothingToRepeat('?'), 0)),
            (GH, "+a", err(NothingToRepeat('+'), 0)),
            (GH, "a??", err(DoubleQuantifier('?'), 2)),
            (GH, "a+?", err(DoubleQuantifier('?'), 2)),
            (GH, "a++", err(DoubleQuantifier('+'), 2)),
            (GH, "*??", err(DoubleQuantifier('?'), 2)),
            (GH, "[a.b]", err(GitHubClassChar('.'), 2)),
            (GH, "[!a]", err(GitHubClassChar('!'), 1)),
            (GH, "[^a]", err(GitHubClassChar('^'), 1)),
            (GH, "[-a]", err(GitHubClassChar('-'), 1)),
            (GH, "[a-]", err(GitHubClassChar('-'), 2)),
            (GH, "[a_b]", err(GitHubClassChar('_'), 2)),
            (GH, "[a-Z]", err(GitHubClassChar('-'), 2)),
            (GH, "[a-.]", err(GitHubClassChar('.'), 3)),
            (GH, "[é]", err(GitHubClassChar('é'), 1)),
            (GH, "x[]", err(EmptyClass, 1)),
            (GH, "a[bc", err(UnclosedClass, 1)),
            (GH, "[9-1]", err(ReversedRange { from: '9', to: '1' }, 1)),
            (GH, "a\\", err(DanglingEscape, 1)),
        ];
        for (dialect, pattern, expected) in cases {
            let got = Glob::new(pattern, dialect).map(|g| g.strategy().clone());
            assert_eq!(got, Err(expected), "{dialect:?} {pattern:?}");
        }
    }

    #[test]
    fn large_programs_use_the_sparse_simulation() {
        let g = glob("{a,b,c,d}{e,f,g,h}/**/[a-z]*.{rs,toml}", CP);
        assert!(g.bits.is_none(), "{} states", g.insts.len());
        let cases = [
            ("ae/x.rs", true),
            ("dh/a/b/c/main.toml", true),
            ("dh/a/b/c/Main.toml", false),
            ("ai/x.rs", false),
            ("ae/x.rsx", false),
        ];
        for (name, expected) in cases {
            assert_eq!(g.is_match(name), expected, "{name}");
            assert_eq!(nfa(&g, name), expected, "{name}");
        }
        let long = format!("{}*", "ab?".repeat(70));
        let g = glob(&long, GH);
        assert!(g.bits.is_none());
        assert!(g.is_match(&"a".repeat(70)));
        assert!(g.is_match(&format!("{}zz", "ab".repeat(70))));
        assert!(!g.is_match(&"a".repeat(69)));
    }

    #[test]
    fn non_ascii_masks() {
        // Patterns naming non-ASCII characters compute masks per character.
        let g = glob("[à-é]*ü", CP);
        assert!(g.bits.as_ref().is_some_and(|b| b.other_row.is_none()));
        assert!(g.is_match("èxyü"));
        assert!(!g.is_match("èxyu"));
        assert!(!g.is_match("ëxyü"));
        // Otherwise all non-ASCII characters share one row.
        let g = glob("?*[!a]", CP);
        assert!(g.bits.as_ref().is_some_and(|b| b.other_row.is_some()));
        assert!(g.is_match("日本語"));
        assert!(!g.is_match("日"));
    }

    #[test]
    fn ten_groups_of_two_are_allowed() {
        let g = glob(&"{a,b}".repeat(10), CP);
        assert!(g.is_match("abababbbba"));
        assert!(!g.is_match("abababbbbc"));
    }

    #[test]
    fn huge_expansion_is_refused() {
        // 4 * 4 programs of ~100k tokens each would exceed the token budget.
        let long = "x".repeat(100_000);
        let pattern = format!("{{a,b,c,d}}{{a,b,c,d}}{long}");
        let got = Glob::new(&pattern, CP).map(|_| ());
        assert_eq!(got, Err(err(GlobErrorKind::TooManyAlternatives, 9)));
        // Without groups a long pattern is fine.
        assert!(glob(&long, CP).is_match(&long));
    }

    #[test]
    fn error_messages_and_hints() {
        let cases = [
            (CP, "a[b", r#"unclosed "[" in pattern"#),
            (CP, "{a,{b}}", r#"nested "{" inside a "{...}" group"#),
            (CP, "a}", r#"unmatched "}" outside any "{...}" group"#),
            (CP, "[z-a]", r#"reversed range "z-a" in character class"#),
            (
                GH,
                "?",
                r#""?" at the start of the pattern has nothing to repeat"#,
            ),
            (
                GH,
                "[a.]",
                r#"character "." is not allowed inside "[...]" in a GitHub pattern"#,
            ),
        ];
        for (dialect, pattern, message) in cases {
            let Err(e) = Glob::new(pattern, dialect) else {
                panic!("{pattern:?} should fail");
            };
            assert_eq!(e.message(), message);
            assert_eq!(e.to_string(), message);
        }
        let nested = Glob::new("{a,{b}}", CP).map(|_| ());
        assert_eq!(
            nested.map_err(|e| e.hint()),
            Err(
                r#"CodePipeline does not allow nested alternatives: write "{a,b,c}" as one flat group"#
                    .to_owned()
            )
        );
        let unopened = Glob::new("a}", CP).map(|_| ());
        assert!(unopened.is_err_and(|e| e.hint().contains(r"\}")));
        let gh_class = Glob::new("[a.]", GH).map(|_| ());
        assert!(gh_class.is_err_and(|e| e.hint().contains("a-z, A-Z, 0-9")));
        // Every kind has a lowercase message without a trailing period, and a hint.
        use GlobErrorKind::*;
        for kind in [
            UnclosedClass,
            EmptyClass,
            ReversedRange { from: 'z', to: 'a' },
            NestedAlternates,
            UnclosedAlternates,
            UnopenedAlternates,
            TooManyAlternatives,
            DanglingEscape,
            NothingToRepeat('+'),
            DoubleQuantifier('?'),
            GitHubClassChar('\u{7}'),
        ] {
            let e = err(kind, 0);
            let message = e.message();
            assert!(!message.ends_with('.'), "{message}");
            assert!(
                !message.starts_with(|c: char| c.is_uppercase()),
                "{message}"
            );
            assert!(!e.hint().is_empty());
        }
    }

    #[test]
    fn strategy_table() {
        let lit = |s: &str| Strategy::Literal(s.to_owned());
        let prefix = |s: &str| Strategy::Prefix(s.to_owned());
        let suffix = |s: &str| Strategy::Suffix(s.to_owned());
        let base = |s: &str| Strategy::BaseName(s.to_owned());
        let general = |s: &str| Strategy::General {
            prefix: s.to_owned(),
        };
        let cases = [
            (CP, "main", lit("main")),
            (CP, "", lit("")),
            (CP, "release/v1\\*", lit("release/v1*")),
            (CP, "\\*\\*/x", lit("**/x")),
            (CP, "{a}", lit("a")),
            (CP, "{a,a}", lit("a")),
            (CP, "a+b!", lit("a+b!")),
            (CP, "services/a/**", prefix("services/a/")),
            (CP, "services/a/**/*", prefix("services/a/")),
            (CP, "docs/\\[draft\\]/**", prefix("docs/[draft]/")),
            (CP, "a**", prefix("a")),
            (CP, "**/*.md", suffix(".md")),
            (CP, "**/*.tar.gz", suffix(".tar.gz")),
            (CP, "**.md", suffix(".md")),
            (CP, "**/*\\*", suffix("*")),
            (CP, "**/*\\{x\\}", suffix("{x}")),
            (CP, "**/Makefile", base("Makefile")),
            (CP, "**/**/Makefile", base("Makefile")),
            (CP, "**/\\?", base("?")),
            (CP, "**", Strategy::Everything),
            (CP, "**/**", Strategy::Everything),
            (CP, "**/*", Strategy::Everything),
            (CP, "{**,x}", Strategy::Everything),
            (CP, "**/x*.md", general("")),
            (CP, "*.md", general("")),
            (CP, "**/a/b", general("")),
            (CP, "**/", general("")),
            (CP, "src/*.rs", general("src/")),
            (CP, "src/**/*.rs", general("src/")),
            (CP, "{a,b}/x", general("")),
            (CP, "src/{a,b}/x", general("src/")),
            (CP, "{src/a,src/b}/x", general("src/")),
            (CP, "a**/*", general("a")),
            (CP, "{a/**,b}", general("")),
            (GH, "main", lit("main")),
            (GH, "{a,b}", lit("{a,b}")),
            (GH, "a\\?", lit("a?")),
            (GH, "\\!x", lit("!x")),
            (GH, "feature/**", prefix("feature/")),
            (GH, "feature/**?", prefix("feature/")),
            (GH, "**.js", suffix(".js")),
            (GH, "**/*.md", suffix(".md")),
            (GH, "**\\+", suffix("+")),
            (GH, "**/Makefile", base("Makefile")),
            (GH, "**", Strategy::Everything),
            (GH, "**/**", Strategy::Everything),
            (GH, "v[12].*", general("v")),
            (GH, "ab?", general("a")),
            (GH, "a+", general("")),
            (GH, "**/*.jsx?", general("")),
            (GH, "releases/**-alpha", general("releases/")),
        ];
        for (dialect, pattern, expected) in cases {
            let g = glob(pattern, dialect);
            assert_eq!(g.strategy(), &expected, "{dialect:?} {pattern:?}");
            assert_eq!(
                g.matches_everything(),
                expected == Strategy::Everything,
                "{pattern:?}"
            );
        }
    }

    #[test]
    fn accessors() {
        let g = glob("a/**", GH);
        assert_eq!(g.pattern(), "a/**");
        assert_eq!(g.dialect(), GH);
        assert!(!g.matches_everything());
        assert!(glob("**", CP).matches_everything());
    }

    #[test]
    fn escape_examples() {
        assert_eq!(
            escape("a*b?[c]{d,e}\\+!", CP),
            "a\\*b\\?\\[c\\]\\{d\\,e\\}\\\\+!"
        );
        assert_eq!(
            escape("a*b?[c]{d,e}\\+!", GH),
            "a\\*b\\?\\[c\\]{d,e}\\\\\\+\\!"
        );
        assert_eq!(escape("plain/path.rs", CP), "plain/path.rs");
    }

    #[test]
    fn pathological_patterns_finish() {
        let name = "a".repeat(4000);
        let g = glob("*a*a*a*a*a*a*a*a*a*a*b", CP);
        assert!(!g.is_match(&name));
        let g = glob("**a**a**a**a**a**a**a**a**a**a**b", GH);
        assert!(!g.is_match(&name));
        let g = glob(&format!("{}{}", "a?".repeat(40), "a".repeat(40)), GH);
        assert!(!g.is_match(&name));
        assert!(g.is_match(&"a".repeat(60)));
        let g = glob(&format!("{}b", "a+".repeat(40)), GH);
        assert!(!g.is_match(&name));
        let g = glob(&"{a*,*a}".repeat(10), CP);
        assert!(!g.is_match(&format!("{name}/")));
        assert!(g.is_match(&name));
    }

    /// Not a benchmark: prints the cost of typical matches (run with --release).
    #[test]
    #[ignore = "timing report only"]
    fn match_speed_report() {
        let name = "src/services/payments/api/handler_test.rs";
        let cases = [
            (CP, "src/**/[a-z]*_test.rs"),
            (CP, "**/*_test.rs"),
            (CP, "src/*/payments/**"),
            (CP, "{src,lib}/**/*.{rs,toml}"),
            (GH, "src/**/*_test.rs?"),
            (CP, "**/*.rs"),
        ];
        for (dialect, pattern) in cases {
            let g = glob(pattern, dialect);
            let rounds = 1_000_000u32;
            let start = std::time::Instant::now();
            let mut hits = 0u32;
            for _ in 0..rounds {
                hits += u32::from(g.is_match(std::hint::black_box(name)));
            }
            let per = start.elapsed() / rounds;
            println!("{pattern:30} {hits:8} matches, {per:?} per is_match");
        }
    }

    /// A direct backtracking matcher over a token program, used as the reference.
    fn reference(toks: &[Tok], s: &[char]) -> bool {
        let atom_matches = |atom: &Atom, c: char| match atom {
            Atom::Lit(l) => *l == c,
            Atom::Class(class) => class.matches(c),
        };
        let Some((tok, rest)) = toks.split_first() else {
            return s.is_empty();
        };
        let after = |k: usize| reference(rest, &s[k..]);
        match tok {
            Tok::Lit(c) => s.first() == Some(c) && after(1),
            Tok::AnyOne => s.first().is_some_and(|&c| c != '/') && after(1),
            Tok::Class(class) => s.first().is_some_and(|&c| class.matches(c)) && after(1),
            Tok::Star => {
                let run = s.iter().take_while(|&&c| c != '/').count();
                (0..=run).any(after)
            }
            Tok::StarStar => (0..=s.len()).any(after),
            Tok::DirStar => after(0) || (1..=s.len()).any(|k| s[k - 1] == '/' && after(k)),
            Tok::Opt(atom) => {
                after(0) || (s.first().is_some_and(|&c| atom_matches(atom, c)) && after(1))
            }
            Tok::Plus(atom) => {
                let run = s.iter().take_while(|&&c| atom_matches(atom, c)).count();
                (1..=run).any(after)
            }
        }
    }

    fn dialect_strategy() -> impl Gen<Value = Dialect> {
        prop_oneof![Just(CP), Just(GH)]
    }

    const SPECIAL_ALPHABET: &str = "ab*?[]{}\\,!+/.-é";

    fn string_over(alphabet: &'static str, max: usize) -> impl Gen<Value = String> {
        let chars: Vec<char> = alphabet.chars().collect();
        proptest::collection::vec(proptest::sample::select(chars), 0..max)
            .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn escaped_names_match_only_themselves(
            dialect in dialect_strategy(),
            s in prop_oneof![string_over(SPECIAL_ALPHABET, 12), any::<String>()],
            extra in proptest::char::any(),
        ) {
            let g = Glob::new(&escape(&s, dialect), dialect);
            prop_assert!(g.is_ok(), "{:?}", g);
            let g = g.expect("checked above");
            prop_assert!(g.is_match(&s));
            prop_assert!(nfa(&g, &s));
            prop_assert_eq!(g.strategy(), &Strategy::Literal(s.clone()));
            let longer = format!("{s}{extra}");
            prop_assert!(!g.is_match(&longer));
            prop_assert!(!nfa(&g, &longer));
            let mut shorter = s.clone();
            if let Some(last) = shorter.pop() {
                prop_assert!(!g.is_match(&shorter));
                prop_assert!(!nfa(&g, &shorter));
                if last != extra {
                    let changed = format!("{shorter}{extra}");
                    prop_assert!(!g.is_match(&changed));
                    prop_assert!(!nfa(&g, &changed));
                }
            }
        }

        #[test]
        fn strategies_agree_with_matcher(
            index in 0usize..STRATEGY_PATTERNS.len(),
            name in string_over("ab/.mdMakefilexyz", 14),
        ) {
            let (dialect, pattern) = STRATEGY_PATTERNS[index];
            let g = glob(pattern, dialect);
            let full = nfa(&g, &name);
            prop_assert_eq!(g.is_match(&name), full, "{:?} {:?}", pattern, name);
            match g.strategy().quick_match(&name) {
                Some(answer) => prop_assert_eq!(answer, full, "{:?} {:?}", pattern, name),
                None => {
                    let general = matches!(g.strategy(), Strategy::General { .. });
                    prop_assert!(general);
                }
            }
            // Names built to hit the strategy condition too.
            for candidate in strategy_hits(g.strategy(), &name) {
                let full = nfa(&g, &candidate);
                prop_assert_eq!(g.is_match(&candidate), full);
                if let Some(answer) = g.strategy().quick_match(&candidate) {
                    prop_assert_eq!(answer, full, "{:?} {:?}", pattern, candidate);
                }
            }
        }

        #[test]
        fn matcher_agrees_with_reference(
            dialect in dialect_strategy(),
            pattern in string_over("ab*?[]{},!+/\\", 10),
            names in proptest::collection::vec(string_over("ab/!+,", 8), 1..8),
        ) {
            let Ok(g) = Glob::new(&pattern, dialect) else {
                return Ok(());
            };
            let programs = parse_programs(&pattern, dialect).expect("compiled above");
            for name in &names {
                let chars: Vec<char> = name.chars().collect();
                let expected = programs.iter().any(|p| reference(p, &chars));
                prop_assert_eq!(g.is_match(name), expected, "{:?} {:?}", pattern, name);
                prop_assert_eq!(nfa(&g, name), expected, "{:?} {:?}", pattern, name);
            }
        }

        #[test]
        fn never_panics(dialect in dialect_strategy(), pattern in any::<String>(), name in any::<String>()) {
            if let Ok(g) = Glob::new(&pattern, dialect) {
                let _ = g.is_match(&name);
            }
        }
    }

    const STRATEGY_PATTERNS: &[(Dialect, &str)] = &[
        (CP, "ab"),
        (CP, "a/\\*"),
        (CP, "a/**"),
        (CP, "a/**/*"),
        (CP, "**/*.md"),
        (CP, "**.md"),
        (CP, "**/Makefile"),
        (CP, "**/**/a.b"),
        (CP, "**"),
        (CP, "**/*"),
        (CP, "a/*.md"),
        (CP, "{a,b}/**/*.md"),
        (CP, "**/x*.md"),
        (GH, "a/b"),
        (GH, "a/**"),
        (GH, "**.md"),
        (GH, "**/Makefile"),
        (GH, "**/**"),
        (GH, "a+/b?"),
        (GH, "**/*.md?"),
    ];

    /// Names derived from `seed` that satisfy the strategy's condition.
    fn strategy_hits(strategy: &Strategy, seed: &str) -> Vec<String> {
        match strategy {
            Strategy::Literal(s) => vec![s.clone()],
            Strategy::Prefix(p) | Strategy::General { prefix: p } => vec![format!("{p}{seed}")],
            Strategy::Suffix(s) => vec![format!("{seed}{s}")],
            Strategy::BaseName(b) => vec![b.clone(), format!("{seed}/{b}"), format!("{seed}{b}")],
            Strategy::Everything => vec![seed.to_owned()],
        }
    }
}
