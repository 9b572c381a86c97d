//! SQL for issues and the delivery ledger: creating an issue and its rows in one
//! transaction, leasing due rows, recording outcomes in batches, taking back the leases of
//! dead workers, and the counts `herald status` and `/metrics` show.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, begin_write, from_ms, to_ms, with_db};
use crate::audience::Status;

/// An issue as stored.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: i64,
    pub newsletter: String,
    pub scheduled: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub title: String,
    pub articles: Vec<String>,
    /// The rendered issue (JSON), as the newsletter module stored it.
    pub content: String,
    pub recipients: i64,
    pub manual: bool,
}

/// What [`Store::create_issue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new issue with this many ledger rows.
    New { id: i64, recipients: i64 },
    /// Another run (or instance) made this issue already.
    Existing { id: i64 },
}

/// A new issue to create.
pub struct NewIssue<'a> {
    pub newsletter: &'a str,
    pub scheduled: DateTime<Utc>,
    pub title: &'a str,
    pub articles: &'a [String],
    pub content: &'a str,
    pub manual: bool,
}

/// A leased ledger row with its recipient.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: i64,
    pub issue: i64,
    pub subscriber: i64,
    pub attempts: i64,
    pub email: String,
    pub name: String,
    /// Whether the subscriber may still be mailed (confirmed, still receiving the newsletter).
    pub deliverable: bool,
}

/// How one leased row ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Deferred {
        until: DateTime<Utc>,
        code: Option<u16>,
        error: String,
    },
    Failed {
        code: Option<u16>,
        error: String,
    },
    /// Not sent: the subscriber left between issue creation and sending.
    Skipped,
    /// Not attempted (shutdown): back to the queue, attempt not counted.
    Released,
}

/// One ledger row as stored.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub subscriber: i64,
    /// `queued`, `sending`, `sent`, `deferred`, `failed` or `skipped`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt: DateTime<Utc>,
    pub last_code: Option<i64>,
    pub last_error: Option<String>,
}

/// Ledger counts for one issue.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IssueCounts {
    pub issue: i64,
    pub newsletter: String,
    pub title: String,
    pub scheduled: String,
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub deferred: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Rows sent in the last minute.
    pub sent_last_minute: i64,
}

impl IssueCounts {
    pub fn total(&self) -> i64 {
        self.queued + self.sending + self.sent + self.deferred + self.failed + self.skipped
    }
    pub fn remaining(&self) -> i64 {
        self.queued + self.sending + self.deferred
    }
}

/// An `issues` row as both drivers decode it.
#[derive(sqlx::FromRow)]
struct IssueRow {
    id: i64,
    newsletter_id: String,
    scheduled_ms: i64,
    created_ms: i64,
    title: String,
    articles: String,
    content: String,
    recipients: i64,
    manual: i64,
}

impl From<IssueRow> for Issue {
    fn from(r: IssueRow) -> Issue {
        Issue {
            id: r.id,
            newsletter: r.newsletter_id,
            scheduled: from_ms(r.scheduled_ms),
            created: from_ms(r.created_ms),
            title: r.title,
            articles: r.articles.lines().map(str::to_string).collect(),
            content: r.content,
            recipients: r.recipients,
            manual: r.manual != 0,
        }
    }
}

const ISSUE_COLUMNS: &str =
    "id, newsletter_id, scheduled_ms, created_ms, title, articles, content, recipients, manual";

impl Store {
    /// Creates the issue of `newsletter` for `scheduled` and its ledger rows — one per
    /// confirmed subscriber of the newsletter — in one transaction. Idempotent per
    /// (newsletter, scheduled): a second call returns the existing issue and adds nothing.
    pub async fn create_issue(
        &self,
        n: &NewIssue<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Created> {
        with_db!(self, |write, read, pg| {
            let mut tx = begin_write!(write, pg)?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO issues (newsletter_id, scheduled_ms, created_ms, title, articles, content, manual)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (newsletter_id, scheduled_ms) DO NOTHING RETURNING id",
            )
            .bind(n.newsletter)
            .bind(to_ms(n.scheduled))
            .bind(to_ms(now))
            .bind(n.title)
            .bind(n.articles.join("\n"))
            .bind(n.content)
            .bind(n.manual as i64)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else {
                let id: i64 = sqlx::query_scalar(
                    "SELECT id FROM issues WHERE newsletter_id = $1 AND scheduled_ms = $2",
                )
                .bind(n.newsletter)
                .bind(to_ms(n.scheduled))
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Created::Existing { id });
            };
            // One statement for every row: about a million rows a second on SQLite.
            let rows = sqlx::query(
                "INSERT INTO deliveries (issue_id, subscriber_id, status, next_attempt_ms)
                 SELECT $1, s.id, 'queued', $2 FROM subscriptions n JOIN subscribers s ON s.id = n.subscriber_id
                 WHERE n.newsletter_id = $3 AND s.status = 'confirmed'
                 ORDER BY s.id
                 ON CONFLICT (issue_id, subscriber_id) DO NOTHING",
            )
            .bind(id)
            .bind(to_ms(now))
            .bind(n.newsletter)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
            sqlx::query("UPDATE issues SET recipients = $2 WHERE id = $1")
                .bind(id)
                .bind(rows)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Created::New {
                id,
                recipients: rows,
            })
        })
    }

    pub async fn issue(&self, id: i64) -> anyhow::Result<Option<Issue>> {
        with_db!(self, |write, read, pg| {
            let sql = format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE id = $1");
            let row = sqlx::query_as::<_, IssueRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(read)
                .await?;
            Ok(row.map(Issue::from))
        })
    }

    /// The issue of a newsletter for exactly this fire time.
    pub async fn issue_at(
        &self,
        newsletter: &str,
        scheduled: DateTime<Utc>,
    ) -> anyhow::Result<Option<Issue>> {
        with_db!(self, |write, read, pg| {
            let sql = format!(
                "SELECT {ISSUE_COLUMNS} FROM issues WHERE newsletter_id = $1 AND scheduled_ms = $2"
            );
            let row = sqlx::query_as::<_, IssueRow>(sqlx::AssertSqlSafe(sql))
                .bind(newsletter)
                .bind(to_ms(scheduled))
                .fetch_optional(read)
                .await?;
            Ok(row.map(Issue::from))
        })
    }

    /// The newest issue of a newsletter at or before `before`.
    pub async fn previous_issue(
        &self,
        newsletter: &str,
        before: DateTime<Utc>,
    ) -> anyhow::Result<Option<Issue>> {
        with_db!(self, |write, read, pg| {
            let sql = format!(
                "SELECT {ISSUE_COLUMNS} FROM issues WHERE newsletter_id = $1 AND scheduled_ms < $2 ORDER BY scheduled_ms DESC LIMIT 1"
            );
            let row = sqlx::query_as::<_, IssueRow>(sqlx::AssertSqlSafe(sql))
                .bind(newsletter)
                .bind(to_ms(before))
                .fetch_optional(read)
                .await?;
            Ok(row.map(Issue::from))
        })
    }

    /// Issues of a newsletter, newest first.
    pub async fn issues(&self, newsletter: &str, limit: i64) -> anyhow::Result<Vec<Issue>> {
        with_db!(self, |write, read, pg| {
            let sql = format!(
                "SELECT {ISSUE_COLUMNS} FROM issues WHERE newsletter_id = $1 ORDER BY scheduled_ms DESC LIMIT $2"
            );
            let rows = sqlx::query_as::<_, IssueRow>(sqlx::AssertSqlSafe(sql))
                .bind(newsletter)
                .bind(limit)
                .fetch_all(read)
                .await?;
            Ok(rows.into_iter().map(Issue::from).collect())
        })
    }

    /// The last fire time the scheduler dealt with for a newsletter.
    pub async fn last_fire(&self, newsletter: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        with_db!(self, |write, read, pg| {
            let ms: Option<i64> = sqlx::query_scalar(
                "SELECT last_fire_ms FROM newsletter_state WHERE newsletter_id = $1",
            )
            .bind(newsletter)
            .fetch_optional(read)
            .await?;
            Ok(ms.map(from_ms))
        })
    }

    /// Records that the scheduler dealt with `fire` (never moves backwards).
    pub async fn set_last_fire(&self, newsletter: &str, fire: DateTime<Utc>) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            sqlx::query(
                "INSERT INTO newsletter_state (newsletter_id, last_fire_ms) VALUES ($1, $2)
                 ON CONFLICT (newsletter_id) DO UPDATE SET last_fire_ms = CASE WHEN excluded.last_fire_ms > newsletter_state.last_fire_ms
                     THEN excluded.last_fire_ms ELSE newsletter_state.last_fire_ms END",
            )
            .bind(newsletter)
            .bind(to_ms(fire))
            .execute(write)
            .await?;
            Ok(())
        })
    }

    /// Registers a sending process (for taking back its leases if it dies).
    pub async fn register_worker(
        &self,
        id: &str,
        host: &str,
        pid: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            sqlx::query(
                "INSERT INTO workers (id, host, pid, started_ms, heartbeat_ms) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
            )
            .bind(id)
            .bind(host)
            .bind(pid as i64)
            .bind(to_ms(now))
            .execute(write)
            .await?;
            Ok(())
        })
    }

    pub async fn heartbeat(&self, id: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            sqlx::query("UPDATE workers SET heartbeat_ms = $2 WHERE id = $1")
                .bind(id)
                .bind(to_ms(now))
                .execute(write)
                .await?;
            Ok(())
        })
    }

    pub async fn unregister_worker(&self, id: &str) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            sqlx::query("DELETE FROM workers WHERE id = $1")
                .bind(id)
                .execute(write)
                .await?;
            Ok(())
        })
    }

    /// Every registered worker: (id, host, pid, heartbeat).
    pub async fn workers(&self) -> anyhow::Result<Vec<(String, String, i64, DateTime<Utc>)>> {
        with_db!(self, |write, read, pg| {
            let rows: Vec<(String, String, i64, i64)> =
                sqlx::query_as("SELECT id, host, pid, heartbeat_ms FROM workers")
                    .fetch_all(read)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(a, b, c, d)| (a, b, c, from_ms(d)))
                .collect())
        })
    }

    /// Takes back rows whose lease ran out or whose worker is in `dead`, and forgets those
    /// workers. Returns how many rows went back to the queue.
    pub async fn reclaim_leases(&self, dead: &[String], now: DateTime<Utc>) -> anyhow::Result<u64> {
        with_db!(self, |write, read, pg| {
            let mut tx = begin_write!(write, pg)?;
            let mut n = sqlx::query(
                "UPDATE deliveries SET status = 'deferred', locked_until_ms = NULL, locked_by = NULL, next_attempt_ms = $1
                 WHERE status = 'sending' AND locked_until_ms < $1",
            )
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            for w in dead {
                n += sqlx::query(
                    "UPDATE deliveries SET status = 'deferred', locked_until_ms = NULL, locked_by = NULL, next_attempt_ms = $2
                     WHERE status = 'sending' AND locked_by = $1",
                )
                .bind(w)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query("DELETE FROM workers WHERE id = $1")
                    .bind(w)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Leases up to `n` due rows to `worker` until `now + lease`, with their recipients.
    /// `issue` limits the lease to one issue (`herald send`).
    pub async fn lease_deliveries(
        &self,
        worker: &str,
        n: i64,
        now: DateTime<Utc>,
        lease: Duration,
        issue: Option<i64>,
    ) -> anyhow::Result<Vec<Leased>> {
        with_db!(self, |write, read, pg| {
            // PostgreSQL: rows another instance is leasing right now are skipped, not waited
            // for (SQLite's single writer makes the statement atomic as it is).
            let sql = format!(
                "UPDATE deliveries SET status = 'sending', locked_until_ms = $3, locked_by = $1, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM deliveries
                              WHERE status IN ('queued', 'deferred') AND next_attempt_ms <= $4
                                AND ($5 IS NULL OR issue_id = $5)
                              ORDER BY next_attempt_ms, id LIMIT $2{})
                 RETURNING id, issue_id, subscriber_id, attempts",
                if pg { " FOR UPDATE SKIP LOCKED" } else { "" }
            );
            let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(n)
                .bind(to_ms(now) + lease.as_millis() as i64)
                .bind(to_ms(now))
                .bind(issue)
                .fetch_all(write)
                .await?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            // Recipients, and whether each still receives the issue's newsletter.
            let ids: Vec<i64> = rows.iter().map(|r| r.2).collect();
            let issues: Vec<i64> = {
                let mut v: Vec<i64> = rows.iter().map(|r| r.1).collect();
                v.sort();
                v.dedup();
                v
            };
            let mut newsletters = BTreeMap::new();
            for i in issues {
                let n: String =
                    sqlx::query_scalar("SELECT newsletter_id FROM issues WHERE id = $1")
                        .bind(i)
                        .fetch_one(write)
                        .await?;
                newsletters.insert(i, n);
            }
            let sql = format!(
                "SELECT s.id, s.email, s.name, s.status, n.newsletter_id FROM subscribers s
                 LEFT JOIN subscriptions n ON n.subscriber_id = s.id
                 WHERE s.id IN ({})",
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let mut people: BTreeMap<i64, (String, String, bool, Vec<String>)> = BTreeMap::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(write)
                .await?
            {
                let id: i64 = r.try_get(0)?;
                let status: String = r.try_get(3)?;
                let entry = people.entry(id).or_insert_with(|| {
                    (
                        r.try_get(1).unwrap_or_default(),
                        r.try_get(2).unwrap_or_default(),
                        status == Status::Confirmed.as_str(),
                        Vec::new(),
                    )
                });
                if let Ok(Some(n)) = r.try_get::<Option<String>, _>(4) {
                    entry.3.push(n);
                }
            }
            Ok(rows
                .into_iter()
                .map(|(id, issue, subscriber, attempts)| {
                    // A subscriber deleted meanwhile is simply not deliverable.
                    let (email, name, confirmed, subs) =
                        people.get(&subscriber).cloned().unwrap_or_default();
                    let deliverable =
                        confirmed && subs.iter().any(|n| Some(n) == newsletters.get(&issue));
                    Leased {
                        id,
                        issue,
                        subscriber,
                        attempts,
                        email,
                        name,
                        deliverable,
                    }
                })
                .collect())
        })
    }

    /// Records outcomes for rows leased by `worker`; rows whose lease another worker took
    /// over are left alone. Sent rows are written in one statement per batch.
    pub async fn finish_deliveries(
        &self,
        worker: &str,
        results: &[(i64, Outcome)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            if results.is_empty() {
                return Ok(());
            }
            let now_ms = to_ms(now);
            let mut tx = write.begin().await?;
            let sent: Vec<String> = results
                .iter()
                .filter(|(_, o)| *o == Outcome::Sent)
                .map(|(id, _)| id.to_string())
                .collect();
            for chunk in sent.chunks(500) {
                let sql = format!(
                    "UPDATE deliveries SET status = 'sent', sent_ms = $2, last_code = 250, last_error = NULL,
                         locked_until_ms = NULL
                     WHERE locked_by = $1 AND status = 'sending' AND id IN ({})",
                    chunk.join(",")
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(worker)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            for (id, o) in results {
                let (status, next, code, error, attempt_back): (
                    &str,
                    Option<i64>,
                    Option<u16>,
                    Option<&str>,
                    i64,
                ) = match o {
                    Outcome::Sent => continue,
                    Outcome::Deferred { until, code, error } => {
                        ("deferred", Some(to_ms(*until)), *code, Some(error), 0)
                    }
                    Outcome::Failed { code, error } => ("failed", None, *code, Some(error), 0),
                    Outcome::Skipped => ("skipped", None, None, None, 0),
                    Outcome::Released => ("queued", Some(now_ms), None, None, 1),
                };
                sqlx::query(
                    "UPDATE deliveries SET status = $3, next_attempt_ms = COALESCE($4, next_attempt_ms),
                         last_code = COALESCE($5, last_code), last_error = COALESCE($6, last_error),
                         locked_until_ms = NULL, locked_by = NULL, attempts = attempts - $7
                     WHERE id = $1 AND locked_by = $2 AND status = 'sending'",
                )
                .bind(id)
                .bind(worker)
                .bind(status)
                .bind(next)
                .bind(code.map(|c| c as i64))
                .bind(error)
                .bind(attempt_back)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Rows still to be sent before `before`: queued, in flight, or deferred until then.
    pub async fn pending_before(
        &self,
        issue: Option<i64>,
        before: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        with_db!(self, |write, read, pg| {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM deliveries WHERE ($1 IS NULL OR issue_id = $1)
                   AND (status IN ('queued', 'sending') OR (status = 'deferred' AND next_attempt_ms <= $2))",
            )
            .bind(issue)
            .bind(to_ms(before))
            .fetch_one(read)
            .await?)
        })
    }

    /// When the next queued or deferred row is due, if any.
    pub async fn next_delivery_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        with_db!(self, |write, read, pg| {
            let ms: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(next_attempt_ms) FROM deliveries WHERE status IN ('queued', 'deferred')",
            )
            .fetch_one(read)
            .await?;
            Ok(ms.map(from_ms))
        })
    }

    /// Ledger counts of the newest `limit` issues (or one issue), newest first.
    pub async fn issue_counts(
        &self,
        issue: Option<i64>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<IssueCounts>> {
        with_db!(self, |write, read, pg| {
            let issues: Vec<(i64, String, String, i64)> = sqlx::query_as(
                "SELECT id, newsletter_id, title, scheduled_ms FROM issues WHERE ($1 IS NULL OR id = $1)
                 ORDER BY scheduled_ms DESC, id DESC LIMIT $2",
            )
            .bind(issue)
            .bind(limit)
            .fetch_all(read)
            .await?;
            let mut out = Vec::new();
            for (id, newsletter, title, scheduled) in issues {
                let mut c = IssueCounts {
                    issue: id,
                    newsletter,
                    title,
                    scheduled: crate::time::rfc3339(from_ms(scheduled)),
                    ..Default::default()
                };
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM deliveries WHERE issue_id = $1 GROUP BY status",
                )
                .bind(id)
                .fetch_all(read)
                .await?;
                for (s, n) in rows {
                    match s.as_str() {
                        "queued" => c.queued = n,
                        "sending" => c.sending = n,
                        "sent" => c.sent = n,
                        "deferred" => c.deferred = n,
                        "failed" => c.failed = n,
                        "skipped" => c.skipped = n,
                        _ => {}
                    }
                }
                c.sent_last_minute = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM deliveries WHERE issue_id = $1 AND status = 'sent' AND sent_ms > $2",
                )
                .bind(id)
                .bind(to_ms(now) - 60_000)
                .fetch_one(read)
                .await?;
                out.push(c);
            }
            Ok(out)
        })
    }

    /// Every ledger row of an issue, in id order, as stored.
    pub async fn deliveries(&self, issue: i64) -> anyhow::Result<Vec<Delivery>> {
        with_db!(self, |write, read, pg| {
            let rows = sqlx::query(
                "SELECT id, subscriber_id, status, attempts, next_attempt_ms, last_code, last_error
                 FROM deliveries WHERE issue_id = $1 ORDER BY id",
            )
            .bind(issue)
            .fetch_all(read)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Delivery {
                        id: r.try_get("id")?,
                        subscriber: r.try_get("subscriber_id")?,
                        status: r.try_get("status")?,
                        attempts: r.try_get("attempts")?,
                        next_attempt: from_ms(r.try_get("next_attempt_ms")?),
                        last_code: r.try_get("last_code")?,
                        last_error: r.try_get("last_error")?,
                    })
                })
                .collect()
        })
    }

    /// Rows per status over the whole ledger (for `/metrics`).
    pub async fn ledger_depth(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        with_db!(self, |write, read, pg| {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM deliveries WHERE status IN ('queued', 'sending', 'deferred') GROUP BY status",
            )
            .fetch_all(read)
            .await?;
            let mut m: BTreeMap<String, i64> = ["queued", "sending", "deferred"]
                .iter()
                .map(|s| (s.to_string(), 0))
                .collect();
            m.extend(rows);
            Ok(m)
        })
    }
}
