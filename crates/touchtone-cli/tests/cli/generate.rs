//! `touchtone generate`: tones to WAV, and the arguments it must refuse.

use std::time::Duration;

use crate::util::*;

#[test]
fn generate_rejects_bad_tones_and_writes_stdout() {
    let dir = Dir::new();
    let o = touchtone(&["generate", "12x", "-o", dir.path("x.wav").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("InvalidCharacterError"),
        "{}",
        stderr(&o)
    );
    let o = touchtone(&[
        "generate",
        "1",
        "-o",
        "-",
        "--duration",
        "100",
        "--gap",
        "0",
    ]);
    assert!(o.status.success());
    assert_eq!(&o.stdout[..4], b"RIFF");
    assert_eq!(o.stdout.len(), 44 + 800 * 2);
}

#[test]
fn generate_refuses_non_finite_and_out_of_range_values() {
    let dir = Dir::new();
    let out = dir.path("x.wav");
    let out = out.to_str().unwrap();
    for (flag, value) in [
        ("--twist", "NaN"),
        ("--twist", "inf"),
        ("--twist", "-inf"),
        ("--twist", "40"),
        ("--level", "NaN"),
        ("--level", "inf"),
        ("--level", "-100"),
        ("--rate", "4000"),
        ("--rate", "1000000"),
        ("--duration", "0"),
        ("--duration", "100000"),
        ("--gap", "100000"),
    ] {
        let o = touchtone(&["generate", "1", "-o", out, flag, value]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert_eq!(err.lines().count(), 1, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(!dir.path("x.wav").exists(), "{flag} {value} wrote a file");
    }
}

#[test]
fn generate_refuses_more_than_a_wav_file_holds() {
    let dir = Dir::new();
    let out = dir.path("huge.wav");
    // 200 tones of a minute at 192 kHz: 4.6 GB of 16-bit samples, past the 4 GiB a WAV header holds.
    let tones = "1".repeat(200);
    for target in [out.to_str().unwrap(), "-"] {
        let o = run_with_deadline(
            &[
                "generate",
                &tones,
                "-o",
                target,
                "--duration",
                "60000",
                "--gap",
                "0",
                "--rate",
                "192000",
            ],
            Duration::from_secs(20),
        )
        .expect("generate must refuse at once, not render gigabytes");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("4 GiB"), "{err}");
    }
    assert!(!out.exists());
}
