//! DTMF digits in WAV recordings (in-band tones), and WAV files as 8 kHz call audio.

use std::io::Read;

use crate::digit::{WavDigit, WavOptions};
use crate::error::WavError;
use crate::resample::resample;
use crate::stream::{Block, BlockSource, DetectorBank, DigitStream, NoChannel};
use crate::wav::{WavFormat, WavReader};

/// The digits of a recording as an iterator, read block by block in constant memory, each channel
/// analysed at the file's own rate.
///
/// When the file turns out truncated, the digits before the damage come first, then the error.
pub struct WavDigits<R: Read, P = fn(u64)>(DigitStream<WavBlocks<R>, P>);

/// A WAV file's sample blocks, for the detectors.
struct WavBlocks<R: Read> {
    wav: WavReader<R>,
    block: Vec<Vec<f32>>,
    /// Blocks of 16-bit PCM and G.711, which go to the detector as they are (no float round trip).
    block16: Vec<Vec<i16>>,
}

impl<R: Read> BlockSource for WavBlocks<R> {
    type Error = WavError;

    fn next_block(&mut self, bank: &mut DetectorBank) -> Result<Block, WavError> {
        let more = if self.wav.is_16_bit() {
            let more = self.wav.next_block_i16(&mut self.block16)?;
            for (ch, det) in bank.detectors() {
                det.process_i16(&self.block16[ch]);
            }
            more
        } else {
            let more = self.wav.next_block(&mut self.block)?;
            for (ch, det) in bank.detectors() {
                det.process(&self.block[ch]);
            }
            more
        };
        Ok(Block::Fed {
            read: self.wav.bytes_read(),
            more,
        })
    }
}

impl<R: Read, P> std::fmt::Debug for WavDigits<R, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavDigits")
            .field("wav", &self.0.source.wav)
            .field("channels", &self.0.bank.picked())
            .field("phase", &self.0.phase)
            .finish_non_exhaustive()
    }
}

impl<R: Read> WavDigits<R> {
    /// Reads the WAV header; the digits come as the iterator is advanced.
    pub fn new(reader: R, options: WavOptions) -> Result<Self, WavError> {
        let wav = WavReader::new(reader)?;
        let WavFormat {
            channels,
            sample_rate,
            ..
        } = wav.format();
        let bank = DetectorBank::new(options, channels, sample_rate)
            .map_err(|NoChannel { channel, channels }| WavError::NoChannel { channel, channels })?;
        let blocks = WavBlocks {
            wav,
            block: vec![Vec::new(); usize::from(channels)],
            block16: vec![Vec::new(); usize::from(channels)],
        };
        Ok(WavDigits(DigitStream::new(blocks, bank)))
    }
}

impl<R: Read, P: FnMut(u64)> WavDigits<R, P> {
    /// Calls `progress` with the bytes of samples read so far after every block.
    pub fn with_progress<Q: FnMut(u64)>(self, progress: Q) -> WavDigits<R, Q> {
        WavDigits(self.0.with_progress(progress))
    }

    /// The recording's format.
    pub fn format(&self) -> WavFormat {
        self.0.source.wav.format()
    }

    /// Bytes of samples the header announces, if it does.
    pub fn data_len(&self) -> Option<u64> {
        self.0.source.wav.data_len()
    }
}

impl<R: Read, P: FnMut(u64)> Iterator for WavDigits<R, P> {
    type Item = Result<WavDigit, WavError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

/// Every DTMF digit in a WAV recording, in the order they end (channel by channel when they overlap).
///
/// A truncated file is an error even when digits came before the damage; use [`WavDigits`] to keep those.
pub fn detect_in_wav<R: Read>(reader: R, options: WavOptions) -> Result<Vec<WavDigit>, WavError> {
    WavDigits::new(reader, options)?.collect()
}

/// Reads a whole WAV file as 8 kHz mono 16-bit PCM (the first channel, low-passed and resampled), for
/// sending as call audio; files longer than `max_seconds` are refused.
pub fn read_mono_8k<R: Read>(reader: R, max_seconds: u32) -> Result<Vec<i16>, WavError> {
    let mut wav = WavReader::new(reader)?;
    let format = wav.format();
    let limit = u64::from(format.sample_rate) * u64::from(max_seconds);
    let mut block = vec![Vec::new(); usize::from(format.channels)];
    let mut mono = Vec::new();
    while wav.next_block(&mut block)? {
        mono.extend_from_slice(&block[0]);
        if mono.len() as u64 > limit {
            return Err(WavError::TooLong(max_seconds));
        }
    }
    Ok(resample(&mono, format.sample_rate, 8000)
        .into_iter()
        .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use touchtone::inband::Detector;

    fn wav_48k(samples: &[f32]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
        v.extend_from_slice(&48_000u32.to_le_bytes());
        v.extend_from_slice(&96_000u32.to_le_bytes());
        v.extend_from_slice(&[2, 0, 16, 0]);
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(2 * samples.len() as u32).to_le_bytes());
        for s in samples {
            v.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
        }
        v
    }

    fn digits_8k(pcm: &[i16]) -> String {
        Detector::new(8000).digits_in_i16(pcm)
    }

    /// 7303 Hz and 6791 Hz at 48 kHz fold onto 697 Hz and 1209 Hz ("1") when taken every sixth sample, as
    /// the linear interpolation this reader used to do did; the low-pass removes them.
    #[test]
    fn tones_above_4_khz_do_not_become_digits_at_8_khz() {
        let samples: Vec<f32> = (0..48_000)
            .map(|i| {
                let t = i as f64 / 48_000.0;
                let s = 0.4 * (std::f64::consts::TAU * 7303.0 * t).sin()
                    + 0.4 * (std::f64::consts::TAU * 6791.0 * t).sin();
                s as f32
            })
            .collect();
        let decimated: Vec<i16> = samples
            .iter()
            .step_by(6)
            .map(|s| (s * 32767.0) as i16)
            .collect();
        assert_eq!(
            digits_8k(&decimated),
            "1",
            "the fixture folds without a filter"
        );
        let pcm = read_mono_8k(&wav_48k(&samples)[..], 60).unwrap();
        assert_eq!(pcm.len(), 8000);
        assert_eq!(digits_8k(&pcm), "");
        let peak = pcm[1000..7000]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!(peak < 100, "{peak}");
    }
}
