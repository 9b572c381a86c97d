//! `/metrics` in Prometheus text format: the process-wide recorder (installed once), the
//! HTTP request counter middleware, and gauges read from the store when scraped.
//!
//! Metrics: `herald_deliveries_total{result}`, `herald_smtp_replies_total{class}`,
//! `herald_policy_rejections_total{code}`, `herald_ledger_rows{status}`,
//! `herald_send_rate_limit`, `herald_feed_build_seconds`, `herald_http_requests_total{route,status}`.
//!
//! The recorder is one per process, as Prometheus expects of an exporter: every daemon
//! started in one process shares it. Tests that assert values therefore scrape a `herald run`
//! process of their own (tests/it/daemon.rs); in-process daemons' `/metrics` counts every
//! test's traffic.

use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("herald_feed_build_seconds".into()),
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test harness's) may be installed already; ours still renders.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Counts every request by route template (not raw path: no unbounded labels) and status.
pub async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    metrics::counter!("herald_http_requests_total", "route" => route, "status" => response.status().as_u16().to_string())
        .increment(1);
    response
}

/// Counts a feed poll answered before the router (the HTTP layer's early feed path) under
/// the same series the middleware would have used. The common statuses are static strings:
/// no allocation on the path feed readers hit most.
pub fn count_feed_request(status: axum::http::StatusCode) {
    let status: metrics::SharedString = match status.as_u16() {
        200 => "200".into(),
        304 => "304".into(),
        n => n.to_string().into(),
    };
    metrics::counter!("herald_http_requests_total", "route" => "/feeds/{*path}", "status" => status)
        .increment(1);
}
