//! The git layer of polling against real git servers on loopback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchyard::sources::poll::git::{
    Advertisement, Credentials, Diff, GitError, Mirror, Remote, ls_remote,
};

use switchyard_lab::git::many_branches;
use switchyard_lab::{GitDaemon, GitHttp, Work, bare, git, or_skip};

const USER: &str = "poller";
const PASSWORD: &str = "correct-horse-battery";

/// A bare repository `r.git` served by `git daemon`, a work repository pushing to it, and an
/// empty mirror; `None` (the test is skipped) when git's daemon is not installed.
struct Setup {
    base: tempfile::TempDir,
    bare: PathBuf,
    daemon: GitDaemon,
    work: Work,
    state: tempfile::TempDir,
    mirror: Mirror,
}

impl Setup {
    fn new() -> Option<Setup> {
        let base = tempfile::tempdir().expect("temp dir");
        let bare = bare(base.path(), "r.git");
        let daemon = or_skip(GitDaemon::start(base.path()))?;
        let state = tempfile::tempdir().expect("temp dir");
        let mirror = Mirror::open(&state.path().join("mirror")).expect("mirror");
        Some(Setup {
            base,
            bare,
            daemon,
            work: Work::new(),
            state,
            mirror,
        })
    }

    /// `r.git` over git://, anonymous.
    fn remote(&self) -> Remote {
        anonymous(self.daemon.url("r.git"))
    }

    /// The server's refs, after fetching them all into the mirror.
    fn sync(&self) -> BTreeMap<String, String> {
        let refs = ls_remote(&self.remote()).expect("ls-remote").refs;
        let names: Vec<String> = refs.keys().cloned().collect();
        self.mirror.fetch(&self.remote(), &names).expect("fetch");
        refs
    }

    /// Pushes refspecs to `r.git`.
    fn push(&self, refspecs: &[&str]) {
        self.work.push(&self.bare, refspecs);
    }

    /// The refs the mirror holds, as `git for-each-ref` prints them.
    fn mirror_refs(&self) -> String {
        let dir = self.state.path().join("mirror");
        git(&dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
    }
}

fn anonymous(url: String) -> Remote {
    Remote {
        url,
        credentials: None,
    }
}

fn token(url: String, password: &str) -> Remote {
    Remote {
        url,
        credentials: Some(Credentials::Token {
            username: USER.into(),
            token: password.into(),
        }),
    }
}

fn diff(paths: &[&str], commit_count: u64) -> Diff {
    Diff {
        paths: paths.iter().map(|p| p.to_string()).collect(),
        complete: true,
        commit_count: Some(commit_count),
    }
}

const UNKNOWN: Diff = Diff {
    paths: Vec::new(),
    complete: false,
    commit_count: None,
};

fn refs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, sha)| (name.to_string(), sha.to_string()))
        .collect()
}

#[test]
fn ls_remote_lists_branches_and_tags_over_every_transport() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s.work.commit(&[("README", Some("hello"))], "one");
    let c2 = s
        .work
        .commit(&[("src/lib.rs", Some("fn main() {}"))], "two");
    let v1 = s.work.tag("v1", &c1, Some("release one"));
    s.work.tag("v1-light", &c2, None);
    s.work.git(&["branch", "archive", &c1]);
    s.work.git(&["branch", "develop", &c1]);
    s.push(&["main", "archive", "develop", "v1", "v1-light"]);
    git(&s.bare, &["update-ref", "refs/pull/1/head", &c2]);
    // HEAD names develop, which shares its commit with archive: a guess would say archive.
    git(&s.bare, &["symbolic-ref", "HEAD", "refs/heads/develop"]);
    assert_ne!(v1, c1, "an annotated tag is an object of its own");

    let Some(http) = or_skip(GitHttp::start(s.base.path(), USER, PASSWORD)) else {
        return;
    };
    let expected = Advertisement {
        refs: refs(&[
            ("refs/heads/archive", &c1),
            ("refs/heads/develop", &c1),
            ("refs/heads/main", &c2),
            ("refs/tags/v1", &v1),
            ("refs/tags/v1-light", &c2),
        ]),
        default_branch: Some("refs/heads/develop".into()),
    };
    for remote in [
        s.remote(),
        anonymous(format!("file://{}", s.bare.display())),
        anonymous(s.bare.display().to_string()),
        token(http.url("r.git"), PASSWORD),
    ] {
        assert_eq!(
            ls_remote(&remote).expect("ls-remote"),
            expected,
            "{}",
            remote.url
        );
    }
}

#[test]
fn five_hundred_refs_are_listed_and_fetched() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s.work.commit(&[("a", Some("1"))], "one");
    s.push(&["main"]);
    many_branches(&s.bare, 500, &c1);
    let Some(http) = or_skip(GitHttp::start(s.base.path(), USER, PASSWORD)) else {
        return;
    };

    for remote in [s.remote(), token(http.url("r.git"), PASSWORD)] {
        let refs = ls_remote(&remote).expect("ls-remote").refs;
        assert_eq!(refs.len(), 501, "{}", remote.url);
        assert_eq!(refs["refs/heads/bulk/0499"], c1);
        assert!(refs.values().all(|sha| *sha == c1));
    }
    let fetched = s.sync();
    assert_eq!(s.mirror_refs().lines().count(), 501);
    assert_eq!(fetched.len(), 501);
    assert!(
        s.mirror_refs()
            .contains(&format!("refs/heads/bulk/0000 {c1}"))
    );
}

#[test]
fn new_commits_are_fetched_and_diffed() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s.work.commit(
        &[
            ("a", Some("1")),
            ("dir/b", Some("1")),
            ("old", Some("same")),
        ],
        "one",
    );
    s.push(&["main"]);
    s.sync();
    s.work
        .commit(&[("dir/b", Some("2")), ("c/d", Some("new"))], "two");
    let c3 = s.work.commit(
        &[("a", None), ("old", None), ("renamed", Some("same"))],
        "three",
    );
    s.push(&["main"]);

    assert!(!s.mirror.has(&c3));
    assert_eq!(s.sync()["refs/heads/main"], c3);
    assert!(s.mirror.has(&c3));
    assert_eq!(
        s.mirror.diff(Some(&c1), Some(&c3), None).expect("diff"),
        diff(&["a", "c/d", "dir/b", "old", "renamed"], 2)
    );
    assert_eq!(
        s.mirror.diff(Some(&c3), Some(&c3), None).expect("diff"),
        diff(&[], 0)
    );
}

#[test]
fn a_forced_push_is_a_tree_diff() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s
        .work
        .commit(&[("x", Some("1")), ("keep", Some("k"))], "one");
    s.work.commit(&[("x", Some("2"))], "two");
    let c3 = s.work.commit(&[("y", Some("1"))], "three");
    s.push(&["main"]);
    s.sync();
    s.work.reset_hard(&c1);
    let c4 = s.work.commit(&[("z", Some("1"))], "four");
    s.push(&["+main"]);

    assert_eq!(s.sync()["refs/heads/main"], c4);
    // x went back to its first text, y is gone, z is new; keep did not change.
    assert_eq!(
        s.mirror.diff(Some(&c3), Some(&c4), None).expect("diff"),
        diff(&["x", "y", "z"], 1)
    );
}

#[test]
fn a_new_branch_is_diffed_against_its_merge_base_with_the_default_branch() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s
        .work
        .commit(&[("m", Some("1")), ("lib/x", Some("1"))], "one");
    s.work.branch("feature", &c1);
    let f1 = s.work.commit(&[("f", Some("1"))], "f one");
    let f2 = s.work.commit(&[("lib/x", Some("2"))], "f two");
    s.work.git(&["checkout", "--quiet", "main"]);
    let c2 = s.work.commit(&[("m", Some("2"))], "two");
    s.push(&["main", "feature"]);
    let refs = s.sync();
    assert_eq!(refs["refs/heads/feature"], f2);
    assert_ne!(f1, f2);

    // Not against main's tip, which would list m too.
    assert_eq!(
        s.mirror.diff(None, Some(&f2), Some(&c2)).expect("diff"),
        diff(&["f", "lib/x"], 2)
    );
    // Without a default branch: every file, every commit.
    assert_eq!(
        s.mirror.diff(None, Some(&f2), None).expect("diff"),
        diff(&["f", "lib/x", "m"], 3)
    );
}

#[test]
fn an_orphan_branch_lists_every_file() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s.work.commit(&[("m", Some("1"))], "one");
    s.work.orphan("pages");
    let p1 = s.work.commit(
        &[("index.html", Some("<p>")), ("css/a.css", Some(""))],
        "pages",
    );
    s.push(&["main", "pages"]);
    s.sync();

    assert_eq!(
        s.mirror.diff(None, Some(&p1), Some(&c1)).expect("diff"),
        diff(&["css/a.css", "index.html"], 1)
    );
}

#[test]
fn tags_are_created_and_deleted() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s.work.commit(&[("m", Some("1"))], "one");
    s.work.branch("side", &c1);
    let t = s.work.commit(&[("f", Some("1"))], "tagged");
    let annotated = s.work.tag("v1", &t, Some("release"));
    let light = s.work.tag("v1-light", &t, None);
    s.work.git(&["checkout", "--quiet", "main"]);
    let c2 = s.work.commit(&[("m", Some("2"))], "two");
    s.push(&["main", "v1", "v1-light"]);

    let refs = s.sync();
    assert_eq!(refs["refs/tags/v1"], annotated);
    assert_eq!(refs["refs/tags/v1-light"], t);
    assert_ne!(annotated, t);
    for tag in [&annotated, &light] {
        assert_eq!(
            s.mirror.diff(None, Some(tag), Some(&c2)).expect("diff"),
            diff(&["f"], 1)
        );
    }

    s.push(&[":refs/tags/v1", ":refs/tags/v1-light"]);
    let refs = ls_remote(&s.remote()).expect("ls-remote").refs;
    assert_eq!(
        refs,
        BTreeMap::from([("refs/heads/main".into(), c2.clone())])
    );
    for name in ["refs/tags/v1", "refs/tags/v1-light"] {
        s.mirror.delete_ref(name).expect("delete");
        s.mirror
            .delete_ref(name)
            .expect("deleting an absent ref is fine");
    }
    assert_eq!(s.mirror_refs(), format!("refs/heads/main {c2}"));
    assert_eq!(
        s.mirror
            .diff(Some(&annotated), None, Some(&c2))
            .expect("diff"),
        diff(&[], 0)
    );
}

#[test]
fn a_deleted_branch_has_no_paths() {
    let Some(s) = Setup::new() else {
        return;
    };
    s.work.commit(&[("m", Some("1"))], "one");
    s.work.branch("gone", "main");
    let g = s.work.commit(&[("g", Some("1"))], "gone");
    s.push(&["main", "gone"]);
    s.sync();
    s.push(&[":refs/heads/gone"]);

    let refs = ls_remote(&s.remote()).expect("ls-remote").refs;
    assert!(!refs.contains_key("refs/heads/gone"), "{refs:?}");
    assert_eq!(
        s.mirror.diff(Some(&g), None, None).expect("diff"),
        diff(&[], 0)
    );
    s.mirror.delete_ref("refs/heads/gone").expect("delete");
    assert!(!s.mirror_refs().contains("gone"));
    // Fetching a ref the server no longer has is no error; it brings nothing.
    let gone = ["refs/heads/gone".to_owned()];
    s.mirror.fetch(&s.remote(), &gone).expect("fetch");
    assert!(!s.mirror_refs().contains("gone"));
}

#[test]
fn objects_missing_from_the_mirror_make_an_incomplete_diff() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s.work.commit(&[("a", Some("1"))], "one");
    s.push(&["main"]);
    s.sync();
    let c2 = s.work.commit(&[("a", Some("2"))], "two");
    s.push(&["main"]);
    let never = "0123456789abcdef0123456789abcdef01234567";

    assert!(s.mirror.has(&c1));
    assert!(!s.mirror.has(&c2));
    assert!(!s.mirror.has(&c1[..12]), "a prefix is not an object id");
    for (before, after) in [(Some(&*c1), &*c2), (Some(never), &*c1), (None, &*c2)] {
        assert_eq!(
            s.mirror.diff(before, Some(after), Some(&c1)).expect("diff"),
            UNKNOWN
        );
    }
}

#[test]
fn a_stopped_server_is_unreachable_at_once() {
    let Some(mut s) = Setup::new() else {
        return;
    };
    s.work.commit(&[("a", Some("1"))], "one");
    s.push(&["main"]);
    s.daemon.stop();

    let started = Instant::now();
    let error = ls_remote(&s.remote()).expect_err("server is down");
    assert!(matches!(error, GitError::Unreachable { .. }), "{error:?}");
    let fetch = s.mirror.fetch(&s.remote(), &["refs/heads/main".into()]);
    assert!(
        matches!(fetch, Err(GitError::Unreachable { .. })),
        "{fetch:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error.to_string(),
        format!(
            "cannot reach {}: failed to connect to 127.0.0.1: Connection refused",
            s.remote().url
        )
    );
}

#[test]
fn http_needs_the_right_password() {
    let Some(s) = Setup::new() else {
        return;
    };
    let c1 = s.work.commit(&[("a", Some("1"))], "one");
    s.push(&["main"]);
    let Some(http) = or_skip(GitHttp::start(s.base.path(), USER, PASSWORD)) else {
        return;
    };
    let url = http.url("r.git");
    let in_url = url.replacen("http://", &format!("http://{USER}:wrong-in-url@"), 1);

    for remote in [
        token(url.clone(), "wrong-password"),
        anonymous(url.clone()),
        anonymous(in_url),
    ] {
        let listed = ls_remote(&remote).expect_err("refused");
        let fetched = s
            .mirror
            .fetch(&remote, &["refs/heads/main".into()])
            .expect_err("refused");
        for error in [listed, fetched] {
            assert!(matches!(error, GitError::Auth { .. }), "{error:?}");
            let shown = format!("{error} {error:?}");
            assert!(shown.contains(&url), "{shown}");
            for secret in ["wrong", PASSWORD] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }

    let right = token(url, PASSWORD);
    assert_eq!(
        ls_remote(&right).expect("ls-remote").refs["refs/heads/main"],
        c1
    );
    s.mirror
        .fetch(&right, &["refs/heads/main".into()])
        .expect("fetch");
    assert_eq!(
        s.mirror.diff(None, Some(&c1), None).expect("diff"),
        diff(&["a"], 1)
    );
}

#[test]
fn a_missing_repository_is_not_found() {
    let Some(s) = Setup::new() else {
        return;
    };
    let Some(http) = or_skip(GitHttp::start(s.base.path(), USER, PASSWORD)) else {
        return;
    };
    let nowhere = s.base.path().join("nope.git").display().to_string();
    for (remote, libgit2_says) in [
        (
            anonymous(s.daemon.url("nope.git")),
            "remote error: access denied or repository not exported: /nope.git".to_owned(),
        ),
        (
            token(http.url("nope.git"), PASSWORD),
            "unexpected http status code: 404".to_owned(),
        ),
        (
            anonymous(format!("file://{nowhere}")),
            format!("failed to resolve path '{nowhere}': No such file or directory"),
        ),
        // libgit2 itself says "unsupported URL protocol".
        (
            anonymous(nowhere.clone()),
            "there is no such directory".to_owned(),
        ),
    ] {
        let error = ls_remote(&remote).expect_err("no such repository");
        assert_eq!(
            error.to_string(),
            format!("no repository at {}: {libgit2_says}", remote.url)
        );
        assert!(matches!(error, GitError::NotFound { .. }), "{error:?}");
        let fetched = s.mirror.fetch(&remote, &["refs/heads/main".into()]);
        assert_eq!(fetched, Err(error));
    }
}

#[test]
fn refs_that_are_not_ref_names_are_refused() {
    let Some(s) = Setup::new() else {
        return;
    };
    let error = s
        .mirror
        .fetch(&s.remote(), &["refs/heads/a:refs/heads/b".into()])
        .expect_err("not a ref name");
    assert_eq!(
        error.to_string(),
        format!(
            "git failed on {}: \"refs/heads/a:refs/heads/b\" is not a ref name to fetch",
            s.remote().url
        )
    );
    s.mirror.fetch(&s.remote(), &[]).expect("nothing to fetch");
}
