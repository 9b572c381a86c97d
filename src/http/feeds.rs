//! `/feeds/...`: feed files from memory with their media type, a strong ETag per
//! representation, `Last-Modified` when the file's bytes last changed (kept in the store,
//! never in the future), `304 Not Modified` (RFC 9110: `If-None-Match` wins over
//! `If-Modified-Since`), and gzip when the client asks.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::App;
use crate::feeds::FeedFile;

const CACHE_CONTROL: &str = "public, max-age=300";

pub async fn serve(
    State(app): State<App>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(&app, &method, &path, &headers).unwrap_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such feed\n",
        )
            .into_response()
    })
}

/// A feed poll answered before the router: `GET`/`HEAD` of an existing feed file, under a
/// path that needs no percent-decoding. Everything else (a 404, an encoded path, another
/// method) returns `None` and goes through the router as usual.
///
/// Feed readers make most of herald's requests, most of them answered `304`; routing them
/// through axum's matcher and the middleware stack (request timeout, body limit, the
/// per-route counter with its label strings) cost about a third of each such answer when
/// measured against nginx with `bench/serve.sh`. This path gives the same answer (the
/// integration tests compare both) and is counted under the same route label.
pub fn fast<B>(app: &App, req: &axum::http::Request<B>) -> Option<Response> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let path = req.uri().path().strip_prefix("/feeds/")?;
    if path.contains('%') {
        return None;
    }
    let response = answer(app, method, path, req.headers())?;
    crate::telemetry::count_feed_request(response.status());
    Some(response)
}

/// The answer for the feed file at `path` (below `/feeds/`), if there is one.
fn answer(app: &App, method: &Method, path: &str, req: &HeaderMap) -> Option<Response> {
    let build = app.current();
    let file = build.feeds.get(path)?;
    let link = app.hub().and_then(|hub| {
        let self_url = crate::links::feed_url(&app.site().config.site.base_url.0, path);
        HeaderValue::from_str(&format!("<{hub}>; rel=\"hub\", <{self_url}>; rel=\"self\"")).ok()
    });
    Some(respond(file, method, req, link))
}

/// The response for one feed file, given the request's method and headers, and the WebSub
/// `Link` header when a hub is configured.
fn respond(
    file: &FeedFile,
    method: &Method,
    req: &HeaderMap,
    link: Option<HeaderValue>,
) -> Response {
    let gzip = accepts_gzip(req);
    let prepared = file.prepared();
    let (etag, etag_value) = if gzip {
        (
            prepared.gzip_etag.to_str().unwrap_or(""),
            &prepared.gzip_etag,
        )
    } else {
        (file.etag.as_str(), &prepared.etag)
    };

    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(header::ETAG, etag_value.clone());
    headers.insert(header::LAST_MODIFIED, file.last_modified());
    if let Some(link) = link {
        headers.insert(header::LINK, link);
    }

    if (method == Method::GET || method == Method::HEAD) && not_modified(req, etag, file.modified) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }

    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.format.media_type()),
    );
    let body = if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        file.gzip().clone()
    } else {
        file.bytes.clone()
    };
    (StatusCode::OK, headers, body).into_response()
}

/// RFC 9110 §13.2.2: `If-None-Match` (weak comparison, `*` matches) decides when present;
/// otherwise `If-Modified-Since` at or after the modification time.
fn not_modified(req: &HeaderMap, etag: &str, modified: DateTime<Utc>) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        let ours = etag.trim_start_matches("W/");
        return inm
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    if let Some(ims) = req.get(header::IF_MODIFIED_SINCE)
        && let Ok(ims) = ims.to_str()
        && let Ok(since) = httpdate::parse_http_date(ims)
    {
        let since: DateTime<Utc> = since.into();
        return modified.timestamp() <= since.timestamp();
    }
    false
}

/// Whether `Accept-Encoding` allows gzip (an explicit `gzip`, or `*`, with a non-zero q).
fn accepts_gzip(req: &HeaderMap) -> bool {
    let Some(value) = req
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut star = false;
    for part in value.split(',') {
        let mut bits = part.split(';');
        let coding = bits.next().unwrap_or("").trim();
        let q = bits
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q > 0.0;
        }
        if coding == "*" {
            star = q > 0.0;
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gzip_negotiation_respects_q_values() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(!accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip;q=0, br"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "br")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let t = DateTime::parse_from_rfc3339("2026-05-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = "Sat, 02 May 2026 09:00:00 GMT";
        assert!(not_modified(
            &headers(&[("if-modified-since", later)]),
            "\"a\"",
            t
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"b\""), ("if-modified-since", later)]),
            "\"a\"",
            t
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", W/\"a\"")]),
            "\"a\"",
            t
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "*")]),
            "\"a\"",
            t
        ));
        let earlier = "Thu, 30 Apr 2026 09:00:00 GMT";
        assert!(!not_modified(
            &headers(&[("if-modified-since", earlier)]),
            "\"a\"",
            t
        ));
    }
}
