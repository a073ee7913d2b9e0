//! A streaming WAV reader for what call recorders write: PCM 8/16/24/32-bit, IEEE float, G.711 mu/A-law.

use std::io::Read;

use touchtone::inband::g711;

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

/// Reads a WAV stream's samples as floats, one interleaved block at a time.
pub struct WavReader<R: Read> {
    inner: R,
    /// The stream's format.
    pub format: WavFormat,
    /// Bytes of sample data the header announces (`None` when it says "unknown", as streamers write).
    pub data_len: Option<u64>,
    read: u64,
    carry: Vec<u8>,
}

fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format!("truncated WAV: the file ends inside the {what}")
        }
        _ => format!("cannot read WAV: {e}"),
    })
}

impl<R: Read> WavReader<R> {
    /// Parses the RIFF header up to the start of the sample data.
    pub fn new(mut inner: R) -> Result<Self, String> {
        let mut riff = [0u8; 12];
        let n = read_fill(&mut inner, &mut riff).map_err(|e| format!("cannot read WAV: {e}"))?;
        if n == 0 {
            return Err("empty input: not a WAV file".into());
        }
        if n < 12 || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
            return Err("not a WAV file (no RIFF/WAVE header)".into());
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
                        return Err(format!("invalid WAV: fmt chunk of {size} bytes"));
                    }
                    let mut body = vec![0u8; size as usize + (size as usize & 1)];
                    read_exact_or(&mut inner, &mut body, "fmt chunk")?;
                    format = Some(parse_format(&body)?);
                }
                b"data" => {
                    let format = format.ok_or("invalid WAV: data chunk before fmt chunk")?;
                    let data_len = (size != u32::MAX && size != 0).then_some(u64::from(size));
                    return Ok(WavReader {
                        inner,
                        format,
                        data_len,
                        read: 0,
                        carry: Vec::new(),
                    });
                }
                _ => {
                    let skip = u64::from(size) + u64::from(size & 1);
                    let copied = std::io::copy(&mut (&mut inner).take(skip), &mut std::io::sink())
                        .map_err(|e| format!("cannot read WAV: {e}"))?;
                    if copied < skip {
                        return Err("truncated WAV: the file ends inside a chunk".into());
                    }
                }
            }
        }
    }

    /// Bytes of sample data read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Reads the next run of whole frames into `out` (per channel, cleared first); `Ok(false)` at the end.
    ///
    /// A data chunk that ends before the size its header announces, or inside a frame, is an error after
    /// the frames before it were returned.
    pub fn next_block(&mut self, out: &mut [Vec<f32>]) -> Result<bool, String> {
        for ch in out.iter_mut() {
            ch.clear();
        }
        let align = self.format.block_align;
        let want = match self.data_len {
            Some(len) => (len - self.read).min(64 * 1024) as usize,
            None => 64 * 1024,
        };
        if want == 0 {
            return Ok(false);
        }
        let mut buf = std::mem::take(&mut self.carry);
        let start = buf.len();
        buf.resize(start + want, 0);
        let n = read_fill(&mut self.inner, &mut buf[start..])
            .map_err(|e| format!("cannot read WAV: {e}"))?;
        buf.truncate(start + n);
        self.read += n as u64;
        let whole = buf.len() / align * align;
        self.carry = buf[whole..].to_vec();
        for frame in buf[..whole].chunks_exact(align) {
            let width = align / usize::from(self.format.channels);
            for (c, out) in out.iter_mut().enumerate() {
                out.push(decode(
                    &frame[c * width..(c + 1) * width],
                    self.format.encoding,
                ));
            }
        }
        if n == 0 {
            if !self.carry.is_empty() {
                return Err("truncated WAV: the data ends inside a sample frame".into());
            }
            if let Some(len) = self.data_len.filter(|len| self.read < *len) {
                return Err(format!(
                    "truncated WAV: the header announces {len} bytes of samples, the file holds {}",
                    self.read
                ));
            }
            return Ok(whole > 0);
        }
        Ok(true)
    }
}

/// Reads a whole WAV file as 8 kHz mono 16-bit PCM (first channel, linearly resampled), for call audio.
pub fn read_mono_8k(input: crate::input::Input) -> Result<Vec<i16>, String> {
    let mut wav = WavReader::new(std::io::BufReader::new(input.reader))?;
    let rate = f64::from(wav.format.sample_rate);
    let mut block = vec![Vec::new(); usize::from(wav.format.channels)];
    let mut mono = Vec::new();
    while wav.next_block(&mut block)? {
        mono.extend_from_slice(&block[0]);
        if mono.len() > 8000 * 600 * 6 {
            return Err("audio longer than 10 minutes".into());
        }
    }
    let step = rate / 8000.0;
    let out_len = (mono.len() as f64 / step) as usize;
    Ok((0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let k = pos as usize;
            let frac = (pos - k as f64) as f32;
            let a = mono[k];
            let b = mono.get(k + 1).copied().unwrap_or(a);
            ((a + (b - a) * frac) * 32767.0).clamp(-32768.0, 32767.0) as i16
        })
        .collect())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_fill<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn parse_format(b: &[u8]) -> Result<WavFormat, String> {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let block_align = usize::from(u16_at(12));
    let bits = u16_at(14);
    if tag == 0xfffe {
        if b.len() < 26 {
            return Err("invalid WAV: short WAVE_FORMAT_EXTENSIBLE header".into());
        }
        tag = u16_at(24);
    }
    let encoding = match (tag, bits) {
        (1, 8 | 16 | 24 | 32) => Encoding::Pcm(bits),
        (3, 32 | 64) => Encoding::Float(bits),
        (6, 8) => Encoding::Alaw,
        (7, 8) => Encoding::Ulaw,
        (1 | 3 | 6 | 7, _) => {
            return Err(format!(
                "unsupported WAV: {bits}-bit samples with format {tag}"
            ));
        }
        _ => {
            return Err(format!(
                "unsupported WAV format tag {tag:#06x} (PCM, float, mu-law and A-law are read)"
            ));
        }
    };
    if channels == 0 || channels > 64 {
        return Err(format!("invalid WAV: {channels} channels"));
    }
    if !(8000..=384_000).contains(&sample_rate) {
        return Err(format!(
            "unsupported WAV: sample rate {sample_rate} Hz (8000 and up)"
        ));
    }
    if block_align != usize::from(channels) * usize::from(bits / 8) {
        return Err(format!(
            "invalid WAV: block align {block_align} for {channels} channels of {bits} bits"
        ));
    }
    Ok(WavFormat {
        sample_rate,
        channels,
        encoding,
        block_align,
    })
}

fn decode(b: &[u8], enc: Encoding) -> f32 {
    match enc {
        Encoding::Pcm(8) => (f32::from(b[0]) - 128.0) / 128.0,
        Encoding::Pcm(16) => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0,
        Encoding::Pcm(24) => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
        Encoding::Pcm(_) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
        Encoding::Float(32) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Encoding::Float(_) => {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }
        Encoding::Ulaw => f32::from(g711::ulaw_to_linear(b[0])) / 32768.0,
        Encoding::Alaw => f32::from(g711::alaw_to_linear(b[0])) / 32768.0,
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

    fn read_all(bytes: &[u8]) -> Result<usize, String> {
        let mut r = WavReader::new(bytes)?;
        let mut block = vec![Vec::new(); usize::from(r.format.channels)];
        let mut n = 0;
        while r.next_block(&mut block)? {
            n += block[0].len();
        }
        Ok(n)
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
            prop_assert_eq!(read_all(&bytes), Ok(samples.len()));
            if !data.is_empty() {
                bytes.pop();
                prop_assert!(read_all(&bytes).unwrap_err().starts_with("truncated WAV"));
            }
        }
    }
}
