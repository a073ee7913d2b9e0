//! CPU of one call's media path, without sockets: two connected [`Peer`]s on a simulated clock, each
//! sending 20 ms audio frames and a round of DTMF digits every 2.4 s (as the load benchmark's calls do),
//! every datagram handed straight to the other side. One iteration is one second of call time for both
//! peers, so the time per iteration is what a server and its client spend together per call-second
//! in str0m, SRTP and the peer (no syscalls): 1 ms per call-second is 0.1% of a core per call.
//!
//! Another case runs the call with the answering side at `--ptime 60`, and one measures a call's setup
//! on both sides (offer, answer, ICE, DTLS), without HTTP.
//!
//! `cargo bench -p touchtone-rtc --bench peer`. It also prints how often each peer's timers ran.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use touchtone_rtc::{DtlsCert, Peer, PeerConfig, PeerEvent, Ptime, Transmit, generate_certificate};

/// Two connected peers, the simulated clock, and counts of what they did.
struct Call {
    a: Peer,
    b: Peer,
    now: Instant,
    next_round: Instant,
    timeouts: u64,
    datagrams: u64,
    key_ups: u64,
}

const ROUND: Duration = Duration::from_millis(2360);

impl Call {
    fn new() -> Call {
        Call::with(None, Ptime::Ms20)
    }

    /// Two peers that use `cert` (else one each) set up until both can send DTMF; the answering one
    /// (the server's side) sends `ptime` packets while it is not dialing.
    fn with(cert: Option<&DtlsCert>, ptime: Ptime) -> Call {
        let config = PeerConfig {
            dtls_cert: cert.cloned(),
            ..PeerConfig::default()
        };
        let server = PeerConfig {
            ptime,
            ..config.clone()
        };
        let now = Instant::now();
        let a_addr: SocketAddr = "127.0.0.1:10000".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let mut a = Peer::new(now, a_addr, config.clone()).unwrap();
        let mut b = Peer::new(now, b_addr, server).unwrap();
        let offer = a.create_offer().unwrap();
        let answer = b.accept_offer(now, &offer).unwrap();
        a.accept_answer(now, &answer).unwrap();
        let mut call = Call {
            a,
            b,
            now,
            next_round: now,
            timeouts: 0,
            datagrams: 0,
            key_ups: 0,
        };
        let limit = now + Duration::from_secs(10);
        while !(call.a.can_insert_dtmf() && call.b.can_insert_dtmf()) {
            assert!(call.now < limit, "the peers did not connect");
            call.step();
        }
        call.next_round = call.now;
        call
    }

    /// Moves every datagram across, or else runs both peers' timers at the next one due.
    fn step(&mut self) {
        let (a_addr, b_addr) = (self.a.local_addr(), self.b.local_addr());
        let mut moved = false;
        while let Some(Transmit { contents, .. }) = self.a.poll_transmit() {
            self.b.handle_receive(self.now, a_addr, &contents).unwrap();
            self.datagrams += 1;
            moved = true;
        }
        while let Some(Transmit { contents, .. }) = self.b.poll_transmit() {
            self.a.handle_receive(self.now, b_addr, &contents).unwrap();
            self.datagrams += 1;
            moved = true;
        }
        if !moved {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .expect("a connected call always has a timer");
            self.now = self.now.max(next);
            for p in [&mut self.a, &mut self.b] {
                if p.poll_timeout().is_some_and(|t| t <= self.now) {
                    p.handle_timeout(self.now).unwrap();
                    self.timeouts += 1;
                }
            }
        }
        for p in [&mut self.a, &mut self.b] {
            while let Some(e) = p.poll_event() {
                self.key_ups += u64::from(matches!(e, PeerEvent::KeyUp(_)));
            }
        }
    }

    /// Runs one second of call time, starting a round of digits both ways when one is due.
    fn second(&mut self) {
        self.advance(Duration::from_secs(1));
    }

    /// Runs `span` of call time, starting a round of digits both ways when one is due.
    fn advance(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            if self.now >= self.next_round {
                self.a.insert_dtmf(self.now, "12345678", 100, 70).unwrap();
                self.b.insert_dtmf(self.now, "87654321", 100, 70).unwrap();
                self.next_round = self.now + ROUND;
            }
            self.step();
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut call = Call::new();
    let (t0, d0, k0) = (call.timeouts, call.datagrams, call.key_ups);
    for _ in 0..24 {
        call.second();
    }
    let secs = 24.0;
    println!(
        "per call-second, both peers: {:.1} timer runs, {:.1} datagrams, {:.2} key-ups",
        (call.timeouts - t0) as f64 / secs,
        (call.datagrams - d0) as f64 / secs,
        (call.key_ups - k0) as f64 / secs
    );
    assert!(call.key_ups > k0, "digits must arrive");
    c.bench_function(
        "call-second (two peers, audio both ways, DTMF rounds)",
        |b| b.iter(|| call.second()),
    );
    // The same with the answering side sending 60 ms packets while it is not dialing (`serve --ptime 60`).
    let mut long = Call::with(None, Ptime::Ms60);
    let (t0, d0) = (long.timeouts, long.datagrams);
    for _ in 0..24 {
        long.second();
    }
    println!(
        "per call-second at --ptime 60: {:.1} timer runs, {:.1} datagrams",
        (long.timeouts - t0) as f64 / secs,
        (long.datagrams - d0) as f64 / secs
    );
    c.bench_function("call-second, the answering peer at --ptime 60", |b| {
        b.iter(|| long.second())
    });
    // The same with many calls at once, each run for one 20 ms frame in turn (as a server runs them):
    // their state no longer stays in the CPU caches between packets.
    let mut calls: Vec<Call> = (0..MANY).map(|_| Call::new()).collect();
    let mut group = c.benchmark_group("many calls");
    group.sample_size(10);
    group.bench_function(format!("call-second of each of {MANY} calls"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..50 {
                    for call in &mut calls {
                        call.advance(Duration::from_millis(20));
                    }
                }
            }
            start.elapsed() / MANY as u32
        })
    });
    group.finish();
    // A call's setup on both sides, as a server and its clients do it: offer, answer, ICE and the DTLS
    // handshake until both peers can send DTMF; each side has its certificate made beforehand.
    let cert = generate_certificate().expect("a certificate");
    c.bench_function("call setup (two peers, shared certificate)", |b| {
        b.iter(|| Call::with(Some(&cert), Ptime::Ms20))
    });
}

/// How many calls the cache-cold case runs.
const MANY: usize = 500;

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
