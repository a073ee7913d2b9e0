//! A deterministic simulated network for tests: a one-way [`Link`] that loses, duplicates, delays and
//! reorders what is sent through it, from a seed, on a simulated clock.
//!
//! Nothing here reads a clock: [`Link::send`] takes the instant of sending, [`Link::poll_timeout`] says when
//! the next item arrives, and [`Link::poll_recv`] hands out what has arrived by a given instant, in arrival
//! order (ties in sending order). The same seed and the same sends give the same deliveries on every run
//! and platform (the generator is SplitMix64, not a library's unspecified one).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use touchtone_netsim::{Link, NetConfig};
//!
//! let t0 = Instant::now();
//! let config = NetConfig {
//!     latency: Duration::from_millis(30),
//!     jitter: Duration::from_millis(10),
//!     ..NetConfig::default()
//! };
//! let mut link = Link::new(7, config);
//! for i in 0..5u32 {
//!     link.send(t0 + Duration::from_millis(u64::from(i)), i);
//! }
//! assert!(link.poll_recv(t0 + Duration::from_millis(29)).is_none());
//! let mut got = vec![];
//! while let Some(at) = link.poll_timeout() {
//!     let (arrived, i) = link.poll_recv(at).unwrap();
//!     assert_eq!(arrived, at);
//!     got.push(i);
//! }
//! got.sort();
//! assert_eq!(got, [0, 1, 2, 3, 4]);
//! ```

#![warn(missing_docs, missing_debug_implementations)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::time::{Duration, Instant};

/// What a [`Link`] does to each item.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Probability that an item is lost (0..=1).
    pub loss: f64,
    /// Probability that a delivered item arrives twice (each copy with its own jitter).
    pub duplicate: f64,
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`, drawn per copy: items sent closer together than this can be
    /// reordered.
    pub jitter: Duration,
}

impl Default for NetConfig {
    /// A perfect link: nothing lost or duplicated, delivered the instant it is sent.
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }
}

/// What happened on a link so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Items given to [`Link::send`].
    pub sent: u64,
    /// Items lost at random.
    pub lost: u64,
    /// Items lost to an outage.
    pub blacked_out: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies handed out by [`Link::poll_recv`].
    pub delivered: u64,
}

/// SplitMix64: small, fast, and fixed, so a seed means the same thing forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// Uniform in `0..=max`, in nanoseconds.
    pub fn duration_up_to(&mut self, max: Duration) -> Duration {
        let max = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (max + 1))
    }
}

/// One direction of a simulated network.
#[derive(Debug)]
pub struct Link<T> {
    config: NetConfig,
    rng: Rng,
    outages: Vec<Range<Instant>>,
    /// In flight: (arrival, order of entry) -> item.
    queue: BinaryHeap<Reverse<InFlight<T>>>,
    order: u64,
    stats: LinkStats,
}

#[derive(Debug)]
struct InFlight<T> {
    arrival: Instant,
    order: u64,
    item: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.arrival, self.order) == (other.arrival, other.order)
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.arrival, self.order).cmp(&(other.arrival, other.order))
    }
}

impl<T: Clone> Link<T> {
    /// A link with `config`, its randomness drawn from `seed`.
    pub fn new(seed: u64, config: NetConfig) -> Self {
        Link {
            config,
            rng: Rng::new(seed),
            outages: vec![],
            queue: BinaryHeap::new(),
            order: 0,
            stats: LinkStats::default(),
        }
    }

    /// The link's behaviour from now on (items in flight keep their arrival times).
    pub fn set_config(&mut self, config: NetConfig) {
        self.config = config;
    }

    /// The link's behaviour.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Everything sent during `during` is lost.
    pub fn add_outage(&mut self, during: Range<Instant>) {
        self.outages.push(during);
    }

    /// Sends `item` at `now`: lost, or queued to arrive once or twice after the latency and jitter.
    /// Every send draws the same amount of randomness, so one item's fate does not shift the next's.
    pub fn send(&mut self, now: Instant, item: T) {
        self.stats.sent += 1;
        let lost = self.rng.chance(self.config.loss);
        let twice = self.rng.chance(self.config.duplicate);
        let delays = [
            self.rng.duration_up_to(self.config.jitter),
            self.rng.duration_up_to(self.config.jitter),
        ];
        if self.outages.iter().any(|o| o.contains(&now)) {
            self.stats.blacked_out += 1;
            return;
        }
        if lost {
            self.stats.lost += 1;
            return;
        }
        let copy = twice.then(|| item.clone());
        self.push(now + self.config.latency + delays[0], item);
        if let Some(copy) = copy {
            self.stats.duplicated += 1;
            self.push(now + self.config.latency + delays[1], copy);
        }
    }

    fn push(&mut self, arrival: Instant, item: T) {
        self.order += 1;
        self.queue.push(Reverse(InFlight {
            arrival,
            order: self.order,
            item,
        }));
    }

    /// When the next item arrives, if any is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.arrival)
    }

    /// The next item that has arrived by `now`, with its arrival instant.
    pub fn poll_recv(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.poll_timeout()? > now {
            return None;
        }
        let Reverse(f) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some((f.arrival, f.item))
    }

    /// Items in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// What happened so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, config: NetConfig, n: u32) -> Vec<(Duration, u32)> {
        let t0 = Instant::now();
        let mut link = Link::new(seed, config);
        for i in 0..n {
            link.send(t0 + Duration::from_millis(u64::from(i) * 20), i);
        }
        std::iter::from_fn(|| link.poll_recv(t0 + Duration::from_secs(3600)))
            .map(|(at, i)| (at - t0, i))
            .collect()
    }

    #[test]
    fn a_default_link_is_perfect_and_instant() {
        let got = run(1, NetConfig::default(), 50);
        let want: Vec<_> = (0..50)
            .map(|i| (Duration::from_millis(u64::from(i) * 20), i))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_same_seed_gives_the_same_network() {
        let c = NetConfig {
            loss: 0.2,
            duplicate: 0.1,
            latency: Duration::from_millis(40),
            jitter: Duration::from_millis(30),
        };
        assert_eq!(run(42, c.clone(), 500), run(42, c.clone(), 500));
        assert_ne!(run(42, c.clone(), 500), run(43, c, 500));
    }

    #[test]
    fn loss_duplication_and_reordering_happen_at_about_the_asked_rates() {
        let t0 = Instant::now();
        let mut link = Link::new(
            9,
            NetConfig {
                loss: 0.2,
                duplicate: 0.1,
                latency: Duration::from_millis(50),
                jitter: Duration::from_millis(45),
            },
        );
        let n = 10_000u32;
        for i in 0..n {
            link.send(t0 + Duration::from_millis(u64::from(i) * 20), i);
        }
        let got: Vec<_> =
            std::iter::from_fn(|| link.poll_recv(t0 + Duration::from_secs(3600))).collect();
        let s = link.stats();
        assert_eq!(s.sent, u64::from(n));
        assert!((1800..2200).contains(&s.lost), "{s:?}");
        assert!((600..1000).contains(&s.duplicated), "{s:?}");
        assert_eq!(s.delivered, s.sent - s.lost + s.duplicated);
        assert_eq!(got.len() as u64, s.delivered);
        // Arrival order, every arrival at least the latency after sending, at most latency + jitter.
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
        for (at, i) in &got {
            let delay = *at - (t0 + Duration::from_millis(u64::from(*i) * 20));
            assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_millis(95));
        }
        let reordered = got.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(reordered > 100, "{reordered} reordered");
    }

    #[test]
    fn an_outage_loses_everything_sent_during_it() {
        let t0 = Instant::now();
        let mut link = Link::new(3, NetConfig::default());
        link.add_outage(t0 + Duration::from_millis(100)..t0 + Duration::from_millis(200));
        for i in 0..15u64 {
            link.send(t0 + Duration::from_millis(i * 20), i);
        }
        let got: Vec<u64> = std::iter::from_fn(|| link.poll_recv(t0 + Duration::from_secs(1)))
            .map(|(_, i)| i)
            .collect();
        assert_eq!(got, [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
        assert_eq!(link.stats().blacked_out, 5);
    }
}
