//! In-band detector throughput and accuracy, side by side with spandsp's `dtmf_rx` (feature `spandsp`).
//!
//! `cargo bench -p touchtone --bench inband --features spandsp` (needs `libspandsp-dev`).

#[path = "../tests/noise/mod.rs"]
mod noise;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use noise::Noise;
use touchtone::inband::{Detector, ToneGenerator, amplitude_for_dbm0};

const RATE: u32 = 8000;
const DIGITS: &str = "123A456B789C*0#D";

/// A detector under comparison: 8 kHz 16-bit samples in, digits out.
trait Dtmf {
    fn name(&self) -> &'static str;
    fn digits(&mut self, samples: &[i16]) -> String;
}

struct Ours;

impl Dtmf for Ours {
    fn name(&self) -> &'static str {
        "touchtone"
    }
    fn digits(&mut self, samples: &[i16]) -> String {
        let mut d = Detector::new(RATE);
        let mut out = String::new();
        for frame in samples.chunks(160) {
            d.process_i16(frame);
            while let Some(e) = d.poll_event() {
                if e.end {
                    out.push(e.digit);
                }
            }
        }
        d.flush();
        while let Some(e) = d.poll_event() {
            if e.end {
                out.push(e.digit);
            }
        }
        out
    }
}

#[cfg(feature = "spandsp")]
mod spandsp {
    use std::ffi::{c_char, c_int, c_void};

    #[link(name = "spandsp")]
    unsafe extern "C" {
        fn dtmf_rx_init(s: *mut c_void, cb: *const c_void, user: *mut c_void) -> *mut c_void;
        fn dtmf_rx(s: *mut c_void, amp: *const i16, samples: c_int) -> c_int;
        fn dtmf_rx_get(s: *mut c_void, digits: *mut c_char, max: c_int) -> usize;
        fn dtmf_rx_free(s: *mut c_void) -> c_int;
    }

    /// spandsp's DTMF receiver (the one in FreeSWITCH and GStreamer), default parameters.
    pub struct SpanDsp;

    impl super::Dtmf for SpanDsp {
        fn name(&self) -> &'static str {
            "spandsp dtmf_rx"
        }
        fn digits(&mut self, samples: &[i16]) -> String {
            let mut out = String::new();
            let mut buf = [0 as c_char; 128];
            // SAFETY: the state is created, used and freed here only; buffers outlive each call.
            unsafe {
                let s = dtmf_rx_init(std::ptr::null_mut(), std::ptr::null(), std::ptr::null_mut());
                assert!(!s.is_null());
                for frame in samples.chunks(160) {
                    dtmf_rx(s, frame.as_ptr(), frame.len() as c_int);
                    let n = dtmf_rx_get(s, buf.as_mut_ptr(), buf.len() as c_int - 1);
                    out.extend(buf[..n].iter().map(|c| *c as u8 as char));
                }
                dtmf_rx_free(s);
            }
            out
        }
    }
}

fn to_i16(s: &[f32]) -> Vec<i16> {
    s.iter()
        .map(|x| (x * 32767.0).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

fn tones(f: impl FnOnce(&mut ToneGenerator)) -> Vec<f32> {
    let mut g = ToneGenerator::new(RATE).unwrap();
    g.push_silence(100);
    f(&mut g);
    g.push_silence(200);
    let mut v = vec![0f32; g.remaining()];
    g.fill_f32(&mut v);
    v
}

fn speech() -> Vec<i16> {
    let wav = include_bytes!("../tests/fixtures/speech-8k.wav");
    wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The same signals for every detector: (condition, signal, expected digits).
fn cases() -> Vec<(String, Vec<i16>, String)> {
    let mut v = vec![];
    v.push((
        "all 16 digits, 50/50 ms, -10 dBm0".into(),
        to_i16(&tones(|g| g.push_tones(DIGITS, 50, 50).unwrap())),
        DIGITS.into(),
    ));
    let mut noise = Noise(7);
    for (level, snr) in [(-10.0f32, 15.0f32), (-25.0, 15.0)] {
        let a = amplitude_for_dbm0(level);
        let sigma = (a * a / 10f32.powf(snr / 10.0)).sqrt();
        let mut s = tones(|g| {
            g.set_level(level, 0.0);
            g.push_tones(DIGITS, 60, 60).unwrap();
        });
        s.iter_mut().for_each(|x| *x += sigma * noise.gaussian());
        v.push((
            format!("16 digits at {level} dBm0, {snr} dB SNR white noise"),
            to_i16(&s),
            DIGITS.into(),
        ));
    }
    for dev in [0.015f64, -0.015] {
        let mut s = vec![];
        for c in DIGITS.chars() {
            let (lo, hi) = touchtone::tone::frequencies(c).unwrap();
            s.extend(tones(|g| {
                g.push_pair(f64::from(lo) * (1.0 + dev), f64::from(hi) * (1.0 + dev), 60)
            }));
        }
        v.push((
            format!("16 digits off by {:+.1}% (accept)", dev * 100.0),
            to_i16(&s),
            DIGITS.into(),
        ));
    }
    for dev in [0.035f64, -0.035] {
        let mut s = vec![];
        for c in DIGITS.chars() {
            let (lo, hi) = touchtone::tone::frequencies(c).unwrap();
            s.extend(tones(|g| {
                g.push_pair(f64::from(lo) * (1.0 + dev), f64::from(hi), 60)
            }));
        }
        v.push((
            format!("16 digits, low tone off by {:+.1}% (reject)", dev * 100.0),
            to_i16(&s),
            String::new(),
        ));
    }
    for (twist, expect) in [(-8.0f32, true), (4.0, true), (-12.0, false), (8.0, false)] {
        let s = tones(|g| {
            g.set_level(-6.0, twist);
            g.push_tones(DIGITS, 60, 60).unwrap();
        });
        let what = if expect { "accept" } else { "reject" };
        v.push((
            format!("16 digits, twist {twist:+} dB ({what})"),
            to_i16(&s),
            if expect { DIGITS.into() } else { String::new() },
        ));
    }
    v.push((
        "16 digits of 40 ms (accept)".into(),
        to_i16(&tones(|g| g.push_tones(DIGITS, 40, 60).unwrap())),
        DIGITS.into(),
    ));
    v.push((
        "16 digits of 20 ms (reject)".into(),
        to_i16(&tones(|g| g.push_tones(DIGITS, 20, 60).unwrap())),
        String::new(),
    ));
    v.push((
        "50 s of speech, six voices (talk-off)".into(),
        speech(),
        String::new(),
    ));
    v
}

fn detectors() -> Vec<Box<dyn Dtmf>> {
    #[allow(unused_mut)]
    let mut v: Vec<Box<dyn Dtmf>> = vec![Box::new(Ours)];
    #[cfg(feature = "spandsp")]
    v.push(Box::new(spandsp::SpanDsp));
    v
}

fn accuracy() {
    let cases = cases();
    for mut d in detectors() {
        let mut score = 0;
        println!("accuracy of {}:", d.name());
        for (what, signal, expected) in &cases {
            let got = d.digits(signal);
            let ok = &got == expected;
            score += usize::from(ok);
            println!(
                "  {:<52} {:>5}  got {:?}",
                what,
                if ok { "ok" } else { "WRONG" },
                got
            );
        }
        println!("  {} of {} conditions right\n", score, cases.len());
    }
}

fn bench(c: &mut Criterion) {
    accuracy();
    // One minute of audio: digits in noise, then speech.
    let mut signal = cases().remove(1).1;
    signal.extend(speech());
    signal.truncate(RATE as usize * 60);
    let mut g = c.benchmark_group("detector 8 kHz, 60 s of audio");
    g.throughput(Throughput::Elements(signal.len() as u64));
    for mut d in detectors() {
        g.bench_function(d.name(), |b| b.iter(|| d.digits(black_box(&signal))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
