//! DKIM signing (RFC 6376) of finished messages, with aws-lc-rs RSA.
//!
//! herald signs the exact bytes it sends, after lettre has formatted them: lettre's own
//! signer canonicalizes a multipart `Content-Type` differently from what it then writes, so
//! its signatures over that header do not verify (checked with dkimpy). aws-lc-rs also signs
//! about three times faster than lettre's pure-Rust RSA (BENCHMARKS.md).
//! Canonicalization is relaxed/relaxed; the signature covers the list headers, as RFC 8058
//! requires.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// Headers signed when present (RFC 6376 §5.4; RFC 8058 §4 for the list headers).
pub const SIGNED: [&str; 12] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Precedence",
];

/// A loaded signing key and where it is published.
pub struct Signer {
    domain: String,
    selector: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DKIM signer d={} s={}", self.domain, self.selector)
    }
}

impl Signer {
    /// From a PEM RSA private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE
    /// KEY`), at least 2048 bits.
    pub fn from_pem(domain: &str, selector: &str, pem: &str) -> Result<Signer, String> {
        let (label, der) = pem_body(pem)?;
        let key = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            other => return Err(format!("a PEM {other:?} is not an RSA private key")),
        }
        .map_err(|e| format!("not a usable RSA private key: {e}"))?;
        let bits = key.public_modulus_len() * 8;
        if bits < 2048 {
            return Err(format!(
                "the RSA key has {bits} bits; DKIM needs at least 2048"
            ));
        }
        Ok(Signer {
            domain: domain.to_string(),
            selector: selector.to_string(),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Returns `message` (CRLF lines) with a `DKIM-Signature` header in front.
    pub fn sign(&self, message: &[u8], unix_time: i64) -> Result<Vec<u8>, String> {
        let split = find(message, b"\r\n\r\n").ok_or("the message has no header/body separator")?;
        let (head, body) = (&message[..split + 2], &message[split + 4..]);
        let bh = B64.encode(Sha256::digest(canonical_body(body)));
        let headers = parse_headers(head);

        // Each listed header, bottom-up instance (RFC 6376 §5.4.2), when present.
        let mut names = Vec::new();
        let mut hashed = Vec::new();
        for name in SIGNED {
            if let Some(raw) = headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, r)| r)
            {
                names.push(name.to_ascii_lowercase());
                hashed.extend_from_slice(canonical_header(raw).as_bytes());
                hashed.extend_from_slice(b"\r\n");
            }
        }
        // Folded so no line passes 78 characters; FWS is allowed between tags and around
        // the colons of h= (RFC 6376 §3.5), and relaxed canonicalization sees one space.
        let mut h = String::from(" h=");
        let mut line = h.len();
        for (i, n) in names.iter().enumerate() {
            let piece = if i + 1 < names.len() {
                format!("{n}:")
            } else {
                format!("{n};")
            };
            if line + piece.len() > 76 {
                h.push_str("\r\n ");
                line = 1;
            }
            h.push_str(&piece);
            line += piece.len();
        }
        let tags = format!(
            "v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n d={}; s={}; t={unix_time};\r\n{h}\r\n bh={bh};\r\n b=",
            self.domain, self.selector
        );
        let unsigned = format!("DKIM-Signature: {tags}");
        hashed.extend_from_slice(canonical_header(&unsigned).as_bytes());

        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, &hashed, &mut sig)
            .map_err(|_| "RSA signing failed".to_string())?;
        let b = B64.encode(&sig);
        // Fold the signature so no line passes 78 characters (FWS in b= is ignored).
        let folded: Vec<&str> = b
            .as_bytes()
            .chunks(72)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        let mut out = Vec::with_capacity(message.len() + 600);
        out.extend_from_slice(unsigned.as_bytes());
        out.extend_from_slice(folded.join("\r\n ").as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(message);
        Ok(out)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `(name, whole raw header including continuation lines, without the final CRLF)`.
fn parse_headers(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str("\r\n");
                last.1.push_str(line);
            }
        } else {
            let name = line.split(':').next().unwrap_or("").trim().to_string();
            out.push((name, line.to_string()));
        }
    }
    out
}

/// Relaxed header canonicalization (RFC 6376 §3.4.2), without the trailing CRLF.
fn canonical_header(raw: &str) -> String {
    let (name, value) = raw.split_once(':').unwrap_or((raw, ""));
    let unfolded = value.replace("\r\n", "");
    let mut v = String::with_capacity(unfolded.len());
    let mut space = false;
    for c in unfolded.chars() {
        if c == ' ' || c == '\t' {
            space = true;
        } else {
            if space && !v.is_empty() {
                v.push(' ');
            }
            space = false;
            v.push(c);
        }
    }
    format!("{}:{}", name.trim().to_ascii_lowercase(), v)
}

/// Relaxed body canonicalization (RFC 6376 §3.4.4).
fn canonical_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut space = false;
        for &c in line {
            if c == b' ' || c == b'\t' {
                space = true;
            } else {
                if space {
                    out.push(b' ');
                }
                space = false;
                out.push(c);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    // The split leaves one empty piece after the final CRLF; then drop trailing empty lines.
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    if out == b"\r\n" {
        out.clear();
    }
    out
}

/// The label and DER bytes of a PEM block.
fn pem_body(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("not a PEM file (no -----BEGIN line)")?;
    let rest = &pem[begin + 11..];
    let label_end = rest.find("-----").ok_or("a broken PEM header")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest
        .find("-----END ")
        .ok_or("a PEM block that never ends")?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = B64
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_canonicalize_relaxed() {
        assert_eq!(
            canonical_header("Content-Type: multipart/alternative;\r\n boundary=\"x\""),
            "content-type:multipart/alternative; boundary=\"x\""
        );
        assert_eq!(canonical_header("SUBJECT:  a \t b  "), "subject:a b");
    }

    #[test]
    fn bodies_canonicalize_relaxed() {
        assert_eq!(canonical_body(b"a  b \r\nc\t\r\n\r\n\r\n"), b"a b\r\nc\r\n");
        assert_eq!(canonical_body(b""), b"");
        assert_eq!(canonical_body(b"\r\n\r\n"), b"");
    }
}
