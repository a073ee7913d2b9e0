//! What a peer tells the application: state changes, tone changes of its sender, digits it received.

use std::time::{Duration, Instant};

/// Which state machine changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// Offer/answer (`have-local-offer`, `have-remote-offer`, `stable`).
    Signaling,
    /// ICE candidate gathering (`complete`: host candidates are known up front).
    IceGathering,
    /// ICE connectivity (`checking`, `connected`, `disconnected`, ...).
    IceConnection,
    /// The whole peer connection (`connecting`, `connected`, `closed`).
    Connection,
}

impl StateKind {
    /// The name used in logs and JSON (`signaling`, `ice-gathering`, `ice-connection`, `connection`).
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Signaling => "signaling",
            StateKind::IceGathering => "ice-gathering",
            StateKind::IceConnection => "ice-connection",
            StateKind::Connection => "connection",
        }
    }
}

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// DTMF tones detected in the received audio.
    Inband,
}

impl DigitSource {
    /// `"rfc4733"` or `"inband"`.
    pub fn name(self) -> &'static str {
        match self {
            DigitSource::Rfc4733 => "rfc4733",
            DigitSource::Inband => "inband",
        }
    }
}

/// A received key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitInfo {
    /// RFC 4733 event code.
    pub event: u8,
    /// The DTMF character, `None` for non-DTMF events.
    pub tone: Option<char>,
    /// How long the key was held (at key-down: so far).
    pub duration: Duration,
    /// When it was learnt.
    pub at: Instant,
    /// The RTP stream that carried it, if any.
    pub ssrc: Option<u32>,
    /// How it arrived.
    pub source: DigitSource,
    /// For an RFC 4733 key-up: whether an end packet, a newer event or the end timeout ended it.
    pub end_cause: Option<touchtone::EndCause>,
}

/// An event of a [`Peer`](crate::Peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A state machine moved to `state`.
    State {
        /// Which one.
        kind: StateKind,
        /// Its new state, as in the W3C API.
        state: &'static str,
    },
    /// A local ICE candidate (`addr udp host`).
    Candidate(String),
    /// The local DTMF sender's `tonechange`.
    ToneChange {
        /// The tone, `","` or `""` at the end.
        tone: &'static str,
        /// When it was due.
        at: Instant,
    },
    /// Offer/answer settled: the codec and the telephone-event (none: DTMF is unavailable on this call).
    Negotiated(crate::Negotiated),
    /// A remote key went down.
    KeyDown(DigitInfo),
    /// A remote key went up, with its duration.
    KeyUp(DigitInfo),
    /// The call ended.
    Closed,
}
