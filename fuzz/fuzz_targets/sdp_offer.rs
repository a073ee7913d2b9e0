//! SDP offers from arbitrary text, through the telephone-event rewrite (`negotiation::normalize`) and a
//! peer's `accept_offer`, as `POST /whip` and `Call` hand them over. No panic; the rewrite is stable (a
//! second pass changes nothing) and never keeps a telephone-event without DTMF events or on payload types
//! 64-95; an accepted offer yields an answer whose negotiated telephone-event follows the rate rule.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use touchtone::EventSet;
use touchtone_rtc::negotiation::normalize;
use touchtone_rtc::{Peer, PeerConfig};

fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    let n = normalize(sdp);
    for e in &n.events {
        assert!(!e.common.is_empty(), "{e:?} kept");
        assert!(!(64..=95).contains(&e.pt), "{e:?} kept");
        assert!(e.remote.is_superset(&e.common));
        assert!(EventSet::DTMF.is_superset(&e.common));
        assert!(e.clock_rate > 0);
    }
    let again = normalize(&n.sdp);
    assert_eq!(again.sdp, n.sdp, "normalize is not stable");
    assert!(
        again.removed.is_empty(),
        "removed on the second pass: {:?}",
        again.removed
    );

    let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let now = t0();
    let mut peer = Peer::new(now, local, PeerConfig::default()).expect("peer");
    let Ok(answer) = peer.accept_offer(now, sdp) else {
        return;
    };
    assert!(answer.starts_with("v=0"), "{answer}");
    let neg = peer.negotiated().expect("negotiated after an answer");
    if let Some(pt) = neg.tele_pt {
        let rate = neg.tele_clock_rate.expect("a rate with the payload type");
        assert!(rate == neg.codec.clock_rate() || rate == 8000, "{neg:?}");
        assert!(!(64..=95).contains(&*pt), "{neg:?}");
        assert!(!neg.tele_events.is_empty(), "{neg:?}");
        assert!(EventSet::DTMF.is_superset(&neg.tele_events));
    }
    // The answered peer runs: timers, outgoing ICE checks, DTMF requests.
    let _ = peer.handle_timeout(now + Duration::from_millis(50));
    while peer.poll_transmit().is_some() {}
    while peer.poll_event().is_some() {}
    let _ = peer.insert_dtmf(now, "1#", 100, 70);
    peer.close(now + Duration::from_millis(60));
});
