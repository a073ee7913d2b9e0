//! An HTTP/1.1 server for any axum `Router` with the limits a public endpoint needs and that
//! `axum::serve` does not set: a header read timeout (also for idle keep-alive connections), a cap on
//! connections in total and per client IP, and a bounded graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Connections the kernel queues for [`serve`] to accept: a burst of offers from many browsers
/// arrives at once, and a connection the queue has no room for waits a full second for its SYN to be
/// sent again. Linux caps it at `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` for [`serve`], with a [`LISTEN_BACKLOG`] long accept queue (one bound
/// with tokio's `TcpListener::bind` queued 129 connections here).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connection limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Time a client has to send a request's headers, counted from when the server starts waiting for
    /// them (a new or idle keep-alive connection); slower connections are closed.
    pub header_read_timeout: Duration,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Connections open at once from one IP address; further ones get 503 and are closed.
    pub max_connections_per_ip: usize,
    /// After shutdown is asked for, time open connections get to finish before they are dropped.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_connections_per_ip: 64,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The answer written to a connection over the per-IP cap, before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Retry-After: 1\r\nConnection: close\r\nContent-Length: 69\r\n\r\n\
{\"error\":\"TooManyConnections\",\"message\":\"too many connections at once\"}";

/// Connections per IP address; an entry disappears when its count is back to 0.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted in [`PerIp`] until dropped.
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn try_take(table: &Arc<PerIp>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut map = table.0.lock().expect("per-ip lock");
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                map.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().expect("per-ip lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish their
/// current request for at most [`ServerLimits::shutdown_grace`]. Handlers can read the client's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let total = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip = Arc::new(PerIp::default());
    // Connections hold a receiver; shutdown is sent by dropping the sender.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = total.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = PerIp::try_take(&per_ip, peer.ip(), limits.max_connections_per_ip) else {
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let app = app.clone();
        let mut stop = stop_rx.clone();
        let header_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            serve_connection(stream, peer, app, header_timeout, &mut stop).await;
            drop((permit, slot));
        });
    }
    drop(stop_rx);
    drop(listener);
    let _ = tokio::time::timeout(limits.shutdown_grace, async {
        let _ = stop_tx.send(());
        stop_tx.closed().await;
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    stop: &mut watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let service =
        TowerToHyperService::new(app.map_request(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.map(axum::body::Body::new)
        }));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection from {peer}: {e}");
                }
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
