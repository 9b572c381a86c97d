//! SQL for subscribers: sign-up, confirmation, unsubscription, the admin operations, and
//! the queue of confirmation emails.
//!
//! Suppression is enforced here, where every path meets: an unsubscribed, bounced or
//! complained address changes status only through `confirm` (the person clicking a fresh
//! confirmation link), never through `add_subscriber` or an import.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, begin_write, from_ms, placeholders, to_ms, with_db};
use crate::audience::{self, Email, Evidence, Refusal, Status, may_send_confirmation};

/// Adds one subscription inside transaction `$tx`; true if it was new.
macro_rules! insert_subscription {
    ($tx:expr, $id:expr, $newsletter:expr, $now_ms:expr) => {
        sqlx::query(
            "INSERT INTO subscriptions (subscriber_id, newsletter_id, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT (subscriber_id, newsletter_id) DO NOTHING",
        )
        .bind($id)
        .bind($newsletter)
        .bind($now_ms)
        .execute(&mut *$tx)
        .await
        .map(|done| done.rows_affected() > 0)
    };
}

/// A subscriber as stored, with the newsletters it receives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Subscriber {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub status: Status,
    pub newsletters: Vec<String>,
    pub created: DateTime<Utc>,
    pub consent_at: Option<DateTime<Utc>>,
    pub consent_source: Option<String>,
    pub consent_ip: Option<String>,
    pub consent_user_agent: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

const SUBSCRIBER_COLUMNS: &str = "id, email, name, status, created_ms, consent_ms, consent_source, consent_ip, consent_user_agent, confirmed_ms, unsubscribed_ms";

/// A `subscribers` row ([`SUBSCRIBER_COLUMNS`]) as both drivers decode it.
#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    email: String,
    name: String,
    status: String,
    created_ms: i64,
    consent_ms: Option<i64>,
    consent_source: Option<String>,
    consent_ip: Option<String>,
    consent_user_agent: Option<String>,
    confirmed_ms: Option<i64>,
    unsubscribed_ms: Option<i64>,
}

fn subscriber_from(row: SubscriberRow) -> anyhow::Result<Subscriber> {
    Ok(Subscriber {
        id: row.id,
        email: row.email,
        name: row.name,
        status: row.status.parse().map_err(anyhow::Error::msg)?,
        newsletters: Vec::new(),
        created: from_ms(row.created_ms),
        consent_at: row.consent_ms.map(from_ms),
        consent_source: row.consent_source,
        consent_ip: row.consent_ip,
        consent_user_agent: row.consent_user_agent,
        confirmed_at: row.confirmed_ms.map(from_ms),
        unsubscribed_at: row.unsubscribed_ms.map(from_ms),
    })
}

/// What a sign-up did. The HTTP answer is the same whatever this says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUp {
    /// A confirmation email is queued.
    Queued { subscriber: i64 },
    /// No email may go to this address now (see [`Refusal`]); nothing changed.
    Refused(Refusal),
}

/// What a confirmation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    Done {
        email: String,
        newsletters: Vec<String>,
    },
    /// The link was used already, or replaced, or the person unsubscribed since.
    Stale,
}

/// What an unsubscription did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsubscribed {
    /// `remaining` lists newsletters still received (empty: unsubscribed from everything).
    Done {
        email: String,
        remaining: Vec<String>,
    },
    Already {
        email: String,
    },
    NotFound,
}

/// What an operator's add did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Created(i64),
    Updated(i64),
    Unchanged(i64),
    /// Suppressed addresses are left alone: only the person can re-subscribe.
    Suppressed(Status),
}

/// Filters for listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub newsletter: Option<String>,
    /// Only ids greater than this (keyset pagination).
    pub after: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    /// Confirmed subscribers per newsletter.
    pub by_newsletter: BTreeMap<String, i64>,
}

/// A confirmation email to send.
#[derive(Debug, Clone)]
pub struct ConfirmJob {
    pub id: i64,
    pub subscriber: i64,
    pub nonce: String,
    pub attempts: i64,
    pub created: DateTime<Utc>,
    pub email: String,
    pub status: Status,
    /// Whether the subscriber still waits for this very link.
    pub current: bool,
    pub newsletters: Vec<String>,
}

/// How a confirmation email attempt ended.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Sent,
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
    /// Nothing to send any more (confirmed meanwhile, link replaced, unsubscribed).
    Skipped,
}

fn split_ids(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn join_ids(ids: &[String]) -> String {
    let mut v: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    v.sort();
    v.dedup();
    v.join(" ")
}

impl Store {
    /// Records a sign-up from the form or the public JSON endpoint and queues the
    /// confirmation email, when [`may_send_confirmation`] allows it. What the request says
    /// (the name typed, the consent evidence) is kept beside the record as the pending
    /// sign-up: the record itself changes only when the person confirms.
    #[allow(clippy::too_many_arguments)]
    pub async fn sign_up(
        &self,
        email: &Email,
        name: &str,
        newsletters: &[String],
        ev: &Evidence,
        now: DateTime<Utc>,
        per_day: u32,
        link_lifetime: Duration,
    ) -> anyhow::Result<SignUp> {
        with_db!(self, |write, read, pg| {
            let key = email.key();
            let now_ms = to_ms(now);
            let mut tx = begin_write!(write, pg)?;
            let (sent_24h, last): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(CASE WHEN created_ms > $2 THEN 1 END), MAX(created_ms)
                 FROM confirmation_mails WHERE email_key = $1",
            )
            .bind(&key)
            .bind(now_ms - 86_400_000)
            .fetch_one(&mut *tx)
            .await?;
            let existing = sqlx::query(
                "SELECT id, status, pending_nonce, pending_since_ms, pending_newsletters FROM subscribers WHERE email_key = $1",
            )
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let status = match &existing {
                Some(row) => Some(
                    row.try_get::<String, _>("status")?
                        .parse::<Status>()
                        .map_err(anyhow::Error::msg)?,
                ),
                None => None,
            };
            if let Err(why) =
                may_send_confirmation(status, sent_24h, per_day, last.map(from_ms), now)
            {
                return Ok(SignUp::Refused(why));
            }
            let lifetime = link_lifetime.as_millis() as i64;
            let (id, nonce, since, wanted) = match existing {
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO subscribers (email, email_key, status, created_ms, updated_ms)
                         VALUES ($1, $2, 'pending', $3, $3) RETURNING id",
                    )
                    .bind(email.as_str())
                    .bind(&key)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                    (id, audience::nonce(), now_ms, newsletters.to_vec())
                }
                Some(row) => {
                    let id: i64 = row.try_get("id")?;
                    let old_nonce: Option<String> = row.try_get("pending_nonce")?;
                    let since: Option<i64> = row.try_get("pending_since_ms")?;
                    let mut wanted: Vec<String> = newsletters.to_vec();
                    // A link still within its lifetime is reused, so every email sent for this
                    // address carries a working link; the newsletters asked for accumulate.
                    match (old_nonce, since) {
                        (Some(n), Some(s)) if now_ms - s < lifetime => {
                            let pending: String = row.try_get("pending_newsletters")?;
                            wanted.extend(split_ids(&pending));
                            (id, n, s, wanted)
                        }
                        _ => (id, audience::nonce(), now_ms, wanted),
                    }
                }
            };
            sqlx::query(
                "UPDATE subscribers SET pending_nonce = $2, pending_since_ms = $3, pending_newsletters = $4,
                     pending_name = $5, pending_consent_ms = $6, pending_consent_source = $7,
                     pending_consent_ip = $8, pending_consent_user_agent = $9, updated_ms = $6
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&nonce)
            .bind(since)
            .bind(join_ids(&wanted))
            .bind(name)
            .bind(now_ms)
            .bind(&ev.source)
            .bind(&ev.ip)
            .bind(&ev.user_agent)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO confirmation_mails (subscriber_id, email_key, nonce, status, created_ms, next_attempt_ms)
                 VALUES ($1, $2, $3, 'queued', $4, $4)",
            )
            .bind(id)
            .bind(&key)
            .bind(&nonce)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(SignUp::Queued { subscriber: id })
        })
    }

    /// Confirms the sign-up whose link carries `nonce`; the link then stops working.
    pub async fn confirm(
        &self,
        id: i64,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Confirmed> {
        with_db!(self, |write, read, pg| {
            let mut tx = begin_write!(write, pg)?;
            let row = sqlx::query(
                "SELECT email, pending_nonce, pending_newsletters FROM subscribers WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(Confirmed::Stale);
            };
            let current: Option<String> = row.try_get("pending_nonce")?;
            if current.as_deref() != Some(nonce) {
                return Ok(Confirmed::Stale);
            }
            let email: String = row.try_get("email")?;
            let wanted = split_ids(&row.try_get::<String, _>("pending_newsletters")?);
            let now_ms = to_ms(now);
            // The request's name and evidence become the record's now, and only now.
            sqlx::query(
                "UPDATE subscribers SET status = 'confirmed', confirmed_ms = $2, unsubscribed_ms = NULL,
                     name = CASE WHEN pending_name = '' THEN name ELSE pending_name END,
                     consent_ms = COALESCE(pending_consent_ms, consent_ms),
                     consent_source = COALESCE(pending_consent_source, consent_source),
                     consent_ip = CASE WHEN pending_consent_ms IS NULL THEN consent_ip ELSE pending_consent_ip END,
                     consent_user_agent = CASE WHEN pending_consent_ms IS NULL THEN consent_user_agent ELSE pending_consent_user_agent END,
                     pending_nonce = NULL, pending_since_ms = NULL, pending_newsletters = '', pending_name = '',
                     pending_consent_ms = NULL, pending_consent_source = NULL, pending_consent_ip = NULL,
                     pending_consent_user_agent = NULL, updated_ms = $2
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            for n in &wanted {
                sqlx::query(
                    "INSERT INTO subscriptions (subscriber_id, newsletter_id, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (subscriber_id, newsletter_id) DO NOTHING",
                )
                .bind(id)
                .bind(n)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            let newsletters: Vec<String> =
                sqlx::query_scalar("SELECT newsletter_id FROM subscriptions WHERE subscriber_id = $1 ORDER BY newsletter_id")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(Confirmed::Done { email, newsletters })
        })
    }

    /// Stops one newsletter (`Some`) or everything (`None`). Losing the last newsletter, or
    /// everything, makes the address `unsubscribed`, which suppresses it.
    pub async fn unsubscribe(
        &self,
        id: i64,
        newsletter: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Unsubscribed> {
        with_db!(self, |write, read, pg| {
            let mut tx = begin_write!(write, pg)?;
            let row = sqlx::query("SELECT email, status FROM subscribers WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Unsubscribed::NotFound);
            };
            let email: String = row.try_get("email")?;
            let status: Status = row
                .try_get::<String, _>("status")?
                .parse()
                .map_err(anyhow::Error::msg)?;
            let now_ms = to_ms(now);
            let removed = match newsletter {
                Some(n) => sqlx::query(
                    "DELETE FROM subscriptions WHERE subscriber_id = $1 AND newsletter_id = $2",
                )
                .bind(id)
                .bind(n)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                None => sqlx::query("DELETE FROM subscriptions WHERE subscriber_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
            };
            let remaining: Vec<String> =
                sqlx::query_scalar("SELECT newsletter_id FROM subscriptions WHERE subscriber_id = $1 ORDER BY newsletter_id")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let outcome = if status.is_suppressed() {
                Unsubscribed::Already { email }
            } else if remaining.is_empty() {
                sqlx::query(
                    "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_ms = $2, updated_ms = $2,
                         pending_nonce = NULL, pending_since_ms = NULL, pending_newsletters = ''
                     WHERE id = $1",
                )
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                Unsubscribed::Done { email, remaining }
            } else if removed == 0 {
                Unsubscribed::Already { email }
            } else {
                Unsubscribed::Done { email, remaining }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    pub async fn subscriber(&self, id: i64) -> anyhow::Result<Option<Subscriber>> {
        with_db!(self, |write, read, pg| {
            let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1");
            let row = sqlx::query_as::<_, SubscriberRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(read)
                .await?;
            match row {
                None => Ok(None),
                Some(r) => {
                    let mut s = subscriber_from(r)?;
                    s.newsletters = self.newsletters_of(s.id).await?;
                    Ok(Some(s))
                }
            }
        })
    }

    pub async fn subscriber_by_email(&self, email: &Email) -> anyhow::Result<Option<Subscriber>> {
        with_db!(self, |write, read, pg| {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM subscribers WHERE email_key = $1")
                    .bind(email.key())
                    .fetch_optional(read)
                    .await?;
            match id {
                Some(id) => self.subscriber(id).await,
                None => Ok(None),
            }
        })
    }

    /// The sign-up awaiting confirmation: its link's nonce and the newsletters asked for.
    pub async fn pending_signup(&self, id: i64) -> anyhow::Result<Option<(String, Vec<String>)>> {
        with_db!(self, |write, read, pg| {
            let row: Option<(Option<String>, String)> = sqlx::query_as(
                "SELECT pending_nonce, pending_newsletters FROM subscribers WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(read)
            .await?;
            Ok(row.and_then(|(nonce, wanted)| nonce.map(|n| (n, split_ids(&wanted)))))
        })
    }

    async fn newsletters_of(&self, id: i64) -> anyhow::Result<Vec<String>> {
        with_db!(self, |write, read, pg| {
            Ok(
                sqlx::query_scalar("SELECT newsletter_id FROM subscriptions WHERE subscriber_id = $1 ORDER BY newsletter_id")
                    .bind(id)
                    .fetch_all(read)
                    .await?,
            )
        })
    }

    /// An operator adds an address (CLI or API). New addresses are `confirmed` when the
    /// operator says so (with the source as evidence), otherwise `pending` with a
    /// confirmation email queued. Suppressed addresses are never changed.
    pub async fn add_subscriber(
        &self,
        email: &Email,
        name: &str,
        newsletters: &[String],
        confirmed: bool,
        ev: &Evidence,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Added> {
        with_db!(self, |write, read, pg| {
            let key = email.key();
            let now_ms = to_ms(now);
            let mut tx = begin_write!(write, pg)?;
            let existing =
                sqlx::query("SELECT id, status, name FROM subscribers WHERE email_key = $1")
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = match existing {
                Some(row) => {
                    let id: i64 = row.try_get("id")?;
                    let status: Status = row
                        .try_get::<String, _>("status")?
                        .parse()
                        .map_err(anyhow::Error::msg)?;
                    if status.is_suppressed() {
                        return Ok(Added::Suppressed(status));
                    }
                    let old_name: String = row.try_get("name")?;
                    let mut changed = false;
                    if !name.is_empty() && name != old_name {
                        sqlx::query(
                            "UPDATE subscribers SET name = $2, updated_ms = $3 WHERE id = $1",
                        )
                        .bind(id)
                        .bind(name)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                        changed = true;
                    }
                    if confirmed && status == Status::Pending {
                        sqlx::query(
                            "UPDATE subscribers SET status = 'confirmed', confirmed_ms = $2, updated_ms = $2,
                                 consent_source = COALESCE(consent_source, $3), consent_ms = COALESCE(consent_ms, $2)
                             WHERE id = $1",
                        )
                        .bind(id)
                        .bind(now_ms)
                        .bind(&ev.source)
                        .execute(&mut *tx)
                        .await?;
                        changed = true;
                    }
                    for n in newsletters {
                        changed |= insert_subscription!(tx, id, n, now_ms)?;
                    }
                    if changed {
                        Added::Updated(id)
                    } else {
                        Added::Unchanged(id)
                    }
                }
                None => {
                    let status = if confirmed {
                        Status::Confirmed
                    } else {
                        Status::Pending
                    };
                    let nonce = (!confirmed).then(audience::nonce);
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO subscribers (email, email_key, name, status, created_ms, updated_ms,
                             consent_ms, consent_source, consent_ip, consent_user_agent, confirmed_ms,
                             pending_nonce, pending_since_ms, pending_newsletters)
                         VALUES ($1, $2, $3, $4, $5, $5, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                    )
                    .bind(email.as_str())
                    .bind(&key)
                    .bind(name)
                    .bind(status.as_str())
                    .bind(now_ms)
                    .bind(&ev.source)
                    .bind(&ev.ip)
                    .bind(&ev.user_agent)
                    .bind(confirmed.then_some(now_ms))
                    .bind(&nonce)
                    .bind(nonce.as_ref().map(|_| now_ms))
                    .bind(if confirmed { String::new() } else { join_ids(newsletters) })
                    .fetch_one(&mut *tx)
                    .await?;
                    if confirmed {
                        for n in newsletters {
                            insert_subscription!(tx, id, n, now_ms)?;
                        }
                    } else if let Some(nonce) = nonce {
                        sqlx::query(
                            "INSERT INTO confirmation_mails (subscriber_id, email_key, nonce, status, created_ms, next_attempt_ms)
                             VALUES ($1, $2, $3, 'queued', $4, $4)",
                        )
                        .bind(id)
                        .bind(&key)
                        .bind(nonce)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Added::Created(id)
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// An operator removes an address: it becomes `unsubscribed` (and stays suppressed).
    /// Returns false when the address is unknown.
    pub async fn remove_subscriber(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        with_db!(self, |write, read, pg| {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM subscribers WHERE email_key = $1")
                    .bind(email.key())
                    .fetch_optional(read)
                    .await?;
            match id {
                Some(id) => {
                    self.unsubscribe(id, None, now).await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// Marks an address bounced (a 5.1.x answer): it is never mailed again.
    pub async fn mark_bounced(&self, id: i64, now: DateTime<Utc>) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            sqlx::query("UPDATE subscribers SET status = 'bounced', updated_ms = $2, pending_nonce = NULL WHERE id = $1")
                .bind(id)
                .bind(to_ms(now))
                .execute(write)
                .await?;
            Ok(())
        })
    }

    pub async fn list_subscribers(&self, f: &ListFilter) -> anyhow::Result<Vec<Subscriber>> {
        with_db!(self, |write, read, pg| {
            let sql = format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s
                 WHERE id > $1 AND ($2 IS NULL OR status = $2)
                   AND ($3 IS NULL OR EXISTS (SELECT 1 FROM subscriptions n WHERE n.subscriber_id = s.id AND n.newsletter_id = $3))
                 ORDER BY id LIMIT $4"
            );
            let rows = sqlx::query_as::<_, SubscriberRow>(sqlx::AssertSqlSafe(sql))
                .bind(f.after)
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.newsletter.as_deref())
                .bind(f.limit)
                .fetch_all(read)
                .await?;
            let mut out = rows
                .into_iter()
                .map(subscriber_from)
                .collect::<Result<Vec<_>, _>>()?;
            if let (Some(first), Some(last)) = (out.first(), out.last()) {
                let subs: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT subscriber_id, newsletter_id FROM subscriptions WHERE subscriber_id BETWEEN $1 AND $2
                     ORDER BY subscriber_id, newsletter_id",
                )
                .bind(first.id)
                .bind(last.id)
                .fetch_all(read)
                .await?;
                let mut by_id: BTreeMap<i64, Vec<String>> = BTreeMap::new();
                for (id, n) in subs {
                    by_id.entry(id).or_default().push(n);
                }
                for s in &mut out {
                    s.newsletters = by_id.remove(&s.id).unwrap_or_default();
                }
            }
            Ok(out)
        })
    }

    pub async fn subscriber_counts(&self) -> anyhow::Result<Counts> {
        with_db!(self, |write, read, pg| {
            let mut c = Counts::default();
            for s in Status::ALL {
                c.by_status.insert(s.as_str().to_string(), 0);
            }
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT status, COUNT(*) FROM subscribers GROUP BY status")
                    .fetch_all(read)
                    .await?;
            for (s, n) in rows {
                c.total += n;
                c.by_status.insert(s, n);
            }
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT n.newsletter_id, COUNT(*) FROM subscriptions n JOIN subscribers s ON s.id = n.subscriber_id
                 WHERE s.status = 'confirmed' GROUP BY n.newsletter_id",
            )
            .fetch_all(read)
            .await?;
            c.by_newsletter.extend(rows);
            Ok(c)
        })
    }

    /// Leases up to `n` due confirmation emails for `lease` (a crashed worker's lease runs
    /// out and the email is tried again).
    pub async fn lease_confirmations(
        &self,
        n: i64,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> anyhow::Result<Vec<ConfirmJob>> {
        with_db!(self, |write, read, pg| {
            let now_ms = to_ms(now);
            // PostgreSQL: rows another instance is leasing right now are skipped.
            let sql = format!(
                "UPDATE confirmation_mails SET status = 'sending', locked_until_ms = $2, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM confirmation_mails
                              WHERE (status = 'queued' AND next_attempt_ms <= $1)
                                 OR (status = 'sending' AND locked_until_ms < $1)
                              ORDER BY next_attempt_ms LIMIT $3{})
                 RETURNING id, subscriber_id, nonce, attempts, created_ms",
                if pg { " FOR UPDATE SKIP LOCKED" } else { "" }
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now_ms)
                .bind(now_ms + lease.as_millis() as i64)
                .bind(n)
                .fetch_all(write)
                .await?;
            let mut jobs = Vec::with_capacity(rows.len());
            for r in rows {
                let subscriber: i64 = r.try_get("subscriber_id")?;
                let nonce: String = r.try_get("nonce")?;
                let s = sqlx::query(
                    "SELECT email, status, pending_nonce, pending_newsletters FROM subscribers WHERE id = $1",
                )
                .bind(subscriber)
                .fetch_optional(write)
                .await?;
                let Some(s) = s else { continue };
                let pending: Option<String> = s.try_get("pending_nonce")?;
                jobs.push(ConfirmJob {
                    id: r.try_get("id")?,
                    subscriber,
                    current: pending.as_deref() == Some(nonce.as_str()),
                    nonce,
                    attempts: r.try_get("attempts")?,
                    created: from_ms(r.try_get("created_ms")?),
                    email: s.try_get("email")?,
                    status: s
                        .try_get::<String, _>("status")?
                        .parse()
                        .map_err(anyhow::Error::msg)?,
                    newsletters: split_ids(&s.try_get::<String, _>("pending_newsletters")?),
                });
            }
            Ok(jobs)
        })
    }

    pub async fn finish_confirmation(&self, id: i64, outcome: &JobOutcome) -> anyhow::Result<()> {
        with_db!(self, |write, read, pg| {
            let (status, next, error) = match outcome {
                JobOutcome::Sent => ("sent", None, None),
                JobOutcome::Skipped => ("skipped", None, None),
                JobOutcome::Retry { at, error } => {
                    ("queued", Some(to_ms(*at)), Some(error.as_str()))
                }
                JobOutcome::Failed { error } => ("failed", None, Some(error.as_str())),
            };
            sqlx::query(
                "UPDATE confirmation_mails SET status = $2, locked_until_ms = NULL,
                     next_attempt_ms = COALESCE($3, next_attempt_ms), last_error = $4
                 WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(next)
            .bind(error)
            .execute(write)
            .await?;
            Ok(())
        })
    }

    /// When the next queued confirmation email is due, if any.
    pub async fn next_confirmation_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        with_db!(self, |write, read, pg| {
            let ms: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(CASE WHEN status = 'sending' THEN locked_until_ms ELSE next_attempt_ms END)
                 FROM confirmation_mails WHERE status IN ('queued', 'sending')",
            )
            .fetch_one(read)
            .await?;
            Ok(ms.map(from_ms))
        })
    }
}

/// One row of an import, validated.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub email: Email,
    pub name: String,
    pub newsletters: Vec<String>,
    pub status: Status,
}

/// What the store holds for an address an import names.
#[derive(Debug, Clone)]
pub struct Existing {
    pub id: i64,
    pub status: Status,
    pub name: String,
    pub newsletters: Vec<String>,
}

impl Store {
    /// Applies one batch of an import in one transaction: reads what exists for the batch's
    /// addresses, asks `decide` per row, writes the decisions. Returns them, in row order.
    pub async fn import_batch<D>(
        &self,
        rows: &[ImportRow],
        source: &str,
        now: DateTime<Utc>,
        decide: impl Fn(Option<&Existing>, &ImportRow) -> D,
    ) -> anyhow::Result<Vec<D>>
    where
        D: AsImportDecision,
    {
        with_db!(self, |write, read, pg| {
            let now_ms = to_ms(now);
            let keys: Vec<String> = rows.iter().map(|r| r.email.key()).collect();
            let mut tx = begin_write!(write, pg)?;

            let sql = format!(
                "SELECT id, email_key, status, name FROM subscribers WHERE email_key IN ({})",
                placeholders(pg, 1, keys.len(), 1)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in &keys {
                q = q.bind(k);
            }
            let mut existing: BTreeMap<String, Existing> = BTreeMap::new();
            for r in q.fetch_all(&mut *tx).await? {
                let status: String = r.try_get("status")?;
                existing.insert(
                    r.try_get("email_key")?,
                    Existing {
                        id: r.try_get("id")?,
                        status: status.parse().map_err(anyhow::Error::msg)?,
                        name: r.try_get("name")?,
                        newsletters: Vec::new(),
                    },
                );
            }
            if !existing.is_empty() {
                let ids: Vec<i64> = existing.values().map(|e| e.id).collect();
                let sql = format!(
                    "SELECT subscriber_id, newsletter_id FROM subscriptions WHERE subscriber_id IN ({})",
                    placeholders(pg, 1, ids.len(), 1)
                );
                let mut q = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql));
                for id in &ids {
                    q = q.bind(id);
                }
                let by_id: BTreeMap<i64, &str> =
                    existing.iter().map(|(k, e)| (e.id, k.as_str())).collect();
                let subs = q.fetch_all(&mut *tx).await?;
                let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (id, n) in subs {
                    if let Some(k) = by_id.get(&id) {
                        lists.entry(k.to_string()).or_default().push(n);
                    }
                }
                for (k, list) in lists {
                    if let Some(e) = existing.get_mut(&k) {
                        e.newsletters = list;
                    }
                }
            }

            let decisions: Vec<D> = rows
                .iter()
                .zip(&keys)
                .map(|(r, k)| decide(existing.get(k), r))
                .collect();

            // New addresses: one multi-row INSERT.
            let inserts: Vec<&ImportRow> = rows
                .iter()
                .zip(&decisions)
                .filter(|(_, d)| d.is_insert())
                .map(|(r, _)| r)
                .collect();
            let mut new_ids: BTreeMap<String, i64> = BTreeMap::new();
            if !inserts.is_empty() {
                let sql = format!(
                    "INSERT INTO subscribers (email, email_key, name, status, created_ms, updated_ms, consent_ms, consent_source, confirmed_ms)
                     VALUES {} RETURNING id, email_key",
                    placeholders(pg, 1, inserts.len(), 9)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in &inserts {
                    q = q
                        .bind(r.email.as_str())
                        .bind(r.email.key())
                        .bind(&r.name)
                        .bind(r.status.as_str())
                        .bind(now_ms)
                        .bind(now_ms)
                        .bind(now_ms)
                        .bind(source)
                        .bind((r.status == Status::Confirmed).then_some(now_ms));
                }
                for row in q.fetch_all(&mut *tx).await? {
                    new_ids.insert(row.try_get("email_key")?, row.try_get("id")?);
                }
            }

            // Changed addresses, then every subscription to add, in one multi-row INSERT.
            let mut subscriptions: Vec<(i64, &str)> = Vec::new();
            for ((r, k), d) in rows.iter().zip(&keys).zip(&decisions) {
                if d.is_insert() {
                    if !r.status.is_suppressed() {
                        let id = new_ids[k];
                        subscriptions.extend(r.newsletters.iter().map(|n| (id, n.as_str())));
                    }
                    continue;
                }
                let Some((status, name, add)) = d.update() else {
                    continue;
                };
                let id = existing[k].id;
                if let Some(s) = status {
                    let (confirmed, unsubscribed) = match s {
                        Status::Confirmed => (Some(now_ms), None),
                        s if s.is_suppressed() => (None, Some(now_ms)),
                        _ => (None, None),
                    };
                    sqlx::query(
                        "UPDATE subscribers SET status = $2, updated_ms = $3,
                             confirmed_ms = COALESCE($4, confirmed_ms), unsubscribed_ms = COALESCE($5, unsubscribed_ms),
                             pending_nonce = CASE WHEN $2 = 'pending' THEN pending_nonce ELSE NULL END
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(s.as_str())
                    .bind(now_ms)
                    .bind(confirmed)
                    .bind(unsubscribed)
                    .execute(&mut *tx)
                    .await?;
                    if s.is_suppressed() {
                        sqlx::query("DELETE FROM subscriptions WHERE subscriber_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                if let Some(n) = name {
                    sqlx::query("UPDATE subscribers SET name = $2, updated_ms = $3 WHERE id = $1")
                        .bind(id)
                        .bind(n)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
                subscriptions.extend(add.iter().map(|n| (id, n.as_str())));
            }
            for chunk in subscriptions.chunks(3000) {
                let sql = format!(
                    "INSERT INTO subscriptions (subscriber_id, newsletter_id, created_ms) VALUES {}
                     ON CONFLICT (subscriber_id, newsletter_id) DO NOTHING",
                    placeholders(pg, 1, chunk.len(), 3)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, n) in chunk {
                    q = q.bind(id).bind(*n).bind(now_ms);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(decisions)
        })
    }

    /// Calls `f(email, name, newsletters, status)` for every subscriber in id order,
    /// streaming: memory stays flat whatever the list's size.
    pub async fn for_each_subscriber<E>(
        &self,
        mut f: impl FnMut(&str, &str, &[String], Status) -> Result<(), E>,
    ) -> anyhow::Result<()>
    where
        E: Into<anyhow::Error>,
    {
        with_db!(self, |write, read, pg| {
            use futures_util::TryStreamExt;
            let mut people = sqlx::query_as::<_, (i64, String, String, String)>(
                "SELECT id, email, name, status FROM subscribers ORDER BY id",
            )
            .fetch(read);
            let mut subs = sqlx::query_as::<_, (i64, String)>(
                "SELECT subscriber_id, newsletter_id FROM subscriptions ORDER BY subscriber_id, newsletter_id",
            )
            .fetch(read);
            let mut next_sub = subs.try_next().await?;
            let mut list = Vec::new();
            while let Some((id, email, name, status)) = people.try_next().await? {
                list.clear();
                while let Some((sid, n)) = &next_sub {
                    if *sid > id {
                        break;
                    }
                    if *sid == id {
                        list.push(n.clone());
                    }
                    next_sub = subs.try_next().await?;
                }
                let status: Status = status.parse().map_err(anyhow::Error::msg)?;
                f(&email, &name, &list, status).map_err(Into::into)?;
            }
            Ok(())
        })
    }
}

/// What [`Store::import_batch`] needs to know of a decision (implemented by
/// `subscribers::import::Decision`; the store does not decide, it applies).
pub trait AsImportDecision {
    fn is_insert(&self) -> bool;
    /// `(new status, new name, newsletters to add)` for an update; None otherwise.
    fn update(&self) -> Option<(Option<Status>, Option<&str>, &[String])>;
}
