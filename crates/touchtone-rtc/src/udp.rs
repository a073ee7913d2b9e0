//! UDP socket and address helpers shared by a call on its own socket and the port's tasks.

use std::net::{IpAddr, SocketAddr};

use tokio::net::UdpSocket;

/// One datagram already queued in the socket, read with a direct non-blocking `recvfrom`. tokio's
/// `try_recv_from` is not enough: after a stall the runtime can wake the timer before it has seen the
/// socket become readable, and then reports `WouldBlock` with datagrams waiting.
pub(crate) fn recv_queued(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    let sock = socket2::SockRef::from(socket);
    // SAFETY: `recv_from` only writes initialized bytes into the buffer, and `u8` and
    // `MaybeUninit<u8>` have the same layout.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    match sock.recv_from(uninit) {
        Ok((n, from)) => Some((n, from.as_socket()?)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => {
            // Nothing more is read this turn; the next readiness tries again.
            tracing::debug!("UDP receive: {e}");
            None
        }
    }
}

/// An IPv4 peer seen through a dual-stack socket arrives as `::ffff:a.b.c.d`: the plain IPv4 address.
pub(crate) fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The address to send to from `socket_addr`'s family: IPv4 destinations through an IPv6 socket are
/// written as IPv4-mapped IPv6 addresses.
pub(crate) fn for_socket(socket_addr: SocketAddr, dst: SocketAddr) -> SocketAddr {
    match (socket_addr, dst) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => dst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_peers_on_a_dual_stack_socket() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:4000".parse().unwrap();
        assert_eq!(canonical(mapped), "10.1.2.3:4000".parse().unwrap());
        let v6sock: SocketAddr = "[::]:3478".parse().unwrap();
        assert_eq!(for_socket(v6sock, "10.1.2.3:4000".parse().unwrap()), mapped);
    }
}
