//! A WHIP endpoint (RFC 9725) for DTMF calls, as an axum [`Router`] and a [`Hub`] handle.
//!
//! A browser or any WHIP client `POST`s an SDP offer; the server answers, hears the caller's DTMF
//! (RFC 4733 and in-band), streams it as Server-Sent Events, and can dial into the call itself.
//!
//! | request | answer |
//! |---|---|
//! | `POST /whip` (`application/sdp`) | `201` with the answer and `Location: /whip/{id}`; `400` bad SDP, `408` body too slow, `413` too large, `415` not SDP, `429` too many new calls from this client, `503` full, draining or out of resources (with `Retry-After`) |
//! | `DELETE /whip/{id}` | hangs up (`404` unknown) |
//! | `GET /whip/{id}/events[?types=digit,closed]` | SSE: each event has an `id:` (`types` keeps only those event types, ids unchanged); a reconnect with `Last-Event-ID` resumes after it; `event: lagged` (`{"missed":N}`) when events were dropped from the bounded history before this subscriber read them |
//! | `POST /whip/{id}/dtmf` (`{"tones":"123","duration":100,"gap":70}`) | `200`; `400 InvalidCharacterError`, `409 InvalidStateError`, `404` |
//! | `GET /healthz`, `GET /metrics` | `ok` (`503 draining` after [`Hub::drain`]); Prometheus counters |
//!
//! Events also go to the application: [`Hub::add_sink`] takes any [`EventSink`]; the crate has
//! [`webhook::Webhook`] (signed HTTP posts, feature `webhook`) and [`nats::NatsBridge`] (events on
//! NATS subjects and commands by request/reply, feature `nats`). With
//! [`WhipConfig::public_url`] the `Location` is absolute, for many servers behind one load balancer.
//!
//! Merge the router into an application's own axum server, and keep the hub to act on calls:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use touchtone_whip::{ServerLimits, WhipConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let (whip, hub) = touchtone_whip::router(WhipConfig { max_calls: 20, ..WhipConfig::default() });
//! let app = Router::new()
//!     .route("/", get(|| async { "my voice bot" }))
//!     .merge(whip);
//! // Dial into every call that is up, from anywhere in the application:
//! tokio::spawn(async move {
//!     for call in hub.list() {
//!         let _ = hub.insert_dtmf(&call.id, "1234#", 100, 70).await;
//!     }
//! });
//! // A listener whose accept queue holds a burst of offers (`TcpListener::bind` works too).
//! let listener = touchtone_whip::listen("127.0.0.1:8080".parse().unwrap())?;
//! // `axum::serve(listener, app)` works too; this one adds header timeouts and connection caps, and
//! // gives handlers the client address for the per-client call rate.
//! touchtone_whip::serve(listener, app, ServerLimits::default(), std::future::pending()).await;
//! # Ok(())
//! # }
//! ```
//!
//! With plain `axum::serve`, use `app.into_make_service_with_connect_info::<SocketAddr>()` so the
//! per-client rate of new calls applies.

#![warn(missing_docs)]

mod config;
mod cors;
mod error;
mod events;
mod http;
mod hub;
mod limits;
mod lock;
mod metrics;
#[cfg(feature = "nats")]
pub mod nats;
mod rtc;
mod server;
mod sink;
#[cfg(feature = "webhook")]
pub mod webhook;

use axum::Router;

pub use config::{UdpMode, WhipConfig};
pub use error::{DtmfCallError, NotFound, OfferError, SubscribeError};
pub use events::{CallEvent, Subscription};
pub use hub::{Answer, CallInfo, Hub};
pub use limits::CallRate;
pub use metrics::MetricsSnapshot;
pub use rtc::{EventLine, digit_str, ms};
pub use server::{LISTEN_BACKLOG, ServerLimits, listen, serve};
pub use touchtone_rtc::{Ptime, UdpEndpoint};

/// The README's examples, compiled and run as doc tests (with `touchtone` and `touchtone-rtc`, which this
/// crate depends on).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The digit record's page (docs/digit-record.md), its example compiled and run.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/digit-record.md")]
struct DigitRecordDoctests;
pub use sink::{DeliverFuture, EventSink, SinkError, SinkEvent, SinkMetrics, SinkOptions};

/// The endpoint's routes and the hub behind them.
pub fn router(config: WhipConfig) -> (Router, Hub) {
    let hub = Hub::new(config);
    (http::routes(hub.clone()), hub)
}
