//! Two peers over real loopback UDP: ICE, DTLS-SRTP, SDP, then DTMF end to end.

mod common;

use std::time::{Duration, Instant};

use common::{LOOPBACK, assert_heard, wait_connected};
use touchtone_rtc::{
    AudioCodec, Call, CallHandle, DigitSource, IceConnectionState, PeerConfig, PeerEvent,
};

async fn connect(caller: PeerConfig, callee: PeerConfig) -> (CallHandle, CallHandle) {
    let mut a = Call::bind(LOOPBACK, caller).await.unwrap();
    let mut b = Call::bind(LOOPBACK, callee).await.unwrap();
    let offer = a.peer.create_offer().unwrap();
    let answer = b.peer.accept_offer(Instant::now(), &offer).unwrap();
    a.peer.accept_answer(Instant::now(), &answer).unwrap();
    (a.spawn(), b.spawn())
}

/// Collects (tone, duration ms) of key-ups until `n` arrived, checking they came the `source` way.
async fn collect_digits(h: &mut CallHandle, n: usize, source: DigitSource) -> Vec<(char, f64)> {
    common::key_ups(h, n, source, Duration::from_secs(20)).await
}

async fn all_sixteen(codec: AudioCodec) {
    let cfg = PeerConfig {
        codecs: vec![codec],
        ..PeerConfig::default()
    };
    let (mut a, mut b) = connect(cfg.clone(), PeerConfig::default()).await;
    let states = wait_connected(&mut a).await;
    eprintln!("{states:?}");
    assert!(
        states
            .iter()
            .any(|e| matches!(e, PeerEvent::IceConnection(IceConnectionState::Checking)))
    );
    wait_connected(&mut b).await;
    assert!(a.can_insert_dtmf().await);
    let tones = "0123456789*#ABCD";
    a.insert_dtmf(tones, 60, 40).await.unwrap();
    let got = collect_digits(&mut b, 16, DigitSource::Rfc4733).await;
    assert_heard(&got, tones, 60.0, "telephone-event");
    // The sender's tonechange events, then hang up: the other side sees it.
    let mut changes = vec![];
    while let Some(ev) = a.next_event().await {
        if let PeerEvent::ToneChange { tone, .. } = ev {
            changes.push(tone);
            if tone.is_empty() {
                break;
            }
        }
    }
    assert_eq!(changes.concat(), tones);
    assert_eq!(changes.len(), 17);
    a.close();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = b.next_event().await {
            if ev == PeerEvent::Closed {
                return true;
            }
        }
        false
    })
    .await
    .expect("close seen in time");
    assert!(closed);
}

#[tokio::test]
async fn opus_carries_every_tone() {
    all_sixteen(AudioCodec::Opus).await;
}

#[tokio::test]
async fn pcmu_carries_every_tone() {
    all_sixteen(AudioCodec::Pcmu).await;
}

#[tokio::test]
async fn no_telephone_event_means_no_dtmf() {
    let cfg = PeerConfig {
        telephone_event: false,
        ..PeerConfig::default()
    };
    let (mut a, mut b) = connect(PeerConfig::default(), cfg).await;
    wait_connected(&mut a).await;
    wait_connected(&mut b).await;
    assert!(!a.can_insert_dtmf().await);
    let r = a.insert_dtmf("1", 100, 70).await;
    assert_eq!(
        r,
        Err(touchtone_rtc::InsertDtmfError::Dtmf(
            touchtone::DtmfError::InvalidState
        ))
    );
    assert!(!b.can_insert_dtmf().await);
}

#[tokio::test]
async fn inband_tones_are_detected_in_pcmu_audio() {
    inband_tones_are_detected(AudioCodec::Pcmu).await;
}

#[tokio::test]
async fn inband_tones_are_detected_in_opus_audio() {
    inband_tones_are_detected(AudioCodec::Opus).await;
}

/// A call from `caller` (in `codec`) to a callee that detects tones in the audio, connected on both
/// sides.
async fn connect_to_inband_detector(
    caller: PeerConfig,
    codec: AudioCodec,
) -> (CallHandle, CallHandle) {
    let callee = PeerConfig {
        inband_detect: true,
        ..PeerConfig::default()
    };
    let caller = PeerConfig {
        codecs: vec![codec],
        ..caller
    };
    let (mut a, mut b) = connect(caller, callee).await;
    wait_connected(&mut a).await;
    let events = wait_connected(&mut b).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PeerEvent::Negotiated(n) if n.codec == codec)),
        "{events:?}"
    );
    (a, b)
}

async fn inband_tones_are_detected(codec: AudioCodec) {
    let caller = PeerConfig {
        inband_send: true,
        ..PeerConfig::default()
    };
    let (a, mut b) = connect_to_inband_detector(caller, codec).await;
    let tones = "0123456789*#ABCD";
    a.insert_dtmf(tones, 80, 60).await.unwrap();
    let got = collect_digits(&mut b, 16, DigitSource::Inband).await;
    assert_heard(&got, tones, 80.0, "in-band");
}

#[test]
fn telephone_event_only_at_the_codec_clock_rate() {
    use touchtone_rtc::Peer;
    let now = Instant::now();
    let local = "127.0.0.1:9".parse().unwrap();
    // An offer of PCMU whose only telephone-event runs at 48 kHz: mixing clocks is refused.
    let mut caller = Peer::new(
        now,
        local,
        PeerConfig {
            codecs: vec![AudioCodec::Pcmu],
            ..PeerConfig::default()
        },
    )
    .unwrap();
    let offer = caller
        .create_offer()
        .unwrap()
        .replace("telephone-event/8000", "telephone-event/48000");
    let mut callee = Peer::new(now, local, PeerConfig::default()).unwrap();
    let answer = callee.accept_offer(now, &offer).unwrap();
    assert!(!answer.contains("telephone-event"), "{answer}");
    let n = callee.negotiated().unwrap();
    assert_eq!((n.codec, n.tele_pt), (AudioCodec::Pcmu, None));
    // A normal offer of Opus and PCMU: the answer keeps Opus with telephone-event/48000 only.
    let mut caller = Peer::new(now, local, PeerConfig::default()).unwrap();
    let offer = caller.create_offer().unwrap();
    assert!(offer.contains("telephone-event/48000") && offer.contains("telephone-event/8000"));
    let mut callee = Peer::new(now, local, PeerConfig::default()).unwrap();
    let answer = callee.accept_offer(now, &offer).unwrap();
    assert!(
        answer.contains("telephone-event/48000") && !answer.contains("telephone-event/8000"),
        "{answer}"
    );
    caller.accept_answer(now, &answer).unwrap();
    let n = caller.negotiated().unwrap();
    assert_eq!(n.codec, AudioCodec::Opus);
    assert!(n.tele_pt.is_some());
    // Garbage is an error, not a panic.
    let mut p = Peer::new(now, local, PeerConfig::default()).unwrap();
    assert!(p.accept_offer(now, "v=0\r\nm=audio").is_err());
    assert!(p.accept_offer(now, "").is_err());
}

#[tokio::test]
async fn configured_audio_is_sent() {
    configured_audio_is_sent_in(AudioCodec::Pcma).await;
}

#[tokio::test]
async fn configured_audio_is_sent_in_opus() {
    configured_audio_is_sent_in(AudioCodec::Opus).await;
}

async fn configured_audio_is_sent_in(codec: AudioCodec) {
    // The audio itself holds DTMF tones: the callee's in-band detector hears them.
    let mut g = touchtone::inband::ToneGenerator::new(8000).unwrap();
    g.push_silence(100);
    g.push_tones("159", 80, 80).unwrap();
    g.push_silence(3000);
    let audio: std::sync::Arc<[i16]> = g.render().into();
    let caller = PeerConfig {
        audio: Some(audio),
        ..PeerConfig::default()
    };
    let (_a, mut b) = connect_to_inband_detector(caller, codec).await;
    let got = collect_digits(&mut b, 3, DigitSource::Inband).await;
    let digits: String = got.iter().map(|(c, _)| *c).collect();
    assert_eq!(digits, "159");
}
