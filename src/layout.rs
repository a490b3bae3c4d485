//! Where a file's sectors and their tags lie in its backing file: pure
//! arithmetic, one answer per volume format.
//!
//! A backing file is a [`FILE_HEADER_LEN`]-byte header followed by the data.
//! In the **plain** layout (formats 1 and 2) the data is one sector after
//! another. In the **tagged** layout (format 3, sector tags) every group of
//! [`SECTORS_PER_GROUP`] data sectors is preceded by one tag sector holding
//! their 16-byte tags in order:
//!
//! ```text
//! header | tags 0-255 | data 0 .. data 255 | tags 256-511 | data 256 ...
//! ```
//!
//! A write of aligned data inside a group touches its data and the group's
//! tag sector, at most 1 MiB before it: no seek a disk would notice, and
//! page cache pages the backing filesystem keeps together. A partly used last
//! group still starts with its tag sector, so the backing length stays tight.

use std::ops::Range;

use crate::sectors::{FILE_HEADER_LEN, SECTOR_SIZE, sectors_for_size};

/// Data sectors covered by one tag sector (4096 / 16).
pub const SECTORS_PER_GROUP: u64 = SECTOR_SIZE / TAG_LEN as u64;
/// Bytes of one sector tag.
pub const TAG_LEN: usize = 16;
/// Backing bytes of one full group: its tag sector and its data sectors.
const GROUP_STRIDE: u64 = (SECTORS_PER_GROUP + 1) * SECTOR_SIZE;

/// How data sectors are laid out in a backing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Data sectors only (formats 1 and 2): nothing authenticates them.
    Plain,
    /// A tag sector before every group of 256 data sectors (format 3).
    Tagged,
}

/// What a backing file's length says about a file whose header records a size.
#[derive(Debug, PartialEq, Eq)]
pub enum BackingLen {
    /// Exactly what the size needs.
    Exact,
    /// More than needed: sectors written past the recorded size before a
    /// crash. Harmless; a writer trims them back to `trim_to`.
    Excess { trim_to: u64 },
    /// Too short to hold the recorded size: the file was cut or tampered with.
    Impossible,
}

impl Layout {
    /// Backing offset of data sector `index`.
    pub fn data_offset(self, index: u64) -> u64 {
        match self {
            Layout::Plain => FILE_HEADER_LEN + index * SECTOR_SIZE,
            Layout::Tagged => {
                let (group, within) = (index / SECTORS_PER_GROUP, index % SECTORS_PER_GROUP);
                FILE_HEADER_LEN + group * GROUP_STRIDE + SECTOR_SIZE + within * SECTOR_SIZE
            }
        }
    }

    /// Backing offset of the tag of data sector `index` (none when plain).
    pub fn tag_offset(self, index: u64) -> Option<u64> {
        match self {
            Layout::Plain => None,
            Layout::Tagged => {
                let (group, within) = (index / SECTORS_PER_GROUP, index % SECTORS_PER_GROUP);
                Some(FILE_HEADER_LEN + group * GROUP_STRIDE + within * TAG_LEN as u64)
            }
        }
    }

    /// Backing length that holds exactly a file of `size` bytes.
    pub fn backing_len(self, size: u64) -> u64 {
        let sectors = sectors_for_size(size);
        match self {
            Layout::Plain => FILE_HEADER_LEN + sectors * SECTOR_SIZE,
            Layout::Tagged => FILE_HEADER_LEN + (sectors + sectors.div_ceil(SECTORS_PER_GROUP)) * SECTOR_SIZE,
        }
    }

    /// Classifies a backing file of `backing_len` bytes holding `size` plaintext bytes.
    pub fn classify(self, backing_len: u64, size: u64) -> BackingLen {
        let need = self.backing_len(size);
        match backing_len.cmp(&need) {
            std::cmp::Ordering::Equal => BackingLen::Exact,
            std::cmp::Ordering::Greater => BackingLen::Excess { trim_to: need },
            std::cmp::Ordering::Less => BackingLen::Impossible,
        }
    }

    /// Splits the data sectors `range` into runs that are contiguous in the
    /// backing file, so each run is one `pread`/`pwrite` (and, tagged, has
    /// its tags contiguous in one tag sector).
    pub fn runs(self, range: Range<u64>) -> impl Iterator<Item = Range<u64>> {
        let mut start = range.start;
        std::iter::from_fn(move || {
            if start >= range.end {
                return None;
            }
            let end = match self {
                Layout::Plain => range.end,
                Layout::Tagged => range.end.min((start / SECTORS_PER_GROUP + 1) * SECTORS_PER_GROUP),
            };
            let run = start..end;
            start = end;
            Some(run)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sectors::MAX_FILE_SIZE;

    #[test]
    fn plain_offsets_and_lengths_for_worked_sizes() {
        let p = Layout::Plain;
        assert_eq!(p.data_offset(0), 4096);
        assert_eq!(p.data_offset(3), 4 * 4096);
        assert_eq!(p.tag_offset(3), None);
        assert_eq!(p.backing_len(0), 4096);
        assert_eq!(p.backing_len(1), 8192);
        assert_eq!(p.backing_len(4096), 8192);
        assert_eq!(p.backing_len(4097), 12288);
    }

    #[test]
    fn tagged_offsets_and_lengths_for_worked_sizes() {
        let t = Layout::Tagged;
        assert_eq!(t.tag_offset(0), Some(4096));
        assert_eq!(t.tag_offset(1), Some(4096 + 16));
        assert_eq!(t.tag_offset(255), Some(4096 + 255 * 16));
        assert_eq!(t.data_offset(0), 8192);
        assert_eq!(t.data_offset(255), 8192 + 255 * 4096);
        // Group 1 starts right after data sector 255.
        assert_eq!(t.tag_offset(256), Some(t.data_offset(255) + 4096));
        assert_eq!(t.data_offset(256), t.data_offset(255) + 2 * 4096);
        assert_eq!(t.backing_len(0), 4096);
        assert_eq!(t.backing_len(1), 12288);
        assert_eq!(t.backing_len(4096), 12288);
        assert_eq!(t.backing_len(4097), 16384);
        assert_eq!(t.backing_len(256 * 4096), 4096 + 257 * 4096);
        assert_eq!(t.backing_len(256 * 4096 + 1), 4096 + 259 * 4096);
        // 1 GiB: 262,144 data sectors and 1,024 tag sectors.
        assert_eq!(t.backing_len(1 << 30), 4096 + (262_144 + 1_024) * 4096);
    }

    #[test]
    fn tagged_sectors_and_tags_never_overlap_and_fill_the_backing_exactly() {
        let t = Layout::Tagged;
        // Whole groups: the tag sectors are full.
        let n = 3 * SECTORS_PER_GROUP;
        let mut used = vec![0u8; t.backing_len(n * SECTOR_SIZE) as usize / 16];
        for i in 0..n {
            let d = t.data_offset(i) as usize / 16;
            for u in &mut used[d..d + 256] {
                *u += 1;
            }
            used[t.tag_offset(i).unwrap() as usize / 16] += 1;
        }
        // Every 16-byte unit past the header is used exactly once.
        assert!(used[256..].iter().all(|&u| u == 1));
        assert!(used[..256].iter().all(|&u| u == 0));
    }

    #[test]
    fn runs_split_only_at_group_boundaries() {
        let runs: Vec<_> = Layout::Tagged.runs(250..520).collect();
        assert_eq!(runs, vec![250..256, 256..512, 512..520]);
        let runs: Vec<_> = Layout::Plain.runs(250..520).collect();
        assert_eq!(runs, vec![250..520]);
        assert_eq!(Layout::Tagged.runs(7..7).count(), 0);
        for run in Layout::Tagged.runs(0..2000) {
            let last = run.end - 1;
            assert_eq!(
                Layout::Tagged.data_offset(last) - Layout::Tagged.data_offset(run.start),
                (last - run.start) * 4096
            );
        }
    }

    #[test]
    fn every_offset_below_the_largest_size_fits_loff_t() {
        for layout in [Layout::Plain, Layout::Tagged] {
            let last = MAX_FILE_SIZE / SECTOR_SIZE - 1;
            assert!(layout.data_offset(last) + SECTOR_SIZE <= i64::MAX as u64);
            assert!(layout.backing_len(MAX_FILE_SIZE) <= i64::MAX as u64);
        }
    }

    #[test]
    fn backing_length_classification() {
        for layout in [Layout::Plain, Layout::Tagged] {
            let need = layout.backing_len(1);
            assert_eq!(layout.classify(need, 1), BackingLen::Exact);
            assert_eq!(layout.classify(need + 100, 1), BackingLen::Excess { trim_to: need });
            assert_eq!(layout.classify(4096, 1), BackingLen::Impossible);
        }
        assert_eq!(Layout::Tagged.classify(8192, 1), BackingLen::Impossible);
    }
}
