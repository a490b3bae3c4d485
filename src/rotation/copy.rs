//! Re-encrypting one regular file into a new backing file: the header under
//! the new MAC key (same file ID, size and generation; on format 3 bound to
//! its name under the new key), then the data in chunks of up to 256 sectors
//! (one tag group), each chunk's sectors decrypted, re-encrypted (and
//! re-tagged) and written as whole runs, one `pwrite` per run. Holes stay
//! holes: chunks the backing file holds no data for (SEEK_DATA) are skipped,
//! and all-zero ciphertext sectors (holes) are never written. A sector
//! whose old tag does not match is carried over with an empty tag, so the
//! damage stays visible as damage instead of being re-tagged as genuine.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use super::error::RotationError;
use super::steps::Steps;
use super::sys::{self, Result};
use super::which::Keys;
use crate::filecrypto::{self, FileCrypto};
use crate::fileheader::{FileHeader, NameBinding, SLOT_OFFSETS};
use crate::layout::{Layout, SECTORS_PER_GROUP};
use crate::sectors::{FILE_HEADER_LEN, SECTOR_SIZE, sectors_for_size};
use crate::tags::{Checked, HOLE_TAG};

/// Bytes read, re-encrypted and written per system call at most: 256
/// sectors, one tag group.
pub(crate) const CHUNK: usize = SECTORS_PER_GROUP as usize * SECTOR;

const SECTOR: usize = SECTOR_SIZE as usize;

/// The data runs of a backing file between `start` and `end` (both sector
/// boundaries of the backing file), widened to whole sectors.
pub(crate) struct DataRuns<'a> {
    file: &'a File,
    path: &'a Path,
    at: u64,
    end: u64,
}

impl<'a> DataRuns<'a> {
    pub fn new(file: &'a File, start: u64, end: u64, path: &'a Path) -> Self {
        DataRuns { file, path, at: start, end }
    }

    pub fn next_run(&mut self) -> Result<Option<(u64, u64)>> {
        if self.at >= self.end {
            return Ok(None);
        }
        let Some(data) = sys::seek_data(self.file.as_fd(), self.at, self.path)? else {
            self.at = self.end;
            return Ok(None);
        };
        if data >= self.end {
            self.at = self.end;
            return Ok(None);
        }
        let hole = sys::seek_hole(self.file.as_fd(), data, self.path)?;
        // Filesystem blocks may be smaller than a sector: widen to sectors.
        let start = (data / SECTOR_SIZE * SECTOR_SIZE).max(self.at);
        let end = hole.div_ceil(SECTOR_SIZE).saturating_mul(SECTOR_SIZE).min(self.end).max(start + SECTOR_SIZE);
        self.at = end;
        Ok(Some((start, end.min(self.end))))
    }
}

/// The backing bytes holding data (tags included) that `rotate` reads from
/// a backing file of a file of `size` bytes in `layout` (what the survey
/// counts and `file_done` reports).
pub(crate) fn data_bytes(file: &File, layout: Layout, backing_len: u64, size: u64, path: &Path) -> Result<u64> {
    let mut runs = DataRuns::new(file, FILE_HEADER_LEN, layout.backing_len(size).min(backing_len), path);
    let mut total = 0;
    while let Some((a, b)) = runs.next_run()? {
        total += b - a;
    }
    Ok(total)
}

fn crypto(keys: &crate::keys::VolumeKeys, layout: Layout, id: &[u8; 16], path: &Path) -> Result<FileCrypto> {
    FileCrypto::new(keys, layout, id)
        .map_err(|e| RotationError::Crypto { path: path.to_path_buf(), what: format!("file key: {e}") })
}

/// Writes into `dst` (new, empty) the contents of `src` (a backing file of
/// `src_len` bytes whose header under the old key is `h`) under the new
/// keys and layout, bound to `binding` if that layout is tagged. Returns
/// the data bytes read (as [`data_bytes`] counts them). `buf` is reused
/// across files.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rotate(
    keys: &Keys<'_>,
    src: &File,
    src_len: u64,
    h: &FileHeader,
    binding: NameBinding,
    dst: &File,
    buf: &mut Vec<u8>,
    path: &Path,
    steps: &mut Steps,
) -> Result<u64> {
    let (from, to) = (keys.from, keys.to);
    let old_c = crypto(keys.old, from, &h.file_id, path)?;
    let new_c = crypto(keys.new, to, &h.file_id, path)?;
    let read = data_bytes(src, from, src_len, h.size, path)?;
    // Excess sectors past the recorded size (a crash of the daemon) are never
    // read; they are left behind, as the daemon's next writable open would.
    let end = from.backing_len(h.size).min(src_len);
    steps.tick(path)?;
    sys::set_len(dst, to.backing_len(h.size), path)?;
    let mut header = *h;
    header.binding = (to == Layout::Tagged).then_some(binding);
    header.previous_binding = None;
    let mut region = vec![0u8; FILE_HEADER_LEN as usize];
    let slot = header.encode(to, &keys.new.file_header_mac);
    for off in SLOT_OFFSETS {
        region[off..off + slot.len()].copy_from_slice(&slot);
    }
    sys::write_at(dst, &region, 0, path)?;
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    let sectors = sectors_for_size(h.size);
    let mut first = 0;
    while first < sectors {
        let chunk = first..sectors.min(first + SECTORS_PER_GROUP);
        first = chunk.end;
        let start = from.tag_offset(chunk.start).unwrap_or(from.data_offset(chunk.start));
        let stop = (from.data_offset(chunk.end - 1) + SECTOR_SIZE).min(end);
        if start >= end || sys::seek_data(src.as_fd(), start, path)?.is_none_or(|d| d >= stop) {
            continue; // nothing stored: a hole stays a hole
        }
        steps.tick(path)?;
        let n = (chunk.end - chunk.start) as usize;
        let data = &mut buf[..n * SECTOR];
        sys::read_full(src, data, from.data_offset(chunk.start), path)?;
        let mut old_tags = [HOLE_TAG; SECTORS_PER_GROUP as usize];
        filecrypto::read_tags(src, from, chunk.clone(), &mut old_tags[..n])
            .map_err(sys::std_io(path, "reading tags of"))?;
        let mut new_tags = [HOLE_TAG; SECTORS_PER_GROUP as usize];
        let mut stored = vec![false; n];
        for (i, sector) in data.chunks_exact_mut(SECTOR).enumerate() {
            let s = chunk.start + i as u64;
            let was = match from {
                Layout::Tagged => old_c.check(s, sector, &old_tags[i]),
                Layout::Plain if is_hole(sector) => Checked::Hole,
                Layout::Plain => Checked::Intact,
            };
            if was == Checked::Hole {
                continue;
            }
            stored[i] = true;
            old_c.cipher.decrypt_run(s, sector);
            new_c.cipher.encrypt_run(s, sector);
            if was == Checked::Intact {
                new_tags[i] = new_c.tag(s, sector).unwrap_or(HOLE_TAG);
            }
        }
        for run in true_runs(&stored) {
            let bytes = &data[run.start * SECTOR..run.end * SECTOR];
            sys::write_at(dst, bytes, to.data_offset(chunk.start + run.start as u64), path)?;
        }
        if stored.contains(&true) {
            filecrypto::write_tags(dst, to, chunk.start, &new_tags[..n])
                .map_err(sys::std_io(path, "writing tags of"))?;
        }
    }
    Ok(read)
}

/// Whether a ciphertext sector is all zeros: a hole (docs/FORMAT.md).
fn is_hole(sector: &[u8]) -> bool {
    sector[..16].iter().all(|&b| b == 0) && sector.iter().all(|&b| b == 0)
}

/// The runs of `true` in `flags`, as index ranges.
fn true_runs(flags: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &f) in flags.iter().enumerate() {
        match (f, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push(s..flags.len());
    }
    runs
}

/// Reads the header region of a backing file of `len` (> 0) bytes.
pub(crate) fn header_region(f: &File, len: u64, path: &Path) -> Result<Vec<u8>> {
    if len < FILE_HEADER_LEN {
        return Err(RotationError::Damaged {
            path: path.to_path_buf(),
            what: format!("a backing file of {len} bytes is shorter than a file header (it reads as an I/O error)"),
        });
    }
    let mut region = vec![0u8; FILE_HEADER_LEN as usize];
    sys::read_full(f, &mut region, 0, path)?;
    Ok(region)
}

/// The header `h` of a backing file of `len` bytes, checked as the daemon
/// checks it before reading.
pub(crate) fn check_header(h: &FileHeader, layout: Layout, len: u64, path: &Path) -> Result<()> {
    use crate::layout::BackingLen;
    use crate::sectors::MAX_FILE_SIZE;
    if h.size > MAX_FILE_SIZE {
        return Err(RotationError::Damaged {
            path: path.to_path_buf(),
            what: format!("its header records {} bytes, past the largest file size", h.size),
        });
    }
    if layout.classify(len, h.size) == BackingLen::Impossible {
        return Err(RotationError::Damaged {
            path: path.to_path_buf(),
            what: format!(
                "the backing file is {len} bytes, too short for the {} bytes its header records \
                 (it was cut short; it reads as an I/O error)",
                h.size
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_runs_are_the_stored_sectors() {
        assert!(true_runs(&[false; 6]).is_empty());
        assert_eq!(true_runs(&[false, true, false, true, true, false]), vec![1..2, 3..5]);
        assert_eq!(true_runs(&[true, true, false, true, true, true]), vec![0..2, 3..6]);
        assert_eq!(true_runs(&[true]), vec![0..1]);
    }
}
