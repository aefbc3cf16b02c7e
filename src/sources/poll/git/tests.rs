//! The git2 side against real repositories on disk: advertisement, mirror, diffs, counts.

use super::*;

#[test]
fn debug_prints_no_secret() {
    let remote = Remote {
        url: "https://bot:urlpass@example.com/r".into(),
        credentials: Some(Credentials::Token {
            username: "bot".into(),
            token: "tok3n".into(),
        }),
    };
    let key = Credentials::SshKey {
        username: None,
        private_key: "-----BEGIN KEY-----".into(),
        passphrase: Some("hunter2".into()),
    };
    let printed = format!("{remote:?} {key:?}");
    for secret in ["urlpass", "tok3n", "BEGIN", "hunter2"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(
        printed.contains("<redacted>") && printed.contains("bot"),
        "{printed}"
    );
}

#[test]
fn each_credential_is_offered_once() {
    let token = Credentials::Token {
        username: "bot".into(),
        token: "t".into(),
    };
    let userpass = CredentialType::USER_PASS_PLAINTEXT;
    let mut offered = Offered::default();
    let first = answer(Some(&token), None, userpass, &mut offered);
    assert_eq!(
        first.map(|c| c.credtype()).ok(),
        Some(CredentialType::USER_PASS_PLAINTEXT.bits())
    );
    let again = answer(Some(&token), None, userpass, &mut offered).err();
    assert_eq!(again.map(|e| e.code()), Some(ErrorCode::Auth));

    let key = Credentials::SshKey {
        username: Some("deploy".into()),
        private_key: "not a key".into(),
        passphrase: None,
    };
    let mut offered = Offered::default();
    let ask = |allowed, offered: &mut Offered| {
        answer(Some(&key), None, allowed, offered).map(|c| c.credtype())
    };
    assert_eq!(
        ask(CredentialType::USERNAME, &mut offered).ok(),
        Some(CredentialType::USERNAME.bits())
    );
    assert_eq!(
        ask(
            CredentialType::SSH_KEY | CredentialType::SSH_MEMORY,
            &mut offered
        )
        .ok(),
        Some(CredentialType::SSH_MEMORY.bits())
    );
    for allowed in [CredentialType::SSH_MEMORY, CredentialType::USERNAME] {
        assert_eq!(
            ask(allowed, &mut offered).err().map(|e| e.code()),
            Some(ErrorCode::Auth)
        );
    }

    let wrong_kind = answer(
        Some(&token),
        None,
        CredentialType::SSH_KEY,
        &mut Offered::default(),
    );
    assert_eq!(wrong_kind.err().map(|e| e.code()), Some(ErrorCode::Auth));
    let none = answer(None, None, userpass, &mut Offered::default());
    assert_eq!(none.err().map(|e| e.code()), Some(ErrorCode::Auth));
}

#[test]
fn libgit2_errors_are_sorted() {
    use ErrorClass as Class;
    use ErrorCode as Code;
    // What libgit2 1.9 says in each case (most seen in tests/it/poll_git.rs).
    for (code, class, message, expected) in [
        (
            Code::Auth,
            Class::Callback,
            "the server refused the user name and token",
            "Auth",
        ),
        (
            Code::Auth,
            Class::Http,
            "unexpected authentication failure",
            "Auth",
        ),
        (
            Code::GenericError,
            Class::Http,
            "unexpected http status code: 403",
            "Auth",
        ),
        (
            Code::GenericError,
            Class::Http,
            "unexpected http status code: 404",
            "NotFound",
        ),
        (
            Code::GenericError,
            Class::Net,
            "remote error: access denied or repository not exported: /nope.git",
            "NotFound",
        ),
        (
            Code::GenericError,
            Class::Os,
            "failed to resolve path '/srv/nope.git': No such file or directory",
            "NotFound",
        ),
        (
            Code::GenericError,
            Class::Os,
            "failed to connect to 127.0.0.1: Connection refused",
            "Unreachable",
        ),
        (
            Code::GenericError,
            Class::Net,
            "error receiving data from socket: Connection reset by peer",
            "Unreachable",
        ),
        (
            Code::GenericError,
            Class::Net,
            "failed to resolve address for nohost.invalid: Name or service not known",
            "Unreachable",
        ),
        (
            Code::Certificate,
            Class::Ssh,
            "remote host key is not trusted",
            "HostKey",
        ),
        (
            Code::GenericError,
            Class::Http,
            "unexpected http status code: 500",
            "Other",
        ),
    ] {
        let e = git2::Error::new(code, class, message);
        let variant = match classify("u".into(), message.into(), &e) {
            GitError::Auth { .. } => "Auth",
            GitError::Unreachable { .. } => "Unreachable",
            GitError::NotFound { .. } => "NotFound",
            GitError::Mirror { .. } => "Mirror",
            GitError::HostKey { .. } => "HostKey",
            GitError::Other { .. } => "Other",
        };
        assert_eq!(variant, expected, "{message}");
    }
}

#[test]
fn messages_name_the_url_without_secrets() {
    let remote = Remote {
        url: "https://bot:urlpass@example.com/r.git".into(),
        credentials: Some(Credentials::Token {
            username: "bot".into(),
            token: "tok3n".into(),
        }),
    };
    let said = "cannot use https://bot:urlpass@example.com/r.git with tok3n";
    let error = remote.error(&git2::Error::new(
        ErrorCode::GenericError,
        ErrorClass::Net,
        said,
    ));
    assert_eq!(
        error.to_string(),
        "cannot reach https://example.com/r.git: \
         cannot use https://example.com/r.git with <redacted>"
    );
    let local = Remote {
        url: "/nonexistent/r.git".into(),
        credentials: None,
    };
    let unsupported = "unsupported URL protocol";
    let error = local.error(&git2::Error::new(
        ErrorCode::GenericError,
        ErrorClass::Net,
        unsupported,
    ));
    assert_eq!(
        error.to_string(),
        "no repository at /nonexistent/r.git: there is no such directory"
    );
}

#[test]
fn paths_stop_at_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mirror = Mirror::open(dir.path()).expect("mirror");
    let repo = &mirror.repo;
    let blob = repo.blob(b"same").expect("blob");
    let mut tree = repo.treebuilder(None).expect("tree builder");
    for i in 0..=MAX_PATHS {
        tree.insert(format!("f{i:05}"), blob, 0o100_644)
            .expect("entry");
    }
    let tree = repo.find_tree(tree.write().expect("tree")).expect("tree");
    let someone = git2::Signature::now("t", "t@example.com").expect("signature");
    let commit = repo
        .commit(None, &someone, &someone, "many", &tree, &[])
        .expect("commit")
        .to_string();

    let diff = mirror.diff(None, Some(&commit), None).expect("diff");
    assert_eq!(diff.paths.len(), MAX_PATHS);
    assert_eq!(diff.paths.last().map(String::as_str), Some("f09999"));
    assert_eq!((diff.complete, diff.commit_count), (false, Some(1)));
}

#[test]
fn a_silent_server_times_out() {
    // Accepts connections (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let remote = Remote {
        url: format!("git://{}/repo", silent.local_addr().expect("addr")),
        credentials: None,
    };
    let limits = Timeouts {
        connect: Duration::from_millis(100),
        io: Duration::from_millis(200),
    };
    let started = Instant::now();
    let error = ls_remote_within(&remote, limits).expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error,
        GitError::Unreachable {
            url: remote.url.clone(),
            message: "no answer within 300ms".into()
        }
    );
}
