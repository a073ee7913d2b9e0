//! The RFC 4733 receiver under arbitrary packet sequences: any clock rates, time steps, SSRCs, timestamps
//! (wrap-around included), segment steps, short payloads, timeouts and stream removal.
//!
//! Checked: no panic; every key-up follows a key-down of the same event on the same stream; an event gets
//! one key-up; a finished event never comes back as a new key-down (while at most 64 streams were seen,
//! so none was evicted); no duration exceeds what the event's packets said (timestamp distance converted
//! to the duration clock plus the duration field); key-ups never report less than their key-down; after
//! `handle_timeout(t)` for a due `t`, `poll_timeout` is later than `t`; the stats count the key-ups.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use touchtone::{DigitEvent, DtmfReceiver, RtpInfo, receiver::MAX_STREAMS};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Rate {
    R8000,
    R16000,
    R48000,
    Any(u32),
}

impl Rate {
    fn hz(self) -> u32 {
        match self {
            Rate::R8000 => 8000,
            Rate::R16000 => 16_000,
            Rate::R48000 => 48_000,
            Rate::Any(r) => r,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Ts {
    /// The stream's previous timestamp.
    Same,
    /// The previous timestamp plus this.
    Delta(i16),
    /// The previous timestamp plus this many segments (65535 duration units on the timestamp clock).
    Segments(u8),
    /// Anywhere.
    Abs(u32),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Packet {
        step_us: u16,
        ssrc: u8,
        seq: u16,
        ts: Ts,
        marker: bool,
        payload: Payload,
    },
    Timeout {
        step_ms: u16,
    },
    /// Jump to when the receiver asked to be woken.
    Due,
    Remove {
        ssrc: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Event {
        event: u8,
        end: bool,
        volume: u8,
        duration: u16,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    clock: Rate,
    timestamp: Option<Rate>,
    end_timeout_ms: Option<u16>,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    event: u8,
    ts: u32,
    at: Instant,
    down_units: u64,
    /// The most duration units any packet of the event said since its key-down.
    said: u64,
}

struct Model {
    clock: u32,
    ts_rate: u32,
    open: HashMap<u32, Open>,
    /// The start timestamp of each stream's last finished event.
    closed: HashMap<u32, u32>,
    /// Every packet of each stream since its current (or last) event's key-down: (timestamp, duration).
    packets: HashMap<u32, Vec<(u32, u16)>>,
    ssrcs: HashSet<u32>,
    key_ups: u64,
}

impl Model {
    fn to_units(&self, ts_units: u32) -> u64 {
        if self.clock == self.ts_rate {
            return u64::from(ts_units);
        }
        let n = u128::from(ts_units) * u128::from(self.clock);
        ((n + u128::from(self.ts_rate) / 2) / u128::from(self.ts_rate)) as u64
    }

    /// The most any packet of the stream heard since `start` says the event lasted.
    fn said(&self, ssrc: u32, start: u32) -> u64 {
        self.packets
            .get(&ssrc)
            .into_iter()
            .flatten()
            .filter_map(|&(ts, dur)| {
                let d = ts.wrapping_sub(start);
                (d as i32 >= 0).then(|| self.to_units(d) + u64::from(dur))
            })
            .max()
            .unwrap_or(0)
    }

    fn check(&mut self, d: DigitEvent) {
        let ssrc = d.ssrc();
        if !d.is_end() {
            assert!(
                !self.open.contains_key(&ssrc),
                "key-down {d:?} while {:?} is held",
                self.open[&ssrc]
            );
            if self.ssrcs.len() <= MAX_STREAMS {
                assert_ne!(
                    self.closed.get(&ssrc),
                    Some(&d.timestamp()),
                    "a finished event came back: {d:?}"
                );
            }
            // Only the packets of this event from here on.
            let keep: Vec<_> = self.packets[&ssrc]
                .iter()
                .copied()
                .filter(|&(ts, _)| ts == d.timestamp())
                .collect();
            self.packets.insert(ssrc, keep);
            let said = self.said(ssrc, d.timestamp());
            assert!(d.duration_units() <= said, "{d:?} says more than {said}");
            self.open.insert(
                ssrc,
                Open {
                    event: d.event(),
                    ts: d.timestamp(),
                    at: d.at(),
                    down_units: d.duration_units(),
                    said,
                },
            );
        } else {
            let open = self
                .open
                .remove(&ssrc)
                .unwrap_or_else(|| panic!("key-up {d:?} without a key-down"));
            assert_eq!(
                (open.event, open.ts),
                (d.event(), d.timestamp()),
                "key-up of another event"
            );
            assert!(d.at() >= open.at);
            let said = open.said.max(self.said(ssrc, open.ts));
            assert!(
                d.duration_units() <= said,
                "{d:?} says more than its packets ({said})"
            );
            assert!(
                d.duration_units() >= open.down_units,
                "key-up {d:?} shorter than its key-down ({})",
                open.down_units
            );
            self.closed.insert(ssrc, d.timestamp());
            self.key_ups += 1;
        }
    }
}

fuzz_target!(|input: Input| {
    let clock = input.clock.hz();
    let mut rx = DtmfReceiver::new(clock);
    if let Some(r) = input.timestamp {
        rx.set_timestamp_rate(r.hz());
    }
    if let Some(ms) = input.end_timeout_ms {
        rx.set_end_timeout(Duration::from_millis(u64::from(ms)));
    }
    let mut model = Model {
        clock: rx.clock_rate(),
        ts_rate: rx.timestamp_rate(),
        open: HashMap::new(),
        closed: HashMap::new(),
        packets: HashMap::new(),
        ssrcs: HashSet::new(),
        key_ups: 0,
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut last_ts: HashMap<u32, u32> = HashMap::new();
    for op in input.ops.iter().take(2000) {
        match op {
            Op::Packet {
                step_us,
                ssrc,
                seq,
                ts,
                marker,
                payload,
            } => {
                now += Duration::from_micros(u64::from(*step_us));
                let ssrc = u32::from(*ssrc);
                let prev = last_ts.get(&ssrc).copied().unwrap_or(0);
                let ts = match ts {
                    Ts::Same => prev,
                    Ts::Delta(d) => prev.wrapping_add(*d as i32 as u32),
                    Ts::Segments(k) => {
                        let step = u64::from(*k) * 65_535 * u64::from(model.ts_rate)
                            / u64::from(model.clock);
                        prev.wrapping_add(step as u32)
                    }
                    Ts::Abs(t) => *t,
                };
                last_ts.insert(ssrc, ts);
                let bytes = match payload {
                    Payload::Event {
                        event,
                        end,
                        volume,
                        duration,
                    } => {
                        let d = duration.to_be_bytes();
                        vec![*event, (u8::from(*end) << 7) | (volume & 0x3f), d[0], d[1]]
                    }
                    Payload::Raw(b) => b.clone(),
                };
                let rtp = RtpInfo {
                    ssrc,
                    sequence: *seq,
                    timestamp: ts,
                    marker: *marker,
                };
                let ok = rx.handle_packet(now, rtp, &bytes).is_ok();
                assert_eq!(ok, bytes.len() >= 4);
                if ok {
                    model.ssrcs.insert(ssrc);
                    model
                        .packets
                        .entry(ssrc)
                        .or_default()
                        .push((ts, u16::from_be_bytes([bytes[2], bytes[3]])));
                }
            }
            Op::Timeout { step_ms } => {
                now += Duration::from_millis(u64::from(*step_ms));
                rx.handle_timeout(now);
            }
            Op::Due => {
                if let Some(t) = rx.poll_timeout() {
                    now = now.max(t);
                    rx.handle_timeout(now);
                    if let Some(next) = rx.poll_timeout() {
                        assert!(next > now, "still due at {now:?} after handle_timeout");
                    }
                }
            }
            Op::Remove { ssrc } => {
                rx.remove_stream(now, u32::from(*ssrc));
                while let Some(d) = rx.poll_event() {
                    model.check(d);
                }
                // A removed stream starts afresh: its old event may be heard again.
                model.closed.remove(&u32::from(*ssrc));
            }
        }
        while let Some(d) = rx.poll_event() {
            let _ = d.duration();
            model.check(d);
        }
    }
    assert_eq!(rx.stats().digits, model.key_ups);
});
