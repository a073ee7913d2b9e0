//! Shared test support: running the binary, per-test temporary directories, WAV and capture writers.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use touchtone::DtmfSender;
use touchtone::inband::ToneGenerator;

/// Runs `touchtone` with `args` and waits for it.
pub fn touchtone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_touchtone"))
        .args(args)
        .output()
        .expect("run touchtone")
}

/// The command, to add stdin or pipes before running it.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_touchtone"));
    c.args(args);
    c
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary directory of one test, removed when the test ends.
pub struct Dir(tempfile::TempDir);

impl Dir {
    /// A fresh, empty directory.
    pub fn new() -> Self {
        Dir(tempfile::Builder::new()
            .prefix("touchtone-cli-")
            .tempdir()
            .expect("temporary directory"))
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `bytes` to `name` and returns the path as a string.
    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }
}

/// The `digit` field of every JSON line, concatenated.
pub fn digits_of(json: &str) -> String {
    json.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["digit"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Every JSON line, parsed.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---- WAV ----

/// A WAV file with a given format tag, bits and interleaved sample bytes.
pub fn wav_bytes(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut v = b"RIFF".to_vec();
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    v.extend_from_slice(&align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// 100 ms of silence, then each tone for 100 ms with 100 ms gaps, as 16-bit PCM.
pub fn tones_pcm(rate: u32, tones: &str) -> Vec<i16> {
    let mut g = ToneGenerator::new(rate).unwrap();
    g.push_silence(100);
    g.push_tones(tones, 100, 100).unwrap();
    g.render()
}

// ---- captures ----

/// An RTP packet.
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A call's RTP: PCMU audio every 20 ms and the telephone-events (payload type 101) of `tones`, 100/70 ms.
pub fn call_packets(tones: &str, rate: u32) -> Vec<(Duration, Vec<u8>)> {
    call_packets_of(0xabc, tones, rate)
}

/// [`call_packets`] with another SSRC.
pub fn call_packets_of(ssrc: u32, tones: &str, rate: u32) -> Vec<(Duration, Vec<u8>)> {
    let t0 = Instant::now();
    let mut s = DtmfSender::new(rate);
    s.set_can_send(true);
    s.insert_dtmf(t0, tones, 100, 70).unwrap();
    let mut out = vec![];
    let mut seq = 0u16;
    while let Some(t) = s.poll_timeout() {
        s.handle_timeout(t);
        while let Some(p) = s.poll_packet() {
            seq = seq.wrapping_add(1);
            let payload = p.payload.to_bytes();
            out.push((
                p.at - t0,
                rtp(101, seq, p.timestamp, ssrc, p.marker, &payload),
            ));
        }
    }
    for k in 0..(out.last().unwrap().0.as_millis() / 20) as u32 {
        seq = seq.wrapping_add(1);
        out.push((
            Duration::from_millis(u64::from(k) * 20),
            rtp(0, seq, k * 160, ssrc, false, &[0xff; 160]),
        ));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Link types used by the tests.
pub const ETHERNET: u32 = 1;
pub const NULL: u32 = 0;
pub const LOOP: u32 = 108;
pub const RAW: u32 = 101;

/// A UDP datagram 10.0.0.1:4000 -> 10.0.0.2:5000 framed for `link`. NULL and LOOP frames carry the address
/// family in the byte order given: a big-endian host writes NULL big-endian, and LOOP is always big-endian.
pub fn frame(link: u32, big_endian_family: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![];
    match link {
        ETHERNET => PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4000, 5000)
            .write(&mut v, payload)
            .unwrap(),
        NULL | LOOP | RAW => {
            if link != RAW {
                v.extend_from_slice(&if big_endian_family {
                    2u32.to_be_bytes()
                } else {
                    2u32.to_le_bytes()
                });
            }
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(4000, 5000)
                .write(&mut v, payload)
                .unwrap()
        }
        other => panic!("no framing for link type {other}"),
    }
    v
}

fn u16b(v: &mut Vec<u8>, x: u16, be: bool) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn u32b(v: &mut Vec<u8>, x: u32, be: bool) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

/// A classic pcap file (microsecond timestamps) of `packets` on `link`, in the byte order given.
pub fn pcap(link: u32, big_endian: bool, packets: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    let mut v = vec![];
    u32b(&mut v, 0xa1b2_c3d4, big_endian);
    u16b(&mut v, 2, big_endian);
    u16b(&mut v, 4, big_endian);
    v.extend_from_slice(&[0; 8]);
    u32b(&mut v, 65535, big_endian);
    u32b(&mut v, link, big_endian);
    for (t, p) in packets {
        let f = frame(link, big_endian || link == LOOP, p);
        u32b(&mut v, 1_700_000_000 + t.as_secs() as u32, big_endian);
        u32b(&mut v, t.subsec_micros(), big_endian);
        u32b(&mut v, f.len() as u32, big_endian);
        u32b(&mut v, f.len() as u32, big_endian);
        v.extend_from_slice(&f);
    }
    v
}

/// How a pcapng section is written.
#[derive(Clone, Copy)]
pub struct Section {
    /// Big-endian blocks.
    pub big_endian: bool,
    /// The `if_tsresol` option byte, or `None` for none (microseconds).
    pub tsresol: Option<u8>,
    /// Simple Packet Blocks (no timestamps) instead of Enhanced Packet Blocks.
    pub simple: bool,
}

impl Section {
    /// Little-endian, nanoseconds, Enhanced Packet Blocks.
    pub const DEFAULT: Section = Section {
        big_endian: false,
        tsresol: Some(9),
        simple: false,
    };
}

/// One pcapng section (header, one Ethernet interface, the packets), to be concatenated with others.
pub fn pcapng_section(s: Section, packets: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    let be = s.big_endian;
    let block = |typ: u32, body: &[u8]| {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        let mut b = vec![];
        u32b(&mut b, typ, be);
        u32b(&mut b, len, be);
        b.extend_from_slice(&body);
        u32b(&mut b, len, be);
        b
    };
    let mut shb = vec![];
    u32b(&mut shb, 0x1a2b_3c4d, be);
    u16b(&mut shb, 1, be);
    u16b(&mut shb, 0, be);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut v = block(0x0a0d_0d0a, &shb);
    let mut idb = vec![];
    u16b(&mut idb, ETHERNET as u16, be);
    idb.extend_from_slice(&[0, 0]);
    u32b(&mut idb, 0, be);
    let per_sec: u128 = match s.tsresol {
        None => 1_000_000,
        Some(r) => {
            u16b(&mut idb, 9, be);
            u16b(&mut idb, 1, be);
            idb.extend_from_slice(&[r, 0, 0, 0]);
            idb.extend_from_slice(&[0, 0, 0, 0]);
            if r & 0x80 == 0 {
                10u128.pow(u32::from(r))
            } else {
                1u128 << (r & 0x7f)
            }
        }
    };
    v.extend(block(1, &idb));
    for (t, p) in packets {
        let f = frame(ETHERNET, false, p);
        let mut body = vec![];
        if s.simple {
            u32b(&mut body, f.len() as u32, be);
            body.extend_from_slice(&f);
            v.extend(block(3, &body));
        } else {
            let at = Duration::from_secs(1_700_000_000) + *t;
            let ts = (at.as_nanos() * per_sec / 1_000_000_000) as u64;
            u32b(&mut body, 0, be);
            u32b(&mut body, (ts >> 32) as u32, be);
            u32b(&mut body, ts as u32, be);
            u32b(&mut body, f.len() as u32, be);
            u32b(&mut body, f.len() as u32, be);
            body.extend_from_slice(&f);
            v.extend(block(6, &body));
        }
    }
    v
}

/// Reads one line of a command's stdout, closes the pipe, and returns its exit status and stderr.
pub fn first_line_then_close(args: &[&str]) -> (String, std::process::ExitStatus, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run touchtone");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // The reader is dropped here: the pipe is closed, as `| head -1` does.
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (line, status, err)
}

/// Runs the command with a deadline: `None` when it had to be killed.
pub fn run_with_deadline(args: &[&str], deadline: Duration) -> Option<Output> {
    let mut child = command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run touchtone");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
