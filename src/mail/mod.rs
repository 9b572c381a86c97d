//! Mail out: where messages go (an SMTP relay or `.eml` files), how a send ends (sent,
//! deferred, failed — with the SMTP reply behind it), and one [`Sender`] per worker that
//! holds its own connection.
//!
//! Every exchange with the relay runs under a timeout (lettre's own covers only the connect).
//!
//! # Layout
//! - [`smtp`]: the relay URL and connections (`TCP_NODELAY`, STARTTLS or implicit TLS, AUTH).
//! - [`message`]: digest and confirmation messages, one builder, optionally DKIM-signed.
//! - [`retry`]: the retry policy both mail queues follow.

pub mod dkim;
pub mod message;
pub mod retry;
pub mod smtp;

use std::path::PathBuf;
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::Mailbox;

use crate::config::{Site, TransportConfig};

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum Transport {
    /// `.eml` files in a folder (`outbox/`): the default, so the example publication works
    /// without a mail server.
    File(PathBuf),
    Smtp(smtp::Target),
}

impl Transport {
    /// From `HERALD_SMTP_URL` (in `smtp_url`), else `mail.transport` (parsed and checked
    /// with the configuration).
    pub fn from_site(site: &Site, smtp_url: Option<&str>) -> Result<Transport, String> {
        if let Some(url) = smtp_url {
            if url.trim() == "file" {
                return Ok(Transport::File(site.outbox_dir()));
            }
            return crate::config::SmtpUrl::parse(url)
                .map(Transport::Smtp)
                .map_err(|e| format!("HERALD_SMTP_URL: {e}"));
        }
        Ok(match &site.config.mail.transport {
            TransportConfig::File => Transport::File(site.outbox_dir()),
            TransportConfig::Smtp(url) => Transport::Smtp(url.clone()),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Transport::File(dir) => format!("files in {}", dir.display()),
            Transport::Smtp(t) => t.to_string(),
        }
    }
}

/// A message ready to go: who it is for and its bytes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
    /// With angle brackets, as in the header.
    pub message_id: String,
}

impl Outgoing {
    pub fn new(message: &lettre::Message, message_id: String) -> Outgoing {
        Outgoing {
            envelope: message.envelope().clone(),
            bytes: message.formatted(),
            message_id,
        }
    }
}

/// How a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", .code.map(|c| format!("{c} ")).unwrap_or_default(), .message)]
pub struct SendError {
    /// The basic reply code, when the relay answered (none for timeouts and lost connections).
    pub code: Option<u16>,
    /// The enhanced status code (RFC 3463) if the reply had one, such as `5.1.1`.
    pub enhanced: Option<String>,
    pub message: String,
}

impl SendError {
    pub fn network(message: impl Into<String>) -> SendError {
        SendError {
            code: None,
            enhanced: None,
            message: message.into(),
        }
    }

    pub fn from_lettre(e: &lettre::transport::smtp::Error) -> SendError {
        let message = e.to_string();
        let code = e.status().and_then(|c| c.to_string().parse().ok());
        SendError {
            code,
            enhanced: enhanced_code(&message),
            message,
        }
    }

    /// 5xx: never retried.
    pub fn is_permanent(&self) -> bool {
        self.code.is_some_and(|c| (500..600).contains(&c))
    }

    /// The relay is asking us to slow down (421, 450, 451, 452, 454).
    pub fn is_throttle(&self) -> bool {
        matches!(self.code, Some(421 | 450 | 451 | 452 | 454))
    }

    /// 5.1.x about the recipient: the address does not work. 5.1.7 and 5.1.8 are about the
    /// sender, so they do not count.
    pub fn is_bad_address(&self) -> bool {
        self.is_permanent()
            && self
                .enhanced
                .as_deref()
                .is_some_and(|e| e.starts_with("5.1.") && !matches!(e, "5.1.7" | "5.1.8"))
    }

    /// 5.7.x, or a sender-side 5.1.7/5.1.8: policy or authentication; the operator's
    /// problem, never the subscriber's.
    pub fn is_policy(&self) -> bool {
        self.is_permanent()
            && self
                .enhanced
                .as_deref()
                .is_some_and(|e| e.starts_with("5.7.") || matches!(e, "5.1.7" | "5.1.8"))
    }

    /// `2xx`/`4xx`/`5xx`/`timeout`/`network`: the label metrics use.
    pub fn class(&self) -> &'static str {
        match self.code {
            Some(c) if c >= 500 => "5xx",
            Some(c) if c >= 400 => "4xx",
            Some(_) => "other",
            None if self.message.contains("timed out") => "timeout",
            None => "network",
        }
    }
}

/// Finds an RFC 3463 enhanced status code (`5.1.1`) in a reply text.
fn enhanced_code(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ':' | ','))
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// How long a connection given up on may take to say goodbye.
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// One worker's way out: a lazily opened SMTP connection (reopened after errors) or a
/// folder of `.eml` files.
pub struct Sender {
    transport: Transport,
    timeout: Duration,
    conn: Option<smtp::Connection>,
}

impl Sender {
    pub fn new(transport: Transport, timeout: Duration) -> Sender {
        Sender {
            transport,
            timeout,
            conn: None,
        }
    }

    /// Whether the relay takes 8bit bodies (checked on connecting; files always do).
    pub async fn eight_bit(&mut self) -> Result<bool, SendError> {
        match &self.transport {
            Transport::File(_) => Ok(true),
            Transport::Smtp(_) => Ok(self.connection().await?.eight_bit()),
        }
    }

    /// Sends one message. A connection that failed is dropped, so the next send reconnects.
    pub async fn send(&mut self, out: &Outgoing) -> Result<(), SendError> {
        match &self.transport {
            Transport::File(dir) => write_eml(dir, out)
                .map_err(|e| SendError::network(format!("writing the outbox: {e}"))),
            Transport::Smtp(_) => {
                let timeout = self.timeout;
                let conn = self.connection().await?;
                let result = match tokio::time::timeout(timeout, conn.send(out)).await {
                    Ok(r) => r,
                    Err(_) => Err(SendError::network(format!(
                        "timed out after {} s",
                        timeout.as_secs()
                    ))),
                };
                if let Err(e) = &result
                    && (e.code.is_none() || e.code == Some(421) || conn.is_broken())
                {
                    // Lost, timed out, or closed by the relay: start afresh next time. The
                    // goodbye (QUIT) is bounded too: a relay that stalled after DATA does not
                    // answer it either.
                    if let Some(mut c) = self.conn.take() {
                        let _ = tokio::time::timeout(ABORT_WAIT.min(timeout), c.abort()).await;
                    }
                }
                result
            }
        }
    }

    /// Drops the connection without a word (after a send was cut off mid-transaction).
    pub fn abandon(&mut self) {
        self.conn = None;
    }

    /// Says goodbye to the relay (idle workers do this so connections are not left open).
    pub async fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.quit()).await;
        }
    }

    async fn connection(&mut self) -> Result<&mut smtp::Connection, SendError> {
        let Transport::Smtp(target) = &self.transport else {
            unreachable!("only SMTP transports open connections");
        };
        if self.conn.is_none() {
            let conn = tokio::time::timeout(self.timeout, smtp::Connection::open(target))
                .await
                .map_err(|_| SendError::network(format!("connecting to {target} timed out")))??;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("set just above"))
    }
}

/// Writes `<outbox>/<message-id>.eml` atomically; the same message written twice is one file.
fn write_eml(dir: &std::path::Path, out: &Outgoing) -> anyhow::Result<()> {
    let name: String = out
        .message_id
        .trim_matches(['<', '>'])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::fs::write_atomic(&dir.join(format!("{name}.eml")), &out.bytes)
}

/// The `From` mailbox: `mail.from`, else the site author's email, else `newsletter@<domain>`.
pub fn from_mailbox(site: &Site) -> Result<Mailbox, String> {
    let cfg = &site.config;
    if let Some(from) = &cfg.mail.from {
        return Ok(from.clone());
    }
    let name = Some(cfg.site.title.0.clone());
    let address = match cfg.site.author.as_ref().and_then(|a| a.email.clone()) {
        Some(e) => e,
        None => format!("newsletter@{}", cfg.site.domain()),
    };
    address
        .parse::<Address>()
        .map(|a| Mailbox::new(name, a))
        .map_err(|e| format!("no usable From address ({address:?}: {e}); set mail.from"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_found_in_replies() {
        assert_eq!(
            enhanced_code("permanent error (550): 5.1.1 no such user").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_code("transient error (451): 4.3.0 try later").as_deref(),
            Some("4.3.0")
        );
        assert_eq!(
            enhanced_code("permanent error (550): mailbox unavailable"),
            None
        );
        assert_eq!(enhanced_code("version 1.2.3 of"), None);
    }

    #[test]
    fn outcomes_are_classified() {
        let e = |code, enh: &str| SendError {
            code: Some(code),
            enhanced: Some(enh.into()),
            message: String::new(),
        };
        assert!(e(550, "5.1.1").is_bad_address() && !e(550, "5.1.1").is_policy());
        assert!(e(550, "5.7.1").is_policy() && !e(550, "5.7.1").is_bad_address());
        assert!(e(553, "5.1.8").is_policy());
        assert!(e(451, "4.3.0").is_throttle() && !e(451, "4.3.0").is_permanent());
        assert!(!SendError::network("lost").is_permanent());
        // 5.1.7 and 5.1.8 are about the sender: policy, never a bounce; 5.1.x else bounces.
        for sender_side in ["5.1.7", "5.1.8"] {
            let x = e(550, sender_side);
            assert!(x.is_policy() && !x.is_bad_address(), "{sender_side}");
        }
        for recipient in ["5.1.1", "5.1.2", "5.1.6", "5.1.10"] {
            let x = e(550, recipient);
            assert!(x.is_bad_address() && !x.is_policy(), "{recipient}");
        }
        let x = e(552, "5.2.2");
        assert!(x.is_permanent() && !x.is_bad_address() && !x.is_policy());
        // A 4xx with a 5.1.1-looking text is still temporary: no bounce.
        assert!(!e(450, "5.1.1").is_bad_address());
    }

    #[test]
    fn exactly_421_450_451_452_and_454_are_throttling() {
        let code = |c| SendError {
            code: Some(c),
            enhanced: None,
            message: String::new(),
        };
        let throttling: Vec<u16> = (200..600).filter(|c| code(*c).is_throttle()).collect();
        assert_eq!(throttling, [421, 450, 451, 452, 454]);
        assert!(!SendError::network("timed out after 60 s").is_throttle());
    }

    #[test]
    fn reply_classes_label_the_metrics() {
        let code = |c| SendError {
            code: Some(c),
            enhanced: None,
            message: String::new(),
        };
        assert_eq!(code(550).class(), "5xx");
        assert_eq!(code(500).class(), "5xx");
        assert_eq!(code(451).class(), "4xx");
        assert_eq!(code(400).class(), "4xx");
        assert_eq!(code(354).class(), "other");
        assert_eq!(SendError::network("timed out after 1 s").class(), "timeout");
        assert_eq!(SendError::network("connection reset").class(), "network");
    }
}
