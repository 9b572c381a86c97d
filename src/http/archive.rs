//! The web archive: `/archive/{newsletter}/` lists past issues, `/archive/{newsletter}/{issue}`
//! shows one as it was sent, without any subscriber's data (the "view in browser" link).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::App;
use super::pages::{base_context, message, render_page};
use crate::newsletters::{IssueContent, issue_slug, parse_issue_slug};

pub async fn list(State(app): State<App>, Path(newsletter): Path<String>) -> Response {
    let cfg = &app.site().config;
    let Some(n) = cfg.newsletters.iter().find(|n| n.id.0 == newsletter) else {
        return message(
            &app,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such newsletter.",
        );
    };
    let issues = match app.store().issues(&newsletter, 200).await {
        Ok(i) => i,
        Err(e) => return unavailable(&app, e),
    };
    let items: Vec<Value> = issues
        .iter()
        .map(|i| {
            json!({
                "title": i.title,
                "date": crate::time::rfc3339(i.scheduled),
                "url": cfg.site.url(&format!("archive/{newsletter}/{}", issue_slug(i.scheduled))),
            })
        })
        .collect();
    let mut ctx = base_context(&app, Some(&n.title.0));
    ctx.insert(
        "newsletter".into(),
        json!({"id": n.id.0, "title": n.title.0}),
    );
    ctx.insert("issues".into(), Value::Array(items));
    render_page(&app, StatusCode::OK, "archive", &ctx)
}

pub async fn issue(
    State(app): State<App>,
    Path((newsletter, slug)): Path<(String, String)>,
) -> Response {
    let missing = || {
        message(
            &app,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such issue.",
        )
    };
    let Some(at) = parse_issue_slug(&slug) else {
        return missing();
    };
    let found = match app.store().issue_at(&newsletter, at).await {
        Ok(i) => i,
        Err(e) => return unavailable(&app, e),
    };
    let Some(issue) = found else { return missing() };
    let content: IssueContent = match serde_json::from_str(&issue.content) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("archive: issue {}: {e}", issue.id);
            return missing();
        }
    };
    let html = content.archive_html(&app.site().config.site.url("subscribe"));
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        Html(html),
    )
        .into_response()
}

fn unavailable(app: &App, e: anyhow::Error) -> Response {
    tracing::error!("archive: {e:#}");
    message(
        app,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Please try again later.",
    )
}
