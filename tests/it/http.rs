//! The HTTP surface through the real router over TCP.

use std::io::Read;

use chrono::{DateTime, Utc};

use super::helpers::*;

fn last_modified(r: &reqwest::Response) -> DateTime<Utc> {
    let v = r.headers()["last-modified"].to_str().unwrap();
    httpdate::parse_http_date(v)
        .unwrap_or_else(|e| panic!("Last-Modified {v:?}: {e}"))
        .into()
}

async fn conditional(d: &Daemon, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = d.client.get(format!("{}{path}", d.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Waits until the second changes, so a change made next gets a later `Last-Modified`.
async fn next_second() {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

async fn daemon() -> (Publication, Daemon) {
    let p = Publication::new();
    p.article(
        "a.md",
        "---\ntitle: Alpha & Omega\ndate: 2026-05-01T09:00:00Z\ntags: [news]\n---\nAlpha body.\n",
    );
    p.article(
        "b.md",
        "---\ntitle: Beta\ndate: 2026-05-02T09:30:00Z\n---\nBeta body.\n",
    );
    let d = Daemon::start(&p).await;
    (p, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_are_served_with_their_media_types() {
    let (_p, d) = daemon().await;
    for (path, ty) in [
        ("/feeds/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/feeds/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/feeds/feed.json", "application/feed+json; charset=utf-8"),
        (
            "/feeds/tags/news/rss.xml",
            "application/rss+xml; charset=utf-8",
        ),
    ] {
        let r = d.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ty, "{path}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=300");
        assert_eq!(r.headers()["vary"], "Accept-Encoding");
        // When the file was built, not the newest entry's date (2026-05-02).
        let modified = last_modified(&r);
        assert!(modified <= Utc::now(), "{path}: {modified}");
        assert!(
            Utc::now() - modified < chrono::Duration::minutes(1),
            "{path}: {modified}"
        );
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
            "{etag}"
        );
        let body = r.bytes().await.unwrap();
        parse_feed(&body);
    }
    assert_eq!(d.get("/feeds/nope.xml").await.status(), 404);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_gets_answer_304_in_both_forms() {
    let (_p, d) = daemon().await;
    let url = format!("{}/feeds/atom.xml", d.url);
    let first = d.client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();

    let r = d
        .client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    assert_eq!(r.headers()["vary"], "Accept-Encoding");
    assert!(r.bytes().await.unwrap().is_empty());

    let r = d
        .client
        .get(&url)
        .header("If-Modified-Since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // If-None-Match decides when present, even if If-Modified-Since would say 304.
    let r = d
        .client
        .get(&url)
        .header("If-None-Match", "\"stale\"")
        .header("If-Modified-Since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = d
        .client
        .get(&url)
        .header("If-Modified-Since", "Thu, 01 Jan 2026 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = d
        .client
        .head(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_is_served_when_asked_with_its_own_etag() {
    let (_p, d) = daemon().await;
    let url = format!("{}/feeds/rss.xml", d.url);
    let plain = d.client.get(&url).send().await.unwrap();
    let plain_etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let plain_body = plain.bytes().await.unwrap();

    let gz = d
        .client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "Accept-Encoding");
    let gz_etag = gz.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(gz_etag, plain_etag);
    let compressed = gz.bytes().await.unwrap();
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated, plain_body);

    let r = d
        .client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .header("If-None-Match", &gz_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = d
        .client
        .get(&url)
        .header("Accept-Encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_lists_articles_and_advertises_the_feeds() {
    let (_p, d) = daemon().await;
    let r = d.get("/").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("Alpha &amp; Omega"), "{html}");
    assert!(
        html.find("Beta").unwrap() < html.find("Alpha").unwrap(),
        "newest first"
    );
    for (ty, href) in [
        (
            "application/rss+xml",
            "https://news.example.com/feeds/rss.xml",
        ),
        (
            "application/atom+xml",
            "https://news.example.com/feeds/atom.xml",
        ),
        (
            "application/feed+json",
            "https://news.example.com/feeds/feed.json",
        ),
    ] {
        let needle = format!("<link rel=\"alternate\" type=\"{ty}\"");
        let at = html
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle} missing"));
        assert!(html[at..].lines().next().unwrap().contains(href));
    }
    let health: serde_json::Value = d.get("/healthz").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["articles"], 2);
    assert_eq!(d.get("/no/such/page").await.status(), 404);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websub_hub_is_advertised_in_headers_and_feeds() {
    let p = Publication::with_config("[feeds]\nwebsub_hub = \"https://hub.example.com/\"\n");
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    let r = d.get("/feeds/atom.xml").await;
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        link,
        "<https://hub.example.com/>; rel=\"hub\", <https://news.example.com/feeds/atom.xml>; rel=\"self\""
    );
    let feed = parse_feed(&r.bytes().await.unwrap());
    assert!(
        feed.links
            .iter()
            .any(|l| l.rel.as_deref() == Some("hub") && l.href == "https://hub.example.com/")
    );
    let json: serde_json::Value = d.get("/feeds/feed.json").await.json().await.unwrap();
    assert_eq!(json["hubs"][0]["url"], "https://hub.example.com/");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_is_when_the_bytes_changed_and_survives_a_restart() {
    let started = Utc::now() - chrono::Duration::seconds(1);
    let p = Publication::new();
    p.article(
        "a.md",
        "---\ntitle: Alpha\ndate: 2026-05-01T09:00:00Z\ntags: [news]\n---\nx\n",
    );
    let d = Daemon::start(&p).await;
    let first = d.get("/feeds/atom.xml").await;
    let lm = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let modified = last_modified(&first);
    assert!(
        modified >= started,
        "{modified} is the build's time, not an entry's"
    );
    assert!(modified <= Utc::now());
    d.stop().await;

    // A restart (a second later) rebuilds the same bytes: same time, same ETag.
    next_second().await;
    let d = Daemon::start(&p).await;
    let again = d.get("/feeds/atom.xml").await;
    assert_eq!(again.headers()["last-modified"], lm.as_str());
    assert_eq!(again.headers()["etag"], etag.as_str());
    let r = conditional(&d, "/feeds/atom.xml", &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status(), 304, "unchanged bytes, If-Modified-Since only");

    // A back-dated article changes the bytes but not the newest entry: the time moves.
    next_second().await;
    p.article(
        "old.md",
        "---\ntitle: Back-dated\ndate: 2020-01-01T09:00:00Z\n---\nx\n",
    );
    assert!(
        eventually(SOON, || async {
            d.text("/feeds/atom.xml").await.contains("Back-dated")
        })
        .await
        .is_some()
    );
    let r = conditional(&d, "/feeds/atom.xml", &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status(), 200, "changed bytes, If-Modified-Since only");
    let newer = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert!(last_modified(&r) > modified, "{newer} after {lm}");
    let r = conditional(&d, "/feeds/atom.xml", &[("If-Modified-Since", &newer)]).await;
    assert_eq!(r.status(), 304);
    // If-None-Match still wins over If-Modified-Since.
    let r = conditional(
        &d,
        "/feeds/atom.xml",
        &[("If-None-Match", &etag), ("If-Modified-Since", &newer)],
    )
    .await;
    assert_eq!(r.status(), 200, "a stale ETag beats a fresh date");
    // The tag feed did not change: its time stays.
    let tag = d.get("/feeds/tags/news/atom.xml").await;
    assert_eq!(last_modified(&tag), modified);

    // `updated` in the future moves Last-Modified to now, never past it.
    p.article(
        "a.md",
        "---\ntitle: Alpha\ndate: 2026-05-01T09:00:00Z\nupdated: 2099-01-01T00:00:00Z\ntags: [news]\n---\nx\n",
    );
    assert!(
        eventually(SOON, || async {
            d.text("/feeds/atom.xml").await.contains("2099")
        })
        .await
        .is_some()
    );
    let r = d.get("/feeds/atom.xml").await;
    assert!(last_modified(&r) <= Utc::now());
    assert!(
        last_modified(&r) > last_modified(&tag) && last_modified(&r) > modified,
        "changed bytes moved Last-Modified (to now, not to 2099)"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_changes_within_one_second_still_reach_an_if_modified_since_client() {
    let p = Publication::with_config("[feeds]\nper_tag = false\n");
    p.article("a.md", "---\ntitle: One\ndate: 2026-05-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    let mut seen = d.get("/feeds/rss.xml").await;
    // Each change is fetched by an If-Modified-Since-only client right after it is served.
    for n in 0..4 {
        let title = format!("Quick {n}");
        p.article(
            &format!("q{n}.md"),
            &format!("---\ntitle: {title}\ndate: 2026-04-0{}\n---\nx\n", n + 1),
        );
        assert!(
            eventually(SOON, || async {
                d.text("/feeds/rss.xml").await.contains(&title)
            })
            .await
            .is_some()
        );
        let lm = seen.headers()["last-modified"]
            .to_str()
            .unwrap()
            .to_string();
        let r = conditional(&d, "/feeds/rss.xml", &[("If-Modified-Since", &lm)]).await;
        assert_eq!(r.status(), 200, "change {n} after Last-Modified {lm}");
        assert!(last_modified(&r) <= Utc::now());
        seen = r;
    }
    d.stop().await;
}

/// Feed polls are answered before the router when the path needs no decoding; an encoded
/// path to the same file goes through the router. Both must give the same answer, in every
/// form a reader asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_poll_gets_the_same_answer_with_or_without_the_router() {
    let p = Publication::with_config("[feeds]\nwebsub_hub = \"https://hub.example.com/\"\n");
    p.article(
        "a.md",
        "---\ntitle: A\ndate: 2026-05-01\ntags: [news]\n---\nx\n",
    );
    let d = Daemon::start(&p).await;
    let etag = d.get("/feeds/rss.xml").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let gz_etag = conditional(&d, "/feeds/rss.xml", &[("Accept-Encoding", "gzip")])
        .await
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(etag, gz_etag);
    let lm = d.get("/feeds/rss.xml").await.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    let forms: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Accept-Encoding", "GZip;q=0.5")],
        vec![("If-None-Match", &etag)],
        vec![("If-None-Match", &gz_etag), ("Accept-Encoding", "gzip")],
        vec![("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
        vec![("If-Modified-Since", &lm)],
    ];
    for (fast, routed) in [
        ("/feeds/rss.xml", "/feeds/rs%73.xml"),
        ("/feeds/tags/news/atom.xml", "/feeds/tags/news/%61tom.xml"),
    ] {
        for form in &forms {
            for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
                let send = |path: &str| {
                    let mut req = d.client.request(method.clone(), format!("{}{path}", d.url));
                    for (k, v) in form {
                        req = req.header(*k, *v);
                    }
                    req.send()
                };
                let a = send(fast).await.unwrap();
                let b = send(routed).await.unwrap();
                let what = format!("{method} {fast} with {form:?}");
                assert_eq!(a.status(), b.status(), "{what}");
                assert!(
                    a.status() == 200 || a.status() == 304,
                    "{what}: {}",
                    a.status()
                );
                for h in [
                    "etag",
                    "last-modified",
                    "content-type",
                    "content-encoding",
                    "cache-control",
                    "vary",
                    "link",
                ] {
                    assert_eq!(a.headers().get(h), b.headers().get(h), "{what}: {h}");
                }
                let link = a.headers()["link"].to_str().unwrap().to_string();
                assert!(
                    link.contains(&format!("<https://news.example.com{fast}>")),
                    "{link}"
                );
                assert_eq!(
                    a.bytes().await.unwrap(),
                    b.bytes().await.unwrap(),
                    "{what}: body"
                );
            }
        }
    }
    // A feed that does not exist is the router's 404 either way; POST is not a poll.
    assert_eq!(d.get("/feeds/nope.xml").await.status(), 404);
    let post = d
        .client
        .post(format!("{}/feeds/rss.xml", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    d.stop().await;
}
