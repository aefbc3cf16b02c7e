//! Tables and properties of both glob dialects.
use super::nfa::{BitNfa, Bits, Inst, accepts_everything_from};
use super::parse::parse_programs;
use super::program::{Atom, Tok};
use super::*;
use crate::diag::Hint;
use proptest::prelude::{
    Just, ProptestConfig, any, prop_assert, prop_assert_eq, prop_oneof, proptest,
};
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
    let nfa = &glob.nfa;
    let sets = nfa.run_sets(name, 0);
    if let Some(bits) = &nfa.bits {
        assert_eq!(
            nfa.run_bits(bits, name, 0),
            sets,
            "{:?} {name:?}",
            glob.pattern
        );
        // Also exercise the 128-bit tables on small programs.
        let large = BitNfa::<u128>::build(nfa);
        assert_eq!(large.run(nfa, name, 0), sets, "{:?} {name:?}", glob.pattern);
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
    assert!(g.nfa.bits.is_none(), "{} states", g.nfa.insts.len());
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
    assert!(g.nfa.bits.is_none());
    assert!(g.is_match(&"a".repeat(70)));
    assert!(g.is_match(&format!("{}zz", "ab".repeat(70))));
    assert!(!g.is_match(&"a".repeat(69)));
}

#[test]
fn word_sizes() {
    let small = glob("src/**/*.rs", CP);
    assert!(matches!(small.nfa.bits.as_deref(), Some(Bits::Small(_))));
    let large = glob(&format!("{}*", "ab?".repeat(40)), GH);
    assert!(matches!(large.nfa.bits.as_deref(), Some(Bits::Large(_))));
    assert!(large.is_match(&"a".repeat(40)));
    assert!(large.is_match(&format!("{}zz", "ab".repeat(40))));
    assert!(!large.is_match(&"a".repeat(39)));
    assert!(!large.is_match(&format!("{}/", "a".repeat(40))));
    let none = glob(&format!("{}*", "ab?".repeat(70)), GH);
    assert!(none.nfa.bits.is_none());
}

#[test]
fn early_accept_states() {
    assert!(accepts_everything_from(&[Inst::StarStar, Inst::Match]));
    assert!(accepts_everything_from(&[
        Inst::DirEnter,
        Inst::DirLoop,
        Inst::Star,
        Inst::Match
    ]));
    assert!(!accepts_everything_from(&[
        Inst::DirLoop,
        Inst::Star,
        Inst::Match
    ]));
    assert!(!accepts_everything_from(&[Inst::Star, Inst::Match]));
    assert!(!accepts_everything_from(&[
        Inst::StarStar,
        Inst::Lit('a'),
        Inst::Match
    ]));
    let g = glob("a/*/b/**", CP);
    assert!(g.is_match("a/x/b/c/d/e"));
    assert!(!g.is_match("a/x/c/b/d"));
}

#[test]
fn non_ascii_masks() {
    // Patterns naming non-ASCII characters compute masks per character.
    let g = glob("[à-é]*ü", CP);
    assert!(matches!(g.nfa.bits.as_deref(), Some(Bits::Small(b)) if b.other_row.is_none()));
    assert!(g.is_match("èxyü"));
    assert!(!g.is_match("èxyu"));
    assert!(!g.is_match("ëxyü"));
    // Otherwise all non-ASCII characters share one row.
    let g = glob("?*[!a]", CP);
    assert!(matches!(g.nfa.bits.as_deref(), Some(Bits::Small(b)) if b.other_row.is_some()));
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
    // 1024 expanded programs run on the sparse simulation; a shorter name keeps debug
    // builds quick.
    let g = glob(&"{a*,*a}".repeat(10), CP);
    let short = &name[..300];
    assert!(!g.is_match(&format!("{short}/")));
    assert!(g.is_match(short));
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
    #![proptest_config(ProptestConfig::with_cases(1024))]

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
