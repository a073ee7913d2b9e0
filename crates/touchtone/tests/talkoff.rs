//! Talk-off: no digit on audio without DTMF (speech, singing, music, noise), before and after G.711.
//!
//! The committed excerpts (`tests/fixtures/talkoff`) always run. The whole corpus (hours, made by
//! `scripts/make-talkoff-corpus` into `target/talkoff-corpus` or `$TOUCHTONE_TALKOFF_CORPUS`) runs with
//! `cargo test -p touchtone --release --test talkoff -- --ignored`.

mod corpus;

use std::path::Path;

use touchtone::inband::DetectorConfig;
use touchtone::inband::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};

/// Runs the detector on each clip; returns a line per false digit.
fn false_digits(clips: &[corpus::Clip], g711_too: bool) -> (Vec<String>, f64) {
    let mut found = vec![];
    let mut seconds = 0.0;
    for c in clips {
        let pcm = corpus::read_wav(&c.path);
        let mut versions = vec![(c.encoding.clone(), pcm.clone())];
        if g711_too {
            let ulaw = pcm.iter().map(|&s| ulaw_to_linear(linear_to_ulaw(s)));
            let alaw = pcm.iter().map(|&s| alaw_to_linear(linear_to_alaw(s)));
            versions.push(("ulaw".into(), ulaw.collect()));
            versions.push(("alaw".into(), alaw.collect()));
        }
        for (enc, samples) in versions {
            seconds += samples.len() as f64 / 8000.0;
            for e in corpus::detect(DetectorConfig::default(), &samples) {
                found.push(format!(
                    "{} ({enc}) at {:.2} s: {} for {:.0} ms",
                    c.path.display(),
                    e.start_ms / 1000.0,
                    e.digit,
                    e.duration_ms()
                ));
            }
        }
    }
    (found, seconds)
}

#[test]
fn committed_excerpts_yield_no_digit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/talkoff");
    let clips = corpus::clips(&dir);
    assert!(clips.len() >= 5, "the committed excerpts are there");
    let (found, seconds) = false_digits(&clips, true);
    assert!(
        seconds > 240.0,
        "at least 4 minutes with the round trips ({seconds} s)"
    );
    assert!(found.is_empty(), "false digits:\n{}", found.join("\n"));
}

#[test]
#[ignore = "needs the corpus from scripts/make-talkoff-corpus (hours of audio)"]
fn whole_corpus_yields_no_digit() {
    let dir = corpus::corpus_dir();
    assert!(
        dir.join(".stamp").exists(),
        "no complete corpus in {}: run scripts/make-talkoff-corpus",
        dir.display()
    );
    let clips = corpus::clips(&dir);
    // The corpus already holds the G.711 round trips (encoded by sox) beside each file.
    let (found, seconds) = false_digits(&clips, false);
    let hours = seconds / 3600.0;
    println!("{} files, {hours:.2} h", clips.len());
    assert!(hours >= 3.0, "the corpus holds {hours:.2} h");
    assert!(
        found.is_empty(),
        "{} false digits in {hours:.2} h:\n{}",
        found.len(),
        found.join("\n")
    );
}
