//! pcap and pcapng captures from arbitrary bytes: `digits_in_capture`, `packets_in_capture` and the
//! streaming `CaptureScan`, the latter fed through a reader that hands out a few bytes at a time. No panic,
//! no runaway memory; the streaming and whole-input forms agree (same digits, same error); packets come
//! from telephone-event streams and digits have sane times.
#![no_main]

use libfuzzer_sys::fuzz_target;
use touchtone_capture::{
    CaptureOptions, CaptureScan, CapturedDigit, CapturedPacket, digits_in_capture,
    packets_in_capture,
};

mod common;

use common::{Trickle, kind};

fn key(d: &CapturedDigit) -> impl Ord + use<> {
    (
        d.start,
        d.duration,
        d.event,
        d.stream.ssrc,
        d.stream.src,
        d.stream.dst,
    )
}

fuzz_target!(|data: &[u8]| {
    let options = CaptureOptions::default();
    let whole = digits_in_capture(data, options);
    if let Ok(digits) = &whole {
        for d in digits {
            assert!(d.clock_rate > 0);
            assert_eq!(d.tone, touchtone::tone::tone_for_event(d.event));
        }
    }

    // Streaming, a few bytes per read: the same digits (in key-up order), then the same error.
    let chunk = 1 + data.len() % 61;
    let mut streamed = Vec::new();
    let mut error = None;
    match CaptureScan::<_, CapturedDigit>::new(Trickle { data, chunk }, options) {
        Ok(scan) => {
            for item in scan {
                match item {
                    Ok(d) => {
                        assert!(error.is_none(), "a digit after the error");
                        streamed.push(d);
                    }
                    Err(e) => {
                        assert!(error.is_none(), "two errors");
                        error = Some(e);
                    }
                }
            }
        }
        Err(e) => error = Some(e),
    }
    match (&whole, &error) {
        (Ok(digits), None) => {
            let mut a: Vec<_> = digits.iter().map(key).collect();
            let mut b: Vec<_> = streamed.iter().map(key).collect();
            a.sort();
            b.sort();
            assert!(a == b, "whole and streamed digits differ");
        }
        (Err(a), Some(b)) => assert_eq!(kind(a), kind(b), "{a:?} vs {b:?}"),
        (a, b) => panic!("whole {a:?} but streamed error {b:?}"),
    }

    if let Ok(packets) = packets_in_capture(data, options) {
        for p in &packets {
            assert!((96..=127).contains(&p.stream.payload_type));
        }
        assert!(
            packets
                .windows(2)
                .all(|w| (w[0].time, w[0].rtp.sequence) <= (w[1].time, w[1].rtp.sequence))
        );
    }

    // A payload type and clock rate given, as `touchtone pcap --pt --rate` does.
    let pt = data.last().map_or(101, |b| b & 0x7f);
    let given = CaptureOptions {
        payload_type: Some(pt),
        clock_rate: Some([8000, 16_000, 48_000, 1, u32::MAX][data.len() % 5]),
    };
    let _ = digits_in_capture(data, given);
    let _ = CaptureScan::<_, CapturedPacket>::new(data, given).map(|s| s.count());
});
