//! Counters of the endpoint and their Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sink::SinkMetrics;

/// Counters kept by the hub.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub calls_total: AtomicU64,
    /// Calls whose task has ended and left the book.
    pub calls_ended: AtomicU64,
    pub calls_rejected: AtomicU64,
    pub digits: AtomicU64,
    pub errors: AtomicU64,
    /// Datagrams of calls that have ended.
    pub datagrams_in: AtomicU64,
    /// Datagrams of calls that have ended.
    pub datagrams_out: AtomicU64,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The endpoint's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Calls in progress.
    pub calls_active: u64,
    /// Calls answered.
    pub calls_total: u64,
    /// Calls refused because `max_calls` was reached.
    pub calls_rejected: u64,
    /// Key presses received (key-ups).
    pub digits_received: u64,
    /// UDP datagrams received by calls.
    pub datagrams_received: u64,
    /// UDP datagrams sent by calls.
    pub datagrams_sent: u64,
    /// Offers or calls that failed.
    pub errors: u64,
    /// Datagrams at the shared UDP port that matched no call (0 with a port per call).
    pub port_unroutable: u64,
    /// Turns of the shared port's tasks that began more than 50 ms late: the server falls behind.
    pub port_stalls: u64,
    /// Each event sink's counters.
    pub sinks: Vec<SinkMetrics>,
}

impl MetricsSnapshot {
    /// The Prometheus text exposition (`GET /metrics`).
    pub fn to_prometheus(&self) -> String {
        let rows: [(&str, &str, &str, u64); 9] = [
            (
                "touchtone_calls_active",
                "gauge",
                "Calls in progress.",
                self.calls_active,
            ),
            (
                "touchtone_calls_total",
                "counter",
                "Calls answered.",
                self.calls_total,
            ),
            (
                "touchtone_calls_rejected_total",
                "counter",
                "Calls refused because --max-calls was reached.",
                self.calls_rejected,
            ),
            (
                "touchtone_digits_received_total",
                "counter",
                "Key presses received (key-ups).",
                self.digits_received,
            ),
            (
                "touchtone_datagrams_received_total",
                "counter",
                "UDP datagrams received by calls.",
                self.datagrams_received,
            ),
            (
                "touchtone_datagrams_sent_total",
                "counter",
                "UDP datagrams sent by calls.",
                self.datagrams_sent,
            ),
            (
                "touchtone_errors_total",
                "counter",
                "Offers or calls that failed.",
                self.errors,
            ),
            (
                "touchtone_port_unroutable_total",
                "counter",
                "Datagrams at the shared UDP port that matched no call.",
                self.port_unroutable,
            ),
            (
                "touchtone_port_stalls_total",
                "counter",
                "Turns of the UDP port's tasks that began more than 50 ms late (the server falls behind).",
                self.port_stalls,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
        if !self.sinks.is_empty() {
            type Family = (&'static str, &'static str, fn(&SinkMetrics) -> u64);
            let families: [Family; 4] = [
                (
                    "touchtone_sink_delivered_total",
                    "Events delivered by the sink.",
                    |m| m.delivered,
                ),
                (
                    "touchtone_sink_failed_total",
                    "Events the sink gave up on after its retries.",
                    |m| m.failed,
                ),
                (
                    "touchtone_sink_dropped_total",
                    "Events dropped because the sink's queue was full.",
                    |m| m.dropped,
                ),
                (
                    "touchtone_sink_pending",
                    "Events queued for the sink or being delivered.",
                    |m| m.pending,
                ),
            ];
            for (name, help, value) in families {
                let kind = if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                };
                let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
                for m in &self.sinks {
                    let label = m.name.replace('\\', "\\\\").replace('"', "\\\"");
                    let _ = writeln!(out, "{name}{{sink=\"{label}\"}} {}", value(m));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_counters_are_labelled_by_sink() {
        let snap = MetricsSnapshot {
            sinks: vec![SinkMetrics {
                name: "webhook http://h/\"x\"".into(),
                delivered: 3,
                failed: 1,
                dropped: 2,
                pending: 0,
            }],
            ..MetricsSnapshot::default()
        };
        let text = snap.to_prometheus();
        assert!(
            text.contains(
                "touchtone_sink_delivered_total{sink=\"webhook http://h/\\\"x\\\"\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE touchtone_sink_dropped_total counter\n"));
        assert!(
            text.contains("touchtone_sink_failed_total{sink=\"webhook http://h/\\\"x\\\"\"} 1\n")
        );
        assert!(text.contains("# TYPE touchtone_sink_pending gauge\n"));
        assert!(!MetricsSnapshot::default().to_prometheus().contains("sink"));
    }
}
