//! herald's integration tests: one binary, one module per area. Every test builds its own
//! publication in a temporary folder and drives the real code: real files, a real SQLite
//! store, real HTTP over TCP, the real `herald` binary, and feed-rs reading our output.

mod helpers;

/// Article files in, settled articles out: front matter, defaults, drafts, bad files.
mod articles;
/// The `herald` binary: init, check, build, exit codes, messages.
mod cli;
/// `herald run`: rebuilding on file changes and when scheduled articles fall due.
mod daemon;
/// Feed bytes: parsed back by feed-rs, escaping and sanitizing traps, stable output.
mod feeds;
/// The HTTP surface: media types, ETags, 304s, gzip, home page.
mod http;
