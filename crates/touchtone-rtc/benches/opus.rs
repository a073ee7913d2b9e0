//! CPU per call of in-band DTMF on Opus: decoding received packets and running the detector at 48 kHz,
//! and encoding the tones a peer sends, each per second of audio (one call's worth: 50 packets of 20 ms).
//!
//! `cargo bench -p touchtone-rtc --bench opus`. The time per second of audio is the share of one core
//! a call takes: 1 ms per second of audio is 0.1% of a core, 1000 calls per core.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use touchtone::inband::{Detector, ToneGenerator};
use touchtone_rtc::Ptime;
use touchtone_rtc::audio::{OPUS_FRAME, OpusReceiver, OpusSender};

/// One second of a call's audio at 48 kHz: tones with gaps, over low noise (what a caller's phone
/// plays into the microphone), as 50 Opus packets encoded at 32 kbit/s.
fn packets() -> Vec<Vec<u8>> {
    let mut g = ToneGenerator::new(48_000).unwrap();
    g.push_tones("1593", 120, 130).unwrap();
    let mut tx = OpusSender::new().unwrap();
    let mut seed = 1u32;
    (0..50)
        .map(|_| {
            let mut pcm = [0i16; OPUS_FRAME];
            g.fill(&mut pcm);
            for s in pcm.iter_mut() {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *s = s.saturating_add(((seed >> 16) as i16) >> 6);
            }
            tx.encode(&pcm).unwrap().to_vec()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let packets = packets();
    // The receive path as a peer runs it: decode, then the detector; checked to find the digits.
    let mut rx = OpusReceiver::new().unwrap();
    let decoded: Vec<i16> = packets
        .iter()
        .enumerate()
        .flat_map(|(seq, p)| rx.decode(seq as u16, p).unwrap().to_vec())
        .collect();
    assert_eq!(Detector::new(48_000).digits_in_i16(&decoded), "1593");

    let mut group = c.benchmark_group("opus per second of audio");
    group.throughput(Throughput::Elements(48_000));
    group.measurement_time(Duration::from_secs(5));
    let mut seq = 0u16;
    let mut rx = OpusReceiver::new().unwrap();
    let mut det = Detector::new(48_000);
    group.bench_function("decode + detect (receive)", |b| {
        b.iter(|| {
            for p in &packets {
                seq = seq.wrapping_add(1);
                det.process_i16(rx.decode(seq, black_box(p)).unwrap());
                while det.poll_event().is_some() {}
            }
        })
    });
    let mut rx = OpusReceiver::new().unwrap();
    group.bench_function("decode only", |b| {
        b.iter(|| {
            for p in &packets {
                seq = seq.wrapping_add(1);
                black_box(rx.decode(seq, black_box(p)).unwrap());
            }
        })
    });
    let mut rx = OpusReceiver::new().unwrap();
    let pcm: Vec<i16> = packets
        .iter()
        .enumerate()
        .flat_map(|(i, p)| rx.decode(i as u16, p).unwrap().to_vec())
        .collect();
    let mut det = Detector::new(48_000);
    group.bench_function("detect only (48 kHz)", |b| {
        b.iter(|| {
            for frame in pcm.chunks(OPUS_FRAME) {
                det.process_i16(black_box(frame));
                while det.poll_event().is_some() {}
            }
        })
    });
    let mut tx = OpusSender::new().unwrap();
    let mut g = ToneGenerator::new(48_000).unwrap();
    group.bench_function("tones + encode (send)", |b| {
        b.iter(|| {
            if g.remaining() < 48_000 {
                g.push_tones("1593", 120, 130).unwrap();
            }
            for _ in 0..50 {
                black_box(tx.next_frame(Ptime::Ms20, Some(&mut g), None).unwrap());
            }
        })
    });
    let mut tx = OpusSender::new().unwrap();
    let audio: Vec<i16> = (0..8000)
        .map(|i| (3000.0 * (i as f64 * 0.37).sin()) as i16)
        .collect();
    let mut pos = 0;
    group.bench_function("8 kHz audio upsampled + encode (send --audio)", |b| {
        b.iter(|| {
            for _ in 0..50 {
                black_box(
                    tx.next_frame(Ptime::Ms20, None, Some((&audio, &mut pos)))
                        .unwrap(),
                );
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
