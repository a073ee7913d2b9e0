//! Offer and answer: building str0m with the codecs and telephone-event chosen, and what was settled.

use super::*;
use str0m::rtp::Extension;

/// The header extension id of the MID, as browsers number it.
const MID_EXTENSION_ID: u8 = 4;

impl Peer {
    pub(super) fn build_rtc(
        &self,
        now: Instant,
        codecs: &[AudioCodec],
        rates: &[u32],
    ) -> Result<Rtc, RtcError> {
        // Header extensions: only the MID. A DTMF endpoint estimates no bandwidth, so transport-cc
        // (a feedback packet every 100 ms per call), abs-send-time and the rest only cost packets.
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_extension_map()
            .set_extension(MID_EXTENSION_ID, Extension::RtpMid)
            .set_crypto_provider(crate::dtls::crypto_provider())
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
        self.send_ptime = negotiation::requested_ptime(sdp).unwrap_or(self.config.ptime);
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
        self.send_ptime = negotiation::requested_ptime(sdp).unwrap_or(self.config.ptime);
        let answer = negotiation::restore_event_lists(&answer.to_sdp_string(), &self.remote_events);
        // Longer packets are asked of the remote too, except of Firefox, whose DTMF they break.
        Ok(
            if self.config.ptime != Ptime::Ms20 && !negotiation::is_from_firefox(sdp) {
                negotiation::with_ptime(&answer, self.config.ptime)
            } else {
                answer
            },
        )
    }

    /// What negotiation settled on, once it has.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    pub(super) fn after_negotiation(&mut self, now: Instant) -> Result<(), RtcError> {
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

    pub(super) fn update_can_send(&mut self, now: Instant) {
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
}

/// The telephone-event rates our offers carry.
pub(super) fn offer_rates(config: &PeerConfig) -> Vec<u32> {
    match (
        config.telephone_event,
        config.telephone_event_rates.is_empty(),
    ) {
        (false, _) => Vec::new(),
        (true, true) => telephone_event_rates(&config.codecs),
        (true, false) => config.telephone_event_rates.clone(),
    }
}
