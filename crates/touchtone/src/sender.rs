//! The W3C `RTCDTMFSender`: `insertDTMF`, the tone buffer, playout tasks and `tonechange` events.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::DtmfError;
use crate::packetizer::{EventPacket, TonePacketizer, units};
use crate::tone::{PAUSE, event_code, normalize_tones, static_str};

/// Default tone duration of `insertDTMF`, in ms.
pub const DEFAULT_DURATION_MS: u32 = 100;
/// Default inter-tone gap of `insertDTMF`, in ms.
pub const DEFAULT_GAP_MS: u32 = 70;
/// Tone durations are clamped to this range, in ms.
pub const DURATION_RANGE_MS: (u32, u32) = (40, 6000);
/// Inter-tone gaps are clamped to this range, in ms.
pub const GAP_RANGE_MS: (u32, u32) = (30, 6000);
/// How long a `,` in the tone buffer pauses playout, in ms.
pub const PAUSE_MS: u64 = 2000;
/// Default RFC 4733 volume (-dBm0) of sent events.
pub const DEFAULT_VOLUME: u8 = 10;
/// Default interval between RFC 4733 update packets.
/// Default interval between RFC 4733 update packets, in ms.
pub const PACKET_INTERVAL_MS: u32 = 20;
/// Default interval between RFC 4733 update packets.
pub const DEFAULT_PACKET_INTERVAL: Duration = Duration::from_millis(PACKET_INTERVAL_MS as u64);

/// A `tonechange` event: a tone (or `,`) started playout, or `""` when the buffer ran empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneChange {
    tone: &'static str,
    at: Instant,
}

impl ToneChange {
    /// The tone that started (`"1"`, `"#"`, `","`), or `""` once every tone has played.
    pub fn tone(&self) -> &'static str {
        self.tone
    }

    /// The instant the event was due (its playout task's scheduled time).
    pub fn at(&self) -> Instant {
        self.at
    }
}

/// A DTMF sender with the exact semantics of the W3C `RTCDTMFSender`, emitting RFC 4733 packets.
#[derive(Debug)]
pub struct DtmfSender {
    clock_rate: u32,
    timestamp_rate: u32,
    can_send: bool,
    buffer: VecDeque<char>,
    buffer_str: String,
    duration: Duration,
    gap: Duration,
    task_due: Option<Instant>,
    tone: Option<TonePacketizer>,
    events: VecDeque<ToneChange>,
    packets: VecDeque<EventPacket>,
    origin: Option<(Instant, u32)>,
    volume: u8,
    interval: Duration,
}

impl DtmfSender {
    /// A sender whose telephone-event clock runs at `clock_rate` Hz (8000 with PCMU, 48000 with Opus).
    pub fn new(clock_rate: u32) -> Self {
        DtmfSender {
            clock_rate: clock_rate.max(1),
            timestamp_rate: clock_rate.max(1),
            can_send: false,
            buffer: VecDeque::new(),
            buffer_str: String::new(),
            duration: Duration::from_millis(DEFAULT_DURATION_MS.into()),
            gap: Duration::from_millis(DEFAULT_GAP_MS.into()),
            task_due: None,
            tone: None,
            events: VecDeque::new(),
            packets: VecDeque::new(),
            origin: None,
            volume: DEFAULT_VOLUME,
            interval: DEFAULT_PACKET_INTERVAL,
        }
    }

    /// The telephone-event clock rate in Hz: the unit of the duration field.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Sets the clock the RTP timestamps run on when it is not the duration clock (telephone-event/8000
    /// next to Opus/48000: timestamps on the 48 kHz audio timeline, durations in 8 kHz units).
    pub fn set_timestamp_rate(&mut self, rate: u32) {
        self.timestamp_rate = rate.max(1);
    }

    /// The clock rate of the RTP timestamps in Hz.
    pub fn timestamp_rate(&self) -> u32 {
        self.timestamp_rate
    }

    /// Sets the RFC 4733 volume (-dBm0, 0..=63) of the events sent from now on.
    pub fn set_volume(&mut self, volume: u8) {
        self.volume = volume.min(63);
    }

    /// Sets the interval between update packets (default 20 ms; clamped to 5..=1000 ms).
    pub fn set_packet_interval(&mut self, interval: Duration) {
        self.interval = interval.clamp(Duration::from_millis(5), Duration::from_millis(1000));
    }

    /// Pins the RTP timestamp that corresponds to `origin`; packet timestamps follow the clock from there.
    ///
    /// Without it, the first instant the sender sees maps to timestamp 0.
    pub fn set_timestamp_origin(&mut self, origin: Instant, rtp_timestamp: u32) {
        self.origin = Some((origin, rtp_timestamp));
    }

    /// The W3C `canInsertDTMF` attribute.
    pub fn can_insert_dtmf(&self) -> bool {
        self.can_send
    }

    /// Tells the sender whether DTMF can be sent (connected, not stopped, track, direction, codec).
    ///
    /// Losing the ability stops the tone on the wire at once; a pending playout task then stops silently.
    pub fn set_can_send(&mut self, can_send: bool) {
        self.can_send = can_send;
        if !can_send {
            self.tone = None;
        }
    }

    /// The W3C `toneBuffer` attribute: the tones still to be played, upper-cased.
    pub fn tone_buffer(&self) -> &str {
        &self.buffer_str
    }

    /// The tone duration the next playout task will use.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The inter-tone gap the next playout task will use.
    pub fn inter_tone_gap(&self) -> Duration {
        self.gap
    }

    /// The W3C `insertDTMF(tones, duration, interToneGap)`: replaces the tone buffer and schedules playout.
    pub fn insert_dtmf(
        &mut self,
        now: Instant,
        tones: &str,
        duration_ms: u32,
        inter_tone_gap_ms: u32,
    ) -> Result<(), DtmfError> {
        if !self.can_send {
            return Err(DtmfError::InvalidState);
        }
        let tones = normalize_tones(tones)?;
        self.origin.get_or_insert((now, 0));
        self.buffer = tones.chars().collect();
        self.buffer_str = tones;
        let (dmin, dmax) = DURATION_RANGE_MS;
        let (gmin, gmax) = GAP_RANGE_MS;
        self.duration = Duration::from_millis(duration_ms.clamp(dmin, dmax).into());
        self.gap = Duration::from_millis(inter_tone_gap_ms.clamp(gmin, gmax).into());
        if self.buffer.is_empty() || self.task_due.is_some() {
            return Ok(());
        }
        self.task_due = Some(now);
        Ok(())
    }

    /// When the next playout task (the next `tonechange`) is due, if one is scheduled.
    pub fn next_playout(&self) -> Option<Instant> {
        self.task_due
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let packet = self.tone.as_ref().and_then(TonePacketizer::next_at);
        match (self.task_due, packet) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every playout task and packet send due at or before `now`, each at its own due time.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let task = self.task_due.filter(|t| *t <= now);
            let packet = self
                .tone
                .as_ref()
                .and_then(TonePacketizer::next_at)
                .filter(|t| *t <= now);
            match (task, packet) {
                (Some(t), Some(p)) if p < t => self.send_packet(p),
                (Some(t), _) => self.run_playout_task(t),
                (None, Some(p)) => self.send_packet(p),
                (None, None) => break,
            }
        }
    }

    /// The next `tonechange` event, in order.
    pub fn poll_event(&mut self) -> Option<ToneChange> {
        self.events.pop_front()
    }

    /// The next RFC 4733 packet to put on the wire, in order.
    pub fn poll_packet(&mut self) -> Option<EventPacket> {
        self.packets.pop_front()
    }

    /// Whether a tone covers the media time `now`: audio packets must not be sent for it.
    pub fn is_playing(&self, now: Instant) -> bool {
        self.tone.as_ref().is_some_and(|t| t.covers(now))
    }

    /// Whether nothing is scheduled: no playout task, no packet left to send.
    pub fn is_idle(&self) -> bool {
        self.poll_timeout().is_none()
    }

    fn send_packet(&mut self, at: Instant) {
        if let Some(tone) = self.tone.as_mut() {
            let p = tone.emit(at);
            self.packets.push_back(p);
            if tone.next_at().is_none() {
                self.tone = None;
            }
        }
    }

    fn rtp_timestamp(&self, t: Instant) -> u32 {
        let (origin, base) = self.origin.unwrap_or((t, 0));
        let offset = units(t.saturating_duration_since(origin), self.timestamp_rate);
        base.wrapping_add(offset as u32)
    }

    /// The W3C playout task, run at its scheduled time `t`.
    fn run_playout_task(&mut self, t: Instant) {
        self.task_due = None;
        if !self.can_send {
            return;
        }
        let Some(c) = self.buffer.pop_front() else {
            self.events.push_back(ToneChange { tone: "", at: t });
            return;
        };
        self.buffer_str.remove(0);
        if c == PAUSE {
            self.task_due = Some(t + Duration::from_millis(PAUSE_MS));
        } else if let Some(event) = event_code(c) {
            // The previous event's remaining end copies go out before the new event starts.
            while self.tone.as_ref().is_some_and(|p| p.next_at().is_some()) {
                self.send_packet(t);
            }
            self.tone = Some(TonePacketizer::new(
                event,
                self.volume,
                t,
                self.rtp_timestamp(t),
                self.duration,
                self.interval,
                self.clock_rate,
                self.timestamp_rate,
            ));
            self.task_due = Some(t + self.duration + self.gap);
        }
        if let Some(tone) = static_str(c) {
            self.events.push_back(ToneChange { tone, at: t });
        }
    }
}
