//! The walk over the backing tree, depth first, holding one directory
//! descriptor at a time (plus the visitor's own): a child is opened from its
//! parent, and the parent is opened again through the child's `..` when the
//! child is done (and checked to be the same directory). So no nesting depth
//! runs out of descriptors or stack.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::error::RotationError;
use super::sys::{self, Result};

/// What the walk does at each directory and entry.
pub(crate) trait Visitor {
    /// Per-directory state, from `enter` to `leave`.
    type Dir;
    /// A directory is entered: its state and the entries to visit.
    fn enter(&mut self, fd: &OwnedFd, path: &Path, is_root: bool) -> Result<(Self::Dir, Vec<OsString>)>;
    /// One entry of the directory `fd`; Some(descriptor, path) to descend
    /// into it (a directory, opened by the visitor).
    fn entry(&mut self, dir: &mut Self::Dir, fd: &OwnedFd, name: &OsStr) -> Result<Option<(OwnedFd, PathBuf)>>;
    /// Every entry of the directory (and below) was visited.
    fn leave(&mut self, dir: Self::Dir, fd: &OwnedFd, is_root: bool) -> Result<()>;
}

struct Frame<D> {
    dir: D,
    entries: Vec<OsString>,
    next: usize,
    dev: u64,
    ino: u64,
    path: PathBuf,
}

/// Walks the tree under `root` (the directory at `root_path`).
pub(crate) fn walk<V: Visitor>(v: &mut V, root: OwnedFd, root_path: &Path) -> Result<()> {
    let m = sys::fstat(&root, root_path)?;
    let (dir, entries) = v.enter(&root, root_path, true)?;
    let mut frames = vec![Frame { dir, entries, next: 0, dev: m.dev, ino: m.ino, path: root_path.to_path_buf() }];
    let mut cur = root;
    while let Some(top) = frames.last_mut() {
        if let Some(name) = top.entries.get(top.next).cloned() {
            top.next += 1;
            if let Some((child, path)) = v.entry(&mut top.dir, &cur, &name)? {
                let m = sys::fstat(&child, &path)?;
                let (dir, entries) = v.enter(&child, &path, false)?;
                frames.push(Frame { dir, entries, next: 0, dev: m.dev, ino: m.ino, path });
                cur = child;
            }
            continue;
        }
        let Some(done) = frames.pop() else { break };
        v.leave(done.dir, &cur, frames.is_empty())?;
        let Some(parent) = frames.last() else { break };
        let up = sys::open_dir(&cur, "..", &parent.path)?;
        let m = sys::fstat(&up, &parent.path)?;
        if (m.dev, m.ino) != (parent.dev, parent.ino) {
            return Err(RotationError::Conflict {
                path: done.path,
                what: "this directory was moved while the rotation walked it".into(),
            });
        }
        cur = up;
    }
    Ok(())
}
