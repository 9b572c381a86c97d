//! Who may be mailed: validated addresses and names, subscriber statuses, consent evidence,
//! and the rule for when a confirmation email may go out. Raw strings from forms, CSV files
//! and the API become [`Email`] and names here, before anything else sees them; the store
//! and the subscriber flows share these plain types.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Longest accepted address (RFC 5321 path limit).
const MAX_EMAIL: usize = 254;
/// Longest accepted name, in characters.
pub const MAX_NAME: usize = 100;

/// A normalized email address: lettre's syntax rules (the `email_address` crate), one
/// spelling per mailbox — a quoted local part that needs no quotes is unquoted
/// (`"ann"@example.org` is `ann@example.org`), the domain lower-cased and IDNA-encoded
/// (punycode) — and an ASCII local part. Addresses whose local part needs quoting (spaces,
/// `@`, commas…) and IP-literal domains are refused: herald could not build mail to them,
/// and a second spelling of one mailbox would slip past its suppression.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("an email address is required".into());
        }
        if s.chars().any(|c| c.is_control()) {
            return Err("the email address contains a line break or control character".into());
        }
        if s.len() > MAX_EMAIL {
            return Err(format!(
                "the email address is too long (at most {MAX_EMAIL} characters)"
            ));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("{s:?} is not an email address (no @)"));
        };
        let local = unquote(local).map_err(|why| format!("{s:?}: {why}"))?;
        if !local.is_ascii() {
            return Err(format!(
                "{s:?}: addresses with non-ASCII characters before the @ cannot be delivered reliably; please use another address"
            ));
        }
        if !email_address::EmailAddress::is_valid_local_part(&local) || local.starts_with('"') {
            return Err(format!(
                "{s:?} is not a valid email address: the part before the @ may hold letters, digits, dots (not two in a row, not first or last) and !#$%&'*+-/=?^_`{{|}}~"
            ));
        }
        if domain.starts_with('[') {
            return Err(format!(
                "{s:?}: addresses at an IP address ([…]) are not accepted; use an address at a domain name"
            ));
        }
        let domain = idna::domain_to_ascii(domain)
            .map_err(|_| format!("{s:?}: {domain:?} is not a valid domain name"))?
            .to_ascii_lowercase();
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(format!("{s:?}: {domain:?} is not a valid domain name"));
        }
        let normalized = format!("{local}@{domain}");
        if normalized.len() > MAX_EMAIL {
            return Err(format!(
                "the email address is too long (at most {MAX_EMAIL} characters)"
            ));
        }
        lettre::Address::from_str(&normalized)
            .map_err(|e| format!("{s:?} is not a valid email address: {e}"))?;
        Ok(Email(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key two spellings of one mailbox share (`Ann@X.org`, `ann@x.org`).
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The local part without quotes: `"ann"` is `ann`. A quoted local part whose content
/// needs the quotes (a space, `@`, `,`, a backslash escape…) is refused, since its unquoted
/// form would name another mailbox and herald cannot send to the quoted form.
fn unquote(local: &str) -> Result<String, String> {
    let Some(inner) = local.strip_prefix('"') else {
        return Ok(local.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err("the quotes before the @ are not closed".into());
    };
    let needs_quotes = inner.is_empty()
        || !email_address::EmailAddress::is_valid_local_part(inner)
        || inner.contains(['"', '\\']);
    if needs_quotes {
        return Err(
            "addresses whose part before the @ needs quotes (spaces, @, commas, quotes) are not accepted; please use another address".into(),
        );
    }
    Ok(inner.to_string())
}

/// A display name: no control characters, at most [`MAX_NAME`] characters, trimmed.
pub fn clean_name(raw: &str) -> Result<String, String> {
    if raw.contains(['\r', '\n']) {
        return Err("the name must be on one line".into());
    }
    let name: String = raw.chars().filter(|c| !c.is_control()).collect();
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.chars().count() > MAX_NAME {
        return Err(format!(
            "the name is too long (at most {MAX_NAME} characters)"
        ));
    }
    Ok(name)
}

/// Where a subscriber stands. Only `Confirmed` receives digests; the last three are
/// suppressions that only the person can lift, by signing up and confirming again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Confirmed,
    Unsubscribed,
    Bounced,
    Complained,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Confirmed,
        Status::Unsubscribed,
        Status::Bounced,
        Status::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
            Status::Complained => "complained",
        }
    }

    pub fn is_suppressed(self) -> bool {
        matches!(
            self,
            Status::Unsubscribed | Status::Bounced | Status::Complained
        )
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown status {s:?} (one of pending, confirmed, unsubscribed, bounced, complained)"))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an anonymous sign-up request sends no confirmation email. The requester is told the
/// same "check your inbox" either way, so the list cannot be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address had its `subscribe.confirmations_per_day` in the last 24 hours.
    RateLimited,
    /// The address complained (marked mail as spam): anonymous requests never mail it.
    Complained,
    /// The address hard-bounced and had a confirmation email less than
    /// [`BOUNCED_CONFIRMATION_EVERY`] ago.
    RecentlyBounced,
}

/// A bounced address may get one confirmation email this often: enough for a person whose
/// mailbox works again to come back by confirming, too rarely for anyone to use herald to
/// hammer a dead mailbox (every bounce costs the sender's reputation).
pub const BOUNCED_CONFIRMATION_EVERY: chrono::Duration = chrono::Duration::days(7);

/// Whether an anonymous sign-up request (the form, the public JSON endpoint) may queue a
/// confirmation email to an address now. `status` is the address's status if it is
/// stored, `sent_24h` the confirmation emails queued for it in the last 24 hours, `last`
/// when the latest was queued.
pub fn may_send_confirmation(
    status: Option<Status>,
    sent_24h: i64,
    per_day: u32,
    last: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Refusal> {
    match status {
        Some(Status::Complained) => return Err(Refusal::Complained),
        Some(Status::Bounced) if last.is_some_and(|l| now - l < BOUNCED_CONFIRMATION_EVERY) => {
            return Err(Refusal::RecentlyBounced);
        }
        _ => {}
    }
    if sent_24h >= i64::from(per_day) {
        return Err(Refusal::RateLimited);
    }
    Ok(())
}

/// Consent evidence recorded with a sign-up.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// `form`, `api`, `cli`, `import:<file>`.
    pub source: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A fresh random nonce (hex).
pub fn nonce() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Any input is answered with an address or a reason, and an accepted address is
        /// its own canonical form: parsing it again gives it back, so it has one key.
        #[test]
        fn any_address_is_answered_and_canonical(raw in ".{0,80}", local in "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\"\\ @-]{0,20}", domain in "[a-zA-Z0-9.\\[\\]:-]{0,20}") {
            for candidate in [raw.clone(), format!("{local}@{domain}"), format!("\"{local}\"@{domain}")] {
                if let Ok(e) = Email::parse(&candidate) {
                    let again = Email::parse(e.as_str()).expect("a canonical address parses");
                    prop_assert_eq!(again.as_str(), e.as_str());
                    prop_assert!(!e.as_str().contains('"'), "{}", e.as_str());
                    prop_assert!(e.as_str().is_ascii());
                    prop_assert!(lettre::Address::from_str(e.as_str()).is_ok());
                }
            }
        }
    }

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(
            Email::parse("  Ann@Example.ORG ").unwrap().as_str(),
            "Ann@example.org"
        );
        assert_eq!(
            Email::parse("ann@bücher.example").unwrap().as_str(),
            "ann@xn--bcher-kva.example"
        );
        assert_eq!(
            Email::parse("Ann@Example.org").unwrap().key(),
            "ann@example.org"
        );
    }

    #[test]
    fn one_mailbox_has_one_spelling() {
        for same in [
            "ann@example.org",
            "\"ann\"@example.org",
            " \"Ann\"@EXAMPLE.org",
            "ann@Example.Org",
        ] {
            assert_eq!(
                Email::parse(same).unwrap().key(),
                "ann@example.org",
                "{same:?}"
            );
        }
        assert_eq!(
            Email::parse("\"a.b+news\"@example.org").unwrap().as_str(),
            "a.b+news@example.org"
        );
    }

    #[test]
    fn local_parts_that_need_quotes_and_ip_literals_are_refused() {
        for bad in [
            "\"ann lee\"@example.org",
            "\"a@b\"@example.org",
            "\"a,b\"@example.org",
            "\"a\\\"b\"@example.org",
            "\"\"@example.org",
            "\"ann@example.org",
            "ann@[192.0.2.1]",
            "ann@[IPv6:2001:db8::1]",
            "a..b@example.org",
            ".a@example.org",
        ] {
            let e = Email::parse(bad).unwrap_err();
            assert!(
                e.contains(bad.trim()) || e.contains("quotes"),
                "{bad:?}: {e}"
            );
        }
        assert!(
            Email::parse("ann@[192.0.2.1]")
                .unwrap_err()
                .contains("IP address")
        );
        assert!(
            Email::parse("\"ann lee\"@example.org")
                .unwrap_err()
                .contains("quotes")
        );
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        for bad in [
            "",
            "no-at",
            "a@b",
            "a@@b.org",
            "a b@c.org",
            "ann@example.org\r\nBcc: x@y.z",
            "jörg@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            Email::parse("jörg@example.org")
                .unwrap_err()
                .contains("non-ASCII")
        );
        assert!(
            Email::parse(&format!("{}@example.org", "a".repeat(300)))
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn complainers_are_never_mailed_and_bounced_addresses_rarely() {
        let now = chrono::Utc::now();
        let ok = |s, n, last| may_send_confirmation(s, n, 3, last, now);
        assert_eq!(ok(None, 0, None), Ok(()));
        assert_eq!(ok(Some(Status::Unsubscribed), 2, None), Ok(()));
        assert_eq!(ok(None, 3, None), Err(Refusal::RateLimited));
        assert_eq!(
            ok(Some(Status::Complained), 0, None),
            Err(Refusal::Complained)
        );
        assert_eq!(ok(Some(Status::Bounced), 0, None), Ok(()));
        let day_ago = Some(now - chrono::Duration::days(1));
        assert_eq!(
            ok(Some(Status::Bounced), 0, day_ago),
            Err(Refusal::RecentlyBounced)
        );
        let long_ago = Some(now - chrono::Duration::days(8));
        assert_eq!(ok(Some(Status::Bounced), 0, long_ago), Ok(()));
    }

    #[test]
    fn names_are_one_line_and_short() {
        assert_eq!(clean_name("  Ann \t Lee ").unwrap(), "Ann Lee");
        assert!(clean_name("Ann\r\nBcc: x").is_err());
        assert!(clean_name(&"x".repeat(101)).is_err());
    }
}
