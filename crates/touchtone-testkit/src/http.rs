//! Raw HTTP/1.1 over TCP: requests written by hand and responses parsed as they came, so tests can play
//! any client and check exactly what the server sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An HTTP response as read off the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The status code (0 when the status line is missing or broken).
    pub status: u16,
    /// The status line and headers, without the blank line after them.
    pub head: String,
    /// What came after the head.
    pub body: String,
}

impl Response {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.head, name)
    }
}

/// A header's value in a response or request head (case-insensitive name).
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Parses a raw response (head and body).
pub fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The head of a request to `host` with `Connection: close`, `Content-Length: body_len` and the extra
/// `headers`, ending in the blank line.
pub fn request_head(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> String {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {body_len}\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// One request with `Connection: close` to `addr` (`host:port`), read until the server closes (waiting
/// at most 10 s for each read).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = request_head(method, path, addr, headers, body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

/// The `data:` payloads (trimmed) of a server-sent event stream at `path`, as they arrive; ends when the
/// stream does or a read waits longer than `timeout` (`None`: as long as it takes).
pub fn event_data(
    addr: &str,
    path: &str,
    timeout: Option<Duration>,
) -> impl Iterator<Item = String> + Send + 'static {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(timeout).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    BufReader::new(s)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| Some(line.strip_prefix("data:")?.trim().to_string()))
}
