//! `--record`: a call's decrypted RTP as pcapng, cross-checked packet by packet against Wireshark's
//! `rtpevent` dissector (`tshark`, Debian package `tshark`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn touchtone(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_touchtone"))
        .args(args)
        .output()
        .expect("run touchtone")
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("touchtone-record-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// (seq, timestamp, marker, event, end, volume, duration) of every telephone-event packet.
type Row = (u16, u32, bool, u8, bool, u8, u16);

fn ours(file: &Path) -> (u8, Vec<Row>) {
    let out = touchtone(&[
        "pcap",
        file.to_str().unwrap(),
        "--packets",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pt = 0;
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            pt = v["pt"].as_u64().unwrap() as u8;
            (
                v["seq"].as_u64().unwrap() as u16,
                v["timestamp"].as_u64().unwrap() as u32,
                v["marker"].as_bool().unwrap(),
                v["event"].as_u64().unwrap() as u8,
                v["end"].as_bool().unwrap(),
                v["volume"].as_u64().unwrap() as u8,
                v["duration"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    (pt, rows)
}

fn tshark(file: &Path, pt: u8) -> Vec<Row> {
    let out = Command::new("tshark")
        .args(["-r", file.to_str().unwrap(), "-o", "rtp.heuristic_rtp:TRUE"])
        .args(["-o", &format!("rtpevent.event_payload_type_value:{pt}")])
        .args(["-Y", "rtpevent", "-T", "fields", "-E", "separator=,"])
        .args(["-e", "rtp.seq", "-e", "rtp.timestamp", "-e", "rtp.marker"])
        .args(["-e", "rtpevent.event_id", "-e", "rtpevent.end_of_event"])
        .args(["-e", "rtpevent.volume", "-e", "rtpevent.duration"])
        .output()
        .expect(
            "tshark is needed for this test: apt-get install tshark (scripts/test installs it)",
        );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flag = |s: &str| s == "1" || s == "True";
    let mut rows: Vec<Row> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                flag(f[2]),
                f[3].parse().unwrap(),
                flag(f[4]),
                f[5].parse().unwrap(),
                f[6].parse().unwrap(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

fn cross_check(codec: &str) {
    let d = dir(codec);
    let out = touchtone(&[
        "dial",
        "1#9*0",
        "--duration",
        "100",
        "--gap",
        "50",
        "--codec",
        codec,
        "--record",
        d.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["dial-caller.pcapng", "dial-receiver.pcapng"] {
        let file = d.join(name);
        let (pt, mut mine) = ours(&file);
        mine.sort_by_key(|r| r.0);
        // Five tones of 100 ms: 5 updates and 2 more end copies each.
        assert_eq!(mine.len(), 5 * 7, "{codec} {name}: {mine:?}");
        let digits: Vec<u8> = mine.iter().filter(|r| r.2).map(|r| r.3).collect();
        assert_eq!(digits, [1, 11, 9, 10, 0], "{codec} {name}");
        assert_eq!(
            tshark(&file, pt),
            mine,
            "{codec} {name}: tshark and touchtone pcap differ"
        );
    }
    // The digits themselves, from the recording.
    let out = touchtone(&[
        "pcap",
        d.join("dial-receiver.pcapng").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let digits: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["digit"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(digits, "1#9*0");
}

#[test]
fn a_recorded_opus_call_reads_the_same_in_tshark() {
    cross_check("opus");
}

#[test]
fn a_recorded_pcmu_call_reads_the_same_in_tshark() {
    cross_check("pcmu");
}

#[test]
fn an_unwritable_record_directory_is_one_line_and_status_2() {
    let out = touchtone(&["dial", "1", "--record", "/proc/touchtone-no-such-dir"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("touchtone: --record") && err.lines().count() == 1,
        "{err}"
    );
}
