//! The `touchtone` command as users run it: exit codes, text and JSON output, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use touchtone::DtmfSender;
use touchtone::inband::{ToneGenerator, g711};

fn touchtone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_touchtone"))
        .args(args)
        .output()
        .expect("run touchtone")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("touchtone-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A WAV file with a given format tag, bits and interleaved sample bytes.
fn wav_bytes(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut v = b"RIFF".to_vec();
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    v.extend_from_slice(&align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn tones_pcm(rate: u32, tones: &str) -> Vec<i16> {
    let mut g = ToneGenerator::new(rate).unwrap();
    g.push_silence(100);
    g.push_tones(tones, 100, 100).unwrap();
    g.render()
}

fn digits_of(json: &str) -> String {
    json.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["digit"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn help_lists_every_subcommand() {
    let o = touchtone(&["--help"]);
    assert!(o.status.success());
    for sub in ["serve", "dial", "detect", "generate", "pcap"] {
        assert!(stdout(&o).contains(sub), "{sub}");
        assert!(touchtone(&[sub, "--help"]).status.success(), "{sub} --help");
    }
}

#[test]
fn generate_then_detect_every_digit_at_every_rate() {
    for rate in ["8000", "16000", "44100", "48000"] {
        let path = tmp(&format!("all-{rate}.wav"));
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
    let path = tmp("five.wav");
    let p = path.to_str().unwrap();
    assert!(
        touchtone(&[
            "generate",
            "5",
            "-o",
            p,
            "--duration",
            "200",
            "--gap",
            "100"
        ])
        .status
        .success()
    );
    let o = touchtone(&["detect", p, "--format", "json"]);
    let out = stdout(&o);
    let line = out.lines().next().unwrap();
    assert!(line.starts_with(r#"{"digit":"5","start_ms":"#), "{line}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(v["start_ms"].as_f64().unwrap() < 5.0);
    assert!(
        (v["end_ms"].as_f64().unwrap() - 200.0).abs() < 6.0,
        "{line}"
    );
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert!(keys.contains(&"end_ms".to_string()));
    let o = touchtone(&["detect", p]);
    assert!(stdout(&o).starts_with('5'), "{}", stdout(&o));
}

#[test]
fn detect_reads_g711_24_bit_float_and_stereo() {
    let pcm = tones_pcm(8000, "9#");
    let ulaw: Vec<u8> = pcm.iter().map(|s| g711::linear_to_ulaw(*s)).collect();
    let alaw: Vec<u8> = pcm.iter().map(|s| g711::linear_to_alaw(*s)).collect();
    let pcm24: Vec<u8> = pcm
        .iter()
        .flat_map(|s| {
            let b = (i32::from(*s) << 8).to_le_bytes();
            [b[0], b[1], b[2]]
        })
        .collect();
    let float: Vec<u8> = pcm
        .iter()
        .flat_map(|s| (f32::from(*s) / 32768.0).to_le_bytes())
        .collect();
    for (name, bytes) in [
        ("ulaw.wav", wav_bytes(7, 1, 8000, 8, &ulaw)),
        ("alaw.wav", wav_bytes(6, 1, 8000, 8, &alaw)),
        ("pcm24.wav", wav_bytes(1, 1, 8000, 24, &pcm24)),
        ("float.wav", wav_bytes(3, 1, 8000, 32, &float)),
    ] {
        let path = tmp(name);
        std::fs::write(&path, bytes).unwrap();
        let o = touchtone(&["detect", path.to_str().unwrap(), "--format", "json"]);
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
    let path = tmp("stereo.wav");
    std::fs::write(&path, wav_bytes(1, 2, 8000, 16, &stereo)).unwrap();
    let p = path.to_str().unwrap();
    let o = touchtone(&["detect", p, "--format", "json", "--channel", "1"]);
    assert_eq!(digits_of(&stdout(&o)), "42");
    let o = touchtone(&["detect", p, "--format", "json"]);
    let mut both: Vec<_> = digits_of(&stdout(&o)).chars().collect();
    both.sort();
    assert_eq!(both, ['#', '2', '4', '9']);
    let o = touchtone(&["detect", p, "--channel", "2"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn detect_reads_stdin() {
    let path = tmp("stdin.wav");
    let p = path.to_str().unwrap();
    assert!(touchtone(&["generate", "7", "-o", p]).status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_touchtone"))
        .args(["detect", "-", "--format", "json"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert_eq!(digits_of(&stdout(&o)), "7");
}

#[test]
fn bad_wav_files_get_one_line_and_status_2() {
    let good = {
        let path = tmp("good.wav");
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
        let path = tmp(name);
        std::fs::write(&path, &bytes).unwrap();
        let o = touchtone(&["detect", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("touchtone: "), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}");
    }
    // The digits before a truncation are still reported.
    let path = tmp("truncated-late.wav");
    std::fs::write(&path, &good[..good.len() - 2000]).unwrap();
    let o = touchtone(&["detect", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(digits_of(&stdout(&o)).starts_with("12"), "{}", stdout(&o));
    let o = touchtone(&["detect", "/nonexistent/file.wav"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn serve_rejects_a_yield_window_out_of_range() {
    let o = touchtone(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--yield-window-ms",
        "50",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--yield-window-ms"), "{}", stderr(&o));
}

#[test]
fn generate_rejects_bad_tones_and_writes_stdout() {
    let o = touchtone(&["generate", "12x", "-o", tmp("x.wav").to_str().unwrap()]);
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

// ---- pcap ----

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn ethernet_udp(udp_payload: &[u8], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = 20 + 8 + udp_payload.len();
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + udp_payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(udp_payload);
    f
}

/// A call's RTP as a capture: PCMU audio every 20 ms and the telephone-events of `tones`.
fn call_packets(tones: &str, rate: u32) -> Vec<(Duration, Vec<u8>)> {
    let t0 = Instant::now();
    let mut s = DtmfSender::new(rate);
    s.set_can_send(true);
    s.insert_dtmf(t0, tones, 100, 70).unwrap();
    let mut out = vec![];
    let mut seq = 0u16;
    while let Some(t) = s.poll_timeout() {
        s.handle_timeout(t);
        while let Some(p) = s.poll_packet() {
            seq += 1;
            out.push((
                p.at - t0,
                rtp(
                    101,
                    seq,
                    p.timestamp,
                    0xabc,
                    p.marker,
                    &p.payload.to_bytes(),
                ),
            ));
        }
    }
    for k in 0..(out.last().unwrap().0.as_millis() / 20) as u32 {
        seq += 1;
        out.push((
            Duration::from_millis(u64::from(k) * 20),
            rtp(0, seq, k * 160, 0xabc, false, &[0xff; 160]),
        ));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

fn write_pcap(path: &Path, packets: &[(Duration, Vec<u8>)]) {
    let mut v = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for (t, p) in packets {
        let frame = ethernet_udp(p, 4000, 5000);
        v.extend_from_slice(&(1_700_000_000 + t.as_secs() as u32).to_le_bytes());
        v.extend_from_slice(&t.subsec_micros().to_le_bytes());
        v.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        v.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        v.extend_from_slice(&frame);
    }
    std::fs::write(path, v).unwrap();
}

fn write_pcapng(path: &Path, packets: &[(Duration, Vec<u8>)]) {
    let block = |typ: u32, body: &[u8]| {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        let mut b = typ.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut v = block(0x0a0d_0d0a, &shb);
    let mut idb = 1u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&0u32.to_le_bytes());
    // if_tsresol = 9: nanoseconds.
    idb.extend_from_slice(&9u16.to_le_bytes());
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&[9, 0, 0, 0]);
    idb.extend_from_slice(&[0, 0, 0, 0]);
    v.extend(block(1, &idb));
    for (t, p) in packets {
        let frame = ethernet_udp(p, 4000, 5000);
        let ts = t.as_nanos() as u64;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&frame);
        v.extend(block(6, &epb));
    }
    std::fs::write(path, v).unwrap();
}

#[test]
fn pcap_finds_the_digits_and_their_durations() {
    for (rate, name) in [(8000, "call8k.pcap"), (48_000, "call48k.pcap")] {
        let path = tmp(name);
        write_pcap(&path, &call_packets("1#9", rate));
        let o = touchtone(&["pcap", path.to_str().unwrap(), "--format", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert_eq!(digits_of(&out), "1#9", "{out}");
        for l in out.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["duration_ms"].as_f64(), Some(100.0), "{l}");
            assert_eq!(v["rate"].as_u64(), Some(u64::from(rate)), "{l}");
            assert_eq!(v["pt"].as_u64(), Some(101));
            assert_eq!(v["src"].as_str(), Some("10.0.0.1:4000"));
        }
    }
    let path = tmp("call.pcapng");
    write_pcapng(&path, &call_packets("ABCD", 8000));
    let o = touchtone(&["pcap", path.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(digits_of(&stdout(&o)), "ABCD");
}

#[test]
fn bad_captures_get_one_line_and_status_2() {
    let good = {
        let path = tmp("good.pcap");
        write_pcap(&path, &call_packets("12", 8000));
        std::fs::read(&path).unwrap()
    };
    for (name, bytes) in [
        ("empty.pcap", vec![]),
        ("text.pcap", b"not a capture at all".to_vec()),
        ("truncated.pcap", good[..good.len() - 7].to_vec()),
        ("header.pcap", good[..10].to_vec()),
    ] {
        let path = tmp(name);
        std::fs::write(&path, &bytes).unwrap();
        let o = touchtone(&["pcap", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
}

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
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
        first.starts_with(r#"{"type":"digit","digit":"1","duration_ms":100.0,"source":"rfc4733""#),
        "{first}"
    );
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

#[test]
fn dial_can_send_a_wav_file_as_its_audio() {
    let path = tmp("dial-audio.wav");
    assert!(
        touchtone(&[
            "generate",
            "9",
            "-o",
            path.to_str().unwrap(),
            "--rate",
            "16000"
        ])
        .status
        .success()
    );
    let o = touchtone(&[
        "dial",
        "12",
        "--duration",
        "60",
        "--gap",
        "40",
        "--audio",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Received: 2 (60.0 ms, rfc4733)"),
        "{}",
        stdout(&o)
    );
    let bad = tmp("dial-bad.wav");
    std::fs::write(&bad, b"RIFF").unwrap();
    let o = touchtone(&["dial", "1", "--audio", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

/// Reads one line of a command's stdout, closes the pipe, and returns its exit status and stderr.
fn first_line_then_close(args: &[&str]) -> (String, std::process::ExitStatus, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new(env!("CARGO_BIN_EXE_touchtone"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run touchtone");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // The reader is dropped here: the pipe is closed, as `| head -1` does.
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (line, status, err)
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    // More output than a pipe holds (64 KiB), so the command is still printing when the pipe closes.
    let tones: String = "0123456789*#ABCD".repeat(250);
    let long = tmp("long.wav");
    let out = touchtone(&[
        "generate",
        &tones,
        "-o",
        long.to_str().unwrap(),
        "--duration",
        "40",
        "--gap",
        "40",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pcap = tmp("pipe.pcap");
    write_pcap(&pcap, &call_packets(&tones[..2000], 8000));
    for args in [
        vec!["detect", long.to_str().unwrap()],
        vec!["detect", long.to_str().unwrap(), "--format", "json"],
        vec!["pcap", pcap.to_str().unwrap()],
        vec!["dial", "123", "--duration", "40", "--gap", "30"],
    ] {
        let (line, status, err) = first_line_then_close(&args);
        assert!(!line.is_empty(), "{args:?}");
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
