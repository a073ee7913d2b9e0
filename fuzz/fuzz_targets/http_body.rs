//! The WHIP endpoint's request handling, in process (the axum router through `tower::ServiceExt::oneshot`,
//! no sockets for HTTP): arbitrary bodies for `POST /whip` (SDP offers) and `POST /whip/{id}/dtmf` (the
//! DTMF JSON), with arbitrary content types, `Content-Length` values, bearer tokens, `?access_token=`
//! queries and `Last-Event-ID` headers.
//!
//! The first byte picks the request; the rest is the body (or the query / header text):
//! - bits 0-1: 0 offer, 1 DTMF, 2 event stream, 3 hang-up;
//! - bits 2-3: content type: `application/sdp`, `application/sdp; charset=utf-8`, `application/json`, none;
//! - bit 4: a `Content-Length` header (the body's length, or 1 MiB when bit 5 is set too);
//! - bit 6: the live call's id (else an unknown one); a hang-up takes its id from the body;
//! - bit 7: the endpoint that needs a bearer token, with the right token in the header.
//!
//! Checked: no panic; never a 500; only the statuses the API documents for each request; every error body
//! is the JSON `{"error","message"}` without debug text; an answered offer has its `Location`.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use touchtone_rtc::{Peer, PeerConfig};
use touchtone_whip::{Hub, WhipConfig};
use tower::ServiceExt;

const TOKEN: &str = "s3cret";

struct Endpoint {
    router: Router,
    hub: Hub,
    /// A call that was offered and answered (never connected): DTMF to it gets 409, or 400 for bad tones.
    call: String,
}

struct World {
    rt: Runtime,
    open: Endpoint,
    locked: Endpoint,
}

fn endpoint(rt: &Runtime, token: Option<&str>) -> Endpoint {
    let config = WhipConfig {
        max_calls: 4,
        idle_timeout: Duration::from_secs(24 * 3600),
        body_read_timeout: Duration::from_secs(5),
        token: token.map(str::to_string),
        ..WhipConfig::default()
    };
    let (router, hub) = touchtone_whip::router(config);
    let mut caller = Peer::new(
        Instant::now(),
        "127.0.0.1:9".parse().unwrap(),
        PeerConfig::default(),
    )
    .unwrap();
    let offer = caller.create_offer().unwrap();
    let answer = rt.block_on(hub.offer(&offer, None)).expect("the seed call");
    Endpoint {
        router,
        hub,
        call: answer.id,
    }
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let open = endpoint(&rt, None);
        let locked = endpoint(&rt, Some(TOKEN));
        World { rt, open, locked }
    })
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let is_sse = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = if is_sse {
        Vec::new()
    } else {
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("a response body")
            .to_vec()
    };
    (status, headers, body)
}

fn check_error(status: StatusCode, body: &[u8]) {
    let v: serde_json_lite::Value = serde_json_lite::parse(body).unwrap_or_else(|| {
        panic!(
            "{status}: not a JSON error: {:?}",
            String::from_utf8_lossy(body)
        )
    });
    let message = v.message;
    for leak in ["PointerOffset", "0x7f", "Error {", "Some(", "src/"] {
        assert!(
            !message.contains(leak),
            "{status}: {message:?} quotes internals"
        );
    }
}

/// Just enough JSON to read `{"error":"..","message":".."}` without another dependency's quirks.
mod serde_json_lite {
    pub struct Value {
        pub message: String,
    }
    pub fn parse(b: &[u8]) -> Option<Value> {
        let s = std::str::from_utf8(b).ok()?;
        if !(s.starts_with("{\"error\":\"") && s.contains("\"message\":\"") && s.ends_with("\"}")) {
            return None;
        }
        let m = s.split_once("\"message\":\"")?.1;
        Some(Value {
            message: m[..m.len() - 2].to_string(),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let ep = if sel & 0x80 != 0 { &w.locked } else { &w.open };
    let id = if sel & 0x40 != 0 {
        ep.call.clone()
    } else {
        "00000000000000000000000000000000".to_string()
    };
    let route = sel & 3;
    let content_type = match (sel >> 2) & 3 {
        0 => Some("application/sdp"),
        1 => Some("application/sdp; charset=utf-8"),
        2 => Some("application/json"),
        _ => None,
    };
    let mut b = Request::builder();
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    if sel & 0x10 != 0 {
        let len = if sel & 0x20 != 0 { 1 << 20 } else { body.len() };
        b = b.header(header::CONTENT_LENGTH, len);
    }
    if sel & 0x80 != 0 {
        b = b.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let text = String::from_utf8_lossy(body);
    let req = match route {
        0 => b
            .method("POST")
            .uri("/whip")
            .body(Body::from(body.to_vec())),
        1 => b
            .method("POST")
            .uri(format!("/whip/{id}/dtmf"))
            .body(Body::from(body.to_vec())),
        2 => {
            // The body is the query string and the Last-Event-ID; a bad URI or header is the client's
            // problem before it reaches the router.
            let (query, last) = text.split_once('\n').unwrap_or((&text, ""));
            let mut b = Request::builder().method("GET");
            if let Ok(v) = axum::http::HeaderValue::from_str(last) {
                b = b.header("last-event-id", v);
            }
            let Ok(uri) = format!("/whip/{id}/events?{query}").parse::<axum::http::Uri>() else {
                return;
            };
            b.uri(uri).body(Body::empty())
        }
        _ => {
            // Any id but the live call's (which the DTMF requests need). A path outside the API (an empty
            // id, more segments, a query or fragment) is not the endpoint's: the router has no fallback
            // of its own, as the application it is merged into owns that, so axum answers a plain 404.
            if text == ep.call || text.is_empty() || text.contains(['/', '?', '#']) {
                return;
            }
            let Ok(uri) = format!("/whip/{text}").parse::<axum::http::Uri>() else {
                return;
            };
            b.method("DELETE").uri(uri).body(Body::empty())
        }
    };
    let Ok(req) = req else {
        return;
    };
    let (status, headers, resp_body) = w.rt.block_on(send(&ep.router, req));
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        String::from_utf8_lossy(&resp_body)
    );
    let allowed: &[u16] = match route {
        0 => &[201, 400, 401, 413, 415, 503],
        1 => &[200, 400, 401, 404, 409, 413],
        2 => &[200, 401, 404, 503],
        _ => &[200, 401, 404],
    };
    assert!(
        allowed.contains(&status.as_u16()),
        "route {route}: {status}"
    );
    if status.is_client_error() || status.is_server_error() {
        check_error(status, &resp_body);
    }
    if status == StatusCode::CREATED {
        let location = headers[header::LOCATION].to_str().unwrap().to_string();
        let new_id = location
            .strip_prefix("/whip/")
            .expect("Location /whip/{id}");
        assert!(std::str::from_utf8(&resp_body).unwrap().starts_with("v=0"));
        // Hang up at once, so that offers keep being answered instead of hitting max_calls.
        ep.hub.hang_up(new_id).expect("the new call");
        w.rt.block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
    }
});
