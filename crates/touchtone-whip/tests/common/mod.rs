//! The endpoint in the test process, as axum tests itself: bind 127.0.0.1:0, serve in a task, and
//! speak raw HTTP/1.1 over TCP so slow and broken clients can be played.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use touchtone_rtc::{Peer, PeerConfig};
use touchtone_testkit::http::request_head;
pub use touchtone_testkit::http::{Response as Resp, parse};
use touchtone_whip::{Hub, ServerLimits, WhipConfig};

/// A running endpoint.
pub struct Server {
    pub addr: SocketAddr,
    pub hub: Hub,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops the server and waits for its task.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A config for tests: no per-client rate limit to speak of.
pub fn config() -> WhipConfig {
    WhipConfig {
        calls_per_client: touchtone_whip::CallRate {
            per_second: 1000.0,
            burst: 1000,
        },
        ..WhipConfig::default()
    }
}

/// Serves the endpoint with `config` and `limits` on a free loopback port.
pub async fn start_with(config: WhipConfig, limits: ServerLimits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (router, hub) = touchtone_whip::router(config);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(touchtone_whip::serve(listener, router, limits, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        hub,
        stop: Some(tx),
        task,
    }
}

/// Serves the endpoint with `config` and default connection limits.
pub async fn start(config: WhipConfig) -> Server {
    start_with(config, ServerLimits::default()).await
}

/// Reads until the server closes (at most 10 s).
pub async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    raw
}

/// One request with `Connection: close`; `headers` are extra header lines.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = request_head(method, path, &addr.to_string(), headers, body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    parse(&read_all(&mut s).await)
}

/// `POST /whip` with an SDP body.
pub async fn post_sdp(addr: SocketAddr, sdp: &str) -> Resp {
    request(
        addr,
        "POST",
        "/whip",
        &[("Content-Type", "application/sdp")],
        sdp.as_bytes(),
    )
    .await
}

/// A browser-like offer (Opus and PCMU/PCMA with telephone-event) from a peer that never sends.
pub fn offer() -> String {
    let mut p = Peer::new(
        Instant::now(),
        "127.0.0.1:9".parse().unwrap(),
        PeerConfig::default(),
    )
    .unwrap();
    p.create_offer().unwrap()
}

/// Waits until `f` is true, polling every 20 ms, for at most `within`.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Descriptors open in this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// An SSE reader over a raw socket.
pub struct SseReader {
    s: TcpStream,
    buf: String,
    pub head: String,
}

/// One SSE event as read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseReader {
    /// Opens `GET path` with extra headers; panics unless the answer is 200.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, Resp> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut r = SseReader {
            s,
            buf: String::new(),
            head: String::new(),
        };
        while !r.buf.contains("\r\n\r\n") {
            if !r.fill().await {
                break;
            }
        }
        let (head, rest) = r.buf.split_once("\r\n\r\n").unwrap_or((&r.buf, ""));
        let (head, rest) = (head.to_string(), rest.to_string());
        if !head.starts_with("HTTP/1.1 200") {
            let mut raw = r.buf.into_bytes();
            raw.extend(read_all(&mut r.s).await);
            return Err(parse(&raw));
        }
        r.head = head;
        r.buf = rest;
        Ok(r)
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
                true
            }
            _ => false,
        }
    }

    /// The next event (comments and keep-alives skipped); `None` when the stream ended. The body is
    /// chunked: chunk-size lines are skipped as they are not `field: value` lines.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent::default();
                let mut any = false;
                for line in block.lines() {
                    let line = line.trim_end_matches('\r');
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if any {
                    return Some(ev);
                }
                continue;
            }
            if !self.fill().await {
                return None;
            }
        }
    }
}

/// A Rust WebRTC client (`touchtone_rtc::Call` on loopback UDP) that called the endpoint at `addr`
/// over WHIP and is connected; returns it with the call's `Location`.
pub async fn connect_client(addr: SocketAddr) -> (touchtone_rtc::CallHandle, String) {
    use touchtone_rtc::{Call, ConnectionState, PeerEvent};
    let mut call = Call::bind("127.0.0.1".parse().unwrap(), PeerConfig::default())
        .await
        .unwrap();
    let offer = call.peer.create_offer().unwrap();
    let r = post_sdp(addr, &offer).await;
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("location").unwrap();
    call.peer.accept_answer(Instant::now(), &r.body).unwrap();
    let mut handle = call.spawn();
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = handle.next_event().await {
            if ev == PeerEvent::Connection(ConnectionState::Connected) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(connected, Ok(true), "the client did not connect");
    (handle, location)
}

/// The keys the client heard (key-ups), until `n` arrived or `within` passed.
pub async fn heard(
    client: &mut touchtone_rtc::CallHandle,
    n: usize,
    within: Duration,
) -> Vec<(char, Duration)> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, async {
        while out.len() < n {
            match client.next_event().await {
                Some(touchtone_rtc::PeerEvent::KeyUp(d)) => {
                    out.push((d.tone.unwrap_or('?'), d.duration))
                }
                Some(_) => {}
                None => return,
            }
        }
    })
    .await;
    out
}

/// The `id` part of a `Location` (relative or absolute).
pub fn call_id(location: &str) -> String {
    location.rsplit('/').next().unwrap().to_string()
}
