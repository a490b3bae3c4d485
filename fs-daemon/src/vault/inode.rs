//! The inode table: FUSE inode numbers, the backing objects they name, and
//! where each was last seen in the tree.
//!
//! Every known inode holds an `O_PATH` descriptor of its backing object, so
//! operations never re-resolve paths: renames, hard links and unlinked-but-open
//! files keep working. The FUSE inode number is the backing inode number,
//! except that the backing root and inode 1 trade places (FUSE's root is 1).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use callvault::names::DIRID_LEN;
use nix::errno::Errno;

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
    /// `O_PATH | O_NOFOLLOW` descriptor of the backing object.
    fd: Arc<OwnedFd>,
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
    pub fn new(ino: u64, kind: Kind, fd: OwnedFd, loc: Location) -> Self {
        Inode {
            ino,
            kind,
            fd: Arc::new(fd),
            loc: Mutex::new(loc),
            nlookup: AtomicU64::new(0),
            dir_id: OnceLock::new(),
            open: Mutex::new(Weak::new()),
            size_cache: Mutex::new(None),
        }
    }

    /// The `O_PATH | O_NOFOLLOW` descriptor of the backing object. Hold it
    /// only for the call it is needed for.
    pub fn fd(&self) -> Result<Arc<OwnedFd>, Errno> {
        Ok(self.fd.clone())
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
}

impl InodeTable {
    pub fn new(root: Inode) -> Self {
        let mut map = HashMap::new();
        root.nlookup.store(1, Ordering::Relaxed);
        map.insert(ROOT, Arc::new(root));
        InodeTable { map: RwLock::new(map) }
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(&ino).cloned()
    }

    /// Records one more kernel reference to the inode `make` describes, adding
    /// it if new. Returns the table's inode (an existing one wins a race).
    pub fn remember(&self, ino: u64, make: impl FnOnce() -> Inode) -> Arc<Inode> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let inode = map.entry(ino).or_insert_with(|| Arc::new(make()));
        inode.nlookup.fetch_add(1, Ordering::Relaxed);
        inode.clone()
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
