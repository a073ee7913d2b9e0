//! Two peers wired back to back in memory with a simulated clock: exact timing, no sockets, no sleeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use touchtone_rtc::{AudioCodec, Peer, PeerConfig, PeerEvent, Transmit};

/// Which datagrams the network drops: (from a, index among that side's datagrams, bytes) -> drop.
type DropRule = Box<dyn FnMut(bool, usize, &[u8]) -> bool>;

struct Pair {
    a: Peer,
    b: Peer,
    now: Instant,
    drop: Option<DropRule>,
    sent: (usize, usize),
    a_events: Vec<(Instant, PeerEvent)>,
    b_events: Vec<(Instant, PeerEvent)>,
}

impl Pair {
    fn new(caller: PeerConfig, callee: PeerConfig) -> Pair {
        let now = Instant::now();
        let a_addr: SocketAddr = "127.0.0.1:10000".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let mut a = Peer::new(now, a_addr, caller).unwrap();
        let mut b = Peer::new(now, b_addr, callee).unwrap();
        let offer = a.create_offer().unwrap();
        let answer = b.accept_offer(now, &offer).unwrap();
        a.accept_answer(now, &answer).unwrap();
        Pair {
            a,
            b,
            now,
            drop: None,
            sent: (0, 0),
            a_events: vec![],
            b_events: vec![],
        }
    }

    /// Delivers every pending datagram instantly, or else jumps the clock to the next timeout.
    fn step(&mut self) {
        let (a_addr, b_addr) = (self.a.local_addr(), self.b.local_addr());
        let mut moved = false;
        while let Some(Transmit {
            destination: dst,
            contents: data,
        }) = self.a.poll_transmit()
        {
            assert_eq!(dst, b_addr);
            self.sent.0 += 1;
            if !self
                .drop
                .as_mut()
                .is_some_and(|d| d(true, self.sent.0 - 1, &data))
            {
                self.b.handle_receive(self.now, a_addr, &data).unwrap();
            }
            moved = true;
        }
        while let Some(Transmit {
            destination: dst,
            contents: data,
        }) = self.b.poll_transmit()
        {
            assert_eq!(dst, a_addr);
            self.sent.1 += 1;
            if !self
                .drop
                .as_mut()
                .is_some_and(|d| d(false, self.sent.1 - 1, &data))
            {
                self.a.handle_receive(self.now, b_addr, &data).unwrap();
            }
            moved = true;
        }
        if !moved {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            self.now = self.now.max(next.expect("something is always pending"));
            self.a.handle_timeout(self.now).unwrap();
            self.b.handle_timeout(self.now).unwrap();
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push((self.now, e));
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push((self.now, e));
        }
    }

    fn run_until(&mut self, mut done: impl FnMut(&Pair) -> bool) {
        let limit = self.now + Duration::from_secs(60);
        while !done(self) {
            assert!(self.now < limit, "simulated time ran out");
            self.step();
        }
    }
}

fn exact_schedule(codec: AudioCodec) {
    let mut p = Pair::new(
        PeerConfig {
            codecs: vec![codec],
            ..PeerConfig::default()
        },
        PeerConfig::default(),
    );
    let start = p.now;
    p.run_until(|p| p.a.can_insert_dtmf() && p.b.is_connected());
    assert!(
        p.now - start < Duration::from_secs(1),
        "connects in simulated time"
    );
    let t0 = p.now;
    p.a.insert_dtmf(t0, "123#", 100, 70).unwrap();
    assert_eq!(p.a.dtmf().tone_buffer(), "123#");
    p.run_until(|p| {
        p.b_events
            .iter()
            .filter(|(_, e)| matches!(e, PeerEvent::KeyUp(_)))
            .count()
            == 4
    });
    p.run_until(|p| {
        p.a_events
            .iter()
            .any(|(_, e)| matches!(e, PeerEvent::ToneChange { tone: "", .. }))
    });

    // tonechange at exactly 0, 170, 340, 510 and the empty one at 680 ms.
    let changes: Vec<_> = p
        .a_events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::ToneChange { tone, at } => Some((*tone, (*at - t0).as_millis())),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [("1", 0), ("2", 170), ("3", 340), ("#", 510), ("", 680)]
    );

    // With an instant network, key-down comes at the tone's start and key-up carries exactly 100 ms.
    let digits: Vec<_> = p
        .b_events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::KeyDown(d) => {
                Some((false, d.tone.unwrap(), (d.at - t0).as_millis(), d.duration))
            }
            PeerEvent::KeyUp(d) => {
                Some((true, d.tone.unwrap(), (d.at - t0).as_millis(), d.duration))
            }
            _ => None,
        })
        .collect();
    let downs: Vec<_> = digits.iter().filter(|d| !d.0).map(|d| (d.1, d.2)).collect();
    assert_eq!(downs, [('1', 0), ('2', 170), ('3', 340), ('#', 510)]);
    let ups: Vec<_> = digits.iter().filter(|d| d.0).map(|d| (d.1, d.3)).collect();
    let hundred = Duration::from_millis(100);
    assert_eq!(
        ups,
        [
            ('1', hundred),
            ('2', hundred),
            ('3', hundred),
            ('#', hundred)
        ]
    );

    // Hanging up is seen by the other side.
    let now = p.now;
    p.a.close(now);
    p.run_until(|p| p.b.is_closed() || p.b_events.iter().any(|(_, e)| *e == PeerEvent::Closed));
}

#[test]
fn opus_call_follows_the_w3c_schedule_exactly() {
    exact_schedule(AudioCodec::Opus);
}

#[test]
fn pcmu_call_follows_the_w3c_schedule_exactly() {
    exact_schedule(AudioCodec::Pcmu);
}

#[test]
fn losing_the_connection_mid_sequence_stops_silently() {
    let mut p = Pair::new(PeerConfig::default(), PeerConfig::default());
    p.run_until(|p| p.a.can_insert_dtmf() && p.b.is_connected());
    let t0 = p.now;
    p.a.insert_dtmf(t0, "1234", 100, 70).unwrap();
    p.run_until(|p| p.now >= t0 + Duration::from_millis(200));
    p.a.close(p.now);
    assert!(!p.a.can_insert_dtmf());
    let tones: Vec<_> = p
        .a_events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::ToneChange { tone, .. } => Some(*tone),
            _ => None,
        })
        .collect();
    assert_eq!(
        tones,
        ["1", "2"],
        "no further tonechange, no final empty one"
    );
    assert_eq!(p.a.dtmf().tone_buffer(), "34");
    assert_eq!(
        p.a.insert_dtmf(p.now, "5", 100, 70),
        Err(touchtone::DtmfError::InvalidState)
    );
}

/// A STUN binding request (RFC 5389: type 0x0001).
fn is_stun_request(d: &[u8]) -> bool {
    d.len() >= 20 && d[0] == 0x00 && d[1] == 0x01
}

/// Losing one side's first ICE check must not hold up DTLS: the other side's DTLS arrives before this
/// side's own check of that address succeeded, from an address that already proved the ICE credentials.
#[test]
fn losing_the_first_ice_check_does_not_delay_dtls() {
    for from_offerer in [false, true] {
        let mut p = Pair::new(PeerConfig::default(), PeerConfig::default());
        let mut dropped = false;
        p.drop = Some(Box::new(move |from_a, _, d| {
            if from_a == from_offerer && !dropped && is_stun_request(d) {
                dropped = true;
                return true;
            }
            false
        }));
        let start = p.now;
        p.run_until(|p| p.a.is_connected() && p.b.is_connected());
        let took = p.now - start;
        assert!(
            took < Duration::from_millis(300),
            "dropping the {} first check: connected after {took:?}",
            if from_offerer {
                "offerer's"
            } else {
                "answerer's"
            }
        );
    }
}
