//! Inputs the fuzz targets (fuzz/fuzz_targets) found to break the core, kept as tests.

use std::time::{Duration, Instant};

use touchtone::{DtmfReceiver, RtpInfo, TelephoneEvent};

fn packet(rx: &mut DtmfReceiver, at: Instant, ts: u32, event: u8, end: bool, duration: u16) {
    let rtp = RtpInfo {
        ssrc: 1,
        sequence: 0,
        timestamp: ts,
        marker: false,
    };
    let payload = TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
    .to_bytes();
    rx.handle_packet(at, rtp, &payload).unwrap();
}

/// fuzz target `receiver`: a duration clock over 3.3 MHz on another timestamp clock made the segment
/// step's slack (20 ms of the duration clock) larger than a segment, and `65535 - slack` overflowed.
#[test]
fn a_duration_clock_above_3_3_mhz_next_to_another_timestamp_clock() {
    let t0 = Instant::now();
    for rate in [3_300_000, 4_000_000, u32::MAX] {
        let mut rx = DtmfReceiver::new(rate);
        rx.set_timestamp_rate(8000);
        packet(&mut rx, t0, 1000, 5, false, 100);
        packet(&mut rx, t0 + Duration::from_millis(20), 1001, 5, true, 200);
        let events: Vec<_> = std::iter::from_fn(|| rx.poll_event()).collect();
        let ups = events.iter().filter(|e| e.is_end()).count();
        assert_eq!(ups * 2, events.len(), "{rate} Hz: {events:?}");
    }
    // At 4 MHz a segment (65535 units) is 131 timestamp units at 8 kHz: the next segment continues the key.
    let mut rx = DtmfReceiver::new(4_000_000);
    rx.set_timestamp_rate(8000);
    packet(&mut rx, t0, 1000, 5, false, 65_535);
    packet(&mut rx, t0 + Duration::from_millis(20), 1131, 5, true, 100);
    let events: Vec<_> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    // 131 timestamp units are 65500 duration units; the open segment adds its 100.
    assert_eq!(events[1].duration_units(), 65_500 + 100);
}
