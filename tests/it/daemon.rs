//! `herald run` keeps the feeds current without a restart.

use chrono::Utc;

use super::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_changed_and_deleted_articles_show_without_a_restart() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: First\ndate: 2026-05-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    assert!(d.text("/feeds/rss.xml").await.contains("First"));

    p.article(
        "b.md",
        "---\ntitle: Second article\ndate: 2026-05-02\n---\ny\n",
    );
    let took = eventually(SOON, || async {
        d.text("/feeds/rss.xml").await.contains("Second article")
    })
    .await;
    assert!(took.is_some(), "an added article did not appear");
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
        eventually(SOON, || async {
            d.text("/feeds/atom.xml").await.contains("First, edited")
        })
        .await
        .is_some()
    );

    std::fs::remove_file(p.path().join("articles/b.md")).unwrap();
    assert!(
        eventually(SOON, || async {
            !d.text("/feeds/feed.json").await.contains("Second article")
        })
        .await
        .is_some()
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_rescan_finds_a_change_no_file_event_announced() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: First\ndate: 2026-05-01\n---\nx\n");
    // No file watcher (as when events are lost): only the periodic rescan, here every
    // second instead of every minute, can see the new file.
    let options = herald::daemon::Options {
        rescan: std::time::Duration::from_secs(1),
        watch: false,
    };
    let d = Daemon::start_with_options(&p, Default::default(), options).await;
    assert!(d.text("/feeds/rss.xml").await.contains("First"));
    let first_build = built_at(&d).await;
    p.article("b.md", "---\ntitle: Second\ndate: 2026-05-02\n---\ny\n");
    assert!(
        eventually(SOON, || async {
            d.text("/feeds/rss.xml").await.contains("Second")
        })
        .await
        .is_some(),
        "the rescan did not find the new article"
    );
    assert_ne!(built_at(&d).await, first_build);
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
    let took = eventually(SOON, || async {
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
        eventually(SOON, || async {
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
        eventually(SOON, || async { pings.lock().unwrap().len() == 3 })
            .await
            .is_some()
    );
    p.article("b.md", "---\ntitle: Second\ndate: 2026-05-02\n---\ny\n");
    let got = eventually(SOON, || async { pings.lock().unwrap().len() >= 6 }).await;
    assert!(
        got.is_some(),
        "one ping per changed file: {:?}",
        pings.lock().unwrap()
    );
    let mut all = pings.lock().unwrap()[3..].to_vec();
    all.sort();
    let mut topics: Vec<String> = ["rss.xml", "atom.xml", "feed.json"]
        .iter()
        .map(|f| format!("hub.mode=publish&hub.url=https%3A%2F%2Fnews.example.com%2Ffeeds%2F{f}"))
        .collect();
    topics.sort();
    assert_eq!(all, topics, "each changed file once");
    d.stop().await;
}

async fn built_at(d: &Daemon) -> String {
    let health: serde_json::Value = d.get("/healthz").await.json().await.unwrap();
    health["built_at"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_articles_triggers_no_rebuild() {
    let p = Publication::new();
    for i in 0..20 {
        p.article(
            &format!("n{i}.md"),
            &format!("---\ntitle: Note {i}\ndate: 2026-05-01\n---\nx\n"),
        );
    }
    let d = Daemon::start(&p).await;
    // No settling pause: the first build's own reads must not trigger a rebuild either.
    let before = built_at(&d).await;
    // Readers (a backup, an editor's file browser, herald itself) for longer than a second,
    // pausing longer than the rebuild debounce between rounds.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(3000);
    while std::time::Instant::now() < until {
        for i in 0..20 {
            std::fs::read(p.path().join(format!("articles/n{i}.md"))).unwrap();
        }
        let _ = std::fs::read_dir(p.path().join("articles"))
            .unwrap()
            .count();
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    assert_eq!(
        built_at(&d).await,
        before,
        "reading files rebuilt the feeds"
    );
    // A write still does.
    p.article("n0.md", "---\ntitle: Note zero\ndate: 2026-05-01\n---\nx\n");
    assert!(
        eventually(SOON, || async {
            d.text("/feeds/rss.xml").await.contains("Note zero")
        })
        .await
        .is_some()
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_articles_folder_keeps_serving_the_feeds_until_it_is_back() {
    let p = Publication::new();
    p.article(
        "a.md",
        "---\ntitle: Alpha\ndate: 2026-05-01\ntags: [news]\n---\nx\n",
    );
    // A child process, so the test can wait for the rebuild that held the feeds (its log
    // line) instead of sleeping.
    let h = RunningHerald::start(&p).await;
    let get = |path: &str| {
        let url = format!("{}{path}", h.url);
        async move {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(url)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (_, rss) = get("/feeds/rss.xml").await;
    assert!(rss.contains("Alpha"));

    let articles = p.path().join("articles");
    let old = p.path().join("articles.old");
    std::fs::rename(&articles, &old).unwrap();
    // The rebuild notices and keeps the feeds, on disk too, tag feeds included.
    h.child.line(STARTUP, |l| {
        l.contains("articles") && l.contains("kept the previous feeds") && !l.contains("holds no")
    });
    assert_eq!(get("/feeds/rss.xml").await.1, rss);
    assert_eq!(get("/feeds/tags/news/rss.xml").await.0, 200);
    assert!(p.path().join("feeds/tags/news/rss.xml").exists());
    // Briefly back but empty: still kept.
    std::fs::create_dir(&articles).unwrap();
    h.child.line(STARTUP, |l| {
        l.contains("holds no article files") && l.contains("kept the previous feeds")
    });
    assert_eq!(get("/feeds/rss.xml").await.1, rss);
    assert!(p.path().join("feeds/tags/news/rss.xml").exists());

    // The deploy finishes: the new folder is watched like the old one.
    std::fs::remove_dir(&articles).unwrap();
    std::fs::rename(&old, &articles).unwrap();
    p.article(
        "b.md",
        "---\ntitle: Beta arrives\ndate: 2026-05-02\n---\nx\n",
    );
    assert!(
        eventually(SOON, || async { h.feed().await.contains("Beta arrives") })
            .await
            .is_some(),
        "a change in the folder that came back was not seen"
    );
    p.article(
        "b.md",
        "---\ntitle: Beta edited\ndate: 2026-05-02\n---\nx\n",
    );
    assert!(
        eventually(SOON, || async { h.feed().await.contains("Beta edited") })
            .await
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_that_panics_is_started_again_with_a_backoff() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = Arc::new(AtomicUsize::new(0));
    let token = tokio_util::sync::CancellationToken::new();
    let started = tokio::time::Instant::now();
    let supervised = tokio::spawn(herald::daemon::supervise("a test task", token.clone(), {
        let runs = runs.clone();
        let token = token.clone();
        move || {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            let token = token.clone();
            async move {
                match n {
                    0..=2 => panic!("failure number {n}"),
                    3 => {} // ends on its own while herald runs: also restarted
                    _ => token.cancelled().await,
                }
            }
        }
    }));
    let waited = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while runs.load(Ordering::SeqCst) < 5 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "only {} runs", runs.load(Ordering::SeqCst));
    // Waits of 1, 2, 4 and 8 s between the five runs.
    let took = started.elapsed().as_secs_f64();
    assert!((15.0..16.0).contains(&took), "{took} s");
    token.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), supervised)
        .await
        .expect("supervise returns on shutdown")
        .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        5,
        "not started again after shutdown"
    );
}

/// `herald run` as a separate process, its log captured; killed when dropped.
struct RunningHerald {
    child: Child,
    url: String,
}

impl RunningHerald {
    async fn start(p: &Publication) -> RunningHerald {
        let (child, url) = Child::run(p, &[]);
        RunningHerald { child, url }
    }

    async fn feed(&self) -> String {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/feeds/rss.xml", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn log(&self) -> String {
        self.child.log()
    }

    /// User plus system CPU time the process has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.child.id())).unwrap();
        // The fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_logged_once_and_again_when_fixed_and_the_idle_daemon_rests() {
    let p = Publication::new();
    for i in 0..300 {
        p.article(
            &format!("n{i:03}.md"),
            &format!("---\ntitle: Note {i}\ndate: 2026-05-01\n---\nSome text.\n"),
        );
    }
    p.article("bad.md", "---\ntitle: [broken\n---\nx\n");
    let h = RunningHerald::start(&p).await;

    // Five rebuilds caused by edits to another file.
    for round in 0..5 {
        let title = format!("Edited {round}");
        p.article(
            "n000.md",
            &format!("---\ntitle: {title}\ndate: 2026-05-01\n---\nSome text.\n"),
        );
        assert!(
            eventually(SOON, || async { h.feed().await.contains(&title) })
                .await
                .is_some(),
            "{}",
            h.log()
        );
    }
    // Idle: nothing changes, nothing is logged, the process uses (almost) no CPU.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (ticks, log_len) = (h.cpu_ticks(), h.log().len());
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let used = h.cpu_ticks() - ticks;
    assert!(used <= 10, "{used} ticks of CPU in 3 idle seconds");
    assert_eq!(h.log().len(), log_len, "an idle daemon wrote to its log");

    p.article("bad.md", "---\ntitle: Mended\ndate: 2026-05-02\n---\nx\n");
    assert!(
        eventually(SOON, || async { h.feed().await.contains("Mended") })
            .await
            .is_some()
    );
    let log = h.log();
    let about_bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("articles/bad.md"))
        .collect();
    assert_eq!(about_bad.len(), 2, "{log}");
    assert!(
        about_bad[0].contains("WARN") && about_bad[0].contains("articles/bad.md:"),
        "{log}"
    );
    assert!(about_bad[1].contains("articles/bad.md: fixed"), "{log}");
}

/// The value of one series (`name{label="value"}` exactly as rendered) in a Prometheus
/// text page.
fn series(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `/metrics` of a `herald run` process of the test's own: the process-wide recorder counts
/// this test's traffic only, so the values can be exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_deliveries_replies_refusals_rows_builds_and_requests() {
    use super::smtp::{Faults, SmtpServer};
    let smtp = SmtpServer::with_faults(Faults {
        always_550: vec!["gone@example.org".into()],
        policy_554: vec!["strict@example.org".into()],
        ..Default::default()
    });
    let p = Publication::with_config(
        "[mail]\nfrom = \"News <news@news.example.com>\"\n\n[[newsletter]]\nid = \"now\"\ntitle = \"Now\"\nschedule = \"* * * * * *\"\ntimezone = \"UTC\"\n",
    );
    p.article("a.md", "---\ntitle: First\ndate: 2026-05-01\n---\nx\n");
    for who in ["ok", "gone", "strict"] {
        let o = p.herald(&[
            "subscribers",
            "add",
            &format!("{who}@example.org"),
            "--confirmed",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let relay = format!("smtp://127.0.0.1:{}", smtp.port);
    let (child, url) = Child::run(
        &p,
        &[
            ("HERALD_SMTP_URL", &relay),
            ("HERALD_SECRET", "test-secret-0123456789abcdef"),
        ],
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let scrape = || async {
        client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // The first fire time sends the issue to all three.
    let delivered = eventually(SOON, || async {
        let page = scrape().await;
        series(&page, "herald_deliveries_total{result=\"sent\"}") == Some(1.0)
            && series(&page, "herald_deliveries_total{result=\"failed\"}") == Some(2.0)
    })
    .await;
    assert!(delivered.is_some(), "{}\n{}", scrape().await, child.log());
    // Three feed requests of this test's own, and an edit that the builder rebuilds.
    for _ in 0..3 {
        let r = client
            .get(format!("{url}/feeds/rss.xml"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    p.article(
        "a.md",
        "---\ntitle: First, edited\ndate: 2026-05-01\n---\nx\n",
    );
    let rebuilt = eventually(SOON, || async {
        series(&scrape().await, "herald_feed_build_seconds_count").is_some_and(|n| n >= 1.0)
    })
    .await;
    assert!(rebuilt.is_some(), "{}", scrape().await);

    let page = scrape().await;
    for (name, want) in [
        ("herald_deliveries_total{result=\"sent\"}", 1.0),
        ("herald_deliveries_total{result=\"failed\"}", 2.0),
        ("herald_smtp_replies_total{class=\"5xx\"}", 2.0),
        ("herald_policy_rejections_total{code=\"5.7.1\"}", 1.0),
        // The ledger's open rows: nothing is left to send.
        ("herald_ledger_rows{status=\"queued\"}", 0.0),
        ("herald_ledger_rows{status=\"sending\"}", 0.0),
        ("herald_ledger_rows{status=\"deferred\"}", 0.0),
        (
            "herald_http_requests_total{route=\"/feeds/{*path}\",status=\"200\"}",
            3.0,
        ),
    ] {
        assert_eq!(series(&page, name), Some(want), "{name} in\n{page}");
    }
    assert_eq!(
        smtp.messages()
            .iter()
            .flat_map(|m| m.rcpt.clone())
            .collect::<Vec<_>>(),
        ["ok@example.org"]
    );
}
