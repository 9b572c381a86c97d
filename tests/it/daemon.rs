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
    // Let anything queued by the first build settle.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
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
        eventually(3.0, || async {
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
    let d = Daemon::start(&p).await;
    let rss = d.text("/feeds/rss.xml").await;
    assert!(rss.contains("Alpha"));

    let articles = p.path().join("articles");
    let old = p.path().join("articles.old");
    std::fs::rename(&articles, &old).unwrap();
    // Longer than a debounced rebuild; the feeds stay, on disk too, tag feeds included.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(d.text("/feeds/rss.xml").await, rss);
    assert_eq!(d.get("/feeds/tags/news/rss.xml").await.status(), 200);
    assert!(p.path().join("feeds/tags/news/rss.xml").exists());
    // Briefly back but empty: still kept.
    std::fs::create_dir(&articles).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(d.text("/feeds/rss.xml").await, rss);
    assert!(p.path().join("feeds/tags/news/rss.xml").exists());

    // The deploy finishes: the new folder is watched like the old one.
    std::fs::remove_dir(&articles).unwrap();
    std::fs::rename(&old, &articles).unwrap();
    p.article(
        "b.md",
        "---\ntitle: Beta arrives\ndate: 2026-05-02\n---\nx\n",
    );
    assert!(
        eventually(3.0, || async {
            d.text("/feeds/rss.xml").await.contains("Beta arrives")
        })
        .await
        .is_some(),
        "a change in the folder that came back was not seen"
    );
    p.article(
        "b.md",
        "---\ntitle: Beta edited\ndate: 2026-05-02\n---\nx\n",
    );
    assert!(
        eventually(3.0, || async {
            d.text("/feeds/rss.xml").await.contains("Beta edited")
        })
        .await
        .is_some()
    );
    d.stop().await;
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
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
}

impl RunningHerald {
    async fn start(p: &Publication) -> RunningHerald {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = p.path().join("herald.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--site")
            .arg(p.path())
            .arg("run")
            .env_remove("HERALD_SITE")
            .env("HERALD_LOG", "info")
            .env("HERALD_HTTP_BIND", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let h = RunningHerald {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let up = eventually(20.0, || async {
            client
                .get(format!("{}/healthz", h.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up.is_some(), "herald run did not come up:\n{}", h.log());
        h
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
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// User plus system CPU time the process has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for RunningHerald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
            eventually(5.0, || async { h.feed().await.contains(&title) })
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
        eventually(5.0, || async { h.feed().await.contains("Mended") })
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
