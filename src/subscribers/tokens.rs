//! Signed tokens for emailed links: `base64url(payload) "." base64url(HMAC-SHA256 tag)`.
//!
//! The payload names the key (for rotation), the purpose, the subscriber, optionally a
//! newsletter, a single-use nonce and an expiry; the tag is checked in constant time. Links
//! never carry an address or a guessable id alone.
//!
//! Keys come from `HERALD_SECRET`: one secret, or several separated by commas — the first
//! signs, every one verifies, so a rotated-out key keeps old links working until removed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag kept in the token (128 bits).
const TAG_LEN: usize = 16;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Confirm,
    Unsubscribe,
}

impl Purpose {
    fn code(self) -> &'static str {
        match self {
            Purpose::Confirm => "c",
            Purpose::Unsubscribe => "u",
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub purpose: Purpose,
    pub subscriber: i64,
    pub newsletter: Option<String>,
    /// Single-use value that must still match the store (confirmation links).
    pub nonce: Option<String>,
    /// Unix seconds after which the token is refused.
    pub expires: Option<i64>,
}

/// Why a token was refused. The pages say so plainly; nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this link is damaged or incomplete")]
    Malformed,
    #[error("this link was not issued by this site (or it was altered)")]
    BadSignature,
    #[error("this link is for something else")]
    WrongPurpose,
    #[error("this link has expired")]
    Expired,
}

/// The signing keys.
#[derive(Clone)]
pub struct Keys {
    /// (key id, secret); the first one signs.
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keys").field("ids", &ids).finish()
    }
}

impl Keys {
    /// From `HERALD_SECRET`'s value: comma-separated secrets of at least 16 characters.
    pub fn from_secrets(value: &str) -> Result<Keys, String> {
        let keys: Vec<(String, Vec<u8>)> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| (key_id(s.as_bytes()), s.as_bytes().to_vec()))
            .collect();
        if keys.is_empty() {
            return Err("HERALD_SECRET is empty".into());
        }
        if keys.iter().any(|(_, k)| k.len() < 16) {
            return Err("HERALD_SECRET: each secret must be at least 16 characters (32 random bytes, hex or base64, is best)".into());
        }
        Ok(Keys { keys })
    }

    pub fn sign(&self, c: &Claims) -> String {
        let (kid, key) = &self.keys[0]; // from_secrets guarantees at least one key
        let payload = format!(
            "1.{kid}.{}.{}.{}.{}.{}",
            c.purpose.code(),
            c.subscriber,
            c.newsletter.as_deref().unwrap_or("-"),
            c.nonce.as_deref().unwrap_or("-"),
            c.expires.unwrap_or(0)
        );
        let encoded = B64.encode(payload);
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(encoded.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{encoded}.{}", B64.encode(&tag[..TAG_LEN]))
    }

    /// Checks the signature (constant time), purpose and expiry.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now_secs: i64,
    ) -> Result<Claims, TokenError> {
        let (encoded, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let payload = B64.decode(encoded).map_err(|_| TokenError::Malformed)?;
        let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let [version, kid, code, subscriber, newsletter, nonce, expires] = parts[..] else {
            return Err(TokenError::Malformed);
        };
        if version != "1" || tag.len() != TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| id == kid)
            .ok_or(TokenError::BadSignature)?;
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(encoded.as_bytes());
        mac.verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        // Signed, so the fields are ours; parse them anyway without trusting their shape.
        let purpose_found = match code {
            "c" => Purpose::Confirm,
            "u" => Purpose::Unsubscribe,
            _ => return Err(TokenError::Malformed),
        };
        if purpose_found != purpose {
            return Err(TokenError::WrongPurpose);
        }
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if expires != 0 && now_secs > expires {
            return Err(TokenError::Expired);
        }
        let opt = |s: &str| (s != "-").then(|| s.to_string());
        Ok(Claims {
            purpose,
            subscriber: subscriber.parse().map_err(|_| TokenError::Malformed)?,
            newsletter: opt(newsletter),
            nonce: opt(nonce),
            expires: (expires != 0).then_some(expires),
        })
    }
}

/// A short public name for a secret: the start of its SHA-256.
fn key_id(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..3])
}

/// A fresh random secret for installations without `HERALD_SECRET` (64 hex characters).
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// A fresh random nonce (hex).
pub fn nonce() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode(bytes)
}

/// Compares two secrets in constant time (for the admin bearer token).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    // Hash both first so neither the length nor the content leaks through timing.
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::from_secrets("first-secret-0123456789").unwrap()
    }

    fn claims() -> Claims {
        Claims {
            purpose: Purpose::Confirm,
            subscriber: 42,
            newsletter: Some("weekly".into()),
            nonce: Some("abc123".into()),
            expires: Some(2_000_000_000),
        }
    }

    #[test]
    fn a_token_round_trips() {
        let t = keys().sign(&claims());
        assert_eq!(
            keys().verify(&t, Purpose::Confirm, 1_900_000_000),
            Ok(claims())
        );
    }

    #[test]
    fn tampering_expiry_and_purpose_are_refused() {
        let k = keys();
        let t = k.sign(&claims());
        assert_eq!(
            k.verify(&t, Purpose::Unsubscribe, 0),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            k.verify(&t, Purpose::Confirm, 2_000_000_001),
            Err(TokenError::Expired)
        );
        // Another subscriber, same tag.
        let (payload, tag) = t.split_once('.').unwrap();
        let forged = String::from_utf8(B64.decode(payload).unwrap())
            .unwrap()
            .replace(".42.", ".43.");
        let forged = format!("{}.{tag}", B64.encode(forged));
        assert_eq!(
            k.verify(&forged, Purpose::Confirm, 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            k.verify("nonsense", Purpose::Confirm, 0),
            Err(TokenError::Malformed)
        );
        let other = Keys::from_secrets("another-secret-987654321").unwrap();
        assert_eq!(
            other.verify(&t, Purpose::Confirm, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_rotated_key_still_verifies_old_links() {
        let old = keys().sign(&claims());
        let rotated =
            Keys::from_secrets("new-secret-abcdefghijkl, first-secret-0123456789").unwrap();
        assert!(rotated.verify(&old, Purpose::Confirm, 0).is_ok());
        assert_ne!(rotated.sign(&claims()), old);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Keys::from_secrets("short").is_err());
        assert!(secrets_equal("a-token", "a-token") && !secrets_equal("a-token", "b-token"));
    }

    proptest! {
        #[test]
        fn any_flipped_character_is_refused(pos in 0usize..200, c in proptest::char::range('A', 'z')) {
            let t = keys().sign(&claims());
            let pos = pos % t.len();
            let mut bytes = t.clone().into_bytes();
            prop_assume!(bytes[pos] != c as u8);
            bytes[pos] = c as u8;
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assert!(keys().verify(&tampered, Purpose::Confirm, 0).is_err());
        }
    }
}
