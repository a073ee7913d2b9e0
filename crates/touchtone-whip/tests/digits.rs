//! A real call into the endpoint: the caller dials, and the server's event stream carries each key press
//! as the digit record (docs/digit-record.md), naming the call.

mod common;

use std::time::{Duration, Instant};

use common::*;
use touchtone::{DigitRecord, DigitSource, EndCause};
use touchtone_rtc::{Call, ConnectionState, PeerConfig, PeerEvent};
use touchtone_whip::WhipConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_each_digit_as_the_digit_record() {
    let srv = start(config()).await;
    let mut caller = Call::bind("127.0.0.1".parse().unwrap(), PeerConfig::default())
        .await
        .unwrap();
    let offer = caller.peer.create_offer().unwrap();
    let r = post_sdp(srv.addr, &offer).await;
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("location").unwrap();
    let id = location.strip_prefix("/whip/").unwrap().to_string();
    caller.peer.accept_answer(Instant::now(), &r.body).unwrap();
    let mut events = SseReader::open(srv.addr, &format!("{location}/events"), &[])
        .await
        .unwrap();
    let mut handle = caller.spawn();
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = handle.next_event().await {
            if ev == PeerEvent::Connection(ConnectionState::Connected) {
                return true;
            }
        }
        false
    });
    assert!(connected.await.unwrap(), "the call did not connect");
    handle.insert_dtmf("1#", 100, 70).await.unwrap();

    let mut digits = vec![];
    let mut key_down = None;
    while digits.len() < 2 {
        let ev = events
            .next()
            .await
            .expect("the stream ended before the digits");
        let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
        if v["type"] == "keydown" {
            key_down = v["t_ms"].as_f64();
        }
        if v["type"] == "digit" {
            let d: DigitRecord = serde_json::from_str(&ev.data).unwrap();
            // The key-up time is on the clock of the call's other events: about 100 ms after key-down.
            let held = d.t_ms.unwrap() - key_down.take().expect("key-down before key-up");
            assert!((60.0..=140.0).contains(&held), "{held} ms: {}", ev.data);
            digits.push(d);
        }
    }
    for (d, (digit, event)) in digits.iter().zip([('1', 1), ('#', 11)]) {
        assert_eq!((d.v, d.digit, d.event), (1, Some(digit), event), "{d:?}");
        assert_eq!(d.source, DigitSource::Rfc4733);
        assert!((d.duration_ms - 100.0).abs() <= 20.0, "{d:?}");
        assert_eq!(d.call.as_deref(), Some(id.as_str()));
        assert_eq!(d.peer.as_deref(), Some("server"));
        assert_eq!(d.end, Some(EndCause::EndPacket));
        assert!(d.ssrc.is_some());
        assert_eq!((d.start_ms, d.channel, d.pt), (None, None, None));
    }
    assert!(digits[1].t_ms.unwrap() - digits[0].t_ms.unwrap() > 150.0);
    handle.close();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_60_ms_packets_sends_a_third_of_the_packets_when_idle_and_whole_digits() {
    let mut counts = vec![];
    for ptime in [touchtone_rtc::Ptime::Ms20, touchtone_rtc::Ptime::Ms60] {
        let srv = start(WhipConfig { ptime, ..config() }).await;
        let (mut client, location) = connect_client(srv.addr).await;
        let r = request(
            srv.addr,
            "POST",
            &format!("{location}/dtmf"),
            &[("content-type", "application/json")],
            br#"{"tones":"147","duration":100,"interToneGap":70}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        let keys = heard(&mut client, 3, Duration::from_secs(5)).await;
        let keys: Vec<char> = keys
            .iter()
            .filter(|(_, d)| d.as_millis().abs_diff(100) <= 20)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(keys, ['1', '4', '7'], "{ptime} ms: whole digits");
        // Then idle, where the longer packets go.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = client.control().stats().datagrams_in;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let received = client.control().stats().datagrams_in - before;
        counts.push(received as f64 / start.elapsed().as_secs_f64());
    }
    // Idle, 50 audio packets a second at 20 ms and 17 at 60 ms (RTCP comes on top of both).
    assert!(
        counts[1] < counts[0] * 0.45,
        "datagrams per second from the server: {counts:?}"
    );
}

/// A caller whose DTLS certificate is not the one its offer's fingerprint names (a man in the middle)
/// never gets media through: the server reports its connection `failed` and ends the call at once,
/// instead of keeping it until the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_certificate_does_not_match_its_fingerprint_is_hung_up() {
    let srv = start(WhipConfig {
        idle_timeout: Duration::from_secs(60),
        ..config()
    })
    .await;
    let mut caller = Call::bind("127.0.0.1".parse().unwrap(), PeerConfig::default())
        .await
        .unwrap();
    let offer = caller.peer.create_offer().unwrap();
    let line = offer
        .lines()
        .find(|l| l.starts_with("a=fingerprint:sha-256 "))
        .expect("a fingerprint")
        .to_string();
    // Another certificate's hash: its last byte changed.
    let last = if line.ends_with('0') { "1" } else { "0" };
    let forged = offer.replace(&line, &format!("{}{last}", &line[..line.len() - 1]));
    let r = post_sdp(srv.addr, &forged).await;
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("location").unwrap();
    caller.peer.accept_answer(Instant::now(), &r.body).unwrap();
    let mut events = SseReader::open(srv.addr, &format!("{location}/events"), &[])
        .await
        .unwrap();
    let _handle = caller.spawn();
    let mut states = vec![];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.next().await {
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
            match v["type"].as_str() {
                Some("state") if v["kind"] == "connection" => {
                    states.push(v["state"].as_str().unwrap_or_default().to_string());
                }
                Some("closed") => return true,
                _ => {}
            }
        }
        false
    })
    .await;
    assert_eq!(ended, Ok(true), "the call was not ended; states {states:?}");
    assert_eq!(states, ["connecting", "failed"]);
    assert!(eventually(Duration::from_secs(5), || srv.hub.list().is_empty()).await);
    srv.stop().await;
}
