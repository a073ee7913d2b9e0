//! The audio codecs a peer offers, their telephone-event partners, their packet times and silence.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

    /// One packet of silence in this codec, `ptime` long.
    pub fn silence(self, ptime: Ptime) -> &'static [u8] {
        // Opus: 20 ms CELT frames that decode to silence (TOC config 31, then 0xff 0xfe each); 40 ms is
        // two of them (code 1: two frames of equal size), 60 ms three (code 3, frame count 3, CBR).
        static OPUS_20: [u8; 3] = [0xf8, 0xff, 0xfe];
        static OPUS_40: [u8; 5] = [0xf9, 0xff, 0xfe, 0xff, 0xfe];
        static OPUS_60: [u8; 8] = [0xfb, 0x03, 0xff, 0xfe, 0xff, 0xfe, 0xff, 0xfe];
        static PCMU: [u8; 480] = [0xff; 480];
        static PCMA: [u8; 480] = [0xd5; 480];
        match (self, ptime) {
            (AudioCodec::Opus, Ptime::Ms20) => &OPUS_20,
            (AudioCodec::Opus, Ptime::Ms40) => &OPUS_40,
            (AudioCodec::Opus, Ptime::Ms60) => &OPUS_60,
            (AudioCodec::Pcmu, p) => &PCMU[..p.samples(8000)],
            (AudioCodec::Pcma, p) => &PCMA[..p.samples(8000)],
        }
    }
}

/// How much audio one RTP packet a peer sends carries (SDP `ptime`); receiving takes any length.
///
/// 20 ms is what browsers send. Longer packets cost a server fewer packets per call and second (a
/// third at 60 ms) for a little more delay, which a peer that sends silence or prompts does not notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ptime {
    /// 20 ms per packet.
    #[default]
    Ms20,
    /// 40 ms per packet.
    Ms40,
    /// 60 ms per packet.
    Ms60,
}

impl Ptime {
    /// The audio time one packet carries.
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.millis())
    }

    /// The same in milliseconds.
    pub fn millis(self) -> u64 {
        match self {
            Ptime::Ms20 => 20,
            Ptime::Ms40 => 40,
            Ptime::Ms60 => 60,
        }
    }

    /// Samples in one packet at `clock_rate` Hz.
    pub fn samples(self, clock_rate: u32) -> usize {
        (u64::from(clock_rate) * self.millis() / 1000) as usize
    }
}

impl fmt::Display for Ptime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.millis())
    }
}

impl FromStr for Ptime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().trim_end_matches("ms") {
            "20" => Ok(Ptime::Ms20),
            "40" => Ok(Ptime::Ms40),
            "60" => Ok(Ptime::Ms60),
            _ => Err(format!(
                "unsupported packet time {s:?} (expected 20, 40 or 60 ms)"
            )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_times_read_as_operators_write_them() {
        for (text, want) in [
            ("20", Ptime::Ms20),
            ("40", Ptime::Ms40),
            ("60", Ptime::Ms60),
        ] {
            assert_eq!(text.parse::<Ptime>(), Ok(want));
            assert_eq!(format!("{want}ms").parse::<Ptime>(), Ok(want));
            assert_eq!(want.to_string(), text);
        }
        for bad in ["30", "", "0", "120", "sixty", "-20"] {
            let err = bad.parse::<Ptime>().unwrap_err();
            assert!(err.contains("20, 40 or 60"), "{bad:?}: {err}");
        }
        assert_eq!(Ptime::Ms60.samples(48_000), 2880);
        assert_eq!(Ptime::Ms40.samples(8000), 320);
    }
}
