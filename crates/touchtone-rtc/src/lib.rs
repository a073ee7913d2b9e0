//! A WebRTC peer that sends and receives DTMF: str0m in RTP mode carrying RFC 4733 telephone-events.
//!
//! [`Peer`] is sans-IO (datagrams and instants in, datagrams and events out); [`Call`] runs a peer on a
//! tokio UDP socket and gives an async handle to insert DTMF, read events and hang up.

#![warn(missing_docs)]

pub mod call;
pub mod codec;
pub mod error;
pub mod event;
pub mod negotiation;
pub mod peer;
pub mod record;

pub use call::{Call, CallControl, CallHandle, CallStats};
pub use codec::AudioCodec;
pub use error::RtcError;
pub use event::{DigitInfo, DigitSource, PeerEvent, StateKind};
pub use peer::{DurationClock, Negotiated, Peer, PeerConfig};
pub use record::{PcapngRecorder, RecordError, RtpRecord};
pub use str0m::media::Direction;
