//! Out of descriptors when a call's UDP socket is bound: 503 with `Retry-After`, never 500. Its own
//! test binary, as it uses up the process's descriptors.

mod common;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_when_descriptors_ran_out_gets_503() {
    let srv = start(config()).await;
    let sdp = offer();
    // A keep-alive connection the server has accepted: its first request proves it.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Use up every descriptor.
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
        assert!(hog.len() < 2_000_000, "no descriptor limit");
    }
    let req = format!(
        "POST /whip HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let raw = read_all(&mut s).await;
    drop(hog);
    let r = parse(&raw);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("ResourcesExhausted"), "{r:?}");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    // With descriptors back, calls work again.
    assert_eq!(post_sdp(srv.addr, &sdp).await.status, 201);
    srv.stop().await;
}
