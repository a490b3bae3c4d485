//! A bounded set of open backing descriptors: every inode keeps a file
//! handle of its backing object, and only a fixed number of them hold an
//! `O_PATH` descriptor at a time, reopened by handle when needed.
//!
//! This is what virtiofsd does with `--inode-file-handles`. Without it the
//! daemon held one descriptor per inode the kernel had cached, released only
//! on FORGET (memory pressure): with an open-file limit of 20,000, the
//! 20,000th file looked up since mounting failed with EMFILE while nothing
//! was open. Now the number of files that can be looked up is unbounded and
//! the descriptors held are at most the budget (see [`budget_for`]), plus one
//! per inode that cannot be reopened (below).
//!
//! Which descriptors stay open whatever the budget ("pinned"):
//! - the root's;
//! - every descriptor while handles are unavailable: the daemon is not root
//!   (`open_by_handle_at` needs CAP_DAC_READ_SEARCH) or the backing
//!   filesystem has no file handles (`name_to_handle_at` says EOPNOTSUPP).
//!   Then the daemon works as it did before, with one warning at mount;
//! - an object on another filesystem than the backing root (a mount inside
//!   the data directory), or one the kernel gives no handle for.
//!
//! Which are kept while they need to be (evictable again afterwards):
//! - a file that is open through the mount (the clock below passes it by);
//! - an object whose name is being removed while the kernel knows it
//!   ([`super::inode::Inode::keep_descriptor`]): once it has no name left the
//!   kernel frees it as soon as nothing holds it, and a handle can no longer
//!   reopen it (ESTALE). It stays until forgotten or until a name is found
//!   again (a hard link, a failed rename).
//!
//! Checked on this kernel (6.18), ext4 and tmpfs: directories, regular files,
//! symlinks (the link itself), FIFOs and sockets all reopen by handle with
//! `O_PATH | O_NOFOLLOW`, same `st_ino` and `st_dev`; an unlinked file reopens
//! while some descriptor still holds it, and gives ESTALE once none does. The
//! mount descriptor `open_by_handle_at` needs must not be `O_PATH` (EBADF), so
//! the cache holds one ordinary descriptor of the backing root for it.
//!
//! Eviction is a clock (second chance): a hit sets the inode's reference bit
//! (no shared lock: the per-inode mutex and an atomic), a miss reopens
//! outside every lock and then takes the one ring lock to find room. So the
//! lookup and getattr path is as concurrent as the inode table itself; only
//! a reopen or a new inode touches the ring, for a few hundred nanoseconds.
//!
//! Lock order: ring, then an inode's descriptor slot (the clock only
//! `try_lock`s the slots and an inode's `open` it passes, so a thread that
//! holds one of those while it waits for the ring cannot deadlock with it).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use log::warn;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat};

use super::inode::{Inode, lock};
use crate::sys_handles::{self, FileHandle};

/// Descriptors set aside from the open-file limit for everything that is not
/// an inode's or an open file's: the FUSE channel (one per event-loop
/// thread), the journal, the log, the lock file, sockets, `/proc` reads.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// The most inode descriptors kept open however high the limit: each one
/// also pins the backing inode and dentry in the kernel's caches (about
/// 1 KiB), and a reopen costs about 2 µs, so more buys little.
pub const MAX_BUDGET: usize = 65_536;

/// The fewest, whatever the limit says (a mount below that does not work anyway).
pub const MIN_BUDGET: usize = 16;

/// How many inode descriptors to keep open under an open-file limit of
/// `limit`: half of what is left after [`RESERVED_DESCRIPTORS`], the other
/// half being for open files (each holds its own descriptor, and its inode's
/// counts against the budget while it is open), capped at [`MAX_BUDGET`].
/// Under 4,096: 1,984 inode descriptors and room for about 1,984 open files.
pub fn budget_for(limit: u64) -> usize {
    let half = limit.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    (half.min(MAX_BUDGET as u64) as usize).max(MIN_BUDGET)
}

/// How an inode holds its backing object.
pub enum Backing {
    /// One descriptor from lookup until the inode is forgotten.
    Pinned(Arc<OwnedFd>),
    /// A handle, and a descriptor while the cache keeps one.
    Reopenable(Reopenable),
}

pub struct Reopenable {
    handle: FileHandle,
    /// The backing inode number, checked after every reopen.
    st_ino: u64,
    slot: Mutex<Slot>,
    /// Set on every use, cleared by the clock hand as it passes.
    referenced: AtomicBool,
    cache: Arc<Descriptors>,
}

#[derive(Default)]
struct Slot {
    fd: Option<Arc<OwnedFd>>,
    /// Whether the ring has an entry for this inode (at most one).
    in_ring: bool,
    /// A name of the object is being or was removed (see the module doc).
    keep: bool,
}

/// The descriptors of one mount: the budget, the ring of inodes holding
/// one, and the root descriptor handles are opened against.
pub struct Descriptors {
    /// An ordinary (not `O_PATH`) descriptor of the backing root, or why
    /// handles cannot be used.
    anchor: Result<OwnedFd, String>,
    dev: u64,
    budget: usize,
    ring: Mutex<Ring>,
    warned_over_budget: AtomicBool,
    reopens: AtomicU64,
}

struct Ring {
    /// Inodes that hold a descriptor (or did: a dead entry is free room).
    entries: Vec<Weak<Inode>>,
    hand: usize,
}

impl Descriptors {
    /// Probes whether `root` (the backing root's `O_PATH` descriptor) can be
    /// reopened by handle, and sets the budget.
    pub fn new(root: &OwnedFd, root_st: &FileStat, budget: usize) -> Descriptors {
        let anchor = probe(root, root_st);
        Descriptors {
            anchor,
            dev: root_st.st_dev,
            budget: budget.max(1),
            ring: Mutex::new(Ring { entries: Vec::new(), hand: 0 }),
            warned_over_budget: AtomicBool::new(false),
            reopens: AtomicU64::new(0),
        }
    }

    /// As if handles were unavailable (the fallback a non-root daemon gets).
    #[cfg(test)]
    pub fn without_handles(root_st: &FileStat, budget: usize) -> Descriptors {
        Descriptors {
            anchor: Err("disabled for a test".to_string()),
            dev: root_st.st_dev,
            budget,
            ring: Mutex::new(Ring { entries: Vec::new(), hand: 0 }),
            warned_over_budget: AtomicBool::new(false),
            reopens: AtomicU64::new(0),
        }
    }

    /// Why descriptors cannot be closed and reopened, if they cannot.
    pub fn unavailable(&self) -> Option<&str> {
        self.anchor.as_ref().err().map(String::as_str)
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// How many inodes hold an evictable descriptor now (pinned ones aside).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        lock(&self.ring)
            .entries
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|i| match i.backing() {
                Backing::Reopenable(r) => lock(&r.slot).fd.is_some(),
                Backing::Pinned(_) => false,
            })
            .count()
    }

    /// How many times a descriptor was reopened from its handle.
    #[cfg(test)]
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    /// How a new inode of `fd` (which `st` describes) holds it.
    pub fn backing(self: &Arc<Self>, fd: OwnedFd, st: &FileStat) -> Backing {
        if self.anchor.is_err() || st.st_dev != self.dev {
            return Backing::Pinned(Arc::new(fd));
        }
        match sys_handles::handle_of(fd.as_fd()) {
            Ok((handle, _mount)) => Backing::Reopenable(Reopenable {
                handle,
                st_ino: st.st_ino,
                slot: Mutex::new(Slot { fd: Some(Arc::new(fd)), ..Slot::default() }),
                referenced: AtomicBool::new(false),
                cache: self.clone(),
            }),
            Err(_) => Backing::Pinned(Arc::new(fd)),
        }
    }

    /// Enters `inode`, which holds a descriptor outside the ring, into it,
    /// closing another's if the budget is reached.
    fn enroll(&self, inode: &Weak<Inode>, r: &Reopenable) {
        let mut victims = Vec::new();
        {
            let mut ring = lock(&self.ring);
            {
                let mut slot = lock(&r.slot);
                if slot.fd.is_none() || slot.in_ring {
                    return;
                }
                slot.in_ring = true;
            }
            let room = self.make_room(&mut ring, &mut victims);
            let entry = inode.clone();
            match room {
                Some(i) => ring.entries[i] = entry,
                None => {
                    if ring.entries.len() >= self.budget && !self.warned_over_budget.swap(true, Ordering::Relaxed) {
                        warn!(
                            "more than {} files are open or being removed at once: their backing descriptors \
                             stay open beyond the descriptor budget; raise LimitNOFILE if EMFILE follows",
                            self.budget
                        );
                    }
                    ring.entries.push(entry);
                }
            }
        }
        drop(victims); // closed outside the ring lock
    }

    /// With the ring full, the index of an entry to reuse: a dead one, or one
    /// whose descriptor the clock takes (into `victims`). None: the ring is
    /// not full, or every entry is in use, open or kept.
    fn make_room(&self, ring: &mut Ring, victims: &mut Vec<Arc<OwnedFd>>) -> Option<usize> {
        let n = ring.entries.len();
        if n < self.budget {
            return None;
        }
        // Two turns: the first may only clear reference bits.
        for _ in 0..2 * n {
            let i = ring.hand;
            ring.hand = (i + 1) % n;
            let Some(inode) = ring.entries[i].upgrade() else {
                return Some(i);
            };
            let Backing::Reopenable(r) = inode.backing() else {
                return Some(i); // never entered; nothing to close
            };
            if r.referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            let Ok(mut slot) = r.slot.try_lock() else {
                continue; // in use right now
            };
            if slot.keep {
                // Kept while it has no name; a name found again lets it go.
                match slot.fd.as_deref().map(fstat) {
                    Some(Ok(st)) if st.st_nlink > 0 => slot.keep = false,
                    _ => continue,
                }
            }
            let open = inode.open.try_lock().map(|w| w.strong_count() > 0).unwrap_or(true);
            if open {
                continue;
            }
            slot.in_ring = false;
            if let Some(fd) = slot.fd.take() {
                victims.push(fd);
            }
            return Some(i);
        }
        None
    }
}

/// Whether handles of objects under `root` can be made and opened again
/// (needs CAP_DAC_READ_SEARCH and a filesystem that exports handles); the
/// anchor descriptor if so.
fn probe(root: &OwnedFd, root_st: &FileStat) -> Result<OwnedFd, String> {
    let (handle, _) = sys_handles::handle_of(root.as_fd()).map_err(|e| match e {
        Errno::EOPNOTSUPP => "the backing filesystem has no file handles".to_string(),
        e => format!("name_to_handle_at on the backing root: {e}"),
    })?;
    let anchor = openat(root, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("opening the backing root: {e}"))?;
    let again = sys_handles::open_by_handle(anchor.as_fd(), &handle, OFlag::O_PATH | OFlag::O_CLOEXEC).map_err(
        |e| match e {
            Errno::EPERM => "open_by_handle_at needs CAP_DAC_READ_SEARCH (the daemon is not root)".to_string(),
            e => format!("open_by_handle_at on the backing root: {e}"),
        },
    )?;
    let st = fstat(&again).map_err(|e| format!("fstat: {e}"))?;
    if st.st_ino != root_st.st_ino || st.st_dev != root_st.st_dev {
        return Err("the backing root reopened by handle is another object".to_string());
    }
    Ok(anchor)
}

impl Reopenable {
    /// The descriptor, reopened from the handle if the clock took it.
    pub fn fd(&self, inode: &Weak<Inode>) -> Result<Arc<OwnedFd>, Errno> {
        if let Some(fd) = &lock(&self.slot).fd {
            if !self.referenced.load(Ordering::Relaxed) {
                self.referenced.store(true, Ordering::Relaxed);
            }
            return Ok(fd.clone());
        }
        let anchor = self.cache.anchor.as_ref().map_err(|_| Errno::ESTALE)?;
        let fd = sys_handles::open_by_handle(
            anchor.as_fd(),
            &self.handle,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        )
        .map_err(|e| if e == Errno::ENOENT { Errno::ESTALE } else { e })?;
        let st = fstat(&fd)?;
        if st.st_ino != self.st_ino || st.st_dev != self.cache.dev {
            return Err(Errno::ESTALE);
        }
        self.cache.reopens.fetch_add(1, Ordering::Relaxed);
        let fd = {
            let mut slot = lock(&self.slot);
            match &slot.fd {
                Some(won) => return Ok(won.clone()), // another thread reopened it first
                None => slot.fd.insert(Arc::new(fd)).clone(),
            }
        };
        self.cache.enroll(inode, self);
        Ok(fd)
    }

    /// Enters a new inode's descriptor into the ring.
    pub fn enroll(&self, inode: &Weak<Inode>) {
        self.cache.enroll(inode, self);
    }

    /// Keeps the descriptor open (see the module doc); Err if it cannot be
    /// had (the object is gone already).
    pub fn keep(&self, inode: &Weak<Inode>) -> Result<(), Errno> {
        loop {
            let _fd = self.fd(inode)?;
            let mut slot = lock(&self.slot);
            if slot.fd.is_some() {
                slot.keep = true;
                return Ok(());
            }
            // Taken by the clock between the two locks: get it again.
        }
    }

    #[cfg(test)]
    pub fn holds_descriptor(&self) -> bool {
        lock(&self.slot).fd.is_some()
    }
}
