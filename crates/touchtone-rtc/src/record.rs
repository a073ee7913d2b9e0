//! Recording a call's decrypted RTP, both directions, as a pcapng file that Wireshark and `touchtone pcap`
//! read (raw IP frames over UDP between the call's real addresses).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

/// One RTP packet as it was on the wire before encryption (sent) or after decryption (received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpRecord {
    /// When it was sent or received.
    pub at: Instant,
    /// Sender's address.
    pub source: SocketAddr,
    /// Receiver's address.
    pub destination: SocketAddr,
    /// The RTP packet: 12-byte header and payload.
    pub packet: Vec<u8>,
}

/// The 12-byte header of an RTP packet (version 2, no padding, extension or CSRCs).
pub fn rtp_header(pt: u8, marker: bool, sequence: u16, timestamp: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80;
    h[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    h[2..4].copy_from_slice(&sequence.to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be created or written.
    #[error("recording: {0}")]
    Io(#[from] io::Error),
    /// The pcapng writer failed.
    #[error("recording: {0}")]
    Pcap(#[from] pcap_file::PcapError),
    /// The two addresses of a packet are of different IP families.
    #[error("recording: {0} and {1} are not the same IP family")]
    Family(SocketAddr, SocketAddr),
}

/// Writes RTP records to a pcapng file, one raw-IP interface, nanosecond timestamps.
pub struct PcapngRecorder {
    writer: PcapNgWriter<BufWriter<File>>,
    /// Wall-clock time of `origin`, to stamp packets with real dates.
    origin: (Instant, Duration),
}

impl std::fmt::Debug for PcapngRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapngRecorder").finish_non_exhaustive()
    }
}

impl PcapngRecorder {
    /// Creates the file (replacing one of that name) and writes the section and interface headers.
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let file = BufWriter::new(File::create(path)?);
        let mut writer = PcapNgWriter::new(file)?;
        writer.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::RAW,
            snaplen: 0,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        })?;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(PcapngRecorder {
            writer,
            origin: (Instant::now(), wall),
        })
    }

    /// Appends one packet as an IP/UDP datagram.
    pub fn write(&mut self, record: &RtpRecord) -> Result<(), RecordError> {
        let (s, d) = (record.source, record.destination);
        let builder = match (s, d) {
            (SocketAddr::V4(s4), SocketAddr::V4(d4)) => {
                PacketBuilder::ipv4(s4.ip().octets(), d4.ip().octets(), 64).udp(s.port(), d.port())
            }
            (SocketAddr::V6(s6), SocketAddr::V6(d6)) => {
                PacketBuilder::ipv6(s6.ip().octets(), d6.ip().octets(), 64).udp(s.port(), d.port())
            }
            _ => return Err(RecordError::Family(s, d)),
        };
        let mut frame = Vec::with_capacity(builder.size(record.packet.len()));
        builder
            .write(&mut frame, &record.packet)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let (origin, wall) = self.origin;
        let timestamp = if record.at >= origin {
            wall + (record.at - origin)
        } else {
            wall.saturating_sub(origin - record.at)
        };
        self.writer.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp,
            original_len: frame.len() as u32,
            data: frame.into(),
            options: vec![],
        })?;
        Ok(())
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.writer.get_mut().flush()?;
        Ok(())
    }
}

impl Drop for PcapngRecorder {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("{e}");
        }
    }
}
