//! Audio layouts of recordings: where sample data is, what silence looks like, samples as numbers.
//!
//! A blackout replaces every byte written to a recording's sample data with
//! silence of that recording's format before the bytes are encrypted, so a
//! card security code spoken during the call is never stored. The daemon runs
//! this module on its write path over bytes a recorder wrote, so every
//! function here is pure, bounded, allocation-free on the sample path, and
//! total: hostile input gives a typed answer, never a panic.
//!
//! - [`wav`] reads a file's first bytes into a [`wav::Probe`]: where sample
//!   data starts and ends and in which [`Format`].
//! - [`silence`] turns a probe into a [`silence::Layout`] and silences the part
//!   of a write buffer that is sample data.
//! - [`raw`] knows headerless telephony audio (`.ul`, `.al`, `.sln`, ...) by name.
//! - [`ranges`] keeps what a blackout silenced, for the journal.
//! - [`samples`] decodes frames to linear samples for the DTMF detector, with
//!   [`g711`] for A-law and µ-law.

pub mod g711;
pub mod ranges;
pub mod raw;
pub mod samples;
pub mod silence;
pub mod wav;

#[cfg(test)]
mod fixtures;

/// How one sample of one channel is stored. Every variant is little-endian
/// and one sample is a whole number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Unsigned 8-bit PCM, silence at the midpoint 0x80.
    PcmU8,
    /// Signed 16-bit PCM.
    PcmS16,
    /// Signed 24-bit PCM, packed in 3 bytes.
    PcmS24,
    /// Signed 32-bit PCM.
    PcmS32,
    /// IEEE 754 binary32.
    Float32,
    /// IEEE 754 binary64.
    Float64,
    /// ITU-T G.711 A-law.
    Alaw,
    /// ITU-T G.711 µ-law.
    Ulaw,
}

impl Encoding {
    /// The byte that, repeated, is this encoding's silence: PCM8 0x80, signed
    /// PCM 0, float 0.0 (0x00), A-law 0xD5, µ-law 0xFF.
    ///
    /// One byte per encoding, whatever the sample width, is what lets
    /// [`silence::silence`] work byte by byte on buffers that start or end
    /// inside a sample frame. A-law 0xD5 and µ-law 0xFF decode to +8 and 0 in
    /// 16-bit linear terms (G.711's smallest positive step and zero), the
    /// values telephony equipment sends as idle.
    pub fn silence_byte(self) -> u8 {
        match self {
            Encoding::PcmU8 => 0x80,
            Encoding::PcmS16 | Encoding::PcmS24 | Encoding::PcmS32 | Encoding::Float32 | Encoding::Float64 => 0x00,
            Encoding::Alaw => 0xD5,
            Encoding::Ulaw => 0xFF,
        }
    }

    /// Bytes one sample of one channel takes.
    pub fn bytes_per_sample(self) -> u16 {
        match self {
            Encoding::PcmU8 | Encoding::Alaw | Encoding::Ulaw => 1,
            Encoding::PcmS16 => 2,
            Encoding::PcmS24 => 3,
            Encoding::PcmS32 | Encoding::Float32 => 4,
            Encoding::Float64 => 8,
        }
    }

    /// The name in journal records and logs; ffmpeg's names for the same
    /// formats, so an operator can hand them to `ffmpeg -f`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::PcmU8 => "pcm_u8",
            Encoding::PcmS16 => "pcm_s16le",
            Encoding::PcmS24 => "pcm_s24le",
            Encoding::PcmS32 => "pcm_s32le",
            Encoding::Float32 => "pcm_f32le",
            Encoding::Float64 => "pcm_f64le",
            Encoding::Alaw => "alaw",
            Encoding::Ulaw => "ulaw",
        }
    }

    /// Every encoding, for tests and sweeps.
    pub const ALL: [Encoding; 8] = [
        Encoding::PcmU8,
        Encoding::PcmS16,
        Encoding::PcmS24,
        Encoding::PcmS32,
        Encoding::Float32,
        Encoding::Float64,
        Encoding::Alaw,
        Encoding::Ulaw,
    ];
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sample format: encoding, channel count and rate. Frames are interleaved:
/// one sample of each channel in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub encoding: Encoding,
    pub channels: u16,
    pub sample_rate: u32,
    /// bytes of one sample frame (all channels) = block_align
    pub frame_len: u32,
}

impl Format {
    /// A format whose frame is exactly `channels` samples; `None` for zero
    /// channels or rate, which no recording has.
    pub fn new(encoding: Encoding, channels: u16, sample_rate: u32) -> Option<Format> {
        if channels == 0 || sample_rate == 0 {
            return None;
        }
        // At most 65535 * 8 bytes: cannot overflow u32.
        let frame_len = u32::from(channels) * u32::from(encoding.bytes_per_sample());
        Some(Format { encoding, channels, sample_rate, frame_len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_bytes_decode_to_zero_or_the_smallest_step() {
        assert_eq!(Encoding::PcmU8.silence_byte(), 0x80);
        assert_eq!(Encoding::Alaw.silence_byte(), 0xD5);
        assert_eq!(Encoding::Ulaw.silence_byte(), 0xFF);
        assert_eq!(g711::alaw_to_linear(Encoding::Alaw.silence_byte()), 8);
        assert_eq!(g711::ulaw_to_linear(Encoding::Ulaw.silence_byte()), 0);
        for e in [Encoding::PcmS16, Encoding::PcmS24, Encoding::PcmS32, Encoding::Float32, Encoding::Float64] {
            assert_eq!(e.silence_byte(), 0, "{e}");
        }
    }

    #[test]
    fn names_and_widths_are_distinct_and_stable() {
        let names: Vec<&str> = Encoding::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names, ["pcm_u8", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le", "alaw", "ulaw"]);
        let widths: Vec<u16> = Encoding::ALL.iter().map(|e| e.bytes_per_sample()).collect();
        assert_eq!(widths, [1, 2, 3, 4, 4, 8, 1, 1]);
        assert_eq!(Encoding::Ulaw.to_string(), "ulaw");
    }

    #[test]
    fn format_new_refuses_zero_channels_or_rate_and_computes_frames() {
        assert_eq!(Format::new(Encoding::PcmS16, 0, 8000), None);
        assert_eq!(Format::new(Encoding::PcmS16, 1, 0), None);
        assert_eq!(Format::new(Encoding::PcmS24, 6, 48000).map(|f| f.frame_len), Some(18));
        assert_eq!(Format::new(Encoding::Float64, u16::MAX, 1).map(|f| f.frame_len), Some(8 * 65535));
    }
}
