//! The operations PCI DSS 10.2 asks to trace, each recorded in the audit
//! journal with its outcome before the result goes back to the caller.
//!
//! Denials are recorded where rights are checked ([`Vault::allow`]); this
//! file records the operations themselves. A record that cannot be written
//! turns the answer into EIO (an open handle is closed again first).

use callvault::journal::{Detail, EventKind};
use nix::errno::Errno;
use nix::sys::stat::SFlag;

use super::audit::{access_name, flag_names};
use super::data::access_of;
use super::{Attr, Caller, SetAttr, SetTime, Vault};

fn octal(mode: u32) -> Option<String> {
    Some(format!("{:04o}", mode & 0o7777))
}

fn describe_changes(ch: &SetAttr) -> Vec<String> {
    let mut c = Vec::new();
    if let Some(m) = ch.mode {
        c.push(format!("mode={:04o}", m & 0o7777));
    }
    if let Some(u) = ch.uid {
        c.push(format!("uid={u}"));
    }
    if let Some(g) = ch.gid {
        c.push(format!("gid={g}"));
    }
    for (name, t) in [("atime", ch.atime), ("mtime", ch.mtime)] {
        match t {
            Some(SetTime::Now) => c.push(format!("{name}=now")),
            Some(SetTime::At(t)) => {
                let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                c.push(format!("{name}={}.{:09}", d.as_secs(), d.subsec_nanos()));
            }
            None => {}
        }
    }
    c
}

impl Vault {
    /// Creates and opens a file; recorded as `create` (or as `open` when
    /// the name already existed and O_EXCL was not asked for).
    pub fn create(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        flags: i32,
        who: &Caller,
    ) -> Result<(Attr, u64), Errno> {
        let path = self.child_path(parent, name);
        let r = self.do_create(parent, name, mode, umask, flags, who);
        let (readable, writable) = access_of(flags);
        let kind = match &r {
            Ok((_, _, false)) => EventKind::Open,
            _ => EventKind::Create,
        };
        let detail = Detail {
            flags: Some(flag_names(flags)),
            access: Some(access_name(readable, writable).into()),
            mode: octal(mode & !umask),
            fh: r.as_ref().ok().map(|(_, fh, _)| *fh),
            ..Detail::default()
        };
        if let Err(e) = self.audit.log(who, kind, &r, Some(path), None, detail) {
            if let Ok((a, fh, _)) = r {
                let _ = self.do_release(fh);
                self.forget(a.ino, 1);
            }
            return Err(e);
        }
        r.map(|(a, fh, _)| (a, fh))
    }

    pub fn open(&self, ino: u64, flags: i32, who: &Caller) -> Result<u64, Errno> {
        let r = self.do_open(ino, flags, who);
        let (readable, writable) = access_of(flags);
        let detail = Detail {
            flags: Some(flag_names(flags)),
            access: Some(access_name(readable, writable).into()),
            fh: r.as_ref().ok().copied(),
            ..Detail::default()
        };
        if let Err(e) = self.audit.log(who, EventKind::Open, &r, Some(self.path_of(ino)), None, detail) {
            if let Ok(fh) = r {
                let _ = self.do_release(fh);
            }
            return Err(e);
        }
        r
    }

    /// The last descriptor of a handle closed: recorded with the bytes that
    /// went through it, as the process that opened it.
    pub fn release(&self, fh: u64) -> Result<(), Errno> {
        let h = self.do_release(fh)?;
        let detail = Detail {
            fh: Some(fh),
            bytes_read: Some(h.bytes_read.load(std::sync::atomic::Ordering::Relaxed)),
            bytes_written: Some(h.bytes_written.load(std::sync::atomic::Ordering::Relaxed)),
            access: Some(access_name(h.readable, h.writable).into()),
            ..Detail::default()
        };
        self.audit.log(&h.opener, EventKind::Close, &Ok::<(), Errno>(()), Some(h.path.clone()), None, detail)
    }

    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, umask: u32, who: &Caller) -> Result<Attr, Errno> {
        let path = self.child_path(parent, name);
        let r = self.do_mkdir(parent, name, mode, umask, who);
        let detail = Detail { mode: octal(mode & !umask), ..Detail::default() };
        self.audit.log(who, EventKind::Mkdir, &r, Some(path), None, detail)?;
        r
    }

    /// Regular files go through create (and are closed at once); named pipes
    /// and sockets are recorded as `create` too.
    pub fn mknod(&self, parent: u64, name: &[u8], mode: u32, umask: u32, who: &Caller) -> Result<Attr, Errno> {
        let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFREG || kind.is_empty() {
            let (attr, fh) = self.create(parent, name, mode, umask, libc::O_EXCL | libc::O_WRONLY, who)?;
            self.release(fh)?;
            return Ok(attr);
        }
        let path = self.child_path(parent, name);
        let r = self.do_mknod(parent, name, mode, umask, who);
        let detail = Detail { mode: octal(mode & !umask), ..Detail::default() };
        self.audit.log(who, EventKind::Create, &r, Some(path), None, detail)?;
        r
    }

    pub fn unlink(&self, parent: u64, name: &[u8], who: &Caller) -> Result<(), Errno> {
        let path = self.child_path(parent, name);
        let r = self.do_unlink(parent, name, who);
        self.audit.log(who, EventKind::Unlink, &r, Some(path), None, Detail::default())?;
        r
    }

    pub fn rmdir(&self, parent: u64, name: &[u8], who: &Caller) -> Result<(), Errno> {
        let path = self.child_path(parent, name);
        let r = self.do_rmdir(parent, name, who);
        self.audit.log(who, EventKind::Rmdir, &r, Some(path), None, Detail::default())?;
        r
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
        who: &Caller,
    ) -> Result<(), Errno> {
        let (from, to) = (self.child_path(parent, name), self.child_path(newparent, newname));
        let r = self.do_rename(parent, name, newparent, newname, flags, who);
        let detail = Detail { flags: (flags != 0).then(|| format!("{flags:#x}")), ..Detail::default() };
        self.audit.log(who, EventKind::Rename, &r, Some(from), Some(to), detail)?;
        r
    }

    /// Recorded with the new name as path and the existing one as path2.
    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8], who: &Caller) -> Result<Attr, Errno> {
        let (existing, new) = (self.path_of(ino), self.child_path(newparent, newname));
        let r = self.do_link(ino, newparent, newname, who);
        self.audit.log(who, EventKind::Link, &r, Some(new), Some(existing), Detail::default())?;
        r
    }

    pub fn symlink(&self, parent: u64, name: &[u8], target: &[u8], who: &Caller) -> Result<Attr, Errno> {
        let path = self.child_path(parent, name);
        let r = self.do_symlink(parent, name, target, who);
        self.audit.log(who, EventKind::Symlink, &r, Some(path), None, Detail::default())?;
        r
    }

    /// A size change is recorded as `truncate`, anything else as `setattr`
    /// with what changed.
    pub fn setattr(&self, ino: u64, ch: SetAttr, fh: Option<u64>, who: &Caller) -> Result<Attr, Errno> {
        let path = self.path_of(ino);
        let side_effect = self.side_effect_of(ino, &ch, fh, who);
        let r = self.do_setattr(ino, ch, fh, side_effect, who);
        if let Some(size) = ch.size {
            let detail = Detail { size: Some(size), fh, ..Detail::default() };
            self.audit.log(who, EventKind::Truncate, &r, Some(path.clone()), None, detail)?;
        }
        let changed = describe_changes(&ch);
        // Timestamps the kernel moves after recorded writes or unlinks are not accesses.
        let covered = r.is_ok() && side_effect.is_some();
        if !changed.is_empty() && !covered {
            let detail = Detail { changed: Some(changed), ..Detail::default() };
            self.audit.log(who, EventKind::Setattr, &r, Some(path), None, detail)?;
        }
        r
    }

    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32, who: &Caller) -> Result<(), Errno> {
        let r = self.do_setxattr(ino, name, value, flags, who);
        let detail = Detail { xattr: Some(String::from_utf8_lossy(name).into_owned()), ..Detail::default() };
        self.audit.log(who, EventKind::Setxattr, &r, Some(self.path_of(ino)), None, detail)?;
        r
    }

    pub fn removexattr(&self, ino: u64, name: &[u8], who: &Caller) -> Result<(), Errno> {
        let r = self.do_removexattr(ino, name, who);
        let detail = Detail { xattr: Some(String::from_utf8_lossy(name).into_owned()), ..Detail::default() };
        self.audit.log(who, EventKind::Removexattr, &r, Some(self.path_of(ino)), None, detail)?;
        r
    }
}
