//! A streaming DTMF detector with ITU-T Q.24-style decision rules.
//!
//! Overlapping blocks (12.75 ms, hopped by half) are analysed at the eight Q.23 frequencies. A block counts
//! as a tone when one row and one column stand out: level, twist, purity (their share of all energy), no
//! second tone in either group, and a frequency measured from the phase advance between the block's halves
//! within tolerance. A digit needs several such blocks in a row; a short dropout does not end it.

use std::collections::VecDeque;
use std::f64::consts::TAU;

use super::amplitude_for_dbm0;
use crate::tone::tone_at;

const FREQS: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];

/// Decision thresholds of the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Minimum level of each tone, in dBm0.
    pub min_level_dbm0: f32,
    /// Largest normal twist (high group weaker than low group), in dB.
    pub max_normal_twist_db: f32,
    /// Largest reverse twist (high group stronger than low group), in dB.
    pub max_reverse_twist_db: f32,
    /// Largest relative frequency deviation accepted (0.025 = 2.5%).
    pub max_frequency_deviation: f32,
    /// Smallest share of the block's power the two tones must hold.
    pub min_purity: f32,
    /// How far (dB) any other tone of the same group must stay below the strongest.
    pub min_group_separation_db: f32,
    /// Consecutive tone blocks needed for a key-down.
    pub min_hits: u32,
    /// Consecutive blocks without the tone that end a digit.
    pub max_misses: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_level_dbm0: -42.0,
            max_normal_twist_db: 10.0,
            max_reverse_twist_db: 6.0,
            max_frequency_deviation: 0.025,
            min_purity: 0.55,
            min_group_separation_db: 6.0,
            min_hits: 5,
            max_misses: 6,
        }
    }
}

/// A digit found in audio: key-down when it is recognised, key-up with its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectedDigit {
    /// The DTMF character.
    pub digit: char,
    /// `false` for key-down, `true` for key-up.
    pub end: bool,
    /// Where the tone starts, in ms from the first sample fed.
    pub start_ms: f64,
    /// Where the tone ends, in ms (at key-down: where it has been heard up to so far).
    pub end_ms: f64,
}

impl DetectedDigit {
    /// The tone's length in ms.
    pub fn duration_ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    Candidate {
        digit: char,
        track: Track,
        hits: u32,
    },
    Active {
        digit: char,
        track: Track,
        misses: u32,
    },
    /// Enough blocks, but their average broke a limit: ignore this tone until it stops.
    Rejected {
        digit: char,
    },
}

/// Streaming DTMF detector for 8000, 16000, 44100 or 48000 Hz audio (any rate from 8000 up works).
#[derive(Debug, Clone)]
pub struct Detector {
    rate: u32,
    n: usize,
    hop: usize,
    cfg: DetectorConfig,
    /// cos and sin of each frequency at each sample of a block: `[cos x8, sin x8]` per sample.
    table: Vec<[f32; 16]>,
    buf: Vec<f32>,
    fill: usize,
    /// Samples consumed before `buf[0]`.
    offset: u64,
    min_amp: f32,
    state: State,
    events: VecDeque<DetectedDigit>,
}

impl Detector {
    /// A detector for audio at `sample_rate` Hz with the default thresholds.
    pub fn new(sample_rate: u32) -> Self {
        Self::with_config(sample_rate, DetectorConfig::default())
    }

    /// A detector with explicit thresholds.
    pub fn with_config(sample_rate: u32, cfg: DetectorConfig) -> Self {
        let rate = sample_rate.max(8000);
        // 102 samples at 8 kHz (12.75 ms), scaled to the rate; even, so halves are equal.
        let n = ((102 * u64::from(rate)).div_ceil(8000) as usize + 1) & !1;
        let table = (0..n)
            .map(|k| {
                let mut row = [0f32; 16];
                for (i, f) in FREQS.iter().enumerate() {
                    let w = TAU * f64::from(*f) * k as f64 / f64::from(rate);
                    row[i] = w.cos() as f32;
                    row[8 + i] = w.sin() as f32;
                }
                row
            })
            .collect();
        Detector {
            rate,
            n,
            hop: n / 2,
            cfg,
            table,
            buf: vec![0.0; n],
            fill: 0,
            offset: 0,
            min_amp: amplitude_for_dbm0(cfg.min_level_dbm0),
            state: State::Idle,
            events: VecDeque::new(),
        }
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Feeds samples as floats (full scale 1.0).
    pub fn process(&mut self, samples: &[f32]) {
        self.feed(samples.iter().copied());
    }

    /// Feeds 16-bit PCM samples.
    pub fn process_i16(&mut self, samples: &[i16]) {
        self.feed(samples.iter().map(|s| f32::from(*s) / 32768.0));
    }

    /// Ends the stream: a digit still sounding gets its key-up.
    pub fn flush(&mut self) {
        if let State::Active { digit, track, .. } = self.state {
            self.key_up(digit, &track);
        }
        self.state = State::Idle;
    }

    /// The next key-down or key-up, in order.
    pub fn poll_event(&mut self) -> Option<DetectedDigit> {
        self.events.pop_front()
    }

    fn feed(&mut self, samples: impl Iterator<Item = f32>) {
        for s in samples {
            self.buf[self.fill] = s;
            self.fill += 1;
            if self.fill == self.n {
                let hit = self.analyse();
                self.step(hit, self.offset);
                self.buf.copy_within(self.hop.., 0);
                self.fill -= self.hop;
                self.offset += self.hop as u64;
            }
        }
    }

    /// Looks for one DTMF digit in the current block.
    fn analyse(&self) -> Option<Hit> {
        let half = self.n / 2;
        let mut acc = [[0f32; 16]; 2];
        let mut power = 0f32;
        for (h, acc) in acc.iter_mut().enumerate() {
            let range = h * half..(h + 1) * half;
            for (x, t) in self.buf[range.clone()].iter().zip(&self.table[range]) {
                power += x * x;
                for i in 0..16 {
                    acc[i] += x * t[i];
                }
            }
        }
        if power <= 0.0 {
            return None;
        }
        // Amplitude estimate of each frequency over the whole block.
        let scale = 2.0 / self.n as f32;
        let mut amp = [0f32; 8];
        for (i, a) in amp.iter_mut().enumerate() {
            let re = acc[0][i] + acc[1][i];
            let im = acc[0][8 + i] + acc[1][8 + i];
            *a = (re * re + im * im).sqrt() * scale;
        }
        let (row, col) = (argmax(&amp[..4]), 4 + argmax(&amp[4..]));
        let (ar, ac) = (amp[row], amp[col]);

        if ar < self.min_amp || ac < self.min_amp {
            return None;
        }
        // Leakage between the two tones moves a single block's twist and frequency by about 1 dB and
        // 1%: blocks are screened loosely here, the digit's average is held to the limits.
        let twist_db = 20.0 * (ac / ar).log10();
        let slack = 3.0;
        if twist_db < -self.cfg.max_normal_twist_db - slack
            || twist_db > self.cfg.max_reverse_twist_db + slack
        {
            return None;
        }
        let purity = (ar * ar + ac * ac) / 2.0 / (power / self.n as f32);
        if purity < self.cfg.min_purity {
            return None;
        }
        let sep = 10f32.powf(-self.cfg.min_group_separation_db / 20.0);
        let group_ok = |range: std::ops::Range<usize>, peak: usize| {
            range
                .into_iter()
                .all(|i| i == peak || amp[i] < amp[peak] * sep)
        };
        if !group_ok(0..4, row) || !group_ok(4..8, col) {
            return None;
        }
        let mut deviation = [0f32; 2];
        for (d, i) in deviation.iter_mut().zip([row, col]) {
            // Phase advance between the halves gives the offset from the nominal frequency.
            let (r1, i1) = (acc[0][i], -acc[0][8 + i]);
            let (r2, i2) = (acc[1][i], -acc[1][8 + i]);
            let phase = (i2 * r1 - r2 * i1).atan2(r2 * r1 + i2 * i1);
            let offset_hz = phase * self.rate as f32 / (std::f32::consts::PI * self.n as f32);
            *d = offset_hz / FREQS[i];
            if d.abs() > 2.0 * self.cfg.max_frequency_deviation {
                return None;
            }
        }
        Some(Hit {
            digit: tone_at(row, col - 4)?,
            amplitude: ar + ac,
            twist_db,
            deviation,
        })
    }

    /// Advances the digit state machine with one block's result; `at` is the block's first sample.
    fn step(&mut self, hit: Option<Hit>, at: u64) {
        let n = self.n as f64;
        self.state = match (self.state, hit) {
            (State::Idle, None) => State::Idle,
            (State::Idle, Some(h)) => State::candidate(h, at),
            (State::Rejected { digit }, Some(h)) if h.digit == digit => State::Rejected { digit },
            (State::Rejected { .. }, Some(h)) => State::candidate(h, at),
            (State::Rejected { .. }, None) => State::Idle,
            (
                State::Candidate {
                    digit,
                    mut track,
                    hits,
                },
                Some(h),
            ) if h.digit == digit => {
                track.add(&h, at);
                if hits + 1 < self.cfg.min_hits {
                    State::Candidate {
                        digit,
                        track,
                        hits: hits + 1,
                    }
                } else if self.within_limits(&track, hits + 1) {
                    self.events.push_back(DetectedDigit {
                        digit,
                        end: false,
                        start_ms: self.ms(track.start(n)),
                        end_ms: self.ms(track.end(n)),
                    });
                    State::Active {
                        digit,
                        track,
                        misses: 0,
                    }
                } else {
                    State::Rejected { digit }
                }
            }
            (State::Candidate { .. }, Some(h)) => State::candidate(h, at),
            (State::Candidate { .. }, None) => State::Idle,
            (
                State::Active {
                    digit, mut track, ..
                },
                Some(h),
            ) if h.digit == digit => {
                track.add(&h, at);
                State::Active {
                    digit,
                    track,
                    misses: 0,
                }
            }
            (State::Active { digit, track, .. }, Some(h)) => {
                self.key_up(digit, &track);
                State::candidate(h, at)
            }
            (
                State::Active {
                    digit,
                    track,
                    misses,
                },
                None,
            ) => {
                if misses + 1 >= self.cfg.max_misses {
                    self.key_up(digit, &track);
                    State::Idle
                } else {
                    State::Active {
                        digit,
                        track,
                        misses: misses + 1,
                    }
                }
            }
        };
    }

    fn within_limits(&self, track: &Track, hits: u32) -> bool {
        let k = hits as f32;
        let twist = track.twist_sum / k;

        let dev = self.cfg.max_frequency_deviation;
        twist >= -self.cfg.max_normal_twist_db
            && twist <= self.cfg.max_reverse_twist_db
            && (track.deviation_sum[0] / k).abs() <= dev
            && (track.deviation_sum[1] / k).abs() <= dev
    }

    fn key_up(&mut self, digit: char, track: &Track) {
        let n = self.n as f64;
        self.events.push_back(DetectedDigit {
            digit,
            end: true,
            start_ms: self.ms(track.start(n)),
            end_ms: self.ms(track.end(n)),
        });
    }

    fn ms(&self, sample: f64) -> f64 {
        sample * 1000.0 / f64::from(self.rate)
    }
}

/// One block's finding.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hit {
    digit: char,
    amplitude: f32,
    twist_db: f32,
    deviation: [f32; 2],
}

/// What the blocks of one digit add up to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Track {
    first: u64,
    first_amplitude: f32,
    last: u64,
    last_amplitude: f32,
    max_amplitude: f32,
    twist_sum: f32,
    deviation_sum: [f32; 2],
}

impl Track {
    fn new(h: &Hit, at: u64) -> Self {
        Track {
            first: at,
            first_amplitude: h.amplitude,
            last: at,
            last_amplitude: h.amplitude,
            max_amplitude: h.amplitude,
            twist_sum: h.twist_db,
            deviation_sum: h.deviation,
        }
    }

    fn add(&mut self, h: &Hit, at: u64) {
        self.last = at;
        self.last_amplitude = h.amplitude;
        self.max_amplitude = self.max_amplitude.max(h.amplitude);
        self.twist_sum += h.twist_db;
        self.deviation_sum[0] += h.deviation[0];
        self.deviation_sum[1] += h.deviation[1];
    }

    /// The tone's first sample: a block's amplitude grows with the share of it the tone covers.
    fn start(&self, n: f64) -> f64 {
        let cover = f64::from(self.first_amplitude / self.max_amplitude).min(1.0);
        self.first as f64 + n * (1.0 - cover)
    }

    /// The sample after the tone's last.
    fn end(&self, n: f64) -> f64 {
        let cover = f64::from(self.last_amplitude / self.max_amplitude).min(1.0);
        self.last as f64 + n * cover
    }
}

impl State {
    fn candidate(h: Hit, at: u64) -> Self {
        State::Candidate {
            digit: h.digit,
            track: Track::new(&h, at),
            hits: 1,
        }
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
