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
use crate::codec::{AudioCodec, configure, telephone_event_rates};
use crate::error::{NegotiationError, RtcError};
use crate::event::{
    ConnectionState, DigitInfo, DigitSource, IceConnectionState as IceState, IceGatheringState,
    PeerEvent, SignalingState,
};
use crate::negotiation::{self, OfferedEvents};
use crate::record::{RtpRecord, rtp_header};

/// An in-band detection this soon after a telephone-event key-up of the same key is the same press.
const DEDUP_WINDOW: Duration = Duration::from_millis(300);

/// Audio frame length: one packet every 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);

/// What a peer offers and accepts.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Audio codecs in order of preference.
    pub codecs: Vec<AudioCodec>,
    /// Whether telephone-event is offered / accepted at all.
    pub telephone_event: bool,
    /// The telephone-event clock rates our offers carry; empty: one per codec clock rate (48000 with
    /// Opus, 8000 with PCMU/PCMA). Answers follow the offer whatever this says.
    pub telephone_event_rates: Vec<u32>,
    /// How durations are sent when the telephone-event clock is not the audio codec's (Opus with
    /// telephone-event/8000).
    pub mixed_clock_durations: DurationClock,
    /// Direction of the audio m-line.
    pub direction: Direction,
    /// Send DTMF as audio tones (in the G.711 or Opus stream) instead of telephone-event packets.
    pub inband_send: bool,
    /// Run the in-band detector on received audio (G.711 at 8 kHz, Opus decoded at 48 kHz).
    pub inband_detect: bool,
    /// Audio to send, looped: 8 kHz mono 16-bit PCM (upsampled to 48 kHz and encoded on Opus calls).
    pub audio: Option<Arc<[i16]>>,
    /// The DTLS certificate; `None` makes one for this peer. A server shares one across its calls
    /// ([`generate_certificate`]), which saves making a key per call.
    pub dtls_cert: Option<DtlsCert>,
}

/// A new self-signed DTLS certificate for [`PeerConfig::dtls_cert`].
pub fn generate_certificate() -> Option<DtlsCert> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            codecs: vec![AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma],
            telephone_event: true,
            telephone_event_rates: Vec::new(),
            mixed_clock_durations: DurationClock::default(),
            direction: Direction::SendRecv,
            inband_send: false,
            inband_detect: false,
            audio: None,
            dtls_cert: None,
        }
    }
}

/// The clock of the duration field when telephone-event runs on another clock than the audio codec.
///
/// Timestamps always follow the audio stream's clock (one SSRC, one timeline). Receiving always reads
/// durations in the telephone-event clock, which gives the asked length for every sender seen: RFC 4733
/// senders and libwebrtc (Chrome, Firefox), whose events at 8000 next to Opus carry 48 kHz ticks but end
/// after a sixth of the asked length. See `docs/interop.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DurationClock {
    /// Send durations in the audio codec's clock: what libwebrtc receivers (Chrome, Firefox) play out, so a
    /// browser hears each tone for as long as asked.
    #[default]
    Audio,
    /// Send durations in the telephone-event clock, as RFC 4733 reads the SDP (gateways that follow the
    /// rtpmap); browsers then play tones a sixth as long with Opus.
    Event,
}

/// What negotiation settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The audio codec both sides speak.
    pub codec: AudioCodec,
    /// Its payload type.
    pub audio_pt: Pt,
    /// The telephone-event payload type (at the codec's clock rate when offered), if one was agreed.
    pub tele_pt: Option<Pt>,
    /// The clock rate of that telephone-event.
    pub tele_clock_rate: Option<u32>,
    /// The events both sides support on it.
    pub tele_events: EventSet,
}

/// A UDP datagram the peer wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Its bytes.
    pub contents: Vec<u8>,
}

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

    fn build_rtc(
        &self,
        now: Instant,
        codecs: &[AudioCodec],
        rates: &[u32],
    ) -> Result<Rtc, RtcError> {
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .set_local_ice_credentials(self.ice.clone());
        if let Some(cert) = &self.config.dtls_cert {
            config = config.set_dtls_cert(cert.clone());
        }
        configure(config.codec_config(), codecs, rates);
        let mut rtc = config.build(now);
        for addr in std::iter::once(self.local).chain(self.extra_locals.iter().copied()) {
            rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        }
        Ok(rtc)
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

    /// Creates an SDP offer with one audio m-line (non-trickle: candidates included).
    pub fn create_offer(&mut self) -> Result<String, RtcError> {
        if self.rtc.is_none() {
            let rates = offer_rates(&self.config);
            self.rtc = Some(self.build_rtc(self.now, &self.config.codecs.clone(), &rates)?);
        }
        let direction = self.config.direction;
        let mut change = self.rtc()?.sdp_api();
        let mid = change.add_media(MediaKind::Audio, direction, None, None, None);
        let (offer, pending) = change.apply().ok_or(NegotiationError::NothingToOffer)?;
        self.mid = Some(mid);
        self.pending = Some(pending);
        self.drain()?;
        self.events
            .push_back(PeerEvent::Signaling(SignalingState::HaveLocalOffer));
        Ok(offer.to_sdp_string())
    }

    /// Applies the remote answer to our offer.
    pub fn accept_answer(&mut self, now: Instant, sdp: &str) -> Result<(), RtcError> {
        let pending = self
            .pending
            .take()
            .ok_or(NegotiationError::NoPendingOffer)?;
        let normalized = negotiation::normalize(sdp);
        let answer = SdpAnswer::from_sdp_string(&normalized.sdp)?;
        self.remote_events = normalized.events;
        self.rtc()?.sdp_api().accept_answer(pending, answer)?;
        self.events
            .push_back(PeerEvent::Signaling(SignalingState::Stable));
        self.after_negotiation(now)
    }

    /// Answers a remote offer with the offer's first codec we speak and one telephone-event: at the
    /// codec's clock rate when offered, else at 8000, else the first offered (see [`negotiation`]).
    pub fn accept_offer(&mut self, now: Instant, sdp: &str) -> Result<String, RtcError> {
        let normalized = negotiation::normalize(sdp);
        for pt in &normalized.removed {
            tracing::debug!("telephone-event {pt} declined: its event list has no DTMF event");
        }
        let offer = SdpOffer::from_sdp_string(&normalized.sdp)?;
        let audio = offer
            .media_lines
            .iter()
            .find(|m| m.typ.to_string() == "audio" && !m.disabled)
            .ok_or(NegotiationError::NoAudio)?;
        self.mid = Some(audio.mid());
        // Answer with the offer's first codec we speak, and telephone-event at its clock rate only.
        let params = audio.rtp_params();
        let chosen = audio.pts.iter().find_map(|pt| {
            let p = params.iter().find(|p| p.pt() == *pt)?;
            AudioCodec::from_str0m(p.spec().codec).filter(|c| self.config.codecs.contains(c))
        });
        let Some(chosen) = chosen else {
            return Err(NegotiationError::NoCommonCodec.into());
        };
        let te = negotiation::choose(&normalized.events, chosen.clock_rate())
            .filter(|_| self.config.telephone_event);
        let rates: Vec<u32> = te.iter().map(|t| t.clock_rate).collect();
        self.rtc = Some(self.build_rtc(now, &[chosen], &rates)?);
        self.remote_events = normalized.events;
        self.events
            .push_back(PeerEvent::Signaling(SignalingState::HaveRemoteOffer));
        let answer = self.rtc()?.sdp_api().accept_offer(offer)?;
        self.events
            .push_back(PeerEvent::Signaling(SignalingState::Stable));
        self.after_negotiation(now)?;
        Ok(negotiation::restore_event_lists(
            &answer.to_sdp_string(),
            &self.remote_events,
        ))
    }

    /// What negotiation settled on, once it has.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
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
        rtc.handle_input(input)?;
        // Timers are left to `handle_timeout`: a driver that wakes after a stall reads every queued
        // datagram before any timer (the receiver's end timeout among them) runs.
        self.drain()
    }

    /// Ends the call after `timeout` without a datagram it accepted (ICE, DTLS or SRTP of this call;
    /// junk sent to its port does not count). `None` (the default) never ends it.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout;
    }

    /// When the call last accepted a datagram (its creation until then).
    pub fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Runs everything due at or before `now`: str0m timers, DTMF playout, audio frames, receiver timeouts.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtcError> {
        self.now = now;
        if self.closed {
            return Ok(());
        }
        if let Some(idle) = self.idle_timeout
            && now >= self.last_heard + idle
        {
            tracing::info!("call {} heard nothing for {idle:?}: ending it", self.local);
            self.close(now);
            return Ok(());
        }
        if let Some(rtc) = self.rtc.as_mut()
            && self.rtc_timeout <= now
        {
            rtc.handle_input(Input::Timeout(now))?;
            self.drain()?;
        }
        self.run_playout(now);
        while let Some(p) = self.sender.poll_packet() {
            if self.generator.is_some() {
                continue; // In-band mode: the tones travel as audio.
            }
            if let Some(pt) = self.negotiated.and_then(|n| n.tele_pt) {
                let bytes = p.payload.to_bytes();
                self.write_rtp(pt, p.timestamp, p.at, p.marker, &bytes)?;
            }
        }
        while let Some(t) = self.next_frame.filter(|t| *t <= now) {
            self.next_frame = Some(t + FRAME);
            // No audio for the media time a telephone-event covers (in-band tones are the audio).
            let busy = self.generator.is_none()
                && (self.sender.is_playing(t)
                    || self.sender.is_playing(t + FRAME - Duration::from_millis(1)));
            if let (false, Some(n)) = (busy, self.negotiated) {
                let ts = self.media_time(t);
                if let Some(tx) = self.opus_tx.as_mut() {
                    let audio = self
                        .config
                        .audio
                        .as_deref()
                        .map(|a| (a, &mut self.audio_pos));
                    let packet = tx.next_frame(self.generator.as_mut(), audio)?.to_vec();
                    self.write_rtp(n.audio_pt, ts, t, false, &packet)?;
                    continue;
                }
                match self.next_pcm_frame(n.codec) {
                    Some(pcm) => {
                        let frame: Vec<u8> = match n.codec {
                            AudioCodec::Pcma => {
                                pcm.iter().map(|s| g711::linear_to_alaw(*s)).collect()
                            }
                            _ => pcm.iter().map(|s| g711::linear_to_ulaw(*s)).collect(),
                        };
                        self.write_rtp(n.audio_pt, ts, t, false, &frame)?;
                    }
                    None => self.write_rtp(n.audio_pt, ts, t, false, n.codec.silence_frame())?,
                }
            }
        }
        for r in &mut self.receivers {
            r.handle_timeout(now);
        }
        self.collect_digits();
        Ok(())
    }

    /// The next 20 ms of G.711 audio to send: in-band tones while they play, else the configured audio;
    /// `None` means silence.
    fn next_pcm_frame(&mut self, codec: AudioCodec) -> Option<[i16; 160]> {
        if codec.clock_rate() != 8000 {
            return None;
        }
        let mut pcm = [0i16; 160];
        if let Some(g) = self.generator.as_mut().filter(|g| !g.is_empty()) {
            g.fill(&mut pcm);
            return Some(pcm);
        }
        let audio = self.config.audio.as_deref().filter(|a| !a.is_empty())?;
        for s in pcm.iter_mut() {
            *s = audio[self.audio_pos % audio.len()];
            self.audio_pos = (self.audio_pos + 1) % audio.len();
        }
        Some(pcm)
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
        if self.closed {
            return;
        }
        if let Some(Err(e)) = self.rtc.as_mut().map(Rtc::close) {
            tracing::debug!("close: {e}");
        }
        if let Err(e) = self.drain() {
            tracing::debug!("close: {e}");
        }
        self.finish(now);
    }

    fn finish(&mut self, now: Instant) {
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
        self.events
            .push_back(PeerEvent::Connection(ConnectionState::Closed));
        self.events.push_back(PeerEvent::Closed);
    }

    fn media_time(&self, t: Instant) -> u32 {
        let rate = self.sender.timestamp_rate();
        let origin = self.audio_origin.unwrap_or(t);
        let units =
            t.saturating_duration_since(origin).as_nanos() * u128::from(rate) / 1_000_000_000;
        units as u32
    }

    fn write_rtp(
        &mut self,
        pt: Pt,
        ts: u32,
        wallclock: Instant,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), RtcError> {
        let Some(mid) = self.mid else {
            return Ok(());
        };
        let seq = self.seq;
        let Some(rtc) = self.rtc.as_mut() else {
            return Ok(());
        };
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return Ok(());
        };
        if self.record {
            let mut packet = rtp_header(*pt, marker, seq as u16, ts, *stream.ssrc()).to_vec();
            packet.extend_from_slice(payload);
            self.records.push_back(RtpRecord {
                at: wallclock,
                source: self.local,
                destination: self.remote.unwrap_or(self.local),
                packet,
            });
        }
        stream.write_rtp(
            RtpWrite::new(pt, seq.into(), ts, wallclock, payload.to_vec()).marker(marker),
        );
        self.seq += 1;
        self.packets_out += 1;
        self.drain()
    }

    fn after_negotiation(&mut self, now: Instant) -> Result<(), RtcError> {
        self.now = now;
        self.drain()?;
        let Some(rtc) = self.rtc.as_mut() else {
            return Err(NegotiationError::NoPendingOffer.into());
        };
        let Some(media) = self.mid.and_then(|m| rtc.media(m)) else {
            return Err(NegotiationError::NoAudio.into());
        };
        let direction = media.direction();
        let params: Vec<_> = rtc.codec_config().params().to_vec();
        let remote = media.remote_pts().to_vec();
        let spec_of = |pt: &Pt| params.iter().find(|p| p.pt() == *pt).map(|p| p.spec());
        let chosen = remote.iter().find_map(|pt| {
            let spec = spec_of(pt)?;
            AudioCodec::from_str0m(spec.codec).map(|c| (c, *pt))
        });
        let Some((codec, audio_pt)) = chosen else {
            return Err(NegotiationError::NoCommonCodec.into());
        };
        let teles: Vec<OfferedEvents> = remote
            .iter()
            .filter_map(|pt| {
                let spec = spec_of(pt).filter(|s| s.codec == Codec::Tele)?;
                let known = self.remote_events.iter().find(|e| e.pt == **pt);
                Some(OfferedEvents {
                    pt: **pt,
                    clock_rate: spec.clock_rate.get(),
                    remote: known.map_or(EventSet::DTMF, |e| e.remote),
                    common: known.map_or(EventSet::DTMF, |e| e.common),
                })
            })
            .collect();
        let tele =
            negotiation::choose(&teles, codec.clock_rate()).filter(|_| self.config.telephone_event);
        let negotiated = Negotiated {
            codec,
            audio_pt,
            tele_pt: tele.map(|t| Pt::from(t.pt)),
            tele_clock_rate: tele.map(|t| t.clock_rate),
            tele_events: tele.map_or(EventSet::EMPTY, |t| t.common),
        };
        self.negotiated = Some(negotiated);
        self.events.push_back(PeerEvent::Negotiated(negotiated));
        let rate = codec.clock_rate();
        // Timestamps follow the audio clock; durations the telephone-event clock unless configured.
        let duration_rate = match (
            tele.map(|t| t.clock_rate),
            self.config.mixed_clock_durations,
        ) {
            (Some(te), DurationClock::Event) => te,
            _ => rate,
        };
        self.sender = DtmfSender::new(duration_rate);
        self.sender.set_timestamp_rate(rate);
        self.receivers.clear();
        self.audio_origin = Some(now);
        self.sender.set_timestamp_origin(now, 0);
        self.sends_audio = matches!(direction, Direction::SendRecv | Direction::SendOnly);
        self.generator = self
            .config
            .inband_send
            .then(|| ToneGenerator::new(rate).ok())
            .flatten();
        self.detector = self.config.inband_detect.then(|| Detector::new(rate));
        let opus = codec == AudioCodec::Opus;
        let sends = self.config.inband_send || self.config.audio.is_some();
        self.opus_tx = (opus && sends).then(OpusSender::new).transpose()?;
        self.opus_rx = (opus && self.config.inband_detect)
            .then(OpusReceiver::new)
            .transpose()?;
        self.update_can_send(now);
        Ok(())
    }

    fn update_can_send(&mut self, now: Instant) {
        let can = self.connected
            && !self.closed
            && self.sends_audio
            && (self.generator.is_some() || self.negotiated.is_some_and(|n| n.tele_pt.is_some()));
        if can != self.sender.can_insert_dtmf() {
            self.sender.set_can_send(can);
        }
        if self.connected && self.sends_audio && self.next_frame.is_none() {
            self.next_frame = Some(now);
        }
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
                        contents: t.contents.to_vec(),
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
            Event::Closed => self.finish(self.now),
            Event::MediaAdded(m) if self.mid.is_none() && m.kind == MediaKind::Audio => {
                self.mid = Some(m.mid);
            }
            other => tracing::trace!("str0m event: {other:?}"),
        }
    }

    fn collect_digits(&mut self) {
        for i in 0..self.receivers.len() {
            while let Some(d) = self.receivers[i].poll_event() {
                let released = d.is_end().then_some(d.at());
                self.rfc_recent = Some((d.tone(), released));
                self.events.push_back(digit_event(&d, DigitSource::Rfc4733));
            }
        }
    }

    /// Reports in-band detections, except those of a key telephone-event already reported.
    fn collect_inband(&mut self, ssrc: u32) {
        let Some(det) = self.detector.as_mut() else {
            return;
        };
        while let Some(d) = det.poll_event() {
            if !d.end {
                self.inband_suppressed = match self.rfc_recent {
                    Some((tone, None)) => tone == Some(d.digit),
                    Some((tone, Some(up))) => {
                        tone == Some(d.digit)
                            && self.now.saturating_duration_since(up) < DEDUP_WINDOW
                    }
                    None => false,
                };
            }
            if self.inband_suppressed {
                continue;
            }
            let info = DigitInfo {
                event: touchtone::tone::event_code(d.digit).unwrap_or(0),
                tone: Some(d.digit),
                duration: Duration::from_secs_f64(d.duration_ms().max(0.0) / 1000.0),
                at: self.now,
                ssrc: Some(ssrc),
                source: DigitSource::Inband,
                end_cause: None,
            };
            self.events.push_back(if d.end {
                PeerEvent::KeyUp(info)
            } else {
                PeerEvent::KeyDown(info)
            });
        }
    }
}

/// The telephone-event rates our offers carry.
fn offer_rates(config: &PeerConfig) -> Vec<u32> {
    match (
        config.telephone_event,
        config.telephone_event_rates.is_empty(),
    ) {
        (false, _) => Vec::new(),
        (true, true) => telephone_event_rates(&config.codecs),
        (true, false) => config.telephone_event_rates.clone(),
    }
}

fn digit_event(d: &DigitEvent, source: DigitSource) -> PeerEvent {
    let info = DigitInfo {
        event: d.event(),
        tone: d.tone(),
        duration: d.duration(),
        at: d.at(),
        ssrc: Some(d.ssrc()),
        source,
        end_cause: d.end_cause(),
    };
    if d.is_end() {
        PeerEvent::KeyUp(info)
    } else {
        PeerEvent::KeyDown(info)
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
