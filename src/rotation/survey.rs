//! The survey: what is left to rotate, read without changing anything (so
//! also a check, before a rotation starts, that every name, file header and
//! xattr decrypts under one of the two keys).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::copy;
use super::dirtimes::DirTimes;
use super::entries;
use super::error::RotationError;
use super::staging::{self, STAGING_DIR};
use super::sys::{self, Kind, Result};
use super::walk::{Visitor, walk};
use super::which::{Keys, Under};
use super::xattrs;
use crate::names::DIRID_LEN;

/// What is left to do in a backing tree. A resumed rotation's survey counts
/// only what is left.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Survey {
    /// Regular files (inodes: a hard-linked file counts once) whose header
    /// and contents are still under the old key.
    pub files: u64,
    /// The data bytes those files hold outside holes: what re-encrypting
    /// them reads and writes.
    pub bytes: u64,
    /// Regular files already under the new key.
    pub files_done: u64,
    /// Entries whose name is still under the old key.
    pub names: u64,
    /// Encrypted xattrs still under the old key.
    pub xattrs: u64,
    /// Symbolic links. Their targets are checked and re-encrypted by the
    /// rotation itself: reading a link target here would change its access
    /// time.
    pub symlinks: u64,
    /// Directories.
    pub dirs: u64,
    /// What an interrupted rotation (or a crash of the daemon) left: staged
    /// copies, temporaries, times records, orphaned long-name side files.
    pub leftovers: u64,
}

impl Survey {
    /// Whether no file, name, xattr or leftover is under the old key (link
    /// targets aside: see [`Survey::symlinks`]).
    pub fn nothing_left(&self) -> bool {
        self.files == 0 && self.names == 0 && self.xattrs == 0 && self.leftovers == 0
    }
}

struct Surveyor<'a> {
    keys: Keys<'a>,
    staging: Option<OwnedFd>,
    /// Hard-linked old inodes counted already.
    seen: HashSet<(u64, u64)>,
    survey: Survey,
}

struct Dir {
    path: PathBuf,
    id: [u8; DIRID_LEN],
}

impl Surveyor<'_> {
    fn file(&mut self, fd: &OwnedFd, entry: &str, path: &Path) -> Result<()> {
        let f = sys::open_file(fd, entry, path)?;
        let m = sys::fstat(&f, path)?;
        if m.nlink > 1 && !self.seen.insert((m.dev, m.ino)) {
            return Ok(()); // another name of the same file, counted already
        }
        if m.size == 0 {
            self.survey.xattrs += xattrs::count_old(&self.keys, &f, path)?;
            return Ok(());
        }
        let region = copy::header_region(&f, m.size, path)?;
        let h = match self.keys.header(&region) {
            Ok(Under::Old(h)) => h,
            Ok(Under::New(_)) => {
                self.survey.files_done += 1;
                self.survey.xattrs += xattrs::count_old(&self.keys, &f, path)?;
                return Ok(());
            }
            Err(why) => {
                return Err(RotationError::Undecryptable {
                    path: path.to_path_buf(),
                    what: format!("its file header ({why})"),
                });
            }
        };
        copy::check_header(&h, self.keys.from, m.size, path)?;
        let staged = match &self.staging {
            Some(s) => sys::stat_at(s, &staging::file_key(&h.file_id, m.ino), path)?.is_some(),
            None => false,
        };
        if staged {
            return Ok(()); // its new copy is made: its names only move
        }
        self.survey.files += 1;
        self.survey.bytes += copy::data_bytes(&f, self.keys.from, m.size, h.size, path)?;
        self.survey.xattrs += xattrs::count_old(&self.keys, &f, path)?;
        Ok(())
    }
}

impl Visitor for Surveyor<'_> {
    type Dir = Dir;

    fn enter(&mut self, fd: &OwnedFd, path: &Path, is_root: bool) -> Result<(Dir, Vec<OsString>)> {
        let m = sys::fstat(fd, path)?;
        let id = sys::dir_id(fd, path, is_root)?;
        self.survey.dirs += 1;
        if DirTimes::load(fd, &m, path)?.recorded() {
            self.survey.leftovers += 1;
        }
        self.survey.xattrs += xattrs::count_old(&self.keys, fd, path)?;
        if is_root && let Some(s) = &self.staging {
            self.survey.leftovers += sys::entries(s, &path.join(STAGING_DIR))?.len() as u64 + 1;
        }
        let sorted = entries::sort(&self.keys, &id, fd, path, sys::entries(fd, path)?, is_root)?;
        self.survey.leftovers += (sorted.temps.len() + sorted.orphans.len()) as u64;
        Ok((Dir { path: path.to_path_buf(), id }, sorted.entries))
    }

    fn entry(&mut self, dir: &mut Dir, fd: &OwnedFd, name: &OsStr) -> Result<Option<(OwnedFd, PathBuf)>> {
        let path = dir.path.join(name);
        if let Under::Old(_) = entries::name_of(&self.keys, &dir.id, fd, name, &path)? {
            self.survey.names += 1;
        }
        let entry = name.to_string_lossy();
        let m = sys::stat_at(fd, &entry, &path)?.ok_or_else(|| RotationError::Conflict {
            path: path.clone(),
            what: "the entry vanished while the survey read the directory".into(),
        })?;
        match m.kind() {
            Kind::Dir => return Ok(Some((sys::open_dir(fd, &entry, &path)?, path))),
            Kind::File => self.file(fd, &entry, &path)?,
            Kind::Symlink => self.survey.symlinks += 1,
            Kind::Other => {}
        }
        Ok(None)
    }

    fn leave(&mut self, _dir: Dir, _fd: &OwnedFd, _is_root: bool) -> Result<()> {
        Ok(())
    }
}

/// Surveys the tree under `data_dir` for a rotation between `keys`.
pub(crate) fn survey_with(keys: Keys<'_>, data_dir: &Path) -> Result<Survey> {
    let root = sys::open_root(data_dir)?;
    let spath = data_dir.join(STAGING_DIR);
    let staging = match sys::stat_at(&root, STAGING_DIR, &spath)? {
        Some(m) if m.kind() == Kind::Dir => Some(sys::open_dir(&root, STAGING_DIR, &spath)?),
        Some(_) => {
            return Err(RotationError::Conflict {
                path: spath,
                what: "the rotation's staging name is taken by something that is not a directory".into(),
            });
        }
        None => None,
    };
    let mut v = Surveyor { keys, staging, seen: HashSet::new(), survey: Survey::default() };
    walk(&mut v, root, data_dir)?;
    Ok(v.survey)
}
