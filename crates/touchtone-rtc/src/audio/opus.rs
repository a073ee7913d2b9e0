//! Opus at 48 kHz mono for in-band DTMF: an encoder for the tones and audio a peer sends, a decoder that
//! turns received packets into the samples the in-band detector reads.
//!
//! The codec is libopus (Debian's `libopus-dev`, found with pkg-config) through the `opus` crate: the
//! reference implementation every browser runs, decoding a 20 ms packet in a few microseconds, and no C
//! to compile when the system library is present. Pure-Rust decoders exist (`opus-decoder`, `opus-rs`,
//! `mousiki`), all at 0.1 and a few months old; a detector that must not miss a key press on whatever a
//! browser or gateway sends is better served by the decoder those senders are tested against.

use std::time::Duration;

use ::opus::{Application, Bitrate, Channels, Decoder, Encoder};
use thiserror::Error;
use touchtone::inband::ToneGenerator;

use crate::codec::Ptime;

/// Samples in one 20 ms frame at 48 kHz.
pub const OPUS_FRAME: usize = 960;

/// The longest frame an Opus packet holds, 120 ms at 48 kHz.
const MAX_PACKET_SAMPLES: usize = 5760;

/// Lost packets filled in by the decoder's concealment when a sequence gap is this small; larger gaps
/// (a stream restart, a long outage) are not bridged.
const MAX_CONCEALED: u16 = 5;

/// The bitrate the sender encodes at: what browsers use for mono voice.
pub const OPUS_BITRATE: i32 = 32_000;

/// Why Opus could not encode or decode.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpusError {
    /// libopus refused (a damaged packet, an invalid setting).
    #[error("Opus: {0}")]
    Codec(#[from] ::opus::Error),
}

/// Encodes packets (20 ms unless asked otherwise) of 48 kHz mono audio for sending: DTMF tones from a generator while they play,
/// else the configured 8 kHz audio (upsampled), else silence, one continuous stream for the encoder.
pub struct OpusSender {
    encoder: Encoder,
    upsampler: Upsampler,
    pcm: Vec<i16>,
    out: Vec<u8>,
}

impl std::fmt::Debug for OpusSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusSender").finish_non_exhaustive()
    }
}

impl OpusSender {
    /// An encoder at 48 kHz mono, [`OPUS_BITRATE`], tuned for voice.
    pub fn new() -> Result<Self, OpusError> {
        Self::with_bitrate(OPUS_BITRATE)
    }

    /// An encoder at 48 kHz mono and `bitrate` bits per second.
    pub fn with_bitrate(bitrate: i32) -> Result<Self, OpusError> {
        let mut encoder = Encoder::new(48_000, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::Bits(bitrate))?;
        Ok(OpusSender {
            encoder,
            upsampler: Upsampler::new(),
            pcm: vec![0; Ptime::Ms60.samples(48_000)],
            out: vec![0; 1500],
        })
    }

    /// Encodes one frame of 48 kHz samples (2.5, 5, 10, 20, 40 or 60 ms: libopus refuses other lengths).
    pub fn encode(&mut self, pcm: &[i16]) -> Result<&[u8], OpusError> {
        let n = self.encoder.encode(pcm, &mut self.out)?;
        Ok(&self.out[..n])
    }

    /// The next packet, `ptime` long: `tones` (a 48 kHz generator) while it has anything queued, else
    /// `audio` (8 kHz, looped from `*pos`), else silence.
    pub fn next_frame(
        &mut self,
        ptime: Ptime,
        tones: Option<&mut ToneGenerator>,
        audio: Option<(&[i16], &mut usize)>,
    ) -> Result<&[u8], OpusError> {
        let pcm = &mut self.pcm[..ptime.samples(48_000)];
        match (tones.filter(|g| !g.is_empty()), audio) {
            (Some(g), _) => {
                g.fill(pcm);
            }
            (None, Some((audio, pos))) if !audio.is_empty() => {
                for frame in pcm.chunks_mut(OPUS_FRAME) {
                    let mut narrow = [0i16; OPUS_FRAME / 6];
                    for s in narrow.iter_mut() {
                        *pos %= audio.len();
                        *s = audio[*pos];
                        *pos += 1;
                    }
                    self.upsampler.process(&narrow, frame);
                }
            }
            _ => pcm.fill(0),
        }
        let n = self.encoder.encode(pcm, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

/// Decodes received Opus packets to 48 kHz mono 16-bit samples, in sequence-number order: late and
/// duplicated packets are skipped, and a few lost ones are concealed so that a tone keeps its length.
pub struct OpusReceiver {
    decoder: Decoder,
    pcm: Vec<i16>,
    last_seq: Option<u16>,
    last_len: usize,
}

impl std::fmt::Debug for OpusReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusReceiver")
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl OpusReceiver {
    /// A decoder at 48 kHz mono (a stereo stream is mixed down by libopus).
    pub fn new() -> Result<Self, OpusError> {
        Ok(OpusReceiver {
            decoder: Decoder::new(48_000, Channels::Mono)?,
            pcm: vec![0; MAX_PACKET_SAMPLES],
            last_seq: None,
            last_len: OPUS_FRAME,
        })
    }

    /// The samples of the packet with RTP sequence number `seq`, after those concealing lost packets
    /// just before it; empty for a late or repeated packet.
    pub fn decode(&mut self, seq: u16, payload: &[u8]) -> Result<&[i16], OpusError> {
        let gap = self.last_seq.map_or(1, |last| seq.wrapping_sub(last));
        if gap == 0 || gap > u16::MAX / 2 {
            return Ok(&[]); // A duplicate, or older than what was decoded.
        }
        self.last_seq = Some(seq);
        let lost = usize::from(gap - 1);
        let concealed = if gap - 1 <= MAX_CONCEALED { lost } else { 0 };
        let want = (concealed + 1) * self.last_len.max(MAX_PACKET_SAMPLES);
        if self.pcm.len() < want {
            self.pcm.resize(want, 0);
        }
        let mut at = 0;
        for _ in 0..concealed {
            let len = self.last_len;
            at += self
                .decoder
                .decode(&[], &mut self.pcm[at..at + len], false)?;
        }
        let n = self.decoder.decode(payload, &mut self.pcm[at..], false)?;
        if n > 0 {
            self.last_len = n;
        }
        Ok(&self.pcm[..at + n])
    }

    /// The duration of the last decoded packet.
    pub fn packet_duration(&self) -> Duration {
        Duration::from_micros(self.last_len as u64 * 1_000_000 / 48_000)
    }
}

/// Taps of the 8 kHz to 48 kHz interpolation filter per output phase.
const TAPS_PER_PHASE: usize = 32;

/// Turns 8 kHz audio into 48 kHz (six times the samples): zero-stuffing and a low-pass at 3.6 kHz
/// (Blackman-windowed sinc, 192 taps as six polyphase branches), so the spectral images of the narrowband
/// audio above 4 kHz do not reach the encoder.
#[derive(Debug, Clone)]
pub struct Upsampler {
    /// `phases[p][k]`: the tap applied to the k-th most recent input for output phase p.
    phases: [[f32; TAPS_PER_PHASE]; 6],
    /// The last inputs, most recent last.
    history: [f32; TAPS_PER_PHASE],
}

impl Default for Upsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler {
    /// A filter with empty history.
    pub fn new() -> Self {
        let len = 6 * TAPS_PER_PHASE;
        let cutoff = 3600.0 / 48_000.0;
        let mid = (len - 1) as f64 / 2.0;
        let taps: Vec<f64> = (0..len)
            .map(|i| {
                let x = i as f64 - mid;
                let sinc = if x == 0.0 {
                    2.0 * cutoff
                } else {
                    (std::f64::consts::TAU * cutoff * x).sin() / (std::f64::consts::PI * x)
                };
                let w = std::f64::consts::TAU * i as f64 / (len - 1) as f64;
                sinc * (0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos())
            })
            .collect();
        // Unity gain at DC for each phase's share: the taps sum to 1, times 6 for the zero-stuffing.
        let sum: f64 = taps.iter().sum();
        let mut phases = [[0f32; TAPS_PER_PHASE]; 6];
        for (i, t) in taps.iter().enumerate() {
            phases[i % 6][i / 6] = (t * 6.0 / sum) as f32;
        }
        Upsampler {
            phases,
            history: [0.0; TAPS_PER_PHASE],
        }
    }

    /// Upsamples `input` into `output`, which must hold six times as many samples.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) {
        assert_eq!(
            output.len(),
            input.len() * 6,
            "the output holds 6 samples per input"
        );
        for (x, out) in input.iter().zip(output.chunks_exact_mut(6)) {
            self.history.copy_within(1.., 0);
            self.history[TAPS_PER_PHASE - 1] = f32::from(*x);
            for (o, taps) in out.iter_mut().zip(&self.phases) {
                // Tap k of a phase weighs the input k samples back.
                let v: f32 = taps
                    .iter()
                    .zip(self.history.iter().rev())
                    .map(|(t, h)| t * h)
                    .sum();
                *o = v.round().clamp(-32768.0, 32767.0) as i16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use touchtone::inband::Detector;

    /// Tones through the encoder and decoder at the bitrates browsers and gateways use.
    #[test]
    fn tones_survive_an_opus_round_trip() {
        for bitrate in [16_000, 24_000, 32_000, 64_000] {
            let mut g = ToneGenerator::new(48_000).unwrap();
            g.push_tones("123456789*0#ABCD", 60, 60).unwrap();
            let mut tx = OpusSender::with_bitrate(bitrate).unwrap();
            let mut rx = OpusReceiver::new().unwrap();
            let mut out = Vec::new();
            for seq in 0..120u16 {
                let packet = tx
                    .next_frame(Ptime::Ms20, Some(&mut g), None)
                    .unwrap()
                    .to_vec();
                out.extend_from_slice(rx.decode(seq, &packet).unwrap());
            }
            assert_eq!(out.len(), 120 * OPUS_FRAME);
            assert_eq!(
                Detector::new(48_000).digits_in_i16(&out),
                "123456789*0#ABCD",
                "{bitrate} bit/s"
            );
        }
    }

    /// Longer packets carry the same tones and file audio, in one packet per `ptime`.
    #[test]
    fn longer_packets_carry_tones_and_audio_whole() {
        for ptime in [Ptime::Ms40, Ptime::Ms60] {
            let samples = ptime.samples(48_000);
            let mut g = ToneGenerator::new(48_000).unwrap();
            g.push_tones("1470", 100, 70).unwrap();
            let mut tx = OpusSender::new().unwrap();
            let mut rx = OpusReceiver::new().unwrap();
            let mut out = Vec::new();
            for seq in 0..(1200 / ptime.millis()) as u16 {
                let packet = tx.next_frame(ptime, Some(&mut g), None).unwrap().to_vec();
                let pcm = rx.decode(seq, &packet).unwrap();
                assert_eq!(pcm.len(), samples, "{ptime} ms");
                out.extend_from_slice(pcm);
            }
            assert_eq!(
                Detector::new(48_000).digits_in_i16(&out),
                "1470",
                "{ptime} ms"
            );
            // 8 kHz file audio with a digit in it, looped into packets of this length.
            let mut narrow = ToneGenerator::new(8000).unwrap();
            narrow.push_tones("5", 200, 100).unwrap();
            let audio = narrow.render();
            let mut pos = 0;
            let mut out = Vec::new();
            for seq in 100..(100 + 600 / ptime.millis()) as u16 {
                let packet = tx
                    .next_frame(ptime, None, Some((&audio, &mut pos)))
                    .unwrap()
                    .to_vec();
                out.extend_from_slice(rx.decode(seq, &packet).unwrap());
            }
            assert_eq!(pos % audio.len(), (600 * 8) % audio.len(), "{ptime} ms");
            assert!(
                Detector::new(48_000).digits_in_i16(&out).starts_with('5'),
                "{ptime} ms"
            );
        }
    }

    #[test]
    fn late_and_repeated_packets_are_skipped_and_lost_ones_concealed() {
        let mut tx = OpusSender::new().unwrap();
        let mut rx = OpusReceiver::new().unwrap();
        let frames: Vec<Vec<u8>> = (0..8)
            .map(|_| tx.next_frame(Ptime::Ms20, None, None).unwrap().to_vec())
            .collect();
        assert_eq!(rx.decode(100, &frames[0]).unwrap().len(), OPUS_FRAME);
        assert_eq!(rx.decode(100, &frames[0]).unwrap().len(), 0, "a duplicate");
        // 101 and 102 lost: concealed before 103.
        assert_eq!(rx.decode(103, &frames[3]).unwrap().len(), 3 * OPUS_FRAME);
        assert_eq!(rx.decode(101, &frames[1]).unwrap().len(), 0, "late");
        // A jump past the concealment limit is not bridged.
        assert_eq!(rx.decode(200, &frames[4]).unwrap().len(), OPUS_FRAME);
        // Across the wrap.
        let mut rx = OpusReceiver::new().unwrap();
        assert_eq!(rx.decode(u16::MAX, &frames[5]).unwrap().len(), OPUS_FRAME);
        assert_eq!(rx.decode(0, &frames[6]).unwrap().len(), OPUS_FRAME);
        assert_eq!(rx.packet_duration(), Duration::from_millis(20));
    }

    #[test]
    fn a_damaged_packet_is_an_error() {
        let mut rx = OpusReceiver::new().unwrap();
        // A code-3 packet announcing 63 frames in 2 bytes.
        assert!(matches!(
            rx.decode(1, &[0x03, 0x3f]),
            Err(OpusError::Codec(_))
        ));
    }

    /// 8 kHz audio upsampled keeps its digits, its level and its length, and puts nothing above 4 kHz.
    #[test]
    fn upsampled_audio_keeps_its_digits_and_no_images() {
        let mut g = ToneGenerator::new(8000).unwrap();
        g.push_tones("159D", 80, 60).unwrap();
        let narrow = g.render();
        let mut up = Upsampler::new();
        let mut wide = vec![0i16; narrow.len() * 6];
        for (i, o) in narrow.chunks(160).zip(wide.chunks_mut(960)) {
            up.process(i, &mut o[..i.len() * 6]);
        }
        assert_eq!(Detector::new(48_000).digits_in_i16(&wide), "159D");
        // A 3 kHz sine: its images at 5, 11 and 13 kHz must be far below it.
        let sine: Vec<i16> = (0..8000)
            .map(|i| (10_000.0 * (std::f64::consts::TAU * 3000.0 * i as f64 / 8000.0).sin()) as i16)
            .collect();
        let mut up = Upsampler::new();
        let mut wide = vec![0i16; sine.len() * 6];
        up.process(&sine, &mut wide);
        let level = |f: f64| {
            let x = &wide[4800..];
            let (mut re, mut im) = (0f64, 0f64);
            for (k, v) in x.iter().enumerate() {
                let a = std::f64::consts::TAU * f * k as f64 / 48_000.0;
                re += f64::from(*v) * a.cos();
                im += f64::from(*v) * a.sin();
            }
            2.0 * re.hypot(im) / x.len() as f64
        };
        let main = level(3000.0);
        assert!((main - 10_000.0).abs() < 1500.0, "{main}");
        for image in [5000.0, 11_000.0, 13_000.0] {
            assert!(level(image) < main / 100.0, "{image} Hz: {}", level(image));
        }
    }
}
