//! The operations PCI DSS 10.2 asks to trace, each recorded in the audit
//! journal, failing closed.
//!
//! Every operation that changes something goes the same way: take the
//! namespace lock, resolve the true path, check the caller's rights on it
//! (a denial is recorded), record the *intent* durably, take effect, record
//! the outcome. If the intent cannot be recorded nothing changes (EIO). If
//! the outcome cannot be recorded the caller gets EIO and the intent stays on
//! record; the next mount writes what it finds for intents left without an
//! outcome (a crash between the two). An attempt refused before its intent
//! (read-only volume, a path too deep to name, a missing directory) is
//! recorded once, with its error. Operations with no effect to come (open
//! without O_TRUNC, close) are recorded once, before their result returns.

use callvault::journal::{Detail, EventKind};
use callvault::layout::Layout;
use callvault::policy::Right;
use nix::errno::Errno;
use nix::fcntl::RenameFlags;
use nix::sys::stat::SFlag;

use super::audit::{access_name, flag_names};
use super::data::access_of;
use super::namespace::At;
use super::paths::VolPath;
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

/// One name operation, as `Vault::on_name` runs it.
struct NameOp<'a> {
    kind: EventKind,
    /// The operation's name in a denial record.
    op: &'a str,
    rights: &'a [Right],
    detail: Detail,
}

impl Vault {
    /// An attempt refused before anything was recorded as intended: one
    /// record with its error, then the error.
    fn refused<T>(&self, who: &Caller, kind: EventKind, path: Option<&VolPath>, e: Errno) -> Result<T, Errno> {
        self.audit.log(who, kind, &Err::<(), _>(e), path, None, Detail::default())?;
        Err(e)
    }

    /// Resolves `name` in `parent` for a change: a writable volume and a
    /// nameable path, or the refusal recorded.
    fn at_for_change(&self, who: &Caller, kind: EventKind, parent: u64, name: &[u8]) -> Result<At, Errno> {
        match self.writable().and_then(|()| self.at(parent, name)) {
            Ok(at) => Ok(at),
            Err(e) => {
                let path = self.child_path(parent, name).ok();
                self.refused(who, kind, path.as_ref(), e)
            }
        }
    }

    /// Runs a change of one name with the namespace lock held (the caller
    /// takes it): resolve, rights, intent, `effect`, outcome.
    fn on_name<T>(
        &self,
        who: &Caller,
        parent: u64,
        name: &[u8],
        op: NameOp<'_>,
        effect: impl FnOnce(&At) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let at = self.at_for_change(who, op.kind, parent, name)?;
        for &right in op.rights {
            self.allow_path(who, op.op, &at.path, right)?;
        }
        let intent = self.audit.intend(who, op.kind, Some(&at.path), None, op.detail)?;
        let r = effect(&at);
        self.audit.finish(intent, &r)?;
        r
    }

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
        let ns = self.names_shared();
        let at = self.at_for_change(who, EventKind::Create, parent, name)?;
        let exists = match self.existing(&at) {
            Ok(st) => st.is_some(),
            Err(e) => return self.refused(who, EventKind::Create, Some(&at.path), e),
        };
        if exists && flags & libc::O_EXCL == 0 {
            drop(ns);
            return self.open_existing(parent, name, flags, who);
        }
        let (readable, writable) = access_of(flags);
        let rights: &[Right] = if readable { &[Right::Create, Right::Read] } else { &[Right::Create] };
        for &right in rights {
            self.allow_path(who, "create", &at.path, right)?;
        }
        let detail = Detail {
            flags: Some(flag_names(flags)),
            access: Some(access_name(readable, writable).into()),
            mode: octal(mode & !umask),
            ..Detail::default()
        };
        let actor = self.audit.actor_of(who);
        let mut intent = self.audit.intend_as(actor.clone(), EventKind::Create, Some(&at.path), None, detail)?;
        let r = if exists { Err(Errno::EEXIST) } else { self.do_create(&at, mode, umask, flags, who, actor) };
        if let Ok((_, fh)) = &r {
            intent.set_fh(*fh);
        }
        if let Err(e) = self.audit.finish(intent, &r) {
            if let Ok((a, fh)) = r {
                let _ = self.do_release(fh);
                self.forget(a.ino, 1);
            }
            return Err(e);
        }
        match r {
            // Another creator won the name between our look and our create.
            Err(Errno::EEXIST) if flags & libc::O_EXCL == 0 => {
                drop(ns);
                self.open_existing(parent, name, flags, who)
            }
            r => r,
        }
    }

    /// `open(O_CREAT)` of a name that exists: a lookup and an open.
    fn open_existing(&self, parent: u64, name: &[u8], flags: i32, who: &Caller) -> Result<(Attr, u64), Errno> {
        let attr = self.lookup(parent, name, who)?;
        let fh = self.open(attr.ino, flags & !libc::O_CREAT, who).inspect_err(|_| self.forget(attr.ino, 1))?;
        Ok((self.getattr(attr.ino, Some(fh), who)?, fh))
    }

    /// Opens a handle, recorded as `open`. With O_TRUNC on a writable handle
    /// the open record is the truncation's intent, and its outcome follows.
    pub fn open(&self, ino: u64, flags: i32, who: &Caller) -> Result<u64, Errno> {
        let _ns = self.names_shared();
        let (readable, writable) = access_of(flags);
        let path = match self.path_of(ino) {
            Ok(p) => p,
            Err(e) => return self.refused(who, EventKind::Open, None, e),
        };
        let actor = self.audit.actor_of(who);
        let r = self.do_open(ino, &path, flags, who, actor.clone());
        let mut detail = Detail {
            flags: Some(flag_names(flags)),
            access: Some(access_name(readable, writable).into()),
            fh: r.as_ref().ok().copied(),
            ..Detail::default()
        };
        let truncating = writable && flags & libc::O_TRUNC != 0;
        let fh = match r {
            Ok(fh) if truncating => fh,
            r => {
                if let Err(e) = self.audit.log_as(actor, EventKind::Open, &r, Some(&path), None, detail) {
                    if let Ok(fh) = r {
                        let _ = self.do_release(fh);
                    }
                    return Err(e);
                }
                return r;
            }
        };
        detail.fh = Some(fh);
        let intent = match self.audit.intend_as(actor, EventKind::Open, Some(&path), None, detail) {
            Ok(i) => i,
            Err(e) => {
                let _ = self.do_release(fh);
                return Err(e);
            }
        };
        let t = self
            .handle(fh)
            .and_then(|h| self.dtmf_reset(h.ino, &h.file).and_then(|()| h.file.truncate(0, &self.keys)))
            .map(|()| fh);
        let recorded = self.audit.finish(intent, &t);
        if let Err(e) = recorded.and(t) {
            let _ = self.do_release(fh);
            return Err(e);
        }
        Ok(fh)
    }

    /// The last descriptor of a handle closed: recorded with the bytes that
    /// went through it, as the process that opened it, and with the outcome
    /// of writing its size to the header (a failure is recorded too).
    pub fn release(&self, fh: u64) -> Result<(), Errno> {
        let h = self.take_handle(fh)?;
        if h.writable {
            self.dtmf_on_release(h.ino, &h.file);
        }
        let r = h.file.flush(&self.keys);
        // A handle that wrote seals what the file now holds (format 3).
        let sealed = match (&r, h.writable) {
            (Ok(()), true) => h.file.seal().unwrap_or_else(|e| {
                log::error!("inode {}: the close record carries no seal: the tags could not be read ({e})", h.ino);
                None
            }),
            _ => None,
        };
        let detail = Detail {
            contents_seal: sealed.map(|(s, _)| s.to_hex()),
            sealed_size: sealed.map(|(_, size)| size),
            fh: Some(fh),
            bytes_read: Some(h.bytes_read.load(std::sync::atomic::Ordering::Relaxed)),
            bytes_written: Some(h.bytes_written.load(std::sync::atomic::Ordering::Relaxed)),
            access: Some(access_name(h.readable, h.writable).into()),
            ..Detail::default()
        };
        self.audit.log_as(h.opener_actor.clone(), EventKind::Close, &r, Some(&h.path), None, detail)?;
        if h.writable {
            self.blackout_on_release(h.ino, h.opener_actor.clone());
        }
        r
    }

    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, umask: u32, who: &Caller) -> Result<Attr, Errno> {
        let _ns = self.names_shared();
        let detail = Detail { mode: octal(mode & !umask), ..Detail::default() };
        let op = NameOp { kind: EventKind::Mkdir, op: "mkdir", rights: &[Right::Create], detail };
        self.on_name(who, parent, name, op, |at| self.do_mkdir(at, mode, umask, who))
    }

    /// Regular files go through create (and are closed at once); named pipes
    /// and sockets are recorded as `create` too; device nodes are refused.
    pub fn mknod(&self, parent: u64, name: &[u8], mode: u32, umask: u32, who: &Caller) -> Result<Attr, Errno> {
        let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFREG || kind.is_empty() {
            let (attr, fh) = self.create(parent, name, mode, umask, libc::O_EXCL | libc::O_WRONLY, who)?;
            self.release(fh)?;
            return Ok(attr);
        }
        let _ns = self.names_shared();
        if kind != SFlag::S_IFIFO && kind != SFlag::S_IFSOCK {
            let path = self.child_path(parent, name).ok();
            return self.refused(who, EventKind::Create, path.as_ref(), Errno::EPERM);
        }
        let detail = Detail { mode: octal(mode & !umask), ..Detail::default() };
        let op = NameOp { kind: EventKind::Create, op: "mknod", rights: &[Right::Create], detail };
        self.on_name(who, parent, name, op, |at| self.do_mknod(at, kind, mode, umask, who))
    }

    pub fn symlink(&self, parent: u64, name: &[u8], target: &[u8], who: &Caller) -> Result<Attr, Errno> {
        let _ns = self.names_shared();
        let op =
            NameOp { kind: EventKind::Symlink, op: "symlink", rights: &[Right::Create], detail: Detail::default() };
        self.on_name(who, parent, name, op, |at| self.do_symlink(at, target, who))
    }

    pub fn unlink(&self, parent: u64, name: &[u8], who: &Caller) -> Result<(), Errno> {
        let _ns = self.names_shared();
        let op = NameOp { kind: EventKind::Unlink, op: "unlink", rights: &[Right::Delete], detail: Detail::default() };
        self.on_name(who, parent, name, op, |at| self.do_unlink(at))
    }

    pub fn rmdir(&self, parent: u64, name: &[u8], who: &Caller) -> Result<(), Errno> {
        let _ns = self.names_exclusive();
        let op = NameOp { kind: EventKind::Rmdir, op: "rmdir", rights: &[Right::Delete], detail: Detail::default() };
        self.on_name(who, parent, name, op, |at| self.do_rmdir(at))
    }

    /// Needs `rename` on both names, and `delete` on a file it replaces (a
    /// rename over a recording destroys it, like an unlink).
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
        who: &Caller,
    ) -> Result<(), Errno> {
        let _ns = self.names_exclusive();
        let kind = EventKind::Rename;
        let from = self.at_for_change(who, kind, parent, name)?;
        let to = match self.at(newparent, newname) {
            Ok(to) => to,
            Err(e) => return self.refused(who, kind, Some(&from.path), e),
        };
        let Some(rflags) = RenameFlags::from_bits(flags) else {
            return self.refused(who, kind, Some(&from.path), Errno::EINVAL);
        };
        self.allow_path(who, "rename", &from.path, Right::Rename)?;
        self.allow_path(who, "rename", &to.path, Right::Rename)?;
        let replaced = match (self.existing(&from), self.existing(&to)) {
            (Ok(Some(src)), Ok(Some(dst))) => src.st_ino != dst.st_ino,
            (Ok(_), Ok(_)) => false,
            (Err(e), _) | (_, Err(e)) => return self.refused(who, kind, Some(&from.path), e),
        };
        if replaced && !rflags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_NOREPLACE) {
            self.allow_path(who, "rename", &to.path, Right::Delete)?;
        }
        let detail = Detail { flags: (flags != 0).then(|| format!("{flags:#x}")), ..Detail::default() };
        let intent = self.audit.intend(who, kind, Some(&from.path), Some(&to.path), detail)?;
        let r = self.do_rename(&from, &to, rflags);
        self.audit.finish(intent, &r)?;
        r
    }

    /// Recorded with the new name as path and the existing one as path2.
    ///
    /// Under a policy, hard links are refused (EPERM): rights are judged by
    /// path, and a file with two names could be read under a grant meant for
    /// either. A recording has one name. With `--allow-all` they work.
    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8], who: &Caller) -> Result<Attr, Errno> {
        let _ns = self.names_shared();
        let kind = EventKind::Link;
        let to = self.at_for_change(who, kind, newparent, newname)?;
        let (inode, existing) = match self.inode(ino).and_then(|i| Ok((i, self.path_of(ino)?))) {
            Ok(v) => v,
            Err(e) => return self.refused(who, kind, Some(&to.path), e),
        };
        let refusal = if self.enforcing() {
            Some("hard links are refused under an access policy")
        } else if self.layout == Layout::Tagged && inode.kind == super::Kind::File {
            // Its header names the one entry it belongs to (docs/FORMAT.md).
            Some("a file on a format-3 volume is bound to its one name: hard links are refused")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.audit.log(
                who,
                kind,
                &Err::<(), _>(Errno::EPERM),
                Some(&to.path),
                Some(&existing),
                Detail { reason: Some(reason.into()), ..Detail::default() },
            )?;
            return Err(Errno::EPERM);
        }
        let intent = self.audit.intend(who, kind, Some(&to.path), Some(&existing), Detail::default())?;
        let r = self.do_link(&inode, &to);
        self.audit.finish(intent, &r)?;
        r
    }

    /// A size change is recorded as `truncate`, anything else as `setattr`
    /// with what changed; each as an intent before it takes effect.
    pub fn setattr(&self, ino: u64, ch: SetAttr, fh: Option<u64>, who: &Caller) -> Result<Attr, Errno> {
        let _ns = self.names_shared();
        let side_effect = self.side_effect_of(ino, &ch, fh, who);
        let changed = describe_changes(&ch);
        // Timestamps the kernel moves after recorded writes or unlinks are not accesses.
        let records_setattr = !changed.is_empty() && side_effect.is_none();
        if ch.size.is_none() && !records_setattr {
            return self.do_setattr(ino, ch, fh, side_effect, who);
        }
        let path = match self.path_of(ino) {
            Ok(p) => p,
            Err(e) => return self.refused(who, EventKind::Setattr, None, e),
        };
        if let Err(e) = self.check_setattr(&ch, &path, side_effect, who) {
            if e != Errno::EACCES {
                return self.refused(who, EventKind::Setattr, Some(&path), e);
            }
            return Err(e);
        }
        let mut intents = Vec::new();
        if let Some(size) = ch.size {
            let detail = Detail { size: Some(size), fh, ..Detail::default() };
            intents.push(self.audit.intend(who, EventKind::Truncate, Some(&path), None, detail)?);
        }
        if records_setattr {
            let detail = Detail { changed: Some(changed), ..Detail::default() };
            intents.push(self.audit.intend(who, EventKind::Setattr, Some(&path), None, detail)?);
        }
        let r = self.do_setattr(ino, ch, fh, side_effect, who);
        for intent in intents {
            self.audit.finish(intent, &r)?;
        }
        r
    }

    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32, who: &Caller) -> Result<(), Errno> {
        if name == super::blackout::XATTR {
            return self.blackout_trigger(ino, value, who);
        }
        if name.starts_with(super::blackout::RESERVED_PREFIX) {
            return Err(Errno::EPERM);
        }
        let _ns = self.names_shared();
        let detail = Detail { xattr: Some(String::from_utf8_lossy(name).into_owned()), ..Detail::default() };
        self.on_inode(who, ino, EventKind::Setxattr, "setxattr", detail, || self.do_setxattr(ino, name, value, flags))
    }

    pub fn removexattr(&self, ino: u64, name: &[u8], who: &Caller) -> Result<(), Errno> {
        if name == super::blackout::XATTR {
            // Not an attribute to remove: a blackout ends with `stop`.
            return Err(Errno::EPERM);
        }
        let _ns = self.names_shared();
        let detail = Detail { xattr: Some(String::from_utf8_lossy(name).into_owned()), ..Detail::default() };
        self.on_inode(who, ino, EventKind::Removexattr, "removexattr", detail, || self.do_removexattr(ino, name))
    }

    /// Runs a change of an object's metadata (needing `setattr`) with the
    /// namespace lock held by the caller: path, rights, intent, effect, outcome.
    fn on_inode<T>(
        &self,
        who: &Caller,
        ino: u64,
        kind: EventKind,
        op: &str,
        detail: Detail,
        effect: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let path = match self.writable().and_then(|()| self.path_of(ino)) {
            Ok(p) => p,
            Err(e) => {
                let path = self.path_of(ino).ok();
                return self.refused(who, kind, path.as_ref(), e);
            }
        };
        self.allow_path(who, op, &path, Right::Setattr)?;
        let intent = self.audit.intend(who, kind, Some(&path), None, detail)?;
        let r = effect();
        self.audit.finish(intent, &r)?;
        r
    }
}
