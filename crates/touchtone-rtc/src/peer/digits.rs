//! Received key presses: RFC 4733 key-downs and key-ups, and in-band detections of a key telephone-event
//! did not already report.

use super::*;

/// An in-band detection this soon after a telephone-event key-up of the same key is the same press.
const DEDUP_WINDOW: Duration = Duration::from_millis(300);

impl Peer {
    pub(super) fn collect_digits(&mut self) {
        for i in 0..self.receivers.len() {
            while let Some(d) = self.receivers[i].poll_event() {
                let released = d.is_end().then_some(d.at());
                self.rfc_recent = Some((d.tone(), released));
                self.events.push_back(digit_event(&d, DigitSource::Rfc4733));
            }
        }
    }

    /// Reports in-band detections, except those of a key telephone-event already reported.
    pub(super) fn collect_inband(&mut self, ssrc: u32) {
        let Some(det) = self.detector.as_mut() else {
            return;
        };
        while let Some(d) = det.poll_event() {
            if !d.end {
                self.inband_suppressed = match self.rfc_recent {
                    Some((tone, None)) => tone == Some(d.digit),
                    Some((tone, Some(up))) => {
                        tone == Some(d.digit)
                            && self.now.saturating_duration_since(up) < DEDUP_WINDOW
                    }
                    None => false,
                };
            }
            if self.inband_suppressed {
                continue;
            }
            let info = DigitInfo {
                event: touchtone::tone::event_code(d.digit).unwrap_or(0),
                tone: Some(d.digit),
                duration: Duration::from_secs_f64(d.duration_ms().max(0.0) / 1000.0),
                at: self.now,
                ssrc: Some(ssrc),
                source: DigitSource::Inband,
                end_cause: None,
            };
            self.events.push_back(if d.end {
                PeerEvent::KeyUp(info)
            } else {
                PeerEvent::KeyDown(info)
            });
        }
    }
}

pub(super) fn digit_event(d: &DigitEvent, source: DigitSource) -> PeerEvent {
    let info = DigitInfo {
        event: d.event(),
        tone: d.tone(),
        duration: d.duration(),
        at: d.at(),
        ssrc: Some(d.ssrc()),
        source,
        end_cause: d.end_cause(),
    };
    if d.is_end() {
        PeerEvent::KeyUp(info)
    } else {
        PeerEvent::KeyDown(info)
    }
}
