//! A sans-IO WebRTC peer: str0m in RTP mode, one audio m-line, a W3C DTMF sender and an RFC 4733 receiver.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc};
use touchtone::inband::{Detector, ToneGenerator, g711};
use touchtone::{DigitEvent, DtmfReceiver, DtmfSender, EventSet, RtpInfo};

use crate::audio::{OpusReceiver, OpusSender};
use crate::codec::{AudioCodec, Ptime, configure, telephone_event_rates};
use crate::error::{NegotiationError, RtcError};
use crate::event::{
    ConnectionState, DigitInfo, DigitSource, IceConnectionState as IceState, IceGatheringState,
    PeerEvent, SignalingState,
};
use crate::negotiation::{self, OfferedEvents};
use crate::record::{RtpRecord, rtp_header};

mod audio;
mod config;
mod digits;
mod negotiate;

pub use config::{DurationClock, Negotiated, PeerConfig, Transmit, generate_certificate};

/// One WebRTC call: SDP in and out, UDP datagrams in and out, DTMF both ways.
pub struct Peer {
    /// str0m, built once at the first offer or answer (with the answer's codec only).
    rtc: Option<Rtc>,
    /// Our ICE credentials: the ufrag tells a shared UDP port which call a STUN check is for.
    ice: IceCreds,
    /// Further local addresses announced as host candidates (public addresses behind NAT).
    extra_locals: Vec<SocketAddr>,
    config: PeerConfig,
    local: SocketAddr,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    /// The telephone-events of the remote description, with the events both sides support.
    remote_events: Vec<OfferedEvents>,
    negotiated: Option<Negotiated>,
    connected: bool,
    closed: bool,
    sender: DtmfSender,
    /// One RFC 4733 receiver per telephone-event clock rate heard (normally just the codec's).
    receivers: Vec<DtmfReceiver>,
    seq: u64,
    audio_origin: Option<Instant>,
    next_frame: Option<Instant>,
    /// Audio per packet while no DTMF is scheduled: what the remote's SDP asks for (`a=ptime`), else
    /// [`PeerConfig::ptime`].
    send_ptime: Ptime,
    /// Where the longer packet being gathered starts, while [`Peer::send_ptime`] is over 20 ms and no
    /// DTMF is scheduled; it is sent when `next_frame` comes, once its audio is over.
    long_start: Option<Instant>,
    rtc_timeout: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
    packets_in: u64,
    packets_out: u64,
    sends_audio: bool,
    ssrcs_in: Vec<u32>,
    now: Instant,
    generator: Option<ToneGenerator>,
    /// Where the looped audio continues.
    audio_pos: usize,
    detector: Option<Detector>,
    /// The Opus encoder of in-band tones and configured audio, on Opus calls that send either.
    opus_tx: Option<OpusSender>,
    /// The Opus decoder feeding the detector, on Opus calls with in-band detection.
    opus_rx: Option<OpusReceiver>,
    /// The telephone-event key held or last released, and when it was released: in-band reports of the
    /// same press are dropped.
    rfc_recent: Option<(Option<char>, Option<Instant>)>,
    inband_suppressed: bool,
    /// Whether sent and received RTP is kept for [`poll_rtp_record`](Peer::poll_rtp_record).
    record: bool,
    records: VecDeque<RtpRecord>,
    /// The remote address the last accepted datagram came from.
    remote: Option<SocketAddr>,
    /// Addresses that sent STUN with this call's credentials: their DTLS is let in before our own ICE
    /// check of them has succeeded (else the remote's first DTLS flight is lost and setup waits ~1 s).
    stun_sources: Vec<SocketAddr>,
    /// When a datagram this call accepted last arrived; junk does not count.
    last_heard: Instant,
    /// How long the call may go without an accepted datagram before it ends itself.
    idle_timeout: Option<Duration>,
}

/// How many remote addresses that proved the ICE credentials are remembered.
const MAX_STUN_SOURCES: usize = 8;

impl Peer {
    /// A peer whose one UDP socket is bound at `local`.
    pub fn new(now: Instant, local: SocketAddr, config: PeerConfig) -> Result<Self, RtcError> {
        let send_ptime = config.ptime;
        let mut peer = Peer {
            rtc: None,
            ice: IceCreds::new(),
            extra_locals: Vec::new(),
            config,
            local,
            mid: None,
            pending: None,
            remote_events: Vec::new(),
            negotiated: None,
            connected: false,
            closed: false,
            sender: DtmfSender::new(48_000),
            receivers: Vec::new(),
            seq: 1,
            audio_origin: None,
            next_frame: None,
            send_ptime,
            long_start: None,
            rtc_timeout: now,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            packets_in: 0,
            packets_out: 0,
            sends_audio: false,
            ssrcs_in: Vec::new(),
            now,
            generator: None,
            audio_pos: 0,
            detector: None,
            opus_tx: None,
            opus_rx: None,
            rfc_recent: None,
            inband_suppressed: false,
            record: false,
            records: VecDeque::new(),
            remote: None,
            stun_sources: Vec::new(),
            last_heard: now,
            idle_timeout: None,
        };
        peer.events
            .push_back(PeerEvent::IceGathering(IceGatheringState::Complete));
        peer.events
            .push_back(PeerEvent::Candidate(format!("{local} udp host")));
        Ok(peer)
    }

    /// Also announces `addrs` as host candidates (a server's public addresses behind a 1:1 NAT, with the
    /// port it listens on). Call before the offer or answer.
    pub fn add_local_addrs(&mut self, addrs: &[SocketAddr]) {
        for a in addrs {
            if *a != self.local && !self.extra_locals.contains(a) {
                self.extra_locals.push(*a);
                self.events
                    .push_back(PeerEvent::Candidate(format!("{a} udp host")));
            }
        }
    }

    /// Our ICE username fragment (`a=ice-ufrag`): STUN checks for this call carry it first in USERNAME.
    pub fn local_ufrag(&self) -> &str {
        &self.ice.ufrag
    }

    /// The local address a datagram from `source` arrived at: ours of the same IP family.
    fn local_for(&self, source: SocketAddr) -> SocketAddr {
        std::iter::once(self.local)
            .chain(self.extra_locals.iter().copied())
            .find(|a| a.is_ipv4() == source.is_ipv4())
            .unwrap_or(self.local)
    }

    /// str0m, once offer/answer has begun.
    fn rtc(&mut self) -> Result<&mut Rtc, RtcError> {
        self.rtc
            .as_mut()
            .ok_or(RtcError::Negotiation(NegotiationError::NoPendingOffer))
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The W3C DTMF sender of the audio sender.
    pub fn dtmf(&mut self) -> &mut DtmfSender {
        &mut self.sender
    }

    /// Whether DTMF can be sent now (connected, sending direction, telephone-event negotiated).
    pub fn can_insert_dtmf(&self) -> bool {
        self.sender.can_insert_dtmf()
    }

    /// `insertDTMF` on the audio sender. As in the W3C API, the first playout task runs afterwards, at
    /// the next [`handle_timeout`](Self::handle_timeout) (which [`poll_timeout`](Self::poll_timeout) asks
    /// for at once).
    pub fn insert_dtmf(
        &mut self,
        now: Instant,
        tones: &str,
        duration_ms: u32,
        gap_ms: u32,
    ) -> Result<(), touchtone::DtmfError> {
        self.sender.insert_dtmf(now, tones, duration_ms, gap_ms)
    }

    /// Whether the call is connected (ICE and DTLS up).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the call has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// RTP packets received and sent so far.
    pub fn packet_counts(&self) -> (u64, u64) {
        (self.packets_in, self.packets_out)
    }

    /// Feeds a UDP datagram that arrived at `now` from `source`. Runs no timers: call
    /// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) is due.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<(), RtcError> {
        self.now = now;
        let Ok(contents) = data.try_into() else {
            return Ok(()); // Not STUN, DTLS or RTP: nothing for us.
        };
        let destination = self.local_for(source);
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let is_stun = matches!(data.first(), Some(0..=3));
        let Some(rtc) = self.rtc.as_mut() else {
            return Ok(()); // No offer or answer yet: nothing can be for us.
        };
        if !rtc.accepts(&input) {
            // DTLS (and SRTP) from an address that already proved the ICE credentials: the remote's check
            // of us succeeded before ours of it; str0m's own filter would drop its first DTLS flight.
            if is_stun || !self.stun_sources.contains(&source) {
                return Ok(());
            }
        } else if is_stun && !self.stun_sources.contains(&source) {
            if self.stun_sources.len() >= MAX_STUN_SOURCES {
                self.stun_sources.remove(0);
            }
            self.stun_sources.push(source);
        }
        self.last_heard = now;
        self.remote = Some(source);
        // Timers are left to `handle_timeout`: a driver that wakes after a stall reads every queued
        // datagram before any timer (the receiver's end timeout among them) runs.
        let result = match rtc.handle_input(input) {
            Ok(()) => self.drain(),
            Err(e) => Err(e.into()),
        };
        self.fail_if_dead(now);
        result
    }

    /// Ends the call, as `failed`, after `timeout` without a datagram it accepted (ICE, DTLS or SRTP of
    /// this call; junk sent to its port does not count). `None` (the default) never ends it.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout;
    }

    /// When the call last accepted a datagram (its creation until then).
    pub fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Runs everything due at or before `now`: str0m timers, DTMF playout, audio frames, receiver timeouts.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtcError> {
        let result = self.run_timers(now);
        self.fail_if_dead(now);
        result
    }

    fn run_timers(&mut self, now: Instant) -> Result<(), RtcError> {
        self.now = now;
        if self.closed {
            return Ok(());
        }
        if let Some(idle) = self.idle_timeout
            && now >= self.last_heard + idle
        {
            tracing::info!("call {} heard nothing for {idle:?}: ending it", self.local);
            // The remote is gone, not hung up: the connection failed (W3C: ICE consent ran out).
            self.hang_up(now, ConnectionState::Failed);
            return Ok(());
        }
        if let Some(rtc) = self.rtc.as_mut()
            && self.rtc_timeout <= now
        {
            rtc.handle_input(Input::Timeout(now))?;
            self.drain()?;
        }
        self.run_playout(now);
        let packets_out = self.packets_out;
        // DTMF just got scheduled: what a longer packet held so far goes now, before the tone.
        self.cut_long_packet(now)?;
        while let Some(p) = self.sender.poll_packet() {
            if self.generator.is_some() {
                continue; // In-band mode: the tones travel as audio.
            }
            if let Some(pt) = self.negotiated.and_then(|n| n.tele_pt) {
                let bytes = p.payload.to_bytes();
                self.write_rtp(pt, p.timestamp, p.at, p.marker, &bytes)?;
            }
        }
        self.send_due_audio(now)?;
        // What was just written is queued in str0m; its timeout at `now` sends it.
        if let Some(rtc) = self.rtc.as_mut()
            && (self.packets_out != packets_out || self.rtc_timeout <= now)
        {
            rtc.handle_input(Input::Timeout(now))?;
            self.drain()?;
        }
        for r in &mut self.receivers {
            r.handle_timeout(now);
        }
        self.collect_digits();
        Ok(())
    }

    /// Runs only the local sender's due playout tasks, queueing their `tonechange` events; cheap, so a
    /// driver can deliver tone changes before the rest of [`handle_timeout`](Self::handle_timeout).
    pub fn run_playout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.sender.handle_timeout(now);
        while let Some(ev) = self.sender.poll_event() {
            let tone = ev
                .tone()
                .chars()
                .next()
                .filter(|c| *c != touchtone::tone::PAUSE);
            if let (Some(g), Some(c)) = (self.generator.as_mut(), tone) {
                // The gap and pauses are silence: the generator plays only while a tone is due.
                let ms = self.sender.duration().as_millis() as u32;
                let _ = g.push_tone(c, ms);
            }
            self.events.push_back(PeerEvent::ToneChange {
                tone: ev.tone(),
                at: ev.at(),
            });
        }
    }

    /// When the local sender's next `tonechange` is due, if one is scheduled.
    pub fn next_playout(&self) -> Option<Instant> {
        (!self.closed).then(|| self.sender.next_playout()).flatten()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.idle_timeout.map(|t| self.last_heard + t),
            self.rtc.is_some().then_some(self.rtc_timeout),
            self.sender.poll_timeout(),
            self.receivers
                .iter()
                .filter_map(DtmfReceiver::poll_timeout)
                .min(),
            self.next_frame,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Keeps every RTP packet sent and received (decrypted) for [`poll_rtp_record`](Self::poll_rtp_record).
    pub fn set_record_rtp(&mut self, record: bool) {
        self.record = record;
        if !record {
            self.records.clear();
        }
    }

    /// The next RTP packet sent or received, while recording.
    #[must_use]
    pub fn poll_rtp_record(&mut self) -> Option<RtpRecord> {
        self.records.pop_front()
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Hangs up: sends DTLS close_notify and RTCP BYE, then reports `closed`.
    pub fn close(&mut self, now: Instant) {
        self.hang_up(now, ConnectionState::Closed);
    }

    /// Sends DTLS close_notify and RTCP BYE, then ends the call with `last` as its connection state.
    fn hang_up(&mut self, now: Instant, last: ConnectionState) {
        if self.closed {
            return;
        }
        if let Some(Err(e)) = self.rtc.as_mut().map(Rtc::close) {
            tracing::debug!("close: {e}");
        }
        if let Err(e) = self.drain() {
            tracing::debug!("close: {e}");
        }
        self.finish(now, last);
    }

    /// Ends the call as failed when str0m gave up on the connection (it disconnects itself on a DTLS
    /// handshake past its deadline or a certificate that does not match the fingerprint), instead of
    /// leaving it connecting with nothing left to happen.
    fn fail_if_dead(&mut self, now: Instant) {
        if !self.closed && self.rtc.as_ref().is_some_and(|rtc| !rtc.is_alive()) {
            tracing::debug!("call {}: the connection failed", self.local);
            self.finish(now, ConnectionState::Failed);
        }
    }

    /// Ends the call, reporting `last` as its final connection state.
    fn finish(&mut self, now: Instant, last: ConnectionState) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.connected = false;
        self.sender.set_can_send(false);
        for ssrc in std::mem::take(&mut self.ssrcs_in) {
            for r in &mut self.receivers {
                r.remove_stream(now, ssrc);
            }
        }
        self.collect_digits();
        self.events.push_back(PeerEvent::Connection(last));
        self.events.push_back(PeerEvent::Closed);
    }

    /// Drains str0m's output until its next timeout, as str0m requires after every mutation.
    fn drain(&mut self) -> Result<(), RtcError> {
        loop {
            let Some(rtc) = self.rtc.as_mut() else {
                return Ok(());
            };
            match rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.rtc_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    self.transmits.push_back(Transmit {
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Output::Event(e) => self.handle_rtc_event(e),
            }
        }
    }

    fn handle_rtc_event(&mut self, e: Event) {
        match e {
            Event::IceConnectionStateChange(s) => {
                use str0m::IceConnectionState as S;
                let state = match s {
                    S::New => IceState::New,
                    S::Checking => IceState::Checking,
                    S::Connected => IceState::Connected,
                    S::Completed => IceState::Completed,
                    S::Disconnected => IceState::Disconnected,
                };
                self.events.push_back(PeerEvent::IceConnection(state));
                if s == S::Checking {
                    self.events
                        .push_back(PeerEvent::Connection(ConnectionState::Connecting));
                }
            }
            Event::Connected => {
                self.connected = true;
                self.events
                    .push_back(PeerEvent::Connection(ConnectionState::Connected));
                self.update_can_send(self.now);
            }
            Event::RtpPacket(p) => {
                self.packets_in += 1;
                let pt = p.header.payload_type;
                if self.record {
                    let h = &p.header;
                    let mut packet =
                        rtp_header(*pt, h.marker, h.sequence_number, h.timestamp, *h.ssrc).to_vec();
                    packet.extend_from_slice(&p.payload);
                    self.records.push_back(RtpRecord {
                        at: self.now,
                        source: self.remote.unwrap_or(self.local),
                        destination: self.local,
                        packet,
                    });
                }
                let tele_rate = self.rtc.as_ref().and_then(|rtc| {
                    rtc.codec_config()
                        .params()
                        .iter()
                        .find(|c| c.pt() == pt && c.spec().codec == Codec::Tele)
                        .map(|c| c.spec().clock_rate.get())
                });
                if let Some(rate) = tele_rate {
                    let info = RtpInfo {
                        ssrc: *p.header.ssrc,
                        sequence: p.header.sequence_number,
                        timestamp: p.header.timestamp,
                        marker: p.header.marker,
                    };
                    tracing::trace!("telephone-event {info:?} {:02x?}", &p.payload[..]);
                    if !self.ssrcs_in.contains(&info.ssrc) {
                        self.ssrcs_in.push(info.ssrc);
                    }
                    // Durations are read in the clock of the payload type that carried them.
                    let receiver = match self.receivers.iter().position(|r| r.clock_rate() == rate)
                    {
                        Some(i) => &mut self.receivers[i],
                        None => {
                            let mut r = DtmfReceiver::new(rate);
                            // Timestamps run on the audio clock, whatever the event clock.
                            if let Some(n) = self.negotiated {
                                r.set_timestamp_rate(n.codec.clock_rate());
                            }
                            self.receivers.push(r);
                            self.receivers.last_mut().expect("just pushed")
                        }
                    };
                    if let Err(e) = receiver.handle_packet(p.timestamp, info, &p.payload) {
                        tracing::debug!("telephone-event packet dropped: {e}");
                    }
                    self.collect_digits();
                } else if let (Some(det), Some(n)) = (self.detector.as_mut(), self.negotiated)
                    && pt == n.audio_pt
                {
                    if let Some(rx) = self.opus_rx.as_mut() {
                        match rx.decode(p.header.sequence_number, &p.payload) {
                            Ok(pcm) => det.process_i16(pcm),
                            Err(e) => tracing::debug!("Opus packet not decoded: {e}"),
                        }
                        self.collect_inband(*p.header.ssrc);
                        return;
                    }
                    // Any packet time: decode through a fixed buffer, 60 ms at a time.
                    let mut pcm = [0i16; 480];
                    for chunk in p.payload.chunks(pcm.len()) {
                        for (o, b) in pcm.iter_mut().zip(chunk) {
                            *o = match n.codec {
                                AudioCodec::Pcma => g711::alaw_to_linear(*b),
                                _ => g711::ulaw_to_linear(*b),
                            };
                        }
                        det.process_i16(&pcm[..chunk.len()]);
                    }
                    let ssrc = *p.header.ssrc;
                    self.collect_inband(ssrc);
                }
            }
            Event::Closed => self.finish(self.now, ConnectionState::Closed),
            Event::MediaAdded(m) if self.mid.is_none() && m.kind == MediaKind::Audio => {
                self.mid = Some(m.mid);
            }
            other => tracing::trace!("str0m event: {other:?}"),
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("negotiated", &self.negotiated)
            .field("connected", &self.connected)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
