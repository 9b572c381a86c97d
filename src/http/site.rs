//! The publication's own pages: every published article at its URL's path below `base_url`
//! (`article` template) and `/tags/{tag-slug}/` listing one tag's articles (`tag` template),
//! both with conditional GET: a strong ETag from the bytes, `Last-Modified` from the newest
//! change shown (never in the future), `304 Not Modified` (`If-None-Match` wins over
//! `If-Modified-Since`), `Cache-Control`, HEAD.
//!
//! An article is served when its `url` lies below `base_url` (same scheme, host and port,
//! path under base_url's path); the path served is the URL's path relative to base_url's,
//! so `https://example.com/news/a/` under `base_url = "https://example.com/news/"` is
//! served at `/a/`, as are the feeds and the other pages. Articles whose `url` points
//! elsewhere are not served here; every link to them goes there.
//!
//! [`Pages`] keeps, per build, an index from path to article and the bodies rendered on
//! demand (the build holds rendered bodies only for articles that are in some feed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use super::App;
use super::pages::{base_context, not_found, render_html};
use crate::articles::{Article, Rendered, Renderer, Tag};
use crate::publish::Build;
use crate::time::rfc3339;

const CACHE_CONTROL: &str = "public, max-age=300";

/// Longest generated summary, in characters (as in the feeds).
const SUMMARY_CHARS: usize = 300;

/// What the article and tag pages keep between requests; one per router.
pub struct Pages {
    base: Url,
    renderer: Renderer,
    index: Mutex<Option<Arc<Index>>>,
}

/// One build's articles, found by path; held until the next build replaces them.
struct Index {
    /// The build's list itself, so a new build is noticed (and its memory never reused
    /// under this index while the index lives).
    articles: Arc<Vec<Article>>,
    /// Decoded path relative to base_url (`a/`, `日本/`) → articles there, newest first
    /// (drafts left out; due-ness is checked per request).
    by_path: HashMap<String, Vec<usize>>,
    /// Bodies rendered here, by content hash.
    bodies: Mutex<HashMap<String, Arc<Rendered>>>,
}

impl Pages {
    pub fn new(app: &App) -> Arc<Pages> {
        let base = app.site().config.site.base_url.0.clone();
        Arc::new(Pages {
            renderer: Renderer::new(&base),
            base,
            index: Mutex::new(None),
        })
    }

    fn index(&self, build: &Build) -> Arc<Index> {
        let mut slot = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = slot.as_ref()
            && Arc::ptr_eq(&i.articles, &build.articles)
        {
            return i.clone();
        }
        let mut by_path: HashMap<String, Vec<usize>> = HashMap::new();
        for (n, a) in build.articles.iter().enumerate() {
            if a.draft {
                continue;
            }
            if let Some(rel) = served_path(&self.base, &a.url)
                && !reserved(&rel)
            {
                by_path.entry(rel).or_default().push(n);
            }
        }
        let index = Arc::new(Index {
            articles: build.articles.clone(),
            by_path,
            bodies: Mutex::new(HashMap::new()),
        });
        *slot = Some(index.clone());
        index
    }

    /// An article's rendered body: the build's when it has one, else rendered here once.
    pub fn body(&self, build: &Build, a: &Article) -> Arc<Rendered> {
        if let Some(b) = build.bodies.get(&a.hash) {
            return b.clone();
        }
        let index = self.index(build);
        if let Some(b) = index
            .bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&a.hash)
        {
            return b.clone();
        }
        let html = self.renderer.html(a.kind, &a.body, &a.url);
        let summary = match &a.summary {
            Some(s) => s.clone(),
            None => crate::articles::body::summary_of(&html, SUMMARY_CHARS).unwrap_or_default(),
        };
        let r = Arc::new(Rendered { html, summary });
        index
            .bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(a.hash.clone(), r.clone());
        r
    }

    /// The absolute URL of a tag's page (non-ASCII slugs percent-encoded).
    pub fn tag_url(&self, slug: &str) -> String {
        tag_url(&self.base, slug)
    }

    /// One article as the home and tag pages list it.
    pub fn listing(&self, build: &Build, a: &Article) -> Value {
        json!({
            "title": a.title,
            "url": a.url,
            "date": rfc3339(a.date),
            "tags": self.tags(&a.tags),
            "summary": self.body(build, a).summary,
        })
    }

    fn tags(&self, tags: &[Tag]) -> Vec<Value> {
        tags.iter()
            .map(|t| json!({"name": t.name, "slug": t.slug, "url": self.tag_url(&t.slug)}))
            .collect()
    }
}

/// The absolute URL of the page for tag `slug`.
pub fn tag_url(base: &Url, slug: &str) -> String {
    base.join(&format!("tags/{slug}/"))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("{base}tags/{slug}/"))
}

/// The path (percent-decoded, relative to base_url's path) at which the article with URL
/// `url` is served, or `None` when that URL is not below `base`.
pub fn served_path(base: &Url, url: &str) -> Option<String> {
    let u = Url::parse(url).ok()?;
    if u.scheme() != base.scheme()
        || u.host() != base.host()
        || u.port_or_known_default() != base.port_or_known_default()
    {
        return None;
    }
    let rel = u.path().strip_prefix(base.path())?;
    if rel.is_empty() {
        return None; // base_url itself is the home page
    }
    Some(percent_decode_str(rel).decode_utf8().ok()?.into_owned())
}

/// Paths herald's own routes answer; an article whose path falls under one is not served.
const RESERVED: &[&str] = &[
    "feeds/",
    "tags/",
    "archive/",
    "confirm/",
    "unsubscribe/",
    "api/",
    "api",
    "subscribe",
    "healthz",
    "metrics",
];

/// Whether herald's own pages take the path `rel` (as [`served_path`] gives it).
pub fn reserved(rel: &str) -> bool {
    RESERVED.iter().any(|r| {
        if r.ends_with('/') {
            rel.starts_with(r)
        } else {
            rel == *r
        }
    })
}

/// Every path no route claims: an article page, a redirect to one (a missing trailing
/// slash), or the not-found page.
pub async fn fallback(
    State(app): State<App>,
    Extension(pages): Extension<Arc<Pages>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return not_found(State(app)).await;
    }
    let raw = uri.path().trim_start_matches('/');
    let Ok(rel) = percent_decode_str(raw).decode_utf8() else {
        return not_found(State(app)).await;
    };
    let build = app.current();
    let index = pages.index(&build);
    let now = Utc::now();
    let due = |rel: &str| -> Option<&Article> {
        index
            .by_path
            .get(rel)?
            .iter()
            .map(|n| &index.articles[*n])
            .find(|a| a.is_due(now))
    };
    if let Some(a) = due(&rel) {
        return article_page(&app, &pages, &build, a, &method, &headers, now);
    }
    if !rel.is_empty() && !rel.ends_with('/') && due(&format!("{rel}/")).is_some() {
        let last = raw.rsplit('/').next().unwrap_or(raw);
        return redirect(&format!("{last}/"));
    }
    not_found(State(app)).await
}

fn article_page(
    app: &App,
    pages: &Pages,
    build: &Build,
    a: &Article,
    method: &Method,
    req: &HeaderMap,
    now: DateTime<Utc>,
) -> Response {
    let body = pages.body(build, a);
    let updated = a.updated();
    let mut ctx = base_context(app, Some(&a.title));
    ctx.insert(
        "article".into(),
        json!({
            "id": a.id,
            "title": a.title,
            "url": a.url,
            "date": rfc3339(a.date),
            "updated": (updated > a.date).then(|| rfc3339(updated)),
            "authors": a.authors,
            "tags": pages.tags(&a.tags),
            "image": a.image,
            "summary": body.summary,
            "content_html": body.html,
        }),
    );
    match render_html(app, "article", &ctx) {
        Ok(html) => respond(html, updated.min(now), method, req),
        Err(page) => page,
    }
}

/// `/tags/{tag-slug}/`: the due articles with that tag, newest first.
pub async fn tag(
    State(app): State<App>,
    Extension(pages): Extension<Arc<Pages>>,
    Path(slug): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let build = app.current();
    let now = Utc::now();
    let tagged: Vec<&Article> = build
        .published(now)
        .filter(|a| a.tags.iter().any(|t| t.slug == slug))
        .collect();
    // The tag as its newest article writes it (as the feeds name it).
    let Some(tag) = tagged
        .first()
        .and_then(|a| a.tags.iter().find(|t| t.slug == slug))
    else {
        return not_found(State(app)).await;
    };
    let cfg = &app.site().config;
    let mut ctx = base_context(&app, Some(&tag.name));
    // Autodiscovery: this tag's feeds first, then the whole publication's.
    let tag_feeds: Vec<(String, &'static str, &'static str)> = cfg
        .feeds
        .formats
        .iter()
        .map(|f| {
            (
                format!("tags/{slug}/{}", f.file_name()),
                f.media_type(),
                f.label(),
            )
        })
        .filter(|(rel, _, _)| build.feeds.contains_key(rel))
        .collect();
    let mut feeds: Vec<Value> = tag_feeds
        .iter()
        .map(|(rel, media, label)| {
            json!({
                "title": format!("{}: {} ({label})", cfg.site.title.0, tag.name),
                "type": media.split(';').next().unwrap_or_default(),
                "href": crate::links::feed_url(&app.site().config.site.base_url.0, rel),
            })
        })
        .collect();
    let visible: Vec<Value> = tag_feeds
        .iter()
        .zip(&feeds)
        .map(|((_, _, label), f)| json!({"label": label, "type": f["type"], "href": f["href"]}))
        .collect();
    if let Some(Value::Array(site_feeds)) = ctx.remove("feeds") {
        feeds.extend(site_feeds);
    }
    ctx.insert("feeds".into(), Value::Array(feeds));
    ctx.insert(
        "tag".into(),
        json!({
            "name": tag.name,
            "slug": tag.slug,
            "url": pages.tag_url(&tag.slug),
            "count": tagged.len(),
            "feeds": visible,
        }),
    );
    let articles: Vec<Value> = tagged.iter().map(|a| pages.listing(&build, a)).collect();
    ctx.insert("articles".into(), Value::Array(articles));
    let modified = tagged
        .iter()
        .map(|a| a.updated())
        .max()
        .unwrap_or(now)
        .min(now);
    match render_html(&app, "tag", &ctx) {
        Ok(html) => respond(html, modified, &method, &headers),
        Err(page) => page,
    }
}

/// `/tags/{tag-slug}` without the slash: to the page's address.
pub async fn tag_without_slash(uri: Uri) -> Response {
    let last = uri.path().rsplit('/').next().unwrap_or_default();
    redirect(&format!("{last}/"))
}

/// The sign-up form's URL when the publication has newsletters, else `null`.
pub fn subscribe_url(app: &App) -> Value {
    let cfg = &app.site().config;
    if cfg.newsletters.is_empty() {
        Value::Null
    } else {
        cfg.site.url("subscribe").into()
    }
}

/// A permanent redirect to `location`, relative to the request (so it holds behind a proxy
/// that serves herald under a path).
fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A page's response: 200 with the bytes, or 304 when the client's copy is current.
fn respond(html: String, modified: DateTime<Utc>, method: &Method, req: &HeaderMap) -> Response {
    let digest = Sha256::digest(html.as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex ETags are valid headers"),
    );
    headers.insert(header::LAST_MODIFIED, crate::time::http_date(modified));
    if (method == Method::GET || method == Method::HEAD) && not_modified(req, &etag, modified) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    (StatusCode::OK, headers, html).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn articles_below_base_url_are_served_at_their_relative_path() {
        let b = base("https://example.com/news/");
        assert_eq!(
            served_path(&b, "https://example.com/news/a/").as_deref(),
            Some("a/")
        );
        assert_eq!(
            served_path(&b, "https://example.com:443/news/x/y.html").as_deref(),
            Some("x/y.html")
        );
        assert_eq!(
            served_path(&b, "https://example.com/news/%E6%97%A5%E6%9C%AC/").as_deref(),
            Some("日本/")
        );
        for elsewhere in [
            "https://example.com/other/a/",
            "https://other.example.com/news/a/",
            "http://example.com/news/a/",
            "https://example.com:8443/news/a/",
            "https://example.com/news/",
            "not a url",
        ] {
            assert_eq!(served_path(&b, elsewhere), None, "{elsewhere}");
        }
    }

    #[test]
    fn tag_urls_percent_encode_other_scripts() {
        let b = base("http://127.0.0.1:8080/");
        assert_eq!(
            tag_url(&b, "日本語"),
            "http://127.0.0.1:8080/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E/"
        );
        assert_eq!(tag_url(&b, "c"), "http://127.0.0.1:8080/tags/c/");
    }

    #[test]
    fn herald_keeps_its_own_paths() {
        for taken in [
            "feeds/x/",
            "tags/a/",
            "api/x",
            "subscribe",
            "archive/weekly/",
        ] {
            assert!(reserved(taken), "{taken}");
        }
        for free in ["subscribe/", "feedsx/", "my-tags/", "apis/", "news/feeds/"] {
            assert!(!reserved(free), "{free}");
        }
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let t = DateTime::parse_from_rfc3339("2026-05-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        let later = "Sat, 02 May 2026 09:00:00 GMT";
        assert!(not_modified(
            &h(&[("if-modified-since", later)]),
            "\"a\"",
            t
        ));
        assert!(!not_modified(
            &h(&[("if-none-match", "\"b\""), ("if-modified-since", later)]),
            "\"a\"",
            t
        ));
        assert!(not_modified(
            &h(&[("if-none-match", "W/\"a\"")]),
            "\"a\"",
            t
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "Thu, 30 Apr 2026 09:00:00 GMT")]),
            "\"a\"",
            t
        ));
    }
}
