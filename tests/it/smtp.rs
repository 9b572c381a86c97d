//! A real SMTP server over TCP inside the test process, written by hand for tests of a sender
//! that must never lose or duplicate mail: it fails the way relays really fail.
//!
//! Each [`SmtpServer`] listens on `127.0.0.1:0` (a port of its own, never re-bound), accepts
//! on a thread of its own and runs one thread per session. It records into shared state that
//! the test reads back: accepted messages (with whether the client was told 250), every RCPT
//! attempt with its reply code, how many sessions ran at once.
//!
//! What it speaks: the greeting, `EHLO`/`HELO` (advertising `8BITMIME` only: no STARTTLS, no
//! AUTH, no PIPELINING), `MAIL`, `RCPT`, `DATA`, `RSET`, `NOOP`, `QUIT`. The envelope is what
//! is recorded: `MAIL FROM` and the *accepted* `RCPT TO`s, whatever the `To:` header says.
//! `data` is the message as received: CRLF lines, dot-unstuffed, without the final `.` line
//! (lettre always ends DATA with `\r\n.\r\n`, so a message that already ends in CRLF arrives
//! with one extra empty line). `DATA` with no accepted recipient gets `503`.
//!
//! Faults ([`Faults`]), the ones relays really have:
//! - replies: 451 or 550 at RCPT (by probability or for listed addresses), 554 5.7.1 for
//!   listed addresses, 451 to the final dot (not stored);
//! - `drop`: the connection is lost after the final dot, no reply, nothing stored;
//!   `store_then_close`: the same, but the message was stored;
//! - per-recipient scripts ([`Step`]): one step per RCPT attempt for that address — any
//!   reply at RCPT (`451`, then `250`; `550 5.1.1`; `550 5.1.7`; `553 5.1.8`), any reply to
//!   the final dot, [`Step::Hang`] (no reply to the final dot until the client gives up),
//!   [`Step::StoreThenClose`] (the message is stored, then the connection is closed before the
//!   250: the one legitimate duplicate), [`Step::Slow`] (stored, 250 after a delay);
//! - `slow_250`: every accepted message is answered after a delay (so sessions overlap and
//!   [`SmtpServer::max_sessions`] shows how many connections a sender really opens);
//! - [`SmtpServer::set_down`]: connections are accepted and closed at once, with no greeting
//!   (a relay that is down), counted in [`SmtpServer::refused_connections`]; switched back
//!   on, the same port works again — nothing is re-bound;
//! - [`SmtpServer::hold`]: from now on every message is stored and its 250 held back until
//!   [`SmtpServer::release`] (or the client goes away): a test can freeze a sender with a
//!   known set of messages in flight ([`SmtpServer::held`]).
//!
//! Addresses in `Faults` and in [`SmtpServer::attempts`] are compared ASCII-case-insensitively.
//! Randomness is a seeded xorshift shared by all sessions of one server: deterministic for a
//! sender that sends one message at a time, interleaved if it sends concurrently. Every
//! session reads with a timeout, so a client that vanishes never keeps a thread for long.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::message::header::ContentTransferEncoding;
use lettre::{AsyncTransport, Message};

/// A session that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// A hung or held session gives up on its client after this long.
const LONGEST_HOLD: Duration = Duration::from_secs(120);

/// One accepted (stored) message.
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
    /// Whether the 250 for it was written to the client (false: stored, then the
    /// connection was closed, or the client went away while the reply was held).
    pub acked: bool,
    /// When the final `.` arrived.
    pub at: Instant,
}

/// What the server does with one RCPT attempt for a scripted recipient, and with the
/// message that follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// 250 at RCPT, stored, 250 to the final dot.
    Accept,
    /// This reply (code, text) at RCPT: `Step::Rcpt(451, "4.3.0 try again later".into())`.
    Rcpt(u16, String),
    /// 250 at RCPT; this reply to the final dot; stored only if it is 2xx.
    Data(u16, String),
    /// 250 at RCPT; no reply to the final dot, ever: the session waits until the client
    /// closes the connection. Nothing is stored.
    Hang,
    /// 250 at RCPT; the message is stored, then the connection is closed before the 250.
    StoreThenClose,
    /// 250 at RCPT; stored; 250 to the final dot after this delay.
    Slow(Duration),
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
    /// Probability at the end of DATA that the connection is lost: no reply, the message is
    /// NOT stored, the server closes the connection.
    pub drop: f64,
    /// Probability at the end of DATA that the message is stored and then the connection is
    /// lost before the 250 ([`Step::StoreThenClose`]).
    pub store_then_close: f64,
    /// Recipients always refused with `550 5.1.1 no such user`.
    pub always_550: Vec<String>,
    /// Recipients always deferred with `451 4.3.0 try again later`.
    pub always_451: Vec<String>,
    /// Recipients refused with `554 5.7.1 policy`.
    pub policy_554: Vec<String>,
    /// Per recipient, the steps of its next RCPT attempts, in order; once they are used up
    /// the other faults apply again.
    pub script: Vec<(String, Vec<Step>)>,
    /// Every message otherwise accepted is answered only after this delay.
    pub slow_250: Option<Duration>,
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
        let port = listener
            .local_addr()
            .expect("SmtpServer: local address")
            .port();
        let shared = Arc::new(Mutex::new(Shared::new(faults)));
        let state = Arc::clone(&shared);
        // The socket is already listening, so clients may connect before this thread runs.
        std::thread::Builder::new()
            .name(format!("smtp-{port}"))
            .spawn(move || accept_loop(listener, state))
            .expect("SmtpServer: spawn the accepting thread");
        SmtpServer { port, shared }
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Replaces the faults while running (the randomness restarts from the new seed).
    pub fn set_faults(&self, faults: Faults) {
        let mut shared = self.lock();
        shared.rng = XorShift::new(faults.seed);
        shared.scripts = scripts(&faults);
        shared.faults = faults;
    }

    /// Down: every connection is closed as soon as it is accepted, without a greeting, and
    /// sessions already open are closed at their next command. Up again: served as before.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// From now on, every message is stored and its 250 held back until [`Self::release`];
    /// a held session whose client goes away leaves its message stored and unacknowledged.
    pub fn hold(&self) {
        let mut shared = self.lock();
        shared.hold = true;
    }

    /// Lets every held message have its 250, and stops holding.
    pub fn release(&self) {
        let mut shared = self.lock();
        shared.hold = false;
        shared.release_generation += 1;
    }

    /// Sessions now waiting with a stored message whose 250 is held back.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// Sessions now hanging after DATA ([`Step::Hang`]).
    pub fn hanging(&self) -> usize {
        self.lock().hanging
    }

    /// The stored messages, in the order they were stored.
    pub fn messages(&self) -> Vec<Received> {
        self.lock().messages.clone()
    }

    /// How many messages were stored.
    pub fn count(&self) -> usize {
        self.lock().messages.len()
    }

    /// How many stored messages the client was told 250 about.
    pub fn acked(&self) -> usize {
        self.lock().messages.iter().filter(|m| m.acked).count()
    }

    /// Sessions (greeted connections) so far.
    pub fn sessions(&self) -> usize {
        self.lock().sessions_total
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.lock().sessions_now
    }

    /// The most sessions that were open at once.
    pub fn max_sessions(&self) -> usize {
        self.lock().sessions_max
    }

    /// Connections closed unanswered while the server was down.
    pub fn refused_connections(&self) -> usize {
        self.lock().refused_connections
    }

    /// The most messages stored within any `window` (from the first's final `.`).
    pub fn most_within(&self, window: Duration) -> usize {
        let times: Vec<Instant> = self.lock().messages.iter().map(|m| m.at).collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// Waits (polling with `std::thread::sleep`, so it blocks a current-thread runtime; the
    /// server runs on its own threads) until at least `n` messages were stored or `timeout`
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

    /// Waits without blocking the runtime until `check` holds for this server; panics with
    /// `what` after `timeout` (a hang becomes a failure).
    pub async fn until(&self, timeout: Duration, what: &str, check: impl Fn(&SmtpServer) -> bool) {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "the SMTP server waited {timeout:?} for: {what} ({} stored, {} sessions open, {} held)",
                self.count(),
                self.open_sessions(),
                self.held()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
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

/// A test that panics elsewhere must not make the server unusable.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn scripts(faults: &Faults) -> HashMap<String, VecDeque<Step>> {
    faults
        .script
        .iter()
        .map(|(to, steps)| (to.to_ascii_lowercase(), steps.iter().cloned().collect()))
        .collect()
}

/// State shared by the test and every session of one server.
struct Shared {
    faults: Faults,
    scripts: HashMap<String, VecDeque<Step>>,
    rng: XorShift,
    messages: Vec<Received>,
    /// Every RCPT attempt, in order: (recipient, reply code).
    attempts: Vec<(String, u16)>,
    down: bool,
    refused_connections: usize,
    sessions_now: usize,
    sessions_max: usize,
    sessions_total: usize,
    hold: bool,
    release_generation: u64,
    held: usize,
    hanging: usize,
}

impl Shared {
    fn new(faults: Faults) -> Shared {
        Shared {
            rng: XorShift::new(faults.seed),
            scripts: scripts(&faults),
            faults,
            messages: Vec::new(),
            attempts: Vec::new(),
            down: false,
            refused_connections: 0,
            sessions_now: 0,
            sessions_max: 0,
            sessions_total: 0,
            hold: false,
            release_generation: 0,
            held: 0,
            hanging: 0,
        }
    }

    /// The step for one RCPT attempt: the recipient's script first, then the other faults.
    fn rcpt_step(&mut self, to: &str) -> Step {
        if let Some(step) = self
            .scripts
            .get_mut(&to.to_ascii_lowercase())
            .and_then(VecDeque::pop_front)
        {
            return step;
        }
        let listed = |list: &[String]| list.iter().any(|a| a.eq_ignore_ascii_case(to));
        if listed(&self.faults.policy_554) {
            Step::Rcpt(554, "5.7.1 policy".into())
        } else if listed(&self.faults.always_550) || self.rng.chance(self.faults.rcpt_550) {
            Step::Rcpt(550, "5.1.1 no such user".into())
        } else if listed(&self.faults.always_451) || self.rng.chance(self.faults.rcpt_451) {
            Step::Rcpt(451, "4.3.0 try again later".into())
        } else {
            Step::Accept
        }
    }

    /// What happens to a message the script did not decide about, at the final dot.
    fn data_step(&mut self) -> Step {
        if self.rng.chance(self.faults.drop) {
            return Step::Data(0, String::new()); // 0: lost, see `Session::end_of_data`
        }
        if self.rng.chance(self.faults.store_then_close) {
            return Step::StoreThenClose;
        }
        if self.rng.chance(self.faults.data_451) {
            return Step::Data(451, "4.3.0 try again later".into());
        }
        match self.faults.slow_250 {
            Some(d) => Step::Slow(d),
            None => Step::Accept,
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

fn accept_loop(listener: TcpListener, shared: Arc<Mutex<Shared>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        {
            let mut s = lock(&shared);
            if s.down {
                s.refused_connections += 1;
                drop(s);
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
            s.sessions_now += 1;
            s.sessions_total += 1;
            s.sessions_max = s.sessions_max.max(s.sessions_now);
        }
        let shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("smtp-session".into())
            .spawn(move || {
                let _open = OpenSession(Arc::clone(&shared));
                let _ = Session::new(stream, shared).and_then(|mut s| s.run());
            });
        if spawned.is_err() {
            eprintln!("SmtpServer: cannot start a session thread");
        }
    }
}

/// Counts a session as open while it lives.
struct OpenSession(Arc<Mutex<Shared>>);

impl Drop for OpenSession {
    fn drop(&mut self) {
        lock(&self.0).sessions_now -= 1;
    }
}

/// One SMTP session.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    shared: Arc<Mutex<Shared>>,
    mail_from: Option<String>,
    rcpt: Vec<String>,
    /// The step that decides what happens at the end of DATA (from the scripts).
    step: Option<Step>,
}

/// How a session ends its handling of a command.
enum Next {
    Go,
    Close,
}

impl Session {
    fn new(stream: TcpStream, shared: Arc<Mutex<Shared>>) -> io::Result<Session> {
        stream.set_read_timeout(Some(IDLE))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(Session {
            reader: BufReader::new(stream),
            writer,
            shared,
            mail_from: None,
            rcpt: Vec::new(),
            step: None,
        })
    }

    fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        self.writer
            .write_all(format!("{code} {text}\r\n").as_bytes())
    }

    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        Ok((n > 0).then_some(line))
    }

    fn run(&mut self) -> io::Result<()> {
        self.reply(220, "smtp.herald.test ESMTP test relay")?;
        while let Some(line) = self.read_line()? {
            if lock(&self.shared).down {
                break;
            }
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if let Next::Close = self.command(&line)? {
                break;
            }
        }
        let _ = self.writer.shutdown(Shutdown::Both);
        Ok(())
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt.clear();
        self.step = None;
    }

    fn command(&mut self, line: &str) -> io::Result<Next> {
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => self
                .writer
                .write_all(b"250-smtp.herald.test\r\n250 8BITMIME\r\n")?,
            "HELO" => self.reply(250, "smtp.herald.test")?,
            "MAIL" => match path(line, "FROM:") {
                Some(from) => {
                    self.reset();
                    self.mail_from = Some(from);
                    self.reply(250, "2.1.0 ok")?;
                }
                None => self.reply(501, "5.5.4 syntax: MAIL FROM:<address>")?,
            },
            "RCPT" => match (path(line, "TO:"), self.mail_from.is_some()) {
                (None, _) => self.reply(501, "5.5.4 syntax: RCPT TO:<address>")?,
                (Some(_), false) => self.reply(503, "5.5.1 MAIL first")?,
                (Some(to), true) => {
                    let step = {
                        let mut shared = lock(&self.shared);
                        let step = shared.rcpt_step(&to);
                        let code = match &step {
                            Step::Rcpt(code, _) => *code,
                            _ => 250,
                        };
                        shared.attempts.push((to.clone(), code));
                        step
                    };
                    match step {
                        Step::Rcpt(code, text) => {
                            self.reply(code, &text)?;
                            if (200..300).contains(&code) {
                                self.rcpt.push(to);
                            }
                        }
                        other => {
                            self.reply(250, "2.1.5 ok")?;
                            self.rcpt.push(to);
                            if other != Step::Accept && self.step.is_none() {
                                self.step = Some(other);
                            }
                        }
                    }
                }
            },
            "DATA" => {
                if self.rcpt.is_empty() {
                    self.reply(503, "5.5.1 no valid recipients")?;
                } else {
                    self.reply(354, "end data with <CR><LF>.<CR><LF>")?;
                    return self.data();
                }
            }
            "RSET" => {
                self.reset();
                self.reply(250, "2.0.0 ok")?;
            }
            "NOOP" => self.reply(250, "2.0.0 ok")?,
            "QUIT" => {
                self.reply(221, "2.0.0 bye")?;
                return Ok(Next::Close);
            }
            _ => self.reply(500, "5.5.2 command not recognized")?,
        }
        Ok(Next::Go)
    }

    /// Reads the message up to the final dot, then does what the step says.
    fn data(&mut self) -> io::Result<Next> {
        let mut data = Vec::new();
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(Next::Close); // lost mid-DATA: nothing stored
            };
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            data.extend_from_slice(line);
        }
        let step = match self.step.take() {
            Some(s) => s,
            None => lock(&self.shared).data_step(),
        };
        let received = Received {
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt: std::mem::take(&mut self.rcpt),
            message_id: message_id(&data),
            data,
            acked: false,
            at: Instant::now(),
        };
        match step {
            Step::Data(0, _) => Ok(Next::Close),
            Step::Data(code, text) if !(200..300).contains(&code) => {
                self.reply(code, &text)?;
                Ok(Next::Go)
            }
            Step::Hang => {
                lock(&self.shared).hanging += 1;
                let _ = self.wait_for_client(None);
                lock(&self.shared).hanging -= 1;
                Ok(Next::Close)
            }
            Step::StoreThenClose => {
                lock(&self.shared).messages.push(received);
                Ok(Next::Close)
            }
            Step::Slow(delay) => {
                let index = self.store(received);
                std::thread::sleep(delay);
                self.ack(index)
            }
            Step::Accept | Step::Data(..) | Step::Rcpt(..) => {
                let index = self.store(received);
                self.ack(index)
            }
        }
    }

    /// Stores a message and, while the server holds replies, waits for the release (or for
    /// the client to go away). Returns the message's index, or None if the client went away.
    fn store(&mut self, received: Received) -> Option<usize> {
        let (index, generation) = {
            let mut shared = lock(&self.shared);
            shared.messages.push(received);
            let index = shared.messages.len() - 1;
            if !shared.hold {
                return Some(index);
            }
            shared.held += 1;
            (index, shared.release_generation)
        };
        let released = self.wait_for_client(Some(generation));
        lock(&self.shared).held -= 1;
        released.then_some(index)
    }

    /// Writes the 250 for a stored message and marks it acknowledged.
    fn ack(&mut self, index: Option<usize>) -> io::Result<Next> {
        let Some(index) = index else {
            return Ok(Next::Close);
        };
        self.reply(250, "2.0.0 queued")?;
        lock(&self.shared).messages[index].acked = true;
        Ok(Next::Go)
    }

    /// Waits, without replying, until the client closes the connection (false) or — with a
    /// `generation` — until the server releases held replies (true). Anything the client
    /// sends meanwhile (a QUIT after its timeout) is read and ignored, as a stalled relay
    /// would.
    fn wait_for_client(&mut self, generation: Option<u64>) -> bool {
        let stream = self.reader.get_ref();
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        let started = Instant::now();
        let mut buf = [0u8; 512];
        let released = loop {
            if let Some(g) = generation
                && lock(&self.shared).release_generation != g
            {
                break true;
            }
            if lock(&self.shared).down || started.elapsed() > LONGEST_HOLD {
                break false;
            }
            match self.reader.get_mut().read(&mut buf) {
                Ok(0) => break false,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break false,
            }
        };
        let _ = self.reader.get_ref().set_read_timeout(Some(IDLE));
        released
    }
}

/// The address in `MAIL FROM:<a> ...` / `RCPT TO:<a> ...`, without `<>`.
fn path(line: &str, keyword: &str) -> Option<String> {
    let rest = line.get(5..)?.trim_start();
    if !rest.to_ascii_uppercase().starts_with(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_string())
}

/// The `Message-ID` header of a raw message (unfolded, trimmed, `<>` kept).
pub fn message_id(data: &[u8]) -> Option<String> {
    header(data, "message-id")
}

/// A header of a raw message (unfolded, trimmed), if present and not empty.
pub fn header(data: &[u8], wanted: &str) -> Option<String> {
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
            && name.trim().eq_ignore_ascii_case(wanted)
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

    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "bounces@news.example.com");
    assert_eq!(got[0].rcpt, ["alice@example.org"]);
    assert!(got[0].acked);
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
    assert_eq!(server.sessions(), 1);
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

    let err = send(&server, "alice@example.org").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(451));
    assert_eq!(server.attempts("alice@example.org"), [451]);

    // A lost connection: no reply at all, nothing stored.
    server.set_faults(Faults {
        drop: 1.0,
        ..Faults::default()
    });
    let err = send(&server, "alice@example.org").await.unwrap_err();
    assert_eq!(
        err.status(),
        None,
        "no reply code for a lost connection: {err}"
    );
    assert!(!err.is_permanent(), "{err}");

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
    assert_eq!(server.count(), 1);
    assert_eq!(server.attempts("alice@example.org"), [451, 250, 250, 250]);
}

#[tokio::test]
async fn smtp_scripts_answer_each_attempt_of_a_recipient_in_turn() {
    let server = SmtpServer::with_faults(Faults {
        script: vec![
            (
                "ann@example.org".into(),
                vec![
                    Step::Rcpt(451, "4.3.0 try again later".into()),
                    Step::Rcpt(550, "5.1.7 bad sender address".into()),
                    Step::Data(553, "5.1.8 sender domain unknown".into()),
                ],
            ),
            (
                "bob@example.org".into(),
                vec![Step::Slow(Duration::from_millis(50))],
            ),
        ],
        ..Faults::default()
    });
    let codes: Vec<Option<u16>> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(match send(&server, "ann@example.org").await {
                Ok(r) => Some(u16::from(r.code())),
                Err(e) => e.status().map(u16::from),
            });
        }
        v
    };
    assert_eq!(codes, [Some(451), Some(550), Some(553), Some(250)]);
    assert_eq!(server.attempts("ann@example.org"), [451, 550, 250, 250]);
    assert_eq!(server.count(), 1, "only the script's end stores");
    send(&server, "bob@example.org").await.unwrap();
    assert_eq!(server.count(), 2);
    assert!(server.messages().iter().all(|m| m.acked));
}

#[tokio::test]
async fn smtp_store_then_close_keeps_the_message_and_never_says_250() {
    let server = SmtpServer::with_faults(Faults {
        script: vec![("ann@example.org".into(), vec![Step::StoreThenClose])],
        ..Faults::default()
    });
    let err = send(&server, "ann@example.org").await.unwrap_err();
    assert_eq!(err.status(), None, "the connection was lost: {err}");
    let got = server.messages();
    assert_eq!(got.len(), 1, "stored all the same");
    assert!(!got[0].acked);
    assert_eq!(
        got[0].message_id.as_deref(),
        Some("<digest-1@news.example.com>")
    );
    send(&server, "ann@example.org").await.unwrap();
    assert_eq!(server.count(), 2);
    assert!(server.messages()[1].acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_hang_after_data_never_answers_until_the_client_gives_up() {
    let server = SmtpServer::with_faults(Faults {
        script: vec![("ann@example.org".into(), vec![Step::Hang])],
        ..Faults::default()
    });
    let pending = tokio::spawn({
        let transport = server.transport();
        async move { transport.send(message("ann@example.org")).await }
    });
    server
        .until(Duration::from_secs(10), "the session hangs", |s| {
            s.hanging() == 1
        })
        .await;
    assert!(!pending.is_finished(), "no reply to the final dot");
    pending.abort(); // the client gives up: its connection closes
    server
        .until(Duration::from_secs(10), "the hung session ends", |s| {
            s.hanging() == 0 && s.open_sessions() == 0
        })
        .await;
    assert_eq!(server.count(), 0, "a hung message is not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_holds_replies_until_released_and_can_be_down_and_back() {
    let server = SmtpServer::start();
    server.hold();
    let pending = tokio::spawn({
        let transport = server.transport();
        async move { transport.send(message("ann@example.org")).await }
    });
    server
        .until(Duration::from_secs(10), "one message held", |s| {
            s.held() == 1
        })
        .await;
    assert_eq!(server.count(), 1, "stored while held");
    assert!(!server.messages()[0].acked);
    server.release();
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("released")
        .unwrap()
        .unwrap();
    assert!(server.messages()[0].acked);

    server.set_down(true);
    let err = send(&server, "ann@example.org").await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert_eq!(server.refused_connections(), 1);
    server.set_down(false);
    send(&server, "ann@example.org").await.unwrap();
    assert_eq!(server.count(), 2);
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
