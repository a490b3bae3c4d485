//! Segment files: naming (`journal-000001.log`), listing, creation, and finding a segment's last line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::JournalError;

/// Mode of segment files: owner writes, group (auditors) may read.
pub const SEGMENT_MODE: u32 = 0o640;

/// Longest record line (without its newline) a reader accepts: 1 MiB. The
/// writer never writes a longer one (an event that would make one is cut to
/// fit, see `Record::cut_to_fit`), so a longer line is damage, and no reader
/// holds more than this in memory for one line.
pub const MAX_LINE: usize = 1 << 20;

/// What [`read_line_capped`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// End of input, nothing read.
    Eof,
    /// A line (in the buffer, with its newline if it had one).
    Line { consumed: u64 },
    /// A line longer than the cap: skipped up to and including its newline
    /// (or the end of input); the buffer is left empty.
    TooLong { consumed: u64 },
}

/// Reads the next line, newline included, into `buf` (cleared first), keeping
/// at most `cap` bytes plus the newline in memory. A longer line is consumed
/// and reported as [`LineRead::TooLong`].
pub(crate) fn read_line_capped<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<LineRead> {
    buf.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !too_long {
            let body = buf.len() + take - usize::from(done);
            if body > cap {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..take]);
            }
        }
        r.consume(take);
        consumed += take as u64;
        if done {
            break;
        }
    }
    Ok(match (consumed, too_long) {
        (0, _) => LineRead::Eof,
        (c, true) => LineRead::TooLong { consumed: c },
        (c, false) => LineRead::Line { consumed: c },
    })
}

/// `journal-000001.log` for segment 1. Numbers wider than six digits just
/// get longer; listing sorts by number, not by name.
pub fn segment_name(n: u64) -> String {
    format!("journal-{n:06}.log")
}

/// The segment number of a file name, if it is exactly a segment name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (n >= 1 && segment_name(n) == name).then_some(n)
}

/// Name of the file that keeps the unfinished bytes found at `offset` of
/// segment `n` when a torn tail is recovered.
pub fn torn_name(n: u64, offset: u64) -> String {
    format!("{}.torn-{offset}", segment_name(n))
}

/// A segment on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub number: u64,
    pub path: PathBuf,
}

/// The segments in `dir`, in number order. Other files are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<Segment>, JournalError> {
    let rd = std::fs::read_dir(dir).map_err(|e| JournalError::io(dir, "list directory", e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| JournalError::io(dir, "list directory", e))?;
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(parse_segment_name) {
            out.push(Segment { number: n, path: entry.path() });
        }
    }
    out.sort_by_key(|s| s.number);
    Ok(out)
}

/// fsync(2) on a directory, so that creations and renames in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| JournalError::io(dir, "fsync directory", e))
}

/// Creates segment `n` (never an existing one) for appending, and makes the
/// new directory entry durable.
pub fn create_segment(dir: &Path, n: u64) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(segment_name(n));
    let f = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(SEGMENT_MODE)
        .open(&path)
        .map_err(|e| JournalError::io(&path, "create segment", e))?;
    fsync_dir(dir)?;
    Ok((f, path))
}

/// The last line of a segment that ends with a newline (without it), or
/// `None` for an empty file. A file that does not end with a newline is
/// reported as damaged: only the active segment may have a torn tail.
pub fn last_line(path: &Path) -> Result<Option<Vec<u8>>, JournalError> {
    let mut f = File::open(path).map_err(|e| JournalError::io(path, "open", e))?;
    let len = f.metadata().map_err(|e| JournalError::io(path, "stat", e))?.len();
    if len == 0 {
        return Ok(None);
    }
    const CHUNK: u64 = 64 * 1024;
    // Read backwards until the newline before the last line is found.
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        let start = pos.saturating_sub(CHUNK);
        let mut buf = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| JournalError::io(path, "read", e))?;
        buf.extend_from_slice(&tail);
        tail = buf;
        pos = start;
        if tail.last() != Some(&b'\n') {
            return Err(JournalError::damaged(path, "a finished segment does not end with a complete line"));
        }
        let body = &tail[..tail.len() - 1];
        let found = match body.iter().rposition(|&b| b == b'\n') {
            Some(i) => Some(&body[i + 1..]),
            None => (pos == 0).then_some(body),
        };
        if body.len() > MAX_LINE && found.is_none_or(|l| l.len() > MAX_LINE) {
            return Err(JournalError::LineTooLong { path: path.to_path_buf(), line: None, limit: MAX_LINE });
        }
        if let Some(l) = found {
            return Ok(Some(l.to_vec()));
        }
        if tail.len() > MAX_LINE + 1 {
            return Err(JournalError::LineTooLong { path: path.to_path_buf(), line: None, limit: MAX_LINE });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_only_when_canonical() {
        assert_eq!(segment_name(3), "journal-000003.log");
        assert_eq!(parse_segment_name("journal-000003.log"), Some(3));
        assert_eq!(parse_segment_name("journal-1234567.log"), Some(1_234_567));
        for bad in [
            "journal-3.log",
            "journal-0000003.log",
            "journal-000000.log",
            "journal-00000a.log",
            "journal-000003.log.torn-5",
            "journal-+00003.log",
            "seal.key",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn last_line_reads_backwards_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let long = "x".repeat(200_000);
        std::fs::write(&p, format!("a\nb\n{long}\n")).unwrap();
        assert_eq!(last_line(&p).unwrap().unwrap(), long.as_bytes());
        std::fs::write(&p, "only\n").unwrap();
        assert_eq!(last_line(&p).unwrap().unwrap(), b"only");
        std::fs::write(&p, "").unwrap();
        assert_eq!(last_line(&p).unwrap(), None);
        std::fs::write(&p, "a\ntorn").unwrap();
        assert!(last_line(&p).is_err());
        std::fs::write(&p, format!("a\n{}\n", "y".repeat(MAX_LINE + 1))).unwrap();
        assert!(matches!(last_line(&p), Err(JournalError::LineTooLong { .. })));
    }

    #[test]
    fn capped_lines_skip_what_is_too_long_with_bounded_memory() {
        let long = "z".repeat(5000);
        let text = format!("ab\n{long}\ncd\n{long}");
        let mut r = std::io::BufReader::with_capacity(64, text.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Line { consumed: 3 });
        assert_eq!(buf, b"ab\n");
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::TooLong { consumed: 5001 });
        assert!(buf.is_empty() && buf.capacity() <= 256, "{}", buf.capacity());
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Line { consumed: 3 });
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::TooLong { consumed: 5000 });
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Eof);
        // Exactly the cap is fine, newline or not.
        let mut r = "xyz\nxyz".as_bytes();
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), LineRead::Line { consumed: 4 });
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), LineRead::Line { consumed: 3 });
    }
}
