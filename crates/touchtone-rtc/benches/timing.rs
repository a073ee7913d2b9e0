//! Real-clock timing of a call over loopback UDP: how far `tonechange` events fall from the W3C schedule,
//! and how long after a tone starts the receiving peer reports its key-down.
//!
//! Both runtimes the CLI uses are measured: one thread driving every call (as `touchtone dial`) and a
//! two-worker pool (as `touchtone serve`). Last, a probe reports how often the host takes the CPU away
//! from a thread that never sleeps, before and after: no timer in the process can be more precise
//! than that.
//!
//! `cargo bench -p touchtone-rtc --bench timing` (about 3 min: 500 tones at 40 ms / 30 ms per codec
//! and runtime, and once more without the yield window).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use touchtone_rtc::call::DEFAULT_YIELD_WINDOW;
use touchtone_rtc::{AudioCodec, Call, ConnectionState, PeerConfig, PeerEvent};

const TONES: usize = 500;
const DURATION_MS: u32 = 40;
const GAP_MS: u32 = 30;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "  {name:<44} n={:<4} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v[v.len() - 1]
    );
}

/// CPU time this process has used so far (user + system), from `/proc/self/stat`; zero elsewhere.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; the kernel counts them at 100 ticks per second.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn run(runtime: &str, codec: AudioCodec, window: Duration) {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let cfg = PeerConfig {
        codecs: vec![codec],
        ..PeerConfig::default()
    };
    let mut a = Call::bind(loopback, cfg).await.unwrap();
    let mut b = Call::bind(loopback, PeerConfig::default()).await.unwrap();
    let offer = a.peer.create_offer().unwrap();
    let answer = b.peer.accept_offer(Instant::now(), &offer).unwrap();
    a.peer.accept_answer(Instant::now(), &answer).unwrap();
    a.set_yield_window(window);
    let mut a = a.spawn();
    let mut b = b.spawn();
    loop {
        if let Some(PeerEvent::Connection(ConnectionState::Connected)) = a.next_event().await {
            break;
        }
    }
    let tones: String = "0123456789*#ABCD".chars().cycle().take(TONES).collect();
    let (cpu_start, wall_start) = (cpu_time(), Instant::now());
    a.insert_dtmf(&tones, DURATION_MS, GAP_MS).await.unwrap();
    let mut changes: Vec<(Instant, Instant)> = vec![]; // (due, seen)
    let mut downs: Vec<Instant> = vec![];
    let mut ups = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ups < TONES || changes.len() <= TONES {
        tokio::select! {
            Some(ev) = a.next_event() => {
                if let PeerEvent::ToneChange { at, .. } = ev {
                    changes.push((at, Instant::now()));
                }
            }
            Some(ev) = b.next_event() => match ev {
                PeerEvent::KeyDown(_) => downs.push(Instant::now()),
                PeerEvent::KeyUp(_) => ups += 1,
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let cpu = (cpu_time() - cpu_start).as_secs_f64() / wall_start.elapsed().as_secs_f64();
    a.close();
    let t0 = changes[0].0;
    let period = Duration::from_millis(u64::from(DURATION_MS + GAP_MS));
    let schedule = |k: usize| t0 + period * k as u32;
    println!(
        "{codec}, {runtime}, yield window {window:?}: {TONES} tones at {DURATION_MS} ms / {GAP_MS} ms over loopback UDP"
    );
    summary(
        "tonechange delivered vs W3C schedule",
        changes
            .iter()
            .enumerate()
            .map(|(k, (_, seen))| ms(*seen, schedule(k)))
            .collect(),
    );
    summary(
        "tonechange due time vs W3C schedule",
        changes
            .iter()
            .enumerate()
            .map(|(k, (due, _))| ms(*due, schedule(k)))
            .collect(),
    );
    summary(
        "tone start to receiver key-down",
        downs
            .iter()
            .enumerate()
            .map(|(k, d)| ms(*d, schedule(k)))
            .collect(),
    );
    println!("  key-ups received: {ups} of {TONES}");
    println!("  CPU, both calls: {:.1}% of one core\n", cpu * 100.0);
}

fn ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and would run 80 s: skip there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    host_probe(Duration::from_secs(5));
    // The measuring code runs as a task, as an application's handlers do (`serve` runs one per call).
    let measure = current.spawn(async {
        run("one thread", AudioCodec::Opus, DEFAULT_YIELD_WINDOW).await;
        run("one thread", AudioCodec::Pcmu, DEFAULT_YIELD_WINDOW).await;
        run("one thread", AudioCodec::Opus, Duration::ZERO).await;
    });
    current.block_on(measure).unwrap();
    let pool = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let measure = pool.spawn(async {
        run("two workers", AudioCodec::Opus, DEFAULT_YIELD_WINDOW).await;
        run("two workers", AudioCodec::Pcmu, DEFAULT_YIELD_WINDOW).await;
    });
    pool.block_on(measure).unwrap();
    host_probe(Duration::from_secs(5));
}

/// Spins for `span` and reports the gaps in which the thread did not run: the floor under any timer.
fn host_probe(span: Duration) {
    let start = Instant::now();
    let mut last = start;
    let mut gaps: Vec<f64> = vec![];
    while last - start < span {
        let now = Instant::now();
        let gap = now - last;
        if gap > Duration::from_micros(500) {
            gaps.push(gap.as_secs_f64() * 1000.0);
        }
        last = now;
    }
    let secs = span.as_secs_f64();
    let over = |ms: f64| gaps.iter().filter(|g| **g > ms).count() as f64 / secs;
    let lost: f64 = gaps.iter().sum();
    println!("host: a thread that never sleeps, for {secs:.0} s");
    println!(
        "  descheduled > 1 ms {:.1}/s, > 2 ms {:.1}/s, > 4 ms {:.1}/s; longest {:.2} ms; {:.1}% of the time lost",
        over(1.0),
        over(2.0),
        over(4.0),
        gaps.iter().copied().fold(0.0, f64::max),
        lost / (secs * 10.0)
    );
}
