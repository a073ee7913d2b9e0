//! NATS against a real `nats-server` started by the test: every event on the bus, commands by
//! request/reply dialing into a call, and two servers sharing one bus.
//!
//! Without the `nats-server` binary (Debian package `nats-server`) the tests say why and pass,
//! unless `TOUCHTONE_REQUIRE_NATS=1` is set.

mod common;

use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use touchtone_testkit::nats::NatsServer;
use touchtone_whip::nats::NatsBridge;
use touchtone_whip::{CallEvent, SinkOptions, WhipConfig};

/// A request with a short timeout; `None` when nobody answered.
async fn ask(client: &Client, subject: String, body: &str) -> Option<serde_json::Value> {
    let req = client.request(subject, Bytes::from(body.to_string()));
    let msg = tokio::time::timeout(Duration::from_secs(2), req)
        .await
        .ok()?
        .ok()?;
    Some(serde_json::from_slice(&msg.payload).unwrap())
}

/// A server with NATS attached.
async fn server_on_bus(nats: &NatsServer, config: WhipConfig) -> (Server, NatsBridge) {
    let srv = start(config).await;
    let client = touchtone_whip::nats::connect(&nats.url()).await.unwrap();
    let bridge = NatsBridge::attach(&srv.hub, client, SinkOptions::default())
        .await
        .unwrap();
    (srv, bridge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_bus_and_requests_dial_into_and_hang_up_the_call() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (srv, _bridge) = server_on_bus(
        &nats,
        WhipConfig {
            instance: Some("alpha".into()),
            ..config()
        },
    )
    .await;
    let backend = touchtone_whip::nats::connect(&nats.url()).await.unwrap();
    let mut bus = backend.subscribe("touchtone.calls.>").await.unwrap();
    backend.flush().await.unwrap();

    let (mut client, location) = connect_client(srv.addr).await;
    let id = call_id(&location);
    let mut sse = srv.hub.subscribe(&id, None).unwrap();
    client.insert_dtmf("47", 80, 60).await.unwrap();

    // A backend dials into the call over the bus; the caller hears the digits.
    let subject = format!("touchtone.calls.{id}.dtmf");
    let reply = ask(
        &backend,
        subject.clone(),
        r#"{"tones":"1#","duration":100,"gap":70}"#,
    )
    .await;
    let reply = reply.expect("no reply to the dtmf request");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["instance"], "alpha");
    let keys = heard(&mut client, 2, Duration::from_secs(5)).await;
    assert_eq!(keys.iter().map(|k| k.0).collect::<String>(), "1#");
    for (k, d) in &keys {
        let ms = d.as_secs_f64() * 1000.0;
        assert!((ms - 100.0).abs() <= 20.0, "{k} lasted {ms} ms");
    }
    // Errors come back with their W3C names.
    let bad = ask(&backend, subject.clone(), r#"{"tones":"1X"}"#)
        .await
        .unwrap();
    assert_eq!(bad["error"], "InvalidCharacterError", "{bad}");
    let bad = ask(&backend, subject.clone(), "not json").await.unwrap();
    assert_eq!(bad["error"], "InvalidJson", "{bad}");
    // A call no server has gets no reply.
    let unknown = format!("touchtone.calls.{}.dtmf", "0".repeat(32));
    assert_eq!(ask(&backend, unknown, r#"{"tones":"1"}"#).await, None);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let hung = ask(&backend, format!("touchtone.calls.{id}.hangup"), "").await;
    assert_eq!(hung.expect("no reply to hangup")["ok"], true);
    assert!(eventually(Duration::from_secs(5), || !srv.hub.has_call(&id)).await);

    // The server's own stream, to compare with the bus.
    let mut expected = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(5), sse.next())
        .await
        .unwrap()
    {
        let CallEvent::Event { id: seq, json } = ev else {
            panic!("lagged");
        };
        let mut v = serde_json::from_str::<serde_json::Value>(&json).unwrap();
        // Digit records name their call; the bus's records all do, checked below.
        v.as_object_mut().unwrap().remove("call");
        expected.push((seq, v));
    }
    assert_eq!(expected.last().unwrap().1["type"], "closed");

    // Every event arrived on touchtone.calls.<id>.<type>, in order, as the SSE object plus
    // instance, call and seq.
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let msg = tokio::time::timeout(Duration::from_secs(5), bus.next())
            .await
            .unwrap_or_else(|_| panic!("missing events after {got:#?}"))
            .unwrap();
        if msg.subject.ends_with(".dtmf") || msg.subject.ends_with(".hangup") {
            continue; // the commands themselves
        }
        let mut v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(
            msg.subject.as_str(),
            format!("touchtone.calls.{id}.{}", v["type"].as_str().unwrap())
        );
        assert_eq!(v["instance"], "alpha");
        assert_eq!(v["call"], id.as_str());
        let seq = v["seq"].as_u64().unwrap();
        let obj = v.as_object_mut().unwrap();
        for k in ["instance", "call", "seq"] {
            obj.remove(k);
        }
        got.push((seq, v));
    }
    assert_eq!(got, expected);
    let digits: String = got
        .iter()
        .filter(|(_, v)| v["type"] == "digit")
        .map(|(_, v)| v["digit"].as_str().unwrap())
        .collect();
    assert_eq!(digits, "47");
    let tones: Vec<&str> = got
        .iter()
        .filter(|(_, v)| v["type"] == "tonechange")
        .map(|(_, v)| v["tone"].as_str().unwrap())
        .collect();
    assert_eq!(tones, ["1", "#", ""]);
    let m = &srv.hub.metrics().sinks[0];
    assert_eq!((m.name.as_str(), m.failed, m.dropped), ("nats", 0, 0));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_bus_and_each_location_points_at_its_owner() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let on_bus = |name: &str| WhipConfig {
        instance: Some(name.into()),
        public_url: Some(format!("https://{name}.touchtone.test:8443/")),
        ..config()
    };
    let (east, _e) = server_on_bus(&nats, on_bus("east")).await;
    let (west, _w) = server_on_bus(&nats, on_bus("west")).await;
    let backend = touchtone_whip::nats::connect(&nats.url()).await.unwrap();
    let mut digits = backend.subscribe("touchtone.calls.*.digit").await.unwrap();
    let mut all = backend.subscribe("touchtone.calls.>").await.unwrap();
    backend.flush().await.unwrap();

    let (a, loc_a) = connect_client(east.addr).await;
    let (mut b, loc_b) = connect_client(west.addr).await;
    assert!(
        loc_a.starts_with("https://east.touchtone.test:8443/whip/"),
        "{loc_a}"
    );
    assert!(
        loc_b.starts_with("https://west.touchtone.test:8443/whip/"),
        "{loc_b}"
    );
    let (id_a, id_b) = (call_id(&loc_a), call_id(&loc_b));
    a.insert_dtmf("135", 80, 60).await.unwrap();
    b.insert_dtmf("246", 80, 60).await.unwrap();

    // The backend acts on the west call without knowing where it runs: west answers.
    let reply = ask(
        &backend,
        format!("touchtone.calls.{id_b}.dtmf"),
        r#"{"tones":"9","duration":80}"#,
    )
    .await
    .expect("no reply");
    assert_eq!(
        (reply["ok"].clone(), reply["instance"].clone()),
        (true.into(), "west".into())
    );
    assert_eq!(heard(&mut b, 1, Duration::from_secs(5)).await[0].0, '9');

    let mut seen: Vec<(String, String, String)> = Vec::new();
    while seen.len() < 6 {
        let msg = tokio::time::timeout(Duration::from_secs(5), digits.next())
            .await
            .unwrap_or_else(|_| panic!("digits so far: {seen:?}"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        seen.push((
            v["instance"].as_str().unwrap().into(),
            v["call"].as_str().unwrap().into(),
            v["digit"].as_str().unwrap().into(),
        ));
    }
    let of = |inst: &str, id: &str| -> String {
        seen.iter()
            .filter(|(i, c, _)| i == inst && c == id)
            .map(|(_, _, d)| d.as_str())
            .collect()
    };
    assert_eq!(of("east", &id_a), "135");
    assert_eq!(of("west", &id_b), "246");
    // The wide subscription saw both calls' events too.
    let mut calls = std::collections::HashSet::new();
    while calls.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), all.next())
            .await
            .expect("events of both calls on touchtone.calls.>")
            .unwrap();
        calls.insert(msg.subject.split('.').nth(2).unwrap().to_string());
    }
    assert!(calls.contains(&id_a) && calls.contains(&id_b));
    a.close();
    b.close();
    east.stop().await;
    west.stop().await;
}
