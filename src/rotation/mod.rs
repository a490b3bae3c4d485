//! Key rotation: re-encrypts a volume's backing tree from one master key to
//! another, offline, resumably after a crash at any point.
//!
//! PCI DSS 3.7.4/3.7.5: keys are changed at the end of their cryptoperiod,
//! and a departed operator's access ends for good. The caller (the keytool's
//! `rotate-key`) holds the volume lock (nothing serves the volume), puts the
//! new master key in the header beside the old one, calls [`rotate_tree`]
//! (again, after a crash, with the same two keys, until it returns Ok), and
//! only then drops the old key from the header. Afterwards nothing under
//! `data/` decrypts under the old keys.
//!
//! What is re-encrypted, everything the daemon encrypts (docs/FORMAT.md):
//! every entry name, short or long (`.L<hash>` and its `.name` side file);
//! every regular file's header (its MAC key) and contents (its XTS key: the
//! file ID stays, the key is derived from the new master); every symlink
//! target; every `user.cv.*` xattr, name and value. Directory IDs (`.dirid`)
//! stay. Each of these says by itself which key it is under (AES-SIV
//! authenticates names, targets and xattrs; the header MAC tells a file), so
//! a walk can always tell what is left to do.
//!
//! # Invariants: why a crash at any point loses nothing
//!
//! 1. **Every change is one atomic step from a whole state to a whole
//!    state.** New contents never overwrite old ones: a file's new copy is
//!    written to a temporary (`.tmp-rotate-*`, a name the daemon never
//!    lists) with its owner, mode, xattrs and times, fsynced, and renamed
//!    over the old entry in one `rename(2)`. An entry's name changes by one
//!    `renameat2(RENAME_NOREPLACE)` within its directory. So at every
//!    instant each name is an entry whose name is under one key and whose
//!    object is whole under one key (not necessarily the same one), and a
//!    walk tells both apart. Nothing is ever deleted that is not a
//!    temporary, a leftover or an old object just replaced by `rename`.
//! 2. **No plaintext name has two entries**: a name is renamed, never
//!    copied, so a directory never holds the same name under both keys
//!    (a `RENAME_NOREPLACE` that finds its target taken stops with an error).
//! 3. **A long name always has its side file.** The new side file is
//!    written (temporary, fsync, rename, directory fsync) before the entry
//!    is renamed to the new hashed name, and the old side file is removed
//!    only after that rename is durable. A crash leaves at most an orphaned
//!    side file, which the next run removes.
//! 4. **Hard links end up hard links.** A re-encrypted copy is a new inode,
//!    and the names of an old inode are moved to it one at a time, wherever
//!    they are. The copy of an object with more than one link is made once,
//!    durably, in the staging directory `data/.tmp-rotation/` under a name
//!    holding the old inode's number (and file ID); each name is then
//!    hard-linked to it under a temporary and renamed over. In the two-name
//!    window a moved name and an unmoved one are two inodes with the same
//!    plaintext, each whole; a resumed run finds the staged copy by the old
//!    inode's number and moves the remaining names onto the *same* copy. The
//!    staging directory is removed only after the whole walk, once every
//!    directory that gained a moved name has been fsynced.
//! 5. **A directory rename is one step.** A directory keeps its inode and
//!    `.dirid`, so its entries' names stay valid whatever its own name is
//!    under; a crash leaves it at its old name or its new one.
//! 6. **Extended attributes**: a new copy gets them under the new key before
//!    it replaces the old one. On objects rotated in place (directories,
//!    empty files), each new xattr is set and fsynced before the old one is
//!    removed; both at once hold the same plaintext, and the next run
//!    removes the old.
//! 7. **Times survive.** A new copy gets the old object's access and
//!    modification times (everything is read with `O_NOATIME`; reading a
//!    link target has no such flag, so the link's access time is put back
//!    right after the read, and only a kill in the instant between the two
//!    leaves it moved). A directory's times move when its entries change,
//!    so before its first change they are recorded, durably, in its xattr
//!    `user.callvault.rotation-times` (an xattr: writing it does not touch
//!    the mtime, and the root has no other such place); when its entries are
//!    done the times are put back, the directory is fsynced, and the record
//!    removed. A resumed run restores the recorded times, not the moved ones.
//! 8. **Leftovers are cleaned up.** On entering a directory, its
//!    `.tmp-rotate-*` temporaries (never the only copy of anything: they
//!    replace an entry only by being renamed) and orphaned side files are
//!    removed; half-written staged copies (`part-*`) go when the staging
//!    directory is opened.
//! 9. **Durability order.** Data is fsynced before the rename that exposes
//!    it; a new side file, a new symlink and a staged copy's directory entry
//!    are fsynced before anything relies on them; every changed directory is
//!    fsynced when done. The rest needs no order: any subset of the renames
//!    that reaches the disk leaves whole states (1).
//!
//! Errors stop the rotation with the backing path and nothing deleted: an
//! entry whose name, header, link target or xattr decrypts under neither key,
//! a damaged file (shorter than its header says), a conflict no rotation
//! leaves. Memory is bounded: one 1 MiB buffer, one directory's entry names
//! per directory level, and one number per hard-linked file in the survey.
//! The walk holds one descriptor of the directory it is in (besides the data
//! directory's, the staging directory's and the file being copied), whatever
//! the depth. Contents go through in runs of up to 256 sectors per
//! `pread`/`pwrite`, found with SEEK_DATA/SEEK_HOLE.
//!
//! Needs root (or the owner of every backing object): new copies are given
//! the old owners, and times are read without moving them.
//!
//! The format of the staging area, the temporaries and the times record is
//! in docs/FORMAT.md ("Key rotation").

mod copy;
mod dirtimes;
mod entries;
mod error;
mod progress;
mod rotate;
mod staging;
mod steps;
mod survey;
mod sys;
#[cfg(test)]
mod tests;
mod walk;
mod which;
mod xattrs;

use std::path::Path;
use std::time::Instant;

pub use dirtimes::RECORD as TIMES_RECORD_XATTR;
pub use error::RotationError;
pub use progress::{NoProgress, RotationProgress, RotationStats};
pub use staging::STAGING_DIR;
pub use survey::Survey;
pub use sys::TEMP_PREFIX;

use crate::keys::VolumeKeys;
use crate::layout::Layout;
use steps::Steps;
use which::Keys;

/// The file layouts before and after: the volume's own for a key rotation,
/// plain to tagged for `upgrade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layouts {
    pub from: Layout,
    pub to: Layout,
}

impl Layouts {
    /// A rotation that keeps the layout.
    pub fn same(layout: Layout) -> Layouts {
        Layouts { from: layout, to: layout }
    }
}

/// Re-encrypts everything in the backing tree `data_dir` (a volume's
/// `data/`) from the keys `old` to the keys `new` (and from one file layout
/// to another), reporting to `progress`.
///
/// The volume must not be mounted (the caller holds its lock). After a
/// failure or a crash, calling this again with the same two keys finishes
/// the job; on Ok nothing in `data_dir` is under `old` any more.
pub fn rotate_tree(
    data_dir: &Path,
    old: &VolumeKeys,
    new: &VolumeKeys,
    layouts: Layouts,
    progress: &mut dyn RotationProgress,
) -> Result<RotationStats, RotationError> {
    run(data_dir, Keys { old, new, from: layouts.from, to: layouts.to }, progress, Steps::default()).0
}

/// What is left to rotate in `data_dir` from `old` to `new` (totals for a
/// progress bar), without changing anything. An entry decryptable under
/// neither key is an error here too.
pub fn survey(data_dir: &Path, old: &VolumeKeys, new: &VolumeKeys, layouts: Layouts) -> Result<Survey, RotationError> {
    survey_keys(data_dir, Keys { old, new, from: layouts.from, to: layouts.to })
}

fn survey_keys(data_dir: &Path, keys: Keys<'_>) -> Result<Survey, RotationError> {
    if keys.same() {
        return Err(RotationError::SameKeys);
    }
    survey::survey_with(keys, data_dir)
}

/// The rotation, and how many changes it made to the tree (see [`Steps`]).
fn run(
    data_dir: &Path,
    keys: Keys<'_>,
    progress: &mut dyn RotationProgress,
    steps: Steps,
) -> (Result<RotationStats, RotationError>, u64) {
    let began = Instant::now();
    let prepared = (|| {
        let left = survey_keys(data_dir, keys)?;
        progress.start(left.files, left.bytes);
        let root = sys::open_root(data_dir)?;
        let walk_root = root.try_clone().map_err(sys::std_io(data_dir, "duplicating a descriptor of"))?;
        Ok((root, walk_root))
    })();
    let (root, walk_root) = match prepared {
        Ok(r) => r,
        Err(e) => return (Err(e), 0),
    };
    let mut r = match rotate::Rotator::new(keys, progress, root, data_dir, steps) {
        Ok(r) => r,
        Err(e) => return (Err(e), 0),
    };
    let walked = walk::walk(&mut r, walk_root, data_dir);
    let changes = r.steps.done;
    let mut stats = std::mem::take(&mut r.stats);
    drop(r);
    stats.elapsed = began.elapsed();
    match walked {
        Ok(()) => {
            progress.finish(&stats);
            (Ok(stats), changes)
        }
        Err(e) => (Err(e), changes),
    }
}

/// A rotation stopped right before its change number `stop_at` (0-based),
/// as a crash there would leave the tree; and how many changes it made.
#[cfg(test)]
pub(crate) fn run_until(
    data_dir: &Path,
    old: &VolumeKeys,
    new: &VolumeKeys,
    progress: &mut dyn RotationProgress,
    stop_at: Option<u64>,
) -> (Result<RotationStats, RotationError>, u64) {
    let keys = Keys { old, new, from: Layout::Plain, to: Layout::Plain };
    run(data_dir, keys, progress, Steps { done: 0, stop_at })
}
