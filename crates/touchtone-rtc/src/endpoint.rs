//! Many calls on one UDP port: a datagram goes to its call by the local ufrag in a STUN check's USERNAME
//! on first contact, and by the remote address after that (as mediasoup's `WebRtcServer` and LiveKit's
//! single-port mode do). An unknown datagram costs one hash lookup and is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::call::Call;
use crate::error::RtcError;
use crate::peer::{Peer, PeerConfig};

/// Datagrams queued for one call before the endpoint drops more (the call is not keeping up).
const CALL_QUEUE: usize = 512;

/// Remote addresses one call may be reached from (ICE candidate pairs that checked).
const MAX_ADDRS_PER_CALL: usize = 8;

/// A datagram on its way to a call: source and bytes.
pub(crate) type Datagram = (SocketAddr, Vec<u8>);

/// Counters of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Datagrams received on the port.
    pub datagrams: u64,
    /// Datagrams that matched no call (unknown address, not a STUN check for a known ufrag).
    pub unroutable: u64,
    /// Datagrams dropped because their call's queue was full.
    pub dropped: u64,
    /// Calls registered now.
    pub calls: u64,
}

#[derive(Default)]
struct Routes {
    next_key: u64,
    by_ufrag: HashMap<String, u64>,
    by_addr: HashMap<SocketAddr, u64>,
    calls: HashMap<u64, Route>,
}

struct Route {
    tx: mpsc::Sender<Datagram>,
    ufrag: String,
    addrs: Vec<SocketAddr>,
}

impl Routes {
    fn remove(&mut self, key: u64) {
        if let Some(r) = self.calls.remove(&key) {
            self.by_ufrag.remove(&r.ufrag);
            for a in r.addrs {
                self.by_addr.remove(&a);
            }
        }
    }

    /// The call a datagram from `source` is for, learning the address from a STUN check.
    fn route(&mut self, source: SocketAddr, data: &[u8]) -> Option<u64> {
        if let Some(key) = self.by_addr.get(&source) {
            return Some(*key);
        }
        let ufrag = stun_local_ufrag(data)?;
        let key = *self.by_ufrag.get(ufrag)?;
        let route = self.calls.get_mut(&key)?;
        if route.addrs.len() >= MAX_ADDRS_PER_CALL {
            let old = route.addrs.remove(0);
            self.by_addr.remove(&old);
        }
        route.addrs.push(source);
        self.by_addr.insert(source, key);
        Some(key)
    }
}

struct Inner {
    socket: Arc<UdpSocket>,
    bound: SocketAddr,
    announce: Vec<SocketAddr>,
    routes: Mutex<Routes>,
    datagrams: AtomicU64,
    unroutable: AtomicU64,
    dropped: AtomicU64,
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
    /// Binds `addr` (port 0 picks one) and starts routing its datagrams; must run inside a tokio runtime.
    /// Calls announce `public` addresses (with the bound port) as their host candidates, or the bound
    /// address when `public` is empty (then it must not be unspecified, such as `0.0.0.0`).
    pub async fn bind(addr: SocketAddr, public: &[IpAddr]) -> Result<UdpEndpoint, RtcError> {
        let socket = UdpSocket::bind(addr).await?;
        let bound = socket.local_addr()?;
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
        let inner = Arc::new(Inner {
            socket: Arc::new(socket),
            bound,
            announce,
            routes: Mutex::new(Routes::default()),
            datagrams: AtomicU64::new(0),
            unroutable: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(receive(Arc::downgrade(&inner), inner.socket.clone()));
        Ok(UdpEndpoint { inner })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.bound
    }

    /// The addresses calls announce as host candidates.
    pub fn announced(&self) -> &[SocketAddr] {
        &self.inner.announce
    }

    /// A call on this port, before offer/answer; it stops receiving when it ends.
    pub fn call(&self, config: PeerConfig) -> Result<Call, RtcError> {
        let mut peer = Peer::new(Instant::now(), self.inner.announce[0], config)?;
        peer.add_local_addrs(&self.inner.announce[1..]);
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        let mut routes = self.inner.routes.lock().expect("endpoint routes");
        let key = routes.next_key;
        routes.next_key += 1;
        let ufrag = peer.local_ufrag().to_string();
        routes.by_ufrag.insert(ufrag.clone(), key);
        routes.calls.insert(
            key,
            Route {
                tx,
                ufrag,
                addrs: Vec::new(),
            },
        );
        drop(routes);
        let route = RouteGuard {
            key,
            endpoint: Arc::downgrade(&self.inner),
        };
        Ok(Call::on_endpoint(
            peer,
            self.inner.socket.clone(),
            rx,
            route,
        ))
    }

    /// The endpoint's counters now.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            datagrams: self.inner.datagrams.load(Ordering::Relaxed),
            unroutable: self.inner.unroutable.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            calls: self
                .inner
                .routes
                .lock()
                .expect("endpoint routes")
                .calls
                .len() as u64,
        }
    }
}

/// Removes a call's routes when the call ends.
pub(crate) struct RouteGuard {
    key: u64,
    endpoint: Weak<Inner>,
}

impl std::fmt::Debug for RouteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RouteGuard({})", self.key)
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.endpoint.upgrade() {
            inner
                .routes
                .lock()
                .expect("endpoint routes")
                .remove(self.key);
        }
    }
}

/// Reads the port and hands each datagram to its call until the endpoint is dropped.
async fn receive(inner: Weak<Inner>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("shared UDP port: {e}");
                if inner.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.dispatch(source, &buf[..n]);
    }
}

impl Inner {
    /// Hands a datagram to its call, or counts it as unroutable or dropped.
    fn dispatch(&self, source: SocketAddr, data: &[u8]) {
        self.datagrams.fetch_add(1, Ordering::Relaxed);
        let source = canonical(source);
        let mut routes = self.routes.lock().expect("endpoint routes");
        let Some(key) = routes.route(source, data) else {
            self.unroutable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(route) = routes.calls.get(&key) else {
            return;
        };
        match route.tx.try_send((source, data.to_vec())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => routes.remove(key),
        }
    }
}

impl RouteGuard {
    /// Routes every datagram already waiting in the shared socket to its call, without waiting: a call
    /// that wakes for a timer after a stall does this first, so that datagrams which arrived meanwhile
    /// reach it (and every other call) before its timers run, whether or not the router task has run yet.
    pub(crate) fn route_queued(&self, socket: &UdpSocket, buf: &mut [u8], limit: usize) {
        let Some(inner) = self.endpoint.upgrade() else {
            return;
        };
        for _ in 0..limit {
            let Some((n, source)) = crate::call::recv_queued(socket, buf) else {
                return;
            };
            inner.dispatch(source, &buf[..n]);
        }
    }
}

/// An IPv4 peer seen through a dual-stack socket arrives as `::ffff:a.b.c.d`: the plain IPv4 address.
fn canonical(a: SocketAddr) -> SocketAddr {
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

/// The local ufrag of a STUN Binding request's USERNAME (`local:remote`, RFC 8445 7.2.2), if `data` is one.
fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    // Header: type (Binding request 0x0001), length, magic cookie, transaction id.
    if data.len() < 20 || data[0..2] != [0x00, 0x01] || data[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + alen)?;
        if typ == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn the_local_ufrag_is_read_from_a_binding_request() {
        assert_eq!(stun_local_ufrag(&binding("abcd:wxyz")), Some("abcd"));
        assert_eq!(stun_local_ufrag(&binding("x")), Some("x"));
        // Not a binding request, or cut short: nothing.
        // A Binding success response (0x0101) carries no check to route by.
        let mut resp = binding("abcd:wxyz");
        resp[0] = 0x01;
        assert_eq!(stun_local_ufrag(&resp), None);
        assert_eq!(stun_local_ufrag(&binding("abcd:wxyz")[..30]), None);
        assert_eq!(stun_local_ufrag(b"\x80\x00 rtp"), None);
    }

    #[test]
    fn routes_learn_addresses_from_checks_and_forget_them_with_the_call() {
        let (tx, _rx) = mpsc::channel(1);
        let mut r = Routes::default();
        r.by_ufrag.insert("abcd".into(), 1);
        r.calls.insert(
            1,
            Route {
                tx,
                ufrag: "abcd".into(),
                addrs: vec![],
            },
        );
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(r.route(a, b"\x80junk"), None, "unknown address, not STUN");
        assert_eq!(r.route(a, &binding("zzzz:wxyz")), None, "unknown ufrag");
        assert_eq!(r.route(a, &binding("abcd:wxyz")), Some(1));
        assert_eq!(r.route(a, b"\x16dtls"), Some(1), "known address now");
        for p in 0..20 {
            let b = SocketAddr::new(a.ip(), 6000 + p);
            r.route(b, &binding("abcd:wxyz"));
        }
        assert_eq!(r.calls[&1].addrs.len(), MAX_ADDRS_PER_CALL);
        assert_eq!(r.by_addr.len(), MAX_ADDRS_PER_CALL);
        r.remove(1);
        assert!(r.by_addr.is_empty() && r.by_ufrag.is_empty());
    }

    #[test]
    fn ipv4_peers_on_a_dual_stack_socket() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:4000".parse().unwrap();
        assert_eq!(canonical(mapped), "10.1.2.3:4000".parse().unwrap());
        let v6sock: SocketAddr = "[::]:3478".parse().unwrap();
        assert_eq!(for_socket(v6sock, "10.1.2.3:4000".parse().unwrap()), mapped);
    }
}
