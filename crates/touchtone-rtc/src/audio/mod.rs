//! Audio codecs beyond G.711: Opus encoding for in-band tones and file audio, Opus decoding for the
//! in-band detector.
//!
//! G.711 is a table per sample and lives in the core (`touchtone::inband::g711`); Opus is libopus
//! through the `opus` crate (see [`opus`] for why).

pub mod opus;

pub use self::opus::{OPUS_BITRATE, OPUS_FRAME, OpusError, OpusReceiver, OpusSender, Upsampler};
