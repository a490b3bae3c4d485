//! Pure arithmetic mapping plaintext byte ranges to encrypted sectors.
//!
//! Sector `i` holds plaintext bytes `i*4096 .. (i+1)*4096`. Keeping every
//! sector whole means the XTS cipher never sees a short chunk. Where sectors
//! lie in the backing file is [`crate::layout`]'s.

use std::ops::Range;

/// Plaintext bytes per sector.
pub const SECTOR_SIZE: u64 = 4096;
/// Bytes reserved for the file header at the start of every non-empty backing
/// file. A full page, so data sectors stay page-aligned in the backing file.
pub const FILE_HEADER_LEN: u64 = 4096;

/// The largest plaintext file size (and end of any write), 2^62 bytes. Far
/// above what a backing filesystem holds (ext4: 16 TiB), and low enough that
/// every backing offset below it fits in the kernel's signed `loff_t` with
/// room to spare, so no sector arithmetic on an offset the kernel accepts
/// can overflow. Writes, truncates and allocations past it are EFBIG.
pub const MAX_FILE_SIZE: u64 = 1 << 62;

/// Whether a file may hold the plaintext range `off .. off+len`.
pub fn fits(off: u64, len: u64) -> bool {
    off.checked_add(len).is_some_and(|end| end <= MAX_FILE_SIZE)
}

/// The sector holding plaintext byte `offset`.
pub fn sector_of(offset: u64) -> u64 {
    offset / SECTOR_SIZE
}

/// Sectors touched by the plaintext range `off .. off+len` (empty for len 0).
pub fn sectors_touched(off: u64, len: u64) -> Range<u64> {
    if len == 0 {
        return sector_of(off)..sector_of(off);
    }
    sector_of(off)..sector_of(off + len - 1) + 1
}

/// Number of sectors needed to hold a file of `size` bytes.
pub fn sectors_for_size(size: u64) -> u64 {
    size.div_ceil(SECTOR_SIZE)
}

/// Plaintext offset where sector `index` starts.
pub fn sector_start(index: u64) -> u64 {
    index * SECTOR_SIZE
}

/// Whether a write of `off .. off+len` covers sector `index` completely, so its
/// old contents need not be read first.
pub fn covers_whole_sector(off: u64, len: u64, index: u64) -> bool {
    let start = sector_start(index);
    off <= start && off + len >= start + SECTOR_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_ranges_map_to_exactly_the_sectors_holding_their_bytes() {
        let offsets =
            (0..3 * SECTOR_SIZE + 20).step_by(7).chain([SECTOR_SIZE - 1, SECTOR_SIZE, SECTOR_SIZE + 1, 10 << 30]);
        for off in offsets {
            for len in [0u64, 1, 15, 16, 17, 4095, 4096, 4097, 8191, 8192, 8193, 100_000] {
                let r = sectors_touched(off, len);
                if len == 0 {
                    assert!(r.is_empty());
                    continue;
                }
                assert_eq!(r.start, off / SECTOR_SIZE, "first sector of {off}+{len}");
                assert_eq!(r.end - 1, (off + len - 1) / SECTOR_SIZE, "last sector of {off}+{len}");
                for s in r.clone() {
                    let (a, b) = (sector_start(s), sector_start(s) + SECTOR_SIZE);
                    assert!(a < off + len && off < b, "sector {s} must overlap {off}+{len}");
                    let whole = covers_whole_sector(off, len, s);
                    assert_eq!(whole, off <= a && off + len >= b);
                }
            }
        }
    }

    #[test]
    fn every_range_that_fits_ends_at_or_below_the_largest_size() {
        for (off, len) in [(0, 0), (MAX_FILE_SIZE - 1, 1), (MAX_FILE_SIZE, 0), (MAX_FILE_SIZE - 4096, 4096)] {
            assert!(fits(off, len), "{off}+{len}");
            assert!(sectors_touched(off, len).end <= MAX_FILE_SIZE / SECTOR_SIZE);
        }
        for (off, len) in [(MAX_FILE_SIZE, 1), (i64::MAX as u64, 1), (u64::MAX, 1), (1, u64::MAX)] {
            assert!(!fits(off, len), "{off}+{len}");
        }
    }
}
