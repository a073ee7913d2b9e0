//! `touchtone serve` as a process: a smoke test of the endpoint, the server dialing a Rust client,
//! settings from the environment, and draining on SIGTERM. The endpoint's rules are tested in-process
//! in `crates/touchtone-whip/tests`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{block_on, call_server};
use touchtone_rtc::{ConnectionState, Peer, PeerConfig, PeerEvent};
use touchtone_testkit::http::{self, event_data};
use touchtone_testkit::nats::NatsServer;
use touchtone_testkit::serve::ServeProcess as Server;

fn serve(extra: &[&str]) -> Server {
    serve_env(extra, &[])
}

fn serve_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_touchtone"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(if extra.contains(&"--udp-listen") {
            &[][..]
        } else {
            &["--udp-listen", "127.0.0.1:0"][..]
        })
        .args(extra)
        .envs(env.iter().copied());
    Server::start(command)
}

/// One HTTP/1.1 request; returns (status, headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    let headers: Vec<_> = ctype.map(|c| ("Content-Type", c)).into_iter().collect();
    let r = http::request(addr, method, path, &headers, body);
    (r.status, r.head, r.body)
}

/// Posts an SDP offer to `/whip`; returns (status, headers, body).
fn post_sdp(addr: &str, sdp: &str) -> (u16, String, String) {
    http(
        addr,
        "POST",
        "/whip",
        Some("application/sdp"),
        sdp.as_bytes(),
    )
}

/// The `Location` header of a response head.
fn location(head: &str) -> String {
    http::header(head, "location").expect("Location header")
}

fn offer() -> (Peer, String) {
    let mut p = Peer::new(
        Instant::now(),
        "127.0.0.1:9".parse().unwrap(),
        PeerConfig::default(),
    )
    .unwrap();
    let sdp = p.create_offer().unwrap();
    (p, sdp)
}

#[test]
fn whip_answers_with_opus_and_telephone_event_48000_only() {
    let srv = serve(&[]);
    let (_, sdp) = offer();
    let (status, head, answer) = post_sdp(&srv.addr, &sdp);
    assert_eq!(status, 201, "{head}\n{answer}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/sdp")
    );
    let location = location(&head);
    assert!(location.starts_with("/whip/"));
    assert!(answer.contains("opus/48000"), "{answer}");
    assert!(answer.contains("telephone-event/48000"), "{answer}");
    assert!(
        !answer.contains("telephone-event/8000"),
        "never mixed clocks: {answer}"
    );
    assert!(
        answer.contains("a=candidate"),
        "non-trickle answer carries candidates"
    );

    // DTMF before the call is connected: 409; bad tones: 400 with the W3C error name.
    let (status, _, body) = http(
        &srv.addr,
        "POST",
        &format!("{location}/dtmf"),
        Some("application/json"),
        br#"{"tones":"123"}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("InvalidStateError"));
    let (status, _, body) = http(
        &srv.addr,
        "POST",
        &format!("{location}/dtmf"),
        Some("application/json"),
        br#"{"tones":"12 3"}"#,
    );
    // W3C order: the state is checked before the characters.
    assert_eq!(status, 409, "{body}");
    let (status, _, body) = http(
        &srv.addr,
        "POST",
        &format!("{location}/dtmf"),
        Some("application/json"),
        b"{not json",
    );
    assert_eq!(status, 400, "{body}");

    let (status, _, metrics) = http(&srv.addr, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("touchtone_calls_active 1"), "{metrics}");
    assert!(metrics.contains("touchtone_calls_total 1"), "{metrics}");

    let (status, _, _) = http(&srv.addr, "DELETE", &location, None, b"");
    assert_eq!(status, 200);
    // The call ends and is forgotten.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, _) = http(&srv.addr, "DELETE", &location, None, b"");
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the call was not removed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server dials a Rust client over real loopback UDP (no yield window: the cheap path).
#[test]
fn the_server_dials_a_client_which_hears_every_digit() {
    let srv = serve(&["--yield-window-ms", "0"]);
    let addr = srv.addr.clone();
    block_on(async move {
        let (mut client, _, location) = call_server(&addr, PeerConfig::default()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut connected = false;
        let mut digits = Vec::new();
        while digits.len() < 3 {
            let ev = tokio::time::timeout_at(deadline, client.next_event())
                .await
                .unwrap_or_else(|_| panic!("timed out; connected: {connected}, digits: {digits:?}"))
                .expect("the call ended early");
            match ev {
                PeerEvent::Connection(ConnectionState::Connected) if !connected => {
                    connected = true;
                    let (addr, path) = (addr.clone(), format!("{location}/dtmf"));
                    let (status, _, body) = tokio::task::spawn_blocking(move || {
                        http(
                            &addr,
                            "POST",
                            &path,
                            Some("application/json"),
                            br#"{"tones":"1,5#","duration":100,"gap":70}"#,
                        )
                    })
                    .await
                    .unwrap();
                    assert_eq!(status, 200, "{body}");
                }
                PeerEvent::KeyUp(d) => digits.push((d.tone, d.duration)),
                _ => {}
            }
        }
        let tones: String = digits.iter().filter_map(|(t, _)| *t).collect();
        assert_eq!(tones, "15#");
        for (tone, duration) in &digits {
            let ms = duration.as_secs_f64() * 1000.0;
            assert!((ms - 100.0).abs() <= 20.0, "{tone:?} lasted {ms} ms");
        }
        client.close();
    });
}

/// With `--inband-detect`, an Opus caller that plays its tones as audio (no telephone-event) is heard:
/// the server decodes the Opus stream and its event stream reports the digits with source `inband`.
#[test]
fn serve_detects_inband_tones_in_opus_calls() {
    let srv = serve(&["--inband-detect"]);
    let addr = srv.addr.clone();
    block_on(async move {
        let config = PeerConfig {
            codecs: vec![touchtone_rtc::AudioCodec::Opus],
            inband_send: true,
            ..PeerConfig::default()
        };
        let (mut client, _, location) = call_server(&addr, config).await;
        let events_path = format!("{location}/events");
        // Read the server's event stream on a thread until three digits came.
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for json in event_data(&addr, &events_path, Some(Duration::from_secs(15))) {
                lines.push(json);
                if lines
                    .iter()
                    .filter(|l| l.contains(r#""type":"digit""#))
                    .count()
                    == 3
                {
                    break;
                }
            }
            lines
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ev = tokio::time::timeout_at(deadline, client.next_event())
                .await
                .expect("connected in time")
                .expect("the call ended early");
            if ev == PeerEvent::Connection(ConnectionState::Connected) {
                break;
            }
        }
        client.insert_dtmf("47D", 100, 70).await.unwrap();
        let lines = tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        assert!(
            lines.iter().any(|l| l.contains(r#""codec":"opus""#)),
            "{lines:?}"
        );
        let digits: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(r#""type":"digit""#))
            .collect();
        let keys: String = digits
            .iter()
            .map(|l| {
                assert!(l.contains(r#""source":"inband""#), "{l}");
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["digit"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(keys, "47D", "{lines:?}");
        client.close();
    });
}

#[test]
fn sigterm_drains_new_calls_get_503_and_live_ones_run_to_their_end() {
    let mut srv = serve_env(&[], &[("TOUCHTONE_DRAIN_TIMEOUT", "30")]);
    let (_, sdp) = offer();
    let (status, head, _) = post_sdp(&srv.addr, &sdp);
    assert_eq!(status, 201);
    let location = location(&head);
    assert_eq!(
        srv.terminate(Duration::from_millis(300)),
        None,
        "exited with a live call"
    );
    let (status, head, body) = post_sdp(&srv.addr, &sdp);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Draining"), "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let (status, _, body) = http(&srv.addr, "GET", "/healthz", None, b"");
    assert_eq!((status, body.trim()), (503, "draining"));
    // The live call ends: the server exits 0.
    assert_eq!(http(&srv.addr, "DELETE", &location, None, b"").0, 200);
    let status = srv
        .wait_for_exit(Duration::from_secs(10))
        .expect("still running after the last call ended");
    assert!(status.success(), "{status:?}");
    assert!(srv.stderr().contains("draining 1 call"));
}

#[test]
fn the_drain_timeout_hangs_up_what_is_left_and_exits_0() {
    let mut srv = serve(&["--drain-timeout", "1"]);
    let (_, sdp) = offer();
    assert_eq!(post_sdp(&srv.addr, &sdp).0, 201);
    let status = srv.terminate(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
}

#[test]
fn settings_come_from_the_environment_too() {
    let srv = serve_env(
        &[],
        &[("TOUCHTONE_MAX_CALLS", "1"), ("TOUCHTONE_TOKEN", "abc")],
    );
    let (_, sdp) = offer();
    assert_eq!(post_sdp(&srv.addr, &sdp).0, 401);
    let with_token = |addr: &str| {
        http::request(
            addr,
            "POST",
            "/whip",
            &[
                ("Authorization", "Bearer abc"),
                ("Content-Type", "application/sdp"),
            ],
            sdp.as_bytes(),
        )
        .status
    };
    assert_eq!(with_token(&srv.addr), 201);
    assert_eq!(with_token(&srv.addr), 503, "TOUCHTONE_MAX_CALLS=1");
}

#[test]
fn a_switch_from_the_environment_takes_the_usual_spellings() {
    // Operators write `1`, `yes` or `true`; `0`, `no` and `false` turn the switch off.
    for value in ["1", "yes", "true", "0", "no", "false"] {
        let srv = serve_env(&[], &[("TOUCHTONE_INBAND_DETECT", value)]);
        let (_, sdp) = offer();
        assert_eq!(
            post_sdp(&srv.addr, &sdp).0,
            201,
            "TOUCHTONE_INBAND_DETECT={value}"
        );
    }
}

/// Huge pages made each first touch of 2 MiB zero all of it: a 1,000-call burst spent 43% of its CPU
/// there in its first 200 ms (BENCHMARKS.md, "Small pages").
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_on_small_pages() {
    let server = serve(&[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("skipped: this kernel has no transparent huge pages to turn off");
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

/// `--event-history` bounds what a call keeps for late subscribers: with 2, one that joins after the
/// call's first events (ICE gathering, signaling, negotiated, ...) is told how many it missed instead.
#[test]
fn event_history_keeps_only_the_last_events() {
    for (history, kept_all) in [(None, true), (Some("2"), false)] {
        let extra: Vec<&str> = history
            .iter()
            .flat_map(|h| ["--event-history", h])
            .collect();
        let srv = serve(&extra);
        let (_, sdp) = offer();
        let (status, head, body) = post_sdp(&srv.addr, &sdp);
        assert_eq!(status, 201, "{body}");
        let path = format!("{}/events", location(&head));
        let got: Vec<String> =
            event_data(&srv.addr, &path, Some(Duration::from_millis(800))).collect();
        assert!(!got.is_empty(), "{history:?}: no events");
        let first_event = got.iter().any(|e| e.contains("ice-gathering"));
        let missed = got[0].starts_with(r#"{"missed":"#);
        assert_eq!(
            (first_event, missed),
            (kept_all, !kept_all),
            "{history:?}: {got:?}"
        );
    }
}

/// The server's resident memory, in KiB.
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What ended calls held goes back to the system at the server's next 10 s check, calls that lived for
/// less than one check too: the heap keeps freed pages in each thread's own heap, and RSS stayed at
/// its peak when the check missed them (BENCHMARKS.md, "mimalloc as the server's heap").
#[cfg(target_os = "linux")]
#[test]
fn memory_of_ended_calls_goes_back_to_the_system() {
    const CALLS: usize = 400;
    let srv = serve(&[
        "--max-calls",
        "1000",
        "--client-call-rate",
        "100000",
        "--client-call-burst",
        "100000",
    ]);
    let pid = srv.child.id();
    let start = rss_kib(pid);
    let (_, sdp) = offer();
    let locations: Vec<String> = (0..CALLS)
        .map(|_| {
            let (status, head, body) = post_sdp(&srv.addr, &sdp);
            assert_eq!(status, 201, "{body}");
            location(&head)
        })
        .collect();
    let peak = rss_kib(pid);
    assert!(
        peak > start + 4096,
        "{CALLS} calls took {start} to {peak} KiB"
    );
    for l in &locations {
        assert_eq!(http(&srv.addr, "DELETE", l, None, b"").0, 200);
    }
    let ended = Instant::now();
    // At least half of what the calls took (a release build gives back 85%; a debug build 65%).
    let goal = start + (peak - start) / 2;
    loop {
        let now = rss_kib(pid);
        if now <= goal {
            break;
        }
        assert!(
            ended.elapsed() < Duration::from_secs(25),
            "{now} KiB 25 s after the calls ended: {start} KiB at start, {peak} KiB with the calls"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The address (IP:port) of the host candidate in an SDP answer.
fn candidate_addr(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.strip_prefix("a=candidate:")?.split(' ').collect();
            Some(format!("{}:{}", f.get(4)?, f.get(5)?))
        })
        .expect("a host candidate")
}

#[test]
fn every_call_shares_the_one_udp_port() {
    let srv = serve(&[]);
    let media = srv.stderr_line_containing("media on UDP");
    let port = media
        .split("media on UDP ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .to_string();
    let mut seen = vec![];
    for _ in 0..5 {
        let (_, sdp) = offer();
        let (status, head, answer) = post_sdp(&srv.addr, &sdp);
        assert_eq!(status, 201, "{head}\n{answer}");
        seen.push(candidate_addr(&answer));
    }
    assert!(seen.iter().all(|a| *a == port), "{port} vs {seen:?}");
}

#[test]
fn public_addresses_are_announced_and_reached() {
    // Bound to every address, announced as 127.0.0.1: a client reaches it and dials.
    let srv = serve(&["--udp-listen", "0.0.0.0:0", "--public-ip", "127.0.0.1"]);
    let addr = srv.addr.clone();
    block_on(async move {
        let (mut client, answer, _) = call_server(&addr, PeerConfig::default()).await;
        assert!(
            candidate_addr(&answer).starts_with("127.0.0.1:"),
            "{answer}"
        );
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = client.next_event().await {
                if ev == PeerEvent::Connection(ConnectionState::Connected) {
                    return;
                }
            }
            panic!("call ended");
        })
        .await
        .expect("connects through the announced address");
        client.close();
    });
    // Unspecified without a public address: a clear error, status 2.
    let out = Command::new(env!("CARGO_BIN_EXE_touchtone"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--udp-listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public address"), "{err}");
}

/// Requests a receiver got: (headers, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A webhook receiver on a thread: answers 200 to each request (one per connection) and keeps
/// (headers, body).
fn webhook_receiver() -> (std::net::SocketAddr, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                head.push_str(&line);
                line.clear();
            }
            let len = http::header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            keep.lock()
                .unwrap()
                .push((head, String::from_utf8_lossy(&body).into_owned()));
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, got)
}

#[test]
fn public_url_makes_location_absolute_and_webhooks_get_signed_events() {
    let (hook, got) = webhook_receiver();
    let srv = serve(&[
        "--public-url",
        "https://media1.example:8443/",
        "--instance",
        "media1",
        "--webhook",
        &format!("http://{hook}/hook"),
        "--webhook-secret",
        "s3cret",
    ]);
    let (_, sdp) = offer();
    let (status, head, _) = post_sdp(&srv.addr, &sdp);
    assert_eq!(status, 201, "{head}");
    let location = location(&head);
    let id = location
        .strip_prefix("https://media1.example:8443/whip/")
        .unwrap_or_else(|| panic!("Location {location:?} is not under --public-url"));
    assert_eq!(
        http(&srv.addr, "DELETE", &format!("/whip/{id}"), None, b"").0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        let found = got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| body.contains("\"type\":\"closed\""))
            .cloned();
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no closed event: {:?}",
            got.lock()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (head, body) = closed;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["instance"], "media1");
    assert_eq!(v["call"], id);
    assert!(
        head.to_ascii_lowercase()
            .contains("x-touchtone-signature: sha256="),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("x-touchtone-timestamp: ")
    );
    let metrics = http(&srv.addr, "GET", "/metrics", None, b"").2;
    assert!(
        metrics.contains(&format!(
            "touchtone_sink_delivered_total{{sink=\"webhook http://{hook}/hook\"}}"
        )),
        "{metrics}"
    );
}

#[test]
fn bad_sink_public_url_and_ptime_settings_are_refused_at_start() {
    for args in [
        ["--public-url", "ftp://media1.example"],
        ["--public-url", "https://media1.example/?a=b"],
        ["--webhook", "https://hooks.example/"],
        ["--webhook", "not a url"],
        ["--nats", "nats://127.0.0.1:1"],
        ["--ptime", "30"],
        ["--event-history", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_touchtone"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
}

/// Two `serve` processes on one NATS: a subscriber speaking the NATS protocol on
/// `touchtone.calls.>` sees both servers' calls, and each `Location` points at its own server.
#[test]
fn two_serve_processes_share_one_nats() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (url, port) = (nats.url(), nats.port());
    let mut bus = TcpStream::connect(("127.0.0.1", port)).unwrap();
    bus.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    bus.write_all(b"CONNECT {\"verbose\":false}\r\nSUB touchtone.calls.> 1\r\nPING\r\n")
        .unwrap();
    let mut reader = BufReader::new(bus.try_clone().unwrap());
    let mut line = String::new();
    while line.trim_end() != "PONG" {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "NATS closed");
    }
    let servers: Vec<Server> = ["east", "west"]
        .iter()
        .map(|name| {
            serve(&[
                "--nats",
                &url,
                "--instance",
                name,
                "--public-url",
                &format!("http://{name}.touchtone.test:8080"),
            ])
        })
        .collect();
    let mut ids = Vec::new();
    for (srv, name) in servers.iter().zip(["east", "west"]) {
        let (_, sdp) = offer();
        let (status, head, _) = post_sdp(&srv.addr, &sdp);
        assert_eq!(status, 201, "{head}");
        let location = location(&head);
        let prefix = format!("http://{name}.touchtone.test:8080/whip/");
        let id = location
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{location:?} is not under {prefix}"))
            .to_string();
        assert_eq!(
            http(&srv.addr, "DELETE", &format!("/whip/{id}"), None, b"").0,
            200
        );
        ids.push((name.to_string(), id));
    }
    // Both calls' `closed` events arrive, each from its own instance.
    let mut closed = Vec::new();
    while closed.len() < 2 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "NATS closed");
        let Some(rest) = line.trim_end().strip_prefix("MSG ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let len: usize = fields.last().unwrap().parse().unwrap();
        let mut payload = vec![0; len + 2];
        reader.read_exact(&mut payload).unwrap();
        if fields[0].ends_with(".closed") {
            let v: serde_json::Value = serde_json::from_slice(&payload[..len]).unwrap();
            let call = v["call"].as_str().unwrap().to_string();
            assert_eq!(fields[0], format!("touchtone.calls.{call}.closed"));
            closed.push((v["instance"].as_str().unwrap().to_string(), call));
        }
    }
    closed.sort();
    assert_eq!(closed, ids);
}
