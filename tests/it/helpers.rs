//! Building test publications and talking to them.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use chrono::Utc;
use herald::config::Site;
use herald::publish::{Build, Publisher};
use herald::store::Store;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const BASE: &str = "https://news.example.com/";

/// A publication folder in a temporary directory.
pub struct Publication {
    pub dir: TempDir,
}

impl Publication {
    /// A publication with `[site]` only, plus `extra` appended to herald.toml.
    pub fn with_config(extra: &str) -> Publication {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("articles")).unwrap();
        let toml = format!(
            "[site]\ntitle = \"Test News\"\ndescription = \"Tests & <checks>\"\nbase_url = \"{BASE}\"\ntimezone = \"Europe/Berlin\"\nauthor = {{ name = \"Desk\", email = \"desk@news.example.com\" }}\n{extra}\n"
        );
        std::fs::write(dir.path().join("herald.toml"), toml).unwrap();
        Publication { dir }
    }

    pub fn new() -> Publication {
        Publication::with_config("")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `articles/<rel>`.
    pub fn article(&self, rel: &str, text: &str) -> PathBuf {
        self.write_bytes(&format!("articles/{rel}"), text.as_bytes())
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn site(&self) -> Arc<Site> {
        Arc::new(Site::open(self.path()).expect("test config is valid"))
    }

    /// One build with a fresh publisher (as `herald build` does).
    pub async fn build(&self) -> Build {
        let site = self.site();
        let store = Store::open(&site.store_path().unwrap()).await.unwrap();
        let build = Publisher::new(site, store.clone())
            .build(Utc::now())
            .await
            .unwrap();
        store.close().await;
        build
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Parses `feeds/<rel>` with feed-rs, content left exactly as written.
    pub fn feed(&self, rel: &str) -> feed_rs::model::Feed {
        parse_feed(&self.read(&format!("feeds/{rel}")))
    }

    /// Runs the real `herald` binary on this publication.
    pub fn herald(&self, args: &[&str]) -> Output {
        herald_in(self.path(), args)
    }
}

pub fn parse_feed(bytes: &[u8]) -> feed_rs::model::Feed {
    feed_rs::parser::Builder::new()
        .sanitize_content(false)
        .build()
        .parse(bytes)
        .unwrap_or_else(|e| {
            panic!(
                "feed-rs cannot parse our feed: {e}\n{}",
                String::from_utf8_lossy(bytes)
            )
        })
}

pub fn herald_in(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--site")
        .arg(dir)
        .args(args)
        .env_remove("HERALD_SITE")
        .env("HERALD_LOG", "warn")
        .output()
        .expect("running herald")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `herald run` in this process, on a port of its own.
pub struct Daemon {
    pub url: String,
    pub client: reqwest::Client,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    pub async fn start(p: &Publication) -> Daemon {
        Daemon::start_with(p, herald::config::Secrets::default()).await
    }

    pub async fn start_with(p: &Publication, secrets: herald::config::Secrets) -> Daemon {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token = CancellationToken::new();
        let handle = tokio::spawn(herald::daemon::run(
            p.site(),
            listener,
            secrets,
            token.clone(),
        ));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        // Ready when /healthz answers.
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{url}/healthz")).send().await
                && r.status().is_success()
            {
                return Daemon {
                    url,
                    client,
                    token,
                    handle,
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the daemon did not come up");
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.handle)
            .await
            .expect("the daemon stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

/// Polls `check` every 50 ms until it is true or `secs` have passed; returns how long it took.
pub async fn eventually<F, Fut>(secs: f64, mut check: F) -> Option<std::time::Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

/// Plain text of a feed-rs Text, decoding the HTML that Atom `type="html"` carries.
pub fn text(t: &Option<feed_rs::model::Text>) -> String {
    let t = t.as_ref().expect("text present");
    if t.content_type.essence().to_string() == "text/html" {
        decode(&t.content)
    } else {
        t.content.clone()
    }
}

pub fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
