//! The daemon's system calls that the std library does not offer: extended
//! attributes, memory locking, inode flags (through `rustix`'s safe
//! wrappers) and the one `unsafe` call left, `fork`.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use nix::errno::Errno;
use rustix::fs::{IFlags, XattrFlags};
use rustix::mm::MlockAllFlags;

/// rustix and nix name the same kernel errno.
fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// Reads a value whose length may change between asking and reading:
/// `query` gives the length, `read` fills a buffer of it; ERANGE means the
/// value grew in between, so ask again.
fn read_sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    read: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> Result<Vec<u8>, Errno> {
    loop {
        let len = query().map_err(errno)?;
        if len == 0 {
            // rustix treats an empty buffer as "nothing to read", not as a
            // length query; an empty value needs no second call.
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; len];
        match read(&mut buf) {
            Ok(got) => {
                buf.truncate(got);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

/// `getxattr(2)` (follows `/proc/self/fd` links to the object): the value of `name` on `path`.
/// A path or name holding a NUL byte is EINVAL.
pub fn get_xattr(path: &str, name: &str) -> Result<Vec<u8>, Errno> {
    read_sized(|| rustix::fs::getxattr_query(path, name), |buf| rustix::fs::getxattr(path, name, buf))
}

/// `setxattr(2)`; `flags` are `XATTR_CREATE` / `XATTR_REPLACE` as the kernel
/// passed them (unknown bits go to the kernel, which refuses them).
pub fn set_xattr(path: &str, name: &str, value: &[u8], flags: i32) -> Result<(), Errno> {
    let flags = XattrFlags::from_bits_retain(flags as u32);
    rustix::fs::setxattr(path, name, value, flags).map_err(errno)
}

/// `listxattr(2)`: the attribute names on `path`.
pub fn list_xattr(path: &str) -> Result<Vec<Vec<u8>>, Errno> {
    let buf = read_sized(|| rustix::fs::listxattr_query(path), |buf| rustix::fs::listxattr(path, buf))?;
    Ok(buf.split(|&b| b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect())
}

/// `removexattr(2)`.
pub fn remove_xattr(path: &str, name: &str) -> Result<(), Errno> {
    rustix::fs::removexattr(path, name).map_err(errno)
}

/// Locks every page this process touches, now and later, into RAM so key
/// material is never swapped out. MCL_ONFAULT locks pages only once used, so
/// large reserved-but-untouched buffers do not become resident.
pub fn lock_memory() -> Result<(), Errno> {
    rustix::mm::mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT).map_err(errno)
}

/// What `fork` returned, seen from the calling side.
pub enum Forked {
    Parent { child: nix::unistd::Pid },
    Child,
}

/// Forks the process. Called only at start-up, before any thread exists, so
/// the child is a complete copy with no lock held by a vanished thread.
pub fn fork_before_threads() -> Result<Forked, Errno> {
    // SAFETY: the caller guarantees the process is still single-threaded.
    // Neither nix nor rustix offers a safe fork: it cannot be safe while
    // other threads may hold locks.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent { child }),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Marks a finished journal segment append-only (FS_APPEND_FL). Filesystems
/// without inode flags (tmpfs) answer ENOTTY or EOPNOTSUPP.
///
/// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS are numbered as if they took a `long`,
/// but the kernel reads and writes an `int`; rustix passes a 32-bit value
/// (the raw libc version passed a `long`, which only worked on little-endian
/// hosts because the upper half was zero).
pub fn set_append_only(path: &std::path::Path) -> Result<(), Errno> {
    let f = std::fs::File::open(path).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let flags = rustix::fs::ioctl_getflags(&f).map_err(errno)?;
    if flags.contains(IFlags::APPEND) {
        return Ok(());
    }
    rustix::fs::ioctl_setflags(&f, flags | IFlags::APPEND).map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in a temporary directory (user xattrs work on ext4 and, since
    /// Linux 6.6, on tmpfs).
    fn file() -> (tempfile::TempDir, String) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let s = p.to_str().unwrap().to_owned();
        (d, s)
    }

    #[test]
    fn xattrs_round_trip_list_and_remove() {
        let (_d, p) = file();
        assert_eq!(list_xattr(&p).unwrap(), Vec::<Vec<u8>>::new());
        set_xattr(&p, "user.a", b"value one", 0).unwrap();
        set_xattr(&p, "user.empty", b"", 0).unwrap();
        assert_eq!(get_xattr(&p, "user.a").unwrap(), b"value one");
        assert_eq!(get_xattr(&p, "user.empty").unwrap(), b"");
        let mut names = list_xattr(&p).unwrap();
        names.sort();
        assert_eq!(names, vec![b"user.a".to_vec(), b"user.empty".to_vec()]);
        // XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one.
        assert_eq!(set_xattr(&p, "user.a", b"x", libc::XATTR_CREATE), Err(Errno::EEXIST));
        assert_eq!(set_xattr(&p, "user.b", b"x", libc::XATTR_REPLACE), Err(Errno::ENODATA));
        set_xattr(&p, "user.a", &[7u8; 3000], libc::XATTR_REPLACE).unwrap();
        assert_eq!(get_xattr(&p, "user.a").unwrap(), vec![7u8; 3000]);
        remove_xattr(&p, "user.a").unwrap();
        assert_eq!(get_xattr(&p, "user.a"), Err(Errno::ENODATA));
        assert_eq!(remove_xattr(&p, "user.a"), Err(Errno::ENODATA));
    }

    #[test]
    fn nul_bytes_and_missing_files_are_errors_not_panics() {
        let (_d, p) = file();
        assert_eq!(get_xattr(&p, "user.\0a"), Err(Errno::EINVAL));
        assert_eq!(set_xattr("/no/such\0file", "user.a", b"", 0), Err(Errno::EINVAL));
        assert_eq!(list_xattr("/no/such/file"), Err(Errno::ENOENT));
    }

    #[test]
    fn append_only_is_set_or_refused_cleanly() {
        let (_d, p) = file();
        match set_append_only(std::path::Path::new(&p)) {
            // As root on ext4/xfs/btrfs: the flag is set and the file refuses
            // writes other than appends.
            Ok(()) => {
                let flags = rustix::fs::ioctl_getflags(std::fs::File::open(&p).unwrap()).unwrap();
                assert!(flags.contains(IFlags::APPEND));
                let w = std::fs::OpenOptions::new().write(true).open(&p);
                assert!(w.is_err(), "an append-only file opened for overwriting");
                // Setting it again is a no-op; clear it so the tempdir can go.
                set_append_only(std::path::Path::new(&p)).unwrap();
                let f = std::fs::File::open(&p).unwrap();
                rustix::fs::ioctl_setflags(&f, flags - IFlags::APPEND).unwrap();
            }
            Err(e) => assert!(matches!(e, Errno::ENOTTY | Errno::EOPNOTSUPP | Errno::EPERM), "{e}"),
        }
    }
}
