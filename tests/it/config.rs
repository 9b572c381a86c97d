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
