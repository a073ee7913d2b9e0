//! Many calls on one UDP port over real loopback: each call hears exactly its own digits, both ways.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{LOOPBACK, assert_heard, key_ups, wait_connected};
use touchtone_rtc::{Call, DigitSource, PeerConfig, UdpEndpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_calls_share_one_port_and_each_hears_only_its_own_digits() {
    // Three tasks (and sockets) run the port: the kernel gives most calls' datagrams to a task that
    // does not run the call, which hands them over.
    let endpoint = UdpEndpoint::bind_with_tasks(SocketAddr::new(LOOPBACK, 0), &[], 3)
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
            let within = Duration::from_secs(10);
            let (at_server, at_client) = tokio::join!(
                key_ups(&mut server, 3, DigitSource::Rfc4733, within),
                key_ups(&mut client, 3, DigitSource::Rfc4733, within)
            );
            assert_heard(&at_server, &up, 60.0, &format!("call {k}: server side"));
            assert_heard(&at_client, &down, 60.0, &format!("call {k}: client side"));
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
    // A call whose datagrams the kernel gives to another task's socket moves there at the first one
    // handed over (commands to it still find it): only its first few datagrams are handed over (over
    // half of them were, with three tasks, before calls moved), however long it runs.
    assert!(stats.handed_over > 0 && stats.moved > 0, "{stats:?}");
    assert!(stats.handed_over * 4 < stats.datagrams, "{stats:?}");
    assert_eq!(stats.calls, 0, "routes of ended calls are gone: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_before_it_runs_leaves_no_route() {
    let endpoint = UdpEndpoint::bind(SocketAddr::new(LOOPBACK, 0), &[])
        .await
        .unwrap();
    let calls: Vec<_> = (0..5)
        .map(|_| endpoint.call(PeerConfig::default()).unwrap())
        .collect();
    assert_eq!(endpoint.stats().calls, 5);
    drop(calls);
    let deadline = Instant::now() + Duration::from_secs(5);
    while endpoint.stats().calls != 0 && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert_eq!(endpoint.stats().calls, 0, "{:?}", endpoint.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_endpoint_ends_its_calls_and_frees_the_port() {
    let endpoint = UdpEndpoint::bind(SocketAddr::new(LOOPBACK, 0), &[])
        .await
        .unwrap();
    let port = endpoint.local_addr();
    let (client, server) = offer_to(endpoint.call(PeerConfig::default()).unwrap()).await;
    let (mut client, mut server) = (client.spawn(), server.spawn());
    wait_connected(&mut client).await;
    wait_connected(&mut server).await;
    drop(endpoint);
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.next_event().await.is_some() {}
    })
    .await
    .expect("the server's call ends with its port");
    assert!(server.is_ended());
    assert!(
        matches!(
            server.insert_dtmf("1", 100, 70).await,
            Err(touchtone_rtc::InsertDtmfError::CallEnded)
        ),
        "an ended call takes no digits"
    );
    // Every task has closed its socket: the port can be bound again without SO_REUSEPORT.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::UdpSocket::bind(port) {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => panic!("{port} still bound: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    drop(client);
}

#[tokio::test]
async fn a_port_in_use_is_refused_even_to_another_endpoint() {
    let first = UdpEndpoint::bind(SocketAddr::new(LOOPBACK, 0), &[])
        .await
        .unwrap();
    let port = first.local_addr();
    let e = UdpEndpoint::bind(port, &[]).await.unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = plain.local_addr().unwrap();
    let e = UdpEndpoint::bind(taken, &[]).await.unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_port_reads_every_socket_before_its_end_timeouts() {
    // The port runs on a runtime of its own with one thread, which a blocking task stalls for 400 ms
    // (past the 250 ms end timeout) 50 ms into eight callers' tones, as a paused process would. Four tasks
    // run the port, so most callers' datagrams wait in a socket whose task does not run their call.
    let (tx, rx) = std::sync::mpsc::channel();
    let port_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let endpoint = UdpEndpoint::bind_with_tasks(SocketAddr::new(LOOPBACK, 0), &[], 4)
                .await
                .unwrap();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            tx.send((endpoint, tokio::runtime::Handle::current(), stop_tx))
                .unwrap();
            let _ = stop_rx.await;
        });
    });
    let (endpoint, port_rt, stop) = rx.recv().unwrap();
    let mut pairs = vec![];
    for _ in 0..8 {
        let (client, server) = offer_to(endpoint.call(PeerConfig::default()).unwrap()).await;
        pairs.push((client.spawn(), server.spawn()));
    }
    for (client, server) in &mut pairs {
        wait_connected(client).await;
        wait_connected(server).await;
        while !client.can_insert_dtmf().await {
            tokio::task::yield_now().await;
        }
    }
    for (client, _) in &pairs {
        client.insert_dtmf("5", 100, 70).await.unwrap();
    }
    // The first tone starts: 50 ms later the port's thread blocks for 400 ms.
    let (first, _) = &mut pairs[0];
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), first.next_event())
            .await
            .expect("the tone starts")
            .expect("call alive");
        if matches!(&ev, touchtone_rtc::PeerEvent::ToneChange { tone, .. } if *tone == "5") {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    port_rt.spawn(async { std::thread::sleep(Duration::from_millis(400)) });
    for (k, (_, server)) in pairs.iter_mut().enumerate() {
        let got = key_ups(server, 1, DigitSource::Rfc4733, Duration::from_secs(10)).await;
        assert_heard(&got, "5", 100.0, &format!("call {k}"));
    }
    assert!(endpoint.stats().handed_over > 0, "{:?}", endpoint.stats());
    assert!(
        endpoint.stats().stalls >= 1,
        "the 400 ms stall is counted: {:?}",
        endpoint.stats()
    );
    drop(pairs);
    drop(endpoint);
    let _ = stop.send(());
    port_thread.join().unwrap();
}

/// A loopback client that has offered to `server` and read its answer: both ready to start.
async fn offer_to(mut server: Call) -> (Call, Call) {
    let mut client = Call::bind(LOOPBACK, PeerConfig::default()).await.unwrap();
    let offer = client.peer.create_offer().unwrap();
    let answer = server.peer.accept_offer(Instant::now(), &offer).unwrap();
    client.peer.accept_answer(Instant::now(), &answer).unwrap();
    (client, server)
}

/// What a call's event function saw, and whether the call read as ended when the function was dropped.
struct Heard {
    events: tokio::sync::mpsc::UnboundedReceiver<touchtone_rtc::PeerEvent>,
    dropped: tokio::sync::oneshot::Receiver<bool>,
    control: std::sync::Arc<std::sync::OnceLock<touchtone_rtc::CallControl>>,
}

/// The next event a function heard (at most 10 s); `None` once the function is gone.
async fn next_heard(heard: &mut Heard, what: &str) -> Option<touchtone_rtc::PeerEvent> {
    tokio::time::timeout(Duration::from_secs(10), heard.events.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: events in time"))
}

/// Starts `call` with an event function that forwards its events and, when dropped, reports whether
/// the call's control already said it had ended.
fn spawn_heard(call: Call) -> (touchtone_rtc::CallControl, Heard) {
    struct OnDrop {
        control: std::sync::Arc<std::sync::OnceLock<touchtone_rtc::CallControl>>,
        tx: Option<tokio::sync::oneshot::Sender<bool>>,
    }
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let ended = self.control.get().is_some_and(|c| c.is_ended());
            let _ = self.tx.take().unwrap().send(ended);
        }
    }
    let (ev_tx, events) = tokio::sync::mpsc::unbounded_channel();
    let (drop_tx, dropped) = tokio::sync::oneshot::channel();
    let control = std::sync::Arc::new(std::sync::OnceLock::new());
    let guard = OnDrop {
        control: control.clone(),
        tx: Some(drop_tx),
    };
    let started = call.spawn_with_events(move |ev| {
        let _ = &guard;
        let _ = ev_tx.send(ev);
    });
    control.set(started.clone()).unwrap();
    (
        started,
        Heard {
            events,
            dropped,
            control,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_function_hears_every_event_in_order_and_goes_when_the_call_ends() {
    use touchtone_rtc::{ConnectionState, PeerEvent};
    let endpoint = UdpEndpoint::bind(SocketAddr::new(LOOPBACK, 0), &[])
        .await
        .unwrap();
    for on_port in [true, false] {
        let what = if on_port { "shared port" } else { "own socket" };
        let (client, server) = offer_to(match on_port {
            true => endpoint.call(PeerConfig::default()).unwrap(),
            false => Call::bind(LOOPBACK, PeerConfig::default()).await.unwrap(),
        })
        .await;
        let mut client = client.spawn();
        let (control, mut heard) = spawn_heard(server);
        wait_connected(&mut client).await;
        let mut seen = vec![];
        while let Some(ev) = next_heard(&mut heard, what).await {
            let connected = ev == PeerEvent::Connection(ConnectionState::Connected);
            seen.push(ev);
            if connected {
                break;
            }
        }
        assert!(
            control.can_insert_dtmf().await,
            "{what}: the server side sends DTMF"
        );
        client.insert_dtmf("4#7", 80, 50).await.unwrap();
        let mut digits = String::new();
        while digits.len() < 3 {
            match next_heard(&mut heard, what).await {
                Some(PeerEvent::KeyUp(d)) => {
                    assert_eq!(d.source, DigitSource::Rfc4733, "{what}");
                    assert!(
                        (d.duration.as_secs_f64() * 1000.0 - 80.0).abs() <= 20.0,
                        "{what}: {d:?}"
                    );
                    digits.push(d.tone.unwrap());
                }
                Some(ev) => seen.push(ev),
                None => panic!("{what}: the call ended early; saw {seen:?}"),
            }
        }
        assert_eq!(digits, "4#7", "{what}");
        client.close();
        let mut last = None;
        while let Some(ev) = next_heard(&mut heard, what).await {
            last = Some(ev);
        }
        assert_eq!(
            last,
            Some(PeerEvent::Closed),
            "{what}: Closed is the last event"
        );
        let ended_first = tokio::time::timeout(Duration::from_secs(5), heard.dropped)
            .await
            .unwrap_or_else(|_| panic!("{what}: the function is dropped when the call ends"))
            .unwrap();
        assert!(
            ended_first,
            "{what}: the call reads as ended before its function is dropped"
        );
        assert!(heard.control.get().unwrap().is_ended(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_function_that_panics_loses_its_event_not_the_port() {
    use touchtone_rtc::{ConnectionState, PeerEvent};
    // One task runs both calls: a panic that ended it would end the other call too.
    let endpoint = UdpEndpoint::bind_with_tasks(SocketAddr::new(LOOPBACK, 0), &[], 1)
        .await
        .unwrap();
    let mut pairs = vec![];
    for _ in 0..2 {
        let (client, server) = offer_to(endpoint.call(PeerConfig::default()).unwrap()).await;
        pairs.push((client.spawn(), server));
    }
    let (mut client_b, server_b) = pairs.pop().unwrap();
    let (mut client_a, server_a) = pairs.pop().unwrap();
    // Call A's function panics at its first event and forwards the rest.
    let (tx, mut heard_a) = tokio::sync::mpsc::unbounded_channel();
    let mut first = true;
    let control_a = server_a.spawn_with_events(move |ev| {
        if std::mem::take(&mut first) {
            panic!("the application's bug");
        }
        let _ = tx.send(ev);
    });
    let mut server_b = server_b.spawn();
    wait_connected(&mut client_a).await;
    wait_connected(&mut client_b).await;
    wait_connected(&mut server_b).await;
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = heard_a.recv().await {
            if ev == PeerEvent::Connection(ConnectionState::Connected) {
                return true;
            }
        }
        false
    })
    .await
    .expect("call A's later events in time");
    assert!(connected, "call A goes on after its function panicked");
    assert!(!control_a.is_ended());
    client_b.insert_dtmf("9", 80, 50).await.unwrap();
    let got = key_ups(
        &mut server_b,
        1,
        DigitSource::Rfc4733,
        Duration::from_secs(10),
    )
    .await;
    assert_heard(&got, "9", 80.0, "call B on the same task");
}
