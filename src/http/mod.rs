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
pub mod limits;
pub mod pages;
pub mod site;
pub mod subscribe;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;
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
    signups: limits::SignupLimiter,
    /// Failed admin-API authentications per client address.
    auth_failures: limits::AuthFailures,
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
        App {
            inner: Arc::new(Inner {
                signups: limits::SignupLimiter::per_minute(
                    p.site.config.subscribe.requests_per_minute,
                ),
                auth_failures: limits::AuthFailures::default(),
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
        self.inner.signups.allow(ip)
    }

    pub fn auth_failures(&self) -> &limits::AuthFailures {
        &self.inner.auth_failures
    }

    /// The client's address: the socket peer, or — behind `http.trust_proxy` proxies —
    /// the address the outermost trusted proxy saw (see [`forwarded_client`]).
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        forwarded_client(self.inner.site.config.http.trust_proxy.0, peer, headers)
    }
}

/// The client address behind `hops` trusted proxies. Each proxy appends the address it
/// saw to `X-Forwarded-For`, so the entries a client wrote itself come first: all lines of
/// the header are joined in order and the `hops`-th entry from the end is the one the
/// outermost trusted proxy recorded. Fewer entries than hops, or an unreadable entry,
/// means the request did not come through the proxies: the socket peer is used.
pub fn forwarded_client(hops: usize, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if hops == 0 {
        return peer.ip();
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if entries.len() < hops {
        return peer.ip();
    }
    let entry = entries[entries.len() - hops];
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .unwrap_or(peer.ip())
}

/// Whether the request's `Content-Type` is exactly `essence` (`type/subtype`, any case,
/// parameters such as `charset` ignored): `Application/JSON; charset=utf-8` is JSON,
/// `application/jsonp` is not.
pub fn has_media_type(headers: &HeaderMap, essence: &str) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str().eq_ignore_ascii_case(essence))
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
        // A declared Content-Length over the limit is refused with 413 before any body
        // byte is read.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::middleware::from_fn(crate::telemetry::count_requests))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            app.site().config.http.request_timeout.0,
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
/// finish (for at most [`SHUTDOWN_GRACE`]).
///
/// herald runs its own accept loop on hyper, because `axum::serve` has no header-read or
/// idle timeout and no connection cap: a client that sends nothing, half a header, or idles
/// forever would otherwise hold a socket forever. Here every connection has
/// - `http.header_read_timeout` for each request's header (hyper's timer, which also bounds
///   the wait for the next request on a kept-alive connection),
/// - `http.idle_timeout` between bytes in either direction while a body moves,
/// - and at most [`connection_cap`] connections are open at once; the rest wait in the
///   kernel's listen queue.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = app.site().config.http.clone();
    let cap = connection_cap(cfg.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let router = router(app.clone());
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Some(cfg.header_read_timeout.0))
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut accept_errors = 0u64;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept: wait
                    // a moment instead of spinning, and say so now and then, not per try.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!("accept error ({accept_errors} so far): {e}");
                    }
                    drop(permit);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let mut io = TimeoutStream::new(stream);
        io.set_read_timeout(Some(cfg.idle_timeout.0));
        io.set_write_timeout(Some(cfg.idle_timeout.0));
        let router = router.clone();
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                use futures_util::future::Either;
                if let Some(response) = feeds::fast(&app, &req) {
                    return Either::Left(std::future::ready(Ok(response)));
                }
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                Either::Right(router.clone().oneshot(req.map(axum::body::Body::new)))
            },
        );
        let conn = http1.serve_connection(TokioIo::new(Box::pin(io)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's doing (reset, timeout, garbage): nothing to log.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some HTTP connections were still open {} s after shutdown; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// In-flight requests get this long to finish after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `http.max_connections`, but never more than half of the file descriptors this process
/// may open (its soft `RLIMIT_NOFILE`): the other half stays for the store, the feed files,
/// the watcher and the SMTP connections.
pub fn connection_cap(configured: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let half = usize::try_from(limit / 2).unwrap_or(usize::MAX).max(1);
    if configured > half {
        tracing::info!(
            "http.max_connections = {configured} is more than half the file descriptor limit ({limit}); serving {half} connections at most"
        );
    }
    configured.min(half)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_who_the_outermost_trusted_proxy_saw() {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not behind a proxy: the header is the client's own words.
        assert_eq!(forwarded_client(0, peer, &xff(&["1.1.1.1"])), peer.ip());
        // One proxy appends what it saw; a forged first line or entry changes nothing.
        assert_eq!(
            forwarded_client(1, peer, &xff(&["6.6.6.6", "203.0.113.7"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(1, peer, &xff(&["6.6.6.6, 7.7.7.7, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        // Two proxies: the second-to-last entry.
        assert_eq!(
            forwarded_client(2, peer, &xff(&["6.6.6.6", "203.0.113.7, 10.0.0.2"])),
            ip("203.0.113.7")
        );
        // Ports and IPv6 are understood; nonsense or a short chain falls back to the peer.
        assert_eq!(
            forwarded_client(1, peer, &xff(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        assert_eq!(forwarded_client(1, peer, &xff(&["unknown"])), peer.ip());
        assert_eq!(forwarded_client(2, peer, &xff(&["203.0.113.7"])), peer.ip());
        assert_eq!(forwarded_client(1, peer, &HeaderMap::new()), peer.ip());
    }
}
