//! Delivery: working the ledger until every row is sent, failed for good, or skipped.
//!
//! One leaser leases due rows (a crash lets the lease lapse, or a restart takes back the
//! leases of a dead process at once), `mail.connections` sender tasks each hold their own
//! SMTP connection and send one message per recipient under a timeout, and one finisher
//! records outcomes in batches right after the relay's answer. Outcomes (README,
//! "Delivery"): 250 → sent; 4xx, timeout, lost connection → deferred with backoff and
//! jitter, failed once older than `mail.max_age`; 5xx → failed, never retried, 5.1.x also
//! marks the address bounced, 5.7.x is reported to the operator and punishes nobody.
//! Throttling replies halve the sending rate, which then recovers slowly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::Instant as Clock;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Site;
use crate::mail::message::{Composer, Digest};
use crate::mail::retry::RetryPolicy;
use crate::mail::{SendError, Sender, Transport};
use crate::newsletters::IssueContent;
use crate::store::Store;
use crate::store::ledger::{Leased, Outcome};
use crate::subscribers::tokens::{Claims, Keys, Purpose};

/// How long a leased row stays ours; rows are sent within seconds of being leased.
const LEASE: Duration = Duration::from_secs(600);
/// Rows handed to the senders ahead of time, per connection.
const AHEAD_PER_CONNECTION: usize = 128;
/// Outcomes are written at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// In-flight sends get this long to finish after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// `run(until_done)` waits for deferred rows due within this many seconds.
const WAIT_FOR_RETRIES_SECS: i64 = 120;

/// Counts since this process started sending, for progress bars and `/metrics`.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub deferred: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
}

/// An issue's rendered content, loaded once per process.
struct CachedIssue {
    newsletter_id: String,
    newsletter_title: String,
    created: DateTime<Utc>,
    content: IssueContent,
}

/// Sends what the ledger says is due.
pub struct Delivery {
    site: Arc<Site>,
    store: Store,
    keys: Keys,
    composer: Arc<Composer>,
    transport: Transport,
    worker: String,
    pacer: Arc<Pacer>,
    issues: Mutex<HashMap<i64, Arc<CachedIssue>>>,
    pub progress: Arc<Progress>,
    /// Poked when new rows are queued (a new issue).
    pub wake: Arc<Notify>,
}

impl Delivery {
    /// Registers this process as a worker and takes back the leases of dead ones.
    pub async fn start(
        site: Arc<Site>,
        store: Store,
        keys: Keys,
        transport: Transport,
    ) -> anyhow::Result<Arc<Delivery>> {
        let composer = Composer::new(&site).map_err(crate::error::BadInput)?;
        let host = hostname();
        let pid = std::process::id();
        let worker = format!("{host}:{pid}:{}", Utc::now().timestamp_millis());
        store
            .register_worker(&worker, &host, pid, Utc::now())
            .await?;
        let dead: Vec<String> = store
            .workers()
            .await?
            .into_iter()
            .filter(|(id, h, p, beat)| {
                let gone_here = *h == host && !process_alive(*p);
                let silent = Utc::now() - *beat > chrono::Duration::minutes(2);
                id != &worker && (gone_here || silent)
            })
            .map(|(id, ..)| id)
            .collect();
        let reclaimed = store.reclaim_leases(&dead, Utc::now()).await?;
        if reclaimed > 0 {
            tracing::info!("took back {reclaimed} deliveries left in flight by a stopped process");
        }
        let rate = site.config.mail.rate_per_second.0;
        Ok(Arc::new(Delivery {
            pacer: Arc::new(Pacer::new(rate)),
            composer: Arc::new(composer),
            site,
            store,
            keys,
            transport,
            worker,
            issues: Mutex::new(HashMap::new()),
            progress: Arc::new(Progress::default()),
            wake: Arc::new(Notify::new()),
        }))
    }

    /// The message builder, shared with the confirmation email worker.
    pub fn composer(&self) -> Arc<Composer> {
        self.composer.clone()
    }

    /// Works the ledger until `shutdown`, or — with `until_done` — until no row of `issue`
    /// (or of any issue) is left to send now. Returns when the senders have finished.
    pub async fn run(
        self: &Arc<Self>,
        issue: Option<i64>,
        until_done: bool,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let connections = self.site.config.mail.connections;
        let capacity = connections * AHEAD_PER_CONNECTION;
        let (rows_tx, rows_rx) = mpsc::channel::<Leased>(capacity);
        let rows_rx = Arc::new(tokio::sync::Mutex::new(rows_rx));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<(i64, Outcome)>();
        // Cancelled a grace period after shutdown: in-flight sends are cut off then.
        let hard_stop = CancellationToken::new();

        let finisher = tokio::spawn(self.clone().finisher(done_rx));
        let mut senders = Vec::new();
        for _ in 0..connections {
            senders.push(tokio::spawn(self.clone().sender(
                rows_rx.clone(),
                done_tx.clone(),
                shutdown.clone(),
                hard_stop.clone(),
            )));
        }
        drop(done_tx);

        let result = self
            .lease_loop(issue, until_done, &rows_tx, capacity, &shutdown)
            .await;
        drop(rows_tx);
        let stopper = {
            let hard_stop = hard_stop.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                hard_stop.cancel();
            })
        };
        for s in senders {
            let _ = s.await;
        }
        stopper.abort();
        finisher.await.context("the outcome writer stopped")??;
        self.store.heartbeat(&self.worker, Utc::now()).await?;
        result
    }

    /// Leases due rows into the senders' queue while there is room.
    async fn lease_loop(
        &self,
        issue: Option<i64>,
        until_done: bool,
        rows: &mpsc::Sender<Leased>,
        capacity: usize,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut last_beat = Instant::now();
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if last_beat.elapsed() > Duration::from_secs(10) {
                self.store.heartbeat(&self.worker, Utc::now()).await?;
                self.store.reclaim_leases(&[], Utc::now()).await?;
                last_beat = Instant::now();
            }
            let room = rows.capacity().min(capacity);
            if room >= capacity / 4 || room == capacity {
                let leased = self
                    .store
                    .lease_deliveries(&self.worker, room as i64, Utc::now(), LEASE, issue)
                    .await?;
                if !leased.is_empty() {
                    for row in leased {
                        if rows.send(row).await.is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
                if until_done && rows.capacity() == capacity {
                    // Nothing due now and nothing queued for the senders: done once nothing is
                    // in flight and no retry falls due soon (later ones are `herald run`'s).
                    let soon = Utc::now() + chrono::Duration::seconds(WAIT_FOR_RETRIES_SECS);
                    if self.store.pending_before(issue, soon).await? == 0 {
                        return Ok(());
                    }
                }
            }
            let next = self.store.next_delivery_due().await?;
            // Nothing queued: sleep until woken, or look again soon when waiting for the last
            // in-flight rows to finish a `herald send`.
            let idle = if until_done {
                Duration::from_millis(20)
            } else {
                Duration::from_secs(5)
            };
            let wait = next
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(idle)
                .clamp(Duration::from_millis(2), Duration::from_secs(5));
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn sender(
        self: Arc<Self>,
        rows: Arc<tokio::sync::Mutex<mpsc::Receiver<Leased>>>,
        done: mpsc::UnboundedSender<(i64, Outcome)>,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
    ) {
        let mut sender = Sender::new(self.transport.clone(), self.site.config.mail.timeout.0);
        loop {
            let row = {
                let mut rx = rows.lock().await;
                match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                    Ok(row) => row,
                    Err(_) => {
                        drop(rx);
                        sender.close().await; // idle: do not hold the relay's connection
                        continue;
                    }
                }
            };
            let Some(row) = row else { break };
            let mut cut_off = false;
            let outcome = if shutdown.is_cancelled() {
                Outcome::Released
            } else {
                tokio::select! {
                    o = self.deliver(&mut sender, &row, &shutdown, Utc::now()) => o,
                    _ = hard_stop.cancelled() => {
                        cut_off = true;
                        Outcome::Deferred {
                            until: Utc::now(),
                            code: None,
                            error: "cut off by shutdown".into(),
                        }
                    }
                }
            };
            if cut_off {
                // Mid-transaction: a QUIT would wait for a relay that is not answering.
                sender.abandon();
            }
            self.count(&outcome);
            if done.send((row.id, outcome)).is_err() {
                break;
            }
        }
        sender.close().await;
    }

    fn count(&self, o: &Outcome) {
        let (counter, result) = match o {
            Outcome::Sent => (&self.progress.sent, "sent"),
            Outcome::Deferred { .. } => (&self.progress.deferred, "deferred"),
            Outcome::Failed { .. } => (&self.progress.failed, "failed"),
            Outcome::Skipped => (&self.progress.skipped, "skipped"),
            Outcome::Released => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("herald_deliveries_total", "result" => result).increment(1);
    }

    /// One pass over the ledger as of `now`, on one connection of its own: leases every row
    /// due at `now` (of `issue`, or of every issue), makes one attempt at each, and records
    /// the outcomes as of `now` before returning them. The pacer still paces (in real time);
    /// the retry schedule and `mail.max_age` are judged against `now`, so a caller can step
    /// through days of retries without waiting for them.
    pub async fn drain_once(
        &self,
        issue: Option<i64>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(i64, Outcome)>> {
        let rows = self
            .store
            .lease_deliveries(&self.worker, i64::MAX, now, LEASE, issue)
            .await?;
        let mut sender = Sender::new(self.transport.clone(), self.site.config.mail.timeout.0);
        let never = CancellationToken::new();
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in &rows {
            let outcome = self.deliver(&mut sender, row, &never, now).await;
            self.count(&outcome);
            outcomes.push((row.id, outcome));
        }
        sender.close().await;
        self.store
            .finish_deliveries(&self.worker, &outcomes, now)
            .await?;
        Ok(outcomes)
    }

    /// One attempt at one row, at `now`.
    async fn deliver(
        &self,
        sender: &mut Sender,
        row: &Leased,
        shutdown: &CancellationToken,
        now: DateTime<Utc>,
    ) -> Outcome {
        if !row.deliverable {
            return Outcome::Skipped;
        }
        let issue = match self.issue(row.issue).await {
            Ok(i) => i,
            Err(e) => {
                return Outcome::Deferred {
                    until: now + chrono::Duration::seconds(30),
                    code: None,
                    error: format!("loading issue {}: {e:#}", row.issue),
                };
            }
        };
        // The relay said slow down, or is unreachable: wait here, not in a retry storm.
        tokio::select! {
            _ = self.pacer.wait() => {}
            _ = shutdown.cancelled() => return Outcome::Released,
        }
        let eight_bit = match sender.eight_bit().await {
            Ok(b) => b,
            Err(e) => return self.relay_unreachable(row, &issue, e, now),
        };
        let token = self.keys.sign(&Claims {
            purpose: Purpose::Unsubscribe,
            subscriber: row.subscriber,
            newsletter: Some(issue.newsletter_id.clone()),
            nonce: None,
            expires: None,
        });
        let unsubscribe_url = self.site.config.site.url(&format!("unsubscribe/{token}"));
        let digest = Digest {
            newsletter_id: &issue.newsletter_id,
            newsletter_title: &issue.newsletter_title,
            issue: row.issue,
            row: row.id,
            content: &issue.content,
            to_email: &row.email,
            to_name: &row.name,
            unsubscribe_url: &unsubscribe_url,
            unsubscribe_token: &token,
        };
        let composer = self.composer.clone();
        // DKIM signing is CPU work: keep it off the async workers when it is on.
        let built = if composer.signs() {
            tokio::task::block_in_place(|| composer.compose(&digest, eight_bit))
        } else {
            composer.compose(&digest, eight_bit)
        };
        let out = match built {
            Ok(o) => o,
            Err(e) => {
                return Outcome::Failed {
                    code: None,
                    error: format!("building the message: {e:#}"),
                };
            }
        };
        match sender.send(&out).await {
            Ok(()) => {
                self.pacer.succeeded();
                Outcome::Sent
            }
            Err(e) => self.after_failure(row, &issue, e, now).await,
        }
    }

    fn relay_unreachable(
        &self,
        row: &Leased,
        issue: &CachedIssue,
        e: SendError,
        now: DateTime<Utc>,
    ) -> Outcome {
        let delay = self.pacer.unreachable();
        tracing::warn!("relay unreachable ({e}); retrying in {} s", delay.as_secs());
        metrics::counter!("herald_smtp_replies_total", "class" => "network").increment(1);
        self.defer_or_fail(row, issue, e, delay, now)
    }

    async fn after_failure(
        &self,
        row: &Leased,
        issue: &CachedIssue,
        e: SendError,
        now: DateTime<Utc>,
    ) -> Outcome {
        metrics::counter!("herald_smtp_replies_total", "class" => e.class()).increment(1);
        if e.is_permanent() {
            if e.is_bad_address() {
                tracing::info!(
                    "{} bounced ({e}); the address will not be mailed again",
                    row.email
                );
                if let Err(err) = self.store.mark_bounced(row.subscriber, now).await {
                    tracing::error!("marking {} bounced: {err:#}", row.email);
                }
            } else if e.is_policy() {
                tracing::warn!(
                    "the relay refused a message to {} on policy grounds ({e}): check the sending domain's SPF, DKIM and DMARC; the subscriber is left alone",
                    row.email
                );
                metrics::counter!("herald_policy_rejections_total", "code" => e.enhanced.clone().unwrap_or_default()).increment(1);
            }
            return Outcome::Failed {
                code: e.code,
                error: e.message,
            };
        }
        if e.is_throttle() {
            self.pacer.throttled();
        }
        let policy = RetryPolicy::from_config(&self.site.config.mail);
        let Some(until) =
            policy.next_attempt(issue.created, row.attempts, now, rand::random::<f64>())
        else {
            return give_up(row, e);
        };
        Outcome::Deferred {
            until,
            code: e.code,
            error: e.to_string(),
        }
    }

    /// Defers a row by `delay` — but never past the issue's `mail.max_age`, so the last
    /// attempt falls at that age — or fails it once it is that old.
    fn defer_or_fail(
        &self,
        row: &Leased,
        issue: &CachedIssue,
        e: SendError,
        delay: Duration,
        now: DateTime<Utc>,
    ) -> Outcome {
        let max_age =
            chrono::Duration::from_std(RetryPolicy::from_config(&self.site.config.mail).max_age)
                .unwrap_or_default();
        let deadline = issue.created + max_age;
        let until = (now + chrono::Duration::from_std(delay).unwrap_or_default()).min(deadline);
        if now >= deadline {
            return give_up(row, e);
        }
        Outcome::Deferred {
            until,
            code: e.code,
            error: e.to_string(),
        }
    }

    async fn issue(&self, id: i64) -> anyhow::Result<Arc<CachedIssue>> {
        if let Some(i) = self.issues.lock().expect("no panics while locked").get(&id) {
            return Ok(i.clone());
        }
        let issue = self
            .store
            .issue(id)
            .await?
            .with_context(|| format!("issue {id} is missing"))?;
        let content: IssueContent =
            serde_json::from_str(&issue.content).context("reading the stored issue")?;
        let title = self
            .site
            .config
            .newsletters
            .iter()
            .find(|n| n.id.0 == issue.newsletter)
            .map(|n| n.title.0.clone())
            .unwrap_or_else(|| issue.newsletter.clone());
        let cached = Arc::new(CachedIssue {
            newsletter_id: issue.newsletter,
            newsletter_title: title,
            created: issue.created,
            content,
        });
        self.issues
            .lock()
            .expect("no panics while locked")
            .insert(id, cached.clone());
        Ok(cached)
    }

    /// Writes outcomes in batches until every sender is done. An outcome waits at most
    /// [`FLUSH_EVERY`]: a 250 not yet recorded is what a crash turns into a duplicate.
    async fn finisher(
        self: Arc<Self>,
        mut done: mpsc::UnboundedReceiver<(i64, Outcome)>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        loop {
            let Some(first) = done.recv().await else {
                return self.flush(&mut batch).await;
            };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
            let mut closed = false;
            while batch.len() < 500 {
                match tokio::time::timeout_at(deadline, done.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.flush(&mut batch).await?;
            if closed {
                return Ok(());
            }
        }
    }

    async fn flush(&self, batch: &mut Vec<(i64, Outcome)>) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Retry a failed write: these rows were sent; losing the record means a resend.
        let mut delay = Duration::from_millis(100);
        loop {
            match self
                .store
                .finish_deliveries(&self.worker, batch, Utc::now())
                .await
            {
                Ok(()) => break,
                Err(e) if delay < Duration::from_secs(10) => {
                    tracing::warn!("recording outcomes: {e:#}; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        batch.clear();
        Ok(())
    }

    /// Leaves the workers table (a clean exit).
    pub async fn stop(&self) {
        let _ = self.store.unregister_worker(&self.worker).await;
    }

    /// The current sending rate limit, in messages per second.
    pub fn rate(&self) -> f64 {
        self.pacer.rate()
    }
}

/// The wait before the next attempt after the `attempts`-th failed temporarily: 1, 5, 30,
/// 120, then 360 × `base` for every later one, spread by ±20% (`roll`, uniform in [0, 1),
/// picks where) so deferred rows do not return in one wave.
pub fn retry_delay(attempts: i64, base: Duration, roll: f64) -> Duration {
    RetryPolicy {
        base,
        max_age: Duration::MAX,
    }
    .delay(attempts, roll)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process with this id runs on this host (Linux: `/proc/<pid>`).
fn process_alive(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true; // cannot tell: rely on heartbeats
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Paces sends to `mail.rate_per_second`, halves the rate on throttling replies (at most
/// once a second), lets it recover by a tenth for each calm second (one without a throttling
/// reply) up to the configured rate, and holds every sender back while the relay is
/// unreachable: 1 s, then 2, 4, … up to 30 s between tries. Time is tokio's clock, so tests
/// can pause and advance it.
pub struct Pacer {
    state: Mutex<PacerState>,
}

struct PacerState {
    max_rate: f64,
    rate: f64,
    /// The next free turn.
    next: Clock,
    /// When the rate was last halved.
    last_halving: Option<Clock>,
    /// Since when no throttling reply came (whole calm seconds after it raise the rate).
    calm_since: Clock,
    /// While the relay is unreachable: when to try again, and the current delay.
    down_until: Option<Clock>,
    down_delay: Duration,
}

/// The rate never drops below this fraction of the configured one.
const RATE_FLOOR: f64 = 1.0 / 16.0;
/// The longest hold-back while the relay is unreachable.
const MAX_HOLD_BACK: Duration = Duration::from_secs(30);

impl PacerState {
    /// A tenth more for every whole calm second, up to the configured rate.
    fn recover(&mut self, now: Clock) {
        if self.rate >= self.max_rate {
            self.calm_since = now;
            return;
        }
        let calm = now.saturating_duration_since(self.calm_since).as_secs();
        if calm == 0 {
            return;
        }
        self.rate = (self.rate * 1.1f64.powi(calm.min(1000) as i32)).min(self.max_rate);
        self.calm_since += Duration::from_secs(calm);
        metrics::gauge!("herald_send_rate_limit").set(self.rate);
    }
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        let now = Clock::now();
        Pacer {
            state: Mutex::new(PacerState {
                max_rate: rate,
                rate,
                next: now,
                last_halving: None,
                calm_since: now,
                down_until: None,
                down_delay: Duration::ZERO,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().expect("no panics while locked")
    }

    /// The current limit, in messages per second.
    pub fn rate(&self) -> f64 {
        let mut s = self.state();
        s.recover(Clock::now());
        s.rate
    }

    /// Waits for this sender's turn.
    pub async fn wait(&self) {
        let at = {
            let mut s = self.state();
            let now = Clock::now();
            s.recover(now);
            let interval = Duration::from_secs_f64(1.0 / s.rate);
            let mut at = s.next.max(now);
            if let Some(up) = s.down_until {
                at = at.max(up);
            }
            s.next = at + interval;
            at
        };
        // Timers have millisecond granularity: a turn less than a millisecond away is taken
        // now (a burst of at most a millisecond's worth), or fast rates would crawl.
        if at > Clock::now() + Duration::from_millis(1) {
            tokio::time::sleep_until(at).await;
        }
    }

    /// A throttling reply: halve the rate unless it was halved less than a second ago
    /// (floor: a sixteenth of the configured rate). Either way this second is not calm.
    pub fn throttled(&self) {
        let mut s = self.state();
        let now = Clock::now();
        s.recover(now);
        s.calm_since = now;
        if s.last_halving
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            s.rate = (s.rate / 2.0).max(s.max_rate * RATE_FLOOR);
            s.last_halving = Some(now);
            tracing::info!(
                "the relay asks to slow down: sending at {:.1} messages/s",
                s.rate
            );
            metrics::gauge!("herald_send_rate_limit").set(s.rate);
        }
    }

    /// The relay took a message: it is reachable again.
    pub fn succeeded(&self) {
        let mut s = self.state();
        if s.down_until.is_some() {
            s.down_until = None;
            s.down_delay = Duration::ZERO;
        }
    }

    /// The relay cannot be reached: everyone waits 1 s, then 2, 4… up to 30 s. Failures while
    /// a hold-back is still running do not lengthen it. Returns the current hold-back.
    pub fn unreachable(&self) -> Duration {
        let mut s = self.state();
        let now = Clock::now();
        if s.down_until.is_none_or(|u| u <= now) {
            s.down_delay = (s.down_delay * 2).clamp(Duration::from_secs(1), MAX_HOLD_BACK);
            s.down_until = Some(now + s.down_delay);
        }
        s.down_delay
    }
}

/// The outcome of a row that reached `mail.max_age` still failing.
fn give_up(row: &Leased, e: SendError) -> Outcome {
    tracing::warn!(
        "giving up on {} after {} attempts: {e}",
        row.email,
        row.attempts
    );
    Outcome::Failed {
        code: e.code,
        error: format!("gave up at the maximum age: {}", e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const MS: Duration = Duration::from_millis(1);

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_turns_by_the_configured_rate() {
        let p = Pacer::new(10.0);
        let start = Clock::now();
        let mut turns = Vec::new();
        for _ in 0..21 {
            p.wait().await;
            turns.push(Clock::now() - start);
        }
        for (k, t) in turns.iter().enumerate() {
            assert_eq!(*t, 100 * MS * k as u32, "turn {k}");
        }
        // Idle time is not saved up for a burst.
        advance(Duration::from_secs(5)).await;
        let idle_end = Clock::now();
        p.wait().await;
        p.wait().await;
        assert_eq!(Clock::now() - idle_end, 100 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_at_most_once_a_second_down_to_a_floor() {
        let p = Pacer::new(160.0);
        p.throttled();
        assert!(close(p.rate(), 80.0), "{}", p.rate());
        p.throttled();
        advance(999 * MS).await;
        p.throttled();
        assert!(close(p.rate(), 80.0), "once a second at most: {}", p.rate());
        advance(MS).await;
        p.throttled();
        assert!(close(p.rate(), 40.0), "{}", p.rate());
        for _ in 0..10 {
            advance(Duration::from_secs(1)).await;
            p.throttled();
        }
        assert!(close(p.rate(), 10.0), "floor: a sixteenth: {}", p.rate());
        // Paced at the halved rate.
        advance(Duration::from_secs(5)).await;
        p.throttled();
        let start = Clock::now();
        p.wait().await;
        p.wait().await;
        assert_eq!(Clock::now() - start, 100 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_recovers_by_a_tenth_each_calm_second_up_to_the_configured_rate() {
        let p = Pacer::new(100.0);
        p.throttled();
        assert!(close(p.rate(), 50.0));
        advance(500 * MS).await;
        p.throttled(); // not halved again, but this second is not calm
        assert!(close(p.rate(), 50.0));
        advance(999 * MS).await;
        assert!(close(p.rate(), 50.0), "no calm second yet: {}", p.rate());
        advance(MS).await;
        assert!(close(p.rate(), 55.0), "{}", p.rate());
        advance(Duration::from_secs(1)).await;
        assert!(close(p.rate(), 60.5), "{}", p.rate());
        advance(Duration::from_secs(2)).await;
        assert!(close(p.rate(), 60.5 * 1.21), "{}", p.rate());
        advance(Duration::from_secs(60)).await;
        assert!(close(p.rate(), 100.0), "never above the configured rate");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_relay_holds_every_sender_back_1_2_4_up_to_30_s() {
        let p = Pacer::new(1000.0);
        let mut delays = Vec::new();
        for _ in 0..8 {
            let d = p.unreachable();
            // A second failure during the hold-back (another sender) does not lengthen it.
            assert_eq!(p.unreachable(), d);
            delays.push(d.as_secs());
            let start = Clock::now();
            p.wait().await;
            assert_eq!(
                Clock::now() - start,
                d,
                "every sender waits out the hold-back"
            );
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        p.succeeded();
        let start = Clock::now();
        p.wait().await;
        assert!(Clock::now() - start <= MS, "reachable again: no hold-back");
        assert_eq!(
            p.unreachable(),
            Duration::from_secs(1),
            "starts again at 1 s"
        );
    }

    #[test]
    fn retries_wait_1_5_30_120_then_360_times_the_base_give_or_take_a_fifth() {
        let base = Duration::from_secs(60);
        let steps: Vec<u64> = (1..=7)
            .map(|a| retry_delay(a, base, 0.5).as_secs())
            .collect();
        assert_eq!(steps, [60, 300, 1800, 7200, 21600, 21600, 21600]);
        assert_eq!(
            retry_delay(0, base, 0.5),
            base,
            "a row never tried counts as the first"
        );
        assert_eq!(retry_delay(1, base, 0.0), Duration::from_secs(48));
        assert_eq!(retry_delay(1, base, 1.0), Duration::from_secs(72));
        assert_eq!(retry_delay(3, base, 0.0), Duration::from_secs(1440));
        assert_eq!(retry_delay(3, base, 1.0), Duration::from_secs(2160));
        for _ in 0..1000 {
            let d = retry_delay(2, base, rand::random::<f64>());
            assert!((240.0..=360.0).contains(&d.as_secs_f64()), "{d:?}");
        }
    }
}
