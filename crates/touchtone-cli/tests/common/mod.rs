//! Support for the tests that run `touchtone serve` as a process: a Rust WebRTC client calling it.

use std::future::Future;
use std::time::Instant;

use touchtone_rtc::{Call, CallHandle, PeerConfig};
use touchtone_testkit::http;

/// Runs `f` to completion on a current-thread tokio runtime with I/O and timers.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A client (`Call` with `config` on loopback UDP) whose offer the server at `addr` answered with 201,
/// running; returns it with the SDP answer and the call's `Location`.
pub async fn call_server(addr: &str, config: PeerConfig) -> (CallHandle, String, String) {
    let mut call = Call::bind("127.0.0.1".parse().unwrap(), config)
        .await
        .unwrap();
    let offer = call.peer.create_offer().unwrap();
    let r = http::request(
        addr,
        "POST",
        "/whip",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("location").expect("Location header");
    call.peer.accept_answer(Instant::now(), &r.body).unwrap();
    (call.spawn(), r.body, location)
}
