//! `herald run`: one process that keeps the feeds current and serves them.
//!
//! Tasks, all under one [`CancellationToken`] and one [`TaskTracker`]:
//! - the builder: rebuilds on file events under `articles/` (debounced), when a
//!   future-dated article falls due, and every minute as a safety net, publishing each
//!   build to the HTTP handlers through a `watch` channel;
//! - the HTTP server;
//! - the confirmation email worker;
//! - the scheduler, which makes each newsletter's issue at its fire time;
//! - the delivery workers, which send what the ledger says is due.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use notify::{RecursiveMode, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

/// Runs until `shutdown` is cancelled. `listener` is already bound (tests bind port 0).
pub async fn run(
    site: Arc<Site>,
    listener: TcpListener,
    secrets: Secrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Watch before the first build, so no change made while it runs goes unnoticed.
    let (watcher, events) = watch_articles(&site.articles_dir());
    let store = Store::open(&site.store_path()?).await?;
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
    let scheduler = Scheduler {
        issuer: Issuer::new(site.clone(), store.clone(), templates.clone()),
        newsletters,
        build: rx.clone(),
        wake_delivery: delivery.wake.clone(),
    };
    let confirmations = Confirmations {
        site: site.clone(),
        store: store.clone(),
        keys,
        templates,
        transport,
        wake,
    };
    tracker.spawn(confirmations.run(shutdown.clone()));
    tracker.spawn(scheduler.run(shutdown.clone()));
    {
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            if let Err(e) = delivery.run(None, false, shutdown.clone()).await {
                tracing::error!("delivery stopped: {e:#}");
                shutdown.cancel();
            }
            delivery.stop().await;
        });
    }
    let addr = listener.local_addr()?;
    tracing::info!(
        "serving {} at http://{addr}/ (feeds under /feeds/)",
        site.config.site.title.0
    );
    {
        let shutdown = shutdown.clone();
        let token = shutdown.clone();
        tracker.spawn(async move {
            if let Err(e) = http::serve(listener, app, shutdown).await {
                tracing::error!("HTTP server stopped: {e:#}");
                token.cancel();
            }
        });
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
    tracker.spawn(builder(
        publisher,
        events,
        tx,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracker.close();
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    tracker.wait().await;
    drop(watcher);
    store.close().await;
    Ok(())
}

/// A recursive watcher on `articles/` feeding a channel; `None` (with a warning) where the
/// platform cannot watch, in which case the periodic rescan still finds changes.
fn watch_articles(
    articles: &std::path::Path,
) -> (
    Option<notify::RecommendedWatcher>,
    mpsc::UnboundedReceiver<()>,
) {
    let (events_tx, events) = mpsc::unbounded_channel::<()>();
    let rescan = RESCAN.as_secs();
    let watcher = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = events_tx.send(());
        }
    }) {
        Ok(mut w) => match w.watch(articles, RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "not watching {}: {e}; rescanning every {rescan}s instead",
                    articles.display()
                );
                None
            }
        },
        Err(e) => {
            tracing::warn!("no file watcher: {e}; rescanning every {rescan}s instead");
            None
        }
    };
    (watcher, events)
}

fn report(build: &Build) {
    for p in &build.problems {
        tracing::warn!("{p}");
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
    mut events: mpsc::UnboundedReceiver<()>,
    tx: watch::Sender<Arc<Build>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let hub = publisher
        .site()
        .config
        .feeds
        .websub_hub
        .as_ref()
        .map(|u| u.0.to_string());

    loop {
        let next_due = tx.borrow().next_due;
        let until_due = next_due
            .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(5))
            .unwrap_or(RESCAN)
            .min(RESCAN);
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
        let started = std::time::Instant::now();
        match publisher.build(Utc::now()).await {
            Ok(build) => {
                metrics::histogram!("herald_feed_build_seconds")
                    .record(started.elapsed().as_secs_f64());
                if build.reread > 0
                    || !build.changed.is_empty()
                    || !build.removed.is_empty()
                    || !build.problems.is_empty()
                {
                    for p in &build.problems {
                        tracing::warn!("{p}");
                    }
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
