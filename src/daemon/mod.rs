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
use crate::text::shown;
use tokio::sync::Notify;

mod rebuild;
mod supervisor;
mod watcher;

pub use rebuild::ProblemLog;
use rebuild::{builder, report};
pub use supervisor::supervise;
use watcher::ArticleWatch;

/// A full rescan even without events (missed events, network file systems).
const RESCAN: Duration = Duration::from_secs(60);

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
            crate::error::BadInput(format!("templates:\n  {}", errors.join("\n  ")))
        })?,
    );
    let keys =
        crate::subscribers::confirmations::load_keys(&store, secrets.secret.as_deref()).await?;
    let transport =
        Transport::from_site(&site, secrets.smtp_url.as_deref()).map_err(crate::error::BadInput)?;
    let admin_token = crate::http::api::admin_token(secrets.admin_token.as_deref())
        .map_err(crate::error::BadInput)?;
    if admin_token.is_none() {
        tracing::info!("admin API off (set HERALD_ADMIN_TOKEN to turn it on)");
    }
    let wake = Arc::new(Notify::new());
    let newsletters = Newsletter::all(&site);
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
        composer: delivery.composer(),
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
        .map(|rel| crate::links::feed_url(&site.config.site.base_url.0, rel))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_net_rescan_runs_every_minute_with_the_watcher_on() {
        let o = Options::default();
        assert_eq!(o.rescan, Duration::from_secs(60));
        assert!(o.watch);
    }
}
