//! Webhooks against a real HTTP receiver in the test process: signatures, order per call, retries
//! after 500s, and destinations that are down never holding up calls.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use touchtone_whip::SinkOptions;
use touchtone_whip::webhook::{Webhook, WebhookConfig};

const SECRET: &str = "whsec-test";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    timestamp: String,
    signature: String,
    attempt: u32,
    body: String,
    answered: u16,
}

#[derive(Default)]
struct Receiver {
    log: Mutex<Vec<Received>>,
    /// Requests still to answer with 500.
    fail_next: AtomicUsize,
}

async fn hook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let fail = rx
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    rx.log.lock().unwrap().push(Received {
        timestamp: h("x-touchtone-timestamp"),
        signature: h("x-touchtone-signature"),
        attempt: h("x-touchtone-attempt").parse().unwrap_or(0),
        body,
        answered: status.as_u16(),
    });
    status
}

/// A webhook receiver on a free loopback port that answers 500 to its first `fail_first` requests.
async fn receiver(fail_first: usize) -> (SocketAddr, Arc<Receiver>) {
    let rx = Arc::new(Receiver::default());
    rx.fail_next.store(fail_first, Ordering::SeqCst);
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

/// The signature a receiver expects, computed here with the `hmac` crate directly.
fn expected_signature(timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_in_order_per_call_and_retried_after_500s() {
    let (hook_addr, rx) = receiver(3).await;
    let srv = start(config()).await;
    let mut cfg = WebhookConfig::new(format!("http://{hook_addr}/hook"), Some(SECRET.into()));
    cfg.first_backoff = Duration::from_millis(20);
    srv.hub
        .add_sink(Arc::new(Webhook::new(cfg).unwrap()), SinkOptions::default());

    let (mut a, loc_a) = connect_client(srv.addr).await;
    let (b, loc_b) = connect_client(srv.addr).await;
    a.insert_dtmf("12#", 80, 60).await.unwrap();
    b.insert_dtmf("90*", 80, 60).await.unwrap();
    // The server dials a caller too, so its tonechange events are in the stream.
    let dtmf = format!("{loc_a}/dtmf");
    let json = ("Content-Type", "application/json");
    let r = request(
        srv.addr,
        "POST",
        &dtmf,
        &[json],
        br#"{"tones":"7","duration":80}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(heard(&mut a, 1, Duration::from_secs(5)).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.close();
    b.close();

    let (id_a, id_b) = (call_id(&loc_a), call_id(&loc_b));
    let closed = |rx: &Receiver, id: &str| {
        rx.log.lock().unwrap().iter().any(|r| {
            r.answered == 200 && r.body.contains(id) && r.body.contains("\"type\":\"closed\"")
        })
    };
    assert!(
        eventually(Duration::from_secs(15), || closed(&rx, &id_a)
            && closed(&rx, &id_b))
        .await,
        "no closed event for both calls: {:#?}",
        rx.log.lock().unwrap()
    );
    assert!(srv.hub.flush_sinks(Duration::from_secs(5)).await);

    let log = rx.log.lock().unwrap().clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for r in &log {
        assert_eq!(
            r.signature,
            expected_signature(&r.timestamp, &r.body),
            "bad signature on {r:?}"
        );
        let ts: u64 = r.timestamp.parse().unwrap();
        assert!(now.abs_diff(ts) < 60, "timestamp {ts} is not now ({now})");
    }
    // The first three requests were answered 500 and retried with the same body, attempt 1, 2, ...
    let failed: Vec<_> = log.iter().filter(|r| r.answered == 500).collect();
    assert_eq!(failed.len(), 3);
    for f in &failed {
        let retry = log
            .iter()
            .find(|r| r.body == f.body && r.attempt == f.attempt + 1)
            .unwrap_or_else(|| panic!("no retry of {f:?}"));
        assert!(retry.answered == 200 || retry.answered == 500);
    }

    // Per call: each event delivered once, seq 0, 1, 2, ... in order, ending with `closed`.
    let mut per_call: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for r in log.iter().filter(|r| r.answered == 200) {
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["instance"], srv.hub.instance());
        per_call
            .entry(v["call"].as_str().unwrap().to_string())
            .or_default()
            .push(v);
    }
    assert_eq!(per_call.len(), 2);
    for (id, digits) in [(&id_a, "12#"), (&id_b, "90*")] {
        let events = &per_call[id.as_str()];
        let seqs: Vec<u64> = events.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>(), "{id}");
        let got: String = events
            .iter()
            .filter(|v| v["type"] == "digit")
            .map(|v| v["digit"].as_str().unwrap())
            .collect();
        assert_eq!(got, digits);
        assert_eq!(events.last().unwrap()["type"], "closed");
        assert!(events.iter().any(|v| v["type"] == "negotiated"));
    }
    assert!(
        per_call[id_a.as_str()]
            .iter()
            .any(|v| v["type"] == "tonechange" && v["tone"] == "7")
    );

    let m = &srv.hub.metrics().sinks[0];
    let delivered = log.iter().filter(|r| r.answered == 200).count() as u64;
    assert_eq!(
        (m.delivered, m.failed, m.dropped, m.pending),
        (delivered, 0, 0, 0)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_that_are_down_never_hold_up_calls() {
    // One that accepts connections and never answers, one where nothing listens.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = black_hole.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = black_hole.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };

    let srv = start(config()).await;
    let mut slow = WebhookConfig::new(format!("http://{hole_addr}/hook"), Some(SECRET.into()));
    slow.timeout = Duration::from_secs(30);
    srv.hub.add_sink(
        Arc::new(Webhook::new(slow).unwrap()),
        SinkOptions { queue: 4, lanes: 1 },
    );
    let mut down = WebhookConfig::new(format!("http://{refused}/hook"), None);
    down.max_attempts = 2;
    down.first_backoff = Duration::from_millis(10);
    srv.hub.add_sink(
        Arc::new(Webhook::new(down).unwrap()),
        SinkOptions::default(),
    );

    let (mut client, location) = connect_client(srv.addr).await;
    let mut sub = srv.hub.subscribe(&call_id(&location), None).unwrap();
    client.insert_dtmf("123456", 100, 70).await.unwrap();
    // Every digit reaches the server's event stream on time, whatever the webhooks do.
    let mut digits = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while digits.len() < 6 {
            let Some(touchtone_whip::CallEvent::Event { json, .. }) = sub.next().await else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            if v["type"] == "digit" {
                digits.push((
                    v["digit"].as_str().unwrap().to_string(),
                    v["duration_ms"].as_f64().unwrap(),
                ));
            }
        }
    })
    .await;
    assert!(got.is_ok(), "digits so far: {digits:?}");
    let tones: String = digits.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(tones, "123456");
    for (d, ms) in &digits {
        assert!((ms - 100.0).abs() <= 20.0, "{d} lasted {ms} ms");
    }
    // And the server still dials the caller.
    let json = ("Content-Type", "application/json");
    let dtmf = format!("{location}/dtmf");
    let r = request(
        srv.addr,
        "POST",
        &dtmf,
        &[json],
        br#"{"tones":"9","duration":80}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        heard(&mut client, 1, Duration::from_secs(5)).await[0].0,
        '9'
    );

    let metrics = srv.hub.metrics();
    let (hole, gone) = (&metrics.sinks[0], &metrics.sinks[1]);
    assert!(hole.dropped > 0, "{hole:?}");
    assert_eq!(hole.delivered, 0, "{hole:?}");
    // The queue's 4 and the one being tried: nothing else is held for it.
    assert!(hole.pending <= 5, "{hole:?}");
    assert!(
        eventually(Duration::from_secs(5), || srv.hub.metrics().sinks[1].failed
            > 0)
        .await,
        "{gone:?}"
    );
    let text = request(srv.addr, "GET", "/metrics", &[], b"").await.body;
    let line = format!("touchtone_sink_dropped_total{{sink=\"webhook http://{hole_addr}/hook\"}}");
    assert!(text.contains(&line), "{text}");
    assert!(text.contains(&format!(
        "touchtone_sink_failed_total{{sink=\"webhook http://{refused}/hook\"}}"
    )));
    client.close();
    srv.stop().await;
}
