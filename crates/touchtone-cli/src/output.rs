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

/// Prints one line of text to stdout (see [`write_line`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to stdout and flushes it. A closed pipe (`touchtone detect x.wav | head -1`) ends the
/// program quietly with status 0, as ripgrep does; any other write error ends it with status 2.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = result {
        stdout_failed(&e);
    }
}

/// Ends the program after stdout failed: quietly on a closed pipe, else with a message and status 2.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("touchtone: cannot write the output: {e}");
    std::process::exit(2);
}

/// Prints one JSON object on its own line to stdout.
pub fn json_line<T: Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(line) => write_line(format_args!("{line}")),
        Err(e) => eprintln!("touchtone: cannot encode an event: {e}"),
    }
}

/// Rounds milliseconds to a tenth, for stable output.
pub fn ms(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// What a negotiation settled on, in words: `opus/48000, telephone-event 110/48000 (0-15)`.
pub fn negotiated_str(n: &touchtone_rtc::Negotiated) -> String {
    let codec = format!("{}/{}", n.codec, n.codec.clock_rate());
    match (n.tele_pt, n.tele_clock_rate) {
        (Some(pt), Some(rate)) => {
            format!(
                "{codec}, telephone-event {}/{rate} ({})",
                *pt, n.tele_events
            )
        }
        _ => format!("{codec}, no telephone-event in common: DTMF unavailable"),
    }
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
    /// Offer/answer settled.
    Negotiated {
        /// Milliseconds since the start.
        t_ms: f64,
        /// Which peer.
        peer: &'a str,
        /// `opus`, `pcmu` or `pcma`.
        codec: String,
        /// The audio payload type.
        audio_pt: u8,
        /// The telephone-event payload type; `null`: DTMF unavailable on this call.
        telephone_event_pt: Option<u8>,
        /// Its clock rate in Hz.
        telephone_event_rate: Option<u32>,
        /// The events both sides support, as in SDP (`0-15`).
        telephone_events: String,
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
    /// An event this version does not describe further.
    Other {
        /// Milliseconds since the start.
        t_ms: f64,
        /// Which peer.
        peer: &'a str,
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
            PeerEvent::Signaling(_)
            | PeerEvent::IceGathering(_)
            | PeerEvent::IceConnection(_)
            | PeerEvent::Connection(_) => {
                let (kind, state) = ev.state().expect("a state change");
                EventLine::State {
                    t_ms: now,
                    peer,
                    kind,
                    state,
                }
            }
            PeerEvent::Candidate(c) => EventLine::Candidate {
                t_ms: now,
                peer,
                candidate: c,
            },
            PeerEvent::ToneChange { tone, at } => EventLine::Tonechange { t_ms: t(*at), tone },
            PeerEvent::Negotiated(n) => EventLine::Negotiated {
                t_ms: now,
                peer,
                codec: n.codec.to_string(),
                audio_pt: *n.audio_pt,
                telephone_event_pt: n.tele_pt.map(|p| *p),
                telephone_event_rate: n.tele_clock_rate,
                telephone_events: n.tele_events.to_string(),
            },
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
            _ => EventLine::Other { t_ms: now, peer },
        }
    }
}
