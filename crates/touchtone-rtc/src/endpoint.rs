//! Many calls on one UDP port: a datagram goes to its call by the local ufrag in a STUN check's USERNAME
//! on first contact, and by the remote address after that (as mediasoup's `WebRtcServer` and LiveKit's
//! single-port mode do). An unknown datagram costs one hash lookup and is dropped.
//!
//! A few tasks run the port, one per core by default: each has its own socket on the port
//! (`SO_REUSEPORT`, so the kernel spreads remote addresses over them) and runs a share of the calls,
//! chosen by their ufrag. A datagram that the kernel gives to the task running its call costs no task
//! switch or copy on its way; one given to another task is handed over.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::call::Call;
use crate::error::RtcError;
use crate::peer::{Peer, PeerConfig};
use crate::port::Port;

/// Counters of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Datagrams received on the port.
    pub datagrams: u64,
    /// Datagrams that matched no call (unknown address, not a STUN check for a known ufrag).
    pub unroutable: u64,
    /// Datagrams dropped because their call was not running yet and had too many waiting.
    pub dropped: u64,
    /// Datagrams read by one of the port's tasks and handed to the task running their call.
    pub handed_over: u64,
    /// Calls moved to the task whose socket their datagrams reach.
    pub moved: u64,
    /// Calls registered now.
    pub calls: u64,
    /// Turns of the port's tasks that began more than 50 ms after a call's timer was due: the process
    /// fell behind (more calls than its cores carry, or other work taking them).
    pub stalls: u64,
}

struct Inner {
    bound: SocketAddr,
    announce: Vec<SocketAddr>,
    port: Port,
}

/// One UDP port shared by many calls.
#[derive(Clone)]
pub struct UdpEndpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UdpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpEndpoint")
            .field("bound", &self.inner.bound)
            .field("announce", &self.inner.announce)
            .finish_non_exhaustive()
    }
}

impl UdpEndpoint {
    /// Binds `addr` (port 0 picks one) and starts the port's tasks, one per core; must run inside a
    /// tokio runtime. Calls announce `public` addresses (with the bound port) as their host candidates,
    /// or the bound address when `public` is empty (then it must not be unspecified, such as `0.0.0.0`).
    pub async fn bind(addr: SocketAddr, public: &[IpAddr]) -> Result<UdpEndpoint, RtcError> {
        let tasks = std::thread::available_parallelism().map_or(1, |n| n.get());
        UdpEndpoint::bind_with_tasks(addr, public, tasks).await
    }

    /// [`bind`](Self::bind) with `tasks` tasks (and sockets) running the port, at least one.
    pub async fn bind_with_tasks(
        addr: SocketAddr,
        public: &[IpAddr],
        tasks: usize,
    ) -> Result<UdpEndpoint, RtcError> {
        let (port, bound) = Port::start(addr, tasks)?;
        let announce: Vec<SocketAddr> = if public.is_empty() {
            vec![bound]
        } else {
            public
                .iter()
                .map(|ip| SocketAddr::new(*ip, bound.port()))
                .collect()
        };
        if announce.iter().any(|a| a.ip().is_unspecified()) {
            return Err(RtcError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{bound} is not an address a browser can reach: give the public address"),
            )));
        }
        Ok(UdpEndpoint {
            inner: Arc::new(Inner {
                bound,
                announce,
                port,
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.bound
    }

    /// The addresses calls announce as host candidates.
    pub fn announced(&self) -> &[SocketAddr] {
        &self.inner.announce
    }

    /// A call on this port, before offer/answer; the port routes to it from now until it ends (or is
    /// dropped without being spawned).
    pub fn call(&self, config: PeerConfig) -> Result<Call, RtcError> {
        let mut peer = Peer::new(Instant::now(), self.inner.announce[0], config)?;
        peer.add_local_addrs(&self.inner.announce[1..]);
        let slot = self.inner.port.register(peer.local_ufrag().to_string())?;
        Ok(Call::on_endpoint(peer, slot))
    }

    /// The endpoint's counters now.
    pub fn stats(&self) -> EndpointStats {
        let c = self.inner.port.counters();
        EndpointStats {
            datagrams: c.datagrams.load(Ordering::Relaxed),
            unroutable: c.unroutable.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            handed_over: c.handed_over.load(Ordering::Relaxed),
            moved: c.moved.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
        }
    }
}
