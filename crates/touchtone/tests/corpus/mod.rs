//! The talk-off corpus on disk (scripts/make-talkoff-corpus): files, their kind of content, and a minimal
//! reader for its WAV files (8 kHz 16-bit PCM, mu-law or A-law), shared by the test and the measuring example.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use touchtone::inband::g711::{alaw_to_linear, ulaw_to_linear};
use touchtone::inband::{DetectedDigit, Detector, DetectorConfig};

/// One corpus file.
#[derive(Debug, Clone)]
pub struct Clip {
    pub path: PathBuf,
    /// The directory it sits in: speech-espeak, music-midi, ...
    pub kind: String,
    /// `pcm`, `ulaw` or `alaw`.
    pub encoding: String,
}

/// Every `.wav` under `root`, sorted.
pub fn clips(root: &Path) -> Vec<Clip> {
    let mut out = vec![];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "wav") {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let encoding = match name.rsplit('.').nth(1) {
                    Some("ulaw") => "ulaw",
                    Some("alaw") => "alaw",
                    _ => "pcm",
                };
                let kind = p
                    .parent()
                    .filter(|d| *d != root)
                    .and_then(|d| d.file_name())
                    .map_or("sample".into(), |d| d.to_string_lossy().into_owned());
                out.push(Clip {
                    path: p,
                    kind,
                    encoding: encoding.into(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Samples of an 8 kHz mono WAV file: 16-bit PCM, mu-law or A-law (plain or extensible `fmt `).
pub fn read_wav(path: &Path) -> Vec<i16> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        &b[..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{}",
        path.display()
    );
    let mut pos = 12;
    let mut format = None;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &b[pos + 8..(pos + 8 + len).min(b.len())];
        if id == b"fmt " {
            let mut tag = u16::from_le_bytes([body[0], body[1]]);
            if tag == 0xfffe {
                tag = u16::from_le_bytes([body[24], body[25]]);
            }
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            let bits = u16::from_le_bytes([body[14], body[15]]);
            assert_eq!((channels, rate), (1, 8000), "{}", path.display());
            format = Some((tag, bits));
        } else if id == b"data" {
            return match format.expect("fmt before data") {
                (1, 16) => body
                    .chunks_exact(2)
                    .map(|s| i16::from_le_bytes([s[0], s[1]]))
                    .collect(),
                (7, 8) => body.iter().map(|&s| ulaw_to_linear(s)).collect(),
                (6, 8) => body.iter().map(|&s| alaw_to_linear(s)).collect(),
                f => panic!("{}: unsupported format {f:?}", path.display()),
            };
        }
        pos += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Every digit (key-up events) the detector reports on `samples`, fed in 20 ms frames.
pub fn detect(cfg: DetectorConfig, samples: &[i16]) -> Vec<DetectedDigit> {
    let mut d = Detector::with_config(8000, cfg);
    let mut out = vec![];
    for frame in samples.chunks(160) {
        d.process_i16(frame);
        out.extend(std::iter::from_fn(|| d.poll_event()).filter(|e| e.end));
    }
    d.flush();
    out.extend(std::iter::from_fn(|| d.poll_event()).filter(|e| e.end));
    out
}

/// Where the full corpus is: `TOUCHTONE_TALKOFF_CORPUS`, or `target/talkoff-corpus` in the workspace.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("TOUCHTONE_TALKOFF_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/talkoff-corpus"),
        PathBuf::from,
    )
}
