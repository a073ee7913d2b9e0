//! The audio codecs a peer offers, their telephone-event partners and their silence frames.

use std::fmt;
use std::str::FromStr;

use str0m::format::{Codec, CodecConfig, FormatParams};
use str0m::media::{Frequency, Pt};

/// An audio codec a Touchtone peer can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Opus at 48 kHz (what browsers prefer); DTMF uses telephone-event/48000.
    Opus,
    /// G.711 mu-law at 8 kHz; DTMF uses telephone-event/8000.
    Pcmu,
    /// G.711 A-law at 8 kHz; DTMF uses telephone-event/8000.
    Pcma,
}

/// Payload type of telephone-event/48000 in our offers.
pub const PT_TELE_48K: u8 = 110;
/// Payload type of telephone-event/8000 in our offers.
pub const PT_TELE_8K: u8 = 126;

impl AudioCodec {
    /// The RTP clock rate in Hz.
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Opus => 48_000,
            AudioCodec::Pcmu | AudioCodec::Pcma => 8000,
        }
    }

    /// The str0m codec.
    pub fn str0m_codec(self) -> Codec {
        match self {
            AudioCodec::Opus => Codec::Opus,
            AudioCodec::Pcmu => Codec::PCMU,
            AudioCodec::Pcma => Codec::PCMA,
        }
    }

    /// The codec of a str0m codec, if it is one we speak.
    pub fn from_str0m(codec: Codec) -> Option<Self> {
        match codec {
            Codec::Opus => Some(AudioCodec::Opus),
            Codec::PCMU => Some(AudioCodec::Pcmu),
            Codec::PCMA => Some(AudioCodec::Pcma),
            _ => None,
        }
    }

    /// One 20 ms frame of silence in this codec.
    pub fn silence_frame(self) -> &'static [u8] {
        // Opus: a 20 ms CELT frame that decodes to silence (TOC 0xf8, then 0xff 0xfe).
        static OPUS: [u8; 3] = [0xf8, 0xff, 0xfe];
        static PCMU: [u8; 160] = [0xff; 160];
        static PCMA: [u8; 160] = [0xd5; 160];
        match self {
            AudioCodec::Opus => &OPUS,
            AudioCodec::Pcmu => &PCMU,
            AudioCodec::Pcma => &PCMA,
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AudioCodec::Opus => "opus",
            AudioCodec::Pcmu => "pcmu",
            AudioCodec::Pcma => "pcma",
        })
    }
}

impl FromStr for AudioCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "opus" => Ok(AudioCodec::Opus),
            "pcmu" => Ok(AudioCodec::Pcmu),
            "pcma" => Ok(AudioCodec::Pcma),
            _ => Err(format!("unknown codec {s:?} (expected opus, pcmu or pcma)")),
        }
    }
}

/// Payload type of telephone-event at other clock rates in our offers.
pub const PT_TELE_OTHER: u8 = 125;

/// The telephone-event clock rates an offer of `codecs` carries: one per codec clock rate.
pub fn telephone_event_rates(codecs: &[AudioCodec]) -> Vec<u32> {
    let mut rates: Vec<u32> = Vec::new();
    for c in codecs {
        if !rates.contains(&c.clock_rate()) {
            rates.push(c.clock_rate());
        }
    }
    rates
}

/// Fills a str0m codec config with `codecs` and a telephone-event at each of `telephone_event_rates`.
pub(crate) fn configure(
    config: &mut CodecConfig,
    codecs: &[AudioCodec],
    telephone_event_rates: &[u32],
) {
    config.clear();
    config.enable_opus(codecs.contains(&AudioCodec::Opus), false);
    config.enable_pcmu(codecs.contains(&AudioCodec::Pcmu), false);
    config.enable_pcma(codecs.contains(&AudioCodec::Pcma), false);
    let events = FormatParams {
        telephone_event_max: Some(15),
        ..Default::default()
    };
    let mut other = PT_TELE_OTHER;
    for &rate in telephone_event_rates {
        let Some(freq) = Frequency::new(rate) else {
            continue;
        };
        let pt = match rate {
            48_000 => PT_TELE_48K,
            8000 => PT_TELE_8K,
            _ => {
                other -= 1;
                other + 1
            }
        };
        config.add_config(Pt::from(pt), None, Codec::Tele, freq, None, events);
    }
}
