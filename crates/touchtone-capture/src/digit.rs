//! A digit heard in a recording, and how recordings are searched for digits (WAV and Ogg Opus alike).

use touchtone::inband::DetectorConfig;

/// How a recording is searched for digits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WavOptions {
    /// Only this channel (0-based); every channel when `None`.
    pub channel: Option<u16>,
    /// The detector's thresholds.
    pub config: DetectorConfig,
}

/// A digit heard in a recording (reported at its end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavDigit {
    /// The channel it was heard on (0-based).
    pub channel: u16,
    /// The DTMF character.
    pub digit: char,
    /// Where the tone starts, in ms from the start of the recording.
    pub start_ms: f64,
    /// Where it ends, in ms.
    pub end_ms: f64,
}

impl WavDigit {
    /// The tone's length in ms.
    pub fn duration_ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }

    /// The digit as a [`DigitRecord`](touchtone::DigitRecord) (the JSON digit record of
    /// `touchtone detect`): `start_ms`, `end_ms` and `channel`, source `inband`. A `digit` outside the
    /// DTMF alphabet (the detector never reports one) gets event code 255.
    pub fn record(&self) -> touchtone::DigitRecord {
        use touchtone::record::round_ms;
        let event = touchtone::tone::event_code(self.digit).unwrap_or(u8::MAX);
        let held = std::time::Duration::from_secs_f64(self.duration_ms().max(0.0) / 1000.0);
        let mut r = touchtone::DigitRecord::new(event, touchtone::DigitSource::Inband, held);
        r.digit = Some(self.digit);
        r.start_ms = Some(round_ms(self.start_ms));
        r.end_ms = Some(round_ms(self.end_ms));
        r.channel = Some(self.channel);
        r
    }
}
