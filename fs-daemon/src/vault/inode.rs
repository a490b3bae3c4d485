//! The inode table: FUSE inode numbers, the backing objects they name, and
//! where each was last seen in the tree.
//!
//! Every known inode reaches its backing object through an `O_PATH`
//! descriptor, never by re-resolving a path, so renames, hard links and
//! unlinked-but-open files keep working. Only a bounded number of those
//! descriptors are open at a time; the others are reopened from a file handle
//! when needed ([`super::backing`]). The FUSE inode number is the backing
//! inode number, except that the backing root and inode 1 trade places
//! (FUSE's root is 1).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use callvault::names::DIRID_LEN;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, fstatat};

use super::backing::{Backing, Descriptors, budget_for};
use super::file::OpenFile;

/// What a cached size was read against: backing ctime (s, ns) and length.
pub type SizeKey = (i64, i64, u64);

/// The FUSE root inode number.
pub const ROOT: u64 = 1;

/// What kind of object an inode is; fixed for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
}

/// Where an inode was last looked up: its parent and plaintext name. A hard
/// link is known by the name it was last reached through.
#[derive(Debug, Clone)]
pub struct Location {
    pub parent: u64,
    pub name: Vec<u8>,
}

pub struct Inode {
    pub ino: u64,
    pub kind: Kind,
    /// The `O_PATH | O_NOFOLLOW` descriptor of the backing object, or its
    /// handle and the descriptor while the cache keeps one.
    backing: Backing,
    /// This inode, for the descriptor cache's ring.
    me: Weak<Inode>,
    pub loc: Mutex<Location>,
    nlookup: AtomicU64,
    /// A directory's ID, read from its `.dirid` on first use.
    pub dir_id: OnceLock<[u8; DIRID_LEN]>,
    /// The decrypted state shared by all open handles of a regular file.
    pub open: Mutex<Weak<OpenFile>>,
    /// Logical size of a closed file, keyed by the backing (ctime, length)
    /// it was read at, so `stat` need not re-read the header every time.
    pub size_cache: Mutex<Option<(SizeKey, u64)>>,
}

impl Inode {
    fn new(ino: u64, kind: Kind, backing: Backing, loc: Location, me: Weak<Inode>) -> Self {
        Inode {
            ino,
            kind,
            backing,
            me,
            loc: Mutex::new(loc),
            nlookup: AtomicU64::new(0),
            dir_id: OnceLock::new(),
            open: Mutex::new(Weak::new()),
            size_cache: Mutex::new(None),
        }
    }

    /// The `O_PATH | O_NOFOLLOW` descriptor of the backing object, reopened
    /// from its handle if the cache closed it (ESTALE if the object is gone).
    /// Hold it only for the call it is needed for: a held one stays open
    /// after the cache lets it go, beyond the budget.
    pub fn fd(&self) -> Result<Arc<OwnedFd>, Errno> {
        match &self.backing {
            Backing::Pinned(fd) => Ok(fd.clone()),
            Backing::Reopenable(r) => r.fd(&self.me),
        }
    }

    pub(super) fn backing(&self) -> &Backing {
        &self.backing
    }

    /// Keeps the descriptor open while the object may have no name left, so
    /// the inode stays usable (a handle cannot reopen a nameless object).
    /// Call before removing one of its names.
    pub fn keep_descriptor(&self) -> Result<(), Errno> {
        match &self.backing {
            Backing::Pinned(_) => Ok(()),
            Backing::Reopenable(r) => r.keep(&self.me),
        }
    }

    pub fn location(&self) -> Location {
        lock(&self.loc).clone()
    }

    pub fn set_location(&self, parent: u64, name: &[u8]) {
        let mut l = lock(&self.loc);
        l.parent = parent;
        l.name = name.to_vec();
    }
}

/// Locks a mutex, recovering from poisoning: every critical section here
/// leaves its data consistent, so a panic elsewhere must not wedge the mount.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps backing inode numbers to FUSE inode numbers and back (a bijection).
#[derive(Debug, Clone, Copy)]
pub struct InoMap {
    pub backing_root: u64,
}

impl InoMap {
    pub fn fuse_ino(self, backing: u64) -> u64 {
        if backing == self.backing_root {
            ROOT
        } else if backing == ROOT {
            self.backing_root
        } else {
            backing
        }
    }
}

/// All inodes the kernel currently knows.
pub struct InodeTable {
    map: RwLock<HashMap<u64, Arc<Inode>>>,
    descriptors: Arc<Descriptors>,
}

impl InodeTable {
    /// The table of a mount whose backing root is `root` (`O_PATH`,
    /// described by `st`), with the descriptor budget the open-file limit
    /// allows ([`budget_for`]).
    pub fn new(root: OwnedFd, st: &FileStat) -> Self {
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Self::with_budget(root, st, budget_for(limit))
    }

    pub fn with_budget(root: OwnedFd, st: &FileStat, budget: usize) -> Self {
        let descriptors = Arc::new(Descriptors::new(&root, st, budget));
        let loc = Location { parent: ROOT, name: Vec::new() };
        let root = Arc::new_cyclic(|me| Inode::new(ROOT, Kind::Dir, Backing::Pinned(Arc::new(root)), loc, me.clone()));
        root.nlookup.store(1, Ordering::Relaxed);
        let mut map = HashMap::new();
        map.insert(ROOT, root);
        InodeTable { map: RwLock::new(map), descriptors }
    }

    pub fn descriptors(&self) -> &Descriptors {
        &self.descriptors
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(&ino).cloned()
    }

    /// Records one more kernel reference to inode `ino`, adding it if new
    /// with backing descriptor `fd` (which `st` describes). Returns the
    /// table's inode (an existing one wins a race; `fd` is then closed).
    pub fn remember(&self, ino: u64, kind: Kind, fd: OwnedFd, st: &FileStat, loc: Location) -> Arc<Inode> {
        // The handle is made, and a loser's descriptor closed, outside the table lock.
        let backing = self.descriptors.backing(fd, st);
        let (inode, spare) = {
            let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
            let (inode, spare) = match map.entry(ino) {
                Entry::Occupied(e) => (e.get().clone(), Some(backing)),
                Entry::Vacant(e) => {
                    let new = Arc::new_cyclic(|me| Inode::new(ino, kind, backing, loc, me.clone()));
                    (e.insert(new).clone(), None)
                }
            };
            inode.nlookup.fetch_add(1, Ordering::Relaxed);
            (inode, spare)
        };
        match spare {
            Some(unused) => drop(unused),
            None => {
                if let Backing::Reopenable(r) = &inode.backing {
                    r.enroll(&inode.me);
                }
            }
        }
        inode
    }

    /// Adds a kernel reference to an inode already in the table.
    pub fn add_lookup(&self, inode: &Inode) {
        inode.nlookup.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops `n` kernel references; the inode leaves the table at zero
    /// (open handles keep their own `Arc`).
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(inode) = map.get(&ino) {
            let prev = inode.nlookup.load(Ordering::Relaxed);
            let left = prev.saturating_sub(n);
            inode.nlookup.store(left, Ordering::Relaxed);
            if left == 0 {
                map.remove(&ino);
            }
        }
    }
}

impl super::Vault {
    /// Call before removing the name `entry` of directory `dir` (unlink,
    /// rmdir, rename over it): if the kernel knows the object, its
    /// descriptor stays open while it may have no name left (see
    /// [`Inode::keep_descriptor`]). Nothing to do if it is unknown or gone.
    pub(super) fn keep_descriptor_of(&self, dir: &Inode, entry: &str) {
        if let Ok(fd) = dir.fd()
            && let Ok(st) = fstatat(&fd, entry, AtFlags::AT_SYMLINK_NOFOLLOW)
            && let Some(inode) = self.inodes.get(self.inomap.fuse_ino(st.st_ino))
        {
            let _ = inode.keep_descriptor();
        }
    }

    /// The mount's descriptor cache (budget, whether handles work).
    pub fn descriptors(&self) -> &Descriptors {
        self.inodes.descriptors()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_numbers_swap_root_and_one_only() {
        let m = InoMap { backing_root: 500 };
        assert_eq!(m.fuse_ino(500), ROOT);
        assert_eq!(m.fuse_ino(1), 500);
        assert_eq!(m.fuse_ino(77), 77);
        for b in [1u64, 2, 500, 501, u64::MAX] {
            let f = m.fuse_ino(b);
            assert_eq!(m.fuse_ino(f), b, "mapping is its own inverse");
        }
    }
}
