//! Operations on names: lookup, create, mkdir, unlink, rmdir, rename, link,
//! symlink, mknod and directory listings.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use callvault::fileheader::NameBinding;
use callvault::journal::Actor;
use callvault::layout::Layout;
use callvault::names::{self, BackingName, DIRID_FILE, EntryKind};
use log::{error, warn};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};

use super::attr::kind_of;
use super::data::DirHandle;
use super::file::OpenFile;
use super::inode::{Inode, Kind, Location};
use callvault::policy::Right;

use super::paths::VolPath;
use super::{Attr, Caller, Vault, io_errno, proc_path};

/// A name in a directory, resolved under the namespace lock: what a name
/// operation acts on and what its rights and records refer to.
pub struct At {
    pub p: Arc<Inode>,
    pub name: Vec<u8>,
    pub bn: BackingName,
    pub path: VolPath,
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: Vec<u8>,
}

impl Vault {
    /// Looks `name` up in directory `parent`; the kernel now holds one more reference.
    ///
    /// Directories can be traversed by name without a grant, like a Unix
    /// directory with only `x` permission: listing one, or seeing anything
    /// that is not a directory, needs `list`. So a refused access is recorded
    /// against the file that was asked for, not the first directory on the way.
    pub fn lookup(&self, parent: u64, name: &[u8], who: &Caller) -> Result<Attr, Errno> {
        let _ns = self.names_shared();
        self.lookup_locked(parent, name, who)
    }

    /// `lookup`, with the namespace lock held by the caller.
    pub(super) fn lookup_locked(&self, parent: u64, name: &[u8], who: &Caller) -> Result<Attr, Errno> {
        let p = self.dir_inode(parent)?;
        let bn = self.backing_name(&p, name)?;
        let st = fstatat(&p.fd()?, bn.entry(), AtFlags::AT_SYMLINK_NOFOLLOW);
        let is_dir = st.as_ref().is_ok_and(|st| kind_of(st.st_mode) == Some(Kind::Dir));
        if !is_dir {
            self.allow_child(who, "lookup", parent, name, Right::List)?;
        }
        self.child_at(&p, bn.entry(), name, st?).map(|(attr, _)| attr)
    }

    /// Finds (or adds) the inode of backing entry `entry` in `p`, recording
    /// one kernel reference, and returns its attributes.
    fn child(&self, p: &Inode, entry: &str, name: &[u8]) -> Result<(Attr, Arc<Inode>), Errno> {
        self.child_at(p, entry, name, fstatat(&p.fd()?, entry, AtFlags::AT_SYMLINK_NOFOLLOW)?)
    }

    /// `child`, given what `fstatat` just said of `entry`.
    fn child_at(&self, p: &Inode, entry: &str, name: &[u8], st: FileStat) -> Result<(Attr, Arc<Inode>), Errno> {
        let kind = kind_of(st.st_mode).ok_or(Errno::EIO)?;
        let ino = self.inomap.fuse_ino(st.st_ino);
        let inode = match self.inodes.get(ino) {
            Some(existing) => {
                self.inodes.add_lookup(&existing);
                existing
            }
            None => {
                let fd = openat(&p.fd()?, entry, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
                let again = fstatat(&fd, "", AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW)?;
                if again.st_ino != st.st_ino {
                    return Err(Errno::EAGAIN); // replaced between stat and open; the kernel retries
                }
                let loc = Location { parent: p.ino, name: name.to_vec() };
                self.inodes.remember(ino, kind, fd, &again, loc)
            }
        };
        inode.set_location(p.ino, name);
        Ok((self.attr_of(&inode, &st), inode))
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    /// Writes the side file of a long name (idempotent: its content is a
    /// function of the directory and the name).
    fn write_long_name(&self, p: &Inode, bn: &BackingName) -> Result<(), Errno> {
        let (Some(file), BackingName::Long { full, .. }) = (bn.name_file(), bn) else {
            return Ok(());
        };
        match openat(
            &p.fd()?,
            file.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o400),
        ) {
            Ok(fd) => File::from(fd).write_all(full.as_bytes()).map_err(io_errno),
            Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn remove_long_name(&self, p: &Inode, bn: &BackingName) {
        if let (Some(file), Ok(fd)) = (bn.name_file(), p.fd()) {
            let _ = unlinkat(&fd, file.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }

    /// Gives a new backing object to its creator (only possible as root).
    fn give_to(&self, fd: impl AsFd, path: &str, caller: &Caller, flags: AtFlags) -> Result<(), Errno> {
        if self.as_root {
            fchownat(fd, path, Some(Uid::from_raw(caller.uid)), Some(Gid::from_raw(caller.gid)), flags)?;
        }
        Ok(())
    }

    /// Resolves `name` in directory `parent`: the directory, the backing
    /// name and the true path. Call with the namespace lock held, so the path
    /// stays the one acted on.
    pub(super) fn at(&self, parent: u64, name: &[u8]) -> Result<At, Errno> {
        let p = self.dir_inode(parent)?;
        let path = self.child_path(parent, name)?;
        let bn = self.backing_name(&p, name)?;
        Ok(At { p, name: name.to_vec(), bn, path })
    }

    /// Whether `at` names an existing object, and its `stat` if so.
    pub(super) fn existing(&self, at: &At) -> Result<Option<FileStat>, Errno> {
        match fstatat(&at.p.fd()?, at.bn.entry(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates and opens a regular file at `at` (O_EXCL on the backing
    /// store). Returns its attributes and handle.
    pub(super) fn do_create(
        &self,
        at: &At,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: &Caller,
        actor: Option<Actor>,
    ) -> Result<(Attr, u64), Errno> {
        let (p, bn) = (&at.p, &at.bn);
        self.write_long_name(p, bn)?;
        let perm = Mode::from_bits_truncate(mode & !umask & 0o7777);
        let fd = openat(
            &p.fd()?,
            bn.entry(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            perm,
        )?;
        // The new file is ours (O_EXCL): its descriptor answers for it, and
        // a caller who is already its owner (the daemon's own user) needs no chown.
        let mut st = fstat(&fd)?;
        if self.as_root && (st.st_uid, st.st_gid) != (caller.uid, caller.gid) {
            self.give_to(&fd, "", caller, AtFlags::AT_EMPTY_PATH)?;
            st = fstat(&fd)?;
        }
        let (attr, inode) = self.child_at(p, bn.entry(), &at.name, st)?;
        let fh = self
            .open_with(&inode, flags, Some(File::from(fd)), caller, at.path.clone(), actor)
            .inspect_err(|_| self.forget(attr.ino, 1))?;
        Ok((attr, fh))
    }

    /// Creates a directory: built under a temporary name with its `.dirid`
    /// and renamed into place, so a crash never leaves a directory without an ID.
    pub(super) fn do_mkdir(&self, at: &At, mode: u32, umask: u32, caller: &Caller) -> Result<Attr, Errno> {
        let (p, bn) = (&at.p, &at.bn);
        if self.existing(at)?.is_some() {
            return Err(Errno::EEXIST);
        }
        self.write_long_name(p, bn)?;
        let tmp = temp_name()?;
        let pfd = p.fd()?;
        mkdirat(&pfd, tmp.as_str(), Mode::from_bits_truncate(mode & !umask & 0o7777))?;
        let built = (|| {
            let dfd = openat(
                &pfd,
                tmp.as_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let id: [u8; names::DIRID_LEN] = callvault::random::array().map_err(|_| Errno::EIO)?;
            write_dirid(&dfd, &id)?;
            self.give_to(&dfd, "", caller, AtFlags::AT_EMPTY_PATH)?;
            renameat2(&pfd, tmp.as_str(), &pfd, bn.entry(), RenameFlags::RENAME_NOREPLACE)
        })();
        if let Err(e) = built {
            remove_dir_tree_of_housekeeping(&pfd, &tmp);
            return Err(e);
        }
        self.child(p, bn.entry(), &at.name).map(|(a, _)| a)
    }

    pub(super) fn do_unlink(&self, at: &At) -> Result<(), Errno> {
        let pfd = at.p.fd()?;
        let st = fstatat(&pfd, at.bn.entry(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if kind_of(st.st_mode) == Some(Kind::Dir) {
            return Err(Errno::EISDIR);
        }
        self.keep_descriptor_of_ino(st.st_ino); // it may lose its last name
        unlinkat(&pfd, at.bn.entry(), UnlinkatFlags::NoRemoveDir)?;
        self.remove_long_name(&at.p, &at.bn);
        Ok(())
    }

    /// Removes an empty directory. Needs the namespace lock exclusively.
    pub(super) fn do_rmdir(&self, at: &At) -> Result<(), Errno> {
        let pfd = at.p.fd()?;
        let undo = empty_for_removal(&pfd, at.bn.entry())?;
        self.keep_descriptor_of(&at.p, at.bn.entry()); // it loses its name
        if let Err(e) = unlinkat(&pfd, at.bn.entry(), UnlinkatFlags::RemoveDir) {
            undo.restore(&pfd, at.bn.entry());
            return Err(e);
        }
        self.remove_long_name(&at.p, &at.bn);
        Ok(())
    }

    /// Renames `from` to `to`. Needs the namespace lock exclusively.
    pub(super) fn do_rename(&self, from: &At, to: &At, flags: RenameFlags) -> Result<(), Errno> {
        let (p, np) = (&from.p, &to.p);
        let (bo, bn) = (&from.bn, &to.bn);
        let (pfd, npfd) = (p.fd()?, np.fd()?);
        let src = fstatat(&pfd, bo.entry(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        // Replacing an empty directory: the backing one still holds its .dirid.
        let mut undo = None;
        if !exchange
            && !flags.contains(RenameFlags::RENAME_NOREPLACE)
            && kind_of(src.st_mode) == Some(Kind::Dir)
            && let Ok(dst) = fstatat(&npfd, bn.entry(), AtFlags::AT_SYMLINK_NOFOLLOW)
        {
            if kind_of(dst.st_mode) != Some(Kind::Dir) {
                return Err(Errno::ENOTDIR);
            }
            if dst.st_ino != src.st_ino {
                undo = Some(empty_for_removal(&npfd, bn.entry())?);
            }
        }
        self.write_long_name(np, bn)?;
        if !exchange && !flags.contains(RenameFlags::RENAME_NOREPLACE) {
            self.keep_descriptor_of(np, bn.entry()); // a replaced target may lose its last name
        }
        // Format 3: each regular file moved accepts its new name before the
        // move and forgets its old one after, so a crash anywhere in
        // between leaves it readable under whichever name it has.
        let mut moved = Vec::new();
        if self.layout == Layout::Tagged {
            let (old_b, new_b) = (self.binding_at(p, &from.name)?, self.binding_at(np, &to.name)?);
            if kind_of(src.st_mode) == Some(Kind::File) {
                moved.push((self.open_entry(p, bo.entry(), &src, old_b)?, old_b, new_b));
            }
            if exchange
                && let Ok(dst) = fstatat(&npfd, bn.entry(), AtFlags::AT_SYMLINK_NOFOLLOW)
                && kind_of(dst.st_mode) == Some(Kind::File)
            {
                moved.push((self.open_entry(np, bn.entry(), &dst, new_b)?, new_b, old_b));
            }
            for (f, was, will) in &moved {
                f.rebind(&self.keys, *will, Some(*was))?;
            }
        }
        if let Err(e) = renameat2(&pfd, bo.entry(), &npfd, bn.entry(), flags) {
            if let Some(u) = undo {
                u.restore(&npfd, bn.entry());
            }
            for (f, was, _) in &moved {
                if let Err(e) = f.rebind(&self.keys, *was, None) {
                    warn!("a file kept its new name in its header after a failed rename ({e}); it still reads");
                }
            }
            return Err(e);
        }
        for (f, _, now) in &moved {
            if let Err(e) = f.rebind(&self.keys, *now, None) {
                warn!("a renamed file still accepts its old name in its header ({e}); it reads under its new one");
            }
        }
        if !exchange && bo.entry() != bn.entry() {
            self.remove_long_name(p, bo);
        }
        if let Some(i) = self.inodes.get(self.inomap.fuse_ino(src.st_ino)) {
            i.set_location(np.ino, &to.name);
        }
        if exchange
            && let Ok(st) = fstatat(&pfd, bo.entry(), AtFlags::AT_SYMLINK_NOFOLLOW)
            && let Some(i) = self.inodes.get(self.inomap.fuse_ino(st.st_ino))
        {
            i.set_location(p.ino, &from.name);
        }
        Ok(())
    }

    /// The open state of regular file `entry` in directory `dir` (backing
    /// `st`), reached through the name bound as `binding`: its inode's if
    /// the kernel knows it, else loaded for this call.
    fn open_entry(
        &self,
        dir: &Inode,
        entry: &str,
        st: &FileStat,
        binding: NameBinding,
    ) -> Result<Arc<OpenFile>, Errno> {
        if let Some(i) = self.inodes.get(self.inomap.fuse_ino(st.st_ino)) {
            return self.open_file(&i, None);
        }
        let fd = openat(&dir.fd()?, entry, OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())?;
        let file = OpenFile::load(File::from(fd), st.st_ino, &self.keys, self.layout, Some(binding), true)?;
        Ok(Arc::new(file))
    }

    /// Links `inode` at `to`.
    pub(super) fn do_link(&self, inode: &Inode, to: &At) -> Result<Attr, Errno> {
        if inode.kind == Kind::Dir {
            return Err(Errno::EPERM);
        }
        let (np, bn) = (&to.p, &to.bn);
        self.write_long_name(np, bn)?;
        let (fd, npfd) = (inode.fd()?, np.fd()?);
        if self.as_root {
            linkat(&fd, "", &npfd, bn.entry(), AtFlags::AT_EMPTY_PATH)?;
        } else {
            linkat(nix::fcntl::AT_FDCWD, proc_path(&fd).as_str(), &npfd, bn.entry(), AtFlags::AT_SYMLINK_FOLLOW)?;
        }
        self.child(np, bn.entry(), &to.name).map(|(a, _)| a)
    }

    pub(super) fn do_symlink(&self, at: &At, target: &[u8], caller: &Caller) -> Result<Attr, Errno> {
        let (p, bn) = (&at.p, &at.bn);
        let stored = names::encrypt_link_target(&self.keys.link_targets, target).map_err(|_| Errno::EIO)?;
        if stored.len() >= libc::PATH_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        self.write_long_name(p, bn)?;
        let pfd = p.fd()?;
        symlinkat(stored.as_str(), &pfd, bn.entry())?;
        self.give_to(&pfd, bn.entry(), caller, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        self.child(p, bn.entry(), &at.name).map(|(a, _)| a)
    }

    /// Named pipes and sockets are kept (regular files go through create);
    /// device nodes have no place in a recording volume and are refused
    /// (docs/SEMANTICS.md) before anything is recorded as intended.
    pub(super) fn do_mknod(&self, at: &At, kind: SFlag, mode: u32, umask: u32, caller: &Caller) -> Result<Attr, Errno> {
        let (p, bn) = (&at.p, &at.bn);
        self.write_long_name(p, bn)?;
        let pfd = p.fd()?;
        mknodat(&pfd, bn.entry(), kind, Mode::from_bits_truncate(mode & !umask & 0o7777), 0)?;
        self.give_to(&pfd, bn.entry(), caller, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        self.child(p, bn.entry(), &at.name).map(|(a, _)| a)
    }

    /// Reads a whole directory into a handle (stable offsets for readdir).
    /// Entries the caller may not `list` are left out.
    pub fn opendir(&self, ino: u64, who: &Caller) -> Result<u64, Errno> {
        let dir = self.dir_inode(ino)?;
        self.allow(who, "readdir", ino, Right::List)?;
        let dir_path = self.path_of(ino)?;
        let id = self.dir_id(&dir)?;
        let parent = dir.location().parent;
        let mut entries = vec![
            DirEntry { ino, kind: Kind::Dir, name: b".".to_vec() },
            DirEntry { ino: parent, kind: Kind::Dir, name: b"..".to_vec() },
        ];
        let mut d = nix::dir::Dir::openat(
            &dir.fd()?,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        for e in d.iter() {
            let e = e?;
            let Ok(backing) = e.file_name().to_str() else {
                continue;
            };
            let full = match names::classify(backing) {
                EntryKind::Internal => continue,
                EntryKind::Short(s) => s.to_string(),
                EntryKind::Long(hashed) => match read_long_name(&*dir.fd()?, hashed) {
                    Some(full) => full,
                    None => {
                        warn!("directory inode {ino}: long name {hashed} has no valid side file; not listed");
                        continue;
                    }
                },
            };
            let name = match names::decrypt_name(&self.keys.names, &id, &full) {
                Ok(n) => n,
                Err(err) => {
                    warn!("directory inode {ino}: {err}; not listed");
                    continue;
                }
            };
            let kind = match e.file_type() {
                Some(nix::dir::Type::Directory) => Kind::Dir,
                Some(nix::dir::Type::Symlink) => Kind::Symlink,
                Some(nix::dir::Type::Fifo) => Kind::Fifo,
                Some(nix::dir::Type::Socket) => Kind::Socket,
                Some(nix::dir::Type::File) => Kind::File,
                _ => {
                    match fstatat(&dir.fd()?, backing, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .ok()
                        .and_then(|s| kind_of(s.st_mode))
                    {
                        Some(k) => k,
                        None => continue,
                    }
                }
            };
            // A name too deep to judge is not listed (it cannot be used either).
            let Ok(child) = dir_path.child(&name) else { continue };
            if self.access.check(who, &child.text, Right::List).is_err() {
                continue;
            }
            entries.push(DirEntry { ino: self.inomap.fuse_ino(e.ino()), kind, name });
        }
        Ok(self.handles.add_dir(DirHandle { entries }))
    }

    /// Entries of an open directory from `offset` on (offset i+1 follows entry i).
    pub fn readdir(&self, fh: u64) -> Result<Arc<DirHandle>, Errno> {
        self.handles.dir(fh)
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.take_dir(fh);
    }
}

fn temp_name() -> Result<String, Errno> {
    let r: [u8; 12] = callvault::random::array().map_err(|_| Errno::EIO)?;
    Ok(format!("{}{}", names::TMP_PREFIX, r.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn write_dirid(dir: &OwnedFd, id: &[u8; names::DIRID_LEN]) -> Result<(), Errno> {
    let fd = openat(
        dir,
        DIRID_FILE,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o400),
    )?;
    let mut f = File::from(fd);
    f.write_all(id).and_then(|_| f.sync_all()).map_err(io_errno)
}

fn read_long_name(dir: &OwnedFd, hashed: &str) -> Option<String> {
    let file = format!("{hashed}{}", names::LONG_NAME_SUFFIX);
    let fd = openat(dir, file.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty()).ok()?;
    let mut s = String::new();
    std::io::Read::read_to_string(&mut File::from(fd).take(4096), &mut s).ok()?;
    names::long_name_matches(hashed, &s).then_some(s)
}

use std::io::Read as _;

/// What was removed from a directory to let the backing rmdir/rename succeed,
/// so it can be put back if that fails.
pub(super) struct Emptied {
    dir_id: Option<[u8; names::DIRID_LEN]>,
}

impl Emptied {
    fn restore(self, parent: &OwnedFd, entry: &str) {
        let Some(id) = self.dir_id else { return };
        let restored = openat(
            parent,
            entry,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .and_then(|d| write_dirid(&d, &id));
        if let Err(e) = restored {
            error!("could not restore a directory ID after a failed removal: {e}");
        }
    }
}

/// Checks that backing directory `entry` holds nothing visible (ENOTEMPTY
/// otherwise) and removes its housekeeping files.
fn empty_for_removal(parent: &OwnedFd, entry: &str) -> Result<Emptied, Errno> {
    let dfd = openat(
        parent,
        entry,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut internal = Vec::new();
    {
        let mut d =
            nix::dir::Dir::openat(&dfd, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
        for e in d.iter() {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let Ok(s) = std::str::from_utf8(n) else {
                return Err(Errno::ENOTEMPTY);
            };
            if names::classify(s) != EntryKind::Internal {
                return Err(Errno::ENOTEMPTY);
            }
            internal.push(s.to_string());
        }
    }
    let mut dir_id = None;
    if let Ok(fd) = openat(&dfd, DIRID_FILE, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        let mut id = [0u8; names::DIRID_LEN];
        if File::from(fd).read_exact(&mut id).is_ok() {
            dir_id = Some(id);
        }
    }
    for name in internal {
        if unlinkat(&dfd, name.as_str(), UnlinkatFlags::NoRemoveDir) == Err(Errno::EISDIR) {
            remove_dir_tree_of_housekeeping(&dfd, &name);
        }
    }
    Ok(Emptied { dir_id })
}

/// Removes a half-built directory (a `.tmp-*` holding only its `.dirid`).
fn remove_dir_tree_of_housekeeping(parent: &OwnedFd, name: &str) {
    if let Ok(d) =
        openat(parent, name, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
    {
        let _ = unlinkat(&d, DIRID_FILE, UnlinkatFlags::NoRemoveDir);
    }
    let _ = unlinkat(parent, name, UnlinkatFlags::RemoveDir);
}
