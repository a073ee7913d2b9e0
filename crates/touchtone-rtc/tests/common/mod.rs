//! Test support shared by the rtc tests: two peers wired back to back through a simulated network
//! (`touchtone-netsim`: seeded loss, duplication, jitter, latency, outages) on a simulated clock, and
//! what calls over real loopback UDP wait for and hear.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use touchtone_netsim::{Link, NetConfig};
use touchtone_rtc::{
    CallHandle, ConnectionState, DigitSource, Peer, PeerConfig, PeerEvent, RtcError, Transmit,
};

/// The address calls over real UDP bind to.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Waits until the call is connected (at most 10 s for each event); returns the events up to and
/// including that.
pub async fn wait_connected(h: &mut CallHandle) -> Vec<PeerEvent> {
    let mut seen = vec![];
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), h.next_event())
            .await
            .expect("connect in time")
            .expect("call alive");
        let done = matches!(ev, PeerEvent::Connection(ConnectionState::Connected));
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

/// Collects (tone, duration ms) of key-ups until `n` arrived (at most `within` for each event), checking
/// they came the `source` way.
pub async fn key_ups(
    h: &mut CallHandle,
    n: usize,
    source: DigitSource,
    within: Duration,
) -> Vec<(char, f64)> {
    let mut got = vec![];
    while got.len() < n {
        let ev = tokio::time::timeout(within, h.next_event())
            .await
            .expect("digits in time")
            .expect("call alive");
        if let PeerEvent::KeyUp(d) = ev {
            assert_eq!(d.source, source);
            got.push((d.tone.unwrap(), d.duration.as_secs_f64() * 1000.0));
        }
    }
    got
}

/// Asserts that the key-ups `got` are the tones `want`, each lasting `ms` within 20 ms; `what` names the
/// case in the messages.
pub fn assert_heard(got: &[(char, f64)], want: &str, ms: f64, what: &str) {
    let digits: String = got.iter().map(|g| g.0).collect();
    assert_eq!(digits, want, "{what}");
    for (c, lasted) in got {
        assert!(
            (lasted - ms).abs() <= 20.0,
            "{what}: {c} lasted {lasted} ms"
        );
    }
}

/// Which datagrams the network drops on purpose: (from a, index among that side's datagrams, bytes) ->
/// drop. Applied before the links' own loss.
pub type DropRule = Box<dyn FnMut(bool, usize, &[u8]) -> bool>;

/// A caller `a` and a callee `b` after offer/answer, with the network between them.
pub struct Pair {
    pub a: Peer,
    pub b: Peer,
    /// The simulated clock.
    pub now: Instant,
    pub drop: Option<DropRule>,
    /// Datagrams each side has sent.
    pub sent: (usize, usize),
    pub a_events: Vec<(Instant, PeerEvent)>,
    pub b_events: Vec<(Instant, PeerEvent)>,
    /// a to b and b to a.
    pub ab: Link<Vec<u8>>,
    pub ba: Link<Vec<u8>>,
    /// Every datagram that reached b, in arrival order, with its arrival.
    pub b_received: Vec<(Instant, Vec<u8>)>,
    /// Datagrams a peer refused (with an impaired network: duplicates past SRTP's replay window, ...).
    pub receive_errors: usize,
}

impl Pair {
    /// The pair on a perfect network: every datagram arrives the instant it is sent.
    pub fn new(caller: PeerConfig, callee: PeerConfig) -> Pair {
        Pair::with_net(caller, callee, 0, NetConfig::default())
    }

    /// The pair with `net` in both directions, its randomness from `seed`.
    pub fn with_net(caller: PeerConfig, callee: PeerConfig, seed: u64, net: NetConfig) -> Pair {
        Pair::negotiate(caller, callee, seed, net, |offer| offer.to_string()).0
    }

    /// The pair on a perfect network with the offer rewritten by `edit` before the callee reads it;
    /// also returns the callee's answer.
    pub fn with_offer(
        caller: PeerConfig,
        callee: PeerConfig,
        edit: impl FnOnce(&str) -> String,
    ) -> (Pair, String) {
        Pair::negotiate(caller, callee, 0, NetConfig::default(), edit)
    }

    fn negotiate(
        caller: PeerConfig,
        callee: PeerConfig,
        seed: u64,
        net: NetConfig,
        edit: impl FnOnce(&str) -> String,
    ) -> (Pair, String) {
        let now = Instant::now();
        let a_addr: SocketAddr = "127.0.0.1:10000".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let mut a = Peer::new(now, a_addr, caller).unwrap();
        let mut b = Peer::new(now, b_addr, callee).unwrap();
        let offer = edit(&a.create_offer().unwrap());
        let answer = b.accept_offer(now, &offer).unwrap();
        a.accept_answer(now, &answer).unwrap();
        let pair = Pair {
            a,
            b,
            now,
            drop: None,
            sent: (0, 0),
            a_events: vec![],
            b_events: vec![],
            ab: Link::new(seed, net.clone()),
            ba: Link::new(seed ^ 0x5555_5555_5555_5555, net),
            b_received: vec![],
            receive_errors: 0,
        };
        (pair, answer)
    }

    /// Sends what each peer has to send and delivers what has arrived, or else jumps the clock to the
    /// next timeout or arrival; panics if a peer gives up.
    pub fn step(&mut self) {
        self.try_step().unwrap();
    }

    /// [`Pair::step`], returning the error of a peer that gives up (a DTLS handshake past its deadline).
    pub fn try_step(&mut self) -> Result<(), RtcError> {
        let (a_addr, b_addr) = (self.a.local_addr(), self.b.local_addr());
        let mut moved = false;
        let mut result = Ok(());
        while let Some(Transmit {
            destination,
            contents,
        }) = self.a.poll_transmit()
        {
            assert_eq!(destination, b_addr);
            self.sent.0 += 1;
            if !self
                .drop
                .as_mut()
                .is_some_and(|d| d(true, self.sent.0 - 1, &contents))
            {
                self.ab.send(self.now, contents);
            }
            moved = true;
        }
        while let Some((at, data)) = self.ab.poll_recv(self.now) {
            if self.b.handle_receive(at, a_addr, &data).is_err() {
                self.receive_errors += 1;
            }
            self.b_received.push((at, data));
            moved = true;
        }
        while let Some(Transmit {
            destination,
            contents,
        }) = self.b.poll_transmit()
        {
            assert_eq!(destination, a_addr);
            self.sent.1 += 1;
            if !self
                .drop
                .as_mut()
                .is_some_and(|d| d(false, self.sent.1 - 1, &contents))
            {
                self.ba.send(self.now, contents);
            }
            moved = true;
        }
        while let Some((at, data)) = self.ba.poll_recv(self.now) {
            if self.a.handle_receive(at, b_addr, &data).is_err() {
                self.receive_errors += 1;
            }
            moved = true;
        }
        if !moved {
            let next = [
                self.a.poll_timeout(),
                self.b.poll_timeout(),
                self.ab.poll_timeout(),
                self.ba.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            self.now = self.now.max(next.expect("something is always pending"));
            result = self
                .a
                .handle_timeout(self.now)
                .and(self.b.handle_timeout(self.now));
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push((self.now, e));
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push((self.now, e));
        }
        result
    }

    /// Steps until `done`, for at most 60 s of simulated time.
    pub fn run_until(&mut self, mut done: impl FnMut(&Pair) -> bool) {
        let limit = self.now + Duration::from_secs(60);
        while !done(self) {
            assert!(self.now < limit, "simulated time ran out");
            self.step();
        }
    }

    /// Connects both sides.
    pub fn connect(&mut self) {
        self.try_connect().unwrap();
    }

    /// Connects both sides, or returns the error of the peer that gave up first.
    pub fn try_connect(&mut self) -> Result<(), RtcError> {
        let limit = self.now + Duration::from_secs(60);
        while !(self.a.can_insert_dtmf() && self.b.is_connected()) {
            assert!(self.now < limit, "simulated time ran out");
            self.try_step()?;
        }
        Ok(())
    }
}
