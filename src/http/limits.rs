//! Per-client limits: sign-up requests per client address, and failed admin-API
//! authentications (a client that keeps guessing the token is shut out for a while). Both
//! forget clients that went quiet, so memory stays flat however many addresses knock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// The keyed limiter is swept of clients that went quiet once every this many checks.
const SWEEP_EVERY: u64 = 1024;

/// Sign-up requests per client address and minute (`subscribe.requests_per_minute`).
pub struct SignupLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    checks: AtomicU64,
}

impl SignupLimiter {
    pub fn per_minute(n: u32) -> SignupLimiter {
        SignupLimiter::with_clock(n, DefaultClock::default())
    }
}

impl<C: Clock> SignupLimiter<C> {
    pub fn with_clock(n: u32, clock: C) -> SignupLimiter<C> {
        let n = NonZeroU32::new(n.max(1)).expect("at least 1");
        SignupLimiter {
            limiter: RateLimiter::new(
                Quota::per_minute(n),
                DefaultKeyedStateStore::default(),
                clock,
            ),
            checks: AtomicU64::new(0),
        }
    }

    /// Whether `ip` may make another request now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // A client whose allowance has refilled is the same as one never seen.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&ip).is_ok()
    }

    /// How many clients are remembered.
    pub fn remembered(&self) -> usize {
        self.limiter.len()
    }
}

/// Failed admin-API authentications per client: after [`AuthFailures::LIMIT`] failures
/// within [`AuthFailures::WINDOW`], every request from that client is refused until the
/// window has passed — a right guess then gets the same answer as a wrong one.
#[derive(Default)]
pub struct AuthFailures {
    clients: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthFailures {
    pub const LIMIT: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// Whether `ip` is shut out now; if so, for how much longer.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.get(&ip).and_then(|(n, since)| {
            let left = Self::WINDOW.checked_sub(now.duration_since(*since))?;
            (*n >= Self::LIMIT && !left.is_zero()).then_some(left)
        })
    }

    /// Counts a failure of `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= 4096 {
            clients.retain(|_, (_, since)| now.duration_since(*since) < Self::WINDOW);
        }
        let entry = clients.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= Self::WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// How many clients are remembered.
    pub fn remembered(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn the_sign_up_limiter_forgets_clients_that_went_quiet() {
        let clock = FakeRelativeClock::default();
        let limiter = SignupLimiter::with_clock(10, clock.clone());
        for n in 0..60_000 {
            assert!(limiter.allow(ip(n)));
        }
        assert!(limiter.remembered() > 50_000);
        // A minute later their allowance has refilled: the next sweep drops them all.
        clock.advance(Duration::from_secs(61));
        for n in 0..SWEEP_EVERY as u32 {
            assert!(limiter.allow(ip(1_000_000 + n)));
        }
        assert!(
            limiter.remembered() <= SWEEP_EVERY as usize,
            "{}",
            limiter.remembered()
        );
        // The limit itself still holds.
        let one = ip(7);
        let allowed = (0..20).filter(|_| limiter.allow(one)).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn ten_failed_logins_shut_a_client_out_for_a_minute() {
        let f = AuthFailures::default();
        let t = Instant::now();
        for _ in 0..9 {
            f.failed(ip(1), t);
        }
        assert_eq!(f.blocked(ip(1), t), None);
        f.failed(ip(1), t);
        assert!(f.blocked(ip(1), t).is_some());
        assert_eq!(f.blocked(ip(2), t), None, "others are not affected");
        assert_eq!(f.blocked(ip(1), t + AuthFailures::WINDOW), None);
        // 10,000 clients, one failure each, over 200 s: only the last minute's are kept.
        for n in 0..10_000u32 {
            f.failed(ip(100 + n), t + Duration::from_millis(20 * u64::from(n)));
        }
        assert!(f.remembered() <= 4096, "{}", f.remembered());
    }
}
