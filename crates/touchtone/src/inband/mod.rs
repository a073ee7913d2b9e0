//! DTMF as audio: ITU-T Q.23 tone synthesis and a Q.24-grade detector, sans-IO and allocation-free per sample.

mod detector;
pub mod g711;
mod generator;

pub use detector::{DetectedDigit, Detector, DetectorConfig};
pub use generator::{GeneratorError, ToneGenerator};

/// The level in dBm0 of a full-scale sine (G.711, ITU-T G.711 table: +3.14 dBm0).
#[allow(clippy::approx_constant)] // G.711 full scale, not pi.
pub const FULL_SCALE_DBM0: f32 = 3.14;

/// Peak amplitude (full scale = 1.0) of a sine at `dbm0`.
pub fn amplitude_for_dbm0(dbm0: f32) -> f32 {
    10f32.powf((dbm0 - FULL_SCALE_DBM0) / 20.0)
}

/// Level in dBm0 of a sine whose peak amplitude is `amplitude` (full scale = 1.0).
pub fn dbm0_for_amplitude(amplitude: f32) -> f32 {
    20.0 * amplitude.max(1e-12).log10() + FULL_SCALE_DBM0
}
