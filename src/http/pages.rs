//! Plain pages: the home page (recent articles, feed autodiscovery), `/healthz`, the
//! not-found page, and what every page shares (the layout's context, rendering). Rendered
//! from the `home` and `message` templates.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::App;
use super::site::{Pages, subscribe_url};
use crate::config::FeedFormat;
use crate::templates::Flavor;
use crate::time::rfc3339;

/// How many articles the home page lists.
const HOME_ARTICLES: usize = 30;

/// The context every page shares: `site`, `feeds` (autodiscovery), `page_title`,
/// `subscribe_url` (`null` without newsletters).
pub fn base_context(app: &App, page_title: Option<&str>) -> serde_json::Map<String, Value> {
    let site = &app.site().config.site;
    let feeds: Vec<Value> = app
        .site()
        .config
        .feeds
        .formats
        .iter()
        .map(|f: &FeedFormat| {
            json!({
                "title": format!("{} ({})", site.title.0, f.label()),
                "type": f.media_type().split(';').next().unwrap_or_default(),
                "href": crate::links::feed_url(&app.site().config.site.base_url.0, f.file_name()),
            })
        })
        .collect();
    let mut ctx = serde_json::Map::new();
    ctx.insert(
        "site".into(),
        json!({
            "title": site.title.0,
            "description": site.description(),
            "language": site.language,
            "base_url": site.base_url.0.as_str(),
        }),
    );
    ctx.insert("feeds".into(), Value::Array(feeds));
    ctx.insert(
        "page_title".into(),
        page_title.map(Value::from).unwrap_or(Value::Null),
    );
    ctx.insert("subscribe_url".into(), subscribe_url(app));
    ctx
}

/// Renders an HTML template, or a bare 500 page naming nothing internal.
pub fn render_page(
    app: &App,
    status: StatusCode,
    name: &str,
    ctx: &serde_json::Map<String, Value>,
) -> Response {
    match render_html(app, name, ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(page) => page,
    }
}

/// Renders an HTML template; a failure is logged and becomes a bare 500 page.
#[allow(clippy::result_large_err)] // the error is the response itself, returned at once
pub fn render_html(
    app: &App,
    name: &str,
    ctx: &serde_json::Map<String, Value>,
) -> Result<String, Response> {
    app.templates()
        .render(Flavor::Html, name, ctx)
        .map_err(|e| {
            tracing::error!("rendering page {name}: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the page template failed (see the log)\n",
            )
                .into_response()
        })
}

/// A page with a heading and one message.
pub fn message(app: &App, status: StatusCode, heading: &str, text: &str) -> Response {
    let mut ctx = base_context(app, Some(heading));
    ctx.insert("heading".into(), heading.into());
    ctx.insert("message".into(), text.into());
    render_page(app, status, "message", &ctx)
}

pub async fn home(State(app): State<App>, Extension(pages): Extension<Arc<Pages>>) -> Response {
    let build = app.current();
    let now = Utc::now();
    let articles: Vec<Value> = build
        .published(now)
        .take(HOME_ARTICLES)
        .map(|a| pages.listing(&build, a))
        .collect();
    let mut ctx = base_context(&app, None);
    ctx.insert("articles".into(), Value::Array(articles));
    render_page(&app, StatusCode::OK, "home", &ctx)
}

pub async fn healthz(State(app): State<App>) -> Response {
    let build = app.current();
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({
            "status": "ok",
            "articles": build.published,
            "problems": build.problems.len(),
            "built_at": rfc3339(build.at),
        })),
    )
        .into_response()
}

pub async fn not_found(State(app): State<App>) -> Response {
    message(
        &app,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}
