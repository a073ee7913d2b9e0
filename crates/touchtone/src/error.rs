//! Typed errors of the DTMF sender and of RFC 4733 payload parsing.

use thiserror::Error;

/// Why `insert_dtmf` refused a request; the names match the W3C DOMException names.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    /// DTMF cannot be sent now (not connected, stopped, no track, wrong direction or no telephone-event codec).
    #[error("InvalidStateError: DTMF cannot be sent on this sender now")]
    InvalidState,
    /// The tone string holds a character outside `0-9 A-D a-d # * ,`.
    #[error("InvalidCharacterError: {character:?} at index {index} is not a DTMF tone")]
    InvalidCharacter {
        /// The first character that is not a tone.
        character: char,
        /// Its position in the string, counted in characters.
        index: usize,
    },
}

impl DtmfError {
    /// The W3C DOMException name of this error (`"InvalidStateError"` or `"InvalidCharacterError"`).
    pub fn name(&self) -> &'static str {
        match self {
            DtmfError::InvalidState => "InvalidStateError",
            DtmfError::InvalidCharacter { .. } => "InvalidCharacterError",
        }
    }
}

/// Why an RFC 4733 telephone-event payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// The payload is shorter than the 4 bytes of one event.
    #[error("telephone-event payload too short: {len} bytes, need 4")]
    TooShort {
        /// How many bytes there were.
        len: usize,
    },
}

/// Why the event list of a telephone-event `a=fmtp` line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventSetError {
    /// An item is neither a number nor a `first-last` range.
    #[error("telephone-event list: {0:?} is not an event code or range")]
    Syntax(String),
    /// A range whose first code is above its last.
    #[error("telephone-event list: range {0:?} runs backwards")]
    Reversed(String),
}

/// Why a datagram could not be read as an RTP packet (RFC 3550 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet too short: {len} bytes, need 12")]
    TooShort {
        /// How many bytes there were.
        len: usize,
    },
    /// The version field is not 2.
    #[error("not RTP: version {0}, need 2")]
    Version(u8),
    /// The packet type is an RTCP one (200-204 with the marker bit, RFC 5761 section 4).
    #[error("an RTCP packet (type {0}), not RTP")]
    Rtcp(u8),
    /// The CSRC list or the header extension runs past the end of the packet.
    #[error("RTP header longer than the packet ({len} bytes)")]
    HeaderOverrun {
        /// How many bytes there were.
        len: usize,
    },
    /// The padding count is larger than the payload.
    #[error("RTP padding of {padding} bytes in a payload of {payload}")]
    Padding {
        /// The padding count from the last byte.
        padding: u8,
        /// The payload bytes before padding was removed.
        payload: usize,
    },
}
