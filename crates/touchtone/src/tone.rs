//! The DTMF tone alphabet: `0-9`, `*`, `#`, `A-D` and the `,` pause, with their RFC 4733 event codes.

use crate::error::DtmfError;

/// Every character a tone string may hold after normalisation, in event-code order, then the pause.
const ALPHABET: &str = "0123456789*#ABCD,";

/// The pause character: no tone for two seconds.
pub const PAUSE: char = ',';

/// The RFC 4733 event code of a DTMF tone character (`0-9` -> 0-9, `*` -> 10, `#` -> 11, `A-D` -> 12-15).
pub fn event_code(tone: char) -> Option<u8> {
    match tone {
        '0'..='9' => Some(tone as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(tone as u8 - b'A' + 12),
        'a'..='d' => Some(tone as u8 - b'a' + 12),
        _ => None,
    }
}

/// The tone character of an RFC 4733 DTMF event code, or `None` for codes beyond 15.
pub fn tone_for_event(event: u8) -> Option<char> {
    ALPHABET[..16].chars().nth(usize::from(event))
}

/// The tone as a static one-character string (`"5"`, `"#"`, `","`), or `None` if it is not in the alphabet.
pub(crate) fn static_str(tone: char) -> Option<&'static str> {
    let i = ALPHABET.find(tone.to_ascii_uppercase())?;
    Some(&ALPHABET[i..i + 1])
}

/// Checks a tone string against the W3C alphabet and returns it upper-cased.
///
/// Accepts `0-9`, `A-D`, `a-d`, `#`, `*` and `,`; any other character is
/// [`DtmfError::InvalidCharacter`] naming the first offender and its character index.
pub fn normalize_tones(tones: &str) -> Result<String, DtmfError> {
    let mut out = String::with_capacity(tones.len());
    for (index, c) in tones.chars().enumerate() {
        if c == PAUSE || event_code(c).is_some() {
            out.push(c.to_ascii_uppercase());
        } else {
            return Err(DtmfError::InvalidCharacter {
                character: c,
                index,
            });
        }
    }
    Ok(out)
}

/// Row (low group) and column (high group) frequencies in Hz of a DTMF tone, per ITU-T Q.23.
pub fn frequencies(tone: char) -> Option<(f32, f32)> {
    const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (r, c) = keypad_position(tone)?;
    Some((ROWS[r], COLS[c]))
}

/// The keypad row and column (0-based) of a tone: `1 2 3 A / 4 5 6 B / 7 8 9 C / * 0 # D`.
pub fn keypad_position(tone: char) -> Option<(usize, usize)> {
    const KEYPAD: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let t = tone.to_ascii_uppercase();
    KEYPAD
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.find(t).map(|c| (r, c)))
}

/// The tone at a keypad row and column (0-based), the inverse of [`keypad_position`].
pub fn tone_at(row: usize, col: usize) -> Option<char> {
    const KEYPAD: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    KEYPAD.get(row)?.chars().nth(col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_follow_rfc4733() {
        let expected = [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('B', 13),
            ('C', 14),
            ('D', 15),
            ('d', 15),
        ];
        for (c, code) in expected {
            assert_eq!(event_code(c), Some(code), "{c}");
        }
        for c in [',', 'E', 'p', 'w', '+', ' ', '٣'] {
            assert_eq!(event_code(c), None, "{c}");
        }
        for code in 0..16u8 {
            let c = tone_for_event(code).unwrap();
            assert_eq!(event_code(c), Some(code));
        }
        assert_eq!(tone_for_event(16), None);
        assert_eq!(tone_for_event(255), None);
    }

    #[test]
    fn normalize_upper_cases_and_rejects_the_rest() {
        assert_eq!(normalize_tones("12,3#*abcdABCD").unwrap(), "12,3#*ABCDABCD");
        assert_eq!(normalize_tones("").unwrap(), "");
        for (s, bad, index) in [
            ("12 3", ' ', 2),
            ("E", 'E', 0),
            ("1p", 'p', 1),
            ("w", 'w', 0),
        ] {
            assert_eq!(
                normalize_tones(s),
                Err(DtmfError::InvalidCharacter {
                    character: bad,
                    index
                })
            );
        }
        // Non-ASCII digits are not DTMF digits; the index counts characters, not bytes.
        assert_eq!(
            normalize_tones("é١"),
            Err(DtmfError::InvalidCharacter {
                character: 'é',
                index: 0
            })
        );
        assert_eq!(
            normalize_tones("1١"),
            Err(DtmfError::InvalidCharacter {
                character: '١',
                index: 1
            })
        );
    }

    #[test]
    fn keypad_layout_matches_q23() {
        assert_eq!(frequencies('1'), Some((697.0, 1209.0)));
        assert_eq!(frequencies('0'), Some((941.0, 1336.0)));
        assert_eq!(frequencies('#'), Some((941.0, 1477.0)));
        assert_eq!(frequencies('D'), Some((941.0, 1633.0)));
        assert_eq!(frequencies('6'), Some((770.0, 1477.0)));
        assert_eq!(frequencies(','), None);
        for code in 0..16 {
            let c = tone_for_event(code).unwrap();
            let (r, col) = keypad_position(c).unwrap();
            assert_eq!(tone_at(r, col), Some(c));
        }
        assert_eq!(static_str('b'), Some("B"));
        assert_eq!(static_str(','), Some(","));
        assert_eq!(static_str('x'), None);
    }
}
