//! A WebRTC peer that sends and receives DTMF: str0m in RTP mode carrying RFC 4733 telephone-events.
//!
//! [`Peer`] is sans-IO (datagrams and instants in, datagrams and events out); [`Call`] runs a peer on a
//! tokio UDP socket and gives an async handle to insert DTMF, read events and hang up.

#![warn(missing_docs, missing_debug_implementations)]

pub mod audio;
pub mod call;
pub mod codec;
pub mod error;
pub mod event;
pub mod negotiation;
pub mod peer;
pub mod record;

pub use call::{Call, CallControl, CallHandle, CallStats};
pub use codec::AudioCodec;
pub use error::{InsertDtmfError, NegotiationError, RtcError};
pub use event::{
    ConnectionState, DigitInfo, DigitSource, IceConnectionState, IceGatheringState, PeerEvent,
    SignalingState,
};
pub use peer::{DurationClock, Negotiated, Peer, PeerConfig, Transmit};
pub use record::{PcapngRecorder, RecordError, RtpRecord};
pub use str0m::media::Direction;
