//! The RFC 4733 telephone-event payload: event code, end bit, volume and duration in 4 bytes.

use crate::error::PayloadError;

/// One RFC 4733 named-event payload (section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 `A-D`, higher codes for other telephony events.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 6 bits (0..=63).
    pub volume: u8,
    /// Duration so far in telephone-event clock units, from the packet's RTP timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first event of a payload; bytes after the first four are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, PayloadError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(PayloadError::TooShort { len: payload.len() });
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Encodes the event as its 4 wire bytes (R bit 0, volume masked to 6 bits).
    pub fn to_bytes(&self) -> [u8; 4] {
        let flags = (u8::from(self.end) << 7) | (self.volume & 0x3f);
        let [d0, d1] = self.duration.to_be_bytes();
        [self.event, flags, d0, d1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_layout_matches_rfc4733() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 4800,
        };
        assert_eq!(ev.to_bytes(), [11, 0x8a, 0x12, 0xc0]);
        assert_eq!(TelephoneEvent::parse(&[11, 0x8a, 0x12, 0xc0]).unwrap(), ev);
        // The reserved R bit is ignored on input and cleared on output.
        let with_r = TelephoneEvent::parse(&[5, 0x4a, 0, 160]).unwrap();
        assert_eq!(
            (with_r.end, with_r.volume, with_r.duration),
            (false, 10, 160)
        );
        assert_eq!(with_r.to_bytes()[1], 0x0a);
    }

    #[test]
    fn short_payloads_are_errors() {
        for len in 0..4 {
            assert_eq!(
                TelephoneEvent::parse(&[1, 2, 3][..len.min(3)]),
                Err(PayloadError::TooShort { len: len.min(3) })
            );
        }
        // Longer payloads parse their first event.
        assert_eq!(
            TelephoneEvent::parse(&[1, 0, 0, 8, 9, 9]).unwrap().duration,
            8
        );
    }

    proptest! {
        #[test]
        fn round_trips(event: u8, end: bool, volume in 0u8..64, duration: u16) {
            let ev = TelephoneEvent { event, end, volume, duration };
            prop_assert_eq!(TelephoneEvent::parse(&ev.to_bytes()).unwrap(), ev);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let r = TelephoneEvent::parse(&bytes);
            prop_assert_eq!(r.is_ok(), bytes.len() >= 4);
        }
    }
}
