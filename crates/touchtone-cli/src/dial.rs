//! `touchtone dial`: the two-peer example, headless, over real loopback UDP.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use touchtone::sender::{DURATION_RANGE_MS, PACKET_INTERVAL_MS};
use touchtone_rtc::{AudioCodec, Call, CallHandle, ConnectionState, PeerConfig, PeerEvent};

use crate::Failure;
use crate::output::outln;
use crate::output::{EventLine, Format, digit_str, json_line, ms, negotiated_str};

/// Arguments of `touchtone dial`.
#[derive(clap::Args)]
pub struct Args {
    /// The tones to dial: 0-9, A-D, #, * and `,` for a 2 s pause.
    #[arg(default_value = "12024561111")]
    tones: String,
    /// Tone duration in ms (clamped to 40..=6000).
    #[arg(long, default_value_t = 400)]
    duration: u32,
    /// Gap between tones in ms (clamped to 30..=6000).
    #[arg(long, default_value_t = 50)]
    gap: u32,
    /// Audio codec of the call.
    #[arg(long, default_value = "opus")]
    codec: AudioCodec,
    /// Send the tones as audio (in the G.711 or Opus stream) and detect them in the received audio.
    #[arg(long)]
    inband: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// A WAV file the caller sends as its audio, looped (read as 8 kHz; upsampled to 48 kHz for Opus).
    #[arg(long)]
    audio: Option<std::path::PathBuf>,
    /// Write the call's decrypted RTP (both directions, as each peer saw it) to DIR/dial-caller.pcapng and
    /// DIR/dial-receiver.pcapng, for Wireshark or `touchtone pcap`.
    #[arg(long, value_name = "DIR")]
    record: Option<std::path::PathBuf>,
    /// Address the peers bind their UDP sockets to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
}

struct Printer {
    format: Format,
    start: Instant,
}

impl Printer {
    fn t(&self, at: Instant) -> f64 {
        ms(at.saturating_duration_since(self.start).as_secs_f64() * 1000.0)
    }

    fn event(&self, peer: &str, ev: &PeerEvent) {
        match self.format {
            Format::Json => {
                json_line(&EventLine::of(peer, ev, self.start));
            }
            Format::Text => match ev {
                _ if let Some((kind, state)) = ev.state() => {
                    outln!("{peer}: {kind} state changed to: {state}")
                }
                PeerEvent::Candidate(c) => outln!("{peer}: ICE candidate: {c}"),
                PeerEvent::Negotiated(n) => outln!("{peer}: negotiated {}", negotiated_str(n)),
                PeerEvent::ToneChange { tone, at } if !tone.is_empty() => {
                    outln!("Tone played: {tone} (at {:.1} ms)", self.t(*at))
                }
                PeerEvent::KeyUp(d) => outln!(
                    "Received: {} ({:.1} ms, {})",
                    digit_str(d),
                    d.duration.as_secs_f64() * 1000.0,
                    d.source.name()
                ),
                _ => {}
            },
        }
    }
}

/// Runs `touchtone dial`.
pub fn run(args: Args) -> Result<(), Failure> {
    touchtone::tone::normalize_tones(&args.tones).map_err(|e| Failure::input(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("cannot start the runtime: {e}")))?;
    rt.block_on(dial(args))
}

async fn dial(args: Args) -> Result<(), Failure> {
    let printer = Printer {
        format: args.format,
        start: Instant::now(),
    };
    let audio = match &args.audio {
        Some(path) => {
            let input = crate::input::open(path)?;
            let name = input.name.clone();
            let pcm = touchtone_capture::read_mono_8k(std::io::BufReader::new(input.reader), 600)
                .map_err(|e| Failure::input(format!("{name}: {e}")))?;
            Some(std::sync::Arc::from(pcm))
        }
        None => None,
    };
    let caller_cfg = PeerConfig {
        codecs: vec![args.codec],
        inband_send: args.inband,
        audio,
        ..PeerConfig::default()
    };
    let callee_cfg = PeerConfig {
        inband_detect: args.inband,
        ..PeerConfig::default()
    };
    let fail = |e: touchtone_rtc::RtcError| Failure::check(e.to_string());
    let mut caller = Call::bind(args.bind, caller_cfg).await.map_err(fail)?;
    let mut callee = Call::bind(args.bind, callee_cfg).await.map_err(fail)?;
    if let Some(dir) = &args.record {
        let bad =
            |e: &dyn std::fmt::Display| Failure::input(format!("--record {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| bad(&e))?;
        caller
            .record_to(&dir.join("dial-caller.pcapng"))
            .map_err(|e| bad(&e))?;
        callee
            .record_to(&dir.join("dial-receiver.pcapng"))
            .map_err(|e| bad(&e))?;
    }
    let offer = caller.peer.create_offer().map_err(fail)?;
    let answer = callee
        .peer
        .accept_offer(Instant::now(), &offer)
        .map_err(fail)?;
    caller
        .peer
        .accept_answer(Instant::now(), &answer)
        .map_err(fail)?;
    let mut a = caller.spawn();
    let mut b = callee.spawn();

    let sent: String = args
        .tones
        .to_ascii_uppercase()
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let mut received: Vec<(char, f64)> = vec![];
    let mut dialed = false;
    let mut hang_up_at: Option<tokio::time::Instant> = None;
    let mut caller_open = true;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15) + estimate(&args);
    loop {
        let hang_up = hang_up_at.unwrap_or(deadline);
        let ev = tokio::select! {
            ev = a.next_event(), if caller_open => match ev {
                Some(e) => Some(("caller", e)),
                None => {
                    caller_open = false;
                    continue;
                }
            },
            ev = b.next_event() => ev.map(|e| ("receiver", e)),
            _ = tokio::time::sleep_until(hang_up), if hang_up_at.is_some() => {
                hang_up_at = None;
                a.close();
                continue;
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Failure::check("timed out: the call did not complete"));
            }
        };
        let Some((peer, ev)) = ev else { break };
        printer.event(peer, &ev);
        match (&ev, peer) {
            (PeerEvent::Connection(ConnectionState::Connected), "caller") if !dialed => {
                dialed = true;
                if args.format == Format::Text {
                    outln!("Sending DTMF: \"{}\"", args.tones);
                }
                insert(&a, &args).await?;
            }
            (PeerEvent::ToneChange { tone: "", .. }, _) => {
                if args.format == Format::Text {
                    outln!("All tones have played. Disconnecting.");
                }
                // The last key-up may still be in flight: give it a moment before hanging up.
                hang_up_at = Some(tokio::time::Instant::now() + Duration::from_millis(300));
            }
            (PeerEvent::KeyUp(d), "receiver") => {
                received.push((d.tone.unwrap_or('?'), d.duration.as_secs_f64() * 1000.0));
            }
            (PeerEvent::Closed, "receiver") => {
                if args.format == Format::Text {
                    outln!("receiver: the caller hung up");
                }
                break;
            }
            _ => {}
        }
    }
    verify(&sent, &received, &args)
}

async fn insert(a: &CallHandle, args: &Args) -> Result<(), Failure> {
    a.insert_dtmf(&args.tones, args.duration, args.gap)
        .await
        .map_err(|e| Failure::check(format!("insertDTMF failed: {e}")))
}

/// How long the tones take to play.
fn estimate(args: &Args) -> Duration {
    let per = u64::from(args.duration.clamp(40, 6000) + args.gap.clamp(30, 6000));
    let pauses = args.tones.matches(',').count() as u64 * 2000;
    Duration::from_millis(per * args.tones.len() as u64 + pauses)
}

fn verify(sent: &str, received: &[(char, f64)], args: &Args) -> Result<(), Failure> {
    let got: String = received.iter().map(|(c, _)| *c).collect();
    if got != sent {
        return Err(Failure::check(format!(
            "sent \"{sent}\" but received \"{got}\""
        )));
    }
    let asked = f64::from(
        args.duration
            .clamp(DURATION_RANGE_MS.0, DURATION_RANGE_MS.1),
    );
    let tolerance = f64::from(PACKET_INTERVAL_MS);
    if let Some((c, d)) = received.iter().find(|(_, d)| (d - asked).abs() > tolerance) {
        return Err(Failure::check(format!(
            "tone {c} lasted {d:.1} ms, more than {tolerance} ms from the {asked} ms asked for"
        )));
    }
    Ok(())
}
