//! HTTP: the axum router over one shared [`App`] state. Each concern has its own module with
//! its handlers; this module assembles them and serves until the cancellation token fires.
//!
//! # Layout
//! - [`feeds`]: `/feeds/...` with conditional GET and gzip.
//! - [`pages`]: `/` (home page with feed autodiscovery) and `/healthz`.

pub mod feeds;
pub mod pages;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::config::Site;
use crate::publish::Build;
use crate::templates::Templates;

/// State shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    site: Arc<Site>,
    templates: Arc<Templates>,
    build: watch::Receiver<Arc<Build>>,
}

impl App {
    pub fn new(
        site: Arc<Site>,
        templates: Arc<Templates>,
        build: watch::Receiver<Arc<Build>>,
    ) -> App {
        App {
            inner: Arc::new(Inner {
                site,
                templates,
                build,
            }),
        }
    }

    /// The latest build.
    pub fn current(&self) -> Arc<Build> {
        self.inner.build.borrow().clone()
    }

    pub fn hub(&self) -> Option<&str> {
        self.inner
            .site
            .config
            .feeds
            .websub_hub
            .as_ref()
            .map(|u| u.0.as_str())
    }

    pub fn site(&self) -> &Site {
        &self.inner.site
    }

    pub fn templates(&self) -> &Templates {
        &self.inner.templates
    }
}

/// Every route herald serves.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/healthz", get(pages::healthz))
        .route("/feeds/{*path}", get(feeds::serve))
        .fallback(pages::not_found)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(app)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
