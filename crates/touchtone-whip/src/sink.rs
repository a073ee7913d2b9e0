//! Events to the application: every call's events go to each registered [`EventSink`] through its
//! own bounded queues, so a slow or dead destination never holds up a call (events that do not fit
//! are dropped and counted).
//!
//! A sink has one or more *lanes*: a call's events always go to the same lane and each lane delivers
//! one event at a time, so events of one call arrive in order while calls on other lanes go on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;
use tokio::sync::mpsc;

/// One call event on its way to the sinks.
#[derive(Debug, Clone)]
pub struct SinkEvent {
    /// The server instance that owns the call.
    pub instance: Arc<str>,
    /// The call's id.
    pub call: Arc<str>,
    /// The event's sequence number in the call (the SSE `id:`), from 0.
    pub seq: u64,
    /// The event's `type` (`state`, `negotiated`, `keydown`, `digit`, `tonechange`, `closed`, ...).
    pub kind: &'static str,
    /// The record sinks deliver: the SSE event's JSON object with `instance`, `call` and `seq` first.
    pub json: Arc<str>,
}

impl SinkEvent {
    /// The record for the SSE object `event` (which starts with `{"type":`) of call `call`.
    pub(crate) fn new(
        instance: Arc<str>,
        call: Arc<str>,
        seq: u64,
        kind: &'static str,
        event: &str,
    ) -> SinkEvent {
        // Digit records already name their call: it is not written twice. Only they are parsed: this
        // runs for every event, on the task that runs the call.
        let parsed = match event.contains("\"call\":") {
            true => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(event).ok(),
            false => None,
        };
        let event = match parsed {
            Some(mut fields) if fields.contains_key("call") => {
                fields.remove("call");
                serde_json::to_string(&fields).unwrap_or_else(|_| event.to_string())
            }
            _ => event.to_string(),
        };
        let rest = event.strip_prefix('{').unwrap_or(&event);
        let rest = if rest.trim_start().starts_with('}') {
            rest.trim_start().to_string()
        } else {
            format!(",{rest}")
        };
        let instance_json =
            serde_json::to_string(&*instance).unwrap_or_else(|_| "\"\"".to_string());
        let call_json = serde_json::to_string(&*call).unwrap_or_else(|_| "\"\"".to_string());
        let json =
            format!("{{\"instance\":{instance_json},\"call\":{call_json},\"seq\":{seq}{rest}");
        SinkEvent {
            instance,
            call,
            seq,
            kind,
            json: json.into(),
        }
    }
}

/// Why a sink could not deliver an event (after whatever retries it makes).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The destination answered with an HTTP status that is not success.
    #[error("the destination answered {0}")]
    Status(u16),
    /// The destination could not be reached or the transfer failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The destination did not answer in time.
    #[error("no answer within the timeout")]
    Timeout,
}

/// The future [`EventSink::deliver`] returns.
pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for call events: a webhook, a message bus, or an application's own.
pub trait EventSink: Send + Sync + 'static {
    /// A name for logs and the `sink` label of the metrics (no secrets in it).
    fn name(&self) -> String;
    /// Delivers one event, retrying as the destination needs; the next event of the lane waits.
    fn deliver<'a>(&'a self, event: &'a SinkEvent) -> DeliverFuture<'a>;
}

/// How a sink is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    /// Events waiting for the sink at most (split over the lanes); more are dropped and counted.
    pub queue: usize,
    /// Deliveries at once; a call's events always take the same lane, so they stay in order.
    pub lanes: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            queue: 4096,
            lanes: 4,
        }
    }
}

/// The counters of one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkMetrics {
    /// The sink's name.
    pub name: String,
    /// Events delivered.
    pub delivered: u64,
    /// Events given up after the sink's retries.
    pub failed: u64,
    /// Events dropped because the sink's queue was full (or the sink had stopped).
    pub dropped: u64,
    /// Events waiting in the queue or being delivered now.
    pub pending: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// A registered sink: its lanes' queues and counters.
pub(crate) struct SinkHandle {
    name: String,
    lanes: Vec<mpsc::Sender<SinkEvent>>,
    counters: Arc<Counters>,
}

impl SinkHandle {
    /// Starts the sink's lanes as tasks on the current Tokio runtime.
    pub fn spawn(sink: Arc<dyn EventSink>, options: SinkOptions) -> SinkHandle {
        let lanes = options.lanes.max(1);
        let per_lane = (options.queue / lanes).max(1);
        let counters = Arc::new(Counters::default());
        let name = sink.name();
        let senders = (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::channel(per_lane);
                tokio::spawn(run_lane(sink.clone(), rx, counters.clone()));
                tx
            })
            .collect();
        SinkHandle {
            name,
            lanes: senders,
            counters,
        }
    }

    /// Queues an event without waiting; counts it dropped when its lane is full.
    pub fn offer(&self, event: SinkEvent) {
        let lane = lane_of(&event.call, self.lanes.len());
        let c = &self.counters;
        c.queued.fetch_add(1, Ordering::Relaxed);
        if self.lanes[lane].try_send(event).is_err() {
            c.queued.fetch_sub(1, Ordering::Relaxed);
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn metrics(&self) -> SinkMetrics {
        let c = &self.counters;
        SinkMetrics {
            name: self.name.clone(),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            pending: c.queued.load(Ordering::Relaxed),
        }
    }
}

/// Which lane a call's events take (FNV-1a of its id).
fn lane_of(call: &str, lanes: usize) -> usize {
    let h = call.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % lanes as u64) as usize
}

/// Delivers a lane's events one at a time until the hub is gone.
async fn run_lane(
    sink: Arc<dyn EventSink>,
    mut rx: mpsc::Receiver<SinkEvent>,
    counters: Arc<Counters>,
) {
    while let Some(event) = rx.recv().await {
        match sink.deliver(&event).await {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "sink {}: event {} of call {} not delivered: {e}",
                    sink.name(),
                    event.seq,
                    event.call
                );
            }
        }
        counters.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_the_event_with_instance_call_and_seq() {
        let ev = SinkEvent::new(
            "a\"b".into(),
            "c0ffee".into(),
            7,
            "digit",
            r#"{"type":"digit","digit":"5"}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&ev.json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"instance":"a\"b","call":"c0ffee","seq":7,"type":"digit","digit":"5"})
        );
        // A record that names its call already does not get the key twice.
        let ev = SinkEvent::new(
            "a".into(),
            "c0ffee".into(),
            8,
            "digit",
            r#"{"type":"digit","digit":"5","call":"c0ffee"}"#,
        );
        assert_eq!(ev.json.matches("\"call\"").count(), 1, "{}", ev.json);
        let v: serde_json::Value = serde_json::from_str(&ev.json).unwrap();
        assert_eq!(v["digit"], "5");
        assert_eq!(v["seq"], 8);
        // An empty object stays valid JSON.
        let ev = SinkEvent::new("a".into(), "c".into(), 9, "x", "{}");
        serde_json::from_str::<serde_json::Value>(&ev.json).unwrap();
    }

    #[test]
    fn a_call_always_takes_the_same_lane_and_calls_spread() {
        assert_eq!(lane_of("abc", 4), lane_of("abc", 4));
        let used: std::collections::HashSet<_> =
            (0..64).map(|i| lane_of(&format!("{i:032x}"), 4)).collect();
        assert_eq!(used.len(), 4);
    }
}
