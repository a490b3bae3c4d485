//! Replacing the sample bytes of a write buffer with silence.
//!
//! Every encoding's silence is one byte repeated (see
//! [`Encoding::silence_byte`](super::Encoding::silence_byte)), so silencing
//! is per byte and needs no frame alignment: a write that starts or ends in
//! the middle of a sample frame is silenced exactly as the whole frame would
//! be. The bytes silenced are always one contiguous range: the intersection
//! of the buffer, the selection and the layout's sample region.

use std::ops::Range;

use super::wav::{Probe, WavLayout};

/// Where a file's sample data is, for silencing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    Wav(WavLayout),
    /// zero bytes everywhere (screen recordings, unknown formats), except the
    /// header structure of `parsed_to`/unsupported WAVs as described
    Opaque {
        keep_below: u64,
    },
}

impl Layout {
    /// The layout a probe implies. What is not known to be header is zeroed:
    ///
    /// - [`Probe::NotWav`]: the whole file (`keep_below: 0`).
    /// - [`Probe::Incomplete`]: everything from `parsed_to` on, since the data
    ///   chunk may start anywhere past the chunks already known.
    /// - [`Probe::Unsupported`]: from the data chunk's first byte on; the
    ///   whole file when no data chunk was found.
    pub fn from_probe(p: &Probe) -> Layout {
        match p {
            Probe::NotWav => Layout::Opaque { keep_below: 0 },
            Probe::Incomplete { parsed_to } => Layout::Opaque { keep_below: *parsed_to },
            Probe::Wav(w) => Layout::Wav(*w),
            Probe::Unsupported { data_start, .. } => Layout::Opaque { keep_below: data_start.unwrap_or(0) },
        }
    }

    /// The file range holding samples (end `u64::MAX` when it runs to the
    /// end of the file), and the byte that silences it.
    pub fn sample_region(&self) -> (Range<u64>, u8) {
        match self {
            Layout::Wav(w) => (w.data_start..w.data_end.unwrap_or(u64::MAX), w.format.encoding.silence_byte()),
            Layout::Opaque { keep_below } => (*keep_below..u64::MAX, 0),
        }
    }
}

/// Replaces with silence the bytes of `buf` (which holds file bytes starting
/// at file offset `buf_off`) that lie in the file range `select` and in the
/// layout's sample data; returns the file range actually silenced (None if
/// nothing). WAV: only bytes in [data_start, data_end) are touched, filled
/// with the encoding's silence byte; header and other chunks stay intact.
/// Opaque: zero bytes at offsets >= keep_below.
///
/// Buffer bytes that would lie past file offset `u64::MAX` are not file
/// bytes and are never touched.
pub fn silence(layout: &Layout, buf: &mut [u8], buf_off: u64, select: Range<u64>) -> Option<Range<u64>> {
    let (region, byte) = layout.sample_region();
    let buf_end = buf_off.saturating_add(buf.len() as u64);
    let start = buf_off.max(select.start).max(region.start);
    let end = buf_end.min(select.end).min(region.end);
    if start >= end {
        return None;
    }
    // buf_off <= start < end <= buf_off + buf.len(): both fit in usize.
    let (from, to) = ((start - buf_off) as usize, (end - buf_off) as usize);
    buf[from..to].fill(byte);
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{Encoding, Format};

    fn wav(encoding: Encoding, data_start: u64, data_end: Option<u64>) -> Layout {
        let format = Format::new(encoding, 2, 8000).unwrap();
        Layout::Wav(WavLayout { format, data_start, data_end })
    }

    /// The rule, byte by byte: what `silence` must do, written the slow way.
    fn reference(layout: &Layout, buf: &[u8], buf_off: u64, select: &Range<u64>) -> (Vec<u8>, Option<Range<u64>>) {
        let (region, byte) = layout.sample_region();
        let mut out = buf.to_vec();
        let (mut first, mut last) = (None, None);
        for (i, b) in out.iter_mut().enumerate() {
            let Some(at) = buf_off.checked_add(i as u64) else { break };
            if at == u64::MAX {
                break; // not a file byte: a file's last offset is u64::MAX - 1
            }
            if select.contains(&at) && region.contains(&at) {
                *b = byte;
                first.get_or_insert(at);
                last = Some(at);
            }
        }
        (out, first.zip(last).map(|(a, z)| a..z + 1))
    }

    #[test]
    fn sweep_matches_the_per_byte_rule_at_every_boundary() {
        let layouts = [
            wav(Encoding::PcmS16, 44, Some(100)),
            wav(Encoding::Ulaw, 58, None),
            wav(Encoding::PcmU8, 36, Some(37)),
            wav(Encoding::Alaw, 50, Some(50)),
            Layout::Opaque { keep_below: 0 },
            Layout::Opaque { keep_below: 41 },
        ];
        let pattern: Vec<u8> = (0..160u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut checked = 0u32;
        for layout in &layouts {
            for buf_off in 0..120u64 {
                for len in [0usize, 1, 2, 3, 7, 13, 44, 57, 64, 100, 160] {
                    for (s, e) in [(0, u64::MAX), (0, 0), (30, 60), (44, 45), (57, 101), (99, 200), (50, 50), (70, 10)]
                    {
                        let mut buf = pattern[..len].to_vec();
                        let (want_buf, want) = reference(layout, &buf, buf_off, &(s..e));
                        let got = silence(layout, &mut buf, buf_off, s..e);
                        assert_eq!(got, want, "{layout:?} buf {buf_off}+{len} select {s}..{e}");
                        assert_eq!(buf, want_buf, "{layout:?} buf {buf_off}+{len} select {s}..{e}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 50_000);
    }

    #[test]
    fn header_and_trailing_chunks_stay_intact() {
        let layout = wav(Encoding::Ulaw, 58, Some(138));
        let mut file: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let orig = file.clone();
        assert_eq!(silence(&layout, &mut file, 0, 0..u64::MAX), Some(58..138));
        assert_eq!(file[..58], orig[..58]);
        assert!(file[58..138].iter().all(|&b| b == 0xFF));
        assert_eq!(file[138..], orig[138..]);
    }

    #[test]
    fn each_encoding_fills_its_own_silence_byte() {
        for e in Encoding::ALL {
            let layout = wav(e, 0, None);
            let mut buf = [0x5Au8; 9];
            assert_eq!(silence(&layout, &mut buf, 1000, 1003..1005), Some(1003..1005));
            assert_eq!(buf, [0x5A, 0x5A, 0x5A, e.silence_byte(), e.silence_byte(), 0x5A, 0x5A, 0x5A, 0x5A], "{e}");
        }
    }

    #[test]
    fn offsets_at_the_top_of_the_file_space_never_overflow() {
        let mut buf = [1u8; 16];
        let layout = Layout::Opaque { keep_below: 0 };
        assert_eq!(silence(&layout, &mut buf, u64::MAX - 4, 0..u64::MAX), Some(u64::MAX - 4..u64::MAX));
        assert_eq!(buf[..4], [0; 4]);
        assert!(buf[4..].iter().all(|&b| b == 1), "bytes past the last file offset are not touched");
        assert_eq!(silence(&layout, &mut buf, u64::MAX, 0..u64::MAX), None);
    }

    #[test]
    fn probes_map_to_layouts_that_keep_only_known_header() {
        assert_eq!(Layout::from_probe(&Probe::NotWav), Layout::Opaque { keep_below: 0 });
        assert_eq!(Layout::from_probe(&Probe::Incomplete { parsed_to: 36 }), Layout::Opaque { keep_below: 36 });
        let unsupported = Probe::Unsupported { data_start: Some(60), reason: "IMA ADPCM".into() };
        assert_eq!(Layout::from_probe(&unsupported), Layout::Opaque { keep_below: 60 });
        let lost = Probe::Unsupported { data_start: None, reason: "no data".into() };
        assert_eq!(Layout::from_probe(&lost), Layout::Opaque { keep_below: 0 });
        let w = WavLayout { format: Format::new(Encoding::PcmS16, 1, 8000).unwrap(), data_start: 44, data_end: None };
        assert_eq!(Layout::from_probe(&Probe::Wav(w)), Layout::Wav(w));
    }
}
