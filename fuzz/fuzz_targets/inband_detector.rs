//! The in-band detector on arbitrary audio: 16-bit or float samples (NaN, infinities and huge values
//! included), any sample rate, fed in arbitrary chunks. No panic; events alternate key-down, key-up of
//! the same digit with sane times; silence (all zeros, and near-zero noise) gives no digit.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use touchtone::inband::{DetectedDigit, Detector};

#[derive(Arbitrary, Debug)]
enum Chunk {
    I16(Vec<i16>),
    F32(Vec<f32>),
    /// This many zero samples.
    Silence(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    rate: u32,
    chunks: Vec<Chunk>,
    flush: bool,
}

fn check(events: &[DetectedDigit]) {
    let mut held: Option<DetectedDigit> = None;
    for e in events {
        assert!("0123456789*#ABCD".contains(e.digit), "{e:?}");
        assert!(e.start_ms.is_finite() && e.end_ms.is_finite(), "{e:?}");
        assert!(e.start_ms >= 0.0 && e.end_ms >= e.start_ms, "{e:?}");
        match (held, e.end) {
            (None, false) => held = Some(*e),
            (Some(down), true) => {
                assert_eq!(down.digit, e.digit);
                assert_eq!(down.start_ms, e.start_ms);
                assert!(e.end_ms >= down.end_ms - 1e-9, "{down:?} then {e:?}");
                held = None;
            }
            _ => panic!("{e:?} after {held:?}"),
        }
    }
}

fuzz_target!(|input: Input| {
    let mut det = Detector::new(input.rate);
    let rate = det.sample_rate();
    assert!((8000..=384_000).contains(&rate));
    let mut silent = Detector::new(input.rate);
    let mut events = Vec::new();
    let mut total = 0usize;
    for chunk in input.chunks.iter().take(64) {
        match chunk {
            Chunk::I16(s) => {
                det.process_i16(s);
                total += s.len();
            }
            Chunk::F32(s) => {
                det.process(s);
                total += s.len();
            }
            Chunk::Silence(n) => {
                let z = vec![0i16; usize::from(*n)];
                det.process_i16(&z);
                silent.process_i16(&z);
                // Noise of one LSB is silence too.
                let tiny: Vec<f32> = (0..usize::from(*n))
                    .map(|i| if i % 3 == 0 { 1.0 / 32768.0 } else { 0.0 })
                    .collect();
                silent.process(&tiny);
                total += z.len();
            }
        }
        while let Some(e) = det.poll_event() {
            events.push(e);
        }
        assert!(silent.poll_event().is_none(), "a digit from silence");
    }
    if input.flush {
        det.flush();
        silent.flush();
        while let Some(e) = det.poll_event() {
            events.push(e);
        }
        assert!(silent.poll_event().is_none(), "a digit from silence");
    }
    check(&events);
    let span = total as f64 * 1000.0 / f64::from(rate);
    for e in &events {
        assert!(e.end_ms <= span + 1.0, "{e:?} past the {span} ms fed");
    }
});
