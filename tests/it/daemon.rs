//! `herald run` keeps the feeds current without a restart.

use chrono::Utc;

use super::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_changed_and_deleted_articles_show_within_two_seconds() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: First\ndate: 2026-05-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    assert!(d.text("/feeds/rss.xml").await.contains("First"));

    p.article(
        "b.md",
        "---\ntitle: Second article\ndate: 2026-05-02\n---\ny\n",
    );
    let took = eventually(2.0, || async {
        d.text("/feeds/rss.xml").await.contains("Second article")
    })
    .await;
    assert!(took.is_some(), "an added article did not appear within 2 s");
    assert!(
        p.read("feeds/rss.xml")
            .windows(14)
            .any(|w| w == b"Second article"),
        "the file on disk follows"
    );

    p.article(
        "a.md",
        "---\ntitle: First, edited\ndate: 2026-05-01\n---\nx\n",
    );
    assert!(
        eventually(2.0, || async {
            d.text("/feeds/atom.xml").await.contains("First, edited")
        })
        .await
        .is_some()
    );

    std::fs::remove_file(p.path().join("articles/b.md")).unwrap();
    assert!(
        eventually(2.0, || async {
            !d.text("/feeds/feed.json").await.contains("Second article")
        })
        .await
        .is_some()
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_article_appears_when_due_without_a_restart() {
    let p = Publication::new();
    let due = Utc::now() + chrono::Duration::seconds(2);
    p.article(
        "soon.md",
        &format!(
            "---\ntitle: Coming soon\ndate: {}\n---\nx\n",
            due.to_rfc3339()
        ),
    );
    p.article("old.md", "---\ntitle: Old\ndate: 2026-01-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    assert!(!d.text("/feeds/rss.xml").await.contains("Coming soon"));
    let took = eventually(5.0, || async {
        d.text("/feeds/rss.xml").await.contains("Coming soon")
    })
    .await;
    assert!(took.is_some(), "the scheduled article never appeared");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_other_articles_served() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: Steady\ndate: 2026-05-01\n---\nx\n");
    p.article("b.md", "---\ntitle: Wobbly\ndate: 2026-05-02\n---\nx\n");
    let d = Daemon::start(&p).await;
    p.article("b.md", "---\ntitle: [broken\n---\nx\n");
    assert!(
        eventually(2.0, || async {
            !d.text("/feeds/rss.xml").await.contains("Wobbly")
        })
        .await
        .is_some()
    );
    assert!(d.text("/feeds/rss.xml").await.contains("Steady"));
    let health: serde_json::Value = d.get("/healthz").await.json().await.unwrap();
    assert_eq!(health["problems"], 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_feeds_are_pinged_to_the_websub_hub_after_they_are_live() {
    use std::sync::{Arc, Mutex};
    // A hub: records every form it is sent.
    let pings: Arc<Mutex<Vec<String>>> = Default::default();
    let hub = axum::Router::new().route(
        "/",
        axum::routing::post({
            let pings = pings.clone();
            move |body: String| async move {
                pings.lock().unwrap().push(body);
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hub).await.unwrap() });

    let p = Publication::with_config(&format!(
        "[feeds]\nwebsub_hub = \"{hub_url}\"\nper_tag = false\n"
    ));
    p.article("a.md", "---\ntitle: First\ndate: 2026-05-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    // The first build wrote three new files: they are announced once served.
    assert!(
        eventually(5.0, || async { pings.lock().unwrap().len() == 3 })
            .await
            .is_some()
    );
    p.article("b.md", "---\ntitle: Second\ndate: 2026-05-02\n---\ny\n");
    let got = eventually(5.0, || async { pings.lock().unwrap().len() >= 6 }).await;
    assert!(
        got.is_some(),
        "one ping per changed file: {:?}",
        pings.lock().unwrap()
    );
    let all = pings.lock().unwrap()[3..].to_vec();
    for f in ["rss.xml", "atom.xml", "feed.json"] {
        let topic =
            format!("hub.mode=publish&hub.url=https%3A%2F%2Fnews.example.com%2Ffeeds%2F{f}");
        assert!(all.contains(&topic), "{topic} in {all:?}");
    }
    d.stop().await;
}
