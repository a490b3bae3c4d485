//! Interleaved sample frames as per-channel numbers, for the DTMF detector.

use super::{Encoding, Format, g711};

/// Decodes interleaved frames into per-channel linear samples scaled to ±1.0
/// full scale: G.711 A-law and µ-law per ITU-T G.711, PCM u8/s16/s24/s32
/// little-endian, float32/64. Reuses caller buffers (no allocation per call
/// once warmed): `out.len() == channels`; whole frames only (trailing
/// partial frame ignored); `out[c]` cleared then filled.
///
/// Never panics. Float samples that are NaN or infinite (a hostile or
/// broken file) come out as 0.0, so the detector's sums stay finite. An
/// `out` with fewer vectors than channels gets the first channels only; one
/// with more leaves the extra vectors empty. A `format` whose frame is
/// shorter than its channels' samples (not one [`wav::probe`] returns)
/// decodes nothing.
///
/// [`wav::probe`]: super::wav::probe
pub fn deinterleave(format: &Format, frames: &[u8], out: &mut [Vec<f32>]) {
    for o in out.iter_mut() {
        o.clear();
    }
    let width = usize::from(format.encoding.bytes_per_sample());
    let Ok(frame_len) = usize::try_from(format.frame_len) else { return };
    let channels = usize::from(format.channels).min(out.len());
    if frame_len == 0 || usize::from(format.channels) * width > frame_len {
        return;
    }
    let count = frames.len() / frame_len;
    for (c, o) in out.iter_mut().take(channels).enumerate() {
        o.reserve(count);
        let at = c * width;
        let samples = frames.chunks_exact(frame_len).map(|f| &f[at..at + width]);
        match format.encoding {
            Encoding::PcmU8 => o.extend(samples.map(|s| (f32::from(s[0]) - 128.0) / 128.0)),
            Encoding::PcmS16 => o.extend(samples.map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)),
            // The 24-bit value in the top of an i32 keeps its sign; /2^31 scales it.
            Encoding::PcmS24 => {
                o.extend(samples.map(|s| i32::from_le_bytes([0, s[0], s[1], s[2]]) as f32 / 2_147_483_648.0))
            }
            Encoding::PcmS32 => {
                o.extend(samples.map(|s| i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32 / 2_147_483_648.0))
            }
            Encoding::Float32 => o.extend(samples.map(|s| finite(f32::from_le_bytes([s[0], s[1], s[2], s[3]])))),
            Encoding::Float64 => o.extend(
                samples.map(|s| finite(f64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]) as f32)),
            ),
            Encoding::Alaw => o.extend(samples.map(|s| f32::from(g711::alaw_to_linear(s[0])) / 32768.0)),
            Encoding::Ulaw => o.extend(samples.map(|s| f32::from(g711::ulaw_to_linear(s[0])) / 32768.0)),
        }
    }
}

fn finite(x: f32) -> f32 {
    if x.is_finite() { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(encoding: Encoding, channels: u16, frames: &[u8]) -> Vec<Vec<f32>> {
        let format = Format::new(encoding, channels, 8000).unwrap();
        let mut out = vec![Vec::new(); usize::from(channels)];
        deinterleave(&format, frames, &mut out);
        out
    }

    #[test]
    fn pcm_full_scale_and_zero_for_each_width() {
        assert_eq!(decode(Encoding::PcmU8, 1, &[0x80, 0x00, 0xFF, 0xC0]), [vec![0.0, -1.0, 127.0 / 128.0, 0.5]]);
        assert_eq!(
            decode(Encoding::PcmS16, 1, &[0, 0, 0x00, 0x80, 0xFF, 0x7F, 0x00, 0x40]),
            [vec![0.0, -1.0, 32767.0 / 32768.0, 0.5]]
        );
        assert_eq!(
            decode(Encoding::PcmS24, 1, &[0, 0, 0, 0, 0, 0x80, 0xFF, 0xFF, 0xFF, 0, 0, 0x40]),
            [vec![0.0, -1.0, -1.0 / 8_388_608.0, 0.5]]
        );
        assert_eq!(decode(Encoding::PcmS32, 1, &[0, 0, 0, 0x80, 0, 0, 0, 0x40]), [vec![-1.0, 0.5]]);
    }

    #[test]
    fn floats_pass_through_and_non_finite_become_zero() {
        let mut f32s = Vec::new();
        for x in [0.25f32, -1.0, f32::NAN, f32::INFINITY] {
            f32s.extend(x.to_le_bytes());
        }
        assert_eq!(decode(Encoding::Float32, 1, &f32s), [vec![0.25, -1.0, 0.0, 0.0]]);
        let mut f64s = Vec::new();
        for x in [0.5f64, -0.125, f64::NEG_INFINITY, 1e300] {
            f64s.extend(x.to_le_bytes());
        }
        assert_eq!(decode(Encoding::Float64, 1, &f64s), [vec![0.5, -0.125, 0.0, 0.0]]);
    }

    #[test]
    fn g711_uses_the_itu_expansion() {
        assert_eq!(decode(Encoding::Ulaw, 1, &[0xFF, 0x00, 0x80]), [vec![0.0, -32124.0 / 32768.0, 32124.0 / 32768.0]]);
        assert_eq!(decode(Encoding::Alaw, 1, &[0xD5, 0x2A]), [vec![8.0 / 32768.0, -32256.0 / 32768.0]]);
    }

    #[test]
    fn channels_are_split_and_partial_frames_dropped() {
        // Three channels of s16, two whole frames and one byte of a third.
        let frames = [1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7];
        let out = decode(Encoding::PcmS16, 3, &frames);
        let s = |v: i16| f32::from(v) / 32768.0;
        assert_eq!(out, [vec![s(1), s(4)], vec![s(2), s(5)], vec![s(3), s(6)]]);
    }

    #[test]
    fn buffers_are_reused_without_growing() {
        let format = Format::new(Encoding::PcmS16, 2, 8000).unwrap();
        let mut out = vec![Vec::new(), Vec::new()];
        deinterleave(&format, &[0u8; 4000], &mut out);
        let caps: Vec<usize> = out.iter().map(|o| o.capacity()).collect();
        let ptrs: Vec<*const f32> = out.iter().map(|o| o.as_ptr()).collect();
        deinterleave(&format, &[1u8; 4000], &mut out);
        assert_eq!(out.iter().map(|o| o.capacity()).collect::<Vec<_>>(), caps);
        assert_eq!(out.iter().map(|o| o.as_ptr()).collect::<Vec<_>>(), ptrs);
        assert_eq!(out[0].len(), 1000);
    }

    #[test]
    fn mismatched_outputs_and_hostile_formats_never_panic() {
        let format = Format::new(Encoding::PcmS24, 4, 8000).unwrap();
        let mut two = vec![vec![9.0], vec![9.0]];
        deinterleave(&format, &[0; 24], &mut two);
        assert_eq!(two, [vec![0.0, 0.0], vec![0.0, 0.0]]);
        let mut six = vec![vec![9.0]; 6];
        deinterleave(&format, &[0; 24], &mut six);
        assert!(six[4].is_empty() && six[5].is_empty() && six[3].len() == 2);
        for frame_len in [0, 1, 11] {
            let bad = Format { frame_len, ..format };
            let mut out = vec![vec![9.0]; 4];
            deinterleave(&bad, &[0; 64], &mut out);
            assert!(out.iter().all(Vec::is_empty), "frame_len {frame_len}");
        }
        // A frame longer than its samples (padding) is stepped over.
        let padded = Format { frame_len: 13, ..format };
        let mut out = vec![Vec::new(); 4];
        deinterleave(&padded, &[0; 26], &mut out);
        assert!(out.iter().all(|o| o.len() == 2));
    }
}
