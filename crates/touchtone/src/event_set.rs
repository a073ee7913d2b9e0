//! The set of telephone-event codes a peer supports, as written in an SDP `a=fmtp` line (RFC 4733 2.4.1).

use std::fmt;
use std::str::FromStr;

use crate::error::EventSetError;

/// A set of RFC 4733 event codes (0..=255), parsed from and written as `0-15`, `0-11,16`, `1-15,32-41`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventSet {
    bits: [u64; 4],
}

impl EventSet {
    /// No events.
    pub const EMPTY: EventSet = EventSet { bits: [0; 4] };
    /// The sixteen DTMF events 0-15 (`0-9`, `*`, `#`, `A-D`): what an absent fmtp means (RFC 4733 2.4.1).
    pub const DTMF: EventSet = EventSet {
        bits: [0xffff, 0, 0, 0],
    };

    /// The events `first..=last`.
    pub fn range(first: u8, last: u8) -> EventSet {
        let mut s = EventSet::EMPTY;
        for e in first..=last {
            s.insert(e);
        }
        s
    }

    /// Reads an fmtp value. Ranges and single codes in any order, separated by commas, with optional
    /// spaces; an empty value means the default `0-15`; a range end beyond 255 is cut at 255.
    pub fn parse_fmtp(value: &str) -> Result<EventSet, EventSetError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(EventSet::DTMF);
        }
        let mut set = EventSet::EMPTY;
        for item in value.split(',') {
            let item = item.trim();
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (number(a, item)?, number(b, item)?),
                None => {
                    let n = number(item, item)?;
                    (n, n)
                }
            };
            if first > last {
                return Err(EventSetError::Reversed(item.to_string()));
            }
            if first > 255 {
                continue; // Codes beyond 255 cannot exist on the wire; nothing to add.
            }
            for e in first..=last.min(255) {
                set.insert(e as u8);
            }
        }
        Ok(set)
    }

    /// Adds an event code.
    pub fn insert(&mut self, event: u8) {
        self.bits[usize::from(event / 64)] |= 1 << (event % 64);
    }

    /// Whether the set holds `event`.
    pub fn contains(&self, event: u8) -> bool {
        self.bits[usize::from(event / 64)] & (1 << (event % 64)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits == [0; 4]
    }

    /// The events in both sets.
    pub fn intersection(&self, other: &EventSet) -> EventSet {
        let mut bits = self.bits;
        for (b, o) in bits.iter_mut().zip(other.bits) {
            *b &= o;
        }
        EventSet { bits }
    }

    /// Whether every event of `other` is in this set.
    pub fn is_superset(&self, other: &EventSet) -> bool {
        self.intersection(other) == *other
    }

    /// The event codes in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|e| self.contains(*e))
    }

    /// The contiguous runs of codes, as inclusive `(first, last)` pairs.
    pub fn ranges(&self) -> Vec<(u8, u8)> {
        let mut out: Vec<(u8, u8)> = Vec::new();
        for e in self.iter() {
            match out.last_mut() {
                Some((_, last)) if e > 0 && *last == e - 1 => *last = e,
                _ => out.push((e, e)),
            }
        }
        out
    }

    /// The highest code when the set is exactly `0..=max`, the only form some SDP stacks read.
    pub fn contiguous_max(&self) -> Option<u8> {
        match self.ranges()[..] {
            [(0, max)] => Some(max),
            _ => None,
        }
    }
}

fn number(text: &str, item: &str) -> Result<u32, EventSetError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 9 {
        return Err(EventSetError::Syntax(item.to_string()));
    }
    text.parse()
        .map_err(|_| EventSetError::Syntax(item.to_string()))
}

impl fmt::Display for EventSet {
    /// The fmtp form: `0-15`, `0-11,16`; an empty set writes nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (first, last)) in self.ranges().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{last}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for EventSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventSet({self})")
    }
}

impl FromStr for EventSet {
    type Err = EventSetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventSet::parse_fmtp(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(s: &str) -> EventSet {
        EventSet::parse_fmtp(s).unwrap()
    }

    #[test]
    fn every_form_rfc4733_allows() {
        assert_eq!(set("0-15"), EventSet::DTMF);
        assert_eq!(set("0-15").contiguous_max(), Some(15));
        assert_eq!(set("0-16").to_string(), "0-16");
        assert_eq!(set("0-15,66,70").to_string(), "0-15,66,70");
        assert_eq!(set("0-15,66").to_string(), "0-15,66");
        assert_eq!(set("0-11,16").to_string(), "0-11,16");
        assert_eq!(set("0-15,32-41").to_string(), "0-15,32-41");
        assert_eq!(set("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"), EventSet::DTMF);
        assert_eq!(set("15,3-14,0,1,2"), EventSet::DTMF);
        assert_eq!(set(" 0 - 15 , 16 ").to_string(), "0-16");
        assert_eq!(set("1-15").to_string(), "1-15");
        assert_eq!(set("1-15").contiguous_max(), None);
        assert_eq!(set(""), EventSet::DTMF);
        assert_eq!(set("0-256").to_string(), "0-255");
        assert_eq!(set("300").to_string(), "");
    }

    #[test]
    fn malformed_values_are_typed_errors() {
        for bad in [
            "0-",
            "-5",
            "a-b",
            "0-15,",
            "0--15",
            "15-0",
            "0-+15",
            "0;15",
            "99999999999",
        ] {
            assert!(EventSet::parse_fmtp(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn intersection_is_what_both_support() {
        assert_eq!(
            set("0-11,16").intersection(&EventSet::DTMF).to_string(),
            "0-11"
        );
        assert_eq!(set("16").intersection(&EventSet::DTMF), EventSet::EMPTY);
        assert!(set("0-15,66").is_superset(&EventSet::DTMF));
        assert!(!set("1-15").is_superset(&EventSet::DTMF));
    }

    proptest! {
        #[test]
        fn display_round_trips(bits: [u64; 4]) {
            let s = EventSet { bits };
            prop_assert_eq!(EventSet::parse_fmtp(&s.to_string()).unwrap(), if s.is_empty() { EventSet::DTMF } else { s });
        }

        #[test]
        fn parse_never_panics(text in "[0-9, \\-a-z]{0,40}") {
            let _ = EventSet::parse_fmtp(&text);
        }
    }
}
