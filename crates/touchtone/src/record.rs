//! One key press as a record: the JSON object every Touchtone tool and the server emit for a digit
//! (`touchtone dial`, `detect` and `pcap` with `--format json`, and the server's `digit` events). The
//! schema, with an example per tool, is `docs/digit-record.md`.
//!
//! The type is plain data here; with the `serde` feature it serializes to (and parses from) that JSON:
//!
//! ```
//! use std::time::Duration;
//! use touchtone::record::{DigitRecord, DigitSource};
//!
//! let mut r = DigitRecord::new(5, DigitSource::Rfc4733, Duration::from_millis(100));
//! r.start_ms = Some(1234.0);
//! r.ssrc = Some(0x1234_5678);
//! assert_eq!(r.digit, Some('5'));
//! # #[cfg(feature = "serde")]
//! assert_eq!(
//!     serde_json::to_string(&r).unwrap(),
//!     r#"{"type":"digit","v":1,"digit":"5","event":5,"source":"rfc4733","duration_ms":100.0,"start_ms":1234.0,"ssrc":305419896}"#
//! );
//! ```

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::receiver::EndCause;

/// The schema version this crate writes in [`DigitRecord::v`].
pub const VERSION: u32 = 1;

/// How a key press was carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum DigitSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// DTMF tones detected in audio.
    Inband,
}

impl DigitSource {
    /// `"rfc4733"` or `"inband"`, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            DigitSource::Rfc4733 => "rfc4733",
            DigitSource::Inband => "inband",
        }
    }
}

impl std::fmt::Display for DigitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One key press (reported at key-up), with the context the reporting tool has.
///
/// Times are milliseconds rounded to a tenth. Which times are present depends on the tool:
///
/// | tool | times |
/// |---|---|
/// | `touchtone detect` | `start_ms`, `end_ms`: where the tone starts and ends in the recording |
/// | `touchtone pcap` | `start_ms`: capture time of the event's first packet, from the first UDP datagram |
/// | calls (`dial`, the server) | `t_ms`: when the key-up was learnt, from the start of the call (`dial`: of the command) |
///
/// The context fields (`channel`, `ssrc` ... `peer`) are `None` when the tool does not know them, and are
/// then left out of the JSON.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DigitRecord {
    /// `"type": "digit"`, checked when parsing.
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    kind: Kind,
    /// The schema version, [`VERSION`].
    pub v: u32,
    /// The DTMF character (`0-9`, `*`, `#`, `A-D`); `None` (JSON `null`) for event codes beyond 15.
    pub digit: Option<char>,
    /// The RFC 4733 event code (0-9, `*` 10, `#` 11, `A-D` 12-15, other telephony events above).
    pub event: u8,
    /// How it was carried.
    pub source: DigitSource,
    /// How long the key was held, in ms.
    pub duration_ms: f64,
    /// When the key went down, in ms.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub start_ms: Option<f64>,
    /// When the key went up, in ms.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub end_ms: Option<f64>,
    /// When the key-up was reported, in ms.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub t_ms: Option<f64>,
    /// The audio channel it was heard on (0-based): `detect`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub channel: Option<u16>,
    /// The RTP stream's synchronisation source (a JSON number): RFC 4733 digits.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub ssrc: Option<u32>,
    /// The telephone-event payload type: `pcap`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub pt: Option<u8>,
    /// The telephone-event clock rate in Hz: `pcap`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub rate: Option<u32>,
    /// The stream's source address (`"10.0.0.1:4000"`, `"[2001:db8::1]:4000"`): `pcap`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub src: Option<SocketAddr>,
    /// The stream's destination address: `pcap`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub dst: Option<SocketAddr>,
    /// What ended an RFC 4733 key press: `"end-packet"`, `"next-event"` or `"timeout"`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub end: Option<EndCause>,
    /// The call's id: the server.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub call: Option<String>,
    /// Which peer heard it: `"server"`, or `dial`'s `"receiver"` and `"caller"`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub peer: Option<String>,
}

/// The record type: only digits so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
enum Kind {
    Digit,
}

impl DigitRecord {
    /// A record of event `event` held for `duration`, with no times or context yet.
    pub fn new(event: u8, source: DigitSource, duration: Duration) -> Self {
        DigitRecord {
            kind: Kind::Digit,
            v: VERSION,
            digit: crate::tone::tone_for_event(event),
            event,
            source,
            duration_ms: millis(duration),
            start_ms: None,
            end_ms: None,
            t_ms: None,
            channel: None,
            ssrc: None,
            pt: None,
            rate: None,
            src: None,
            dst: None,
            end: None,
            call: None,
            peer: None,
        }
    }

    /// The digit as text: its character, or `event N` for codes without one.
    pub fn digit_str(&self) -> String {
        self.digit
            .map_or_else(|| format!("event {}", self.event), |c| c.to_string())
    }
}

impl EndCause {
    /// `"end-packet"`, `"next-event"` or `"timeout"`, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            EndCause::EndPacket => "end-packet",
            EndCause::NewEvent => "next-event",
            EndCause::Timeout => "timeout",
        }
    }
}

/// Milliseconds rounded to a tenth, for stable output.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// A duration in milliseconds, rounded to a tenth.
pub fn millis(d: Duration) -> f64 {
    round_ms(d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digit_follows_the_event_code() {
        let r = DigitRecord::new(11, DigitSource::Inband, Duration::from_micros(99_960));
        assert_eq!((r.digit, r.duration_ms, r.v), (Some('#'), 100.0, 1));
        let flash = DigitRecord::new(16, DigitSource::Rfc4733, Duration::ZERO);
        assert_eq!(flash.digit, None);
        assert_eq!(flash.digit_str(), "event 16");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_round_trip_and_absent_fields() {
        let mut r = DigitRecord::new(16, DigitSource::Rfc4733, Duration::from_millis(40));
        r.end = Some(EndCause::NewEvent);
        r.src = Some("[2001:db8::1]:4000".parse().unwrap());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"type":"digit","v":1,"digit":null,"event":16,"source":"rfc4733","duration_ms":40.0,"src":"[2001:db8::1]:4000","end":"next-event"}"#
        );
        assert_eq!(serde_json::from_str::<DigitRecord>(&json).unwrap(), r);
        // Another record type is refused.
        let other = json.replace(r#""type":"digit""#, r#""type":"keydown""#);
        assert!(serde_json::from_str::<DigitRecord>(&other).is_err());
    }
}
