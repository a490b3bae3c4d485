//! Reading: lines of all segments in order without loading them whole, and tailing a live journal.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::JournalError;
use super::record::Record;
use super::segment::{LineRead, MAX_LINE, Segment, list_segments, read_line_capped};

/// Where a line was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// Segment number (`journal-000003.log` → 3).
    pub segment: u64,
    /// Line number inside the segment, from 1.
    pub line_no: u64,
    /// Byte offset of the line's first byte inside the segment.
    pub offset: u64,
    /// False when the line is not terminated by a newline (a torn tail, or a
    /// write still in progress when the file was read).
    pub complete: bool,
    /// True for the last line of the segment (complete or not).
    pub last_in_segment: bool,
}

/// Sequential reader over every line of every segment.
pub struct Lines {
    dir: PathBuf,
    segments: Vec<Segment>,
    next_segment: usize,
    current: Option<(u64, BufReader<File>)>,
    line_no: u64,
    offset: u64,
    /// The line after the one returned last (or why it could not be read:
    /// reported when that line's turn comes, not before).
    lookahead: Option<Result<Vec<u8>, JournalError>>,
}

/// Buffer size for sequential reads: large reads keep syscalls rare.
const READ_BUF: usize = 1 << 20;

impl Lines {
    /// Opens the journal in `dir` for reading. The set of segments is taken
    /// now; segments created later are not seen.
    pub fn open(dir: &Path) -> Result<Lines, JournalError> {
        let segments = list_segments(dir)?;
        Ok(Lines {
            dir: dir.to_path_buf(),
            segments,
            next_segment: 0,
            current: None,
            line_no: 0,
            offset: 0,
            lookahead: None,
        })
    }

    /// The segments being read.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the next line into `buf` (without its newline). `Ok(None)` at
    /// the end of the last segment. A line longer than
    /// [`MAX_LINE`](super::segment::MAX_LINE) is [`JournalError::LineTooLong`].
    pub fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<LineInfo>, JournalError> {
        loop {
            if self.current.is_none() {
                let Some(seg) = self.segments.get(self.next_segment) else {
                    return Ok(None);
                };
                self.next_segment += 1;
                let f = File::open(&seg.path).map_err(|e| JournalError::io(&seg.path, "open", e))?;
                self.current = Some((seg.number, BufReader::with_capacity(READ_BUF, f)));
                self.line_no = 0;
                self.offset = 0;
                self.lookahead = None;
            }
            let Some((number, reader)) = self.current.as_mut() else {
                continue;
            };
            let number = *number;
            // One line of lookahead tells whether this line is the segment's last.
            let this = match self.lookahead.take() {
                Some(l) => Some(l?),
                None => read_raw(reader, &self.segments, number, self.line_no + 1)?,
            };
            let Some(mut this) = this else {
                self.current = None;
                continue;
            };
            let next = read_raw(reader, &self.segments, number, self.line_no + 2).transpose();
            let last_in_segment = next.is_none();
            self.lookahead = next;
            let complete = this.last() == Some(&b'\n');
            let len = this.len() as u64;
            if complete {
                this.pop();
            }
            self.line_no += 1;
            let info =
                LineInfo { segment: number, line_no: self.line_no, offset: self.offset, complete, last_in_segment };
            self.offset += len;
            std::mem::swap(buf, &mut this);
            return Ok(Some(info));
        }
    }
}

fn read_raw(
    reader: &mut BufReader<File>,
    segments: &[Segment],
    number: u64,
    line_no: u64,
) -> Result<Option<Vec<u8>>, JournalError> {
    let path = || segments.iter().find(|s| s.number == number).map(|s| s.path.clone()).unwrap_or_default();
    let mut v = Vec::with_capacity(512);
    match read_line_capped(reader, &mut v, MAX_LINE) {
        Ok(LineRead::Eof) => Ok(None),
        Ok(LineRead::Line { .. }) => Ok(Some(v)),
        Ok(LineRead::TooLong { .. }) => {
            Err(JournalError::LineTooLong { path: path(), line: Some(line_no), limit: MAX_LINE })
        }
        Err(e) => Err(JournalError::io(path(), "read", e)),
    }
}

impl Iterator for Lines {
    type Item = Result<(LineInfo, Vec<u8>), JournalError>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        match self.read_line(&mut buf) {
            Ok(Some(info)) => Some(Ok((info, buf))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Every complete, parseable record in order; lines that do not parse and a
/// torn last line are skipped (use `verify` to learn about them).
pub fn records(dir: &Path) -> Result<impl Iterator<Item = Result<Record, JournalError>>, JournalError> {
    let lines = Lines::open(dir)?;
    Ok(lines.filter_map(|r| match r {
        Ok((info, line)) if info.complete => Record::parse(&line).ok().map(Ok),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }))
}

/// Follows a live journal: complete lines appended after the starting
/// point, across segment rotations. Polls; see `poll`.
pub struct Tail {
    dir: PathBuf,
    segment: u64,
    offset: u64,
    /// Bytes of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// Started in the middle of a line: drop everything up to its newline.
    skip_to_newline: bool,
}

impl Tail {
    /// Starts at the current end of the journal (only new lines will be seen).
    pub fn at_end(dir: &Path) -> Result<Tail, JournalError> {
        let segs = list_segments(dir)?;
        let mut t = Tail::at_start(dir)?;
        if let Some(s) = segs.last() {
            let mut f = File::open(&s.path).map_err(|e| JournalError::io(&s.path, "open", e))?;
            let len = f.metadata().map_err(|e| JournalError::io(&s.path, "stat", e))?.len();
            t.segment = s.number;
            t.offset = len;
            if len > 0 {
                let mut last = [0u8; 1];
                f.seek(SeekFrom::Start(len - 1))
                    .and_then(|_| std::io::Read::read_exact(&mut f, &mut last))
                    .map_err(|e| JournalError::io(&s.path, "read", e))?;
                t.skip_to_newline = last[0] != b'\n';
            }
        }
        Ok(t)
    }

    /// Starts at the beginning of the journal.
    pub fn at_start(dir: &Path) -> Result<Tail, JournalError> {
        let first = list_segments(dir)?.first().map(|s| s.number).unwrap_or(1);
        Ok(Tail { dir: dir.to_path_buf(), segment: first, offset: 0, partial: Vec::new(), skip_to_newline: false })
    }

    /// Calls `f` with every complete line appended since the last call.
    /// Returns the number of lines delivered. Never blocks.
    pub fn poll(&mut self, f: &mut dyn FnMut(&[u8])) -> Result<usize, JournalError> {
        let mut n = 0;
        loop {
            n += self.drain_current(f)?;
            // At the end of this segment: move on only once a later one
            // exists. The writer never appends to a segment after creating
            // the next, so one more drain after seeing it misses nothing.
            let Some(next) = self.later_segment()? else {
                return Ok(n);
            };
            n += self.drain_current(f)?;
            self.segment = next;
            self.offset = 0;
            self.partial.clear();
            self.skip_to_newline = false;
        }
    }

    fn drain_current(&mut self, f: &mut dyn FnMut(&[u8])) -> Result<usize, JournalError> {
        let path = self.dir.join(super::segment::segment_name(self.segment));
        match File::open(&path) {
            Ok(file) => self.drain(file, &path, f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(JournalError::io(&path, "open", e)),
        }
    }

    fn drain(&mut self, file: File, path: &Path, f: &mut dyn FnMut(&[u8])) -> Result<usize, JournalError> {
        let len = file.metadata().map_err(|e| JournalError::io(path, "stat", e))?.len();
        if len < self.offset {
            // A torn tail was cut off by recovery: the unfinished bytes were
            // never a line; continue from the new end.
            self.offset = len;
            self.partial.clear();
        }
        if len == self.offset {
            return Ok(0);
        }
        let mut r = BufReader::with_capacity(READ_BUF, file);
        r.seek(SeekFrom::Start(self.offset)).map_err(|e| JournalError::io(path, "seek", e))?;
        let mut n = 0;
        let mut buf = Vec::new();
        let too_long = || JournalError::LineTooLong { path: path.to_path_buf(), line: None, limit: MAX_LINE };
        loop {
            let room = MAX_LINE.saturating_sub(self.partial.len());
            let got = match read_line_capped(&mut r, &mut buf, room).map_err(|e| JournalError::io(path, "read", e))? {
                LineRead::Eof => return Ok(n),
                LineRead::Line { consumed } => consumed,
                LineRead::TooLong { .. } => return Err(too_long()),
            };
            self.offset += got;
            if buf.last() != Some(&b'\n') {
                if !self.skip_to_newline {
                    self.partial.extend_from_slice(&buf);
                }
                continue;
            }
            buf.pop();
            if self.skip_to_newline {
                self.skip_to_newline = false;
                continue;
            }
            if self.partial.is_empty() {
                f(&buf);
            } else {
                self.partial.extend_from_slice(&buf);
                let line = std::mem::take(&mut self.partial);
                f(&line);
            }
            n += 1;
        }
    }

    fn later_segment(&self) -> Result<Option<u64>, JournalError> {
        let segs = list_segments(&self.dir)?;
        Ok(segs.iter().find(|s| s.number > self.segment).map(|s| s.number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_span_segments_and_flag_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("journal-000001.log"), "a\nbb\n").unwrap();
        std::fs::write(dir.path().join("journal-000002.log"), "ccc\ndd").unwrap();
        std::fs::write(dir.path().join("other.txt"), "zzz\n").unwrap();
        let all: Vec<_> = Lines::open(dir.path()).unwrap().map(|r| r.unwrap()).collect();
        let texts: Vec<_> = all.iter().map(|(_, l)| String::from_utf8(l.clone()).unwrap()).collect();
        assert_eq!(texts, ["a", "bb", "ccc", "dd"]);
        assert_eq!(all[1].0, LineInfo { segment: 1, line_no: 2, offset: 2, complete: true, last_in_segment: true });
        assert_eq!(all[3].0, LineInfo { segment: 2, line_no: 2, offset: 4, complete: false, last_in_segment: true });
    }

    #[test]
    fn tail_sees_only_new_complete_lines_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p1 = dir.path().join("journal-000001.log");
        std::fs::write(&p1, "old\nhal").unwrap();
        let mut t = Tail::at_end(dir.path()).unwrap();
        let mut got: Vec<String> = Vec::new();
        let mut push = |l: &[u8]| got.push(String::from_utf8_lossy(l).into_owned());
        assert_eq!(t.poll(&mut push).unwrap(), 0);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p1).unwrap();
        f.write_all(b"f\nnew1\npart").unwrap();
        assert_eq!(t.poll(&mut push).unwrap(), 1);
        f.write_all(b"ial\n").unwrap();
        std::fs::write(dir.path().join("journal-000002.log"), "new3\n").unwrap();
        assert_eq!(t.poll(&mut push).unwrap(), 2);
        assert_eq!(got, ["new1", "partial", "new3"]);
    }

    #[test]
    fn over_long_lines_are_typed_damage_for_readers_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p1 = dir.path().join("journal-000001.log");
        std::fs::write(&p1, "a\n").unwrap();
        let mut t = Tail::at_end(dir.path()).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p1).unwrap();
        // A line that never ends, written in pieces: the tail must not keep it all.
        let chunk = vec![b'x'; MAX_LINE / 2];
        f.write_all(&chunk).unwrap();
        assert_eq!(t.poll(&mut |_| {}).unwrap(), 0);
        f.write_all(&chunk).unwrap();
        f.write_all(b"yy").unwrap();
        assert!(matches!(t.poll(&mut |_| {}), Err(JournalError::LineTooLong { .. })));
        f.write_all(b"\nb\n").unwrap();
        let mut lines = Lines::open(dir.path()).unwrap();
        let mut buf = Vec::new();
        assert!(lines.read_line(&mut buf).unwrap().is_some());
        match lines.read_line(&mut buf) {
            Err(JournalError::LineTooLong { line, .. }) => assert_eq!(line, Some(2)),
            other => panic!("{other:?}"),
        }
        // Exactly MAX_LINE bytes is still a line.
        std::fs::write(&p1, [vec![b'{'; MAX_LINE], b"\n".to_vec()].concat()).unwrap();
        let all: Vec<_> = Lines::open(dir.path()).unwrap().collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_ok());
    }
}
