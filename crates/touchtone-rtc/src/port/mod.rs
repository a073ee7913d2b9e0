//! The tasks that run the calls of one shared UDP port, one per core by default: each has its own socket
//! on the port (`SO_REUSEPORT`, so the kernel spreads remote addresses over them) and runs a share of
//! the calls, chosen by their ufrag ([`driver`]). A datagram that the kernel gives to the task running
//! its call costs no task switch or copy on its way; one given to another task is handed over, and
//! moves the call to that task.

mod driver;
mod routes;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub(crate) use driver::{Adopted, PortMsg};

/// The port's counters, written by its tasks.
#[derive(Debug, Default)]
pub(crate) struct PortCounters {
    pub(crate) datagrams: AtomicU64,
    pub(crate) unroutable: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) handed_over: AtomicU64,
    pub(crate) moved: AtomicU64,
    pub(crate) calls: AtomicU64,
    pub(crate) stalls: AtomicU64,
}

/// A running port: its tasks' channels; dropping it ends every call on it.
pub(crate) struct Port {
    tasks: Vec<mpsc::UnboundedSender<PortMsg>>,
    owners: Arc<driver::Owners>,
    next_key: AtomicU64,
    counters: Arc<PortCounters>,
}

impl Port {
    /// Binds `addr` (port 0 picks one) with `tasks` sockets (at least one) and starts a task on each,
    /// on the current tokio runtime; returns the port and its address.
    pub(crate) fn start(addr: SocketAddr, tasks: usize) -> io::Result<(Port, SocketAddr)> {
        if addr.port() != 0 {
            // The tasks' sockets share the port with `SO_REUSEPORT`, which would also let a second
            // server on it take a share of the datagrams: a plain bind first fails if anyone holds it.
            drop(std::net::UdpSocket::bind(addr)?);
        }
        let first = driver::bind_reuse_port(addr)?;
        let bound = first.local_addr()?;
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
        let port = Port {
            tasks: txs,
            owners,
            next_key: AtomicU64::new(0),
            counters,
        };
        Ok((port, bound))
    }

    /// Routes STUN checks for `ufrag` (and then their addresses) to a call from now on; the call runs
    /// once its slot is adopted.
    pub(crate) fn register(&self, ufrag: String) -> io::Result<PortSlot> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let task = driver::owner(&ufrag, self.tasks.len());
        let tx = &self.tasks[task];
        self.owners.add_ufrag(&ufrag, task);
        tx.send(PortMsg::Register { key, ufrag })
            .map_err(|_| io::Error::other("the shared UDP port has stopped"))?;
        // Counted here, so that the count includes the call at once; its task counts it out.
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        Ok(PortSlot {
            key,
            tx: tx.clone(),
            adopted: false,
        })
    }

    /// The port's counters.
    pub(crate) fn counters(&self) -> &PortCounters {
        &self.counters
    }
}

impl Drop for Port {
    /// The last handle to the port is gone: its calls end.
    fn drop(&mut self) {
        for tx in &self.tasks {
            let _ = tx.send(PortMsg::Shutdown);
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
