//! `touchtone generate`: DTMF tones to a WAV file.

use std::io::{Cursor, Write};
use std::path::PathBuf;

use touchtone::inband::ToneGenerator;

use crate::Failure;

/// Arguments of `touchtone generate`.
#[derive(clap::Args)]
pub struct Args {
    /// The tones: 0-9, A-D, #, * and `,` for a 2 s pause.
    tones: String,
    /// Output WAV file (`-` writes to standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// Tone duration in ms.
    #[arg(long, default_value_t = 400)]
    duration: u32,
    /// Silence after each tone in ms.
    #[arg(long, default_value_t = 50)]
    gap: u32,
    /// Sample rate in Hz (8000, 16000, 44100, 48000, ...).
    #[arg(long, default_value_t = 8000)]
    rate: u32,
    /// Level of each tone in dBm0.
    #[arg(long, default_value_t = -10.0, allow_hyphen_values = true)]
    level: f32,
    /// Level of the high-group tone relative to the low-group tone, in dB.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    twist: f32,
}

/// The most sample bytes a WAV file holds: its RIFF size field (data + 36 header bytes) is 32 bits.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 36;

/// Checks the numeric arguments: finite and in range, each error naming its flag.
fn check(args: &Args) -> Result<(), Failure> {
    if !args.level.is_finite() || !(-60.0..=3.0).contains(&args.level) {
        return Err(Failure::input(format!(
            "--level {} is outside -60..=3 dBm0",
            args.level
        )));
    }
    if !args.twist.is_finite() || !(-20.0..=20.0).contains(&args.twist) {
        return Err(Failure::input(format!(
            "--twist {} is outside -20..=20 dB",
            args.twist
        )));
    }
    if !(8000..=192_000).contains(&args.rate) {
        return Err(Failure::input(format!(
            "--rate {} is outside 8000..=192000 Hz",
            args.rate
        )));
    }
    if !(1..=60_000).contains(&args.duration) {
        return Err(Failure::input(format!(
            "--duration {} is outside 1..=60000 ms",
            args.duration
        )));
    }
    if args.gap > 60_000 {
        return Err(Failure::input(format!(
            "--gap {} is over 60000 ms",
            args.gap
        )));
    }
    Ok(())
}

/// The size of the sample data for `samples` 16-bit samples, or the error when a WAV file cannot hold it.
fn data_bytes(samples: u64) -> Result<u64, Failure> {
    let bytes = samples.saturating_mul(2);
    if bytes > MAX_DATA_BYTES {
        return Err(Failure::input(format!(
            "the tones would make {:.2} GiB of samples; a WAV file holds at most 4 GiB (use fewer tones, \
             a shorter --duration or a lower --rate)",
            bytes as f64 / f64::from(1u32 << 30)
        )));
    }
    Ok(bytes)
}

/// Runs `touchtone generate`.
pub fn run(args: Args) -> Result<(), Failure> {
    check(&args)?;
    let mut g = ToneGenerator::new(args.rate).map_err(|e| Failure::input(e.to_string()))?;
    g.set_level(args.level, args.twist);
    g.push_tones(&args.tones, args.duration, args.gap)
        .map_err(|e| Failure::input(e.to_string()))?;
    // Refused before a sample is rendered: the size is known from the arguments.
    data_bytes(g.remaining() as u64)?;
    let samples = g.render();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: args.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::new());
    {
        let mut w =
            hound::WavWriter::new(&mut bytes, spec).map_err(|e| Failure::input(e.to_string()))?;
        for s in &samples {
            w.write_sample(*s)
                .map_err(|e| Failure::input(e.to_string()))?;
        }
        w.finalize().map_err(|e| Failure::input(e.to_string()))?;
    }
    let bytes = bytes.into_inner();
    if args.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)
            .and_then(|_| out.flush())
            .map_err(|e| Failure::input(format!("stdout: {e}")))?;
    } else {
        std::fs::write(&args.output, &bytes)
            .map_err(|e| Failure::input(format!("{}: {e}", args.output.display())))?;
        eprintln!(
            "wrote {} ({:.2} s at {} Hz)",
            args.output.display(),
            samples.len() as f64 / f64::from(args.rate),
            args.rate
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_wav_data_is_accepted_and_one_more_sample_is_not() {
        let max_samples = MAX_DATA_BYTES / 2;
        assert_eq!(data_bytes(max_samples).unwrap(), max_samples * 2);
        assert!(36 + data_bytes(max_samples).unwrap() <= u64::from(u32::MAX));
        let e = data_bytes(max_samples + 1).unwrap_err();
        assert_eq!(e.status, 2);
        assert!(e.message.contains("4 GiB"), "{}", e.message);
        assert!(data_bytes(u64::MAX).is_err());
    }
}
