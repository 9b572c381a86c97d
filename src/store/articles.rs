//! SQL for the article index, feed ids and feed file stamps: what keeps ids, first-seen dates
//! and each feed's `Last-Modified` permanent.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Store, from_ms, to_ms, with_db};

/// One article as the store remembers it, keyed by slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub slug: String,
    pub id: String,
    pub source: String,
    pub first_seen: DateTime<Utc>,
    pub content_hash: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    slug: String,
    id: String,
    source: String,
    first_seen_ms: i64,
    content_hash: String,
}

impl Store {
    /// Every article herald has ever seen, by slug.
    pub async fn article_index(&self) -> anyhow::Result<HashMap<String, IndexRow>> {
        with_db!(self, |write, read, pg| {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT slug, id, source, first_seen_ms, content_hash FROM articles",
            )
            .fetch_all(read)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    (
                        r.slug.clone(),
                        IndexRow {
                            slug: r.slug,
                            id: r.id,
                            source: r.source,
                            first_seen: from_ms(r.first_seen_ms),
                            content_hash: r.content_hash,
                        },
                    )
                })
                .collect())
        })
    }

    /// Inserts new rows and updates changed ones, in one transaction. `first_seen` of an
    /// existing row is never moved.
    pub async fn save_articles(&self, rows: &[IndexRow], now: DateTime<Utc>) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = write.begin().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO articles (slug, id, source, first_seen_ms, content_hash, changed_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (slug) DO UPDATE SET
                         id = excluded.id, source = excluded.source,
                         content_hash = excluded.content_hash, changed_ms = excluded.changed_ms",
                )
                .bind(&r.slug)
                .bind(&r.id)
                .bind(&r.source)
                .bind(to_ms(r.first_seen))
                .bind(&r.content_hash)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The permanent id and creation time of each feed key, minting `(key, id)` pairs that
    /// have none yet.
    pub async fn feed_ids(
        &self,
        wanted: &[(String, String)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<HashMap<String, (String, DateTime<Utc>)>> {
        with_db!(self, |write, read, pg| {
            let existing: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT key, id, created_ms FROM feeds")
                    .fetch_all(read)
                    .await?;
            let mut out: HashMap<String, (String, DateTime<Utc>)> = existing
                .into_iter()
                .map(|(k, id, ms)| (k, (id, from_ms(ms))))
                .collect();
            let missing: Vec<&(String, String)> = wanted
                .iter()
                .filter(|(k, _)| !out.contains_key(k))
                .collect();
            if !missing.is_empty() {
                let mut tx = write.begin().await?;
                for (key, id) in missing {
                    sqlx::query(
                        "INSERT INTO feeds (key, id, created_ms) VALUES ($1, $2, $3)
                         ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(key)
                    .bind(id)
                    .bind(to_ms(now))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                let all: Vec<(String, String, i64)> =
                    sqlx::query_as("SELECT key, id, created_ms FROM feeds")
                        .fetch_all(write)
                        .await?;
                out = all
                    .into_iter()
                    .map(|(k, id, ms)| (k, (id, from_ms(ms))))
                    .collect();
            }
            Ok(out)
        })
    }
}

/// What the store remembers of one feed file (by its path below `feeds/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStamp {
    /// A hash of the file's bytes.
    pub hash: String,
    /// How many entries it holds.
    pub entries: i64,
    /// When its bytes last changed.
    pub modified: DateTime<Utc>,
}

impl Store {
    /// Every feed file's stamp, by path.
    pub async fn feed_stamps(&self) -> anyhow::Result<HashMap<String, FeedStamp>> {
        with_db!(self, |write, read, pg| {
            let rows: Vec<(String, String, i64, i64)> =
                sqlx::query_as("SELECT path, content_hash, entries, modified_ms FROM feed_files")
                    .fetch_all(read)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(path, hash, entries, ms)| {
                    (
                        path,
                        FeedStamp {
                            hash,
                            entries,
                            modified: from_ms(ms),
                        },
                    )
                })
                .collect())
        })
    }

    /// Records `(path, hash, entries)` of feed files as built at `now` (whole seconds): a
    /// file whose stored hash differs (or that has none) is stamped modified at `now`, or a
    /// second after its previous time if that is not earlier (two changes within one second
    /// still get different times, which `If-Modified-Since` needs); one whose bytes are
    /// already recorded keeps its time (another instance may have recorded them first).
    /// Returns the stamps now stored for those paths.
    pub async fn stamp_feed_files(
        &self,
        files: &[(String, String, i64)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<HashMap<String, FeedStamp>> {
        with_db!(self, |write, read, pg| {
            let mut out = HashMap::new();
            if files.is_empty() {
                return Ok(out);
            }
            let mut tx = write.begin().await?;
            for (path, hash, entries) in files {
                sqlx::query(
                    "INSERT INTO feed_files (path, content_hash, entries, modified_ms)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (path) DO UPDATE SET
                         content_hash = excluded.content_hash, entries = excluded.entries,
                         modified_ms = CASE WHEN excluded.modified_ms > feed_files.modified_ms
                                            THEN excluded.modified_ms
                                            ELSE feed_files.modified_ms + 1000 END
                     WHERE feed_files.content_hash <> excluded.content_hash",
                )
                .bind(path)
                .bind(hash)
                .bind(entries)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?;
                let (hash, entries, ms): (String, i64, i64) = sqlx::query_as(
                    "SELECT content_hash, entries, modified_ms FROM feed_files WHERE path = $1",
                )
                .bind(path)
                .fetch_one(&mut *tx)
                .await?;
                out.insert(
                    path.clone(),
                    FeedStamp {
                        hash,
                        entries,
                        modified: from_ms(ms),
                    },
                );
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Forgets feed files that are no longer built.
    pub async fn forget_feed_files(&self, paths: &[String]) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            if paths.is_empty() {
                return Ok(());
            }
            let mut tx = write.begin().await?;
            for path in paths {
                sqlx::query("DELETE FROM feed_files WHERE path = $1")
                    .bind(path)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
