//! Bearer tokens, CORS and draining.

mod common;

use std::time::Duration;

use common::*;
use touchtone_whip::WhipConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_needed_on_every_whip_event_and_dtmf_request() {
    let srv = start(WhipConfig {
        token: Some("s3cret".into()),
        ..config()
    })
    .await;
    let sdp = offer();
    let sdp_type = ("Content-Type", "application/sdp");
    let r = post_sdp(srv.addr, &sdp).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    let wrong = ("Authorization", "Bearer s3creT");
    assert_eq!(
        request(
            srv.addr,
            "POST",
            "/whip",
            &[sdp_type, wrong],
            sdp.as_bytes()
        )
        .await
        .status,
        401
    );
    let auth = ("Authorization", "Bearer s3cret");
    let r = request(srv.addr, "POST", "/whip", &[sdp_type, auth], sdp.as_bytes()).await;
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("location").unwrap();
    let events = format!("{location}/events");
    let dtmf = format!("{location}/dtmf");
    let json = ("Content-Type", "application/json");
    assert_eq!(
        request(srv.addr, "GET", &events, &[], b"").await.status,
        401
    );
    assert_eq!(
        request(srv.addr, "POST", &dtmf, &[json], br#"{"tones":"1"}"#)
            .await
            .status,
        401
    );
    assert_eq!(
        request(srv.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        401
    );
    // EventSource cannot set headers: the token may come as ?access_token= (RFC 6750).
    assert!(
        SseReader::open(srv.addr, &format!("{events}?access_token=s3cret"), &[])
            .await
            .is_ok()
    );
    assert!(SseReader::open(srv.addr, &events, &[auth]).await.is_ok());
    assert_eq!(
        request(srv.addr, "POST", &dtmf, &[json, auth], br#"{"tones":"1"}"#)
            .await
            .status,
        409
    );
    // Health and metrics stay open for probes and scrapers.
    assert_eq!(
        request(srv.addr, "GET", "/healthz", &[], b"").await.status,
        200
    );
    assert_eq!(
        request(srv.addr, "GET", "/metrics", &[], b"").await.status,
        200
    );
    assert_eq!(
        request(srv.addr, "DELETE", &location, &[auth], b"")
            .await
            .status,
        200
    );
    srv.stop().await;
}

async fn preflight(addr: std::net::SocketAddr, origin: &str) -> Resp {
    request(
        addr,
        "OPTIONS",
        "/whip",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_origins_get_cors_and_others_do_not() {
    let srv = start(WhipConfig {
        allowed_origins: vec!["https://app.example".into()],
        token: Some("t".into()),
        ..config()
    })
    .await;
    let r = preflight(srv.addr, "https://app.example").await;
    assert_eq!(r.status, 200, "preflight answered without a token: {r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    let methods = r.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    assert_eq!(
        preflight(srv.addr, "https://evil.example")
            .await
            .header("access-control-allow-origin"),
        None
    );

    let r = request(
        srv.addr,
        "POST",
        "/whip",
        &[
            ("Origin", "https://app.example"),
            ("Content-Type", "application/sdp"),
            ("Authorization", "Bearer t"),
        ],
        offer().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201);
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("location") && exposed.contains("link"),
        "{exposed}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_origins_there_is_no_cors() {
    let srv = start(config()).await;
    let r = request(
        srv.addr,
        "POST",
        "/whip",
        &[
            ("Origin", "https://app.example"),
            ("Content-Type", "application/sdp"),
        ],
        offer().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("access-control-allow-origin"), None);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_refuses_new_calls_and_keeps_live_ones() {
    let srv = start(config()).await;
    let location = post_sdp(srv.addr, &offer())
        .await
        .header("location")
        .unwrap();
    srv.hub.drain();
    let r = post_sdp(srv.addr, &offer()).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("Draining"));
    assert!(r.header("retry-after").is_some());
    let r = request(srv.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (503, "draining\n"));
    // The live call still answers, and wait_idle returns once it ends.
    let events = SseReader::open(srv.addr, &format!("{location}/events"), &[]).await;
    assert!(events.is_ok());
    let idle = tokio::spawn({
        let hub = srv.hub.clone();
        async move { hub.wait_idle().await }
    });
    assert!(!idle.is_finished());
    assert_eq!(
        request(srv.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        200
    );
    tokio::time::timeout(Duration::from_secs(5), idle)
        .await
        .unwrap()
        .unwrap();
    srv.stop().await;
}
