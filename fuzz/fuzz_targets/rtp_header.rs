//! RTP headers (RFC 3550) as `touchtone pcap` and the capture scanner read them: no panic, and what is
//! returned agrees with the bytes (fixed fields, a payload inside the packet after the CSRCs and the
//! extension, padding removed, RTCP types refused).
#![no_main]

use libfuzzer_sys::fuzz_target;
use touchtone::RtpInfo;

fuzz_target!(|data: &[u8]| {
    let Ok((info, pt, payload)) = RtpInfo::parse(data) else {
        return;
    };
    assert!(data.len() >= 12);
    assert_eq!(data[0] >> 6, 2);
    assert_eq!(pt, data[1] & 0x7f);
    assert!(!(72..=76).contains(&pt));
    assert_eq!(info.marker, data[1] & 0x80 != 0);
    assert_eq!(info.sequence, u16::from_be_bytes([data[2], data[3]]));
    assert_eq!(
        info.timestamp,
        u32::from_be_bytes([data[4], data[5], data[6], data[7]])
    );
    assert_eq!(
        info.ssrc,
        u32::from_be_bytes([data[8], data[9], data[10], data[11]])
    );
    // The payload is a slice of the packet, after the header and its CSRC list.
    let start = payload.as_ptr() as usize - data.as_ptr() as usize;
    assert!(start >= 12 + 4 * usize::from(data[0] & 0x0f));
    assert!(start + payload.len() <= data.len());
    if data[0] & 0x20 != 0 {
        // Padding: the last byte counts the padding bytes, itself included.
        assert_eq!(
            start + payload.len() + usize::from(data[data.len() - 1]),
            data.len()
        );
    } else {
        assert_eq!(start + payload.len(), data.len());
    }
});
