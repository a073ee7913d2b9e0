//! `touchtone serve` over HTTP: WHIP signaling, events, server dialing, limits and bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use touchtone_rtc::{Call, ConnectionState, Peer, PeerConfig, PeerEvent};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_touchtone"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    Server { child, addr }
}

/// One HTTP/1.1 request; returns (status, headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(c) = ctype {
        req.push_str(&format!("Content-Type: {c}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The `Location` header of a response head.
fn location(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .expect("Location header")
}

/// Posts an SDP body to `/whip` and returns the status.
fn post_sdp(addr: &str, body: &[u8]) -> u16 {
    http(addr, "POST", "/whip", Some("application/sdp"), body).0
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
    let (status, head, answer) = http(
        &srv.addr,
        "POST",
        "/whip",
        Some("application/sdp"),
        sdp.as_bytes(),
    );
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

#[test]
fn bad_requests_are_refused_cleanly() {
    let srv = serve(&["--max-calls", "1"]);
    let (_, sdp) = offer();
    assert_eq!(
        http(
            &srv.addr,
            "POST",
            "/whip",
            Some("text/plain"),
            sdp.as_bytes()
        )
        .0,
        415
    );
    assert_eq!(post_sdp(&srv.addr, b"v=0\r\nnonsense"), 400);
    assert_eq!(post_sdp(&srv.addr, &[0xff, 0xfe, 0x00]), 400);
    assert_eq!(post_sdp(&srv.addr, &vec![b'a'; 200_000]), 413);
    assert_eq!(http(&srv.addr, "DELETE", "/whip/unknown", None, b"").0, 404);
    assert_eq!(
        http(&srv.addr, "GET", "/whip/unknown/events", None, b"").0,
        404
    );
    assert_eq!(
        http(
            &srv.addr,
            "POST",
            "/whip/unknown/dtmf",
            Some("application/json"),
            br#"{"tones":"1"}"#
        )
        .0,
        404
    );
    // --max-calls 1: the second call gets 503.
    assert_eq!(post_sdp(&srv.addr, sdp.as_bytes()), 201);
    let (_, sdp2) = offer();
    assert_eq!(post_sdp(&srv.addr, sdp2.as_bytes()), 503);
    let (status, _, body) = http(&srv.addr, "GET", "/healthz", None, b"");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, _, page) = http(&srv.addr, "GET", "/", None, b"");
    assert_eq!(status, 200);
    assert!(page.contains("insertDTMF"));
}

#[test]
fn idle_calls_are_ended() {
    let srv = serve(&["--idle-timeout", "1"]);
    let (_, sdp) = offer();
    let (status, head, _) = http(
        &srv.addr,
        "POST",
        "/whip",
        Some("application/sdp"),
        sdp.as_bytes(),
    );
    assert_eq!(status, 201);
    let location = head
        .lines()
        .find_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap();
    // The offering peer never sends a packet: the call ends after the idle timeout and is removed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let dtmf = format!("{location}/dtmf");
    assert_eq!(
        http(
            &srv.addr,
            "POST",
            &dtmf,
            Some("application/json"),
            br#"{"tones":"1"}"#
        )
        .0,
        409
    );
    while http(
        &srv.addr,
        "POST",
        &dtmf,
        Some("application/json"),
        br#"{"tones":"1"}"#,
    )
    .0 != 404
    {
        assert!(Instant::now() < deadline, "idle call still there");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, _, metrics) = http(&srv.addr, "GET", "/metrics", None, b"");
    assert!(metrics.contains("touchtone_calls_active 0"), "{metrics}");
}

/// The server dials a Rust client over real loopback UDP (no yield window: the cheap path).
#[test]
fn the_server_dials_a_client_which_hears_every_digit() {
    let srv = serve(&["--yield-window-ms", "0"]);
    let addr = srv.addr.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let loopback = "127.0.0.1".parse().unwrap();
        let mut call = Call::bind(loopback, PeerConfig::default()).await.unwrap();
        let offer = call.peer.create_offer().unwrap();
        let (status, head, answer) = http(
            &addr,
            "POST",
            "/whip",
            Some("application/sdp"),
            offer.as_bytes(),
        );
        assert_eq!(status, 201, "{head}\n{answer}");
        let location = location(&head);
        call.peer.accept_answer(Instant::now(), &answer).unwrap();
        let mut client = call.spawn();
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
