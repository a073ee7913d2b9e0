//! Sender and receiver throughput, in RFC 4733 packets per second on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use touchtone::{DtmfReceiver, DtmfSender, RtpInfo};

const TONES: &str = "0123456789*#ABCD";

/// Runs a sender over `tones` and returns how many packets it produced.
fn send_all(t0: Instant, tones: &str) -> usize {
    let mut s = DtmfSender::new(48_000);
    s.set_can_send(true);
    s.insert_dtmf(t0, tones, 100, 70).unwrap();
    let mut n = 0;
    while let Some(t) = s.poll_timeout() {
        s.handle_timeout(t);
        while let Some(p) = s.poll_packet() {
            black_box(p);
            n += 1;
        }
        while let Some(e) = s.poll_event() {
            black_box(e);
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let tones = TONES.repeat(64);

    let n = send_all(t0, &tones);
    let mut g = c.benchmark_group("sender");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("1024 tones", |b| b.iter(|| send_all(t0, black_box(&tones))));
    g.finish();

    // The wire image of the same tones, with arrival times.
    let mut s = DtmfSender::new(48_000);
    s.set_can_send(true);
    s.insert_dtmf(t0, &tones, 100, 70).unwrap();
    let mut wire = vec![];
    while let Some(t) = s.poll_timeout() {
        s.handle_timeout(t);
        while let Some(p) = s.poll_packet() {
            let rtp = RtpInfo {
                ssrc: 42,
                sequence: wire.len() as u16,
                timestamp: p.timestamp,
                marker: p.marker,
            };
            wire.push((p.at, rtp, p.payload.to_bytes()));
        }
    }
    let mut g = c.benchmark_group("receiver");
    g.throughput(Throughput::Elements(wire.len() as u64));
    g.bench_function("1024 tones", |b| {
        b.iter(|| {
            let mut r = DtmfReceiver::new(48_000);
            let mut digits = 0;
            for (at, rtp, payload) in &wire {
                r.handle_packet(*at, *rtp, payload).unwrap();
                while let Some(d) = r.poll_event() {
                    digits += usize::from(d.is_end());
                }
            }
            assert_eq!(digits, 1024);
            digits
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
