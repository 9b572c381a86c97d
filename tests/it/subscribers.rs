//! Sign-up, confirmation and unsubscription over HTTP with a real SMTP server receiving the
//! confirmation emails; the admin API; link scanners; bad input.

use std::time::Duration;

use chrono::Utc;
use herald::config::Secrets;
use herald::subscribers::tokens::{Claims, Keys, Purpose};
use reqwest::StatusCode;

use super::helpers::*;
use super::smtp::{Faults, SmtpServer};

const SECRET: &str = "test-secret-0123456789abcdef";
/// How long to wait for an email.
const SOON_SMTP: Duration = Duration::from_secs(SOON as u64);
const ADMIN: &str = "admin-token-for-tests";

const NEWSLETTERS: &str = "
[subscribe]
confirmations_per_day = 3
requests_per_minute = 100

[[newsletter]]
id = \"weekly\"
title = \"The Weekly & More\"
schedule = \"0 7 * * Fri\"

[[newsletter]]
id = \"daily\"
title = \"Daily\"
schedule = \"0 7 * * *\"
";

struct World {
    /// Kept so the publication's folder lives as long as the daemon.
    _p: Publication,
    d: Daemon,
    smtp: SmtpServer,
}

async fn world() -> World {
    world_with(NEWSLETTERS).await
}

async fn world_with(config: &str) -> World {
    let smtp = SmtpServer::start();
    let p = Publication::with_config(config);
    let secrets = Secrets {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        secret: Some(SECRET.into()),
        admin_token: Some(ADMIN.into()),
    };
    let d = Daemon::start_with(&p, secrets).await;
    World { _p: p, d, smtp }
}

impl World {
    async fn post_form(&self, path: &str, body: &str) -> reqwest::Response {
        self.d
            .client
            .post(format!("{}{path}", self.d.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.d
            .client
            .post(format!("{}{path}", self.d.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The subscriber record, through the admin API.
    async fn subscriber(&self, email: &str) -> Option<serde_json::Value> {
        let r = self
            .d
            .client
            .get(format!("{}/api/subscribers/{email}", self.d.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            return None;
        }
        Some(r.json::<serde_json::Value>().await.unwrap()["subscriber"].clone())
    }

    /// The confirmation link of the n-th message received, pointed at the test daemon.
    fn confirm_link(&self, n: usize) -> String {
        let msg = &self.smtp.messages()[n];
        let parsed = mail_parser::MessageParser::default()
            .parse(&msg.data)
            .expect("a parsable email");
        let text = parsed.body_text(0).expect("a text part").into_owned();
        let link = text
            .split_whitespace()
            .find(|w| w.starts_with(&format!("{BASE}confirm/")))
            .unwrap_or_else(|| panic!("no confirm link in:\n{text}"))
            .to_string();
        let html = parsed.body_html(0).expect("an HTML part");
        assert!(html.contains(&link), "the HTML part carries the same link");
        self.local(&link)
    }

    /// The whole answer to a sign-up form: status, headers but `Date`, body.
    async fn answer(&self, form: &str) -> (StatusCode, Vec<(String, String)>, String) {
        let r = self.post_form("/subscribe", form).await;
        let status = r.status();
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        (status, headers, r.text().await.unwrap())
    }

    /// Messages the relay received for `rcpt`.
    fn mailed(&self, rcpt: &str) -> usize {
        self.smtp
            .messages()
            .iter()
            .filter(|m| m.rcpt.iter().any(|r| r == rcpt))
            .count()
    }

    /// Waits (at most [`SOON`] seconds) for a message to `rcpt`; whether one came.
    async fn mail_to(&self, rcpt: &str) -> bool {
        eventually(SOON, || async { self.mailed(rcpt) > 0 })
            .await
            .is_some()
    }

    /// Signs `marker` up and waits for its confirmation email: the worker sends in order,
    /// so every request made before was handled by then (instead of sleeping and hoping).
    async fn handled_everything_before(&self, marker: &str) {
        let r = self
            .post_json("/subscribe", serde_json::json!({"email": marker}))
            .await;
        assert_eq!(r.status(), 202);
        assert!(
            self.mail_to(marker).await,
            "the marker's confirmation email arrives"
        );
    }

    fn local(&self, link: &str) -> String {
        link.replace(BASE, &format!("{}/", self.d.url))
    }

    fn unsubscribe_link(&self, subscriber: i64, newsletter: Option<&str>) -> String {
        let token = Keys::from_secrets(SECRET).unwrap().sign(&Claims {
            purpose: Purpose::Unsubscribe,
            subscriber,
            newsletter: newsletter.map(str::to_string),
            nonce: None,
            expires: None,
        });
        format!("{}/unsubscribe/{token}", self.d.url)
    }
}

fn status_of(s: &Option<serde_json::Value>) -> String {
    s.as_ref()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_confirm_and_unsubscribe_by_following_the_emails() {
    let w = world().await;
    let form = w.d.text("/subscribe").await;
    assert!(form.contains("name=\"website\""), "honeypot field");
    assert!(form.contains("value=\"weekly\"") && form.contains("The Weekly &amp; More"));

    let r = w
        .post_form(
            "/subscribe",
            "email=Reader%40Example.ORG&name=Ann+Reader&newsletters=weekly",
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Check your inbox"));
    assert!(
        w.smtp.wait_for(1, SOON_SMTP),
        "the confirmation email arrives"
    );
    let msg = &w.smtp.messages()[0];
    assert_eq!(msg.rcpt, vec!["Reader@example.org".to_string()]);
    let parsed = mail_parser::MessageParser::default()
        .parse(&msg.data)
        .unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Confirm your subscription to Test News")
    );
    assert!(
        parsed.header_raw("Precedence").is_none(),
        "confirmations are not bulk mail"
    );
    assert_eq!(
        status_of(&w.subscriber("reader@example.org").await),
        "pending"
    );

    // A scanner following the link changes nothing.
    let link = w.confirm_link(0);
    let page = w.d.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert_eq!(w.d.client.head(&link).send().await.unwrap().status(), 200);
    assert_eq!(
        status_of(&w.subscriber("reader@example.org").await),
        "pending"
    );

    // The button confirms, once.
    let done = w.d.client.post(&link).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("You are subscribed"));
    let s = w.subscriber("reader@example.org").await.unwrap();
    assert_eq!(s["status"], "confirmed");
    assert_eq!(s["newsletters"], serde_json::json!(["weekly"]));
    assert_eq!(s["consent_source"], "form");
    assert_eq!(s["consent_ip"], "127.0.0.1");
    assert!(s["confirmed_at"].is_string());
    let again = w.d.client.post(&link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("already used"));

    // Unsubscribe: the page and HEAD change nothing; the POST does.
    let id = s["id"].as_i64().unwrap();
    let unsub = w.unsubscribe_link(id, Some("weekly"));
    let page =
        w.d.client
            .get(&unsub)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(
        page.contains("Unsubscribe from The Weekly &amp; More"),
        "{page}"
    );
    w.d.client.head(&unsub).send().await.unwrap();
    assert_eq!(
        status_of(&w.subscriber("reader@example.org").await),
        "confirmed"
    );
    let r = w.d.client.post(&unsub).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_of(&w.subscriber("reader@example.org").await),
        "unsubscribed"
    );
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_accepts_multipart_and_empty_bodies_without_cookies() {
    let w = world().await;
    for (n, email) in ["one@example.org", "two@example.org"].iter().enumerate() {
        w.post_json("/subscribe", serde_json::json!({"email": email}))
            .await;
        assert!(w.smtp.wait_for(n + 1, SOON_SMTP));
        let link = w.confirm_link(n);
        assert_eq!(w.d.client.post(&link).send().await.unwrap().status(), 200);
    }
    let one = w.subscriber("one@example.org").await.unwrap();
    let two = w.subscriber("two@example.org").await.unwrap();
    assert_eq!(one["newsletters"], serde_json::json!(["daily", "weekly"]));

    // What a mailbox provider sends (RFC 8058): multipart, no cookie, no Origin.
    let form = reqwest::multipart::Form::new().text("List-Unsubscribe", "One-Click");
    let link = w.unsubscribe_link(one["id"].as_i64().unwrap(), Some("weekly"));
    let r = w.d.client.post(&link).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 200, "no redirect, no error");
    let one = w.subscriber("one@example.org").await.unwrap();
    assert_eq!(one["status"], "confirmed");
    assert_eq!(
        one["newsletters"],
        serde_json::json!(["daily"]),
        "only that newsletter stops"
    );

    // An empty body; a token without a newsletter stops everything.
    let link = w.unsubscribe_link(two["id"].as_i64().unwrap(), None);
    let r =
        w.d.client
            .post(&link)
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_of(&w.subscriber("two@example.org").await),
        "unsubscribed"
    );
    // Again: still 200, nothing changes.
    assert_eq!(w.d.client.post(&link).send().await.unwrap().status(), 200);

    // The page's "everything" button.
    let link = w.unsubscribe_link(one["id"].as_i64().unwrap(), Some("daily"));
    let r = w.post_form(&link.replace(&w.d.url, ""), "scope=all").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_of(&w.subscriber("one@example.org").await),
        "unsubscribed"
    );
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sign_up_gets_the_same_answer_and_links_keep_working() {
    let w = world().await;
    let ask = || w.post_form("/subscribe", "email=same%40example.org&newsletters=daily");
    let first = ask().await.text().await.unwrap();
    assert!(w.smtp.wait_for(1, SOON_SMTP));
    let second = ask().await.text().await.unwrap();
    assert_eq!(first, second, "pending: same answer");
    assert!(w.smtp.wait_for(2, SOON_SMTP));
    // Both emails carry a working link to the same pending sign-up (links are sealed
    // afresh each time, so their text differs).
    for n in [0, 1] {
        let page = w.d.client.get(w.confirm_link(n)).send().await.unwrap();
        assert_eq!(page.status(), 200, "link {n} works");
        assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    }
    w.d.client.post(w.confirm_link(1)).send().await.unwrap();
    let third = ask().await.text().await.unwrap();
    assert_eq!(first, third, "confirmed: same answer");
    assert!(w.smtp.wait_for(3, SOON_SMTP));
    // The daily limit (3 here) reached: same answer, no more email.
    let fourth = ask().await.text().await.unwrap();
    assert_eq!(first, fourth);
    w.handled_everything_before("marker1@example.org").await;
    assert_eq!(w.mailed("same@example.org"), 3, "the limit holds");

    // A suppressed address (unsubscribed, and one that complained): the very same answer
    // as a brand-new address gets — status, headers, body — so nobody can probe the list.
    let id = w.subscriber("same@example.org").await.unwrap()["id"]
        .as_i64()
        .unwrap();
    w.d.client
        .post(w.unsubscribe_link(id, None))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_of(&w.subscriber("same@example.org").await),
        "unsubscribed"
    );
    assert!(
        import_csv(&w, "email,status\ngone@example.org,complained\n")
            .status
            .success()
    );
    let unsubscribed = w.answer("email=same%40example.org&newsletters=daily").await;
    let complained = w.answer("email=gone%40example.org&newsletters=daily").await;
    let fresh = w
        .answer("email=fresh%40example.org&newsletters=daily")
        .await;
    assert_eq!(fresh.0, 200);
    assert!(fresh.2.contains("Check your inbox"), "{}", fresh.2);
    assert_eq!(
        unsubscribed, fresh,
        "an unsubscribed address answers as a new one"
    );
    assert_eq!(
        complained, fresh,
        "a complained address answers as a new one"
    );
    // The fresh address's email arriving means both earlier requests were handled.
    assert!(
        w.mail_to("fresh@example.org").await,
        "the fresh address gets its confirmation"
    );
    assert_eq!(
        w.mailed("gone@example.org"),
        0,
        "nothing is sent to a complainer"
    );
    assert_eq!(w.mailed("same@example.org"), 3, "still at the day's limit");
    assert_eq!(
        status_of(&w.subscriber("same@example.org").await),
        "unsubscribed",
        "still suppressed until confirmed anew"
    );
    assert_eq!(
        status_of(&w.subscriber("gone@example.org").await),
        "complained"
    );
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_person_can_come_back_only_by_confirming() {
    let w = world().await;
    w.post_json(
        "/subscribe",
        serde_json::json!({"email": "back@example.org", "newsletters": ["weekly"]}),
    )
    .await;
    assert!(w.smtp.wait_for(1, SOON_SMTP));
    w.d.client.post(w.confirm_link(0)).send().await.unwrap();
    let id = w.subscriber("back@example.org").await.unwrap()["id"]
        .as_i64()
        .unwrap();
    w.d.client
        .post(w.unsubscribe_link(id, None))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_of(&w.subscriber("back@example.org").await),
        "unsubscribed"
    );
    // The old confirmation link does not bring them back.
    assert_eq!(
        w.d.client
            .post(w.confirm_link(0))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(
        status_of(&w.subscriber("back@example.org").await),
        "unsubscribed"
    );
    // Signing up again sends a new link; until it is used, the address stays suppressed.
    w.post_json(
        "/subscribe",
        serde_json::json!({"email": "back@example.org", "newsletters": ["daily"]}),
    )
    .await;
    assert!(w.smtp.wait_for(2, SOON_SMTP));
    assert_eq!(
        status_of(&w.subscriber("back@example.org").await),
        "unsubscribed"
    );
    assert_eq!(
        w.d.client
            .post(w.confirm_link(1))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let s = w.subscriber("back@example.org").await.unwrap();
    assert_eq!(s["status"], "confirmed");
    assert_eq!(s["newsletters"], serde_json::json!(["daily"]));
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_wrong_purpose_tokens_change_nothing() {
    let w = world().await;
    w.post_form("/subscribe", "email=t%40example.org").await;
    assert!(w.smtp.wait_for(1, SOON_SMTP));
    let link = w.confirm_link(0);
    let (base, token) = link.rsplit_once('/').unwrap();
    let (payload, tag) = token.split_once('.').unwrap();
    let flipped: String = tag.chars().rev().collect();
    for bad in [
        format!("{payload}.{flipped}"),
        format!("{payload}x.{tag}"),
        "garbage".to_string(),
    ] {
        let url = format!("{base}/{bad}");
        let r = w.d.client.post(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.text().await.unwrap().contains("Nothing was changed"));
        assert_eq!(w.d.client.get(&url).send().await.unwrap().status(), 400);
    }
    let id = w.subscriber("t@example.org").await.unwrap()["id"]
        .as_i64()
        .unwrap();
    // An expired confirmation token, properly signed.
    let expired = Keys::from_secrets(SECRET).unwrap().sign(&Claims {
        purpose: Purpose::Confirm,
        subscriber: id,
        newsletter: None,
        nonce: Some("whatever".into()),
        expires: Some(Utc::now().timestamp() - 10),
    });
    let r =
        w.d.client
            .post(format!("{}/confirm/{expired}", w.d.url))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("expired"));
    // An unsubscribe token used to confirm.
    let unsub = w.unsubscribe_link(id, None);
    let token = unsub.rsplit_once('/').unwrap().1;
    let r =
        w.d.client
            .post(format!("{}/confirm/{token}", w.d.url))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(status_of(&w.subscriber("t@example.org").await), "pending");
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_field_named() {
    let w = world().await;
    let r = w
        .post_json(
            "/subscribe",
            serde_json::json!({"email": "a@example.org\r\nBcc: x@evil.example"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["field"], "email");
    let r = w
        .post_json(
            "/subscribe",
            serde_json::json!({"email": "a@example.org", "name": "Ann\r\nBcc: x"}),
        )
        .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["field"],
        "name"
    );
    let r = w
        .post_json(
            "/subscribe",
            serde_json::json!({"email": "a@example.org", "name": "x".repeat(101)}),
        )
        .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["field"],
        "name"
    );
    let r = w
        .post_json(
            "/subscribe",
            serde_json::json!({"email": "a@example.org", "newsletters": ["nope"]}),
        )
        .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["field"],
        "newsletters"
    );
    let r = w
        .post_json(
            "/subscribe",
            serde_json::json!({"email": format!("{}@example.org", "a".repeat(300))}),
        )
        .await;
    assert_eq!(r.status(), 400);
    // The form shows the error and keeps what was typed.
    let r = w
        .post_form("/subscribe", "email=not-an-address&name=Ann")
        .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("role=\"alert\"") && page.contains("value=\"Ann\""),
        "{page}"
    );
    // Oversize bodies are cut off: the 413 comes before any body byte is sent. (A client
    // that sends the body anyway may see the connection closed under it instead of the
    // answer, depending on timing, so the test does not.)
    let big = format!("email=a%40example.org&name={}", "x".repeat(40_000));
    let addr = w.d.url.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(SOON_SMTP)).unwrap();
        write!(
            s,
            "POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    // Nothing was stored or sent.
    w.handled_everything_before("marker@example.org").await;
    assert_eq!(w.smtp.count(), 1, "only the marker's email");
    assert!(w.subscriber("a@example.org").await.is_none());
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_honeypot_catches_bots_silently() {
    let w = world().await;
    let r = w
        .post_form(
            "/subscribe",
            "email=bot%40example.org&website=http%3A%2F%2Fspam",
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Check your inbox"));
    w.handled_everything_before("marker@example.org").await;
    assert_eq!(w.smtp.count(), 1, "only the marker's email");
    assert!(w.subscriber("bot@example.org").await.is_none());
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_limited_per_client() {
    let w =
        world_with(&NEWSLETTERS.replace("requests_per_minute = 100", "requests_per_minute = 2"))
            .await;
    for n in 0..2 {
        let r = w
            .post_json(
                "/subscribe",
                serde_json::json!({"email": format!("r{n}@example.org")}),
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    let r = w
        .post_json("/subscribe", serde_json::json!({"email": "r9@example.org"}))
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_right_token() {
    let w = world().await;
    let url = format!("{}/api/subscribers", w.d.url);
    assert_eq!(w.d.client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        w.d.client
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        w.d.client
            .get(&url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let add = |body: serde_json::Value| w.d.client.post(&url).bearer_auth(ADMIN).json(&body).send();
    let r = add(serde_json::json!({"email": "api@example.org", "name": "Api", "newsletters": ["weekly"], "confirmed": true})).await.unwrap();
    assert_eq!(r.status(), 201);
    let r = add(serde_json::json!({"email": "api@example.org", "newsletters": ["weekly"]}))
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "unchanged"
    );
    // Confirming a confirmed address again changes nothing, not even when it was confirmed.
    let before = w.subscriber("api@example.org").await.unwrap();
    let r = add(serde_json::json!({"email": "api@example.org", "newsletters": ["weekly"], "confirmed": true}))
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "unchanged"
    );
    assert_eq!(w.subscriber("api@example.org").await.unwrap(), before);
    // One newsletter more is an update.
    let r = add(serde_json::json!({"email": "api@example.org", "newsletters": ["daily"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "updated", "{v}");
    assert_eq!(
        v["subscriber"]["newsletters"],
        serde_json::json!(["daily", "weekly"])
    );
    let r = add(serde_json::json!({"email": "pending@example.org", "newsletters": ["daily"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        w.smtp.wait_for(1, SOON_SMTP),
        "a pending add gets a confirmation email"
    );
    // Added again without "confirmed": still pending, only the person confirms.
    let r = add(serde_json::json!({"email": "pending@example.org", "newsletters": ["daily"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_of(&w.subscriber("pending@example.org").await),
        "pending"
    );
    for (body, field) in [
        (serde_json::json!({"name": "no email"}), "email"),
        (
            serde_json::json!({"email": "x@example.org", "colour": "red"}),
            "colour",
        ),
        (
            serde_json::json!({"email": "x@example.org", "confirmed": "yes"}),
            "confirmed",
        ),
        (
            serde_json::json!({"email": "x@example.org", "newsletters": ["monthly"]}),
            "newsletters",
        ),
        // A wrong type anywhere in the body is named by its path.
        (serde_json::json!({"email": 5}), "email"),
        (
            serde_json::json!({"email": "x@example.org", "newsletters": [3]}),
            "newsletters[0]",
        ),
        (serde_json::json!(["x@example.org"]), "body"),
    ] {
        let r = add(body).await.unwrap();
        assert_eq!(r.status(), 400);
        let v = r.json::<serde_json::Value>().await.unwrap();
        assert_eq!(v["field"], field, "{v}");
        if field != "body" {
            assert!(
                v["error"].as_str().unwrap().contains(field),
                "the message names the field too: {v}"
            );
        }
    }

    let list: serde_json::Value =
        w.d.client
            .get(format!("{url}?status=confirmed"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(list["subscribers"].as_array().unwrap().len(), 1);
    let list: serde_json::Value =
        w.d.client
            .get(format!("{url}?newsletter=weekly&limit=1"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(list["subscribers"][0]["email"], "api@example.org");
    let r =
        w.d.client
            .get(format!("{url}?status=sleeping"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["field"],
        "status"
    );
    let counts: serde_json::Value =
        w.d.client
            .get(format!("{url}/counts"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(counts["by_status"]["confirmed"], 1);
    assert_eq!(counts["by_status"]["pending"], 1);
    assert_eq!(counts["by_newsletter"]["weekly"], 1);

    let r =
        w.d.client
            .delete(format!("{url}/api@example.org"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_of(&w.subscriber("api@example.org").await),
        "unsubscribed"
    );
    // Suppressed: the API cannot bring it back.
    let r = add(serde_json::json!({"email": "api@example.org", "confirmed": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        w.d.client
            .delete(format!("{url}/nobody@example.org"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_off_without_a_token() {
    let p = Publication::new();
    let d = Daemon::start(&p).await;
    let r = d
        .client
        .get(format!("{}/api/subscribers", d.url))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_email_waits_out_a_temporary_failure() {
    use herald::mail::{Sender, Transport};
    use herald::subscribers::confirmations::Confirmations;
    let smtp = SmtpServer::with_faults(Faults {
        always_451: vec!["slow@example.org".into()],
        ..Default::default()
    });
    let p = Publication::with_config(NEWSLETTERS);
    let site = p.site();
    let store = herald::store::Store::open(&site.store_location().unwrap())
        .await
        .unwrap();
    let email = herald::subscribers::Email::parse("slow@example.org").unwrap();
    let now = Utc::now();
    let ev = herald::subscribers::Evidence {
        source: "test".into(),
        ..Default::default()
    };
    store
        .sign_up(
            &email,
            "",
            &["weekly".into()],
            &ev,
            now,
            3,
            Duration::from_secs(86400),
        )
        .await
        .unwrap();
    let transport =
        Transport::from_site(&site, Some(&format!("smtp://127.0.0.1:{}", smtp.port))).unwrap();
    let c = Confirmations {
        site: site.clone(),
        store: store.clone(),
        keys: Keys::from_secrets(SECRET).unwrap(),
        templates: std::sync::Arc::new(
            herald::templates::Templates::load(&site.templates_dir(), chrono_tz::UTC).unwrap(),
        ),
        transport: transport.clone(),
        composer: std::sync::Arc::new(herald::mail::message::Composer::new(&site).unwrap()),
        wake: Default::default(),
    };
    let mut sender = Sender::new(transport, Duration::from_secs(10));
    assert_eq!(c.drain(&mut sender, now).await.unwrap(), 1);
    assert_eq!(smtp.count(), 0);
    // Not due again yet.
    assert_eq!(
        c.drain(&mut sender, now + chrono::Duration::seconds(30))
            .await
            .unwrap(),
        0
    );
    smtp.set_faults(Faults::default());
    assert_eq!(
        // The first retry: `mail.retry_base` (1 min) with at most 20% jitter, the policy
        // digests follow too.
        c.drain(&mut sender, now + chrono::Duration::seconds(73))
            .await
            .unwrap(),
        1
    );
    assert_eq!(smtp.count(), 1);
    assert_eq!(smtp.attempts("slow@example.org").len(), 2);
    sender.close().await;
    store.close().await;
}

/// Imports `csv` into the running daemon's store through the real CLI.
fn import_csv(w: &World, csv: &str) -> std::process::Output {
    let file = w._p.path().join("import.csv");
    std::fs::write(&file, csv).unwrap();
    w._p.herald(&["subscribers", "import", file.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_spelling_of_a_suppressed_address_is_the_same_address_everywhere() {
    let w = world().await;
    assert!(
        import_csv(&w, "email,status\nann@example.org,unsubscribed\n")
            .status
            .success()
    );
    // The admin API.
    let r =
        w.d.client
            .post(format!("{}/api/subscribers", w.d.url))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"email": "\"ann\"@Example.ORG", "confirmed": true}))
            .send()
            .await
            .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "{}",
        r.text().await.unwrap()
    );
    // The command line.
    let o =
        w._p.herald(&["subscribers", "add", "\"ann\"@example.org", "--confirmed"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("unsubscribed"), "{}", stderr(&o));
    // An import.
    let o = import_csv(&w, "email,status\n\"\"\"ann\"\"@example.org\",confirmed\n");
    assert!(
        stdout(&o).contains("1 left suppressed"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    // One record, still suppressed.
    let listed = w._p.herald(&["subscribers", "list"]);
    assert!(stdout(&listed).contains("1 in all"), "{}", stdout(&listed));
    assert_eq!(
        status_of(&w.subscriber("ann@example.org").await),
        "unsubscribed"
    );
    // Spellings herald could never mail are refused with a reason, at every door.
    for bad in ["\"ann lee\"@example.org", "ann@[192.0.2.1]"] {
        let r = w
            .post_json("/subscribe", serde_json::json!({"email": bad}))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["field"],
            "email"
        );
        let o = w._p.herald(&["subscribers", "add", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
    }
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_email_carries_no_text_the_requester_chose() {
    let w = world().await;
    let spam = "WINNER! Claim your prize at https://prize.example/now";
    let body = format!(
        "email=victim%40example.org&name={}&newsletters=daily",
        url::form_urlencoded::byte_serialize(spam.as_bytes()).collect::<String>()
    );
    assert_eq!(w.post_form("/subscribe", &body).await.status(), 200);
    assert!(w.smtp.wait_for(1, SOON_SMTP));
    let raw = String::from_utf8_lossy(&w.smtp.messages()[0].data).into_owned();
    let parsed = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let everything = format!(
        "{raw}\n{}\n{}",
        parsed.body_text(0).unwrap(),
        parsed.body_html(0).unwrap()
    );
    for piece in ["WINNER", "prize.example", "Claim"] {
        assert!(
            !everything.contains(piece),
            "{piece:?} reached the email:\n{raw}"
        );
    }
    // Nobody's record carries the name until the person confirms; then it does.
    assert_eq!(
        w.subscriber("victim@example.org").await.unwrap()["name"],
        ""
    );
    w.d.client.post(w.confirm_link(0)).send().await.unwrap();
    assert_eq!(
        w.subscriber("victim@example.org").await.unwrap()["name"],
        spam
    );
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sign_ups_never_mail_complainers_and_rewrite_no_record() {
    let w = world().await;
    assert!(
        import_csv(
            &w,
            "email,name,status\nangry@example.org,Angry,complained\ndead@example.org,Dead,bounced\nkept@example.org,Kept,confirmed\n"
        )
        .status
        .success()
    );
    let before = w.subscriber("kept@example.org").await.unwrap();
    for who in ["angry", "dead", "dead", "kept"] {
        let r =
            w.d.client
                .post(format!("{}/subscribe", w.d.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("user-agent", "forger/1.0")
                .body(format!(
                    "email={who}%40example.org&name=Forged&newsletters=daily"
                ))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A last sign-up from someone else: its email arriving means every earlier request was
    // handled (the worker sends in order).
    w.post_form("/subscribe", "email=last%40example.org&newsletters=daily")
        .await;
    assert!(w.smtp.wait_for(3, SOON_SMTP));
    let to: Vec<String> = w
        .smtp
        .messages()
        .iter()
        .flat_map(|m| m.rcpt.clone())
        .collect();
    assert_eq!(
        to,
        ["dead@example.org", "kept@example.org", "last@example.org"],
        "no mail to the complainer; the bounced address once a week at most"
    );
    // The confirmed record's name and consent evidence are as they were.
    let after = w.subscriber("kept@example.org").await.unwrap();
    for field in [
        "name",
        "consent_at",
        "consent_source",
        "consent_ip",
        "consent_user_agent",
    ] {
        assert_eq!(before[field], after[field], "{field}");
    }
    assert_eq!(
        status_of(&w.subscriber("angry@example.org").await),
        "complained"
    );
    assert_eq!(
        w.subscriber("angry@example.org").await.unwrap()["name"],
        "Angry"
    );
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lifts_no_bounce_or_complaint() {
    let w = world().await;
    assert!(
        import_csv(
            &w,
            "email,name,newsletters,status\nbounced@example.org,B,weekly,bounced\nangry@example.org,A,weekly,complained\nok@example.org,O,weekly,confirmed\n"
        )
        .status
        .success()
    );
    // The import vouches for the confirmed row's consent, and for no other.
    assert!(
        w.subscriber("ok@example.org").await.unwrap()["confirmed_at"].is_string(),
        "an imported confirmed address has its confirmation time"
    );
    for email in ["bounced@example.org", "angry@example.org"] {
        assert!(
            w.subscriber(email).await.unwrap()["confirmed_at"].is_null(),
            "{email}"
        );
    }
    let url = format!("{}/api/subscribers", w.d.url);
    for email in ["bounced@example.org", "angry@example.org"] {
        let before = w.subscriber(email).await.unwrap();
        for body in [
            serde_json::json!({"email": email, "newsletters": ["daily"], "confirmed": true}),
            serde_json::json!({"email": email, "name": "New name", "newsletters": ["daily"]}),
        ] {
            let r =
                w.d.client
                    .post(&url)
                    .bearer_auth(ADMIN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
            assert_eq!(r.status(), StatusCode::CONFLICT, "{body}");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["field"], "email", "{v}");
        }
        let after = w.subscriber(email).await.unwrap();
        assert_eq!(before, after, "{email}: the record is untouched");
    }
    assert_eq!(
        status_of(&w.subscriber("bounced@example.org").await),
        "bounced"
    );
    assert_eq!(
        status_of(&w.subscriber("angry@example.org").await),
        "complained"
    );
    // No confirmation email went to either.
    w.handled_everything_before("marker@example.org").await;
    assert_eq!(w.smtp.count(), 1, "only the marker's email");
    w.d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_reuses_its_link_only_while_it_is_valid() {
    use herald::store::subscribers::SignUp;
    let p = Publication::with_config(NEWSLETTERS);
    let site = p.site();
    let store = herald::store::Store::open(&site.store_location().unwrap())
        .await
        .unwrap();
    let email = herald::subscribers::Email::parse("again@example.org").unwrap();
    let ev = herald::subscribers::Evidence {
        source: "test".into(),
        ..Default::default()
    };
    let week = Duration::from_secs(7 * 86400);
    let now = Utc::now();
    let sign_up = |newsletter: &'static str, at: chrono::DateTime<Utc>| {
        let (store, email, ev) = (store.clone(), email.clone(), ev.clone());
        async move {
            match store
                .sign_up(&email, "", &[newsletter.into()], &ev, at, 10, week)
                .await
                .unwrap()
            {
                SignUp::Queued { subscriber } => subscriber,
                other => panic!("{other:?}"),
            }
        }
    };
    let id = sign_up("weekly", now).await;
    let (first_nonce, wanted) = store.pending_signup(id).await.unwrap().unwrap();
    assert_eq!(wanted, ["weekly"]);
    // A day later the link is still valid: the same one is sent, the wishes add up.
    sign_up("daily", now + chrono::Duration::days(1)).await;
    let (nonce, mut wanted) = store.pending_signup(id).await.unwrap().unwrap();
    wanted.sort();
    assert_eq!(nonce, first_nonce);
    assert_eq!(wanted, ["daily", "weekly"]);
    // Past its lifetime: a fresh link, and only what is asked now.
    sign_up("weekly", now + chrono::Duration::days(9)).await;
    let (nonce, wanted) = store.pending_signup(id).await.unwrap().unwrap();
    assert_ne!(nonce, first_nonce);
    assert_eq!(wanted, ["weekly"]);
    store.close().await;
}
