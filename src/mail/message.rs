//! Digest messages: one per recipient, built from the issue rendered once:
//! `multipart/alternative` (text, then HTML), a deterministic `Message-ID` per ledger row,
//! `List-Id`, `List-Unsubscribe` (HTTPS, plus mailto when configured) with
//! `List-Unsubscribe-Post`, `Precedence: bulk`, an optional envelope sender for bounces, and
//! an optional DKIM signature covering the list headers. Bodies are 8bit when the relay
//! takes them (lettre's quoted-printable encoder costs ~150 µs per 20 KB message).

use std::sync::Arc;

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use super::Outgoing;
use super::dkim::Signer;
use crate::config::Site;
use crate::newsletters::{IssueContent, Recipient};

/// Builds digest messages; one per process, shared by the sender tasks.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    envelope_from: Address,
    /// The domain Message-IDs are minted under: the From address's.
    domain: String,
    site_domain: String,
    unsubscribe_mailto: Option<String>,
    dkim: Option<Arc<Signer>>,
}

/// A confirmation email to build, its parts already rendered.
pub struct Confirmation<'a> {
    /// The queued job's id and nonce: they make the Message-ID.
    pub job: i64,
    pub nonce: &'a str,
    pub to_email: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// One message to build.
pub struct Digest<'a> {
    pub newsletter_id: &'a str,
    pub newsletter_title: &'a str,
    pub issue: i64,
    pub row: i64,
    pub content: &'a IssueContent,
    pub to_email: &'a str,
    pub to_name: &'a str,
    pub unsubscribe_url: &'a str,
    /// `mailto:` unsubscribe token, when a mailto address is configured.
    pub unsubscribe_token: &'a str,
}

impl Composer {
    pub fn new(site: &Site) -> Result<Composer, String> {
        let cfg = &site.config.mail;
        let from = super::from_mailbox(site)?;
        let reply_to = cfg.reply_to.clone();
        let envelope_from = cfg
            .envelope_from
            .clone()
            .unwrap_or_else(|| from.email.clone());
        let dkim = match &cfg.dkim {
            None => None,
            Some(d) => {
                let path = site.dir.join(&d.key_file);
                let pem = std::fs::read_to_string(&path)
                    .map_err(|e| format!("mail.dkim.key_file {}: {e}", path.display()))?;
                let signer = Signer::from_pem(&d.domain, &d.selector, &pem)
                    .map_err(|e| format!("mail.dkim.key_file {}: {e}", path.display()))?;
                Some(Arc::new(signer))
            }
        };
        Ok(Composer {
            domain: from.email.domain().to_string(),
            site_domain: site.config.site.domain(),
            from,
            reply_to,
            envelope_from,
            unsubscribe_mailto: cfg.unsubscribe_mailto.as_ref().map(Address::to_string),
            dkim,
        })
    }

    /// The Message-ID of a ledger row: the same on every attempt.
    pub fn message_id(&self, issue: i64, row: i64) -> String {
        format!("<herald.{issue}.{row}@{}>", self.domain)
    }

    pub fn signs(&self) -> bool {
        self.dkim.is_some()
    }

    /// Builds one recipient's message; `eight_bit` when the relay takes 8bit bodies.
    pub fn compose(&self, d: &Digest<'_>, eight_bit: bool) -> anyhow::Result<Outgoing> {
        let variant = d.content.for_name(d.to_name);
        let r = Recipient {
            name: d.to_name,
            email: d.to_email,
            unsubscribe_url: d.unsubscribe_url,
            preferences_url: d.unsubscribe_url,
        };
        let subject = variant.subject.fill(&r, false);
        let text = variant.text.fill(&r, false);
        let html = variant.html.fill(&r, true);
        let to_address: Address = d.to_email.parse()?;
        let to = Mailbox::new(
            (!d.to_name.is_empty()).then(|| d.to_name.to_string()),
            to_address.clone(),
        );
        let message_id = self.message_id(d.issue, d.row);

        let mut unsubscribe = format!("<{}>", d.unsubscribe_url);
        if let Some(mailto) = &self.unsubscribe_mailto {
            unsubscribe.push_str(&format!(
                ", <mailto:{mailto}?subject=unsubscribe%20{}>",
                d.unsubscribe_token
            ));
        }
        let header = |name: &'static str, value: String| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
        };
        let b = lettre::Message::builder()
            .to(to)
            .subject(subject)
            .raw_header(header(
                "List-Id",
                format!(
                    "{} <{}.{}>",
                    list_label(d.newsletter_title),
                    d.newsletter_id,
                    self.site_domain
                ),
            ))
            .raw_header(header("List-Unsubscribe", unsubscribe))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ))
            .raw_header(header("Precedence", "bulk".into()));
        self.finish(b, to_address, message_id, text, html, eight_bit)
    }

    /// The Message-ID of a queued confirmation email: the same on every attempt.
    pub fn confirmation_message_id(&self, job: i64, nonce: &str) -> String {
        format!(
            "<confirm-{job}-{}@{}>",
            &nonce[..8.min(nonce.len())],
            self.domain
        )
    }

    /// Builds a confirmation email (double opt-in): the same From, Reply-To, envelope
    /// sender and DKIM signature as a digest, with `Auto-Submitted: auto-generated`
    /// (RFC 3834) instead of the list headers, and no display name in `To` (the name typed
    /// in the form is not trusted until the address is confirmed).
    pub fn compose_confirmation(
        &self,
        c: &Confirmation<'_>,
        eight_bit: bool,
    ) -> anyhow::Result<Outgoing> {
        let to_address: Address = c.to_email.parse()?;
        let b = lettre::Message::builder()
            .to(Mailbox::new(None, to_address.clone()))
            .subject(c.subject.trim())
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ));
        let message_id = self.confirmation_message_id(c.job, c.nonce);
        self.finish(
            b,
            to_address,
            message_id,
            c.text.to_string(),
            c.html.to_string(),
            eight_bit,
        )
    }

    /// What every message gets: From, Reply-To, Message-ID, the envelope sender, the
    /// `multipart/alternative` body, and — last, over the exact bytes that go out — the
    /// DKIM signature.
    fn finish(
        &self,
        b: lettre::message::MessageBuilder,
        to_address: Address,
        message_id: String,
        text: String,
        html: String,
        eight_bit: bool,
    ) -> anyhow::Result<Outgoing> {
        let mut b = b
            .from(self.from.clone())
            .message_id(Some(message_id.clone()))
            .envelope(Envelope::new(
                Some(self.envelope_from.clone()),
                vec![to_address],
            )?);
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        let message = b.multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, text, eight_bit))
                .singlepart(part(ContentType::TEXT_HTML, html, eight_bit)),
        )?;
        let mut out = Outgoing::new(&message, message_id);
        if let Some(dkim) = &self.dkim {
            // Signed last, over the exact bytes that go out.
            out.bytes = dkim
                .sign(&out.bytes, chrono::Utc::now().timestamp())
                .map_err(anyhow::Error::msg)?;
        }
        Ok(out)
    }
}

/// An 8bit part where allowed and possible (lines of at most 998 octets, no NUL), otherwise
/// lettre's choice (7bit, quoted-printable or base64). lettre's own chooser refuses 8bit for
/// any line of 76 characters or more, which is every real HTML body.
fn part(content_type: ContentType, body: String, eight_bit: bool) -> SinglePart {
    let body = match eight_bit.then(|| eight_bit_body(&body)).flatten() {
        Some(b) => b,
        None => Body::new(body),
    };
    SinglePart::builder().header(content_type).body(body)
}

fn eight_bit_body(text: &str) -> Option<Body> {
    if text.contains('\0') {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() + text.len() / 40);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.len() > 998 {
            return None;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.truncate(out.len() - 2); // the split added one CRLF too many
    let encoding = if text.is_ascii() {
        ContentTransferEncoding::SevenBit
    } else {
        ContentTransferEncoding::EightBit
    };
    Some(Body::dangerous_pre_encoded(out, encoding))
}

/// The phrase of a List-Id: the title, without characters that would need quoting.
fn list_label(title: &str) -> String {
    let clean: String = title
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '"' | '\\' | '\r' | '\n'))
        .collect();
    format!("\"{}\"", clean.trim())
}
