//! HTTP: the axum router over one shared [`App`] state. Each concern has its own module with
//! its handlers; this module assembles them and serves until the cancellation token fires.
//!
//! # Layout
//! - [`feeds`]: `/feeds/...` with conditional GET and gzip.
//! - [`pages`]: `/` (home page with feed autodiscovery), `/healthz`, shared page helpers.
//! - [`site`]: article pages (at their URL's path below `base_url`) and `/tags/{tag}/`.
//! - [`subscribe`]: `/subscribe`, `/confirm/{token}`, `/unsubscribe/{token}`.
//! - [`archive`]: `/archive/{newsletter}/` and `/archive/{newsletter}/{issue}`.
//! - [`api`]: `/api/...`, the admin API behind a bearer token.
//!
//! `/metrics` (Prometheus) is served here too; every request is counted for it.

pub mod api;
pub mod archive;
pub mod feeds;
pub mod pages;
pub mod site;
pub mod subscribe;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::get;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::config::Site;
use crate::publish::Build;
use crate::store::Store;
use crate::subscribers::tokens::Keys;
use crate::templates::Templates;

/// Largest request body accepted anywhere (forms and JSON are tiny).
const BODY_LIMIT: usize = 16 * 1024;

/// State shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    site: Arc<Site>,
    templates: Arc<Templates>,
    build: watch::Receiver<Arc<Build>>,
    store: Store,
    keys: Keys,
    /// Wakes the confirmation email worker after a sign-up.
    confirmations: Arc<Notify>,
    /// Sign-up requests per client address.
    signups: DefaultKeyedRateLimiter<IpAddr>,
    admin_token: Option<SecretString>,
}

/// What [`App::new`] needs.
pub struct Parts {
    pub site: Arc<Site>,
    pub templates: Arc<Templates>,
    pub build: watch::Receiver<Arc<Build>>,
    pub store: Store,
    pub keys: Keys,
    pub confirmations: Arc<Notify>,
    pub admin_token: Option<SecretString>,
}

impl App {
    pub fn new(p: Parts) -> App {
        let per_minute = NonZeroU32::new(p.site.config.subscribe.requests_per_minute.max(1))
            .expect("at least 1");
        App {
            inner: Arc::new(Inner {
                signups: RateLimiter::keyed(Quota::per_minute(per_minute)),
                site: p.site,
                templates: p.templates,
                build: p.build,
                store: p.store,
                keys: p.keys,
                confirmations: p.confirmations,
                admin_token: p.admin_token,
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

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn admin_token(&self) -> Option<&SecretString> {
        self.inner.admin_token.as_ref()
    }

    pub fn wake_confirmations(&self) {
        self.inner.confirmations.notify_one();
    }

    /// Whether `ip` may make another sign-up request now.
    pub fn allow_signup(&self, ip: IpAddr) -> bool {
        self.inner.signups.check_key(&ip).is_ok()
    }

    /// The client's address: the socket peer, or — with `http.trust_proxy` — the last
    /// address a proxy appended to `X-Forwarded-For`.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.inner.site.config.http.trust_proxy
            && let Some(ip) = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
        peer.ip()
    }
}

/// Every route herald serves.
pub fn router(app: App) -> Router {
    let pages = site::Pages::new(&app);
    Router::new()
        .route("/", get(pages::home))
        .route("/healthz", get(pages::healthz))
        .route("/feeds/{*path}", get(feeds::serve))
        .route("/subscribe", get(subscribe::form).post(subscribe::sign_up))
        .route(
            "/confirm/{token}",
            get(subscribe::confirm_page).post(subscribe::confirm),
        )
        .route(
            "/unsubscribe/{token}",
            get(subscribe::unsubscribe_page).post(subscribe::unsubscribe),
        )
        .route("/archive/{newsletter}", get(archive::list))
        .route("/archive/{newsletter}/", get(archive::list))
        .route("/archive/{newsletter}/{issue}", get(archive::issue))
        .route("/tags/{tag}/", get(site::tag))
        .route("/tags/{tag}", get(site::tag_without_slash))
        .route("/metrics", get(metrics))
        .nest("/api", api::router(app.clone()))
        .fallback(site::fallback)
        .layer(axum::Extension(pages))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(crate::telemetry::count_requests))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(app)
}

/// `/metrics`: the ledger's depth is read from the store at scrape time.
async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Ok(depth) = app.store().ledger_depth().await {
        for (status, n) in depth {
            ::metrics::gauge!("herald_ledger_rows", "status" => status).set(n as f64);
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::handle().render(),
    )
        .into_response()
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await?;
    Ok(())
}
