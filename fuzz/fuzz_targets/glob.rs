//! Globs of both dialects: any pattern compiles or is refused, and a compiled one matches any
//! name, never a panic. The input is `PATTERN\nNAME`; its first byte picks the dialect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::glob::{Dialect, Glob, escape};

fuzz_target!(|data: &[u8]| {
    let [pick, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let dialect = if pick % 2 == 0 {
        Dialect::CodePipeline
    } else {
        Dialect::GitHub
    };
    let (pattern, name) = text.split_once('\n').unwrap_or((text, "refs/heads/main"));
    if let Ok(glob) = Glob::new(pattern, dialect) {
        let _ = glob.is_match(name);
        let _ = glob.matches_everything();
    }
    // A name escaped for a dialect is a pattern that matches exactly it.
    if let Ok(exact) = Glob::new(&escape(name, dialect), dialect) {
        assert!(
            exact.is_match(name),
            "{dialect:?}: escape({name:?}) does not match it"
        );
    }
});
