//! `herald run`: one process that keeps the feeds current and serves them.
//!
//! Tasks, all under one [`CancellationToken`] and one [`TaskTracker`], each [`supervise`]d:
//! a task that panics is logged and started again after a backoff, so no work stops
//! silently.
//! - the builder: rebuilds when files under `articles/` are created, changed, removed or
//!   renamed (debounced; reading them is no change), when a future-dated article falls due,
//!   and every minute as a safety net, publishing each build to the HTTP handlers through a
//!   `watch` channel. A problem is logged when it appears or changes, and when it is fixed;
//! - the HTTP server;
//! - the confirmation email worker;
//! - the scheduler, which makes each newsletter's issue at its fire time;
//! - the delivery workers, which send what the ledger says is due.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::articles::Problem;
use crate::articles::tree::shown;
use crate::config::{Secrets, Site};
use crate::delivery::Delivery;
use crate::http::{self, App, Parts};
use crate::mail::Transport;
use crate::newsletters::Newsletter;
use crate::newsletters::scheduler::{Issuer, Scheduler};
use crate::publish::{Build, Publisher};
use crate::store::Store;
use crate::subscribers::confirmations::Confirmations;
use crate::templates::Templates;
use tokio::sync::Notify;

/// Quiet time after a file event before rebuilding (editors write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(150);
/// A full rescan even without events (missed events, network file systems).
const RESCAN: Duration = Duration::from_secs(60);
/// The longest a build waits to go live at its `Last-Modified` (longer means a clock that
/// went back, or another instance's clock ahead: the header is then shown as now).
const MAX_LIVE_WAIT: Duration = Duration::from_secs(2);
/// The first wait before a task that panicked is started again; it doubles up to
/// [`MAX_BACKOFF`] while the task keeps failing.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A task that ran this long before failing starts again after [`FIRST_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Internal knobs of [`run`], for tests: not configuration a user sets.
#[derive(Debug, Clone)]
pub struct Options {
    /// The safety-net rescan interval (a minute).
    pub rescan: Duration,
    /// Whether to watch `articles/` for changes; without it only the rescan and due dates
    /// trigger rebuilds (as on a platform without a file watcher).
    pub watch: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            rescan: RESCAN,
            watch: true,
        }
    }
}

/// Runs until `shutdown` is cancelled. `listener` is already bound (tests bind port 0).
pub async fn run(
    site: Arc<Site>,
    listener: TcpListener,
    secrets: Secrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(site, listener, secrets, shutdown, Options::default()).await
}

/// [`run`] with [`Options`] other than the defaults.
pub async fn run_with(
    site: Arc<Site>,
    listener: TcpListener,
    secrets: Secrets,
    shutdown: CancellationToken,
    options: Options,
) -> anyhow::Result<()> {
    // Watch before the first build, so no change made while it runs goes unnoticed.
    let (watch, events) = ArticleWatch::start(&site.dir, &site.articles_dir(), &options);
    let watch = Arc::new(Mutex::new(watch));
    let store = Store::open(&site.store_location()?).await?;
    let templates = Arc::new(
        Templates::load(&site.templates_dir(), site.config.site.timezone.0).map_err(|errors| {
            crate::cli::BadInput(format!("templates:\n  {}", errors.join("\n  ")))
        })?,
    );
    let keys =
        crate::subscribers::confirmations::load_keys(&store, secrets.secret.as_deref()).await?;
    let transport =
        Transport::from_site(&site, secrets.smtp_url.as_deref()).map_err(crate::cli::BadInput)?;
    let admin_token = crate::http::api::admin_token(secrets.admin_token.as_deref())
        .map_err(crate::cli::BadInput)?;
    if admin_token.is_none() {
        tracing::info!("admin API off (set HERALD_ADMIN_TOKEN to turn it on)");
    }
    let wake = Arc::new(Notify::new());
    let newsletters = Newsletter::all(&site).map_err(crate::cli::BadInput)?;
    crate::telemetry::handle();
    let mut publisher = Publisher::new(site.clone(), store.clone());
    let first = publisher.build(Utc::now()).await.context("first build")?;
    report(&first);
    let (tx, rx) = watch::channel(Arc::new(first));
    let rx_for_app = rx.clone();

    let tracker = TaskTracker::new();
    let app = App::new(Parts {
        site: site.clone(),
        templates: templates.clone(),
        build: rx_for_app,
        store: store.clone(),
        keys: keys.clone(),
        confirmations: wake.clone(),
        admin_token,
    });
    tracing::info!("mail goes to {}", transport.describe());
    let delivery =
        Delivery::start(site.clone(), store.clone(), keys.clone(), transport.clone()).await?;
    let issuer = Issuer::new(site.clone(), store.clone(), templates.clone());
    let wake_delivery = delivery.wake.clone();
    let confirmations = Confirmations {
        site: site.clone(),
        store: store.clone(),
        keys,
        templates,
        transport,
        wake,
    };
    {
        let confirmations = confirmations.clone();
        let token = shutdown.clone();
        tracker.spawn(supervise(
            "the confirmation email worker",
            shutdown.clone(),
            move || confirmations.clone().run(token.clone()),
        ));
    }
    {
        let token = shutdown.clone();
        tracker.spawn(supervise("the scheduler", shutdown.clone(), move || {
            let scheduler = Scheduler {
                issuer: issuer.clone(),
                newsletters: newsletters.clone(),
                build: rx.clone(),
                wake_delivery: wake_delivery.clone(),
            };
            scheduler.run(token.clone())
        }));
    }
    {
        let token = shutdown.clone();
        let d = delivery.clone();
        let supervised = supervise("delivery", shutdown.clone(), move || {
            let d = d.clone();
            let token = token.clone();
            async move {
                if let Err(e) = d.run(None, false, token.clone()).await {
                    tracing::error!("delivery stopped: {e:#}");
                    token.cancel();
                }
            }
        });
        tracker.spawn(async move {
            supervised.await;
            delivery.stop().await;
        });
    }
    let addr = listener.local_addr()?;
    tracing::info!(
        "serving {} at http://{addr}/ (feeds under /feeds/)",
        site.config.site.title.0
    );
    {
        // Kept as a std socket so a restarted server listens on the very same one.
        let socket = listener.into_std()?;
        let token = shutdown.clone();
        tracker.spawn(supervise("the HTTP server", shutdown.clone(), move || {
            let socket = socket.try_clone();
            let app = app.clone();
            let token = token.clone();
            async move {
                let served = match socket.and_then(TcpListener::from_std) {
                    Ok(listener) => http::serve(listener, app, token.clone()).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = served {
                    tracing::error!("HTTP server stopped: {e:#}");
                    token.cancel();
                }
            }
        }));
    }
    // Feeds that changed while herald was down are announced too, now that they are served.
    let first_changed: Vec<String> = tx
        .borrow()
        .changed
        .iter()
        .map(|rel| crate::publish::feed_url(&site, rel))
        .collect();
    if let Some(hub) = &site.config.feeds.websub_hub
        && !first_changed.is_empty()
    {
        tracker.spawn(crate::websub::ping_all(
            hub.0.to_string(),
            first_changed,
            shutdown.clone(),
        ));
    }
    {
        let events = Arc::new(tokio::sync::Mutex::new(events));
        let mut first = Some(publisher);
        let (site, store, token, tracker2) = (
            site.clone(),
            store.clone(),
            shutdown.clone(),
            tracker.clone(),
        );
        let watch = watch.clone();
        let rescan = options.rescan;
        tracker.spawn(supervise("the feed builder", shutdown.clone(), move || {
            // After a panic, a fresh publisher: nothing half-updated is trusted.
            let publisher = first
                .take()
                .unwrap_or_else(|| Publisher::new(site.clone(), store.clone()));
            builder(
                publisher,
                events.clone(),
                watch.clone(),
                tx.clone(),
                token.clone(),
                tracker2.clone(),
                rescan,
            )
        }));
    }
    tracker.close();
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    tracker.wait().await;
    drop(watch);
    store.close().await;
    Ok(())
}

/// Runs the task `make` starts until it ends or `shutdown` fires. A task that panics, or
/// ends while herald is not shutting down, is logged (`herald_task_restarts_total`) and
/// started again after a backoff: 1 s, doubling to 60 s while it keeps failing, 1 s again
/// after a minute of good running.
pub async fn supervise<F, Fut>(name: &'static str, shutdown: CancellationToken, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut delay = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let why = match tokio::spawn(make()).await {
            Ok(()) if shutdown.is_cancelled() => return,
            Ok(()) => "stopped".to_string(),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                format!("panicked ({})", crate::articles::tree::escaped(&message))
            }
            Err(_) => return, // cancelled: the runtime is going away
        };
        if shutdown.is_cancelled() {
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            delay = FIRST_BACKOFF;
        }
        metrics::counter!("herald_task_restarts_total", "task" => name).increment(1);
        tracing::error!(
            "{name} {why}; starting it again in {} s",
            delay.as_secs_f64()
        );
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// Whether a file event can mean an article changed: a create, modify, remove or rename.
/// Opening, reading and closing files (the build's own reads among them) cannot.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        // `Other` and `Any` include "events were lost: rescan".
        EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other
        | EventKind::Any => true,
    }
}

/// A recursive watch on `articles/`, plus a watch on the publication folder itself so a
/// folder that is removed, renamed away or swapped for another is watched again when it is
/// back. Without a watcher (a platform that cannot watch) the periodic rescan still finds
/// changes.
struct ArticleWatch {
    watcher: Option<notify::RecommendedWatcher>,
    articles: PathBuf,
    /// The identity of the folder the recursive watch is on, if any.
    watching: Option<FolderId>,
    rescan: Duration,
    /// Without watching, the event channel's sender, kept so the channel stays open.
    _quiet: Option<mpsc::UnboundedSender<()>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FolderId(PathBuf, Option<(u64, u64)>);

impl FolderId {
    fn of(path: &Path) -> Option<FolderId> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return None;
        }
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            Some((meta.dev(), meta.ino()))
        };
        #[cfg(not(unix))]
        let inode = None;
        Some(FolderId(path.canonicalize().ok()?, inode))
    }
}

impl ArticleWatch {
    fn start(
        site_dir: &Path,
        articles: &Path,
        options: &Options,
    ) -> (ArticleWatch, mpsc::UnboundedReceiver<()>) {
        let (events_tx, events) = mpsc::unbounded_channel::<()>();
        let rescan = options.rescan.as_secs_f64();
        if !options.watch {
            let watch = ArticleWatch {
                watcher: None,
                articles: articles.to_path_buf(),
                watching: None,
                rescan: options.rescan,
                _quiet: Some(events_tx),
            };
            // The sender is kept, unused: no event ever comes, and the channel stays open.
            return (watch, events);
        }
        let under = articles.to_path_buf();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else {
                // An error may mean lost events: look again.
                let _ = events_tx.send(());
                return;
            };
            if is_change(&event.kind)
                && (event.paths.is_empty() || event.paths.iter().any(|p| p.starts_with(&under)))
            {
                let _ = events_tx.send(());
            }
        });
        let watcher = match watcher {
            Ok(mut w) => {
                if let Err(e) = w.watch(site_dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(
                        "not watching {} for a new articles folder: {e}",
                        shown(site_dir)
                    );
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!("no file watcher: {e}; rescanning every {rescan}s instead");
                None
            }
        };
        let mut watch = ArticleWatch {
            watcher,
            articles: articles.to_path_buf(),
            watching: None,
            rescan: options.rescan,
            _quiet: None,
        };
        watch.refresh();
        (watch, events)
    }

    /// Watches `articles/` again if it is not the folder being watched (it came back, or
    /// was swapped for another).
    fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let now = FolderId::of(&self.articles);
        if now == self.watching {
            return;
        }
        if self.watching.take().is_some() {
            let _ = watcher.unwatch(&self.articles);
        }
        if now.is_some() {
            match watcher.watch(&self.articles, RecursiveMode::Recursive) {
                Ok(()) => self.watching = now,
                Err(e) => tracing::warn!(
                    "not watching {}: {e}; rescanning every {}s instead",
                    shown(&self.articles),
                    self.rescan.as_secs_f64()
                ),
            }
        }
    }
}

/// What has been logged about each file's problems, so a problem is logged when it appears
/// or changes, and once more when it is fixed, never again on every rebuild.
#[derive(Debug, Default)]
pub struct ProblemLog {
    logged: BTreeMap<PathBuf, Vec<String>>,
}

impl ProblemLog {
    /// Knows `problems` as already logged.
    pub fn seeded(problems: &[Problem]) -> ProblemLog {
        let mut log = ProblemLog::default();
        log.update(problems);
        log
    }

    /// Takes the problems of a new build; returns the lines to log now: new or changed
    /// problems, and files whose problems are gone (`None`).
    pub fn update(&mut self, problems: &[Problem]) -> (Vec<String>, Vec<PathBuf>) {
        let mut now: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for p in problems {
            now.entry(p.path.clone()).or_default().push(p.to_string());
        }
        let mut fresh = Vec::new();
        for (path, lines) in &now {
            let before = self.logged.get(path);
            for line in lines {
                if !before.is_some_and(|b| b.contains(line)) {
                    fresh.push(line.clone());
                }
            }
        }
        let fixed = self
            .logged
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        self.logged = now;
        (fresh, fixed)
    }

    /// Logs what changed since the last build.
    fn log(&mut self, problems: &[Problem]) {
        let (fresh, fixed) = self.update(problems);
        for line in fresh {
            tracing::warn!("{line}");
        }
        for path in fixed {
            tracing::info!("{}: fixed, no problem any more", shown(&path));
        }
    }
}

fn report(build: &Build) {
    for p in &build.problems {
        tracing::warn!("{p}");
    }
    if let Some(reason) = &build.held {
        tracing::warn!("{reason}");
        return;
    }
    tracing::info!(
        "built: {} articles published, {} feed files ({} changed, {} removed){}",
        build.published,
        build.feeds.len(),
        build.changed.len(),
        build.removed.len(),
        build
            .next_due
            .map(|d| format!(", next scheduled article due {}", crate::feeds::rfc3339(d)))
            .unwrap_or_default()
    );
}

/// Rebuilds whenever something may have changed, until shutdown.
async fn builder(
    mut publisher: Publisher,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>>,
    watch: Arc<Mutex<ArticleWatch>>,
    tx: watch::Sender<Arc<Build>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    rescan: Duration,
) {
    let hub = publisher
        .site()
        .config
        .feeds
        .websub_hub
        .as_ref()
        .map(|u| u.0.to_string());
    // Held for this task's life; a panic releases it for the next one.
    let mut events = events.lock().await;
    let (mut problems, mut held) = {
        let current = tx.borrow();
        (ProblemLog::seeded(&current.problems), current.held.clone())
    };

    loop {
        let next_due = tx.borrow().next_due;
        let until_due = next_due
            .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(5))
            .unwrap_or(rescan)
            .min(rescan);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = events.recv() => {
                if got.is_none() { return; }
                // Debounce: wait for a quiet moment, draining further events.
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        more = tokio::time::timeout(DEBOUNCE, events.recv()) => match more {
                            Ok(Some(())) => continue,
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            _ = tokio::time::sleep(until_due) => {}
        }
        watch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .refresh();
        let started = Instant::now();
        match publisher.build(Utc::now()).await {
            Ok(build) => {
                metrics::histogram!("herald_feed_build_seconds")
                    .record(started.elapsed().as_secs_f64());
                problems.log(&build.problems);
                if build.held != held {
                    match &build.held {
                        Some(reason) => tracing::warn!("{reason}"),
                        None => tracing::info!("articles are readable again: publishing"),
                    }
                    held = build.held.clone();
                }
                if build.held.is_some() {
                    // Keep serving the previous build.
                    continue;
                }
                if build.reread > 0 || !build.changed.is_empty() || !build.removed.is_empty() {
                    tracing::info!(
                        "rebuilt in {} ms: {} files re-read, {} feed files changed, {} removed",
                        started.elapsed().as_millis(),
                        build.reread,
                        build.changed.len(),
                        build.removed.len()
                    );
                }
                let changed: Vec<String> = build
                    .changed
                    .iter()
                    .map(|rel| crate::publish::feed_url(publisher.site(), rel))
                    .collect();
                // A second change within one second goes live when its second begins.
                if let Ok(wait) = (build.live_from - Utc::now()).to_std()
                    && wait <= MAX_LIVE_WAIT
                {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                // Publish first, ping after: the hub fetches what we now serve.
                tx.send_replace(Arc::new(build));
                if let Some(hub) = &hub
                    && !changed.is_empty()
                {
                    tracker.spawn(crate::websub::ping_all(
                        hub.clone(),
                        changed,
                        shutdown.clone(),
                    ));
                }
            }
            Err(e) => tracing::error!("rebuild failed, still serving the previous feeds: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(path: &str, message: &str) -> Problem {
        Problem {
            path: PathBuf::from(path),
            line: 1,
            message: message.into(),
        }
    }

    #[test]
    fn the_safety_net_rescan_runs_every_minute_with_the_watcher_on() {
        let o = Options::default();
        assert_eq!(o.rescan, Duration::from_secs(60));
        assert!(o.watch);
    }

    #[test]
    fn a_problem_is_logged_when_it_appears_changes_and_is_fixed() {
        let mut log = ProblemLog::default();
        let bad = [problem("articles/a.md", "broken")];
        assert_eq!(
            log.update(&bad),
            (vec!["articles/a.md:1: broken".to_string()], vec![])
        );
        assert_eq!(log.update(&bad), (vec![], vec![]));
        assert_eq!(log.update(&bad), (vec![], vec![]));
        let worse = [problem("articles/a.md", "broken differently")];
        assert_eq!(
            log.update(&worse),
            (
                vec!["articles/a.md:1: broken differently".to_string()],
                vec![]
            )
        );
        assert_eq!(
            log.update(&[]),
            (vec![], vec![PathBuf::from("articles/a.md")])
        );
        assert_eq!(log.update(&[]), (vec![], vec![]));
    }

    #[test]
    fn reading_files_is_no_change_but_writing_renaming_and_removing_are() {
        use notify::event::{AccessKind, CreateKind, ModifyKind, RemoveKind, RenameMode};
        assert!(!is_change(&EventKind::Access(AccessKind::Any)));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            notify::event::AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            notify::event::DataChange::Any
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
    }
}
