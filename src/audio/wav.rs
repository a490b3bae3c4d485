//! Where a WAV file's sample data is, read from its first bytes.
//!
//! A WAV file is `RIFF <size> WAVE` followed by chunks, each `<id> <size>
//! <body>` padded to an even length. The `fmt ` chunk says how samples are
//! stored; the `data` chunk holds them. [`probe`] walks the chunks up to the
//! `data` chunk's header, never further than [`MAX_HEADER_SCAN`] bytes, and
//! never allocates on the way to a [`Probe::Wav`]: every size read from the
//! file is only compared and added (checked), never used to reserve memory.
//!
//! RF64 and BW64 (EBU Tech 3306, ITU-R BS.2088: the same layout with 64-bit
//! sizes in a `ds64` chunk that comes first) are read too.

use super::{Encoding, Format};
use crate::sectors::MAX_FILE_SIZE;

/// How far into a file a WAV header (all chunks before `data`) is searched.
pub const MAX_HEADER_SCAN: usize = 64 * 1024;

/// A 32-bit RIFF or data size at or above this is a streaming writer's
/// placeholder, not a size: sox writes 0x7ffff000 when it cannot seek back,
/// others 0xffffffff. A real recording this large (2 GiB of samples, 74
/// hours of 8 kHz µ-law) only loses its trailing chunks to silence.
pub const PLACEHOLDER_MIN: u32 = 0x7FFF_F000;

/// Bytes of `RIFF <size> WAVE`.
const RIFF_HEADER_LEN: usize = 12;
/// Bytes of a chunk's `<id> <size>`.
const CHUNK_HEADER_LEN: usize = 8;

/// The 14 bytes that follow the format tag in every KSDATAFORMAT_SUBTYPE GUID
/// of a WAVE_FORMAT_EXTENSIBLE `fmt ` chunk (`xxxxxxxx-0000-0010-8000-00aa00389b71`).
const SUBTYPE_GUID_TAIL: [u8; 14] = [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71];

const WAVE_FORMAT_PCM: u16 = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
const WAVE_FORMAT_ALAW: u16 = 0x0006;
const WAVE_FORMAT_MULAW: u16 = 0x0007;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavLayout {
    pub format: Format,
    /// file offset of the first sample byte
    pub data_start: u64,
    /// end of sample data if the header gives a real size; None while
    /// streaming (size 0 or 0xFFFFFFFF, or RIFF/data size placeholders): data
    /// runs to the end of the file
    pub data_end: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Not a RIFF/WAVE (or RF64) file: treated as opaque bytes.
    NotWav,
    /// Starts as a WAV but the `data` chunk header is not within `prefix`
    /// yet: bytes before `parsed_to` are known chunk structure (header), what
    /// lies beyond is not known.
    Incomplete {
        parsed_to: u64,
    },
    Wav(WavLayout),
    /// A WAV whose sample format callvault cannot silence exactly (e.g.
    /// ADPCM, GSM, MP3-in-WAV); the daemon then zeroes the data chunk.
    /// Carries a short reason for the log and journal. `data_start` is `None`
    /// when no `data` chunk starts within [`MAX_HEADER_SCAN`] bytes.
    Unsupported {
        data_start: Option<u64>,
        reason: String,
    },
}

/// Which RIFF flavour the file is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Riff,
    /// RF64 or BW64: sizes of 0xFFFFFFFF stand for the ones in `ds64`.
    Rf64,
}

/// The sizes of a `ds64` chunk that matter here.
#[derive(Clone, Copy)]
struct Ds64 {
    riff_size: u64,
    data_size: u64,
}

/// `prefix` is the file's bytes from offset 0 (possibly shorter than the
/// file, at most MAX_HEADER_SCAN is looked at).
pub fn probe(prefix: &[u8]) -> Probe {
    let scan = &prefix[..prefix.len().min(MAX_HEADER_SCAN)];
    let Some(container) = container(scan) else {
        return Probe::NotWav;
    };
    if scan.len() < RIFF_HEADER_LEN {
        return Probe::Incomplete { parsed_to: 0 };
    }
    let riff_size = le32(scan, 4);

    let mut pos = RIFF_HEADER_LEN;
    // The first `fmt ` chunk's verdict; a second one makes the file ambiguous.
    let mut fmt: Option<Result<Format, String>> = None;
    let mut ds64: Option<Ds64> = None;
    loop {
        let Some(header) = scan.get(pos..pos + CHUNK_HEADER_LEN) else {
            return data_not_reached(prefix, pos);
        };
        let id = &header[..4];
        let size = le32(header, 4);
        let body_start = pos + CHUNK_HEADER_LEN;
        if id == b"data" {
            // `pos` < MAX_HEADER_SCAN: the cast and the sum cannot overflow.
            let data_start = body_start as u64;
            return at_data(container, fmt, ds64, riff_size, size, data_start);
        }
        // A body (and its pad byte) ending past the scan window is not
        // complete within it; on a 32-bit target usize overflow means the same.
        let pad = usize::from(size & 1 == 1);
        let body_end = usize::try_from(size).ok().and_then(|s| body_start.checked_add(s));
        let Some(body_end) = body_end.filter(|&e| e.checked_add(pad).is_some_and(|p| p <= scan.len())) else {
            return data_not_reached(prefix, pos);
        };
        let body = &scan[body_start..body_end];
        match id {
            b"fmt " => {
                fmt = Some(match fmt {
                    None => parse_fmt(body),
                    Some(_) => Err("two fmt chunks".to_string()),
                });
            }
            // Only as the first chunk, where EBU Tech 3306 puts it.
            b"ds64" if container == Container::Rf64 && pos == RIFF_HEADER_LEN && body.len() >= 16 => {
                ds64 = Some(Ds64 { riff_size: le64(body, 0), data_size: le64(body, 8) });
            }
            _ => {}
        }
        pos = body_end + pad;
    }
}

/// The RIFF flavour if `scan` starts like a WAV file (as far as it goes).
fn container(scan: &[u8]) -> Option<Container> {
    let starts = |magic: &[u8; 4]| scan.iter().take(4).zip(magic).all(|(a, b)| a == b);
    let kind = if starts(b"RIFF") {
        Container::Riff
    } else if starts(b"RF64") || starts(b"BW64") {
        Container::Rf64
    } else {
        return None;
    };
    let form = scan.get(8..).unwrap_or_default();
    form.iter().take(4).zip(b"WAVE").all(|(a, b)| a == b).then_some(kind)
}

/// The answer when the scan ran out before a `data` chunk header: more of
/// the file may tell, unless the window is used up. `parsed_to` is where the
/// first chunk not known to be complete starts.
fn data_not_reached(prefix: &[u8], parsed_to: usize) -> Probe {
    if prefix.len() >= MAX_HEADER_SCAN {
        return Probe::Unsupported {
            data_start: None,
            reason: format!("no data chunk within the first {MAX_HEADER_SCAN} bytes"),
        };
    }
    Probe::Incomplete { parsed_to: parsed_to as u64 }
}

/// The verdict once the `data` chunk's header is read.
fn at_data(
    container: Container,
    fmt: Option<Result<Format, String>>,
    ds64: Option<Ds64>,
    riff_size: u32,
    data_size: u32,
    data_start: u64,
) -> Probe {
    let unsupported = |reason: String| Probe::Unsupported { data_start: Some(data_start), reason };
    let format = match fmt {
        None => return unsupported("data chunk before any fmt chunk".to_string()),
        Some(Err(reason)) => return unsupported(reason),
        Some(Ok(f)) => f,
    };
    let data_end = match container {
        Container::Riff => riff_data_end(riff_size, data_size, data_start),
        Container::Rf64 => match ds64 {
            Some(d) => rf64_data_end(riff_size, data_size, d, data_start),
            None => return unsupported("RF64 file without a ds64 chunk first".to_string()),
        },
    };
    Probe::Wav(WavLayout { format, data_start, data_end })
}

/// Where a RIFF form ends by its header (`8 +` the RIFF size), when that
/// size is real: `None` for placeholders, RF64 and what is not RIFF.
pub fn form_end(prefix: &[u8]) -> Option<u64> {
    if prefix.get(0..4) != Some(b"RIFF") {
        return None;
    }
    let size = u32::from_le_bytes(prefix.get(4..8)?.try_into().ok()?);
    (size != 0 && size < PLACEHOLDER_MIN).then(|| u64::from(size) + 8)
}

/// `w` as it applies to a file now `file_end` bytes long: a header whose
/// RIFF size covers less than the file holds is not final (a recorder that
/// wrote a complete header up front and keeps appending), so its data runs
/// to the end of the file. Bytes past the form's end are never another
/// chunk of it, and believing the stale size would leave them unsilenced.
pub fn outgrown_as_streaming(w: WavLayout, form_end: Option<u64>, file_end: u64) -> WavLayout {
    match form_end {
        Some(end) if w.data_end.is_some() && file_end > end => WavLayout { data_end: None, ..w },
        _ => w,
    }
}

/// End of the data chunk from 32-bit sizes, or `None` when either size is a
/// placeholder or they disagree (the data chunk would run past the RIFF
/// form's end): believing a size too small would leave samples unsilenced,
/// while running data to the end of the file only silences trailing chunks.
fn riff_data_end(riff_size: u32, data_size: u32, data_start: u64) -> Option<u64> {
    let placeholder = |s: u32| s == 0 || s >= PLACEHOLDER_MIN;
    if placeholder(riff_size) || placeholder(data_size) {
        return None;
    }
    let end = data_start + u64::from(data_size);
    (end <= u64::from(riff_size) + 8).then_some(end)
}

/// As [`riff_data_end`], for RF64: a 32-bit size of 0xFFFFFFFF defers to
/// `ds64`, whose sizes are placeholders when 0 or beyond any file callvault
/// can hold.
fn rf64_data_end(riff_size: u32, data_size: u32, ds64: Ds64, data_start: u64) -> Option<u64> {
    let size64 = |s32: u32, s64: u64| if s32 == u32::MAX { s64 } else { u64::from(s32) };
    let (riff, data) = (size64(riff_size, ds64.riff_size), size64(data_size, ds64.data_size));
    let fits = |s: u64| s != 0 && s <= MAX_FILE_SIZE;
    if !fits(riff) || !fits(data) {
        return None;
    }
    // Both at most 2^62: no overflow.
    let end = data_start + data;
    (end <= riff + 8).then_some(end)
}

/// The sample format of a `fmt ` chunk body, or why it cannot be silenced exactly.
fn parse_fmt(body: &[u8]) -> Result<Format, String> {
    if body.len() < 16 {
        return Err(format!("fmt chunk of {} bytes, fewer than 16", body.len()));
    }
    let tag = le16(body, 0);
    let channels = le16(body, 2);
    let sample_rate = le32(body, 4);
    let block_align = le16(body, 12);
    let bits = le16(body, 14);

    let (tag, extensible) =
        if tag == WAVE_FORMAT_EXTENSIBLE { (extensible_subformat(body, bits)?, true) } else { (tag, false) };
    let encoding = encoding(tag, bits, extensible)?;
    if channels == 0 {
        return Err("fmt chunk with 0 channels".to_string());
    }
    if sample_rate == 0 {
        return Err("fmt chunk with a sample rate of 0".to_string());
    }
    let frame_len = u32::from(channels) * u32::from(encoding.bytes_per_sample());
    if u32::from(block_align) != frame_len {
        return Err(format!(
            "block_align {block_align} is not {channels} channels of {} bytes",
            encoding.bytes_per_sample()
        ));
    }
    Ok(Format { encoding, channels, sample_rate, frame_len })
}

/// The format tag a WAVE_FORMAT_EXTENSIBLE chunk stands for: the first two
/// bytes of its subformat GUID, when the rest is the standard suffix.
fn extensible_subformat(body: &[u8], container_bits: u16) -> Result<u16, String> {
    if body.len() < 40 {
        return Err(format!("extensible fmt chunk of {} bytes, fewer than 40", body.len()));
    }
    let extension_len = le16(body, 16);
    if extension_len < 22 {
        return Err(format!("extensible fmt chunk with an extension of {extension_len} bytes, fewer than 22"));
    }
    // Silence and decoding go by the container, so fewer valid bits (20 in
    // 24, say) are fine; more than the container holds is a lie.
    let valid_bits = le16(body, 18);
    if valid_bits > container_bits {
        return Err(format!("{valid_bits} valid bits in a {container_bits}-bit container"));
    }
    let guid = &body[24..40];
    let sub = le16(guid, 0);
    if guid[2..] != SUBTYPE_GUID_TAIL || sub == WAVE_FORMAT_EXTENSIBLE {
        return Err("extensible fmt chunk with a non-standard subformat GUID".to_string());
    }
    Ok(sub)
}

/// The encoding of a format tag and bit depth, if one callvault silences exactly.
fn encoding(tag: u16, bits: u16, extensible: bool) -> Result<Encoding, String> {
    let e = match (tag, bits) {
        // Plain PCM may give the sample's precision (12, 20 bits) with the
        // container rounded up to whole bytes; extensible gives the container.
        (WAVE_FORMAT_PCM, 1..=8) if !extensible || bits == 8 => Encoding::PcmU8,
        (WAVE_FORMAT_PCM, 9..=16) if !extensible || bits == 16 => Encoding::PcmS16,
        (WAVE_FORMAT_PCM, 17..=24) if !extensible || bits == 24 => Encoding::PcmS24,
        (WAVE_FORMAT_PCM, 25..=32) if !extensible || bits == 32 => Encoding::PcmS32,
        (WAVE_FORMAT_IEEE_FLOAT, 32) => Encoding::Float32,
        (WAVE_FORMAT_IEEE_FLOAT, 64) => Encoding::Float64,
        (WAVE_FORMAT_ALAW, 8) => Encoding::Alaw,
        (WAVE_FORMAT_MULAW, 8) => Encoding::Ulaw,
        (WAVE_FORMAT_PCM | WAVE_FORMAT_IEEE_FLOAT | WAVE_FORMAT_ALAW | WAVE_FORMAT_MULAW, _) => {
            return Err(format!("{} with {bits} bits per sample", tag_name(tag)));
        }
        _ => return Err(format!("format tag {tag:#06x} ({})", tag_name(tag))),
    };
    Ok(e)
}

/// A name for the log, for the tags recorders are known to write.
fn tag_name(tag: u16) -> &'static str {
    match tag {
        WAVE_FORMAT_PCM => "PCM",
        0x0002 => "MS ADPCM",
        WAVE_FORMAT_IEEE_FLOAT => "IEEE float",
        WAVE_FORMAT_ALAW => "A-law",
        WAVE_FORMAT_MULAW => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0022 => "TrueSpeech",
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0045 => "G.726 ADPCM",
        0x0050 => "MPEG",
        0x0055 => "MP3",
        0x0064 => "G.726 ADPCM",
        0x0065 => "G.722 ADPCM",
        0x00A0 | 0xA100 => "G.723.1",
        0x0160..=0x0162 => "WMA",
        0x1610 | 0x00FF => "AAC",
        0x704F | 0x6750 => "Opus/Vorbis",
        _ => "unknown",
    }
}

// Little-endian fields at `at`; every caller has checked that `b` holds them.
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

#[cfg(test)]
pub(crate) mod tests;
