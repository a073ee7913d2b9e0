//! RFC 4733 packetization of one tone: cumulative updates, the end packet sent three times, long-event segments.

use std::time::{Duration, Instant};

use crate::telephone_event::TelephoneEvent;

/// The largest duration one packet (one segment) can carry, in clock units.
pub const MAX_SEGMENT: u64 = 0xFFFF;

/// How many times the final packet of an event (E bit set) is sent.
pub const END_COPIES: u8 = 3;

/// One telephone-event RTP packet that a sender wants on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// When the packet is due to be sent.
    pub at: Instant,
    /// RTP timestamp of the event (segment) start, on the stream's RTP clock.
    pub timestamp: u32,
    /// The RTP marker bit: set on the first packet of an event only.
    pub marker: bool,
    /// The 4-byte RFC 4733 payload.
    pub payload: TelephoneEvent,
}

/// Converts a span of time to clock units at `rate` Hz, rounding to the nearest unit.
pub(crate) fn units(d: Duration, rate: u32) -> u64 {
    let n = d.as_nanos() * u128::from(rate);
    ((n + 500_000_000) / 1_000_000_000) as u64
}

/// The packets of one tone, produced one at a time at their due instants.
#[derive(Debug, Clone)]
pub(crate) struct TonePacketizer {
    event: u8,
    volume: u8,
    start: Instant,
    media_end: Instant,
    start_ts: u32,
    total: u64,
    interval: Duration,
    interval_units: u64,
    /// Duration-clock and RTP-timestamp-clock rates, for where a segment's timestamp lands.
    rate: u32,
    timestamp_rate: u32,
    /// Packets sent so far; the next one is due at `start + interval * sent`.
    sent: u32,
    /// Units covered by segments that are already closed.
    segment_start: u64,
    /// Cumulative units reported so far.
    reported: u64,
    end_sent: u8,
}

impl TonePacketizer {
    /// Plans the packets of a tone of `duration` starting at `start`, whose RTP timestamp is `start_ts`;
    /// durations count at `rate` Hz, timestamps at `timestamp_rate` Hz.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        event: u8,
        volume: u8,
        start: Instant,
        start_ts: u32,
        duration: Duration,
        interval: Duration,
        rate: u32,
        timestamp_rate: u32,
    ) -> Self {
        TonePacketizer {
            event,
            volume,
            start,
            media_end: start + duration,
            start_ts,
            total: units(duration, rate).max(1),
            interval,
            interval_units: units(interval, rate).clamp(1, MAX_SEGMENT),
            rate: rate.max(1),
            timestamp_rate: timestamp_rate.max(1),
            sent: 0,
            segment_start: 0,
            reported: 0,
            end_sent: 0,
        }
    }

    /// When the next packet is due, or `None` once the last end packet went out.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        (self.end_sent < END_COPIES).then(|| self.start + self.interval * self.sent)
    }

    /// The media time the tone covers: audio must not be sent in `[start, end)`.
    pub(crate) fn covers(&self, t: Instant) -> bool {
        t >= self.start && t < self.media_end
    }

    /// Produces the next packet, stamped `at` (its due time, or earlier when flushed).
    pub(crate) fn emit(&mut self, at: Instant) -> EventPacket {
        let first = self.sent == 0;
        self.sent += 1;
        let segment_ts = if self.rate == self.timestamp_rate {
            self.segment_start
        } else {
            let n = u128::from(self.segment_start) * u128::from(self.timestamp_rate);
            (n / u128::from(self.rate)) as u64
        };
        let ts = self.start_ts.wrapping_add(segment_ts as u32);
        let (duration, end) = if self.reported == self.total {
            self.end_sent += 1;
            (self.total - self.segment_start, true)
        } else {
            let target = (u64::from(self.sent) * self.interval_units).min(self.total);
            if target - self.segment_start > MAX_SEGMENT {
                // Close this segment at its maximum; the next packet opens a new one.
                self.reported = self.segment_start + MAX_SEGMENT;
                self.segment_start += MAX_SEGMENT;
                (MAX_SEGMENT, false)
            } else {
                self.reported = target;
                let end = target == self.total;
                if end {
                    self.end_sent = 1;
                }
                (target - self.segment_start, end)
            }
        };
        EventPacket {
            at,
            timestamp: ts,
            marker: first,
            payload: TelephoneEvent {
                event: self.event,
                end,
                volume: self.volume,
                duration: duration as u16,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_packets(ms: u64, rate: u32) -> Vec<EventPacket> {
        let t0 = Instant::now();
        let mut p = TonePacketizer::new(
            5,
            10,
            t0,
            1000,
            Duration::from_millis(ms),
            Duration::from_millis(20),
            rate,
            rate,
        );
        let mut out = vec![];
        while let Some(at) = p.next_at() {
            out.push(p.emit(at));
        }
        out
    }

    #[test]
    fn hundred_ms_at_48k_matches_the_rfc_pattern() {
        let pkts = all_packets(100, 48_000);
        let d: Vec<_> = pkts.iter().map(|p| p.payload.duration).collect();
        assert_eq!(d, [960, 1920, 2880, 3840, 4800, 4800, 4800]);
        let e: Vec<_> = pkts.iter().map(|p| p.payload.end).collect();
        assert_eq!(e, [false, false, false, false, true, true, true]);
        let m: Vec<_> = pkts.iter().map(|p| p.marker).collect();
        assert_eq!(m, [true, false, false, false, false, false, false]);
        assert!(
            pkts.iter()
                .all(|p| p.timestamp == 1000 && p.payload.event == 5)
        );
        let t0 = pkts[0].at;
        let offsets: Vec<_> = pkts.iter().map(|p| (p.at - t0).as_millis()).collect();
        assert_eq!(offsets, [0, 20, 40, 60, 80, 100, 120]);
    }

    #[test]
    fn a_duration_off_the_packet_grid_ends_exactly() {
        let d: Vec<_> = all_packets(50, 8000)
            .iter()
            .map(|p| p.payload.duration)
            .collect();
        assert_eq!(d, [160, 320, 400, 400, 400]);
    }

    #[test]
    fn long_events_are_split_into_segments() {
        // 6000 ms at 48 kHz = 288000 units = 4 full segments of 65535 + 25860.
        let pkts = all_packets(6000, 48_000);
        assert!(pkts.iter().all(|p| p.payload.duration > 0));
        assert_eq!(pkts.iter().filter(|p| p.marker).count(), 1);
        let full: Vec<_> = pkts
            .iter()
            .filter(|p| u64::from(p.payload.duration) == MAX_SEGMENT && !p.payload.end)
            .collect();
        assert_eq!(full.len(), 4);
        for (k, p) in full.iter().enumerate() {
            assert_eq!(p.timestamp, 1000 + (k as u32) * 0xFFFF);
        }
        let ends: Vec<_> = pkts.iter().filter(|p| p.payload.end).collect();
        assert_eq!(ends.len(), 3);
        for e in ends {
            assert_eq!(e.timestamp, 1000 + 4 * 0xFFFF);
            assert_eq!(u64::from(e.payload.duration), 288_000 - 4 * MAX_SEGMENT);
        }
        // Within a segment durations only grow; each new segment starts small again.
        for w in pkts.windows(2) {
            if w[0].timestamp == w[1].timestamp {
                assert!(w[1].payload.duration >= w[0].payload.duration);
            } else {
                assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 0xFFFF);
            }
        }
    }

    #[test]
    fn timestamps_wrap() {
        let t0 = Instant::now();
        let mut p = TonePacketizer::new(
            1,
            10,
            t0,
            u32::MAX - 10,
            Duration::from_millis(3000),
            Duration::from_millis(20),
            48_000,
            48_000,
        );
        let mut seen = vec![];
        while let Some(at) = p.next_at() {
            seen.push(p.emit(at).timestamp);
        }
        assert!(seen.contains(&(u32::MAX - 10)));
        assert!(seen.contains(&(0xFFFFu32 - 11)));
    }
}
