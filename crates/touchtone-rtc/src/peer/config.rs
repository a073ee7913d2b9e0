//! What a peer is configured with and what its negotiation settled on.

use super::*;

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
    /// How much audio each RTP packet sent carries while no DTMF is scheduled: 20 ms as browsers send,
    /// or 40 or 60 ms for fewer packets per call. Around DTMF the audio goes in 20 ms packets, so that a
    /// receiver's playout of each tone keeps its length; telephone-event packets keep their own pace.
    /// The remote's `a=ptime`, when its SDP has one, takes its place. Over 20 ms, an answer asks the
    /// remote for such packets too (`a=ptime`), unless the offer is Firefox's: Firefox's DTMF goes
    /// wrong at a longer ptime.
    pub ptime: Ptime,
    /// The DTLS certificate; `None` makes one for this peer. A server shares one across its calls
    /// ([`generate_certificate`]), which saves making a key per call.
    pub dtls_cert: Option<DtlsCert>,
}

/// A new self-signed DTLS certificate for [`PeerConfig::dtls_cert`].
pub fn generate_certificate() -> Option<DtlsCert> {
    crate::dtls::crypto_provider()
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
            ptime: Ptime::default(),
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
