//! Output formats shared by the subcommands: human text or JSON Lines.

use std::io::Write;

use std::time::Instant;

use serde::Serialize;
use touchtone_rtc::{DigitInfo, PeerEvent};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// JSON Lines: one object per event.
    Json,
}

/// Prints one JSON object on its own line to stdout.
pub fn json_line<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, value).is_ok() {
        let _ = writeln!(out);
        let _ = out.flush();
    }
}

/// Rounds milliseconds to a tenth, for stable output.
pub fn ms(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The text of a received digit: its character, or `event N` for non-DTMF events.
pub fn digit_str(d: &DigitInfo) -> String {
    d.tone
        .map_or_else(|| format!("event {}", d.event), |c| c.to_string())
}

/// One call event as a JSON object, the same for `dial --format json` and the server's event stream.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventLine<'a> {
    /// A state machine changed.
    State {
        /// Milliseconds since the start.
        t_ms: f64,
        /// Which peer.
        peer: &'a str,
        /// Which state machine.
        kind: &'a str,
        /// Its new state.
        state: &'a str,
    },
    /// A local ICE candidate.
    Candidate {
        /// Milliseconds since the start.
        t_ms: f64,
        /// Which peer.
        peer: &'a str,
        /// The candidate.
        candidate: &'a str,
    },
    /// The local sender's `tonechange`.
    Tonechange {
        /// When it was due, in ms since the start.
        t_ms: f64,
        /// The tone, `","` or `""`.
        tone: &'a str,
    },
    /// A remote key went down.
    Keydown {
        /// Milliseconds since the start.
        t_ms: f64,
        /// The key.
        digit: String,
        /// `rfc4733` or `inband`.
        source: &'a str,
    },
    /// A remote key went up.
    Digit {
        /// The key.
        digit: String,
        /// How long it was held.
        duration_ms: f64,
        /// `rfc4733` or `inband`.
        source: &'a str,
        /// Milliseconds since the start.
        t_ms: f64,
    },
    /// The call ended.
    Closed {
        /// Milliseconds since the start.
        t_ms: f64,
        /// Which peer.
        peer: &'a str,
    },
}

impl<'a> EventLine<'a> {
    /// The line for a peer event, times relative to `start`.
    pub fn of(peer: &'a str, ev: &'a PeerEvent, start: Instant) -> Self {
        let t = |at: Instant| ms(at.saturating_duration_since(start).as_secs_f64() * 1000.0);
        let now = t(Instant::now());
        match ev {
            PeerEvent::State { kind, state } => EventLine::State {
                t_ms: now,
                peer,
                kind: kind.name(),
                state,
            },
            PeerEvent::Candidate(c) => EventLine::Candidate {
                t_ms: now,
                peer,
                candidate: c,
            },
            PeerEvent::ToneChange { tone, at } => EventLine::Tonechange { t_ms: t(*at), tone },
            PeerEvent::KeyDown(d) => EventLine::Keydown {
                t_ms: t(d.at),
                digit: digit_str(d),
                source: d.source.name(),
            },
            PeerEvent::KeyUp(d) => EventLine::Digit {
                digit: digit_str(d),
                duration_ms: ms(d.duration.as_secs_f64() * 1000.0),
                source: d.source.name(),
                t_ms: t(d.at),
            },
            PeerEvent::Closed => EventLine::Closed { t_ms: now, peer },
        }
    }
}
