//! Building test publications and talking to them.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use herald::config::Site;
use herald::publish::{Build, Publisher};
use herald::store::Store;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const BASE: &str = "https://news.example.com/";

/// How long anything may take to start (a daemon in this process, a `herald` child, a
/// browser): generous, since two cores are shared by parallel tests and a fresh build.
pub const STARTUP: Duration = Duration::from_secs(30);
/// How long a test waits for something that should happen soon (a rebuild after an edit,
/// an email, a page changing). Never a speed check: only a hang becomes a failure.
pub const SOON: f64 = 15.0;
/// How long a child process may take to exit once asked to.
pub const EXIT: Duration = Duration::from_secs(40);

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
        // On PostgreSQL runs, the publication's own database exists before anything opens it.
        let _ = store_url_for(dir.path());
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

    /// The configuration, read with an empty environment: no `HERALD_*` variable of the
    /// shell running the tests reaches it.
    pub fn site(&self) -> Arc<Site> {
        Arc::new(site_in(self.path()))
    }

    /// One build with a fresh publisher (as `herald build` does).
    pub async fn build(&self) -> Build {
        self.build_at(Utc::now()).await
    }

    /// One build with a fresh publisher, as if run at `now`.
    pub async fn build_at(&self, now: chrono::DateTime<Utc>) -> Build {
        let site = self.site();
        let store = Store::open(&site.store_location().unwrap()).await.unwrap();
        let build = Publisher::new(site, store.clone())
            .build(now)
            .await
            .unwrap();
        store.close().await;
        build
    }

    /// Throws the store away, so the next command starts with a fresh one: the SQLite
    /// folder is deleted, or the PostgreSQL database dropped and made again.
    pub fn forget_store(&self) {
        match test_database_server() {
            None => std::fs::remove_dir_all(self.path().join("subscribers")).unwrap(),
            Some(server) => {
                let name = database_name(self.path());
                on_server(
                    &server,
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
                on_server(&server, format!("CREATE DATABASE {name}"));
            }
        }
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

/// A publication's PostgreSQL database is dropped with it.
impl Drop for Publication {
    fn drop(&mut self) {
        if let Some(server) = test_database_server() {
            let name = database_name(self.path());
            on_server(
                &server,
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// `HERALD_TEST_DATABASE_URL`: a PostgreSQL server (any database on it) the tests may create
/// databases on. Unset: every test store is a SQLite file in its publication folder.
pub fn test_database_server() -> Option<String> {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// The store URL a test publication in `dir` uses: None on SQLite runs (herald.toml's
/// default file); on PostgreSQL runs a database of its own on the test server, made on first
/// use, passed to herald as `HERALD_STORE_URL` like a deployment would.
pub fn store_url_for(dir: &Path) -> Option<String> {
    static MADE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let server = test_database_server()?;
    let name = database_name(dir);
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if !made.contains(&name) {
        on_server(&server, format!("CREATE DATABASE {name}"));
        made.push(name.clone());
    }
    let mut url = url::Url::parse(&server).expect("HERALD_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// The database of the publication in `dir` (a name only letters, digits and `_`).
fn database_name(dir: &Path) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes());
    format!("herald_test_{}", &hex::encode(hash)[..20])
}

/// Runs one statement on the test server, from sync code inside or outside a runtime.
fn on_server(server: &str, sql: String) {
    let server = server.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&server)
                .await
                .unwrap_or_else(|e| panic!("HERALD_TEST_DATABASE_URL: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = c.close().await;
        })
    })
    .join()
    .expect("test database statement");
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

/// The configuration in `dir`, read with an empty environment (but for the test store's
/// `HERALD_STORE_URL` on PostgreSQL runs).
pub fn site_in(dir: &Path) -> Site {
    let env: Vec<(String, String)> = store_url_for(dir)
        .map(|u| ("HERALD_STORE_URL".to_string(), u))
        .into_iter()
        .collect();
    Site::open_with_env(dir, env).expect("test config is valid")
}

/// The real `herald` binary on the publication in `dir`, with an environment of its own:
/// the test's process environment is cleared (an exported `HERALD_SMTP_URL` or
/// `HERALD_SITE_BASE_URL` must not reach a test), only `PATH`, `HOME` and `TMPDIR` are kept,
/// and `HERALD_LOG=warn` (plus `HERALD_STORE_URL` on PostgreSQL runs). A test adds the `HERALD_*` variables it is about with `.env(…)`.
pub fn herald_command(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    c.env_clear();
    for keep in ["PATH", "HOME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            c.env(keep, v);
        }
    }
    if let Some(url) = store_url_for(dir) {
        c.env("HERALD_STORE_URL", url);
    }
    c.env("HERALD_LOG", "warn").arg("--site").arg(dir);
    c
}

pub fn herald_in(dir: &Path, args: &[&str]) -> Output {
    herald_command(dir)
        .args(args)
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
        Daemon::start_with_options(p, secrets, herald::daemon::Options::default()).await
    }

    pub async fn start_with_options(
        p: &Publication,
        secrets: herald::config::Secrets,
        options: herald::daemon::Options,
    ) -> Daemon {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token = CancellationToken::new();
        let handle = tokio::spawn(herald::daemon::run_with(
            p.site(),
            listener,
            secrets,
            token.clone(),
            options,
        ));
        // A request that hangs fails the test instead of hanging it.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        // Ready when /healthz answers.
        let up = eventually(STARTUP.as_secs_f64(), || async {
            client
                .get(format!("{url}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            up.is_some(),
            "the daemon did not come up within {STARTUP:?}"
        );
        Daemon {
            url,
            client,
            token,
            handle,
        }
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
        tokio::time::timeout(EXIT, self.handle)
            .await
            .expect("the daemon stops")
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
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One last look, so a slow final check is not lost to the clock.
    if check().await {
        return Some(start.elapsed());
    }
    None
}

/// A `herald` child process (see [`herald_command`]) whose standard error is read line by
/// line on a thread, so a test can wait for a line with a timeout instead of blocking on a
/// pipe. Killed when dropped.
pub struct Child {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Child {
    /// Starts `command` (standard output discarded).
    pub fn spawn(mut command: std::process::Command) -> Child {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting herald");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let log: Arc<Mutex<Vec<String>>> = Default::default();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Child { child, lines, log }
    }

    /// `herald run` on `p`, with `env` added to its otherwise empty environment; returns
    /// once it serves (its address is `url`).
    pub fn run(p: &Publication, env: &[(&str, &str)]) -> (Child, String) {
        let mut c = herald_command(p.path());
        c.arg("run")
            .env("HERALD_LOG", "info")
            .env("HERALD_HTTP_BIND", "127.0.0.1:0");
        for (k, v) in env {
            c.env(k, v);
        }
        let child = Child::spawn(c);
        let line = child.line(STARTUP, |l| {
            l.contains("serving ") && l.contains(" at http://")
        });
        let at = line.rfind(" at http://").unwrap() + 4;
        let url: String = line[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        (child, url.trim_end_matches('/').to_string())
    }

    /// Waits for the next line of standard error that `wanted` accepts; panics (with the
    /// log) when the process closes its standard error or `timeout` passes first.
    pub fn line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no such line within {timeout:?}:\n{}", self.log())
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("herald closed its standard error first:\n{}", self.log())
                }
            }
        }
    }

    /// Everything written to standard error so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM (the process must still be there to get it).
    pub fn term(&self) {
        sigterm(&self.child);
    }

    /// Waits for the process to exit, at most `timeout`; a hang is killed and fails the test.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        wait_child(&mut self.child, timeout, &|| {
            self.log.lock().unwrap().join("\n")
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to `child`, which must still be there to get it.
pub fn sigterm(child: &std::process::Child) {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = Pid::from_raw(child.id() as i32).expect("a child has a pid");
    kill_process(pid, Signal::TERM).expect("the child is alive to get SIGTERM");
}

/// Waits for `child` to exit, at most `timeout`; on a hang kills it and panics with `log()`.
pub fn wait_child(
    child: &mut std::process::Child,
    timeout: Duration,
    log: &dyn Fn() -> String,
) -> ExitStatus {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit within {timeout:?}:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
