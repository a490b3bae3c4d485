//! Headerless telephony audio, known by its file name's extension.
//!
//! Asterisk, FreeSWITCH and many recorders store calls as bare samples:
//! `.ul`/`.ulaw`/`.mu` G.711 µ-law, `.al`/`.alaw` A-law, `.pcm`/`.raw`/`.sln`
//! signed 16-bit little-endian, all mono at 8 kHz. Such a file has no header
//! to read, so the name says what its silence is; every byte is sample data.

use super::wav::WavLayout;
use super::{Encoding, Format};

/// The layout of a headerless recording named `path`, by its extension
/// (compared without regard to case); `None` for any other name.
pub fn layout_by_name(path: &str) -> Option<WavLayout> {
    let name = path.rsplit('/').next()?;
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    let encoding = match ext.to_ascii_lowercase().as_str() {
        "ul" | "ulaw" | "mu" => Encoding::Ulaw,
        "al" | "alaw" => Encoding::Alaw,
        "pcm" | "raw" | "sln" => Encoding::PcmS16,
        _ => return None,
    };
    let format = Format::new(encoding, 1, 8000)?;
    Some(WavLayout { format, data_start: 0, data_end: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_name_the_encoding() {
        let enc =
            |p: &str| layout_by_name(p).map(|w| (w.format.encoding, w.format.frame_len, w.data_start, w.data_end));
        assert_eq!(enc("/calls/c1.ul"), Some((Encoding::Ulaw, 1, 0, None)));
        assert_eq!(enc("/calls/c1.ULAW"), Some((Encoding::Ulaw, 1, 0, None)));
        assert_eq!(enc("/c1.mu"), Some((Encoding::Ulaw, 1, 0, None)));
        assert_eq!(enc("/c1.al"), Some((Encoding::Alaw, 1, 0, None)));
        assert_eq!(enc("/c1.alaw"), Some((Encoding::Alaw, 1, 0, None)));
        for e in ["pcm", "raw", "sln"] {
            assert_eq!(enc(&format!("/x/c1.{e}")), Some((Encoding::PcmS16, 2, 0, None)), "{e}");
        }
        for other in ["/c1.wav", "/c1.webm", "/c1", "/.ul", "/dir.ul/c1", "/c1.ul.gz", ""] {
            assert_eq!(enc(other), None, "{other}");
        }
    }
}
