//! The rotation proper: the visitor that moves each entry of the walk from
//! the old keys to the new (see the module doc of [`super`] for the order of
//! changes and why each state in between is whole).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::copy;
use super::dirtimes::DirTimes;
use super::entries;
use super::error::RotationError;
use super::progress::{RotationProgress, RotationStats};
use super::staging::{self, Staging};
use super::steps::Steps;
use super::sys::{self, Kind, Meta, Result};
use super::which::{Keys, Under};
use super::xattrs;
use crate::fileheader::{FileHeader, NameBinding};
use crate::names::{self, BackingName, DIRID_LEN, LONG_NAME_SUFFIX, LONG_PREFIX};

pub(crate) struct Rotator<'a, 'p> {
    keys: Keys<'a>,
    progress: &'p mut dyn RotationProgress,
    /// The data directory, where the staging area lives.
    root: OwnedFd,
    staging: Staging,
    /// The re-encryption buffer, one chunk, reused for every file.
    buf: Vec<u8>,
    pub stats: RotationStats,
    pub steps: Steps,
    said_no_xattrs: bool,
}

/// A directory being rotated.
pub(crate) struct DirState {
    path: PathBuf,
    id: [u8; DIRID_LEN],
    times: DirTimes,
}

fn crypto(path: &Path) -> impl FnOnce(crate::Error) -> RotationError + '_ {
    move |e| RotationError::Crypto { path: path.to_path_buf(), what: e.to_string() }
}

fn changed(path: &Path) -> RotationError {
    RotationError::Conflict { path: path.to_path_buf(), what: "the entry changed while it was being rotated".into() }
}

impl<'a, 'p> Rotator<'a, 'p> {
    /// A rotation of the data directory `root` (at `root_path`).
    pub fn new(
        keys: Keys<'a>,
        progress: &'p mut dyn RotationProgress,
        root: OwnedFd,
        root_path: &Path,
        mut steps: Steps,
    ) -> Result<Self> {
        let (staging, removed) = Staging::open(&root, root_path, &mut steps)?;
        if removed > 0 {
            progress.message(&format!("removed {removed} half-written staged copies of an interrupted rotation"));
        }
        let stats = RotationStats { leftovers: removed, ..RotationStats::default() };
        Ok(Rotator { keys, progress, root, staging, buf: Vec::new(), stats, steps, said_no_xattrs: false })
    }

    /// Records the times of directory `fd` before its first change.
    fn before_change(&mut self, times: &mut DirTimes, fd: impl AsFd, path: &Path) -> Result<()> {
        if !times.before_change(fd, path, &mut self.steps)? && !self.said_no_xattrs {
            self.said_no_xattrs = true;
            self.progress.message(
                "the backing filesystem keeps no user xattrs: directory times are restored only if this run \
                 finishes (a crash loses the modification times of the directories it was changing)",
            );
        }
        Ok(())
    }

    fn file_done(&mut self, bytes: u64) {
        self.stats.files += 1;
        self.stats.bytes += bytes;
        self.progress.file_done(bytes);
    }

    /// Removes what an interrupted run left in directory `fd`.
    fn clean(&mut self, dir: &mut DirState, fd: &OwnedFd, sorted: &entries::Sorted) -> Result<()> {
        let garbage: Vec<&String> = sorted.temps.iter().chain(&sorted.orphans).collect();
        for name in &garbage {
            self.before_change(&mut dir.times, fd, &dir.path)?;
            let p = dir.path.join(name);
            self.steps.tick(&p)?;
            sys::unlink(fd, name, &p)?;
        }
        if !garbage.is_empty() {
            self.stats.leftovers += garbage.len() as u64;
            self.progress.message(&format!(
                "{}: removed {} leftovers of an interrupted run (temporaries, orphaned long-name side files)",
                dir.path.display(),
                garbage.len()
            ));
        }
        for name in &sorted.strays {
            self.progress.message(&format!(
                "{}: left alone: an orphaned long-name side file whose content is no name under either key",
                dir.path.join(name).display()
            ));
        }
        Ok(())
    }

    /// Writes the side file `side` of a long name (durably, before the entry
    /// that needs it is renamed to it).
    fn write_side_file(&mut self, dir: &DirState, fd: &OwnedFd, side: &str, full: &str) -> Result<()> {
        let path = dir.path.join(side);
        let tmp = sys::temp_name(&path)?;
        self.steps.tick(&path)?;
        let f = sys::create(fd, &tmp, &path)?;
        sys::write_at(&f, full.as_bytes(), 0, &path)?;
        sys::set_mode(&f, 0o400, &path)?;
        sys::fsync(&f, &path)?;
        self.steps.tick(&path)?;
        sys::rename_over(fd, &tmp, side, &path)?;
        sys::fsync(fd, &dir.path)
    }

    /// Renames entry `old` (plaintext `plain`) to its name under the new key.
    fn rename(&mut self, dir: &mut DirState, fd: &OwnedFd, old: &str, plain: &[u8]) -> Result<String> {
        let path = dir.path.join(old);
        let bn = names::encrypt_name(&self.keys.new.names, &dir.id, plain).map_err(crypto(&path))?;
        self.before_change(&mut dir.times, fd, &dir.path)?;
        if let (Some(side), BackingName::Long { full, .. }) = (bn.name_file(), &bn) {
            self.write_side_file(dir, fd, &side, full)?;
        }
        self.steps.tick(&path)?;
        if !sys::rename_new(fd, old, bn.entry(), &path)? {
            return Err(RotationError::Conflict {
                path: dir.path.join(bn.entry()),
                what: format!("{} has the same name under the new key, and is in the way of it", path.display()),
            });
        }
        if old.starts_with(LONG_PREFIX) {
            // The entry is durably under its new name before the side file
            // of the old one goes: no entry is ever without its name.
            sys::fsync(fd, &dir.path)?;
            let side = format!("{old}{LONG_NAME_SUFFIX}");
            let p = dir.path.join(&side);
            self.steps.tick(&p)?;
            sys::unlink(fd, &side, &p)?;
        }
        self.stats.names += 1;
        Ok(bn.entry().to_string())
    }

    /// Moves name `entry` onto the staged copy `key`: a hard link to it under
    /// a temporary name, renamed over the entry.
    fn relink(&mut self, dir: &mut DirState, fd: &OwnedFd, entry: &str, key: &str) -> Result<()> {
        let path = dir.path.join(entry);
        self.before_change(&mut dir.times, fd, &dir.path)?;
        let tmp = sys::temp_name(&path)?;
        self.steps.tick(&path)?;
        let staged = self.staging.fd().ok_or_else(|| changed(&path))?;
        sys::link(staged, key, fd, &tmp, &path)?;
        self.steps.tick(&path)?;
        sys::rename_over(fd, &tmp, entry, &path)?;
        self.stats.relinked += 1;
        Ok(())
    }

    /// Writes the new copy of file `src` (header `h`, metadata `m`) into
    /// `dst`, durably, metadata and xattrs included.
    fn write_copy(
        &mut self,
        src: &File,
        m: &Meta,
        h: &FileHeader,
        binding: NameBinding,
        dst: &File,
        path: &Path,
    ) -> Result<u64> {
        let bytes = copy::rotate(&self.keys, src, m.size, h, binding, dst, &mut self.buf, path, &mut self.steps)?;
        sys::set_owner_and_mode(dst, m, path)?;
        self.stats.xattrs += xattrs::copy(&self.keys, src, dst, path)?;
        sys::set_times(dst, &m.timestamps(), path)?;
        sys::fsync(dst, path)?;
        Ok(bytes)
    }

    /// The staging directory (a descriptor of its own, so the caller can go
    /// on changing the rotator).
    fn staging_dir(&mut self) -> Result<OwnedFd> {
        let fd = self.staging.dir(&self.root, &mut self.steps)?;
        fd.try_clone().map_err(sys::std_io(&self.staging.path, "duplicating a descriptor of"))
    }

    /// Rotates regular file `entry` (plaintext name `plain`).
    fn file(&mut self, dir: &mut DirState, fd: &OwnedFd, entry: &str, plain: &[u8], m: &Meta) -> Result<()> {
        let path = dir.path.join(entry);
        let src = sys::open_file(fd, entry, &path)?;
        let m = sys::fstat(&src, &path).and_then(|now| if now.ino == m.ino { Ok(now) } else { Err(changed(&path)) })?;
        if m.size == 0 {
            // An empty file has no header and no key: only its xattrs.
            self.stats.xattrs += xattrs::rotate_in_place(&self.keys, &src, &path, &mut self.steps)?;
            return Ok(());
        }
        let region = copy::header_region(&src, m.size, &path)?;
        let h = match self.keys.header(&region) {
            Ok(Under::Old(h)) => h,
            Ok(Under::New(_)) => {
                // Done by an earlier run; its xattrs were written with it.
                self.stats.xattrs += xattrs::rotate_in_place(&self.keys, &src, &path, &mut self.steps)?;
                return Ok(());
            }
            Err(why) => {
                return Err(RotationError::Undecryptable { path, what: format!("its file header ({why})") });
            }
        };
        copy::check_header(&h, self.keys.from, m.size, &path)?;
        let binding = NameBinding::of(&self.keys.new.name_binding, &dir.id, plain);
        let key = staging::file_key(&h.file_id, m.ino);
        if let Some(staged) = self.staging.find(&key)? {
            self.staging.check_file(&key, &staged, &h, &self.keys)?;
            return self.relink(dir, fd, entry, &key);
        }
        if m.nlink > 1 {
            let sdir = self.staging_dir()?;
            let part = self.staging.part_name()?;
            let part_path = self.staging.path.join(&part);
            self.steps.tick(&part_path)?;
            let dst = sys::create(&sdir, &part, &part_path)?;
            let bytes = self.write_copy(&src, &m, &h, binding, &dst, &part_path)?;
            self.steps.tick(&part_path)?;
            sys::rename_over(&sdir, &part, &key, &self.staging.path.join(&key))?;
            sys::fsync(&sdir, &self.staging.path)?;
            self.file_done(bytes);
            return self.relink(dir, fd, entry, &key);
        }
        self.before_change(&mut dir.times, fd, &dir.path)?;
        let tmp = sys::temp_name(&path)?;
        let tmp_path = dir.path.join(&tmp);
        self.steps.tick(&tmp_path)?;
        let dst = sys::create(fd, &tmp, &tmp_path)?;
        let bytes = self.write_copy(&src, &m, &h, binding, &dst, &tmp_path)?;
        self.steps.tick(&path)?;
        sys::rename_over(fd, &tmp, entry, &path)?;
        self.file_done(bytes);
        Ok(())
    }

    /// Whether the staged symlink `key` holds `target` under the new key.
    fn check_staged_link(&mut self, key: &str, staged: &Meta, target: &[u8]) -> Result<()> {
        let path = self.staging.path.join(key);
        let sdir = self.staging.fd().ok_or_else(|| changed(&path))?;
        if staged.kind() != Kind::Symlink {
            return Err(RotationError::Conflict { path, what: "the staged copy of a symlink is no symlink".into() });
        }
        let stored = sys::readlink(sdir, key, &path)?;
        // As in `symlink`: put back the access time the read moved.
        sys::set_times_at(sdir, key, staged, &path)?;
        if names::decrypt_link_target(&self.keys.new.link_targets, &stored).is_ok_and(|t| t == target) {
            Ok(())
        } else {
            Err(RotationError::Conflict {
                path,
                what: "the staged copy of a hard-linked symlink does not hold its target".into(),
            })
        }
    }

    fn symlink(&mut self, dir: &mut DirState, fd: &OwnedFd, entry: &str, m: &Meta) -> Result<()> {
        let path = dir.path.join(entry);
        let stored = sys::readlink(fd, entry, &path)?;
        // Reading a target moves the link's access time (there is no
        // O_NOATIME for readlink): put it back at once, before anything else
        // can happen, so neither the old link nor its copy shows the read.
        if sys::stat_at(fd, entry, &path)?.is_some_and(|now| now.atime != m.atime) {
            sys::set_times_at(fd, entry, m, &path)?;
        }
        let target = match self.keys.link_target(&stored) {
            Some(Under::Old(t)) => t,
            Some(Under::New(_)) => return Ok(()), // done by an earlier run
            None => return Err(RotationError::Undecryptable { path, what: "its link target".into() }),
        };
        let stored = names::encrypt_link_target(&self.keys.new.link_targets, &target).map_err(crypto(&path))?;
        let key = staging::link_key(m.ino);
        if let Some(staged) = self.staging.find(&key)? {
            self.check_staged_link(&key, &staged, &target)?;
            return self.relink(dir, fd, entry, &key);
        }
        if m.nlink > 1 {
            let sdir = self.staging_dir()?;
            let part = self.staging.part_name()?;
            let part_path = self.staging.path.join(&part);
            self.steps.tick(&part_path)?;
            sys::symlink(&stored, &sdir, &part, &part_path)?;
            sys::set_owner_and_times_at(&sdir, &part, m, &part_path)?;
            sys::fsync(&sdir, &self.staging.path)?;
            self.steps.tick(&part_path)?;
            sys::rename_over(&sdir, &part, &key, &self.staging.path.join(&key))?;
            sys::fsync(&sdir, &self.staging.path)?;
            self.stats.symlinks += 1;
            return self.relink(dir, fd, entry, &key);
        }
        self.before_change(&mut dir.times, fd, &dir.path)?;
        let tmp = sys::temp_name(&path)?;
        let tmp_path = dir.path.join(&tmp);
        self.steps.tick(&tmp_path)?;
        sys::symlink(&stored, fd, &tmp, &tmp_path)?;
        sys::set_owner_and_times_at(fd, &tmp, m, &tmp_path)?;
        // A symlink cannot be synced by itself: its directory holds it.
        sys::fsync(fd, &dir.path)?;
        self.steps.tick(&path)?;
        sys::rename_over(fd, &tmp, entry, &path)?;
        self.stats.symlinks += 1;
        Ok(())
    }
}

impl super::walk::Visitor for Rotator<'_, '_> {
    type Dir = DirState;

    fn enter(&mut self, fd: &OwnedFd, path: &Path, is_root: bool) -> Result<(DirState, Vec<OsString>)> {
        let m = sys::fstat(fd, path)?;
        let id = sys::dir_id(fd, path, is_root)?;
        let mut dir = DirState { path: path.to_path_buf(), id, times: DirTimes::load(fd, &m, path)? };
        if is_root {
            // The staging area, made and removed in the data directory
            // whenever a hard link needs it, changes the root: record it now.
            self.before_change(&mut dir.times, fd, path)?;
        }
        self.stats.dirs += 1;
        self.stats.xattrs += xattrs::rotate_in_place(&self.keys, fd, path, &mut self.steps)?;
        let all = sys::entries(fd, path)?;
        let sorted = entries::sort(&self.keys, &id, fd, path, all, is_root)?;
        self.clean(&mut dir, fd, &sorted)?;
        Ok((dir, sorted.entries))
    }

    fn entry(&mut self, dir: &mut DirState, fd: &OwnedFd, name: &OsStr) -> Result<Option<(OwnedFd, PathBuf)>> {
        let path = dir.path.join(name);
        let under = entries::name_of(&self.keys, &dir.id, fd, name, &path)?;
        // name_of refused anything that is not UTF-8.
        let mut entry = name.to_string_lossy().into_owned();
        let plain = match under {
            Under::Old(plain) => {
                entry = self.rename(dir, fd, &entry, &plain)?;
                plain
            }
            Under::New(plain) => plain,
        };
        let path = dir.path.join(&entry);
        let m = sys::stat_at(fd, &entry, &path)?.ok_or_else(|| changed(&path))?;
        match m.kind() {
            Kind::Dir => {
                let child = sys::open_dir(fd, &entry, &path)?;
                if sys::fstat(&child, &path)?.ino != m.ino {
                    return Err(changed(&path));
                }
                return Ok(Some((child, path)));
            }
            Kind::File => self.file(dir, fd, &entry, &plain, &m)?,
            Kind::Symlink => self.symlink(dir, fd, &entry, &m)?,
            Kind::Other => {}
        }
        Ok(None)
    }

    fn leave(&mut self, dir: DirState, fd: &OwnedFd, is_root: bool) -> Result<()> {
        if is_root {
            // Every name is on its new copy and every directory synced.
            self.staging.remove(&self.root, &mut self.steps)?;
        }
        dir.times.finish(fd, &dir.path, &mut self.steps)
    }
}
