//! ITU-T G.711 A-law and µ-law expansion to 16-bit linear PCM.
//!
//! The expansion is the one of G.711 tables 1 and 2 (A-law: 13-bit linear
//! values scaled by 8, so ±8 ..= ±32256; µ-law: 14-bit values scaled by 4,
//! so 0 ..= ±32124), computed once at compile time into 256-entry tables so
//! decoding a sample is one lookup.

/// A-law byte (as sent on the line, even bits already inverted by 0x55) to
/// 16-bit linear.
pub fn alaw_to_linear(byte: u8) -> i16 {
    ALAW[usize::from(byte)]
}

/// µ-law byte (as sent on the line, all bits inverted) to 16-bit linear.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    ULAW[usize::from(byte)]
}

static ALAW: [i16; 256] = alaw_table();
static ULAW: [i16; 256] = ulaw_table();

const fn alaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        // Undo the line's even-bit inversion; then sign, 3-bit segment, 4-bit step.
        let a = (i as u8) ^ 0x55;
        let step = ((a & 0x0F) as i32) << 4;
        let segment = ((a & 0x70) >> 4) as i32;
        // Each value is the middle of its quantisation interval (the +8).
        let magnitude = match segment {
            0 => step + 8,
            1 => step + 0x108,
            s => (step + 0x108) << (s - 1),
        };
        // A-law's sign bit set means positive.
        t[i] = if a & 0x80 != 0 { magnitude as i16 } else { -magnitude as i16 };
        i += 1;
    }
    t
}

const fn ulaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let u = !(i as u8);
        // Bias of 0x84 (33 in 14-bit terms, times 4) makes the segments
        // powers of two; it comes off again below.
        let biased = ((((u & 0x0F) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
        // µ-law's sign bit set (after inversion) means negative.
        t[i] = if u & 0x80 != 0 { (0x84 - biased) as i16 } else { (biased - 0x84) as i16 };
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values from G.711 tables 1 and 2 (decoder output, scaled to 16 bits)
    // as every reference implementation (Sun's g711.c, ffmpeg, sox) gives them.
    #[test]
    fn ulaw_matches_g711_table_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(ulaw_to_linear(0xEF), 132);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0x8F), 16764);
        assert_eq!(ulaw_to_linear(0x90), 15996);
    }

    #[test]
    fn alaw_matches_g711_table_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xD4), 24);
        assert_eq!(alaw_to_linear(0xC5), 264);
        assert_eq!(alaw_to_linear(0xF5), 528);
        assert_eq!(alaw_to_linear(0x80), 5504);
    }

    // Both laws are odd-symmetric and monotonic within each sign: what the
    // DTMF detector relies on for a tone's shape.
    #[test]
    fn both_laws_are_symmetric_and_monotonic() {
        for b in 0..=255u8 {
            assert_eq!(alaw_to_linear(b), -alaw_to_linear(b ^ 0x80), "A-law {b:#04x}");
            assert_eq!(ulaw_to_linear(b), -ulaw_to_linear(b ^ 0x80), "µ-law {b:#04x}");
        }
        // µ-law: 0x80 (loudest positive) down to 0xFF (zero) decreases.
        for b in 0x80..0xFFu8 {
            assert!(ulaw_to_linear(b) > ulaw_to_linear(b + 1), "µ-law {b:#04x}");
        }
        // A-law positives in code order (after undoing the 0x55) increase.
        let mut prev = 0;
        for code in 0x80..=0xFFu8 {
            let v = alaw_to_linear(code ^ 0x55);
            assert!(v > prev, "A-law code {code:#04x}");
            prev = v;
        }
    }
}
