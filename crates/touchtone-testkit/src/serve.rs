//! `touchtone serve` as a child process: started, found at the address it prints, signalled, and killed
//! when the test ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server process, killed on drop (resumed first, in case a test stopped it).
#[derive(Debug)]
pub struct ServeProcess {
    /// The process.
    pub child: Child,
    /// The HTTP address it listens on (`host:port`).
    pub addr: String,
    /// Everything it wrote to stderr after its first line.
    stderr: Arc<Mutex<String>>,
}

impl ServeProcess {
    /// Starts `command` (stdout discarded, stderr read) and waits for its first stderr line, which holds
    /// the server's `http://host:port/` URL; later lines are kept for [`stderr`](Self::stderr).
    pub fn start(mut command: Command) -> ServeProcess {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        reader.read_line(&mut line).unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        // Keep reading what the server writes, as a terminal would.
        std::thread::spawn(move || {
            let mut l = String::new();
            while reader.read_line(&mut l).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&l);
                l.clear();
            }
        });
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        ServeProcess {
            child,
            addr,
            stderr,
        }
    }

    /// What the server wrote to stderr after its first line, so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first line the server wrote to stderr (after the address line) that contains `text`, waiting
    /// for it up to 10 s.
    pub fn stderr_line_containing(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains(text))
            {
                return l.to_string();
            }
            assert!(Instant::now() < deadline, "no stderr line with {text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (as `kill` takes it: `-TERM`, `-STOP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Sends SIGTERM and waits (at most `within`) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("-TERM");
        self.wait_for_exit(within)
    }

    /// Waits (at most `within`) for the process to exit.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (as `kill` takes it) to process `pid`; panics when `kill` fails.
pub fn send_signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {signal} {pid}");
}
