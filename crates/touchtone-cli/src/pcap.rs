//! `touchtone pcap`: RFC 4733 digits from packet captures (pcap and pcapng, plain RTP over UDP).

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use touchtone::receiver::EndCause;
use touchtone::{DtmfReceiver, RtpInfo};

use crate::Failure;
use crate::output::outln;
use crate::output::{Format, json_line, ms};
use crate::progress::Progress;

/// Arguments of `touchtone pcap`.
#[derive(clap::Args)]
pub struct Args {
    /// The capture file, pcap or pcapng (`-` reads standard input).
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The telephone-event payload type; by default, dynamic payload types that carry 4-byte payloads.
    #[arg(long)]
    pt: Option<u8>,
    /// The telephone-event clock rate in Hz; by default inferred from the packets (8000 if unclear).
    #[arg(long)]
    rate: Option<u32>,
    /// List every telephone-event packet (timestamp, marker, event, end bit, volume, duration) instead of
    /// the digits.
    #[arg(long)]
    packets: bool,
}

/// One UDP datagram from the capture.
struct Datagram {
    time_ns: u64,
    src: SocketAddr,
    dst: SocketAddr,
    payload: Vec<u8>,
}

/// A telephone-event stream: one direction, SSRC and payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StreamKey {
    src: SocketAddr,
    dst: SocketAddr,
    ssrc: u32,
    pt: u8,
}

struct Candidate {
    time_ns: u64,
    rtp: RtpInfo,
    payload: [u8; 4],
}

/// One telephone-event packet, as `--packets` lists it.
#[derive(Serialize)]
struct PacketLine {
    t_ms: f64,
    src: String,
    dst: String,
    ssrc: String,
    pt: u8,
    seq: u16,
    timestamp: u32,
    marker: bool,
    event: u8,
    end: bool,
    volume: u8,
    duration: u16,
}

#[derive(Serialize)]
struct DigitLine {
    digit: String,
    t_ms: f64,
    duration_ms: f64,
    source: &'static str,
    ssrc: String,
    src: String,
    dst: String,
    pt: u8,
    rate: u32,
    end: &'static str,
}

/// Runs `touchtone pcap`.
pub fn run(args: Args) -> Result<(), Failure> {
    let crate::input::Input {
        reader: input,
        size,
        name,
    } = crate::input::open(&args.file)?;
    let mut reader = CaptureReader::new(BufReader::new(input))
        .map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let mut progress = Progress::new("reading", size);
    let mut counts: HashMap<StreamKey, (u64, u64)> = HashMap::new();
    let mut candidates: HashMap<StreamKey, Vec<Candidate>> = HashMap::new();
    let mut first_ns = None;
    let result = loop {
        let dg = match reader.next_datagram() {
            Ok(Some(dg)) => dg,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        progress.update(reader.bytes_read);
        first_ns.get_or_insert(dg.time_ns);
        let Some((rtp, pt, payload)) = parse_rtp(&dg.payload) else {
            continue;
        };
        let key = StreamKey {
            src: dg.src,
            dst: dg.dst,
            ssrc: rtp.ssrc,
            pt,
        };
        let wanted = match args.pt {
            Some(p) => p == pt,
            None => (96..=127).contains(&pt),
        };
        if !wanted {
            continue;
        }
        let c = counts.entry(key).or_default();
        c.0 += 1;
        if let Ok(four) = <[u8; 4]>::try_from(payload) {
            c.1 += 1;
            candidates.entry(key).or_default().push(Candidate {
                time_ns: dg.time_ns,
                rtp,
                payload: four,
            });
        }
    };
    progress.finish();

    let base = Instant::now();
    let first_ns = first_ns.unwrap_or(0);
    let mut lines = vec![];
    let mut packet_lines = vec![];
    for (key, packets) in &candidates {
        let (total, four) = counts[key];
        // Telephone-event streams carry 4-byte payloads; audio streams almost never do.
        if args.pt.is_none() && four * 10 < total * 9 {
            continue;
        }
        if args.packets {
            for p in packets {
                let ev = touchtone::TelephoneEvent::parse(&p.payload).expect("four bytes");
                packet_lines.push(PacketLine {
                    t_ms: ms(p.time_ns.saturating_sub(first_ns) as f64 / 1e6),
                    src: key.src.to_string(),
                    dst: key.dst.to_string(),
                    ssrc: format!("{:#010x}", key.ssrc),
                    pt: key.pt,
                    seq: p.rtp.sequence,
                    timestamp: p.rtp.timestamp,
                    marker: p.rtp.marker,
                    event: ev.event,
                    end: ev.end,
                    volume: ev.volume,
                    duration: ev.duration,
                });
            }
            continue;
        }
        let rate = args.rate.unwrap_or_else(|| infer_rate(packets));
        let mut rx = DtmfReceiver::new(rate);
        let at = |ns: u64| base + Duration::from_nanos(ns.saturating_sub(first_ns));
        let collect = |rx: &mut DtmfReceiver, lines: &mut Vec<(f64, DigitLine)>| {
            while let Some(d) = rx.poll_event() {
                if !d.is_end() {
                    continue;
                }
                let t =
                    (d.at() - base).as_secs_f64() * 1000.0 - d.duration().as_secs_f64() * 1000.0;
                lines.push((
                    t,
                    DigitLine {
                        digit: d
                            .tone()
                            .map_or_else(|| format!("event {}", d.event()), |c| c.to_string()),
                        t_ms: ms(t.max(0.0)),
                        duration_ms: ms(d.duration().as_secs_f64() * 1000.0),
                        source: "rfc4733",
                        ssrc: format!("{:#010x}", key.ssrc),
                        src: key.src.to_string(),
                        dst: key.dst.to_string(),
                        pt: key.pt,
                        rate,
                        end: match d.end_cause() {
                            Some(EndCause::EndPacket) => "end-packet",
                            Some(EndCause::NewEvent) => "next-event",
                            _ => "timeout",
                        },
                    },
                ));
            }
        };
        for p in packets {
            let now = at(p.time_ns);
            rx.handle_timeout(now);
            let _ = rx.handle_packet(now, p.rtp, &p.payload);
            collect(&mut rx, &mut lines);
        }
        rx.handle_timeout(base + Duration::from_secs(u64::from(u32::MAX)));
        collect(&mut rx, &mut lines);
    }
    if args.packets {
        packet_lines.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms).then(a.seq.cmp(&b.seq)));
        for l in &packet_lines {
            match args.format {
                Format::Json => json_line(l),
                Format::Text => outln!(
                    "{:>10.1} ms  {} -> {} ssrc {} pt {} seq {} ts {} M={} event={} E={} vol={} dur={}",
                    l.t_ms,
                    l.src,
                    l.dst,
                    l.ssrc,
                    l.pt,
                    l.seq,
                    l.timestamp,
                    u8::from(l.marker),
                    l.event,
                    u8::from(l.end),
                    l.volume,
                    l.duration
                ),
            }
        }
        return result.map_err(|e| Failure::input(format!("{name}: {e}")));
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, l) in &lines {
        match args.format {
            Format::Json => json_line(l),
            Format::Text => outln!(
                "{}  {:>10.1} ms  {:>7.1} ms  ssrc {} {} -> {} pt {} ({} Hz)",
                l.digit,
                l.t_ms,
                l.duration_ms,
                l.ssrc,
                l.src,
                l.dst,
                l.pt,
                l.rate
            ),
        }
    }
    if lines.is_empty() && args.format == Format::Text && result.is_ok() {
        eprintln!("no RFC 4733 digits found");
    }
    result.map_err(|e| Failure::input(format!("{name}: {e}")))
}

/// Guesses the clock rate from how fast durations grow against capture time.
fn infer_rate(packets: &[Candidate]) -> u32 {
    let mut rates = vec![];
    for w in packets.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let da = u16::from_be_bytes([a.payload[2], a.payload[3]]);
        let db = u16::from_be_bytes([b.payload[2], b.payload[3]]);
        let dt = b.time_ns.saturating_sub(a.time_ns);
        if a.rtp.timestamp == b.rtp.timestamp
            && db > da
            && dt > 5_000_000
            && b.payload[1] & 0x80 == 0
        {
            rates.push(f64::from(db - da) / (dt as f64 / 1e9));
        }
    }
    if rates.is_empty() {
        return 8000;
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    [8000u32, 16_000, 48_000]
        .into_iter()
        .min_by(|a, b| {
            (f64::from(*a) - median)
                .abs()
                .total_cmp(&(f64::from(*b) - median).abs())
        })
        .unwrap_or(8000)
}

/// Reads the RTP header: (fields, payload type, payload), or `None` if it is not RTP version 2.
fn parse_rtp(b: &[u8]) -> Option<(RtpInfo, u8, &[u8])> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let pt = b[1] & 0x7f;
    if (72..=76).contains(&pt) {
        return None; // RTCP
    }
    let cc = usize::from(b[0] & 0x0f);
    let mut off = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let ext = b.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*b.last()?))?;
    }
    let payload = b.get(off..end)?;
    let info = RtpInfo {
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        sequence: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        marker: b[1] & 0x80 != 0,
    };
    Some((info, pt, payload))
}

/// Classic pcap or pcapng, record by record.
struct CaptureReader<R: Read> {
    inner: R,
    kind: Kind,
    bytes_read: u64,
}

enum Kind {
    Pcap {
        big_endian: bool,
        nanos: bool,
        link: u32,
    },
    PcapNg {
        big_endian: bool,
        links: Vec<(u32, u64)>,
    },
}

const MAX_RECORD: usize = 1 << 20;

impl<R: Read> CaptureReader<R> {
    fn new(mut inner: R) -> Result<Self, String> {
        let mut magic = [0u8; 4];
        match inner.read(&mut magic) {
            Ok(0) => return Err("empty input: not a capture file".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read: {e}")),
        }
        let mut r = CaptureReader {
            inner,
            kind: Kind::Pcap {
                big_endian: false,
                nanos: false,
                link: 1,
            },
            bytes_read: 4,
        };
        match magic {
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d] => {
                let big_endian = magic[0] == 0xa1;
                let nanos = magic == [0x4d, 0x3c, 0xb2, 0xa1] || magic == [0xa1, 0xb2, 0x3c, 0x4d];
                let mut head = [0u8; 20];
                r.read_exact(&mut head, "pcap header")?;
                let link = word(&head[16..20], big_endian);
                r.kind = Kind::Pcap {
                    big_endian,
                    nanos,
                    link,
                };
            }
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                let mut len_bom = [0u8; 8];
                r.read_exact(&mut len_bom, "pcapng section header")?;
                let big_endian = len_bom[4..8] == [0x1a, 0x2b, 0x3c, 0x4d];
                if !big_endian && len_bom[4..8] != [0x4d, 0x3c, 0x2b, 0x1a] {
                    return Err("invalid pcapng: bad byte-order magic".into());
                }
                let len = word(&len_bom[..4], big_endian) as usize;
                if !(28..=MAX_RECORD).contains(&len) {
                    return Err(format!("invalid pcapng: section header of {len} bytes"));
                }
                r.skip(len - 12, "pcapng section header")?;
                r.kind = Kind::PcapNg {
                    big_endian,
                    links: vec![],
                };
            }
            _ => return Err("not a pcap or pcapng file (unknown magic number)".into()),
        }
        Ok(r)
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), String> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format!("truncated capture: the file ends inside a {what}")
            }
            _ => format!("cannot read: {e}"),
        })?;
        self.bytes_read += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), String> {
        let mut buf = vec![0u8; n];
        self.read_exact(&mut buf, what)
    }

    /// Reads the first byte of a record; `Ok(false)` at a clean end of file.
    fn more(&mut self, first: &mut [u8]) -> Result<bool, String> {
        match self.inner.read(&mut first[..1]) {
            Ok(0) => Ok(false),
            Ok(_) => {
                self.bytes_read += 1;
                let rest = first.len() - 1;
                let mut tail = vec![0u8; rest];
                self.read_exact(&mut tail, "record header")?;
                first[1..].copy_from_slice(&tail);
                Ok(true)
            }
            Err(e) => Err(format!("cannot read: {e}")),
        }
    }

    /// The next UDP datagram in the capture, skipping everything else.
    fn next_datagram(&mut self) -> Result<Option<Datagram>, String> {
        loop {
            let (time_ns, link, frame) = match &self.kind {
                Kind::Pcap {
                    big_endian,
                    nanos,
                    link,
                } => {
                    let (be, nanos, link) = (*big_endian, *nanos, *link);
                    let mut head = [0u8; 16];
                    if !self.more(&mut head)? {
                        return Ok(None);
                    }
                    let secs = u64::from(word(&head[0..4], be));
                    let frac = u64::from(word(&head[4..8], be));
                    let incl = word(&head[8..12], be) as usize;
                    if incl > MAX_RECORD {
                        return Err(format!("invalid pcap: a record of {incl} bytes"));
                    }
                    let mut frame = vec![0u8; incl];
                    self.read_exact(&mut frame, "packet record")?;
                    let ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
                    (ns, link, frame)
                }
                Kind::PcapNg { big_endian, .. } => {
                    let be = *big_endian;
                    let mut head = [0u8; 8];
                    if !self.more(&mut head)? {
                        return Ok(None);
                    }
                    let typ = word(&head[0..4], be);
                    let len = word(&head[4..8], be) as usize;
                    if !(12..=MAX_RECORD).contains(&len) || !len.is_multiple_of(4) {
                        return Err(format!("invalid pcapng: a block of {len} bytes"));
                    }
                    let mut body = vec![0u8; len - 8];
                    self.read_exact(&mut body, "block")?;
                    let Kind::PcapNg { links, .. } = &mut self.kind else {
                        unreachable!()
                    };
                    match typ {
                        1 if body.len() >= 8 => {
                            let link = u32::from(half(&body[0..2], be));
                            let options = body.get(8..body.len().saturating_sub(4)).unwrap_or(&[]);
                            links.push((link, ng_resolution(options, be)));
                            continue;
                        }
                        0x0a0d0d0a => {
                            links.clear();
                            continue;
                        }
                        6 if body.len() >= 24 => {
                            let iface = word(&body[0..4], be) as usize;
                            let Some(&(link, per_sec)) = links.get(iface) else {
                                return Err(format!(
                                    "invalid pcapng: packet on undeclared interface {iface}"
                                ));
                            };
                            let ts = (u64::from(word(&body[4..8], be)) << 32)
                                | u64::from(word(&body[8..12], be));
                            let cap = word(&body[12..16], be) as usize;
                            let Some(frame) = body.get(20..20 + cap) else {
                                return Err("invalid pcapng: packet longer than its block".into());
                            };
                            let ns = (u128::from(ts) * 1_000_000_000 / u128::from(per_sec.max(1)))
                                as u64;
                            (ns, link, frame.to_vec())
                        }
                        _ => continue,
                    }
                }
            };
            if let Some((src, dst, payload)) = udp_of(link, &frame) {
                return Ok(Some(Datagram {
                    time_ns,
                    src,
                    dst,
                    payload: payload.to_vec(),
                }));
            }
        }
    }
}

/// Timestamp units per second from an interface block's options (if_tsresol, default microseconds).
fn ng_resolution(mut opts: &[u8], be: bool) -> u64 {
    while opts.len() >= 4 {
        let code = half(&opts[0..2], be);
        let len = usize::from(half(&opts[2..4], be));
        let padded = len.div_ceil(4) * 4;
        if code == 0 || opts.len() < 4 + padded {
            break;
        }
        if code == 9 && len == 1 {
            let v = opts[4];
            let exp = u32::from(v & 0x7f).min(18);
            return if v & 0x80 == 0 {
                10u64.pow(exp)
            } else {
                1u64 << exp.min(63)
            };
        }
        opts = &opts[4 + padded..];
    }
    1_000_000
}

fn word(b: &[u8], be: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn half(b: &[u8], be: bool) -> u16 {
    let a = [b[0], b[1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

/// Finds the UDP payload in a link-layer frame.
fn udp_of(link: u32, f: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let (ethertype, ip) = match link {
        1 => {
            let mut off = 12;
            let mut et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
            while et == 0x8100 || et == 0x88a8 {
                off += 4;
                et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
            }
            (et, f.get(off + 2..)?)
        }
        113 => (u16::from_be_bytes([*f.get(14)?, *f.get(15)?]), f.get(16..)?),
        276 => (u16::from_be_bytes([*f.first()?, *f.get(1)?]), f.get(20..)?),
        0 | 108 => {
            let family = u32::from_le_bytes(f.get(0..4)?.try_into().ok()?);
            (if family == 2 { 0x0800 } else { 0x86dd }, f.get(4..)?)
        }
        101 | 12 | 228 | 229 => (if f.first()? >> 4 == 6 { 0x86dd } else { 0x0800 }, f),
        _ => return None,
    };
    let (src_ip, dst_ip, proto, l4): (IpAddr, IpAddr, u8, &[u8]) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            if frag & 0x1fff != 0 || ihl < 20 {
                return None;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?);
            let end = total.min(ip.len());
            (src.into(), dst.into(), ip[9], ip.get(ihl..end)?)
        }
        0x86dd => {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(24..40)?).ok()?);
            (src.into(), dst.into(), *ip.get(6)?, ip.get(40..)?)
        }
        _ => return None,
    };
    if proto != 17 || l4.len() < 8 {
        return None;
    }
    let sport = u16::from_be_bytes([l4[0], l4[1]]);
    let dport = u16::from_be_bytes([l4[2], l4[3]]);
    let len = usize::from(u16::from_be_bytes([l4[4], l4[5]])).clamp(8, l4.len());
    Some((
        SocketAddr::new(src_ip, sport),
        SocketAddr::new(dst_ip, dport),
        &l4[8..len],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(bytes: &[u8]) -> Result<usize, String> {
        let mut r = CaptureReader::new(bytes)?;
        let mut n = 0;
        while let Some(dg) = r.next_datagram()? {
            let _ = parse_rtp(&dg.payload);
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn a_short_interface_block_is_read() {
        // Section header, then an interface block of 16 bytes: no options at all.
        let mut b = vec![
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
        ];
        b.extend_from_slice(&[0xff; 8]);
        b.extend_from_slice(&[28, 0, 0, 0]);
        b.extend_from_slice(&[1, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0]);
        assert_eq!(read_all(&b), Ok(0));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_all(&bytes);
        }

        #[test]
        fn arbitrary_records_after_a_valid_header_never_panic(
            magic in prop_oneof![Just([0xd4u8, 0xc3, 0xb2, 0xa1]), Just([0x0a, 0x0d, 0x0d, 0x0a])],
            link in prop_oneof![Just(1u32), Just(113), Just(276), Just(101), Just(0), any::<u32>()],
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

        #[test]
        fn frames_of_any_shape_never_panic(link in any::<u32>(), frame in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some((_, _, payload)) = udp_of(link, &frame) {
                let _ = parse_rtp(payload);
            }
        }
    }
}
