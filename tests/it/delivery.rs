//! Digests over real SMTP with injected faults: exactly one accepted copy per recipient
//! through 4xx, dropped connections and 5xx; kill -9 and SIGTERM mid-send; a relay that is
//! down at the fire time; and the scheduler's fire times, idempotency and catch-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::delivery::Delivery;
use herald::mail::Transport;
use herald::newsletters::Newsletter;
use herald::newsletters::scheduler::{Issuer, Made, Scheduler};
use herald::store::Store;
use herald::subscribers::tokens::Keys;
use tokio_util::sync::CancellationToken;

use super::helpers::*;
use super::smtp::{Faults, SmtpServer};

pub(super) const SECRET: &str = "delivery-secret-0123456789";

/// The mail settings of a test publication.
#[derive(Clone, Debug)]
pub(super) struct Mail {
    pub rate: u32,
    pub connections: u32,
    pub timeout: &'static str,
    pub retry_base: &'static str,
    pub max_age: &'static str,
}

impl Default for Mail {
    fn default() -> Mail {
        Mail {
            rate: 1000,
            connections: 1,
            timeout: "10s",
            retry_base: "50ms",
            max_age: "3d",
        }
    }
}

/// herald.toml's `[mail]` and the `weekly` newsletter (UTC), plus `extra` after them.
pub(super) fn config_of(m: &Mail, extra: &str) -> String {
    format!(
        "[mail]\nfrom = \"News <news@news.example.com>\"\nrate_per_second = {}\nconnections = {}\nretry_base = \"{}\"\ntimeout = \"{}\"\nmax_age = \"{}\"\n\n[[newsletter]]\nid = \"weekly\"\ntitle = \"The Weekly\"\nschedule = \"0 7 * * Fri\"\ntimezone = \"Europe/Berlin\"\n{extra}\n",
        m.rate, m.connections, m.retry_base, m.timeout, m.max_age
    )
}

fn config(rate: u32, connections: u32) -> String {
    config_of(
        &Mail {
            rate,
            connections,
            ..Mail::default()
        },
        "",
    )
}

/// A publication with recent articles and `n` confirmed subscribers of `weekly`.
pub(super) async fn publication(n: usize, rate: u32, connections: u32) -> Publication {
    let mut csv = String::new();
    for i in 0..n {
        let name = if i % 2 == 0 {
            format!("Reader {i}")
        } else {
            String::new()
        };
        csv.push_str(&format!("r{i}@example.org,{name},weekly,confirmed\n"));
    }
    publication_with(&config(rate, connections), &csv).await
}

/// A publication with `toml` (after `[site]`), two recent articles, and the subscribers of
/// `csv` (rows of `email,name,newsletters,status`, no header).
pub(super) async fn publication_with(toml: &str, csv: &str) -> Publication {
    let p = Publication::with_config(toml);
    let yesterday = (Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    p.article(
        "one.md",
        &format!("---\ntitle: Harbour news\ndate: {yesterday}\n---\nThe harbour reopens.\n"),
    );
    p.article(
        "two.md",
        &format!("---\ntitle: Weather & tides\ndate: {yesterday}\n---\nGales, then calm.\n"),
    );
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    let configured: Vec<String> = site
        .config
        .newsletters
        .iter()
        .map(|n| n.id.0.clone())
        .collect();
    let report = herald::subscribers::import::import(
        &store,
        format!("email,name,newsletters,status\n{csv}").as_bytes(),
        "test.csv",
        &configured,
        Utc::now(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.added as usize, csv.lines().count());
    store.close().await;
    p
}

/// Makes the issue of `weekly` now, in-process; returns (store, issue id).
pub(super) async fn make_issue(p: &Publication) -> (Store, i64) {
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    let build = herald::publish::Publisher::new(site.clone(), store.clone())
        .build(Utc::now())
        .await
        .unwrap();
    let templates = Arc::new(
        herald::templates::Templates::load(&site.templates_dir(), chrono_tz::UTC).unwrap(),
    );
    let issuer = Issuer::new(site.clone(), store.clone(), templates);
    let n = Newsletter::all(&site).remove(0);
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
    let Made::New { id, .. } = issuer
        .make(&n, now, &build.articles, true, now)
        .await
        .unwrap()
    else {
        panic!("an issue is made");
    };
    (store, id)
}

pub(super) async fn delivery(p: &Publication, store: &Store, port: u16) -> Arc<Delivery> {
    let site = p.site();
    let transport = Transport::from_site(&site, Some(&format!("smtp://127.0.0.1:{port}"))).unwrap();
    Delivery::start(
        site,
        store.clone(),
        Keys::from_secrets(SECRET).unwrap(),
        transport,
    )
    .await
    .unwrap()
}

/// Stored copies per recipient, with their Message-IDs; a copy without one fails the test.
pub(super) fn copies(smtp: &SmtpServer) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for msg in smtp.messages() {
        let id = msg.message_id.clone().unwrap_or_else(|| {
            panic!(
                "a copy to {:?} has no Message-ID:\n{}",
                msg.rcpt,
                String::from_utf8_lossy(&msg.data)
            )
        });
        for r in &msg.rcpt {
            m.entry(r.to_ascii_lowercase())
                .or_default()
                .push(id.clone());
        }
    }
    m
}

/// The issue's ledger counts.
pub(super) async fn counts(
    store: &Store,
    issue: Option<i64>,
) -> herald::store::ledger::IssueCounts {
    store
        .issue_counts(issue, 1, Utc::now())
        .await
        .unwrap()
        .pop()
        .expect("an issue")
}

/// Waits (with a timeout that fails the test) until the ledger satisfies `check`.
pub(super) async fn ledger_until(
    store: &Store,
    issue: Option<i64>,
    timeout: Duration,
    what: &str,
    check: impl Fn(&herald::store::ledger::IssueCounts) -> bool,
) -> herald::store::ledger::IssueCounts {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let c = counts(store, issue).await;
        if check(&c) {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited {timeout:?} for the ledger: {what}; it says {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recipient_gets_exactly_one_copy_through_451s_drops_and_550s() {
    let n = 600;
    let p = publication(n, 3000, 4).await;
    let smtp = SmtpServer::with_faults(Faults {
        rcpt_451: 0.10,
        drop: 0.02,
        store_then_close: 0.01,
        rcpt_550: 0.01,
        seed: 7,
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    tokio::time::timeout(
        Duration::from_secs(120),
        d.run(Some(issue), true, CancellationToken::new()),
    )
    .await
    .expect("the send finishes")
    .unwrap();

    let refused: Vec<String> = smtp
        .refused()
        .into_iter()
        .filter(|(_, c)| *c == 550)
        .map(|(r, _)| r.to_ascii_lowercase())
        .collect();
    assert!(!refused.is_empty(), "some 550s were injected");
    let got = copies(&smtp);
    let mut duplicates = 0;
    for i in 0..n {
        let r = format!("r{i}@example.org");
        // Each time the relay stored a copy and the connection was lost before the 250,
        // herald had to send again: the only duplicates there can be, with the same id.
        let lost_250s = smtp
            .messages()
            .iter()
            .filter(|m| !m.acked && m.rcpt == [r.clone()])
            .count();
        let ids = got.get(&r).cloned().unwrap_or_default();
        assert!(ids.iter().all(|id| id == &ids[0]), "{r}: {ids:?}");
        if refused.contains(&r) {
            assert_eq!(
                smtp.attempts(&r).iter().filter(|c| **c == 550).count(),
                1,
                "{r}: a 550 is never retried"
            );
            assert_eq!(
                ids.len(),
                lost_250s,
                "{r} was refused: no acknowledged copy"
            );
        } else {
            assert_eq!(ids.len(), 1 + lost_250s, "{r}: one acknowledged copy");
            duplicates += lost_250s;
        }
    }
    assert!(
        duplicates > 0,
        "some stored-then-lost messages were injected"
    );
    let c = store
        .issue_counts(Some(issue), 1, Utc::now())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.sent as usize, n - refused.len());
    assert_eq!(c.failed as usize, refused.len());
    assert_eq!(c.queued + c.sending + c.deferred, 0);
    // 5.1.1 marks the address bounced.
    let bounced = herald::subscribers::Email::parse(&refused[0]).unwrap();
    let s = store.subscriber_by_email(&bounced).await.unwrap().unwrap();
    assert_eq!(s.status, herald::subscribers::Status::Bounced);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_refusal_fails_the_row_but_leaves_the_subscriber_alone() {
    let p = publication(3, 1000, 1).await;
    let smtp = SmtpServer::with_faults(Faults {
        policy_554: vec!["r1@example.org".into()],
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    d.run(Some(issue), true, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(smtp.count(), 2);
    let s = store
        .subscriber_by_email(&herald::subscribers::Email::parse("r1@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.status,
        herald::subscribers::Status::Confirmed,
        "5.7.x punishes nobody"
    );
    let c = store
        .issue_counts(Some(issue), 1, Utc::now())
        .await
        .unwrap()
        .remove(0);
    assert_eq!((c.sent, c.failed), (2, 1));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_carry_the_list_headers_and_a_stable_message_id() {
    let p = publication(2, 1000, 1).await;
    let smtp = SmtpServer::start();
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    d.run(Some(issue), true, CancellationToken::new())
        .await
        .unwrap();
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.data)
            .unwrap();
        let raw = String::from_utf8_lossy(&m.data);
        assert!(
            raw.contains("List-Id: \"The Weekly\" <weekly.news.example.com>"),
            "{raw}"
        );
        assert!(raw.contains("List-Unsubscribe: <https://news.example.com/unsubscribe/"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("Precedence: bulk"));
        assert!(raw.contains("Content-Type: multipart/alternative"));
        let id = parsed.message_id().unwrap();
        assert!(
            id.starts_with(&format!("herald.{issue}.")) && id.ends_with("@news.example.com"),
            "{id}"
        );
        let text = parsed.body_text(0).unwrap();
        let html = parsed.body_html(0).unwrap();
        assert!(
            text.contains("Weather & tides"),
            "no HTML escaping in the text part:\n{text}"
        );
        assert!(html.contains("Weather &amp; tides"));
        assert!(html.contains("style="), "CSS is inlined");
        assert!(html.contains("/archive/weekly/"), "a view-in-browser link");
        assert!(
            text.contains("https://news.example.com/unsubscribe/"),
            "the text part has the unsubscribe URL"
        );
        let subject = parsed.subject().unwrap();
        assert!(
            subject.starts_with("The Weekly: ") && subject.ends_with(" and 1 more"),
            "{subject}"
        );
    }
    // Personalized: each copy's unsubscribe link (header and body) names that copy's
    // recipient and this newsletter, and the name is there where there is one.
    let keys = Keys::from_secrets(SECRET).unwrap();
    let mut named = Vec::new();
    for m in &msgs {
        let to = &m.rcpt[0];
        let header = super::smtp::header(&m.data, "List-Unsubscribe").unwrap();
        let url = unsubscribe_url(&header);
        let token = url.rsplit('/').next().unwrap();
        let claims = keys
            .verify(
                token,
                herald::subscribers::tokens::Purpose::Unsubscribe,
                Utc::now().timestamp(),
            )
            .unwrap_or_else(|e| panic!("{to}: the List-Unsubscribe token does not open: {e}"));
        let who = store
            .subscriber_by_email(&herald::subscribers::Email::parse(to).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            claims.subscriber, who.id,
            "{to}: the link is for this recipient"
        );
        assert_eq!(claims.newsletter.as_deref(), Some("weekly"));
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.data)
            .unwrap();
        let text = parsed.body_text(0).unwrap();
        assert!(
            text.contains(&url),
            "{to}: the text part links the same URL:\n{text}"
        );
        named.push((
            to.clone(),
            text.contains(&format!("Hello {}", who.name)) && !who.name.is_empty(),
        ));
    }
    assert_eq!(named.len(), 2);
    assert!(
        named.contains(&("r0@example.org".into(), true)),
        "Reader 0 is greeted by name: {named:?}"
    );
    d.stop().await;
}

/// The HTTPS URL of a `List-Unsubscribe` header (`<https://…>, <mailto:…>`).
pub(super) fn unsubscribe_url(header: &str) -> String {
    header
        .split(',')
        .map(|u| u.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|u| u.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in List-Unsubscribe: {header}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_is_down_at_the_fire_time_gets_the_mail_when_it_returns() {
    let n = 40;
    let p = publication(n, 1000, 2).await;
    let smtp = SmtpServer::start();
    smtp.set_down(true);
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let d = d.clone();
        let stop = stop.clone();
        async move { d.run(Some(issue), false, stop).await }
    });
    // Two tries at least (so the hold-back ran once), then look at the ledger.
    smtp.until(
        Duration::from_secs(30),
        "herald tries the relay twice",
        |s| s.refused_connections() >= 2,
    )
    .await;
    let c = counts(&store, Some(issue)).await;
    let tries = smtp.refused_connections();
    assert_eq!(
        (c.sent, c.failed),
        (0, 0),
        "nothing is failed while the relay is down"
    );
    assert!(
        (c.deferred as usize) <= tries,
        "a row is deferred only by a try that failed: {c:?}, {tries} tries"
    );
    smtp.set_down(false);
    ledger_until(
        &store,
        Some(issue),
        Duration::from_secs(90),
        "every row sent",
        |c| c.sent == n as i64,
    )
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("delivery stops")
        .unwrap()
        .unwrap();
    let got = copies(&smtp);
    assert_eq!(got.len(), n);
    assert!(got.values().all(|v| v.len() == 1));
    d.stop().await;
}

/// `herald` with only what a test gives it: no inherited HERALD_* or relay settings.
pub(super) fn herald_child(
    p: &Publication,
    args: &[&str],
    smtp: &SmtpServer,
) -> std::process::Command {
    let mut c = herald_command(p.path());
    c.args(args)
        .env("HERALD_SMTP_URL", smtp.url())
        .env("HERALD_SECRET", SECRET)
        .env("HERALD_HTTP_BIND", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    c
}

/// Runs `herald send weekly` as a child process against `smtp`.
fn send_child(p: &Publication, smtp: &SmtpServer) -> std::process::Child {
    herald_child(p, &["send", "weekly"], smtp).spawn().unwrap()
}

/// Waits for a child to exit, failing (and killing it) after `timeout`.
pub(super) async fn exit_within(
    mut child: std::process::Child,
    timeout: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the child did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Recipients with at least one copy the relay said 250 to.
fn acked_recipients(smtp: &SmtpServer) -> usize {
    let mut r: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.acked)
        .flat_map(|m| m.rcpt)
        .collect();
    r.sort();
    r.dedup();
    r.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_send_loses_nothing_and_duplicates_only_in_flight_rows() {
    use std::os::unix::process::ExitStatusExt;
    let n = 1500;
    let connections = 4;
    let p = publication(n, 2000, connections).await;
    let smtp = SmtpServer::start();
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    let kills = 3;
    let mut in_flight = 0;
    for round in 0..kills {
        let mut child = send_child(&p, &smtp);
        // Let it send a share of the list, then freeze the relay: every connection ends up
        // with a message stored and its 250 held back.
        let goal = smtp.count() + n / (2 * kills);
        smtp.until(Duration::from_secs(120), "the child sends", |s| {
            s.count() >= goal
        })
        .await;
        smtp.hold();
        smtp.until(
            Duration::from_secs(30),
            "every connection is in flight",
            |s| s.held() == connections as usize,
        )
        .await;
        // Everything the relay answered 250 to is recorded: what is left in flight is the held
        // messages, and nothing else.
        let acked = acked_recipients(&smtp) as i64;
        let c = ledger_until(
            &store,
            None,
            Duration::from_secs(30),
            "every 250 recorded",
            |c| c.sent == acked,
        )
        .await;
        assert!(
            c.sending >= connections as i64,
            "rows are being sent: {c:?}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child is alive and sending"
        );
        in_flight += smtp.held();
        child.kill().expect("kill -9 the child");
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: killed by SIGKILL");
        smtp.until(
            Duration::from_secs(30),
            "the held sessions see the client gone",
            |s| s.held() == 0,
        )
        .await;
        smtp.release();
        let delivered = copies(&smtp).len();
        assert!(
            0 < delivered && delivered < n,
            "round {round}: killed in the middle ({delivered} of {n} delivered)"
        );
        eprintln!("kill {round}: {delivered} of {n} delivered, {in_flight} in flight so far");
    }
    let child = send_child(&p, &smtp);
    let status = exit_within(child, Duration::from_secs(300), "the last send").await;
    assert!(status.success(), "{status:?}");

    let got = copies(&smtp);
    let mut duplicates = 0;
    for i in 0..n {
        let r = format!("r{i}@example.org");
        let ids = got.get(&r).unwrap_or_else(|| panic!("{r} was lost"));
        duplicates += ids.len() - 1;
        for id in &ids[1..] {
            assert_eq!(
                id, &ids[0],
                "{r}: a resend carries the first copy's Message-ID"
            );
        }
    }
    // The only duplicates: messages the relay had stored when the sender died, one per
    // connection at most (a connection carries one message at a time).
    assert_eq!(
        duplicates, in_flight,
        "exactly the messages in flight at the kills"
    );
    assert!(
        in_flight <= kills * connections as usize,
        "{in_flight} in flight over {kills} kills"
    );
    let c = counts(&store, None).await;
    assert_eq!(c.sent as usize, n, "the ledger says every row was sent");
    assert_eq!(
        store
            .issue_counts(None, 10, Utc::now())
            .await
            .unwrap()
            .len(),
        1,
        "restarts resumed the issue, not made new ones"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_send_finishes_in_flight_mail_and_a_restart_sends_the_rest() {
    let n = 60;
    let p = publication(n, 60, 2).await;
    let smtp = SmtpServer::with_faults(Faults {
        slow_250: Some(Duration::from_millis(200)),
        ..Default::default()
    });
    let child = send_child(&p, &smtp);
    smtp.until(Duration::from_secs(60), "sending started", |s| {
        s.count() >= 10
    })
    .await;
    sigterm(&child);
    let status = exit_within(child, Duration::from_secs(30), "SIGTERM").await;
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted send says so in its exit status"
    );
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    let c = counts(&store, None).await;
    assert_eq!(c.sending, 0, "nothing is left leased: {c:?}");
    assert!(
        smtp.messages().iter().all(|m| m.acked),
        "in-flight messages finished"
    );
    assert_eq!(c.sent as usize, smtp.count(), "and were recorded");
    assert!((c.sent as usize) < n, "stopped before the end");

    let child = send_child(&p, &smtp);
    let status = exit_within(child, Duration::from_secs(120), "the restart").await;
    assert!(status.success());
    let got = copies(&smtp);
    assert_eq!(got.len(), n);
    assert!(
        got.values().all(|v| v.len() == 1),
        "a clean stop duplicates nothing"
    );
    store.close().await;
}

// ---- the scheduler ----------------------------------------------------------------------

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn scheduler(p: &Publication, schedule: &str, extra: &str) -> (Scheduler, Store, Newsletter) {
    let toml = std::fs::read_to_string(p.path().join("herald.toml")).unwrap();
    let mut toml = toml.replace(
        "schedule = \"0 7 * * Fri\"",
        &format!("schedule = \"{schedule}\"\n{extra}"),
    );
    if extra.contains("timezone") {
        toml = toml.replace("timezone = \"Europe/Berlin\"\n", "");
    }
    std::fs::write(p.path().join("herald.toml"), toml).unwrap();
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    let build = herald::publish::Publisher::new(site.clone(), store.clone())
        .build(Utc::now())
        .await
        .unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(build));
    let templates = Arc::new(
        herald::templates::Templates::load(&site.templates_dir(), chrono_tz::UTC).unwrap(),
    );
    let newsletters = Newsletter::all(&site);
    let s = Scheduler {
        issuer: Issuer::new(site, store.clone(), templates),
        newsletters: newsletters.clone(),
        build: rx,
        wake_delivery: Default::default(),
    };
    std::mem::forget(_tx);
    (s, store, newsletters.into_iter().next().unwrap())
}

/// Articles dated across 2026 so any issue has something to carry.
fn dated_articles(p: &Publication) {
    for (i, d) in [
        "2026-03-02",
        "2026-03-06",
        "2026-03-12",
        "2026-10-30",
        "2026-11-02",
        "2026-11-20",
    ]
    .iter()
    .enumerate()
    {
        p.article(
            &format!("d{i}.md"),
            &format!("---\ntitle: Article {i}\ndate: {d}T05:00:00Z\n---\nx\n"),
        );
    }
}

#[tokio::test]
async fn a_fire_time_makes_one_issue_however_often_it_is_seen() {
    let p = publication(3, 1000, 1).await;
    dated_articles(&p);
    let (s, store, n) = scheduler(&p, "0 7 * * Mon-Fri", "").await;
    // First sight: a fresh store starts from now and waits for the next fire time.
    let next = s.step(&n, at("2026-11-01T12:00:00Z")).await.unwrap();
    assert_eq!(
        next,
        Some(at("2026-11-02T06:00:00Z")),
        "Monday 07:00 in Berlin"
    );
    assert!(store.issues("weekly", 10).await.unwrap().is_empty());
    let next = s.step(&n, at("2026-11-02T06:00:00Z")).await.unwrap();
    assert_eq!(next, Some(at("2026-11-03T06:00:00Z")));
    let issues = store.issues("weekly", 10).await.unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].recipients, 3);
    assert_eq!(
        issues[0].articles.len(),
        1,
        "only the article since the previous fire time"
    );
    // Seen again (a second process, a restart): no second issue.
    s.step(&n, at("2026-11-02T06:00:30Z")).await.unwrap();
    let articles = s.build.borrow().articles.clone();
    let made = s
        .issuer
        .make(&n, at("2026-11-02T06:00:00Z"), &articles, false, Utc::now())
        .await
        .unwrap();
    assert_eq!(made, Made::Existing { id: issues[0].id });
    assert_eq!(store.issues("weekly", 10).await.unwrap().len(), 1);
    // Nothing new by Tuesday: no issue.
    s.step(&n, at("2026-11-03T06:00:00Z")).await.unwrap();
    assert_eq!(store.issues("weekly", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn making_an_issue_again_returns_the_stored_one_and_adds_no_rows() {
    let p = publication(3, 1000, 1).await;
    dated_articles(&p);
    // skip_empty = false: making an issue always reaches the store, so only the store's
    // idempotency can answer "existing".
    let (s, store, n) = scheduler(&p, "0 7 * * Mon-Fri", "skip_empty = false").await;
    let articles = s.build.borrow().articles.clone();
    let fire = at("2026-11-02T06:00:00Z");
    let Made::New {
        id,
        recipients,
        articles: carried,
    } = s
        .issuer
        .make(&n, fire, &articles, false, at("2026-11-02T06:00:01Z"))
        .await
        .unwrap()
    else {
        panic!("the first make makes the issue");
    };
    assert_eq!(recipients, 3);
    assert!(carried > 0, "real articles");
    // A second subscriber list would show if rows were added again.
    let extra = herald::subscribers::Email::parse("late@example.org").unwrap();
    let ev = herald::subscribers::Evidence {
        source: "test".into(),
        ..Default::default()
    };
    store
        .add_subscriber(&extra, "", &["weekly".into()], true, &ev, Utc::now())
        .await
        .unwrap();
    for _ in 0..2 {
        let again = s
            .issuer
            .make(&n, fire, &articles, false, at("2026-11-02T06:05:00Z"))
            .await
            .unwrap();
        assert_eq!(again, Made::Existing { id });
    }
    let issues = store.issues("weekly", 10).await.unwrap();
    assert_eq!(issues.len(), 1, "one issue in the store");
    assert_eq!(issues[0].id, id);
    assert_eq!(issues[0].recipients, 3);
    assert_eq!(
        store.deliveries(id).await.unwrap().len(),
        3,
        "no rows added"
    );
    // Another fire time is another issue.
    let other = s
        .issuer
        .make(&n, at("2026-11-03T06:00:00Z"), &articles, false, Utc::now())
        .await
        .unwrap();
    assert!(
        matches!(other, Made::New { id: o, recipients: 4, .. } if o != id),
        "{other:?}"
    );
}

#[tokio::test]
async fn after_downtime_only_the_latest_missed_issue_is_sent_and_only_if_not_too_late() {
    let p = publication(2, 1000, 1).await;
    dated_articles(&p);
    let (s, store, n) = scheduler(&p, "0 7 * * *", "max_lateness = \"6h\"").await;
    s.step(&n, at("2026-10-29T12:00:00Z")).await.unwrap();
    // Down for three days; back two hours after the latest fire time: one catch-up.
    s.step(&n, at("2026-11-02T08:00:00Z")).await.unwrap();
    let issues = store.issues("weekly", 10).await.unwrap();
    assert_eq!(issues.len(), 1, "never more than one catch-up");
    assert_eq!(issues[0].scheduled, at("2026-11-02T06:00:00Z"));
    assert_eq!(
        issues[0].articles.len(),
        2,
        "the articles since the last time herald fired: {:?}",
        issues[0].articles
    );
    // Down again; back nine hours late: skipped.
    s.step(&n, at("2026-11-20T15:00:00Z")).await.unwrap();
    assert_eq!(store.issues("weekly", 10).await.unwrap().len(), 1);
    assert_eq!(
        store.last_fire("weekly").await.unwrap(),
        Some(at("2026-11-20T06:00:00Z"))
    );
}

#[tokio::test]
async fn a_dst_gap_fires_at_the_first_instant_after_it_once() {
    let p = publication(1, 1000, 1).await;
    dated_articles(&p);
    let (s, store, n) = scheduler(
        &p,
        "30 2 * * *",
        "timezone = \"America/New_York\"\nskip_empty = false",
    )
    .await;
    s.step(&n, at("2026-03-07T12:00:00Z")).await.unwrap();
    // 02:30 does not exist on 2026-03-08 in New York: 03:00 EDT = 07:00 UTC.
    let next = s.step(&n, at("2026-03-08T06:59:00Z")).await.unwrap();
    assert_eq!(next, Some(at("2026-03-08T07:00:00Z")));
    s.step(&n, at("2026-03-08T07:00:00Z")).await.unwrap();
    s.step(&n, at("2026-03-08T07:30:00Z")).await.unwrap();
    let issues = store.issues("weekly", 10).await.unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].scheduled, at("2026-03-08T07:00:00Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_fires_a_schedule_and_puts_the_digest_in_the_outbox() {
    // Every second: the next fire time is at most a second away.
    let p = Publication::with_config(
        "[mail]\nfrom = \"News <news@news.example.com>\"\n\n[[newsletter]]\nid = \"minutely\"\ntitle = \"Now\"\nschedule = \"* * * * * *\"\ntimezone = \"UTC\"\n",
    );
    let d = Daemon::start(&p).await;
    // Subscribe after start so the first issue has a recipient, then publish an article.
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    let email = herald::subscribers::Email::parse("reader@example.org").unwrap();
    let ev = herald::subscribers::Evidence {
        source: "test".into(),
        ..Default::default()
    };
    store
        .add_subscriber(&email, "", &["minutely".into()], true, &ev, Utc::now())
        .await
        .unwrap();
    p.article(
        "fresh.md",
        &format!(
            "---\ntitle: Fresh\ndate: {}\n---\nx\n",
            Utc::now().to_rfc3339()
        ),
    );
    let outbox = p.path().join("outbox");
    let found = eventually(10.0, || async {
        std::fs::read_dir(&outbox)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("herald."))
            })
            .unwrap_or(false)
    })
    .await;
    assert!(found.is_some(), "a digest .eml appears in outbox/");
    let archive = d.text("/archive/minutely/").await;
    assert!(archive.contains("Fresh"), "{archive}");
    // (What /metrics counts is asserted exactly, in a process of its own, by
    // daemon::metrics_count_deliveries_replies_refusals_rows_builds_and_requests: here the
    // recorder is shared with every other in-process test, so a `contains` could not fail.)
    store.close().await;
    d.stop().await;
}

// ---- the command line ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_preview_test_copy_and_status_from_the_command_line() {
    let p = publication(3, 1000, 1).await;
    let smtp = SmtpServer::start();
    let with_relay = |args: &[&str]| {
        herald_child(&p, args, &smtp)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let o = with_relay(&["send", "weekly", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("2 articles") && out.contains("Harbour news"),
        "{out}"
    );
    assert!(
        out.contains("recipients: 3 confirmed subscribers") && out.contains("r0@example.org"),
        "{out}"
    );
    assert_eq!(smtp.count(), 0, "a dry run sends nothing");

    let o = with_relay(&["send", "weekly", "--to", "editor@example.org"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("would make now (2 articles") && stdout(&o).contains("not made yet"),
        "says what the copy is of: {}",
        stdout(&o)
    );
    assert_eq!(
        smtp.messages()[0].rcpt,
        vec!["editor@example.org".to_string()]
    );
    let o = with_relay(&["status"]);
    assert!(
        stdout(&o).contains("no issues yet"),
        "a test copy leaves the ledger alone: {}",
        stdout(&o)
    );

    let o = with_relay(&["preview", "weekly"]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("Harbour news")
            && stdout(&o).contains("href=\"https://news.example.com/"),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("Subject: The Weekly: "));
    let o = with_relay(&["preview", "weekly", "--text"]);
    assert!(
        stdout(&o).contains("Read it: https://news.example.com/"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("&amp;"), "no HTML escaping in text");

    let o = with_relay(&["send", "weekly"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("3 sent, 0 failed"), "{}", stdout(&o));
    let o = with_relay(&["status"]);
    let out = stdout(&o);
    assert!(out.contains("weekly") && out.contains("done"), "{out}");
    assert_eq!(with_relay(&["send", "nope"]).status.code(), Some(2));
}

#[test]
fn check_catches_template_typos_and_bad_schedules_and_prints_fire_times() {
    let p = Publication::with_config(&config(10, 1));
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("newsletter weekly (The Weekly)"), "{out}");
    assert_eq!(
        out.matches("  next: Fri ").count(),
        3,
        "three fire times, local and UTC:\n{out}"
    );

    p.write_bytes(
        "templates/newsletter.txt.hbs",
        b"Hello\n{{#each articles}}{{titel}}{{/each}}\n",
    );
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("newsletter.txt.hbs:2:"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("titel"), "{}", stderr(&o));
    std::fs::remove_file(p.path().join("templates/newsletter.txt.hbs")).unwrap();

    let toml = std::fs::read_to_string(p.path().join("herald.toml")).unwrap();
    std::fs::write(
        p.path().join("herald.toml"),
        toml.replace("0 7 * * Fri", "0 7 * * Fri 2027 extra"),
    )
    .unwrap();
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    // Refused as the configuration is read, at the schedule's own line.
    let line = toml
        .lines()
        .position(|l| l.contains("0 7 * * Fri"))
        .unwrap()
        + 1;
    assert!(
        stderr(&o).contains(&format!(
            "herald.toml:{line}: \"0 7 * * Fri 2027 extra\": 7 fields"
        )),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_shows_past_issues_without_subscriber_data() {
    let p = publication(2, 1000, 1).await;
    let smtp = SmtpServer::start();
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    d.run(Some(issue), true, CancellationToken::new())
        .await
        .unwrap();
    let daemon = Daemon::start(&p).await;
    let list = daemon.text("/archive/weekly/").await;
    let slug =
        herald::newsletters::issue_slug(store.issue(issue).await.unwrap().unwrap().scheduled);
    assert!(list.contains(&format!("/archive/weekly/{slug}")), "{list}");
    let page = daemon.text(&format!("/archive/weekly/{slug}")).await;
    assert!(page.contains("Harbour news"));
    assert!(
        !page.contains("r0@example.org") && !page.contains("Reader 0"),
        "no subscriber data"
    );
    assert!(!page.contains("/unsubscribe/"), "no one's unsubscribe link");
    assert_eq!(
        daemon
            .get("/archive/weekly/2020-01-01-000000")
            .await
            .status(),
        404
    );
    assert_eq!(daemon.get("/archive/nope/").await.status(), 404);
    daemon.stop().await;
    d.stop().await;
}

/// Relaxed header canonicalization, written here independently of herald's signer.
fn relaxed_header(name: &str, value: &str) -> String {
    let v = value.replace("\r\n", "");
    let v = v
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{}:{}", name.to_ascii_lowercase(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dkim_signature_covers_the_list_headers_and_verifies() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use base64::Engine;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;

    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
    let body = b64.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );

    let p = publication(1, 1000, 1).await;
    p.write_bytes("dkim.pem", pem.as_bytes());
    let toml = std::fs::read_to_string(p.path().join("herald.toml")).unwrap();
    let toml = toml.replace(
        "[mail]\n",
        "[mail]\ndkim = { domain = \"news.example.com\", selector = \"s1\", key_file = \"dkim.pem\" }\n",
    );
    std::fs::write(p.path().join("herald.toml"), toml).unwrap();
    let smtp = SmtpServer::start();
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    d.run(Some(issue), true, CancellationToken::new())
        .await
        .unwrap();
    let raw = smtp.messages().remove(0).data;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();

    // Headers, unfolded into (name, raw value) in order.
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            headers
                .last_mut()
                .unwrap()
                .1
                .push_str(&format!("\r\n{line}"));
        } else {
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.to_string(), v.to_string()));
        }
    }
    let sig = &headers
        .iter()
        .find(|(n, _)| n == "DKIM-Signature")
        .unwrap()
        .1;
    let tags: std::collections::HashMap<String, String> = sig
        .replace("\r\n", "")
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.split_whitespace().collect::<String>(),
            )
        })
        .collect();
    assert_eq!(tags["d"], "news.example.com");
    assert_eq!(tags["c"], "relaxed/relaxed");
    let signed: Vec<&str> = tags["h"].split(':').collect();
    for h in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-id",
    ] {
        assert!(signed.contains(&h), "{h} is signed: {signed:?}");
    }
    // Body hash.
    let mut canon = String::new();
    for line in body.split("\r\n") {
        let l = line
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let l = if line.starts_with([' ', '\t']) && !l.is_empty() {
            format!(" {l}")
        } else {
            l
        };
        canon.push_str(&l);
        canon.push_str("\r\n");
    }
    while canon.ends_with("\r\n\r\n") {
        canon.truncate(canon.len() - 2);
    }
    assert_eq!(
        b64.encode(sha2::Sha256::digest(canon.as_bytes())),
        tags["bh"],
        "body hash"
    );
    // Header hash and signature.
    let mut input = String::new();
    for h in &signed {
        let (n, v) = headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(h))
            .unwrap();
        input.push_str(&relaxed_header(n, v));
        input.push_str("\r\n");
    }
    let without_b = {
        let i = sig.find(" b=").or_else(|| sig.find("\tb=")).unwrap();
        format!("{} b=", &sig[..i])
    };
    input.push_str(&relaxed_header("DKIM-Signature", &without_b));
    let signature = b64.decode(&tags["b"]).unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref())
        .verify(input.as_bytes(), &signature)
        .expect("the DKIM signature verifies");
    d.stop().await;
}
