//! The audio a peer sends: packets of silence, looped file audio or in-band tones, on the RTP clock.

use super::*;

impl Peer {
    /// The next packet's time of G.711 audio to send: in-band tones while they play, else the configured
    /// audio; `None` means silence.
    pub(super) fn next_pcm_frame(&mut self, codec: AudioCodec, ptime: Ptime) -> Option<Vec<i16>> {
        if codec.clock_rate() != 8000 {
            return None;
        }
        let mut pcm = vec![0i16; ptime.samples(8000)];
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

    /// Whether a telephone-event plays during any of the `len` of media time from `t`: tones last at
    /// least 40 ms, so looking every 10 ms and at the last millisecond finds each one.
    pub(super) fn event_overlaps(&self, t: Instant, len: Duration) -> bool {
        let step = Duration::from_millis(10);
        let last = t + len - Duration::from_millis(1);
        std::iter::successors(Some(t), |&x| Some(x + step))
            .take_while(|&x| x < last)
            .chain([last])
            .any(|x| self.sender.is_playing(x))
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
