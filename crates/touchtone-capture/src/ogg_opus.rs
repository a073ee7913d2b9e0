//! DTMF digits in Ogg Opus recordings (`.opus`, RFC 7845): what browsers' MediaRecorder, WebRTC call
//! recorders and `opusenc` write. Pages are read with the `ogg` crate from any `Read` (stdin too: no
//! seeking), packets decoded by libopus at 48 kHz, and each channel analysed by the in-band detector.

use std::io::{Read, Write};

use crate::digit::{WavDigit, WavOptions};
use crate::error::OpusFileError;
use crate::read::read_fill;
use crate::stream::{Block, BlockSource, DetectorBank, DigitStream, NoChannel};
use ogg::reading::{BasePacketReader, OggReadError, PageParser};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

/// Opus decodes at 48 kHz; Ogg Opus granule positions count 48 kHz samples whatever the input rate.
const RATE: u32 = 48_000;

/// The longest Opus packet, 120 ms at 48 kHz, per channel.
const MAX_PACKET: usize = 5760;

/// What the `OpusHead` packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// Channels (1 or 2 are read).
    pub channels: u16,
    /// Samples (at 48 kHz) to drop at the start: the encoder's delay.
    pub pre_skip: u16,
    /// The rate of the audio before encoding, for information; decoding is at 48 kHz.
    pub input_rate: u32,
    /// Gain to apply on output, in 1/256 dB.
    pub output_gain: i16,
}

impl OpusHead {
    fn parse(p: &[u8]) -> Result<Self, OpusFileError> {
        if p.len() < 19 || &p[..8] != b"OpusHead" {
            return Err(OpusFileError::NotOpus);
        }
        if p[8] >> 4 != 0 {
            return Err(OpusFileError::Unsupported(format!(
                "Ogg Opus version {}",
                p[8]
            )));
        }
        let channels = u16::from(p[9]);
        let family = p[18];
        if family != 0 || !(1..=2).contains(&channels) {
            return Err(OpusFileError::Unsupported(format!(
                "{channels} channels with mapping family {family} (mono and stereo are read)"
            )));
        }
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([p[10], p[11]]),
            input_rate: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
            output_gain: i16::from_le_bytes([p[16], p[17]]),
        })
    }
}

/// Ogg pages from a plain reader, one at a time, as packets.
struct Pages<R: Read> {
    inner: R,
    packets: BasePacketReader,
    read: u64,
    ended: bool,
}

impl<R: Read> Pages<R> {
    /// The next packet, `None` at the end of the input.
    fn next_packet(&mut self) -> Result<Option<ogg::Packet>, OpusFileError> {
        loop {
            if let Some(p) = self.packets.read_packet() {
                return Ok(Some(p));
            }
            if self.ended {
                return Ok(None);
            }
            let mut header = [0u8; 27];
            let n = read_fill(&mut self.inner, &mut header)?;
            self.read += n as u64;
            if n == 0 {
                self.ended = true;
                return Ok(None);
            }
            let magic = n.min(4);
            if header[..magic] != b"OggS"[..magic] && self.read == n as u64 {
                return Err(OpusFileError::NotOgg);
            }
            if n < header.len() {
                return Err(OpusFileError::Truncated);
            }
            if &header[..4] != b"OggS" {
                return Err(OpusFileError::Invalid(format!(
                    "no Ogg page at byte {}",
                    self.read - 27
                )));
            }
            let (mut parser, segments) = PageParser::new(header).map_err(ogg_error)?;
            let mut table = vec![0u8; segments];
            self.fill(&mut table)?;
            let body = parser.parse_segments(table);
            let mut data = vec![0u8; body];
            self.fill(&mut data)?;
            let page = parser.parse_packet_data(data).map_err(ogg_error)?;
            self.packets.push_page(page).map_err(ogg_error)?;
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), OpusFileError> {
        let n = read_fill(&mut self.inner, buf)?;
        self.read += n as u64;
        if n < buf.len() {
            return Err(OpusFileError::Truncated);
        }
        Ok(())
    }
}

fn ogg_error(e: OggReadError) -> OpusFileError {
    match e {
        OggReadError::ReadError(e) => OpusFileError::Io(e),
        OggReadError::HashMismatch(..) => {
            OpusFileError::Invalid("a page's checksum is wrong".into())
        }
        other => OpusFileError::Invalid(other.to_string()),
    }
}

/// The digits of an Ogg Opus recording as an iterator, decoded packet by packet in constant memory, each
/// channel analysed at 48 kHz (times in ms from the first sample after the pre-skip).
///
/// Only the first Opus stream of the file is read (another logical stream, such as video, is skipped).
/// When the file turns out damaged or truncated, the digits before the damage come first, then the error.
pub struct OpusDigits<R: Read, P = fn(u64)>(DigitStream<OpusPackets<R>, P>);

/// The decoded audio packets of an Ogg Opus stream, for the detectors.
struct OpusPackets<R: Read> {
    pages: Pages<R>,
    serial: u32,
    head: OpusHead,
    decoder: Decoder,
    pcm: Vec<f32>,
    channel: Vec<f32>,
    /// Samples per channel still to drop (pre-skip).
    skip: u64,
    /// Samples per channel decoded so far, pre-skip included (the granule position reached).
    decoded: u64,
}

impl<R: Read> BlockSource for OpusPackets<R> {
    type Error = OpusFileError;

    /// Reads and decodes the next packet of the stream.
    fn next_block(&mut self, bank: &mut DetectorBank) -> Result<Block, OpusFileError> {
        let Some(p) = self.pages.next_packet()? else {
            return Ok(Block::End);
        };
        if p.stream_serial() != self.serial || p.data.starts_with(b"OpusTags") {
            return Ok(Block::Skipped);
        }
        let ch = usize::from(self.head.channels);
        let n = self.decoder.decode_float(&p.data, &mut self.pcm, false)?;
        let mut keep = n as u64;
        if p.last_in_stream() {
            // The last page's granule position marks the end: samples past it are padding.
            keep = keep.min(p.absgp_page().saturating_sub(self.decoded));
        }
        self.decoded += n as u64;
        let skip = self.skip.min(keep);
        self.skip -= skip;
        let (from, to) = (skip as usize, keep as usize);
        for (c, det) in bank.detectors() {
            self.channel.clear();
            self.channel
                .extend(self.pcm[from * ch..to * ch].iter().skip(c).step_by(ch));
            det.process(&self.channel);
        }
        Ok(Block::Fed {
            read: self.pages.read,
            more: !p.last_in_stream(),
        })
    }
}

impl<R: Read, P> std::fmt::Debug for OpusDigits<R, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDigits")
            .field("head", &self.0.source.head)
            .field("channels", &self.0.bank.picked())
            .field("decoded", &self.0.source.decoded)
            .field("phase", &self.0.phase)
            .finish_non_exhaustive()
    }
}

impl<R: Read> OpusDigits<R> {
    /// Reads the Ogg Opus headers; the digits come as the iterator is advanced.
    pub fn new(reader: R, options: WavOptions) -> Result<Self, OpusFileError> {
        let mut pages = Pages {
            inner: reader,
            packets: BasePacketReader::new(),
            read: 0,
            ended: false,
        };
        let (serial, head) = loop {
            let Some(p) = pages.next_packet()? else {
                return Err(if pages.read == 0 {
                    OpusFileError::Empty
                } else {
                    OpusFileError::NotOpus
                });
            };
            if !p.first_in_stream() {
                return Err(OpusFileError::NotOpus);
            }
            if p.data.starts_with(b"OpusHead") {
                break (p.stream_serial(), OpusHead::parse(&p.data)?);
            }
            // Another codec's stream (a video track, say) before the Opus one: skip it.
        };
        let channels = head.channels;
        let bank = DetectorBank::new(options, channels, RATE).map_err(
            |NoChannel { channel, channels }| OpusFileError::NoChannel { channel, channels },
        )?;
        let layout = if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        };
        let mut decoder = Decoder::new(RATE, layout)?;
        decoder.set_gain(i32::from(head.output_gain))?;
        let packets = OpusPackets {
            pages,
            serial,
            head,
            decoder,
            pcm: vec![0.0; MAX_PACKET * usize::from(channels)],
            channel: Vec::with_capacity(MAX_PACKET),
            skip: u64::from(head.pre_skip),
            decoded: 0,
        };
        Ok(OpusDigits(DigitStream::new(packets, bank)))
    }
}

impl<R: Read, P: FnMut(u64)> OpusDigits<R, P> {
    /// Calls `progress` with the bytes read so far after every page.
    pub fn with_progress<Q: FnMut(u64)>(self, progress: Q) -> OpusDigits<R, Q> {
        OpusDigits(self.0.with_progress(progress))
    }

    /// The stream's `OpusHead`.
    pub fn head(&self) -> OpusHead {
        self.0.source.head
    }
}

impl<R: Read, P: FnMut(u64)> Iterator for OpusDigits<R, P> {
    type Item = Result<WavDigit, OpusFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

/// Every DTMF digit in an Ogg Opus recording, in the order they end.
///
/// A damaged file is an error even when digits came before the damage; use [`OpusDigits`] to keep those.
pub fn detect_in_ogg_opus<R: Read>(
    reader: R,
    options: WavOptions,
) -> Result<Vec<WavDigit>, OpusFileError> {
    OpusDigits::new(reader, options)?.collect()
}

/// Writes 48 kHz mono 16-bit samples as an Ogg Opus file (20 ms packets at `bitrate` bits per second,
/// one page per second), as a recorder would.
pub fn write_ogg_opus<W: Write>(
    out: W,
    samples: &[i16],
    bitrate: i32,
) -> Result<(), OpusFileError> {
    const FRAME: usize = 960;
    let mut encoder = Encoder::new(RATE, Channels::Mono, Application::Audio)?;
    encoder.set_bitrate(Bitrate::Bits(bitrate))?;
    let pre_skip = u16::try_from(encoder.get_lookahead()?).unwrap_or(312);
    let serial = 0x746f_6e65; // "tone"
    let mut w = PacketWriter::new(out);
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 1]);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&RATE.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    w.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
    let mut tags = b"OpusTags".to_vec();
    let vendor = b"touchtone";
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    w.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
    // The encoder's delay is made up with silence at the end, and cut by the granule position.
    let total = samples.len() + usize::from(pre_skip);
    let frames = total.div_ceil(FRAME).max(1);
    let mut buf = vec![0u8; 1500];
    let mut pcm = [0i16; FRAME];
    for i in 0..frames {
        let start = (i * FRAME).min(samples.len());
        let end = ((i + 1) * FRAME).min(samples.len());
        pcm.fill(0);
        pcm[..end - start].copy_from_slice(&samples[start..end]);
        let n = encoder.encode(&pcm, &mut buf)?;
        let last = i + 1 == frames;
        let granule = if last {
            total as u64
        } else {
            ((i + 1) * FRAME) as u64
        };
        let info = match (last, (i + 1) % 50 == 0) {
            (true, _) => PacketWriteEndInfo::EndStream,
            (false, true) => PacketWriteEndInfo::EndPage,
            (false, false) => PacketWriteEndInfo::NormalPacket,
        };
        w.write_packet(buf[..n].to_vec(), serial, info, granule)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use touchtone::inband::ToneGenerator;

    fn tones_48k(tones: &str, on: u32, off: u32) -> Vec<i16> {
        let mut g = ToneGenerator::new(48_000).unwrap();
        g.push_silence(200);
        g.push_tones(tones, on, off).unwrap();
        g.push_silence(200);
        g.render()
    }

    fn file(samples: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        write_ogg_opus(&mut v, samples, 32_000).unwrap();
        v
    }

    #[test]
    fn digits_and_their_times_come_back_from_an_ogg_opus_file() {
        let bytes = file(&tones_48k("123A*#", 100, 100));
        assert_eq!(&bytes[..4], b"OggS");
        let digits = detect_in_ogg_opus(&bytes[..], WavOptions::default()).unwrap();
        let keys: String = digits.iter().map(|d| d.digit).collect();
        assert_eq!(keys, "123A*#");
        for (i, d) in digits.iter().enumerate() {
            // 200 ms of silence, then one tone every 200 ms: with the pre-skip applied, the edges are
            // where they were before encoding, within what the codec blurs (a few ms).
            let start = 200.0 + 200.0 * i as f64;
            assert!((d.start_ms - start).abs() < 6.0, "{d:?}");
            assert!((d.end_ms - start - 100.0).abs() < 6.0, "{d:?}");
            assert!((d.duration_ms() - 100.0).abs() < 10.0, "{d:?}");
        }
    }

    #[test]
    fn a_truncated_file_gives_the_digits_before_the_cut_then_an_error() {
        let bytes = file(&tones_48k("159", 100, 900));
        let cut = &bytes[..bytes.len() * 2 / 3];
        let items: Vec<_> = OpusDigits::new(cut, WavOptions::default())
            .unwrap()
            .collect();
        let keys: String = items
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|d| d.digit)
            .collect();
        assert_eq!(keys, "15");
        assert!(matches!(items.last(), Some(Err(OpusFileError::Truncated))));
    }

    #[test]
    fn not_ogg_not_opus_and_damage_are_typed_errors() {
        assert!(matches!(
            OpusDigits::new(&b""[..], WavOptions::default()),
            Err(OpusFileError::Empty)
        ));
        assert!(matches!(
            OpusDigits::new(&b"RIFF\0\0\0\0WAVEfmt "[..], WavOptions::default()),
            Err(OpusFileError::NotOgg)
        ));
        let mut bytes = file(&tones_48k("1", 100, 100));
        // A Vorbis-like first packet: Ogg, but not Opus.
        let mut other = bytes.clone();
        let at = other.windows(8).position(|w| w == b"OpusHead").unwrap();
        other[at..at + 8].copy_from_slice(b"OpusHeaD");
        assert!(OpusDigits::new(&other[..], WavOptions::default()).is_err());
        // A flipped byte in an audio page: the checksum catches it.
        let n = bytes.len();
        bytes[n - 20] ^= 0x55;
        let r: Result<Vec<_>, _> = OpusDigits::new(&bytes[..], WavOptions::default())
            .unwrap()
            .collect();
        assert!(matches!(r, Err(OpusFileError::Invalid(_))), "{r:?}");
        assert!(matches!(
            OpusDigits::new(
                &file(&[0; 960])[..],
                WavOptions {
                    channel: Some(1),
                    ..Default::default()
                }
            ),
            Err(OpusFileError::NoChannel {
                channel: 1,
                channels: 1
            })
        ));
    }
}
