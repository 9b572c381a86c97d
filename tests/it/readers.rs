//! A real feed reader: Debian's newsboat polls `herald run` the way it polls any site
//! (libcurl, with `If-None-Match` and an `If-Modified-Since` time condition) and must see
//! every change: a new article, a back-dated one, an edited title, in RSS and in Atom.
//!
//! Needs `/usr/bin/newsboat` (`.ci/run` installs it); without it the test is listed as
//! ignored, with the reason.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::helpers::*;

/// newsboat with its own cache, configuration and home, reloading headless.
struct Reader {
    dir: tempfile::TempDir,
}

impl Reader {
    fn new(urls: &[String]) -> Reader {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("urls"), urls.join("\n") + "\n").unwrap();
        std::fs::write(
            dir.path().join("config"),
            "reload-threads 1\ndownload-timeout 10\ndownload-retries 1\n",
        )
        .unwrap();
        Reader { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `newsboat -x reload`, cut off after 60 s.
    async fn reload(&self) {
        let mut child = Command::new("/usr/bin/newsboat")
            .arg("-u")
            .arg(self.path("urls"))
            .arg("-c")
            .arg(self.path("cache.db"))
            .arg("-C")
            .arg(self.path("config"))
            .args(["-x", "reload"])
            .env("HOME", self.dir.path())
            .env("LANG", "C.UTF-8")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.path("stdout")).unwrap())
            .stderr(std::fs::File::create(self.path("stderr")).unwrap())
            .spawn()
            .expect("starting newsboat");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("newsboat reload did not finish within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            status.success(),
            "newsboat reload failed ({status}): {}{}",
            std::fs::read_to_string(self.path("stdout")).unwrap_or_default(),
            std::fs::read_to_string(self.path("stderr")).unwrap_or_default()
        );
    }

    /// The titles newsboat holds for one feed, as its cache has them.
    async fn titles(&self, feed: &str) -> Vec<String> {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.path("cache.db"))
            .read_only(true);
        let mut db = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("newsboat's cache");
        let mut titles: Vec<String> = sqlx::query_scalar(
            "SELECT title FROM rss_item WHERE feedurl = $1 AND deleted = 0 ORDER BY title",
        )
        .bind(feed)
        .fetch_all(&mut db)
        .await
        .unwrap();
        db.close().await.unwrap();
        titles.sort();
        titles
    }
}

/// `herald run` serving a publication whose `base_url` is its own address.
struct Server {
    url: String,
    client: reqwest::Client,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(p: &Publication) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::fs::write(
            p.path().join("herald.toml"),
            format!("[site]\ntitle = \"Reader News\"\nbase_url = \"{url}\"\n"),
        )
        .unwrap();
        let token = CancellationToken::new();
        let handle = tokio::spawn(herald::daemon::run(
            p.site(),
            listener,
            herald::config::Secrets::default(),
            token.clone(),
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let server = Server {
            url,
            client,
            token,
            handle,
        };
        let up = eventually(STARTUP.as_secs_f64(), || async {
            server
                .client
                .get(format!("{}healthz", server.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up.is_some(), "herald run did not come up");
        server
    }

    fn feed(&self, file: &str) -> String {
        format!("{}feeds/{file}", self.url)
    }

    /// Waits (at most [`SOON`] seconds) until every feed serves `needle`.
    async fn serves(&self, feeds: &[String], needle: &str) {
        for feed in feeds {
            let got = eventually(SOON, || async {
                match self.client.get(feed).send().await {
                    Ok(r) => r.text().await.is_ok_and(|t| t.contains(needle)),
                    Err(_) => false,
                }
            })
            .await;
            assert!(got.is_some(), "{feed} never served {needle:?}");
        }
    }

    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(EXIT, self.handle)
            .await
            .expect("herald stops")
            .unwrap()
            .unwrap();
    }
}

#[cfg_attr(
    not(herald_newsboat),
    ignore = "newsboat is not installed (apt-get install newsboat): the feed reader test did not run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newsboat_sees_new_back_dated_and_edited_articles_in_rss_and_atom() {
    let p = Publication::new();
    p.article(
        "first.md",
        "---\ntitle: First story\ndate: 2026-05-01T09:00:00Z\n---\nOne.\n",
    );
    p.article(
        "second.md",
        "---\ntitle: Second story\ndate: 2026-05-02T09:00:00Z\n---\nTwo.\n",
    );
    let server = Server::start(&p).await;
    let feeds = vec![server.feed("rss.xml"), server.feed("atom.xml")];
    // One reader per format: newsboat keys items by id alone, and both formats carry the same ids.
    let readers: Vec<(String, Reader)> = feeds
        .iter()
        .map(|f| (f.clone(), Reader::new(std::slice::from_ref(f))))
        .collect();

    let expect = |titles: &[&str]| {
        let mut t: Vec<String> = titles.iter().map(|s| s.to_string()).collect();
        t.sort();
        t
    };
    let check = |step: &'static str, want: Vec<String>| {
        let readers = &readers;
        async move {
            for (feed, reader) in readers {
                reader.reload().await;
                assert_eq!(reader.titles(feed).await, want, "{step}: {feed}");
            }
        }
    };

    check("first reload", expect(&["First story", "Second story"])).await;
    // Reloads with nothing new change nothing (newsboat keeps the validators from the second
    // on, and herald answers 304).
    check("nothing new", expect(&["First story", "Second story"])).await;
    check(
        "still nothing new",
        expect(&["First story", "Second story"]),
    )
    .await;

    p.article(
        "third.md",
        "---\ntitle: Third story\ndate: 2026-05-03T09:00:00Z\n---\nThree.\n",
    );
    server.serves(&feeds, "Third story").await;
    check(
        "a new article",
        expect(&["First story", "Second story", "Third story"]),
    )
    .await;

    // Dated before every other one: the newest entry's date does not move.
    p.article(
        "older.md",
        "---\ntitle: Back-dated story\ndate: 2025-01-01T09:00:00Z\n---\nZero.\n",
    );
    server.serves(&feeds, "Back-dated story").await;
    check(
        "a back-dated article",
        expect(&[
            "Back-dated story",
            "First story",
            "Second story",
            "Third story",
        ]),
    )
    .await;

    // Only the title changes: no date does.
    p.article(
        "second.md",
        "---\ntitle: Second story, corrected\ndate: 2026-05-02T09:00:00Z\n---\nTwo.\n",
    );
    server.serves(&feeds, "Second story, corrected").await;
    check(
        "an edited title",
        expect(&[
            "Back-dated story",
            "First story",
            "Second story, corrected",
            "Third story",
        ]),
    )
    .await;

    server.stop().await;
}
