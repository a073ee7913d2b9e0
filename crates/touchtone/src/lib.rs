//! Touchtone: DTMF for WebRTC calls, as a sans-IO core.
//!
//! - [`DtmfSender`]: the W3C `RTCDTMFSender` (`insertDTMF`, `toneBuffer`, `tonechange`), emitting
//!   RFC 4733 telephone-event packets ([`EventPacket`]).
//! - [`DtmfReceiver`]: RFC 4733 packets in, key-down / key-up [`DigitEvent`]s out.
//! - [`inband`]: DTMF as audio, ITU-T Q.23 synthesis and a Q.24-grade detector.
//! - [`DigitRecord`]: one key press as the JSON record every tool emits (`serde` feature to serialize it).
//!
//! Nothing here reads a clock or does I/O: every time-dependent call takes `now: Instant`, state machines
//! expose `handle_*`, `poll_*` and `poll_timeout`, so one thread can drive thousands of calls and every timing
//! rule can be tested with a simulated clock.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use touchtone::{DtmfReceiver, DtmfSender, RtpInfo};
//!
//! let mut now = Instant::now();
//! let mut tx = DtmfSender::new(48_000);
//! let mut rx = DtmfReceiver::new(48_000);
//! tx.set_can_send(true);
//! tx.insert_dtmf(now, "12", 100, 70).unwrap();
//! let mut digits = String::new();
//! let mut seq = 0u16;
//! while let Some(t) = tx.poll_timeout() {
//!     now = now.max(t);
//!     tx.handle_timeout(now);
//!     while let Some(p) = tx.poll_packet() {
//!         seq = seq.wrapping_add(1);
//!         let rtp = RtpInfo { ssrc: 7, sequence: seq, timestamp: p.timestamp, marker: p.marker };
//!         rx.handle_packet(now, rtp, &p.payload.to_bytes()).unwrap();
//!     }
//! }
//! while let Some(d) = rx.poll_event() {
//!     if d.is_end() {
//!         assert_eq!(d.duration(), Duration::from_millis(100));
//!         digits.push(d.tone().unwrap());
//!     }
//! }
//! assert_eq!(digits, "12");
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod event_set;
pub mod inband;
pub mod packetizer;
pub mod receiver;
pub mod record;
pub mod sender;
pub mod telephone_event;
pub mod tone;

pub use error::{DtmfError, EventSetError, PayloadError, RtpError};
pub use event_set::EventSet;
pub use packetizer::EventPacket;
pub use receiver::{DigitEvent, DtmfReceiver, EndCause, ReceiverStats, RtpInfo};
pub use record::{DigitRecord, DigitSource};
pub use sender::{DtmfSender, ToneChange};
pub use telephone_event::TelephoneEvent;
