//! A real SMTP server over TCP inside the test process, with fault injection, for tests of a
//! sender that must never lose or duplicate mail.
//!
//! Built on `mailin-embedded` (blocking IO, one thread per session from a fixed pool). Each
//! [`SmtpServer`] listens on `127.0.0.1`, runs on a leaked thread (mailin's `serve()` never
//! returns; the server lives until the test binary exits) and records into shared state that
//! the test reads back: accepted messages, every RCPT attempt with its reply code.
//!
//! Behaviour worth knowing when writing tests (mailin 0.6.5 quirks included):
//! - The envelope is what is recorded: `MAIL FROM` and the *accepted* `RCPT TO`s, whatever the
//!   `To:` header says. `data` is the message as received: CRLF lines, dot-unstuffed, without
//!   the final `.` line. No line-length or size limit is enforced. lettre always ends DATA with
//!   `\r\n.\r\n`, so a message that already ends in CRLF arrives with one extra empty line.
//! - `MAIL FROM:<>` (null sender) and any MAIL/RCPT parameter other than `BODY=8BITMIME|7BIT`
//!   (`SIZE=`, `SMTPUTF8`, `NOTIFY=`...) are refused by mailin's parser with `500 Syntax error`.
//!   The server advertises only 8BITMIME (no STARTTLS, no AUTH, no SMTPUTF8, no PIPELINING).
//! - A refused RCPT is not added to the transaction; `DATA` with no accepted recipient gets
//!   `503 Bad sequence of commands`. RSET is not passed to the handler (per-transaction state
//!   is reset on MAIL and taken from mailin at DATA).
//! - mailin keeps a session in the DATA state after an error reply to the final `.`, so the
//!   client's next command (lettre sends QUIT) would be swallowed as message text and the client
//!   would hang until mailin's 5-minute read timeout (lettre's tokio `timeout` only bounds the
//!   connect, not replies). The `data_451` reply is therefore built with
//!   `is_error = false` so mailin goes back to the ready state while the client still reads 451.
//! - `drop` answers the final `.` with `421 4.4.2 connection dropped` and closes the socket
//!   (mailin's `Action::Close`); the message is not stored. The client sees a transient 421
//!   reply, not a silent EOF: mailin offers no way to close without writing a reply, and an io
//!   error from the `data` callback makes mailin answer `554` (permanent!) mid-DATA instead.
//! - Addresses in `Faults` and in [`SmtpServer::attempts`] are compared ASCII-case-insensitively.
//! - Randomness is a seeded xorshift shared by all connections of one server: deterministic for
//!   a sender that sends one message at a time, interleaved if it sends concurrently.
//! - At most [`SESSIONS`] SMTP sessions run at once; further connections wait for a free one.

use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::message::header::ContentTransferEncoding;
use lettre::{AsyncTransport, Message};
use mailin_embedded::{Handler, Response, Server, SslConfig, response};

/// How many SMTP sessions one server handles concurrently (mailin's thread pool size).
pub const SESSIONS: u32 = 16;

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Received {
    /// The envelope sender (`MAIL FROM`), without `<>`.
    pub mail_from: String,
    /// The accepted envelope recipients (`RCPT TO`), without `<>`.
    pub rcpt: Vec<String>,
    /// The message as received: CRLF lines, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// The `Message-ID` header, with its `<>`, if there is one.
    pub message_id: Option<String>,
}

/// Faults to inject; the default accepts everything.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability per RCPT of `451 4.3.0 try again later`.
    pub rcpt_451: f64,
    /// Probability per RCPT of `550 5.1.1 no such user`.
    pub rcpt_550: f64,
    /// Probability at the end of DATA of `451 4.3.0 try again later` (message NOT stored).
    pub data_451: f64,
    /// Probability at the end of DATA that the connection is lost: the message is NOT stored
    /// and the client gets `421 4.4.2 connection dropped` instead of 250, then the server
    /// closes the connection.
    pub drop: f64,
    /// Recipients always refused with `550 5.1.1 no such user`.
    pub always_550: Vec<String>,
    /// Recipients always deferred with `451 4.3.0 try again later`.
    pub always_451: Vec<String>,
    /// Recipients refused with `554 5.7.1 policy`.
    pub policy_554: Vec<String>,
    /// Seed of the deterministic randomness behind the probabilities.
    pub seed: u64,
}

/// A running SMTP server on `127.0.0.1:port`.
pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl SmtpServer {
    /// A server on a free port that accepts everything.
    pub fn start() -> SmtpServer {
        SmtpServer::with_faults(Faults::default())
    }

    /// A server on a free port with the given faults.
    pub fn with_faults(faults: Faults) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("SmtpServer: bind 127.0.0.1:0");
        SmtpServer::serve(listener, faults)
    }

    /// A server on the given port (for "the relay comes back" tests). Panics if it is taken.
    pub fn start_on(port: u16, faults: Faults) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
            panic!("SmtpServer::start_on({port}): cannot listen on 127.0.0.1:{port}: {e}")
        });
        SmtpServer::serve(listener, faults)
    }

    fn serve(listener: TcpListener, faults: Faults) -> SmtpServer {
        let port = listener
            .local_addr()
            .expect("SmtpServer: local address")
            .port();
        let shared = Arc::new(Mutex::new(Shared::new(faults)));
        let mut server = Server::new(Session::new(Arc::clone(&shared)));
        server
            .with_name("smtp.herald.test")
            .with_num_threads(SESSIONS)
            .with_ssl(SslConfig::None)
            .expect("SmtpServer: no TLS")
            .with_tcp_listener(listener);
        // The socket is already listening, so clients may connect before this thread runs.
        std::thread::Builder::new()
            .name(format!("smtp-{port}"))
            .spawn(move || {
                // Only returns if accepting fails; the error type is not Send, so print it.
                if let Err(e) = server.serve() {
                    eprintln!("SmtpServer on port {port} stopped: {e}");
                }
            })
            .expect("SmtpServer: spawn the server thread");
        SmtpServer { port, shared }
    }

    /// Replaces the faults while running (the randomness restarts from the new seed).
    pub fn set_faults(&self, faults: Faults) {
        let mut shared = self.lock();
        shared.rng = XorShift::new(faults.seed);
        shared.faults = faults;
    }

    /// The accepted (250) messages, in the order they were accepted.
    pub fn messages(&self) -> Vec<Received> {
        self.lock().messages.clone()
    }

    /// How many messages were accepted.
    pub fn count(&self) -> usize {
        self.lock().messages.len()
    }

    /// Waits (polling with `std::thread::sleep`, so it blocks a current-thread runtime; the
    /// server runs on its own threads) until at least `n` messages were accepted or `timeout`
    /// passes. Returns whether it got them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every permanent (5xx) RCPT refusal, in order, with its code; a recipient refused twice
    /// (i.e. retried after a permanent refusal) appears twice.
    pub fn refused(&self) -> Vec<(String, u16)> {
        let shared = self.lock();
        let refused = shared.attempts.iter().filter(|(_, code)| *code >= 500);
        refused.cloned().collect()
    }

    /// The reply code of every RCPT attempt for this recipient, in order.
    pub fn attempts(&self, rcpt: &str) -> Vec<u16> {
        let shared = self.lock();
        let mine = shared
            .attempts
            .iter()
            .filter(|(to, _)| to.eq_ignore_ascii_case(rcpt));
        mine.map(|(_, code)| *code).collect()
    }

    /// A lettre transport for this server (plain SMTP, no pool, 5 s connect timeout).
    pub fn transport(&self) -> lettre::AsyncSmtpTransport<lettre::Tokio1Executor> {
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(self.port)
            .timeout(Some(Duration::from_secs(5)))
            .build()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

/// A free port with nothing listening on it (bind to :0, read the port, drop the listener).
pub fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("unused_port: bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("unused_port: local address")
        .port()
}

/// A test that panics elsewhere must not make the server unusable.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// State shared by the test and every connection of one server.
struct Shared {
    faults: Faults,
    rng: XorShift,
    messages: Vec<Received>,
    /// Every RCPT attempt, in order: (recipient, reply code).
    attempts: Vec<(String, u16)>,
}

impl Shared {
    fn new(faults: Faults) -> Shared {
        Shared {
            rng: XorShift::new(faults.seed),
            faults,
            messages: Vec::new(),
            attempts: Vec::new(),
        }
    }

    fn rcpt_reply(&mut self, to: &str) -> Response {
        let listed = |list: &[String]| list.iter().any(|a| a.eq_ignore_ascii_case(to));
        if listed(&self.faults.policy_554) {
            Response::custom(554, "5.7.1 policy".to_owned())
        } else if listed(&self.faults.always_550) || self.rng.chance(self.faults.rcpt_550) {
            Response::custom(550, "5.1.1 no such user".to_owned())
        } else if listed(&self.faults.always_451) || self.rng.chance(self.faults.rcpt_451) {
            Response::custom(451, "4.3.0 try again later".to_owned())
        } else {
            response::OK
        }
    }
}

/// xorshift64: small, deterministic, good enough for fault injection.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
        // xorshift is stuck at zero, so never start there.
        XorShift(match seed ^ GOLDEN {
            0 => GOLDEN,
            state => state,
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// True with probability `p`; draws only when 0 < p < 1.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
        }
    }
}

/// The mailin handler: cloned for each connection, so per-transaction state lives here and
/// everything else in `shared`.
#[derive(Clone)]
struct Session {
    shared: Arc<Mutex<Shared>>,
    mail_from: String,
    rcpt: Vec<String>,
    data: Vec<u8>,
}

impl Session {
    fn new(shared: Arc<Mutex<Shared>>) -> Session {
        Session {
            shared,
            mail_from: String::new(),
            rcpt: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl Handler for Session {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        // A new transaction (mailin does not tell the handler about RSET).
        self.mail_from = from.to_owned();
        self.rcpt.clear();
        self.data.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let mut shared = lock(&self.shared);
        let reply = shared.rcpt_reply(to);
        shared.attempts.push((to.to_owned(), reply.code));
        reply
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        // mailin's own envelope: only the recipients that got a 250.
        self.mail_from = from.to_owned();
        self.rcpt = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = std::mem::take(&mut self.data);
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        if shared.rng.chance(shared.faults.drop) {
            // 421 makes mailin write the reply and close the connection.
            return Response::custom(421, "4.4.2 connection dropped".to_owned());
        }
        if shared.rng.chance(shared.faults.data_451) {
            let mut reply = Response::custom(451, "4.3.0 try again later".to_owned());
            // Otherwise mailin stays in DATA and swallows the client's next command.
            reply.is_error = false;
            return reply;
        }
        shared.messages.push(Received {
            mail_from: self.mail_from.clone(),
            rcpt: std::mem::take(&mut self.rcpt),
            message_id: message_id(&data),
            data,
        });
        response::OK
    }
}

/// The `Message-ID` header of a raw message (unfolded, trimmed, `<>` kept).
fn message_id(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            match value.as_mut() {
                Some(v) => v.push_str(line.trim()),
                None => continue,
            }
        } else if value.is_some() {
            break;
        } else if let Some((name, rest)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("message-id")
        {
            value = Some(rest.trim().to_owned());
        }
    }
    value.filter(|v| !v.is_empty())
}

// ---- Tests of the server itself, through lettre ------------------------------------------

fn message(to: &str) -> Message {
    Message::builder()
        .from("Desk <desk@news.example.com>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject("Digest")
        .message_id(Some("<digest-1@news.example.com>".to_owned()))
        .body("Hello.\r\n".to_owned())
        .unwrap()
}

async fn send(
    server: &SmtpServer,
    to: &str,
) -> Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error> {
    server.transport().send(message(to)).await
}

#[tokio::test]
async fn smtp_receives_the_envelope_and_the_message_as_sent() {
    let server = SmtpServer::start();
    // The envelope differs from the headers; an 8-bit body needs BODY=8BITMIME; a line
    // starting with a dot is dot-stuffed by lettre and must come back unstuffed.
    let email = Message::builder()
        .from("Desk <desk@news.example.com>".parse().unwrap())
        .to("Readers <readers@news.example.com>".parse().unwrap())
        .subject("Digest")
        .message_id(Some("<digest-1@news.example.com>".to_owned()))
        .header(ContentTransferEncoding::EightBit)
        .body("Grüße\r\n.leading dot\r\n".to_owned())
        .unwrap();
    let envelope = Envelope::new(
        Some("bounces@news.example.com".parse().unwrap()),
        vec!["alice@example.org".parse().unwrap()],
    )
    .unwrap();
    let reply = server
        .transport()
        .send_raw(&envelope, &email.formatted())
        .await
        .unwrap();
    assert_eq!(u16::from(reply.code()), 250);

    assert!(server.wait_for(1, Duration::from_secs(1)));
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "bounces@news.example.com");
    assert_eq!(got[0].rcpt, ["alice@example.org"]);
    assert_eq!(
        got[0].message_id.as_deref(),
        Some("<digest-1@news.example.com>")
    );
    // lettre always ends DATA with "\r\n.\r\n", even after a final CRLF: one extra empty line.
    let sent = [email.formatted(), b"\r\n".to_vec()].concat();
    assert_eq!(got[0].data, sent, "data differs from what was sent");
    assert!(
        got[0]
            .data
            .ends_with("Grüße\r\n.leading dot\r\n\r\n".as_bytes())
    );
    assert_eq!(server.attempts("alice@example.org"), [250]);
    assert!(server.refused().is_empty());
}

#[tokio::test]
async fn smtp_permanent_refusals_are_5xx_and_recorded() {
    let server = SmtpServer::with_faults(Faults {
        always_550: vec!["gone@example.org".into()],
        policy_554: vec!["blocked@example.org".into()],
        ..Faults::default()
    });

    let err = send(&server, "gone@example.org").await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(550));
    let err = send(&server, "blocked@example.org").await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(554));
    // The same server still accepts other recipients.
    send(&server, "alice@example.org").await.unwrap();

    let refused = server.refused();
    let expected = [
        ("gone@example.org".to_owned(), 550),
        ("blocked@example.org".to_owned(), 554),
    ];
    assert_eq!(refused, expected);
    assert_eq!(server.attempts("GONE@example.org"), [550]);
    assert_eq!(server.count(), 1);
    assert_eq!(server.messages()[0].rcpt, ["alice@example.org"]);
}

#[tokio::test]
async fn smtp_transient_faults_store_nothing_and_change_live() {
    let server = SmtpServer::with_faults(Faults {
        rcpt_451: 1.0,
        ..Faults::default()
    });
    let started = Instant::now();

    let err = send(&server, "alice@example.org").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(451));
    assert_eq!(server.attempts("alice@example.org"), [451]);

    server.set_faults(Faults {
        drop: 1.0,
        ..Faults::default()
    });
    let err = send(&server, "alice@example.org").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(421));

    server.set_faults(Faults {
        data_451: 1.0,
        ..Faults::default()
    });
    let err = send(&server, "alice@example.org").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(451));
    assert_eq!(server.count(), 0);
    assert!(server.refused().is_empty());

    server.set_faults(Faults::default());
    send(&server, "alice@example.org").await.unwrap();
    assert!(server.wait_for(1, Duration::from_secs(1)));
    assert_eq!(server.attempts("alice@example.org"), [451, 250, 250, 250]);
    // No fault left lettre waiting for a reply (its QUIT after an error is answered).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn smtp_random_faults_follow_the_seed() {
    let faults = Faults {
        rcpt_451: 0.5,
        seed: 7,
        ..Faults::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let server = SmtpServer::with_faults(faults.clone());
        for _ in 0..20 {
            let _ = send(&server, "alice@example.org").await;
        }
        let codes = server.attempts("alice@example.org");
        assert_eq!(server.count(), codes.iter().filter(|&&c| c == 250).count());
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&250) && runs[0].contains(&451),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn smtp_start_on_a_given_port() {
    let port = unused_port();
    let down = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    let err = down.send(message("alice@example.org")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");

    let server = SmtpServer::start_on(port, Faults::default());
    assert_eq!(server.port, port);
    send(&server, "alice@example.org").await.unwrap();
    assert_eq!(server.count(), 1);

    let taken = std::panic::catch_unwind(|| SmtpServer::start_on(port, Faults::default()));
    assert!(taken.is_err(), "a second server on a taken port must panic");
}
