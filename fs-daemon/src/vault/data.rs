//! Open handles and the data path: open, read, write, flush, release, fsync,
//! fallocate.
//!
//! Access rights are decided when a handle is opened and kept on it: later
//! requests on the handle are checked against the handle, not the request's
//! credentials (the kernel sends page-cache writeback without them).

use std::fs::{File, OpenOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use callvault::journal::{Actor, Detail, EventKind};
use log::error;
use nix::errno::Errno;

use super::file::{OpenFile, ReadError};
use super::inode::{Inode, Kind, lock};
use super::namespace::DirEntry;
use callvault::fileheader::NameBinding;
use callvault::layout::Layout;
use callvault::policy::Right;

use super::paths::VolPath;
use super::{Caller, Vault, io_errno, proc_path};

/// An open regular file.
pub struct Handle {
    /// The inode and the uid that opened it: that user may still `fstat`
    /// it after a policy reload takes away its `list` right.
    pub ino: u64,
    pub owner_uid: u32,
    /// Who opened it, as read at open (the process may be gone by the
    /// close), where, and how: what the close record reports.
    pub opener_actor: Option<Actor>,
    pub path: VolPath,
    pub file: Arc<OpenFile>,
    pub readable: bool,
    pub writable: bool,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Damaged byte ranges already recorded through this handle: the kernel
    /// retries a failed page read, and one damage needs one record.
    pub damage_recorded: std::sync::Mutex<Vec<std::ops::Range<u64>>>,
}

/// An open directory: its entries as read at opendir.
pub struct DirHandle {
    pub entries: Vec<DirEntry>,
}

/// Access mode of open flags: (readable, writable).
pub fn access_of(flags: i32) -> (bool, bool) {
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => (true, false),
        libc::O_WRONLY => (false, true),
        _ => (true, true),
    }
}

impl Vault {
    /// Opens a handle on `ino`, known at `path` (the namespace lock held);
    /// `read` and `write` rights are checked here and kept on the handle.
    /// O_TRUNC is left to the caller, which records it first.
    pub(super) fn do_open(
        &self,
        ino: u64,
        path: &VolPath,
        flags: i32,
        who: &Caller,
        actor: Option<Actor>,
    ) -> Result<u64, Errno> {
        let inode = self.inode(ino)?;
        let (readable, writable) = access_of(flags);
        if readable {
            self.allow_path(who, "open", path, Right::Read)?;
        }
        if writable || flags & libc::O_TRUNC != 0 {
            self.allow_path(who, "open", path, Right::Write)?;
        }
        self.open_with(&inode, flags, None, who, path.clone(), actor)
    }

    /// Opens a handle on `inode`; `fresh` is the descriptor of a file just created.
    pub(super) fn open_with(
        &self,
        inode: &Arc<Inode>,
        flags: i32,
        fresh: Option<File>,
        who: &Caller,
        path: VolPath,
        actor: Option<Actor>,
    ) -> Result<u64, Errno> {
        match inode.kind {
            Kind::File => {}
            Kind::Dir => return Err(Errno::EISDIR),
            _ => return Err(Errno::ENXIO),
        }
        let (readable, writable) = access_of(flags);
        if writable || flags & libc::O_TRUNC != 0 {
            self.writable()?;
        }
        let file = self.open_file(inode, fresh)?;
        if writable {
            self.blackout_on_open(inode.ino, &path, actor.clone());
            self.dtmf_on_open(inode.ino, &path, who);
        }
        let handle = Handle {
            ino: inode.ino,
            owner_uid: who.uid,
            opener_actor: actor,
            path,
            file,
            readable,
            writable,
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            damage_recorded: std::sync::Mutex::new(Vec::new()),
        };
        Ok(self.handles.add_file(handle))
    }

    /// The decrypted state of a file, shared by all its handles.
    pub(super) fn open_file(&self, inode: &Inode, fresh: Option<File>) -> Result<Arc<OpenFile>, Errno> {
        let mut slot = lock(&inode.open);
        if let Some(f) = slot.upgrade() {
            return Ok(f);
        }
        let binding = self.binding_of(inode)?;
        let file = Arc::new(match fresh {
            Some(created) => OpenFile::created(created, inode.ino, &self.keys, self.layout, binding)?,
            None => {
                let fd = OpenOptions::new()
                    .read(true)
                    .write(!self.read_only)
                    .open(proc_path(&inode.fd()?))
                    .map_err(io_errno)?;
                OpenFile::load(fd, inode.ino, &self.keys, self.layout, binding, !self.read_only)?
            }
        });
        *slot = Arc::downgrade(&file);
        Ok(file)
    }

    /// Format 3: the binding of the name `inode` was last reached through
    /// (its parent directory's ID and its name), which its header must hold.
    pub(super) fn binding_of(&self, inode: &Inode) -> Result<Option<NameBinding>, Errno> {
        if self.layout != Layout::Tagged {
            return Ok(None);
        }
        let loc = inode.location();
        let parent = self.dir_inode(loc.parent)?;
        Ok(Some(self.binding_at(&parent, &loc.name)?))
    }

    /// Format 3: the binding of `name` in directory `dir`.
    pub(super) fn binding_at(&self, dir: &Inode, name: &[u8]) -> Result<NameBinding, Errno> {
        Ok(NameBinding::of(&self.keys.name_binding, &self.dir_id(dir)?, name))
    }

    /// A short-lived view of a file's contents for `truncate(2)` by path.
    pub(super) fn file_for_setattr(&self, inode: &Inode, fh: Option<u64>) -> Result<Arc<OpenFile>, Errno> {
        if let Some(h) = fh.and_then(|fh| self.handle(fh).ok()) {
            return Ok(h.file.clone());
        }
        self.open_file(inode, None)
    }

    /// Whether `uid` holds an open handle on `ino`.
    pub(super) fn holds_open(&self, ino: u64, uid: u32) -> bool {
        self.handles.any_file(|h| h.ino == ino && h.owner_uid == uid)
    }

    pub fn handle(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.handles.file(fh)
    }

    /// Reads into `buf` (see [`OpenFile::read`]); returns where the bytes are.
    ///
    /// A read on a handle opened write-only can only come from the kernel
    /// filling a page cache page around a partial write (the VFS refuses
    /// `read(2)` on such a descriptor, and `mmap` for reading needs a readable
    /// one), so it is served but not counted as the process reading.
    pub fn read(&self, fh: u64, off: u64, len: u32, buf: &mut Vec<u8>) -> Result<std::ops::Range<usize>, Errno> {
        let h = self.handle(fh)?;
        let got = match h.file.read(off, len, buf) {
            Ok(got) => got,
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Damaged(ranges)) => {
                self.record_damage(&h, &ranges);
                return Err(Errno::EIO);
            }
        };
        self.dtmf_overlay(h.ino, off, &mut buf[got.clone()]);
        if h.readable {
            h.bytes_read.fetch_add(got.len() as u64, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// A read found sectors that fail their tags: a log line naming the
    /// inode (never a path) and an `integrity` record naming the path and
    /// the byte ranges, once per handle and range.
    fn record_damage(&self, h: &Handle, ranges: &[std::ops::Range<u64>]) {
        let new: Vec<_> = {
            let mut seen = lock(&h.damage_recorded);
            let new: Vec<_> = ranges.iter().filter(|r| !seen.contains(r)).cloned().collect();
            seen.extend(new.iter().cloned());
            new
        };
        if new.is_empty() {
            return;
        }
        let text = new.iter().map(|r| format!("{}-{}", r.start, r.end)).collect::<Vec<_>>().join(",");
        error!("inode {}: bytes {text} do not match their sector tags; reads of them fail with EIO", h.ino);
        let detail = Detail { damaged: Some(text), ..Detail::default() };
        let r: Result<(), Errno> = Err(Errno::EIO);
        if let Err(e) = self.audit.log_as(h.opener_actor.clone(), EventKind::Integrity, &r, Some(&h.path), None, detail)
        {
            error!("inode {}: the integrity record could not be written: {e}", h.ino);
        }
    }

    /// Whether a setattr that only changes a file's size or modification time
    /// is part of an operation already checked and recorded, and which one.
    /// Computed once per setattr: it may cost a `fstat`.
    pub(super) fn side_effect_of(
        &self,
        ino: u64,
        ch: &super::SetAttr,
        fh: Option<u64>,
        who: &Caller,
    ) -> Option<SideEffect> {
        let contents_only = ch.mode.is_none() && ch.uid.is_none() && ch.gid.is_none() && ch.atime.is_none();
        if !contents_only {
            return None;
        }
        let by_writer = fh.and_then(|fh| self.handle(fh).ok()).is_some_and(|h| h.writable);
        // pid 0: a request the kernel makes itself (the mtime it keeps for
        // written data), but also any process outside the daemon's pid
        // namespace; so only a time update may pass as the kernel's, never a size.
        if by_writer || (who.pid == 0 && ch.size.is_none()) {
            Some(SideEffect::OfWrite)
        } else if ch.size.is_none() && self.has_no_name(ino) {
            Some(SideEffect::OfUnlink)
        } else {
            None
        }
    }

    /// A regular file whose last name has been removed (open handles may
    /// still hold it).
    fn has_no_name(&self, ino: u64) -> bool {
        self.inodes.get(ino).is_some_and(|i| {
            i.kind == Kind::File && i.fd().is_ok_and(|fd| nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_nlink == 0))
        })
    }

    /// Writes through a handle. `kill_suid`: the kernel asks that set-user
    /// and set-group-ID bits be cleared, as a write by an unprivileged user
    /// does on ext4 (the daemon handles this, see `fuse.rs` init).
    pub fn write(&self, fh: u64, off: u64, data: &[u8], kill_suid: bool) -> Result<u32, Errno> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Err(Errno::EBADF);
        }
        if kill_suid {
            h.file.clear_suid()?;
        }
        // Blackouts first (what the writer sent during one), then DTMF
        // masking (what the audio holds), then the disk.
        let mut to_disk = |o: u64, b: &[u8]| h.file.write(o, b, &self.keys);
        let mut masked = |o: u64, b: &[u8]| self.store_through_dtmf(h.ino, &h.file, o, b, &mut to_disk);
        if self.blackouts.any_active() {
            self.store_through_blackout(h.ino, &h.file, off, data, |b| masked(off, b))?;
        } else {
            masked(off, data)?;
        }
        h.bytes_written.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    /// `close(2)` of one descriptor: the size reaches the header.
    pub fn flush(&self, fh: u64) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        if h.writable {
            self.dtmf_flush(h.ino, &h.file)?;
        }
        h.file.flush(&self.keys)
    }

    /// Takes a handle out of the table: no request can use it any more.
    pub(super) fn take_handle(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.handles.take_file(fh)
    }

    /// Closes a handle that was never handed out (its open could not be
    /// recorded): no close record, since no open record stands for it.
    pub(super) fn do_release(&self, fh: u64) -> Result<(), Errno> {
        self.take_handle(fh)?.file.flush(&self.keys)
    }

    pub fn fsync(&self, fh: u64, data_only: bool) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        self.dtmf_flush(h.ino, &h.file)?;
        h.file.sync(&self.keys, data_only)
    }

    pub fn fallocate(&self, fh: u64, off: u64, len: u64, mode: i32) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Err(Errno::EBADF);
        }
        let keep_size = match mode {
            0 => false,
            libc::FALLOC_FL_KEEP_SIZE => true,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        h.file.allocate(off, len, keep_size, &self.keys)
    }

    /// `fsync` on a directory: its entries are durable.
    pub fn fsyncdir(&self, ino: u64) -> Result<(), Errno> {
        let dir = self.dir_inode(ino)?;
        File::open(proc_path(&dir.fd()?)).and_then(|f| f.sync_all()).map_err(io_errno)
    }
}

#[cfg(test)]
mod tests {
    use super::access_of;

    #[test]
    fn access_modes() {
        assert_eq!(access_of(libc::O_RDONLY), (true, false));
        assert_eq!(access_of(libc::O_WRONLY | libc::O_APPEND), (false, true));
        assert_eq!(access_of(libc::O_RDWR | libc::O_CREAT), (true, true));
    }
}

/// Why a setattr needs no rights check and no record of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SideEffect {
    /// Through a handle opened for writing, or a time update from the
    /// kernel itself (pid 0): with the writeback cache the kernel sends the
    /// mtime it keeps for written data this way. The handle's `write` right
    /// covers it.
    OfWrite,
    /// The times the kernel sends, in the unlinking process's name, for a
    /// file whose last name was just removed. No one else can reach such a
    /// file, and its deletion is recorded already.
    OfUnlink,
}
