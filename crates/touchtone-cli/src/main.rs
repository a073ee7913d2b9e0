//! `touchtone`: DTMF for WebRTC calls from the command line.

mod detect;
mod dial;
mod generate;
mod heap;
mod input;
mod output;
mod pcap;
mod progress;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// DTMF ("touch-tone") for WebRTC calls: send, receive, generate and detect key presses.
#[derive(Parser)]
#[command(name = "touchtone", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a WebRTC DTMF endpoint with a web page: a browser dials, the server shows what it heard.
    Serve(Box<serve::Args>),
    /// Connect two WebRTC peers over loopback and dial tones from one to the other.
    Dial(dial::Args),
    /// Find DTMF digits in a WAV or Ogg Opus recording.
    Detect(detect::Args),
    /// Write DTMF tones to a WAV file.
    Generate(generate::Args),
    /// List the RFC 4733 digits in a packet capture (pcap or pcapng).
    Pcap(pcap::Args),
}

/// A failure the user must see: one line on stderr and an exit status.
#[derive(Debug)]
pub struct Failure {
    /// The message, without a trailing newline.
    pub message: String,
    /// The exit status: 1 for a failed check, 2 for bad input or usage.
    pub status: u8,
}

impl Failure {
    /// Bad input (file, arguments): exit status 2.
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            status: 2,
        }
    }

    /// A run that did not achieve what it checks: exit status 1.
    pub fn check(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            status: 1,
        }
    }
}

fn main() -> ExitCode {
    let small_pages = heap::use_small_pages();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A closed stderr must not panic the task that logs (tracing-subscriber reports write errors
        // with eprintln!, which panics on a closed pipe).
        .log_internal_errors(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOUCHTONE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    if let Err(e) = small_pages {
        tracing::info!("transparent huge pages stay on: {e}");
    }
    let result = match cli.command {
        Command::Serve(a) => serve::run(*a),
        Command::Dial(a) => dial::run(a),
        Command::Detect(a) => detect::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Pcap(a) => pcap::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("touchtone: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}
