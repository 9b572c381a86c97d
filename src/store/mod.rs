//! The store: every SQL statement herald runs lives below this module.
//!
//! Two backends behind one API, chosen from `store.url`:
//! - SQLite in WAL mode (the embedded default): one writer connection (SQLite has one writer
//!   anyway, and a single connection turns lock contention into a queue) and a small reader
//!   pool; read-then-write transactions start with `BEGIN IMMEDIATE`.
//! - PostgreSQL: one pool, READ COMMITTED; leases use `FOR UPDATE SKIP LOCKED` so several
//!   herald instances can share the database.
//!
//! Statements use `$n` parameters and SQL both accept, times are integer Unix milliseconds
//! and every integer column is 64 bits on both, so one statement text serves both backends;
//! a statement differs only where the SQL really does (row locks, bulk placeholders).
//! [`with_db!`] compiles a method body once per backend.
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use crate::config::StoreLocation;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite { write: SqlitePool, read: SqlitePool },
    Postgres(PgPool),
}

/// Runs `$body` with `$write` / `$read` bound to the pools of the store's backend and `$pg`
/// saying which one it is. The body is compiled once per backend, so the same statement text
/// runs on either and typed rows decode through each driver.
macro_rules! with_db {
    ($store:expr, |$write:ident, $read:ident, $pg:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { write, read } => {
                #[allow(unused_variables)]
                let ($write, $read, $pg) = (write, read, false);
                $body
            }
            $crate::store::Db::Postgres(pool) => {
                #[allow(unused_variables)]
                let ($write, $read, $pg) = (pool, pool, true);
                $body
            }
        }
    };
}
pub(crate) use with_db;

/// Begins a transaction that will write after reading: `BEGIN IMMEDIATE` on SQLite (a
/// deferred one upgrading to a writer fails at once with `SQLITE_BUSY`), a plain READ
/// COMMITTED transaction on PostgreSQL (rows are locked by the statements themselves).
macro_rules! begin_write {
    ($write:expr, $pg:expr) => {
        if $pg {
            $write.begin().await
        } else {
            $write.begin_with("BEGIN IMMEDIATE").await
        }
    };
}
pub(crate) use begin_write;

/// Placeholders for `n` values, grouped `per` to a tuple: `?, ?` or `(?, ?), (?, ?)` on
/// SQLite, `$1, $2` or `($1, $2), ($3, $4)` on PostgreSQL (numbered from `first`).
///
/// Bulk statements use SQLite's anonymous `?`: `$N` is a *named* parameter to SQLite, and
/// preparing thousands of them costs quadratic time (84 ms for a 1,000-row insert).
/// PostgreSQL knows only `$N` and takes at most 65,535 per statement.
fn placeholders(pg: bool, first: usize, n: usize, per: usize) -> String {
    let mut out = String::new();
    let mut k = first;
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        if per > 1 {
            out.push('(');
        }
        for j in 0..per {
            if j > 0 {
                out.push_str(", ");
            }
            if pg {
                out.push('$');
                out.push_str(&k.to_string());
            } else {
                out.push('?');
            }
            k += 1;
        }
        if per > 1 {
            out.push(')');
        }
    }
    out
}

/// "reachable, schema up to date" or what is missing, from sqlx's migrations table on the
/// connection `$c` (absent before herald's first start).
macro_rules! schema_version {
    ($c:expr) => {{
        let latest = SQLITE_MIGRATIONS
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        match sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&mut $c)
        .await
        {
            Ok(v) if v >= latest => "reachable, schema up to date".to_string(),
            Ok(v) => {
                format!("reachable, schema {v} (herald updates it to {latest} when it starts)")
            }
            Err(_) => "reachable, no schema yet (herald makes it when it starts)".to_string(),
        }
    }};
}

/// The most bind parameters PostgreSQL takes in one statement.
pub const MAX_BINDS: usize = 65_535;

impl Store {
    /// Opens the store at `location` and brings its schema up to date (a SQLite file and
    /// its folder are created when missing).
    pub async fn open(location: &StoreLocation) -> anyhow::Result<Store> {
        match location {
            StoreLocation::Sqlite(path) => Store::open_sqlite(path).await,
            StoreLocation::Postgres(url) => Store::open_postgres(url, location).await,
        }
    }

    /// Opens (creating if needed) the SQLite file at `path` and brings its schema up to date.
    pub async fn open_sqlite(path: &Path) -> anyhow::Result<Store> {
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
        SQLITE_MIGRATIONS
            .run(&write)
            .await
            .with_context(|| format!("updating the schema of {}", path.display()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("opening the store {} for reading", path.display()))?;
        Ok(Store {
            db: Db::Sqlite { write, read },
        })
    }

    async fn open_postgres(url: &str, shown: &StoreLocation) -> anyhow::Result<Store> {
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("reading the store URL of the {shown}"))?
            .application_name("herald");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to the {shown}"))?;
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .with_context(|| format!("updating the schema of the {shown}"))?;
        Ok(Store {
            db: Db::Postgres(pool),
        })
    }

    /// Whether the store at `location` can be reached, without creating or migrating
    /// anything (`herald check`): `Ok` with what was found, or why not.
    pub async fn probe(location: &StoreLocation) -> anyhow::Result<String> {
        match location {
            StoreLocation::Sqlite(path) => {
                if !path.exists() {
                    return Ok("not created yet (the first build makes it)".into());
                }
                let options = SqliteConnectOptions::from_str("sqlite:")?
                    .filename(path)
                    .read_only(true);
                let mut c = sqlx::ConnectOptions::connect(&options)
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let version = schema_version!(c);
                let _ = sqlx::Connection::close(c).await;
                Ok(version)
            }
            StoreLocation::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)
                    .with_context(|| format!("reading the store URL of the {location}"))?
                    .application_name("herald check");
                let connect = sqlx::ConnectOptions::connect(&options);
                let mut c = tokio::time::timeout(Duration::from_secs(10), connect)
                    .await
                    .map_err(|_| anyhow::anyhow!("no answer from the {location} within 10 s"))?
                    .with_context(|| format!("cannot connect to the {location}"))?;
                let version = schema_version!(c);
                let _ = sqlx::Connection::close(c).await;
                Ok(version)
            }
        }
    }

    /// Whether this store is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// One round trip to the database: whether it answers now.
    pub async fn ping(&self) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            sqlx::query_scalar::<_, i64>("SELECT 1")
                .fetch_one(write)
                .await?;
        });
        Ok(())
    }

    /// Waits for pending writes and closes every connection (the WAL is checkpointed).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Stores `value` under `key` unless a value is already there; returns the one kept.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> anyhow::Result<String> {
        with_db!(self, |write, read, pg| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(write)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_one(write)
                    .await?,
            )
        })
    }
}

/// Unix milliseconds, the store's time format.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_are_anonymous_on_sqlite_and_numbered_on_postgres() {
        assert_eq!(placeholders(false, 1, 2, 1), "?, ?");
        assert_eq!(placeholders(false, 1, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(placeholders(true, 1, 3, 1), "$1, $2, $3");
        assert_eq!(placeholders(true, 3, 2, 2), "($3, $4), ($5, $6)");
    }
}
