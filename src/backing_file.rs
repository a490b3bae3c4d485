//! One backing regular file read offline, as the daemon would read it:
//! header, sectors checked against their tags, and the seal of what it
//! holds. For `verify-recordings`, and for tests that look under the mount.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::Error;
use crate::contents::Sector;
use crate::filecrypto::{self, FileCrypto};
use crate::fileheader::FileHeader;
use crate::keys::VolumeKeys;
use crate::layout::{BackingLen, Layout};
use crate::recording_seal::{Seal, SealBuilder};
use crate::sectors::{FILE_HEADER_LEN, MAX_FILE_SIZE, SECTOR_SIZE, sectors_for_size};
use crate::tags::{Checked, HOLE_TAG, Tag};

pub struct BackingFile {
    file: File,
    pub layout: Layout,
    pub header: FileHeader,
    crypto: FileCrypto,
    /// Bytes of the backing file.
    pub len: u64,
}

/// What reading one sector found.
pub struct SectorRead {
    pub plain: Box<Sector>,
    pub checked: Checked,
}

fn damaged(what: String) -> Error {
    Error::FileHeaderDamaged { what }
}

impl BackingFile {
    /// Opens `file` of a volume of `layout`: `Ok(None)` for an empty file
    /// without a header (formats 1 and 2); an error for a damaged header or
    /// an impossible length. The name binding is not checked here (the
    /// caller knows the name: [`FileHeader::is_bound_to`]).
    pub fn open(file: File, keys: &VolumeKeys, layout: Layout) -> Result<Option<BackingFile>, Error> {
        let len = file.metadata().map_err(|e| damaged(format!("cannot stat: {e}")))?.len();
        if len == 0 && layout == Layout::Plain {
            return Ok(None);
        }
        let mut region = vec![0u8; FILE_HEADER_LEN as usize];
        let n = read_full(&file, &mut region, 0).map_err(|e| damaged(format!("cannot read: {e}")))?;
        let header = FileHeader::decode(&region[..n], layout, &keys.file_header_mac)?;
        if header.size > MAX_FILE_SIZE {
            return Err(damaged(format!("header records {} bytes, past the largest file size", header.size)));
        }
        if layout.classify(len, header.size) == BackingLen::Impossible {
            return Err(damaged(format!("backing file of {len} bytes is too short for {} bytes", header.size)));
        }
        let crypto = FileCrypto::new(keys, layout, &header.file_id)?;
        Ok(Some(BackingFile { file, layout, header, crypto, len }))
    }

    /// Data sectors the recorded size needs.
    pub fn sectors(&self) -> u64 {
        sectors_for_size(self.header.size)
    }

    /// Data sectors the backing file holds, excess past the size included.
    pub fn sectors_stored(&self) -> u64 {
        let mut n = self.sectors();
        while self.layout.data_offset(n) < self.len {
            n += 1;
        }
        n
    }

    /// The stored tags of sectors `first..first + out.len()` (zeros when plain).
    pub fn tags(&self, first: u64, out: &mut [Tag]) -> std::io::Result<()> {
        let mut done = 0;
        for run in self.layout.runs(first..first + out.len() as u64) {
            let k = (run.end - run.start) as usize;
            filecrypto::read_tags(&self.file, self.layout, run, &mut out[done..done + k])?;
            done += k;
        }
        Ok(())
    }

    /// Sector `index`, decrypted, and what its tag says.
    pub fn read_sector(&self, index: u64) -> std::io::Result<SectorRead> {
        let mut plain = Box::new([0u8; SECTOR_SIZE as usize]);
        read_full(&self.file, &mut plain[..], self.layout.data_offset(index))?;
        let mut tag = [HOLE_TAG];
        self.tags(index, &mut tag)?;
        let checked = match self.layout {
            Layout::Tagged => self.crypto.check(index, &plain[..], &tag[0]),
            Layout::Plain if plain.iter().all(|&b| b == 0) => Checked::Hole,
            Layout::Plain => Checked::Intact,
        };
        if checked != Checked::Hole {
            self.crypto.cipher.decrypt_run(index, &mut plain[..]);
        }
        Ok(SectorRead { plain, checked })
    }

    /// The seal of what the file holds (format 3; `None` when plain).
    pub fn seal(&self) -> std::io::Result<Option<Seal>> {
        if self.layout != Layout::Tagged {
            return Ok(None);
        }
        let n = self.sectors();
        let mut tags = vec![HOLE_TAG; n as usize];
        self.tags(0, &mut tags)?;
        Ok(Some(SealBuilder::new(&self.header.file_id).finish(self.header.size, &tags)))
    }
}

fn read_full(fd: &File, buf: &mut [u8], mut off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match fd.read_at(&mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(done)
}
