//! A real browser: headless Chromium, driven through ChromeDriver's WebDriver API, reads the
//! publication (home, article and tag pages, the archive, the not-found page), fills in the
//! sign-up form, follows the confirmation link from the email the SMTP server received, and
//! leaves one newsletter. Every page is checked with axe-core, the accessibility engine
//! behind Lighthouse and many browser extensions (any violation fails), at a phone's width
//! (375 px) and a desktop's (1280 px), and must not scroll sideways on the phone. A
//! screenshot of every page at both widths is saved under `target/tmp/browser/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them
//! the test is listed as ignored, with the reason. axe-core comes from the npm registry
//! (`npm install`, pinned to [`AXE_VERSION`]) into `target/tmp/axe-core/` the first time.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use herald::config::Secrets;
use herald::subscribers::tokens::{Claims, Keys, Purpose};
use serde_json::{Value, json};

use super::helpers::*;
use super::pages::{Local, NEWSLETTERS, write_articles};
use super::smtp::SmtpServer;

const SECRET: &str = "browser-secret-0123456789";
/// The axe-core release the pages are checked with.
const AXE_VERSION: &str = "4.14.1";
/// The widths every page is checked at: a small phone, a desktop.
const WIDTHS: [u32; 2] = [375, 1280];
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
        // Port 0: chromedriver picks a free port and says which on standard output.
        let mut child = Command::new("/usr/bin/chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(port);
                }
                // Keep draining, so chromedriver never blocks on a full pipe.
            }
        });
        let port = rx
            .recv_timeout(STARTUP)
            .expect("chromedriver says which port it listens on");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let ready = eventually(STARTUP.as_secs_f64(), || async {
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
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                         "--hide-scrollbars",
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

    /// Runs `script` in the page and returns its value.
    async fn execute(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Resizes the window so the page's viewport is `width` CSS pixels wide.
    async fn set_width(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
        let inner = self.execute("return window.innerWidth").await;
        assert_eq!(inner, json!(width), "the viewport follows the window");
    }

    /// Checks the page shown now with axe-core and for sideways scrolling, at every width,
    /// screenshotting each; returns what is wrong (empty: nothing).
    async fn audit(&mut self, name: &str, axe: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let page = self.execute("return location.pathname").await;
        if self.execute("return typeof axe").await != json!("object") {
            self.execute(&format!("{axe}\n;return typeof axe")).await;
        }
        for width in WIDTHS {
            self.set_width(width, 900).await;
            let found = self
                .cmd(
                    reqwest::Method::POST,
                    "/execute/async",
                    json!({"script": AXE_RUN, "args": []}),
                )
                .await;
            let Some(violations) = found.as_array() else {
                panic!("axe did not run on {page}: {found}");
            };
            for v in violations {
                let nodes: Vec<String> = v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| {
                        format!(
                            "      {} {}\n        {}",
                            n["target"],
                            n["html"],
                            n["summary"]
                                .as_str()
                                .unwrap_or("")
                                .replace('\n', "\n        ")
                        )
                    })
                    .collect();
                problems.push(format!(
                    "{name} ({page}) at {width} px: {} ({}): {}\n{}",
                    v["id"].as_str().unwrap_or("?"),
                    v["impact"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or("?"),
                    nodes.join("\n")
                ));
            }
            let wide = self.execute(OVERFLOW).await;
            if width == WIDTHS[0] && wide != json!([]) {
                problems.push(format!(
                    "{name} ({page}) at {width} px scrolls sideways; wider than the window: {wide}"
                ));
            }
            // The whole page in the screenshot: the window as tall as the document (plus
            // what the window itself takes).
            let tall = self
                .execute("return Math.ceil(document.documentElement.getBoundingClientRect().height) + window.outerHeight - window.innerHeight")
                .await
                .as_u64()
                .unwrap_or(900)
                .clamp(300, 6000) as u32;
            self.cmd(
                reqwest::Method::POST,
                "/window/rect",
                json!({"width": width, "height": tall}),
            )
            .await;
            self.shot(&format!("{name}-{width}")).await;
        }
        self.set_width(WIDTHS[1], 900).await;
        problems
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

/// Runs axe-core with its default rules (WCAG 2 A and AA, best practices) and returns the
/// violations, trimmed to what a report needs.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ["violations"] })
  .then(r => done(r.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({ target: n.target, html: n.html.slice(0, 200), summary: n.failureSummary })),
  }))))
  .catch(e => done({ error: String(e) }));
"#;

/// `[]` when nothing makes the page wider than the window; otherwise the document's width
/// and the widest elements that stick out.
const OVERFLOW: &str = r##"
const root = document.documentElement;
if (root.scrollWidth <= window.innerWidth) return [];
const out = [`document ${root.scrollWidth} px, window ${window.innerWidth} px`];
for (const el of document.body.querySelectorAll("*")) {
  const r = el.getBoundingClientRect();
  if (r.right > window.innerWidth + 0.5) out.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className ? "." + el.className : ""} right edge ${Math.round(r.right)} px`);
  if (out.length > 8) break;
}
return out;
"##;

/// axe-core's `axe.min.js`, installed from the npm registry into the target folder the
/// first time (nothing from npm lives in the repository).
fn axe_source() -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("axe-core");
    let package = dir.join("node_modules/axe-core");
    let installed = std::fs::read_to_string(package.join("package.json"))
        .ok()
        .and_then(|p| serde_json::from_str::<Value>(&p).ok())
        .is_some_and(|p| p["version"] == AXE_VERSION);
    if !installed {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
            ])
            .arg(&dir)
            .arg(format!("axe-core@{AXE_VERSION}"))
            .output()
            .unwrap_or_else(|e| {
                panic!("running npm to install axe-core (apt-get install npm; .ci/run does): {e}")
            });
        assert!(
            out.status.success(),
            "npm install axe-core@{AXE_VERSION} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::read_to_string(package.join("axe.min.js")).expect("axe.min.js in the axe-core package")
}

/// A picture for the article's `image`, served from a port of its own (the article's
/// `image` is an absolute URL; herald does not serve files).
fn serve_picture() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/harbour.svg", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        const SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="500" viewBox="0 0 1200 500"><rect width="1200" height="500" fill="#bcd8ee"/><rect y="330" width="1200" height="170" fill="#2f5f8a"/><path d="M160 330h260l-40 50H200z" fill="#7a4a2a"/><path d="M290 120v200h-110z" fill="#fff"/><circle cx="980" cy="110" r="60" fill="#f7d774"/></svg>"##;
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: image/svg+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{SVG}",
                SVG.len()
            );
        }
    });
    url
}

#[cfg_attr(
    not(herald_browser),
    ignore = "Chromium is not installed (apt-get install chromium chromium-driver): the browser test did not run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_at_phone_and_desktop_widths_through_sign_up_and_leaving() {
    let axe = axe_source();
    let smtp = SmtpServer::start();
    let p = Publication::with_config(NEWSLETTERS);
    write_articles(&p, &serve_picture());
    p.article(
        "columns/long-lines.md",
        "---\ntitle: A column with long lines\ndate: 2026-11-08\ntags: [Columns]\n---\nA link written out: https://saltmarsh.example/a/very/long/address/that/does/not/break/anywhere/on/its/own/because/it/has/no/spaces/at/all\n\n```\nfn a_very_long_line_of_code_that_goes_on(and_on: u32, and_on_again: u32, and_further: u32) -> u32 { 0 }\n```\n\n| a | wide | table | with | many | columns | that | will | not | fit | on | a | phone |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n| 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 |\n",
    );
    let local = Local::point(&p).await;
    let o = p.herald(&["subscribers", "add", "first@example.org", "--confirmed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p.herald(&["send", "weekly"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let secrets = Secrets {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        secret: Some(SECRET.into()),
        admin_token: None,
    };
    let d = local.start(&p, secrets).await;
    let mut b = Driver::start().await;
    let mut problems = Vec::new();

    // Reading: from the home page to an article and its tag, by clicking.
    b.go(&format!("{}/", d.url)).await;
    b.wait_for_text("Harbour reopens").await;
    problems.extend(b.audit("home", &axe).await);
    b.click("article h2 a[href$='/harbour/']").await;
    b.wait_for_text("After eleven weeks").await;
    let loaded = b
        .execute(
            "const i = document.querySelector('img.lead'); return i.complete && i.naturalWidth",
        )
        .await;
    assert_eq!(loaded, json!(1200), "the article's picture is shown");
    problems.extend(b.audit("article", &axe).await);
    b.click("a[rel=tag][href$='/tags/harbour/']").await;
    b.wait_for_text("tagged “Harbour”").await;
    problems.extend(b.audit("tag", &axe).await);
    b.go(&format!("{}/long-lines/", d.url)).await;
    b.wait_for_text("A column with long lines").await;
    problems.extend(b.audit("article-long-lines", &axe).await);
    b.go(&format!("{}/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E/", d.url))
        .await;
    b.wait_for_text("日本語").await;
    problems.extend(b.audit("tag-japanese", &axe).await);
    b.go(&format!("{}/archive/weekly/", d.url)).await;
    b.wait_for_text("past issues").await;
    problems.extend(b.audit("archive", &axe).await);
    b.go(&format!("{}/no/such/page", d.url)).await;
    b.wait_for_text("Not found").await;
    problems.extend(b.audit("not-found", &axe).await);

    // Signing up for both newsletters.
    b.go(&format!("{}/subscribe", d.url)).await;
    b.wait_for_text("Sent at 07:00, on Friday").await;
    problems.extend(b.audit("subscribe", &axe).await);
    b.type_into("#email", "browser@example.org").await;
    b.type_into("#name", "Bea Browser").await;
    b.shot("subscribe-filled-in").await;
    b.click("button[type=submit]").await;
    b.wait_for_text("Check your inbox").await;
    problems.extend(b.audit("check-your-inbox", &axe).await);

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
    assert!(link.starts_with(&d.url), "{link} points at this daemon");

    b.go(&link).await;
    b.wait_for_text("browser@example.org").await;
    problems.extend(b.audit("confirm-page", &axe).await);
    b.click("button[type=submit]").await;
    b.wait_for_text("You are subscribed").await;
    problems.extend(b.audit("confirmed", &axe).await);
    b.go(&link).await;
    b.wait_for_text("You are already subscribed").await;
    problems.extend(b.audit("confirm-link-again", &axe).await);

    let store = herald::store::Store::open(&p.site().store_location().unwrap())
        .await
        .unwrap();
    let email = herald::subscribers::Email::parse("browser@example.org").unwrap();
    let s = store.subscriber_by_email(&email).await.unwrap().unwrap();
    assert_eq!(
        s.newsletters,
        vec!["daily".to_string(), "weekly".to_string()]
    );
    let token = Keys::from_secrets(SECRET).unwrap().sign(&Claims {
        purpose: Purpose::Unsubscribe,
        subscriber: s.id,
        newsletter: Some("weekly".into()),
        nonce: None,
        expires: None,
    });
    b.go(&format!("{}/unsubscribe/{token}", d.url)).await;
    b.wait_for_text("Unsubscribe from The Weekly").await;
    problems.extend(b.audit("unsubscribe-page", &axe).await);
    b.click("form button").await;
    b.wait_for_text("You left The Weekly").await;
    problems.extend(b.audit("unsubscribed-from-one", &axe).await);
    let s = store.subscriber_by_email(&email).await.unwrap().unwrap();
    assert_eq!(s.status, herald::subscribers::Status::Confirmed);
    assert_eq!(s.newsletters, vec!["daily".to_string()]);
    store.close().await;
    b.quit().await;
    d.stop().await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    println!("screenshots in {}", shots.display());
    assert!(
        problems.is_empty(),
        "{} problem(s) found by axe-core {AXE_VERSION} and the overflow check:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
