//! herald's integration tests: one binary, one module per area. Every test builds its own
//! publication in a temporary folder and drives the real code: real files, a real SQLite
//! store, real HTTP over TCP, the real `herald` binary, and feed-rs reading our output.
//!
//! `TESTS.md` at the repository root maps each promise of the README to the tests that guard
//! it, and says how the suite isolates itself from the environment it runs in.

mod helpers;
/// A real SMTP server in this process, with fault injection.
mod smtp;

/// Article files in, settled articles out: front matter, defaults, drafts, bad files, the
/// file tree (links, loops, size limits, a vanished folder).
mod articles;
/// Sign-up to unsubscribe in headless Chromium, with screenshots.
mod browser;
/// The `herald` binary: init, check, build, exit codes, messages.
mod cli;
/// Configuration read once: what `herald check` accepts is what `herald run` uses; the
/// confirmation email composed like a digest (DKIM, envelope sender).
mod config;
/// `herald run`: rebuilding on file changes (not on reads) and when scheduled articles fall
/// due, logging problems once, restarting tasks that panic.
mod daemon;
/// Digests through faulty SMTP, kill -9, SIGTERM, a relay that is down; the scheduler.
mod delivery;
/// What a digest shows its reader: size budget, footer, dates, test copies, the archive page.
mod digests;
/// Feed bytes: parsed back by feed-rs, escaping and sanitizing traps, stable output.
mod feeds;
/// Hostile clients and input: slow sockets, descriptor exhaustion, spoofing, formulas.
mod hostile;
/// The HTTP surface: media types, ETags, Last-Modified, 304s, gzip, home page.
mod http;
/// `herald subscribers`: CSV import and export, add, remove.
mod import;
/// Every top-level module in the layer table of ARCHITECTURE.md, importing only downward.
mod layers;
/// Article and tag pages, conditional GET, every emitted link answering, page wording.
mod pages;
/// A real feed reader (newsboat) polling `herald run` through new, back-dated and edited articles.
mod readers;
/// The README's delivery promises one by one: recipients, SMTP answers, retries, timeouts, duplicates, connections, rate, stopping, one-click unsubscribe.
mod sending;
/// The store's lease contract on the run's backend (SQLite, or PostgreSQL).
mod store;
/// Sign-up, confirmation, unsubscription, the admin API, with real SMTP.
mod subscribers;
/// Random Unicode, entities, markup and controls through parsing, summaries and feeds.
mod text;
