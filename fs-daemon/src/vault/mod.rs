//! The filesystem semantics of an unlocked volume, in plain methods that
//! return `Result<_, Errno>` and know nothing of FUSE.
//!
//! Grouped by kind of operation: [`namespace`] (names: lookup, create,
//! mkdir, rename, ...), [`data`] (open handles, read, write, sync),
//! [`meta`] (attributes, xattrs, statfs, links' targets).

pub mod access;
pub mod attr;
pub mod audit;
pub mod backing;
pub mod blackout;
pub mod data;
pub mod dtmf;
pub mod file;
pub mod handles;
pub mod inode;
pub mod journaled;
pub mod meta;
pub mod namespace;
pub mod paths;
pub mod recovery;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use callvault::fileheader::FileHeader;
use callvault::keys::VolumeKeys;
use callvault::layout::Layout;
use callvault::names::{self, BackingName, DIRID_FILE, DIRID_LEN};
use callvault::policy::{Policy, Right};
use callvault::sectors::FILE_HEADER_LEN;
use log::error;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstatat};

use access::Access;
pub use attr::{Attr, Caller, SetAttr, SetTime};
use audit::Audit;
use callvault::journal::{Detail, EventKind, Journal};
use handles::HandleTable;
use inode::{InoMap, Inode, InodeTable, Kind, ROOT, lock};
use paths::VolPath;

/// Options fixed at mount time.
#[derive(Debug, Clone, Copy)]
pub struct VaultOptions {
    pub read_only: bool,
    /// How long a blackout may last before it is flagged (it keeps silencing).
    pub blackout_alert: std::time::Duration,
    /// `--auto-blackout dtmf`: mask keypad tones in every recording.
    pub auto_dtmf: bool,
    /// Where files keep their sectors: the volume header says (format 3:
    /// tagged).
    pub layout: Layout,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            read_only: false,
            blackout_alert: std::time::Duration::from_secs(600),
            auto_dtmf: false,
            layout: Layout::Tagged,
        }
    }
}

pub struct Vault {
    keys: VolumeKeys,
    layout: Layout,
    inodes: InodeTable,
    inomap: InoMap,
    handles: HandleTable,
    read_only: bool,
    /// Whether the daemon may give new objects to their creator (needs root).
    as_root: bool,
    /// Held shared by every operation that uses a name or a path (lookup,
    /// open, create, unlink, link, setattr, xattr changes ...) from the
    /// moment its path is computed until its effect and records are done,
    /// and exclusively by rename and rmdir, which move names or empty a
    /// directory of its housekeeping files. So the path the policy judged and
    /// the journal names is the path acted on.
    ///
    /// Lock order: `namespace`, then the handle table, then an inode's own
    /// mutexes (`loc`, `open`, `size_cache`), then an open file's state;
    /// the journal's locks are taken last and never call back here.
    namespace: RwLock<()>,
    access: Access,
    pub audit: Audit,
    blackouts: blackout::Blackouts,
    dtmf: dtmf::DtmfMasking,
}

/// `/proc/self/fd/N`: reopens an `O_PATH` descriptor for I/O or for calls
/// that do not take descriptors (xattrs, chmod, utimens).
pub fn proc_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Reads the ID of the backing directory `dir` from its `.dirid` (`ino`
/// names it in the log line if the file is damaged).
pub(crate) fn read_dir_id(dir: &impl std::os::fd::AsFd, ino: u64) -> Result<[u8; DIRID_LEN], Errno> {
    let damaged = |why: &str| {
        error!("directory inode {ino}: {DIRID_FILE} {why}; its entries cannot be named");
        Errno::EIO
    };
    let fd = openat(dir, DIRID_FILE, OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
        .map_err(|e| damaged(&format!("cannot be opened ({e})")))?;
    let mut id = [0u8; DIRID_LEN];
    let mut f = File::from(fd);
    let mut extra = [0u8; 1];
    f.read_exact(&mut id).map_err(|_| damaged("is too short"))?;
    if f.read(&mut extra).map_err(io_errno)? != 0 {
        return Err(damaged("is too long"));
    }
    Ok(id)
}

impl Vault {
    /// Opens the backing data directory of an unlocked volume.
    pub fn new(
        data_dir: &Path,
        keys: VolumeKeys,
        policy: Policy,
        journal: Option<Journal>,
        opts: VaultOptions,
    ) -> Result<Vault, Errno> {
        let fd = openat(
            nix::fcntl::AT_FDCWD,
            data_dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let st = fstatat(&fd, "", AtFlags::AT_EMPTY_PATH)?;
        let vault = Vault {
            keys,
            layout: opts.layout,
            inodes: InodeTable::new(fd, &st),
            inomap: InoMap { backing_root: st.st_ino },
            handles: HandleTable::new(),
            read_only: opts.read_only,
            as_root: nix::unistd::geteuid().is_root(),
            namespace: RwLock::new(()),
            access: Access::new(policy),
            blackouts: blackout::Blackouts::new(opts.blackout_alert),
            dtmf: dtmf::DtmfMasking::new(opts.auto_dtmf),
            audit: Audit::new(journal),
        };
        // Fail at mount rather than at first use if the root's ID is gone.
        let root = vault.inode(ROOT)?;
        vault.dir_id(&root)?;
        Ok(vault)
    }

    fn inode(&self, ino: u64) -> Result<Arc<Inode>, Errno> {
        self.inodes.get(ino).ok_or(Errno::ESTALE)
    }

    fn dir_inode(&self, ino: u64) -> Result<Arc<Inode>, Errno> {
        let i = self.inode(ino)?;
        if i.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(i)
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.read_only { Err(Errno::EROFS) } else { Ok(()) }
    }

    /// The ID of a directory, read from its `.dirid` once.
    fn dir_id(&self, dir: &Inode) -> Result<[u8; DIRID_LEN], Errno> {
        if let Some(id) = dir.dir_id.get() {
            return Ok(*id);
        }
        let id = read_dir_id(&*dir.fd()?, dir.ino)?;
        Ok(*dir.dir_id.get_or_init(|| id))
    }

    /// The backing name of `name` inside directory `dir`.
    fn backing_name(&self, dir: &Inode, name: &[u8]) -> Result<BackingName, Errno> {
        self.backing_name_in(&self.dir_id(dir)?, name)
    }

    /// The backing name of `name` in the directory whose ID is `id`.
    fn backing_name_in(&self, id: &[u8; DIRID_LEN], name: &[u8]) -> Result<BackingName, Errno> {
        names::encrypt_name(&self.keys.names, id, name).map_err(|e| match e {
            callvault::Error::NameTooLong { .. } => Errno::ENAMETOOLONG,
            _ => Errno::EINVAL,
        })
    }

    /// The plaintext size of a regular file: from its open state if open,
    /// else from its header (cached against the backing ctime and length).
    fn file_size(&self, inode: &Inode, st: &FileStat) -> u64 {
        if let Some(open) = lock(&inode.open).upgrade() {
            return open.size();
        }
        if st.st_size == 0 {
            return 0;
        }
        let key = (st.st_ctime, st.st_ctime_nsec, st.st_size as u64);
        if let Some((k, size)) = *lock(&inode.size_cache)
            && k == key
        {
            return size;
        }
        let size = match self.read_header(inode) {
            Ok(h) => h.size,
            Err(e) => {
                // Listing and deleting a damaged file must keep working;
                // opening it is what fails (with EIO).
                error!("inode {}: {e}", inode.ino);
                0
            }
        };
        *lock(&inode.size_cache) = Some((key, size));
        size
    }

    fn read_header(&self, inode: &Inode) -> Result<FileHeader, String> {
        use std::os::unix::fs::FileExt;
        let fd = inode.fd().map_err(|e| e.to_string())?;
        let f = File::open(proc_path(&fd)).map_err(|e| e.to_string())?;
        let mut region = vec![0u8; FILE_HEADER_LEN as usize];
        let mut n = 0;
        while n < region.len() {
            match f.read_at(&mut region[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        FileHeader::decode(&region[..n], self.layout, &self.keys.file_header_mac).map_err(|e| e.to_string())
    }

    fn attr_of(&self, inode: &Inode, st: &FileStat) -> Attr {
        let size = match inode.kind {
            Kind::File => self.file_size(inode, st),
            Kind::Symlink => attr::link_target_len(st.st_size as u64),
            Kind::Dir => st.st_size as u64,
            Kind::Fifo | Kind::Socket => 0,
        };
        attr::from_stat(inode.ino, inode.kind, st, size)
    }

    fn stat(&self, inode: &Inode) -> Result<FileStat, Errno> {
        fstatat(&inode.fd()?, "", AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    /// Whether rights are checked (a policy, not --allow-all).
    pub fn enforcing(&self) -> bool {
        !self.access.policy().is_allow_all()
    }

    /// Puts a new access policy in force for every later check.
    pub fn replace_policy(&self, policy: Policy) {
        self.access.replace(policy);
    }

    /// Ok if `who` holds `right` on the object `ino` (at its last-seen path).
    fn allow(&self, who: &Caller, op: &str, ino: u64, right: Right) -> Result<(), Errno> {
        self.allow_path(who, op, &self.path_of(ino)?, right)
    }

    /// Ok if `who` holds `right` on the name `name` inside directory `parent`.
    fn allow_child(&self, who: &Caller, op: &str, parent: u64, name: &[u8], right: Right) -> Result<(), Errno> {
        self.allow_path(who, op, &self.child_path(parent, name)?, right)
    }

    /// The namespace lock, shared: no name moves until it is dropped.
    fn names_shared(&self) -> RwLockReadGuard<'_, ()> {
        self.namespace.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespace lock, exclusive: for operations that move names or
    /// empty a directory of its housekeeping files.
    fn names_exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.namespace.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Ok if `who` holds `right` on `path`. A denial is recorded in the
    /// journal (as operation `op`) before EACCES is returned; if it cannot be
    /// recorded, EIO. Callers that act on a name hold the namespace lock, so
    /// the path judged is the path acted on.
    fn allow_path(&self, who: &Caller, op: &str, path: &VolPath, right: Right) -> Result<(), Errno> {
        let denied = match self.access.check(who, &path.text, right) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if self.audit.enabled() {
            let detail = Detail { op: Some(op.into()), missing_right: Some(right.to_string()), ..Detail::default() };
            self.audit.log(who, EventKind::Denied, &Err::<(), _>(denied), Some(path), None, detail)?;
        }
        Err(denied)
    }

    /// Plaintext path of an inode inside the volume, from where it was last
    /// seen ("/" for the root): what policy globs and journal records refer
    /// to. Whole or not at all: ENAMETOOLONG past [`paths::MAX_PATH`], ESTALE
    /// if a directory on the way is no longer known.
    pub fn path_of(&self, ino: u64) -> Result<VolPath, Errno> {
        let mut names = Vec::new();
        let mut len = 0usize;
        let mut cur = ino;
        while cur != ROOT {
            let i = self.inodes.get(cur).ok_or(Errno::ESTALE)?;
            let loc = i.location();
            len += 1 + loc.name.len();
            if len > paths::MAX_PATH {
                return Err(Errno::ENAMETOOLONG);
            }
            cur = loc.parent;
            names.push(loc.name);
        }
        paths::join_leaf_first(names.iter().map(Vec::as_slice))
    }

    /// Plaintext path of `name` inside directory `parent`.
    pub fn child_path(&self, parent: u64, name: &[u8]) -> Result<VolPath, Errno> {
        self.path_of(parent)?.child(name)
    }

    /// Syncs every open file, its size in its header (unmount). Returns each
    /// file that could not be synced, with the path it was opened under.
    pub fn flush_all(&self) -> Vec<Unsynced> {
        // Open file state lives exactly as long as a handle holds it, so the
        // handles reach every open file, unlinked ones included; each is
        // synced once even when several handles share it.
        let mut seen = std::collections::HashSet::new();
        let mut failed = Vec::new();
        for h in self.handles.all_files() {
            if seen.insert(Arc::as_ptr(&h.file))
                && let Err(error) = self.dtmf_flush(h.ino, &h.file).and_then(|()| h.file.sync(&self.keys, false))
            {
                error!("inode {}: sync at unmount failed: {error}", h.ino);
                failed.push(Unsynced { ino: h.ino, path: h.path.clone(), error });
            }
        }
        failed
    }
}

/// An open file whose sync at unmount failed: its last writes may be lost.
pub struct Unsynced {
    pub ino: u64,
    /// The path it was opened under (for the journal; log lines name the inode).
    pub path: paths::VolPath,
    pub error: Errno,
}
