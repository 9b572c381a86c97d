//! `herald.toml`: parsing, defaults, validation and `HERALD_*` environment overrides.
//!
//! Parsing is separate from reading the file (`Config::parse`), every section has
//! `deny_unknown_fields`, and every value that needs checking is a newtype whose
//! `Deserialize` refuses bad input, so the error carries the key's line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// Environment variables that are not configuration overrides.
const NOT_OVERRIDES: &[&str] = &[
    "HERALD_SITE",
    "HERALD_SMTP_URL",
    "HERALD_SECRET",
    "HERALD_ADMIN_TOKEN",
    "HERALD_LOG",
];

/// The whole of `herald.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub site: SiteConfig,
    #[serde(default)]
    pub articles: ArticlesConfig,
    #[serde(default)]
    pub feeds: FeedsConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub mail: MailConfig,
    #[serde(default)]
    pub subscribe: SubscribeConfig,
    #[serde(default, rename = "newsletter")]
    pub newsletters: Vec<NewsletterConfig>,
    #[serde(default)]
    pub store: StoreConfig,
}

/// `[site]`: who publishes, where, in which language and time zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub title: NonEmpty,
    /// Plain text; defaults to the title (RSS requires a channel description).
    #[serde(default)]
    pub description: Option<String>,
    /// The public address of the publication; feeds, article URLs and emailed links hang off it.
    pub base_url: BaseUrl,
    #[serde(default = "default_language")]
    pub language: String,
    /// IANA zone for dates written without an offset.
    #[serde(default)]
    pub timezone: Zone,
    /// The publication's author; defaults to the site title with no email.
    #[serde(default)]
    pub author: Option<Person>,
    /// The publisher's postal address, plain text (lines as written), shown in every
    /// digest's footer: commercial email must carry one (CAN-SPAM in the US, and elsewhere).
    #[serde(default, deserialize_with = "postal_address")]
    pub postal_address: Option<String>,
    /// The host of `base_url` as written in herald.toml, when an environment override
    /// changed `base_url` (see [`SiteConfig::domain`]).
    #[serde(skip)]
    pub written_host: Option<String>,
}

/// A person as configured: `{ name = "…", email = "…" }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// `[articles]`: what herald agrees to read under `articles/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArticlesConfig {
    /// Read files and folders that `articles/` links to outside the publication folder.
    /// Off by default: a stray link must not publish a host's private file.
    pub allow_outside: bool,
    /// The largest article file read; a bigger one is reported and left out, so one huge
    /// file cannot blow up every feed it would appear in.
    pub max_size: HumanSize,
}

impl Default for ArticlesConfig {
    fn default() -> Self {
        ArticlesConfig {
            allow_outside: false,
            max_size: HumanSize(2_000_000),
        }
    }
}

/// `[feeds]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsConfig {
    /// Newest entries per feed.
    pub items: ItemCount,
    pub formats: Vec<FeedFormat>,
    /// One set of feeds per tag under `feeds/tags/<tag-slug>/`.
    pub per_tag: bool,
    /// A WebSub hub to advertise and ping after each change.
    pub websub_hub: Option<AbsoluteUrl>,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            items: ItemCount(50),
            formats: vec![FeedFormat::Rss, FeedFormat::Atom, FeedFormat::Json],
            per_tag: true,
            websub_hub: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    Rss,
    Atom,
    Json,
}

impl FeedFormat {
    pub const ALL: [FeedFormat; 3] = [FeedFormat::Rss, FeedFormat::Atom, FeedFormat::Json];

    pub fn file_name(self) -> &'static str {
        match self {
            FeedFormat::Rss => "rss.xml",
            FeedFormat::Atom => "atom.xml",
            FeedFormat::Json => "feed.json",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            FeedFormat::Rss => "application/rss+xml; charset=utf-8",
            FeedFormat::Atom => "application/atom+xml; charset=utf-8",
            FeedFormat::Json => "application/feed+json; charset=utf-8",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FeedFormat::Rss => "RSS",
            FeedFormat::Atom => "Atom",
            FeedFormat::Json => "JSON Feed",
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub bind: String,
    /// Behind reverse proxies: how many of them append to `X-Forwarded-For` (`true` is one).
    /// The client address is the one the outermost trusted proxy saw.
    pub trust_proxy: TrustedHops,
    /// A client must send a request's whole header within this long, or the connection
    /// is closed (slow-header clients hold no socket for long).
    pub header_read_timeout: HumanDuration,
    /// A keep-alive connection with no traffic for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Open connections at most; more wait in the listen queue. Never more than half of
    /// the process's file-descriptor limit, so the store, feeds and SMTP keep theirs.
    pub max_connections: usize,
    /// A request whose handler takes longer than this is answered 408 (or 503).
    pub request_timeout: HumanDuration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: "127.0.0.1:8080".into(),
            trust_proxy: TrustedHops(0),
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            idle_timeout: HumanDuration(Duration::from_secs(60)),
            max_connections: 1024,
            request_timeout: HumanDuration(Duration::from_secs(30)),
        }
    }
}

/// How many proxies in front of herald append to `X-Forwarded-For`: `false` (none, the
/// default: the header is ignored), `true` (one) or a number up to 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrustedHops(pub usize);

impl<'de> Deserialize<'de> for TrustedHops {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Count(i64),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "trust_proxy must be true, false or a number of proxies (0 to 10)",
            )
        })? {
            Raw::Flag(b) => Ok(TrustedHops(b as usize)),
            Raw::Count(n) if (0..=10).contains(&n) => Ok(TrustedHops(n as usize)),
            Raw::Count(n) => Err(serde::de::Error::custom(format!(
                "trust_proxy = {n}: give the number of proxies in front of herald, 0 to 10"
            ))),
        }
    }
}

/// `[mail]`: how mail leaves herald.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `Name <address>`; defaults to the site author's email, else `newsletter@<domain>`.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// `file` (default: `.eml` files in `outbox/`), `smtp://host:port?tls=required` or
    /// `smtps://host:port`. Credentials only through `HERALD_SMTP_URL`.
    pub transport: String,
    /// Envelope sender (Return-Path) for bounces; defaults to `from`.
    pub envelope_from: Option<String>,
    /// A mailto address offered in `List-Unsubscribe` beside the HTTPS link.
    pub unsubscribe_mailto: Option<String>,
    pub rate_per_second: f64,
    pub connections: usize,
    /// Every SMTP exchange (connect, send) is cut off after this long.
    pub timeout: HumanDuration,
    /// A deferred message is retried until it is this old, then it fails.
    pub max_age: HumanDuration,
    /// The first retry delay after a temporary failure; later ones are 5×, 30×, 120× and
    /// 360× it (1 min, 5 min, 30 min, 2 h, 6 h by default), with ±20% jitter.
    pub retry_base: HumanDuration,
    pub dkim: Option<DkimConfig>,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            from: None,
            reply_to: None,
            transport: "file".into(),
            envelope_from: None,
            unsubscribe_mailto: None,
            rate_per_second: 50.0,
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

/// `[subscribe]`: the sign-up form's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscribeConfig {
    /// Confirmation emails per address per 24 hours.
    pub confirmations_per_day: u32,
    /// Sign-up requests per client address per minute.
    pub requests_per_minute: u32,
    /// How long a confirmation link stays valid.
    pub confirm_expiry: HumanDuration,
}

impl Default for SubscribeConfig {
    fn default() -> Self {
        SubscribeConfig {
            confirmations_per_day: 3,
            requests_per_minute: 10,
            confirm_expiry: HumanDuration(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// `[[newsletter]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsletterConfig {
    pub id: Ident,
    pub title: NonEmpty,
    /// 5-field crontab or 6-field with seconds.
    pub schedule: String,
    /// Defaults to the site's time zone.
    #[serde(default)]
    pub timezone: Option<Zone>,
    /// Only articles with one of these tags; empty means every article.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Template base name in `templates/` (`<template>.html.hbs`, `<template>.txt.hbs`).
    #[serde(default)]
    pub template: Option<String>,
    /// Handlebars template for the Subject line (not HTML-escaped).
    #[serde(default = "default_subject")]
    pub subject: String,
    #[serde(default = "yes")]
    pub skip_empty: bool,
    /// A fire time missed while herald was down is sent at start-up if it is less late than this.
    #[serde(default = "default_max_lateness")]
    pub max_lateness: HumanDuration,
    /// Articles shown in one digest; the rest are counted ("and 12 more") and linked to the
    /// issue in the web archive. The HTML part is also kept under Gmail's 102 KB clip.
    #[serde(default = "default_max_articles")]
    pub max_articles: MaxArticles,
}

/// The default of `[[newsletter]] max_articles`.
pub const DEFAULT_MAX_ARTICLES: usize = 30;

/// Between 1 and 200 articles per digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxArticles(pub usize);

impl<'de> Deserialize<'de> for MaxArticles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=200).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "{n} is out of range: a digest shows 1 to 200 articles"
            )));
        }
        Ok(MaxArticles(n as usize))
    }
}

fn default_max_articles() -> MaxArticles {
    MaxArticles(DEFAULT_MAX_ARTICLES)
}

/// A postal address: trimmed lines, blank lines dropped; blank means none.
fn postal_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    Ok((!lines.is_empty()).then(|| lines.join("\n")))
}

/// `[store]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://user@host/db`; a password only through
    /// `HERALD_STORE_URL`, which overrides this whole value.
    pub url: String,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_password(&self.url))
            .finish()
    }
}

/// Where the store lives, from `store.url`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL database: the whole URL, password included when the environment gave one.
    Postgres(String),
}

impl StoreLocation {
    /// Parses a `store.url`; relative SQLite paths are resolved against `dir`. Errors say
    /// what is wrong without repeating a password.
    pub fn parse(url: &str, dir: &Path) -> Result<StoreLocation, String> {
        let shown = redact_password(url);
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let rest = rest.split('?').next().unwrap_or(rest);
            if rest.is_empty() {
                return Err(format!("store.url {shown:?} names no file"));
            }
            let path = Path::new(rest);
            return Ok(StoreLocation::Sqlite(if path.is_absolute() {
                path.to_path_buf()
            } else {
                dir.join(path)
            }));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let u = Url::parse(url)
                .map_err(|e| format!("store.url {shown:?} is not a valid URL: {e}"))?;
            if u.host_str().is_none_or(str::is_empty) {
                return Err(format!("store.url {shown:?} names no host"));
            }
            if u.path().trim_start_matches('/').is_empty() {
                return Err(format!(
                    "store.url {shown:?} names no database (postgres://user@host/database)"
                ));
            }
            return Ok(StoreLocation::Postgres(url.to_string()));
        }
        Err(format!(
            "store.url {shown:?} must start with sqlite:// or postgres://"
        ))
    }
}

/// What `herald check` and logs may show: the file, or host, port, database and user;
/// never a password.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "SQLite file {}", p.display()),
            StoreLocation::Postgres(url) => match Url::parse(url) {
                Ok(u) => {
                    write!(
                        f,
                        "PostgreSQL database {:?} on {}",
                        u.path().trim_start_matches('/'),
                        u.host_str().unwrap_or("")
                    )?;
                    if let Some(port) = u.port() {
                        write!(f, ":{port}")?;
                    }
                    if !u.username().is_empty() {
                        write!(f, " as {}", u.username())?;
                    }
                    Ok(())
                }
                Err(_) => write!(f, "PostgreSQL {}", redact_password(url)),
            },
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The line of `url = …` in `[store]` (or 1 when the file does not set it).
fn store_url_line(text: &str) -> usize {
    let mut in_store = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            in_store = t.trim_end().trim_end_matches(|c: char| c != ']') == "[store]";
        } else if in_store && t.starts_with("url") {
            return i + 1;
        }
    }
    1
}

fn url_has_password(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| u.password().is_some())
}

/// `url` with its password (if any) replaced by `***`.
fn redact_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://subscribers/herald.db".into(),
        }
    }
}

fn default_language() -> String {
    "en".into()
}
fn default_subject() -> String {
    "{{newsletter.title}}: {{issue.title}}".into()
}
fn default_max_lateness() -> HumanDuration {
    HumanDuration(Duration::from_secs(6 * 3600))
}
fn yes() -> bool {
    true
}

// ---- validated values -------------------------------------------------------------------

/// A string that must not be blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(s.trim().to_string()))
    }
}

impl std::ops::Deref for NonEmpty {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A newsletter id: lower-case letters, digits, `-` and `_` (it appears in URLs and List-Id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(pub String);

impl<'de> Deserialize<'de> for Ident {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a valid id: use 1 to 64 lower-case letters, digits, '-' or '_'"
            )));
        }
        Ok(Ident(s))
    }
}

impl std::ops::Deref for Ident {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL ending in `/`, under which the publication lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(pub Url);

impl<'de> Deserialize<'de> for BaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut url = parse_http_url(&s).map_err(serde::de::Error::custom)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(serde::de::Error::custom(
                "base_url must not have a query or fragment",
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(BaseUrl(url))
    }
}

/// Any absolute http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsoluteUrl(pub Url);

impl<'de> Deserialize<'de> for AbsoluteUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_http_url(&s)
            .map(AbsoluteUrl)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{s:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// An IANA time zone name such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zone(pub Tz);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Tz>().map(Zone).map_err(|_| {
            serde::de::Error::custom(format!(
                "{s:?} is not an IANA time zone name (such as \"UTC\" or \"Europe/Berlin\")"
            ))
        })
    }
}

/// Between 1 and 1000 feed entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemCount(pub usize);

impl<'de> Deserialize<'de> for ItemCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=1000).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "{n} is out of range: feeds hold 1 to 1000 items"
            )));
        }
        Ok(ItemCount(n as usize))
    }
}

/// A duration written like `90s`, `15m`, `6h`, `3d` (or a bare number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("{s:?} is not a duration such as \"90s\", \"15m\", \"6h\" or \"3d\"")
        })?;
        let secs = match unit.trim() {
            "ms" => return Ok(Duration::from_millis(n)),
            "" | "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86400,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?}: use ms, s, m, h or d"
                ));
            }
        };
        Ok(Duration::from_secs(secs))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(HumanDuration(Duration::from_secs(n))),
            Raw::Text(s) => HumanDuration::parse(&s)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_millis() != 0 {
            return write!(f, "{}ms", self.0.as_millis());
        }
        let s = self.0.as_secs();
        match s {
            s if s % 86400 == 0 && s > 0 => write!(f, "{}d", s / 86400),
            s if s % 3600 == 0 && s > 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 && s > 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// A size written like `2 MB`, `500kB`, `1.5MiB` (or a bare number of bytes). `kB`, `MB`
/// and `GB` are powers of 1000, `KiB`, `MiB` and `GiB` powers of 1024; case does not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSize(pub u64);

impl HumanSize {
    pub fn parse(s: &str) -> Result<u64, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("{s:?} is not a size such as \"2 MB\", \"500 kB\" or \"1 MiB\"");
        let n: f64 = num.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "m" | "mb" => 1_000_000,
            "g" | "gb" => 1_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?}: use B, kB, MB, GB, KiB, MiB or GiB"
                ));
            }
        };
        let bytes = n * factor as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(bytes.round() as u64)
    }
}

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::Bytes(n) => n,
            Raw::Text(s) => HumanSize::parse(&s).map_err(serde::de::Error::custom)?,
        };
        if n == 0 {
            return Err(serde::de::Error::custom("a size must be more than 0 bytes"));
        }
        Ok(HumanSize(n))
    }
}

impl fmt::Display for HumanSize {
    /// `2 MB`, `1.5 MB`, `512 kB`, `300 bytes`: decimal units, at most one decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0 as f64;
        let (value, unit) = match self.0 {
            0..1_000 => return write!(f, "{} bytes", self.0),
            1_000..1_000_000 => (n / 1e3, "kB"),
            1_000_000..1_000_000_000 => (n / 1e6, "MB"),
            _ => (n / 1e9, "GB"),
        };
        let shown = format!("{value:.1}");
        write!(f, "{} {unit}", shown.trim_end_matches(".0"))
    }
}

// ---- loading -----------------------------------------------------------------------------

/// A configuration error that points at a line of `herald.toml` or at an environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Parses `text` (the contents of `file`, used only for messages), then applies the
    /// `HERALD_*` overrides found in `env`.
    pub fn parse(
        text: &str,
        file: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        if url_has_password(&config.store.url) {
            return Err(ConfigError(format!(
                "{}:{}: store.url must not carry a password: put the full URL, password included, in HERALD_STORE_URL",
                file.display(),
                store_url_line(text)
            )));
        }
        let overrides = env_overrides(env)?;
        if overrides.is_empty() {
            config.validate(file, text)?;
            return Ok(config);
        }
        // Overrides: merge into the parsed table and deserialize again; errors now name the
        // variable, since the file was already known to be good.
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        for (var, section, key, value) in &overrides {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section_table) = entry.as_table_mut() else {
                return Err(ConfigError(format!(
                    "{var}: [{section}] is not a table in {}",
                    file.display()
                )));
            };
            section_table.insert(key.clone(), value.clone());
        }
        let merged = toml::to_string(&table).expect("a parsed table serializes");
        let written_host = config.site.domain();
        let mut config: Config = toml::from_str(&merged).map_err(|e| {
            let names: Vec<&str> = overrides.iter().map(|o| o.0.as_str()).collect();
            ConfigError(format!(
                "environment override ({}): {}",
                names.join(", "),
                e.message()
            ))
        })?;
        config.site.written_host = Some(written_host);
        config.validate(file, text)?;
        Ok(config)
    }

    /// Reads `<site>/herald.toml` and the process environment.
    pub fn load(site_dir: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(site_dir, &process_env())
    }

    /// Reads `<site>/herald.toml` and applies the `HERALD_*` overrides in `env` (and only
    /// those: the process environment is not read).
    pub fn load_with_env(
        site_dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file = site_dir.join("herald.toml");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            ConfigError(format!(
                "{}: {e} (is {} a publication folder? `herald init DIR` makes one)",
                file.display(),
                site_dir.display()
            ))
        })?;
        Config::parse(&text, &file, env)
    }

    /// Cross-field checks that serde cannot express.
    fn validate(&self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let at = |needle: &str| line_of(text, needle);
        let fail = |needle: &str, msg: String| {
            Err(ConfigError(format!(
                "{}:{}: {msg}",
                file.display(),
                at(needle)
            )))
        };
        if self.feeds.formats.is_empty() {
            return fail(
                "formats",
                "feeds.formats must name at least one of \"rss\", \"atom\", \"json\"".into(),
            );
        }
        let transport = self.mail.transport.trim();
        if transport != "file" {
            match Url::parse(transport) {
                Ok(u) if matches!(u.scheme(), "smtp" | "smtps") => {
                    if !u.username().is_empty() || u.password().is_some() {
                        return fail(
                            "transport",
                            "mail.transport must not carry credentials: put the URL with user and password in HERALD_SMTP_URL".into(),
                        );
                    }
                }
                _ => {
                    return fail(
                        "transport",
                        format!(
                            "mail.transport {transport:?} must be \"file\", \"smtp://host:port\" or \"smtps://host:port\""
                        ),
                    );
                }
            }
        }
        if self.mail.rate_per_second.is_nan() || self.mail.rate_per_second <= 0.0 {
            return fail(
                "rate_per_second",
                "mail.rate_per_second must be more than 0".into(),
            );
        }
        if self.http.max_connections == 0 {
            return fail(
                "max_connections",
                "http.max_connections must be at least 1".into(),
            );
        }
        for (key, d) in [
            ("header_read_timeout", self.http.header_read_timeout),
            ("idle_timeout", self.http.idle_timeout),
            ("request_timeout", self.http.request_timeout),
        ] {
            if d.0.is_zero() {
                return fail(key, format!("http.{key} must be more than 0"));
            }
        }
        if self.mail.connections == 0 || self.mail.connections > 64 {
            return fail(
                "connections",
                "mail.connections must be between 1 and 64".into(),
            );
        }
        if let Err(msg) = StoreLocation::parse(&self.store.url, Path::new(".")) {
            return Err(ConfigError(format!(
                "{}:{}: {msg}",
                file.display(),
                store_url_line(text)
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for n in &self.newsletters {
            if !seen.insert(n.id.0.clone()) {
                return fail(
                    &format!("\"{}\"", n.id.0),
                    format!("two newsletters have the id {:?}", n.id.0),
                );
            }
        }
        Ok(())
    }

    /// Every newsletter id, in configuration order.
    pub fn newsletter_ids(&self) -> Vec<String> {
        self.newsletters.iter().map(|n| n.id.0.clone()).collect()
    }

    /// The timezone a newsletter's schedule runs in.
    pub fn newsletter_zone(&self, n: &NewsletterConfig) -> Tz {
        n.timezone.unwrap_or(self.site.timezone).0
    }
}

impl SiteConfig {
    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or(&self.title)
    }

    /// The host name that permanent ids (`tag:` URIs of articles and feeds), List-Ids and
    /// the default From address are minted under: the host of `base_url` as written in
    /// herald.toml. An environment override (`HERALD_SITE_BASE_URL`, for following links on
    /// a laptop) changes where links point, never the ids readers and inboxes remember.
    pub fn domain(&self) -> String {
        if let Some(host) = &self.written_host {
            return host.clone();
        }
        self.base_url
            .0
            .host_str()
            .unwrap_or("localhost")
            .to_string()
    }

    pub fn author(&self) -> Person {
        self.author.clone().unwrap_or_else(|| Person {
            name: self.title.0.clone(),
            email: None,
        })
    }

    /// `base_url` joined with a relative path (`feeds/rss.xml`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url.0, path.trim_start_matches('/'))
    }
}

/// `(variable, section, key, value)` for every `HERALD_<SECTION>_<KEY>` in `env`.
fn env_overrides(
    env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String, String, toml::Value)>, ConfigError> {
    const SECTIONS: &[&str] = &[
        "site",
        "articles",
        "feeds",
        "http",
        "mail",
        "subscribe",
        "store",
    ];
    let mut out = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("HERALD_") else {
            continue;
        };
        if NOT_OVERRIDES.contains(&var.as_str()) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = lower.split_once('_') else {
            return Err(ConfigError(format!(
                "{var}: not a configuration override (expected HERALD_<SECTION>_<KEY>, such as HERALD_HTTP_BIND)"
            )));
        };
        if !SECTIONS.contains(&section) {
            return Err(ConfigError(format!(
                "{var}: unknown section [{section}] (overridable: {})",
                SECTIONS.join(", ")
            )));
        }
        // A value that parses as TOML keeps its type (numbers, booleans, arrays); anything
        // else is a string.
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        out.push((var.clone(), section.to_string(), key.to_string(), value));
    }
    Ok(out)
}

fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(1);
    ConfigError(format!("{}:{line}: {}", file.display(), e.message().trim()))
}

/// The 1-based line of the first occurrence of `needle` at the start of a key, or 1.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(needle) || l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// The process environment's variables whose names and values are UTF-8 (`std::env::vars`
/// would panic on the others; herald reads only `HERALD_*` names, all ASCII).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Secrets: read only from the environment (`HERALD_SMTP_URL`, `HERALD_SECRET`,
/// `HERALD_ADMIN_TOKEN`), never from `herald.toml`. Passed around explicitly so tests can
/// give their own without touching the process environment.
#[derive(Clone, Default)]
pub struct Secrets {
    pub smtp_url: Option<String>,
    pub secret: Option<String>,
    pub admin_token: Option<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |o: &Option<String>| if o.is_some() { "(set)" } else { "(unset)" };
        f.debug_struct("Secrets")
            .field("smtp_url", &shown(&self.smtp_url))
            .field("secret", &shown(&self.secret))
            .field("admin_token", &shown(&self.admin_token))
            .finish()
    }
}

impl Secrets {
    /// The secrets in the process environment.
    pub fn from_env() -> Secrets {
        Secrets::from_vars(&process_env())
    }

    /// The secrets in `env` (blank values count as unset).
    pub fn from_vars(env: &BTreeMap<String, String>) -> Secrets {
        let var = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
        Secrets {
            smtp_url: var("HERALD_SMTP_URL"),
            secret: var("HERALD_SECRET"),
            admin_token: var("HERALD_ADMIN_TOKEN"),
        }
    }
}

/// The publication folder and its configuration.
#[derive(Debug, Clone)]
pub struct Site {
    pub dir: PathBuf,
    pub config: Config,
}

impl Site {
    /// Opens the publication in `dir`, with the process environment's `HERALD_*` overrides.
    pub fn open(dir: &Path) -> Result<Site, ConfigError> {
        Site::open_with_env(dir, process_env())
    }

    /// Opens the publication in `dir` with the overrides in `env` only; the process
    /// environment is not read (tests pass an empty one).
    pub fn open_with_env<K, V>(
        dir: &Path,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Site, ConfigError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let env: BTreeMap<String, String> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let config = Config::load_with_env(dir, &env)?;
        Ok(Site {
            dir: dir.to_path_buf(),
            config,
        })
    }

    pub fn articles_dir(&self) -> PathBuf {
        self.dir.join("articles")
    }
    pub fn feeds_dir(&self) -> PathBuf {
        self.dir.join("feeds")
    }
    pub fn templates_dir(&self) -> PathBuf {
        self.dir.join("templates")
    }
    pub fn outbox_dir(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    /// Where `store.url` (or `HERALD_STORE_URL`) points: a SQLite file resolved against the
    /// publication folder, or a PostgreSQL database. Every command opens the store from this.
    pub fn store_location(&self) -> anyhow::Result<StoreLocation> {
        StoreLocation::parse(&self.config.store.url, &self.dir).map_err(anyhow::Error::msg)
    }

    pub fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.dir).unwrap_or(path)
    }
}

/// Reads a file that must exist, with the path in the error.
pub fn read_to_string(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("herald.toml"), &BTreeMap::new())
    }

    const MINIMAL: &str = "[site]\ntitle = \"T\"\nbase_url = \"https://example.com\"\n";

    #[test]
    fn defaults_fill_everything_but_the_site() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.site.base_url.0.as_str(), "https://example.com/");
        assert_eq!(c.feeds.items.0, 50);
        assert_eq!(c.http.bind, "127.0.0.1:8080");
        assert_eq!(c.mail.transport, "file");
        assert_eq!(c.store.url, "sqlite://subscribers/herald.db");
        assert_eq!(c.site.timezone.0, Tz::UTC);
        assert_eq!(c.site.postal_address, None);
    }

    #[test]
    fn a_postal_address_keeps_its_lines_and_max_articles_its_range() {
        let c = parse(&format!(
            "{MINIMAL}postal_address = \"\"\"\n  1 Quay Street\n\n  Saltmarsh SM1 2AB  \n\"\"\"\n[[newsletter]]\nid = \"w\"\ntitle = \"W\"\nschedule = \"0 7 * * *\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.site.postal_address.as_deref(),
            Some("1 Quay Street\nSaltmarsh SM1 2AB")
        );
        assert_eq!(c.newsletters[0].max_articles.0, DEFAULT_MAX_ARTICLES);
        let e = parse(&format!(
            "{MINIMAL}[[newsletter]]\nid = \"w\"\ntitle = \"W\"\nschedule = \"0 7 * * *\"\nmax_articles = 0\n"
        ))
        .unwrap_err();
        assert!(
            e.0.starts_with("herald.toml:8:") && e.0.contains("1 to 200"),
            "{}",
            e.0
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let e = parse(&format!("{MINIMAL}[feeds]\nitems = 10\ncolour = \"red\"\n")).unwrap_err();
        assert!(e.0.starts_with("herald.toml:6:"), "{}", e.0);
        assert!(e.0.contains("colour"), "{}", e.0);
    }

    #[test]
    fn wrong_types_name_the_line() {
        let e = parse(&format!("{MINIMAL}[feeds]\nitems = \"many\"\n")).unwrap_err();
        assert!(e.0.starts_with("herald.toml:5:"), "{}", e.0);
    }

    #[test]
    fn bad_values_are_refused_with_their_line() {
        let e = parse("[site]\ntitle = \"T\"\nbase_url = \"/relative\"\n").unwrap_err();
        assert!(e.0.starts_with("herald.toml:3:"), "{}", e.0);
        let e = parse(&format!("{MINIMAL}timezone = \"Mars/Base\"\n")).unwrap_err();
        assert!(e.0.contains("Mars/Base"), "{}", e.0);
    }

    #[test]
    fn environment_overrides_win_and_keep_types() {
        let mut env = BTreeMap::new();
        env.insert("HERALD_FEEDS_ITEMS".to_string(), "7".to_string());
        env.insert("HERALD_HTTP_BIND".to_string(), "0.0.0.0:9000".to_string());
        env.insert("HERALD_SECRET".to_string(), "not an override".to_string());
        let c = Config::parse(MINIMAL, Path::new("herald.toml"), &env).unwrap();
        assert_eq!(c.feeds.items.0, 7);
        assert_eq!(c.http.bind, "0.0.0.0:9000");
    }

    #[test]
    fn a_store_password_is_taken_from_the_environment_only() {
        let text = format!(
            "{MINIMAL}\n[store]\nurl = \"postgres://herald:hunter2@db.example.com/news\"\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("herald.toml:6: store.url must not carry a password"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");

        let text =
            format!("{MINIMAL}\n[store]\nurl = \"postgres://herald@db.example.com:5433/news\"\n");
        let env: BTreeMap<String, String> = [(
            "HERALD_STORE_URL".to_string(),
            "postgres://herald:hunter2@db.example.com:5433/news".to_string(),
        )]
        .into();
        let c = Config::parse(&text, Path::new("herald.toml"), &env).unwrap();
        let at = StoreLocation::parse(&c.store.url, Path::new("/site")).unwrap();
        assert_eq!(
            at,
            StoreLocation::Postgres("postgres://herald:hunter2@db.example.com:5433/news".into())
        );
        assert_eq!(
            at.to_string(),
            "PostgreSQL database \"news\" on db.example.com:5433 as herald"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn a_store_url_error_names_the_store_line() {
        let text = format!("{MINIMAL}# url = comment\n[store]\nurl = \"mysql://db/news\"\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("herald.toml:6: store.url \"mysql://db/news\" must start with sqlite:// or postgres://"),
            "{e}"
        );
        let text = format!("{MINIMAL}[store]\nurl = \"postgres://db.example.com\"\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("names no database"), "{e}");
    }

    #[test]
    fn a_base_url_override_moves_links_but_not_ids() {
        let mut env = BTreeMap::new();
        env.insert(
            "HERALD_SITE_BASE_URL".to_string(),
            "http://127.0.0.1:8080/".to_string(),
        );
        let c = Config::parse(MINIMAL, Path::new("herald.toml"), &env).unwrap();
        assert_eq!(c.site.base_url.0.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            c.site.url("feeds/rss.xml"),
            "http://127.0.0.1:8080/feeds/rss.xml"
        );
        assert_eq!(c.site.domain(), "example.com");
    }

    #[test]
    fn a_bad_override_names_the_variable() {
        let mut env = BTreeMap::new();
        env.insert("HERALD_FEEDS_ITEMZ".to_string(), "7".to_string());
        let e = Config::parse(MINIMAL, Path::new("herald.toml"), &env).unwrap_err();
        assert!(e.0.contains("HERALD_FEEDS_ITEMZ"), "{}", e.0);
    }

    #[test]
    fn credentials_in_the_file_are_refused() {
        let e = parse(&format!(
            "{MINIMAL}[mail]\ntransport = \"smtp://u:p@relay:25\"\n"
        ))
        .unwrap_err();
        assert!(e.0.contains("HERALD_SMTP_URL"), "{}", e.0);
        assert!(e.0.starts_with("herald.toml:5:"), "{}", e.0);
    }

    #[test]
    fn article_limits_default_read_like_people_write_them_and_can_be_overridden() {
        let c = parse(MINIMAL).unwrap();
        assert!(!c.articles.allow_outside);
        assert_eq!(c.articles.max_size.0, 2_000_000);
        assert_eq!(c.articles.max_size.to_string(), "2 MB");
        let c = parse(&format!(
            "{MINIMAL}[articles]\nmax_size = \"1.5 MiB\"\nallow_outside = true\n"
        ))
        .unwrap();
        assert_eq!(c.articles.max_size.0, 1_572_864);
        assert!(c.articles.allow_outside);
        assert_eq!(HumanSize::parse("500kB").unwrap(), 500_000);
        assert_eq!(HumanSize::parse("12345").unwrap(), 12_345);
        let e = parse(&format!("{MINIMAL}[articles]\nmax_size = \"2 parsecs\"\n")).unwrap_err();
        assert!(
            e.0.starts_with("herald.toml:5:") && e.0.contains("parsecs"),
            "{}",
            e.0
        );
        assert!(parse(&format!("{MINIMAL}[articles]\nmax_size = 0\n")).is_err());

        let mut env = BTreeMap::new();
        env.insert("HERALD_ARTICLES_MAX_SIZE".to_string(), "64kB".to_string());
        let c = Config::parse(MINIMAL, Path::new("herald.toml"), &env).unwrap();
        assert_eq!(c.articles.max_size.0, 64_000);
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(
            HumanDuration::parse("6h").unwrap(),
            Duration::from_secs(21600)
        );
        assert_eq!(HumanDuration::parse("90").unwrap(), Duration::from_secs(90));
        assert!(HumanDuration::parse("6 weeks").is_err());
    }
}
