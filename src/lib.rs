//! herald: a syndication feed and newsletter publisher.
//!
//! A publication folder (`herald.toml`, `articles/`, `templates/`) goes in; RSS, Atom and
//! JSON feeds, a small web server, and scheduled email digests come out.
//!
//! # Layout
//! Layers, lowest first; a module imports only from layers below it (ARCHITECTURE.md says
//! why, and `tests/it/layers.rs` checks it).
//! - [`error`], [`time`], [`text`], [`links`], [`fs`]: leaves: the user's errors and exit
//!   codes, time formats, plain-text helpers, public URLs, atomic file writes.
//! - [`config`]: `herald.toml`, defaults, `HERALD_*` overrides, the publication folder.
//!   [`audience`]: validated addresses, subscriber statuses, consent evidence.
//! - [`articles`]: article files → parsed, sanitized articles; problems as `path:line: reason`.
//! - [`feeds`]: pure RSS / Atom / JSON Feed serializers. [`templates`]: Handlebars templates,
//!   embedded defaults overridden by `templates/`. [`telemetry`]: Prometheus metrics.
//! - [`store`]: every SQL statement (SQLite): articles, subscribers, issues, the ledger.
//! - [`publish`]: the build pipeline from articles to feed files on disk.
//! - [`newsletters`]: issues: schedules, article selection, rendering, the scheduler.
//! - [`mail`]: relay connections, messages, DKIM.
//! - [`subscribers`]: tokens, confirmation emails, CSV import/export. [`websub`]: telling a
//!   WebSub hub that feeds changed.
//! - [`delivery`]: the ledger workers: lease, send, retry, record.
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
