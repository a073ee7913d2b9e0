//! A `nats-server` process for tests of the NATS sink.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server` listening on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
}

impl NatsServer {
    /// Starts `nats-server` and waits until it accepts connections; `None` (with the reason on stderr)
    /// when it is not installed, a panic instead when `TOUCHTONE_REQUIRE_NATS=1`.
    pub fn start() -> Option<NatsServer> {
        let Some(binary) = binary() else {
            let why = "nats-server is not installed (Debian package nats-server)";
            assert!(
                std::env::var("TOUCHTONE_REQUIRE_NATS").as_deref() != Ok("1"),
                "{why}, and TOUCHTONE_REQUIRE_NATS=1"
            );
            eprintln!("skipped: {why}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nats-server");
        let server = NatsServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its `nats://` URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nats-server` on the `PATH`, or in `/usr/sbin` or `/usr/bin` (where Debian installs it).
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}
