//! The table of open handles: regular files (with the rights they were
//! opened with) and directory listings, by FUSE file handle number.
//!
//! Lock order: the namespace lock (if held) before this table; the table's
//! locks are held only to insert, look up or remove, never across I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use nix::errno::Errno;

use super::data::{DirHandle, Handle};
use super::inode::lock;

/// Every handle the kernel holds on this mount.
pub struct HandleTable {
    files: RwLock<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    /// File and directory handles share one numbering, so a number names
    /// one thing only.
    next: AtomicU64,
}

impl HandleTable {
    pub fn new() -> HandleTable {
        HandleTable { files: RwLock::new(HashMap::new()), dirs: Mutex::new(HashMap::new()), next: AtomicU64::new(1) }
    }

    fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds an open file; returns its handle number.
    pub fn add_file(&self, h: Handle) -> u64 {
        let fh = self.number();
        self.files.write().unwrap_or_else(|e| e.into_inner()).insert(fh, Arc::new(h));
        fh
    }

    pub fn file(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.files.read().unwrap_or_else(|e| e.into_inner()).get(&fh).cloned().ok_or(Errno::EBADF)
    }

    /// Removes an open file: no request can reach it through `fh` any more.
    pub fn take_file(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&fh).ok_or(Errno::EBADF)
    }

    /// Whether any open file satisfies `pred`.
    pub fn any_file(&self, pred: impl Fn(&Handle) -> bool) -> bool {
        self.files.read().unwrap_or_else(|e| e.into_inner()).values().any(|h| pred(h))
    }

    /// Every open file handle now (a snapshot; the table is not held).
    pub fn all_files(&self) -> Vec<Arc<Handle>> {
        self.files.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub fn add_dir(&self, d: DirHandle) -> u64 {
        let fh = self.number();
        lock(&self.dirs).insert(fh, Arc::new(d));
        fh
    }

    pub fn dir(&self, fh: u64) -> Result<Arc<DirHandle>, Errno> {
        lock(&self.dirs).get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn take_dir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}
