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

    /// Whether a descriptor is open now (pinned, or cached).
    #[cfg(test)]
    fn holds_descriptor(&self) -> bool {
        match &self.backing {
            Backing::Pinned(_) => true,
            Backing::Reopenable(r) => r.holds_descriptor(),
        }
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
        let descriptors = Descriptors::new(&root, st, budget);
        Self::with_descriptors(root, descriptors)
    }

    fn with_descriptors(root: OwnedFd, descriptors: Descriptors) -> Self {
        let descriptors = Arc::new(descriptors);
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
        {
            self.keep_descriptor_of_ino(st.st_ino);
        }
    }

    /// `keep_descriptor_of`, given the backing inode number of the entry.
    pub(super) fn keep_descriptor_of_ino(&self, backing_ino: u64) {
        if let Some(inode) = self.inodes.get(self.inomap.fuse_ino(backing_ino)) {
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
    use std::fs::File;
    use std::os::unix::net::UnixListener;
    use std::path::{Path, PathBuf};

    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, SFlag, fstat, mknod};

    use crate::vault::attr::kind_of;

    /// A directory removed on drop, on the filesystem of `base`.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(base: &Path, tag: &str) -> Scratch {
            let p = base.join(format!("callvaultd-inode-test-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// ext4 here (the temporary directory) and tmpfs (/dev/shm) where present.
    fn bases() -> Vec<PathBuf> {
        let mut v = vec![std::env::temp_dir()];
        if Path::new("/dev/shm").is_dir() {
            v.push(PathBuf::from("/dev/shm"));
        }
        v
    }

    fn root_of(dir: &Path) -> (OwnedFd, FileStat) {
        let fd =
            openat(nix::fcntl::AT_FDCWD, dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .unwrap();
        let st = fstat(&fd).unwrap();
        (fd, st)
    }

    /// Looks `name` up under the table's root as `child_at` does.
    fn look(t: &InodeTable, name: &str) -> (Arc<Inode>, FileStat) {
        let root = t.get(ROOT).unwrap().fd().unwrap();
        let fd = openat(&*root, name, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        let st = fstat(&fd).unwrap();
        let kind = kind_of(st.st_mode).unwrap();
        let loc = Location { parent: ROOT, name: name.as_bytes().to_vec() };
        (t.remember(st.st_ino, kind, fd, &st, loc), st)
    }

    fn same_object(inode: &Inode, st: &FileStat) -> bool {
        let now = fstat(&*inode.fd().unwrap()).unwrap();
        now.st_ino == st.st_ino && now.st_dev == st.st_dev && now.st_mode == st.st_mode
    }

    fn root_only() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        // Not root: handles are unavailable and the table falls back to
        // pinned descriptors (checked by `without_handles_every_descriptor_stays`).
        let s = Scratch::new(&std::env::temp_dir(), "probe");
        let (fd, st) = root_of(&s.0);
        assert!(InodeTable::with_budget(fd, &st, 8).descriptors().unavailable().is_some());
        false
    }

    #[test]
    fn descriptors_stay_within_budget_and_reopen_the_same_object() {
        if !root_only() {
            return;
        }
        for base in bases() {
            let s = Scratch::new(&base, "budget");
            let mut names: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
            for n in &names {
                File::create(s.0.join(n)).unwrap();
            }
            std::fs::create_dir(s.0.join("dir")).unwrap();
            std::os::unix::fs::symlink("nowhere", s.0.join("link")).unwrap();
            mknod(&s.0.join("fifo"), SFlag::S_IFIFO, Mode::from_bits_truncate(0o600), 0).unwrap();
            let _sock = UnixListener::bind(s.0.join("sock")).unwrap();
            names.extend(["dir", "link", "fifo", "sock"].map(String::from));

            let (fd, st) = root_of(&s.0);
            let t = InodeTable::with_budget(fd, &st, 8);
            assert_eq!(t.descriptors().unavailable(), None, "{}", base.display());
            let known: Vec<(Arc<Inode>, FileStat)> = names.iter().map(|n| look(&t, n)).collect();
            assert!(t.descriptors().held() <= 8, "{} held", t.descriptors().held());
            for round in 0..3 {
                for (inode, st) in &known {
                    assert!(
                        same_object(inode, st),
                        "{} round {round}: inode {} reopened wrong",
                        base.display(),
                        inode.ino
                    );
                    assert!(t.descriptors().held() <= 8);
                }
            }
            assert!(t.descriptors().reopens() >= 3 * 96, "{} reopens", t.descriptors().reopens());
            let held = known.iter().filter(|(i, _)| i.holds_descriptor()).count();
            assert!(held <= 8, "{held} inodes hold a descriptor");
            assert!(t.get(ROOT).unwrap().holds_descriptor(), "the root stays pinned");
        }
    }

    #[test]
    fn open_and_removed_inodes_keep_their_descriptor() {
        if !root_only() {
            return;
        }
        for base in bases() {
            let s = Scratch::new(&base, "pinned");
            for i in 0..50 {
                File::create(s.0.join(format!("f{i}"))).unwrap();
            }
            File::create(s.0.join("open")).unwrap();
            File::create(s.0.join("gone")).unwrap();
            let (fd, st) = root_of(&s.0);
            let t = InodeTable::with_budget(fd, &st, 4);
            let (open, open_st) = look(&t, "open");
            let keys = callvault::keys::VolumeKeys::derive(callvault::secret::MasterKey::generate().unwrap());
            let plain = callvault::layout::Layout::Plain;
            let opened = File::open(s.0.join("open")).unwrap();
            let file = Arc::new(OpenFile::created(opened, open.ino, &keys, plain, None).unwrap());
            *lock(&open.open) = Arc::downgrade(&file);
            let (gone, gone_st) = look(&t, "gone");
            gone.keep_descriptor().unwrap();
            std::fs::remove_file(s.0.join("gone")).unwrap();

            let churn = |t: &InodeTable| {
                for i in 0..50 {
                    let (inode, st) = look(t, &format!("f{i}"));
                    assert!(same_object(&inode, &st));
                }
            };
            churn(&t);
            assert!(open.holds_descriptor(), "an open file keeps its descriptor");
            assert!(gone.holds_descriptor(), "a file whose last name went keeps its descriptor");
            assert!(same_object(&gone, &gone_st));
            assert_eq!(fstat(&*gone.fd().unwrap()).unwrap().st_nlink, 0);

            // Closed, the file is evictable again; its reopen is the same file.
            drop(file);
            churn(&t);
            churn(&t);
            assert!(!open.holds_descriptor(), "a closed file's descriptor is evictable again");
            assert!(same_object(&open, &open_st));
            assert!(gone.holds_descriptor(), "still nameless, still kept");
        }
    }

    #[test]
    fn a_vanished_object_is_stale() {
        if !root_only() {
            return;
        }
        let s = Scratch::new(&std::env::temp_dir(), "stale");
        for n in ["a", "b", "c"] {
            File::create(s.0.join(n)).unwrap();
        }
        let (fd, st) = root_of(&s.0);
        let t = InodeTable::with_budget(fd, &st, 1);
        let (a, _) = look(&t, "a");
        let _ = look(&t, "b");
        let _ = look(&t, "c");
        assert!(!a.holds_descriptor());
        std::fs::remove_file(s.0.join("a")).unwrap();
        assert_eq!(a.fd().err(), Some(Errno::ESTALE));
    }

    #[test]
    fn without_handles_every_descriptor_stays() {
        let s = Scratch::new(&std::env::temp_dir(), "fallback");
        for i in 0..20 {
            File::create(s.0.join(format!("f{i}"))).unwrap();
        }
        let (fd, st) = root_of(&s.0);
        let t = InodeTable::with_descriptors(fd, Descriptors::without_handles(&st, 4));
        assert!(t.descriptors().unavailable().is_some());
        let known: Vec<_> = (0..20).map(|i| look(&t, &format!("f{i}"))).collect();
        for (inode, st) in &known {
            assert!(inode.holds_descriptor());
            assert!(same_object(inode, st));
        }
    }

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
