//! Many calls on one UDP port over real loopback: each call hears exactly its own digits, both ways.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use touchtone_rtc::{
    Call, CallHandle, ConnectionState, DigitSource, PeerConfig, PeerEvent, UdpEndpoint,
};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn wait_connected(h: &mut CallHandle) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), h.next_event())
            .await
            .expect("connect in time")
            .expect("call alive");
        if ev == PeerEvent::Connection(ConnectionState::Connected) {
            return;
        }
    }
}

async fn key_ups(h: &mut CallHandle, n: usize) -> String {
    let mut got = String::new();
    while got.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), h.next_event())
            .await
            .expect("digits in time")
            .expect("call alive");
        if let PeerEvent::KeyUp(d) = ev {
            assert_eq!(d.source, DigitSource::Rfc4733);
            let ms = d.duration.as_secs_f64() * 1000.0;
            assert!((ms - 60.0).abs() <= 20.0, "lasted {ms} ms");
            got.push(d.tone.unwrap());
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_calls_share_one_port_and_each_hears_only_its_own_digits() {
    let endpoint = UdpEndpoint::bind(SocketAddr::new(LOOPBACK, 0), &[])
        .await
        .unwrap();
    let port = endpoint.local_addr();
    let shared = PeerConfig {
        dtls_cert: touchtone_rtc::generate_certificate(),
        ..PeerConfig::default()
    };
    let keys = "0123456789*#ABCD";
    let mut pairs = vec![];
    for k in 0..20 {
        let mut client = Call::bind(LOOPBACK, PeerConfig::default()).await.unwrap();
        let mut server = endpoint.call(shared.clone()).unwrap();
        assert_eq!(
            server.peer.local_addr(),
            port,
            "every call announces the one port"
        );
        let offer = client.peer.create_offer().unwrap();
        let answer = server.peer.accept_offer(Instant::now(), &offer).unwrap();
        assert!(
            answer.contains(&format!(" {} typ host", port.port())),
            "{answer}"
        );
        client.peer.accept_answer(Instant::now(), &answer).unwrap();
        pairs.push((k, client.spawn(), server.spawn()));
    }
    // Junk at the port: counted, dropped, harmless.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..50 {
        junk.send_to(b"\x80\x00junk that is not for anyone", port)
            .unwrap();
    }
    let mut tasks = vec![];
    for (k, mut client, mut server) in pairs {
        tasks.push(tokio::spawn(async move {
            wait_connected(&mut client).await;
            wait_connected(&mut server).await;
            // Three digits unique to this call each way.
            let up: String = (0..3)
                .map(|i| keys.as_bytes()[(k + i) % 16] as char)
                .collect();
            let down: String = (0..3)
                .map(|i| keys.as_bytes()[(k + 5 + i) % 16] as char)
                .collect();
            client.insert_dtmf(&up, 60, 40).await.unwrap();
            server.insert_dtmf(&down, 60, 40).await.unwrap();
            let (at_server, at_client) =
                tokio::join!(key_ups(&mut server, 3), key_ups(&mut client, 3));
            assert_eq!(at_server, up, "call {k}: server side");
            assert_eq!(at_client, down, "call {k}: client side");
            client.close();
            // The server side ends too, and its routes go with it.
            tokio::time::timeout(Duration::from_secs(10), async {
                while server.next_event().await.is_some() {}
            })
            .await
            .expect("server call ends");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = endpoint.stats();
    assert!(stats.unroutable >= 50, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.calls, 0, "routes of ended calls are gone: {stats:?}");
}

#[tokio::test]
async fn an_unspecified_bind_address_needs_a_public_address() {
    let any = "0.0.0.0:0".parse().unwrap();
    let e = UdpEndpoint::bind(any, &[]).await.unwrap_err();
    assert!(e.to_string().contains("public address"), "{e}");
    let ok = UdpEndpoint::bind(any, &["203.0.113.7".parse().unwrap()])
        .await
        .unwrap();
    assert_eq!(ok.announced()[0].ip().to_string(), "203.0.113.7");
    let call = ok.call(PeerConfig::default()).unwrap();
    assert_eq!(call.peer.local_addr(), ok.announced()[0]);
}
