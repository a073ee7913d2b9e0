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
    /// Smallest share of the power the two tones must hold over the whole tone at key-down (a longer,
    /// windowed look than a block's `min_purity`); 0 turns the check off.
    pub min_tone_purity: f32,
    /// Two tones within this relative distance of a 2:1, 3:2 or 5:3 frequency ratio are harmonics of one
    /// note (no digit's pair can be that close while within the accepted deviation); 0 turns it off.
    pub harmonic_ratio_tolerance: f32,
    /// How far (dB) the other harmonics of a common fundamental of the two tones must stay below the weaker
    /// tone (a voice's or an instrument's harmonic series); `f32::INFINITY` turns the check off.
    pub max_harmonic_db: f32,
    /// How far (dB) energy at twice each tone's frequency must stay below that tone; infinity turns it off.
    pub max_second_harmonic_db: f32,
    /// Largest change of either tone's frequency between the first and second halves of the tone at
    /// key-down, as a fraction of the frequency (vibrato, glides); infinity turns it off.
    pub max_frequency_spread: f32,
    /// Largest change (dB) of the twist between the start and the end of the tone at key-down (two voices
    /// swelling apart); infinity turns it off.
    pub max_twist_spread_db: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_level_dbm0: -42.0,
            max_normal_twist_db: 10.0,
            max_reverse_twist_db: 6.0,
            max_frequency_deviation: 0.017,
            min_purity: 0.7,
            min_group_separation_db: 6.0,
            min_hits: 5,
            max_misses: 6,
            min_tone_purity: 0.9,
            harmonic_ratio_tolerance: 0.008,
            max_harmonic_db: 20.0,
            max_second_harmonic_db: f32::INFINITY,
            max_frequency_spread: f32::INFINITY,
            max_twist_spread_db: 1.5,
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

/// Streaming DTMF detector for 8000, 16000, 44100 or 48000 Hz audio (rates are taken within 8000..=384000).
#[derive(Debug, Clone)]
pub struct Detector {
    rate: u32,
    n: usize,
    cfg: DetectorConfig,
    /// cos and -sin of each frequency at each sample of a half block: `[cos x8, -sin x8]` per sample.
    table: Vec<[f32; 16]>,
    /// Rotation of a half block's spectrum to the window start: e^{-j w half}, `[re x8, im x8]`.
    rotate: [f32; 16],
    /// The last `min_hits + 1` half blocks as 16-bit samples, a ring of slots; `slot` is being filled.
    ring: Vec<i16>,
    slot: usize,
    fill: usize,
    /// Hann window over the last `min_hits` half blocks, for the checks at key-down.
    hann: Vec<f32>,
    /// Hann window of half that length, for the steadiness checks.
    hann_sub: Vec<f32>,
    /// Scratch for the samples at key-down.
    scratch: Vec<f32>,
    /// Spectrum and power of the previous full half block, if any.
    prev: Option<([f32; 16], f32)>,
    /// Samples consumed before the previous half block.
    offset: u64,
    min_amp: f32,
    group_ratio: f32,
    state: State,
    events: VecDeque<DetectedDigit>,
    /// Whether the CPU has AVX2 and FMA (checked once).
    avx2: bool,
}

impl Detector {
    /// A detector for audio at `sample_rate` Hz with the default thresholds.
    pub fn new(sample_rate: u32) -> Self {
        Self::with_config(sample_rate, DetectorConfig::default())
    }

    /// A detector with explicit thresholds.
    pub fn with_config(sample_rate: u32, cfg: DetectorConfig) -> Self {
        let rate = sample_rate.clamp(8000, 384_000);
        // 102 samples at 8 kHz (12.75 ms), scaled to the rate; even, so halves are equal.
        let n = ((102 * u64::from(rate)).div_ceil(8000) as usize + 1) & !1;
        let angle = |f: f32, k: usize| TAU * f64::from(f) * k as f64 / f64::from(rate);
        let table = (0..n / 2)
            .map(|k| {
                let mut row = [0f32; 16];
                for (i, f) in FREQS.iter().enumerate() {
                    row[i] = angle(*f, k).cos() as f32;
                    row[8 + i] = -angle(*f, k).sin() as f32;
                }
                row
            })
            .collect();
        let slots = cfg.min_hits.max(1) as usize + 1;
        let window = (slots - 1) * (n / 2);
        let mut rotate = [0f32; 16];
        for (i, f) in FREQS.iter().enumerate() {
            rotate[i] = angle(*f, n / 2).cos() as f32;
            rotate[8 + i] = -angle(*f, n / 2).sin() as f32;
        }
        Detector {
            rate,
            n,
            cfg,
            table,
            rotate,
            ring: vec![0; slots * (n / 2)],
            slot: 0,
            fill: 0,
            hann: hann(window),
            hann_sub: hann(window / 2),
            scratch: vec![0.0; window],
            prev: None,
            offset: 0,
            min_amp: amplitude_for_dbm0(cfg.min_level_dbm0),
            group_ratio: 10f32.powf(-cfg.min_group_separation_db / 20.0),
            state: State::Idle,
            events: VecDeque::new(),
            avx2: has_avx2(),
        }
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Feeds samples as floats (full scale 1.0; analysed with 16-bit precision, as telephony audio is).
    pub fn process(&mut self, samples: &[f32]) {
        self.feed(samples, |out, inp| {
            for (o, s) in out.iter_mut().zip(inp) {
                *o = (s * 32768.0).clamp(-32768.0, 32767.0) as i16;
            }
        });
    }

    /// Feeds 16-bit PCM samples.
    pub fn process_i16(&mut self, samples: &[i16]) {
        self.feed(samples, |out, inp| out.copy_from_slice(inp));
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

    /// The digits in a whole recording of float samples (full scale 1.0), in the order they end: the
    /// samples, then the end of the stream. Digits already polled are not repeated.
    ///
    /// ```
    /// use touchtone::inband::{Detector, ToneGenerator};
    ///
    /// let mut g = ToneGenerator::new(8000).unwrap();
    /// g.push_tones("42#", 100, 100).unwrap();
    /// let mut samples = vec![0.0; g.remaining()];
    /// g.fill_f32(&mut samples);
    /// assert_eq!(Detector::new(8000).digits_in(&samples), "42#");
    /// ```
    pub fn digits_in(mut self, samples: &[f32]) -> String {
        self.process(samples);
        self.finish()
    }

    /// [`digits_in`](Self::digits_in) for 16-bit PCM samples.
    pub fn digits_in_i16(mut self, samples: &[i16]) -> String {
        self.process_i16(samples);
        self.finish()
    }

    /// Ends the stream and returns the digits of the key-ups not yet polled.
    fn finish(&mut self) -> String {
        self.flush();
        std::iter::from_fn(|| self.poll_event())
            .filter(|d| d.end)
            .map(|d| d.digit)
            .collect()
    }

    fn feed<T>(&mut self, mut samples: &[T], convert: impl Fn(&mut [i16], &[T])) {
        let half = self.n / 2;
        while !samples.is_empty() {
            let take = (half - self.fill).min(samples.len());
            let at = self.slot * half + self.fill;
            convert(&mut self.ring[at..at + take], &samples[..take]);
            self.fill += take;
            samples = &samples[take..];
            if self.fill == half {
                self.fill = 0;
                let cur = self.half_spectrum();
                if let Some(prev) = self.prev {
                    let hit = self.analyse(&prev, &cur);
                    self.step(hit, self.offset);
                    self.offset += half as u64;
                }
                self.prev = Some(cur);
                self.slot = (self.slot + 1) % (self.ring.len() / half);
            }
        }
    }

    /// The spectrum (at the eight frequencies, from the half block's own start) and power of the half block
    /// just filled.
    fn half_spectrum(&self) -> ([f32; 16], f32) {
        let half = self.n / 2;
        let buf = &self.ring[self.slot * half..(self.slot + 1) * half];
        #[cfg(target_arch = "x86_64")]
        {
            if self.avx2 {
                // SAFETY: the CPU was checked at construction for the features the function is compiled for.
                return unsafe { spectrum_avx2(buf, &self.table) };
            }
        }
        spectrum(buf, &self.table)
    }

    /// Looks for one DTMF digit in the block made of two half blocks.
    fn analyse(&self, prev: &([f32; 16], f32), cur: &([f32; 16], f32)) -> Option<Hit> {
        let power = prev.1 + cur.1;
        if power <= 0.0 {
            return None;
        }
        // The second half's spectrum, referred to the block's start.
        let (h1, c) = (&prev.0, &cur.0);
        let mut h2 = [0f32; 16];
        for i in 0..8 {
            let (r, j) = (self.rotate[i], self.rotate[8 + i]);
            h2[i] = c[i] * r - c[8 + i] * j;
            h2[8 + i] = c[i] * j + c[8 + i] * r;
        }
        let acc = [*h1, h2];
        // Squared magnitude of each frequency over the whole block; amplitudes only for the two peaks.
        let mut mag2 = [0f32; 8];
        for (i, m) in mag2.iter_mut().enumerate() {
            let re = acc[0][i] + acc[1][i];
            let im = acc[0][8 + i] + acc[1][8 + i];
            *m = re * re + im * im;
        }
        let (row, col) = (argmax(&mag2[..4]), 4 + argmax(&mag2[4..]));
        let scale = 2.0 / self.n as f32;
        let min_mag2 = (self.min_amp / scale) * (self.min_amp / scale);
        if mag2[row] < min_mag2 || mag2[col] < min_mag2 {
            return None;
        }
        // The cheap checks first (every check only rejects: the order changes no result): purity needs
        // the two peaks' amplitudes, the group screen the others, the twist a logarithm.
        let (ar, ac) = (mag2[row].sqrt() * scale, mag2[col].sqrt() * scale);
        let purity = (ar * ar + ac * ac) / 2.0 / (power / self.n as f32);
        if purity < self.cfg.min_purity {
            return None;
        }
        let mut amp = [0f32; 8];
        for (a, m) in amp.iter_mut().zip(&mag2) {
            *a = m.sqrt() * scale;
        }
        let sep = self.group_ratio;
        let group_ok = |range: std::ops::Range<usize>, peak: usize| {
            range
                .into_iter()
                .all(|i| i == peak || amp[i] < amp[peak] * sep)
        };
        if !group_ok(0..4, row) || !group_ok(4..8, col) {
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
        let mut deviation = [0f32; 2];
        for (d, i) in deviation.iter_mut().zip([row, col]) {
            // Phase advance between the halves gives the offset from the nominal frequency.
            let (r1, i1) = (acc[0][i], acc[0][8 + i]);
            let (r2, i2) = (acc[1][i], acc[1][8 + i]);
            let phase = (i2 * r1 - r2 * i1).atan2(r2 * r1 + i2 * i1);
            let offset_hz = phase * self.rate as f32 / (std::f32::consts::PI * self.n as f32);
            *d = offset_hz / FREQS[i];
            if d.abs() > 2.0 * self.cfg.max_frequency_deviation {
                return None;
            }
        }
        Some(Hit {
            digit: tone_at(row, col - 4)?,
            row,
            col,
            amplitude: ar + ac,
            twist_db,
            deviation,
        })
    }

    /// Advances the digit state machine with one block's result; `at` is the block's first sample.
    fn step(&mut self, hit: Option<Hit>, at: u64) {
        if hit.is_none() && self.state == State::Idle {
            return; // The common case between digits.
        }
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
                } else if self.within_limits(&track, hits + 1) && self.verify(&track, hits + 1) {
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

    /// The checks on the whole tone at key-down: whether the two tones are harmonics of one sound (a voice,
    /// an instrument) rather than a pair of independent sines, and whether they stay steady.
    fn verify(&mut self, track: &Track, hits: u32) -> bool {
        let cfg = self.cfg;
        let k = hits as f32;
        let fr = FREQS[track.row] * (1.0 + track.deviation_sum[0] / k);
        let fc = FREQS[track.col] * (1.0 + track.deviation_sum[1] / k);
        let ratio = fc / fr;
        let tol = cfg.harmonic_ratio_tolerance;
        if tol > 0.0
            && [(2.0, 1.0), (3.0, 2.0), (5.0, 3.0)]
                .iter()
                .any(|(p, q)| (ratio * q / p - 1.0).abs() < tol)
        {
            return false;
        }
        if cfg.min_tone_purity <= 0.0
            && !cfg.max_harmonic_db.is_finite()
            && !cfg.max_second_harmonic_db.is_finite()
            && !cfg.max_frequency_spread.is_finite()
            && !cfg.max_twist_spread_db.is_finite()
        {
            return true;
        }
        // The last `min_hits` half blocks (the tone covers them), in time order.
        let half = self.n / 2;
        let slots = self.ring.len() / half;
        for i in 0..slots - 1 {
            let s = (self.slot + 2 + i) % slots;
            let src = &self.ring[s * half..(s + 1) * half];
            for (d, x) in self.scratch[i * half..].iter_mut().zip(src) {
                *d = f32::from(*x);
            }
        }
        let x = &self.scratch;
        let rate = f64::from(self.rate);
        let (w, sub) = (&self.hann, &self.hann_sub);
        let amp = |f: f32| {
            let (re, im) = dft(x, w, f64::from(f) / rate);
            (re.hypot(im) * 4.0 / x.len() as f64) as f32
        };
        // Steadiness: three overlapping half-length windows (start, middle, end of the tone) give two
        // frequency estimates per tone (phase advance) and a twist at each end.
        let m = sub.len();
        let step = x.len().saturating_sub(m) / 2;
        if step > 0 && (cfg.max_frequency_spread.is_finite() || cfg.max_twist_spread_db.is_finite())
        {
            let mut mags = [[0f64; 2]; 2];
            for (t, f) in [fr, fc].into_iter().enumerate() {
                let cycles = f64::from(f) / rate;
                let z: Vec<(f64, f64)> = (0..3)
                    .map(|j| dft(&x[j * step..j * step + m], sub, cycles))
                    .collect();
                let advance = |a: (f64, f64), b: (f64, f64)| {
                    let d = (b.1 * a.0 - b.0 * a.1).atan2(b.0 * a.0 + b.1 * a.1)
                        - TAU * cycles * step as f64;
                    let d = d - TAU * (d / TAU).round();
                    d * rate / (TAU * step as f64)
                };
                let chirp = (advance(z[1], z[2]) - advance(z[0], z[1])).abs() / f64::from(f);
                if chirp > f64::from(cfg.max_frequency_spread) {
                    return false;
                }
                mags[0][t] = z[0].0.hypot(z[0].1);
                mags[1][t] = z[2].0.hypot(z[2].1);
            }
            let change = 20.0 * ((mags[1][1] * mags[0][0]) / (mags[1][0] * mags[0][1])).log10();
            if change.is_nan() || change.abs() > f64::from(cfg.max_twist_spread_db) {
                return false;
            }
        }
        let (ar, ac) = (amp(fr), amp(fc));
        let power = x.iter().zip(w).map(|(v, w)| (v * w) * (v * w)).sum::<f32>()
            / (x.len() as f32 * 3.0 / 8.0);
        if power <= 0.0 || (ar * ar + ac * ac) / 2.0 < cfg.min_tone_purity * power {
            return false;
        }
        let below = |a: f32, reference: f32, db: f32| a < reference * 10f32.powf(-db / 20.0);
        if cfg.max_second_harmonic_db.is_finite()
            && !(below(amp(2.0 * fr), ar, cfg.max_second_harmonic_db)
                && below(amp(2.0 * fc), ac, cfg.max_second_harmonic_db))
        {
            return false;
        }
        if cfg.max_harmonic_db.is_finite() {
            // A common fundamental: the tones are its q-th and p-th harmonics.
            for q in 1..=8u32 {
                let p = (ratio * q as f32).round() as u32;
                if p <= q || (ratio * q as f32 / p as f32 - 1.0).abs() > 0.01 {
                    continue;
                }
                let f0 = fr / q as f32;
                let weaker = ar.min(ac);
                let worst = (q.saturating_sub(2).max(1)..=p + 2)
                    .filter(|&h| h != p && h != q && f0 * (h as f32) < 3800.0)
                    .map(|h| amp(f0 * h as f32))
                    .fold(0.0, f32::max);
                if !below(worst, weaker, cfg.max_harmonic_db) {
                    return false;
                }
                break;
            }
        }
        true
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
    row: usize,
    col: usize,
    amplitude: f32,
    twist_db: f32,
    deviation: [f32; 2],
}

/// What the blocks of one digit add up to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Track {
    row: usize,
    col: usize,
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
            row: h.row,
            col: h.col,
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

/// The DFT of `x` weighted by `w` at `cycles` per sample: (re, im).
fn dft(x: &[f32], w: &[f32], cycles: f64) -> (f64, f64) {
    let (sin, cos) = (TAU * cycles).sin_cos();
    let (mut pr, mut pi) = (1f64, 0f64);
    let (mut re, mut im) = (0f64, 0f64);
    for (v, w) in x.iter().zip(w) {
        let y = f64::from(v * w);
        re += y * pr;
        im += y * pi;
        (pr, pi) = (pr * cos + pi * sin, pi * cos - pr * sin);
    }
    (re, im)
}

fn hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|k| (0.5 - 0.5 * (TAU * (k as f64 + 0.5) / len as f64).cos()) as f32)
        .collect()
}

/// Whether the CPU runs the AVX2/FMA build of the spectrum.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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

/// `spectrum` compiled for AVX2 and FMA: the same code, twice as wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn spectrum_avx2(buf: &[i16], table: &[[f32; 16]]) -> ([f32; 16], f32) {
    spectrum(buf, table)
}

/// The spectrum at the eight frequencies and the power of a half block of 16-bit samples, full scale 1.0.
#[inline(always)]
fn spectrum(buf: &[i16], table: &[[f32; 16]]) -> ([f32; 16], f32) {
    // Interleaved accumulator sets shorten the add dependency chains.
    const K: usize = 2;
    let mut a = [[0f32; 16]; K];
    let mut p = [0f32; K];
    let whole = buf.len() / K * K;
    for (x, t) in buf[..whole].chunks_exact(K).zip(table.chunks_exact(K)) {
        for k in 0..K {
            let xk = f32::from(x[k]);
            for i in 0..16 {
                a[k][i] += xk * t[k][i];
            }
            p[k] += xk * xk;
        }
    }
    for (x, t) in buf[whole..].iter().zip(&table[whole..]) {
        let x = f32::from(*x);
        for i in 0..16 {
            a[0][i] += x * t[i];
        }
        p[0] += x * x;
    }
    let mut acc = [0f32; 16];
    for (i, v) in acc.iter_mut().enumerate() {
        // Samples were summed at 16-bit scale: back to full scale 1.0.
        *v = (a[0][i] + a[1][i]) * (1.0 / 32768.0);
    }
    (acc, (p[0] + p[1]) * (1.0 / (32768.0 * 32768.0)))
}
