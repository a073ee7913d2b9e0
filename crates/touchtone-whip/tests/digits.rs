//! A real call into the endpoint: the caller dials, and the server's event stream carries each key press
//! as the digit record (docs/digit-record.md), naming the call.

mod common;

use std::time::{Duration, Instant};

use common::*;
use touchtone::{DigitRecord, DigitSource, EndCause};
use touchtone_rtc::{Call, ConnectionState, PeerConfig, PeerEvent};

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
