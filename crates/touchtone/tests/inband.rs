//! In-band DTMF: the generator and the detector against ITU-T Q.24-style accept and reject limits.

mod noise;

use noise::Noise;
use touchtone::inband::{DetectedDigit, Detector, ToneGenerator, amplitude_for_dbm0};

const DIGITS: &str = "123A456B789C*0#D";

fn detect(rate: u32, samples: &[f32]) -> Vec<DetectedDigit> {
    let mut d = Detector::new(rate);
    // Feed in odd-sized chunks: results must not depend on chunking.
    for chunk in samples.chunks(77) {
        d.process(chunk);
    }
    d.flush();
    std::iter::from_fn(|| d.poll_event())
        .filter(|e| e.end)
        .collect()
}

fn digits(events: &[DetectedDigit]) -> String {
    events.iter().map(|e| e.digit).collect()
}

fn render(rate: u32, f: impl FnOnce(&mut ToneGenerator)) -> Vec<f32> {
    let mut g = ToneGenerator::new(rate).unwrap();
    g.push_silence(50);
    f(&mut g);
    g.push_silence(100);
    let mut out = vec![0f32; g.remaining()];
    g.fill_f32(&mut out);
    out
}

#[test]
fn every_digit_round_trips_at_every_rate() {
    for rate in [8000, 16_000, 44_100, 48_000] {
        let s = render(rate, |g| g.push_tones(DIGITS, 100, 70).unwrap());
        let ev = detect(rate, &s);
        assert_eq!(digits(&ev), DIGITS, "at {rate} Hz");
        for (i, e) in ev.iter().enumerate() {
            let start = 50.0 + i as f64 * 170.0;
            assert!(
                (e.start_ms - start).abs() <= 7.0,
                "{rate} Hz {e:?} vs {start}"
            );
            assert!((e.duration_ms() - 100.0).abs() <= 10.0, "{rate} Hz {e:?}");
        }
    }
}

#[test]
fn key_down_comes_before_key_up() {
    let s = render(8000, |g| g.push_tones("5", 200, 50).unwrap());
    let mut d = Detector::new(8000);
    d.process(&s);
    let ev: Vec<_> = std::iter::from_fn(|| d.poll_event()).collect();
    assert_eq!(ev.len(), 2);
    assert!(!ev[0].end && ev[1].end);
    assert!((ev[0].start_ms - ev[1].start_ms).abs() < 1.0);
    // Key-down is reported within 45 ms of the tone's start.
    assert!(ev[0].end_ms - ev[0].start_ms < 45.0);
}

#[test]
fn frequency_tolerance_accepts_1_5_and_rejects_3_5_percent() {
    for rate in [8000, 48_000] {
        for c in DIGITS.chars() {
            let (lo, hi) = touchtone::tone::frequencies(c).unwrap();
            for dev in [-0.015, 0.015] {
                for (fl, fh) in [(1.0 + dev, 1.0), (1.0, 1.0 + dev), (1.0 + dev, 1.0 + dev)] {
                    let s = render(rate, |g| {
                        g.push_pair(f64::from(lo) * fl, f64::from(hi) * fh, 60)
                    });
                    assert_eq!(
                        digits(&detect(rate, &s)),
                        c.to_string(),
                        "{c} {fl} {fh} {rate}"
                    );
                }
            }
            for dev in [-0.035, 0.035] {
                for (fl, fh) in [(1.0 + dev, 1.0), (1.0, 1.0 + dev)] {
                    let s = render(rate, |g| {
                        g.push_pair(f64::from(lo) * fl, f64::from(hi) * fh, 60)
                    });
                    assert_eq!(digits(&detect(rate, &s)), "", "{c} {fl} {fh} {rate}");
                }
            }
        }
    }
}

#[test]
fn twist_limits() {
    for c in DIGITS.chars() {
        let with_twist = |twist: f32| {
            let s = render(8000, |g| {
                g.set_level(-6.0, twist);
                g.push_tones(&c.to_string(), 60, 50).unwrap();
            });
            digits(&detect(8000, &s))
        };
        assert_eq!(with_twist(-8.0), c.to_string(), "normal 8 dB {c}");
        assert_eq!(with_twist(4.0), c.to_string(), "reverse 4 dB {c}");
        assert_eq!(with_twist(-12.0), "", "normal 12 dB {c}");
        assert_eq!(with_twist(8.0), "", "reverse 8 dB {c}");
    }
}

#[test]
fn duration_limits_at_every_alignment() {
    for rate in [8000, 16_000] {
        for shift in (0..110).step_by(9) {
            let tone = |ms: u32| {
                let mut g = ToneGenerator::new(rate).unwrap();
                g.push_silence(20);
                let mut s = vec![0f32; shift * rate as usize / 8000];
                let mut rest = {
                    g.push_tones("8", ms, 100).unwrap();
                    let mut v = vec![0f32; g.remaining()];
                    g.fill_f32(&mut v);
                    v
                };
                s.append(&mut rest);
                digits(&detect(rate, &s))
            };
            assert_eq!(tone(40), "8", "40 ms, shift {shift}, {rate} Hz");
            assert_eq!(tone(23), "", "23 ms, shift {shift}, {rate} Hz");
            assert_eq!(tone(15), "", "15 ms, shift {shift}, {rate} Hz");
        }
    }
}

#[test]
fn a_40_ms_pause_separates_and_a_short_dropout_does_not() {
    let s = render(8000, |g| g.push_tones("11", 60, 40).unwrap());
    assert_eq!(digits(&detect(8000, &s)), "11");
    for dropout in [5, 10, 15, 19] {
        let s = render(8000, |g| {
            g.push_tone('7', 100).unwrap();
            g.push_silence(dropout);
            g.push_tone('7', 100).unwrap();
        });
        let ev = detect(8000, &s);
        assert_eq!(digits(&ev), "7", "dropout {dropout} ms");
        assert!((ev[0].duration_ms() - (200.0 + f64::from(dropout))).abs() < 10.0);
    }
}

#[test]
fn dynamic_range_minus_36_to_0_dbm0() {
    for level in [-36.0, -30.0, -20.0, -10.0, 0.0] {
        let s = render(8000, |g| {
            g.set_level(level, 0.0);
            g.push_tones(DIGITS, 50, 50).unwrap();
        });
        assert_eq!(digits(&detect(8000, &s)), DIGITS, "{level} dBm0");
    }
    let s = render(8000, |g| {
        g.set_level(-50.0, 0.0);
        g.push_tones("1", 100, 50).unwrap();
    });
    assert_eq!(digits(&detect(8000, &s)), "", "-50 dBm0 is below the floor");
}

#[test]
fn works_at_15_db_snr_in_white_noise() {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for level in [-10.0f32, -25.0] {
        // Power of two tones of amplitude a: a^2; noise sigma for 15 dB below it.
        let a = amplitude_for_dbm0(level);
        let sigma = (a * a / 10f32.powf(1.5)).sqrt();
        let mut s = render(8000, |g| {
            g.set_level(level, 0.0);
            g.push_tones(DIGITS, 60, 60).unwrap();
        });
        for x in s.iter_mut() {
            *x += sigma * noise.gaussian();
        }
        assert_eq!(digits(&detect(8000, &s)), DIGITS, "{level} dBm0");
    }
    // Noise alone yields nothing.
    let s: Vec<f32> = (0..8000 * 10).map(|_| 0.05 * noise.gaussian()).collect();
    assert_eq!(digits(&detect(8000, &s)), "");
}

#[test]
fn no_digits_on_music() {
    // Chords of harmonic-rich notes (equal temperament), 250 ms each, with vibrato.
    let rate = 8000;
    let mut s = vec![];
    let mut n = 0usize;
    for chord in 0..48 {
        let root = 110.0 * 2f32.powf(((chord * 5) % 24) as f32 / 12.0);
        for _ in 0..rate / 4 {
            let t = n as f32 / rate as f32;
            let mut v = 0.0;
            for ratio in [1.0, 1.26, 1.5, 2.0] {
                let f = root * ratio * (1.0 + 0.003 * (TAU32 * 5.0 * t).sin());
                for h in 1..6 {
                    v += 0.05 / h as f32 * (TAU32 * f * h as f32 * t).sin();
                }
            }
            s.push(v);
            n += 1;
        }
    }
    assert_eq!(digits(&detect(rate, &s)), "");
}

const TAU32: f32 = std::f32::consts::TAU;

#[test]
fn no_digits_on_speech() {
    // Speech by several voices at several speeds (espeak-ng), 8 kHz 16-bit mono.
    let wav = include_bytes!("fixtures/speech-8k.wav");
    let samples: Vec<f32> = wav[44..]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    assert!(
        samples.len() > 8000 * 20,
        "the fixture holds at least 20 s of speech"
    );
    let ev = detect(8000, &samples);
    assert_eq!(digits(&ev), "", "talk-off: {ev:?}");
    // The same speech with digits mixed in still yields exactly those digits.
    let mut mixed = samples.clone();
    let tones = render(8000, |g| {
        g.set_level(-10.0, 0.0);
        g.push_tones("159#", 80, 900).unwrap();
    });
    for (i, t) in tones.iter().enumerate() {
        mixed[8000 * 3 + i] = mixed[8000 * 3 + i] * 0.1 + t;
    }
    assert_eq!(digits(&detect(8000, &mixed)), "159#");
}
