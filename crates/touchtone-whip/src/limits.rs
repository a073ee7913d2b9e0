//! Sans-IO rate limits: new calls per client, and how often rejected input is logged. Both take the
//! time as an argument, so their rules are tested with a simulated clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many new calls one client (IP address) may open: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallRate {
    /// Calls per second in the long run.
    pub per_second: f64,
    /// Calls at once after a quiet period.
    pub burst: u32,
}

impl Default for CallRate {
    fn default() -> Self {
        CallRate {
            per_second: 5.0,
            burst: 20,
        }
    }
}

/// Clients remembered at most; beyond, clients whose bucket is full again are forgotten.
const MAX_CLIENTS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per client.
#[derive(Debug)]
pub(crate) struct ClientRates {
    rate: CallRate,
    buckets: HashMap<IpAddr, Bucket>,
}

impl ClientRates {
    /// Buckets for `rate`.
    pub fn new(rate: CallRate) -> Self {
        ClientRates {
            rate,
            buckets: HashMap::new(),
        }
    }

    fn refill(rate: CallRate, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
    }

    /// Takes one call from `client`'s bucket at `now`, or says how long until one is available.
    pub fn take(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = self.rate;
        if rate.per_second <= 0.0 || rate.burst == 0 {
            return Err(Duration::from_secs(60));
        }
        if self.buckets.len() >= MAX_CLIENTS && !self.buckets.contains_key(&client) {
            self.buckets
                .retain(|_, b| Self::refill(rate, *b, now) < f64::from(rate.burst));
            if self.buckets.len() >= MAX_CLIENTS {
                // Too many clients at once to tell apart: new ones wait until old buckets refill.
                return Err(Duration::from_secs_f64(1.0 / rate.per_second));
            }
        }
        let b = self.buckets.entry(client).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        });
        let tokens = Self::refill(rate, *b, now);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *b = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / rate.per_second))
        }
    }

    /// Clients remembered now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.buckets.len()
    }
}

/// One log line per interval for a kind of rejected input, with the count of those not logged.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log a rejection seen at `now`: `Some(n)` with the rejections not logged since the
    /// last line, `None` to stay quiet.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut r = ClientRates::new(CallRate {
            per_second: 2.0,
            burst: 3,
        });
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.take(A, t), Ok(()));
        }
        let wait = r.take(A, t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another client has its own bucket.
        assert_eq!(r.take(B, t), Ok(()));
        assert!(r.take(A, t + Duration::from_millis(499)).is_err());
        assert_eq!(r.take(A, t + Duration::from_millis(500)), Ok(()));
        assert!(r.take(A, t + Duration::from_millis(600)).is_err());
        // A long pause refills to the burst, no more.
        let later = t + Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(r.take(A, later), Ok(()));
        }
        assert!(r.take(A, later).is_err());
    }

    #[test]
    fn the_client_table_is_bounded() {
        let mut r = ClientRates::new(CallRate {
            per_second: 1.0,
            burst: 1,
        });
        let t = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 * 3) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            let now = t + Duration::from_secs(u64::from(i / MAX_CLIENTS as u32) * 10);
            let _ = r.take(ip, now);
            assert!(r.clients() <= MAX_CLIENTS);
        }
    }

    #[test]
    fn rejections_are_logged_once_per_interval_with_a_count() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.allow(t), Some(0));
        for i in 1..=500 {
            assert_eq!(l.allow(t + Duration::from_millis(i)), None);
        }
        assert_eq!(l.allow(t + Duration::from_secs(10)), Some(500));
        assert_eq!(l.allow(t + Duration::from_secs(11)), None);
    }
}
