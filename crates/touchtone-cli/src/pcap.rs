//! `touchtone pcap`: RFC 4733 digits from packet captures (pcap and pcapng, plain RTP over UDP).

use std::io::BufReader;
use std::path::PathBuf;

use serde::Serialize;
use touchtone_capture::{
    CaptureError, CaptureOptions, CaptureScan, CapturedDigit, CapturedPacket, ScanItem, StreamKey,
};

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

/// Runs `touchtone pcap`.
pub fn run(args: Args) -> Result<(), Failure> {
    let input = crate::input::open(&args.file)?;
    let name = input.name;
    let fail = |e: CaptureError| Failure::input(format!("{name}: {e}"));
    let options = CaptureOptions {
        payload_type: args.pt,
        clock_rate: args.rate,
    };
    let reader = BufReader::new(input.reader);
    if args.packets {
        let (mut packets, result) = scan::<_, CapturedPacket>(reader, options, input.size);
        let result = result.map_err(fail)?;
        packets.sort_by_key(|p| (p.time, p.rtp.sequence));
        for p in &packets {
            print_packet(args.format, p);
        }
        return result.map_err(fail);
    }
    let (mut digits, result) = scan::<_, CapturedDigit>(reader, options, input.size);
    let result = result.map_err(fail)?;
    digits.sort_by_key(|d| d.start);
    for d in &digits {
        print_digit(args.format, d);
    }
    if digits.is_empty() && args.format == Format::Text && result.is_ok() {
        eprintln!("no RFC 4733 digits found");
    }
    result.map_err(fail)
}

/// Everything found in the capture, with the progress line; a header error (nothing could be read) in
/// the outer result, a later error (after what came before it) in the inner one.
type Scanned<T> = (Vec<T>, Result<Result<(), CaptureError>, CaptureError>);

fn scan<R: std::io::Read, T: ScanItem>(
    reader: R,
    options: CaptureOptions,
    size: u64,
) -> Scanned<T> {
    let mut progress = Progress::new("reading", size);
    let mut found = vec![];
    let mut result = Ok(());
    match CaptureScan::<_, T>::new(reader, options) {
        Ok(items) => {
            for item in items.with_progress(|done| progress.update(done)) {
                match item {
                    Ok(x) => found.push(x),
                    Err(e) => result = Err(e),
                }
            }
        }
        Err(e) => return (found, Err(e)),
    }
    progress.finish();
    (found, Ok(result))
}

fn ssrc_str(key: &StreamKey) -> String {
    format!("{:#010x}", key.ssrc)
}

fn print_packet(format: Format, p: &CapturedPacket) {
    let l = PacketLine {
        t_ms: ms(p.time.as_secs_f64() * 1000.0),
        src: p.stream.src.to_string(),
        dst: p.stream.dst.to_string(),
        ssrc: ssrc_str(&p.stream),
        pt: p.stream.payload_type,
        seq: p.rtp.sequence,
        timestamp: p.rtp.timestamp,
        marker: p.rtp.marker,
        event: p.event.event,
        end: p.event.end,
        volume: p.event.volume,
        duration: p.event.duration,
    };
    match format {
        Format::Json => json_line(&l),
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

fn print_digit(format: Format, d: &CapturedDigit) {
    match format {
        Format::Json => json_line(&d.record()),
        Format::Text => outln!(
            "{}  {:>10.1} ms  {:>7.1} ms  ssrc {} {} -> {} pt {} ({} Hz)",
            d.tone
                .map_or_else(|| format!("event {}", d.event), |c| c.to_string()),
            ms(d.start.as_secs_f64() * 1000.0),
            ms(d.duration.as_secs_f64() * 1000.0),
            ssrc_str(&d.stream),
            d.stream.src,
            d.stream.dst,
            d.stream.payload_type,
            d.clock_rate
        ),
    }
}
