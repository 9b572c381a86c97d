//! Hostile clients and hostile input: sockets that never finish, descriptors running out,
//! spellings that dodge suppression, forged proxy headers, spreadsheet formulas, oversized
//! and odd requests. Every test here failed on herald before the fix it guards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::helpers::*;

/// Opens `n` sockets that each misbehave in one of three ways: send nothing, dribble half a
/// header a byte at a time, or finish one request and then idle on keep-alive.
fn misbehaving_sockets(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            match i % 3 {
                0 => {}
                1 => s.write_all(b"GET /feeds/rss.xml HTTP/1.1\r\nHo").unwrap(),
                _ => s
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap(),
            }
            s
        })
        .collect()
}

/// True once the server has closed `s` (end of file or a reset); drains what it sent.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_do_not_keep_others_waiting() {
    // Timeouts far longer than a reader is given: a reader answered at all was not queued
    // behind the misbehaving sockets.
    let p =
        Publication::with_config("[http]\nheader_read_timeout = \"60s\"\nidle_timeout = \"60s\"\n");
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    let addr = d.url.trim_start_matches("http://").to_string();
    let sockets = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || misbehaving_sockets(&addr, 300))
            .await
            .unwrap()
    };
    let dribble = dribble(&sockets);
    let reader = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for _ in 0..10 {
        let r = reader
            .get(format!("{}/feeds/rss.xml", d.url))
            .send()
            .await
            .expect("a normal reader is answered while slow clients hang on");
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("<title>A</title>"));
    }
    dribble.join().unwrap();
    drop(sockets);
    d.stop().await;
}

/// Keeps the half-header sockets of [`misbehaving_sockets`] sending a byte now and then,
/// for about five seconds.
fn dribble(sockets: &[TcpStream]) -> std::thread::JoinHandle<()> {
    let mut dribblers: Vec<TcpStream> = sockets
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 1)
        .map(|(_, s)| s.try_clone().unwrap())
        .collect();
    std::thread::spawn(move || {
        for _ in 0..20 {
            for s in &mut dribblers {
                let _ = s.write_all(b"x");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_by_the_server() {
    let p =
        Publication::with_config("[http]\nheader_read_timeout = \"2s\"\nidle_timeout = \"2s\"\n");
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let d = Daemon::start(&p).await;
    let addr = d.url.trim_start_matches("http://").to_string();
    let mut sockets = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || misbehaving_sockets(&addr, 300))
            .await
            .unwrap()
    };
    // Dribbling a byte now and then does not keep a half header alive.
    let dribble = dribble(&sockets);
    // Every misbehaving socket is closed by the server (the client never closes them).
    let all_closed = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            sockets.retain_mut(|s| !closed_by_server(s));
            if sockets.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(sockets.len())
    })
    .await
    .unwrap();
    assert_eq!(all_closed, Ok(()), "sockets still open after 60 s");
    dribble.join().unwrap();
    d.stop().await;
}

/// `herald run` as a child process whose descriptor limit is `nofile`; returns the child
/// and its address.
fn run_with_nofile(p: &Publication, nofile: u32) -> (Child, String) {
    let mut c = std::process::Command::new("prlimit");
    c.env_clear();
    for keep in ["PATH", "HOME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            c.env(keep, v);
        }
    }
    c.arg(format!("--nofile={nofile}:{nofile}"))
        .arg(env!("CARGO_BIN_EXE_herald"))
        .arg("--site")
        .arg(p.path())
        .arg("run")
        .env("HERALD_LOG", "info");
    let child = Child::spawn(c);
    let line = child.line(STARTUP, |l| l.contains("http://") || l.contains("panicked"));
    assert!(!line.contains("panicked"), "{}", child.log());
    let at = line.find("http://").unwrap();
    let addr: String = line[at + 7..].chars().take_while(|c| *c != '/').collect();
    (child, addr)
}

#[test]
fn with_descriptors_short_feeds_keep_being_written_and_readers_get_answers() {
    let p = Publication::with_config(
        "[http]\nbind = \"127.0.0.1:0\"\nheader_read_timeout = \"2s\"\nidle_timeout = \"2s\"\n",
    );
    p.article("a.md", "---\ntitle: First\ndate: 2026-05-01\n---\nx\n");
    let (mut child, addr) = run_with_nofile(&p, 300);
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "herald runs with 300 descriptors"
    );
    // More idle sockets than the process has descriptors.
    let mut idle: Vec<TcpStream> = (0..330)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(
        idle.len() >= 300,
        "the kernel queues connections beyond the cap"
    );
    // The daemon still notices a new article and writes the feeds.
    p.article("b.md", "---\ntitle: Second\ndate: 2026-05-02\n---\ny\n");
    let rss = p.path().join("feeds/rss.xml");
    let deadline = Instant::now() + Duration::from_secs(SOON as u64);
    while Instant::now() < deadline
        && !std::fs::read_to_string(&rss)
            .unwrap_or_default()
            .contains("Second")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        std::fs::read_to_string(&rss).unwrap().contains("Second"),
        "the feed was rewritten while sockets piled up"
    );
    // A reader gets the feed once the idle sockets time out (they are closed in rounds of
    // at most header_read_timeout).
    let mut reader = TcpStream::connect(&addr).unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    reader
        .write_all(b"GET /feeds/rss.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = reader.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
    assert!(answer.contains("Second"));
    // The idle ones were all closed by the server.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
    child.term();
    let status = child.wait(EXIT);
    assert_eq!(
        status.code(),
        Some(0),
        "herald run exits cleanly: {}",
        child.log()
    );
}

const ADMIN: &str = "an-admin-token-long-enough";

async fn daemon_with_api(extra: &str) -> (Publication, Daemon) {
    let p = Publication::with_config(&format!(
        "[[newsletter]]\nid = \"daily\"\ntitle = \"Daily\"\nschedule = \"0 7 * * *\"\n{extra}"
    ));
    let d = Daemon::start_with(
        &p,
        herald::config::Secrets {
            smtp_url: None,
            secret: Some("test-secret-0123456789abcdef".into()),
            admin_token: Some(ADMIN.into()),
        },
    )
    .await;
    (p, d)
}

#[test]
fn a_short_admin_token_is_refused_at_start() {
    let p = Publication::with_config("[http]\nbind = \"127.0.0.1:0\"\n");
    let o = herald_command(p.path())
        .arg("run")
        .env("HERALD_ADMIN_TOKEN", "secret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("at least 16 characters"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_admin_token_is_throttled_and_the_scheme_is_case_insensitive() {
    let (_p, d) = daemon_with_api("").await;
    let call = |auth: String| {
        let c = d.client.clone();
        let url = format!("{}/api/subscribers/counts", d.url);
        async move {
            c.get(url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(call(format!("bearer {ADMIN}")).await, 200);
    assert_eq!(call(format!("BEARER  {ADMIN}")).await, 200);
    for i in 0..10 {
        assert_eq!(call(format!("Bearer guess-{i}")).await, 401);
    }
    // Shut out now: a wrong guess and the right token get the same answer.
    assert_eq!(call("Bearer guess-11".into()).await, 429);
    assert_eq!(call(format!("Bearer {ADMIN}")).await, 429);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_types_are_matched_exactly_and_in_any_case() {
    let (_p, d) = daemon_with_api("").await;
    let post = |ct: &'static str| {
        let c = d.client.clone();
        let url = format!("{}/subscribe", d.url);
        async move {
            c.post(url)
                .header("content-type", ct)
                .body(r#"{"email": "media@example.org"}"#)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post("Application/JSON; Charset=UTF-8").await, 202);
    // Not JSON: read as a form, which then has no email field.
    assert_eq!(post("application/jsonp").await, 400);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_gets_413_before_any_body_is_sent() {
    let (_p, d) = daemon_with_api("").await;
    let addr = d.url.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarded_for_line_beats_neither_the_limit_nor_the_evidence() {
    let (_p, d) = daemon_with_api(
        "[http]\ntrust_proxy = true\n[subscribe]\nrequests_per_minute = 10\nconfirmations_per_day = 50\n",
    )
    .await;
    let mut answers = Vec::new();
    for i in 0..15 {
        let r = d
            .client
            .post(format!("{}/subscribe", d.url))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("x-forwarded-for", "203.0.113.5")
            .json(&serde_json::json!({"email": format!("x{i}@example.org")}))
            .send()
            .await
            .unwrap();
        answers.push(r.status().as_u16());
    }
    assert_eq!(
        answers.iter().filter(|s| **s == 202).count(),
        10,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 429).count(),
        5,
        "{answers:?}"
    );
    // The evidence recorded is the address the proxy saw: confirm x0 (its email is in the
    // outbox) and read its consent record.
    let outbox = _p.path().join("outbox");
    let mut link = None;
    let until = Instant::now() + Duration::from_secs(SOON as u64);
    while Instant::now() < until {
        for e in std::fs::read_dir(&outbox).into_iter().flatten().flatten() {
            // A file still being written may not parse yet: look again next round.
            let Ok(raw) = std::fs::read(e.path()) else {
                continue;
            };
            let Some(m) = mail_parser::MessageParser::default().parse(&raw) else {
                continue;
            };
            if m.to().and_then(|t| t.first()).and_then(|a| a.address()) == Some("x0@example.org") {
                let Some(text) = m.body_text(0) else { continue };
                link = text
                    .split_whitespace()
                    .find(|w| w.contains("/confirm/"))
                    .map(str::to_string);
            }
        }
        if link.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let link = link.expect("the confirmation email of x0 is in the outbox");
    let local = link.replace(BASE, &format!("{}/", d.url));
    assert_eq!(d.client.post(local).send().await.unwrap().status(), 200);
    let body: serde_json::Value = d
        .client
        .get(format!("{}/api/subscribers/x0@example.org", d.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["subscriber"]["status"], "confirmed", "{body}");
    assert_eq!(body["subscriber"]["consent_ip"], "203.0.113.5", "{body}");
    d.stop().await;
}
