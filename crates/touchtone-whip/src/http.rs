//! The HTTP side: routes, request checks, error bodies.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::events::CallEvent;
use crate::hub::Hub;

/// The endpoint's routes on `hub` (see the crate docs for the list).
pub fn routes(hub: Hub) -> Router {
    let whip = Router::new()
        .route("/whip", post(offer))
        .route("/whip/{id}", delete(hang_up))
        .route("/whip/{id}/events", get(events))
        .route("/whip/{id}/dtmf", post(dtmf))
        .route_layer(axum::middleware::from_fn_with_state(
            hub.clone(),
            require_token,
        ));
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(whip)
        .with_state(hub.clone());
    match crate::cors::layer(&hub.config().allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// A JSON error body: `{"error": name, "message": message}`.
pub(crate) fn error(status: StatusCode, name: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": name, "message": message.to_string() });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Whether the request's `Content-Type` is `expected` (parameters such as `charset` allowed).
fn has_media_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Over the limit (announced or received).
    TooLarge(usize),
    /// Not all there within the body read timeout.
    Timeout,
    /// The connection failed while reading.
    Aborted,
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            BodyError::TooLarge(limit) => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the body is over {limit} bytes"),
            ),
            BodyError::Timeout => error(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                "the body did not arrive in time",
            ),
            BodyError::Aborted => error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the body could not be read",
            ),
        }
    }
}

/// Reads a request body of at most `max_body` bytes within `body_read_timeout`. A `Content-Length`
/// over the limit is refused before anything is read (and before `100 Continue` is sent).
async fn read_body(hub: &Hub, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, BodyError> {
    let cfg = hub.config();
    let limit = cfg.max_body;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let read = async {
        let mut out = Vec::new();
        let mut frames = body.into_data_stream();
        while let Some(chunk) = frames.next().await {
            let chunk = chunk.map_err(|_| BodyError::Aborted)?;
            if out.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    tokio::time::timeout(cfg.body_read_timeout, read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

/// `Authorization: Bearer <token>` when a token is configured (RFC 9725 section 4.5). Event streams
/// may carry it as `?access_token=` instead (RFC 6750 section 2.3), as `EventSource` cannot set headers.
async fn require_token(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    let Some(token) = hub.config().token.as_deref() else {
        return next.run(req).await;
    };
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let from_query = (req.method() == Method::GET)
        .then(|| req.uri().query())
        .flatten()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
        .map(percent_decode);
    let given = from_header
        .map(|h| h.as_bytes().to_vec())
        .or(from_query)
        .unwrap_or_default();
    if constant_time_eq(&given, token.as_bytes()) {
        return next.run(req).await;
    }
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "this endpoint needs Authorization: Bearer <token>",
    );
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Decodes `%XX` escapes of a query value (other bytes are kept as they are).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Compares without stopping at the first difference, so the time taken does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

async fn healthz(State(hub): State<Hub>) -> Response {
    if hub.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics(State(hub): State<Hub>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        hub.metrics().to_prometheus(),
    )
        .into_response()
}

async fn offer(State(hub): State<Hub>, req: Request) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    if !has_media_type(&parts.headers, "application/sdp") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the offer must be application/sdp",
        );
    }
    let body = match read_body(&hub, &parts.headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidSdp",
            "the offer is not UTF-8",
        );
    };
    match hub.offer(sdp, client).await {
        Ok(answer) => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp".to_string()),
                (header::LOCATION, hub.location(&answer.id)),
            ],
            answer.sdp,
        )
            .into_response(),
        Err(e) => {
            let mut resp = error(e.status(), e.name(), &e);
            if let Some(secs) = e.retry_after() {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
    }
}

/// The call id in a request's path. An id that is not text (percent-encoding that is not UTF-8) names
/// no call: it gets the JSON 404 of any unknown id, not axum's plain-text 400.
struct CallId(String);

impl<S: Send + Sync> FromRequestParts<S> for CallId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(CallId(id)),
            Err(_) => Err(error(StatusCode::NOT_FOUND, "NotFound", crate::NotFound)),
        }
    }
}

async fn hang_up(State(hub): State<Hub>, CallId(id): CallId) -> Response {
    match hub.hang_up(&id) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, "NotFound", e),
    }
}

/// The query of `GET /whip/{id}/events`.
#[derive(Deserialize)]
struct EventsQuery {
    /// Comma-separated event types to send (all when absent).
    types: Option<String>,
}

/// The event types a subscriber asked for in `types` (`None`: all), or what is wrong with it.
fn event_types(types: Option<&str>) -> Result<Option<Vec<&'static str>>, String> {
    let Some(types) = types else {
        return Ok(None);
    };
    let mut wanted = Vec::new();
    for t in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match crate::EventLine::KINDS.iter().find(|k| **k == t) {
            Some(k) => wanted.push(*k),
            None => {
                return Err(format!(
                    "unknown event type {t:?} (expected some of {})",
                    crate::EventLine::KINDS.join(", ")
                ));
            }
        }
    }
    if wanted.is_empty() {
        return Err("types names no event type".into());
    }
    Ok(Some(wanted))
}

/// The `type` of an event object (`{"type":"digit",...}`).
fn event_type(json: &str) -> Option<&str> {
    let rest = json.strip_prefix(r#"{"type":""#)?;
    rest.split_once('"').map(|(t, _)| t)
}

async fn events(
    State(hub): State<Hub>,
    CallId(id): CallId,
    query: Result<Query<EventsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    // A query serde cannot read (`types` given twice) is the API's JSON 400, as a wrong type name is.
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidQuery", e.body_text()),
    };
    let wanted = match event_types(query.types.as_deref()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidQuery", e),
    };
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let sub = match hub.subscribe(&id, last_seen) {
        Ok(s) => s,
        Err(e @ crate::SubscribeError::NotFound) => {
            return error(StatusCode::NOT_FOUND, "NotFound", e);
        }
        Err(e) => {
            let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, "TooManySubscribers", e);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(5));
            return resp;
        }
    };
    let stream = sub
        .into_stream()
        .filter(move |ev| {
            let keep = match (&wanted, ev) {
                (Some(wanted), CallEvent::Event { json, .. }) => {
                    event_type(json).is_some_and(|t| wanted.contains(&t))
                }
                _ => true,
            };
            std::future::ready(keep)
        })
        .map(|ev| {
            Ok::<_, Infallible>(match ev {
                CallEvent::Event { id, json } => Event::default().id(id.to_string()).data(&*json),
                CallEvent::Lagged { missed } => Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{missed}}}")),
            })
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The body of a DTMF command (HTTP and NATS).
#[derive(Deserialize)]
pub(crate) struct DtmfRequest {
    pub tones: String,
    #[serde(default = "default_duration")]
    pub duration: u32,
    #[serde(default = "default_gap")]
    pub gap: u32,
}

fn default_duration() -> u32 {
    touchtone::sender::DEFAULT_DURATION_MS
}

fn default_gap() -> u32 {
    touchtone::sender::DEFAULT_GAP_MS
}

async fn dtmf(State(hub): State<Hub>, CallId(id): CallId, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match read_body(&hub, &parts.headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req: DtmfRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidJson",
                format!(
                    "expected {{\"tones\":\"123\",\"duration\":100,\"gap\":70}} ({})",
                    json_problem(&e)
                ),
            );
        }
    };
    match hub
        .insert_dtmf(&id, &req.tones, req.duration, req.gap)
        .await
    {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"ok":true}"#,
        )
            .into_response(),
        Err(e) => error(e.status(), e.name(), &e),
    }
}

/// What kind of JSON problem, without quoting the input.
fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "wrong fields",
        serde_json::error::Category::Eof => "truncated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_media_type_allows_parameters_only() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(has_media_type(&h("application/sdp"), "application/sdp"));
        assert!(has_media_type(
            &h("Application/SDP ; charset=utf-8"),
            "application/sdp"
        ));
        assert!(!has_media_type(&h("application/sdpx"), "application/sdp"));
        assert!(!has_media_type(&h("text/plain"), "application/sdp"));
        assert!(!has_media_type(&HeaderMap::new(), "application/sdp"));
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Bb%3d%zz%"), b"a+b=%zz%");
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret2", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
