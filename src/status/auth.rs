//! Who may act on the status page: whoever knows `operator_token`. It works without
//! JavaScript, and the token itself never leaves the login form:
//!
//! - `POST /login` takes the token from a form and compares it with the configured one in
//!   constant time (`signature::secrets_equal`: `subtle` on digests of both, so not even the
//!   length shows). When they are equal, the answer sets a **signed cookie** (the `cookie`
//!   crate's signed jar, HMAC-SHA256) holding the time the session was issued, under a key
//!   derived from a random key of this process and the token (`HttpOnly`, `SameSite=Strict`,
//!   12 hours). The cookie never holds the token, and a session ends with the process, with the
//!   token's change, or after 12 hours.
//! - Every page an operator sees embeds a **CSRF token** in each form: an HMAC of the cookie's
//!   value under the same key. An action needs both the cookie and the form's token (each
//!   compared in constant time); another site can send neither (SameSite keeps the cookie at
//!   home, and it cannot read the page).
//!
//! The token is read from its reference (`env:NAME`, `file:PATH`) when it is needed, so a
//! token rotated in its file takes effect at once (and ends every session).

use std::time::Duration;

use cookie::{Cookie, CookieJar, Key, SameSite};
use sha2::Sha256;

use crate::secret::{ResolveError, SecretRef};
use crate::signature::{hmac_sha256_hex, secrets_equal};

/// The cookie's name.
pub const COOKIE: &str = "switchyard_session";
/// How long a session lasts.
pub const SESSION_FOR: Duration = Duration::from_secs(12 * 3600);

/// The operator token's reference and this process's random key.
pub struct Operator {
    token: SecretRef,
    process_key: [u8; 32],
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The reference only: never the key, never the token.
        f.debug_struct("Operator")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// A logged-in operator: the cookie's signed value and the CSRF token of its forms.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    value: String,
    csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(..)")
    }
}

/// The session cookie's attributes, with `value` and `max_age`.
fn session_cookie(value: String, max_age: Duration) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build()
}

impl Session {
    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `offered` (a form's `csrf` field) is this session's CSRF token.
    pub fn csrf_matches(&self, offered: &str) -> bool {
        secrets_equal(self.csrf.as_bytes(), offered.as_bytes())
    }

    /// The `Set-Cookie` value that starts this session in the browser.
    pub fn set_cookie(&self) -> String {
        session_cookie(self.value.clone(), SESSION_FOR).to_string()
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    session_cookie(String::new(), Duration::ZERO).to_string()
}

impl Operator {
    /// The operator behind `token`, with a fresh random key (sessions of an earlier process
    /// are not valid in this one).
    pub fn new(token: SecretRef) -> std::io::Result<Operator> {
        let mut process_key = [0u8; 32];
        getrandom::fill(&mut process_key).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Operator { token, process_key })
    }

    /// The reference the token is read from (`env:NAME`), for messages.
    pub fn reference(&self) -> String {
        self.token.to_string()
    }

    /// Whether the token can be read now (the actions are possible).
    pub fn available(&self) -> Result<(), ResolveError> {
        self.token.resolve().map(drop)
    }

    /// The key sessions are signed with: this process's key and the token (the signed jar
    /// takes 64 bytes and signs with the first 32).
    fn key(&self, token: &str) -> Key {
        use hmac::{Hmac, KeyInit as _, Mac as _};
        let mut bytes = [0u8; 64];
        for (half, purpose) in bytes.chunks_mut(32).zip(["session", "unused"]) {
            let mut mac = Hmac::<Sha256>::new_from_slice(&self.process_key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            mac.update(format!("switchyard status {purpose}\0").as_bytes());
            mac.update(token.as_bytes());
            half.copy_from_slice(&mac.finalize().into_bytes());
        }
        Key::from(&bytes)
    }

    /// The session issued at `issued_s`: the cookie's signed value and its CSRF token.
    fn session_at(key: &Key, issued_s: i64) -> Session {
        let mut jar = CookieJar::new();
        jar.signed_mut(key)
            .add(Cookie::new(COOKIE, issued_s.to_string()));
        let value = jar
            .get(COOKIE)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        let csrf = hmac_sha256_hex(key.signing(), format!("csrf:{value}").as_bytes());
        Session { value, csrf }
    }

    /// A new session when `offered` is the token (compared in constant time), `None` when it
    /// is not; an error when the token cannot be read.
    pub fn login(&self, offered: &str, now_s: i64) -> Result<Option<Session>, ResolveError> {
        let token = self.token.resolve()?;
        if !secrets_equal(token.as_bytes(), offered.as_bytes()) {
            return Ok(None);
        }
        Ok(Some(Operator::session_at(&self.key(&token), now_s)))
    }

    /// The session of a request's `Cookie` header, when it holds one that this process
    /// issued for the current token less than [`SESSION_FOR`] ago.
    pub fn session(&self, cookie_header: Option<&str>, now_s: i64) -> Option<Session> {
        let sent = Cookie::split_parse(cookie_header?)
            .filter_map(Result::ok)
            .find(|c| c.name() == COOKIE)?;
        let token = self.token.resolve().ok()?;
        let key = self.key(&token);
        let value = sent.value().to_owned();
        let issued = CookieJar::new().signed(&key).verify(sent.into_owned())?;
        let issued_s: i64 = issued.value().parse().ok()?;
        let age = now_s.checked_sub(issued_s)?;
        // A minute of clock skew forward; nothing older than a session lasts.
        if age < -60 || age >= SESSION_FOR.as_secs() as i64 {
            return None;
        }
        let session = Operator::session_at(&key, issued_s);
        secrets_equal(session.value.as_bytes(), value.as_bytes()).then_some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operator whose token is in a file of `dir`.
    fn operator(dir: &std::path::Path, token: &str) -> Operator {
        let path = dir.join("token");
        std::fs::write(&path, format!("{token}\n")).expect("write the token");
        Operator::new(SecretRef::File(path)).expect("an operator")
    }

    fn cookie_of(session: &Session) -> String {
        let set = session.set_cookie();
        let pair = set.split(';').next().expect("a pair");
        format!("theme=dark; {pair}")
    }

    #[test]
    fn only_the_token_logs_in_and_the_cookie_never_holds_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let op = operator(dir.path(), "s3cret-operator-token");
        assert_eq!(op.login("wrong", 1_000).expect("readable"), None);
        assert_eq!(op.login("", 1_000).expect("readable"), None);
        let session = op
            .login("s3cret-operator-token", 1_000)
            .expect("readable")
            .expect("the right token");
        let set = session.set_cookie();
        assert!(!set.contains("s3cret"), "{set}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(
                set.split("; ").any(|a| a == attribute),
                "{attribute}: {set}"
            );
        }
        assert!(set.starts_with("switchyard_session="), "{set}");
        assert!(!format!("{session:?} {op:?}").contains("s3cret"));
        assert_eq!(
            op.session(Some(&cookie_of(&session)), 1_010),
            Some(session.clone())
        );
        assert!(session.csrf_matches(session.csrf()));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&session.csrf()[1..]));
        let cleared = clear_cookie();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=0"] {
            assert!(
                cleared.split("; ").any(|a| a == attribute),
                "{attribute}: {cleared}"
            );
        }
        assert!(cleared.starts_with("switchyard_session=;"), "{cleared}");
    }

    #[test]
    fn a_session_ends_with_its_time_the_process_or_the_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let op = operator(dir.path(), "first-token");
        let session = op
            .login("first-token", 1_000)
            .expect("readable")
            .expect("logged in");
        let cookie = cookie_of(&session);
        let lasts = SESSION_FOR.as_secs() as i64;
        assert!(op.session(Some(&cookie), 1_000 + lasts - 1).is_some());
        assert!(
            op.session(Some(&cookie), 1_000 + lasts).is_none(),
            "expired"
        );
        assert!(op.session(Some(&cookie), 0).is_none(), "from the future");
        // The issue time changed under the signature.
        let forged = cookie.replace("1000", "1001");
        assert_ne!(forged, cookie);
        assert!(op.session(Some(&forged), 1_010).is_none(), "another time");
        assert!(
            op.session(Some("switchyard_session=garbage"), 1_010)
                .is_none()
        );
        assert!(op.session(Some("switchyard_session=1000"), 1_010).is_none());
        assert!(op.session(None, 1_010).is_none());
        let other_process = Operator::new(op.token.clone()).expect("an operator");
        assert!(other_process.session(Some(&cookie), 1_010).is_none());
        std::fs::write(dir.path().join("token"), "second-token").expect("rotate");
        assert!(op.session(Some(&cookie), 1_010).is_none(), "a new token");
    }

    #[test]
    fn an_unreadable_token_logs_nobody_in() {
        let op = Operator::new(SecretRef::Env("SWITCHYARD_TEST_NO_SUCH_TOKEN".into()))
            .expect("an operator");
        assert!(op.login("anything", 1).is_err());
        assert!(op.available().is_err());
        assert_eq!(op.reference(), "env:SWITCHYARD_TEST_NO_SUCH_TOKEN");
    }
}
