//! The `touchtone` command as users run it: exit codes, text and JSON output, bad input. One test binary,
//! one module per subcommand.

mod detect;
mod dial;
mod digit_record;
mod generate;
mod pcap;
mod util;

use util::*;

#[test]
fn help_lists_every_subcommand() {
    let o = touchtone(&["--help"]);
    assert!(o.status.success());
    for sub in ["serve", "dial", "detect", "generate", "pcap"] {
        assert!(stdout(&o).contains(sub), "{sub}");
        assert!(touchtone(&[sub, "--help"]).status.success(), "{sub} --help");
    }
}

#[test]
fn serve_rejects_a_yield_window_out_of_range() {
    let o = touchtone(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--yield-window-ms",
        "50",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--yield-window-ms"), "{}", stderr(&o));
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    let dir = Dir::new();
    // More output than a pipe holds (64 KiB), so the command is still printing when the pipe closes.
    let tones: String = "0123456789*#ABCD".repeat(250);
    let long = dir.path("long.wav");
    let out = touchtone(&[
        "generate",
        &tones,
        "-o",
        long.to_str().unwrap(),
        "--duration",
        "40",
        "--gap",
        "40",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pcap = dir.write(
        "pipe.pcap",
        &util::pcap(ETHERNET, false, &call_packets(&tones[..2000], 8000)),
    );
    for args in [
        vec!["detect", long.to_str().unwrap()],
        vec!["detect", long.to_str().unwrap(), "--format", "json"],
        vec!["pcap", &pcap],
        vec!["dial", "123", "--duration", "40", "--gap", "30"],
    ] {
        let (line, status, err) = first_line_then_close(&args);
        assert!(!line.is_empty(), "{args:?}");
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
