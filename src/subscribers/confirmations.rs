//! The confirmation email of double opt-in: rendering it (a pure function of the queued job)
//! and the worker that sends queued ones, retrying temporary failures with backoff.
//!
//! Sign-ups only queue a row (`confirmation_mails`), so an HTTP answer never waits for, or
//! fails with, the relay. The row is leased before sending; a crash lets the lease lapse and
//! the email goes again, with the same Message-ID.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::tokens::{Claims, Keys, Purpose};
use crate::config::Site;
use crate::mail::message::{Composer, Confirmation};
use crate::mail::retry::RetryPolicy;
use crate::mail::{Outgoing, SendError, Sender, Transport};
use crate::store::Store;
use crate::store::subscribers::{ConfirmJob, JobOutcome};
use crate::templates::{Flavor, Templates};

const LEASE: Duration = Duration::from_secs(120);

/// Everything the worker needs.
#[derive(Clone)]
pub struct Confirmations {
    pub site: Arc<Site>,
    pub store: Store,
    pub keys: Keys,
    pub templates: Arc<Templates>,
    pub transport: Transport,
    /// The message builder digests use too (From, envelope sender, DKIM).
    pub composer: Arc<Composer>,
    /// Poked by the sign-up handler so emails leave at once.
    pub wake: Arc<Notify>,
}

impl Confirmations {
    /// Sends every due confirmation email once; returns how many were handled.
    pub async fn drain(&self, sender: &mut Sender, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut handled = 0;
        loop {
            let jobs = self.store.lease_confirmations(20, now, LEASE).await?;
            if jobs.is_empty() {
                return Ok(handled);
            }
            for job in jobs {
                let outcome = self.attempt(sender, &job, now).await;
                if let JobOutcome::Failed { error } = &outcome {
                    tracing::warn!(
                        "confirmation email to {} failed for good: {error}",
                        job.email
                    );
                }
                self.store.finish_confirmation(job.id, &outcome).await?;
                handled += 1;
            }
        }
    }

    async fn attempt(
        &self,
        sender: &mut Sender,
        job: &ConfirmJob,
        now: DateTime<Utc>,
    ) -> JobOutcome {
        // Confirmed meanwhile, link replaced, or unsubscribed: nothing worth sending.
        if !job.current {
            return JobOutcome::Skipped;
        }
        let eight_bit = match sender.eight_bit().await {
            Ok(e) => e,
            Err(e) => return self.after_failure(job, e, now).await,
        };
        let out = match render(
            &self.site,
            &self.templates,
            &self.keys,
            &self.composer,
            job,
            eight_bit,
        ) {
            Ok(o) => o,
            Err(e) => {
                return JobOutcome::Failed {
                    error: format!("rendering: {e}"),
                };
            }
        };
        match sender.send(&out).await {
            Ok(()) => JobOutcome::Sent,
            Err(e) => self.after_failure(job, e, now).await,
        }
    }

    async fn after_failure(
        &self,
        job: &ConfirmJob,
        e: SendError,
        now: DateTime<Utc>,
    ) -> JobOutcome {
        if e.is_permanent() {
            if e.is_bad_address() {
                let _ = self.store.mark_bounced(job.subscriber, now).await;
            }
            return JobOutcome::Failed {
                error: e.to_string(),
            };
        }
        // The digests' policy, but never past the confirm link's own expiry.
        let policy = RetryPolicy::from_config(&self.site.config.mail)
            .at_most(self.site.config.subscribe.confirm_expiry.0);
        let Some(at) = policy.next_attempt(job.created, job.attempts, now, rand::random()) else {
            return JobOutcome::Failed {
                error: format!(
                    "still failing after {}: {e}",
                    crate::config::HumanDuration(policy.max_age)
                ),
            };
        };
        tracing::info!(
            "confirmation email to {} deferred ({e}); next try at {at}",
            job.email
        );
        JobOutcome::Retry {
            at,
            error: e.to_string(),
        }
    }

    /// Sends as emails are queued and as retries fall due, until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        let timeout = self.site.config.mail.timeout.0;
        let mut sender = Sender::new(self.transport.clone(), timeout);
        loop {
            if let Err(e) = self.drain(&mut sender, Utc::now()).await {
                tracing::error!("confirmation emails: {e:#}");
            }
            let next = self.store.next_confirmation_due().await.ok().flatten();
            let wait = next
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(60))
                .clamp(Duration::from_millis(50), Duration::from_secs(60));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {
                    // Idle for a while: do not keep the relay's connection open.
                    if next.is_none() { sender.close().await; }
                }
            }
        }
        sender.close().await;
    }
}

/// The confirm link's URL for a queued job.
pub fn confirm_url(site: &Site, keys: &Keys, job: &ConfirmJob) -> String {
    let lifetime = site.config.subscribe.confirm_expiry.0;
    let token = keys.sign(&Claims {
        purpose: Purpose::Confirm,
        subscriber: job.subscriber,
        newsletter: None,
        nonce: Some(job.nonce.clone()),
        expires: Some(job.created.timestamp() + lifetime.as_secs() as i64),
    });
    site.config.site.url(&format!("confirm/{token}"))
}

/// The confirmation email: text and HTML from the templates, confirmation only. It carries
/// no text chosen by whoever filled in the form — not the name they typed (`subscriber.name`
/// is always empty here, and `To` has no display name) — so the form cannot be used to
/// send a message of someone's choosing to any address. The name is used once the person
/// confirms.
pub fn render(
    site: &Site,
    templates: &Templates,
    keys: &Keys,
    composer: &Composer,
    job: &ConfirmJob,
    eight_bit: bool,
) -> anyhow::Result<Outgoing> {
    let cfg = &site.config;
    let lifetime = cfg.subscribe.confirm_expiry.0;
    let newsletters: Vec<_> = job
        .newsletters
        .iter()
        .filter_map(|id| cfg.newsletters.iter().find(|n| n.id.0 == *id))
        .map(|n| json!({"id": n.id.0, "title": n.title.0}))
        .collect();
    let ctx = json!({
        "site": {
            "title": cfg.site.title.0,
            "description": cfg.site.description(),
            "base_url": cfg.site.base_url.0.as_str(),
            "language": cfg.site.language,
        },
        "subscriber": {"email": job.email, "name": ""},
        "newsletters": newsletters,
        "confirm_url": confirm_url(site, keys, job),
        "expires_at": crate::time::rfc3339(job.created + chrono::Duration::from_std(lifetime).unwrap_or_default()),
    });
    let err = |e: String| anyhow::anyhow!(e);
    let subject = templates
        .render(Flavor::Text, "confirm_email_subject", &ctx)
        .map_err(err)?;
    let text = templates
        .render(Flavor::Text, "confirm_email", &ctx)
        .map_err(err)?;
    let html = templates
        .render(Flavor::Html, "confirm_email", &ctx)
        .map_err(err)?;

    composer.compose_confirmation(
        &Confirmation {
            job: job.id,
            nonce: &job.nonce,
            to_email: &job.email,
            subject: &subject,
            text: &text,
            html: &html,
        },
        eight_bit,
    )
}

/// Gives the keys for signing links: `HERALD_SECRET` (in `secret`), or a secret generated
/// once and kept in the store (with a warning: set HERALD_SECRET so links survive a lost
/// database).
pub async fn load_keys(store: &Store, secret: Option<&str>) -> anyhow::Result<Keys> {
    if let Some(secret) = secret {
        return Keys::from_secrets(secret)
            .map_err(|e| anyhow::Error::new(crate::error::BadInput(e)));
    }
    let secret = store
        .setting_or_insert("token_secret", &super::tokens::generate_secret())
        .await?;
    tracing::warn!(
        "HERALD_SECRET is not set: signing links with a secret generated once and kept in the store; set HERALD_SECRET to keep links valid if the database is lost"
    );
    Keys::from_secrets(&secret).map_err(anyhow::Error::msg)
}
