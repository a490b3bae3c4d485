//! The `fuser::Filesystem` adapter: turns kernel requests into [`Vault`]
//! calls and their results into replies. No filesystem logic lives here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use log::debug;
use nix::errno::Errno;

use crate::triggers::Triggers;
use crate::vault::blackout;
use crate::vault::inode::Kind;
use crate::vault::{Attr, Caller, SetAttr, SetTime, Vault};

/// How long the kernel may cache names and attributes. Every change goes
/// through this daemon, which keeps the kernel's view current.
const TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel sends in one request.
const MAX_WRITE: u32 = 1 << 20;

thread_local! {
    /// Each worker thread's read buffer, reused so a read allocates nothing.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub struct CallvaultFs {
    pub vault: Arc<Vault>,
    /// Blackout triggers go to their own thread (see `triggers.rs`).
    pub triggers: Triggers,
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
    }
}

fn fuse_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid(), pid: req.pid() }
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
    })
}

/// The one error path: a debug line, and the errno for the kernel.
fn fail(op: &str, e: Errno) -> fuser::Errno {
    debug!("{op}: {e}");
    fuser::Errno::from_i32(e as i32)
}

impl CallvaultFs {
    /// (attribute, entry) cache lifetimes. The kernel's caches are shared by
    /// all users, so under a policy nothing but directory names is cached:
    /// every lookup and stat of a file reaches the rights check. With
    /// --allow-all there is nothing to check and both are cached.
    fn ttls(&self, a: &Attr) -> (Duration, Duration) {
        if !self.vault.enforcing() {
            (TTL, TTL)
        } else if a.kind == Kind::Dir {
            (Duration::ZERO, TTL)
        } else {
            (Duration::ZERO, Duration::ZERO)
        }
    }

    fn entry(&self, reply: ReplyEntry, a: &Attr) {
        let (attr_ttl, entry_ttl) = self.ttls(a);
        reply.entry_with_ttls(&attr_ttl, &entry_ttl, &fuse_attr(a), Generation(0));
    }
}

impl Filesystem for CallvaultFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        // The kernel gathers small writes (a recorder's 320-byte frames) into
        // pages and sends them in large requests; rights ride on the handles,
        // since those requests carry no caller (docs/SEMANTICS.md).
        if let Err(e) = config.add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE) {
            log::warn!("the kernel offers no writeback cache ({e:?}); small writes will be slower");
        }
        // This daemon clears set-user/group-ID bits on write itself, so the
        // kernel need not ask for security.capability before every write(2)
        // (one request per write otherwise).
        if let Err(e) = config.add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2) {
            log::debug!("the kernel does not delegate privilege clearing ({e:?})");
        }
        // Readiness is announced by run.rs once the mount is also recorded
        // and sealed in the journal (INIT completes inside Session::new).
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.vault.lookup(parent.0, name.as_bytes(), &caller(req)) {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(fail("lookup", e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.vault.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.vault.getattr(ino.0, fh.map(|f| f.0), &caller(req)) {
            Ok(a) => reply.attr(&self.ttls(&a).0, &fuse_attr(&a)),
            Err(e) => reply.error(fail("getattr", e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ch = SetAttr { mode, uid, gid, size, atime: set_time(atime), mtime: set_time(mtime) };
        match self.vault.setattr(ino.0, ch, fh.map(|f| f.0), &caller(req)) {
            Ok(a) => reply.attr(&self.ttls(&a).0, &fuse_attr(&a)),
            Err(e) => reply.error(fail("setattr", e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.vault.readlink(ino.0, &caller(req)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(fail("readlink", e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        match self.vault.mknod(parent.0, name.as_bytes(), mode, umask, &caller(req)) {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(fail("mknod", e)),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        match self.vault.mkdir(parent.0, name.as_bytes(), mode, umask, &caller(req)) {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(fail("mkdir", e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.vault.unlink(parent.0, name.as_bytes(), &caller(req)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("unlink", e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.vault.rmdir(parent.0, name.as_bytes(), &caller(req)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("rmdir", e)),
        }
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        match self.vault.symlink(parent.0, link_name.as_bytes(), target.as_os_str().as_bytes(), &caller(req)) {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(fail("symlink", e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.vault.rename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes(), flags.bits(), &caller(req))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("rename", e)),
        }
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        match self.vault.link(ino.0, newparent.0, newname.as_bytes(), &caller(req)) {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(fail("link", e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.vault.open(ino.0, flags.0, &caller(req)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(fail("open", e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        READ_BUF.with_borrow_mut(|buf| match self.vault.read(fh.0, offset, size, buf) {
            Ok(range) => reply.data(&buf[range]),
            Err(e) => reply.error(fail("read", e)),
        })
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let kill_suid = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.vault.write(fh.0, offset, data, kill_suid) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(fail("write", e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        match self.vault.flush(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("flush", e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.vault.release(fh.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(fail("release", e)),
        }
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        match self.vault.fsync(fh.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("fsync", e)),
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.vault.opendir(ino.0, &caller(req)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(fail("opendir", e)),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let dir = match self.vault.readdir(fh.0) {
            Ok(d) => d,
            Err(e) => return reply.error(fail("readdir", e)),
        };
        for (i, e) in dir.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), i as u64 + 1, file_type(e.kind), OsStr::from_bytes(&e.name)) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.vault.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.vault.fsyncdir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("fsyncdir", e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.vault.statfs() {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize),
            Err(e) => reply.error(fail("statfs", e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        if name.as_bytes() == blackout::XATTR {
            return self.triggers.trigger(ino.0, value, caller(req), reply);
        }
        match self.vault.setxattr(ino.0, name.as_bytes(), value, flags, &caller(req)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("setxattr", e)),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.vault.getxattr(ino.0, name.as_bytes(), &caller(req)) {
            Ok(v) => reply_sized(reply, &v, size),
            Err(e) => reply.error(fail("getxattr", e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.vault.listxattr(ino.0, &caller(req)) {
            Ok(v) => reply_sized(reply, &v, size),
            Err(e) => reply.error(fail("listxattr", e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.vault.removexattr(ino.0, name.as_bytes(), &caller(req)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("removexattr", e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.vault.create(parent.0, name.as_bytes(), mode, umask, flags, &caller(req)) {
            Ok((a, fh)) => {
                reply.created(&self.ttls(&a).0, &fuse_attr(&a), Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(fail("create", e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self.vault.fallocate(fh.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("fallocate", e)),
        }
    }
}

/// xattr replies: size 0 asks for the length; a short buffer is ERANGE.
fn reply_sized(reply: ReplyXattr, v: &[u8], size: u32) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if (size as usize) < v.len() {
        reply.error(fuser::Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(v);
    }
}
