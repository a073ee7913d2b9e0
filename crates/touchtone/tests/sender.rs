//! The W3C RTCDTMFSender rules, checked with a simulated clock.

use std::time::{Duration, Instant};

use touchtone::{DtmfError, DtmfSender, EventPacket};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs the sender to completion, calling `handle_timeout` exactly when asked.
fn run(s: &mut DtmfSender) -> (Vec<(String, u64)>, Vec<EventPacket>, Instant) {
    let t0 = s.poll_timeout().expect("something scheduled");
    drain_until(s, t0, None)
}

fn drain_until(
    s: &mut DtmfSender,
    t0: Instant,
    until: Option<Instant>,
) -> (Vec<(String, u64)>, Vec<EventPacket>, Instant) {
    let mut events = vec![];
    let mut packets = vec![];
    let mut last = t0;
    while let Some(t) = s.poll_timeout() {
        if until.is_some_and(|u| t > u) {
            break;
        }
        s.handle_timeout(t);
        last = t;
        while let Some(e) = s.poll_event() {
            events.push((e.tone().to_string(), (e.at() - t0).as_millis() as u64));
        }
        packets.extend(std::iter::from_fn(|| s.poll_packet()));
    }
    (events, packets, last)
}

fn sender() -> DtmfSender {
    let mut s = DtmfSender::new(48_000);
    s.set_can_send(true);
    s
}

fn tones(events: &[(String, u64)]) -> Vec<(&str, u64)> {
    events.iter().map(|(t, at)| (t.as_str(), *at)).collect()
}

#[test]
fn spec_example_123_fires_at_0_170_340_510() {
    let now = Instant::now();
    let mut s = sender();
    s.insert_dtmf(now, "123", 100, 70).unwrap();
    let (ev, _, _) = run(&mut s);
    assert_eq!(tones(&ev), [("1", 0), ("2", 170), ("3", 340), ("", 510)]);
    assert!(s.is_idle());
}

#[test]
fn the_seed_dial_string_at_400_50() {
    let now = Instant::now();
    let mut s = sender();
    s.insert_dtmf(now, "12024561111", 400, 50).unwrap();
    let (ev, pkts, _) = run(&mut s);
    let expected: Vec<(String, u64)> = "12024561111"
        .chars()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i as u64 * 450))
        .chain([(String::new(), 11 * 450)])
        .collect();
    assert_eq!(ev, expected);
    // 400 ms = 20 updates, the last with E, plus 2 copies: 22 packets per tone.
    assert_eq!(pkts.len(), 11 * 22);
    assert_eq!(pkts.iter().filter(|p| p.marker).count(), 11);
}

#[test]
fn tone_buffer_holds_everything_until_the_task_runs() {
    let now = Instant::now();
    let mut s = sender();
    s.insert_dtmf(now, "12,3#", 100, 70).unwrap();
    assert_eq!(s.tone_buffer(), "12,3#");
    assert_eq!(s.poll_timeout(), Some(now));
    assert!(s.poll_event().is_none());
    s.handle_timeout(now);
    assert_eq!(s.tone_buffer(), "2,3#");
    assert_eq!(s.poll_event().unwrap().tone(), "1");
}

#[test]
fn lower_case_is_stored_upper_case() {
    let mut s = sender();
    s.insert_dtmf(Instant::now(), "abcd", 100, 70).unwrap();
    assert_eq!(s.tone_buffer(), "ABCD");
}

#[test]
fn invalid_state_is_checked_before_characters() {
    let mut s = DtmfSender::new(8000);
    assert!(!s.can_insert_dtmf());
    assert_eq!(
        s.insert_dtmf(Instant::now(), "Z", 100, 70),
        Err(DtmfError::InvalidState)
    );
    assert_eq!(DtmfError::InvalidState.name(), "InvalidStateError");
}

#[test]
fn invalid_characters_change_nothing() {
    let now = Instant::now();
    let mut s = sender();
    s.insert_dtmf(now, "12", 100, 70).unwrap();
    for bad in ["1 2", "E", "p", "w", "+", "١"] {
        let err = s.insert_dtmf(now, bad, 500, 500).unwrap_err();
        assert_eq!(err.name(), "InvalidCharacterError", "{bad}");
        assert_eq!(s.tone_buffer(), "12");
        assert_eq!(s.duration(), ms(100));
        assert_eq!(s.inter_tone_gap(), ms(70));
    }
}

#[test]
fn defaults_and_clamping() {
    let now = Instant::now();
    let mut s = sender();
    assert_eq!((s.duration(), s.inter_tone_gap()), (ms(100), ms(70)));
    s.insert_dtmf(now, "1", 1, 1).unwrap();
    assert_eq!((s.duration(), s.inter_tone_gap()), (ms(40), ms(30)));
    s.insert_dtmf(now, "1", 100_000, 100_000).unwrap();
    assert_eq!((s.duration(), s.inter_tone_gap()), (ms(6000), ms(6000)));
    let mut s = sender();
    s.insert_dtmf(now, "12", 0, 0).unwrap();
    let (ev, _, _) = run(&mut s);
    assert_eq!(tones(&ev), [("1", 0), ("2", 70), ("", 140)]);
}

#[test]
fn comma_pauses_two_seconds_whatever_the_duration() {
    let now = Instant::now();
    let mut s = sender();
    s.insert_dtmf(now, "1,2", 40, 30).unwrap();
    let (ev, pkts, _) = run(&mut s);
    assert_eq!(tones(&ev), [("1", 0), (",", 70), ("2", 2070), ("", 2140)]);
    // The comma sends nothing.
    assert_eq!(pkts.iter().filter(|p| p.marker).count(), 2);
}

#[test]
fn insert_replaces_the_buffer_and_keeps_the_pending_task() {
    let t0 = Instant::now();
    let mut s = sender();
    s.insert_dtmf(t0, "123", 100, 70).unwrap();
    s.handle_timeout(t0);
    assert_eq!(s.poll_event().unwrap().tone(), "1");
    // Mid-tone, a new insert replaces "23" and its duration applies from the next task on; the task due
    // at 170 ms is not moved.
    s.insert_dtmf(t0 + ms(50), "9", 200, 30).unwrap();
    assert_eq!(s.tone_buffer(), "9");
    let (ev, _, _) = drain_until(&mut s, t0, None);
    assert_eq!(tones(&ev), [("9", 170), ("", 400)]);
}

#[test]
fn empty_insert_on_idle_sender_fires_nothing() {
    let now = Instant::now();
    let mut s = sender();
    s.insert_dtmf(now, "", 100, 70).unwrap();
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(now + ms(10_000));
    assert!(s.poll_event().is_none());
    assert!(s.poll_packet().is_none());
}

#[test]
fn empty_insert_while_playing_cancels_the_rest() {
    let t0 = Instant::now();
    let mut s = sender();
    s.insert_dtmf(t0, "123", 100, 70).unwrap();
    s.handle_timeout(t0);
    s.insert_dtmf(t0 + ms(10), "", 100, 70).unwrap();
    assert_eq!(s.tone_buffer(), "");
    let (ev, _, _) = drain_until(&mut s, t0, None);
    // "1" had started; the rest is cancelled and the end fires at the pending task time.
    assert_eq!(tones(&ev), [("1", 0), ("", 170)]);
}

#[test]
fn losing_the_ability_to_send_stops_silently() {
    let t0 = Instant::now();
    let mut s = sender();
    s.insert_dtmf(t0, "123", 100, 70).unwrap();
    let (ev, _, _) = drain_until(&mut s, t0, Some(t0 + ms(200)));
    assert_eq!(tones(&ev), [("1", 0), ("2", 170)]);
    s.set_can_send(false);
    let (ev, pkts, _) = drain_until(&mut s, t0, None);
    assert!(ev.is_empty(), "no event after losing the ability: {ev:?}");
    assert!(pkts.is_empty());
    assert_eq!(s.tone_buffer(), "3");
    assert!(s.is_idle());
    assert_eq!(
        s.insert_dtmf(t0 + ms(400), "1", 100, 70),
        Err(DtmfError::InvalidState)
    );
}

#[test]
fn a_late_handle_timeout_fires_every_event_at_its_due_time_once() {
    let t0 = Instant::now();
    let mut s = sender();
    s.insert_dtmf(t0, "1,23", 100, 70).unwrap();
    // One call long after everything was due.
    s.handle_timeout(t0 + ms(60_000));
    let ev: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .map(|e| (e.tone(), (e.at() - t0).as_millis()))
        .collect();
    assert_eq!(
        ev,
        [("1", 0), (",", 170), ("2", 2170), ("3", 2340), ("", 2510)]
    );
    let pkts: Vec<_> = std::iter::from_fn(|| s.poll_packet()).collect();
    assert_eq!(pkts.len(), 3 * 7);
    assert!(pkts.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(s.is_idle());
}

#[test]
fn events_are_never_early() {
    let t0 = Instant::now();
    let mut s = sender();
    s.insert_dtmf(t0, "12", 100, 70).unwrap();
    s.handle_timeout(t0);
    while s.poll_event().is_some() {}
    // Just before the next task nothing fires.
    s.handle_timeout(t0 + ms(169));
    assert!(s.poll_event().is_none());
    s.handle_timeout(t0 + ms(170));
    assert_eq!(s.poll_event().unwrap().tone(), "2");
}

#[test]
fn packets_follow_rfc4733() {
    let t0 = Instant::now();
    let mut s = sender();
    s.insert_dtmf(t0, "5#", 100, 70).unwrap();
    let (_, pkts, _) = run(&mut s);
    let first: Vec<_> = pkts.iter().filter(|p| p.payload.event == 5).collect();
    let d: Vec<_> = first.iter().map(|p| p.payload.duration).collect();
    assert_eq!(d, [960, 1920, 2880, 3840, 4800, 4800, 4800]);
    assert!(first.iter().all(|p| p.timestamp == first[0].timestamp));
    assert!(first.iter().all(|p| p.payload.volume == 10));
    let hash: Vec<_> = pkts.iter().filter(|p| p.payload.event == 11).collect();
    // The second tone starts 170 ms later: 8160 units at 48 kHz.
    assert_eq!(hash[0].timestamp.wrapping_sub(first[0].timestamp), 8160);
    assert!(hash[0].marker && hash[1..].iter().all(|p| !p.marker));
    let offsets: Vec<_> = hash.iter().map(|p| (p.at - t0).as_millis()).collect();
    assert_eq!(offsets, [170, 190, 210, 230, 250, 270, 290]);
}

#[test]
fn end_copies_never_trail_the_next_event() {
    // 41 ms tones with a 30 ms gap: the third end copy would be due at 80 ms, after the next tone at 71 ms.
    let t0 = Instant::now();
    let mut s = sender();
    s.set_packet_interval(ms(20));
    s.insert_dtmf(t0, "12", 41, 30).unwrap();
    let (_, pkts, _) = run(&mut s);
    let events: Vec<_> = pkts.iter().map(|p| p.payload.event).collect();
    assert_eq!(events, [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    assert!(pkts.windows(2).all(|w| w[0].at <= w[1].at));
    // A new event's timestamp is after the previous one's end.
    let end1 = pkts[0]
        .timestamp
        .wrapping_add(u32::from(pkts[4].payload.duration));
    assert!(pkts[5].timestamp.wrapping_sub(end1) as i32 > 0);
}

#[test]
fn the_packet_interval_and_clock_rate_are_configurable() {
    let t0 = Instant::now();
    let mut s = DtmfSender::new(8000);
    s.set_can_send(true);
    s.set_packet_interval(ms(50));
    s.set_volume(20);
    s.insert_dtmf(t0, "7", 120, 70).unwrap();
    let (_, pkts, _) = run(&mut s);
    let d: Vec<_> = pkts.iter().map(|p| p.payload.duration).collect();
    assert_eq!(d, [400, 800, 960, 960, 960]);
    let at: Vec<_> = pkts.iter().map(|p| (p.at - t0).as_millis()).collect();
    assert_eq!(at, [0, 50, 100, 150, 200]);
    assert!(pkts.iter().all(|p| p.payload.volume == 20));
}

#[test]
fn audio_is_suppressed_while_a_tone_plays() {
    let t0 = Instant::now();
    let mut s = sender();
    s.insert_dtmf(t0, "1", 100, 70).unwrap();
    s.handle_timeout(t0);
    assert!(s.is_playing(t0));
    assert!(s.is_playing(t0 + ms(99)));
    s.handle_timeout(t0 + ms(100));
    assert!(!s.is_playing(t0 + ms(100)));
}

#[test]
fn timestamps_follow_the_pinned_origin() {
    let t0 = Instant::now();
    let mut s = sender();
    s.set_timestamp_origin(t0, u32::MAX - 100);
    s.insert_dtmf(t0 + ms(10), "1", 100, 70).unwrap();
    let (_, pkts, _) = run(&mut s);
    assert_eq!(pkts[0].timestamp, (u32::MAX - 100).wrapping_add(480));
}
