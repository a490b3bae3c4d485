//! The staging area for hard-linked objects: `data/.tmp-rotation/`.
//!
//! Re-encrypting a file makes a new inode, and each of its names must be
//! moved onto it one at a time, wherever in the tree they are. So the new
//! copy of a hard-linked file (or symlink) is made once, here, under a name
//! that says which old inode it replaces (`f-<file ID>-<inode>`,
//! `l-<inode>`), made durable, and then each name found in the walk is
//! linked to it and renamed over the old one. A name moved and a name not
//! yet moved hold the same plaintext, each whole under its own key; a
//! resumed walk finds the staged copy by the old inode's number and moves
//! the rest of the names onto the same copy, so they end up hard links
//! again. The staged names are removed only after the whole walk, when no
//! name of an old inode is left.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::error::RotationError;
use super::steps::Steps;
use super::sys::{self, Kind, Meta, Result};
use crate::fileheader::FileHeader;

/// The staging directory's name in the data directory (a `.tmp-*` name, so
/// the daemon never lists it).
pub const STAGING_DIR: &str = ".tmp-rotation";
/// Prefix of a staged copy still being written.
const PART: &str = "part-";

/// The staged name of the copy of a hard-linked regular file.
pub(crate) fn file_key(file_id: &[u8; 16], ino: u64) -> String {
    format!("f-{}-{ino}", sys::hex(file_id))
}

/// The staged name of the copy of a hard-linked symlink.
pub(crate) fn link_key(ino: u64) -> String {
    format!("l-{ino}")
}

pub(crate) struct Staging {
    fd: Option<OwnedFd>,
    pub path: PathBuf,
}

impl Staging {
    /// The staging area of the data directory `root` (at `root_path`), if an
    /// interrupted rotation left one; copies it left half-written are removed.
    /// Returns it and how many such leftovers there were.
    pub fn open(root: impl AsFd, root_path: &Path, steps: &mut Steps) -> Result<(Staging, u64)> {
        let path = root_path.join(STAGING_DIR);
        let mut s = Staging { fd: None, path };
        let Some(m) = sys::stat_at(&root, STAGING_DIR, &s.path)? else {
            return Ok((s, 0));
        };
        if m.kind() != Kind::Dir {
            return Err(RotationError::Conflict {
                path: s.path,
                what: "the rotation's staging name is taken by something that is not a directory".into(),
            });
        }
        let fd = sys::open_dir(&root, STAGING_DIR, &s.path)?;
        let mut removed = 0;
        for e in sys::entries(&fd, &s.path)? {
            let name = e.to_string_lossy();
            if name.starts_with(PART) {
                steps.tick(&s.path)?;
                sys::unlink(&fd, &name, &s.path.join(&*name))?;
                removed += 1;
            }
        }
        s.fd = Some(fd);
        Ok((s, removed))
    }

    /// The staging directory, made (and made durable) on first use. The
    /// caller has recorded the data directory's times (it changes them).
    pub fn dir(&mut self, root: impl AsFd, steps: &mut Steps) -> Result<&OwnedFd> {
        if self.fd.is_none() {
            let root = root.as_fd();
            steps.tick(&self.path)?;
            sys::mkdir(root, STAGING_DIR, &self.path)?;
            sys::fsync(root, &self.path)?;
            self.fd = Some(sys::open_dir(root, STAGING_DIR, &self.path)?);
        }
        // Set just above.
        self.fd.as_ref().ok_or_else(|| RotationError::Conflict {
            path: self.path.clone(),
            what: "the staging directory vanished".into(),
        })
    }

    /// The staged entry `key`, if there is one.
    pub fn find(&self, key: &str) -> Result<Option<Meta>> {
        match &self.fd {
            Some(fd) => sys::stat_at(fd, key, &self.path.join(key)),
            None => Ok(None),
        }
    }

    pub fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    /// A name for a staged copy under construction.
    pub fn part_name(&self) -> Result<String> {
        Ok(format!("{PART}{}", &sys::temp_name(&self.path)?[sys::TEMP_PREFIX.len()..]))
    }

    /// Whether the staged copy `key` is the new copy of a regular file whose
    /// old header is `old` (same file ID and size, header under the new key).
    pub fn check_file(&self, key: &str, m: &Meta, old: &FileHeader, keys: &super::which::Keys<'_>) -> Result<()> {
        let path = self.path.join(key);
        let mismatch = |what: &str| RotationError::Conflict {
            path: path.clone(),
            what: format!("the staged copy of a hard-linked file {what}"),
        };
        if m.kind() != Kind::File {
            return Err(mismatch("is not a regular file"));
        }
        let fd = self.fd.as_ref().ok_or_else(|| mismatch("cannot be opened"))?;
        let f: File = sys::open_file(fd, key, &path)?;
        let region = super::copy::header_region(&f, m.size, &path)?;
        match FileHeader::decode(&region, keys.to, &keys.new.file_header_mac) {
            Ok(h) if h.file_id == old.file_id && h.size == old.size => Ok(()),
            Ok(_) => Err(mismatch("holds another file ID or size than the file")),
            Err(_) => Err(mismatch("has no valid header under the new key")),
        }
    }

    /// Removes the staging area once every name is on its new copy.
    pub fn remove(&mut self, root: impl AsFd, steps: &mut Steps) -> Result<u64> {
        let Some(fd) = self.fd.take() else { return Ok(0) };
        let root = root.as_fd();
        // Every directory holding a moved name was synced when it was done,
        // so no name can fall back to an old inode after this.
        let mut removed = 0;
        for e in sys::entries(&fd, &self.path)? {
            let name = e.to_string_lossy();
            steps.tick(&self.path)?;
            sys::unlink(&fd, &name, &self.path.join(&*name))?;
            removed += 1;
        }
        drop(fd);
        steps.tick(&self.path)?;
        sys::rmdir(root, STAGING_DIR, &self.path)?;
        sys::fsync(root, &self.path)?;
        Ok(removed)
    }
}
