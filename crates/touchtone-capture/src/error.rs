//! Typed errors of the capture and WAV readers.

use thiserror::Error;

/// Why a capture could not be read (further).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input holds no bytes.
    #[error("empty input: not a capture file")]
    Empty,
    /// The input starts with neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (unknown magic number)")]
    NotACapture,
    /// The input ends inside a header or block.
    #[error("truncated capture: the file ends inside a block")]
    Truncated,
    /// A block that cannot be parsed.
    #[error("invalid capture: a damaged block after byte {offset}")]
    Malformed {
        /// Bytes read before the block.
        offset: u64,
    },
    /// A block longer than the reader holds, most likely a damaged length.
    #[error("invalid capture: a block larger than {max} bytes")]
    BlockTooLarge {
        /// The largest block read.
        max: usize,
    },
    /// A pcapng packet names an interface its section did not describe.
    #[error("invalid pcapng: packet on undeclared interface {0}")]
    UndeclaredInterface(u32),
    /// A pcapng interface's `if_tsresol` is out of range.
    #[error("invalid pcapng: timestamp resolution {0:#04x}")]
    TimestampResolution(u8),
    /// Reading the input failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a WAV stream could not be read (further).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WavError {
    /// The input holds no bytes.
    #[error("empty input: not a WAV file")]
    Empty,
    /// No RIFF/WAVE header.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// The input ends inside the header, a chunk, or before the samples its header announces.
    #[error("truncated WAV: {0}")]
    Truncated(Truncation),
    /// A header field out of range.
    #[error("invalid WAV: {0}")]
    Invalid(String),
    /// A well-formed file in a format that is not read.
    #[error("unsupported WAV: {0}")]
    Unsupported(String),
    /// The channel asked for is not in the file.
    #[error("no channel {channel} (the file has {channels})")]
    NoChannel {
        /// The channel asked for (0-based).
        channel: u16,
        /// How many the file has.
        channels: u16,
    },
    /// More audio than the caller accepts.
    #[error("audio longer than {0} seconds")]
    TooLong(u32),
    /// Reading the input failed.
    #[error("cannot read WAV: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a WAV file ends too early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Truncation {
    /// Inside the header or a chunk before the samples.
    Header(&'static str),
    /// Inside a sample frame.
    Frame,
    /// Before the announced number of sample bytes.
    Data {
        /// Bytes of samples the header announces.
        announced: u64,
        /// Bytes of samples the file holds.
        found: u64,
    },
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Truncation::Header(what) => write!(f, "the file ends inside the {what}"),
            Truncation::Frame => write!(f, "the data ends inside a sample frame"),
            Truncation::Data { announced, found } => write!(
                f,
                "the header announces {announced} bytes of samples, the file holds {found}"
            ),
        }
    }
}

/// Why an Ogg Opus stream could not be read (further).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpusFileError {
    /// The input holds no bytes.
    #[error("empty input: not an Ogg Opus file")]
    Empty,
    /// The input does not start with an Ogg page.
    #[error("not an Ogg file (no OggS page)")]
    NotOgg,
    /// An Ogg file without an Opus stream at its start (Vorbis, FLAC, video).
    #[error("not an Ogg Opus file (no OpusHead)")]
    NotOpus,
    /// The input ends inside a page.
    #[error("truncated Ogg Opus: the file ends inside a page")]
    Truncated,
    /// A damaged page (checksum, structure) where one was expected.
    #[error("invalid Ogg Opus: {0}")]
    Invalid(String),
    /// A well-formed stream this reader does not decode (surround mapping families, a new version).
    #[error("unsupported Ogg Opus: {0}")]
    Unsupported(String),
    /// libopus refused a packet or a setting.
    #[error("Opus: {0}")]
    Opus(#[from] opus::Error),
    /// The channel asked for is not in the file.
    #[error("no channel {channel} (the file has {channels})")]
    NoChannel {
        /// The channel asked for (0-based).
        channel: u16,
        /// How many the file has.
        channels: u16,
    },
    /// Reading or writing failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
