//! The endpoint over real HTTP in the test process: signaling, events, limits and bad input.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use touchtone_whip::{CallRate, ServerLimits, WhipConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_is_answered_and_the_call_can_be_ended() {
    let srv = start(config()).await;
    let r = post_sdp(srv.addr, &offer()).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("content-type").as_deref(), Some("application/sdp"));
    let location = r.header("location").unwrap();
    let id = location.strip_prefix("/whip/").unwrap();
    assert_eq!(id.len(), 32, "128-bit ids: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(r.body.contains("opus/48000") && r.body.contains("telephone-event/48000"));
    assert!(
        r.body.contains("a=candidate"),
        "non-trickle answer carries candidates"
    );
    assert!(
        !r.body.contains("trickle"),
        "PATCH is not implemented, so trickle is not advertised: {}",
        r.body
    );
    assert_eq!(srv.hub.list().len(), 1);
    assert_eq!(srv.hub.list()[0].id, id);

    let dtmf = format!("{location}/dtmf");
    let json = [("Content-Type", "application/json")];
    let r = request(srv.addr, "POST", &dtmf, &json, br#"{"tones":"123"}"#).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("InvalidStateError"));
    let r = request(srv.addr, "POST", &dtmf, &json, b"{not json").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("InvalidJson"));

    let r = request(srv.addr, "GET", "/metrics", &[], b"").await;
    assert!(r.body.contains("touchtone_calls_active 1"), "{}", r.body);
    assert!(r.body.contains("touchtone_calls_total 1"));
    assert_eq!(srv.hub.metrics().calls_active, 1);

    assert_eq!(
        request(srv.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        200
    );
    assert!(eventually(Duration::from_secs(5), || srv.hub.list().is_empty()).await);
    assert_eq!(
        request(srv.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        404
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_types_are_checked_exactly() {
    let srv = start(config()).await;
    let sdp = offer();
    for (ctype, status) in [
        ("text/plain", 415),
        ("application/sdpx", 415),
        ("application/sdp; charset=utf-8", 201),
        ("APPLICATION/SDP", 201),
    ] {
        let r = request(
            srv.addr,
            "POST",
            "/whip",
            &[("Content-Type", ctype)],
            sdp.as_bytes(),
        )
        .await;
        assert_eq!(r.status, status, "{ctype}: {r:?}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_offers_say_why_without_internal_text() {
    let srv = start(config()).await;
    for body in [
        "v=0\r\nnonsense",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
    ] {
        let r = post_sdp(srv.addr, body).await;
        assert_eq!(r.status, 400, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"], "InvalidSdp");
        let m = v["message"].as_str().unwrap();
        assert!(!m.contains("0x") && !m.contains("PointerOffset"), "{m}");
    }
    let r = request(
        srv.addr,
        "POST",
        "/whip",
        &[("Content-Type", "application/sdp")],
        &[0xff, 0xfe],
    )
    .await;
    assert_eq!(r.status, 400);
    // Two reached the negotiation; the third was refused before.
    assert_eq!(srv.hub.metrics().errors, 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_calls_are_404() {
    let srv = start(config()).await;
    let json = [("Content-Type", "application/json")];
    assert_eq!(
        request(srv.addr, "DELETE", "/whip/nope", &[], b"")
            .await
            .status,
        404
    );
    assert_eq!(
        request(srv.addr, "GET", "/whip/nope/events", &[], b"")
            .await
            .status,
        404
    );
    let r = request(
        srv.addr,
        "POST",
        "/whip/nope/dtmf",
        &json,
        br#"{"tones":"1"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        request(srv.addr, "GET", "/healthz", &[], b"").await.body,
        "ok\n"
    );
    srv.stop().await;
}

/// Regression: an id whose percent-encoding is not UTF-8 got axum's plain-text 400 ("Invalid URL:
/// Invalid UTF-8 in `id`") instead of the API's JSON error; no call has such an id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_is_not_text_is_an_unknown_call() {
    let srv = start(config()).await;
    let json = [("Content-Type", "application/json")];
    for id in ["%FF", "%C3%28", "ok%80"] {
        for (method, path, headers, body) in [
            ("DELETE", format!("/whip/{id}"), &[][..], &b""[..]),
            ("GET", format!("/whip/{id}/events"), &[][..], &b""[..]),
            (
                "POST",
                format!("/whip/{id}/dtmf"),
                &json[..],
                &br#"{"tones":"1"}"#[..],
            ),
        ] {
            let r = request(srv.addr, method, &path, headers, body).await;
            assert_eq!(r.status, 404, "{method} {path}: {r:?}");
            assert_eq!(
                r.header("content-type").as_deref(),
                Some("application/json"),
                "{method} {path}"
            );
            assert!(r.body.contains(r#""error":"NotFound""#), "{}", r.body);
        }
    }
    srv.stop().await;
}

/// Regression: the limit was checked before binding the socket and the call registered after, so
/// concurrent offers could all pass the check (21 calls with a limit of 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_calls_holds_under_concurrent_offers() {
    let srv = start(WhipConfig {
        max_calls: 3,
        ..config()
    })
    .await;
    let sdp = offer();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let sdp = sdp.clone();
            tokio::spawn(async move { post_sdp(srv.addr, &sdp).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 503 {
            assert_eq!(r.header("retry-after").as_deref(), Some("5"));
            assert!(r.body.contains("TooManyCalls"));
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        13,
        "{statuses:?}"
    );
    assert_eq!(srv.hub.list().len(), 3);
    assert_eq!(srv.hub.metrics().calls_rejected, 13);
    // A slot is free again once a call has ended.
    srv.hub.hang_up_all();
    assert!(eventually(Duration::from_secs(5), || srv.hub.list().is_empty()).await);
    assert_eq!(post_sdp(srv.addr, &sdp).await.status, 201);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_calls_per_client_are_rate_limited() {
    let srv = start(WhipConfig {
        calls_per_client: CallRate {
            per_second: 0.01,
            burst: 2,
        },
        ..config()
    })
    .await;
    let sdp = offer();
    assert_eq!(post_sdp(srv.addr, &sdp).await.status, 201);
    assert_eq!(post_sdp(srv.addr, &sdp).await.status, 201);
    let r = post_sdp(srv.addr, &sdp).await;
    assert_eq!(r.status, 429, "{r:?}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((90..=100).contains(&retry), "{retry}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_before_the_body() {
    let srv = start(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        b"POST /whip HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 10737418240\r\n\r\n",
    )
    .await
    .unwrap();
    let r = parse(&read_all(&mut s).await);
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body.contains("PayloadTooLarge"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_over_the_limit_gets_413_not_continue() {
    let srv = start(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        b"POST /whip HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let r = parse(&read_all(&mut s).await);
    assert_eq!(r.status, 413, "no 100 Continue first: {r:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_comes_is_cut_off() {
    let srv = start(WhipConfig {
        body_read_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let head = format!(
            "POST /whip HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n{expect}\r\nv=0\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let raw = read_all(&mut s).await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("408 Request Timeout"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_silent_headers_are_cut_off() {
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let srv = start_with(config(), limits).await;
    // Silent: connects and sends nothing.
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    // Slow: one header byte now and then, never the end of the headers.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let drip = async {
        for _ in 0..50 {
            if slow.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let silent_end = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(silent_end, Ok(Ok(0)) | Ok(Err(_))),
        "silent connection still open"
    );
    drip.await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the slow client was not cut off"
    );
    // An idle keep-alive connection is closed too, after its first request.
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut got)).await;
    assert!(end.is_ok(), "idle keep-alive connection still open");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_client_are_capped() {
    let limits = ServerLimits {
        max_connections_per_ip: 4,
        ..ServerLimits::default()
    };
    let srv = start_with(config(), limits).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    // Let the server accept them.
    let r = request(srv.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("TooManyConnections"));
    held.pop();
    let mut ok = false;
    for _ in 0..100 {
        if request(srv.addr, "GET", "/healthz", &[], b"").await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed slot is reused");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_have_ids_and_a_reconnect_resumes_after_the_last_one() {
    let srv = start(config()).await;
    let r = post_sdp(srv.addr, &offer()).await;
    let location = r.header("location").unwrap();
    let events = format!("{location}/events");
    let mut first = SseReader::open(srv.addr, &events, &[]).await.unwrap();
    assert!(
        first
            .head
            .to_ascii_lowercase()
            .contains("text/event-stream")
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = first.next().await.unwrap();
        seen.push(ev);
    }
    let ids: Vec<_> = seen.iter().map(|e| e.id.clone().unwrap()).collect();
    assert_eq!(ids, ["0", "1", "2"]);
    // The reconnect sends the last id it saw: it gets what follows, not the history again.
    let mut again = SseReader::open(srv.addr, &events, &[("Last-Event-ID", "1")])
        .await
        .unwrap();
    let ev = again.next().await.unwrap();
    assert_eq!(ev.id.as_deref(), Some("2"));
    assert_eq!(ev.data, seen[2].data);
    // Hanging up ends both streams with the `closed` event.
    assert_eq!(
        request(srv.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        200
    );
    for reader in [&mut first, &mut again] {
        let mut last = None;
        while let Some(ev) = reader.next().await {
            last = Some(ev);
        }
        let last = last.unwrap();
        assert!(last.data.contains(r#""type":"closed""#), "{last:?}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_can_ask_for_some_event_types_only() {
    let srv = start(config()).await;
    let location = post_sdp(srv.addr, &offer())
        .await
        .header("location")
        .unwrap();
    let events = format!("{location}/events");
    let mut all = SseReader::open(srv.addr, &events, &[]).await.unwrap();
    let mut some = SseReader::open(srv.addr, &format!("{events}?types=negotiated,closed"), &[])
        .await
        .unwrap();
    assert_eq!(
        request(srv.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        200
    );
    let mut every = vec![];
    while let Some(ev) = all.next().await {
        every.push(ev);
    }
    let mut picked = vec![];
    while let Some(ev) = some.next().await {
        picked.push(ev);
    }
    let kind =
        |data: &str| serde_json::from_str::<serde_json::Value>(data).unwrap()["type"].clone();
    let kinds: Vec<_> = picked.iter().map(|e| kind(&e.data)).collect();
    assert_eq!(kinds, ["negotiated", "closed"], "{picked:?}");
    // The same events, with the ids they have in the whole stream (so Last-Event-ID still resumes).
    let expected: Vec<_> = every
        .iter()
        .filter(|e| ["negotiated", "closed"].contains(&kind(&e.data).as_str().unwrap()))
        .map(|e| (e.id.clone(), e.data.clone()))
        .collect();
    let got: Vec<_> = picked
        .iter()
        .map(|e| (e.id.clone(), e.data.clone()))
        .collect();
    assert_eq!(got, expected);
    assert!(every.len() > picked.len(), "{every:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_event_type_is_refused() {
    let srv = start(config()).await;
    let location = post_sdp(srv.addr, &offer())
        .await
        .header("location")
        .unwrap();
    // A repeated parameter was axum's plain-text 400 ("Failed to deserialize query string").
    for query in [
        "types=digit,keyup",
        "types=",
        "types=,",
        "types=digit&types=closed",
        "types=%FF",
    ] {
        let r = request(
            srv.addr,
            "GET",
            &format!("{location}/events?{query}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 400, "{query}");
        assert!(
            r.body.starts_with(r#"{"error":"InvalidQuery""#),
            "{query}: {}",
            r.body
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_told() {
    let srv = start(WhipConfig {
        history_per_call: 2,
        ..config()
    })
    .await;
    let r = post_sdp(srv.addr, &offer()).await;
    let location = r.header("location").unwrap();
    // The call has more events than the history keeps by now: a new subscriber learns it missed some.
    assert!(
        eventually(Duration::from_secs(5), || srv.hub.metrics().calls_active
            == 1)
        .await
    );
    let mut sub = SseReader::open(srv.addr, &format!("{location}/events"), &[])
        .await
        .unwrap();
    let ev = sub.next().await.unwrap();
    assert_eq!(ev.event.as_deref(), Some("lagged"), "{ev:?}");
    let missed: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
    assert!(missed["missed"].as_u64().unwrap() >= 1);
    let next = sub.next().await.unwrap();
    assert!(next.id.is_some() && next.event.is_none());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_per_call_are_limited() {
    let srv = start(WhipConfig {
        max_subscribers_per_call: 2,
        ..config()
    })
    .await;
    let location = post_sdp(srv.addr, &offer())
        .await
        .header("location")
        .unwrap();
    let events = format!("{location}/events");
    let a = SseReader::open(srv.addr, &events, &[]).await.unwrap();
    let _b = SseReader::open(srv.addr, &events, &[]).await.unwrap();
    let r = SseReader::open(srv.addr, &events, &[]).await.err().unwrap();
    assert_eq!(r.status, 503);
    assert!(r.body.contains("TooManySubscribers"));
    drop(a);
    let mut ok = false;
    for _ in 0..100 {
        if SseReader::open(srv.addr, &events, &[]).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a subscriber that left frees its place");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_calls_are_ended_and_forgotten() {
    let srv = start(WhipConfig {
        idle_timeout: Duration::from_millis(500),
        ..config()
    })
    .await;
    let r = post_sdp(srv.addr, &offer()).await;
    assert_eq!(r.status, 201);
    let location = r.header("location").unwrap();
    let mut events = SseReader::open(srv.addr, &format!("{location}/events"), &[])
        .await
        .unwrap();
    // A caller that never came is a connection that failed, not one that hung up.
    let mut last_state = None;
    while let Some(ev) = events.next().await {
        let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
        if v["type"] == "state" && v["kind"] == "connection" {
            last_state = v["state"].as_str().map(str::to_string);
        }
        if v["type"] == "closed" {
            break;
        }
    }
    assert_eq!(last_state.as_deref(), Some("failed"));
    assert!(eventually(Duration::from_secs(10), || srv.hub.list().is_empty()).await);
    assert_eq!(srv.hub.metrics().calls_active, 0);
    srv.stop().await;
}

/// Connections to `listener` that complete within 0.9 s when `n` are opened at once and none is
/// accepted (a connection the accept queue has no room for waits a second for its SYN to be resent).
async fn queued_at_once(listener: &tokio::net::TcpListener, n: usize) -> usize {
    let addr = listener.local_addr().unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(tokio::time::timeout(
            Duration::from_millis(900),
            TcpStream::connect(addr),
        ));
    }
    let mut open = vec![];
    while let Some(r) = set.join_next().await {
        if let Ok(Ok(Ok(stream))) = r {
            open.push(stream);
        }
    }
    open.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1500_connections_waits_in_the_accept_queue() {
    // A burst of offers from many browsers connects at once, faster than a busy server accepts.
    let listener = touchtone_whip::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(queued_at_once(&listener, 1500).await, 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_at_the_udp_port_and_port_stalls_are_in_the_metrics() {
    let endpoint = touchtone_whip::UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), &[])
        .await
        .unwrap();
    let srv = start(WhipConfig {
        udp: touchtone_whip::UdpMode::Shared(endpoint),
        ..config()
    })
    .await;
    let r = post_sdp(srv.addr, &offer()).await;
    assert_eq!(r.status, 201, "{r:?}");
    // a=candidate:<foundation> 1 udp <priority> <ip> <port> typ host
    let candidate: Vec<&str> = r
        .body
        .lines()
        .find(|l| l.starts_with("a=candidate"))
        .unwrap()
        .split_whitespace()
        .collect();
    let port: std::net::SocketAddr = format!("{}:{}", candidate[4], candidate[5])
        .parse()
        .unwrap();
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..20 {
        junk.send_to(b"\x80\x00 for no call at all", port).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || srv.hub.metrics().port_unroutable
            >= 20)
        .await,
        "{:?}",
        srv.hub.metrics()
    );
    let r = request(srv.addr, "GET", "/metrics", &[], b"").await;
    let value = |name: &str| -> u64 {
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} in {}", r.body))
            .parse()
            .unwrap()
    };
    assert!(value("touchtone_port_unroutable_total") >= 20, "{}", r.body);
    assert!(
        r.body
            .contains("# TYPE touchtone_port_stalls_total counter")
    );
    value("touchtone_port_stalls_total");
}
