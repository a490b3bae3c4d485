//! One file's sector crypto in its volume's layout: the XTS cipher and, on
//! format 3, the tagger; plus reading and writing a run of tags.
//!
//! The daemon's data path and the offline tools (rotation, upgrade,
//! `verify-recordings`) all go through this, so a sector is encrypted,
//! tagged and checked the same way everywhere.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use crate::Error;
use crate::contents::{Sector, SectorCipher};
use crate::keys::VolumeKeys;
use crate::layout::{Layout, TAG_LEN};
use crate::tags::{Checked, SectorTagger, Tag};

pub struct FileCrypto {
    pub cipher: SectorCipher,
    /// Format 3 only.
    tagger: Option<SectorTagger>,
    pub layout: Layout,
}

impl FileCrypto {
    /// The keys of the file with ID `file_id` in a volume of `layout`.
    pub fn new(keys: &VolumeKeys, layout: Layout, file_id: &[u8; 16]) -> Result<FileCrypto, Error> {
        let cipher = SectorCipher::new(&keys.file_key(file_id))?;
        let tagger = (layout == Layout::Tagged).then(|| SectorTagger::new(&keys.tag_key(file_id)));
        Ok(FileCrypto { cipher, tagger, layout })
    }

    pub fn tagged(&self) -> bool {
        self.tagger.is_some()
    }

    /// The tag of ciphertext `sector` at `index` (`None` when plain).
    pub fn tag(&self, index: u64, sector: &[u8]) -> Option<Tag> {
        self.tagger.as_ref().map(|t| t.tag(index, sector))
    }

    /// Tags every ciphertext sector of `buf` (sectors from `first`) into `tags`.
    pub fn tag_run(&self, first: u64, buf: &[u8], tags: &mut [Tag]) {
        if let Some(t) = &self.tagger {
            for (i, (sector, tag)) in buf.chunks_exact(SECTOR).zip(tags.iter_mut()).enumerate() {
                *tag = t.tag(first + i as u64, sector);
            }
        }
    }

    /// Checks ciphertext `sector` at `index` against its stored tag. Plain
    /// files have none: every sector is taken as it is.
    pub fn check(&self, index: u64, sector: &[u8], stored: &Tag) -> Checked {
        match &self.tagger {
            Some(t) => t.check(index, sector, stored),
            None => Checked::Intact,
        }
    }

    /// Checks every sector of the ciphertext run `buf` (from sector `first`)
    /// against `tags`; returns the ranges of sectors that fail, merged.
    pub fn check_run(&self, first: u64, buf: &[u8], tags: &[Tag]) -> Vec<Range<u64>> {
        let mut bad: Vec<Range<u64>> = Vec::new();
        if self.tagger.is_none() {
            return bad;
        }
        for (i, (sector, tag)) in buf.chunks_exact(SECTOR).zip(tags).enumerate() {
            let s = first + i as u64;
            if self.check(s, sector, tag) == Checked::Mismatch {
                match bad.last_mut() {
                    Some(r) if r.end == s => r.end = s + 1,
                    _ => bad.push(s..s + 1),
                }
            }
        }
        bad
    }

    /// Encrypts plaintext `src` as sector `index` into `dst`; its tag if tagged.
    pub fn encrypt_into(&self, index: u64, src: &Sector, dst: &mut Sector) -> Option<Tag> {
        self.cipher.encrypt_into(index, src, dst);
        self.tag(index, dst)
    }
}

const SECTOR: usize = crate::sectors::SECTOR_SIZE as usize;

/// Reads the stored tags of the sectors `run` (inside one group) into
/// `out`; tags past the end of the backing file read as holes' (zeros).
pub fn read_tags(fd: &File, layout: Layout, run: Range<u64>, out: &mut [Tag]) -> std::io::Result<()> {
    let Some(at) = layout.tag_offset(run.start) else {
        return Ok(());
    };
    let n = (run.end - run.start) as usize;
    let mut bytes = [0u8; SECTOR];
    let bytes = &mut bytes[..n * TAG_LEN];
    let mut done = 0;
    while done < bytes.len() {
        match fd.read_at(&mut bytes[done..], at + done as u64) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes[done..].fill(0);
    for (tag, b) in out.iter_mut().zip(bytes.chunks_exact(TAG_LEN)) {
        tag.copy_from_slice(b);
    }
    Ok(())
}

/// Writes the tags of sectors `first..first + tags.len()` (inside one
/// group) with one `pwrite`. Nothing to do when plain.
pub fn write_tags(fd: &File, layout: Layout, first: u64, tags: &[Tag]) -> std::io::Result<()> {
    let Some(at) = layout.tag_offset(first) else {
        return Ok(());
    };
    let mut bytes = [0u8; SECTOR];
    for (b, tag) in bytes.chunks_exact_mut(TAG_LEN).zip(tags) {
        b.copy_from_slice(tag);
    }
    fd.write_all_at(&bytes[..tags.len() * TAG_LEN], at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::MasterKey;

    #[test]
    fn tags_written_for_a_run_read_back_and_check() {
        let keys = VolumeKeys::derive(MasterKey::generate().unwrap());
        let c = FileCrypto::new(&keys, Layout::Tagged, &[5; 16]).unwrap();
        let dir = std::env::temp_dir().join(format!("cv-filecrypto-{}", std::process::id()));
        let f = File::options().read(true).write(true).create(true).truncate(true).open(&dir).unwrap();
        let mut buf = vec![0u8; 3 * SECTOR];
        crate::random::fill(&mut buf).unwrap();
        let mut tags = [[0u8; TAG_LEN]; 3];
        c.tag_run(254, &buf, &mut tags);
        // Sectors 254..257 span two groups: two runs, two tag writes.
        let mut written = 0;
        for run in Layout::Tagged.runs(254..257) {
            let k = (run.end - run.start) as usize;
            write_tags(&f, Layout::Tagged, run.start, &tags[written..written + k]).unwrap();
            written += k;
        }
        let mut back = [[0u8; TAG_LEN]; 3];
        read_tags(&f, Layout::Tagged, 254..256, &mut back[..2]).unwrap();
        read_tags(&f, Layout::Tagged, 256..257, &mut back[2..]).unwrap();
        assert_eq!(back, tags);
        assert!(c.check_run(254, &buf, &back).is_empty());
        buf[SECTOR + 7] ^= 1;
        assert_eq!(c.check_run(254, &buf, &back), vec![255..256]);
        // Past the end of the backing file: holes' tags.
        let mut far = [[1u8; TAG_LEN]; 2];
        read_tags(&f, Layout::Tagged, 9000..9002, &mut far).unwrap();
        assert_eq!(far, [[0u8; TAG_LEN]; 2]);
        std::fs::remove_file(&dir).unwrap();
    }
}
