//! Writes SDP offer seeds for the `sdp_offer` and `http_body` targets: offers from `Peer::create_offer`
//! and edits of them into the shapes Chrome and Firefox send (codec lists, telephone-event rates and
//! payload types, event lists, extra m-lines).
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example offers` (from the repository root).

use std::time::Instant;

use touchtone_rtc::{AudioCodec, Peer, PeerConfig};

fn offer(config: PeerConfig) -> String {
    let mut p = Peer::new(Instant::now(), "192.0.2.10:40000".parse().unwrap(), config).unwrap();
    p.create_offer().unwrap()
}

/// Swaps every line starting with `from` for `to` (several lines joined by \r\n), once.
fn edit(sdp: &str, from: &str, to: &str) -> String {
    sdp.lines()
        .map(|l| {
            if l.starts_with(from) {
                to.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let base = offer(PeerConfig::default());
    let pcmu = offer(PeerConfig {
        codecs: vec![AudioCodec::Pcmu],
        ..PeerConfig::default()
    });
    let mixed = offer(PeerConfig {
        codecs: vec![AudioCodec::Opus],
        telephone_event_rates: vec![8000],
        ..PeerConfig::default()
    });
    let m_line = base
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap()
        .to_string();
    let port_proto: Vec<&str> = m_line.split(' ').take(3).collect();
    let proto = port_proto.join(" ");
    // Chrome: opus 111, red 63, G722 9, PCMU 0, PCMA 8, CN 13, telephone-event 110/48000 and 126/8000.
    let chrome = edit(
        &base,
        "m=audio",
        &format!("{proto} 111 63 9 0 8 13 110 126"),
    );
    let chrome = chrome
        .lines()
        .filter(|l| {
            !l.starts_with("a=rtpmap") && !l.starts_with("a=fmtp") && !l.starts_with("a=rtcp-fb")
        })
        .flat_map(|l| {
            if l.starts_with("a=rtcp-mux") {
                vec![
                    l.to_string(),
                    "a=rtcp-rsize".into(),
                    "a=rtpmap:111 opus/48000/2".into(),
                    "a=rtcp-fb:111 transport-cc".into(),
                    "a=fmtp:111 minptime=10;useinbandfec=1".into(),
                    "a=rtpmap:63 red/48000/2".into(),
                    "a=fmtp:63 111/111".into(),
                    "a=rtpmap:9 G722/8000".into(),
                    "a=rtpmap:0 PCMU/8000".into(),
                    "a=rtpmap:8 PCMA/8000".into(),
                    "a=rtpmap:13 CN/8000".into(),
                    "a=rtpmap:110 telephone-event/48000".into(),
                    "a=rtpmap:126 telephone-event/8000".into(),
                ]
            } else {
                vec![l.to_string()]
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n";
    // Firefox: opus 109, G722 9, PCMU 0, PCMA 8, telephone-event 101/8000 with 0-15.
    let firefox = chrome
        .replace(" 111 63 9 0 8 13 110 126", " 109 9 0 8 101")
        .replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:109 opus/48000/2")
        .replace(
            "a=rtcp-fb:111 transport-cc",
            "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1",
        )
        .replace("a=fmtp:111 minptime=10;useinbandfec=1\r\n", "")
        .replace("a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n", "")
        .replace("a=rtpmap:13 CN/8000\r\n", "")
        .replace(
            "a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000",
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15",
        );
    let video = format!(
        "{base}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n"
    );
    let lists = firefox.replace("a=fmtp:101 0-15", "a=fmtp:101 0-11,16,15,12-14");
    let pt72 = firefox.replace(" 101", " 72").replace(":101 ", ":72 ");
    let seeds = [
        ("peer-opus", base.clone()),
        ("peer-pcmu", pcmu),
        ("peer-opus-te8000", mixed),
        ("chrome", chrome),
        ("firefox", firefox),
        ("with-video", video),
        ("event-lists", lists),
        ("te-pt72", pt72),
    ];
    for (name, sdp) in &seeds {
        std::fs::write(dir.join("sdp_offer").join(format!("seed-{name}")), sdp).unwrap();
        let mut body = vec![0x00u8]; // http_body: POST /whip, application/sdp
        body.extend_from_slice(sdp.as_bytes());
        std::fs::write(
            dir.join("http_body").join(format!("seed-offer-{name}")),
            body,
        )
        .unwrap();
    }
}
