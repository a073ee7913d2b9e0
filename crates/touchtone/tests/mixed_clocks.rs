//! telephone-event/8000 next to Opus/48000: RTP timestamps on the 48 kHz audio timeline, durations in
//! the telephone-event clock, and what libwebrtc-based browsers (Firefox, Chrome) put on the wire.

use std::time::{Duration, Instant};

use touchtone::{DtmfReceiver, DtmfSender, RtpInfo, TelephoneEvent};

fn run(tx: &mut DtmfSender, rx: &mut DtmfReceiver, t0: Instant, tones: &str, ms: u32, gap: u32) {
    tx.set_can_send(true);
    tx.insert_dtmf(t0, tones, ms, gap).unwrap();
    let mut seq = 0u16;
    while let Some(t) = tx.poll_timeout() {
        tx.handle_timeout(t);
        while let Some(p) = tx.poll_packet() {
            seq = seq.wrapping_add(1);
            let rtp = RtpInfo {
                ssrc: 9,
                sequence: seq,
                timestamp: p.timestamp,
                marker: p.marker,
            };
            rx.handle_packet(t, rtp, &p.payload.to_bytes()).unwrap();
        }
        rx.handle_timeout(t);
    }
}

fn key_ups(rx: &mut DtmfReceiver) -> Vec<(char, Duration, u32)> {
    std::iter::from_fn(|| rx.poll_event())
        .filter(|d| d.is_end())
        .map(|d| (d.tone().unwrap(), d.duration(), d.timestamp()))
        .collect()
}

#[test]
fn timestamps_follow_the_audio_clock_and_durations_the_event_clock() {
    let t0 = Instant::now();
    let mut tx = DtmfSender::new(8000);
    tx.set_timestamp_rate(48_000);
    tx.set_timestamp_origin(t0, 1000);
    tx.set_can_send(true);
    tx.insert_dtmf(t0, "12", 100, 70).unwrap();
    let mut packets = vec![];
    while let Some(t) = tx.poll_timeout() {
        tx.handle_timeout(t);
        packets.extend(std::iter::from_fn(|| tx.poll_packet()));
    }
    let first: Vec<_> = packets.iter().filter(|p| p.payload.event == 1).collect();
    assert!(first.iter().all(|p| p.timestamp == 1000));
    let durations: Vec<u16> = first.iter().map(|p| p.payload.duration).collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    // The second tone starts 170 ms later: 8160 units of the 48 kHz audio clock.
    assert!(
        packets
            .iter()
            .filter(|p| p.payload.event == 2)
            .all(|p| p.timestamp == 1000 + 8160)
    );
}

#[test]
fn a_receiver_with_both_clocks_reads_such_a_sender_exactly() {
    let t0 = Instant::now();
    let mut tx = DtmfSender::new(8000);
    tx.set_timestamp_rate(48_000);
    let mut rx = DtmfReceiver::new(8000);
    rx.set_timestamp_rate(48_000);
    run(&mut tx, &mut rx, t0, "1#9", 100, 70);
    let got = key_ups(&mut rx);
    let digits: String = got.iter().map(|g| g.0).collect();
    assert_eq!(digits, "1#9");
    assert!(got.iter().all(|g| g.1 == Duration::from_millis(100)));
}

#[test]
fn long_events_split_into_segments_across_clocks() {
    // 0xFFFF units at 8 kHz is 8.19 s: a 10 s tone needs two segments; the second segment's timestamp
    // advances by 0xFFFF converted to the 48 kHz timeline.
    let t0 = Instant::now();
    let mut tx = DtmfSender::new(8000);
    tx.set_timestamp_rate(48_000);
    let mut rx = DtmfReceiver::new(8000);
    rx.set_timestamp_rate(48_000);
    tx.set_can_send(true);
    // insertDTMF clamps to 6 s; drive the receiver directly for a 10 s event.
    let mut seq = 0u16;
    let mut feed = |t: Instant, ts: u32, dur: u16, end: bool| {
        seq += 1;
        let rtp = RtpInfo {
            ssrc: 1,
            sequence: seq,
            timestamp: ts,
            marker: seq == 1,
        };
        let ev = TelephoneEvent {
            event: 5,
            end,
            volume: 10,
            duration: dur,
        };
        rx.handle_packet(t, rtp, &ev.to_bytes()).unwrap();
    };
    let mut t = t0;
    let mut units = 160u32;
    while units < 0xFFFF {
        feed(t, 0, units as u16, false);
        t += Duration::from_millis(20);
        units += 160;
    }
    feed(t, 0, 0xFFFF, false);
    let step = (0xFFFFu64 * 6) as u32;
    let rest = 80_000 - 0xFFFF; // 10 s = 80000 units at 8 kHz
    for k in 1..=3 {
        t += Duration::from_millis(20);
        feed(t, step, (rest as u16).min(160 * k), false);
    }
    for _ in 0..3 {
        feed(t, step, rest as u16, true);
    }
    let got = key_ups(&mut rx);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, Duration::from_secs(10));
}

/// What Firefox and Chrome send with telephone-event/8000 next to Opus/48000 (libwebrtc's
/// `RTPSenderAudio`): the event length is computed in 8 kHz units but the elapsed time on the 48 kHz
/// audio timeline, so a 100 ms press becomes three end packets with duration 960, marker set, and a longer
/// press ends after a sixth of its length. Read in the telephone-event clock, durations come out as asked
/// (rounded up to 120 ms steps).
#[test]
fn libwebrtc_events_at_8k_next_to_opus_read_as_asked() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::new(8000);
    rx.set_timestamp_rate(48_000);
    let mut seq = 100u16;
    let mut send = |at: Instant, ts: u32, event: u8, dur: u16, end: bool, marker: bool| {
        seq = seq.wrapping_add(1);
        let rtp = RtpInfo {
            ssrc: 0xf1f0,
            sequence: seq,
            timestamp: ts,
            marker,
        };
        let ev = TelephoneEvent {
            event,
            end,
            volume: 10,
            duration: dur,
        };
        rx.handle_packet(at, rtp, &ev.to_bytes()).unwrap();
    };
    // "123#" at 100/70: each digit is only end packets, 20 ms after its start, timestamps 170 ms apart.
    for (i, event) in [1u8, 2, 3, 11].into_iter().enumerate() {
        let start = t0 + Duration::from_millis(170 * i as u64);
        let ts = 5000 + 8160 * i as u32;
        for copy in 0..3u64 {
            send(
                start + Duration::from_millis(20 + 20 * copy),
                ts,
                event,
                960,
                true,
                true,
            );
        }
    }
    // A 400 ms press: 960 (M), 1920, 2880, then 3840 with E three times.
    let start = t0 + Duration::from_secs(2);
    let ts = 500_000;
    for (k, d) in [960u16, 1920, 2880].into_iter().enumerate() {
        send(
            start + Duration::from_millis(20 * (k as u64 + 1)),
            ts,
            7,
            d,
            false,
            k == 0,
        );
    }
    for copy in 0..3u64 {
        send(
            start + Duration::from_millis(80 + 20 * copy),
            ts,
            7,
            3840,
            true,
            false,
        );
    }
    let got = key_ups(&mut rx);
    let digits: String = got.iter().map(|g| g.0).collect();
    assert_eq!(digits, "123#7");
    for g in &got[..4] {
        assert_eq!(g.1, Duration::from_millis(120), "{g:?}");
    }
    assert_eq!(got[4].1, Duration::from_millis(480));
}
