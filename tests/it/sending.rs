//! The README's delivery promises, one test each, against the test relay: who gets a digest
//! (and who is skipped mid-send), how each SMTP answer is classified (5.1.1 vs 5.1.7/5.1.8),
//! the retry schedule and `mail.max_age` walked with `Delivery::drain_once` at chosen
//! times, `mail.timeout` against a relay that stalls after DATA, the one legitimate
//! duplicate, `mail.connections` and `mail.rate_per_second` as the relay sees them,
//! `herald run` stopped mid-delivery, and one-click unsubscribe through the URL of a
//! received digest.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use herald::store::Store;
use herald::store::ledger::Outcome;
use herald::subscribers::{Email, Status};
use tokio_util::sync::CancellationToken;

use super::delivery::{
    Mail, SECRET, config_of, copies, counts, delivery, exit_within, herald_child, ledger_until,
    make_issue, publication, publication_with, unsubscribe_url,
};
use super::helpers::*;
use super::smtp::{Faults, SmtpServer, Step};

const LONG: Duration = Duration::from_secs(60);

async fn subscriber(store: &Store, email: &str) -> herald::store::subscribers::Subscriber {
    store
        .subscriber_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{email} is in the store"))
}

/// The ledger rows of an issue by recipient address.
async fn rows_by_email(
    store: &Store,
    issue: i64,
) -> BTreeMap<String, herald::store::ledger::Delivery> {
    let mut m = BTreeMap::new();
    for row in store.deliveries(issue).await.unwrap() {
        let s = store.subscriber(row.subscriber).await.unwrap().unwrap();
        m.insert(s.email, row);
    }
    m
}

fn script(to: &str, steps: Vec<Step>) -> (String, Vec<Step>) {
    (to.to_string(), steps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_confirmed_subscribers_get_the_digest_and_leavers_are_skipped() {
    let daily = "[[newsletter]]\nid = \"daily\"\ntitle = \"The Daily\"\nschedule = \"0 6 * * *\"\ntimezone = \"UTC\"\n";
    let p = publication_with(
        &config_of(&Mail::default(), daily),
        "c1@example.org,,weekly,confirmed\n\
         c2@example.org,,weekly daily,confirmed\n\
         leaver@example.org,,weekly,confirmed\n\
         dies@example.org,,weekly,confirmed\n\
         p1@example.org,,weekly,pending\n\
         u1@example.org,,weekly,unsubscribed\n\
         b1@example.org,,weekly,bounced\n\
         k1@example.org,,weekly,complained\n\
         other@example.org,,daily,confirmed\n",
    )
    .await;
    let smtp = SmtpServer::start();
    let (store, issue) = make_issue(&p).await;
    for (email, status) in [
        ("p1@example.org", Status::Pending),
        ("u1@example.org", Status::Unsubscribed),
        ("b1@example.org", Status::Bounced),
        ("k1@example.org", Status::Complained),
    ] {
        assert_eq!(subscriber(&store, email).await.status, status, "{email}");
    }
    let rows = rows_by_email(&store, issue).await;
    assert_eq!(
        rows.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "c1@example.org",
            "c2@example.org",
            "dies@example.org",
            "leaver@example.org"
        ],
        "one row per confirmed subscriber of this newsletter, none for anyone else"
    );
    // Between making the issue and sending it: one leaves, one's address bounces elsewhere.
    let leaver = subscriber(&store, "leaver@example.org").await;
    store
        .unsubscribe(leaver.id, Some("weekly"), Utc::now())
        .await
        .unwrap();
    let dies = subscriber(&store, "dies@example.org").await;
    store.mark_bounced(dies.id, Utc::now()).await.unwrap();

    let d = delivery(&p, &store, smtp.port).await;
    tokio::time::timeout(LONG, d.run(Some(issue), true, CancellationToken::new()))
        .await
        .expect("the send finishes")
        .unwrap();
    let got = copies(&smtp);
    let mut to: Vec<&str> = got.keys().map(String::as_str).collect();
    to.sort();
    assert_eq!(to, ["c1@example.org", "c2@example.org"]);
    assert!(got.values().all(|v| v.len() == 1));
    let rows = rows_by_email(&store, issue).await;
    assert_eq!(rows["c1@example.org"].status, "sent");
    assert_eq!(rows["c2@example.org"].status, "sent");
    assert_eq!(rows["leaver@example.org"].status, "skipped");
    assert_eq!(rows["dies@example.org"].status, "skipped");
    let c = counts(&store, Some(issue)).await;
    assert_eq!((c.sent, c.skipped, c.remaining()), (2, 2, 0));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_classified_5_1_1_bounces_5_1_7_and_5_1_8_punish_nobody() {
    let p = publication_with(
        &config_of(&Mail::default(), ""),
        "ok@example.org,,weekly,confirmed\n\
         gone@example.org,,weekly,confirmed\n\
         s7@example.org,,weekly,confirmed\n\
         s8@example.org,,weekly,confirmed\n\
         full@example.org,,weekly,confirmed\n\
         later@example.org,,weekly,confirmed\n",
    )
    .await;
    let smtp = SmtpServer::with_faults(Faults {
        script: vec![
            script(
                "gone@example.org",
                vec![Step::Rcpt(550, "5.1.1 no such user".into())],
            ),
            script(
                "s7@example.org",
                vec![Step::Rcpt(550, "5.1.7 bad sender mailbox syntax".into())],
            ),
            script(
                "s8@example.org",
                vec![Step::Data(553, "5.1.8 bad sender system address".into())],
            ),
            script(
                "full@example.org",
                vec![Step::Rcpt(552, "5.2.2 mailbox full".into())],
            ),
            script(
                "later@example.org",
                vec![Step::Rcpt(451, "4.3.0 try again later".into())],
            ),
        ],
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    let now = Utc::now();
    let out = tokio::time::timeout(LONG, d.drain_once(Some(issue), now))
        .await
        .expect("one pass ends")
        .unwrap();
    assert_eq!(out.len(), 6);
    let rows = rows_by_email(&store, issue).await;
    let expect = [
        ("ok@example.org", "sent", Some(250), Status::Confirmed),
        ("gone@example.org", "failed", Some(550), Status::Bounced),
        ("s7@example.org", "failed", Some(550), Status::Confirmed),
        ("s8@example.org", "failed", Some(553), Status::Confirmed),
        ("full@example.org", "failed", Some(552), Status::Confirmed),
        (
            "later@example.org",
            "deferred",
            Some(451),
            Status::Confirmed,
        ),
    ];
    for (email, status, code, subscriber_status) in expect {
        let row = &rows[email];
        assert_eq!(
            (row.status.as_str(), row.last_code),
            (status, code),
            "{email}: {row:?}"
        );
        assert_eq!(
            subscriber(&store, email).await.status,
            subscriber_status,
            "{email}"
        );
    }
    // Permanent failures are never retried; the deferred row is, once due.
    let later = rows["later@example.org"].next_attempt;
    assert!(later > now);
    let out = d.drain_once(Some(issue), later).await.unwrap();
    assert_eq!(out.len(), 1, "only the deferred row comes back: {out:?}");
    assert_eq!(out[0].1, Outcome::Sent);
    for email in [
        "gone@example.org",
        "s7@example.org",
        "s8@example.org",
        "full@example.org",
    ] {
        assert_eq!(smtp.attempts(email).len(), 1, "{email}: tried once");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_rows_retry_after_1_5_30_120_360_times_the_base_and_fail_at_max_age() {
    let mail = Mail {
        retry_base: "1m",
        max_age: "3d",
        ..Mail::default()
    };
    let p = publication_with(&config_of(&mail, ""), "r0@example.org,,weekly,confirmed\n").await;
    let smtp = SmtpServer::with_faults(Faults {
        script: vec![script(
            "r0@example.org",
            vec![Step::Rcpt(451, "4.3.0 try again later".into()); 100],
        )],
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let created = store.issue(issue).await.unwrap().unwrap().created;
    let deadline = created + chrono::Duration::days(3);
    let d = delivery(&p, &store, smtp.port).await;
    let row = || async { store.deliveries(issue).await.unwrap().remove(0) };

    let mut now = created;
    let mut waits = Vec::new();
    for (k, step) in [1, 5, 30, 120, 360, 360, 360].into_iter().enumerate() {
        let out = d.drain_once(Some(issue), now).await.unwrap();
        assert_eq!(out.len(), 1, "attempt {}: the row is due", k + 1);
        assert!(
            matches!(
                &out[0].1,
                Outcome::Deferred {
                    code: Some(451),
                    ..
                }
            ),
            "{out:?}"
        );
        let r = row().await;
        assert_eq!((r.status.as_str(), r.attempts), ("deferred", k as i64 + 1));
        let minutes = (r.next_attempt - now).num_milliseconds() as f64 / 60_000.0;
        let step = step as f64;
        assert!(
            (0.8 * step..=1.2 * step).contains(&minutes),
            "attempt {}: retried after {minutes} min, expected {step} min +-20%",
            k + 1
        );
        waits.push(minutes);
        // Not a moment before it is due.
        let early = d
            .drain_once(
                Some(issue),
                r.next_attempt - chrono::Duration::milliseconds(1),
            )
            .await
            .unwrap();
        assert!(early.is_empty(), "leased before it was due: {early:?}");
        now = r.next_attempt;
    }
    assert_eq!(smtp.attempts("r0@example.org").len(), 7);
    // Jitter: the waits are not all exactly the step.
    assert!(waits.iter().any(|w| w.fract() != 0.0), "{waits:?}");

    // On at 360 x base until max_age: the last retry falls at max_age, then the row fails.
    let mut tries = 7;
    loop {
        let out = d.drain_once(Some(issue), now).await.unwrap();
        assert_eq!(out.len(), 1);
        tries += 1;
        let r = row().await;
        if r.status == "failed" {
            assert_eq!(now, deadline, "fails at max_age, not before: {r:?}");
            assert!(
                r.last_error
                    .as_deref()
                    .unwrap_or_default()
                    .contains("4.3.0"),
                "{r:?}"
            );
            break;
        }
        assert_eq!(r.status, "deferred");
        assert!(r.next_attempt <= deadline, "never retried past max_age");
        assert!(now < deadline, "still deferred at max_age: {r:?}");
        now = r.next_attempt;
        assert!(tries < 40, "runaway retries");
    }
    assert_eq!(smtp.attempts("r0@example.org").len(), tries);
    let after = d
        .drain_once(Some(issue), deadline + chrono::Duration::days(30))
        .await
        .unwrap();
    assert!(after.is_empty(), "a failed row is never tried again");
    assert_eq!(smtp.count(), 0);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_stalls_after_data_is_given_up_on_at_mail_timeout_and_retried() {
    let mail = Mail {
        timeout: "1s",
        ..Mail::default()
    };
    let p = publication_with(
        &config_of(&mail, ""),
        "stuck@example.org,,weekly,confirmed\nnext@example.org,,weekly,confirmed\n",
    )
    .await;
    let smtp = SmtpServer::with_faults(Faults {
        script: vec![script("stuck@example.org", vec![Step::Hang])],
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    let now = Utc::now();
    let out = tokio::time::timeout(Duration::from_secs(30), d.drain_once(Some(issue), now))
        .await
        .expect("a stalled relay does not stall herald")
        .unwrap();
    let rows = rows_by_email(&store, issue).await;
    let stuck = &rows["stuck@example.org"];
    assert_eq!(
        stuck.status, "deferred",
        "a timeout defers, never fails: {stuck:?}"
    );
    assert_eq!(stuck.last_code, None, "no reply code");
    assert!(
        stuck
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("timed out"),
        "{stuck:?}"
    );
    assert_eq!(
        rows["next@example.org"].status, "sent",
        "the next row goes on: {out:?}"
    );
    // herald hung up on the stalled session.
    smtp.until(
        Duration::from_secs(10),
        "the stalled session is closed",
        |s| s.hanging() == 0,
    )
    .await;
    let out = d.drain_once(Some(issue), stuck.next_attempt).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, Outcome::Sent);
    let got = copies(&smtp);
    assert_eq!(got["stuck@example.org"].len(), 1);
    assert_eq!(got["next@example.org"].len(), 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stored_before_the_connection_dropped_is_the_one_duplicate_and_keeps_its_id() {
    let p = publication(3, 1000, 1).await;
    let smtp = SmtpServer::with_faults(Faults {
        script: vec![script("r1@example.org", vec![Step::StoreThenClose])],
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    tokio::time::timeout(LONG, d.run(Some(issue), true, CancellationToken::new()))
        .await
        .expect("the send finishes")
        .unwrap();
    let got = copies(&smtp);
    assert_eq!(got.len(), 3);
    assert_eq!(got["r0@example.org"].len(), 1);
    assert_eq!(got["r2@example.org"].len(), 1);
    let twice = &got["r1@example.org"];
    assert_eq!(twice.len(), 2, "stored, connection lost, sent again");
    assert_eq!(twice[0], twice[1], "the resend has the same Message-ID");
    let r1: Vec<bool> = smtp
        .messages()
        .iter()
        .filter(|m| m.rcpt == ["r1@example.org"])
        .map(|m| m.acked)
        .collect();
    assert_eq!(r1, [false, true]);
    assert_eq!((smtp.count(), smtp.acked()), (4, 3));
    let c = counts(&store, Some(issue)).await;
    assert_eq!((c.sent, c.remaining()), (3, 0));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_connections_is_how_many_sessions_the_relay_sees_and_each_is_reused() {
    let p = publication(30, 1000, 3).await;
    // Slow 250s keep every connection busy, so all of them are open at once.
    let smtp = SmtpServer::with_faults(Faults {
        slow_250: Some(Duration::from_millis(100)),
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    tokio::time::timeout(LONG, d.run(Some(issue), true, CancellationToken::new()))
        .await
        .expect("the send finishes")
        .unwrap();
    assert_eq!(smtp.count(), 30);
    assert_eq!(smtp.max_sessions(), 3, "mail.connections at once");
    assert_eq!(smtp.sessions(), 3, "each connection carries many messages");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_rate_per_second_caps_what_the_relay_receives_in_any_second() {
    let n = 25;
    let rate = 10;
    let connections = 4;
    let p = publication(n, rate, connections).await;
    let smtp = SmtpServer::start();
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    tokio::time::timeout(LONG, d.run(Some(issue), true, CancellationToken::new()))
        .await
        .expect("the send finishes")
        .unwrap();
    assert_eq!(smtp.count(), n);
    // A slow machine only spreads messages out; unpaced, all 25 would land in one second.
    // The slack covers replies of the connections bunching up in transit.
    let most = smtp.most_within(Duration::from_secs(1));
    assert!(
        most <= rate as usize + connections as usize,
        "{most} messages within one second at {rate}/s"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_run_stopped_mid_delivery_exits_in_the_grace_and_a_restart_loses_nothing() {
    let n = 80;
    let p = publication(n, 1000, 2).await;
    let smtp = SmtpServer::with_faults(Faults {
        slow_250: Some(Duration::from_millis(100)),
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;

    let mut child = herald_child(&p, &["run"], &smtp).spawn().unwrap();
    smtp.until(LONG, "the daemon delivers", |s| s.count() >= 10)
        .await;
    let c = counts(&store, Some(issue)).await;
    assert!(c.sending > 0 && c.sent < n as i64, "mid-delivery: {c:?}");
    assert!(child.try_wait().unwrap().is_none(), "alive");
    sigterm(&child);
    let status = exit_within(child, Duration::from_secs(30), "herald run after SIGTERM").await;
    assert!(status.success(), "{status:?}");
    let c = counts(&store, Some(issue)).await;
    assert_eq!(c.sending, 0, "the rest went back to the queue: {c:?}");
    assert!(
        smtp.messages().iter().all(|m| m.acked),
        "in-flight messages finished"
    );
    assert_eq!(c.sent as usize, smtp.count(), "and were recorded");
    assert!((c.sent as usize) < n, "stopped before the end: {c:?}");

    let child = herald_child(&p, &["run"], &smtp).spawn().unwrap();
    ledger_until(
        &store,
        Some(issue),
        LONG,
        "the restart sends the rest",
        |c| c.sent == n as i64,
    )
    .await;
    sigterm(&child);
    let status = exit_within(child, Duration::from_secs(30), "the second stop").await;
    assert!(status.success(), "{status:?}");
    let got = copies(&smtp);
    assert_eq!(got.len(), n, "no one lost");
    assert!(got.values().all(|v| v.len() == 1), "no one twice");
    store.close().await;
}

/// Every subscriber's (status, newsletters), by address.
async fn everyone(store: &Store) -> BTreeMap<String, (Status, Vec<String>)> {
    let mut m = BTreeMap::new();
    for email in ["a", "b", "c", "d"] {
        let s = subscriber(store, &format!("{email}@example.org")).await;
        m.insert(s.email.clone(), (s.status, s.newsletters.clone()));
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_through_a_received_digests_header_unsubscribes_exactly_that_reader() {
    let daily = "[[newsletter]]\nid = \"daily\"\ntitle = \"The Daily\"\nschedule = \"0 6 * * *\"\ntimezone = \"UTC\"\n";
    let p = publication_with(
        &config_of(&Mail::default(), daily),
        "a@example.org,,weekly daily,confirmed\n\
         b@example.org,,weekly daily,confirmed\n\
         c@example.org,,weekly daily,confirmed\n\
         d@example.org,,weekly daily,confirmed\n",
    )
    .await;
    let smtp = SmtpServer::start();
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    tokio::time::timeout(LONG, d.run(Some(issue), true, CancellationToken::new()))
        .await
        .expect("the send finishes")
        .unwrap();
    d.stop().await;
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    for m in smtp.messages() {
        assert_eq!(
            super::smtp::header(&m.data, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        let header = super::smtp::header(&m.data, "List-Unsubscribe").unwrap();
        let url = unsubscribe_url(&header);
        let path = url
            .strip_prefix(BASE.trim_end_matches('/'))
            .unwrap_or_else(|| panic!("{url} is under base_url"))
            .to_string();
        links.insert(m.rcpt[0].clone(), path);
    }
    assert_eq!(links.len(), 4);

    let daemon = Daemon::start_with(
        &p,
        herald::config::Secrets {
            secret: Some(SECRET.into()),
            ..Default::default()
        },
    )
    .await;
    let post = |path: &str| daemon.client.post(format!("{}{path}", daemon.url));
    let both = vec!["daily".to_string(), "weekly".to_string()];
    let mut expected = everyone(&store).await;
    assert!(
        expected
            .values()
            .all(|v| v == &(Status::Confirmed, both.clone()))
    );

    // A mail client's one-click POST, as RFC 8058 has it; multipart; no body at all.
    let requests = [
        (
            "a@example.org",
            post(&links["a@example.org"])
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click"),
        ),
        (
            "b@example.org",
            post(&links["b@example.org"])
                .multipart(reqwest::multipart::Form::new().text("List-Unsubscribe", "One-Click")),
        ),
        ("c@example.org", post(&links["c@example.org"])),
    ];
    for (who, request) in requests {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200, "{who}");
        expected.insert(who.to_string(), (Status::Confirmed, vec!["daily".into()]));
        assert_eq!(
            everyone(&store).await,
            expected,
            "{who}'s link took {who} off the weekly only"
        );
    }

    // A tampered token: refused, and nobody changes.
    let path = &links["d@example.org"];
    let (prefix, token) = path.rsplit_once('/').unwrap();
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{prefix}/{}", String::from_utf8(bytes).unwrap());
    let r = post(&tampered)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("Nothing was changed"), "{page}");
    assert_eq!(
        everyone(&store).await,
        expected,
        "a tampered link changes nothing"
    );
    // The genuine link still works.
    let r = post(path).send().await.unwrap();
    assert_eq!(r.status(), 200);
    expected.insert(
        "d@example.org".into(),
        (Status::Confirmed, vec!["daily".into()]),
    );
    assert_eq!(everyone(&store).await, expected);
    daemon.stop().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_cuts_off_a_message_the_relay_never_answers_within_the_grace() {
    // mail.timeout is longer than the grace: only the grace can end the stalled send.
    let mail = Mail {
        timeout: "120s",
        connections: 2,
        ..Mail::default()
    };
    let mut csv = String::from("stuck@example.org,,weekly,confirmed\n");
    for i in 0..5 {
        csv.push_str(&format!("r{i}@example.org,,weekly,confirmed\n"));
    }
    let p = publication_with(&config_of(&mail, ""), &csv).await;
    let smtp = SmtpServer::with_faults(Faults {
        script: vec![script("stuck@example.org", vec![Step::Hang])],
        ..Default::default()
    });
    let (store, issue) = make_issue(&p).await;
    let d = delivery(&p, &store, smtp.port).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let d = d.clone();
        let stop = stop.clone();
        async move { d.run(Some(issue), false, stop).await }
    });
    smtp.until(LONG, "one stalled, the rest delivered", |s| {
        s.hanging() == 1 && s.count() == 5
    })
    .await;
    ledger_until(&store, Some(issue), LONG, "the rest recorded", |c| {
        c.sent == 5
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("a stop ends delivery within 30 s even with a send in flight")
        .unwrap()
        .unwrap();
    let rows = rows_by_email(&store, issue).await;
    let stuck = &rows["stuck@example.org"];
    assert_eq!(stuck.status, "deferred", "back in the queue: {stuck:?}");
    assert_eq!(stuck.last_error.as_deref(), Some("cut off by shutdown"));
    smtp.until(Duration::from_secs(10), "herald hung up", |s| {
        s.hanging() == 0
    })
    .await;
    d.stop().await;

    let d = delivery(&p, &store, smtp.port).await;
    tokio::time::timeout(LONG, d.run(Some(issue), true, CancellationToken::new()))
        .await
        .expect("the restart finishes")
        .unwrap();
    let got = copies(&smtp);
    assert_eq!(got.len(), 6);
    assert!(got.values().all(|v| v.len() == 1));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_answers_halve_the_rate_and_other_temporary_ones_do_not() {
    let p = publication(1, 1000, 1).await;
    let (store, issue) = make_issue(&p).await;
    let mut now = Utc::now();
    for (code, halves) in [
        (421, true),
        (450, true),
        (451, true),
        (452, true),
        (454, true),
        (441, false),
        (447, false),
    ] {
        let smtp = SmtpServer::with_faults(Faults {
            script: vec![script(
                "r0@example.org",
                vec![Step::Rcpt(code, format!("{}.4.0 busy", code / 100))],
            )],
            ..Default::default()
        });
        // A fresh delivery, so a fresh pacer at the configured rate.
        let d = delivery(&p, &store, smtp.port).await;
        assert_eq!(d.rate(), 1000.0);
        let out = d.drain_once(Some(issue), now).await.unwrap();
        let rate = d.rate();
        let Outcome::Deferred {
            until, code: got, ..
        } = &out[0].1
        else {
            panic!("{code}: deferred, not {out:?}");
        };
        assert_eq!(*got, Some(code));
        if halves {
            // Half, give or take a tenth per second the machine took since.
            assert!(rate <= 1000.0 * 0.5 * 1.1 * 1.1, "{code} halves: {rate}");
        } else {
            assert_eq!(rate, 1000.0, "{code} does not throttle");
        }
        now = *until;
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sender_starting_leaves_the_leases_of_a_live_one_alone() {
    let n = 20;
    let p = publication(n, 1000, 1).await;
    let smtp = SmtpServer::start();
    smtp.hold();
    let (store, issue) = make_issue(&p).await;
    let first = delivery(&p, &store, smtp.port).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let d = first.clone();
        let stop = stop.clone();
        async move { d.run(Some(issue), false, stop).await }
    });
    smtp.until(LONG, "the first sender is mid-send", |s| s.held() == 1)
        .await;
    let before = ledger_until(&store, Some(issue), LONG, "rows leased", |c| {
        c.sending == n as i64
    })
    .await;
    // Another process on this host (here: the same one) starts sending on the same store.
    let second = delivery(&p, &store, smtp.port).await;
    let after = counts(&store, Some(issue)).await;
    assert_eq!(
        (after.sending, after.queued, after.deferred),
        (before.sending, 0, 0),
        "a live sender's leases are not taken back"
    );
    smtp.release();
    ledger_until(
        &store,
        Some(issue),
        LONG,
        "the first sender finishes",
        |c| c.sent == n as i64,
    )
    .await;
    stop.cancel();
    tokio::time::timeout(LONG, run)
        .await
        .expect("delivery stops")
        .unwrap()
        .unwrap();
    let got = copies(&smtp);
    assert_eq!(got.len(), n);
    assert!(got.values().all(|v| v.len() == 1), "nothing sent twice");
    second.stop().await;
    first.stop().await;
}
