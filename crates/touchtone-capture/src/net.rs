//! From a link-layer frame to the UDP datagram inside: Ethernet (with VLAN tags), Linux cooked (SLL and
//! SLL2), raw IPv4/IPv6 (with IPv6 extension headers), and BSD loopback (NULL and LOOP).

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::data::{PacketData, get_packetdata_linux_sll2};

/// LINKTYPE_NULL: BSD loopback, the address family in the byte order of the capturing host.
pub const LINKTYPE_NULL: u32 = 0;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW: raw IPv4 or IPv6.
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_LOOP: OpenBSD loopback, the address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// LINKTYPE_LINUX_SLL: Linux cooked capture.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_IPV4: raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// LINKTYPE_IPV6: raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// LINKTYPE_LINUX_SLL2: Linux cooked capture, version 2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// A UDP datagram found in a frame: source, destination and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSlice<'a> {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// The UDP datagram in a frame of the given link type (pcap LINKTYPE_ value), or `None` when the frame
/// holds something else (another protocol, a fragment after the first, a damaged or unknown header).
pub fn udp_in_frame(linktype: u32, frame: &[u8]) -> Option<UdpSlice<'_>> {
    let sliced = match linktype {
        LINKTYPE_ETHERNET => SlicedPacket::from_ethernet(frame),
        LINKTYPE_LINUX_SLL => SlicedPacket::from_linux_sll(frame),
        LINKTYPE_LINUX_SLL2 => match get_packetdata_linux_sll2(frame, frame.len())? {
            PacketData::L3(ether_type, ip) => {
                SlicedPacket::from_ether_type(EtherType(ether_type), ip)
            }
            _ => return None,
        },
        // 12 and 14 are DLT_RAW on some BSDs, written unmapped by old tools.
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => SlicedPacket::from_ip(frame),
        LINKTYPE_NULL | LINKTYPE_LOOP => SlicedPacket::from_ip(loopback_payload(frame)?),
        _ => return None,
    }
    .ok()?;
    let (src, dst): (IpAddr, IpAddr) = match sliced.net? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Arp(_) => return None,
    };
    let TransportSlice::Udp(udp) = sliced.transport? else {
        return None;
    };
    Some(UdpSlice {
        src: SocketAddr::new(src, udp.source_port()),
        dst: SocketAddr::new(dst, udp.destination_port()),
        payload: udp.payload(),
    })
}

/// The IP packet after a NULL/LOOP header, whose 4-byte address family may be in either byte order:
/// 2 is IPv4; 24, 28 and 30 are IPv6 (on the BSDs, macOS and others); anything else is not IP.
fn loopback_payload(frame: &[u8]) -> Option<&[u8]> {
    let (family, ip) = frame.split_first_chunk::<4>()?;
    let is_ip = |f: u32| matches!(f, 2 | 24 | 28 | 30);
    (is_ip(u32::from_le_bytes(*family)) || is_ip(u32::from_be_bytes(*family))).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let mut v = vec![];
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(1000, 2000)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    #[test]
    fn loopback_family_is_read_in_either_byte_order() {
        for family in [
            2u32.to_le_bytes(),
            2u32.to_be_bytes(),
            24u32.to_be_bytes(),
            30u32.to_le_bytes(),
        ] {
            let mut f = family.to_vec();
            f.extend(ipv4_udp(b"hi"));
            for link in [LINKTYPE_NULL, LINKTYPE_LOOP] {
                let udp = udp_in_frame(link, &f).expect("udp");
                assert_eq!(udp.payload, b"hi");
                assert_eq!(udp.src.to_string(), "192.0.2.1:1000");
            }
        }
        // OSI (7) and IPX (23) are not IP.
        let mut f = 7u32.to_le_bytes().to_vec();
        f.extend(ipv4_udp(b"hi"));
        assert_eq!(udp_in_frame(LINKTYPE_NULL, &f), None);
    }

    #[test]
    fn vlan_tags_and_ipv6_extension_headers_are_crossed() {
        let mut f = vec![];
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4000, 5000)
            .write(&mut f, b"rtp")
            .unwrap();
        assert_eq!(udp_in_frame(LINKTYPE_ETHERNET, &f).unwrap().payload, b"rtp");
        // IPv6 with a hop-by-hop options header (next header 0) in front of UDP.
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(8u16 + 8 + 3).to_be_bytes());
        ip.extend_from_slice(&[0, 64]);
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        ip.extend_from_slice(&[0x0f, 0xa0, 0x13, 0x88, 0, 11, 0, 0, b'r', b't', b'p']);
        let udp = udp_in_frame(LINKTYPE_RAW, &ip).expect("udp after an extension header");
        assert_eq!(udp.payload, b"rtp");
        assert_eq!(udp.dst.to_string(), "[fe80::2]:5000");
    }

    proptest! {
        #[test]
        fn frames_of_any_shape_never_panic(
            link in prop_oneof![Just(0u32), Just(1), Just(101), Just(108), Just(113), Just(228), Just(229), Just(276), any::<u32>()],
            frame in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            if let Some(udp) = udp_in_frame(link, &frame) {
                prop_assert!(udp.payload.len() <= frame.len());
                let _ = touchtone::RtpInfo::parse(udp.payload);
            }
        }
    }
}
