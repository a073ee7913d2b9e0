//! DTMF over real UDP sockets, timers, ICE and DTLS-SRTP under network faults.
//!
//! Each test builds two network namespaces joined by a veth pair (10.77.0.1/24 and 10.77.0.2/24), binds
//! one peer's socket inside each, and impairs the link with what this kernel has (no `sch_netem`): nftables
//! for random loss (`numgen random`, dropped on arrival), duplication (`dup to` the peer) and a 100 ms
//! outage (a drop-all rule in both namespaces, removed again), tc `tbf` for a rate limit, and an `htb`
//! class with a slow rate that a random share of the datagrams is sent through (nftables sets their
//! `meta priority` to the class), for delay jitter and reordering. Each test runs its own pair of
//! namespaces, so the tests run in parallel. The oracle is the in-memory round trip's: every digit exactly once, in order; a key-up ended
//! by an end packet lasts what was asked (within one 20 ms packet interval); none lasts longer.
//!
//! Needs root and `ip`, `nft` (Debian `nftables`) and `tc`; without them each test says why and passes,
//! unless `TOUCHTONE_REQUIRE_NETNS=1`, when it fails.

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use touchtone::EndCause;
use touchtone_rtc::{Call, CallHandle, ConnectionState, DigitSource, PeerConfig, PeerEvent};

const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const ALL_TONES: &str = "0123456789*#ABCD";
/// The sender's interval between telephone-event packets: the oracle's tolerance.
const PACKET_INTERVAL_MS: f64 = 20.0;

// ---------------------------------------------------------------------------------------------------
// Tools and namespaces
// ---------------------------------------------------------------------------------------------------

/// Absolute paths of the tools, or why the tests cannot run here.
struct Tools {
    ip: PathBuf,
    nft: PathBuf,
    tc: PathBuf,
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tools() -> Result<Tools, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)".into());
    }
    let get = |n: &str| find_tool(n).ok_or_else(|| format!("`{n}` not found"));
    let t = Tools {
        ip: get("ip")?,
        nft: get("nft").map_err(|e| format!("{e} (Debian package nftables)"))?,
        tc: get("tc")?,
    };
    if !Path::new("/proc/self/ns/net").exists() {
        return Err("no network namespace support".into());
    }
    Ok(t)
}

/// Says why a test does not run here; fails it instead when TOUCHTONE_REQUIRE_NETNS=1.
fn skip(test: &str, why: &str) {
    let required = std::env::var("TOUCHTONE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(!required, "{test}: {why}, and TOUCHTONE_REQUIRE_NETNS=1");
    eprintln!("{test}: skipped: {why}");
}

fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> io::Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} {}: {}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            stdin.map(|s| format!("\ninput:\n{s}")).unwrap_or_default()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn addr(self) -> Ipv4Addr {
        match self {
            Side::A => ADDR_A,
            Side::B => ADDR_B,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Two namespaces joined by a veth pair; both are deleted (and the veth with them) when dropped, also
/// when the test panics.
struct Link {
    tools: Tools,
    ns: [String; 2],
    dev: [String; 2],
}

impl Link {
    /// Creates the namespaces `touchtone-<pid>-<tag>-a/-b`; `index` makes the veth names unique among the
    /// tests of this process (interface names have at most 15 bytes).
    fn new(tools: Tools, tag: &str, index: u8) -> io::Result<Link> {
        remove_stale_namespaces(&tools.ip);
        let pid = std::process::id();
        let link = Link {
            tools,
            ns: [
                format!("touchtone-{pid}-{tag}-a"),
                format!("touchtone-{pid}-{tag}-b"),
            ],
            dev: [format!("tt{pid}x{index}a"), format!("tt{pid}x{index}b")],
        };
        for ns in &link.ns {
            // Created one by one: the guard deletes whatever exists.
            link.ip(&["netns", "add", ns])?;
        }
        let [na, nb] = &link.ns;
        let [da, db] = &link.dev;
        link.ip(&[
            "link", "add", da, "netns", na, "type", "veth", "peer", "name", db, "netns", nb,
        ])?;
        for (side, (ns, dev)) in [Side::A, Side::B]
            .into_iter()
            .zip(link.ns.iter().zip(&link.dev))
        {
            let addr = format!("{}/24", side.addr());
            link.ip(&["-n", ns, "addr", "add", &addr, "dev", dev])?;
            link.ip(&["-n", ns, "link", "set", dev, "up"])?;
            link.ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(link)
    }

    fn ip(&self, args: &[&str]) -> io::Result<String> {
        run(&self.tools.ip, args, None)
    }

    fn ns(&self, side: Side) -> &str {
        &self.ns[side as usize]
    }

    fn dev(&self, side: Side) -> &str {
        &self.dev[side as usize]
    }

    /// Runs `nft` inside a side's namespace, with a script on stdin when given.
    fn nft(&self, side: Side, args: &[&str], script: Option<&str>) -> io::Result<String> {
        let nft = self.tools.nft.to_string_lossy().into_owned();
        let mut all = vec!["netns", "exec", self.ns(side), &nft];
        all.extend_from_slice(args);
        run(&self.tools.ip, &all, script)
    }

    fn tc(&self, side: Side, args: &[&str]) -> io::Result<String> {
        let tc = self.tools.tc.to_string_lossy().into_owned();
        let mut all = vec!["netns", "exec", self.ns(side), &tc];
        all.extend_from_slice(args);
        run(&self.tools.ip, &all, None)
    }

    /// A UDP socket bound to `side`'s address (any port) inside its namespace: a thread enters the
    /// namespace and binds it; the socket stays in the namespace it was created in.
    fn bind(&self, side: Side) -> io::Result<UdpSocket> {
        let path = format!("/run/netns/{}", self.ns(side));
        let addr = SocketAddr::new(IpAddr::V4(side.addr()), 0);
        std::thread::spawn(move || {
            let ns = File::open(&path)?;
            // SAFETY: a valid descriptor of a network namespace; only this thread changes namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            UdpSocket::bind(addr)
        })
        .join()
        .expect("bind thread")
    }

    fn reset_counters(&self, side: Side) -> io::Result<()> {
        self.nft(side, &["reset", "counters", "table", "ip", "imp"], None)
            .map(drop)
    }

    /// Reads the named counters of the `imp` table of a side: (name, packets).
    fn counters(&self, side: Side) -> Vec<(String, u64)> {
        let text = self
            .nft(side, &["list", "counters", "table", "ip", "imp"], None)
            .unwrap_or_default();
        let mut out = vec![];
        let mut name = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("counter ") {
                name = rest.split_whitespace().next().map(str::to_string);
            } else if let (Some(n), Some(rest)) = (name.take(), line.strip_prefix("packets ")) {
                let packets = rest.split_whitespace().next().and_then(|p| p.parse().ok());
                out.push((n, packets.unwrap_or(0)));
            }
        }
        out
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = self.ip(&["netns", "del", ns]);
        }
    }
}

/// Deletes namespaces that a killed earlier run of these tests left behind (their process is gone).
fn remove_stale_namespaces(ip: &Path) {
    let Ok(list) = run(ip, &["netns", "list"], None) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix("touchtone-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(ip, &["netns", "del", name], None);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------------

/// What the link does to the calls' datagrams, in both directions.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    /// Percent of datagrams dropped at random, on arrival.
    loss: u8,
    /// Percent of datagrams sent twice.
    dup: u8,
    /// Percent of datagrams sent through a slow queue (delay jitter, reordering).
    delay: u8,
    /// Rate of the slow queue, kbit/s.
    delay_kbit: u32,
    /// A token bucket on each sender's interface: (kbit/s, bucket bytes, queue bytes).
    rate: Option<(u32, u32, u32)>,
}

/// The nftables table of a side: counters of what arrives, what the faults did, and an empty `outage`
/// chain that [`outage_on`] fills for a while.
fn nft_table(side: Side, f: &Faults) -> String {
    let peer = side.other().addr();
    let mut input = String::from("    meta l4proto udp counter name arrived\n    jump outage\n");
    if f.loss > 0 {
        input += &format!(
            "    meta l4proto udp numgen random mod 100 < {} counter name lost drop\n",
            f.loss
        );
    }
    let mut output = String::new();
    if f.dup > 0 {
        output += &format!(
            "    meta l4proto udp numgen random mod 100 < {} dup to {peer}\n",
            f.dup
        );
    }
    if f.delay > 0 {
        // Picked up by the htb qdisc as its class 1:20.
        output += &format!(
            "    meta l4proto udp numgen random mod 100 < {} counter name delayed meta priority set 1:20\n",
            f.delay
        );
    }
    format!(
        "table ip imp {{
  counter arrived {{}}
  counter lost {{}}
  counter delayed {{}}
  counter blackout {{}}
  chain outage {{}}
  chain in {{
    type filter hook input priority 0; policy accept;
{input}  }}
  chain out {{
    type filter hook output priority 0; policy accept;
{output}  }}
}}
"
    )
}

/// Applies the faults on both sides (replacing earlier ones).
fn apply(link: &Link, f: &Faults) -> io::Result<()> {
    for side in [Side::A, Side::B] {
        let _ = link.nft(side, &["delete", "table", "ip", "imp"], None);
        link.nft(side, &["-f", "-"], Some(&nft_table(side, f)))?;
        let dev = link.dev(side);
        let _ = link.tc(side, &["qdisc", "del", "dev", dev, "root"]);
        if f.delay > 0 {
            link.tc(
                side,
                &[
                    "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10",
                ],
            )?;
            link.tc(
                side,
                &[
                    "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate",
                    "1gbit",
                ],
            )?;
            let rate = format!("{}kbit", f.delay_kbit);
            link.tc(
                side,
                &[
                    "class", "add", "dev", dev, "parent", "1:", "classid", "1:20", "htb", "rate",
                    &rate, "burst", "100b", "cburst", "100b",
                ],
            )?;
        } else if let Some((kbit, burst, limit)) = f.rate {
            let (rate, burst, limit) =
                (format!("{kbit}kbit"), burst.to_string(), limit.to_string());
            link.tc(
                side,
                &[
                    "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst,
                    "limit", &limit,
                ],
            )?;
        }
    }
    Ok(())
}

/// Drops every datagram in both directions from now until `off` is called; returns when both sides drop.
fn outage_on(link: &Link) -> io::Result<()> {
    std::thread::scope(|s| {
        let jobs = [Side::A, Side::B].map(|side| {
            s.spawn(move || {
                link.nft(
                    side,
                    &[
                        "add", "rule", "ip", "imp", "outage", "meta", "l4proto", "udp", "counter",
                        "name", "blackout", "drop",
                    ],
                    None,
                )
            })
        });
        jobs.into_iter()
            .try_for_each(|j| j.join().expect("nft").map(drop))
    })
}

fn outage_off(link: &Link) -> io::Result<()> {
    std::thread::scope(|s| {
        let jobs = [Side::A, Side::B].map(|side| {
            s.spawn(move || link.nft(side, &["flush", "chain", "ip", "imp", "outage"], None))
        });
        jobs.into_iter()
            .try_for_each(|j| j.join().expect("nft").map(drop))
    })
}

/// The drops and overlimits a side's root qdisc reported.
fn qdisc_stats(link: &Link, side: Side) -> String {
    let out = link
        .tc(side, &["-s", "qdisc", "show", "dev", link.dev(side)])
        .unwrap_or_default();
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Sent"))
        .collect::<Vec<_>>()
        .join("; ")
}

// ---------------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------------

/// What one side saw of the other's digits.
#[derive(Debug, Default)]
struct Heard {
    /// (tone, ms, cause) of each key-up, in order.
    key_ups: Vec<(char, f64, Option<EndCause>)>,
}

/// Waits for the call's `connected`; a failure lists the states it went through and its datagram counts.
async fn wait_connected(h: &mut CallHandle, who: &str, started: Instant, within: Duration) {
    let mut states = vec![];
    let done = tokio::time::timeout(within, async {
        while let Some(ev) = h.next_event().await {
            if let Some((kind, state)) = ev.state() {
                states.push(format!(
                    "{kind} {state} at {} ms",
                    started.elapsed().as_millis()
                ));
            }
            if ev == PeerEvent::Connection(ConnectionState::Connected) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        done == Ok(true),
        "{who} not connected ({}): {states:?}; datagrams in {}, out {}",
        if done.is_err() {
            "timed out"
        } else {
            "call ended"
        },
        h.stats().datagrams_in,
        sent(h)
    );
}

/// Reads a call's events until `n` key-ups arrived and its own dialling (`dialing`) is over, or until
/// `deadline` (the oracle then reports what is missing); `tone_started` hears when the call's own tones
/// started.
async fn listen(
    h: &mut CallHandle,
    n: usize,
    dialing: bool,
    deadline: Instant,
    tone_started: Option<tokio::sync::mpsc::UnboundedSender<(char, Instant)>>,
) -> Heard {
    let mut heard = Heard::default();
    let mut dial_done = !dialing;
    while heard.key_ups.len() < n || !dial_done {
        let next = tokio::time::timeout_at(deadline.into(), h.next_event());
        let Ok(ev) = next.await else {
            eprintln!(
                "only {} of {n} key-ups by the deadline",
                heard.key_ups.len()
            );
            break;
        };
        let ev = ev.expect("call alive");
        match ev {
            PeerEvent::KeyUp(d) => {
                assert_eq!(d.source, DigitSource::Rfc4733);
                let tone = d.tone.expect("a DTMF tone");
                heard
                    .key_ups
                    .push((tone, d.duration.as_secs_f64() * 1000.0, d.end_cause));
            }
            PeerEvent::ToneChange { tone, at } => {
                if tone.is_empty() {
                    dial_done = true;
                } else if let (Some(tx), Some(c)) = (&tone_started, tone.chars().next()) {
                    let _ = tx.send((c, at));
                }
            }
            _ => {}
        }
    }
    heard
}

/// After the digits: no further key-up for longer than the receiver's end timeout (250 ms).
async fn assert_quiet(h: &mut CallHandle, who: &str) {
    let extra = tokio::time::timeout(Duration::from_millis(600), async {
        while let Some(ev) = h.next_event().await {
            if let PeerEvent::KeyUp(d) = ev {
                return Some(d);
            }
        }
        None
    })
    .await;
    if let Ok(Some(d)) = extra {
        panic!("{who}: an extra key-up {d:?}");
    }
}

/// The oracle: exactly the sent tones, once each, in order; a key-up ended by an end packet lasts
/// `asked` within one packet interval; none lasts longer than `asked` plus one interval.
fn check(who: &str, heard: &Heard, tones: &str, asked_ms: u32) {
    let got: String = heard.key_ups.iter().map(|k| k.0).collect();
    assert_eq!(got, tones, "{who}: {:?}", heard.key_ups);
    let asked = f64::from(asked_ms);
    for (tone, ms, cause) in &heard.key_ups {
        assert!(
            *ms <= asked + PACKET_INTERVAL_MS,
            "{who}: {tone} lasted {ms} ms of {asked}"
        );
        if *cause == Some(EndCause::EndPacket) {
            assert!(
                (ms - asked).abs() <= PACKET_INTERVAL_MS,
                "{who}: {tone} ended by its end packet after {ms} ms of {asked}"
            );
        }
    }
}

fn summary(heard: &Heard) -> String {
    let by = |c: EndCause| heard.key_ups.iter().filter(|k| k.2 == Some(c)).count();
    let ms: Vec<f64> = heard.key_ups.iter().map(|k| k.1).collect();
    let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ms.iter().copied().fold(0.0, f64::max);
    let short: Vec<String> = heard
        .key_ups
        .iter()
        .filter(|k| k.2 != Some(EndCause::EndPacket))
        .map(|k| format!("{}={:.0}ms/{:?}", k.0, k.1, k.2.unwrap()))
        .collect();
    format!(
        "{} key-ups (end packet {}, new event {}, timeout {}), {min:.0}..{max:.0} ms{}",
        heard.key_ups.len(),
        by(EndCause::EndPacket),
        by(EndCause::NewEvent),
        by(EndCause::Timeout),
        if short.is_empty() {
            String::new()
        } else {
            format!(" [{}]", short.join(" "))
        }
    )
}

/// The RTP packets of a recording: (source, destination, sequence number, when) in the order recorded.
fn recorded_rtp(path: &Path) -> Vec<(SocketAddr, SocketAddr, u16, Duration)> {
    let mut out = vec![];
    let Ok(file) = File::open(path) else {
        return out;
    };
    let Ok(mut reader) = pcap_file::pcapng::PcapNgReader::new(io::BufReader::new(file)) else {
        return out;
    };
    while let Some(Ok(block)) = reader.next_block() {
        let pcap_file::pcapng::Block::EnhancedPacket(p) = block else {
            continue;
        };
        // Raw IPv4, UDP, RTP.
        let d = &p.data;
        if d.len() < 20 || d[0] >> 4 != 4 {
            continue;
        }
        let ihl = usize::from(d[0] & 0x0f) * 4;
        if d.len() < ihl + 8 + 12 {
            continue;
        }
        let addr = |ip: &[u8], port: &[u8]| {
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
                u16::from_be_bytes([port[0], port[1]]),
            )
        };
        let src = addr(&d[12..16], &d[ihl..ihl + 2]);
        let dst = addr(&d[16..20], &d[ihl + 2..ihl + 4]);
        let seq = u16::from_be_bytes([d[ihl + 10], d[ihl + 11]]);
        out.push((src, dst, seq, p.timestamp));
    }
    out
}

/// What one direction's RTP went through, from the sender's and the receiver's recordings.
#[derive(Debug, Default)]
struct RtpPath {
    /// Packets the receiver decrypted (str0m's SRTP replay check drops duplicates before that).
    received: usize,
    duplicates: usize,
    /// Packets that arrived after one with a higher sequence number.
    reordered: usize,
    /// Sequence numbers never received between the first and the last received.
    missing: usize,
    /// One-way delay, send to receive: median and maximum, ms.
    delay_median: f64,
    delay_max: f64,
}

fn rtp_path(sender_rec: &Path, receiver_rec: &Path, from: SocketAddr, to: SocketAddr) -> RtpPath {
    let sent: std::collections::HashMap<u16, Duration> = recorded_rtp(sender_rec)
        .into_iter()
        .filter(|r| r.0 == from)
        .map(|r| (r.2, r.3))
        .collect();
    let got: Vec<(u16, Duration)> = recorded_rtp(receiver_rec)
        .into_iter()
        .filter(|r| r.1 == to)
        .map(|r| (r.2, r.3))
        .collect();
    // Sequence numbers unwrapped around the previous one (16 bits wrap).
    let mut ext: Vec<i64> = vec![];
    for &(seq, _) in &got {
        let e = match ext.last() {
            None => i64::from(seq),
            Some(&l) => l + i64::from(seq.wrapping_sub(l as u16) as i16),
        };
        ext.push(e);
    }
    let mut max = i64::MIN;
    let mut reordered = 0;
    for &e in &ext {
        if e < max {
            reordered += 1;
        }
        max = max.max(e);
    }
    let mut unique = ext.clone();
    unique.sort_unstable();
    unique.dedup();
    let span = match (unique.first(), unique.last()) {
        (Some(a), Some(b)) => (b - a + 1) as usize,
        _ => 0,
    };
    let mut delays: Vec<f64> = got
        .iter()
        .filter_map(|(seq, at)| Some(at.checked_sub(*sent.get(seq)?)?.as_secs_f64() * 1e3))
        .collect();
    delays.sort_by(f64::total_cmp);
    RtpPath {
        received: got.len(),
        duplicates: ext.len() - unique.len(),
        reordered,
        missing: span - unique.len(),
        delay_median: delays.get(delays.len() / 2).copied().unwrap_or(0.0),
        delay_max: delays.last().copied().unwrap_or(0.0),
    }
}

/// One scenario: faults, and what is dialled.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    /// Part of the namespace names; unique among the tests.
    tag: &'static str,
    /// Makes the veth names unique among the tests.
    index: u8,
    faults: Faults,
    /// The faults are in place before the offer (ICE and DTLS run through them), not only after connecting.
    during_setup: bool,
    /// A 100 ms outage starting 50 ms into the 4th tone.
    outage: bool,
    tones: &'static str,
    tone_ms: u32,
    gap_ms: u32,
    /// The callee dials too, at the same time.
    both_ways: bool,
    /// The scenario must have reordered RTP at a receiver.
    expect_reordering: bool,
}

impl Scenario {
    fn new(tag: &'static str, index: u8, faults: Faults) -> Scenario {
        Scenario {
            tag,
            index,
            faults,
            during_setup: false,
            outage: false,
            tones: ALL_TONES,
            tone_ms: 100,
            gap_ms: 70,
            both_ways: true,
            expect_reordering: false,
        }
    }
}

fn run_scenario(s: Scenario) {
    let tools = match tools() {
        Ok(t) => t,
        Err(why) => return skip(s.tag, &why),
    };
    let link = match Link::new(tools, s.tag, s.index) {
        Ok(l) => l,
        Err(e) => {
            return skip(
                s.tag,
                &format!("cannot make the namespaces and veth pair: {e}"),
            );
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The slow queue reorders at random: a run in which it held back no packet of one direction tested
    // no reordering there, so the scenario runs again (every run's digits are checked all the same).
    // In `delay_jitter_reorders` the queue gets about its own rate (30% of some 60 datagrams a second
    // of 84 bytes: 1.5 kB/s against 12 kbit/s), so how much it holds back swings from run to run: 21 to
    // 52 datagrams reordered and 170 to 701 ms at most in twelve directions measured, and once none.
    for attempt in 1..=3 {
        let reordered = rt.block_on(scenario(&link, s));
        if !s.expect_reordering || reordered {
            return;
        }
        eprintln!(
            "{}: RTP was not reordered both ways (run {attempt} of 3)",
            s.tag
        );
    }
    panic!("{}: RTP was not reordered both ways in 3 runs", s.tag);
}

/// Runs the scenario, checking its digits and faults; returns whether RTP was reordered both ways.
async fn scenario(link: &Link, s: Scenario) -> bool {
    let tag = s.tag;
    let dir = std::env::temp_dir();
    let rec = |side: &str| {
        dir.join(format!(
            "touchtone-impairment-{}-{tag}-{side}.pcapng",
            std::process::id()
        ))
    };
    let (rec_a, rec_b) = (rec("a"), rec("b"));
    let _remove = RemoveOnDrop([rec_a.clone(), rec_b.clone()]);
    let sock_a = link.bind(Side::A).expect("socket in namespace a");
    let sock_b = link.bind(Side::B).expect("socket in namespace b");
    if s.during_setup {
        apply(link, &s.faults).expect("faults");
    } else {
        apply(link, &Faults::default()).expect("counters");
    }
    let mut a = Call::from_std(sock_a, PeerConfig::default()).unwrap();
    let mut b = Call::from_std(sock_b, PeerConfig::default()).unwrap();
    a.record_to(&rec_a).unwrap();
    b.record_to(&rec_b).unwrap();
    let (addr_a, addr_b) = (a.peer.local_addr(), b.peer.local_addr());
    let started = Instant::now();
    let offer = a.peer.create_offer().unwrap();
    let answer = b.peer.accept_offer(Instant::now(), &offer).unwrap();
    a.peer.accept_answer(Instant::now(), &answer).unwrap();
    let (mut a, mut b) = (a.spawn(), b.spawn());
    let within = Duration::from_secs(if s.during_setup { 30 } else { 10 });
    tokio::join!(
        wait_connected(&mut a, "caller", started, within),
        wait_connected(&mut b, "callee", started, within)
    );
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The DTMF sender is ready once DTLS-SRTP is: wait for it (as a page waits for canInsertDTMF).
    let ready = tokio::time::timeout(within, async {
        while !(a.can_insert_dtmf().await && b.can_insert_dtmf().await) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "{tag}: DTMF never became available");

    // Datagrams sent from when the counters start: at the offer, or now, where each direction's counters
    // are reset just before its sender's count is read.
    let mut sent_before = (0, 0);
    if !s.during_setup {
        apply(link, &s.faults).expect("faults");
        link.reset_counters(Side::B).expect("reset");
        sent_before.0 = sent(&a);
        link.reset_counters(Side::A).expect("reset");
        sent_before.1 = sent(&b);
    }

    let n = s.tones.chars().count();
    let (tone_tx, mut tone_rx) = tokio::sync::mpsc::unbounded_channel();
    a.insert_dtmf(s.tones, s.tone_ms, s.gap_ms).await.unwrap();
    if s.both_ways {
        b.insert_dtmf(s.tones, s.tone_ms, s.gap_ms).await.unwrap();
    }
    let outage_task = async {
        if !s.outage {
            return None;
        }
        let target = s.tones.chars().nth(3).expect("4 tones");
        while let Some((c, at)) = tone_rx.recv().await {
            if c == target {
                tokio::time::sleep_until(tokio::time::Instant::from_std(
                    at + Duration::from_millis(50),
                ))
                .await;
                let on = tokio::task::block_in_place(|| {
                    let t0 = Instant::now();
                    outage_on(link).expect("outage on");
                    (t0, Instant::now())
                });
                tokio::time::sleep_until(tokio::time::Instant::from_std(
                    on.1 + Duration::from_millis(100),
                ))
                .await;
                let off = tokio::task::block_in_place(|| {
                    let t0 = Instant::now();
                    outage_off(link).expect("outage off");
                    (t0, Instant::now())
                });
                return Some((on.0 - at, on.1 - at, off.0 - at, off.1 - at));
            }
        }
        None
    };
    let tx = s.outage.then_some(tone_tx);
    let dial_time = Duration::from_millis(u64::from(s.tone_ms + s.gap_ms) * n as u64);
    let deadline = Instant::now() + dial_time + Duration::from_secs(10);
    let (heard_b, heard_a, outage) = tokio::join!(
        listen(&mut b, n, s.both_ways, deadline, None),
        listen(&mut a, if s.both_ways { n } else { 0 }, true, deadline, tx),
        outage_task,
    );
    tokio::join!(
        assert_quiet(&mut b, "callee"),
        assert_quiet(&mut a, "caller")
    );
    // Hang up; the recordings are complete once each call's task has ended.
    a.close();
    b.close();
    while a.next_event().await.is_some() {}
    while b.next_event().await.is_some() {}
    if s.faults.rate.is_some() || s.faults.delay > 0 {
        // What is still queued on the slow links arrives.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // What the network did, counted where each direction arrives, against what was sent.
    let (net_b, net_a) = NetCounts::read(link);
    let sent_ab = sent(&a) - sent_before.0;
    let sent_ba = sent(&b) - sent_before.1;
    let qdiscs = if s.faults.rate.is_some() || s.faults.delay > 0 {
        format!(
            "\n  qdisc a: {}\n  qdisc b: {}",
            qdisc_stats(link, Side::A),
            qdisc_stats(link, Side::B)
        )
    } else {
        String::new()
    };
    let rtp_ab = rtp_path(&rec_a, &rec_b, addr_a, addr_b);
    let rtp_ba = rtp_path(&rec_b, &rec_a, addr_b, addr_a);

    let mut report = format!(
        "SCENARIO {tag}: {:?} {}; connect {connect_ms:.0} ms; {n} tones of {} ms, gaps {} ms{}",
        s.faults,
        if s.during_setup {
            "from the offer on"
        } else {
            "after connecting"
        },
        s.tone_ms,
        s.gap_ms,
        if s.both_ways {
            ", both ways at once"
        } else {
            ""
        },
    );
    report += &direction_line("a->b", sent_ab, &net_b, &rtp_ab);
    report += &format!("\n    digits: {}", summary(&heard_b));
    if s.both_ways {
        report += &direction_line("b->a", sent_ba, &net_a, &rtp_ba);
        report += &format!("\n    digits: {}", summary(&heard_a));
    }
    if let Some((on0, on1, off0, off1)) = outage {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        report += &format!(
            "\n  outage: rules in {:.1}..{:.1} ms, out {:.1}..{:.1} ms after the tone started",
            ms(on0),
            ms(on1),
            ms(off0),
            ms(off1)
        );
    }
    report += &qdiscs;
    eprintln!("{report}");

    check(&format!("{tag} a->b"), &heard_b, s.tones, s.tone_ms);
    if s.both_ways {
        check(&format!("{tag} b->a"), &heard_a, s.tones, s.tone_ms);
    }
    // The faults happened.
    let both = |f: fn(&NetCounts) -> u64| f(&net_a) + f(&net_b);
    if s.faults.loss > 0 {
        assert!(both(|c| c.lost) > 0, "{tag}: nothing was lost");
    }
    if s.faults.dup > 0 {
        assert!(
            net_b.arrived > sent_ab && net_a.arrived > sent_ba,
            "{tag}: nothing was duplicated"
        );
    }
    if s.outage {
        assert!(
            both(|c| c.blackout) > 0,
            "{tag}: the outage dropped nothing"
        );
    }
    rtp_ab.reordered > 0 && rtp_ba.reordered > 0
}

/// Deletes the recordings when the scenario ends, also by a panic.
struct RemoveOnDrop([PathBuf; 2]);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn sent(h: &CallHandle) -> u64 {
    h.stats().datagrams_out
}

/// The nftables counters of the side a direction arrives at.
#[derive(Debug, Default)]
struct NetCounts {
    /// UDP datagrams that reached the namespace (duplicates included), before loss and outage.
    arrived: u64,
    lost: u64,
    /// Datagrams sent through the slow queue, on the other side.
    delayed: u64,
    blackout: u64,
}

impl NetCounts {
    /// The counts of the direction a->b, then b->a.
    fn read(link: &Link) -> (NetCounts, NetCounts) {
        let (a, b) = (link.counters(Side::A), link.counters(Side::B));
        let get = |c: &[(String, u64)], n: &str| c.iter().find(|(k, _)| k == n).map_or(0, |x| x.1);
        let count = |here: &[(String, u64)], there: &[(String, u64)]| NetCounts {
            arrived: get(here, "arrived"),
            lost: get(here, "lost"),
            delayed: get(there, "delayed"),
            blackout: get(here, "blackout"),
        };
        (count(&b, &a), count(&a, &b))
    }
}

fn direction_line(name: &str, sent: u64, c: &NetCounts, rtp: &RtpPath) -> String {
    format!(
        "\n  {name}: {sent} datagrams sent, {} arrived (+{} duplicates), {} lost, {} in the outage, \
         {} through the slow queue; RTP decrypted: {}, {} reordered, {} missing, {} duplicates; \
         one-way delay median {:.1} ms, max {:.1} ms",
        c.arrived,
        c.arrived.saturating_sub(sent),
        c.lost,
        c.blackout,
        c.delayed,
        rtp.received,
        rtp.reordered,
        rtp.missing,
        rtp.duplicates,
        rtp.delay_median,
        rtp.delay_max,
    )
}

// ---------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------

#[test]
fn loss_5_percent() {
    let f = Faults {
        loss: 5,
        ..Faults::default()
    };
    run_scenario(Scenario::new("loss5", 1, f));
}

#[test]
fn loss_20_percent() {
    // 200 ms tones: 12 packets each, so a digit vanishes entirely (0.2^12) practically never.
    let f = Faults {
        loss: 20,
        ..Faults::default()
    };
    run_scenario(Scenario {
        tone_ms: 200,
        ..Scenario::new("loss20", 2, f)
    });
}

#[test]
fn loss_30_percent() {
    let f = Faults {
        loss: 30,
        ..Faults::default()
    };
    run_scenario(Scenario {
        tone_ms: 200,
        ..Scenario::new("loss30", 3, f)
    });
}

#[test]
fn loss_10_percent_from_the_offer_on() {
    // ICE and DTLS through the loss. Not 20 %: there a handshake takes over 10 s in about one setup
    // of 150 and now and then gives up at 40 s (RELIABILITY.md); the simulated tests measure that tail
    // over hundreds of thousands of setups, which a real network cannot run.
    let f = Faults {
        loss: 10,
        ..Faults::default()
    };
    run_scenario(Scenario {
        tone_ms: 200,
        during_setup: true,
        ..Scenario::new("setup10", 4, f)
    });
}

#[test]
fn duplication_20_percent() {
    let f = Faults {
        dup: 20,
        ..Faults::default()
    };
    run_scenario(Scenario::new("dup20", 5, f));
}

#[test]
fn outage_of_100_ms_mid_tone() {
    run_scenario(Scenario {
        outage: true,
        ..Scenario::new("outage", 6, Faults::default())
    });
}

#[test]
fn rate_limit() {
    let f = Faults {
        rate: Some((48, 1600, 800)),
        ..Faults::default()
    };
    run_scenario(Scenario::new("rate", 7, f));
}

#[test]
fn delay_jitter_reorders() {
    let f = Faults {
        delay: 30,
        delay_kbit: 12,
        ..Faults::default()
    };
    run_scenario(Scenario {
        expect_reordering: true,
        ..Scenario::new("reorder", 8, f)
    });
}

#[test]
fn loss_duplication_and_reordering_together() {
    let f = Faults {
        loss: 10,
        dup: 10,
        delay: 30,
        delay_kbit: 20,
        rate: None,
    };
    run_scenario(Scenario {
        tone_ms: 200,
        ..Scenario::new("mixed", 9, f)
    });
}
