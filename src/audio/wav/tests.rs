//! Probe tests on WAV headers built chunk by chunk: every encoding, chunk
//! orders, padding, streaming sizes, truncation and hostile fields. The
//! sox-made files are checked in `audio::fixtures`.

use super::*;

/// A `fmt ` chunk body of 16 bytes (byte rate is not read, so it is left 0).
pub(crate) fn fmt16(tag: u16, channels: u16, rate: u32, block_align: u16, bits: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(tag.to_le_bytes());
    b.extend(channels.to_le_bytes());
    b.extend(rate.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(block_align.to_le_bytes());
    b.extend(bits.to_le_bytes());
    b
}

/// A WAVE_FORMAT_EXTENSIBLE `fmt ` chunk body (40 bytes) for subformat `sub`.
pub(crate) fn fmt40(sub: u16, channels: u16, rate: u32, block_align: u16, bits: u16, valid: u16) -> Vec<u8> {
    let mut b = fmt16(WAVE_FORMAT_EXTENSIBLE, channels, rate, block_align, bits);
    b.extend(22u16.to_le_bytes());
    b.extend(valid.to_le_bytes());
    b.extend(0u32.to_le_bytes()); // channel mask
    b.extend(sub.to_le_bytes());
    b.extend(SUBTYPE_GUID_TAIL);
    b
}

/// A RIFF/WAVE file of these chunks, each padded to even length; the RIFF
/// size is the real one unless given. A `data` chunk's size is its body's
/// unless the body is empty and a size is given with `sized`.
pub(crate) fn riff(magic: &[u8; 4], riff_size: Option<u32>, chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(magic);
    out.extend([0; 4]);
    out.extend(b"WAVE");
    for (id, body) in chunks {
        out.extend(*id);
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(*body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
    }
    let size = riff_size.unwrap_or(out.len() as u32 - 8);
    out[4..8].copy_from_slice(&size.to_le_bytes());
    out
}

/// Overwrites the 32-bit size of the first chunk with this id.
fn set_chunk_size(file: &mut [u8], id: &[u8; 4], size: u32) {
    let at = file.windows(4).position(|w| w == id).unwrap();
    file[at + 4..at + 8].copy_from_slice(&size.to_le_bytes());
}

fn layout(p: Probe) -> WavLayout {
    match p {
        Probe::Wav(w) => w,
        other => panic!("expected a WAV layout, got {other:?}"),
    }
}

fn reason(p: Probe) -> (Option<u64>, String) {
    match p {
        Probe::Unsupported { data_start, reason } => (data_start, reason),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

const SAMPLES: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24];

#[test]
fn every_encoding_plain_and_extensible() {
    let cases = [
        (WAVE_FORMAT_PCM, 8, Encoding::PcmU8),
        (WAVE_FORMAT_PCM, 16, Encoding::PcmS16),
        (WAVE_FORMAT_PCM, 24, Encoding::PcmS24),
        (WAVE_FORMAT_PCM, 32, Encoding::PcmS32),
        (WAVE_FORMAT_IEEE_FLOAT, 32, Encoding::Float32),
        (WAVE_FORMAT_IEEE_FLOAT, 64, Encoding::Float64),
        (WAVE_FORMAT_ALAW, 8, Encoding::Alaw),
        (WAVE_FORMAT_MULAW, 8, Encoding::Ulaw),
    ];
    for (tag, bits, encoding) in cases {
        for channels in [1u16, 2, 6] {
            let ba = channels * bits / 8;
            let want = Format { encoding, channels, sample_rate: 8000, frame_len: u32::from(ba) };
            let plain = riff(b"RIFF", None, &[(b"fmt ", &fmt16(tag, channels, 8000, ba, bits)), (b"data", SAMPLES)]);
            let w = layout(probe(&plain));
            assert_eq!((w.format, w.data_start, w.data_end), (want, 44, Some(44 + 24)), "{encoding} x{channels}");

            let ext = fmt40(tag, channels, 8000, ba, bits, bits);
            let file = riff(b"RIFF", None, &[(b"fmt ", &ext), (b"fact", &[0; 4]), (b"data", SAMPLES)]);
            let w = layout(probe(&file));
            assert_eq!((w.format, w.data_start), (want, 80), "extensible {encoding} x{channels}");
        }
    }
}

#[test]
fn fmt_chunks_of_16_18_and_40_bytes() {
    let mut f18 = fmt16(WAVE_FORMAT_MULAW, 1, 8000, 1, 8);
    f18.extend(0u16.to_le_bytes());
    let w = layout(probe(&riff(b"RIFF", None, &[(b"fmt ", &f18), (b"data", SAMPLES)])));
    assert_eq!((w.format.encoding, w.data_start), (Encoding::Ulaw, 46));
    // 20 valid bits in a 24-bit container: silenced and decoded by the container.
    let f40 = fmt40(WAVE_FORMAT_PCM, 2, 48000, 6, 24, 20);
    let w = layout(probe(&riff(b"RIFF", None, &[(b"fmt ", &f40), (b"data", SAMPLES)])));
    assert_eq!((w.format.encoding, w.format.sample_rate, w.format.frame_len), (Encoding::PcmS24, 48000, 6));
    // Plain PCM giving precision rather than container: 12 bits in 2 bytes.
    let f12 = fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 12);
    assert_eq!(
        layout(probe(&riff(b"RIFF", None, &[(b"fmt ", &f12), (b"data", SAMPLES)]))).format.encoding,
        Encoding::PcmS16
    );
}

#[test]
fn chunks_in_any_order_before_data() {
    let fmt = fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16);
    let list = b"LIST\x04\x00\x00\x00INFO".to_vec();
    let bext = vec![0x42; 602];
    let orders: [&[(&[u8; 4], &[u8])]; 4] = [
        &[(b"JUNK", &[0; 28]), (b"fmt ", &fmt), (b"data", SAMPLES)],
        &[(b"bext", &bext), (b"LIST", &list), (b"fmt ", &fmt), (b"fact", &[0; 4]), (b"data", SAMPLES)],
        &[(b"fmt ", &fmt), (b"cue ", &[0; 4]), (b"LIST", &list), (b"data", SAMPLES), (b"LIST", &list)],
        &[(b"fact", &[0; 4]), (b"fmt ", &fmt), (b"JUNK", &[]), (b"data", SAMPLES)],
    ];
    for chunks in orders {
        let file = riff(b"RIFF", None, chunks);
        let data_at = file.windows(4).position(|w| w == b"data").unwrap() as u64 + 8;
        let w = layout(probe(&file));
        assert_eq!((w.data_start, w.data_end), (data_at, Some(data_at + 24)));
        assert_eq!(w.format.encoding, Encoding::PcmS16);
    }
}

#[test]
fn odd_chunks_are_padded_to_even_length() {
    let fmt = fmt16(WAVE_FORMAT_PCM, 1, 8000, 1, 8);
    let file = riff(b"RIFF", None, &[(b"LIST", b"odd"), (b"fmt ", &fmt), (b"afsp", b"x"), (b"data", &SAMPLES[..5])]);
    // 12 + (8+3+1) + (8+16) + (8+1+1) + 8
    let w = layout(probe(&file));
    assert_eq!((w.data_start, w.data_end), (66, Some(71)));
    // Without the pad byte the next chunk header is misread: never as this layout.
    let unpadded = [&file[..23], &file[24..]].concat();
    assert!(!matches!(probe(&unpadded), Probe::Wav(w) if w.data_start == 65));
}

#[test]
fn streaming_sizes_run_data_to_the_end_of_the_file() {
    let fmt = fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16);
    let real = riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"data", SAMPLES)]);
    assert_eq!(layout(probe(&real)).data_end, Some(68));
    for (riff_size, data_size) in
        [(0, 0), (u32::MAX, u32::MAX), (0, 24), (u32::MAX, 24), (60, 0), (60, u32::MAX), (0x7FFF_F024, 0x7FFF_F000)]
    {
        let mut file = real.clone();
        file[4..8].copy_from_slice(&riff_size.to_le_bytes());
        set_chunk_size(&mut file, b"data", data_size);
        let w = layout(probe(&file));
        assert_eq!((w.data_start, w.data_end), (44, None), "RIFF {riff_size:#x} data {data_size:#x}");
    }
}

#[test]
fn a_rewritten_final_header_gives_the_real_end() {
    // Streaming: placeholders while recording...
    let fmt = fmt16(WAVE_FORMAT_ALAW, 1, 8000, 1, 8);
    let mut file = riff(b"RIFF", Some(u32::MAX), &[(b"fmt ", &fmt), (b"data", &[])]);
    set_chunk_size(&mut file, b"data", u32::MAX);
    file.extend([0x55; 1000]);
    assert_eq!(layout(probe(&file)).data_end, None);
    // ...then the recorder seeks back at hang-up and writes the real sizes,
    // with an INFO chunk after the samples.
    file.extend(b"LIST\x04\x00\x00\x00INFO");
    let len = file.len() as u32;
    file[4..8].copy_from_slice(&(len - 8).to_le_bytes());
    set_chunk_size(&mut file, b"data", 1000);
    let w = layout(probe(&file));
    assert_eq!((w.data_start, w.data_end), (44, Some(1044)));
    // A data size running past the RIFF form is not believed.
    file[4..8].copy_from_slice(&500u32.to_le_bytes());
    assert_eq!(layout(probe(&file)).data_end, None);
}

#[test]
fn a_complete_header_written_up_front_is_not_believed_once_outgrown() {
    // sox-style: real sizes for 24 bytes of samples, then the recorder keeps appending.
    let fmt = fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16);
    let file = riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"data", &[0x11; 24])]);
    let w = layout(probe(&file));
    let end = form_end(&file);
    assert_eq!((w.data_end, end), (Some(68), Some(68)));
    assert_eq!(outgrown_as_streaming(w, end, 68).data_end, Some(68), "exactly the form: final");
    assert_eq!(outgrown_as_streaming(w, end, 69).data_end, None, "grown past the form: streaming");
    assert_eq!(form_end(b"RIFF\xff\xff\xff\xffWAVE"), None, "placeholder");
    assert_eq!(form_end(b"RIFF\x00\x00\x00\x00WAVE"), None, "placeholder");
    assert_eq!(form_end(b"RF64\xff\xff\xff\xffWAVE"), None);
    assert_eq!(form_end(b"RIF"), None);
}

/// Real headers: every prefix short of the data chunk header is Incomplete
/// (or NotWav), never a layout; `parsed_to` never passes the prefix and never
/// shrinks as the prefix grows; from the data header on, the full answer.
fn check_every_truncation(file: &[u8]) {
    let full = probe(file);
    let data_start = match &full {
        Probe::Wav(w) => w.data_start,
        Probe::Unsupported { data_start: Some(d), .. } => *d,
        other => panic!("not a complete header: {other:?}"),
    } as usize;
    let mut last = 0;
    for len in 0..data_start {
        match probe(&file[..len]) {
            Probe::Incomplete { parsed_to } => {
                assert!(parsed_to as usize <= len, "parsed_to {parsed_to} past prefix {len}");
                assert!(parsed_to >= last, "parsed_to shrank at {len}");
                last = parsed_to;
            }
            Probe::NotWav => {}
            other => panic!("prefix of {len} bytes gave {other:?}"),
        }
    }
    for len in data_start..file.len() {
        assert_eq!(probe(&file[..len]), full, "prefix of {len} bytes");
    }
}

#[test]
fn truncated_headers_are_incomplete_at_every_length() {
    let fmt = fmt16(WAVE_FORMAT_PCM, 2, 8000, 4, 16);
    check_every_truncation(&riff(b"RIFF", None, &[(b"LIST", b"odd"), (b"fmt ", &fmt), (b"data", SAMPLES)]));
    check_every_truncation(&riff(b"RIFF", None, &[(b"fmt ", &fmt40(3, 1, 8000, 4, 32, 32)), (b"data", SAMPLES)]));
    check_every_truncation(&riff(b"RIFF", None, &[(b"fmt ", &fmt16(0x11, 1, 8000, 256, 4)), (b"data", SAMPLES)]));
    check_every_truncation(&rf64(Some((100, 24)), SAMPLES));
    assert_eq!(probe(b""), Probe::Incomplete { parsed_to: 0 });
    assert_eq!(probe(b"RIFF\0\0\0\0WAVE"), Probe::Incomplete { parsed_to: 12 });
    assert_eq!(probe(b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0"), Probe::Incomplete { parsed_to: 12 });
}

#[test]
fn other_files_are_not_wav() {
    for prefix in [
        &b"RIFX\0\0\0\0WAVEfmt "[..],
        b"RIFF\x10\0\0\0AVI LIST",
        b"OggS\0\x02",
        b"\x1aE\xdf\xa3",
        b"RIFF\0\0\0\0WAV!",
        b"R!",
    ] {
        assert_eq!(probe(prefix), Probe::NotWav, "{:?}", String::from_utf8_lossy(prefix));
    }
}

#[test]
fn hostile_fmt_fields_are_unsupported_not_trusted() {
    let cases: [(Vec<u8>, &str); 13] = [
        (fmt16(WAVE_FORMAT_PCM, 2, 8000, 2, 16), "block_align 2 is not 2 channels of 2 bytes"),
        (fmt16(WAVE_FORMAT_PCM, 1, 8000, 0, 16), "block_align 0"),
        (fmt16(WAVE_FORMAT_PCM, 0, 8000, 0, 16), "0 channels"),
        (fmt16(WAVE_FORMAT_PCM, 1, 0, 2, 16), "sample rate of 0"),
        (fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 0), "PCM with 0 bits"),
        (fmt16(WAVE_FORMAT_PCM, 1, 8000, 5, 40), "PCM with 40 bits"),
        (fmt16(WAVE_FORMAT_IEEE_FLOAT, 1, 8000, 2, 16), "IEEE float with 16 bits"),
        (fmt16(WAVE_FORMAT_MULAW, 1, 8000, 2, 16), "mu-law with 16 bits"),
        (fmt16(0x0011, 1, 8000, 256, 4), "format tag 0x0011 (IMA ADPCM)"),
        (fmt16(0x0055, 2, 44100, 1, 0), "(MP3)"),
        (fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16)[..14].to_vec(), "fmt chunk of 14 bytes"),
        (fmt16(WAVE_FORMAT_EXTENSIBLE, 1, 8000, 2, 16), "extensible fmt chunk of 16 bytes"),
        (fmt40(WAVE_FORMAT_PCM, 1, 8000, 2, 16, 24), "24 valid bits in a 16-bit container"),
    ];
    for (fmt, want) in cases {
        let file = riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"data", SAMPLES)]);
        let (data_start, why) = reason(probe(&file));
        assert!(why.contains(want), "{why:?} should say {want:?}");
        let expect_start = 12 + 8 + fmt.len() + fmt.len() % 2 + 8;
        assert_eq!(data_start, Some(expect_start as u64), "{want}");
    }
    let mut guid = fmt40(WAVE_FORMAT_PCM, 1, 8000, 2, 16, 16);
    guid[39] ^= 1;
    let mut short_ext = fmt40(WAVE_FORMAT_PCM, 1, 8000, 2, 16, 16);
    short_ext[16] = 0;
    let ext_of_ext = fmt40(WAVE_FORMAT_EXTENSIBLE, 1, 8000, 2, 16, 16);
    let ext_pcm12 = fmt40(WAVE_FORMAT_PCM, 1, 8000, 2, 12, 12);
    for (fmt, want) in [
        (guid, "non-standard subformat GUID"),
        (short_ext, "extension of 0 bytes"),
        (ext_of_ext, "non-standard subformat GUID"),
        (ext_pcm12, "PCM with 12 bits"),
    ] {
        let (_, why) = reason(probe(&riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"data", SAMPLES)])));
        assert!(why.contains(want), "{why:?} should say {want:?}");
    }
}

#[test]
fn ambiguous_chunk_structure_is_unsupported() {
    let fmt = fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16);
    let other = fmt16(WAVE_FORMAT_PCM, 1, 8000, 1, 8);
    let (at, why) = reason(probe(&riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"fmt ", &other), (b"data", SAMPLES)])));
    assert_eq!((at, why.as_str()), (Some(68), "two fmt chunks"));
    let (at, why) = reason(probe(&riff(b"RIFF", None, &[(b"data", SAMPLES), (b"fmt ", &fmt)])));
    assert_eq!((at, why.as_str()), (Some(20), "data chunk before any fmt chunk"));
}

#[test]
fn every_channel_count_up_to_65535() {
    for channels in [1u16, 2, 3, 7, 255, 256, 32767, 65535] {
        let file =
            riff(b"RIFF", None, &[(b"fmt ", &fmt16(WAVE_FORMAT_ALAW, channels, 8000, channels, 8)), (b"data", &[])]);
        let w = layout(probe(&file));
        assert_eq!((w.format.channels, w.format.frame_len), (channels, u32::from(channels)));
    }
    // 65535 channels of 16 bits cannot have a block_align that says so.
    let file = riff(b"RIFF", None, &[(b"fmt ", &fmt16(WAVE_FORMAT_PCM, 65535, 8000, 65534, 16)), (b"data", &[])]);
    assert!(matches!(probe(&file), Probe::Unsupported { .. }));
}

#[test]
fn the_scan_stops_at_max_header_scan() {
    let fmt = fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16);
    // A JUNK chunk that puts the data chunk header's end exactly at the limit.
    let junk_len = MAX_HEADER_SCAN - 12 - 24 - 8 - 8;
    let junk = vec![0u8; junk_len];
    let file = riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"JUNK", &junk), (b"data", SAMPLES)]);
    assert_eq!(layout(probe(&file)).data_start, MAX_HEADER_SCAN as u64);
    // Two bytes more and the header no longer fits: once the prefix holds
    // the whole window, there is no data chunk to find.
    let junk = vec![0u8; junk_len + 2];
    let file = riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"JUNK", &junk), (b"data", SAMPLES)]);
    let (at, why) = reason(probe(&file));
    assert_eq!(at, None);
    assert!(why.contains("no data chunk within the first 65536 bytes"), "{why}");
    assert_eq!(probe(&file[..MAX_HEADER_SCAN - 1]), Probe::Incomplete { parsed_to: MAX_HEADER_SCAN as u64 - 6 });
    assert_eq!(probe(&file[..1000]), Probe::Incomplete { parsed_to: 36 });
    // A chunk claiming 4 GiB: incomplete until the window is full, never a read past it.
    let mut huge = riff(b"RIFF", None, &[(b"fmt ", &fmt), (b"LIST", &[0; 8])]);
    set_chunk_size(&mut huge, b"LIST", u32::MAX);
    assert_eq!(probe(&huge), Probe::Incomplete { parsed_to: 36 });
    huge.resize(MAX_HEADER_SCAN + 100, 0);
    assert!(matches!(probe(&huge), Probe::Unsupported { data_start: None, .. }));
}

#[test]
fn many_tiny_chunks_stay_within_the_window() {
    let mut file = riff(b"RIFF", None, &[(b"fmt ", &fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16))]);
    while file.len() < 2 * MAX_HEADER_SCAN {
        file.extend(b"JUNK\0\0\0\0");
    }
    assert!(matches!(probe(&file), Probe::Unsupported { data_start: None, .. }));
}

/// An RF64 file with a ds64 chunk of (riff, data) sizes, or none; the
/// RIFF and data sizes are 0xFFFFFFFF as EBU Tech 3306 says.
fn rf64(ds64: Option<(u64, u64)>, samples: &[u8]) -> Vec<u8> {
    let fmt = fmt16(WAVE_FORMAT_PCM, 1, 8000, 2, 16);
    let mut chunks: Vec<(&[u8; 4], Vec<u8>)> = Vec::new();
    if let Some((r, d)) = ds64 {
        let mut body = Vec::new();
        body.extend(r.to_le_bytes());
        body.extend(d.to_le_bytes());
        body.extend(0u64.to_le_bytes()); // sample count
        body.extend(0u32.to_le_bytes()); // table length
        chunks.push((b"ds64", body));
    }
    chunks.push((b"fmt ", fmt));
    chunks.push((b"data", samples.to_vec()));
    let refs: Vec<(&[u8; 4], &[u8])> = chunks.iter().map(|(id, b)| (*id, b.as_slice())).collect();
    let mut file = riff(b"RF64", Some(u32::MAX), &refs);
    set_chunk_size(&mut file, b"data", u32::MAX);
    file
}

#[test]
fn rf64_sizes_come_from_ds64() {
    let data_start = 12 + 36 + 24 + 8;
    let w = layout(probe(&rf64(Some((100, 24)), SAMPLES)));
    assert_eq!((w.data_start, w.data_end), (data_start, Some(data_start + 24)));
    let big = 6 << 30;
    assert_eq!(layout(probe(&rf64(Some((big + 100, big)), SAMPLES))).data_end, Some(data_start + big));
    for (r, d) in [(0, 0), (u64::MAX, u64::MAX), (100, 0), (50, 24), (1 << 63, 1 << 62)] {
        assert_eq!(layout(probe(&rf64(Some((r, d)), SAMPLES))).data_end, None, "ds64 {r:#x} {d:#x}");
    }
    let mut bw64 = rf64(Some((100, 24)), SAMPLES);
    bw64[..4].copy_from_slice(b"BW64");
    assert_eq!(layout(probe(&bw64)).data_end, Some(data_start + 24));
    let (at, why) = reason(probe(&rf64(None, SAMPLES)));
    assert_eq!((at, why.as_str()), (Some(44), "RF64 file without a ds64 chunk first"));
}
