//! Inputs the fuzz targets (fuzz/fuzz_targets) found to break the capture and WAV readers, kept as tests.

use touchtone_capture::{CaptureOptions, digits_in_capture, packets_in_capture};

/// One little-endian pcapng block.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = (12 + body.len()) as u32;
    let mut b = kind.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// An Ethernet frame with IPv4/UDP/RTP carrying telephone-event `5` (PT 101).
fn frame(seq: u16, end: bool, duration: u16) -> Vec<u8> {
    let mut rtp = vec![0x80, 101];
    rtp.extend_from_slice(&seq.to_be_bytes());
    rtp.extend_from_slice(&16_000u32.to_be_bytes());
    rtp.extend_from_slice(&0x1122_3344u32.to_be_bytes());
    rtp.extend_from_slice(&[5, if end { 0x8a } else { 0x0a }]);
    rtp.extend_from_slice(&duration.to_be_bytes());
    let mut udp = 40_000u16.to_be_bytes().to_vec();
    udp.extend_from_slice(&50_000u16.to_be_bytes());
    udp.extend_from_slice(&(8 + rtp.len() as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&rtp);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + udp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    ip.extend_from_slice(&udp);
    let mut eth = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    eth.extend_from_slice(&ip);
    eth
}

/// A pcapng capture whose interface counts timestamps in seconds (`if_tsresol` 0), with these packets.
fn pcapng_in_seconds(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    let mut idb = vec![1, 0, 0, 0, 0xff, 0xff, 0, 0];
    idb.extend_from_slice(&[9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // if_tsresol = 0, end of options
    out.extend(block(1, &idb));
    for (ts, f) in packets {
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        out.extend(block(6, &epb));
    }
    out
}

/// fuzz target `capture`: a packet whose 64-bit pcapng timestamp (in seconds) lies centuries after the
/// first one overflowed `Instant + Duration` in the scanner (a panic, `touchtone pcap` exit 101).
#[test]
fn timestamps_centuries_apart_do_not_overflow_the_clock() {
    let capture = pcapng_in_seconds(&[(0, frame(1, false, 160)), (u64::MAX, frame(2, true, 320))]);
    let digits = digits_in_capture(&capture[..], CaptureOptions::default()).unwrap();
    assert_eq!(digits.len(), 1, "{digits:?}");
    assert_eq!(digits[0].tone, Some('5'));
    let packets = packets_in_capture(&capture[..], CaptureOptions::default()).unwrap();
    assert_eq!(packets.len(), 2);
}
