//! Digest messages: one per recipient, built from the issue rendered once (DESIGN §6):
//! `multipart/alternative` (text, then HTML), a deterministic `Message-ID` per ledger row,
//! `List-Id`, `List-Unsubscribe` (HTTPS, plus mailto when configured) with
//! `List-Unsubscribe-Post`, `Precedence: bulk`, an optional envelope sender for bounces, and
//! an optional DKIM signature covering the list headers. Bodies are 8bit when the relay
//! takes them (lettre's quoted-printable encoder costs ~150 µs per 20 KB message).

use std::sync::Arc;

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use super::Outgoing;
use crate::config::Site;
use crate::newsletters::{IssueContent, Recipient};

/// Headers the DKIM signature covers (RFC 8058 needs both List-Unsubscribe headers signed).
const SIGNED: [&str; 12] = [
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

/// Builds digest messages; one per process, shared by the sender tasks.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    envelope_from: Address,
    /// The domain Message-IDs are minted under: the From address's.
    domain: String,
    site_domain: String,
    unsubscribe_mailto: Option<String>,
    dkim: Option<Arc<DkimConfig>>,
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
        let reply_to = cfg
            .reply_to
            .as_deref()
            .map(|r| {
                r.parse::<Mailbox>()
                    .map_err(|e| format!("mail.reply_to {r:?}: {e}"))
            })
            .transpose()?;
        let envelope_from = match &cfg.envelope_from {
            Some(a) => a
                .parse::<Address>()
                .map_err(|e| format!("mail.envelope_from {a:?}: {e}"))?,
            None => from.email.clone(),
        };
        let dkim = match &cfg.dkim {
            None => None,
            Some(d) => {
                let path = site.dir.join(&d.key_file);
                let pem = std::fs::read_to_string(&path)
                    .map_err(|e| format!("mail.dkim.key_file {}: {e}", path.display()))?;
                let key = rsa_pkcs1_pem(&pem)
                    .map_err(|e| format!("mail.dkim.key_file {}: {e}", path.display()))?;
                let key = DkimSigningKey::new(&key, DkimSigningAlgorithm::Rsa)
                    .map_err(|e| format!("mail.dkim.key_file {}: {e}", path.display()))?;
                Some(Arc::new(DkimConfig::new(
                    d.selector.clone(),
                    d.domain.clone(),
                    key,
                    SIGNED
                        .iter()
                        .map(|h| HeaderName::new_from_ascii_str(h))
                        .collect(),
                    DkimCanonicalization {
                        header: DkimCanonicalizationType::Relaxed,
                        body: DkimCanonicalizationType::Relaxed,
                    },
                )))
            }
        };
        Ok(Composer {
            domain: from.email.domain().to_string(),
            site_domain: site.config.site.domain(),
            from,
            reply_to,
            envelope_from,
            unsubscribe_mailto: cfg.unsubscribe_mailto.clone(),
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
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id.clone()))
            .envelope(Envelope::new(
                Some(self.envelope_from.clone()),
                vec![to_address],
            )?)
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
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        let mut message = b.multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, text, eight_bit))
                .singlepart(part(ContentType::TEXT_HTML, html, eight_bit)),
        )?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok(Outgoing::new(&message, message_id))
    }
}

/// An 8bit part where allowed and possible (lines ≤ 998), otherwise lettre's choice
/// (7bit, quoted-printable or base64).
fn part(content_type: ContentType, body: String, eight_bit: bool) -> SinglePart {
    let body = if eight_bit {
        Body::new_with_encoding(body, ContentTransferEncoding::EightBit)
            .unwrap_or_else(|raw| Body::new(String::from_utf8(raw).unwrap_or_default()))
    } else {
        Body::new(body)
    };
    SinglePart::builder().header(content_type).body(body)
}

/// The phrase of a List-Id: the title, without characters that would need quoting.
fn list_label(title: &str) -> String {
    let clean: String = title
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '"' | '\\' | '\r' | '\n'))
        .collect();
    format!("\"{}\"", clean.trim())
}

/// A PKCS#1 PEM for lettre, from a PKCS#1 or PKCS#8 PEM RSA key of at least 2048 bits.
fn rsa_pkcs1_pem(pem: &str) -> Result<String, String> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|_| "not an RSA private key in PEM (PKCS#1 \"BEGIN RSA PRIVATE KEY\" or PKCS#8 \"BEGIN PRIVATE KEY\")".to_string())?;
    if key.size() * 8 < 2048 {
        return Err(format!(
            "the RSA key has {} bits; DKIM needs at least 2048",
            key.size() * 8
        ));
    }
    key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .map(|p| p.to_string())
        .map_err(|e| format!("converting the key: {e}"))
}
