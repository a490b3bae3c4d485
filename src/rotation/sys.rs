//! The system calls a rotation makes, relative to directory descriptors and
//! single names only (never whole paths: a deep backing path can pass
//! PATH_MAX), each error carrying the backing path for the message.
//!
//! Everything is opened with `O_NOATIME` where the kernel allows it (root
//! or the owner), so surveying and re-encrypting leave access times as they
//! were; the rotation copies them onto what it writes.

use std::ffi::OsString;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, SeekFrom, Stat, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::error::RotationError;

pub(crate) type Result<T> = std::result::Result<T, RotationError>;

/// Prefix of the rotation's own temporaries in any directory (a `.tmp-*`
/// name, [`crate::names::TMP_PREFIX`]: housekeeping the daemon never lists).
pub const TEMP_PREFIX: &str = ".tmp-rotate-";

/// Maps an errno to an I/O error about `path`.
pub(crate) fn io<'p>(path: &'p Path, op: &'static str) -> impl FnOnce(Errno) -> RotationError + 'p {
    move |e| RotationError::Io { path: path.to_path_buf(), op, source: e.into() }
}

/// Maps a std I/O error to an I/O error about `path`.
pub(crate) fn std_io<'p>(path: &'p Path, op: &'static str) -> impl FnOnce(std::io::Error) -> RotationError + 'p {
    move |source| RotationError::Io { path: path.to_path_buf(), op, source }
}

/// What kind of object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    /// FIFOs, sockets (and device nodes, which the daemon never makes):
    /// nothing encrypted but their name; Linux keeps `user.*` xattrs off them.
    Other,
}

/// The parts of `struct stat` a rotation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
}

impl Meta {
    // The field types of `struct stat` differ between architectures, so
    // some of these casts are no-ops on one and needed on another.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &Stat) -> Meta {
        Meta {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
            nlink: st.st_nlink as u64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size.max(0) as u64,
            atime: (st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        }
    }

    pub fn kind(&self) -> Kind {
        match FileType::from_raw_mode(self.mode) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    pub fn timestamps(&self) -> Timestamps {
        timestamps(self.atime, self.mtime)
    }
}

pub(crate) fn timestamps(atime: (i64, i64), mtime: (i64, i64)) -> Timestamps {
    Timestamps {
        last_access: rfs::Timespec { tv_sec: atime.0, tv_nsec: atime.1 as _ },
        last_modification: rfs::Timespec { tv_sec: mtime.0, tv_nsec: mtime.1 as _ },
    }
}

/// `openat` with `O_NOATIME`, and without it where the kernel refuses it
/// (EPERM: neither root nor the owner).
fn open_noatime(dir: impl AsFd, name: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let dir = dir.as_fd();
    match rfs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rfs::openat(dir, name, flags, Mode::empty()),
        r => r,
    }
}

/// Opens directory `name` of `dir` for reading (never through a symlink).
pub(crate) fn open_dir(dir: impl AsFd, name: &str, path: &Path) -> Result<OwnedFd> {
    open_noatime(dir, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC)
        .map_err(io(path, "opening directory"))
}

/// Opens regular file `name` of `dir` for reading (never through a symlink).
pub(crate) fn open_file(dir: impl AsFd, name: &str, path: &Path) -> Result<File> {
    open_noatime(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC)
        .map(File::from)
        .map_err(io(path, "opening"))
}

pub(crate) fn fstat(fd: impl AsFd, path: &Path) -> Result<Meta> {
    rfs::fstat(fd).map(|st| Meta::of(&st)).map_err(io(path, "stat of"))
}

/// `lstat` of `name` in `dir`; None if there is no such entry.
pub(crate) fn stat_at(dir: impl AsFd, name: &str, path: &Path) -> Result<Option<Meta>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(Meta::of(&st))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(io(path, "stat of")(e)),
    }
}

/// The names in a directory, `.` and `..` left out, sorted.
pub(crate) fn entries(dir: impl AsFd, path: &Path) -> Result<Vec<OsString>> {
    // A descriptor of its own: reading moves its position.
    let fd = open_dir(dir, ".", path)?;
    let mut out = Vec::new();
    for e in rfs::Dir::new(fd).map_err(io(path, "reading directory"))? {
        let e = e.map_err(io(path, "reading directory"))?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name.to_vec()));
        }
    }
    out.sort();
    Ok(out)
}

/// A fresh temporary name for `dir`: [`TEMP_PREFIX`] and 24 hex digits.
pub(crate) fn temp_name(path: &Path) -> Result<String> {
    let r: [u8; 12] =
        crate::random::array().map_err(|e| RotationError::Crypto { path: path.to_path_buf(), what: e.to_string() })?;
    Ok(format!("{TEMP_PREFIX}{}", hex(&r)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `name` in `dir` (O_EXCL, 0600) for writing.
pub(crate) fn create(dir: impl AsFd, name: &str, path: &Path) -> Result<File> {
    rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map(File::from)
    .map_err(io(path, "creating"))
}

/// Makes `fd` (a file or a directory) and what it holds durable.
pub(crate) fn fsync(fd: impl AsFd, path: &Path) -> Result<()> {
    rfs::fsync(fd).map_err(io(path, "syncing"))
}

/// Renames `from` to `to` in `dir`, replacing `to` atomically.
pub(crate) fn rename_over(dir: impl AsFd, from: &str, to: &str, path: &Path) -> Result<()> {
    let dir = dir.as_fd();
    rfs::renameat(dir, from, dir, to).map_err(io(path, "renaming a temporary over"))
}

/// Renames `from` to `to` in `dir`, never replacing anything. Ok(false): `to` exists.
pub(crate) fn rename_new(dir: impl AsFd, from: &str, to: &str, path: &Path) -> Result<bool> {
    let dir = dir.as_fd();
    match rfs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) => Ok(false),
        Err(e) => Err(io(path, "renaming")(e)),
    }
}

/// Hard-links `from_name` of `from` as `to_name` in `to`.
pub(crate) fn link(from: impl AsFd, from_name: &str, to: impl AsFd, to_name: &str, path: &Path) -> Result<()> {
    rfs::linkat(from, from_name, to, to_name, AtFlags::empty()).map_err(io(path, "hard-linking the new copy as"))
}

/// Removes a non-directory entry; a missing one is not an error.
pub(crate) fn unlink(dir: impl AsFd, name: &str, path: &Path) -> Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io(path, "removing")(e)),
    }
}

pub(crate) fn rmdir(dir: impl AsFd, name: &str, path: &Path) -> Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io(path, "removing directory")(e)),
    }
}

pub(crate) fn mkdir(dir: impl AsFd, name: &str, path: &Path) -> Result<()> {
    match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(io(path, "creating directory")(e)),
    }
}

pub(crate) fn readlink(dir: impl AsFd, name: &str, path: &Path) -> Result<Vec<u8>> {
    rfs::readlinkat(dir, name, Vec::new()).map(|c| c.into_bytes()).map_err(io(path, "reading the link target of"))
}

pub(crate) fn symlink(target: &str, dir: impl AsFd, name: &str, path: &Path) -> Result<()> {
    rfs::symlinkat(target, dir, name).map_err(io(path, "creating symlink"))
}

/// Gives `name` in `dir` (not following a symlink) the owner and times of `m`.
pub(crate) fn set_owner_and_times_at(dir: impl AsFd, name: &str, m: &Meta, path: &Path) -> Result<()> {
    let dir = dir.as_fd();
    let (uid, gid) = (rfs::Uid::from_raw(m.uid), rfs::Gid::from_raw(m.gid));
    rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW).map_err(io(path, "changing owner of"))?;
    set_times_at(dir, name, m, path)
}

pub(crate) fn set_times_at(dir: impl AsFd, name: &str, m: &Meta, path: &Path) -> Result<()> {
    rfs::utimensat(dir, name, &m.timestamps(), AtFlags::SYMLINK_NOFOLLOW).map_err(io(path, "setting times of"))
}

/// Gives `f` the owner and then the mode of `m` (in that order: a change of
/// owner clears the set-user-ID and set-group-ID bits).
pub(crate) fn set_owner_and_mode(f: impl AsFd, m: &Meta, path: &Path) -> Result<()> {
    let f = f.as_fd();
    let (uid, gid) = (rfs::Uid::from_raw(m.uid), rfs::Gid::from_raw(m.gid));
    rfs::fchown(f, Some(uid), Some(gid)).map_err(io(path, "changing owner of"))?;
    rfs::fchmod(f, Mode::from_raw_mode(m.mode & 0o7777)).map_err(io(path, "changing mode of"))
}

pub(crate) fn set_times(f: impl AsFd, times: &Timestamps, path: &Path) -> Result<()> {
    rfs::futimens(f, times).map_err(io(path, "setting times of"))
}

/// Where data starts at or after `off`; None past the last data.
pub(crate) fn seek_data(f: impl AsFd, off: u64, path: &Path) -> Result<Option<u64>> {
    match rfs::seek(f, SeekFrom::Data(off)) {
        Ok(at) => Ok(Some(at)),
        Err(Errno::NXIO) => Ok(None),
        Err(e) => Err(io(path, "looking for data in")(e)),
    }
}

/// Where the hole after `off` starts (the end of file if none).
pub(crate) fn seek_hole(f: impl AsFd, off: u64, path: &Path) -> Result<u64> {
    rfs::seek(f, SeekFrom::Hole(off)).map_err(io(path, "looking for holes in"))
}

/// `pread` until `buf` is full or end of file; the rest is zeroed (reads as
/// holes). Returns the bytes read.
pub(crate) fn read_full(f: &File, buf: &mut [u8], mut off: u64, path: &Path) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(std_io(path, "reading")(e)),
        }
    }
    buf[done..].fill(0);
    Ok(done)
}

pub(crate) fn write_at(f: &File, buf: &[u8], off: u64, path: &Path) -> Result<()> {
    f.write_all_at(buf, off).map_err(std_io(path, "writing"))
}

pub(crate) fn set_len(f: &File, len: u64, path: &Path) -> Result<()> {
    f.set_len(len).map_err(std_io(path, "setting the length of"))
}

/// The names of the extended attributes of `fd` (none where the filesystem
/// has no xattrs).
pub(crate) fn xattr_names(fd: impl AsFd, path: &Path) -> Result<Vec<Vec<u8>>> {
    let fd = fd.as_fd();
    loop {
        let len = match rfs::flistxattr_query(fd) {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(io(path, "listing the xattrs of")(e)),
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; len];
        match rfs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf.split(|&b| b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect());
            }
            Err(Errno::RANGE) => continue, // grew in between
            Err(e) => return Err(io(path, "listing the xattrs of")(e)),
        }
    }
}

/// The value of xattr `name` of `fd`; None if it has none by that name or
/// the filesystem has no xattrs.
pub(crate) fn xattr_get(fd: impl AsFd, name: &[u8], path: &Path) -> Result<Option<Vec<u8>>> {
    let fd = fd.as_fd();
    loop {
        let len = match rfs::fgetxattr_query(fd, name) {
            Ok(n) => n,
            Err(Errno::NODATA | Errno::OPNOTSUPP) => return Ok(None),
            Err(e) => return Err(io(path, "reading an xattr of")(e)),
        };
        let mut buf = vec![0u8; len];
        if len == 0 {
            return Ok(Some(buf));
        }
        match rfs::fgetxattr(fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(io(path, "reading an xattr of")(e)),
        }
    }
}

/// Sets xattr `name` of `fd`, creating or replacing it. Ok(false): the
/// filesystem has no such xattrs.
pub(crate) fn xattr_set(fd: impl AsFd, name: &[u8], value: &[u8], path: &Path) -> Result<bool> {
    match rfs::fsetxattr(fd, name, value, XattrFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::OPNOTSUPP) => Ok(false),
        Err(e) => Err(io(path, "setting an xattr of")(e)),
    }
}

/// Removes xattr `name` of `fd`; a missing one is not an error.
pub(crate) fn xattr_remove(fd: impl AsFd, name: &[u8], path: &Path) -> Result<()> {
    match rfs::fremovexattr(fd, name) {
        Ok(()) | Err(Errno::NODATA) => Ok(()),
        Err(e) => Err(io(path, "removing an xattr of")(e)),
    }
}

/// Opens the data directory itself (a path given by the caller).
pub(crate) fn open_root(path: &Path) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rfs::openat(rfs::CWD, path, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rfs::openat(rfs::CWD, path, flags, Mode::empty()),
        r => r,
    }
    .map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR => {
            RotationError::NotADataDirectory { path: path.to_path_buf(), what: format!("it cannot be opened ({e})") }
        }
        e => io(path, "opening directory")(e),
    })
}

/// The ID of the backing directory `fd` (at `path`), from its `.dirid`.
pub(crate) fn dir_id(fd: impl AsFd, path: &Path, is_root: bool) -> Result<[u8; crate::names::DIRID_LEN]> {
    use crate::names::{DIRID_FILE, DIRID_LEN};
    let fd = fd.as_fd();
    let p = path.join(DIRID_FILE);
    let damaged = |what: String| {
        if is_root {
            RotationError::NotADataDirectory { path: path.to_path_buf(), what }
        } else {
            RotationError::Damaged { path: path.to_path_buf(), what: format!("{what}: its entries cannot be named") }
        }
    };
    if stat_at(fd, DIRID_FILE, &p)?.is_none_or(|m| m.kind() != Kind::File) {
        return Err(damaged(format!("it has no {DIRID_FILE} file")));
    }
    let f = open_file(fd, DIRID_FILE, &p)?;
    let mut buf = [0u8; DIRID_LEN + 1];
    let n = read_full(&f, &mut buf, 0, &p)?;
    if n != DIRID_LEN {
        return Err(damaged(format!("its {DIRID_FILE} holds {n} bytes, not {DIRID_LEN}")));
    }
    let mut id = [0u8; DIRID_LEN];
    id.copy_from_slice(&buf[..DIRID_LEN]);
    Ok(id)
}

/// Sets the permission bits of `f`.
pub(crate) fn set_mode(f: impl AsFd, mode: u32, path: &Path) -> Result<()> {
    rfs::fchmod(f, Mode::from_raw_mode(mode & 0o7777)).map_err(io(path, "changing mode of"))
}

/// Reads a small file `name` of `dir` (a long name's side file) as text;
/// None if it is missing or not UTF-8.
pub(crate) fn read_small_text(dir: impl AsFd, name: &str, path: &Path) -> Result<Option<String>> {
    let f = match open_noatime(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io(path, "opening")(e)),
    };
    let mut buf = vec![0u8; 4096];
    let n = read_full(&f, &mut buf, 0, path)?;
    buf.truncate(n);
    Ok(String::from_utf8(buf).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_housekeeping_names_and_distinct() {
        let t = temp_name(Path::new("/")).unwrap();
        assert!(t.starts_with(TEMP_PREFIX) && t.len() == TEMP_PREFIX.len() + 24);
        assert_eq!(crate::names::classify(&t), crate::names::EntryKind::Internal);
        assert_ne!(t, temp_name(Path::new("/")).unwrap());
        assert!(!super::super::staging::STAGING_DIR.starts_with(TEMP_PREFIX));
    }
}
