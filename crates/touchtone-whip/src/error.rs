//! Why a request to the endpoint or the [`Hub`](crate::Hub) failed. Every message is safe to show a
//! client: none quotes internal debug text.

use std::time::Duration;

use axum::http::StatusCode;
use thiserror::Error;

/// Why an offer was not answered.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The server is draining before a restart.
    #[error("the server is shutting down: try another one")]
    Draining,
    /// `max_calls` calls are running.
    #[error("at most {max} calls at once")]
    TooManyCalls {
        /// The limit.
        max: usize,
    },
    /// This client opened calls faster than its allowed rate.
    #[error("too many new calls from this client: retry in {} ms", retry_after.as_millis())]
    RateLimited {
        /// When the next call would be accepted.
        retry_after: Duration,
    },
    /// The SDP cannot be parsed or negotiated.
    #[error("{0}")]
    InvalidSdp(&'static str),
    /// The server ran out of descriptors, buffers or memory.
    #[error("the server is out of resources for another call")]
    ResourcesExhausted,
    /// Something else failed on the server.
    #[error("{0}")]
    Internal(&'static str),
}

impl OfferError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            OfferError::Draining
            | OfferError::TooManyCalls { .. }
            | OfferError::ResourcesExhausted => StatusCode::SERVICE_UNAVAILABLE,
            OfferError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            OfferError::InvalidSdp(_) => StatusCode::BAD_REQUEST,
            OfferError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error's name in JSON bodies.
    pub fn name(&self) -> &'static str {
        match self {
            OfferError::Draining => "Draining",
            OfferError::TooManyCalls { .. } => "TooManyCalls",
            OfferError::RateLimited { .. } => "TooManyRequests",
            OfferError::InvalidSdp(_) => "InvalidSdp",
            OfferError::ResourcesExhausted => "ResourcesExhausted",
            OfferError::Internal(_) => "CallFailed",
        }
    }

    /// Seconds a client should wait before it tries again, when waiting helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            OfferError::Draining | OfferError::TooManyCalls { .. } => Some(5),
            OfferError::ResourcesExhausted => Some(1),
            OfferError::RateLimited { retry_after } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        }
    }
}

/// Why the server could not dial into a call.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DtmfCallError {
    /// No call has that id.
    #[error("no such call")]
    NotFound,
    /// The call ended while the request was handled.
    #[error("the call has ended")]
    CallEnded,
    /// W3C `InvalidCharacterError`: a character that is not a tone.
    #[error("{0}")]
    InvalidCharacter(String),
    /// W3C `InvalidStateError`: DTMF cannot be sent on the call (not connected, or no telephone-event).
    #[error("DTMF cannot be sent on this call now")]
    InvalidState,
}

impl DtmfCallError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            DtmfCallError::NotFound | DtmfCallError::CallEnded => StatusCode::NOT_FOUND,
            DtmfCallError::InvalidCharacter(_) => StatusCode::BAD_REQUEST,
            DtmfCallError::InvalidState => StatusCode::CONFLICT,
        }
    }

    /// The error's name in JSON bodies: the W3C DOMException name where there is one.
    pub fn name(&self) -> &'static str {
        match self {
            DtmfCallError::NotFound | DtmfCallError::CallEnded => "NotFound",
            DtmfCallError::InvalidCharacter(_) => "InvalidCharacterError",
            DtmfCallError::InvalidState => "InvalidStateError",
        }
    }
}

/// Why a subscription to a call's events was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// No call has that id.
    #[error("no such call")]
    NotFound,
    /// The call has as many subscribers as allowed.
    #[error("at most {max} event subscribers per call")]
    TooManySubscribers {
        /// The limit.
        max: usize,
    },
}

/// No call has that id.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("no such call")]
pub struct NotFound;
