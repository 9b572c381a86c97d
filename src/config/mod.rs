//! `herald.toml`: parsing into typed, validated values, defaults, and `HERALD_*`
//! environment overrides — once, at load. Every command (`check`, `run`, the others) uses
//! the values parsed here; nothing re-parses a configuration string later.
//!
//! Parsing is separate from reading the file (`Config::parse`), every section has
//! `deny_unknown_fields`, and every value that needs checking is a type whose `Deserialize`
//! refuses bad input, so toml reports the error at the value's line. The few checks that
//! span several values keep the span of the value at fault ([`values::At`]), and byte spans
//! become lines in one place ([`line_at`]).
//!
//! # Layout
//! - [`sections`]: `[site]`, `[articles]`, `[feeds]`, `[http]`, `[subscribe]`,
//!   `[[newsletter]]`, `[store]`.
//! - [`mail`]: `[mail]`, with the relay URL (`mail.transport`, `HERALD_SMTP_URL`).
//! - [`schedule`]: cron schedules in a time zone.
//! - [`values`]: the validated value types (URLs, durations, sizes, rates, zones, ids).

pub mod mail;
pub mod schedule;
pub mod sections;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono_tz::Tz;

pub use mail::{DkimConfig, MailConfig, Security, SmtpUrl, TransportConfig};
pub use sections::*;
pub use values::*;

/// Environment variables that are not configuration overrides.
const NOT_OVERRIDES: &[&str] = &[
    "HERALD_SITE",
    "HERALD_SMTP_URL",
    "HERALD_SECRET",
    "HERALD_ADMIN_TOKEN",
    "HERALD_LOG",
];

// ---- loading -----------------------------------------------------------------------------

/// A configuration error that points at a line of `herald.toml` or at an environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where the store lives, resolved from `store.url`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL database: the whole URL, password included when the environment gave one.
    Postgres(String),
}

/// What `herald check` and logs may show: the file, or host, port, database and user;
/// never a password.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "SQLite file {}", p.display()),
            StoreLocation::Postgres(url) => match url::Url::parse(url) {
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
                Err(_) => write!(f, "PostgreSQL {}", sections::redact_password(url)),
            },
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Config {
    /// Parses `text` (the contents of `file`, used only for messages), then applies the
    /// `HERALD_*` overrides found in `env`.
    pub fn parse(
        text: &str,
        file: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        config.validate(file, text)?;
        let mut overrides = env_overrides(env)?;
        // HERALD_STORE_URL is the one place a store password may come from: it is checked
        // on its own, with passwords allowed, and set after the merge below.
        let store_url = match overrides
            .iter()
            .position(|o| o.1 == "store" && o.2 == "url")
        {
            Some(i) => {
                let (var, _, _, value) = overrides.remove(i);
                let raw = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or(value.to_string());
                Some(StoreUrl::parse(&raw, true).map_err(|e| ConfigError(format!("{var}: {e}")))?)
            }
            None => None,
        };
        let mut config = config;
        if let Some(url) = &store_url {
            config.store.url = url.clone();
        }
        if overrides.is_empty() {
            return Ok(config.finish());
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
        if let Some(url) = store_url {
            config.store.url = url;
        }
        Ok(config.finish())
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

    /// The checks that span several values (everything else was checked as it was read),
    /// against `text`, the file the values' spans point into.
    fn validate(&self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for n in &self.newsletters {
            if !seen.insert(n.id.0.clone()) {
                return Err(ConfigError(format!(
                    "{}:{}: two newsletters have the id {:?}",
                    file.display(),
                    n.id.1
                        .0
                        .as_ref()
                        .map(|s| line_at(text, s.start))
                        .unwrap_or(1),
                    n.id.0
                )));
            }
        }
        Ok(())
    }

    /// Places every schedule in its newsletter's zone (its own, else the site's).
    fn finish(mut self) -> Config {
        let site_zone = self.site.timezone;
        for n in &mut self.newsletters {
            let zone = n.timezone.unwrap_or(site_zone).0;
            n.schedule = n.schedule.clone().in_zone(zone);
        }
        self
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
    let line = e.span().map(|s| line_at(text, s.start)).unwrap_or(1);
    ConfigError(format!("{}:{line}: {}", file.display(), e.message().trim()))
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_at(text: &str, offset: usize) -> usize {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].matches('\n').count() + 1
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
        Ok(match &self.config.store.url {
            StoreUrl::Postgres(url) => StoreLocation::Postgres(url.clone()),
            sqlite => {
                let path = Path::new(sqlite.sqlite_file().unwrap_or_default());
                StoreLocation::Sqlite(if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    self.dir.join(path)
                })
            }
        })
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
    use std::time::Duration;

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
        assert!(matches!(c.mail.transport, TransportConfig::File));
        assert_eq!(c.store.url.as_str(), "sqlite://subscribers/herald.db");
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

    /// The line an error names, with the message.
    fn line(e: &ConfigError) -> usize {
        e.0.split(':')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_bad_store_url_is_shown_at_its_own_line_not_at_a_comment_mentioning_urls() {
        let text = "# every url below is made up\n[site]\ntitle = \"T\"\nbase_url = \"https://example.com\"  # the public url\n[store]\n# url of the database\nurl = \"mysql://db\"\n";
        let e = parse(text).unwrap_err();
        assert_eq!(line(&e), 7, "{}", e.0);
        assert!(e.0.contains("sqlite://"), "{}", e.0);
    }

    #[test]
    fn a_store_password_is_taken_from_the_environment_only() {
        let text = format!(
            "{MINIMAL}\n[store]\nurl = \"postgres://herald:hunter2@db.example.com/news\"\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("herald.toml:6:") && e.contains("must not carry a password"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");

        let text =
            format!("{MINIMAL}\n[store]\nurl = \"postgres://herald@db.example.com:5433/news\"\n");
        for extra in [None, Some(("HERALD_HTTP_BIND", "127.0.0.1:9999"))] {
            let mut env: BTreeMap<String, String> = [(
                "HERALD_STORE_URL".to_string(),
                "postgres://herald:hunter2@db.example.com:5433/news".to_string(),
            )]
            .into();
            if let Some((k, v)) = extra {
                env.insert(k.into(), v.into());
            }
            let c = Config::parse(&text, Path::new("herald.toml"), &env).unwrap();
            let site = Site {
                dir: PathBuf::from("/site"),
                config: c.clone(),
            };
            let at = site.store_location().unwrap();
            assert_eq!(
                at,
                StoreLocation::Postgres(
                    "postgres://herald:hunter2@db.example.com:5433/news".into()
                )
            );
            assert_eq!(
                at.to_string(),
                "PostgreSQL database \"news\" on db.example.com:5433 as herald"
            );
            assert!(!format!("{c:?}").contains("hunter2"));
        }
    }

    #[test]
    fn a_postgres_store_url_names_a_host_and_a_database() {
        let e = parse(&format!(
            "{MINIMAL}[store]\nurl = \"postgres://db.example.com\"\n"
        ))
        .unwrap_err();
        assert_eq!(line(&e), 5, "{}", e.0);
        assert!(e.0.contains("names no database"), "{}", e.0);
        let env: BTreeMap<String, String> =
            [("HERALD_STORE_URL".to_string(), "mysql://db/x".to_string())].into();
        let e = Config::parse(MINIMAL, Path::new("herald.toml"), &env).unwrap_err();
        assert!(e.0.starts_with("HERALD_STORE_URL: "), "{}", e.0);
    }

    #[test]
    fn zero_confirmations_per_day_is_refused_at_its_line() {
        let e = parse(&format!(
            "{MINIMAL}[subscribe]\nconfirmations_per_day = 0\n"
        ))
        .unwrap_err();
        assert_eq!(line(&e), 5, "{}", e.0);
        assert!(e.0.contains("0 would stop every sign-up"), "{}", e.0);
        let e = parse(&format!("{MINIMAL}[subscribe]\nrequests_per_minute = 0\n")).unwrap_err();
        assert_eq!(line(&e), 5, "{}", e.0);
        let c = parse(&format!(
            "{MINIMAL}[subscribe]\nconfirmations_per_day = 1\n"
        ))
        .unwrap();
        assert_eq!(c.subscribe.confirmations_per_day, 1);
    }

    #[test]
    fn relay_urls_are_typed_at_load_with_their_tls_mode() {
        let c = parse(&format!(
            "{MINIMAL}[mail]\ntransport = \"smtp://relay.example.com?tls=opportunistic\"\n"
        ))
        .unwrap();
        let TransportConfig::Smtp(url) = &c.mail.transport else {
            panic!("not smtp: {:?}", c.mail.transport);
        };
        assert_eq!(url.security, Security::Opportunistic);
        assert_eq!(url.port, 587);
        for bad in [
            "smtp://relay?tls=maybe",
            "smtp://relay?tsl=required",
            "imap://relay",
        ] {
            let e = parse(&format!("{MINIMAL}[mail]\n\ntransport = \"{bad}\"\n")).unwrap_err();
            assert_eq!(line(&e), 6, "{bad}: {}", e.0);
        }
    }

    #[test]
    fn every_checked_value_is_refused_at_its_own_line() {
        for (section, key_value) in [
            ("feeds", "formats = []"),
            ("http", "max_connections = 0"),
            ("http", "idle_timeout = \"0s\""),
            ("mail", "rate_per_second = 0"),
            ("mail", "rate_per_second = -3.5"),
            ("mail", "connections = 65"),
            ("mail", "from = \"not a mailbox\""),
            ("mail", "envelope_from = \"bounces at example.com\""),
            ("mail", "timeout = 0"),
            ("subscribe", "confirm_expiry = \"0d\""),
        ] {
            let text =
                format!("{MINIMAL}[{section}]\n# a comment naming {key_value}\n{key_value}\n");
            let e = parse(&text).unwrap_err();
            assert_eq!(line(&e), 6, "[{section}] {key_value}: {}", e.0);
        }
    }

    #[test]
    fn schedules_are_parsed_at_load_in_their_zone() {
        let c = parse(&format!(
            "{MINIMAL}timezone = \"Europe/Berlin\"\n[[newsletter]]\nid = \"a\"\ntitle = \"A\"\nschedule = \"0 7 * * Mon-Fri\"\n[[newsletter]]\nid = \"b\"\ntitle = \"B\"\nschedule = \"@daily\"\ntimezone = \"America/New_York\"\n"
        ))
        .unwrap();
        assert_eq!(c.newsletters[0].schedule.zone(), chrono_tz::Europe::Berlin);
        assert_eq!(
            c.newsletters[1].schedule.zone(),
            chrono_tz::America::New_York
        );
        let e = parse(&format!(
            "{MINIMAL}[[newsletter]]\nid = \"a\"\ntitle = \"A\"\nschedule = \"0 25 * * *\"\n"
        ))
        .unwrap_err();
        assert_eq!(line(&e), 7, "{}", e.0);
    }

    #[test]
    fn a_duplicate_newsletter_id_is_shown_where_the_second_is_written() {
        let n = |id: &str| {
            format!("[[newsletter]]\nid = \"{id}\"\ntitle = \"T\"\nschedule = \"@daily\"\n")
        };
        let text = format!("{MINIMAL}{}{}{}", n("a"), n("b"), n("a"));
        let e = parse(&text).unwrap_err();
        assert_eq!(line(&e), 13, "{}", e.0);
        assert!(e.0.contains("two newsletters have the id \"a\""), "{}", e.0);
    }

    #[test]
    fn lines_are_counted_from_byte_offsets() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 4), 3);
        assert_eq!(line_at("é\nb", 1), 1);
        assert_eq!(line_at("a", 99), 1);
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
