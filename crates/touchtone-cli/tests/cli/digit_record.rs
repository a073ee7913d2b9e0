//! One digit record (docs/digit-record.md) from every tool: `dial`, `detect` and `pcap` print the same
//! JSON object for a key press, which parses into `touchtone::DigitRecord`.

use touchtone::{DigitRecord, DigitSource, EndCause};

use crate::util::*;

/// The digit records of a command's JSON output (other event types skipped).
fn records(args: &[&str]) -> Vec<DigitRecord> {
    let o = touchtone(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .filter(|l| l.contains(r#""type":"digit""#))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn every_tool_prints_the_same_digit_record() {
    let dir = Dir::new();
    let wav = dir.path("d.wav");
    let wav = wav.to_str().unwrap();
    let o = touchtone(&["generate", "7*", "-o", wav, "--duration", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pcap = dir.write("d.pcap", &pcap(ETHERNET, false, &call_packets("7*", 8000)));

    let detect = records(&["detect", wav, "--format", "json"]);
    let capture = records(&["pcap", &pcap, "--format", "json"]);
    let dial = records(&[
        "dial",
        "7*",
        "--duration",
        "100",
        "--gap",
        "70",
        "--format",
        "json",
    ]);

    for (tool, rs) in [("detect", &detect), ("pcap", &capture), ("dial", &dial)] {
        let keys: String = rs.iter().filter_map(|r| r.digit).collect();
        assert_eq!(keys, "7*", "{tool}: {rs:?}");
        let events: Vec<u8> = rs.iter().map(|r| r.event).collect();
        assert_eq!(events, [7, 10], "{tool}");
        for r in rs.iter() {
            assert_eq!(r.v, 1, "{tool}");
            assert!((r.duration_ms - 100.0).abs() <= 6.0, "{tool}: {r:?}");
        }
    }

    // What each tool knows: detect, the place in the recording and the channel.
    for r in &detect {
        assert_eq!(r.source, DigitSource::Inband);
        let (start, end) = (r.start_ms.unwrap(), r.end_ms.unwrap());
        assert!((end - start - r.duration_ms).abs() < 0.15, "{r:?}");
        assert_eq!(r.channel, Some(0));
        assert_eq!(
            (r.t_ms, r.ssrc, r.end, r.peer.as_deref()),
            (None, None, None, None)
        );
    }
    // pcap: the key-down time (the key-up's capture time less the duration: the sender's end packet of
    // the second tone, 170 ms in, is captured 80 ms later saying 100 ms; the first one's clamps at 0)
    // and the stream.
    assert_eq!(capture[0].start_ms, Some(0.0));
    assert_eq!(capture[1].start_ms, Some(150.0));
    for r in &capture {
        assert_eq!(r.source, DigitSource::Rfc4733);
        assert_eq!((r.ssrc, r.pt, r.rate), (Some(0xabc), Some(101), Some(8000)));
        assert_eq!(r.src, Some("10.0.0.1:4000".parse().unwrap()));
        assert!(r.dst.is_some());
        assert_eq!(r.end, Some(EndCause::EndPacket));
        assert_eq!((r.end_ms, r.t_ms, r.channel), (None, None, None));
    }
    // dial: when the receiver learnt of the key-up, and which peer did.
    for r in &dial {
        assert_eq!(r.source, DigitSource::Rfc4733);
        assert_eq!(r.peer.as_deref(), Some("receiver"));
        assert!(r.t_ms.is_some() && r.ssrc.is_some(), "{r:?}");
        assert_eq!(r.end, Some(EndCause::EndPacket));
        assert_eq!(
            (r.start_ms, r.end_ms, r.call.as_deref()),
            (None, None, None)
        );
    }
    assert!(
        dial[1].t_ms.unwrap() - dial[0].t_ms.unwrap() > 150.0,
        "{dial:?}"
    );
}
