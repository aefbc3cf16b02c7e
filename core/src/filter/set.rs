//! A set of globs matched together: one pass over a name yields every glob that matches it.
//!
//! Shaped like globset: each glob is filed under the cheapest exact strategy it allows
//! (literal, directory prefix, suffix, base name, everything) so that a monorepo's thousands
//! of patterns cost a few hash lookups per path; only the rest run their matcher, and those
//! are indexed by the directory their literal prefix names.

use rustc_hash::FxHashMap;

use crate::glob::{Dialect, Glob, GlobError, Strategy};

/// Globs of both dialects, deduplicated, with their candidate indexes.
#[derive(Debug, Default)]
pub struct PatternSet {
    globs: Vec<Glob>,
    ids: FxHashMap<(Dialect, String), u32>,
    literal: FxHashMap<String, Vec<u32>>,
    dir_prefix: FxHashMap<String, Vec<u32>>,
    extension: FxHashMap<String, Vec<(u32, String)>>,
    base_name: FxHashMap<String, Vec<u32>>,
    everything: Vec<u32>,
    general_by_dir: FxHashMap<String, Vec<u32>>,
    scan: Vec<u32>,
}

impl PatternSet {
    /// Adds a glob (or finds the same one added before) and returns its id.
    pub fn add(&mut self, pattern: &str, dialect: Dialect) -> Result<u32, GlobError> {
        if let Some(&id) = self.ids.get(&(dialect, pattern.to_owned())) {
            return Ok(id);
        }
        let glob = Glob::new(pattern, dialect)?;
        let id = u32::try_from(self.globs.len()).unwrap_or(u32::MAX);
        match glob.strategy() {
            Strategy::Literal(name) => self.literal.entry(name.clone()).or_default().push(id),
            Strategy::Prefix(prefix) if prefix.ends_with('/') => {
                self.dir_prefix.entry(prefix.clone()).or_default().push(id);
            }
            Strategy::Suffix(suffix) if extension_of(suffix).is_some() => {
                let ext = extension_of(suffix).unwrap_or_default().to_owned();
                self.extension
                    .entry(ext)
                    .or_default()
                    .push((id, suffix.clone()));
            }
            Strategy::BaseName(name) => self.base_name.entry(name.clone()).or_default().push(id),
            Strategy::Everything => self.everything.push(id),
            Strategy::Prefix(prefix) | Strategy::General { prefix } => match prefix.rfind('/') {
                Some(i) => {
                    self.general_by_dir
                        .entry(prefix[..=i].to_owned())
                        .or_default()
                        .push(id);
                }
                None => self.scan.push(id),
            },
            Strategy::Suffix(_) => self.scan.push(id),
        }
        self.ids.insert((dialect, pattern.to_owned()), id);
        self.globs.push(glob);
        Ok(id)
    }

    /// The glob with this id.
    pub fn glob(&self, id: u32) -> &Glob {
        &self.globs[id as usize]
    }

    /// Number of distinct globs.
    pub fn len(&self) -> usize {
        self.globs.len()
    }

    /// True when no glob was added.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// Writes the ids of every glob matching `name` into `out`, sorted and without repeats.
    pub fn matches_into(&self, name: &str, out: &mut Vec<u32>) {
        out.clear();
        if let Some(ids) = self.literal.get(name) {
            out.extend_from_slice(ids);
        }
        out.extend_from_slice(&self.everything);
        for (i, _) in name.match_indices('/') {
            let dir = &name[..=i];
            if let Some(ids) = self.dir_prefix.get(dir) {
                out.extend_from_slice(ids);
            }
            if let Some(ids) = self.general_by_dir.get(dir) {
                out.extend(
                    ids.iter()
                        .copied()
                        .filter(|&id| self.glob(id).is_match(name)),
                );
            }
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        if let Some(ids) = self.base_name.get(base) {
            out.extend_from_slice(ids);
        }
        if let Some(ext) = extension_of(base)
            && let Some(entries) = self.extension.get(ext)
        {
            out.extend(
                entries
                    .iter()
                    .filter(|(_, s)| name.ends_with(s.as_str()))
                    .map(|(id, _)| *id),
            );
        }
        out.extend(
            self.scan
                .iter()
                .copied()
                .filter(|&id| self.glob(id).is_match(name)),
        );
        out.sort_unstable();
        out.dedup();
    }

    /// The ids of every glob matching `name`.
    pub fn matches(&self, name: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.matches_into(name, &mut out);
        out
    }
}

/// The text after the last `.` of a suffix or base name, when it has one and no `/` follows.
fn extension_of(s: &str) -> Option<&str> {
    let i = s.rfind('.')?;
    let ext = &s[i + 1..];
    (!ext.is_empty() && !ext.contains('/')).then_some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PATTERNS: &[(&str, Dialect)] = &[
        ("services/api/**", Dialect::CodePipeline),
        ("**/*.md", Dialect::CodePipeline),
        ("**/*.tar.gz", Dialect::CodePipeline),
        ("**/Makefile", Dialect::GitHub),
        ("README.md", Dialect::GitHub),
        ("**", Dialect::GitHub),
        ("services/*/src/*.rs", Dialect::CodePipeline),
        ("services/{api,web}/**", Dialect::CodePipeline),
        ("*.jsx?", Dialect::GitHub),
        ("**-alpha", Dialect::GitHub),
        ("src**", Dialect::GitHub),
        ("docs/v[12]/*.md", Dialect::CodePipeline),
    ];

    fn set() -> PatternSet {
        let mut set = PatternSet::default();
        for (p, d) in PATTERNS {
            set.add(p, *d).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        set
    }

    fn naive(set: &PatternSet, name: &str) -> Vec<u32> {
        (0..set.len() as u32)
            .filter(|&id| set.glob(id).is_match(name))
            .collect()
    }

    #[test]
    fn same_glob_twice_is_one_id() {
        let mut set = set();
        let n = set.len();
        assert_eq!(set.add("**/*.md", Dialect::CodePipeline).ok(), Some(1));
        assert_eq!(set.len(), n);
        assert_ne!(set.add("**/*.md", Dialect::GitHub).ok(), Some(1));
    }

    #[test]
    fn strategies_agree_with_matching_each_glob() {
        let set = set();
        for name in [
            "services/api/src/main.rs",
            "services/web/index.js",
            "README.md",
            "docs/README.md",
            "a/b/Makefile",
            "Makefile",
            "page.jsx",
            "page.js",
            "releases/x/3-alpha",
            "src/lib.rs",
            "srcfoo",
            "dist/x.tar.gz",
            "docs/v1/a.md",
            "docs/v3/a.md",
        ] {
            assert_eq!(set.matches(name), naive(&set, name), "{name}");
        }
    }

    proptest! {
        #[test]
        fn strategies_agree_on_random_names(name in "[a-zA-Z./_-]{0,12}(/[a-zA-Z._-]{0,8}){0,3}") {
            let set = set();
            prop_assert_eq!(set.matches(&name), naive(&set, &name));
        }
    }
}
