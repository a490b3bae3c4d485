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
pub mod data;
pub mod file;
pub mod inode;
pub mod journaled;
pub mod meta;
pub mod namespace;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use callvault::fileheader::FileHeader;
use callvault::keys::VolumeKeys;
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
use callvault::journal::{Detail, Event, EventKind, Journal};
use data::{DirHandle, Handle};
use inode::{InoMap, Inode, InodeTable, Kind, ROOT, lock};

/// Options fixed at mount time.
#[derive(Debug, Clone, Copy)]
pub struct VaultOptions {
    pub read_only: bool,
}

pub struct Vault {
    keys: VolumeKeys,
    inodes: InodeTable,
    inomap: InoMap,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: AtomicU64,
    read_only: bool,
    /// Whether the daemon may give new objects to their creator (needs root).
    as_root: bool,
    /// Held shared by every operation that adds or removes names, and
    /// exclusively while a directory is emptied of its housekeeping files
    /// (rmdir, rename over a directory), so nothing is created in it meanwhile.
    namespace: RwLock<()>,
    access: Access,
    pub audit: Audit,
}

/// `/proc/self/fd/N`: reopens an `O_PATH` descriptor for I/O or for calls
/// that do not take descriptors (xattrs, chmod, utimens).
pub fn proc_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
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
            inodes: InodeTable::new(fd, &st),
            inomap: InoMap { backing_root: st.st_ino },
            handles: RwLock::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            read_only: opts.read_only,
            as_root: nix::unistd::geteuid().is_root(),
            namespace: RwLock::new(()),
            access: Access::new(policy),
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
        let damaged = |why: &str| {
            error!("directory inode {}: {DIRID_FILE} {why}; its entries cannot be named", dir.ino);
            Errno::EIO
        };
        let fd = openat(&dir.fd()?, DIRID_FILE, OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
            .map_err(|e| damaged(&format!("cannot be opened ({e})")))?;
        let mut id = [0u8; DIRID_LEN];
        let mut f = File::from(fd);
        let mut extra = [0u8; 1];
        f.read_exact(&mut id).map_err(|_| damaged("is too short"))?;
        if f.read(&mut extra).map_err(io_errno)? != 0 {
            return Err(damaged("is too long"));
        }
        Ok(*dir.dir_id.get_or_init(|| id))
    }

    /// The backing name of `name` inside directory `dir`.
    fn backing_name(&self, dir: &Inode, name: &[u8]) -> Result<BackingName, Errno> {
        let id = self.dir_id(dir)?;
        names::encrypt_name(&self.keys.names, &id, name).map_err(|e| match e {
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
        FileHeader::decode(&region[..n], &self.keys.file_header_mac).map_err(|e| e.to_string())
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
    /// A denial is recorded in the journal (as operation `op`) before EACCES
    /// is returned; if it cannot be recorded, EIO.
    fn allow(&self, who: &Caller, op: &str, ino: u64, right: Right) -> Result<(), Errno> {
        self.allow_path(who, op, &self.path_of(ino), right)
    }

    /// Ok if `who` holds `right` on the name `name` inside directory `parent`.
    fn allow_child(&self, who: &Caller, op: &str, parent: u64, name: &[u8], right: Right) -> Result<(), Errno> {
        self.allow_path(who, op, &self.child_path(parent, name), right)
    }

    fn allow_path(&self, who: &Caller, op: &str, path: &str, right: Right) -> Result<(), Errno> {
        let denied = match self.access.check(who, path, right) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if self.audit.enabled() {
            let detail = Detail { op: Some(op.into()), missing_right: Some(right.to_string()), ..Detail::default() };
            let ev = Event::new(EventKind::Denied, self.audit.actor(who))
                .outcome(audit::outcome::<()>(&Err(denied)))
                .path(path)
                .detail(detail);
            self.audit.record(ev)?;
        }
        Err(denied)
    }

    /// Plaintext path of an inode inside the volume, from where it was last
    /// seen ("/" for the root): what policy globs and log lines refer to.
    pub fn path_of(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut cur = ino;
        // Bounded: a parent chain longer than any real tree means a cycle.
        for _ in 0..4096 {
            if cur == ROOT {
                break;
            }
            let Some(i) = self.inodes.get(cur) else { break };
            let loc = i.location();
            parts.push(String::from_utf8_lossy(&loc.name).into_owned());
            cur = loc.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// Plaintext path of `name` inside directory `parent`.
    pub fn child_path(&self, parent: u64, name: &[u8]) -> String {
        let p = self.path_of(parent);
        let sep = if p == "/" { "" } else { "/" };
        format!("{p}{sep}{}", String::from_utf8_lossy(name))
    }

    /// Flushes every open file's size to its header (unmount).
    pub fn flush_all(&self) {
        // Open file state lives exactly as long as a handle holds it, so the
        // handles reach every open file, unlinked ones included; each is
        // synced once even when several handles share it.
        let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        for h in handles.values() {
            if seen.insert(Arc::as_ptr(&h.file)) {
                let _ = h.file.sync(&self.keys, false);
            }
        }
    }
}
