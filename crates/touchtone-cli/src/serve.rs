//! `touchtone serve`: a WHIP endpoint that answers browser calls, hears their DTMF and can dial back.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;
use touchtone::DtmfError;
use touchtone_rtc::{Call, CallControl, PeerConfig, PeerEvent};

use crate::Failure;
use crate::output::EventLine;

/// The web page, embedded in the binary.
const PAGE: &str = include_str!("../web/index.html");
/// Largest request body accepted (SDP offers are a few KB).
const MAX_BODY: usize = 64 * 1024;

/// Arguments of `touchtone serve`.
#[derive(clap::Args)]
pub struct Args {
    /// HTTP address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address the calls' UDP sockets bind to (and announce as their ICE candidate).
    #[arg(long, default_value = "127.0.0.1")]
    rtc_bind: IpAddr,
    /// Most calls at once; more get 503.
    #[arg(long, default_value_t = 100)]
    max_calls: usize,
    /// Seconds a call may go without a packet from the browser before it is ended.
    #[arg(long, default_value_t = 30)]
    idle_timeout: u64,
    /// Milliseconds before each tone change a dialing call yields instead of sleeping, so the event
    /// is on time; 0 saves that CPU on busy servers, for events about 1 ms late (median).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=20))]
    yield_window_ms: u64,
    /// Write each call's decrypted RTP (both directions) to DIR/<call id>.pcapng, for Wireshark or
    /// `touchtone pcap`.
    #[arg(long, value_name = "DIR")]
    record: Option<std::path::PathBuf>,
}

struct CallEntry {
    control: CallControl,
    history: Arc<Mutex<Vec<String>>>,
    events: broadcast::Sender<String>,
}

#[derive(Default)]
struct Metrics {
    calls_total: AtomicU64,
    calls_rejected: AtomicU64,
    digits: AtomicU64,
    errors: AtomicU64,
    datagrams_in: AtomicU64,
    datagrams_out: AtomicU64,
}

struct App {
    calls: Mutex<HashMap<String, CallEntry>>,
    metrics: Metrics,
    max_calls: usize,
    rtc_bind: IpAddr,
    idle_timeout: Duration,
    yield_window: Duration,
    record: Option<std::path::PathBuf>,
}

type Shared = Arc<App>;

/// Runs `touchtone serve` until Ctrl-C.
pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(dir) = &args.record {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::input(format!("--record {}: {e}", dir.display())))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::input(format!("cannot listen on {}: {e}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::input(e.to_string()))?;
        let app = Arc::new(App {
            calls: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            max_calls: args.max_calls,
            rtc_bind: args.rtc_bind,
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            yield_window: Duration::from_millis(args.yield_window_ms),
            record: args.record.clone(),
        });
        eprintln!("touchtone serve: open http://{addr}/ in a browser (Ctrl-C to stop)");
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Failure::input(format!("server error: {e}")))
    })
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/whip", post(whip_offer))
        .route("/whip/{id}", axum::routing::delete(whip_delete))
        .route("/whip/{id}/events", get(whip_events))
        .route("/whip/{id}/dtmf", post(whip_dtmf))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

fn error(status: StatusCode, name: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": name, "message": message.into() });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

async fn whip_offer(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !is_sdp {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the offer must be application/sdp",
        );
    }
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidSdp",
            "the offer is not UTF-8",
        );
    };
    if app.calls.lock().map(|c| c.len()).unwrap_or(usize::MAX) >= app.max_calls {
        app.metrics.calls_rejected.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TooManyCalls",
            format!("at most {} calls at once", app.max_calls),
        );
    }
    let mut call = match Call::bind(app.rtc_bind, PeerConfig::default()).await {
        Ok(c) => c,
        Err(e) => {
            app.metrics.errors.fetch_add(1, Ordering::Relaxed);
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "CallFailed",
                e.to_string(),
            );
        }
    };
    call.set_idle_timeout(app.idle_timeout);
    call.set_yield_window(app.yield_window);
    let answer = match call.peer.accept_offer(Instant::now(), sdp) {
        Ok(a) => a,
        Err(e) => {
            app.metrics.errors.fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::BAD_REQUEST, "InvalidSdp", e.to_string());
        }
    };
    let id = new_id();
    if let Some(dir) = &app.record {
        let path = dir.join(format!("{id}.pcapng"));
        if let Err(e) = call.record_to(&path) {
            tracing::warn!("call {id}: {e}");
        }
    }
    let handle = call.spawn();
    let (tx, _) = broadcast::channel(256);
    let history = Arc::new(Mutex::new(Vec::new()));
    let control = handle.control();
    if let Ok(mut calls) = app.calls.lock() {
        calls.insert(
            id.clone(),
            CallEntry {
                control: control.clone(),
                history: history.clone(),
                events: tx.clone(),
            },
        );
    }
    app.metrics.calls_total.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(pump(app.clone(), id.clone(), handle, history, tx));
    tracing::info!("call {id} answered on {}", control.local_addr());
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, format!("/whip/{id}")),
        ],
        answer,
    )
        .into_response()
}

/// Forwards a call's events to its subscribers and cleans up when it ends.
async fn pump(
    app: Shared,
    id: String,
    mut handle: touchtone_rtc::CallHandle,
    history: Arc<Mutex<Vec<String>>>,
    tx: broadcast::Sender<String>,
) {
    let start = Instant::now();
    while let Some(ev) = handle.next_event().await {
        if matches!(ev, PeerEvent::KeyUp(_)) {
            app.metrics.digits.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(ev, PeerEvent::Candidate(_)) {
            continue;
        }
        let Ok(line) = serde_json::to_string(&EventLine::of("server", &ev, start)) else {
            continue;
        };
        if let Ok(mut h) = history.lock() {
            // History and broadcast under one lock: a subscriber sees every line once.
            if h.len() < 10_000 {
                h.push(line.clone());
            }
            let _ = tx.send(line);
        }
        if ev == PeerEvent::Closed {
            break;
        }
    }
    let control = handle.control();
    let stats = control.stats();
    app.metrics.datagrams_in.fetch_add(
        stats.datagrams_in.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    app.metrics.datagrams_out.fetch_add(
        stats.datagrams_out.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    if let Ok(mut calls) = app.calls.lock() {
        calls.remove(&id);
    }
    tracing::info!("call {id} ended");
}

async fn whip_delete(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let control = app
        .calls
        .lock()
        .ok()
        .and_then(|c| c.get(&id).map(|e| e.control.clone()));
    match control {
        Some(c) => {
            c.close();
            StatusCode::OK.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "NotFound", "no such call"),
    }
}

async fn whip_events(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, Response> {
    let (past, rx) = {
        let calls = app
            .calls
            .lock()
            .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "Internal", "lock"))?;
        let entry = calls
            .get(&id)
            .ok_or_else(|| error(StatusCode::NOT_FOUND, "NotFound", "no such call"))?;
        let history = entry
            .history
            .lock()
            .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "Internal", "lock"))?;
        (history.clone(), entry.events.subscribe())
    };
    let live = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((line, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let lines = stream::iter(past).chain(live);
    Ok(Sse::new(lines.map(|l| Ok(Event::default().data(l)))).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
struct DtmfRequest {
    tones: String,
    #[serde(default = "default_duration")]
    duration: u32,
    #[serde(default = "default_gap")]
    gap: u32,
}

fn default_duration() -> u32 {
    touchtone::sender::DEFAULT_DURATION_MS
}

fn default_gap() -> u32 {
    touchtone::sender::DEFAULT_GAP_MS
}

async fn whip_dtmf(State(app): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let req: DtmfRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidJson",
                format!("expected {{\"tones\":\"123\",\"duration\":100,\"gap\":70}}: {e}"),
            );
        }
    };
    let control = app
        .calls
        .lock()
        .ok()
        .and_then(|c| c.get(&id).map(|e| e.control.clone()));
    let Some(control) = control else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such call");
    };
    match control.insert_dtmf(&req.tones, req.duration, req.gap).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"ok":true}"#,
        )
            .into_response(),
        Ok(Err(e @ DtmfError::InvalidCharacter { .. })) => {
            error(StatusCode::BAD_REQUEST, e.name(), e.to_string())
        }
        Ok(Err(e @ DtmfError::InvalidState)) => {
            error(StatusCode::CONFLICT, e.name(), e.to_string())
        }
        Err(_) => error(StatusCode::NOT_FOUND, "NotFound", "the call has ended"),
    }
}

async fn metrics(State(app): State<Shared>) -> Response {
    let (active, live_in, live_out) = match app.calls.lock() {
        Ok(calls) => calls.values().fold((0u64, 0u64, 0u64), |(n, i, o), e| {
            let s = e.control.stats();
            (
                n + 1,
                i + s.datagrams_in.load(Ordering::Relaxed),
                o + s.datagrams_out.load(Ordering::Relaxed),
            )
        }),
        Err(_) => (0, 0, 0),
    };
    let m = &app.metrics;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let body = format!(
        "# HELP touchtone_calls_active Calls in progress.\n# TYPE touchtone_calls_active gauge\ntouchtone_calls_active {active}\n\
         # HELP touchtone_calls_total Calls answered.\n# TYPE touchtone_calls_total counter\ntouchtone_calls_total {}\n\
         # HELP touchtone_calls_rejected_total Calls refused because --max-calls was reached.\n# TYPE touchtone_calls_rejected_total counter\ntouchtone_calls_rejected_total {}\n\
         # HELP touchtone_digits_received_total Key presses received (key-ups).\n# TYPE touchtone_digits_received_total counter\ntouchtone_digits_received_total {}\n\
         # HELP touchtone_datagrams_received_total UDP datagrams received by calls.\n# TYPE touchtone_datagrams_received_total counter\ntouchtone_datagrams_received_total {}\n\
         # HELP touchtone_datagrams_sent_total UDP datagrams sent by calls.\n# TYPE touchtone_datagrams_sent_total counter\ntouchtone_datagrams_sent_total {}\n\
         # HELP touchtone_errors_total Offers or calls that failed.\n# TYPE touchtone_errors_total counter\ntouchtone_errors_total {}\n",
        get(&m.calls_total),
        get(&m.calls_rejected),
        get(&m.digits),
        get(&m.datagrams_in) + live_in,
        get(&m.datagrams_out) + live_out,
        get(&m.errors),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
