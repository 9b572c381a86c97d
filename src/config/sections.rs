//! The sections of `herald.toml` other than `[mail]`: what each key means and its default.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::MailConfig;
use super::schedule::Schedule;
use super::values::DEFAULT_MAX_ARTICLES;
use super::values::{
    AbsoluteUrl, BaseUrl, HumanDuration, HumanSize, Ident, ItemCount, MaxArticles, NonEmpty,
    TrustedHops, Zone, int_in, positive_duration,
};

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
    #[serde(deserialize_with = "formats")]
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
    #[serde(deserialize_with = "positive_duration")]
    pub header_read_timeout: HumanDuration,
    /// A keep-alive connection with no traffic for this long is closed.
    #[serde(deserialize_with = "positive_duration")]
    pub idle_timeout: HumanDuration,
    /// Open connections at most; more wait in the listen queue. Never more than half of
    /// the process's file-descriptor limit, so the store, feeds and SMTP keep theirs.
    #[serde(deserialize_with = "max_connections")]
    pub max_connections: usize,
    /// A request whose handler takes longer than this is answered 408 (or 503).
    #[serde(deserialize_with = "positive_duration")]
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

/// `[subscribe]`: the sign-up form's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscribeConfig {
    /// Confirmation emails per address per 24 hours, at least 1 (0 would mean no one
    /// could ever confirm an address, so it is refused).
    #[serde(deserialize_with = "per_day")]
    pub confirmations_per_day: u32,
    /// Sign-up requests per client address per minute, at least 1.
    #[serde(deserialize_with = "per_minute")]
    pub requests_per_minute: u32,
    /// How long a confirmation link stays valid.
    #[serde(deserialize_with = "positive_duration")]
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
    /// 5-field crontab or 6-field with seconds, read in `timezone` (the zone is set once
    /// the whole file is read: see `Config::parse`).
    pub schedule: Schedule,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: StoreUrl,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: StoreUrl::Sqlite("sqlite://subscribers/herald.db".into()),
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

fn formats<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FeedFormat>, D::Error> {
    let v = Vec::<FeedFormat>::deserialize(d)?;
    if v.is_empty() {
        return Err(D::Error::custom(
            "feeds.formats must name at least one of \"rss\", \"atom\", \"json\"",
        ));
    }
    Ok(v)
}

fn max_connections<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    int_in(d, 1, 1 << 20, "the number of open connections").map(|n| n as usize)
}

fn per_day<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(
        d,
        1,
        1000,
        "confirmation emails an address may get per day; 0 would stop every sign-up",
    )
    .map(|n| n as u32)
}

fn per_minute<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(
        d,
        1,
        100_000,
        "sign-up requests a client may make per minute; 0 would refuse every sign-up",
    )
    .map(|n| n as u32)
}

/// `store.url`: where subscribers and the ledger live. A password may come only from
/// `HERALD_STORE_URL` ([`StoreUrl::parse`] with `password_allowed`), never from herald.toml.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://path` (relative to the publication folder) or `sqlite:path`, as written.
    Sqlite(String),
    /// `postgres://user@host[:port]/database`, password included when the environment gave
    /// one.
    Postgres(String),
}

impl StoreUrl {
    pub fn as_str(&self) -> &str {
        match self {
            StoreUrl::Sqlite(s) | StoreUrl::Postgres(s) => s,
        }
    }

    /// The file a `sqlite:` URL names (before resolving against the publication folder).
    pub fn sqlite_file(&self) -> Option<&str> {
        let StoreUrl::Sqlite(url) = self else {
            return None;
        };
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Some(rest.split('?').next().unwrap_or(rest))
    }

    /// Checks a store URL; errors never repeat a password.
    pub fn parse(url: &str, password_allowed: bool) -> Result<StoreUrl, String> {
        let shown = redact_password(url);
        if url.starts_with("sqlite:") {
            let store = StoreUrl::Sqlite(url.to_string());
            if store.sqlite_file().is_none_or(str::is_empty) {
                return Err(format!("store.url {shown:?} names no file"));
            }
            return Ok(store);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let u = url::Url::parse(url)
                .map_err(|e| format!("store.url {shown:?} is not a valid URL: {e}"))?;
            if u.host_str().is_none_or(str::is_empty) {
                return Err(format!("store.url {shown:?} names no host"));
            }
            if u.path().trim_start_matches('/').is_empty() {
                return Err(format!(
                    "store.url {shown:?} names no database (postgres://user@host/database)"
                ));
            }
            if u.password().is_some() && !password_allowed {
                return Err(
                    "store.url must not carry a password: put the full URL, password included, in HERALD_STORE_URL".into(),
                );
            }
            return Ok(StoreUrl::Postgres(url.to_string()));
        }
        Err(format!(
            "store.url {shown:?} must start with sqlite:// or postgres://"
        ))
    }
}

/// Never shows a password.
impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_password(self.as_str()))
    }
}

/// `url` with its password (if any) replaced by `***`.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StoreUrl::parse(&s, false).map_err(D::Error::custom)
    }
}
