//! The sox-made files in `testdata/` (see its README) through probe,
//! silence and deinterleave, checked against what `soxi` says of them.

use super::samples::deinterleave;
use super::silence::{Layout, silence};
use super::wav::{Probe, probe};
use super::{Encoding, g711};

/// A fixture WAV and what soxi and its chunk list say: encoding, channels,
/// data_start, data size (`None`: sox's streaming placeholders), samples
/// per channel. All are 8000 Hz.
struct Fixture {
    name: &'static str,
    bytes: &'static [u8],
    encoding: Encoding,
    channels: u16,
    data_start: u64,
    data_size: Option<u64>,
    samples: usize,
}

macro_rules! fixture {
    ($name:literal, $enc:ident, $ch:expr, $start:expr, $size:expr, $samples:expr) => {
        Fixture {
            name: $name,
            bytes: include_bytes!(concat!("testdata/", $name)),
            encoding: Encoding::$enc,
            channels: $ch,
            data_start: $start,
            data_size: $size,
            samples: $samples,
        }
    };
}

fn fixtures() -> [Fixture; 17] {
    [
        fixture!("ulaw.wav", Ulaw, 1, 58, Some(80), 80),
        fixture!("ulaw_c2.wav", Ulaw, 2, 58, Some(160), 80),
        fixture!("alaw.wav", Alaw, 1, 58, Some(80), 80),
        fixture!("u8.wav", PcmU8, 1, 44, Some(80), 80),
        fixture!("u8_c3.wav", PcmU8, 3, 80, Some(240), 80),
        fixture!("s16.wav", PcmS16, 1, 44, Some(160), 80),
        fixture!("s16_c2.wav", PcmS16, 2, 44, Some(320), 80),
        fixture!("s16_c6.wav", PcmS16, 6, 80, Some(480), 40),
        fixture!("s24.wav", PcmS24, 1, 80, Some(240), 80),
        fixture!("s24_wavpcm.wav", PcmS24, 1, 44, Some(240), 80),
        fixture!("s32.wav", PcmS32, 1, 80, Some(320), 80),
        fixture!("s32_wavpcm.wav", PcmS32, 1, 44, Some(320), 80),
        fixture!("f32.wav", Float32, 1, 58, Some(320), 80),
        fixture!("f32_c6.wav", Float32, 6, 58, Some(384), 16),
        fixture!("f64.wav", Float64, 1, 58, Some(640), 80),
        fixture!("s16_pipe.wav", PcmS16, 1, 44, None, 80),
        fixture!("ulaw_pipe.wav", Ulaw, 1, 58, None, 80),
    ]
}

#[test]
fn sox_files_probe_to_what_soxi_says() {
    for f in fixtures() {
        let Probe::Wav(w) = probe(f.bytes) else { panic!("{}: {:?}", f.name, probe(f.bytes)) };
        assert_eq!(w.format.encoding, f.encoding, "{}", f.name);
        assert_eq!((w.format.channels, w.format.sample_rate), (f.channels, 8000), "{}", f.name);
        assert_eq!(w.format.frame_len, u32::from(f.channels) * u32::from(f.encoding.bytes_per_sample()), "{}", f.name);
        assert_eq!(w.data_start, f.data_start, "{}", f.name);
        assert_eq!(w.data_end, f.data_size.map(|s| f.data_start + s), "{}", f.name);
        // The files hold no trailing chunks: samples run to the end.
        assert_eq!(f.data_start as usize + f.samples * w.format.frame_len as usize, f.bytes.len(), "{}", f.name);
    }
}

#[test]
fn sox_files_truncated_never_give_a_wrong_layout() {
    for f in fixtures() {
        let full = probe(f.bytes);
        for len in 0..f.bytes.len() {
            match probe(&f.bytes[..len]) {
                Probe::Incomplete { parsed_to } => {
                    assert!(len < f.data_start as usize && parsed_to as usize <= len, "{} at {len}", f.name)
                }
                p => assert!(len >= f.data_start as usize && p == full, "{} at {len}: {p:?}", f.name),
            }
        }
    }
}

#[test]
fn adpcm_and_gsm_are_unsupported_with_their_data_start() {
    let cases: [(&str, &[u8], u64, &str); 3] = [
        ("ima_adpcm.wav", include_bytes!("testdata/ima_adpcm.wav"), 60, "format tag 0x0011 (IMA ADPCM)"),
        ("ms_adpcm.wav", include_bytes!("testdata/ms_adpcm.wav"), 90, "format tag 0x0002 (MS ADPCM)"),
        ("gsm.wav", include_bytes!("testdata/gsm.wav"), 60, "format tag 0x0031 (GSM 6.10)"),
    ];
    for (name, bytes, data_start, why) in cases {
        let p = probe(bytes);
        assert_eq!(p, Probe::Unsupported { data_start: Some(data_start), reason: why.to_string() }, "{name}");
        // The daemon zeroes the data chunk and keeps the header.
        let mut file = bytes.to_vec();
        let got = silence(&Layout::from_probe(&p), &mut file, 0, 0..u64::MAX);
        assert_eq!(got, Some(data_start..bytes.len() as u64), "{name}");
        assert_eq!(file[..data_start as usize], bytes[..data_start as usize]);
        assert!(file[data_start as usize..].iter().all(|&b| b == 0));
    }
}

#[test]
fn silenced_sox_files_decode_to_silence_with_headers_intact() {
    for f in fixtures() {
        let layout = Layout::from_probe(&probe(f.bytes));
        let mut file = f.bytes.to_vec();
        let got = silence(&layout, &mut file, 0, 0..u64::MAX);
        assert_eq!(got, Some(f.data_start..f.bytes.len() as u64), "{}", f.name);
        let start = f.data_start as usize;
        assert_eq!(file[..start], f.bytes[..start], "{}: header changed", f.name);
        assert_eq!(probe(&file), probe(f.bytes), "{}: the silenced file probes the same", f.name);

        let Probe::Wav(w) = probe(&file) else { unreachable!("checked above") };
        let mut out = vec![Vec::new(); usize::from(f.channels)];
        deinterleave(&w.format, &file[start..], &mut out);
        // A-law has no zero: its silence is the smallest step, +8/32768.
        let floor = if f.encoding == Encoding::Alaw { 8.0 / 32768.0 } else { 0.0 };
        for (c, samples) in out.iter().enumerate() {
            assert_eq!(samples.len(), f.samples, "{} channel {c}", f.name);
            assert!(samples.iter().all(|&s| s == floor), "{} channel {c} is not silent", f.name);
        }
    }
}

#[test]
fn sox_sines_decode_to_the_same_tone_in_every_encoding() {
    // The 16-bit file as the reference: the same `synth` in every encoding is
    // the same waveform, up to each encoding's quantisation and sox's dither
    // (µ-law's and A-law's top steps are 1024/32768). Its first samples as
    // Python's struct reads them, so the reference itself is pinned.
    let s16 = include_bytes!("testdata/s16.wav");
    let reference: Vec<f32> =
        s16[44..].chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect();
    let pinned = [0.0256, 0.2346, 0.4516, 0.6052, 0.6939];
    for (r, p) in reference.iter().zip(pinned) {
        assert!((r - p).abs() < 0.0001, "{r} vs {p}");
    }
    for f in fixtures() {
        let Probe::Wav(w) = probe(f.bytes) else { panic!("{}", f.name) };
        let mut out = vec![Vec::new(); usize::from(f.channels)];
        deinterleave(&w.format, &f.bytes[f.data_start as usize..], &mut out);
        for (c, samples) in out.iter().enumerate() {
            assert_eq!(samples.len(), f.samples, "{} channel {c}", f.name);
            // The first 12: sox shapes a tone's last samples by its length.
            for (n, (&s, &r)) in samples.iter().zip(&reference).take(12).enumerate() {
                assert!((s - r).abs() < 0.04, "{} channel {c} sample {n}: {s}, not {r}", f.name);
            }
        }
    }
}

#[test]
fn g711_tables_match_sox_for_every_byte() {
    let sox = |bytes: &[u8]| -> Vec<i16> { bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect() };
    let ulaw = sox(include_bytes!("testdata/ulaw_all_bytes.s16"));
    let alaw = sox(include_bytes!("testdata/alaw_all_bytes.s16"));
    assert_eq!(ulaw.len(), 256);
    for b in 0..=255u8 {
        assert_eq!(g711::ulaw_to_linear(b), ulaw[usize::from(b)], "µ-law {b:#04x}");
        assert_eq!(g711::alaw_to_linear(b), alaw[usize::from(b)], "A-law {b:#04x}");
    }
}
