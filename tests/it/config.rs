//! Configuration read once and used everywhere: a relay URL `herald check` accepts is the
//! one `herald run` sends through.

use std::time::Duration;

use herald::config::Secrets;

use crate::helpers::{Daemon, Publication};
use crate::pages::NEWSLETTERS;
use crate::smtp::SmtpServer;

const SECRET: &str = "config-test-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opportunistic_tls_relay_passes_check_and_is_what_run_sends_through() {
    // The test relay offers no STARTTLS, so `tls=opportunistic` goes on in plaintext, as
    // lettre's meaning of the URL says.
    let smtp = SmtpServer::start();
    let p = Publication::with_config(&format!(
        "[mail]\ntransport = \"smtp://127.0.0.1:{}?tls=opportunistic\"\n{NEWSLETTERS}",
        smtp.port
    ));
    let site = p.site();
    assert_eq!(
        herald::cli::check::run(&site).unwrap(),
        std::process::ExitCode::SUCCESS,
        "check accepts the relay URL"
    );
    let secrets = Secrets {
        smtp_url: None,
        secret: Some(SECRET.into()),
        admin_token: None,
    };
    let d = Daemon::start_with(&p, secrets).await;
    let r = d
        .client
        .post(format!("{}/subscribe", d.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=opportunist%40example.org&newsletters=weekly")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        smtp.wait_for(1, Duration::from_secs(20)),
        "the confirmation email reaches the relay"
    );
    assert_eq!(smtp.messages()[0].rcpt, ["opportunist@example.org"]);
    d.stop().await;
}

/// A PKCS#8 PEM RSA-2048 key, as `openssl genpkey` writes one.
fn dkim_pem() -> String {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use base64::Engine;
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_email_is_dkim_signed_and_uses_the_envelope_sender() {
    let smtp = SmtpServer::start();
    let p = Publication::with_config(&format!(
        "[mail]\nfrom = \"Test News <desk@news.example.com>\"\nreply_to = \"letters@news.example.com\"\nenvelope_from = \"bounces@news.example.com\"\ndkim = {{ domain = \"news.example.com\", selector = \"s1\", key_file = \"dkim.pem\" }}\n{NEWSLETTERS}"
    ));
    p.write_bytes("dkim.pem", dkim_pem().as_bytes());
    let secrets = Secrets {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        secret: Some(SECRET.into()),
        admin_token: None,
    };
    let d = Daemon::start_with(&p, secrets).await;
    let r = d
        .client
        .post(format!("{}/subscribe", d.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=signed%40example.org&newsletters=weekly")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(smtp.wait_for(1, Duration::from_secs(20)), "the email comes");
    let received = smtp.messages().remove(0);
    assert_eq!(received.mail_from, "bounces@news.example.com");
    assert_eq!(received.rcpt, ["signed@example.org"]);

    let mail = mail_parser::MessageParser::default()
        .parse(&received.data)
        .unwrap();
    assert!(
        mail.body_text(0).unwrap().contains("/confirm/"),
        "it is the confirmation email"
    );
    assert_eq!(
        mail.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        mail.reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("letters@news.example.com")
    );
    let sig: String = mail
        .header_raw("DKIM-Signature")
        .expect("the confirmation email is DKIM-signed")
        .split_whitespace()
        .collect();
    let tags: std::collections::HashMap<&str, &str> = sig
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim(), v))
        .collect();
    assert_eq!(tags["d"], "news.example.com");
    assert_eq!(tags["s"], "s1");
    let signed: Vec<String> = tags["h"].split(':').map(str::to_ascii_lowercase).collect();
    for h in ["from", "to", "subject", "date", "message-id", "reply-to"] {
        assert!(signed.iter().any(|s| s == h), "{h} is signed: {signed:?}");
    }
    d.stop().await;
}
