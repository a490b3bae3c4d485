//! Opening after a crash: find the chain's tip, set a torn tail aside, and locate the last seal.
//!
//! Only bytes after the last acknowledged seal can be torn by a crash. The
//! active (last) segment is read line by line while each line is complete,
//! parses, and follows the chain; the first line that does not marks the
//! start of the tail. The tail is copied to `journal-NNNNNN.log.torn-OFFSET`
//! and cut off, and the caller records a `torn_tail` event with its length
//! and SHA-256. If a seal from an epoch whose key is already gone appears
//! after that point, the damage is not a crash: opening is refused.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::JournalError;
use super::chain::{Tip, from_hex, line_hash, to_hex};
use super::record::{EventKind, Record};
use super::segment::{LineRead, MAX_LINE, Segment, fsync_dir, last_line, list_segments, read_line_capped, torn_name};

/// What was set aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TornInfo {
    pub segment: String,
    pub offset: u64,
    pub bytes: u64,
    pub sha256: String,
    pub saved_as: String,
}

/// The journal's state as found on disk.
pub(crate) struct Recovered {
    pub active: Segment,
    pub active_len: u64,
    pub tip: Tip,
    /// (epoch, seq) of the newest seal record.
    pub last_seal: Option<(u64, u64)>,
    /// `[start, end)` of the active segment that does not continue the
    /// chain (a torn tail), still in place: see [`set_aside`].
    pub torn: Option<(u64, u64)>,
    pub previous: Option<PathBuf>,
}

/// A complete line that parses and follows `tip`.
fn follows(tip: &Tip, line: &[u8]) -> Option<Record> {
    let rec = Record::parse(line).ok()?;
    let prev = from_hex::<32>(&rec.prev)?;
    tip.is_followed_by(rec.seq, &prev).then_some(rec)
}

fn seal_epoch(rec: &Record) -> Option<u64> {
    (rec.event == EventKind::Seal).then_some(rec.detail.epoch).flatten()
}

/// Reads the journal in `dir` as a crash left it, changing nothing.
/// `key_epoch` is the epoch in `seal.key`: seals of earlier epochs were
/// acknowledged before their key was erased.
pub(crate) fn recover(dir: &Path, key_epoch: u64) -> Result<Recovered, JournalError> {
    let segments = list_segments(dir)?;
    let Some(active) = segments.last().cloned() else {
        return Err(JournalError::NotInitialized { dir: dir.to_path_buf() });
    };
    let earlier = &segments[..segments.len() - 1];

    // The tip left by finished segments (skipping empty ones).
    let mut tip = Tip::START;
    for seg in earlier.iter().rev() {
        if let Some(line) = last_line(&seg.path)? {
            let rec = Record::parse(&line)
                .map_err(|e| JournalError::damaged(&seg.path, format!("its last line is not a record ({e})")))?;
            tip = Tip { seq: rec.seq, hash: line_hash(&line) };
            break;
        }
    }

    let file = File::open(&active.path).map_err(|e| JournalError::io(&active.path, "open", e))?;
    let file_len = file.metadata().map_err(|e| JournalError::io(&active.path, "stat", e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut tail_start: Option<u64> = None;
    let mut last_seal = None;
    let mut line = Vec::new();
    loop {
        // A line longer than any record is not one the writer wrote: it
        // does not follow the chain (tail) and cannot be a seal; only
        // MAX_LINE bytes of it are ever held.
        let (n, too_long) = match read_line_capped(&mut reader, &mut line, MAX_LINE)
            .map_err(|e| JournalError::io(&active.path, "read", e))?
        {
            LineRead::Eof => break,
            LineRead::Line { consumed } => (consumed, false),
            LineRead::TooLong { consumed } => (consumed, true),
        };
        let complete = !too_long && line.last() == Some(&b'\n');
        let body = if complete { &line[..line.len() - 1] } else { &line[..] };
        match tail_start {
            None => match complete.then(|| follows(&tip, body)).flatten() {
                Some(rec) if rec.event != EventKind::Seal || seal_epoch(&rec).is_some() => {
                    if let Some(e) = seal_epoch(&rec) {
                        last_seal = Some((e, rec.seq));
                    }
                    tip = Tip { seq: rec.seq, hash: line_hash(body) };
                }
                _ => tail_start = Some(offset),
            },
            Some(start) => {
                let sealed = complete
                    .then(|| Record::parse(body).ok())
                    .flatten()
                    .and_then(|r| seal_epoch(&r))
                    .is_some_and(|e| e < key_epoch);
                if sealed {
                    return Err(JournalError::damaged(
                        &active.path,
                        format!(
                            "bytes at offset {start} do not continue the chain, yet a record sealed \
                             earlier follows at offset {offset}"
                        ),
                    ));
                }
            }
        }
        offset += n;
    }

    if last_seal.is_none() {
        last_seal = find_last_seal(earlier)?;
    }

    Ok(Recovered {
        active_len: tail_start.unwrap_or(file_len),
        active,
        tip,
        last_seal,
        torn: tail_start.map(|start| (start, file_len)),
        previous: earlier.last().map(|s| s.path.clone()),
    })
}

/// The newest seal in the finished segments, newest segment first.
fn find_last_seal(earlier: &[Segment]) -> Result<Option<(u64, u64)>, JournalError> {
    const NEEDLE: &[u8] = b"\"event\":\"seal\"";
    for seg in earlier.iter().rev() {
        let f = File::open(&seg.path).map_err(|e| JournalError::io(&seg.path, "open", e))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut found = None;
        let mut line = Vec::new();
        loop {
            match read_line_capped(&mut r, &mut line, MAX_LINE).map_err(|e| JournalError::io(&seg.path, "read", e))? {
                LineRead::Eof => break,
                LineRead::TooLong { .. } => continue,
                LineRead::Line { .. } => {}
            }
            if memchr::memmem::find(&line, NEEDLE).is_some() {
                if let Ok(rec) = Record::parse(line.strip_suffix(b"\n").unwrap_or(&line)) {
                    if let Some(e) = seal_epoch(&rec) {
                        found = Some((e, rec.seq));
                    }
                }
            }
        }
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Copies `[start, end)` of the active segment to a `.torn-OFFSET` file,
/// then cuts the segment at `start`. Both steps are synced.
pub(crate) fn set_aside(dir: &Path, active: &Segment, start: u64, end: u64) -> Result<TornInfo, JournalError> {
    let mut name = torn_name(active.number, start);
    let mut k = 1;
    while dir.join(&name).exists() {
        k += 1;
        name = format!("{}.{k}", torn_name(active.number, start));
    }
    let saved = dir.join(&name);
    let mut src = File::open(&active.path).map_err(|e| JournalError::io(&active.path, "open", e))?;
    src.seek(SeekFrom::Start(start)).map_err(|e| JournalError::io(&active.path, "seek", e))?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&saved)
        .map_err(|e| JournalError::io(&saved, "create", e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut copied = 0u64;
    let mut src = src.take(end - start);
    loop {
        let n = src.read(&mut buf).map_err(|e| JournalError::io(&active.path, "read", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(|e| JournalError::io(&saved, "write", e))?;
        copied += n as u64;
    }
    dst.sync_all().map_err(|e| JournalError::io(&saved, "fsync", e))?;
    fsync_dir(dir)?;
    let seg =
        OpenOptions::new().write(true).open(&active.path).map_err(|e| JournalError::io(&active.path, "open", e))?;
    seg.set_len(start)
        .and_then(|()| seg.sync_all())
        .map_err(|e| JournalError::io(&active.path, "truncate torn tail", e))?;
    Ok(TornInfo {
        segment: super::segment::segment_name(active.number),
        offset: start,
        bytes: copied,
        sha256: to_hex(&hasher.finalize()),
        saved_as: name,
    })
}
