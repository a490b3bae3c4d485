//! Attributes and metadata: getattr, setattr, readlink, statfs, xattrs.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags, fchmodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};

use callvault::names;

use super::data::SideEffect;
use super::inode::{Kind, lock};
use callvault::policy::Right;

use super::paths::VolPath;
use super::{Attr, Caller, SetAttr, SetTime, Vault, proc_path};
use crate::sys;

/// Filesystem statistics, as statfs reports them.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

fn timespec(t: Option<SetTime>) -> TimeSpec {
    match t {
        None => TimeSpec::UTIME_OMIT,
        Some(SetTime::Now) => TimeSpec::UTIME_NOW,
        Some(SetTime::At(t)) => {
            let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            TimeSpec::new(d.as_secs() as i64, d.subsec_nanos() as i64)
        }
    }
}

/// Only the `user.` namespace is stored (encrypted); other namespaces are
/// refused on write and absent on read, as on a filesystem without them.
fn user_name(name: &[u8]) -> Option<&[u8]> {
    name.strip_prefix(b"user.").filter(|rest| !rest.is_empty())
}

impl Vault {
    /// `fstat` on an open handle (`fh`) needs no right beyond the handle's own.
    pub fn getattr(&self, ino: u64, fh: Option<u64>, who: &Caller) -> Result<Attr, Errno> {
        // Directories can be stat'ed like they can be traversed (see lookup).
        // A user may always fstat what it holds open, even after a reload
        // took its `list` right away.
        let is_dir = self.inodes.get(ino).is_some_and(|i| i.kind == Kind::Dir);
        if !is_dir && fh.is_none_or(|fh| self.handle(fh).is_err()) {
            let path = self.path_of(ino)?;
            if self.access.check(who, &path.text, Right::List).is_err() && !self.holds_open(ino, who.uid) {
                self.allow_path(who, "getattr", &path, Right::List)?;
            }
        }
        self.attr(ino)
    }

    /// Attributes without a rights check (after an operation already checked).
    fn attr(&self, ino: u64) -> Result<Attr, Errno> {
        let inode = self.inode(ino)?;
        let st = self.stat(&inode)?;
        Ok(self.attr_of(&inode, &st))
    }

    /// The rights a setattr needs on `path`: a size change needs `write` (or
    /// a handle opened for writing); any other change needs `setattr`.
    pub(super) fn check_setattr(
        &self,
        ch: &SetAttr,
        path: &VolPath,
        side_effect: Option<SideEffect>,
        who: &Caller,
    ) -> Result<(), Errno> {
        // Size and modification time belong to the contents: `write` (or a
        // handle opened for writing) covers them. The kernel also sends the
        // mtime it keeps for written data this way. Everything else needs
        // `setattr`.
        let changes_meta = ch.mode.is_some() || ch.uid.is_some() || ch.gid.is_some() || ch.atime.is_some();
        let changes_contents = ch.size.is_some() || ch.mtime.is_some();
        if changes_meta {
            self.allow_path(who, "setattr", path, Right::Setattr)?;
        }
        if changes_contents && side_effect.is_none() {
            let op = if ch.size.is_some() { "truncate" } else { "setattr" };
            self.allow_path(who, op, path, Right::Write)?;
        }
        Ok(())
    }

    /// Applies a setattr whose rights were checked (or that needs none: a
    /// side effect of a recorded write or unlink).
    pub(super) fn do_setattr(
        &self,
        ino: u64,
        ch: SetAttr,
        fh: Option<u64>,
        side_effect: Option<SideEffect>,
        _who: &Caller,
    ) -> Result<Attr, Errno> {
        let inode = self.inode(ino)?;
        let any = ch.mode.is_some() || ch.uid.is_some() || ch.gid.is_some() || ch.size.is_some();
        if any || ch.atime.is_some() || ch.mtime.is_some() {
            self.writable()?;
        }
        if let Some(size) = ch.size {
            if inode.kind != Kind::File {
                return Err(if inode.kind == Kind::Dir { Errno::EISDIR } else { Errno::EINVAL });
            }
            let file = self.file_for_setattr(&inode, fh)?;
            self.dtmf_reset(ino, &file)?;
            file.truncate(size, &self.keys)?;
        }
        if let Some(mode) = ch.mode {
            if inode.kind == Kind::Symlink {
                return Err(Errno::EOPNOTSUPP);
            }
            fchmodat(
                nix::fcntl::AT_FDCWD,
                proc_path(&inode.fd()?).as_str(),
                Mode::from_bits_truncate(mode & 0o7777),
                FchmodatFlags::FollowSymlink,
            )?;
        }
        if ch.uid.is_some() || ch.gid.is_some() {
            fchownat(
                &inode.fd()?,
                "",
                ch.uid.map(Uid::from_raw),
                ch.gid.map(Gid::from_raw),
                AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        if ch.atime.is_some() || ch.mtime.is_some() {
            if side_effect == Some(SideEffect::OfUnlink) && lock(&inode.open).upgrade().is_none() {
                // The kernel flushing the times of a file it just unlinked:
                // nothing can open it any more, so there is nothing to store.
                let mut attr = self.attr(ino)?;
                match ch.mtime {
                    Some(SetTime::At(t)) => attr.mtime = t,
                    Some(SetTime::Now) => attr.mtime = std::time::SystemTime::now(),
                    None => {}
                }
                return Ok(attr);
            }
            // A size still to be written to the header would move mtime later.
            if let Some(open) = lock(&inode.open).upgrade() {
                open.flush(&self.keys)?;
            }
            let (a, m) = (timespec(ch.atime), timespec(ch.mtime));
            if inode.kind == Kind::Symlink {
                let loc = inode.location();
                let p = self.dir_inode(loc.parent)?;
                let bn = self.backing_name(&p, &loc.name)?;
                utimensat(&p.fd()?, bn.entry(), &a, &m, UtimensatFlags::NoFollowSymlink)?;
            } else {
                utimensat(
                    nix::fcntl::AT_FDCWD,
                    proc_path(&inode.fd()?).as_str(),
                    &a,
                    &m,
                    UtimensatFlags::FollowSymlink,
                )?;
            }
        }
        self.attr(ino)
    }

    pub fn readlink(&self, ino: u64, who: &Caller) -> Result<Vec<u8>, Errno> {
        self.allow(who, "readlink", ino, Right::List)?;
        let inode = self.inode(ino)?;
        if inode.kind != Kind::Symlink {
            return Err(Errno::EINVAL);
        }
        let stored = nix::fcntl::readlinkat(&inode.fd()?, "")?;
        use std::os::unix::ffi::OsStrExt;
        names::decrypt_link_target(&self.keys.link_targets, stored.as_bytes()).map_err(|e| {
            log::error!("inode {ino}: {e}");
            Errno::EIO
        })
    }

    pub fn statfs(&self) -> Result<Stats, Errno> {
        let root = self.inode(super::inode::ROOT)?;
        let s = nix::sys::statvfs::fstatvfs(&root.fd()?)?;
        Ok(Stats {
            blocks: s.blocks(),
            bfree: s.blocks_free(),
            bavail: s.blocks_available(),
            files: s.files(),
            ffree: s.files_free(),
            bsize: s.block_size() as u32,
            namelen: names::NAME_MAX as u32,
            frsize: s.fragment_size() as u32,
        })
    }

    /// The `/proc/self/fd` path of an inode's descriptor for the xattr
    /// calls, with the descriptor it names: keep it until the call is done.
    fn xattr_path(&self, ino: u64) -> Result<(String, Kind, Arc<OwnedFd>), Errno> {
        let inode = self.inode(ino)?;
        let fd = inode.fd()?;
        Ok((proc_path(&fd), inode.kind, fd))
    }

    pub(super) fn do_setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> Result<(), Errno> {
        let rest = user_name(name).ok_or(Errno::EOPNOTSUPP)?;
        let (path, kind, _fd) = self.xattr_path(ino)?;
        if kind == Kind::Symlink {
            return Err(Errno::EPERM);
        }
        let bname = names::encrypt_xattr_name(&self.keys.xattrs, rest).map_err(|_| Errno::EIO)?;
        if bname.len() > 255 {
            return Err(Errno::ERANGE);
        }
        let sealed = names::seal_random(&self.keys.xattrs, bname.as_bytes(), value).map_err(|_| Errno::EIO)?;
        sys::set_xattr(&path, &bname, &sealed, flags)
    }

    pub fn getxattr(&self, ino: u64, name: &[u8], who: &Caller) -> Result<Vec<u8>, Errno> {
        if name == super::blackout::XATTR {
            return self.blackout_status(ino, who);
        }
        self.allow(who, "getxattr", ino, Right::List)?;
        let Some(rest) = user_name(name) else {
            return Err(Errno::ENODATA);
        };
        let (path, kind, _fd) = self.xattr_path(ino)?;
        if kind == Kind::Symlink {
            return Err(Errno::ENODATA);
        }
        let bname = names::encrypt_xattr_name(&self.keys.xattrs, rest).map_err(|_| Errno::EIO)?;
        let sealed = sys::get_xattr(&path, &bname)?;
        names::open_random(&self.keys.xattrs, bname.as_bytes(), &sealed).map_err(|e| {
            log::error!("inode {ino}: xattr: {e}");
            Errno::EIO
        })
    }

    /// Names of the `user.` attributes, each NUL-terminated.
    pub fn listxattr(&self, ino: u64, who: &Caller) -> Result<Vec<u8>, Errno> {
        self.allow(who, "listxattr", ino, Right::List)?;
        let (path, kind, _fd) = self.xattr_path(ino)?;
        if kind == Kind::Symlink {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for bname in sys::list_xattr(&path)? {
            let Ok(s) = std::str::from_utf8(&bname) else {
                continue;
            };
            if let Some(plain) = names::decrypt_xattr_name(&self.keys.xattrs, s) {
                out.extend_from_slice(b"user.");
                out.extend_from_slice(&plain);
                out.push(0);
            }
        }
        Ok(out)
    }

    pub(super) fn do_removexattr(&self, ino: u64, name: &[u8]) -> Result<(), Errno> {
        let Some(rest) = user_name(name) else {
            return Err(Errno::ENODATA);
        };
        let (path, _, _fd) = self.xattr_path(ino)?;
        let bname = names::encrypt_xattr_name(&self.keys.xattrs, rest).map_err(|_| Errno::EIO)?;
        sys::remove_xattr(&path, &bname)
    }
}
