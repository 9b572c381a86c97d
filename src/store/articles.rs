//! SQL for the article index and feed ids: what keeps ids and first-seen dates permanent.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Store, from_ms, to_ms};

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
        let rows: Vec<Row> =
            sqlx::query_as("SELECT slug, id, source, first_seen_ms, content_hash FROM articles")
                .fetch_all(&self.read)
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
    }

    /// Inserts new rows and updates changed ones, in one transaction. `first_seen` of an
    /// existing row is never moved.
    pub async fn save_articles(&self, rows: &[IndexRow], now: DateTime<Utc>) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
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
    }

    /// The permanent id and creation time of each feed key, minting `(key, id)` pairs that
    /// have none yet.
    pub async fn feed_ids(
        &self,
        wanted: &[(String, String)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<HashMap<String, (String, DateTime<Utc>)>> {
        let existing: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT key, id, created_ms FROM feeds")
                .fetch_all(&self.read)
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
            let mut tx = self.write.begin().await?;
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
                    .fetch_all(&self.write)
                    .await?;
            out = all
                .into_iter()
                .map(|(k, id, ms)| (k, (id, from_ms(ms))))
                .collect();
        }
        Ok(out)
    }
}
