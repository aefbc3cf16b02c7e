//! Who may act on the status page: whoever knows `operator_token`. It works without
//! JavaScript, and the token itself never leaves the login form:
//!
//! - `POST /login` takes the token from a form and compares it with the configured one in
//!   constant time (`signature::secrets_equal`: `subtle` on digests of both, so not even the
//!   length shows). When they are equal, a **session** opens: a random 256-bit id, the cookie's
//!   value (`HttpOnly`, `SameSite=Strict`, 12 hours). The store keeps the id's SHA-256 (never
//!   the id), when the session ends, and an HMAC of the id under the token, so that a session
//!   is valid only while it is stored, unexpired, and the token is the one it was opened with.
//! - `POST /logout` removes the session from the store: its cookie is worth nothing after it,
//!   on every replica that shares the store.
//! - Every page an operator sees embeds a **CSRF token** in each form: an HMAC of the session's
//!   id under the token. An action needs both the cookie and the form's token (each compared in
//!   constant time); another site can send neither (SameSite keeps the cookie at home, and it
//!   cannot read the page).
//!
//! The token is read from its reference (`env:NAME`, `file:PATH`) when it is needed, so a
//! token rotated in its file takes effect at once (and ends every session).

use std::time::Duration;

use cookie::{Cookie, SameSite};
use sha2::{Digest as _, Sha256};

use crate::secret::{ResolveError, SecretRef};
use crate::signature::{hmac_sha256_hex, secrets_equal, to_hex};
use crate::store::SessionRow;

/// The cookie's name.
pub const COOKIE: &str = "switchyard_session";
/// How long a session lasts.
pub const SESSION_FOR: Duration = Duration::from_secs(12 * 3600);
/// The bytes of a session's id.
pub const ID_BYTES: usize = 32;

/// The operator token's reference.
#[derive(Debug)]
pub struct Operator {
    token: SecretRef,
}

/// A logged-in operator: the session's id (the cookie's value) and the CSRF token of its forms.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    id: String,
    csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(..)")
    }
}

/// A session just opened: what the browser gets, and what the store keeps.
#[derive(Debug)]
pub struct Opened {
    pub session: Session,
    pub row: SessionRow,
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
        session_cookie(self.id.clone(), SESSION_FOR).to_string()
    }

    /// The digest the store keeps this session under.
    pub fn id_hash(&self) -> String {
        id_hash(&self.id)
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    session_cookie(String::new(), Duration::ZERO).to_string()
}

/// The session id a request's `Cookie` header holds, when it holds one of the right form.
pub fn cookie_id(cookie_header: Option<&str>) -> Option<String> {
    let sent = Cookie::split_parse(cookie_header?)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)?;
    let id = sent.value();
    (id.len() == 2 * ID_BYTES && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| id.to_ascii_lowercase())
}

/// The digest the store keeps a session under: the SHA-256 of its id.
pub fn id_hash(id: &str) -> String {
    to_hex(Sha256::digest(id.as_bytes()))
}

impl Operator {
    /// The operator behind `token`.
    pub fn new(token: SecretRef) -> Operator {
        Operator { token }
    }

    /// The reference the token is read from (`env:NAME`), for messages.
    pub fn reference(&self) -> String {
        self.token.to_string()
    }

    /// Whether the token can be read now (the actions are possible).
    pub fn available(&self) -> Result<(), ResolveError> {
        self.token.resolve().map(drop)
    }

    /// What ties session `id` to `token`, and its forms' CSRF token.
    fn macs(token: &str, id: &str) -> (String, String) {
        (
            hmac_sha256_hex(
                token.as_bytes(),
                format!("switchyard session\0{id}").as_bytes(),
            ),
            hmac_sha256_hex(
                token.as_bytes(),
                format!("switchyard csrf\0{id}").as_bytes(),
            ),
        )
    }

    /// A new session with the random `id` when `offered` is the token (compared in constant
    /// time), `None` when it is not; an error when the token cannot be read.
    pub fn login(
        &self,
        offered: &str,
        id: [u8; ID_BYTES],
        now_ms: i64,
    ) -> Result<Option<Opened>, ResolveError> {
        let token = self.token.resolve()?;
        if !secrets_equal(token.as_bytes(), offered.as_bytes()) {
            return Ok(None);
        }
        let id = to_hex(id);
        let (token_mac, csrf) = Operator::macs(&token, &id);
        let row = SessionRow {
            id_hash: id_hash(&id),
            token_mac,
            expires_ms: now_ms + SESSION_FOR.as_millis() as i64,
        };
        Ok(Some(Opened {
            session: Session { id, csrf },
            row,
        }))
    }

    /// The session `id` names, given what the store holds under its digest: valid while it is
    /// stored, unexpired, and opened with the token there is now.
    pub fn session(&self, id: &str, stored: Option<&SessionRow>, now_ms: i64) -> Option<Session> {
        let row = stored?;
        if now_ms >= row.expires_ms || row.id_hash != id_hash(id) {
            return None;
        }
        let token = self.token.resolve().ok()?;
        let (token_mac, csrf) = Operator::macs(&token, id);
        secrets_equal(token_mac.as_bytes(), row.token_mac.as_bytes()).then(|| Session {
            id: id.to_owned(),
            csrf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operator whose token is in a file of `dir`.
    fn operator(dir: &std::path::Path, token: &str) -> Operator {
        let path = dir.join("token");
        std::fs::write(&path, format!("{token}\n")).expect("write the token");
        Operator::new(SecretRef::File(path))
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
        assert!(
            op.login("wrong", [1; ID_BYTES], 1_000)
                .expect("readable")
                .is_none()
        );
        assert!(
            op.login("", [1; ID_BYTES], 1_000)
                .expect("readable")
                .is_none()
        );
        let opened = op
            .login("s3cret-operator-token", [7; ID_BYTES], 1_000)
            .expect("readable")
            .expect("the right token");
        let set = opened.session.set_cookie();
        assert!(!set.contains("s3cret"), "{set}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(
                set.split("; ").any(|a| a == attribute),
                "{attribute}: {set}"
            );
        }
        assert!(set.starts_with("switchyard_session="), "{set}");
        assert!(!format!("{:?} {op:?}", opened.session).contains("s3cret"));
        // The store keeps neither the id nor the token.
        let id = cookie_id(Some(&cookie_of(&opened.session))).expect("an id");
        assert_eq!(id, to_hex([7; ID_BYTES]));
        let row = format!("{:?}", opened.row);
        assert!(!row.contains(&id) && !row.contains("s3cret"), "{row}");
        assert_eq!(opened.row.expires_ms, 1_000 + 43_200_000);
        assert_eq!(
            op.session(&id, Some(&opened.row), 2_000),
            Some(opened.session.clone())
        );
        let session = opened.session;
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
    fn a_session_ends_with_its_time_its_row_or_the_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let op = operator(dir.path(), "first-token");
        let opened = op
            .login("first-token", [3; ID_BYTES], 1_000)
            .expect("readable")
            .expect("logged in");
        let id = to_hex([3; ID_BYTES]);
        let row = &opened.row;
        assert!(op.session(&id, Some(row), row.expires_ms - 1).is_some());
        assert!(
            op.session(&id, Some(row), row.expires_ms).is_none(),
            "expired"
        );
        assert!(op.session(&id, None, 2_000).is_none(), "logged out: no row");
        let other = to_hex([4; ID_BYTES]);
        assert!(op.session(&other, Some(row), 2_000).is_none(), "another id");
        let forged = SessionRow {
            token_mac: "00".repeat(32),
            ..row.clone()
        };
        assert!(
            op.session(&id, Some(&forged), 2_000).is_none(),
            "not this token's"
        );
        for bad in [
            "switchyard_session=garbage",
            "switchyard_session=1000",
            "other=0101010101010101010101010101010101010101010101010101010101010101",
        ] {
            assert_eq!(cookie_id(Some(bad)), None, "{bad}");
        }
        assert_eq!(cookie_id(None), None);
        std::fs::write(dir.path().join("token"), "second-token").expect("rotate");
        assert!(op.session(&id, Some(row), 2_000).is_none(), "a new token");
    }

    #[test]
    fn two_logins_in_the_same_instant_are_two_sessions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let op = operator(dir.path(), "token");
        let a = op
            .login("token", [1; ID_BYTES], 1_000)
            .ok()
            .flatten()
            .expect("a");
        let b = op
            .login("token", [2; ID_BYTES], 1_000)
            .ok()
            .flatten()
            .expect("b");
        assert_ne!(a.session.set_cookie(), b.session.set_cookie());
        assert_ne!(a.session.csrf(), b.session.csrf());
        assert_ne!(a.row.id_hash, b.row.id_hash);
    }

    #[test]
    fn an_unreadable_token_logs_nobody_in() {
        let op = Operator::new(SecretRef::Env("SWITCHYARD_TEST_NO_SUCH_TOKEN".into()));
        assert!(op.login("anything", [0; ID_BYTES], 1).is_err());
        assert!(op.available().is_err());
        assert_eq!(op.reference(), "env:SWITCHYARD_TEST_NO_SUCH_TOKEN");
    }
}
