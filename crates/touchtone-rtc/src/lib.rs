//! A WebRTC peer that sends and receives DTMF: str0m in RTP mode carrying RFC 4733 telephone-events.
//!
//! [`Peer`] is sans-IO (datagrams and instants in, datagrams and events out); [`Call`] runs a peer on a
//! tokio UDP socket and gives an async handle to insert DTMF, read events and hang up.
//!
//! # Driving a `Peer`
//!
//! A peer never reads a clock or a socket. Its owner loops:
//!
//! - [`Peer::poll_transmit`]: send each [`Transmit`] (`contents` to `destination`) until `None`;
//! - [`Peer::handle_receive`]: feed each datagram that arrived, with its source and arrival instant;
//! - [`Peer::poll_timeout`]: sleep until then (or until a datagram comes), then
//!   [`Peer::handle_timeout`];
//! - [`Peer::poll_event`]: read what happened ([`PeerEvent`]: states, `tonechange`, key-down, key-up).
//!
//! Two peers in one thread, wired back to back in memory, with a simulated clock: the caller dials
//! `"1#"` and the callee hears both digits at 100 ms, in a few hundred simulated milliseconds and no
//! real time.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use touchtone_rtc::{Peer, PeerConfig, PeerEvent, Transmit};
//!
//! let mut now = Instant::now();
//! let mut a = Peer::new(now, "127.0.0.1:10000".parse().unwrap(), PeerConfig::default()).unwrap();
//! let mut b = Peer::new(now, "127.0.0.1:20000".parse().unwrap(), PeerConfig::default()).unwrap();
//! let offer = a.create_offer().unwrap(); // signaling is yours: SDP strings
//! let answer = b.accept_offer(now, &offer).unwrap();
//! a.accept_answer(now, &answer).unwrap();
//!
//! let mut digits = vec![];
//! let mut dialed = false;
//! let end = now + Duration::from_secs(10);
//! while now < end && digits.len() < 2 {
//!     // Every datagram each side has to send reaches the other at once.
//!     let mut moved = false;
//!     while let Some(Transmit { destination, contents }) = a.poll_transmit() {
//!         b.handle_receive(now, a.local_addr(), &contents).unwrap();
//!         assert_eq!(destination, b.local_addr());
//!         moved = true;
//!     }
//!     while let Some(Transmit { contents, .. }) = b.poll_transmit() {
//!         a.handle_receive(now, b.local_addr(), &contents).unwrap();
//!         moved = true;
//!     }
//!     // Nothing in flight: jump the clock to the next timer of either side.
//!     if !moved {
//!         now = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min().unwrap().max(now);
//!         a.handle_timeout(now).unwrap();
//!         b.handle_timeout(now).unwrap();
//!     }
//!     while a.poll_event().is_some() {}
//!     while let Some(ev) = b.poll_event() {
//!         if let PeerEvent::KeyUp(d) = ev {
//!             digits.push((d.tone, d.duration));
//!         }
//!     }
//!     if !dialed && a.can_insert_dtmf() {
//!         a.insert_dtmf(now, "1#", 100, 70).unwrap(); // W3C insertDTMF, once connected
//!         dialed = true;
//!     }
//! }
//! let ms100 = Duration::from_millis(100);
//! assert_eq!(digits, [(Some('1'), ms100), (Some('#'), ms100)]);
//! ```
//!
//! A real driver does the same with a socket and a timer; [`Call`] is that driver on tokio.

#![warn(missing_docs, missing_debug_implementations)]

pub mod audio;
pub mod call;
pub mod codec;
mod control;
mod dtls;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod negotiation;
pub mod peer;
mod port;
pub mod record;
mod udp;

pub use call::{Call, CallControl, CallHandle, CallStats};
pub use codec::{AudioCodec, Ptime};
pub use endpoint::{EndpointStats, UdpEndpoint};
pub use error::{InsertDtmfError, NegotiationError, RtcError};
pub use event::{
    ConnectionState, DigitInfo, DigitSource, IceConnectionState, IceGatheringState, PeerEvent,
    SignalingState,
};
pub use peer::{DurationClock, Negotiated, Peer, PeerConfig, Transmit, generate_certificate};
pub use record::{PcapngRecorder, RecordError, RtpRecord};
pub use str0m::config::DtlsCert;
pub use str0m::media::Direction;
