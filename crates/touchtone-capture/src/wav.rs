//! A streaming WAV reader for what call recorders write: PCM 8/16/24/32-bit, IEEE float, G.711 mu/A-law,
//! any rate from 8 kHz, any number of channels, and streams whose length is unknown (`0` or `0xFFFFFFFF`).

use std::io::Read;

use touchtone::inband::g711;

use crate::error::{Truncation, WavError};
use crate::read::read_fill;

/// The sample encoding of a WAV data chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Integer PCM of this many bits (8 is unsigned).
    Pcm(u16),
    /// IEEE float of this many bits (32 or 64).
    Float(u16),
    /// G.711 mu-law.
    Ulaw,
    /// G.711 A-law.
    Alaw,
}

/// What the `fmt ` chunk says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Sample encoding.
    pub encoding: Encoding,
    /// Bytes per interleaved frame.
    pub block_align: usize,
}

/// Bytes of sample data read at a time.
const BLOCK: usize = 64 * 1024;

/// Reads a WAV stream's samples as floats (full scale 1.0), a block of whole frames at a time.
pub struct WavReader<R: Read> {
    inner: R,
    format: WavFormat,
    data_len: Option<u64>,
    read: u64,
    buf: Vec<u8>,
    carry: usize,
    /// Bytes in `buf` after the last read.
    filled: usize,
    /// G.711 expansion table, for the G.711 encodings.
    table: Option<Box<[f32; 256]>>,
    /// The same as 16-bit samples.
    table16: Option<Box<[i16; 256]>>,
}

impl<R: Read> std::fmt::Debug for WavReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavReader")
            .field("format", &self.format)
            .field("data_len", &self.data_len)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<(), WavError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => WavError::Truncated(Truncation::Header(what)),
        _ => WavError::Io(e),
    })
}

impl<R: Read> WavReader<R> {
    /// Parses the RIFF header up to the start of the sample data.
    pub fn new(mut inner: R) -> Result<Self, WavError> {
        let mut riff = [0u8; 12];
        let n = read_fill(&mut inner, &mut riff)?;
        if n == 0 {
            return Err(WavError::Empty);
        }
        if n < 12 || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
            return Err(WavError::NotWav);
        }
        let mut format = None;
        loop {
            let mut head = [0u8; 8];
            read_exact_or(&mut inner, &mut head, "chunk headers (no data chunk)")?;
            let id = [head[0], head[1], head[2], head[3]];
            let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            match &id {
                b"fmt " => {
                    if !(16..=1024).contains(&size) {
                        return Err(WavError::Invalid(format!("fmt chunk of {size} bytes")));
                    }
                    let mut body = vec![0u8; size as usize + (size as usize & 1)];
                    read_exact_or(&mut inner, &mut body, "fmt chunk")?;
                    format = Some(parse_format(&body)?);
                }
                b"data" => {
                    let format = format.ok_or_else(|| {
                        WavError::Invalid("data chunk before fmt chunk".to_string())
                    })?;
                    let data_len = (size != u32::MAX && size != 0).then_some(u64::from(size));
                    let expand: Option<fn(u8) -> i16> = match format.encoding {
                        Encoding::Ulaw => Some(g711::ulaw_to_linear),
                        Encoding::Alaw => Some(g711::alaw_to_linear),
                        _ => None,
                    };
                    return Ok(WavReader {
                        inner,
                        format,
                        data_len,
                        read: 0,
                        buf: Vec::new(),
                        carry: 0,
                        filled: 0,
                        table: expand.map(g711_table),
                        table16: expand.map(|e| Box::new(std::array::from_fn(|i| e(i as u8)))),
                    });
                }
                _ => {
                    let skip = u64::from(size) + u64::from(size & 1);
                    let copied = std::io::copy(&mut (&mut inner).take(skip), &mut std::io::sink())?;
                    if copied < skip {
                        return Err(WavError::Truncated(Truncation::Header("a chunk")));
                    }
                }
            }
        }
    }

    /// The stream's format.
    pub fn format(&self) -> WavFormat {
        self.format
    }

    /// Bytes of sample data the header announces (`None` when it says "unknown", as streamers write).
    pub fn data_len(&self) -> Option<u64> {
        self.data_len
    }

    /// Bytes of sample data read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Reads the next run of whole frames into `out` (one vector per channel, cleared first); `Ok(false)`
    /// at the end.
    ///
    /// A data chunk that ends before the size its header announces, or inside a frame, is an error after
    /// the frames before it were returned.
    pub fn next_block(&mut self, out: &mut [Vec<f32>]) -> Result<bool, WavError> {
        for ch in out.iter_mut() {
            ch.clear();
        }
        let Some(whole) = self.read_frames()? else {
            return Ok(false);
        };
        decode(&self.buf[..whole], self.format, self.table.as_deref(), out);
        self.consume(whole);
        Ok(true)
    }

    /// Whether the samples are exactly 16-bit values (16-bit PCM, G.711), which
    /// [`next_block_i16`](Self::next_block_i16) returns without going through floats.
    pub fn is_16_bit(&self) -> bool {
        matches!(
            self.format.encoding,
            Encoding::Pcm(16) | Encoding::Ulaw | Encoding::Alaw
        )
    }

    /// [`next_block`](Self::next_block) as 16-bit samples: copied as they are from 16-bit PCM and
    /// G.711 (see [`is_16_bit`](Self::is_16_bit)), rounded towards zero and clamped from the others.
    pub fn next_block_i16(&mut self, out: &mut [Vec<i16>]) -> Result<bool, WavError> {
        for ch in out.iter_mut() {
            ch.clear();
        }
        let Some(whole) = self.read_frames()? else {
            return Ok(false);
        };
        let data = &self.buf[..whole];
        match (self.format.encoding, self.table16.as_deref()) {
            (Encoding::Pcm(16), _) => split::<2, _>(data, out, i16::from_le_bytes),
            (Encoding::Ulaw | Encoding::Alaw, Some(t)) => {
                split::<1, _>(data, out, |b| t[usize::from(b[0])])
            }
            _ => {
                let mut wide = vec![Vec::new(); out.len()];
                decode(data, self.format, self.table.as_deref(), &mut wide);
                for (o, w) in out.iter_mut().zip(&wide) {
                    o.extend(
                        w.iter()
                            .map(|s| (s * 32768.0).clamp(-32768.0, 32767.0) as i16),
                    );
                }
            }
        }
        self.consume(whole);
        Ok(true)
    }

    /// Reads the next run of bytes; the whole frames in it are `buf[..whole]`, `None` at the end.
    fn read_frames(&mut self) -> Result<Option<usize>, WavError> {
        let align = self.format.block_align;
        let want = match self.data_len {
            Some(len) => (len - self.read).min(BLOCK as u64) as usize,
            None => BLOCK,
        };
        if want == 0 {
            return Ok(None);
        }
        let start = self.carry;
        self.buf.resize(start + want, 0);
        let n = read_fill(&mut self.inner, &mut self.buf[start..])?;
        self.read += n as u64;
        self.filled = start + n;
        if n == 0 {
            // What is carried is less than a frame.
            if self.carry != 0 {
                return Err(WavError::Truncated(Truncation::Frame));
            }
            if let Some(len) = self.data_len.filter(|len| self.read < *len) {
                return Err(WavError::Truncated(Truncation::Data {
                    announced: len,
                    found: self.read,
                }));
            }
            return Ok(None);
        }
        Ok(Some(self.filled / align * align))
    }

    /// Keeps the bytes after the whole frames for the next read.
    fn consume(&mut self, whole: usize) {
        self.buf.copy_within(whole..self.filled, 0);
        self.carry = self.filled - whole;
    }
}

fn parse_format(b: &[u8]) -> Result<WavFormat, WavError> {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let block_align = usize::from(u16_at(12));
    let bits = u16_at(14);
    if tag == 0xfffe {
        if b.len() < 26 {
            return Err(WavError::Invalid(
                "short WAVE_FORMAT_EXTENSIBLE header".to_string(),
            ));
        }
        tag = u16_at(24);
    }
    let encoding = match (tag, bits) {
        (1, 8 | 16 | 24 | 32) => Encoding::Pcm(bits),
        (3, 32 | 64) => Encoding::Float(bits),
        (6, 8) => Encoding::Alaw,
        (7, 8) => Encoding::Ulaw,
        (1 | 3 | 6 | 7, _) => {
            return Err(WavError::Unsupported(format!(
                "{bits}-bit samples with format {tag}"
            )));
        }
        _ => {
            return Err(WavError::Unsupported(format!(
                "format tag {tag:#06x} (PCM, float, mu-law and A-law are read)"
            )));
        }
    };
    if channels == 0 || channels > 64 {
        return Err(WavError::Invalid(format!("{channels} channels")));
    }
    if !(8000..=384_000).contains(&sample_rate) {
        return Err(WavError::Unsupported(format!(
            "sample rate {sample_rate} Hz (8000 and up)"
        )));
    }
    if block_align != usize::from(channels) * usize::from(bits / 8) {
        return Err(WavError::Invalid(format!(
            "block align {block_align} for {channels} channels of {bits} bits"
        )));
    }
    Ok(WavFormat {
        sample_rate,
        channels,
        encoding,
        block_align,
    })
}

fn g711_table(expand: fn(u8) -> i16) -> Box<[f32; 256]> {
    let mut t = Box::new([0f32; 256]);
    for (i, v) in t.iter_mut().enumerate() {
        *v = f32::from(expand(i as u8)) / 32768.0;
    }
    t
}

/// Decodes whole interleaved frames into one vector per channel: one match on the encoding per block,
/// then a tight loop per channel that the compiler specialises for the sample width.
fn decode(data: &[u8], format: WavFormat, table: Option<&[f32; 256]>, out: &mut [Vec<f32>]) {
    match (format.encoding, table) {
        (Encoding::Pcm(8), _) => split::<1, _>(data, out, |b| (f32::from(b[0]) - 128.0) / 128.0),
        (Encoding::Pcm(16), _) => split::<2, _>(data, out, |b| {
            f32::from(i16::from_le_bytes(b)) * (1.0 / 32768.0)
        }),
        (Encoding::Pcm(24), _) => split::<3, _>(data, out, |b| {
            (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 * (1.0 / 8_388_608.0)
        }),
        (Encoding::Pcm(_), _) => split::<4, _>(data, out, |b| {
            i32::from_le_bytes(b) as f32 * (1.0 / 2_147_483_648.0)
        }),
        (Encoding::Float(32), _) => split::<4, _>(data, out, f32::from_le_bytes),
        (Encoding::Float(_), _) => split::<8, _>(data, out, |b| f64::from_le_bytes(b) as f32),
        (Encoding::Ulaw | Encoding::Alaw, Some(t)) => {
            split::<1, _>(data, out, |b| t[usize::from(b[0])])
        }
        (Encoding::Ulaw | Encoding::Alaw, None) => {}
    }
}

/// Splits frames of `out.len()` interleaved samples of `W` bytes, converting each with `f`.
#[inline(always)]
fn split<const W: usize, T>(data: &[u8], out: &mut [Vec<T>], f: impl Fn([u8; W]) -> T) {
    let channels = out.len();
    let (samples, _) = data.as_chunks::<W>();
    if channels == 1 {
        out[0].extend(samples.iter().map(|s| f(*s)));
        return;
    }
    for (c, o) in out.iter_mut().enumerate() {
        o.extend(samples.iter().skip(c).step_by(channels).map(|s| f(*s)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(tag: u16, channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
        let align = channels.wrapping_mul(bits / 8);
        let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        for x in [tag, channels] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&rate.wrapping_mul(u32::from(align)).to_le_bytes());
        v.extend_from_slice(&align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Vec<f32>>, WavError> {
        let mut r = WavReader::new(bytes)?;
        let channels = usize::from(r.format().channels);
        let mut block = vec![Vec::new(); channels];
        let mut all = vec![Vec::new(); channels];
        while r.next_block(&mut block)? {
            for (a, b) in all.iter_mut().zip(&block) {
                a.extend_from_slice(b);
            }
        }
        Ok(all)
    }

    /// The per-sample decoding the reader had before block decoding: the reference for every format.
    fn decode_one(b: &[u8], enc: Encoding) -> f32 {
        match enc {
            Encoding::Pcm(8) => (f32::from(b[0]) - 128.0) / 128.0,
            Encoding::Pcm(16) => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0,
            Encoding::Pcm(24) => {
                (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0
            }
            Encoding::Pcm(_) => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            Encoding::Float(32) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Encoding::Float(_) => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            Encoding::Ulaw => f32::from(g711::ulaw_to_linear(b[0])) / 32768.0,
            Encoding::Alaw => f32::from(g711::alaw_to_linear(b[0])) / 32768.0,
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read_all(&bytes);
        }

        #[test]
        fn damaged_headers_never_panic(
            tag in prop_oneof![Just(1u16), Just(3), Just(6), Just(7), Just(0xfffe), any::<u16>()],
            channels in 0u16..5, rate in any::<u32>(), bits in prop_oneof![Just(8u16), Just(16), Just(24), Just(32), Just(64), any::<u16>()],
            data_len in any::<u32>(),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            cut in 0usize..400,
        ) {
            let mut bytes = header(tag, channels, rate, bits, data_len);
            bytes.extend_from_slice(&body);
            bytes.truncate(cut.max(1));
            let _ = read_all(&bytes);
        }

        #[test]
        fn whole_files_read_every_frame(samples in proptest::collection::vec(any::<i16>(), 0..500)) {
            let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut bytes = header(1, 1, 8000, 16, data.len() as u32);
            bytes.extend_from_slice(&data);
            prop_assert_eq!(read_all(&bytes).unwrap()[0].len(), samples.len());
            if !data.is_empty() {
                bytes.pop();
                prop_assert!(matches!(read_all(&bytes), Err(WavError::Truncated(_))));
            }
        }

        #[test]
        fn block_decoding_matches_sample_decoding(
            format in prop_oneof![
                Just((1u16, 8u16)), Just((1, 16)), Just((1, 24)), Just((1, 32)),
                Just((3, 32)), Just((3, 64)), Just((6, 8)), Just((7, 8)),
            ],
            channels in 1u16..4,
            frames in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let (tag, bits) = format;
            let align = usize::from(channels * bits / 8);
            let data = &frames[..frames.len() / align * align];
            let mut bytes = header(tag, channels, 8000, bits, data.len() as u32);
            bytes.extend_from_slice(data);
            let all = read_all(&bytes).unwrap();
            let enc = WavReader::new(&bytes[..]).unwrap().format().encoding;
            let width = align / usize::from(channels);
            for (i, frame) in data.chunks_exact(align).enumerate() {
                for (c, ch) in all.iter().enumerate() {
                    let want = decode_one(&frame[c * width..(c + 1) * width], enc);
                    prop_assert!(ch[i] == want || (ch[i].is_nan() && want.is_nan()), "{} {}", ch[i], want);
                }
            }
        }
    }
}
