//! `touchtone serve` paused (SIGSTOP) and resumed mid-tone, and run on a CPU it shares with a busy loop:
//! no digit is lost or shortened when its packets arrived.

mod common;

use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use common::{block_on, call_server};
use touchtone_rtc::{PeerConfig, PeerEvent};
use touchtone_testkit::http::event_data;
use touchtone_testkit::serve::{ServeProcess as Server, send_signal as signal};

fn serve(wrapper: &[&str]) -> Server {
    let bin = env!("CARGO_BIN_EXE_touchtone");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--udp-listen",
        "127.0.0.1:0",
    ]);
    Server::start(cmd)
}

/// Streams the server's `digit` events of a call as (digit, duration ms).
fn digits(addr: &str, path: &str) -> mpsc::Receiver<(String, f64)> {
    let events = event_data(addr, &format!("{path}/events"), None);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for json in events {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) else {
                continue;
            };
            if v["type"] == "digit" {
                let d = (
                    v["digit"].as_str().unwrap_or("?").to_string(),
                    v["duration_ms"].as_f64().unwrap_or(-1.0),
                );
                if tx.send(d).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// A client dials `tones` (100 ms tones, 70 ms gaps) into the server; `during(k, server_pid)` runs on its
/// own thread when tone `k` starts, while the client keeps sending. Returns what the server reported.
fn dial_into(
    srv: &Server,
    tones: &str,
    during: impl Fn(usize, u32) + Clone + Send + 'static,
) -> Vec<(String, f64)> {
    let pid = srv.child.id();
    let addr = srv.addr.clone();
    block_on(async move {
        let (mut client, _, path) = call_server(&addr, PeerConfig::default()).await;
        let events = digits(&addr, &path);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !client.can_insert_dtmf().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(tokio::time::Instant::now() < deadline, "connect in time");
        }
        client.insert_dtmf(tones, 100, 70).await.unwrap();
        let mut k = 0;
        loop {
            let ev = tokio::time::timeout_at(deadline, client.next_event())
                .await
                .expect("tones played in time")
                .expect("call alive");
            if let PeerEvent::ToneChange { tone, .. } = ev {
                if tone.is_empty() {
                    break;
                }
                let during = during.clone();
                std::thread::spawn(move || during(k, pid));
                k += 1;
            }
        }
        let mut got = vec![];
        while got.len() < tones.len() {
            match events.recv_timeout(Duration::from_secs(5)) {
                Ok(d) => got.push(d),
                Err(_) => break,
            }
        }
        client.close();
        got
    })
}

fn assert_exact(got: &[(String, f64)], tones: &str) {
    let digits: String = got.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(digits, tones, "{got:?}");
    for (d, ms) in got {
        assert!((ms - 100.0).abs() <= 20.0, "{d} lasted {ms} ms: {got:?}");
    }
}

#[test]
fn a_stall_mid_tone_does_not_shorten_the_digit() {
    let srv = serve(&[]);
    // Tone 1 and 3: the server stops 50 ms into the tone for 400 ms, past the 250 ms end timeout,
    // while the tone's packets keep arriving in its socket.
    let got = dial_into(&srv, "5858", |k, pid| {
        if k % 2 == 1 {
            std::thread::sleep(Duration::from_millis(50));
            signal(pid, "-STOP");
            std::thread::sleep(Duration::from_millis(400));
            signal(pid, "-CONT");
        }
    });
    assert_exact(&got, "5858");
}

#[test]
fn a_server_sharing_its_cpu_with_a_busy_loop_hears_every_digit() {
    // The server pinned to CPU 0 next to a process that never sleeps there.
    if Command::new("taskset").arg("-V").output().is_err() {
        panic!("taskset (util-linux) is needed for this test");
    }
    /// Ends the busy loop however the test ends.
    struct Hog(Child);
    impl Drop for Hog {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _hog = Hog(Command::new("taskset")
        .args(["-c", "0", "sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap());
    let srv = serve(&["taskset", "-c", "0"]);
    let got = dial_into(&srv, "0123456789", |_, _| {});
    assert_exact(&got, "0123456789");
}
