//! RFC 4733 reception: what real senders do on real networks.

use std::time::{Duration, Instant};

use touchtone::{DigitEvent, DtmfReceiver, EndCause, PayloadError, RtpInfo, TelephoneEvent};

const SSRC: u32 = 0x1234_5678;

struct Harness {
    rx: DtmfReceiver,
    t0: Instant,
    seq: u16,
}

impl Harness {
    fn new() -> Self {
        Harness {
            rx: DtmfReceiver::new(8000),
            t0: Instant::now(),
            seq: 0,
        }
    }

    /// Delivers a packet at `at_ms` with the given event fields.
    fn pkt(&mut self, at_ms: u64, ts: u32, marker: bool, event: u8, end: bool, dur: u16) {
        self.pkt_ssrc(SSRC, at_ms, ts, marker, event, end, dur);
    }

    #[allow(clippy::too_many_arguments)]
    fn pkt_ssrc(
        &mut self,
        ssrc: u32,
        at_ms: u64,
        ts: u32,
        marker: bool,
        event: u8,
        end: bool,
        dur: u16,
    ) {
        self.seq = self.seq.wrapping_add(1);
        let payload = TelephoneEvent {
            event,
            end,
            volume: 10,
            duration: dur,
        }
        .to_bytes();
        let rtp = RtpInfo {
            ssrc,
            sequence: self.seq,
            timestamp: ts,
            marker,
        };
        let now = self.t0 + Duration::from_millis(at_ms);
        self.rx.handle_timeout(now);
        self.rx.handle_packet(now, rtp, &payload).unwrap();
    }

    fn advance(&mut self, at_ms: u64) {
        self.rx
            .handle_timeout(self.t0 + Duration::from_millis(at_ms));
    }

    fn events(&mut self) -> Vec<DigitEvent> {
        std::iter::from_fn(|| self.rx.poll_event()).collect()
    }

    /// Key-ups as (tone, duration in units).
    fn ups(&mut self) -> Vec<(char, u64)> {
        self.events()
            .into_iter()
            .filter(|e| e.is_end())
            .map(|e| (e.tone().unwrap_or('?'), e.duration_units()))
            .collect()
    }
}

/// The packets of one 100 ms event at 8 kHz, 20 ms updates: (at ms, marker, end, duration).
fn event_100ms(start_ms: u64) -> Vec<(u64, bool, bool, u16)> {
    let mut v: Vec<_> = (1..=5u16)
        .map(|k| (start_ms + u64::from(k - 1) * 20, k == 1, k == 5, k * 160))
        .collect();
    v.push((start_ms + 100, false, true, 800));
    v.push((start_ms + 120, false, true, 800));
    v
}

#[test]
fn key_down_at_first_packet_and_key_up_at_end() {
    let mut h = Harness::new();
    h.pkt(0, 1000, true, 5, false, 160);
    let ev = h.events();
    assert_eq!(ev.len(), 1);
    assert!(!ev[0].is_end());
    assert_eq!(
        (ev[0].tone(), ev[0].event(), ev[0].ssrc()),
        (Some('5'), 5, SSRC)
    );
    assert_eq!(ev[0].at(), h.t0);
    for (at, m, e, d) in event_100ms(0).into_iter().skip(1) {
        h.pkt(at, 1000, m, 5, e, d);
    }
    let ev = h.events();
    assert_eq!(ev.len(), 1, "one key-up, the repeated ends are ignored");
    assert!(ev[0].is_end());
    assert_eq!(ev[0].end_cause(), Some(EndCause::EndPacket));
    assert_eq!(ev[0].duration(), Duration::from_millis(100));
    assert_eq!(ev[0].at(), h.t0 + Duration::from_millis(80));
    assert_eq!(h.rx.poll_timeout(), None);
    assert_eq!(h.rx.stats().ignored, 2);
}

#[test]
fn missing_marker_and_lost_first_packets() {
    let mut h = Harness::new();
    for (at, _, e, d) in event_100ms(0).into_iter().skip(2) {
        h.pkt(at, 1000, false, 9, e, d);
    }
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    assert!(!ev[0].is_end() && ev[1].is_end());
    assert_eq!(ev[0].at(), h.t0 + Duration::from_millis(40));
    assert_eq!(ev[1].duration_units(), 800);
}

#[test]
fn only_an_end_packet_gives_down_and_up() {
    let mut h = Harness::new();
    h.pkt(100, 1000, false, 11, true, 800);
    h.pkt(120, 1000, false, 11, true, 800);
    assert_eq!(h.ups(), [('#', 800)]);
}

#[test]
fn lost_end_packets_end_by_timeout() {
    let mut h = Harness::new();
    for (at, m, e, d) in event_100ms(0).into_iter().filter(|p| !p.2) {
        h.pkt(at, 1000, m, 3, e, d);
    }
    assert!(h.ups().is_empty());
    let due = h.rx.poll_timeout().unwrap();
    assert_eq!(due, h.t0 + Duration::from_millis(60 + 250));
    h.advance(309);
    assert!(h.ups().is_empty());
    h.advance(1000);
    let ev = h.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].end_cause(), Some(EndCause::Timeout));
    assert_eq!(
        ev[0].at(),
        due,
        "reported at its due time, not when noticed"
    );
    assert_eq!(ev[0].duration_units(), 640);
}

#[test]
fn lost_end_packets_end_when_the_next_event_starts() {
    let mut h = Harness::new();
    for (at, m, e, d) in event_100ms(0).into_iter().filter(|p| !p.2) {
        h.pkt(at, 1000, m, 3, e, d);
    }
    h.pkt(170, 1000 + 170 * 8, true, 4, false, 160);
    let ev = h.events();
    assert_eq!(ev.len(), 3);
    assert_eq!(
        (ev[1].tone(), ev[1].end_cause()),
        (Some('3'), Some(EndCause::NewEvent))
    );
    assert_eq!(ev[1].duration_units(), 640);
    assert_eq!((ev[2].tone(), ev[2].is_end()), (Some('4'), false));
}

#[test]
fn the_same_digit_twice_is_two_presses() {
    let mut h = Harness::new();
    for start in [0u64, 170] {
        for (at, m, e, d) in event_100ms(start) {
            h.pkt(at, 1000 + start as u32 * 8, m, 1, e, d);
        }
    }
    assert_eq!(h.ups(), [('1', 800), ('1', 800)]);
}

#[test]
fn the_same_digit_twice_with_the_first_end_lost() {
    let mut h = Harness::new();
    for start in [0u64, 170] {
        for (at, m, e, d) in event_100ms(start) {
            if start == 170 || !e {
                h.pkt(at, 1000 + start as u32 * 8, m, 1, e, d);
            }
        }
    }
    assert_eq!(h.ups(), [('1', 640), ('1', 800)]);
}

#[test]
fn reordered_packets_within_an_event() {
    let mut h = Harness::new();
    let mut pk = event_100ms(0);
    pk.swap(0, 2);
    pk.swap(3, 5);
    for (at, m, e, d) in pk {
        h.pkt(at, 1000, m, 6, e, d);
    }
    // The end arrived before one update; the late update is ignored, nothing is reported twice.
    let ev = h.events();
    assert_eq!(ev.iter().filter(|e| !e.is_end()).count(), 1);
    let ups: Vec<_> = ev.iter().filter(|e| e.is_end()).collect();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].duration_units(), 800);
}

#[test]
fn late_packets_of_an_earlier_event_are_ignored() {
    let mut h = Harness::new();
    h.pkt(0, 1000, true, 1, false, 160);
    h.pkt(170, 2360, true, 2, false, 160);
    h.pkt(175, 1000, false, 1, true, 800);
    h.pkt(190, 2360, false, 2, true, 320);
    assert_eq!(h.ups(), [('1', 160), ('2', 320)]);
}

#[test]
fn segmented_long_events_add_up() {
    // A 10 s event at 8 kHz: 80000 units = one full segment of 65535 and one of 14465.
    let mut h = Harness::new();
    let mut t = 0;
    let mut cum = 0u32;
    let mut seg_start = 0u32;
    let mut first = true;
    while cum < 80_000 {
        cum = (cum + 160).min(80_000);
        if cum - seg_start > 0xFFFF {
            h.pkt(t, 5000 + seg_start, false, 0, false, 0xFFFF);
            seg_start += 0xFFFF;
        } else {
            h.pkt(
                t,
                5000 + seg_start,
                first,
                0,
                cum == 80_000,
                (cum - seg_start) as u16,
            );
        }
        first = false;
        t += 20;
    }
    let ev = h.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[1].duration_units(), 80_000);
    assert_eq!(ev[1].duration(), Duration::from_secs(10));
    assert_eq!(ev[1].timestamp(), 5000);
}

#[test]
fn several_ssrcs_are_independent() {
    let mut h = Harness::new();
    h.pkt_ssrc(1, 0, 100, true, 1, false, 160);
    h.pkt_ssrc(2, 5, 900_000, true, 2, false, 160);
    h.pkt_ssrc(1, 20, 100, false, 1, true, 320);
    h.pkt_ssrc(2, 25, 900_000, false, 2, true, 480);
    let ups: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| e.is_end())
        .map(|e| (e.ssrc(), e.tone().unwrap(), e.duration_units()))
        .collect();
    assert_eq!(ups, [(1, '1', 320), (2, '2', 480)]);
}

#[test]
fn timestamps_and_sequence_numbers_wrap() {
    let mut h = Harness::new();
    h.seq = u16::MAX - 2;
    let ts1 = u32::MAX - 500;
    for (at, m, e, d) in event_100ms(0) {
        h.pkt(at, ts1, m, 7, e, d);
    }
    let ts2 = ts1.wrapping_add(170 * 8);
    for (at, m, e, d) in event_100ms(170) {
        h.pkt(at, ts2, m, 8, e, d);
    }
    assert_eq!(h.ups(), [('7', 800), ('8', 800)]);
}

#[test]
fn non_dtmf_events_are_reported_without_a_tone() {
    let mut h = Harness::new();
    h.pkt(0, 0, true, 70, false, 160);
    h.pkt(20, 0, false, 70, true, 320);
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    assert_eq!((ev[1].event(), ev[1].tone()), (70, None));
}

#[test]
fn malformed_payloads_are_typed_errors() {
    let mut rx = DtmfReceiver::new(48_000);
    let rtp = RtpInfo {
        ssrc: 1,
        sequence: 1,
        timestamp: 0,
        marker: true,
    };
    for len in 0..4 {
        assert_eq!(
            rx.handle_packet(Instant::now(), rtp, &[0u8; 3][..len.min(3)]),
            Err(PayloadError::TooShort { len: len.min(3) })
        );
    }
    assert!(rx.poll_event().is_none());
    assert_eq!(rx.stats().malformed, 4);
}

#[test]
fn many_ssrcs_are_bounded() {
    let mut rx = DtmfReceiver::new(8000);
    let t0 = Instant::now();
    for ssrc in 0..1000u32 {
        let rtp = RtpInfo {
            ssrc,
            sequence: 1,
            timestamp: 0,
            marker: true,
        };
        let now = t0 + Duration::from_millis(u64::from(ssrc));
        rx.handle_packet(now, rtp, &[1, 0, 0, 160]).unwrap();
    }
    let ev: Vec<_> = std::iter::from_fn(|| rx.poll_event()).collect();
    // Every key-down is reported; the streams dropped to stay bounded get their key-up.
    assert_eq!(ev.iter().filter(|e| !e.is_end()).count(), 1000);
    assert_eq!(
        ev.iter().filter(|e| e.is_end()).count(),
        1000 - touchtone::receiver::MAX_STREAMS
    );
}

mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any packets at all: no panic, key-downs and key-ups pair up, at most one open key per stream.
        #[test]
        fn any_packet_stream_is_handled(
            packets in proptest::collection::vec(
                (0u32..3, any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..8), 0u64..400),
                0..200,
            )
        ) {
            let t0 = Instant::now();
            let mut rx = DtmfReceiver::new(8000);
            let mut now = t0;
            let mut open = std::collections::HashMap::new();
            for (ssrc, seq, ts, marker, payload, dt) in packets {
                now += Duration::from_millis(dt);
                rx.handle_timeout(now);
                let _ = rx.handle_packet(now, RtpInfo { ssrc, sequence: seq, timestamp: ts, marker }, &payload);
                while let Some(e) = rx.poll_event() {
                    let held = open.entry(e.ssrc()).or_insert(false);
                    prop_assert_eq!(*held, e.is_end(), "down/up alternate per stream");
                    *held = !e.is_end();
                    prop_assert!(e.at() <= now);
                }
            }
        }
    }
}
