//! RFC 4733 telephone-event streams in a capture: which RTP streams carry them, at what clock rate, and
//! the digits they hold.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use touchtone::{DtmfReceiver, EndCause, RtpInfo, TelephoneEvent};

use crate::error::CaptureError;
use crate::pcap::{CaptureReader, Datagram};

/// How telephone-event streams are picked out of a capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureOptions {
    /// The telephone-event payload type; `None`: every dynamic payload type (96-127) whose packets are
    /// (at least 90%) 4-byte payloads.
    pub payload_type: Option<u8>,
    /// The telephone-event clock rate in Hz; `None`: inferred from how fast durations grow against capture
    /// time (8000, 16000 or 48000; 8000 if unclear).
    pub clock_rate: Option<u32>,
}

/// One RTP stream: one direction, SSRC and payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The RTP synchronisation source.
    pub ssrc: u32,
    /// The RTP payload type.
    pub payload_type: u8,
}

/// A key press found in a capture (reported at its key-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedDigit {
    /// The stream that carried it.
    pub stream: StreamKey,
    /// The telephone-event clock rate used for its duration.
    pub clock_rate: u32,
    /// The RFC 4733 event code.
    pub event: u8,
    /// The DTMF character, `None` for event codes above 15.
    pub tone: Option<char>,
    /// When it started, from the first UDP datagram of the capture: the key-up's capture time less the
    /// duration.
    pub start: Duration,
    /// How long it was held.
    pub duration: Duration,
    /// What ended it: its end packet, the next event, or a timeout.
    pub end: EndCause,
}

impl CapturedDigit {
    /// The digit as a [`DigitRecord`](touchtone::DigitRecord) (the JSON digit record of
    /// `touchtone pcap`): `start_ms`, the stream (`ssrc`, `pt`, `src`, `dst`), `rate` and `end`.
    pub fn record(&self) -> touchtone::DigitRecord {
        let mut r =
            touchtone::DigitRecord::new(self.event, touchtone::DigitSource::Rfc4733, self.duration);
        r.start_ms = Some(touchtone::record::millis(self.start));
        r.ssrc = Some(self.stream.ssrc);
        r.pt = Some(self.stream.payload_type);
        r.rate = Some(self.clock_rate);
        r.src = Some(self.stream.src);
        r.dst = Some(self.stream.dst);
        r.end = Some(self.end);
        r
    }
}

/// One telephone-event packet of a telephone-event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedPacket {
    /// The stream that carried it.
    pub stream: StreamKey,
    /// When it was captured, from the first UDP datagram of the capture.
    pub time: Duration,
    /// Its RTP header fields.
    pub rtp: RtpInfo,
    /// Its telephone-event payload.
    pub event: TelephoneEvent,
}

/// A stream's packets kept until it is known to be telephone-event and at what rate.
const DECIDE_AFTER: usize = 64;

/// Packets later than this after the capture's first (a century: damaged or forged timestamps, such as
/// pcapng's 64-bit ones in seconds) are taken at this time, which the receiver's clock can still count.
const LATEST: Duration = Duration::from_secs(100 * 365 * 86_400);

#[derive(Debug)]
enum Verdict {
    Undecided(Vec<(Duration, RtpInfo, TelephoneEvent)>),
    Events(Option<Box<DtmfReceiver>>, u32),
    NotEvents,
}

#[derive(Debug)]
struct Stream {
    total: u64,
    four: u64,
    verdict: Verdict,
}

/// Finds telephone-event streams and their digits in UDP datagrams, fed one at a time (sans I/O).
///
/// A stream's first packets are held until its first end packet (or 64 packets) show whether it carries
/// telephone events and at which clock rate; after that its packets go straight through, so memory stays
/// bounded however long the capture.
#[derive(Debug)]
pub struct Scanner {
    options: CaptureOptions,
    packets_only: bool,
    base: Instant,
    first: Option<Duration>,
    streams: HashMap<StreamKey, Stream>,
    digits: VecDeque<CapturedDigit>,
    packets: VecDeque<CapturedPacket>,
}

impl Scanner {
    /// A scanner that reports digits ([`Scanner::poll_digit`]).
    pub fn new(options: CaptureOptions) -> Self {
        Self::with_mode(options, false)
    }

    /// A scanner that reports every telephone-event packet instead of digits ([`Scanner::poll_packet`]).
    pub fn packets(options: CaptureOptions) -> Self {
        Self::with_mode(options, true)
    }

    fn with_mode(options: CaptureOptions, packets_only: bool) -> Self {
        Scanner {
            options,
            packets_only,
            base: Instant::now(),
            first: None,
            streams: HashMap::new(),
            digits: VecDeque::new(),
            packets: VecDeque::new(),
        }
    }

    /// Takes in one UDP datagram of the capture (in capture order).
    pub fn handle_datagram(&mut self, dg: &Datagram) {
        let first = *self.first.get_or_insert(dg.time);
        let time = dg.time.saturating_sub(first).min(LATEST);
        let Ok((rtp, pt, payload)) = RtpInfo::parse(&dg.payload) else {
            return;
        };
        let wanted = match self.options.payload_type {
            Some(p) => p == pt,
            None => (96..=127).contains(&pt),
        };
        if !wanted {
            return;
        }
        let key = StreamKey {
            src: dg.src,
            dst: dg.dst,
            ssrc: rtp.ssrc,
            payload_type: pt,
        };
        let stream = self.streams.entry(key).or_insert(Stream {
            total: 0,
            four: 0,
            verdict: Verdict::Undecided(Vec::new()),
        });
        stream.total += 1;
        // Telephone-event payloads are 4 bytes; audio almost never is.
        let event = (payload.len() == 4)
            .then(|| TelephoneEvent::parse(payload).ok())
            .flatten();
        if event.is_some() {
            stream.four += 1;
        }
        let mut out = Out {
            base: self.base,
            packets_only: self.packets_only,
            digits: &mut self.digits,
            packets: &mut self.packets,
        };
        match (&mut stream.verdict, event) {
            (Verdict::Undecided(held), Some(ev)) => {
                held.push((time, rtp, ev));
                if held.len() >= DECIDE_AFTER || (ev.end && held.len() >= 3) {
                    stream.decide(key, &self.options, &mut out);
                }
            }
            (Verdict::Events(rx, _), Some(ev)) => out.feed(key, rx.as_deref_mut(), time, rtp, ev),
            _ => {}
        }
    }

    /// Ends the capture: undecided streams are decided, and digits still held get their key-up.
    pub fn finish(&mut self) {
        let mut out = Out {
            base: self.base,
            packets_only: self.packets_only,
            digits: &mut self.digits,
            packets: &mut self.packets,
        };
        for (key, stream) in &mut self.streams {
            if matches!(stream.verdict, Verdict::Undecided(_)) {
                stream.decide(*key, &self.options, &mut out);
            }
            if let Verdict::Events(Some(rx), rate) = &mut stream.verdict {
                rx.handle_timeout(self.base + Duration::from_secs(u64::from(u32::MAX)));
                out.collect(*key, rx, *rate);
            }
        }
    }

    /// The next digit found, in the order their key-ups were seen.
    pub fn poll_digit(&mut self) -> Option<CapturedDigit> {
        self.digits.pop_front()
    }

    /// The next telephone-event packet (for a scanner made with [`Scanner::packets`]).
    pub fn poll_packet(&mut self) -> Option<CapturedPacket> {
        self.packets.pop_front()
    }
}

/// Where a stream's results go.
struct Out<'a> {
    base: Instant,
    packets_only: bool,
    digits: &'a mut VecDeque<CapturedDigit>,
    packets: &'a mut VecDeque<CapturedPacket>,
}

impl Out<'_> {
    fn feed(
        &mut self,
        key: StreamKey,
        rx: Option<&mut DtmfReceiver>,
        time: Duration,
        rtp: RtpInfo,
        event: TelephoneEvent,
    ) {
        if self.packets_only {
            self.packets.push_back(CapturedPacket {
                stream: key,
                time,
                rtp,
                event,
            });
            return;
        }
        let Some(rx) = rx else { return };
        let now = self.base + time;
        rx.handle_timeout(now);
        let _ = rx.handle_packet(now, rtp, &event.to_bytes());
        let rate = rx.clock_rate();
        self.collect(key, rx, rate);
    }

    fn collect(&mut self, key: StreamKey, rx: &mut DtmfReceiver, rate: u32) {
        while let Some(d) = rx.poll_event() {
            let Some(end) = d.end_cause().filter(|_| d.is_end()) else {
                continue;
            };
            let at = d.at().saturating_duration_since(self.base);
            self.digits.push_back(CapturedDigit {
                stream: key,
                clock_rate: rate,
                event: d.event(),
                tone: d.tone(),
                start: at.saturating_sub(d.duration()),
                duration: d.duration(),
                end,
            });
        }
    }
}

impl Stream {
    /// Decides whether the stream carries telephone events and at what rate, and replays what it held.
    fn decide(&mut self, key: StreamKey, options: &CaptureOptions, out: &mut Out<'_>) {
        let Verdict::Undecided(held) = std::mem::replace(&mut self.verdict, Verdict::NotEvents)
        else {
            return;
        };
        if options.payload_type.is_none() && self.four * 10 < self.total * 9 {
            return;
        }
        let rate = options.clock_rate.unwrap_or_else(|| infer_rate(&held));
        let mut rx = (!out.packets_only).then(|| Box::new(DtmfReceiver::new(rate)));
        for (time, rtp, ev) in held {
            out.feed(key, rx.as_deref_mut(), time, rtp, ev);
        }
        self.verdict = Verdict::Events(rx, rate);
    }
}

/// Guesses the clock rate from how fast durations grow against capture time.
fn infer_rate(packets: &[(Duration, RtpInfo, TelephoneEvent)]) -> u32 {
    let mut rates = vec![];
    for w in packets.windows(2) {
        let ((ta, ra, a), (tb, rb, b)) = (w[0], w[1]);
        let dt = tb.saturating_sub(ta);
        if ra.timestamp == rb.timestamp
            && b.duration > a.duration
            && dt > Duration::from_millis(5)
            && !b.end
        {
            rates.push(f64::from(b.duration - a.duration) / dt.as_secs_f64());
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

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::CapturedDigit {}
    impl Sealed for super::CapturedPacket {}
}

/// What a [`CaptureScan`] yields: [`CapturedDigit`] or [`CapturedPacket`].
pub trait ScanItem: sealed::Sealed + Sized {
    #[doc(hidden)]
    fn scanner(options: CaptureOptions) -> Scanner;
    #[doc(hidden)]
    fn poll(scanner: &mut Scanner) -> Option<Self>;
}

impl ScanItem for CapturedDigit {
    fn scanner(options: CaptureOptions) -> Scanner {
        Scanner::new(options)
    }
    fn poll(scanner: &mut Scanner) -> Option<Self> {
        scanner.poll_digit()
    }
}

impl ScanItem for CapturedPacket {
    fn scanner(options: CaptureOptions) -> Scanner {
        Scanner::packets(options)
    }
    fn poll(scanner: &mut Scanner) -> Option<Self> {
        scanner.poll_packet()
    }
}

#[derive(Debug)]
enum Phase {
    Running,
    Failed(CaptureError),
    Done,
}

/// Digits or packets of a capture as an iterator, read as they are needed, in constant memory.
///
/// When the capture turns out damaged or truncated, what was found before the damage comes first, then
/// the error, then the end.
pub struct CaptureScan<R: Read, T, P = fn(u64)> {
    reader: CaptureReader<R>,
    scanner: Scanner,
    phase: Phase,
    progress: P,
    item: PhantomData<T>,
}

impl<R: Read, T, P> std::fmt::Debug for CaptureScan<R, T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureScan")
            .field("reader", &self.reader)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<R: Read, T: ScanItem> CaptureScan<R, T> {
    /// Reads the capture's header; the items come as the iterator is advanced.
    pub fn new(reader: R, options: CaptureOptions) -> Result<Self, CaptureError> {
        Ok(CaptureScan {
            reader: CaptureReader::new(reader)?,
            scanner: T::scanner(options),
            phase: Phase::Running,
            progress: |_| {},
            item: PhantomData,
        })
    }
}

impl<R: Read, T: ScanItem, P: FnMut(u64)> CaptureScan<R, T, P> {
    /// Calls `progress` with the bytes read so far after every datagram.
    pub fn with_progress<Q: FnMut(u64)>(self, progress: Q) -> CaptureScan<R, T, Q> {
        CaptureScan {
            reader: self.reader,
            scanner: self.scanner,
            phase: self.phase,
            progress,
            item: PhantomData,
        }
    }

    /// Bytes of the capture read so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes_read()
    }
}

impl<R: Read, T: ScanItem, P: FnMut(u64)> Iterator for CaptureScan<R, T, P> {
    type Item = Result<T, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = T::poll(&mut self.scanner) {
                return Some(Ok(item));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Failed(e) => return Some(Err(e)),
                Phase::Running => match self.reader.next_datagram() {
                    Ok(Some(dg)) => {
                        self.scanner.handle_datagram(&dg);
                        (self.progress)(self.reader.bytes_read());
                        self.phase = Phase::Running;
                    }
                    Ok(None) => self.scanner.finish(),
                    Err(e) => {
                        self.scanner.finish();
                        self.phase = Phase::Failed(e);
                    }
                },
            }
        }
    }
}

/// Every RFC 4733 digit in a pcap or pcapng capture, ordered by start time.
///
/// A damaged or truncated capture is an error even when digits came before the damage; use
/// [`CaptureScan`] to keep those.
pub fn digits_in_capture<R: Read>(
    reader: R,
    options: CaptureOptions,
) -> Result<Vec<CapturedDigit>, CaptureError> {
    let mut digits =
        CaptureScan::<R, CapturedDigit>::new(reader, options)?.collect::<Result<Vec<_>, _>>()?;
    digits.sort_by_key(|d| d.start);
    Ok(digits)
}

/// Every telephone-event packet in a pcap or pcapng capture, ordered by capture time and sequence number.
pub fn packets_in_capture<R: Read>(
    reader: R,
    options: CaptureOptions,
) -> Result<Vec<CapturedPacket>, CaptureError> {
    let mut packets =
        CaptureScan::<R, CapturedPacket>::new(reader, options)?.collect::<Result<Vec<_>, _>>()?;
    packets.sort_by_key(|p| (p.time, p.rtp.sequence));
    Ok(packets)
}
