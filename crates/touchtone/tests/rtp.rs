//! RTP header parsing (RFC 3550 section 5.1): CSRCs, extensions, padding, RTCP and damaged packets.

use proptest::prelude::*;
use touchtone::{RtpError, RtpInfo};

fn header(first: u8, second: u8) -> Vec<u8> {
    vec![
        first, second, 0x12, 0x34, 0, 0, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef,
    ]
}

#[test]
fn csrcs_extension_and_padding_are_skipped() {
    // Two CSRCs, a one-word extension, three bytes of padding.
    let mut p = header(0x80 | 0x20 | 0x10 | 2, 101);
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]);
    p.extend_from_slice(&[1, 0x8a, 0, 160]);
    p.extend_from_slice(&[0, 0, 3]);
    let (rtp, pt, payload) = RtpInfo::parse(&p).unwrap();
    assert_eq!(
        rtp,
        RtpInfo {
            ssrc: 0xdead_beef,
            sequence: 0x1234,
            timestamp: 256,
            marker: false
        }
    );
    assert_eq!((pt, payload), (101, &[1, 0x8a, 0, 160][..]));
}

#[test]
fn damaged_and_foreign_packets_are_typed_errors() {
    assert_eq!(
        RtpInfo::parse(&[0x80; 11]),
        Err(RtpError::TooShort { len: 11 })
    );
    assert_eq!(RtpInfo::parse(&header(0x40, 0)), Err(RtpError::Version(1)));
    // RTCP sender report (200) multiplexed on the RTP port.
    assert_eq!(RtpInfo::parse(&header(0x80, 200)), Err(RtpError::Rtcp(200)));
    // Three CSRCs announced, none present.
    assert_eq!(
        RtpInfo::parse(&header(0x83, 0)),
        Err(RtpError::HeaderOverrun { len: 12 })
    );
    // An extension header cut short.
    let mut p = header(0x90, 0);
    p.extend_from_slice(&[0xbe]);
    assert_eq!(RtpInfo::parse(&p), Err(RtpError::HeaderOverrun { len: 13 }));
    // Padding longer than the payload.
    let mut p = header(0xa0, 0);
    p.extend_from_slice(&[1, 2, 9]);
    assert_eq!(
        RtpInfo::parse(&p),
        Err(RtpError::Padding {
            padding: 9,
            payload: 3
        })
    );
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok((_, pt, payload)) = RtpInfo::parse(&bytes) {
            prop_assert!(pt < 128);
            prop_assert!(payload.len() + 12 <= bytes.len());
        }
    }

    #[test]
    fn plain_packets_round_trip(ssrc: u32, sequence: u16, timestamp: u32, marker: bool,
                                pt in 0u8..72, payload in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&sequence.to_be_bytes());
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&payload);
        let (rtp, got_pt, got) = RtpInfo::parse(&p).unwrap();
        prop_assert_eq!(rtp, RtpInfo { ssrc, sequence, timestamp, marker });
        prop_assert_eq!(got_pt, pt);
        prop_assert_eq!(got, &payload[..]);
    }
}
