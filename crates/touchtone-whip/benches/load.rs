//! Load and soak benchmark of `touchtone serve`: many concurrent WebRTC calls from Rust clients over
//! WHIP, DTMF both ways with audio flowing, every digit checked.
//!
//! ```sh
//! cargo build --release -p touchtone-cli            # the server binary the benchmark starts
//! cargo bench -p touchtone-whip --bench load -- --calls 500 --burst --duration 60
//! cargo bench -p touchtone-whip --bench load -- --calls 200 --cycle --duration 3600 \
//!     --idle-timeout 10 --sample-secs 60 --json
//! ```
//!
//! Each call: the client (`touchtone_rtc::Call`, one UDP port each) posts its offer to `POST /whip`,
//! follows the server's events (`GET /whip/{id}/events?types=state,digit,closed`: the ones it checks), and once both sides are connected runs
//! rounds: the client dials a few digits (`insert_dtmf`) while the server dials others
//! (`POST /whip/{id}/dtmf`). Every key-up is checked against what was dialed: lost, duplicated, stray
//! (not dialed in this round), out of order, and a duration more than `--tolerance-ms` (one packet
//! interval) from the asked one. Client-to-server digits are read from the server's event stream,
//! server-to-client ones from the client's `PeerEvent::KeyUp`.
//!
//! Reported: setup latency (offer posted until both sides report `connected`) p50/p99 and its parts
//! (the client connected; the server's `connected` event by the server's clock and when the client
//! read it; the event stream's opening), the server's
//! CPU (from `/proc/<pid>/stat`) and RSS (`VmRSS`) per call, its descriptors, the turns of its UDP
//! port that began more than 50 ms late (`touchtone_port_stalls_total`), and the digit counts.
//! `--burst` opens every call at once; `--cycle` ends calls after a random lifetime and replaces them:
//! most are hung up (`DELETE`), some vanish (their packets stop: they go through a relay in this
//! process that is dropped, and the server must end them after `--idle-timeout`), and some vanish while
//! their server port is sprayed with junk datagrams (which must not keep them alive).
//!
//! Run without arguments (as `cargo test --benches` does) it only prints its usage.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use touchtone_rtc::{
    Call, CallHandle, ConnectionState, InsertDtmfError, PeerConfig, PeerEvent, Ptime,
};

/// The clients' heap: the server's (mimalloc on small pages, as `touchtone` runs it), so that the
/// clients cost what the server does per call.
#[global_allocator]
static HEAP: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
cargo bench -p touchtone-whip --bench load -- [options]

  --calls N            concurrent calls (200)
  --burst              open all N calls at once (else --rate calls per second)
  --rate R             calls opened per second without --burst (100)
  --duration SECS      how long the calls run once up (--burst) or the whole soak (--cycle) (60)
  --server spawn|URL   start `touchtone serve` (default) or use a running one (http://127.0.0.1:8080)
  --server-pid PID     the running server's process, for CPU, RSS and descriptors
  --server-bin PATH    the touchtone binary to start (default: next to this benchmark, target/release)
  --server-arg ARG     one more argument for the started server (repeatable)
  --idle-timeout SECS  the started server's --idle-timeout, and the bound checked for vanished calls (10)
  --cycle              calls end after --life-min..--life-max seconds and are replaced
  --life-min SECS      (20)   --life-max SECS (60)
  --vanish-share F     share of cycled calls that go silent and must time out (0.2)
  --junk-share F       share that go silent while junk datagrams hit their server port (0.1)
  --digits N           digits per round and direction, at most 8 (8)
  --tone-ms MS         tone duration (100)   --gap-ms MS  gap (70)   --pause-ms MS  between rounds (1000)
  --tolerance-ms MS    allowed key-up duration error (20: one packet interval)
  --sample-secs SECS   one line per interval (10)
  --threads N          the client runtime's worker threads (2)
  --client-ptime MS    audio per packet the clients send while not dialing: 20, 40 or 60 whatever the
                       answer asks (as Firefox, at 20), or `answer`: what the answer's a=ptime asks, else
                       20 (as Chromium) (answer)
  --client-yield-ms MS  each client's yield window before its tone changes (`Call::set_yield_window`)
                       (2, the library's default)
  --rounds spread|together
                       spread: each call starts its first round after a random part of a round, so that
                       calls dial at different times as callers do; together: every call dials as soon as
                       it is up, so a burst's calls dial in step, round after round (spread)
  --offers-first       with --burst: every client makes its socket and offer before any is posted,
                       so the burst is N offers posted at once (else each posts once its offer is made)
  --json               JSON lines on stdout (the text goes to stderr)
";

#[derive(Debug, Clone)]
struct Opts {
    calls: usize,
    burst: bool,
    rate: f64,
    duration: f64,
    server: String,
    server_pid: Option<u32>,
    server_bin: Option<PathBuf>,
    server_args: Vec<String>,
    idle_timeout: u64,
    cycle: bool,
    life_min: f64,
    life_max: f64,
    vanish_share: f64,
    junk_share: f64,
    digits: usize,
    tone_ms: u32,
    gap_ms: u32,
    pause_ms: u64,
    tolerance_ms: f64,
    sample_secs: f64,
    threads: usize,
    /// `None`: follow the answer's `a=ptime`.
    client_ptime: Option<Ptime>,
    client_yield: Duration,
    offers_first: bool,
    /// Calls start their rounds at random points of a round, not all as soon as they are up.
    spread_rounds: bool,
    json: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            calls: 200,
            burst: false,
            rate: 100.0,
            duration: 60.0,
            server: "spawn".into(),
            server_pid: None,
            server_bin: None,
            server_args: Vec::new(),
            idle_timeout: 10,
            cycle: false,
            life_min: 20.0,
            life_max: 60.0,
            vanish_share: 0.2,
            junk_share: 0.1,
            digits: 8,
            tone_ms: 100,
            gap_ms: 70,
            pause_ms: 1000,
            tolerance_ms: 20.0,
            sample_secs: 10.0,
            threads: 2,
            client_ptime: None,
            client_yield: touchtone_rtc::call::DEFAULT_YIELD_WINDOW,
            offers_first: false,
            spread_rounds: true,
            json: false,
        }
    }
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        }
        match a.as_str() {
            "--bench" => {}
            "--burst" => o.burst = true,
            "--cycle" => o.cycle = true,
            "--json" => o.json = true,
            "--calls" => o.calls = num(a, val(a)?)?,
            "--rate" => o.rate = num(a, val(a)?)?,
            "--duration" => o.duration = num(a, val(a)?)?,
            "--server" => o.server = val(a)?,
            "--server-pid" => o.server_pid = Some(num(a, val(a)?)?),
            "--server-bin" => o.server_bin = Some(PathBuf::from(val(a)?)),
            "--server-arg" => o.server_args.push(val(a)?),
            "--idle-timeout" => o.idle_timeout = num(a, val(a)?)?,
            "--life-min" => o.life_min = num(a, val(a)?)?,
            "--life-max" => o.life_max = num(a, val(a)?)?,
            "--vanish-share" => o.vanish_share = num(a, val(a)?)?,
            "--junk-share" => o.junk_share = num(a, val(a)?)?,
            "--digits" => o.digits = num(a, val(a)?)?,
            "--tone-ms" => o.tone_ms = num(a, val(a)?)?,
            "--gap-ms" => o.gap_ms = num(a, val(a)?)?,
            "--pause-ms" => o.pause_ms = num(a, val(a)?)?,
            "--tolerance-ms" => o.tolerance_ms = num(a, val(a)?)?,
            "--sample-secs" => o.sample_secs = num(a, val(a)?)?,
            "--threads" => o.threads = num(a, val(a)?)?,
            "--client-yield-ms" => o.client_yield = Duration::from_millis(num(a, val(a)?)?),
            "--client-ptime" => {
                o.client_ptime = match val(a)?.as_str() {
                    "answer" => None,
                    ms => Some(ms.parse()?),
                }
            }
            "--offers-first" => o.offers_first = true,
            "--rounds" => {
                o.spread_rounds = match val(a)?.as_str() {
                    "spread" => true,
                    "together" => false,
                    other => return Err(format!("--rounds {other}: spread or together")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    o.digits = o.digits.clamp(1, 8);
    o.calls = o.calls.max(1);
    o.threads = o.threads.max(1);
    o.sample_secs = o.sample_secs.max(1.0);
    o.life_max = o.life_max.max(o.life_min);
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Counters

/// The digits of one direction.
#[derive(Default)]
struct Dir {
    sent: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    dup: AtomicU64,
    stray: AtomicU64,
    reordered: AtomicU64,
    dur_err: AtomicU64,
    /// Of those: shorter than asked.
    short: AtomicU64,
    /// Largest |duration - asked| seen, in microseconds.
    max_err_us: AtomicU64,
    /// Key-ups ended by the receiver's end timeout or by the next event instead of an end packet
    /// (known for server-to-client digits only).
    ended_by_timeout: AtomicU64,
    ended_by_next: AtomicU64,
    /// The durations out of tolerance, rounded to the millisecond, with their counts.
    bad: Mutex<HashMap<i64, u64>>,
}

#[derive(Default, Clone, Copy, Debug)]
struct DirSnap {
    sent: u64,
    received: u64,
    lost: u64,
    dup: u64,
    stray: u64,
    reordered: u64,
    dur_err: u64,
    short: u64,
    ended_by_timeout: u64,
    ended_by_next: u64,
    max_err_ms: f64,
}

impl Dir {
    fn snap(&self) -> DirSnap {
        DirSnap {
            sent: self.sent.load(Relaxed),
            received: self.received.load(Relaxed),
            lost: self.lost.load(Relaxed),
            dup: self.dup.load(Relaxed),
            stray: self.stray.load(Relaxed),
            reordered: self.reordered.load(Relaxed),
            dur_err: self.dur_err.load(Relaxed),
            short: self.short.load(Relaxed),
            ended_by_timeout: self.ended_by_timeout.load(Relaxed),
            ended_by_next: self.ended_by_next.load(Relaxed),
            max_err_ms: self.max_err_us.load(Relaxed) as f64 / 1000.0,
        }
    }
}

impl DirSnap {
    fn minus(self, o: DirSnap) -> DirSnap {
        DirSnap {
            sent: self.sent - o.sent,
            received: self.received - o.received,
            lost: self.lost - o.lost,
            dup: self.dup - o.dup,
            stray: self.stray - o.stray,
            reordered: self.reordered - o.reordered,
            dur_err: self.dur_err - o.dur_err,
            short: self.short - o.short,
            ended_by_timeout: self.ended_by_timeout - o.ended_by_timeout,
            ended_by_next: self.ended_by_next - o.ended_by_next,
            max_err_ms: self.max_err_ms,
        }
    }
    fn plus(self, o: DirSnap) -> DirSnap {
        DirSnap {
            sent: self.sent + o.sent,
            received: self.received + o.received,
            lost: self.lost + o.lost,
            dup: self.dup + o.dup,
            stray: self.stray + o.stray,
            reordered: self.reordered + o.reordered,
            dur_err: self.dur_err + o.dur_err,
            short: self.short + o.short,
            ended_by_timeout: self.ended_by_timeout + o.ended_by_timeout,
            ended_by_next: self.ended_by_next + o.ended_by_next,
            max_err_ms: self.max_err_ms.max(o.max_err_ms),
        }
    }
    fn json(&self) -> Value {
        json!({"sent": self.sent, "received": self.received, "lost": self.lost, "dup": self.dup,
               "stray": self.stray, "reordered": self.reordered, "dur_err": self.dur_err,
               "dur_err_short": self.short, "ended_by_timeout": self.ended_by_timeout,
               "ended_by_next_event": self.ended_by_next, "max_dur_err_ms": self.max_err_ms})
    }
}

#[derive(Default)]
struct Stats {
    started: AtomicU64,
    connected: AtomicU64,
    failed: AtomicU64,
    ended: AtomicU64,
    hung_up: AtomicU64,
    vanished: AtomicU64,
    junked: AtomicU64,
    /// Vanished calls the server ended within idle timeout + 3 s, later, or not within + 15 s.
    timeout_ok: AtomicU64,
    timeout_late: AtomicU64,
    timeout_never: AtomicU64,
    junk_sent: AtomicU64,
    /// Client-to-server, server-to-client.
    c2s: Dir,
    s2c: Dir,
    setup_ms: Mutex<Vec<f64>>,
    answer_ms: Mutex<Vec<f64>>,
    /// The parts of a setup, from the offer's post: the client connected, the event stream open, the
    /// server connected by its own clock (the event's `t_ms` after the answer: a little late, as the
    /// server's clock starts before it sends the answer), and read by the client.
    client_up_ms: Mutex<Vec<f64>>,
    events_open_ms: Mutex<Vec<f64>>,
    server_up_ms: Mutex<Vec<f64>>,
    server_seen_ms: Mutex<Vec<f64>>,
    /// Setup latencies since the last sample.
    setup_interval: Mutex<Vec<f64>>,
    /// Vanish until the server's `closed`, in ms.
    timeout_ms: Mutex<Vec<f64>>,
    failures: Mutex<HashMap<String, u64>>,
    /// The clients' own `tonechange` events: how many, how many reached the benchmark more than 50 ms
    /// and 200 ms after they were due, and the latest (µs): whether the load generator keeps up.
    tone_events: AtomicU64,
    tone_late_50: AtomicU64,
    tone_late_200: AtomicU64,
    tone_late_max_us: AtomicU64,
}

impl Stats {
    fn fail(&self, why: impl Into<String>) {
        self.failed.fetch_add(1, Relaxed);
        *self.failures.lock().unwrap().entry(why.into()).or_default() += 1;
    }
}

/// The out-of-tolerance durations as `{"ms": count}`, most frequent first (at most 20).
fn bad_durations(d: &Dir) -> Value {
    let mut v: Vec<(i64, u64)> = d
        .bad
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Value::Array(v.iter().take(20).map(|(ms, n)| json!([ms, n])).collect())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn dist(v: &[f64]) -> Value {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    json!({"n": s.len(), "p50": r1(percentile(&s, 0.5)), "p90": r1(percentile(&s, 0.9)),
           "p99": r1(percentile(&s, 0.99)), "max": r1(s.last().copied().unwrap_or(f64::NAN))})
}

fn r1(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 10.0).round() / 10.0)
    } else {
        Value::Null
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

#[derive(Debug, Clone, Copy, Default)]
struct ProcSnap {
    /// utime + stime in seconds.
    cpu_s: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    /// Time its threads spent runnable but waiting for a CPU (`/proc/<pid>/task/*/schedstat`), seconds.
    rq_wait_s: f64,
}

/// Runqueue wait of every live thread of `pid`, in seconds.
fn rq_wait(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return f64::NAN;
    };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

fn proc_snap(pid: u32) -> Option<ProcSnap> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) and 20 (threads), counted from the third.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let threads = f.get(17)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcSnap {
        cpu_s: ticks / hz,
        rss_kib,
        fds,
        threads,
        rq_wait_s: rq_wait(pid),
    })
}

/// How often a thread of this process that sleeps 10 ms at a time woke more than 100 ms late, and
/// the longest such gap in microseconds: the host taking the CPU away.
static STALLS: AtomicU64 = AtomicU64::new(0);
static MAX_STALL_US: AtomicU64 = AtomicU64::new(0);

fn start_stall_probe() {
    std::thread::spawn(|| {
        let mut last = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(10));
            let now = Instant::now();
            let late = now
                .duration_since(last)
                .saturating_sub(Duration::from_millis(10));
            if late > Duration::from_millis(100) {
                STALLS.fetch_add(1, Relaxed);
            }
            MAX_STALL_US.fetch_max(late.as_micros() as u64, Relaxed);
            last = now;
        }
    });
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client over tokio's TcpStream

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Conn = BufReader<TcpStream>;

async fn read_head(r: &mut Conn) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, headers));
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// One chunk of a chunked body; `None` after the last.
async fn read_chunk(r: &mut Conn) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|_| std::io::Error::other("bad chunk size"))?;
    let mut data = vec![0; size + 2];
    if size == 0 {
        let mut end = String::new();
        r.read_line(&mut end).await?;
        return Ok(None);
    }
    r.read_exact(&mut data).await?;
    data.truncate(size);
    Ok(Some(data))
}

async fn read_body(r: &mut Conn, headers: &[(String, String)]) -> std::io::Result<Vec<u8>> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0; n];
        r.read_exact(&mut body).await?;
        Ok(body)
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        while let Some(c) = read_chunk(r).await? {
            body.extend_from_slice(&c);
        }
        Ok(body)
    } else {
        let mut body = Vec::new();
        r.read_to_end(&mut body).await?;
        Ok(body)
    }
}

/// A keep-alive connection to the server, reopened when the server closed it.
struct Http {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        Http { addr, conn: None }
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<Resp> {
        let fut = self.request_inner(method, path, content_type, body);
        match tokio::time::timeout(Duration::from_secs(30), fut).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(std::io::ErrorKind::TimedOut.into())
            }
        }
    }

    async fn request_inner(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<Resp> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = content_type {
            req.push_str(&format!("Content-Type: {t}\r\n"));
        }
        req.push_str("\r\n");
        let mut req = req.into_bytes();
        req.extend_from_slice(body);
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            if self.conn.is_none() {
                self.conn = Some(BufReader::new(TcpStream::connect(self.addr).await?));
            }
            let conn = self.conn.as_mut().expect("connected");
            let sent = conn.get_mut().write_all(&req).await;
            let head = match sent {
                Ok(()) => read_head(conn).await,
                Err(e) => Err(e),
            };
            match head {
                Ok((status, headers)) => {
                    let body = read_body(conn, &headers).await;
                    let close = headers.iter().any(|(k, v)| {
                        k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close")
                    });
                    if close || body.is_err() {
                        self.conn = None;
                    }
                    return Ok(Resp {
                        status,
                        headers,
                        body: body?,
                    });
                }
                // The server closed an idle keep-alive connection before reading the request.
                Err(_) if reused && attempt == 0 => self.conn = None,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

/// What the server's event stream says about a call.
#[derive(Debug)]
enum Sse {
    /// Read at, and the server's `t_ms` (since the call was made).
    Connected(Instant, f64),
    /// A key-up: the key, its duration in ms, and why it ended when not by an end packet.
    Digit(char, f64, Option<touchtone::EndCause>),
    Closed(Instant),
    Ended,
}

/// Opens `GET {location}/events` and forwards what it says.
async fn open_events(
    addr: SocketAddr,
    location: &str,
) -> std::io::Result<mpsc::UnboundedReceiver<Sse>> {
    let mut conn = BufReader::new(TcpStream::connect(addr).await?);
    let req = format!(
        "GET {location}/events?types=state,digit,closed HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    conn.get_mut().write_all(req.as_bytes()).await?;
    let (status, headers) = read_head(&mut conn).await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("events: status {status}")));
    }
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut text = String::new();
        loop {
            let chunk = if chunked {
                read_chunk(&mut conn).await.ok().flatten()
            } else {
                let mut b = vec![0; 4096];
                match conn.read(&mut b).await {
                    Ok(0) | Err(_) => None,
                    Ok(n) => {
                        b.truncate(n);
                        Some(b)
                    }
                }
            };
            let Some(chunk) = chunk else { break };
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(nl) = text.find('\n') {
                let line: String = text.drain(..=nl).collect();
                let Some(data) = line.trim_end().strip_prefix("data:") else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                let msg = match v["type"].as_str() {
                    Some("state") if v["kind"] == "connection" && v["state"] == "connected" => {
                        Sse::Connected(Instant::now(), v["t_ms"].as_f64().unwrap_or(f64::NAN))
                    }
                    Some("digit") => Sse::Digit(
                        v["digit"]
                            .as_str()
                            .and_then(|d| d.chars().next())
                            .unwrap_or('?'),
                        v["duration_ms"].as_f64().unwrap_or(f64::NAN),
                        match v["end"].as_str() {
                            Some("timeout") => Some(touchtone::EndCause::Timeout),
                            Some("next-event") => Some(touchtone::EndCause::NewEvent),
                            _ => None,
                        },
                    ),
                    Some("closed") => Sse::Closed(Instant::now()),
                    _ => continue,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Sse::Ended);
    });
    Ok(rx)
}

// ---------------------------------------------------------------------------------------------
// SDP candidates and the relay that lets a call vanish

/// The address of the first host candidate in `sdp`.
fn first_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|l| {
        let f: Vec<&str> = l.strip_prefix("a=candidate:")?.split(' ').collect();
        Some(SocketAddr::new(
            f.get(4)?.parse().ok()?,
            f.get(5)?.parse().ok()?,
        ))
    })
}

/// `sdp` with every candidate's address replaced by `to`.
fn with_candidate(sdp: &str, to: SocketAddr) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            let body = line.trim_end_matches(['\r', '\n']);
            if !body.starts_with("a=candidate:") {
                return line.to_string();
            }
            let mut f: Vec<String> = body.split(' ').map(str::to_string).collect();
            if f.len() > 5 {
                f[4] = to.ip().to_string();
                f[5] = to.port().to_string();
            }
            format!("{}{}", f.join(" "), &line[body.len()..])
        })
        .collect()
}

/// A UDP relay between the client and the server: each side sees only the relay. Dropping it
/// makes the call vanish from the server's point of view, without any goodbye.
struct Relay {
    /// Faces the client (announced to the client as the server's candidate).
    to_client: Arc<UdpSocket>,
    /// Faces the server (announced to the server as the client's candidate).
    to_server: Arc<UdpSocket>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn bind() -> std::io::Result<Relay> {
        let lo = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        Ok(Relay {
            to_client: Arc::new(UdpSocket::bind(lo).await?),
            to_server: Arc::new(UdpSocket::bind(lo).await?),
            tasks: Vec::new(),
        })
    }

    fn start(&mut self, client: SocketAddr, server: SocketAddr) {
        let pipe = |from: Arc<UdpSocket>, to: Arc<UdpSocket>, src: SocketAddr, dst: SocketAddr| {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, a)) = from.recv_from(&mut buf).await {
                    if a == src {
                        let _ = to.send_to(&buf[..n], dst).await;
                    }
                }
            })
        };
        self.tasks.push(pipe(
            self.to_client.clone(),
            self.to_server.clone(),
            client,
            server,
        ));
        self.tasks.push(pipe(
            self.to_server.clone(),
            self.to_client.clone(),
            server,
            client,
        ));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One call

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// `DELETE /whip/{id}` and the client hangs up.
    HangUp,
    /// The client's packets stop; the server must time the call out.
    Vanish,
    /// As `Vanish`, with junk datagrams at the server's port from the start of the call until it ends.
    Junk,
}

struct Ctx {
    opts: Opts,
    stats: Stats,
    http: SocketAddr,
    stop: AtomicBool,
    junk: UdpSocket,
    /// Calls whose task is running.
    live: AtomicU64,
    /// The clients' DTLS certificate: each client stands in for a browser, which made its key long
    /// before the call, so the benchmark does not spend its CPU making one per call.
    cert: Option<touchtone_rtc::DtlsCert>,
    /// Calls whose offer is made and waiting for `go`.
    prepared: AtomicU64,
    /// Set when the calls may post their offers: at once, or with `--burst --offers-first` once every
    /// call has its offer ready (as many browsers with their offers made), so the burst is the posting
    /// of N offers.
    go: tokio::sync::watch::Sender<bool>,
}

const KEYS: &[u8; 16] = b"0123456789*#ABCD";

/// The digits of one round and direction: rounds alternate between the two halves of the 16 keys,
/// so a late or repeated digit of the previous round shows as stray rather than as a match.
fn round_tones(call: u64, round: u64, dir: u64, n: usize) -> String {
    let half = (round % 2) as usize * 8;
    let rot = ((call + round * 3 + dir * 5) % 8) as usize;
    (0..n).map(|i| KEYS[half + (rot + i) % 8] as char).collect()
}

/// The check of one round in one direction.
struct Tally {
    expected: Vec<char>,
    seen: Vec<u32>,
    order: Vec<char>,
}

impl Tally {
    fn new(tones: &str) -> Self {
        let expected: Vec<char> = tones.chars().collect();
        Tally {
            seen: vec![0; expected.len()],
            expected,
            order: Vec::new(),
        }
    }

    fn idle() -> Self {
        Tally::new("")
    }

    fn digit(&mut self, c: char, dur_ms: f64, asked: f64, tol: f64, d: &Dir) {
        let Some(i) = self.expected.iter().position(|&e| e == c) else {
            d.stray.fetch_add(1, Relaxed);
            return;
        };
        self.seen[i] += 1;
        if self.seen[i] > 1 {
            d.dup.fetch_add(1, Relaxed);
            return;
        }
        d.received.fetch_add(1, Relaxed);
        self.order.push(c);
        let err = (dur_ms - asked).abs();
        if err.is_nan() || err > tol {
            d.dur_err.fetch_add(1, Relaxed);
            if dur_ms < asked {
                d.short.fetch_add(1, Relaxed);
            }
            *d.bad
                .lock()
                .unwrap()
                .entry(dur_ms.round() as i64)
                .or_default() += 1;
        }
        if err.is_finite() {
            d.max_err_us.fetch_max((err * 1000.0) as u64, Relaxed);
        }
    }

    fn complete(&self) -> bool {
        self.seen.iter().all(|&n| n > 0)
    }

    fn finish(&self, d: &Dir) {
        let lost = self.seen.iter().filter(|&&n| n == 0).count() as u64;
        d.lost.fetch_add(lost, Relaxed);
        let in_order: Vec<char> = self
            .expected
            .iter()
            .copied()
            .filter(|c| self.order.contains(c))
            .collect();
        if in_order != self.order {
            d.reordered.fetch_add(1, Relaxed);
        }
    }
}

/// The running call's two event sources.
struct Live {
    handle: CallHandle,
    sse: mpsc::UnboundedReceiver<Sse>,
    c2s: Tally,
    s2c: Tally,
    client_closed: bool,
    server_closed: Option<Instant>,
    sse_ended: bool,
}

impl Live {
    /// Handles events until `deadline`, or until both tallies are complete when `until_complete`.
    async fn pump(&mut self, ctx: &Ctx, deadline: Instant, until_complete: bool) {
        let o = &ctx.opts;
        let asked = f64::from(o.tone_ms);
        loop {
            if until_complete && self.c2s.complete() && self.s2c.complete() {
                return;
            }
            if self.client_closed && (self.sse_ended || self.server_closed.is_some()) {
                return;
            }
            tokio::select! {
                ev = self.handle.next_event(), if !self.client_closed => match ev {
                    Some(PeerEvent::KeyUp(d)) => {
                        let ms = d.duration.as_secs_f64() * 1000.0;
                        match d.end_cause {
                            Some(touchtone::EndCause::Timeout) => {
                                ctx.stats.s2c.ended_by_timeout.fetch_add(1, Relaxed);
                            }
                            Some(touchtone::EndCause::NewEvent) => {
                                ctx.stats.s2c.ended_by_next.fetch_add(1, Relaxed);
                            }
                            _ => {}
                        }
                        self.s2c.digit(d.tone.unwrap_or('?'), ms, asked, o.tolerance_ms, &ctx.stats.s2c);
                    }
                    Some(PeerEvent::ToneChange { at, .. }) => {
                        let late = Instant::now().saturating_duration_since(at);
                        let st = &ctx.stats;
                        st.tone_events.fetch_add(1, Relaxed);
                        st.tone_late_50.fetch_add(u64::from(late > Duration::from_millis(50)), Relaxed);
                        st.tone_late_200.fetch_add(u64::from(late > Duration::from_millis(200)), Relaxed);
                        st.tone_late_max_us.fetch_max(late.as_micros() as u64, Relaxed);
                    }
                    Some(PeerEvent::Closed) | None => self.client_closed = true,
                    Some(_) => {}
                },
                msg = self.sse.recv(), if !self.sse_ended => match msg {
                    Some(Sse::Digit(c, ms, end)) => {
                        match end {
                            Some(touchtone::EndCause::Timeout) => {
                                ctx.stats.c2s.ended_by_timeout.fetch_add(1, Relaxed);
                            }
                            Some(touchtone::EndCause::NewEvent) => {
                                ctx.stats.c2s.ended_by_next.fetch_add(1, Relaxed);
                            }
                            _ => {}
                        }
                        self.c2s.digit(c, ms, asked, o.tolerance_ms, &ctx.stats.c2s);
                    }
                    Some(Sse::Closed(at)) => self.server_closed = Some(at),
                    Some(Sse::Ended) | None => self.sse_ended = true,
                    Some(Sse::Connected(..)) => {}
                },
                _ = tokio::time::sleep_until(deadline.into()) => return,
            }
        }
    }
}

async fn run_call(ctx: Arc<Ctx>, idx: u64, fate: Fate, life: Option<Duration>) {
    ctx.live.fetch_add(1, Relaxed);
    ctx.stats.started.fetch_add(1, Relaxed);
    call(&ctx, idx, fate, life).await;
    ctx.stats.ended.fetch_add(1, Relaxed);
    ctx.live.fetch_sub(1, Relaxed);
}

async fn call(ctx: &Ctx, idx: u64, fate: Fate, life: Option<Duration>) {
    let o = &ctx.opts;
    let st = &ctx.stats;
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let config = PeerConfig {
        dtls_cert: ctx.cert.clone(),
        ptime: o.client_ptime.unwrap_or_default(),
        ..PeerConfig::default()
    };
    let mut call = match Call::bind(lo, config).await {
        Ok(c) => c,
        Err(e) => return st.fail(format!("client bind: {e}")),
    };
    call.set_yield_window(Duration::ZERO);
    let Ok(mut offer) = call.peer.create_offer() else {
        return st.fail("create offer");
    };
    let mut relay = None;
    if fate != Fate::HangUp {
        let Ok(r) = Relay::bind().await else {
            return st.fail("relay bind");
        };
        offer = with_candidate(&offer, r.to_server.local_addr().expect("bound"));
        relay = Some(r);
    }

    ctx.prepared.fetch_add(1, Relaxed);
    let _ = ctx.go.subscribe().wait_for(|go| *go).await;
    // Offer posted -> answer -> both sides connected.
    let t0 = Instant::now();
    let resp = Http::new(ctx.http)
        .request("POST", "/whip", Some("application/sdp"), offer.as_bytes())
        .await;
    let resp = match resp {
        Ok(r) if r.status == 201 => r,
        Ok(r) => {
            return st.fail(format!(
                "offer: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(80)
                    .collect::<String>()
            ));
        }
        Err(e) => return st.fail(format!("offer: {e}")),
    };
    let t_answer = Instant::now();
    let Some(location) = resp.header("location").map(str::to_string) else {
        return st.fail("answer without Location");
    };
    let mut control = Http::new(ctx.http);
    let mut answer = String::from_utf8_lossy(&resp.body).into_owned();
    let Some(server_media) = first_candidate(&answer) else {
        return st.fail("answer without a candidate");
    };
    if let Some(r) = relay.as_mut() {
        answer = with_candidate(&answer, r.to_client.local_addr().expect("bound"));
        r.start(call.peer.local_addr(), server_media);
    }
    if o.client_ptime.is_some() {
        // A client with its own packet time does not hear what the answer asks.
        answer = answer
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("a=ptime:"))
            .collect();
    }
    if let Err(e) = call.peer.accept_answer(Instant::now(), &answer) {
        let _ = control.request("DELETE", &location, None, b"").await;
        return st.fail(format!("accept answer: {e}"));
    }
    call.set_yield_window(o.client_yield);
    let handle = call.spawn();
    let sse = match tokio::time::timeout(Duration::from_secs(20), open_events(ctx.http, &location))
        .await
    {
        Ok(Ok(rx)) => rx,
        Ok(Err(e)) => {
            handle.close();
            let _ = control.request("DELETE", &location, None, b"").await;
            return st.fail(format!("events: {e}"));
        }
        Err(_) => {
            handle.close();
            let _ = control.request("DELETE", &location, None, b"").await;
            return st.fail("events: timeout");
        }
    };
    let t_events = Instant::now();
    let mut live = Live {
        handle,
        sse,
        c2s: Tally::idle(),
        s2c: Tally::idle(),
        client_closed: false,
        server_closed: None,
        sse_ended: false,
    };

    // Junk at the server's port for the whole call, and after it vanished until the server ends it.
    let junk_stop = Arc::new(AtomicBool::new(false));
    if fate == Fate::Junk {
        ctx.stats.junked.fetch_add(1, Relaxed);
    }

    let (mut client_up, mut server_up, mut server_t) = (None, None, f64::NAN);
    let setup_deadline = t0 + Duration::from_secs(20);
    while client_up.is_none() || server_up.is_none() {
        tokio::select! {
            ev = live.handle.next_event() => match ev {
                Some(PeerEvent::Connection(ConnectionState::Connected)) => client_up = Some(Instant::now()),
                Some(PeerEvent::Closed) | None => { live.client_closed = true; break; }
                _ => {}
            },
            msg = live.sse.recv() => match msg {
                Some(Sse::Connected(at, t)) => { server_up = Some(at); server_t = t; }
                Some(Sse::Closed(_)) | Some(Sse::Ended) | None => { live.sse_ended = true; break; }
                _ => {}
            },
            _ = tokio::time::sleep_until(setup_deadline.into()) => break,
        }
    }
    let (Some(c), Some(s)) = (client_up, server_up) else {
        live.handle.close();
        let _ = control.request("DELETE", &location, None, b"").await;
        let why = if live.client_closed {
            "setup: client closed"
        } else if live.sse_ended {
            "setup: server closed"
        } else {
            "setup: not connected within 20 s"
        };
        return st.fail(why);
    };
    let setup = c.max(s).duration_since(t0).as_secs_f64() * 1000.0;
    let answer_ms = t_answer.duration_since(t0).as_secs_f64() * 1000.0;
    st.connected.fetch_add(1, Relaxed);
    st.setup_ms.lock().unwrap().push(setup);
    st.setup_interval.lock().unwrap().push(setup);
    st.answer_ms.lock().unwrap().push(answer_ms);
    let since = |t: Instant| t.duration_since(t0).as_secs_f64() * 1000.0;
    st.client_up_ms.lock().unwrap().push(since(c));
    st.server_seen_ms.lock().unwrap().push(since(s));
    st.events_open_ms.lock().unwrap().push(since(t_events));
    if server_t.is_finite() {
        st.server_up_ms.lock().unwrap().push(answer_ms + server_t);
    }

    if fate == Fate::Junk {
        junk_tasks().lock().unwrap().push(JunkTarget {
            to: server_media,
            stop: junk_stop.clone(),
            seed: idx,
        });
    }

    // Rounds of DTMF both ways until the call's life is over or the benchmark stops.
    let end = life.map(|l| t0 + l);
    let mut round = 0u64;
    let n = o.digits;
    let play = Duration::from_millis(u64::from(o.tone_ms + o.gap_ms) * n as u64);
    if o.spread_rounds {
        // Callers press keys when they do, not in step: the first round starts somewhere in a round.
        let round_len = play + Duration::from_millis(o.pause_ms);
        let offset = round_len.mul_f64(Rng(idx.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).unit());
        live.pump(ctx, Instant::now() + offset, false).await;
    }
    while !ctx.stop.load(Relaxed)
        && end.is_none_or(|e| Instant::now() < e)
        && !live.client_closed
        && !live.sse_ended
    {
        let c_tones = round_tones(idx, round, 0, n);
        let s_tones = round_tones(idx, round, 1, n);
        live.c2s = Tally::new(&c_tones);
        live.s2c = Tally::new(&s_tones);
        // The client dials.
        let mut ok = false;
        for _ in 0..50 {
            match live.handle.insert_dtmf(&c_tones, o.tone_ms, o.gap_ms).await {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(InsertDtmfError::CallEnded) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        if !ok {
            live.c2s = Tally::idle();
        } else {
            st.c2s.sent.fetch_add(n as u64, Relaxed);
        }
        // The server dials.
        let body = format!(
            r#"{{"tones":"{s_tones}","duration":{},"gap":{}}}"#,
            o.tone_ms, o.gap_ms
        );
        let dtmf_path = format!("{location}/dtmf");
        let mut ok = false;
        for _ in 0..50 {
            match control
                .request(
                    "POST",
                    &dtmf_path,
                    Some("application/json"),
                    body.as_bytes(),
                )
                .await
            {
                Ok(r) if r.status == 200 => {
                    ok = true;
                    break;
                }
                Ok(r) if r.status == 409 => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(r) => {
                    st.fail(format!("dtmf: {}", r.status));
                    break;
                }
                Err(e) => {
                    st.fail(format!("dtmf: {e}"));
                    break;
                }
            }
        }
        if !ok {
            live.s2c = Tally::idle();
        } else {
            st.s2c.sent.fetch_add(n as u64, Relaxed);
        }
        // Every digit, or the deadline; then the pause, in which late duplicates still count.
        let started = Instant::now();
        live.pump(ctx, started + play + Duration::from_millis(1500), true)
            .await;
        live.pump(
            ctx,
            Instant::now() + Duration::from_millis(o.pause_ms),
            false,
        )
        .await;
        live.c2s.finish(&st.c2s);
        live.s2c.finish(&st.s2c);
        live.c2s = Tally::idle();
        live.s2c = Tally::idle();
        round += 1;
    }

    // The end of the call.
    match fate {
        Fate::HangUp => {
            st.hung_up.fetch_add(1, Relaxed);
            let _ = control.request("DELETE", &location, None, b"").await;
            live.handle.close();
            let t = Instant::now() + Duration::from_secs(5);
            live.pump(ctx, t, false).await;
        }
        Fate::Vanish | Fate::Junk => {
            st.vanished.fetch_add(1, Relaxed);
            drop(control);
            let gone = Instant::now();
            drop(relay);
            tokio::time::sleep(Duration::from_millis(200)).await;
            live.handle.close();
            let bound = Duration::from_secs(o.idle_timeout + 3);
            let give_up = gone + Duration::from_secs(o.idle_timeout + 15);
            while live.server_closed.is_none() && !live.sse_ended && Instant::now() < give_up {
                live.pump(ctx, give_up, false).await;
                if live.client_closed && live.server_closed.is_none() && !live.sse_ended {
                    // Only the event stream is left to watch.
                    tokio::select! {
                        msg = live.sse.recv() => match msg {
                            Some(Sse::Closed(at)) => live.server_closed = Some(at),
                            Some(Sse::Ended) | None => live.sse_ended = true,
                            _ => {}
                        },
                        _ = tokio::time::sleep_until(give_up.into()) => {}
                    }
                }
            }
            match live.server_closed {
                Some(at) if at.duration_since(gone) <= bound => {
                    st.timeout_ok.fetch_add(1, Relaxed);
                }
                Some(_) => {
                    st.timeout_late.fetch_add(1, Relaxed);
                }
                None => {
                    st.timeout_never.fetch_add(1, Relaxed);
                }
            }
            if let Some(at) = live.server_closed {
                st.timeout_ms
                    .lock()
                    .unwrap()
                    .push(at.duration_since(gone).as_secs_f64() * 1000.0);
            }
            if live.server_closed.is_none() {
                let _ = Http::new(ctx.http)
                    .request("DELETE", &location, None, b"")
                    .await;
            }
        }
    }
    junk_stop.store(true, Relaxed);
}

/// A call whose server port gets junk.
struct JunkTarget {
    to: SocketAddr,
    stop: Arc<AtomicBool>,
    seed: u64,
}

fn junk_tasks() -> &'static Mutex<Vec<JunkTarget>> {
    static T: Mutex<Vec<JunkTarget>> = Mutex::new(Vec::new());
    &T
}

/// Sends every junk target ten datagrams a second (random bytes shaped like STUN, DTLS, RTP or
/// nothing in particular) until its call ended.
async fn junk_loop(ctx: Arc<Ctx>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let targets: Vec<(SocketAddr, u64)> = {
            let mut t = junk_tasks().lock().unwrap();
            t.retain(|j| !j.stop.load(Relaxed));
            t.iter().map(|j| (j.to, j.seed)).collect()
        };
        for (to, seed) in targets {
            let len = 1 + (rng.next() % 200) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match (rng.next() ^ seed) % 4 {
                0 => d[0] = 0x00, // STUN-like
                1 => d[0] = 0x16, // DTLS-like
                2 => d[0] = 0x80, // RTP-like
                _ => {}
            }
            if ctx.junk.send_to(&d, to).await.is_ok() {
                ctx.stats.junk_sent.fetch_add(1, Relaxed);
            }
        }
        if ctx.stop.load(Relaxed) && ctx.live.load(Relaxed) == 0 {
            return;
        }
    }
}

/// xorshift64*: enough for lifetimes and junk.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------------------------
// The server

struct Server {
    http: SocketAddr,
    pid: Option<u32>,
    child: Option<Child>,
}

impl Server {
    fn start(o: &Opts) -> Result<Server, String> {
        if o.server != "spawn" {
            let hostport = o.server.trim_start_matches("http://").trim_end_matches('/');
            let http = std::net::ToSocketAddrs::to_socket_addrs(hostport)
                .map_err(|e| format!("--server {}: {e}", o.server))?
                .next()
                .ok_or_else(|| format!("--server {}: no address", o.server))?;
            return Ok(Server {
                http,
                pid: o.server_pid,
                child: None,
            });
        }
        let bin = match &o.server_bin {
            Some(b) => b.clone(),
            None => {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                let dir = exe
                    .parent()
                    .and_then(|d| d.parent())
                    .ok_or("no target dir")?;
                dir.join("touchtone")
            }
        };
        if !bin.exists() {
            return Err(format!(
                "{} is missing: build it with `cargo build --release -p touchtone-cli`, or pass --server-bin",
                bin.display()
            ));
        }
        let room = (o.calls * 4 + 64).to_string();
        let mut cmd = Command::new(&bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--max-calls", &(o.calls * 2 + 16).to_string()])
            .args(["--idle-timeout", &o.idle_timeout.to_string()])
            .args([
                "--client-call-rate",
                "1000000",
                "--client-call-burst",
                "1000000",
            ])
            .args([
                "--max-connections",
                &room,
                "--max-connections-per-ip",
                &room,
            ])
            .args(&o.server_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The server ends with this process, even when it is killed.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("http://").nth(1)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(rest.split('/').next().unwrap_or("").to_string());
                    continue;
                }
                eprintln!("server: {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the server did not start".to_string())?;
        let http = addr
            .parse()
            .map_err(|_| format!("server address {addr:?}"))?;
        Ok(Server {
            http,
            pid: Some(child.id()),
            child: Some(child),
        })
    }

    fn snap(&self) -> Option<ProcSnap> {
        proc_snap(self.pid?)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `touchtone_calls_active` from `/metrics`.
async fn calls_active(http: SocketAddr) -> Option<u64> {
    metric(http, "touchtone_calls_active").await
}

/// A value of the server's `/metrics`.
async fn metric(http: SocketAddr, name: &str) -> Option<u64> {
    let r = Http::new(http)
        .request("GET", "/metrics", None, b"")
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&r.body);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Reporting

struct Out {
    json: bool,
}

impl Out {
    fn text(&self, s: &str) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }
    fn json(&self, v: &Value) {
        if self.json {
            println!("{v}");
        }
    }
}

#[derive(Clone)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: u64,
    calls: u64,
}

struct Sampler {
    last_t: Instant,
    last_cpu: Option<f64>,
    last_rq: (f64, f64),
    last_c2s: DirSnap,
    last_s2c: DirSnap,
    last_started: u64,
    samples: Vec<Sample>,
}

impl Sampler {
    fn new(now: Instant, srv: &Server) -> Self {
        Sampler {
            last_t: now,
            last_cpu: srv.snap().map(|s| s.cpu_s),
            last_rq: (
                srv.snap().map_or(f64::NAN, |s| s.rq_wait_s),
                rq_wait(std::process::id()),
            ),
            last_c2s: DirSnap::default(),
            last_s2c: DirSnap::default(),
            last_started: 0,
            samples: Vec::new(),
        }
    }

    async fn sample(&mut self, ctx: &Ctx, srv: &Server, t0: Instant, out: &Out) {
        let now = Instant::now();
        let dt = now.duration_since(self.last_t).as_secs_f64();
        let p = srv.snap();
        let cpu = p.map(|p| p.cpu_s);
        let cpu_pct = match (cpu, self.last_cpu) {
            (Some(a), Some(b)) if dt > 0.0 => (a - b) / dt * 100.0,
            _ => f64::NAN,
        };
        let calls = calls_active(ctx.http).await.unwrap_or(0);
        let rq = (
            p.map_or(f64::NAN, |p| p.rq_wait_s),
            rq_wait(std::process::id()),
        );
        let rq_ms_per_s = (
            (rq.0 - self.last_rq.0) / dt * 1000.0,
            (rq.1 - self.last_rq.1) / dt * 1000.0,
        );
        self.last_rq = rq;
        let stalls = STALLS.swap(0, Relaxed);
        let max_stall_ms = MAX_STALL_US.swap(0, Relaxed) as f64 / 1000.0;
        let st = &ctx.stats;
        let c2s = st.c2s.snap();
        let s2c = st.s2c.snap();
        let (dc, ds) = (c2s.minus(self.last_c2s), s2c.minus(self.last_s2c));
        let both = dc.plus(ds);
        let started = st.started.load(Relaxed);
        let mut setups = std::mem::take(&mut *st.setup_interval.lock().unwrap());
        setups.sort_by(f64::total_cmp);
        let t = now.duration_since(t0).as_secs_f64();
        let rss = p.map_or(0, |p| p.rss_kib);
        let fds = p.map_or(0, |p| p.fds);
        out.text(&format!(
            "t={t:>6.0}s server rss={:>6.1} MiB fds={fds:>5} calls={calls:>4} cpu={cpu_pct:>5.1}% | new calls {:>4} setup p50 {:>6.1} p99 {:>6.1} ms | digits sent {:>6} recv {:>6} lost {} dup {} stray {} dur_err {} | failed {} timeouts ok {} late {} never {} | runq wait server {:.0} client {:.0} ms/s, stalls>100ms {stalls} max {max_stall_ms:.0} ms | load {}",
            rss as f64 / 1024.0,
            started - self.last_started,
            percentile(&setups, 0.5),
            percentile(&setups, 0.99),
            both.sent,
            both.received,
            both.lost,
            both.dup,
            both.stray,
            both.dur_err,
            st.failed.load(Relaxed),
            st.timeout_ok.load(Relaxed),
            st.timeout_late.load(Relaxed),
            st.timeout_never.load(Relaxed),
            rq_ms_per_s.0,
            rq_ms_per_s.1,
            loadavg(),
        ));
        out.json(&json!({
            "type": "sample", "t_s": t.round(), "server_rss_kib": rss, "server_fds": fds,
            "server_threads": p.map_or(0, |p| p.threads), "server_cpu_pct": r1(cpu_pct),
            "calls_active": calls, "calls_started": started - self.last_started,
            "setup_ms": dist(&setups), "c2s": dc.json(), "s2c": ds.json(),
            "failed_total": st.failed.load(Relaxed),
            "timeouts": {"ok": st.timeout_ok.load(Relaxed), "late": st.timeout_late.load(Relaxed),
                         "never": st.timeout_never.load(Relaxed)},
            "runqueue_wait_ms_per_s": {"server": r1(rq_ms_per_s.0), "client": r1(rq_ms_per_s.1)},
            "client_stalls_over_100ms": stalls, "client_max_stall_ms": r1(max_stall_ms),
            "loadavg": loadavg(),
        }));
        self.samples.push(Sample {
            t,
            rss_kib: rss,
            fds,
            calls,
        });
        self.last_t = now;
        self.last_cpu = cpu;
        self.last_c2s = c2s;
        self.last_s2c = s2c;
        self.last_started = started;
    }
}

// ---------------------------------------------------------------------------------------------

/// Says so when the kernel caps UDP receive buffers below what the server's port asks for (16 MiB):
/// a busy moment then drops datagrams at the socket.
fn warn_small_socket_buffers() {
    let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(max) = max.filter(|m| *m < 16 << 20) {
        eprintln!(
            "load: net.core.rmem_max is {max} bytes; the server's sockets ask for 16 MiB \
             (sysctl -w net.core.rmem_max=16777216), else bursts drop datagrams"
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        // `cargo test --benches` runs the binary without arguments: nothing to measure there.
        eprintln!("load benchmark: no arguments given; usage:\n{USAGE}");
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    start_stall_probe();
    warn_small_socket_buffers();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("load: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    let mut server = match Server::start(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .expect("runtime");
    let summary = rt.block_on(run(opts.clone(), &server));
    drop(rt);
    server.stop();
    let out = Out { json: opts.json };
    out.json(&summary);
}

async fn run(opts: Opts, srv: &Server) -> Value {
    let out = Out { json: opts.json };
    let junk = UdpSocket::bind("127.0.0.1:0").await.expect("junk socket");
    let cert = touchtone_rtc::generate_certificate();
    let ctx = Arc::new(Ctx {
        opts: opts.clone(),
        stats: Stats::default(),
        http: srv.http,
        stop: AtomicBool::new(false),
        junk,
        live: AtomicU64::new(0),
        cert: cert.clone(),
        prepared: AtomicU64::new(0),
        go: tokio::sync::watch::Sender::new(!(opts.burst && opts.offers_first) || opts.cycle),
    });
    let o = &ctx.opts;
    out.text(&format!(
        "load: {} calls{}{}, {} s, server {} (pid {:?}), {} client threads, load {}",
        o.calls,
        if o.burst { ", burst" } else { "" },
        if o.cycle { ", cycling" } else { "" },
        o.duration,
        srv.http,
        srv.pid,
        o.threads,
        loadavg()
    ));
    // A warm-up call (lazy initialisation in the server), counted apart, then the baseline.
    {
        let warm = Arc::new(Ctx {
            opts: opts.clone(),
            stats: Stats::default(),
            http: srv.http,
            stop: AtomicBool::new(false),
            junk: UdpSocket::bind("127.0.0.1:0").await.expect("junk socket"),
            live: AtomicU64::new(0),
            cert,
            prepared: AtomicU64::new(0),
            go: tokio::sync::watch::Sender::new(true),
        });
        run_call(
            warm.clone(),
            u64::MAX / 2,
            Fate::HangUp,
            Some(Duration::ZERO),
        )
        .await;
        if warm.stats.connected.load(Relaxed) == 0 {
            let f = warm.stats.failures.lock().unwrap().clone();
            out.text(&format!("load: the warm-up call failed: {f:?}"));
            return json!({"type": "summary", "error": "warm-up call failed", "failures": f});
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tasks = tokio::task::JoinSet::new();
    let offers_first = o.burst && o.offers_first && !o.cycle;
    if offers_first {
        // Every client makes its socket and offer first; the burst is then N offers posted at once.
        for i in 0..o.calls as u64 {
            tasks.spawn(run_call(ctx.clone(), i, Fate::HangUp, None));
        }
        let st = &ctx.stats;
        let ready = Instant::now();
        while ctx.prepared.load(Relaxed) + st.failed.load(Relaxed) < o.calls as u64
            && ready.elapsed() < Duration::from_secs(120)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let load_start = loadavg();
    let base = srv.snap();
    let me0 = proc_snap(std::process::id());
    let t0 = Instant::now();
    let mut sampler = Sampler::new(t0, srv);
    tokio::spawn(junk_loop(ctx.clone()));
    ctx.go.send_replace(true);

    let mut rng = Rng(0x1234_5678
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64));
    let mut next_sample = t0 + Duration::from_secs_f64(o.sample_secs);
    let mut summary = serde_json::Map::new();

    if !o.cycle {
        // N calls, all at once (--burst) or at --rate, running until --duration after they are up.
        let gap = Duration::from_secs_f64(1.0 / o.rate.max(0.001));
        for i in 0..o.calls as u64 {
            if offers_first {
                break; // Spawned above, offers made.
            }
            tasks.spawn(run_call(ctx.clone(), i, Fate::HangUp, None));
            if !o.burst {
                tokio::time::sleep(gap).await;
            }
        }
        let n = o.calls as u64;
        let st = &ctx.stats;
        while st.connected.load(Relaxed) + st.failed.load(Relaxed) < n
            && t0.elapsed() < Duration::from_secs(120)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if Instant::now() >= next_sample {
                sampler.sample(&ctx, srv, t0, &out).await;
                next_sample += Duration::from_secs_f64(o.sample_secs);
            }
        }
        let up = srv.snap();
        let t_up = t0.elapsed().as_secs_f64();
        out.text(&format!(
            "load: {} of {n} calls up after {t_up:.2} s, {} failed",
            st.connected.load(Relaxed),
            st.failed.load(Relaxed)
        ));
        // Steady state: from 2 s after the last setup to the end of --duration.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let steady0 = (Instant::now(), srv.snap(), proc_snap(std::process::id()));
        let steady_c0 = (st.c2s.snap(), st.s2c.snap());
        let steady_end = Instant::now() + Duration::from_secs_f64((o.duration - 2.0).max(1.0));
        while Instant::now() < steady_end {
            tokio::time::sleep_until(next_sample.min(steady_end).into()).await;
            if Instant::now() >= next_sample {
                sampler.sample(&ctx, srv, t0, &out).await;
                next_sample += Duration::from_secs_f64(o.sample_secs);
            }
        }
        let steady1 = (Instant::now(), srv.snap(), proc_snap(std::process::id()));
        let load_steady = loadavg();
        let connected = st.connected.load(Relaxed).max(1) as f64;
        let secs = steady1.0.duration_since(steady0.0).as_secs_f64();
        let per = |a: Option<ProcSnap>, b: Option<ProcSnap>| -> Value {
            match (a, b) {
                (Some(a), Some(b)) => {
                    let pct = (b.cpu_s - a.cpu_s) / secs * 100.0;
                    json!({"cpu_pct_total": r1(pct), "cpu_pct_per_call": (pct / connected * 1000.0).round() / 1000.0})
                }
                _ => Value::Null,
            }
        };
        let steady_digits = (
            st.c2s.snap().minus(steady_c0.0),
            st.s2c.snap().minus(steady_c0.1),
        );
        summary.insert(
            "setup_phase".into(),
            json!({
                "secs": r1(t_up),
                "server_cpu_ms_per_call": match (base, up) {
                    (Some(a), Some(b)) => r1((b.cpu_s - a.cpu_s) * 1000.0 / connected),
                    _ => Value::Null,
                },
            }),
        );
        summary.insert(
            "steady".into(),
            json!({
                "secs": r1(secs),
                "server": per(steady0.1, steady1.1),
                "client": per(steady0.2, steady1.2),
                "server_rss_kib": steady1.1.map(|p| p.rss_kib),
                "server_rss_kib_per_call": match (base, steady1.1) {
                    (Some(a), Some(b)) => r1((b.rss_kib as f64 - a.rss_kib as f64) / connected),
                    _ => Value::Null,
                },
                "server_fds": steady1.1.map(|p| p.fds),
                "server_threads": steady1.1.map(|p| p.threads),
                "digits_c2s": steady_digits.0.json(),
                "digits_s2c": steady_digits.1.json(),
                "loadavg": load_steady,
            }),
        );
        ctx.stop.store(true, Relaxed);
    } else {
        // N slots, each opening a call, letting it live, ending it by its fate, and starting the next.
        let end = t0 + Duration::from_secs_f64(o.duration);
        let mut idx = 0u64;
        let gap = Duration::from_secs_f64(1.0 / o.rate.max(0.001));
        for _ in 0..o.calls {
            let ctx2 = ctx.clone();
            let mut r = Rng(rng.next() | 1);
            let first = idx;
            idx += 1_000_000;
            tasks.spawn(async move {
                let mut i = first;
                while !ctx2.stop.load(Relaxed) {
                    let o = &ctx2.opts;
                    let u = r.unit();
                    let fate = if u < o.vanish_share {
                        Fate::Vanish
                    } else if u < o.vanish_share + o.junk_share {
                        Fate::Junk
                    } else {
                        Fate::HangUp
                    };
                    let life = o.life_min + r.unit() * (o.life_max - o.life_min);
                    run_call(ctx2.clone(), i, fate, Some(Duration::from_secs_f64(life))).await;
                    i += 1;
                }
            });
            if !o.burst {
                tokio::time::sleep(gap).await;
            }
        }
        while Instant::now() < end {
            tokio::time::sleep_until(next_sample.min(end).into()).await;
            if Instant::now() >= next_sample {
                sampler.sample(&ctx, srv, t0, &out).await;
                next_sample += Duration::from_secs_f64(o.sample_secs);
            }
        }
        ctx.stop.store(true, Relaxed);
    }

    // Every call ends (the vanished ones after the server timed them out), then the server settles.
    out.text("load: ending the calls");
    let drain_until = Instant::now() + Duration::from_secs(o.idle_timeout + 60);
    while !tasks.is_empty() && Instant::now() < drain_until {
        let _ = tokio::time::timeout(Duration::from_secs(1), tasks.join_next()).await;
    }
    tasks.abort_all();
    let settle = Instant::now() + Duration::from_secs(20);
    while calls_active(ctx.http).await.unwrap_or(0) > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let port_stalls = metric(ctx.http, "touchtone_port_stalls_total").await;
    // `touchtone serve` gives freed heap back within 20 s once calls have ended.
    tokio::time::sleep(Duration::from_secs(22)).await;
    sampler.sample(&ctx, srv, t0, &out).await;
    let after = srv.snap();
    let me1 = proc_snap(std::process::id());
    let st = &ctx.stats;

    let rss: Vec<u64> = sampler.samples.iter().map(|s| s.rss_kib).collect();
    let fds: Vec<u64> = sampler.samples.iter().map(|s| s.fds).collect();
    let calls_max = sampler.samples.iter().map(|s| s.calls).max().unwrap_or(0);
    let c2s = st.c2s.snap();
    let s2c = st.s2c.snap();
    let both = c2s.plus(s2c);
    let setups = st.setup_ms.lock().unwrap().clone();
    let timeouts = st.timeout_ms.lock().unwrap().clone();
    summary.insert("type".into(), json!("summary"));
    summary.insert(
        "options".into(),
        json!({
            "calls": o.calls, "burst": o.burst, "cycle": o.cycle, "duration_s": o.duration,
            "idle_timeout_s": o.idle_timeout, "digits_per_round": o.digits, "tone_ms": o.tone_ms,
            "gap_ms": o.gap_ms, "pause_ms": o.pause_ms, "tolerance_ms": o.tolerance_ms,
            "client_threads": o.threads, "server_args": o.server_args,
            "client_ptime_ms": o.client_ptime.map(Ptime::millis),
            "client_yield_ms": o.client_yield.as_millis(), "offers_first": o.offers_first,
            "rounds": if o.spread_rounds { "spread" } else { "together" },
        }),
    );
    summary.insert(
        "calls".into(),
        json!({
            "started": st.started.load(Relaxed), "connected": st.connected.load(Relaxed),
            "failed": st.failed.load(Relaxed), "failures": *st.failures.lock().unwrap(),
            "hung_up": st.hung_up.load(Relaxed), "vanished": st.vanished.load(Relaxed),
            "with_junk": st.junked.load(Relaxed), "junk_datagrams": st.junk_sent.load(Relaxed),
            "timed_out_in_bound": st.timeout_ok.load(Relaxed),
            "timed_out_late": st.timeout_late.load(Relaxed),
            "never_timed_out": st.timeout_never.load(Relaxed),
            "vanish_to_closed_ms": dist(&timeouts),
            "max_active": calls_max,
        }),
    );
    summary.insert("setup_ms".into(), dist(&setups));
    summary.insert(
        "answer_ms".into(),
        dist(&st.answer_ms.lock().unwrap().clone()),
    );
    summary.insert("server_port_stalls".into(), json!(port_stalls));
    summary.insert(
        "setup_parts_ms".into(),
        json!({
            "client_connected": dist(&st.client_up_ms.lock().unwrap().clone()),
            "events_open": dist(&st.events_open_ms.lock().unwrap().clone()),
            "server_connected_by_its_clock": dist(&st.server_up_ms.lock().unwrap().clone()),
            "server_connected_read": dist(&st.server_seen_ms.lock().unwrap().clone()),
        }),
    );
    summary.insert(
        "digits".into(),
        json!({"c2s": c2s.json(), "s2c": s2c.json(), "total": both.json(),
               "bad_durations_c2s": bad_durations(&st.c2s), "bad_durations_s2c": bad_durations(&st.s2c)}),
    );
    summary.insert(
        "server".into(),
        json!({
            "pid": srv.pid,
            "baseline": base.map(|p| json!({"rss_kib": p.rss_kib, "fds": p.fds, "threads": p.threads})),
            "after": after.map(|p| json!({"rss_kib": p.rss_kib, "fds": p.fds, "threads": p.threads})),
            "cpu_s": match (base, after) { (Some(a), Some(b)) => r1(b.cpu_s - a.cpu_s), _ => Value::Null },
            "rss_kib_min": rss.iter().min(), "rss_kib_max": rss.iter().max(),
            "fds_min": fds.iter().min(), "fds_max": fds.iter().max(),
        }),
    );
    summary.insert(
        "client_cpu_s".into(),
        match (me0, me1) {
            (Some(a), Some(b)) => r1(b.cpu_s - a.cpu_s),
            _ => Value::Null,
        },
    );
    summary.insert(
        "loadavg".into(),
        json!({"start": load_start, "end": loadavg()}),
    );
    summary.insert("elapsed_s".into(), r1(t0.elapsed().as_secs_f64()));
    let st = &ctx.stats;
    summary.insert(
        "client_tonechange_late".into(),
        json!({
            "events": st.tone_events.load(Relaxed),
            "over_50ms": st.tone_late_50.load(Relaxed),
            "over_200ms": st.tone_late_200.load(Relaxed),
            "max_ms": r1(st.tone_late_max_us.load(Relaxed) as f64 / 1000.0),
        }),
    );
    if o.cycle {
        summary.insert(
            "samples".into(),
            Value::Array(
                sampler
                    .samples
                    .iter()
                    .map(|s| json!({"t_s": s.t.round(), "rss_kib": s.rss_kib, "fds": s.fds, "calls": s.calls}))
                    .collect(),
            ),
        );
    }
    let summary = Value::Object(summary);
    out.text(&format!(
        "load: summary\n  calls: {} started, {} connected, {} failed {:?}\n  setup (offer posted -> both connected): {}\n  answer (offer posted -> 201): {}\n  setup parts (from the post): {}\n  digits c2s: {}\n  digits s2c: {}\n  server: {} {}\n  vanished calls: {} ended in bound, {} late, {} never; vanish -> closed {}\n  loadavg start {} end {}",
        st.started.load(Relaxed),
        st.connected.load(Relaxed),
        st.failed.load(Relaxed),
        st.failures.lock().unwrap(),
        summary["setup_ms"],
        summary["answer_ms"],
        summary["setup_parts_ms"],
        summary["digits"]["c2s"],
        summary["digits"]["s2c"],
        summary["server"],
        summary.get("steady").map(|s| s.to_string()).unwrap_or_default(),
        st.timeout_ok.load(Relaxed),
        st.timeout_late.load(Relaxed),
        st.timeout_never.load(Relaxed),
        summary["calls"]["vanish_to_closed_ms"],
        load_start,
        loadavg(),
    ));
    if let Some(p) = summary.get("setup_phase") {
        out.text(&format!("  setup phase: {p}"));
    }
    summary
}
