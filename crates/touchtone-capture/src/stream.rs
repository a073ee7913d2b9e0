//! What the recording readers share: one in-band detector per picked channel, and the iterator that
//! reads a recording block by block and hands out the digits found before any error.

use std::collections::VecDeque;

use touchtone::inband::Detector;

use crate::digit::{WavDigit, WavOptions};

/// The channel asked for is not in the recording.
pub(crate) struct NoChannel {
    /// The channel asked for (0-based).
    pub channel: u16,
    /// How many the recording has.
    pub channels: u16,
}

/// One detector per picked channel, and the digits they reported that are not handed out yet.
pub(crate) struct DetectorBank {
    picked: Vec<u16>,
    detectors: Vec<Detector>,
    found: VecDeque<WavDigit>,
}

impl DetectorBank {
    /// Detectors at `rate` for the channels `options` picks out of `channels`.
    pub fn new(options: WavOptions, channels: u16, rate: u32) -> Result<Self, NoChannel> {
        let picked: Vec<u16> = match options.channel {
            Some(channel) if channel >= channels => {
                return Err(NoChannel { channel, channels });
            }
            Some(c) => vec![c],
            None => (0..channels).collect(),
        };
        Ok(DetectorBank {
            detectors: picked
                .iter()
                .map(|_| Detector::with_config(rate, options.config))
                .collect(),
            picked,
            found: VecDeque::new(),
        })
    }

    /// The picked channels (0-based).
    pub fn picked(&self) -> &[u16] {
        &self.picked
    }

    /// Each picked channel with its detector, to feed them a block.
    pub fn detectors(&mut self) -> impl Iterator<Item = (usize, &mut Detector)> {
        self.picked
            .iter()
            .map(|c| usize::from(*c))
            .zip(self.detectors.iter_mut())
    }

    /// Moves the digits the detectors finished to the queue.
    fn collect(&mut self) {
        for (det, ch) in self.detectors.iter_mut().zip(&self.picked) {
            while let Some(d) = det.poll_event() {
                if d.end {
                    self.found.push_back(WavDigit {
                        channel: *ch,
                        digit: d.digit,
                        start_ms: d.start_ms,
                        end_ms: d.end_ms,
                    });
                }
            }
        }
    }

    /// Ends every channel's stream: tones still sounding become digits.
    fn flush(&mut self) {
        for det in &mut self.detectors {
            det.flush();
        }
        self.collect();
    }
}

/// What reading the next block of a recording came to.
pub(crate) enum Block {
    /// Samples went to the detectors; `read` bytes of input are read so far, and `more` may follow.
    Fed {
        /// Bytes of input read so far, for the progress callback.
        read: u64,
        /// Whether the recording goes on.
        more: bool,
    },
    /// A block without samples for the detectors (another stream's packet, tags).
    Skipped,
    /// The recording ended without a block.
    End,
}

/// A recording read block by block.
pub(crate) trait BlockSource {
    /// Why it cannot be read (further).
    type Error;

    /// Reads the next block and feeds its picked channels to `bank`'s detectors.
    fn next_block(&mut self, bank: &mut DetectorBank) -> Result<Block, Self::Error>;
}

#[derive(Debug)]
pub(crate) enum Phase<E> {
    Running,
    Failed(E),
    Done,
}

/// The digits of a recording as an iterator: those found before an error come first, then the error.
pub(crate) struct DigitStream<S: BlockSource, P> {
    pub source: S,
    pub bank: DetectorBank,
    pub phase: Phase<S::Error>,
    progress: P,
}

impl<S: BlockSource> DigitStream<S, fn(u64)> {
    /// Digits of `source` by the detectors of `bank`, without progress reports.
    pub fn new(source: S, bank: DetectorBank) -> Self {
        DigitStream {
            source,
            bank,
            phase: Phase::Running,
            progress: |_| {},
        }
    }
}

impl<S: BlockSource, P> DigitStream<S, P> {
    /// The same stream, calling `progress` with the bytes read so far after every block of samples.
    pub fn with_progress<Q: FnMut(u64)>(self, progress: Q) -> DigitStream<S, Q> {
        DigitStream {
            source: self.source,
            bank: self.bank,
            phase: self.phase,
            progress,
        }
    }
}

impl<S: BlockSource, P: FnMut(u64)> Iterator for DigitStream<S, P> {
    type Item = Result<WavDigit, S::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(d) = self.bank.found.pop_front() {
                return Some(Ok(d));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Failed(e) => return Some(Err(e)),
                Phase::Running => match self.source.next_block(&mut self.bank) {
                    Ok(Block::Fed { read, more }) => {
                        self.bank.collect();
                        (self.progress)(read);
                        if more {
                            self.phase = Phase::Running;
                        } else {
                            self.bank.flush();
                        }
                    }
                    Ok(Block::Skipped) => self.phase = Phase::Running,
                    Ok(Block::End) => self.bank.flush(),
                    Err(e) => {
                        self.bank.flush();
                        self.phase = Phase::Failed(e);
                    }
                },
            }
        }
    }
}
