//! Re-encrypting one regular file into a new backing file: the header under
//! the new MAC key (same file ID, size and generation), then every data run
//! (found with SEEK_DATA/SEEK_HOLE) in chunks of up to [`CHUNK`] bytes, each
//! decrypted and encrypted as whole sector runs and written with one
//! `pwrite`. Holes stay holes: sectors the backing file does not hold are
//! never written, and neither are all-zero ciphertext sectors (which read
//! as holes).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use super::error::RotationError;
use super::steps::Steps;
use super::sys::{self, Result};
use crate::contents::SectorCipher;
use crate::fileheader::{FileHeader, SLOT_LEN, SLOT_OFFSETS};
use crate::keys::VolumeKeys;
use crate::sectors::{FILE_HEADER_LEN, SECTOR_SIZE, backing_len_for_size};

/// Bytes read, re-encrypted and written per system call at most: 256 sectors.
pub(crate) const CHUNK: usize = 1 << 20;

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

/// The data bytes `rotate` reads from a backing file holding a file of
/// `size` bytes (what the survey counts and `file_done` reports).
pub(crate) fn data_bytes(file: &File, backing_len: u64, size: u64, path: &Path) -> Result<u64> {
    let mut runs = DataRuns::new(file, FILE_HEADER_LEN, backing_len_for_size(size).min(backing_len), path);
    let mut total = 0;
    while let Some((a, b)) = runs.next_run()? {
        total += b - a;
    }
    Ok(total)
}

/// Whether a ciphertext sector is all zeros: a hole (docs/FORMAT.md).
fn is_hole(sector: &[u8]) -> bool {
    sector[..16].iter().all(|&b| b == 0) && sector.iter().all(|&b| b == 0)
}

/// The runs of sectors in `chunk` that are not holes, as sector index ranges.
pub(crate) fn written_runs(chunk: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    let n = chunk.len() / SECTOR;
    for i in 0..n {
        let hole = is_hole(&chunk[i * SECTOR..(i + 1) * SECTOR]);
        match (hole, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                runs.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push(s..n);
    }
    runs
}

fn ciphers(old: &VolumeKeys, new: &VolumeKeys, id: &[u8; 16], path: &Path) -> Result<(SectorCipher, SectorCipher)> {
    let refused = |e: crate::Error| RotationError::Crypto { path: path.to_path_buf(), what: format!("file key: {e}") };
    Ok((SectorCipher::new(&old.file_key(id)).map_err(refused)?, SectorCipher::new(&new.file_key(id)).map_err(refused)?))
}

/// Writes into `dst` (new, empty) the contents of `src` (a backing file of
/// `src_len` bytes whose header under the old key is `h`) under the new
/// keys. Returns the data bytes re-encrypted. `buf` is reused across files.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rotate(
    old: &VolumeKeys,
    new: &VolumeKeys,
    src: &File,
    src_len: u64,
    h: &FileHeader,
    dst: &File,
    buf: &mut Vec<u8>,
    path: &Path,
    steps: &mut Steps,
) -> Result<u64> {
    let (old_c, new_c) = ciphers(old, new, &h.file_id, path)?;
    let need = backing_len_for_size(h.size);
    // Excess sectors past the recorded size (a crash of the daemon) are never
    // read; they are left behind, as the daemon's next writable open would.
    let end = need.min(src_len);
    steps.tick(path)?;
    sys::set_len(dst, need, path)?;
    let mut region = vec![0u8; FILE_HEADER_LEN as usize];
    let slot = h.encode(&new.file_header_mac);
    for off in SLOT_OFFSETS {
        region[off..off + SLOT_LEN].copy_from_slice(&slot);
    }
    sys::write_at(dst, &region, 0, path)?;
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    let mut runs = DataRuns::new(src, FILE_HEADER_LEN, end, path);
    let mut done = 0;
    while let Some((a, b)) = runs.next_run()? {
        let mut off = a;
        while off < b {
            let n = ((b - off) as usize).min(CHUNK);
            let chunk = &mut buf[..n];
            sys::read_full(src, chunk, off, path)?;
            let first = (off - FILE_HEADER_LEN) / SECTOR_SIZE;
            steps.tick(path)?;
            for run in written_runs(chunk) {
                let bytes = &mut chunk[run.start * SECTOR..run.end * SECTOR];
                old_c.decrypt_run(first + run.start as u64, bytes);
                new_c.encrypt_run(first + run.start as u64, bytes);
                sys::write_at(dst, bytes, off + (run.start * SECTOR) as u64, path)?;
            }
            off += n as u64;
            done += n as u64;
        }
    }
    Ok(done)
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
pub(crate) fn check_header(h: &FileHeader, len: u64, path: &Path) -> Result<()> {
    use crate::sectors::{BackingLen, MAX_FILE_SIZE, classify_backing_len};
    if h.size > MAX_FILE_SIZE {
        return Err(RotationError::Damaged {
            path: path.to_path_buf(),
            what: format!("its header records {} bytes, past the largest file size", h.size),
        });
    }
    if classify_backing_len(len, h.size) == BackingLen::Impossible {
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
    fn written_runs_skip_all_zero_sectors_only() {
        let mut c = vec![0u8; 6 * SECTOR];
        assert!(written_runs(&c).is_empty());
        c[SECTOR] = 1; // sector 1
        c[3 * SECTOR + 4095] = 1; // sector 3, only its last byte
        c[4 * SECTOR + 17] = 1; // sector 4
        assert_eq!(written_runs(&c), vec![1..2, 3..5]);
        c[5 * SECTOR] = 9;
        c[0] = 9;
        assert_eq!(written_runs(&c), vec![0..2, 3..6]);
        assert_eq!(written_runs(&c[..SECTOR]), vec![0..1]);
    }
}
