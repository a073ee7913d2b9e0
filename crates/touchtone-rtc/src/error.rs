//! Errors of the WebRTC peer.

use thiserror::Error;

/// Why a peer operation failed.
#[derive(Debug, Error)]
pub enum RtcError {
    /// The SDP could not be parsed or negotiated.
    #[error("SDP: {0}")]
    Sdp(String),
    /// A local ICE candidate was refused.
    #[error("ICE candidate: {0}")]
    Candidate(String),
    /// str0m reported an error.
    #[error("WebRTC: {0}")]
    Rtc(String),
    /// Socket I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The call task is gone.
    #[error("the call has ended")]
    CallEnded,
}
