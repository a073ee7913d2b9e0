//! Everything that touches `touchtone-rtc`: answering an offer, the call's commands and events, and the
//! JSON schema of those events. Kept in one module so changes of the rtc API stay here.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use touchtone::{DigitRecord, DtmfError};
use touchtone_rtc::{
    Call, CallControl, DigitInfo, InsertDtmfError, NegotiationError, PeerConfig, PeerEvent,
    RtcError,
};

use crate::config::UdpMode;
use crate::error::{DtmfCallError, OfferError};

/// A call that answered an offer, not started yet.
pub(crate) struct Answered {
    /// The SDP answer.
    pub answer: String,
    call: Call,
}

impl Answered {
    /// Starts the call: each of its events goes to `on_line` as the JSON line of call `id`, on the
    /// task that runs the call, with `t_ms` counted from `start`. `on_line` is dropped when the call ends.
    pub fn start(
        self,
        start: Instant,
        id: Arc<str>,
        mut on_line: impl FnMut(Line) + Send + 'static,
    ) -> Control {
        Control(self.call.spawn_with_events(move |ev| {
            if let Some(line) = Line::of(&ev, start, &id) {
                on_line(line);
            }
        }))
    }
}

/// Creates a call on the shared port (or its own socket) and answers `sdp`.
pub(crate) async fn answer(
    udp: &UdpMode,
    peer: PeerConfig,
    idle_timeout: Duration,
    yield_window: Duration,
    inband_detect: bool,
    sdp: &str,
    record: Option<&Path>,
) -> Result<Answered, OfferError> {
    let peer = PeerConfig {
        inband_detect,
        ..peer
    };
    let mut call = match udp {
        UdpMode::Shared(endpoint) => endpoint.call(peer).map_err(bind_error)?,
        UdpMode::PerCall(ip) => Call::bind(*ip, peer).await.map_err(bind_error)?,
    };
    call.set_idle_timeout(idle_timeout);
    call.set_yield_window(yield_window);
    let answer = call
        .peer
        .accept_offer(Instant::now(), sdp)
        .map_err(offer_error)?;
    if let Some(path) = record
        && let Err(e) = call.record_to(path)
    {
        tracing::warn!("recording to {}: {e}", path.display());
    }
    Ok(Answered {
        answer: without_trickle(&answer),
        call,
    })
}

/// The answer without `a=ice-options:trickle`: candidates are all in the answer and `PATCH` (RFC 9725
/// section 4.3) is not implemented, so trickle must not be advertised.
fn without_trickle(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if let Some(options) = body.strip_prefix("a=ice-options:") {
            let kept: Vec<&str> = options
                .split(' ')
                .filter(|o| !o.is_empty() && *o != "trickle")
                .collect();
            if !kept.is_empty() {
                out.push_str("a=ice-options:");
                out.push_str(&kept.join(" "));
                out.push_str(&line[body.len()..]);
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Binding the UDP socket failed: out of descriptors, buffers or memory is the server being full (503).
fn bind_error(e: RtcError) -> OfferError {
    match e {
        RtcError::Io(io) => {
            tracing::debug!("binding a call's socket: {io}");
            match io.raw_os_error() {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: resources ran out.
                Some(24 | 23 | 105 | 12) => OfferError::ResourcesExhausted,
                _ if io.kind() == std::io::ErrorKind::OutOfMemory => OfferError::ResourcesExhausted,
                _ => OfferError::Internal("cannot bind the call's UDP socket"),
            }
        }
        other => {
            tracing::debug!("creating a call: {other}");
            OfferError::Internal("cannot create the call")
        }
    }
}

/// A refused offer, described without str0m's internal debug text.
fn offer_error(e: RtcError) -> OfferError {
    tracing::debug!("offer refused: {e}");
    let message = match &e {
        RtcError::Negotiation(NegotiationError::NoAudio) => "the offer has no audio m-line",
        RtcError::Negotiation(NegotiationError::NoCommonCodec) => {
            "the offer has no audio codec in common (opus, pcmu, pcma)"
        }
        RtcError::Sdp(_) => "the offer is not an SDP offer this server can parse",
        _ => "the offer could not be negotiated",
    };
    OfferError::InvalidSdp(message)
}

/// The command side of a running call.
#[derive(Clone)]
pub(crate) struct Control(CallControl);

impl Control {
    /// `insertDTMF` on the call's sender.
    pub async fn insert_dtmf(
        &self,
        tones: &str,
        duration_ms: u32,
        gap_ms: u32,
    ) -> Result<(), DtmfCallError> {
        match self.0.insert_dtmf(tones, duration_ms, gap_ms).await {
            Ok(()) => Ok(()),
            Err(InsertDtmfError::Dtmf(e @ DtmfError::InvalidCharacter { .. })) => {
                Err(DtmfCallError::InvalidCharacter(e.to_string()))
            }
            Err(InsertDtmfError::Dtmf(DtmfError::InvalidState)) => Err(DtmfCallError::InvalidState),
            Err(_) => Err(DtmfCallError::CallEnded),
        }
    }

    /// Hangs up.
    pub fn close(&self) {
        self.0.close();
    }

    /// Datagrams received and sent so far.
    pub fn datagrams(&self) -> (u64, u64) {
        let s = self.0.stats();
        (s.datagrams_in, s.datagrams_out)
    }

    /// The call's local UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        self.0.is_ended()
    }
}

/// One event of a call, ready for subscribers.
pub(crate) struct Line {
    /// The JSON object ([`EventLine`]).
    pub json: String,
    /// A key-up.
    pub is_digit: bool,
    /// The call ended.
    pub is_closed: bool,
    /// The event's `type`.
    pub kind: &'static str,
}

impl Line {
    /// Event `ev` of call `call` as a JSON line, `t_ms` counted from `start`; `None` for what
    /// subscribers are not told (candidates).
    fn of(ev: &PeerEvent, start: Instant, call: &str) -> Option<Line> {
        if matches!(ev, PeerEvent::Candidate(_)) {
            return None;
        }
        let line = EventLine::of("server", ev, start).in_call(call);
        let json = serde_json::to_string(&line).ok()?;
        Some(Line {
            json,
            kind: line.kind(),
            is_digit: matches!(ev, PeerEvent::KeyUp(_)),
            is_closed: *ev == PeerEvent::Closed,
        })
    }
}

/// Rounds milliseconds to a tenth, for stable output.
pub fn ms(x: f64) -> f64 {
    touchtone::record::round_ms(x)
}

/// The text of a received digit: its character, or `event N` for non-DTMF events.
pub fn digit_str(d: &DigitInfo) -> String {
    d.tone
        .map_or_else(|| format!("event {}", d.event), |c| c.to_string())
}

/// One call event as a JSON object: the server's event stream and `touchtone dial --format json`.
#[derive(Debug, Serialize)]
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
    /// An event this version does not describe further.
    Other {
        /// Milliseconds since the start.
        t_ms: f64,
        /// Which peer.
        peer: &'a str,
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
    /// The call ended.
    Closed {
        /// Milliseconds since the start.
        t_ms: f64,
        /// Which peer.
        peer: &'a str,
    },
    /// A remote key went up: the digit record (`docs/digit-record.md`), with `t_ms`, `peer`, `ssrc`
    /// and `end` (RFC 4733), and `call` on the server.
    #[serde(untagged)]
    Digit(DigitRecord),
}

impl<'a> EventLine<'a> {
    /// Every [`kind`](Self::kind) there is.
    pub const KINDS: [&'static str; 8] = [
        "state",
        "candidate",
        "tonechange",
        "negotiated",
        "other",
        "keydown",
        "digit",
        "closed",
    ];

    /// The `type` field: `state`, `candidate`, `tonechange`, `negotiated`, `other`, `keydown`,
    /// `digit` or `closed`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventLine::State { .. } => "state",
            EventLine::Candidate { .. } => "candidate",
            EventLine::Tonechange { .. } => "tonechange",
            EventLine::Negotiated { .. } => "negotiated",
            EventLine::Other { .. } => "other",
            EventLine::Keydown { .. } => "keydown",
            EventLine::Digit { .. } => "digit",
            EventLine::Closed { .. } => "closed",
        }
    }

    /// The line for a peer event, times relative to `start`.
    pub fn of(peer: &'a str, ev: &'a PeerEvent, start: Instant) -> Self {
        let t = |at: Instant| ms(at.saturating_duration_since(start).as_secs_f64() * 1000.0);
        let now = t(Instant::now());
        if let Some((kind, state)) = ev.state() {
            return EventLine::State {
                t_ms: now,
                peer,
                kind,
                state,
            };
        }
        match ev {
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
            PeerEvent::KeyUp(d) => {
                let mut r = d.record(start);
                r.peer = Some(peer.to_string());
                EventLine::Digit(r)
            }
            PeerEvent::Closed => EventLine::Closed { t_ms: now, peer },
            _ => EventLine::Other { t_ms: now, peer },
        }
    }

    /// The same line naming the call it belongs to (digit records carry `call`).
    pub fn in_call(mut self, call: &str) -> Self {
        if let EventLine::Digit(r) = &mut self {
            r.call = Some(call.to_string());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_the_json_type() {
        let lines = [
            EventLine::Closed {
                t_ms: 1.0,
                peer: "server",
            },
            EventLine::Keydown {
                t_ms: 1.0,
                digit: "5".into(),
                source: "rfc4733",
            },
            EventLine::Digit(touchtone::DigitRecord::new(
                5,
                touchtone::DigitSource::Inband,
                std::time::Duration::from_millis(1),
            )),
            EventLine::Tonechange {
                t_ms: 1.0,
                tone: "1",
            },
            EventLine::State {
                t_ms: 1.0,
                peer: "p",
                kind: "ice",
                state: "new",
            },
            EventLine::Other {
                t_ms: 1.0,
                peer: "p",
            },
            EventLine::Candidate {
                t_ms: 1.0,
                peer: "p",
                candidate: "c",
            },
        ];
        for line in lines {
            let v: serde_json::Value = serde_json::to_value(&line).unwrap();
            assert_eq!(v["type"], line.kind());
            assert!(EventLine::KINDS.contains(&line.kind()));
            assert!(
                serde_json::to_string(&line)
                    .unwrap()
                    .starts_with("{\"type\":")
            );
        }
    }

    #[test]
    fn trickle_is_not_advertised() {
        let sdp = "v=0\r\na=ice-options:trickle\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-options:trickle renomination\r\n";
        assert_eq!(
            without_trickle(sdp),
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-options:renomination\r\n"
        );
    }

    #[test]
    fn resource_errors_are_503_and_others_are_not() {
        let emfile = RtcError::Io(std::io::Error::from_raw_os_error(24));
        assert!(matches!(bind_error(emfile), OfferError::ResourcesExhausted));
        let other = RtcError::Io(std::io::Error::from_raw_os_error(99));
        assert!(matches!(bind_error(other), OfferError::Internal(_)));
    }

    #[test]
    fn refused_offers_never_quote_the_parser() {
        // A real parser error: str0m's text for it quotes a heap address.
        let mut peer = touchtone_rtc::Peer::new(
            std::time::Instant::now(),
            "127.0.0.1:9".parse().unwrap(),
            PeerConfig::default(),
        )
        .unwrap();
        let e = peer
            .accept_offer(std::time::Instant::now(), "v=0\r\nm=audio")
            .unwrap_err();
        assert!(matches!(e, RtcError::Sdp(_)), "{e}");
        let OfferError::InvalidSdp(m) = offer_error(e) else {
            panic!("not InvalidSdp");
        };
        assert!(!m.contains("0x7f"), "{m}");
    }
}
