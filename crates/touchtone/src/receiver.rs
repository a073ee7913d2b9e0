//! RFC 4733 reception: telephone-event packets in, key-down and key-up digit events out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::{PayloadError, RtpError};
use crate::packetizer::MAX_SEGMENT;
use crate::telephone_event::TelephoneEvent;
use crate::tone::tone_for_event;

/// Default time without packets after which an event that never sent its end is ended.
pub const DEFAULT_END_TIMEOUT: Duration = Duration::from_millis(250);

/// How many SSRCs one receiver tracks at once; the least recently heard is dropped beyond this.
pub const MAX_STREAMS: usize = 64;

/// The RTP header fields the receiver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// Synchronisation source of the stream.
    pub ssrc: u32,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp: the start of the event (segment), on the stream's RTP clock.
    pub timestamp: u32,
    /// RTP marker bit.
    pub marker: bool,
}

impl RtpInfo {
    /// Reads an RTP packet (RFC 3550): the header fields, the payload type and the payload (after the CSRC
    /// list and header extension, without padding).
    ///
    /// ```
    /// use touchtone::RtpInfo;
    ///
    /// let packet = [0x80, 0xe5, 0, 7, 0, 0, 0, 160, 0, 0, 0xab, 0xcd, 5, 0x0a, 0, 160];
    /// let (rtp, pt, payload) = RtpInfo::parse(&packet).unwrap();
    /// assert_eq!((rtp.ssrc, rtp.sequence, rtp.timestamp, rtp.marker), (0xabcd, 7, 160, true));
    /// assert_eq!((pt, payload), (101, &[5, 0x0a, 0, 160][..]));
    /// ```
    pub fn parse(packet: &[u8]) -> Result<(RtpInfo, u8, &[u8]), RtpError> {
        let b = packet;
        let len = b.len();
        let Some(fixed) = b.get(..12) else {
            return Err(RtpError::TooShort { len });
        };
        if fixed[0] >> 6 != 2 {
            return Err(RtpError::Version(fixed[0] >> 6));
        }
        let pt = fixed[1] & 0x7f;
        if (72..=76).contains(&pt) {
            return Err(RtpError::Rtcp(fixed[1]));
        }
        let mut off = 12 + 4 * usize::from(fixed[0] & 0x0f);
        if fixed[0] & 0x10 != 0 {
            let Some(ext) = b.get(off + 2..off + 4) else {
                return Err(RtpError::HeaderOverrun { len });
            };
            off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let Some(mut payload) = b.get(off..) else {
            return Err(RtpError::HeaderOverrun { len });
        };
        if fixed[0] & 0x20 != 0 {
            let padding = b[len - 1];
            let Some(keep) = payload.len().checked_sub(usize::from(padding)) else {
                return Err(RtpError::Padding {
                    padding,
                    payload: payload.len(),
                });
            };
            payload = &payload[..keep];
        }
        let info = RtpInfo {
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            marker: b[1] & 0x80 != 0,
        };
        Ok((info, pt, payload))
    }
}

/// Why a key-up was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum EndCause {
    /// A packet with the E bit arrived.
    EndPacket,
    /// A newer event started before the end of this one was seen.
    #[cfg_attr(feature = "serde", serde(rename = "next-event"))]
    NewEvent,
    /// No packet of the event arrived for the end timeout.
    Timeout,
}

/// A key press seen on the wire: key-down at its first packet, key-up with its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitEvent {
    event: u8,
    end: Option<EndCause>,
    duration_units: u64,
    clock_rate: u32,
    at: Instant,
    ssrc: u32,
    timestamp: u32,
    volume: u8,
}

impl DigitEvent {
    /// The RFC 4733 event code (0-15 for DTMF, higher for other telephony events).
    pub fn event(&self) -> u8 {
        self.event
    }

    /// The DTMF tone character, or `None` for event codes beyond 15.
    pub fn tone(&self) -> Option<char> {
        tone_for_event(self.event)
    }

    /// `false` for key-down, `true` for key-up.
    pub fn is_end(&self) -> bool {
        self.end.is_some()
    }

    /// Why the key-up was reported; `None` for key-down.
    pub fn end_cause(&self) -> Option<EndCause> {
        self.end
    }

    /// How long the key was pressed (at key-down: as far as the first packet says).
    pub fn duration(&self) -> Duration {
        let nanos = u128::from(self.duration_units) * 1_000_000_000 / u128::from(self.clock_rate);
        Duration::from_nanos(nanos as u64)
    }

    /// The duration in telephone-event clock units, segments added up.
    pub fn duration_units(&self) -> u64 {
        self.duration_units
    }

    /// When the receiver learnt of it: the packet's arrival, or the due time of an end timeout.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The SSRC of the stream that carried it.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The RTP timestamp of the event's start.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The volume of the latest packet, in -dBm0.
    pub fn volume(&self) -> u8 {
        self.volume
    }
}

/// The event a stream heard most recently.
#[derive(Debug, Clone, Copy)]
struct Latest {
    event: u8,
    start_ts: u32,
    segment_ts: u32,
    segment_duration: u16,
    volume: u8,
    last_packet: Instant,
    ended: bool,
}

impl Latest {
    /// The event's duration in duration-clock units: the closed segments (their timestamp distance,
    /// converted from the RTP clock) plus the open segment's duration field.
    fn total_units(&self, clocks: Clocks) -> u64 {
        clocks.to_duration_units(self.segment_ts.wrapping_sub(self.start_ts))
            + u64::from(self.segment_duration)
    }
}

/// The two clocks of a telephone-event stream: durations count in the telephone-event clock, RTP
/// timestamps run on the stream's clock (the audio codec's when the two differ, as with Opus and
/// telephone-event/8000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clocks {
    duration: u32,
    timestamp: u32,
}

impl Clocks {
    fn to_duration_units(self, ts_units: u32) -> u64 {
        if self.duration == self.timestamp {
            return u64::from(ts_units);
        }
        let n = u128::from(ts_units) * u128::from(self.duration);
        ((n + u128::from(self.timestamp) / 2) / u128::from(self.timestamp)) as u64
    }

    /// Whether a timestamp advance of `ts_units` is where a next segment of a long event starts.
    fn is_segment_step(self, ts_units: i64) -> bool {
        if ts_units <= 0 {
            return false;
        }
        let units = self.to_duration_units(ts_units as u32);
        let rest = units % MAX_SEGMENT;
        if self.duration == self.timestamp {
            return rest == 0;
        }
        // Converted between clocks the step is exact only up to rounding and the sender's packet grid.
        // 20 ms of the duration clock, at most half a segment (clocks over 3.3 MHz have shorter segments).
        let slack = u64::from(self.duration / 50).clamp(1, MAX_SEGMENT / 2);
        units >= MAX_SEGMENT - slack && (rest <= slack || MAX_SEGMENT - rest <= slack)
    }
}

#[derive(Debug, Clone)]
struct Stream {
    ssrc: u32,
    latest: Option<Latest>,
    last_heard: Instant,
}

/// Counters of what the receiver saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Packets handed to the receiver.
    pub packets: u64,
    /// Packets whose payload could not be read.
    pub malformed: u64,
    /// Packets that added nothing: repeats, late packets of finished events, stale events.
    pub ignored: u64,
    /// Key-ups reported.
    pub digits: u64,
}

/// Turns RFC 4733 telephone-event packets into digit events, robust to loss, repeats and reordering.
#[derive(Debug)]
pub struct DtmfReceiver {
    clock_rate: u32,
    timestamp_rate: u32,
    end_timeout: Duration,
    streams: Vec<Stream>,
    events: VecDeque<DigitEvent>,
    stats: ReceiverStats,
}

/// Signed distance from `b` to `a` on the wrapping 32-bit RTP timestamp line.
fn ts_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

impl DtmfReceiver {
    /// A receiver for telephone-event packets whose clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        DtmfReceiver {
            clock_rate: clock_rate.max(1),
            timestamp_rate: clock_rate.max(1),
            end_timeout: DEFAULT_END_TIMEOUT,
            streams: Vec::new(),
            events: VecDeque::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// Sets how long an event may go without packets before it is ended (default 250 ms).
    pub fn set_end_timeout(&mut self, timeout: Duration) {
        self.end_timeout = timeout;
    }

    /// The telephone-event clock rate in Hz: the unit of the duration field.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Sets the clock the RTP timestamps run on when it is not the telephone-event clock (Opus/48000
    /// audio with telephone-event/8000: timestamps on the 48 kHz audio timeline, durations in 8 kHz units).
    pub fn set_timestamp_rate(&mut self, rate: u32) {
        self.timestamp_rate = rate.max(1);
    }

    /// The clock rate of the RTP timestamps in Hz.
    pub fn timestamp_rate(&self) -> u32 {
        self.timestamp_rate
    }

    fn clocks(&self) -> Clocks {
        Clocks {
            duration: self.clock_rate,
            timestamp: self.timestamp_rate,
        }
    }

    /// What the receiver has seen so far.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Feeds one telephone-event RTP packet that arrived at `now`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        rtp: RtpInfo,
        payload: &[u8],
    ) -> Result<(), PayloadError> {
        self.stats.packets += 1;
        let ev = match TelephoneEvent::parse(payload) {
            Ok(ev) => ev,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        let clocks = self.clocks();
        let idx = self.stream_index(now, rtp.ssrc);
        let stream = &mut self.streams[idx];
        stream.last_heard = now;
        let ts = rtp.timestamp;

        if let Some(l) = stream.latest.as_mut() {
            if ts_diff(ts, l.start_ts) < 0 {
                // Older than the latest event: a stale or reordered packet of an earlier one.
                self.stats.ignored += 1;
                return Ok(());
            }
            let from_segment = ts_diff(ts, l.segment_ts);
            let same_key_open = ev.event == l.event && !l.ended;
            let this_segment = from_segment == 0 && same_key_open;
            let next_segment = clocks.is_segment_step(from_segment);
            if from_segment <= 0 && !this_segment {
                // A repeat or late packet of the latest event, or of one of its earlier segments.
                self.stats.ignored += 1;
                return Ok(());
            }
            if this_segment || (same_key_open && next_segment) {
                if from_segment > 0 {
                    l.segment_ts = ts;
                    l.segment_duration = ev.duration;
                } else {
                    l.segment_duration = l.segment_duration.max(ev.duration);
                }
                l.volume = ev.volume;
                l.last_packet = now;
                if ev.end {
                    l.ended = true;
                    let l = *l;
                    self.key_up(rtp.ssrc, &l, now, EndCause::EndPacket);
                }
                return Ok(());
            }
        }
        self.start_event(idx, now, ts, ev)
    }

    /// Ends events whose packets stopped arriving for the end timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.streams.len() {
            let ssrc = self.streams[i].ssrc;
            if let Some(l) = self.streams[i].latest.as_mut() {
                let due = l.last_packet + self.end_timeout;
                if !l.ended && due <= now {
                    l.ended = true;
                    let l = *l;
                    self.key_up(ssrc, &l, due, EndCause::Timeout);
                }
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next, if an event is still open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.streams
            .iter()
            .filter_map(|s| s.latest.filter(|l| !l.ended))
            .map(|l| l.last_packet + self.end_timeout)
            .min()
    }

    /// The next key-down or key-up, in order.
    pub fn poll_event(&mut self) -> Option<DigitEvent> {
        self.events.pop_front()
    }

    /// Drops all state of a stream, reporting key-up for a key still held.
    pub fn remove_stream(&mut self, now: Instant, ssrc: u32) {
        if let Some(i) = self.streams.iter().position(|s| s.ssrc == ssrc) {
            let s = self.streams.swap_remove(i);
            if let Some(l) = s.latest.filter(|l| !l.ended) {
                self.key_up(ssrc, &l, now, EndCause::Timeout);
            }
        }
    }

    fn stream_index(&mut self, now: Instant, ssrc: u32) -> usize {
        if let Some(i) = self.streams.iter().position(|s| s.ssrc == ssrc) {
            return i;
        }
        if self.streams.len() >= MAX_STREAMS {
            let oldest = self
                .streams
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_heard)
                .map(|(i, s)| (i, s.ssrc));
            if let Some((_, old)) = oldest {
                self.remove_stream(now, old);
            }
        }
        self.streams.push(Stream {
            ssrc,
            latest: None,
            last_heard: now,
        });
        self.streams.len() - 1
    }

    fn start_event(
        &mut self,
        idx: usize,
        now: Instant,
        ts: u32,
        ev: TelephoneEvent,
    ) -> Result<(), PayloadError> {
        let ssrc = self.streams[idx].ssrc;
        if let Some(prev) = self.streams[idx].latest.filter(|l| !l.ended) {
            self.key_up(ssrc, &prev, now, EndCause::NewEvent);
        }
        let l = Latest {
            event: ev.event,
            start_ts: ts,
            segment_ts: ts,
            segment_duration: ev.duration,
            volume: ev.volume,
            last_packet: now,
            ended: ev.end,
        };
        self.streams[idx].latest = Some(l);
        self.events.push_back(DigitEvent {
            event: ev.event,
            end: None,
            duration_units: l.total_units(self.clocks()),
            clock_rate: self.clock_rate,
            at: now,
            ssrc,
            timestamp: ts,
            volume: ev.volume,
        });
        if ev.end {
            self.key_up(ssrc, &l, now, EndCause::EndPacket);
        }
        Ok(())
    }

    fn key_up(&mut self, ssrc: u32, l: &Latest, at: Instant, cause: EndCause) {
        self.stats.digits += 1;
        self.events.push_back(DigitEvent {
            event: l.event,
            end: Some(cause),
            duration_units: l.total_units(self.clocks()),
            clock_rate: self.clock_rate,
            at,
            ssrc,
            timestamp: l.start_ts,
            volume: l.volume,
        });
    }
}
