//! The matcher: token programs compiled into one Thompson NFA, simulated bit-parallel in one
//! machine word when the states fit, over a sparse bitset otherwise; never backtracks.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not, Shl};

use super::program::{Atom, Class, Tok};

/// Number of 64-bit state-set words kept on the stack while matching (256 NFA states).
const STACK_WORDS: usize = 4;

/// One NFA state. Programs are laid out consecutively; state `s` continues at `s + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inst {
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

/// All programs of a pattern as one NFA, with bit-parallel tables when they fit.
#[derive(Clone, Debug)]
pub(super) struct Nfa {
    /// All programs laid out one after another, each terminated by [`Inst::Match`].
    pub(super) insts: Vec<Inst>,
    /// Character classes referenced by index from `insts`.
    classes: Vec<Class>,
    /// Index of the first instruction of each program.
    starts: Vec<usize>,
    /// Bit-parallel tables, present when all programs fit in 128 states.
    pub(super) bits: Option<Box<Bits>>,
}

impl Nfa {
    /// Lays out `programs` one after another and builds the bit-parallel tables if they fit.
    pub(super) fn compile(programs: Vec<Vec<Tok>>) -> Nfa {
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
        let mut nfa = Nfa {
            insts,
            classes,
            starts,
            bits: None,
        };
        nfa.bits = Bits::build(&nfa).map(Box::new);
        nfa
    }

    /// Runs the NFA on `name`, starting every program `skip` literal states in.
    pub(super) fn run(&self, name: &str, skip: usize) -> bool {
        match &self.bits {
            Some(bits) => self.run_bits(bits, name, skip),
            None => self.run_sets(name, skip),
        }
    }

    /// Bit-parallel simulation for programs of at most 128 states.
    pub(super) fn run_bits(&self, bits: &Bits, name: &str, skip: usize) -> bool {
        bits.run(self, name, skip)
    }

    /// Sparse-bitset simulation for programs of any size.
    pub(super) fn run_sets(&self, name: &str, skip: usize) -> bool {
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
pub(super) trait StateWord:
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
pub(super) enum Bits {
    /// At most 64 states.
    Small(BitNfa<u64>),
    /// At most 128 states.
    Large(BitNfa<u128>),
}

impl Bits {
    fn build(nfa: &Nfa) -> Option<Bits> {
        let states = nfa.insts.len();
        if states <= 64 {
            Some(Bits::Small(BitNfa::build(nfa)))
        } else if states <= 128 {
            Some(Bits::Large(BitNfa::build(nfa)))
        } else {
            None
        }
    }

    fn run(&self, nfa: &Nfa, name: &str, skip: usize) -> bool {
        match self {
            Bits::Small(bits) => bits.run(nfa, name, skip),
            Bits::Large(bits) => bits.run(nfa, name, skip),
        }
    }
}

/// Precomputed bit masks for simulating a program whose states fit in one word `W`.
#[derive(Clone, Debug)]
pub(super) struct BitNfa<W> {
    /// Row of `rows` for each ASCII character.
    ascii_row: [u8; 128],
    /// Row shared by all non-ASCII characters, when the pattern names none of them.
    pub(super) other_row: Option<u8>,
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
    /// Builds the tables; the caller guarantees that `nfa.insts` fits in `W`.
    pub(super) fn build(nfa: &Nfa) -> BitNfa<W> {
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
            *slot = row_of(Self::move_masks(nfa, char::from(code)));
        }
        let names_non_ascii = nfa.insts.iter().any(|inst| match *inst {
            Inst::Lit(c) | Inst::OptLit(c) | Inst::PlusLit(c) => !c.is_ascii(),
            _ => false,
        }) || nfa
            .classes
            .iter()
            .any(|class| class.ranges.iter().any(|&(_, hi)| !hi.is_ascii()));
        // Every non-ASCII character moves like U+0080 unless the pattern names one.
        let other_row = (!names_non_ascii).then(|| row_of(Self::move_masks(nfa, '\u{80}')));
        let mut epsilon = W::ZERO;
        let mut dir_enter = W::ZERO;
        let mut accept = W::ZERO;
        let mut sure = W::ZERO;
        for (state, inst) in nfa.insts.iter().enumerate() {
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
            if accepts_everything_from(nfa.insts.get(state..).unwrap_or_default()) {
                sure |= bit;
            }
        }
        let starts = nfa
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
    fn move_masks(nfa: &Nfa, ch: char) -> (W, W) {
        let mut advance = W::ZERO;
        let mut stay = W::ZERO;
        for state in 0..nfa.insts.len() {
            let (adv, st) = nfa.moves(state, ch);
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

    pub(super) fn run(&self, nfa: &Nfa, name: &str, skip: usize) -> bool {
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
                        None => Self::move_masks(nfa, ch),
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
pub(super) fn accepts_everything_from(insts: &[Inst]) -> bool {
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
