//! A real browser: headless Chromium, driven through ChromeDriver's WebDriver API, fills in
//! the sign-up form, follows the confirmation link from the email the SMTP server received,
//! and unsubscribes. A screenshot of every page is saved under `target/tmp/browser/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them
//! the test is listed as ignored, with the reason.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use herald::config::Secrets;
use herald::subscribers::tokens::{Claims, Keys, Purpose};
use serde_json::{Value, json};

use super::helpers::*;
use super::smtp::SmtpServer;

const SECRET: &str = "browser-secret-0123456789";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    url: String,
    session: String,
    http: reqwest::Client,
    shots: std::path::PathBuf,
    count: usize,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let ready = eventually(15.0, || async {
            http.get(format!("{url}/status"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        })
        .await;
        assert!(ready.is_some(), "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1000,1100",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v: Value = http
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Driver {
            child,
            url,
            session,
            http,
            shots,
            count: 0,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let r = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Waits (up to 10 s) until the page's text contains `needle`: a click that submits a
    /// form returns before the next page has loaded.
    async fn wait_for_text(&self, needle: &str) {
        let url = format!("{}/session/{}/source", self.url, self.session);
        let mut last = String::new();
        for _ in 0..200 {
            if let Ok(r) = self.http.get(&url).send().await
                && let Ok(v) = r.json::<Value>().await
                && let Some(src) = v["value"].as_str()
            {
                if src.contains(needle) {
                    return;
                }
                last = src.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never showed {needle:?}; last page:\n{last}");
    }

    /// Saves a screenshot as `NN-name.png` and returns its path.
    async fn shot(&mut self, name: &str) -> std::path::PathBuf {
        self.count += 1;
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", json!({}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.count));
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.url, self.session))
            .send()
            .await;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg_attr(
    not(herald_browser),
    ignore = "Chromium is not installed (apt-get install chromium chromium-driver): the browser test did not run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_signs_up_confirms_and_unsubscribes_in_a_real_browser() {
    let smtp = SmtpServer::start();
    let p = Publication::with_config(
        "[[newsletter]]\nid = \"weekly\"\ntitle = \"The Weekly\"\nschedule = \"0 7 * * Fri\"\n\n[[newsletter]]\nid = \"daily\"\ntitle = \"Daily\"\nschedule = \"0 7 * * *\"\n",
    );
    let secrets = Secrets {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        secret: Some(SECRET.into()),
        admin_token: None,
    };
    let d = Daemon::start_with(&p, secrets).await;
    let mut b = Driver::start().await;

    b.go(&format!("{}/subscribe", d.url)).await;
    b.type_into("#email", "browser@example.org").await;
    b.type_into("#name", "Bea Browser").await;
    b.click("input[value=daily]").await; // untick Daily: only the Weekly
    b.shot("subscribe-form").await;
    b.click("button[type=submit]").await;
    b.wait_for_text("Check your inbox").await;
    b.shot("check-your-inbox").await;

    assert!(
        smtp.wait_for(1, Duration::from_secs(10)),
        "the confirmation email arrives"
    );
    let received = smtp.messages();
    let parsed = mail_parser::MessageParser::default()
        .parse(&received[0].data)
        .unwrap();
    let text = parsed.body_text(0).unwrap().into_owned();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/confirm/"))
        .expect("a confirm link")
        .to_string();
    let link = link.replace(BASE, &format!("{}/", d.url));

    b.go(&link).await;
    b.wait_for_text("browser@example.org").await;
    b.shot("confirm-page").await;
    b.click("button[type=submit]").await;
    b.wait_for_text("You are subscribed").await;
    b.shot("confirmed").await;

    let store = herald::store::Store::open(&p.site().store_path().unwrap())
        .await
        .unwrap();
    let email = herald::subscribers::Email::parse("browser@example.org").unwrap();
    let s = store.subscriber_by_email(&email).await.unwrap().unwrap();
    assert_eq!(s.newsletters, vec!["weekly".to_string()]);
    let token = Keys::from_secrets(SECRET).unwrap().sign(&Claims {
        purpose: Purpose::Unsubscribe,
        subscriber: s.id,
        newsletter: Some("weekly".into()),
        nonce: None,
        expires: None,
    });
    b.go(&format!("{}/unsubscribe/{token}", d.url)).await;
    b.wait_for_text("Unsubscribe from The Weekly").await;
    b.shot("unsubscribe-page").await;
    b.click("form button").await;
    b.wait_for_text("You are unsubscribed").await;
    let last = b.shot("unsubscribed").await;
    let s = store.subscriber_by_email(&email).await.unwrap().unwrap();
    assert_eq!(s.status, herald::subscribers::Status::Unsubscribed);
    store.close().await;
    b.quit().await;
    d.stop().await;
    println!("screenshots in {}", last.parent().unwrap().display());
}
