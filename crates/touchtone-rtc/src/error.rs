//! Errors of the WebRTC peer and of a running call.

use thiserror::Error;
use touchtone::DtmfError;

/// Why a peer operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RtcError {
    /// The SDP could not be read.
    #[error("SDP: {0}")]
    Sdp(#[from] str0m::error::SdpError),
    /// Offer and answer have nothing usable in common, or come out of order.
    #[error("SDP: {0}")]
    Negotiation(#[from] NegotiationError),
    /// A local ICE candidate was refused.
    #[error("ICE candidate: {0}")]
    Candidate(#[from] str0m::error::IceError),
    /// str0m reported an error.
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// The Opus encoder or decoder could not be set up.
    #[error("{0}")]
    Opus(#[from] crate::audio::OpusError),
    /// Socket I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The call task is gone.
    #[error("the call has ended")]
    CallEnded,
}

/// What offer/answer could not agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The offer has no enabled audio m-line.
    #[error("the offer has no audio m-line")]
    NoAudio,
    /// None of the offered audio codecs is Opus, PCMU or PCMA.
    #[error("the offer has no audio codec in common (opus, pcmu, pcma)")]
    NoCommonCodec,
    /// An answer arrived with no offer of ours pending.
    #[error("no offer is pending")]
    NoPendingOffer,
    /// Nothing could be offered.
    #[error("nothing to offer")]
    NothingToOffer,
}

/// Why `insert_dtmf` on a running call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InsertDtmfError {
    /// The W3C algorithm refused it (`InvalidStateError`, `InvalidCharacterError`).
    #[error(transparent)]
    Dtmf(#[from] DtmfError),
    /// The call has ended.
    #[error("the call has ended")]
    CallEnded,
}

impl InsertDtmfError {
    /// The W3C DOMException name, or `"CallEnded"`.
    pub fn name(&self) -> &'static str {
        match self {
            InsertDtmfError::Dtmf(e) => e.name(),
            InsertDtmfError::CallEnded => "CallEnded",
        }
    }
}
