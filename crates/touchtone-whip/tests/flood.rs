//! Calls opened and closed in cycles (hung up, timed out, spammed with junk, watched by subscribers
//! that never read, mixed with junk HTTP): descriptors and tasks come back to where they started.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use touchtone_whip::WhipConfig;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_of_calls_leave_no_descriptors_or_tasks_behind() {
    let srv = start(WhipConfig {
        idle_timeout: Duration::from_millis(400),
        history_per_call: 16,
        ..config()
    })
    .await;
    let sdp = offer();
    // Warm up (lazy initialisation in the crypto and the runtime), then take the baseline.
    let r = post_sdp(srv.addr, &sdp).await;
    assert_eq!(
        request(srv.addr, "DELETE", &r.header("location").unwrap(), &[], b"")
            .await
            .status,
        200
    );
    assert!(eventually(Duration::from_secs(5), || srv.hub.list().is_empty()).await);
    let settled = |fds: usize, tasks: usize| move || open_fds() <= fds && alive_tasks() <= tasks;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (fds0, tasks0) = (open_fds(), alive_tasks());

    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for cycle in 0..4 {
        let mut locations = Vec::new();
        for _ in 0..6 {
            let r = post_sdp(srv.addr, &sdp).await;
            assert_eq!(r.status, 201, "cycle {cycle}: {r:?}");
            locations.push(r.header("location").unwrap());
        }
        // Subscribers that never read.
        let mut silent = Vec::new();
        for _ in 0..3 {
            let mut s = TcpStream::connect(srv.addr).await.unwrap();
            let req = format!("GET {}/events HTTP/1.1\r\nHost: x\r\n\r\n", locations[2]);
            s.write_all(req.as_bytes()).await.unwrap();
            silent.push(s);
        }
        // Junk HTTP and junk offers.
        let mut garbage = TcpStream::connect(srv.addr).await.unwrap();
        garbage
            .write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(post_sdp(srv.addr, "v=0\r\nm=junk").await.status, 400);
        // Junk datagrams at two calls' media ports.
        for call in srv.hub.list().iter().take(2) {
            for _ in 0..5 {
                junk.send_to(b"\x00\x01junk", call.rtc_addr).await.unwrap();
            }
        }
        // Two calls hung up, the rest time out.
        for l in &locations[..2] {
            assert_eq!(request(srv.addr, "DELETE", l, &[], b"").await.status, 200);
        }
        assert!(
            eventually(Duration::from_secs(10), || srv.hub.list().is_empty()).await,
            "cycle {cycle}: calls left: {:?}",
            srv.hub.list()
        );
        drop(silent);
        drop(garbage);
    }
    drop(junk);
    assert!(
        eventually(Duration::from_secs(10), settled(fds0, tasks0)).await,
        "descriptors {} (was {fds0}), tasks {} (was {tasks0})",
        open_fds(),
        alive_tasks()
    );
    assert_eq!(srv.hub.metrics().calls_active, 0);
    assert_eq!(srv.hub.metrics().calls_total, 25);
    assert_eq!(srv.hub.calls_ended(), 25);
    srv.stop().await;
}
