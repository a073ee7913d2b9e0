//! DTMF in captures and recordings: RFC 4733 digits in pcap/pcapng files, in-band digits in WAV files.
//!
//! - [`digits_in_capture`] and [`CaptureScan`]: telephone-event streams in a packet capture of plain RTP
//!   (pcap or pcapng; Ethernet, VLAN, Linux cooked, BSD loopback, raw IP; IPv4 and IPv6), found and timed
//!   without being told the payload type or clock rate. [`packets_in_capture`] lists the packets.
//! - [`detect_in_wav`] and [`WavDigits`]: digits in a WAV recording (PCM 8/16/24/32-bit, float, G.711,
//!   any rate, any channels). [`read_mono_8k`] turns a WAV file into 8 kHz call audio, low-passed first.
//! - [`detect_in_ogg_opus`] and [`OpusDigits`]: digits in an Ogg Opus recording (`.opus`, mono or stereo),
//!   decoded by libopus at 48 kHz; [`write_ogg_opus`] writes one.
//! - The pieces, for other sources: [`CaptureReader`] (datagrams of a capture), [`udp_in_frame`] (a frame
//!   to its UDP datagram), [`Scanner`] (datagrams to digits, sans I/O), [`WavReader`] and [`resample`].
//!
//! The streaming forms read in constant memory and, when the input turns out damaged or truncated, still
//! deliver what came before the damage, then the error.
//!
//! ```
//! use touchtone::inband::ToneGenerator;
//! use touchtone_capture::{WavDigits, WavOptions, detect_in_wav};
//!
//! // A WAV file of "12" (16-bit mono at 8 kHz), as a recorder would write it.
//! let mut g = ToneGenerator::new(8000).unwrap();
//! g.push_tones("12", 100, 100).unwrap();
//! let samples = g.render();
//! let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data".to_vec();
//! wav.extend_from_slice(&(2 * samples.len() as u32).to_le_bytes());
//! wav.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
//!
//! let digits = detect_in_wav(&wav[..], WavOptions::default()).unwrap();
//! let keys: String = digits.iter().map(|d| d.digit).collect();
//! assert_eq!(keys, "12");
//! assert!((digits[1].duration_ms() - 100.0).abs() < 6.0);
//!
//! // The same, streaming, with the file cut short: the first digit still comes, then the error.
//! let cut = &wav[..wav.len() - 1700];
//! let mut it = WavDigits::new(cut, WavOptions::default()).unwrap();
//! assert_eq!(it.next().unwrap().unwrap().digit, '1');
//! assert!(it.any(|r| r.is_err()));
//! ```

#![warn(missing_docs)]

mod digit;
mod error;
mod inband;
pub mod net;
mod ogg_opus;
mod pcap;
mod read;
mod resample;
mod rfc4733;
mod stream;
mod wav;

pub use digit::{WavDigit, WavOptions};
pub use error::{CaptureError, OpusFileError, Truncation, WavError};
pub use inband::{WavDigits, detect_in_wav, read_mono_8k};
pub use net::{UdpSlice, udp_in_frame};
pub use ogg_opus::{OpusDigits, OpusHead, detect_in_ogg_opus, write_ogg_opus};
pub use pcap::{CaptureReader, Datagram, MAX_BLOCK};
pub use resample::resample;
pub use rfc4733::{
    CaptureOptions, CaptureScan, CapturedDigit, CapturedPacket, ScanItem, Scanner, StreamKey,
    digits_in_capture, packets_in_capture,
};
pub use wav::{Encoding, WavFormat, WavReader};
