//! The one retry policy of both mail queues (digests in the ledger, confirmation emails):
//! after a temporary failure a message waits `mail.retry_base` × 1, 5, 30, 120, 360 (the
//! last repeating), ±20% jitter, and is given up once it is `max_age` old — the last try
//! falls at that age.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::MailConfig;

/// Retry delays after a temporary failure, as multiples of `mail.retry_base`.
const BACKOFF: [u32; 5] = [1, 5, 30, 120, 360];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_age: Duration,
}

impl RetryPolicy {
    /// `mail.retry_base` and `mail.max_age`.
    pub fn from_config(cfg: &MailConfig) -> RetryPolicy {
        RetryPolicy {
            base: cfg.retry_base.0,
            max_age: cfg.max_age.0,
        }
    }

    /// The same policy, giving up sooner if `limit` is shorter than the max age.
    pub fn at_most(self, limit: Duration) -> RetryPolicy {
        RetryPolicy {
            max_age: self.max_age.min(limit),
            ..self
        }
    }

    /// The wait after the `attempts`-th failed attempt; `roll` in 0..1 picks the jitter.
    pub fn delay(&self, attempts: i64, roll: f64) -> Duration {
        let step = BACKOFF[(attempts.max(1) as usize - 1).min(BACKOFF.len() - 1)];
        (self.base * step).mul_f64(0.8 + roll.clamp(0.0, 1.0) * 0.4)
    }

    /// When a message first queued at `created` is tried again after its `attempts`-th
    /// failure at `now`, never later than its max age; `None`: it is that old, give up.
    pub fn next_attempt(
        &self,
        created: DateTime<Utc>,
        attempts: i64,
        now: DateTime<Utc>,
        roll: f64,
    ) -> Option<DateTime<Utc>> {
        let deadline = created + chrono::Duration::from_std(self.max_age).unwrap_or_default();
        if now >= deadline {
            return None;
        }
        let delay = chrono::Duration::from_std(self.delay(attempts, roll)).unwrap_or_default();
        Some((now + delay).min(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_repeats_and_stops_at_the_max_age() {
        let p = RetryPolicy {
            base: Duration::from_secs(60),
            max_age: Duration::from_secs(24 * 3600),
        };
        let mins = |a| p.delay(a, 0.5).as_secs() / 60;
        assert_eq!([1, 2, 3, 4, 5, 9].map(mins), [1, 5, 30, 120, 360, 360]);
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(48));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(72));
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let late = t0 + chrono::Duration::hours(23);
        assert_eq!(
            p.next_attempt(t0, 5, late, 0.5),
            Some(t0 + chrono::Duration::hours(24))
        );
        assert_eq!(
            p.next_attempt(t0, 5, t0 + chrono::Duration::hours(24), 0.5),
            None
        );
        let short = p.at_most(Duration::from_secs(3600));
        assert_eq!(
            short.next_attempt(t0, 1, t0 + chrono::Duration::hours(1), 0.5),
            None
        );
    }
}
