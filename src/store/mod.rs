//! The store: every SQL statement herald runs lives below this module.
//!
//! SQLite in WAL mode is the backend: one writer connection (SQLite has one writer anyway,
//! and a single connection turns lock contention into a queue) and a small reader pool.
//! Statements use `$n` parameters and portable SQL, times are integer Unix milliseconds, so a
//! PostgreSQL backend can be added beside it without touching callers.
//!
//! # Layout
//! - [`articles`]: the article index (permanent ids, first-seen times) and feed ids.
//! - [`subscribers`]: subscribers, subscriptions, consent, the confirmation email queue.
//! - [`ledger`]: issues and the delivery ledger.

pub mod articles;
pub mod ledger;
pub mod subscribers;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    write: SqlitePool,
    read: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the SQLite file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the store {}", path.display()))?;
        MIGRATIONS
            .run(&write)
            .await
            .with_context(|| format!("updating the schema of {}", path.display()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("opening the store {} for reading", path.display()))?;
        Ok(Store { write, read })
    }

    /// Waits for pending writes and closes every connection (the WAL is checkpointed).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Stores `value` under `key` unless a value is already there; returns the one kept.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> anyhow::Result<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.write)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&self.write)
                .await?,
        )
    }
}

/// Unix milliseconds, the store's time format.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
