//! Talk-off against Q.24 accepts: runs detector settings over the talk-off corpus and the accept/reject
//! cases, and prints false digits per hour by kind of content next to the cases passed.
//!
//! `cargo run --release -p touchtone --example talkoff -- [CORPUS] [--list] [--set name=value,...]...`
//! Each `--set` is one row (default settings when none is given); `--list` prints every false digit.

#[path = "../tests/corpus/mod.rs"]
mod corpus;
#[path = "../tests/noise/mod.rs"]
mod noise;

use std::collections::BTreeMap;
use std::path::PathBuf;

use noise::Noise;
use touchtone::inband::{DetectorConfig, ToneGenerator, amplitude_for_dbm0};

const DIGITS: &str = "123A456B789C*0#D";

fn main() {
    let mut root = corpus::corpus_dir();
    let mut sets: Vec<String> = vec![];
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--set" => sets.push(args.next().expect("--set name=value,...")),
            "--list" => list = true,
            _ => root = PathBuf::from(a),
        }
    }
    if sets.is_empty() {
        sets.push(String::new());
    }
    let clips = corpus::clips(&root);
    let audio: Vec<Vec<i16>> = clips.iter().map(|c| corpus::read_wav(&c.path)).collect();
    let mut hours: BTreeMap<&str, f64> = BTreeMap::new();
    for (c, a) in clips.iter().zip(&audio) {
        *hours.entry(&c.kind).or_default() += a.len() as f64 / 8000.0 / 3600.0;
    }
    let total_h: f64 = hours.values().sum();
    println!(
        "corpus {}: {} files, {total_h:.2} h",
        root.display(),
        clips.len()
    );
    for set in &sets {
        let cfg = parse(set);
        let t = std::time::Instant::now();
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_enc: BTreeMap<&str, usize> = BTreeMap::new();
        for (c, a) in clips.iter().zip(&audio) {
            let ev = corpus::detect(cfg, a);
            if !ev.is_empty() {
                *by_kind.entry(&c.kind).or_default() += ev.len();
                *by_enc.entry(&c.encoding).or_default() += ev.len();
                if list {
                    for e in &ev {
                        println!(
                            "  {} {:.2}s {} ({:.0} ms)",
                            c.path.strip_prefix(&root).unwrap_or(&c.path).display(),
                            e.start_ms / 1000.0,
                            e.digit,
                            e.duration_ms()
                        );
                    }
                }
            }
        }
        let corpus_s = t.elapsed().as_secs_f64();
        let false_digits: usize = by_kind.values().sum();
        let (acc, acc_n, rej, rej_n) = q24(cfg);
        println!(
            "[{}] false digits {false_digits} ({:.2}/h) | accepts {acc}/{acc_n} rejects {rej}/{rej_n} | corpus in {corpus_s:.1} s",
            if set.is_empty() { "default" } else { set },
            false_digits as f64 / total_h
        );
        for (k, n) in &by_kind {
            println!("    {k:<20} {n:>4}  {:.1}/h", *n as f64 / hours[k]);
        }
        if !by_enc.is_empty() {
            println!("    by encoding: {by_enc:?}");
        }
    }
}

fn parse(set: &str) -> DetectorConfig {
    let mut c = DetectorConfig::default();
    for kv in set.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("name=value");
        let v: f32 = v.parse().expect("a number");
        match k {
            "level" => c.min_level_dbm0 = v,
            "normal_twist" => c.max_normal_twist_db = v,
            "reverse_twist" => c.max_reverse_twist_db = v,
            "deviation" => c.max_frequency_deviation = v,
            "purity" => c.min_purity = v,
            "separation" => c.min_group_separation_db = v,
            "hits" => c.min_hits = v as u32,
            "misses" => c.max_misses = v as u32,
            "tone_purity" => c.min_tone_purity = v,
            "ratio" => c.harmonic_ratio_tolerance = v,
            "harmonic" => c.max_harmonic_db = v,
            "second" => c.max_second_harmonic_db = v,
            "freq_spread" => c.max_frequency_spread = v,
            "twist_spread" => c.max_twist_spread_db = v,
            _ => panic!("unknown setting {k}"),
        }
    }
    c
}

fn render(rate: u32, lead_ms: u32, f: impl FnOnce(&mut ToneGenerator)) -> Vec<f32> {
    let mut g = ToneGenerator::new(rate).unwrap();
    g.push_silence(lead_ms);
    f(&mut g);
    g.push_silence(100);
    let mut out = vec![0f32; g.remaining()];
    g.fill_f32(&mut out);
    out
}

fn digits(cfg: DetectorConfig, rate: u32, s: &[f32]) -> String {
    touchtone::inband::Detector::with_config(rate, cfg).digits_in(s)
}

/// The Q.24 cases of tests/inband.rs, counted: (accepts passed, accept cases, rejects passed, reject cases).
fn q24(cfg: DetectorConfig) -> (usize, usize, usize, usize) {
    let mut acc = (0, 0);
    let mut rej = (0, 0);
    let mut check = |s: &[f32], rate: u32, want: &str| {
        let got = digits(cfg, rate, s);
        let ok = got == want;
        if !ok && std::env::var_os("TALKOFF_VERBOSE").is_some() {
            println!(
                "    case {} at {rate} Hz: want {want:?}, got {got:?}",
                acc.1 + rej.1
            );
        }
        let r = if want.is_empty() { &mut rej } else { &mut acc };
        r.0 += usize::from(ok);
        r.1 += 1;
    };
    for rate in [8000, 16_000, 44_100, 48_000] {
        check(
            &render(rate, 50, |g| g.push_tones(DIGITS, 100, 70).unwrap()),
            rate,
            DIGITS,
        );
    }
    for rate in [8000, 48_000] {
        for c in DIGITS.chars() {
            let (lo, hi) = touchtone::tone::frequencies(c).unwrap();
            let (lo, hi) = (f64::from(lo), f64::from(hi));
            for dev in [-0.015, 0.015] {
                for (fl, fh) in [(1.0 + dev, 1.0), (1.0, 1.0 + dev), (1.0 + dev, 1.0 + dev)] {
                    let s = render(rate, 50, |g| g.push_pair(lo * fl, hi * fh, 60));
                    check(&s, rate, &c.to_string());
                }
                // Opposite directions: the widest spread of the two tones' ratio Q.24 accepts.
                let s = render(rate, 50, |g| {
                    g.push_pair(lo * (1.0 + dev), hi * (1.0 - dev), 60)
                });
                check(&s, rate, &c.to_string());
            }
            for dev in [-0.035, 0.035] {
                for (fl, fh) in [(1.0 + dev, 1.0), (1.0, 1.0 + dev)] {
                    let s = render(rate, 50, |g| g.push_pair(lo * fl, hi * fh, 60));
                    check(&s, rate, "");
                }
            }
        }
    }
    for c in DIGITS.chars() {
        for (twist, ok) in [(-8.0, true), (4.0, true), (-12.0, false), (8.0, false)] {
            let s = render(8000, 50, |g| {
                g.set_level(-6.0, twist);
                g.push_tones(&c.to_string(), 60, 50).unwrap();
            });
            let want = if ok { c.to_string() } else { String::new() };
            check(&s, 8000, &want);
        }
    }
    for rate in [8000, 16_000] {
        for shift in (0..110).step_by(9) {
            for (ms, want) in [(40, "8"), (23, ""), (15, "")] {
                let mut s = vec![0f32; shift * rate as usize / 8000];
                s.extend(render(rate, 20, |g| g.push_tones("8", ms, 100).unwrap()));
                check(&s, rate, want);
            }
        }
    }
    check(
        &render(8000, 50, |g| g.push_tones("11", 60, 40).unwrap()),
        8000,
        "11",
    );
    for dropout in [5, 10, 15, 19] {
        let s = render(8000, 50, |g| {
            g.push_tone('7', 100).unwrap();
            g.push_silence(dropout);
            g.push_tone('7', 100).unwrap();
        });
        check(&s, 8000, "7");
    }
    for level in [-36.0, -30.0, -20.0, -10.0, 0.0] {
        let s = render(8000, 50, |g| {
            g.set_level(level, 0.0);
            g.push_tones(DIGITS, 50, 50).unwrap();
        });
        check(&s, 8000, DIGITS);
    }
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for level in [-10.0f32, -25.0] {
        let a = amplitude_for_dbm0(level);
        let sigma = (a * a / 10f32.powf(1.5)).sqrt();
        let mut s = render(8000, 50, |g| {
            g.set_level(level, 0.0);
            g.push_tones(DIGITS, 60, 60).unwrap();
        });
        s.iter_mut().for_each(|x| *x += sigma * noise.gaussian());
        check(&s, 8000, DIGITS);
    }
    // Combined: ±1.5% on both tones with twist (8 dB normal, 4 dB reverse) or in 15 dB SNR noise at -25 dBm0.
    for c in DIGITS.chars() {
        let (lo, hi) = touchtone::tone::frequencies(c).unwrap();
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        for dev in [-0.015, 0.015] {
            for twist in [-8.0, 4.0] {
                let s = render(8000, 50, |g| {
                    g.set_level(-6.0, twist);
                    g.push_pair(lo * (1.0 + dev), hi * (1.0 + dev), 60);
                });
                check(&s, 8000, &c.to_string());
            }
            let a = amplitude_for_dbm0(-25.0);
            let sigma = (a * a / 10f32.powf(1.5)).sqrt();
            let mut s = render(8000, 50, |g| {
                g.set_level(-25.0, 0.0);
                g.push_pair(lo * (1.0 + dev), hi * (1.0 - dev), 60);
            });
            s.iter_mut().for_each(|x| *x += sigma * noise.gaussian());
            check(&s, 8000, &c.to_string());
        }
    }
    // Digits over the speech fixture, 10 dB below the tones (average power).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let beds = [corpus::read_wav(&dir.join("speech-8k.wav"))];
    let tones = render(8000, 0, |g| {
        g.set_level(-10.0, 0.0);
        g.push_tones("159#", 80, 900).unwrap();
    });
    let tone_power = tones.iter().map(|x| x * x).sum::<f32>() / (4.0 * 640.0);
    for bed in beds {
        let bed: Vec<f32> = bed[..8000 * 5]
            .iter()
            .map(|&x| f32::from(x) / 32768.0)
            .collect();
        let power = bed.iter().map(|x| x * x).sum::<f32>() / bed.len() as f32;
        let gain = (tone_power / 10.0 / power).sqrt();
        let mut mixed: Vec<f32> = bed.iter().map(|x| x * gain).collect();
        for (m, t) in mixed[4000..].iter_mut().zip(&tones) {
            *m += t;
        }
        check(&mixed, 8000, "159#");
    }
    (acc.0, acc.1, rej.0, rej.1)
}
