//! Property: tones sent through a lossy, duplicating, reordering network arrive once, in order, on time.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use touchtone::{DtmfReceiver, DtmfSender, EventPacket, RtpInfo};
use touchtone_netsim::{Link, NetConfig};

/// One packet as it arrived from the simulated network.
#[derive(Debug, Clone)]
struct Wire {
    tone: usize,
    packet: EventPacket,
    arrival: Duration,
}

/// The network: loss up to 30%, 10% duplicates, jitter under 10 ms (so it reorders packets sent close
/// together), from a seed.
fn net() -> impl Strategy<Value = (u64, NetConfig)> {
    (any::<u64>(), 0.0f64..=0.3).prop_map(|(seed, loss)| {
        (
            seed,
            NetConfig {
                loss,
                duplicate: 0.1,
                jitter: Duration::from_micros(9_999),
                ..NetConfig::default()
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tones_survive_loss_duplication_and_reordering(
        tones in "[0-9A-D#*,]{1,12}",
        duration in 40u32..400,
        gap in 30u32..200,
        wide_clock in any::<bool>(),
        (seed, net) in net(),
    ) {
        let rate = if wide_clock { 48_000 } else { 8000 };
        let t0 = Instant::now();
        let mut tx = DtmfSender::new(rate);
        tx.set_can_send(true);
        tx.insert_dtmf(t0, &tones, duration, gap).unwrap();

        // Send, remembering which tone each packet belongs to.
        let mut sent = vec![];
        let mut tone = usize::MAX;
        while let Some(t) = tx.poll_timeout() {
            tx.handle_timeout(t);
            while let Some(p) = tx.poll_packet() {
                if p.marker {
                    tone = tone.wrapping_add(1);
                }
                sent.push((tone, p));
            }
        }
        let sent_tones: Vec<char> = tones.chars().filter(|c| *c != ',').collect();
        prop_assert_eq!(tone.wrapping_add(1), sent_tones.len());

        let mut link = Link::new(seed, net);
        for (tone, p) in &sent {
            link.send(p.at, (*tone, *p));
        }
        let wire: Vec<Wire> = std::iter::from_fn(|| link.poll_recv(t0 + Duration::from_secs(3600)))
            .map(|(at, (tone, packet))| Wire { tone, packet, arrival: at - t0 })
            .collect();

        let mut rx = DtmfReceiver::new(rate);
        rx.set_end_timeout(Duration::from_millis(500));
        let mut got = vec![];
        for (seq, w) in wire.iter().enumerate() {
            let now = t0 + w.arrival;
            rx.handle_timeout(now);
            let p = w.packet;
            let rtp = RtpInfo { ssrc: 1, sequence: seq as u16, timestamp: p.timestamp, marker: p.marker };
            rx.handle_packet(now, rtp, &p.payload.to_bytes()).unwrap();
            got.extend(std::iter::from_fn(|| rx.poll_event()));
        }
        rx.handle_timeout(t0 + Duration::from_secs(3600));
        got.extend(std::iter::from_fn(|| rx.poll_event()));

        // A tone is observable when one of its packets arrives before any packet of a later tone; its end
        // is seen in time when one of its end packets does.
        let mut observable = vec![];
        for k in 0..sent_tones.len() {
            let first_later = wire.iter().position(|w| w.tone > k).unwrap_or(wire.len());
            let early = &wire[..first_later];
            if early.iter().any(|w| w.tone == k) {
                let end_seen = early.iter().any(|w| w.tone == k && w.packet.payload.end);
                observable.push((k, end_seen));
            }
        }

        // Key-down then key-up for each observable tone, exactly once, in order.
        prop_assert_eq!(got.len(), 2 * observable.len(), "{:?}", got);
        let interval = Duration::from_millis(20);
        let asked = Duration::from_millis(u64::from(duration));
        for (pair, (k, end_seen)) in got.chunks(2).zip(&observable) {
            let (down, up) = (&pair[0], &pair[1]);
            prop_assert!(!down.is_end() && up.is_end());
            prop_assert_eq!(down.tone(), Some(sent_tones[*k]));
            prop_assert_eq!(up.tone(), Some(sent_tones[*k]));
            let d = up.duration();
            prop_assert!(d <= asked + Duration::from_millis(1), "tone {} lasted {:?}", k, d);
            if *end_seen {
                prop_assert!(d + interval >= asked, "tone {} lasted {:?} of {:?}", k, d, asked);
            }
        }
    }
}
