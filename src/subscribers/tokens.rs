//! Tokens for emailed links: sealed, so a link reveals nothing (not the subscriber's id,
//! not how many subscribers there are) and cannot be altered.
//!
//! A token is `2.<key id>.<base64url(nonce ‖ AES-256-GCM-SIV ciphertext ‖ tag)>`. The sealed
//! payload names the purpose, the subscriber, optionally a newsletter, a single-use nonce
//! and an expiry; the key id is bound in as associated data. The cipher key is derived from
//! the secret (HMAC-SHA256 of a fixed label), so one `HERALD_SECRET` gives both.
//!
//! Tokens of the first format, `base64url(payload) "." base64url(HMAC-SHA256 tag)` with the
//! payload in clear, are still accepted: they sit in mail already sent.
//!
//! Keys come from `HERALD_SECRET`: one secret, or several separated by commas — the first
//! signs, every one verifies, so a rotated-out key keeps old links working until removed.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub use crate::audience::nonce;

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
    /// The keys, the first one signing; each verifies.
    keys: Vec<Key>,
}

/// One secret: its public id, the secret itself (first-format tokens are checked with it)
/// and the cipher key derived from it.
#[derive(Clone)]
struct Key {
    id: String,
    secret: Vec<u8>,
    sealer: std::sync::Arc<RandomizedNonceKey>,
}

/// Largest token accepted (a real one is about 100 characters).
const MAX_TOKEN: usize = 512;

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keys").field("ids", &ids).finish()
    }
}

impl Keys {
    /// From `HERALD_SECRET`'s value: comma-separated secrets of at least 16 characters.
    pub fn from_secrets(value: &str) -> Result<Keys, String> {
        let secrets: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if secrets.is_empty() {
            return Err("HERALD_SECRET is empty".into());
        }
        if secrets.iter().any(|k| k.len() < 16) {
            return Err("HERALD_SECRET: each secret must be at least 16 characters (32 random bytes, hex or base64, is best)".into());
        }
        let keys = secrets
            .into_iter()
            .map(|s| {
                let mut mac = HmacSha256::new_from_slice(s.as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(b"herald link token sealing key v2");
                let cipher_key = mac.finalize().into_bytes();
                let sealer = RandomizedNonceKey::new(&AES_256_GCM_SIV, &cipher_key)
                    .map_err(|_| "cannot make the token cipher key".to_string())?;
                Ok(Key {
                    id: key_id(s.as_bytes()),
                    secret: s.as_bytes().to_vec(),
                    sealer: std::sync::Arc::new(sealer),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Keys { keys })
    }

    pub fn sign(&self, c: &Claims) -> String {
        let key = &self.keys[0]; // from_secrets guarantees at least one key
        let mut sealed = payload(c).into_bytes();
        let nonce = key
            .sealer
            .seal_in_place_append_tag(Aad::from(key.id.as_bytes()), &mut sealed)
            .expect("sealing a short payload in memory cannot fail");
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(nonce.as_ref());
        bytes.extend_from_slice(&sealed);
        format!("2.{}.{}", key.id, B64.encode(bytes))
    }

    /// Opens a token (either format) and checks its purpose and expiry.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now_secs: i64,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::Malformed);
        }
        let payload = match token.strip_prefix("2.") {
            Some(rest) => self.open(rest)?,
            None => self.verify_first_format(token)?,
        };
        claims(&payload, purpose, now_secs)
    }

    /// `<key id>.<base64url(nonce ‖ sealed)>` → the payload.
    fn open(&self, rest: &str) -> Result<String, TokenError> {
        let (kid, sealed) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let bytes = B64.decode(sealed).map_err(|_| TokenError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM_SIV.tag_len() {
            return Err(TokenError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or(TokenError::BadSignature)?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| TokenError::Malformed)?;
        let mut in_out = sealed.to_vec();
        let plain = key
            .sealer
            .open_in_place(nonce, Aad::from(key.id.as_bytes()), &mut in_out)
            .map_err(|_| TokenError::BadSignature)?;
        String::from_utf8(plain.to_vec()).map_err(|_| TokenError::Malformed)
    }

    /// The first format: `base64url(payload) "." base64url(tag)`, checked in constant time.
    fn verify_first_format(&self, token: &str) -> Result<String, TokenError> {
        let (encoded, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let payload = B64.decode(encoded).map_err(|_| TokenError::Malformed)?;
        let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let mut parts = payload.splitn(3, '.');
        let (Some("1"), Some(kid), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        if tag.len() != TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or(TokenError::BadSignature)?;
        let mut mac =
            HmacSha256::new_from_slice(&key.secret).expect("HMAC takes keys of any length");
        mac.update(encoded.as_bytes());
        mac.verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(rest.to_string())
    }
}

/// The payload both formats carry: `purpose.subscriber.newsletter.nonce.expiry`.
fn payload(c: &Claims) -> String {
    format!(
        "{}.{}.{}.{}.{}",
        c.purpose.code(),
        c.subscriber,
        c.newsletter.as_deref().unwrap_or("-"),
        c.nonce.as_deref().unwrap_or("-"),
        c.expires.unwrap_or(0)
    )
}

/// Reads a payload (authenticated already; parsed without trusting its shape anyway).
fn claims(payload: &str, purpose: Purpose, now_secs: i64) -> Result<Claims, TokenError> {
    let parts: Vec<&str> = payload.split('.').collect();
    let [code, subscriber, newsletter, nonce, expires] = parts[..] else {
        return Err(TokenError::Malformed);
    };
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

/// A short public name for a secret: the start of its SHA-256.
fn key_id(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..3])
}

/// A fresh random secret for installations without `HERALD_SECRET` (64 hex characters).
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
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
        // A first-format token for another subscriber, same tag.
        let old = first_format(&claims());
        let (payload, tag) = old.split_once('.').unwrap();
        let forged = String::from_utf8(B64.decode(payload).unwrap())
            .unwrap()
            .replace(".42.", ".43.");
        let forged = format!("{}.{tag}", B64.encode(forged));
        assert_eq!(
            k.verify(&forged, Purpose::Confirm, 0),
            Err(TokenError::BadSignature)
        );
        // A sealed token with one byte of its ciphertext changed.
        let (head, sealed) = t.rsplit_once('.').unwrap();
        let mut bytes = B64.decode(sealed).unwrap();
        bytes[NONCE_LEN] ^= 1;
        let forged = format!("{head}.{}", B64.encode(bytes));
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

    /// A token as herald wrote them before tokens were sealed.
    fn first_format(c: &Claims) -> String {
        let k = keys();
        let key = &k.keys[0];
        let encoded = B64.encode(format!("1.{}.{}", key.id, payload(c)));
        let mut mac = HmacSha256::new_from_slice(&key.secret).unwrap();
        mac.update(encoded.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{encoded}.{}", B64.encode(&tag[..TAG_LEN]))
    }

    #[test]
    fn links_in_mail_already_sent_keep_working() {
        let old = first_format(&claims());
        assert!(old.starts_with("MS4"), "{old}");
        assert_eq!(keys().verify(&old, Purpose::Confirm, 0), Ok(claims()));
    }

    #[test]
    fn a_token_reveals_no_subscriber_id() {
        let k = keys();
        let mut c = claims();
        let tokens: Vec<String> = [41, 42, 42]
            .into_iter()
            .map(|id| {
                c.subscriber = id;
                k.sign(&c)
            })
            .collect();
        for t in &tokens {
            let visible: Vec<u8> = t
                .split('.')
                .flat_map(|part| {
                    B64.decode(part)
                        .unwrap_or_else(|_| part.as_bytes().to_vec())
                })
                .collect();
            let visible = String::from_utf8_lossy(&visible);
            assert!(!visible.contains("42") && !visible.contains("41"), "{t}");
            assert!(!visible.contains("weekly"), "{t}");
        }
        assert_ne!(
            tokens[1], tokens[2],
            "the same claims seal differently each time"
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Keys::from_secrets("short").is_err());
        assert!(secrets_equal("a-token", "a-token") && !secrets_equal("a-token", "b-token"));
    }

    proptest! {
        #[test]
        fn any_string_is_answered_without_panicking(t in ".{0,300}", b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = keys();
            let _ = k.verify(&t, Purpose::Unsubscribe, 0);
            let _ = k.verify(&format!("2.{}.{}", k.keys[0].id, B64.encode(&b)), Purpose::Confirm, 0);
            let _ = k.verify(&format!("{}.{}", B64.encode(&b), B64.encode(&b)), Purpose::Confirm, 0);
        }

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

    #[test]
    fn a_secret_of_exactly_sixteen_characters_is_enough() {
        assert!(Keys::from_secrets(&"s".repeat(16)).is_ok());
        assert!(Keys::from_secrets(&"s".repeat(15)).is_err());
        assert!(Keys::from_secrets(&format!("{},{}", "a".repeat(16), "b".repeat(15))).is_err());
    }

    #[test]
    fn a_token_works_until_the_second_it_expires() {
        let k = keys();
        let t = k.sign(&claims());
        let expires = claims().expires.unwrap();
        assert!(k.verify(&t, Purpose::Confirm, expires - 1).is_ok());
        assert!(k.verify(&t, Purpose::Confirm, expires).is_ok());
        assert_eq!(
            k.verify(&t, Purpose::Confirm, expires + 1),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn the_longest_token_read_is_512_characters() {
        let k = keys();
        let kid = key_id(b"first-secret-0123456789");
        // `2.<kid>.` and base64 to exactly the limit: opened, and refused as not ours.
        let at_limit = format!("2.{kid}.{}", "A".repeat(MAX_TOKEN - 3 - kid.len()));
        assert_eq!(at_limit.len(), MAX_TOKEN);
        assert_eq!(
            k.verify(&at_limit, Purpose::Confirm, 0),
            Err(TokenError::BadSignature)
        );
        // One character more is refused unread.
        let over = format!("{at_limit}A");
        assert_eq!(
            k.verify(&over, Purpose::Confirm, 0),
            Err(TokenError::Malformed)
        );
        // The shortest sealed part that can be opened (a nonce and a tag, nothing sealed)
        // is opened and refused as not ours; one byte less is damaged.
        let shortest = NONCE_LEN + AES_256_GCM_SIV.tag_len();
        let empty = format!("2.{kid}.{}", B64.encode(vec![0u8; shortest]));
        assert_eq!(
            k.verify(&empty, Purpose::Confirm, 0),
            Err(TokenError::BadSignature)
        );
        let short = format!("2.{kid}.{}", B64.encode(vec![0u8; shortest - 1]));
        assert_eq!(
            k.verify(&short, Purpose::Confirm, 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn debug_output_names_key_ids_never_secrets() {
        let k = Keys::from_secrets("first-secret-0123456789,second-secret-0123456789").unwrap();
        let shown = format!("{k:?}");
        assert!(
            shown.contains(&key_id(b"first-secret-0123456789")),
            "{shown}"
        );
        assert!(
            shown.contains(&key_id(b"second-secret-0123456789")),
            "{shown}"
        );
        assert!(!shown.contains("secret-0123456789"), "{shown}");
    }

    #[test]
    fn nonces_and_generated_secrets_are_fresh_random_hex() {
        let (a, b) = (nonce(), nonce());
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let (s, t) = (generate_secret(), generate_secret());
        assert_ne!(s, t);
        assert_eq!(s.len(), 64);
        assert!(s.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            Keys::from_secrets(&s).is_ok(),
            "a generated secret is a valid one"
        );
    }

    #[test]
    fn secrets_equal_only_for_the_same_secret() {
        assert!(secrets_equal(
            "admin-token-for-tests",
            "admin-token-for-tests"
        ));
        assert!(!secrets_equal(
            "admin-token-for-tests",
            "admin-token-for-test"
        ));
        assert!(!secrets_equal(
            "admin-token-for-tests",
            "Admin-token-for-tests"
        ));
        assert!(!secrets_equal("", "x"));
        assert!(secrets_equal("", ""));
    }

    #[test]
    fn an_unsubscribe_token_round_trips_with_and_without_a_newsletter() {
        let k = keys();
        for newsletter in [Some("weekly".to_string()), None] {
            let c = Claims {
                purpose: Purpose::Unsubscribe,
                subscriber: 7,
                newsletter,
                nonce: None,
                expires: None,
            };
            let t = k.sign(&c);
            assert_eq!(k.verify(&t, Purpose::Unsubscribe, 1_900_000_000), Ok(c));
            assert_eq!(
                k.verify(&t, Purpose::Confirm, 1_900_000_000),
                Err(TokenError::WrongPurpose)
            );
        }
    }
}
