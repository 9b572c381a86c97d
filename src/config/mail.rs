//! `[mail]`: how mail leaves herald — the sender addresses, the transport (a relay URL with
//! its TLS mode, parsed once here for `herald.toml` and `HERALD_SMTP_URL` alike), the pace and
//! the retry policy's knobs, and the DKIM key.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::Address;
use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::values::{HumanDuration, Rate, int_in, positive_duration};

/// `[mail]`: how mail leaves herald.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `Name <address>`; defaults to the site author's email, else `newsletter@<domain>`.
    #[serde(deserialize_with = "mailbox")]
    pub from: Option<Mailbox>,
    #[serde(deserialize_with = "mailbox")]
    pub reply_to: Option<Mailbox>,
    /// `file` (default: `.eml` files in `outbox/`), `smtp://host:port`, with
    /// `?tls=required` or `?tls=opportunistic`, or `smtps://host:port`. Credentials only
    /// through `HERALD_SMTP_URL`.
    pub transport: TransportConfig,
    /// Envelope sender (Return-Path) for bounces; defaults to `from`.
    #[serde(deserialize_with = "address")]
    pub envelope_from: Option<Address>,
    /// A mailto address offered in `List-Unsubscribe` beside the HTTPS link.
    #[serde(deserialize_with = "address")]
    pub unsubscribe_mailto: Option<Address>,
    pub rate_per_second: Rate,
    /// SMTP connections (sender tasks), 1 to 64.
    #[serde(deserialize_with = "connections")]
    pub connections: usize,
    /// Every SMTP exchange (connect, send) is cut off after this long.
    #[serde(deserialize_with = "positive_duration")]
    pub timeout: HumanDuration,
    /// A deferred message (digest or confirmation email) is retried until it is this old,
    /// then it fails.
    #[serde(deserialize_with = "positive_duration")]
    pub max_age: HumanDuration,
    /// The first retry delay after a temporary failure; later ones are 5×, 30×, 120× and
    /// 360× it (1 min, 5 min, 30 min, 2 h, 6 h by default), with ±20% jitter.
    #[serde(deserialize_with = "positive_duration")]
    pub retry_base: HumanDuration,
    pub dkim: Option<DkimConfig>,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            from: None,
            reply_to: None,
            transport: TransportConfig::File,
            envelope_from: None,
            unsubscribe_mailto: None,
            rate_per_second: Rate(50.0),
            connections: 4,
            timeout: HumanDuration(Duration::from_secs(60)),
            max_age: HumanDuration(Duration::from_secs(3 * 24 * 3600)),
            retry_base: HumanDuration(Duration::from_secs(60)),
            dkim: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub domain: String,
    pub selector: String,
    /// A PKCS#1 or PKCS#8 PEM RSA-2048 private key, relative to the publication folder.
    pub key_file: PathBuf,
}

fn mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mailbox>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Mailbox>().map(Some).map_err(|e| {
        D::Error::custom(format!(
            "{s:?} is not a mailbox (`Name <address>` or an address): {e}"
        ))
    })
}

fn address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Address>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Address>()
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{s:?} is not an email address: {e}")))
}

fn connections<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    int_in(d, 1, 64, "herald opens 1 to 64 SMTP connections").map(|n| n as usize)
}

/// Where mail goes, as configured.
#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// `.eml` files in `outbox/`.
    File,
    Smtp(SmtpUrl),
}

impl<'de> Deserialize<'de> for TransportConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "file" {
            return Ok(TransportConfig::File);
        }
        let url = SmtpUrl::parse(&s).map_err(|e| {
            D::Error::custom(format!(
                "{e} (mail.transport is \"file\", \"smtp://host:port\", \"smtp://host:port?tls=required\" or \"smtps://host:port\")"
            ))
        })?;
        if url.user.is_some() || url.password.is_some() {
            return Err(D::Error::custom(
                "mail.transport must not carry credentials: put the URL with user and password in HERALD_SMTP_URL",
            ));
        }
        Ok(TransportConfig::Smtp(url))
    }
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://host` with no `tls=` (or `tls=none`): plaintext.
    Plain,
    /// `?tls=opportunistic`: STARTTLS when the relay offers it, else plaintext (lettre's
    /// meaning of the same URL). A man in the middle can strip the offer: fine on a trusted
    /// network, not across the internet.
    Opportunistic,
    /// `?tls=required`: STARTTLS or no mail.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// A relay URL, parsed: `smtp://host[:port]` (plaintext, port 25), `?tls=opportunistic`
/// (STARTTLS when offered, port 587), `?tls=required` (STARTTLS, port 587),
/// `smtps://host[:port]` (implicit TLS, port 465); `user:password@` (URL-encoded) turns on AUTH.
#[derive(Clone)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    pub password: Option<SecretString>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for SmtpUrl {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.security == Security::Implicit {
            "smtps"
        } else {
            "smtp"
        };
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let tls = match self.security {
            Security::StartTls => "?tls=required",
            Security::Opportunistic => "?tls=opportunistic",
            Security::Plain | Security::Implicit => "",
        };
        write!(f, "{scheme}://{user}{}:{}{tls}", self.host, self.port)
    }
}

impl SmtpUrl {
    /// Parses a relay URL (credentials allowed: `HERALD_SMTP_URL` carries them).
    pub fn parse(url: &str) -> Result<SmtpUrl, String> {
        let u = url::Url::parse(url.trim())
            .map_err(|e| format!("{:?} is not a URL: {e}", redact(url)))?;
        let security = match u.scheme() {
            "smtps" => Security::Implicit,
            "smtp" => Security::Plain,
            other => {
                return Err(format!(
                    "unknown scheme {other:?} in {:?}: use smtp:// or smtps://",
                    redact(url)
                ));
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{:?} names no host", redact(url)))?;
        let host = host.trim_matches(['[', ']']).to_string();
        let mut security = security;
        for (k, v) in u.query_pairs() {
            match (k.as_ref(), v.as_ref(), security) {
                ("tls", _, Security::Implicit) => {
                    return Err("smtps:// is TLS already: drop the tls= option".into());
                }
                ("tls", "none", _) => security = Security::Plain,
                ("tls", "required", _) => security = Security::StartTls,
                ("tls", "opportunistic", _) => security = Security::Opportunistic,
                ("tls", other, _) => {
                    return Err(format!(
                        "unknown tls={other:?}: use tls=required or tls=opportunistic"
                    ));
                }
                (other, ..) => {
                    return Err(format!(
                        "unknown option {other:?} in the SMTP URL (only tls= is understood)"
                    ));
                }
            }
        }
        let port = u.port().unwrap_or(match security {
            Security::Plain => 25,
            Security::StartTls | Security::Opportunistic => 587,
            Security::Implicit => 465,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = (!u.username().is_empty()).then(|| decode(u.username()));
        let password = u.password().map(|p| SecretString::from(decode(p)));
        Ok(SmtpUrl {
            host,
            port,
            security,
            user,
            password,
        })
    }

    /// A connection to anything but loopback that can end up in plaintext exposes mail
    /// (and passwords): plain `smtp://`, and `tls=opportunistic` (the offer can be stripped).
    pub fn is_plaintext_remote(&self) -> bool {
        matches!(self.security, Security::Plain | Security::Opportunistic)
            && !matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn relay_urls_are_understood() {
        let t = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((t.port, t.security), (2525, Security::Plain));
        assert!(!t.is_plaintext_remote());
        let t = SmtpUrl::parse("smtp://me%40x.org:p%40ss@relay.example.com?tls=required").unwrap();
        assert_eq!((t.port, t.security), (587, Security::StartTls));
        assert_eq!(t.user.as_deref(), Some("me@x.org"));
        assert_eq!(t.password.as_ref().unwrap().expose_secret(), "p@ss");
        assert_eq!(
            t.to_string(),
            "smtp://me@x.org@relay.example.com:587?tls=required"
        );
        let t = SmtpUrl::parse("smtps://relay.example.com").unwrap();
        assert_eq!((t.port, t.security), (465, Security::Implicit));
        let t = SmtpUrl::parse("smtp://relay.example.com?tls=opportunistic").unwrap();
        assert_eq!((t.port, t.security), (587, Security::Opportunistic));
        assert!(t.is_plaintext_remote());
        assert_eq!(
            t.to_string(),
            "smtp://relay.example.com:587?tls=opportunistic"
        );
        assert!(SmtpUrl::parse("http://relay").is_err());
        assert!(SmtpUrl::parse("smtp://relay?tls=maybe").is_err());
        assert!(SmtpUrl::parse("smtp://relay?tsl=required").is_err());
        assert!(SmtpUrl::parse("smtps://relay?tls=required").is_err());
        assert!(
            SmtpUrl::parse("smtp://relay.example.com")
                .unwrap()
                .is_plaintext_remote()
        );
    }
}
