//! Reading pcap and pcapng captures, block by block, in constant memory: the UDP datagrams they hold.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader};

use crate::error::CaptureError;
use crate::net::udp_in_frame;

/// The reading buffer at the start; it grows for larger blocks.
const INITIAL_BUFFER: usize = 256 * 1024;
/// The largest block read (16 MiB); a larger one is taken for damage.
pub const MAX_BLOCK: usize = 16 << 20;

/// One UDP datagram from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// When it was captured, since the Unix epoch (a Simple Packet Block, which has no timestamp, takes
    /// the time of the packet before it).
    pub time: Duration,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// The input, filling each buffer the parser offers (pcap-parser reads once per refill), keeping the
/// first I/O error for the caller.
struct Source<R> {
    prefix: Vec<u8>,
    inner: R,
    error: Arc<Mutex<Option<std::io::Error>>>,
    failed: bool,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other("read failed"));
        }
        let mut n = self.prefix.len().min(buf.len());
        buf[..n].copy_from_slice(&self.prefix[..n]);
        self.prefix.drain(..n);
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Hand over what was read; the error comes with the next read.
                    *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    self.failed = true;
                    if n > 0 {
                        return Ok(n);
                    }
                    return Err(std::io::Error::other("read failed"));
                }
            }
        }
        Ok(n)
    }
}

enum Parser<R: Read> {
    Ng(PcapNGReader<Source<R>>),
    Legacy(LegacyPcapReader<Source<R>>),
}

/// An interface of the current pcapng section.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second (`if_tsresol`).
    per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

/// What the blocks so far said about how to read the next ones.
#[derive(Debug, Default)]
struct State {
    /// The interfaces of the current pcapng section.
    interfaces: Vec<Interface>,
    /// Whether the current pcapng section is big-endian.
    big_endian: bool,
    /// A classic pcap's link type and whether its timestamps are in nanoseconds.
    legacy: Option<(u32, bool)>,
    /// The time of the last packet, for Simple Packet Blocks.
    last_time: Duration,
}

/// Reads a pcap or pcapng capture (chosen by its magic number) and yields its UDP datagrams.
///
/// pcapng files may hold several sections, each with its own byte order and interfaces; every
/// interface has its own link type and timestamp resolution (`if_tsresol`, powers of 10 or 2) and
/// offset. Enhanced, Simple and the obsolete Packet Blocks are read. Memory stays bounded by the largest
/// block ([`MAX_BLOCK`]).
pub struct CaptureReader<R: Read> {
    parser: Parser<R>,
    state: State,
    error: Arc<Mutex<Option<std::io::Error>>>,
    done: bool,
}

impl<R: Read> std::fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("bytes_read", &self.bytes_read())
            .finish_non_exhaustive()
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header: a pcap or pcapng capture, or an error.
    pub fn new(mut inner: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        let mut n = 0;
        while n < 4 {
            match inner.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureError::Io(e)),
            }
        }
        if n == 0 {
            return Err(CaptureError::Empty);
        }
        let error = Arc::new(Mutex::new(None));
        let source = Source {
            prefix: magic[..n].to_vec(),
            inner,
            error: error.clone(),
            failed: false,
        };
        let legacy_magic = [
            0xa1b2_c3d4u32,
            0xa1b2_3c4d,
            0xa1b2_cd34,
            0xd4c3_b2a1,
            0x4d3c_b2a1,
            0x34cd_b2a1,
        ];
        let parser = if n == 4 && magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            PcapNGReader::new(INITIAL_BUFFER, source).map(Parser::Ng)
        } else if n == 4 && legacy_magic.contains(&u32::from_be_bytes(magic)) {
            LegacyPcapReader::new(INITIAL_BUFFER, source).map(Parser::Legacy)
        } else if n < 4 {
            Err(PcapError::Incomplete(4 - n))
        } else {
            Err(PcapError::HeaderNotRecognized)
        };
        let parser = parser.map_err(|e| match e {
            PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
                CaptureError::Truncated
            }
            PcapError::ReadError => take_io_error(&error),
            PcapError::HeaderNotRecognized => CaptureError::NotACapture,
            _ => CaptureError::Malformed { offset: 0 },
        })?;
        Ok(CaptureReader {
            parser,
            state: State::default(),
            error,
            done: false,
        })
    }

    /// Bytes of the capture read so far.
    pub fn bytes_read(&self) -> u64 {
        self.parser_ref().consumed() as u64
    }

    fn parser_ref(&self) -> &dyn PcapReaderIterator {
        match &self.parser {
            Parser::Ng(p) => p,
            Parser::Legacy(p) => p,
        }
    }

    fn parser(&mut self) -> &mut dyn PcapReaderIterator {
        match &mut self.parser {
            Parser::Ng(p) => p,
            Parser::Legacy(p) => p,
        }
    }

    /// The next UDP datagram, skipping every other packet and block; `Ok(None)` at the end. After an
    /// error, the reader ends.
    pub fn next_datagram(&mut self) -> Result<Option<Datagram>, CaptureError> {
        while !self.done {
            let result = self.step();
            match result {
                Ok(Some(d)) => return Ok(Some(d)),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Reads one block: a datagram, nothing (another block, or more input was read), or an error.
    fn step(&mut self) -> Result<Option<Datagram>, CaptureError> {
        let offset = self.bytes_read();
        let is_ng = matches!(self.parser, Parser::Ng(_));
        let state = &mut self.state;
        let parser: &mut dyn PcapReaderIterator = match &mut self.parser {
            Parser::Ng(p) => p,
            Parser::Legacy(p) => p,
        };
        match parser.next() {
            Ok((len, block)) => {
                let found = state.block(block);
                parser.consume(len);
                found
            }
            Err(PcapError::Eof) => {
                self.done = true;
                Ok(None)
            }
            Err(PcapError::Incomplete(_)) => {
                let before = parser.data().len();
                if parser.refill().is_err() {
                    return Err(take_io_error(&self.error));
                }
                if parser.data().len() == before && !parser.reader_exhausted() {
                    self.grow()?;
                }
                Ok(None)
            }
            Err(PcapError::BufferTooSmall) => {
                self.grow()?;
                Ok(None)
            }
            Err(PcapError::UnexpectedEof) => {
                // A pcapng block whose bytes are all there but too few for its type is damage, not
                // truncation.
                let data = parser.data();
                let whole = is_ng
                    && u32_at(data, 4, state.big_endian)
                        .is_some_and(|len| data.len() >= len as usize);
                Err(if whole {
                    CaptureError::Malformed { offset }
                } else {
                    CaptureError::Truncated
                })
            }
            Err(PcapError::ReadError) => Err(take_io_error(&self.error)),
            Err(_) => Err(CaptureError::Malformed { offset }),
        }
    }

    /// Doubles the buffer for a large block, up to [`MAX_BLOCK`].
    fn grow(&mut self) -> Result<(), CaptureError> {
        let parser = self.parser();
        let size = parser.data().len().max(INITIAL_BUFFER) * 2;
        if size > MAX_BLOCK * 2 || !parser.grow(size) {
            return Err(CaptureError::BlockTooLarge { max: MAX_BLOCK });
        }
        if parser.refill().is_err() {
            return Err(take_io_error(&self.error));
        }
        Ok(())
    }
}

fn take_io_error(slot: &Mutex<Option<std::io::Error>>) -> CaptureError {
    match slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => CaptureError::Io(e),
        None => CaptureError::Io(std::io::Error::other("read failed")),
    }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> Option<u32> {
    let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    })
}

impl State {
    /// Takes in one block: the datagram it carries, if any.
    fn block(&mut self, block: PcapBlockOwned<'_>) -> Result<Option<Datagram>, CaptureError> {
        let (linktype, time, frame) = match block {
            PcapBlockOwned::LegacyHeader(h) => {
                // The upper bits of the link type carry FCS information.
                let linktype = (h.network.0 as u32) & 0xffff;
                self.legacy = Some((linktype, h.is_nanosecond_precision()));
                return Ok(None);
            }
            PcapBlockOwned::Legacy(b) => {
                let (linktype, nanos) = self.legacy.unwrap_or((1, false));
                let frac = if nanos {
                    b.ts_usec.min(999_999_999)
                } else {
                    b.ts_usec.min(999_999) * 1000
                };
                let time = Duration::new(u64::from(b.ts_sec), frac);
                let len = (b.caplen as usize).min(b.data.len());
                (linktype, time, &b.data[..len])
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                self.interfaces.clear();
                self.big_endian = shb.big_endian();
                return Ok(None);
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                let per_sec = ts_resolution(idb.if_tsresol)
                    .ok_or(CaptureError::TimestampResolution(idb.if_tsresol))?;
                self.interfaces.push(Interface {
                    linktype: (idb.linktype.0 as u32) & 0xffff,
                    per_sec,
                    offset: idb.ts_offset(),
                });
                return Ok(None);
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let iface = self.interface(epb.if_id)?;
                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let len = (epb.caplen as usize).min(epb.data.len());
                (iface.linktype, iface.time(ts), &epb.data[..len])
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                let iface = self.interface(0)?;
                let len = (spb.origlen as usize).min(spb.data.len());
                (iface.linktype, self.last_time, &spb.data[..len])
            }
            // The obsolete Packet Block (type 2): interface (16 bits), drops (16), timestamp, lengths.
            PcapBlockOwned::NG(Block::Unknown(b)) if b.block_type == 2 => {
                let be = self.big_endian;
                let d = b.data;
                let (Some(first), Some(high), Some(low), Some(caplen)) = (
                    u32_at(d, 0, be),
                    u32_at(d, 4, be),
                    u32_at(d, 8, be),
                    u32_at(d, 12, be),
                ) else {
                    return Ok(None);
                };
                let if_id = if be { first >> 16 } else { first & 0xffff };
                let iface = self.interface(if_id)?;
                let ts = (u64::from(high) << 32) | u64::from(low);
                let data = &d[(20).min(d.len())..];
                let len = (caplen as usize).min(data.len());
                (iface.linktype, iface.time(ts), &data[..len])
            }
            PcapBlockOwned::NG(_) => return Ok(None),
        };
        self.last_time = time;
        Ok(udp_in_frame(linktype, frame).map(|udp| Datagram {
            time,
            src: udp.src,
            dst: udp.dst,
            payload: udp.payload.to_vec(),
        }))
    }

    fn interface(&self, id: u32) -> Result<Interface, CaptureError> {
        self.interfaces
            .get(id as usize)
            .copied()
            .ok_or(CaptureError::UndeclaredInterface(id))
    }
}

/// Timestamp units per second from `if_tsresol`: 10^n, or 2^n when the top bit is set. (pcap-parser
/// 0.17's `ts_resolution` compares the whole byte, top bit included, with 63, so it refuses every
/// power of two.)
fn ts_resolution(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64)
    }
}

impl Interface {
    /// A timestamp in this interface's units as time since the epoch.
    fn time(&self, ts: u64) -> Duration {
        let secs = ts / self.per_sec;
        let nanos =
            (u128::from(ts % self.per_sec) * 1_000_000_000 / u128::from(self.per_sec)) as u32;
        let secs = secs.saturating_add_signed(self.offset);
        Duration::new(secs, nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(bytes: &[u8]) -> Result<usize, CaptureError> {
        let mut r = CaptureReader::new(bytes)?;
        let mut n = 0;
        while let Some(dg) = r.next_datagram()? {
            let _ = touchtone::RtpInfo::parse(&dg.payload);
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn a_short_interface_block_is_damage() {
        // Section header, then an interface block of 16 bytes: too short for its snap length.
        let mut b = vec![
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
        ];
        b.extend_from_slice(&[0xff; 8]);
        b.extend_from_slice(&[28, 0, 0, 0]);
        b.extend_from_slice(&[1, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0]);
        assert!(matches!(
            read_all(&b),
            Err(CaptureError::Malformed { offset: 28 })
        ));
    }

    #[test]
    fn headers_and_damage_are_typed_errors() {
        assert!(matches!(read_all(b""), Err(CaptureError::Empty)));
        assert!(matches!(read_all(b"GIF8"), Err(CaptureError::NotACapture)));
        assert!(matches!(
            read_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]),
            Err(CaptureError::Truncated)
        ));
        // A packet record that announces more bytes than the file holds.
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0, 1, 2, 3]);
        assert!(matches!(read_all(&b), Err(CaptureError::Truncated)));
    }

    #[test]
    fn timestamps_follow_the_interface_resolution_and_offset() {
        let us = Interface {
            linktype: 1,
            per_sec: 1_000_000,
            offset: 0,
        };
        assert_eq!(us.time(1_500_000), Duration::from_millis(1500));
        let two = Interface {
            linktype: 1,
            per_sec: 1 << 20,
            offset: 10,
        };
        assert_eq!(two.time(3 << 19), Duration::from_millis(11_500));
    }

    #[test]
    fn timestamp_resolutions_in_powers_of_ten_and_two() {
        assert_eq!(ts_resolution(6), Some(1_000_000));
        assert_eq!(ts_resolution(9), Some(1_000_000_000));
        assert_eq!(ts_resolution(19), Some(10_000_000_000_000_000_000));
        assert_eq!(ts_resolution(20), None);
        assert_eq!(ts_resolution(0x80 | 20), Some(1 << 20));
        assert_eq!(ts_resolution(0x80 | 63), Some(1 << 63));
        assert_eq!(ts_resolution(0xff), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_all(&bytes);
        }

        #[test]
        fn arbitrary_records_after_a_valid_header_never_panic(
            magic in prop_oneof![Just([0xd4u8, 0xc3, 0xb2, 0xa1]), Just([0x0a, 0x0d, 0x0d, 0x0a])],
            link in prop_oneof![Just(1u32), Just(113), Just(276), Just(101), Just(0), Just(108), any::<u32>()],
            rest in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = magic.to_vec();
            if magic[0] == 0xd4 {
                bytes.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
                bytes.extend_from_slice(&link.to_le_bytes());
            } else {
                bytes.extend_from_slice(&28u32.to_le_bytes());
                bytes.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
                bytes.extend_from_slice(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
                bytes.extend_from_slice(&28u32.to_le_bytes());
            }
            bytes.extend_from_slice(&rest);
            let _ = read_all(&bytes);
        }
    }
}
