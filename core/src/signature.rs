//! Standard Webhooks signatures: verifying what senders sign and signing what switchyard sends.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 with the secret's
//! key (the base64 after `whsec_`; a secret without that prefix is used as raw bytes). The
//! `webhook-signature` header holds space-separated `v1,<base64>` entries, several while a
//! secret is rotated. Timestamps more than five minutes away are refused. Comparisons are
//! constant-time (`Mac::verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from now.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A signing key, decoded once. Its bytes never reach `Debug` output.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// Decodes a Standard Webhooks secret (`whsec_<base64>`), or takes other text as raw bytes.
    pub fn from_secret(secret: &str) -> Result<Key, &'static str> {
        match secret.strip_prefix("whsec_") {
            Some(b64) => B64
                .decode(b64.trim())
                .map(Key)
                .map_err(|_| "the whsec_ secret is not valid base64"),
            None if secret.is_empty() => Err("the secret is empty"),
            None => Ok(Key(secret.as_bytes().to_vec())),
        }
    }

    /// The raw key bytes (for other providers' HMAC schemes).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }
}

/// Why a delivery's signature was refused. Safe to log: holds no secret and no signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the webhook-id header is missing")]
    MissingId,
    #[error("the webhook-timestamp header is missing or not a number")]
    BadTimestamp,
    #[error("the webhook-timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("the webhook-signature header is missing")]
    MissingSignature,
    #[error("no signature matches any configured secret")]
    Mismatch,
}

/// The three Standard Webhooks headers of one delivery.
#[derive(Clone, Copy, Debug)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Verifies a delivery against any of `keys` at time `now` (Unix seconds).
pub fn verify(
    keys: &[Key],
    headers: Headers<'_>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let id = headers
        .id
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::MissingId)?;
    let ts_text = headers.timestamp.ok_or(VerifyError::BadTimestamp)?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if now.abs_diff(ts) > TOLERANCE_SECS as u64 {
        return Err(VerifyError::Stale);
    }
    let header = headers
        .signature
        .filter(|s| !s.trim().is_empty())
        .ok_or(VerifyError::MissingSignature)?;
    let candidates: Vec<Vec<u8>> = header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .collect();
    for key in keys {
        let mut mac = key.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(ts_text.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        for sig in &candidates {
            if mac.clone().verify_slice(sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::Mismatch)
}

/// The `webhook-signature` value for a delivery: `v1,<base64>`.
pub fn sign(key: &Key, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = key.mac();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Lowercase hex of `bytes` (ids, digests, signatures).
pub use hex::encode as to_hex;

/// Decodes lowercase or uppercase hex; `None` on any other character or an odd length.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `body` under any of `keys`, compared in
/// constant time (GitHub `X-Hub-Signature-256`, Bitbucket, Gitea and Forgejo).
pub fn verify_hmac_sha256_hex(keys: &[&[u8]], body: &[u8], signature_hex: &str) -> bool {
    let Some(sig) = from_hex(signature_hex) else {
        return false;
    };
    keys.iter().any(|key| {
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

/// Whether `signature` (hex) is the HMAC-SHA1 of `body` under any of `keys` (GitHub's legacy
/// `X-Hub-Signature`, only for receivers that opt in).
pub fn verify_hmac_sha1_hex(keys: &[&[u8]], body: &[u8], signature_hex: &str) -> bool {
    let Some(sig) = from_hex(signature_hex) else {
        return false;
    };
    keys.iter().any(|key| {
        let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

/// Constant-time equality of two secrets of any length (GitLab's `X-Gitlab-Token`): both are
/// hashed first, so neither content nor length leaks through timing.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.as_slice().ct_eq(hb.as_slice()).into()
}

/// HMAC-SHA256 of `body` as lowercase hex (GitHub, Gitea and Bitbucket style).
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    to_hex(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_goes_both_ways() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(to_hex(bytes), "000fa5ff");
        assert_eq!(from_hex(&to_hex(bytes)), Some(bytes.to_vec()));
        assert_eq!(to_hex([0u8; 0]), "");
    }

    // The example of the Standard Webhooks specification's reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key() -> Key {
        Key::from_secret(SECRET).unwrap_or_else(|e| panic!("{e}"))
    }

    fn headers<'a>(sig: &'a str, ts: &'a str) -> Headers<'a> {
        Headers {
            id: Some(ID),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        assert_eq!(sign(&key(), ID, TS, BODY), SIG);
        assert_eq!(
            verify(&[key()], headers(SIG, "1614265330"), BODY, TS),
            Ok(())
        );
    }

    #[test]
    fn rotation_and_several_signatures() {
        let old = Key::from_secret("whsec_b2xkIHNlY3JldCBvbGQgc2VjcmV0")
            .unwrap_or_else(|e| panic!("{e}"));
        let both = format!("v1,bm90IGl0 {SIG}");
        assert_eq!(
            verify(
                &[old.clone(), key()],
                headers(&both, "1614265330"),
                BODY,
                TS
            ),
            Ok(())
        );
        assert_eq!(
            verify(&[old], headers(SIG, "1614265330"), BODY, TS),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn refusals() {
        let k = [key()];
        #[rustfmt::skip]
        let cases: &[(Headers<'_>, &[u8], i64, VerifyError)] = &[
            (Headers { id: None, ..headers(SIG, "1614265330") }, BODY, TS, VerifyError::MissingId),
            (headers(SIG, "soon"), BODY, TS, VerifyError::BadTimestamp),
            (headers(SIG, "1614265330"), BODY, TS + 301, VerifyError::Stale),
            (headers(SIG, "1614265330"), BODY, TS - 301, VerifyError::Stale),
            (headers("", "1614265330"), BODY, TS, VerifyError::MissingSignature),
            (headers(SIG, "1614265330"), b"{\"test\": 1}", TS, VerifyError::Mismatch),
            (headers("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1614265330"), BODY, TS, VerifyError::Mismatch),
            (headers("v1,!!!", "1614265330"), BODY, TS, VerifyError::Mismatch),
        ];
        for (h, body, now, want) in cases {
            assert_eq!(verify(&k, *h, body, *now), Err(*want), "{h:?}");
        }
        assert_eq!(
            verify(&k, headers(SIG, "1614265330"), BODY, TS + 300),
            Ok(())
        );
    }

    #[test]
    fn hex_hmacs_and_token_comparison() {
        let secret: &[u8] = b"It's a Secret to Everybody";
        let sig256 = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_hmac_sha256_hex(
            &[b"other", secret],
            b"Hello, World!",
            sig256
        ));
        assert!(verify_hmac_sha256_hex(
            &[secret],
            b"Hello, World!",
            &sig256.to_uppercase()
        ));
        assert!(!verify_hmac_sha256_hex(&[secret], b"Hello, World?", sig256));
        assert!(!verify_hmac_sha256_hex(
            &[secret],
            b"Hello, World!",
            &sig256[..62]
        ));
        assert!(!verify_hmac_sha256_hex(&[secret], b"Hello, World!", "zz"));
        // HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog"), RFC 2104 example.
        let sig1 = "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9";
        assert!(verify_hmac_sha1_hex(
            &[b"key"],
            b"The quick brown fox jumps over the lazy dog",
            sig1
        ));
        assert!(!verify_hmac_sha1_hex(
            &[b"kez"],
            b"The quick brown fox jumps over the lazy dog",
            sig1
        ));
        assert!(secrets_equal(b"token", b"token"));
        assert!(!secrets_equal(b"token", b"token2"));
        assert!(!secrets_equal(b"", b"x"));
    }

    #[test]
    fn github_documented_vector() {
        let hex = hmac_sha256_hex(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            hex,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
