//! G.711 mu-law and A-law sample conversion (ITU-T G.711), for call recordings and 8 kHz RTP audio.

/// Decodes one mu-law byte to a 16-bit linear sample.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Encodes a 16-bit linear sample as mu-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    s = s.abs().min(32635) + 0x84;
    let mut exponent = 7;
    while exponent > 0 && s & (0x80 << exponent) == 0 {
        exponent -= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Encodes a 16-bit linear sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEGMENT_END: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let s = i32::from(sample);
    let (mask, magnitude) = if s >= 0 {
        (0xd5, s >> 3)
    } else {
        (0x55, (-s - 1) >> 3)
    };
    let Some(seg) = SEGMENT_END.iter().position(|&end| magnitude <= end) else {
        return 0x7f ^ mask;
    };
    let shift = if seg < 2 { 1 } else { seg };
    let value = ((seg as i32) << 4) | ((magnitude >> shift) & 0x0f);
    (value as u8) ^ mask
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_decodes_reference_points() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }

    #[test]
    fn ulaw_round_trips_within_quantisation() {
        for s in (-32000i32..32000).step_by(97) {
            let back = i32::from(ulaw_to_linear(linear_to_ulaw(s as i16)));
            let tolerance = (s.abs() / 16).max(8);
            assert!((back - s).abs() <= tolerance, "{s} -> {back}");
        }
    }

    #[test]
    fn alaw_round_trips_within_quantisation() {
        for s in (-32000i32..32000).step_by(89) {
            let back = i32::from(alaw_to_linear(linear_to_alaw(s as i16)));
            let tolerance = (s.abs() / 16).max(16);
            assert!((back - s).abs() <= tolerance, "{s} -> {back}");
        }
    }

    #[test]
    fn alaw_decodes_reference_points() {
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }
}
