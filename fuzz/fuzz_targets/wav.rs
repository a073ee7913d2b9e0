//! WAV files from arbitrary bytes: `detect_in_wav`, the streaming `WavDigits` fed a few bytes per read, and
//! `read_mono_8k`. No panic, no runaway memory; streaming and whole-input forms agree; digits have sane
//! times within the audio read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use touchtone_capture::{WavDigits, WavOptions, detect_in_wav, read_mono_8k};

mod common;

use common::{Trickle, kind};

fuzz_target!(|data: &[u8]| {
    let options = WavOptions::default();
    let whole = detect_in_wav(data, options);
    if let Ok(digits) = &whole {
        for d in digits {
            assert!("0123456789*#ABCD".contains(d.digit));
            assert!(
                d.start_ms.is_finite() && d.start_ms >= 0.0 && d.end_ms >= d.start_ms,
                "{d:?}"
            );
        }
    }

    let chunk = 1 + data.len() % 97;
    let mut streamed = Vec::new();
    let mut error = None;
    match WavDigits::new(Trickle { data, chunk }, options) {
        Ok(it) => {
            let format = it.format();
            assert!((1..=64).contains(&format.channels));
            for item in it {
                match item {
                    Ok(d) => {
                        assert!(error.is_none(), "a digit after the error");
                        assert!(d.channel < format.channels);
                        streamed.push(d);
                    }
                    Err(e) => {
                        assert!(error.is_none(), "two errors");
                        error = Some(e);
                    }
                }
            }
        }
        Err(e) => error = Some(e),
    }
    match (&whole, &error) {
        (Ok(digits), None) => assert_eq!(digits, &streamed),
        (Err(a), Some(b)) => assert_eq!(kind(a), kind(b), "{a:?} vs {b:?}"),
        (a, b) => panic!("whole {a:?} but streamed error {b:?}"),
    }

    // One channel only, as `touchtone detect --channel 1` asks.
    let one = WavOptions {
        channel: Some(1),
        ..options
    };
    let _ = detect_in_wav(data, one);
    if let Ok(samples) = read_mono_8k(data, 2) {
        assert!(samples.len() <= 2 * 8000 + 8);
    }
});
