//! Firing schedules: at each newsletter's fire time, make its issue (idempotent per
//! newsletter and fire time) and wake the delivery workers.
//!
//! The loop sleeps at most a minute at a time and recomputes against the clock, so suspend
//! and clock steps do no harm. On start it catches up: the latest fire time missed while
//! herald was down is sent once if it is less than `max_lateness` late, otherwise skipped
//! with a log line — never more than one catch-up per newsletter. A fresh store starts from
//! now: there is nothing to catch up on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::{IssueFacts, Newsletter, render};
use crate::articles::{Article, Renderer};
use crate::config::Site;
use crate::publish::Build;
use crate::store::Store;
use crate::store::ledger::{Created, NewIssue};
use crate::templates::Templates;

/// The longest sleep between looks at the clock.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How far back the first issue of a newsletter looks when its schedule gives no earlier
/// fire time (a yearly schedule, say).
const FIRST_ISSUE_HORIZON: Duration = Duration::from_secs(400 * 86400);
/// A newsletter's first issue with nothing new carries this many of the newest articles
/// (or its `max_articles`, when fewer).
const FIRST_ISSUE_FALLBACK: usize = 10;

/// What making an issue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    New {
        id: i64,
        recipients: i64,
        articles: usize,
    },
    Existing {
        id: i64,
    },
    /// No new articles and `skip_empty`: no issue.
    Empty,
}

/// Everything needed to make issues.
#[derive(Clone)]
pub struct Issuer {
    pub site: Arc<Site>,
    pub store: Store,
    pub templates: Arc<Templates>,
    pub renderer: Arc<Renderer>,
}

impl Issuer {
    pub fn new(site: Arc<Site>, store: Store, templates: Arc<Templates>) -> Issuer {
        let renderer = Arc::new(Renderer::new(&site.config.site.base_url.0));
        Issuer {
            site,
            store,
            templates,
            renderer,
        }
    }

    /// The articles an issue of `n` at `at` would carry: published since the previous issue
    /// (or, for the first, since the schedule's previous fire time).
    pub async fn articles_for<'a>(
        &self,
        n: &Newsletter,
        at: DateTime<Utc>,
        all: &'a [Article],
    ) -> anyhow::Result<Vec<&'a Article>> {
        if let Some(prev) = self.store.previous_issue(n.id(), at).await? {
            return Ok(n.select(all, prev.scheduled, at));
        }
        // The first issue covers the time since the scheduler started looking after this
        // newsletter, or (a first `herald send`) since the schedule's previous fire time;
        // when that holds nothing, it carries the newest articles: a new newsletter's first
        // issue is never empty while there is something to read.
        let since = match self.store.last_fire(n.id()).await?.filter(|l| *l < at) {
            Some(started) => started,
            None => n
                .schedule
                .latest_at_or_before(at - chrono::Duration::seconds(1), FIRST_ISSUE_HORIZON)
                .unwrap_or(at - chrono::Duration::days(7)),
        };
        let chosen = n.select(all, since, at);
        if !chosen.is_empty() {
            return Ok(chosen);
        }
        let mut newest = n.select(all, DateTime::<Utc>::MIN_UTC, at);
        newest.truncate(FIRST_ISSUE_FALLBACK.min(n.config.max_articles.0));
        Ok(newest)
    }

    /// Makes the issue of `n` for `at` from `articles` (all of them; the newsletter picks).
    pub async fn make(
        &self,
        n: &Newsletter,
        at: DateTime<Utc>,
        articles: &[Article],
        manual: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Made> {
        let chosen = self.articles_for(n, at, articles).await?;
        if chosen.is_empty() && n.config.skip_empty {
            return Ok(Made::Empty);
        }
        let facts = IssueFacts {
            newsletter: n,
            scheduled: at,
            articles: &chosen,
            archived: true,
        };
        let content = render(&self.site, &self.templates, &self.renderer, &facts)
            .map_err(anyhow::Error::msg)?;
        let ids: Vec<String> = chosen.iter().map(|a| a.id.clone()).collect();
        let content = serde_json::to_string(&content)?;
        let created = self
            .store
            .create_issue(
                &NewIssue {
                    newsletter: n.id(),
                    scheduled: at,
                    title: &facts.title(),
                    articles: &ids,
                    content: &content,
                    manual,
                },
                now,
            )
            .await?;
        Ok(match created {
            Created::New { id, recipients } => Made::New {
                id,
                recipients,
                articles: chosen.len(),
            },
            Created::Existing { id } => Made::Existing { id },
        })
    }
}

/// Fires the schedules of every newsletter until shutdown.
pub struct Scheduler {
    pub issuer: Issuer,
    pub newsletters: Vec<Newsletter>,
    pub build: watch::Receiver<Arc<Build>>,
    pub wake_delivery: Arc<Notify>,
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let now = Utc::now();
            let mut next: Option<DateTime<Utc>> = None;
            let soonest = |next: Option<DateTime<Utc>>, at: DateTime<Utc>| {
                Some(next.map_or(at, |x| x.min(at)))
            };
            for n in &self.newsletters {
                match self.step(n, now).await {
                    Ok(Some(at)) => next = soonest(next, at),
                    Ok(None) => {}
                    Err(e) => {
                        // Logged; try again in a minute rather than in a tight loop.
                        tracing::error!("scheduler: newsletter {}: {e:#}", n.id());
                        next = soonest(next, now + chrono::Duration::seconds(60));
                    }
                }
            }
            let wait = next
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Deals with one newsletter at `now`: fires (or skips) what is due, returns when it is
    /// next due.
    pub async fn step(
        &self,
        n: &Newsletter,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let store = &self.issuer.store;
        let last = match store.last_fire(n.id()).await? {
            Some(l) => l,
            None => {
                // A fresh store: nothing was missed.
                store.set_last_fire(n.id(), now).await?;
                now
            }
        };
        let Some(first_missed) = n.schedule.next_after(last) else {
            return Ok(None);
        };
        if first_missed > now {
            return Ok(Some(first_missed));
        }
        // One or more fire times have passed (herald was down, or the machine slept): only
        // the latest may be sent, once, and only if it is not too late.
        let horizon = (now - last).to_std().unwrap_or_default();
        let latest = n
            .schedule
            .latest_at_or_before(now, horizon)
            .unwrap_or(first_missed)
            .max(first_missed);
        let late = (now - latest).to_std().unwrap_or_default();
        if late >= n.config.max_lateness.0 {
            tracing::warn!(
                "newsletter {}: skipping the issue due {}: {} h late, more than max_lateness ({})",
                n.id(),
                crate::time::rfc3339(latest),
                late.as_secs() / 3600,
                n.config.max_lateness
            );
            store.set_last_fire(n.id(), latest).await?;
        } else {
            if late > Duration::from_secs(60) {
                tracing::info!(
                    "newsletter {}: the issue due {} was missed; sending it now ({} min late)",
                    n.id(),
                    crate::time::rfc3339(latest),
                    late.as_secs() / 60
                );
            }
            self.fire(n, latest).await?;
        }
        Ok(n.schedule.next_after(latest))
    }

    /// Makes the issue for `at` and records the fire time as dealt with.
    async fn fire(&self, n: &Newsletter, at: DateTime<Utc>) -> anyhow::Result<()> {
        let build = self.build.borrow().clone();
        match self
            .issuer
            .make(n, at, &build.articles, false, Utc::now())
            .await?
        {
            Made::New {
                id,
                recipients,
                articles,
            } => {
                tracing::info!(
                    "newsletter {}: issue {id} for {}: {articles} articles to {recipients} subscribers",
                    n.id(),
                    crate::time::rfc3339(at)
                );
                self.wake_delivery.notify_one();
            }
            Made::Existing { id } => tracing::info!(
                "newsletter {}: issue {id} for {} exists already",
                n.id(),
                crate::time::rfc3339(at)
            ),
            Made::Empty => tracing::info!(
                "newsletter {}: nothing new for {}; no issue",
                n.id(),
                crate::time::rfc3339(at)
            ),
        }
        // Recorded only once the issue exists: a failure above is tried again.
        self.issuer.store.set_last_fire(n.id(), at).await
    }
}
