//! `touchtone pcap`: RFC 4733 digits in captures of every container and link layer, bad captures.

use crate::util::*;

/// Runs `touchtone pcap FILE --format json` and returns the parsed lines, asserting success.
fn pcap_json(path: &str) -> Vec<serde_json::Value> {
    let o = touchtone(&["pcap", path, "--format", "json"]);
    assert!(o.status.success(), "{path}: {}", stderr(&o));
    json_lines(&stdout(&o))
}

fn digits(lines: &[serde_json::Value]) -> String {
    lines
        .iter()
        .map(|v| v["digit"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pcap_finds_the_digits_and_their_durations() {
    let dir = Dir::new();
    for rate in [8000, 48_000] {
        let path = dir.write(
            &format!("call{rate}.pcap"),
            &pcap(ETHERNET, false, &call_packets("1#9", rate)),
        );
        let lines = pcap_json(&path);
        assert_eq!(digits(&lines), "1#9", "{lines:?}");
        for v in &lines {
            assert_eq!(v["duration_ms"].as_f64(), Some(100.0), "{v}");
            assert_eq!(v["rate"].as_u64(), Some(u64::from(rate)), "{v}");
            assert_eq!(v["pt"].as_u64(), Some(101));
            assert_eq!(v["src"].as_str(), Some("10.0.0.1:4000"));
            assert_eq!(v["end"].as_str(), Some("end-packet"));
            assert_eq!(v["ssrc"].as_u64(), Some(0xabc), "{v}");
        }
        // The digits start every 170 ms (100 ms tones, 70 ms gaps).
        let t = |i: usize| lines[i]["start_ms"].as_f64().unwrap();
        assert!((t(2) - t(1) - 170.0).abs() < 0.2, "{lines:?}");
    }
    let path = dir.write(
        "call.pcapng",
        &pcapng_section(Section::DEFAULT, &call_packets("ABCD", 8000)),
    );
    assert_eq!(digits(&pcap_json(&path)), "ABCD");
    let o = touchtone(&["pcap", &path]);
    let first = stdout(&o).lines().next().unwrap().to_string();
    assert!(first.starts_with("A "), "{first}");
    assert!(
        first.ends_with("ssrc 0x00000abc 10.0.0.1:4000 -> 10.0.0.2:5000 pt 101 (8000 Hz)"),
        "{first}"
    );
}

#[test]
fn pcap_packets_lists_every_telephone_event_packet() {
    let dir = Dir::new();
    let path = dir.write(
        "call.pcap",
        &pcap(ETHERNET, false, &call_packets("5", 8000)),
    );
    let o = touchtone(&["pcap", &path, "--packets", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    // 100 ms at 20 ms: five updates, then two more copies of the end packet.
    assert_eq!(lines.len(), 7, "{lines:?}");
    let durations: Vec<u64> = lines
        .iter()
        .map(|v| v["duration"].as_u64().unwrap())
        .collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    assert_eq!(lines[0]["marker"], true);
    assert!(lines.iter().all(|v| v["event"] == 5 && v["pt"] == 101));
    assert_eq!(lines.iter().filter(|v| v["end"] == true).count(), 3);
    let o = touchtone(&["pcap", &path, "--packets"]);
    let first = stdout(&o).lines().next().unwrap().to_string();
    assert!(
        first.contains("10.0.0.1:4000 -> 10.0.0.2:5000 ssrc 0x00000abc pt 101 seq")
            && first.ends_with("M=1 event=5 E=0 vol=10 dur=160"),
        "{first}"
    );
}

#[test]
fn pcap_reads_raw_ip_captures() {
    let dir = Dir::new();
    let path = dir.write("raw.pcap", &pcap(RAW, false, &call_packets("73", 8000)));
    assert_eq!(digits(&pcap_json(&path)), "73");
}

/// BSD loopback (LINKTYPE_LOOP, 108) writes the address family in network byte order, and LINKTYPE_NULL
/// in the byte order of the capturing host: both must give the digits.
#[test]
fn loop_and_big_endian_null_captures_give_the_digits() {
    let dir = Dir::new();
    let packets = call_packets("159", 8000);
    for (name, bytes) in [
        ("loop.pcap", pcap(LOOP, false, &packets)),
        ("loop-be.pcap", pcap(LOOP, true, &packets)),
        ("null-be.pcap", pcap(NULL, true, &packets)),
        ("null-le.pcap", pcap(NULL, false, &packets)),
    ] {
        let path = dir.write(name, &bytes);
        assert_eq!(digits(&pcap_json(&path)), "159", "{name}");
    }
}

/// pcapng files may hold several sections, each with its own byte order (`cat a.pcapng b.pcapng`).
#[test]
fn concatenated_pcapng_sections_of_either_byte_order_give_all_digits() {
    let dir = Dir::new();
    let mut bytes = pcapng_section(Section::DEFAULT, &call_packets("12", 8000));
    // A second call, recorded separately and appended.
    let mut second = call_packets_of(0xdef, "34", 8000);
    for (t, _) in &mut second {
        *t += std::time::Duration::from_secs(10);
    }
    bytes.extend(pcapng_section(
        Section {
            big_endian: true,
            ..Section::DEFAULT
        },
        &second,
    ));
    let path = dir.write("two-sections.pcapng", &bytes);
    let lines = pcap_json(&path);
    assert_eq!(digits(&lines), "1234", "{lines:?}");
    // The second call's "4" starts 10 s after the first call's "2".
    let dt = lines[3]["start_ms"].as_f64().unwrap() - lines[1]["start_ms"].as_f64().unwrap();
    assert!((dt - 10_000.0).abs() < 0.2, "{dt}");
}

/// `if_tsresol` sets the timestamp unit per interface: microseconds (the default), nanoseconds, or a
/// power of two. The same packets give the same times whatever the unit.
#[test]
fn pcapng_timestamp_resolutions_give_the_same_times() {
    let dir = Dir::new();
    let packets = call_packets("2580", 48_000);
    let mut results = vec![];
    for (name, tsresol) in [
        ("us-default", None),
        ("us", Some(6)),
        ("ns", Some(9)),
        ("2^-20", Some(0x80 | 20)),
        ("2^-30", Some(0x80 | 30)),
    ] {
        let section = Section {
            tsresol,
            ..Section::DEFAULT
        };
        let path = dir.write(
            &format!("{name}.pcapng"),
            &pcapng_section(section, &packets),
        );
        let lines = pcap_json(&path);
        assert_eq!(digits(&lines), "2580", "{name}");
        let times: Vec<(f64, f64, u64)> = lines
            .iter()
            .map(|v| {
                (
                    v["start_ms"].as_f64().unwrap(),
                    v["duration_ms"].as_f64().unwrap(),
                    v["rate"].as_u64().unwrap(),
                )
            })
            .collect();
        results.push((name, times));
    }
    let (_, first) = &results[0];
    for (name, times) in &results {
        for (a, b) in first.iter().zip(times) {
            assert!((a.0 - b.0).abs() < 0.11, "{name}: {a:?} vs {b:?}");
            assert_eq!((a.1, a.2), (b.1, b.2), "{name}");
        }
    }
    assert_eq!(first[0].2, 48_000);
}

/// Simple Packet Blocks carry no timestamp and belong to the section's first interface.
#[test]
fn pcapng_simple_packet_blocks_are_read() {
    let dir = Dir::new();
    let section = Section {
        simple: true,
        ..Section::DEFAULT
    };
    let path = dir.write(
        "simple.pcapng",
        &pcapng_section(section, &call_packets("#0", 8000)),
    );
    let lines = pcap_json(&path);
    assert_eq!(digits(&lines), "#0", "{lines:?}");
    assert!(lines.iter().all(|v| v["duration_ms"] == 100.0), "{lines:?}");
}

#[test]
fn bad_captures_get_one_line_and_status_2() {
    let dir = Dir::new();
    let good = pcap(ETHERNET, false, &call_packets("12", 8000));
    for (name, bytes) in [
        ("empty.pcap", vec![]),
        ("text.pcap", b"not a capture at all".to_vec()),
        ("truncated.pcap", good[..good.len() - 7].to_vec()),
        ("header.pcap", good[..10].to_vec()),
    ] {
        let path = dir.write(name, &bytes);
        let o = touchtone(&["pcap", &path]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("touchtone: "), "{name}: {err}");
    }
    // The digits before a truncation are still reported.
    let path = dir.write("cut.pcap", &good[..good.len() - 7]);
    let o = touchtone(&["pcap", &path, "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(digits_of(&stdout(&o)), "12", "{}", stdout(&o));
}
