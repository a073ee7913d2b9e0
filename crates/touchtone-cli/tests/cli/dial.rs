//! `touchtone dial`: two peers over loopback, with RFC 4733 and with a WAV file as audio.

use crate::util::*;

#[test]
fn dial_sends_and_receives_every_tone() {
    let o = touchtone(&[
        "dial",
        "123#",
        "--duration",
        "100",
        "--gap",
        "70",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines = json_lines(&out);
    let tonechanges: Vec<_> = lines
        .iter()
        .filter(|v| v["type"] == "tonechange")
        .map(|v| {
            (
                v["tone"].as_str().unwrap().to_string(),
                v["t_ms"].as_f64().unwrap(),
            )
        })
        .collect();
    let tones: Vec<_> = tonechanges.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tones, ["1", "2", "3", "#", ""]);
    // tonechange times follow the W3C schedule: every 170 ms.
    for (i, (_, t)) in tonechanges.iter().enumerate() {
        let expected = tonechanges[0].1 + 170.0 * i as f64;
        assert!((t - expected).abs() < 1.0, "{t} vs {expected}");
    }
    let digits: Vec<_> = lines.iter().filter(|v| v["type"] == "digit").collect();
    assert_eq!(digits.len(), 4);
    let first = out
        .lines()
        .find(|l| l.contains(r#""type":"digit""#))
        .unwrap();
    assert!(
        first.starts_with(
            r#"{"type":"digit","v":1,"digit":"1","event":1,"source":"rfc4733","duration_ms":100.0,"t_ms":"#
        ),
        "{first}"
    );
    for d in &digits {
        assert_eq!(d["peer"], "receiver", "{d}");
        assert_eq!(d["end"], "end-packet", "{d}");
        assert!(d["ssrc"].is_u64(), "{d}");
    }
    assert!(
        lines
            .iter()
            .any(|v| v["type"] == "keydown" && v["digit"] == "#")
    );
    assert!(
        lines
            .iter()
            .any(|v| v["type"] == "state" && v["state"] == "connected")
    );
}

#[test]
fn dial_text_reads_like_the_seed() {
    let o = touchtone(&[
        "dial",
        "5",
        "--duration",
        "40",
        "--gap",
        "30",
        "--codec",
        "pcmu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "Sending DTMF",
        "Tone played: 5",
        "All tones have played. Disconnecting.",
        "Received: 5 (40.0 ms, rfc4733)",
    ] {
        assert!(out.contains(needle), "{needle} in {out}");
    }
    let o = touchtone(&["dial", "12E"]);
    assert_eq!(o.status.code(), Some(2));
}

/// `touchtone dial 12` (60 ms tones, 40 ms gaps) with `extra` arguments and a WAV file of "9" at
/// 16 kHz, written to `name` in `dir`, as the caller's audio; checks it succeeded.
fn dial_12_with_audio(dir: &Dir, name: &str, extra: &[&str]) -> std::process::Output {
    let path = dir.path(name);
    let p = path.to_str().unwrap();
    let o = touchtone(&["generate", "9", "-o", p, "--rate", "16000"]);
    assert!(o.status.success());
    let mut args = vec![
        "dial",
        "12",
        "--duration",
        "60",
        "--gap",
        "40",
        "--audio",
        p,
    ];
    args.extend_from_slice(extra);
    let o = touchtone(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[test]
fn dial_can_send_a_wav_file_as_its_audio() {
    let dir = Dir::new();
    let o = dial_12_with_audio(&dir, "dial-audio.wav", &[]);
    assert!(
        stdout(&o).contains("Received: 2 (60.0 ms, rfc4733)"),
        "{}",
        stdout(&o)
    );
    let bad = dir.write("dial-bad.wav", b"RIFF");
    let o = touchtone(&["dial", "1", "--audio", &bad]);
    assert_eq!(o.status.code(), Some(2));
}

/// `--inband` sends the tones as audio in each codec and the receiver detects them there: the digits come
/// from the in-band detector, each within a packet interval of the asked duration (the exit status
/// checks that), and the negotiated codec is the one asked for, not a fallback.
#[test]
fn dial_inband_in_every_codec() {
    for codec in ["opus", "pcmu", "pcma"] {
        let o = touchtone(&[
            "dial",
            "1A#9",
            "--duration",
            "80",
            "--gap",
            "60",
            "--inband",
            "--codec",
            codec,
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let lines = json_lines(&stdout(&o));
        let negotiated: Vec<_> = lines
            .iter()
            .filter(|v| v["type"] == "negotiated")
            .map(|v| v["codec"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(negotiated, [codec, codec], "{codec}");
        let digits: Vec<_> = lines.iter().filter(|v| v["type"] == "digit").collect();
        let keys: String = digits
            .iter()
            .map(|v| v["digit"].as_str().unwrap())
            .collect();
        assert_eq!(keys, "1A#9", "{codec}");
        for d in digits {
            assert_eq!(d["source"], "inband", "{codec}: {d}");
        }
    }
}

/// A WAV file sent as the caller's Opus audio: its own tones reach the receiver's audio (heard when
/// the receiver detects in-band too) while the dialed tones go as telephone-events.
#[test]
fn dial_sends_a_wav_file_as_opus_audio() {
    let dir = Dir::new();
    let o = dial_12_with_audio(&dir, "dial-opus-audio.wav", &["--codec", "opus"]);
    let out = stdout(&o);
    assert!(out.contains("negotiated opus"), "{out}");
    assert!(out.contains("Received: 2 (60.0 ms, rfc4733)"), "{out}");
}
