//! The telephone-event list of an `a=fmtp` line: parsing never panics, and what parses writes back (Display)
//! as text that parses to the same set. An empty set writes nothing, which reads as the default 0-15
//! (RFC 4733 2.4.1); the negotiation never writes an empty list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use touchtone::EventSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = EventSet::parse_fmtp(text) else {
        return;
    };
    let written = set.to_string();
    assert!(
        written
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'-'),
        "{written:?}"
    );
    let back = EventSet::parse_fmtp(&written).expect("Display output parses");
    if set.is_empty() {
        assert_eq!(written, "");
        assert_eq!(back, EventSet::DTMF);
    } else {
        assert_eq!(back, set, "{text:?} -> {written:?}");
    }
    // The ranges cover exactly the set, ascending, never touching.
    let mut from_ranges = EventSet::EMPTY;
    let mut prev: Option<u8> = None;
    for (a, b) in set.ranges() {
        assert!(a <= b);
        if let Some(p) = prev {
            assert!(u16::from(a) > u16::from(p) + 1);
        }
        prev = Some(b);
        for e in a..=b {
            from_ranges.insert(e);
        }
    }
    assert_eq!(from_ranges, set);
    assert_eq!(
        set.iter().count(),
        set.ranges()
            .iter()
            .map(|(a, b)| usize::from(b - a) + 1)
            .sum::<usize>()
    );
    if let Some(max) = set.contiguous_max() {
        assert_eq!(set, EventSet::range(0, max));
    }
    assert!(set.intersection(&EventSet::DTMF).iter().all(|e| e < 16));
});
