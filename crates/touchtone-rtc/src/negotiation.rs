//! telephone-event negotiation: which of the offered telephone-events to answer with, and the event lists
//! of their `a=fmtp` lines in every form RFC 4733 allows.
//!
//! The rule: answer with the telephone-event at the audio codec's clock rate when the offer has one;
//! otherwise with telephone-event/8000 (Firefox offers Opus/48000 with telephone-event/8000 only, as does
//! SIP gear), the rate every RFC 4733 peer knows; any other pairing (PCMU with telephone-event/48000 only)
//! has no DTMF. Its events are those both sides support: the offer's
//! list intersected with DTMF `0-15`. A telephone-event whose list has no DTMF event is left out, and so
//! is one on payload type 64-95, which collides with RTCP under rtcp-mux (RFC 5761).
//!
//! str0m reads only the `0-N` form of the list, so SDP is rewritten before str0m sees it (lists and ranges
//! in any order become `0-N`, a telephone-event with no DTMF event is removed) and the answer's list is
//! written back as what both sides support.
//!
//! The packet time each side asks for (`a=ptime`) is read and written here too.

use touchtone::EventSet;

use crate::codec::Ptime;

/// A telephone-event payload type of an audio m-line, with its clock and the events both sides support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedEvents {
    /// The RTP payload type.
    pub pt: u8,
    /// The clock rate from its `a=rtpmap`.
    pub clock_rate: u32,
    /// The events the remote listed (`0-15` when it gave no `a=fmtp`).
    pub remote: EventSet,
    /// What both sides support: the remote's list intersected with [`EventSet::DTMF`].
    pub common: EventSet,
}

/// An SDP rewritten so that str0m can read every telephone-event list in it.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The SDP to hand to str0m.
    pub sdp: String,
    /// The telephone-events of the first audio m-line that stayed, in offer order.
    pub events: Vec<OfferedEvents>,
    /// The telephone-events removed: no DTMF event in their list (or it was unreadable), or a payload
    /// type in 64-95, which RFC 5761 forbids with rtcp-mux.
    pub removed: Vec<u8>,
}

/// Rewrites the telephone-event lists of every audio m-line into the `0-N` form str0m reads.
pub fn normalize(sdp: &str) -> Normalized {
    let lines: Vec<&str> = sdp.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut events = Vec::new();
    let mut removed = Vec::new();
    let mut first_audio_seen = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if !line.starts_with("m=") {
            out.push(line.to_string());
            i += 1;
            continue;
        }
        // One m-section: the m= line and its attributes up to the next m= line.
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].starts_with("m="))
            .unwrap_or(lines.len());
        let section = &lines[i..end];
        if line.starts_with("m=audio") {
            let (rewritten, tes) = normalize_section(section);
            let (kept, gone): (Vec<_>, Vec<_>) = tes.into_iter().partition(|e| !e.1);
            removed.extend(gone.iter().map(|e| e.0.pt));
            if !first_audio_seen {
                events = kept.into_iter().map(|e| e.0).collect();
                first_audio_seen = true;
            }
            out.extend(rewritten);
        } else {
            out.extend(section.iter().map(|l| l.to_string()));
        }
        i = end;
    }
    let mut sdp = out.join("\r\n");
    sdp.push_str("\r\n");
    Normalized {
        sdp,
        events,
        removed,
    }
}

/// The rewritten lines of one audio m-section, and its telephone-events (`true` when removed).
fn normalize_section(section: &[&str]) -> (Vec<String>, Vec<(OfferedEvents, bool)>) {
    let mut tes: Vec<(OfferedEvents, bool)> = Vec::new();
    for line in section {
        if let Some((pt, rate)) = rtpmap_telephone_event(line) {
            let fmtp = section.iter().find_map(|l| fmtp_value(l, pt));
            let remote = match fmtp.map(EventSet::parse_fmtp) {
                None => Ok(EventSet::DTMF),
                Some(r) => r,
            };
            let (remote, common) = match remote {
                Ok(set) => (set, set.intersection(&EventSet::DTMF)),
                Err(_) => (EventSet::EMPTY, EventSet::EMPTY),
            };
            let offered = OfferedEvents {
                pt,
                clock_rate: rate,
                remote,
                common,
            };
            // With rtcp-mux (always on in WebRTC) payload types 64-95 collide with RTCP packet types
            // 192-223 (RFC 5761 section 4): such a telephone-event cannot be used.
            let collides = (64..=95).contains(&pt);
            tes.push((offered, common.is_empty() || collides));
        }
    }
    let removed: Vec<u8> = tes.iter().filter(|e| e.1).map(|e| e.0.pt).collect();
    let mut out = Vec::with_capacity(section.len());
    for (n, line) in section.iter().enumerate() {
        if n == 0 {
            out.push(remove_formats(line, &removed));
            continue;
        }
        if let Some(pt) = attribute_pt(line) {
            if removed.contains(&pt) {
                continue; // rtpmap, fmtp, rtcp-fb of a removed telephone-event
            }
            if let Some((te, _)) = tes.iter().find(|e| e.0.pt == pt && !e.1)
                && fmtp_value(line, pt).is_some()
            {
                // str0m reads `0-N` only: give it the contiguous form, the answer gets the exact one back.
                let max = te.common.contiguous_max().unwrap_or(15);
                out.push(format!("a=fmtp:{pt} 0-{max}"));
                continue;
            }
        }
        out.push(line.to_string());
    }
    (out, tes)
}

/// Writes the exact event lists into an answer (or offer) that str0m produced: each telephone-event
/// whose common list str0m could not express gets it back.
pub fn restore_event_lists(sdp: &str, events: &[OfferedEvents]) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in sdp.lines() {
        match attribute_pt(line)
            .filter(|_| line.starts_with("a=fmtp:"))
            .and_then(|pt| events.iter().find(|e| e.pt == pt))
        {
            Some(e) if e.common.contiguous_max().is_none() => {
                out.push(format!("a=fmtp:{} {}", e.pt, e.common));
            }
            _ => out.push(line.to_string()),
        }
    }
    let mut sdp = out.join("\r\n");
    sdp.push_str("\r\n");
    sdp
}

/// The packet time an SDP asks to receive (`a=ptime`, RFC 4566 section 6), as one this crate sends:
/// the longest of 20, 40 and 60 ms that is not over it. Read from the first audio section in use (port
/// not 0), else from the session level; `None` without a readable `a=ptime` there.
pub fn requested_ptime(sdp: &str) -> Option<Ptime> {
    let (mut session, mut audio) = (None, None);
    let mut at_session = true;
    let mut in_audio = false;
    let mut audio_seen = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            at_session = false;
            in_audio = !audio_seen && is_audio_in_use(m);
            audio_seen |= in_audio;
        } else if let Some(v) = line.strip_prefix("a=ptime:") {
            if at_session {
                session = session.or(Some(v));
            } else if in_audio {
                audio = audio.or(Some(v));
            }
        }
    }
    let ms: f64 = audio
        .or(session)?
        .trim()
        .parse()
        .ok()
        .filter(|ms: &f64| ms.is_finite() && *ms > 0.0)?;
    Some(match ms {
        ms if ms >= 60.0 => Ptime::Ms60,
        ms if ms >= 40.0 => Ptime::Ms40,
        _ => Ptime::Ms20,
    })
}

/// Whether an `m=` line's value (after `m=`) is an audio section in use: port not 0.
fn is_audio_in_use(m: &str) -> bool {
    let mut fields = m.split_whitespace();
    fields.next() == Some("audio") && fields.next().is_some_and(|port| port != "0")
}

/// `sdp` asking to receive `ptime` packets: an `a=ptime` line at the head of the attributes of the
/// first audio section in use, with that section's line ending.
pub fn with_ptime(sdp: &str, ptime: Ptime) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut in_audio = false;
    let mut done = false;
    let mut eol = "\r\n";
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if let Some(m) = body.strip_prefix("m=") {
            in_audio = !done && is_audio_in_use(m);
            if in_audio {
                eol = &line[body.len()..];
            }
        } else if in_audio && !done && body.starts_with("a=") {
            out.push_str(&format!("a=ptime:{}{eol}", ptime.millis()));
            done = true;
        }
        out.push_str(line);
    }
    out
}

/// Whether `sdp` is Firefox's (its origin line names `mozilla`). Firefox sends its audio at the
/// `a=ptime` an answer asks for, and then its telephone-events go wrong: one packet per 60 ms audio
/// frame, each read as a 360 ms key press.
pub fn is_from_firefox(sdp: &str) -> bool {
    sdp.lines().any(|l| l.trim_start().starts_with("o=mozilla"))
}

/// Which offered telephone-event to use with an audio codec at `audio_rate`: the one at that rate,
/// else telephone-event/8000, else none.
pub fn choose(events: &[OfferedEvents], audio_rate: u32) -> Option<OfferedEvents> {
    events
        .iter()
        .find(|e| e.clock_rate == audio_rate)
        .or_else(|| events.iter().find(|e| e.clock_rate == 8000))
        .copied()
}

/// `a=rtpmap:<pt> telephone-event/<rate>` -> (pt, rate).
fn rtpmap_telephone_event(line: &str) -> Option<(u8, u32)> {
    let rest = line.strip_prefix("a=rtpmap:")?;
    let (pt, spec) = rest.split_once(' ')?;
    let pt: u8 = pt.trim().parse().ok().filter(|p| *p < 128)?;
    let mut parts = spec.trim().split('/');
    let name = parts.next()?;
    if !name.eq_ignore_ascii_case("telephone-event") {
        return None;
    }
    let rate: u32 = parts.next()?.trim().parse().ok().filter(|r| *r > 0)?;
    Some((pt, rate))
}

/// The value of `a=fmtp:<pt> <value>` for this payload type (empty when the line has none).
fn fmtp_value(line: &str, pt: u8) -> Option<&str> {
    let rest = line.strip_prefix("a=fmtp:")?;
    let (p, value) = rest.split_once(' ').unwrap_or((rest, ""));
    (p.trim().parse::<u8>().ok()? == pt).then_some(value)
}

/// The payload type an `a=rtpmap:`, `a=fmtp:` or `a=rtcp-fb:` line is about.
fn attribute_pt(line: &str) -> Option<u8> {
    let rest = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))?;
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// The m= line without the given payload types.
fn remove_formats(m_line: &str, pts: &[u8]) -> String {
    if pts.is_empty() {
        return m_line.to_string();
    }
    let mut parts: Vec<&str> = m_line.split(' ').collect();
    if parts.len() > 3 {
        let formats: Vec<&str> = parts[3..]
            .iter()
            .copied()
            .filter(|f| f.parse::<u8>().map_or(true, |pt| !pts.contains(&pt)))
            .collect();
        parts.truncate(3);
        parts.extend(formats);
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(te: &str) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\n\
             a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n{te}a=sendrecv\r\n"
        )
    }

    #[test]
    fn lists_become_the_form_str0m_reads() {
        for (fmtp, sent, common) in [
            ("a=fmtp:101 0-15\r\n", "a=fmtp:101 0-15", "0-15"),
            ("a=fmtp:101 0-15,66\r\n", "a=fmtp:101 0-15", "0-15"),
            ("a=fmtp:101 0-11,16\r\n", "a=fmtp:101 0-11", "0-11"),
            (
                "a=fmtp:101 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\r\n",
                "a=fmtp:101 0-15",
                "0-15",
            ),
            ("a=fmtp:101 1-15\r\n", "a=fmtp:101 0-15", "1-15"),
            ("a=fmtp:101\r\n", "a=fmtp:101 0-15", "0-15"),
            ("a=fmtp:101 0-256\r\n", "a=fmtp:101 0-15", "0-15"),
        ] {
            let n = normalize(&offer(fmtp));
            assert!(n.sdp.contains(sent), "{fmtp:?} -> {}", n.sdp);
            assert_eq!(n.events.len(), 1, "{fmtp:?}");
            assert_eq!(n.events[0].common.to_string(), common, "{fmtp:?}");
            assert_eq!(n.events[0].clock_rate, 8000);
        }
        // No fmtp at all: 0-15 by default, nothing added.
        let n = normalize(&offer(""));
        assert_eq!(n.events[0].common, EventSet::DTMF);
        assert!(!n.sdp.contains("a=fmtp"));
    }

    #[test]
    fn a_telephone_event_without_dtmf_events_is_removed() {
        for fmtp in [
            "a=fmtp:101 16\r\n",
            "a=fmtp:101 32-41\r\n",
            "a=fmtp:101 x-y\r\n",
        ] {
            let n = normalize(&offer(fmtp));
            assert!(n.events.is_empty(), "{fmtp:?}");
            assert_eq!(n.removed, [101]);
            assert!(
                n.sdp.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
                "{}",
                n.sdp
            );
            assert!(!n.sdp.contains("telephone-event"));
        }
    }

    #[test]
    fn a_telephone_event_on_a_payload_type_rtcp_mux_forbids_is_removed() {
        let sdp = offer("a=fmtp:101 0-15\r\n")
            .replace(" 111 101", " 111 72")
            .replace("a=rtpmap:101", "a=rtpmap:72")
            .replace("a=fmtp:101", "a=fmtp:72");
        let n = normalize(&sdp);
        assert!(n.events.is_empty());
        assert_eq!(n.removed, [72]);
        assert!(!n.sdp.contains("telephone-event"), "{}", n.sdp);
    }

    #[test]
    fn answers_get_the_exact_common_list_back() {
        let n = normalize(&offer("a=fmtp:101 1-15,66\r\n"));
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\na=fmtp:101 0-15\r\n";
        let fixed = restore_event_lists(answer, &n.events);
        assert!(fixed.contains("a=fmtp:101 1-15\r\n"), "{fixed}");
    }

    #[test]
    fn the_rate_rule() {
        let e = |pt, clock_rate| OfferedEvents {
            pt,
            clock_rate,
            remote: EventSet::DTMF,
            common: EventSet::DTMF,
        };
        let both = [e(110, 48_000), e(126, 8000)];
        assert_eq!(choose(&both, 48_000).unwrap().pt, 110);
        assert_eq!(choose(&both, 8000).unwrap().pt, 126);
        assert_eq!(choose(&[e(101, 8000)], 48_000).unwrap().pt, 101);
        assert_eq!(choose(&[e(101, 48_000)], 8000), None);
        assert_eq!(choose(&[e(101, 16_000)], 48_000), None);
        assert_eq!(choose(&[], 8000), None);
    }

    #[test]
    fn packet_times_asked_for_are_read_as_the_nearest_one_sent_below() {
        let with = |l: &str| format!("{}a=ptime:{l}\r\n", offer(""));
        assert_eq!(requested_ptime(&offer("")), None);
        assert_eq!(requested_ptime(&with("20")), Some(Ptime::Ms20));
        assert_eq!(requested_ptime(&with("30")), Some(Ptime::Ms20));
        assert_eq!(requested_ptime(&with("40")), Some(Ptime::Ms40));
        assert_eq!(requested_ptime(&with(" 60 ")), Some(Ptime::Ms60));
        assert_eq!(requested_ptime(&with("120")), Some(Ptime::Ms60));
        assert_eq!(requested_ptime(&with("2.5")), Some(Ptime::Ms20));
        for bad in ["", "0", "-20", "NaN", "inf", "twenty"] {
            assert_eq!(requested_ptime(&with(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn the_packet_time_goes_into_the_first_audio_section_only() {
        let sdp = format!(
            "{}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n",
            offer("")
        )
        .replace(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\n",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\nc=IN IP4 0.0.0.0\r\n",
        );
        let out = with_ptime(&sdp, Ptime::Ms60);
        assert_eq!(out.matches("a=ptime:60\r\n").count(), 1, "{out}");
        // After the section's c= line, before its first attribute, and not in the video section.
        assert!(
            out.contains("c=IN IP4 0.0.0.0\r\na=ptime:60\r\na=rtpmap:111 opus/48000/2"),
            "{out}"
        );
        assert_eq!(out.replace("a=ptime:60\r\n", ""), sdp);
        assert_eq!(requested_ptime(&out), Some(Ptime::Ms60));
        // No audio section: nothing to add.
        let video = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(with_ptime(video, Ptime::Ms60), video);
    }

    #[test]
    fn the_packet_time_is_read_and_written_where_the_audio_in_use_is() {
        // A rejected audio section and a video section before the audio one: neither counts.
        let sdp = "v=0\r\na=ptime:40\r\nm=audio 0 RTP/AVP 0\r\na=ptime:20\r\n\
                   m=video 9 RTP/AVP 96\r\na=ptime:20\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        // Session level when the audio in use says nothing.
        assert_eq!(requested_ptime(sdp), Some(Ptime::Ms40));
        let out = with_ptime(sdp, Ptime::Ms60);
        assert!(
            out.ends_with("m=audio 9 RTP/AVP 0\r\na=ptime:60\r\na=rtpmap:0 PCMU/8000\r\n"),
            "{out}"
        );
        assert_eq!(requested_ptime(&out), Some(Ptime::Ms60));
        // Line endings as the section has them.
        let lf = "v=0\nm=audio 9 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";
        assert_eq!(
            with_ptime(lf, Ptime::Ms40),
            "v=0\nm=audio 9 RTP/AVP 0\na=ptime:40\na=rtpmap:0 PCMU/8000\n"
        );
    }

    #[test]
    fn firefox_is_known_by_its_origin_line() {
        let ff = offer("").replace("o=- 1 2", "o=mozilla...THIS_IS_SDPARTA-128.0 1 2");
        assert!(is_from_firefox(&ff));
        assert!(!is_from_firefox(&offer("")));
    }
}
