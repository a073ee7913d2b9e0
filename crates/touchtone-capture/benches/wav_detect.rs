//! WAV decoding and in-band detection as `touchtone detect` runs them: a minute of 16-bit audio with a
//! digit every 200 ms, at 8 kHz and 48 kHz, in memory.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use touchtone::inband::ToneGenerator;
use touchtone_capture::{WavOptions, WavReader, detect_in_wav};

fn wav(rate: u32, channels: u16, seconds: u32) -> Vec<u8> {
    let mut g = ToneGenerator::new(rate).unwrap();
    let tones: String = "0123456789*#ABCD"
        .chars()
        .cycle()
        .take(seconds as usize * 5)
        .collect();
    g.push_tones(&tones, 100, 100).unwrap();
    let mono = g.render();
    let data_len = (mono.len() * 2 * usize::from(channels)) as u32;
    let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0".to_vec();
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    v.extend_from_slice(&(2 * channels).to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in &mono {
        for _ in 0..channels {
            v.extend_from_slice(&s.to_le_bytes());
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    for (rate, channels) in [(8000, 1u16), (48_000, 1), (8000, 2)] {
        let file = wav(rate, channels, 60);
        let mut group = c.benchmark_group(format!("wav {rate} Hz x{channels}, 60 s"));
        group.throughput(Throughput::Bytes(file.len() as u64));
        group.sample_size(20);
        group.bench_function("decode", |b| {
            b.iter(|| {
                let mut r = WavReader::new(&file[..]).unwrap();
                let mut block = vec![Vec::new(); usize::from(channels)];
                let mut n = 0;
                while r.next_block(&mut block).unwrap() {
                    n += block[0].len();
                }
                n
            })
        });
        group.bench_function("decode + detect", |b| {
            b.iter(|| {
                let digits = detect_in_wav(&file[..], WavOptions::default()).unwrap();
                assert_eq!(digits.len(), 300 * usize::from(channels));
                digits.len()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
