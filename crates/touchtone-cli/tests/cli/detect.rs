//! `touchtone detect`: digits in WAV recordings of every format read, stdin, bad files.

use std::process::Stdio;

use touchtone::inband::g711;

use crate::util::*;

#[test]
fn generate_then_detect_every_digit_at_every_rate() {
    let dir = Dir::new();
    for rate in ["8000", "16000", "44100", "48000"] {
        let path = dir.path(&format!("all-{rate}.wav"));
        let p = path.to_str().unwrap();
        let o = touchtone(&[
            "generate",
            "0123456789*#ABCD",
            "-o",
            p,
            "--duration",
            "80",
            "--gap",
            "60",
            "--rate",
            rate,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = touchtone(&["detect", p, "--format", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(digits_of(&stdout(&o)), "0123456789*#ABCD", "{rate}");
    }
}

#[test]
fn detect_json_lines_have_the_documented_shape() {
    let dir = Dir::new();
    let path = dir.path("five.wav");
    let p = path.to_str().unwrap();
    let o = touchtone(&[
        "generate",
        "5",
        "-o",
        p,
        "--duration",
        "200",
        "--gap",
        "100",
    ]);
    assert!(o.status.success());
    let o = touchtone(&["detect", p, "--format", "json"]);
    let out = stdout(&o);
    let line = out.lines().next().unwrap();
    assert!(
        line.starts_with(
            r#"{"type":"digit","v":1,"digit":"5","event":5,"source":"inband","duration_ms":"#
        ),
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(v["start_ms"].as_f64().unwrap() < 5.0);
    assert!(
        (v["end_ms"].as_f64().unwrap() - 200.0).abs() < 6.0,
        "{line}"
    );
    assert_eq!(v["channel"], 0, "{line}");
    // A WAV file has no stream or call: those fields are left out, not null.
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "channel",
            "digit",
            "duration_ms",
            "end_ms",
            "event",
            "source",
            "start_ms",
            "type",
            "v"
        ],
        "{line}"
    );
    let o = touchtone(&["detect", p]);
    assert!(stdout(&o).starts_with('5'), "{}", stdout(&o));
}

#[test]
fn detect_reads_g711_24_bit_float_and_stereo() {
    let dir = Dir::new();
    let pcm = tones_pcm(8000, "9#");
    let ulaw: Vec<u8> = pcm.iter().map(|s| g711::linear_to_ulaw(*s)).collect();
    let alaw: Vec<u8> = pcm.iter().map(|s| g711::linear_to_alaw(*s)).collect();
    let pcm8: Vec<u8> = pcm.iter().map(|s| ((s >> 8) + 128) as u8).collect();
    let pcm24: Vec<u8> = pcm
        .iter()
        .flat_map(|s| {
            let b = (i32::from(*s) << 8).to_le_bytes();
            [b[0], b[1], b[2]]
        })
        .collect();
    let pcm32: Vec<u8> = pcm
        .iter()
        .flat_map(|s| (i32::from(*s) << 16).to_le_bytes())
        .collect();
    let float: Vec<u8> = pcm
        .iter()
        .flat_map(|s| (f32::from(*s) / 32768.0).to_le_bytes())
        .collect();
    let double: Vec<u8> = pcm
        .iter()
        .flat_map(|s| (f64::from(*s) / 32768.0).to_le_bytes())
        .collect();
    for (name, bytes) in [
        ("ulaw.wav", wav_bytes(7, 1, 8000, 8, &ulaw)),
        ("alaw.wav", wav_bytes(6, 1, 8000, 8, &alaw)),
        ("pcm8.wav", wav_bytes(1, 1, 8000, 8, &pcm8)),
        ("pcm24.wav", wav_bytes(1, 1, 8000, 24, &pcm24)),
        ("pcm32.wav", wav_bytes(1, 1, 8000, 32, &pcm32)),
        ("float.wav", wav_bytes(3, 1, 8000, 32, &float)),
        ("double.wav", wav_bytes(3, 1, 8000, 64, &double)),
    ] {
        let path = dir.write(name, &bytes);
        let o = touchtone(&["detect", &path, "--format", "json"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(digits_of(&stdout(&o)), "9#", "{name}");
    }
    // Stereo: the caller on the left, the callee on the right.
    let right = tones_pcm(8000, "42");
    let n = pcm.len().max(right.len());
    let mut stereo = vec![];
    for i in 0..n {
        stereo.extend_from_slice(&pcm.get(i).copied().unwrap_or(0).to_le_bytes());
        stereo.extend_from_slice(&right.get(i).copied().unwrap_or(0).to_le_bytes());
    }
    let p = dir.write("stereo.wav", &wav_bytes(1, 2, 8000, 16, &stereo));
    let o = touchtone(&["detect", &p, "--format", "json", "--channel", "1"]);
    assert_eq!(digits_of(&stdout(&o)), "42");
    let o = touchtone(&["detect", &p, "--format", "json"]);
    let mut both: Vec<_> = digits_of(&stdout(&o)).chars().collect();
    both.sort();
    assert_eq!(both, ['#', '2', '4', '9']);
    let o = touchtone(&["detect", &p]);
    assert!(stdout(&o).contains("channel 1: 4"), "{}", stdout(&o));
    let o = touchtone(&["detect", &p, "--channel", "2"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn detect_reads_stdin() {
    let dir = Dir::new();
    let path = dir.path("stdin.wav");
    assert!(
        touchtone(&["generate", "7", "-o", path.to_str().unwrap()])
            .status
            .success()
    );
    let o = command(&["detect", "-", "--format", "json"])
        .stdin(std::fs::File::open(&path).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(digits_of(&stdout(&o)), "7");
}

#[test]
fn bad_wav_files_get_one_line_and_status_2() {
    let dir = Dir::new();
    let good = {
        let path = dir.path("good.wav");
        assert!(
            touchtone(&["generate", "123", "-o", path.to_str().unwrap()])
                .status
                .success()
        );
        std::fs::read(&path).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.wav", vec![]),
        ("text.wav", b"hello, this is not audio".to_vec()),
        ("header-only.wav", good[..30].to_vec()),
        ("truncated.wav", good[..good.len() / 2].to_vec()),
        ("odd.wav", good[..good.len() - 1].to_vec()),
        ("mp3.wav", wav_bytes(0x55, 1, 8000, 16, &[0; 64])),
        ("zero-channels.wav", wav_bytes(1, 0, 8000, 16, &[0; 64])),
        ("bad-rate.wav", wav_bytes(1, 1, 10, 16, &[0; 64])),
    ];
    for (name, bytes) in cases {
        let path = dir.write(name, &bytes);
        let o = touchtone(&["detect", &path]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("touchtone: "), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}");
    }
    // The digits before a truncation are still reported.
    let path = dir.write("truncated-late.wav", &good[..good.len() - 2000]);
    let o = touchtone(&["detect", &path, "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(digits_of(&stdout(&o)).starts_with("12"), "{}", stdout(&o));
    let o = touchtone(&["detect", "/nonexistent/file.wav"]);
    assert_eq!(o.status.code(), Some(2));
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// An Ogg Opus file from the reference encoder (`opusenc`): the digits at their times, from a file and
/// from stdin.
#[test]
fn detect_reads_ogg_opus_from_opusenc() {
    let path = fixture("159hash-opusenc.opus");
    let o = touchtone(&["detect", &path, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    assert_eq!(digits_of(&stdout(&o)), "159#");
    for (i, v) in lines.iter().enumerate() {
        // One 100 ms tone every 200 ms; the codec blurs the edges by a few ms.
        let start = 200.0 * i as f64;
        assert!((v["start_ms"].as_f64().unwrap() - start).abs() < 8.0, "{v}");
        assert!(
            (v["duration_ms"].as_f64().unwrap() - 100.0).abs() < 10.0,
            "{v}"
        );
    }
    let mut child = command(&["detect", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(digits_of(&stdout(&o)), "159#");
}

#[test]
fn detect_reads_each_channel_of_a_stereo_ogg_opus_file() {
    let path = fixture("stereo-opusenc.opus");
    let o = touchtone(&["detect", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let left: String = out
        .lines()
        .filter_map(|l| l.strip_prefix("channel 0: "))
        .map(|l| &l[..1])
        .collect();
    let right: String = out
        .lines()
        .filter_map(|l| l.strip_prefix("channel 1: "))
        .map(|l| &l[..1])
        .collect();
    assert_eq!((left.as_str(), right.as_str()), ("159#", "2A"), "{out}");
    let o = touchtone(&["detect", &path, "--channel", "1", "--format", "json"]);
    assert_eq!(digits_of(&stdout(&o)), "2A");
    let o = touchtone(&["detect", &path, "--channel", "2"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A file this crate writes (`write_ogg_opus`, one page a second), cut short: the digits of the whole
/// pages before the cut come out, then one line on stderr and status 2.
#[test]
fn detect_reports_ogg_opus_digits_before_a_truncation() {
    let dir = Dir::new();
    let mut g = touchtone::inband::ToneGenerator::new(48_000).unwrap();
    g.push_tones("47", 100, 2000).unwrap();
    let mut bytes = Vec::new();
    touchtone_capture::write_ogg_opus(&mut bytes, &g.render(), 32_000).unwrap();
    let whole = dir.write("47.opus", &bytes);
    let o = touchtone(&["detect", &whole, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(digits_of(&stdout(&o)), "47");
    // Pages: OpusHead, OpusTags, then one a second; "7" (2.1 s) is in the fifth, cut inside it.
    let pages: Vec<usize> = (0..bytes.len() - 4)
        .filter(|&i| &bytes[i..i + 4] == b"OggS")
        .collect();
    let cut = dir.write("47-cut.opus", &bytes[..pages[4] + 40]);
    let o = touchtone(&["detect", &cut, "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(digits_of(&stdout(&o)), "4");
    assert!(stderr(&o).contains("truncated Ogg Opus"), "{}", stderr(&o));
}
