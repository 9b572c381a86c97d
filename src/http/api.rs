//! The admin API under `/api`, behind `Authorization: Bearer $HERALD_ADMIN_TOKEN` (compared
//! in constant time). Without the variable the API is off: every path answers 404.
//! Errors are JSON: `{"error": "...", "field": "..."}`.

use axum::Router;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, body::Bytes};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::App;
use crate::store::subscribers::{Added, ListFilter};
use crate::subscribers::tokens::secrets_equal;
use crate::subscribers::{Email, Evidence, Status, clean_name};

/// Most rows one list request returns.
const MAX_PAGE: i64 = 1000;

pub fn router(app: App) -> Router<App> {
    Router::new()
        .route("/subscribers", get(list).post(add))
        .route("/subscribers/counts", get(counts))
        .route("/subscribers/{email}", get(show).delete(remove))
        .route("/articles", get(articles))
        .layer(middleware::from_fn_with_state(app, authorize))
}

/// A JSON error naming the field at fault.
fn error(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Response {
    let mut body = json!({"error": message.into()});
    if let Some(f) = field {
        body["field"] = f.into();
    }
    (status, Json(body)).into_response()
}

/// The admin token from `HERALD_ADMIN_TOKEN`: off when unset, refused when shorter than
/// [`MIN_ADMIN_TOKEN`] characters (a short token is guessed, throttling or not).
pub fn admin_token(raw: Option<&str>) -> Result<Option<SecretString>, String> {
    match raw.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if t.chars().count() < MIN_ADMIN_TOKEN => Err(format!(
            "HERALD_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN} characters (32 random bytes, hex or base64, is best)"
        )),
        Some(t) => Ok(Some(SecretString::from(t.to_string()))),
    }
}

/// Shortest admin token accepted, as for `HERALD_SECRET`.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authorize(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = app.admin_token() else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            "the admin API is off: set HERALD_ADMIN_TOKEN to turn it on",
        );
    };
    let client = app.client_ip(peer, req.headers());
    let now = Instant::now();
    if let Some(left) = app.auth_failures().blocked(client, now) {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "too many failed authentications from this address; try again later",
        );
        if let Ok(v) = header::HeaderValue::from_str(&(left.as_secs() + 1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    match bearer(req.headers()) {
        Some(token) if secrets_equal(token, expected.expose_secret()) => next.run(req).await,
        _ => {
            app.auth_failures().failed(client, now);
            tracing::warn!("admin API: failed authentication from {client}");
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                None,
                "a valid `Authorization: Bearer <token>` header is required",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    newsletter: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

async fn list(
    State(app): State<App>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("query"), e.body_text()),
    };
    let status = match q.status.as_deref().map(str::parse::<Status>).transpose() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("status"), e),
    };
    if let Some(n) = &q.newsletter
        && !app.site().config.newsletters.iter().any(|x| x.id.0 == *n)
    {
        return error(
            StatusCode::BAD_REQUEST,
            Some("newsletter"),
            format!("there is no newsletter {n:?}"),
        );
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            Some("limit"),
            format!("limit must be between 1 and {MAX_PAGE}"),
        );
    }
    let filter = ListFilter {
        status,
        newsletter: q.newsletter,
        after: q.after.unwrap_or(0),
        limit,
    };
    match app.store().list_subscribers(&filter).await {
        Ok(rows) => {
            let next = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|r| r.id))
                .flatten();
            Json(json!({"subscribers": rows, "next_after": next})).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn show(State(app): State<App>, Path(email): Path<String>) -> Response {
    let email = match Email::parse(&email) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("email"), e),
    };
    match app.store().subscriber_by_email(&email).await {
        Ok(Some(s)) => Json(json!({"subscriber": s})).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            Some("email"),
            format!("{email} is not on the list"),
        ),
        Err(e) => internal(e),
    }
}

/// The body of `POST /api/subscribers`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    newsletters: Option<Vec<String>>,
    #[serde(default)]
    confirmed: Option<bool>,
}

/// Parses a JSON request body into `T`; an error names the field it is about (the path
/// into the body, such as `newsletters[1]`, or `body` when the body as a whole is wrong).
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (String, String)> {
    // serde would also take a struct from a JSON array, by position: refuse that.
    if let Some(b) = body.iter().find(|b| !b.is_ascii_whitespace())
        && *b == b'['
    {
        return Err(("body".into(), "the body must be a JSON object".into()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    if parsed.is_ok()
        && let Err(e) = de.end()
    {
        return Err(("body".into(), format!("the body is not valid JSON: {e}")));
    }
    parsed.map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        // Missing and unknown fields are reported at the object itself: name them.
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(|f| {
                if path == "." {
                    f.to_string()
                } else if path == f || path.ends_with(&format!(".{f}")) {
                    path.clone()
                } else {
                    format!("{path}.{f}")
                }
            });
        let field = match named {
            Some(f) => f,
            None if path == "." => "body".to_string(),
            None => path,
        };
        let message = match e.inner().classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("the body is not valid JSON: {message}")
            }
            _ => format!("{field}: {message}"),
        };
        (field, message)
    })
}

async fn add(State(app): State<App>, body: Bytes) -> Response {
    let req: AddRequest = match parse_body(&body) {
        Ok(r) => r,
        Err((field, message)) => return error(StatusCode::BAD_REQUEST, Some(&field), message),
    };
    let email = match Email::parse(&req.email) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("email"), e),
    };
    let name = match req.name.as_deref().map(clean_name).transpose() {
        Ok(n) => n.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("name"), e),
    };
    let configured = app.site().config.newsletter_ids();
    let newsletters: Vec<String> = match req.newsletters {
        None => configured.clone(),
        Some(ids) => {
            if let Some(id) = ids.iter().find(|id| !configured.contains(id)) {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some("newsletters"),
                    format!("newsletters: there is no newsletter {id:?}"),
                );
            }
            ids
        }
    };
    let confirmed = req.confirmed.unwrap_or(false);
    let ev = Evidence {
        source: "api".into(),
        ip: None,
        user_agent: None,
    };
    let outcome = match app
        .store()
        .add_subscriber(&email, &name, &newsletters, confirmed, &ev, Utc::now())
        .await
    {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    let (status, what, id) = match outcome {
        Added::Created(id) => (StatusCode::CREATED, "created", id),
        Added::Updated(id) => (StatusCode::OK, "updated", id),
        Added::Unchanged(id) => (StatusCode::OK, "unchanged", id),
        Added::Suppressed(s) => {
            return error(
                StatusCode::CONFLICT,
                Some("email"),
                format!(
                    "{email} is {s}: only the person can subscribe again, by signing up and confirming"
                ),
            );
        }
    };
    if !confirmed {
        app.wake_confirmations();
    }
    match app.store().subscriber(id).await {
        Ok(s) => (status, Json(json!({"outcome": what, "subscriber": s}))).into_response(),
        Err(e) => internal(e),
    }
}

async fn remove(State(app): State<App>, Path(email): Path<String>) -> Response {
    let email = match Email::parse(&email) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("email"), e),
    };
    match app.store().remove_subscriber(&email, Utc::now()).await {
        Ok(true) => Json(json!({"outcome": "unsubscribed", "email": email})).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            Some("email"),
            format!("{email} is not on the list"),
        ),
        Err(e) => internal(e),
    }
}

async fn counts(State(app): State<App>) -> Response {
    match app.store().subscriber_counts().await {
        Ok(c) => Json(c).into_response(),
        Err(e) => internal(e),
    }
}

async fn articles(State(app): State<App>) -> Response {
    let build = app.current();
    let now = Utc::now();
    let list: Vec<Value> = build
        .articles
        .iter()
        .map(|a| {
            json!({
                "id": a.id, "slug": a.slug, "title": a.title, "url": a.url,
                "date": crate::time::rfc3339(a.date), "draft": a.draft, "published": a.is_due(now),
                "tags": a.tags.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "source": a.source,
            })
        })
        .collect();
    let problems: Vec<String> = build.problems.iter().map(|p| p.to_string()).collect();
    Json(json!({"articles": list, "problems": problems})).into_response()
}

fn internal(e: anyhow::Error) -> Response {
    tracing::error!("admin API: {e:#}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "internal error (see the server log)",
    )
}
