//! ITU-T Q.23 DTMF synthesis: tone strings to PCM, a frame at a time, without clicks.

use std::collections::VecDeque;
use std::f64::consts::TAU;

use thiserror::Error;

use super::amplitude_for_dbm0;
use crate::error::DtmfError;
use crate::tone::{PAUSE, frequencies, normalize_tones};

/// Length of the raised-cosine on and off ramps of each tone.
const RAMP_MS: f64 = 2.5;
/// A `,` pauses for this long, as in the W3C sender.
const PAUSE_MS: u32 = 2000;

/// Why a generator could not be made or fed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GeneratorError {
    /// The sample rate is outside 8000..=192000 Hz.
    #[error("unsupported sample rate {0} Hz (8000 to 192000)")]
    SampleRate(u32),
    /// The tone string holds a character that is not a DTMF tone.
    #[error(transparent)]
    Tones(#[from] DtmfError),
}

#[derive(Debug, Clone, Copy)]
enum Segment {
    Tone { low: f64, high: f64, len: usize },
    Silence { len: usize },
}

/// Renders DTMF tones (Q.23 frequency pairs) as PCM samples, incrementally.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    rate: u32,
    low_amp: f64,
    high_amp: f64,
    ramp: usize,
    queue: VecDeque<Segment>,
    pos: usize,
}

impl ToneGenerator {
    /// A generator at `sample_rate` Hz, -10 dBm0 per tone, no twist.
    pub fn new(sample_rate: u32) -> Result<Self, GeneratorError> {
        if !(8000..=192_000).contains(&sample_rate) {
            return Err(GeneratorError::SampleRate(sample_rate));
        }
        let mut g = ToneGenerator {
            rate: sample_rate,
            low_amp: 0.0,
            high_amp: 0.0,
            ramp: (f64::from(sample_rate) * RAMP_MS / 1000.0) as usize,
            queue: VecDeque::new(),
            pos: 0,
        };
        g.set_level(-10.0, 0.0);
        Ok(g)
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Sets the level of the low-group tone in dBm0 and the high group's twist relative to it, in dB.
    pub fn set_level(&mut self, dbm0: f32, twist_db: f32) {
        self.low_amp = f64::from(amplitude_for_dbm0(dbm0));
        self.high_amp = f64::from(amplitude_for_dbm0(dbm0 + twist_db));
    }

    /// Queues a tone string: each tone for `duration_ms`, then `gap_ms` of silence; `,` is 2 s of silence.
    pub fn push_tones(
        &mut self,
        tones: &str,
        duration_ms: u32,
        gap_ms: u32,
    ) -> Result<(), GeneratorError> {
        for c in normalize_tones(tones)?.chars() {
            if c == PAUSE {
                self.push_silence(PAUSE_MS);
            } else {
                self.push_tone(c, duration_ms)?;
                self.push_silence(gap_ms);
            }
        }
        Ok(())
    }

    /// Queues one tone for `duration_ms`.
    pub fn push_tone(&mut self, tone: char, duration_ms: u32) -> Result<(), GeneratorError> {
        let (low, high) = frequencies(tone).ok_or(DtmfError::InvalidCharacter {
            character: tone,
            index: 0,
        })?;
        self.push_pair(f64::from(low), f64::from(high), duration_ms);
        Ok(())
    }

    /// Queues an arbitrary frequency pair (for tests of off-nominal tones) for `duration_ms`.
    pub fn push_pair(&mut self, low_hz: f64, high_hz: f64, duration_ms: u32) {
        let len = self.samples(duration_ms);
        if len > 0 {
            self.queue.push_back(Segment::Tone {
                low: low_hz,
                high: high_hz,
                len,
            });
        }
    }

    /// Queues `ms` of silence.
    pub fn push_silence(&mut self, ms: u32) {
        let len = self.samples(ms);
        if len > 0 {
            self.queue.push_back(Segment::Silence { len });
        }
    }

    /// Samples still queued.
    pub fn remaining(&self) -> usize {
        let total: usize = self
            .queue
            .iter()
            .map(|s| match s {
                Segment::Tone { len, .. } | Segment::Silence { len } => *len,
            })
            .sum();
        total - self.pos
    }

    /// Whether everything queued has been rendered.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Renders the next samples into `out` as floats in -1.0..=1.0; returns how many were queued audio
    /// (the rest of `out` is silence).
    pub fn fill_f32(&mut self, out: &mut [f32]) -> usize {
        let mut written = 0;
        while written < out.len() {
            let Some(seg) = self.queue.front().copied() else {
                break;
            };
            match seg {
                Segment::Silence { len } => {
                    let n = (len - self.pos).min(out.len() - written);
                    out[written..written + n].fill(0.0);
                    written += n;
                    self.pos += n;
                }
                Segment::Tone { low, high, len } => {
                    let n = (len - self.pos).min(out.len() - written);
                    let rate = f64::from(self.rate);
                    for (i, o) in out[written..written + n].iter_mut().enumerate() {
                        let k = self.pos + i;
                        let t = k as f64 / rate;
                        let env = envelope(k, len, self.ramp);
                        let v = self.low_amp * (TAU * low * t).sin()
                            + self.high_amp * (TAU * high * t).sin();
                        *o = (v * env) as f32;
                    }
                    written += n;
                    self.pos += n;
                }
            }
            let len = match seg {
                Segment::Tone { len, .. } | Segment::Silence { len } => len,
            };
            if self.pos == len {
                self.queue.pop_front();
                self.pos = 0;
            }
        }
        out[written..].fill(0.0);
        written
    }

    /// Renders the next samples into `out` as 16-bit PCM; returns how many were queued audio.
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut buf = [0f32; 256];
        let mut done = 0;
        let mut audio = 0;
        while done < out.len() {
            let n = (out.len() - done).min(buf.len());
            audio += self.fill_f32(&mut buf[..n]);
            for (o, v) in out[done..done + n].iter_mut().zip(&buf[..n]) {
                *o = (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
            }
            done += n;
        }
        audio
    }

    /// Renders everything queued as 16-bit PCM.
    pub fn render(&mut self) -> Vec<i16> {
        let mut out = vec![0i16; self.remaining()];
        self.fill(&mut out);
        out
    }

    fn samples(&self, ms: u32) -> usize {
        (u64::from(ms) * u64::from(self.rate) / 1000) as usize
    }
}

/// Raised-cosine on/off ramp gain at sample `k` of a tone of `len` samples.
fn envelope(k: usize, len: usize, ramp: usize) -> f64 {
    let ramp = ramp.min(len / 4).max(1);
    let edge = k.min(len - 1 - k);
    if edge >= ramp {
        1.0
    } else {
        0.5 - 0.5 * (std::f64::consts::PI * (edge as f64 + 0.5) / ramp as f64).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inband::dbm0_for_amplitude;

    #[test]
    fn lengths_follow_duration_and_gap() {
        let mut g = ToneGenerator::new(8000).unwrap();
        g.push_tones("12,3", 100, 50).unwrap();
        // 3 tones of 800 + 3 gaps of 400 + 2 s pause.
        assert_eq!(g.remaining(), 3 * 1200 + 16000);
        assert_eq!(g.render().len(), 3 * 1200 + 16000);
        assert!(g.is_empty());
    }

    #[test]
    fn level_and_ramps() {
        let mut g = ToneGenerator::new(48_000).unwrap();
        g.set_level(-10.0, 0.0);
        g.push_pair(1000.0, 1000.0, 100);
        let mut s = vec![0f32; 4800];
        assert_eq!(g.fill_f32(&mut s), 4800);
        // The ramps start and end near zero: no click.
        assert!(s[0].abs() < 0.01 && s[4799].abs() < 0.01);
        let peak = s.iter().fold(0f32, |m, v| m.max(v.abs()));
        // Two in-phase tones at -10 dBm0 each add to a sine 6 dB higher.
        assert!(
            (dbm0_for_amplitude(peak) - (-10.0 + 6.02)).abs() < 0.1,
            "{peak}"
        );
    }

    #[test]
    fn incremental_fill_equals_one_shot() {
        let mut a = ToneGenerator::new(16_000).unwrap();
        let mut b = a.clone();
        a.push_tones("9#", 60, 40).unwrap();
        b.push_tones("9#", 60, 40).unwrap();
        let whole = a.render();
        let mut parts = vec![];
        let mut frame = [0i16; 320];
        while !b.is_empty() {
            let n = b.fill(&mut frame);
            parts.extend_from_slice(&frame[..n]);
        }
        assert_eq!(whole, parts);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            ToneGenerator::new(100).unwrap_err(),
            GeneratorError::SampleRate(100)
        );
        let mut g = ToneGenerator::new(8000).unwrap();
        assert!(matches!(
            g.push_tones("1x", 100, 50),
            Err(GeneratorError::Tones(DtmfError::InvalidCharacter {
                character: 'x',
                index: 1
            }))
        ));
    }
}
