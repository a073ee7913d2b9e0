//! Many calls on one UDP port: a datagram goes to its call by the local ufrag in a STUN check's USERNAME
//! on first contact, and by the remote address after that (as mediasoup's `WebRtcServer` and LiveKit's
//! single-port mode do). An unknown datagram costs one hash lookup and is dropped.
//!
//! A few tasks run the port, one per core by default (the `driver` module): each has its own socket on
//! the port (`SO_REUSEPORT`, so the kernel spreads remote addresses over them) and runs a share of the
//! calls, chosen by their ufrag. A datagram that the kernel gives to the task running its call costs no task
//! switch or copy on its way; one given to another task is handed over.

mod driver;
mod routes;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::call::Call;
use crate::error::RtcError;
use crate::peer::{Peer, PeerConfig};

pub(crate) use driver::{Adopted, PortMsg};
pub(crate) use routes::for_socket;

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
    /// Calls registered now.
    pub calls: u64,
}

/// The port's counters, written by its task.
#[derive(Debug, Default)]
pub(crate) struct PortCounters {
    datagrams: AtomicU64,
    unroutable: AtomicU64,
    dropped: AtomicU64,
    handed_over: AtomicU64,
    calls: AtomicU64,
}

struct Inner {
    bound: SocketAddr,
    announce: Vec<SocketAddr>,
    /// Each task's channel.
    drivers: Vec<mpsc::UnboundedSender<PortMsg>>,
    next_key: AtomicU64,
    counters: Arc<PortCounters>,
}

impl Drop for Inner {
    /// The last handle to the endpoint is gone: its calls end.
    fn drop(&mut self) {
        for tx in &self.drivers {
            let _ = tx.send(PortMsg::Shutdown);
        }
    }
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
        if addr.port() != 0 {
            // The tasks' sockets share the port with `SO_REUSEPORT`, which would also let a second
            // server on it take a share of the datagrams: a plain bind first fails if anyone holds it.
            drop(std::net::UdpSocket::bind(addr)?);
        }
        let first = driver::bind_reuse_port(addr)?;
        let bound = first.local_addr()?;
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
        let mut sockets = vec![first];
        for _ in 1..tasks.max(1) {
            sockets.push(driver::bind_reuse_port(bound)?);
        }
        let counters = Arc::new(PortCounters::default());
        let (txs, rxs): (Vec<_>, Vec<_>) =
            sockets.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let peers: Vec<_> = txs.iter().map(|tx| tx.downgrade()).collect();
        let sockets = Arc::new(
            sockets
                .into_iter()
                .map(UdpSocket::from_std)
                .collect::<Result<Vec<_>, _>>()?,
        );
        let owners = Arc::new(driver::Owners::default());
        for (index, rx) in rxs.into_iter().enumerate() {
            tokio::spawn(driver::run(
                driver::Share {
                    index,
                    peers: peers.clone(),
                    sockets: sockets.clone(),
                    owners: owners.clone(),
                },
                bound,
                rx,
                counters.clone(),
            ));
        }
        Ok(UdpEndpoint {
            inner: Arc::new(Inner {
                bound,
                announce,
                drivers: txs,
                next_key: AtomicU64::new(0),
                counters,
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
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let ufrag = peer.local_ufrag().to_string();
        let tx = &self.inner.drivers[driver::owner(&ufrag, self.inner.drivers.len())];
        tx.send(PortMsg::Register { key, ufrag })
            .map_err(|_| RtcError::Io(std::io::Error::other("the shared UDP port has stopped")))?;
        // Counted here, so that the count includes the call at once; its task counts it out.
        self.inner.counters.calls.fetch_add(1, Ordering::Relaxed);
        let slot = PortSlot {
            key,
            tx: tx.clone(),
            adopted: false,
        };
        Ok(Call::on_endpoint(peer, slot))
    }

    /// The endpoint's counters now.
    pub fn stats(&self) -> EndpointStats {
        let c = &self.inner.counters;
        EndpointStats {
            datagrams: c.datagrams.load(Ordering::Relaxed),
            unroutable: c.unroutable.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            handed_over: c.handed_over.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
        }
    }
}

/// A call's place at its port before it runs; dropping it unspawned removes the call's routes.
pub(crate) struct PortSlot {
    key: u64,
    tx: mpsc::UnboundedSender<PortMsg>,
    adopted: bool,
}

impl std::fmt::Debug for PortSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PortSlot({})", self.key)
    }
}

impl PortSlot {
    /// Hands the call to the port's task, which runs it from now on; returns the call's key and the
    /// channel for its commands.
    pub(crate) fn adopt(mut self, call: Adopted) -> (u64, mpsc::UnboundedSender<PortMsg>) {
        self.adopted = true;
        let _ = self.tx.send(PortMsg::Adopt {
            key: self.key,
            call: Box::new(call),
        });
        (self.key, self.tx.clone())
    }
}

impl Drop for PortSlot {
    fn drop(&mut self) {
        if !self.adopted {
            let _ = self.tx.send(PortMsg::Unregister { key: self.key });
        }
    }
}
