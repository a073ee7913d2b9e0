//! The negotiation matrix: every codec and telephone-event pairing real peers offer, what we answer, and
//! whether DTMF then flows both ways over real loopback UDP (both sides ours; the offer is shaped like
//! the real peer's by editing the SDP, as signaling servers do).

mod common;

use std::time::{Duration, Instant};

use common::{LOOPBACK, assert_heard, wait_connected};
use touchtone::{DtmfError, EventSet};
use touchtone_rtc::{
    AudioCodec, Call, CallHandle, DigitSource, DurationClock, InsertDtmfError, Peer, PeerConfig,
};

/// The payload type an `a=rtpmap` line gives `name/rate`.
fn pt_of(sdp: &str, name_rate: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.strip_prefix("a=rtpmap:")?;
        let (pt, spec) = rest.split_once(' ')?;
        spec.to_ascii_lowercase()
            .starts_with(&name_rate.to_ascii_lowercase())
            .then(|| pt.parse().ok())?
    })
}

fn is_pt_line(l: &str, pt: u8) -> bool {
    ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"].iter().any(|p| {
        l.strip_prefix(p).is_some_and(|r| {
            r.split([' ', '\t'])
                .next()
                .is_some_and(|x| x == pt.to_string())
        })
    })
}

/// Rewrites an SDP line by line; `m` edits the audio m= line's format list.
fn edit(
    sdp: &str,
    mut m: impl FnMut(&mut Vec<String>),
    mut line: impl FnMut(&str) -> Vec<String>,
) -> String {
    let mut out = vec![];
    for l in sdp.lines() {
        if l.starts_with("m=audio") {
            let mut parts: Vec<String> = l.split(' ').map(String::from).collect();
            let mut fmts = parts.split_off(3);
            m(&mut fmts);
            parts.extend(fmts);
            out.push(parts.join(" "));
        } else {
            out.extend(line(l));
        }
    }
    out.join("\r\n") + "\r\n"
}

/// Sets (or with `None` removes) the fmtp line of a payload type.
fn set_fmtp(sdp: &str, pt: u8, value: Option<&str>) -> String {
    let had = sdp.lines().any(|l| l.starts_with(&format!("a=fmtp:{pt}")));
    edit(
        sdp,
        |_| {},
        |l| {
            if l.starts_with(&format!("a=fmtp:{pt}")) {
                value
                    .map(|v| vec![format!("a=fmtp:{pt} {v}").trim_end().to_string()])
                    .unwrap_or_default()
            } else if !had && l.starts_with(&format!("a=rtpmap:{pt} ")) {
                let mut v = vec![l.to_string()];
                if let Some(val) = value {
                    v.push(format!("a=fmtp:{pt} {val}").trim_end().to_string());
                }
                v
            } else {
                vec![l.to_string()]
            }
        },
    )
}

/// Moves a payload type to another number.
fn renumber(sdp: &str, from: u8, to: u8) -> String {
    let (f, t) = (from.to_string(), to.to_string());
    edit(
        sdp,
        |fmts| {
            fmts.iter_mut()
                .filter(|x| **x == f)
                .for_each(|x| *x = t.clone())
        },
        |l| {
            if is_pt_line(l, from) {
                let (head, rest) = l.split_once(':').unwrap();
                vec![format!("{head}:{}", rest.replacen(&f, &t, 1))]
            } else {
                vec![l.to_string()]
            }
        },
    )
}

/// Removes a payload type.
fn drop_pt(sdp: &str, pt: u8) -> String {
    let p = pt.to_string();
    edit(
        sdp,
        |fmts| fmts.retain(|x| *x != p),
        |l| {
            if is_pt_line(l, pt) {
                vec![]
            } else {
                vec![l.to_string()]
            }
        },
    )
}

/// Puts a codec we do not speak first.
fn add_first(sdp: &str, pt: u8, rtpmap: &str) -> String {
    let mut added = false;
    edit(
        sdp,
        |fmts| fmts.insert(0, pt.to_string()),
        |l| {
            if l.starts_with("a=rtpmap:") && !added {
                added = true;
                vec![format!("a=rtpmap:{pt} {rtpmap}"), l.to_string()]
            } else {
                vec![l.to_string()]
            }
        },
    )
}

fn answer_te(answer: &str) -> Vec<(u8, String, Option<String>)> {
    answer
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("a=rtpmap:")?;
            let (pt, spec) = rest.split_once(' ')?;
            spec.starts_with("telephone-event").then(|| {
                let fmtp = answer
                    .lines()
                    .find_map(|f| f.strip_prefix(&format!("a=fmtp:{pt} ")).map(String::from));
                (pt.parse().unwrap(), spec.to_string(), fmtp)
            })
        })
        .collect()
}

/// One row: the offerer's config, how its offer is edited, and what the answer must hold.
struct Row {
    name: &'static str,
    offerer: PeerConfig,
    shape: Box<dyn Fn(&str) -> String>,
    codec: Option<AudioCodec>,
    /// (telephone-event rtpmap, fmtp) expected in the answer; `None`: no DTMF.
    te: Option<(&'static str, &'static str)>,
}

fn cfg(codecs: &[AudioCodec], rates: &[u32]) -> PeerConfig {
    PeerConfig {
        codecs: codecs.to_vec(),
        telephone_event_rates: rates.to_vec(),
        mixed_clock_durations: DurationClock::Event,
        ..PeerConfig::default()
    }
}

fn rows() -> Vec<Row> {
    use AudioCodec::*;
    let same = || -> Box<dyn Fn(&str) -> String> { Box::new(|s: &str| s.to_string()) };
    let fmtp8k = |v: Option<&'static str>| -> Box<dyn Fn(&str) -> String> {
        Box::new(move |s: &str| set_fmtp(s, pt_of(s, "telephone-event/8000").unwrap(), v))
    };
    let mut rows = vec![
        Row {
            name: "Opus + te/48000 (Chrome, first choice)",
            offerer: cfg(&[Opus], &[48_000]),
            shape: same(),
            codec: Some(Opus),
            te: Some(("telephone-event/48000", "0-15")),
        },
        Row {
            name: "Opus + te/8000 only (Firefox)",
            offerer: cfg(&[Opus], &[8000]),
            shape: same(),
            codec: Some(Opus),
            te: Some(("telephone-event/8000", "0-15")),
        },
        Row {
            name: "Opus + both (Chrome)",
            offerer: cfg(&[Opus], &[48_000, 8000]),
            shape: same(),
            codec: Some(Opus),
            te: Some(("telephone-event/48000", "0-15")),
        },
        Row {
            name: "PCMU + te/8000",
            offerer: cfg(&[Pcmu], &[]),
            shape: same(),
            codec: Some(Pcmu),
            te: Some(("telephone-event/8000", "0-15")),
        },
        Row {
            name: "PCMA + te/8000",
            offerer: cfg(&[Pcma], &[]),
            shape: same(),
            codec: Some(Pcma),
            te: Some(("telephone-event/8000", "0-15")),
        },
        Row {
            name: "G722 first, then PCMU + te/8000 (G722's RTP clock is 8000; we answer PCMU)",
            offerer: cfg(&[Pcmu], &[]),
            shape: Box::new(|s: &str| add_first(s, 9, "G722/8000")),
            codec: Some(Pcmu),
            te: Some(("telephone-event/8000", "0-15")),
        },
        Row {
            name: "a first codec we do not speak (iLBC), then Opus + te/48000",
            offerer: cfg(&[Opus], &[48_000]),
            shape: Box::new(|s: &str| add_first(s, 102, "iLBC/8000")),
            codec: Some(Opus),
            te: Some(("telephone-event/48000", "0-15")),
        },
        Row {
            name: "te on payload type 96",
            offerer: cfg(&[Pcmu], &[]),
            shape: Box::new(|s: &str| renumber(s, pt_of(s, "telephone-event/8000").unwrap(), 96)),
            codec: Some(Pcmu),
            te: Some(("telephone-event/8000", "0-15")),
        },
        Row {
            name: "te on payload type 127",
            offerer: cfg(&[Opus], &[8000]),
            shape: Box::new(|s: &str| renumber(s, pt_of(s, "telephone-event/8000").unwrap(), 127)),
            codec: Some(Opus),
            te: Some(("telephone-event/8000", "0-15")),
        },
        Row {
            name: "te on payload type 35 (the static range)",
            offerer: cfg(&[Pcma], &[]),
            shape: Box::new(|s: &str| renumber(s, pt_of(s, "telephone-event/8000").unwrap(), 35)),
            codec: Some(Pcma),
            te: Some(("telephone-event/8000", "0-15")),
        },
        Row {
            name: "te on payload type 72: RTCP's range under rtcp-mux (RFC 5761), DTMF unavailable",
            offerer: cfg(&[Pcmu], &[]),
            shape: Box::new(|s: &str| renumber(s, pt_of(s, "telephone-event/8000").unwrap(), 72)),
            codec: Some(Pcmu),
            te: None,
        },
        Row {
            name: "no telephone-event at all: DTMF unavailable",
            offerer: PeerConfig {
                telephone_event: false,
                ..cfg(&[Opus, Pcmu], &[])
            },
            shape: same(),
            codec: Some(Opus),
            te: None,
        },
        Row {
            name: "te lists only non-DTMF events (16): DTMF unavailable",
            offerer: cfg(&[Pcmu], &[]),
            shape: fmtp8k(Some("16")),
            codec: Some(Pcmu),
            te: None,
        },
    ];
    for (fmtp, answer) in [
        (Some("0-15"), "0-15"),
        (Some("0-16"), "0-15"),
        (Some("0-15,66,70"), "0-15"),
        (None, "0-15"),
        (Some("0-15,66"), "0-15"),
        (Some("0-11,16"), "0-11"),
        (Some("0-15,32-41"), "0-15"),
        (Some("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"), "0-15"),
        (Some("1-15"), "1-15"),
        (Some(""), "0-15"),
        (Some("0-256"), "0-15"),
    ] {
        rows.push(Row {
            name: Box::leak(format!("PCMU + te/8000 with fmtp {fmtp:?}").into_boxed_str()),
            offerer: cfg(&[Pcmu], &[]),
            shape: fmtp8k(fmtp),
            codec: Some(Pcmu),
            te: Some(("telephone-event/8000", answer)),
        });
    }
    rows
}

/// (tone, duration ms) of `n` RFC 4733 key-ups.
async fn key_ups(h: &mut CallHandle, n: usize) -> Vec<(char, f64)> {
    common::key_ups(h, n, DigitSource::Rfc4733, Duration::from_secs(10)).await
}

/// Checks the answer of one row, then (when DTMF was agreed) runs it over loopback UDP both ways.
async fn check_row(row: &Row) {
    let mut a = Call::bind(LOOPBACK, row.offerer.clone()).await.unwrap();
    let callee = PeerConfig {
        mixed_clock_durations: DurationClock::Event,
        ..PeerConfig::default()
    };
    let mut b = Call::bind(LOOPBACK, callee).await.unwrap();
    let offer = (row.shape)(&a.peer.create_offer().unwrap());
    let answer = b
        .peer
        .accept_offer(Instant::now(), &offer)
        .unwrap_or_else(|e| panic!("{}: {e}\n{offer}", row.name));
    let n = b.peer.negotiated().unwrap();
    assert_eq!(Some(n.codec), row.codec, "{}", row.name);
    let te = answer_te(&answer);
    match row.te {
        Some((rtpmap, fmtp)) => {
            assert_eq!(
                te.len(),
                1,
                "{}: one telephone-event in the answer\n{answer}",
                row.name
            );
            assert_eq!(te[0].1, rtpmap, "{}", row.name);
            assert_eq!(
                te[0].2.as_deref().unwrap_or(""),
                fmtp,
                "{}\n{answer}",
                row.name
            );
            assert_eq!(n.tele_pt.map(|p| *p), Some(te[0].0), "{}", row.name);
            assert_eq!(
                Some(n.tele_events.to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_default(),
                if fmtp.is_empty() { "0-15" } else { fmtp },
                "{}",
                row.name
            );
        }
        None => {
            assert!(te.is_empty(), "{}: no telephone-event\n{answer}", row.name);
            assert_eq!(n.tele_pt, None, "{}", row.name);
        }
    }
    a.peer.accept_answer(Instant::now(), &answer).unwrap();
    let (mut a, mut b) = (a.spawn(), b.spawn());
    wait_connected(&mut a).await;
    wait_connected(&mut b).await;
    if row.te.is_none() {
        assert!(
            !a.can_insert_dtmf().await && !b.can_insert_dtmf().await,
            "{}",
            row.name
        );
        assert_eq!(
            b.insert_dtmf("1", 100, 70).await,
            Err(InsertDtmfError::Dtmf(DtmfError::InvalidState)),
            "{}",
            row.name
        );
        a.close();
        b.close();
        return;
    }
    assert!(
        a.can_insert_dtmf().await && b.can_insert_dtmf().await,
        "{}",
        row.name
    );
    // Digits both listed events allow (0-11 is the narrowest row).
    a.insert_dtmf("159#", 100, 70).await.unwrap();
    b.insert_dtmf("*08", 100, 70).await.unwrap();
    let (at_b, at_a) = tokio::join!(key_ups(&mut b, 4), key_ups(&mut a, 3));
    assert_heard(&at_b, "159#", 100.0, row.name);
    assert_heard(&at_a, "*08", 100.0, row.name);
    a.close();
    b.close();
}

#[tokio::test]
async fn every_row_answers_and_carries_dtmf_both_ways() {
    for row in rows() {
        eprintln!("row: {}", row.name);
        check_row(&row).await;
    }
}

#[test]
fn an_offer_with_only_codecs_we_do_not_speak_is_refused_clearly() {
    let now = Instant::now();
    let local = "127.0.0.1:9".parse().unwrap();
    let mut a = Peer::new(now, local, cfg(&[AudioCodec::Pcmu], &[])).unwrap();
    let offer = a.create_offer().unwrap();
    let g722 = drop_pt(&add_first(&offer, 9, "G722/8000"), 0);
    let mut b = Peer::new(now, local, PeerConfig::default()).unwrap();
    let err = b.accept_offer(now, &g722).unwrap_err().to_string();
    assert!(err.contains("no audio codec in common"), "{err}");
}

/// The `a=extmap` URIs of an SDP.
fn extmaps(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=extmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}

/// Offers and answers carry only the MID header extension, also when the offer (as Chrome's and
/// Firefox's do) lists transport-cc, abs-send-time and audio levels: transport-cc alone would cost a
/// feedback packet about every 100 ms per call.
#[test]
fn offers_and_answers_carry_only_the_mid_extension() {
    const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
    let now = Instant::now();
    let local = "127.0.0.1:9".parse().unwrap();
    let mut a = Peer::new(now, local, PeerConfig::default()).unwrap();
    let offer = a.create_offer().unwrap();
    assert_eq!(extmaps(&offer), [MID], "{offer}");

    let browser_like = offer.replace(
        &format!("a=extmap:4 {MID}"),
        &[
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            &format!("a=extmap:4 {MID}"),
        ]
        .join("\r\n"),
    );
    assert_eq!(extmaps(&browser_like).len(), 4, "{browser_like}");
    let mut b = Peer::new(now, local, PeerConfig::default()).unwrap();
    let answer = b.accept_offer(now, &browser_like).unwrap();
    assert_eq!(extmaps(&answer), [MID], "{answer}");
}

/// With Opus and telephone-event/8000, the default sends durations in 48 kHz ticks, which libwebrtc
/// (Firefox, Chrome) plays for the asked length; read in the 8 kHz telephone-event clock, as RFC 4733
/// and Firefox's own events are read, they come out six times as long. The answerer's event list and
/// timestamps are the same either way.
#[tokio::test]
async fn opus_with_te_8000_sends_audio_clock_durations_by_default() {
    let mut a = Call::bind(LOOPBACK, cfg(&[AudioCodec::Opus], &[8000]))
        .await
        .unwrap();
    let mut b = Call::bind(LOOPBACK, PeerConfig::default()).await.unwrap();
    let offer = a.peer.create_offer().unwrap();
    let answer = b.peer.accept_offer(Instant::now(), &offer).unwrap();
    a.peer.accept_answer(Instant::now(), &answer).unwrap();
    let n = b.peer.negotiated().unwrap();
    assert_eq!(
        (n.tele_clock_rate, n.tele_events),
        (Some(8000), EventSet::DTMF)
    );
    let (mut a, mut b) = (a.spawn(), b.spawn());
    wait_connected(&mut a).await;
    wait_connected(&mut b).await;
    b.insert_dtmf("4", 100, 70).await.unwrap();
    let got = key_ups(&mut a, 1).await;
    assert_eq!(got[0].0, '4');
    assert!((got[0].1 - 600.0).abs() <= 1.0, "{got:?}");
}
