//! herald: a syndication feed and newsletter publisher.
//!
//! A publication folder (`herald.toml`, `articles/`, `templates/`) goes in; RSS, Atom and
//! JSON feeds, a small web server, and scheduled email digests come out.
//!
//! # Layout
//! - [`config`]: `herald.toml`, defaults, `HERALD_*` overrides, the publication folder.
//! - [`articles`]: article files → parsed, sanitized articles; problems as `path:line: reason`.
//! - [`store`]: every SQL statement (SQLite): articles, subscribers, issues, the ledger.
//! - [`feeds`]: pure RSS / Atom / JSON Feed serializers.
//! - [`publish`]: the build pipeline from articles to feed files on disk.
//! - [`templates`]: Handlebars templates, embedded defaults overridden by `templates/`.
//! - [`newsletters`]: issues: schedules, article selection, rendering, the scheduler.
//! - [`mail`]: relay connections, messages, DKIM.
//! - [`delivery`]: the ledger workers: lease, send, retry, record.
//! - [`subscribers`]: addresses, tokens, confirmation emails, CSV import/export.
//! - [`telemetry`]: Prometheus metrics.
//! - [`websub`]: telling a WebSub hub that feeds changed.
//! - [`http`]: the axum router: feeds, pages, sign-up and links, archive, metrics, admin API.
//! - [`daemon`]: `herald run`: watch, rebuild, serve, schedule, deliver, shut down cleanly.
//! - [`cli`]: the command line.

pub mod articles;
pub mod audience;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod error;
pub mod feeds;
pub mod fs;
pub mod http;
pub mod links;
pub mod mail;
pub mod newsletters;
pub mod publish;
pub mod store;
pub mod subscribers;
pub mod telemetry;
pub mod templates;
pub mod text;
pub mod time;
pub mod websub;
