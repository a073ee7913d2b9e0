//! The audio a peer sends: packets of silence, looped file audio or in-band tones, on the RTP clock.

use super::*;

impl Peer {
    /// Fills `pcm` (a packet's time at 8 kHz) with the G.711 audio to send: in-band tones while they
    /// play, else the configured audio; `false` means silence.
    pub(super) fn next_pcm_frame(&mut self, codec: AudioCodec, pcm: &mut [i16]) -> bool {
        if codec.clock_rate() != 8000 {
            return false;
        }
        if let Some(g) = self.generator.as_mut().filter(|g| !g.is_empty()) {
            g.fill(pcm);
            return true;
        }
        let Some(audio) = self.config.audio.as_deref().filter(|a| !a.is_empty()) else {
            return false;
        };
        for s in pcm.iter_mut() {
            *s = audio[self.audio_pos % audio.len()];
            self.audio_pos = (self.audio_pos + 1) % audio.len();
        }
        true
    }

    /// Sends the audio packets due at or before `now`. Audio runs on a 20 ms grid. With a longer packet
    /// time ([`PeerConfig::ptime`], or the remote's `a=ptime`) and no DTMF scheduled, a packet gathers
    /// that many milliseconds and goes when they are over, as a sender that captures audio sends it. When DTMF is scheduled meanwhile,
    /// the audio held goes in 20 ms packets up to the first tone ([`cut_long_packet`](Self::cut_long_packet)):
    /// the audio a receiver decodes before a tone then ends within 20 ms of it, as from a browser.
    /// (Chromium and Firefox played tones up to 55 ms long, and Chromium once dropped one, when longer
    /// packets reached into them.)
    pub(super) fn send_due_audio(&mut self, now: Instant) -> Result<(), RtcError> {
        let step = Ptime::Ms20.duration();
        while let Some(t) = self.next_frame.filter(|t| *t <= now) {
            if let Some(start) = self.long_start.take() {
                // The gathered packet is complete.
                self.send_audio(start, self.send_ptime)?;
            }
            if self.send_ptime != Ptime::Ms20 && self.sender.is_idle() {
                self.long_start = Some(t);
                self.next_frame = Some(t + self.send_ptime.duration());
                continue;
            }
            self.next_frame = Some(t + step);
            // No audio for the media time a telephone-event covers (in-band tones are the audio).
            if self.generator.is_some() || !self.event_overlaps(t) {
                self.send_audio(t, Ptime::Ms20)?;
            }
        }
        Ok(())
    }

    /// Once DTMF is scheduled while a longer packet is being gathered, sends the 20 ms steps of it
    /// that start before `now` and goes back to the 20 ms grid.
    pub(super) fn cut_long_packet(&mut self, now: Instant) -> Result<(), RtcError> {
        let Some(start) = self.long_start.filter(|_| !self.sender.is_idle()) else {
            return Ok(());
        };
        self.long_start = None;
        // In 20 ms packets, so that the audio a receiver decodes before the tone ends within 20 ms of it.
        let step = Ptime::Ms20.duration();
        let mut t = start;
        while t < now && t < start + self.send_ptime.duration() {
            self.send_audio(t, Ptime::Ms20)?;
            t += step;
        }
        self.next_frame = Some(t);
        Ok(())
    }

    /// Sends one audio packet of `ptime` whose media starts at `t`: in-band tones, the configured
    /// audio, or silence.
    fn send_audio(&mut self, t: Instant, ptime: Ptime) -> Result<(), RtcError> {
        let Some(n) = self.negotiated else {
            return Ok(());
        };
        let ts = self.media_time(t);
        if let Some(tx) = self.opus_tx.as_mut() {
            let audio = self
                .config
                .audio
                .as_deref()
                .map(|a| (a, &mut self.audio_pos));
            let packet = tx
                .next_frame(ptime, self.generator.as_mut(), audio)?
                .to_vec();
            return self.write_rtp(n.audio_pt, ts, t, false, &packet);
        }
        let mut pcm = [0i16; 480];
        let pcm = &mut pcm[..ptime.samples(8000)];
        if !self.next_pcm_frame(n.codec, pcm) {
            return self.write_rtp(n.audio_pt, ts, t, false, n.codec.silence(ptime));
        }
        let mut frame = [0u8; 480];
        let frame = &mut frame[..pcm.len()];
        let encode = match n.codec {
            AudioCodec::Pcma => g711::linear_to_alaw,
            _ => g711::linear_to_ulaw,
        };
        for (out, s) in frame.iter_mut().zip(pcm.iter()) {
            *out = encode(*s);
        }
        self.write_rtp(n.audio_pt, ts, t, false, frame)
    }

    /// Whether a telephone-event plays during the 20 ms of media time from `t`: tones last at least
    /// 40 ms, so one that touches the frame covers its first or its last millisecond.
    pub(super) fn event_overlaps(&self, t: Instant) -> bool {
        self.sender.is_playing(t) || self.sender.is_playing(t + Duration::from_millis(19))
    }

    pub(super) fn media_time(&self, t: Instant) -> u32 {
        let rate = self.sender.timestamp_rate();
        let origin = self.audio_origin.unwrap_or(t);
        let units =
            t.saturating_duration_since(origin).as_nanos() * u128::from(rate) / 1_000_000_000;
        units as u32
    }

    pub(super) fn write_rtp(
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
        // Sent by the str0m timeout that ends `handle_timeout`.
        Ok(())
    }
}
