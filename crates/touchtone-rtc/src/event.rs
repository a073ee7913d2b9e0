//! What a peer tells the application: state changes, tone changes of its sender, digits it received.

use std::time::{Duration, Instant};

/// The offer/answer state, as the W3C `signalingState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignalingState {
    /// No offer/answer exchange in progress.
    Stable,
    /// Our offer awaits the remote's answer.
    HaveLocalOffer,
    /// The remote's offer is being answered.
    HaveRemoteOffer,
}

/// ICE candidate gathering, as the W3C `iceGatheringState` (host candidates are known up front).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IceGatheringState {
    /// Every local candidate is known.
    Complete,
}

/// ICE connectivity, as the W3C `iceConnectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IceConnectionState {
    /// No checks yet.
    New,
    /// Checking candidate pairs.
    Checking,
    /// A pair works.
    Connected,
    /// Checks are done and a pair works.
    Completed,
    /// The working pair stopped answering.
    Disconnected,
}

/// The whole connection, as the W3C `connectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// ICE and DTLS are being set up.
    Connecting,
    /// ICE and DTLS are up: media and DTMF flow.
    Connected,
    /// The connection could not be set up or is gone (a DTLS handshake that gave up, a certificate
    /// that does not match the SDP's fingerprint, nothing heard for the idle timeout); the call ends.
    Failed,
    /// The call was hung up, by either side.
    Closed,
}

macro_rules! state_names {
    ($ty:ty, $kind:literal, $($variant:ident => $name:literal),+ $(,)?) => {
        impl $ty {
            /// The W3C name of the state (`"connected"`, `"have-local-offer"`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }

            /// The name of the state machine in logs and JSON.
            pub const KIND: &'static str = $kind;
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

state_names!(SignalingState, "signaling",
    Stable => "stable", HaveLocalOffer => "have-local-offer", HaveRemoteOffer => "have-remote-offer");
state_names!(IceGatheringState, "ice-gathering", Complete => "complete");
state_names!(IceConnectionState, "ice-connection",
    New => "new", Checking => "checking", Connected => "connected", Completed => "completed",
    Disconnected => "disconnected");
state_names!(ConnectionState, "connection",
    Connecting => "connecting", Connected => "connected", Failed => "failed", Closed => "closed");

pub use touchtone::DigitSource;

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

impl DigitInfo {
    /// The key press as a [`DigitRecord`](touchtone::DigitRecord) (the JSON digit record): `t_ms` is
    /// [`at`](Self::at) counted from `start`, with the SSRC and end cause when known.
    pub fn record(&self, start: Instant) -> touchtone::DigitRecord {
        let mut r = touchtone::DigitRecord::new(self.event, self.source, self.duration);
        r.t_ms = Some(touchtone::record::millis(
            self.at.saturating_duration_since(start),
        ));
        r.ssrc = self.ssrc;
        r.end = self.end_cause;
        r
    }
}

/// An event of a [`Peer`](crate::Peer).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The offer/answer state changed.
    Signaling(SignalingState),
    /// ICE gathering changed.
    IceGathering(IceGatheringState),
    /// ICE connectivity changed.
    IceConnection(IceConnectionState),
    /// The connection changed.
    Connection(ConnectionState),
    /// A local ICE candidate (`addr udp host`).
    Candidate(String),
    /// Offer/answer settled: the codec and the telephone-event (none: DTMF is unavailable on this call).
    Negotiated(crate::Negotiated),
    /// The local DTMF sender's `tonechange`.
    ToneChange {
        /// The tone, `","` or `""` at the end.
        tone: &'static str,
        /// When it was due.
        at: Instant,
    },
    /// A remote key went down.
    KeyDown(DigitInfo),
    /// A remote key went up, with its duration.
    KeyUp(DigitInfo),
    /// The call ended.
    Closed,
}

impl PeerEvent {
    /// For a state change: the state machine's name and its new state (`("connection", "connected")`).
    pub fn state(&self) -> Option<(&'static str, &'static str)> {
        match self {
            PeerEvent::Signaling(s) => Some((SignalingState::KIND, s.as_str())),
            PeerEvent::IceGathering(s) => Some((IceGatheringState::KIND, s.as_str())),
            PeerEvent::IceConnection(s) => Some((IceConnectionState::KIND, s.as_str())),
            PeerEvent::Connection(s) => Some((ConnectionState::KIND, s.as_str())),
            _ => None,
        }
    }
}
