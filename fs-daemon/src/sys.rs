//! Every `unsafe` call of the daemon, each wrapped in a safe function.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::CString;

use nix::errno::Errno;

fn cstr(s: &[u8]) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

/// `getxattr(2)` (follows `/proc/self/fd` links to the object): the value of `name` on `path`.
pub fn get_xattr(path: &str, name: &str) -> Result<Vec<u8>, Errno> {
    let (p, n) = (cstr(path.as_bytes())?, cstr(name.as_bytes())?);
    loop {
        // SAFETY: both strings are NUL-terminated and live across the call;
        // a null buffer with size 0 asks only for the length.
        let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(Errno::last());
        }
        let mut buf = vec![0u8; len as usize];
        // SAFETY: `buf` is valid for `buf.len()` writable bytes.
        let got = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let e = Errno::last();
        if e != Errno::ERANGE {
            return Err(e); // ERANGE: the value grew between the calls; ask again.
        }
    }
}

/// `setxattr(2)`.
pub fn set_xattr(path: &str, name: &str, value: &[u8], flags: i32) -> Result<(), Errno> {
    let (p, n) = (cstr(path.as_bytes())?, cstr(name.as_bytes())?);
    // SAFETY: strings are NUL-terminated; `value` is valid for its length.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `listxattr(2)`: the attribute names on `path`.
pub fn list_xattr(path: &str) -> Result<Vec<Vec<u8>>, Errno> {
    let p = cstr(path.as_bytes())?;
    loop {
        // SAFETY: a null buffer with size 0 asks only for the length.
        let len = unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(Errno::last());
        }
        let mut buf = vec![0u8; len as usize];
        // SAFETY: `buf` is valid for `buf.len()` writable bytes.
        let got = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf.split(|&b| b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect());
        }
        let e = Errno::last();
        if e != Errno::ERANGE {
            return Err(e);
        }
    }
}

/// `removexattr(2)`.
pub fn remove_xattr(path: &str, name: &str) -> Result<(), Errno> {
    let (p, n) = (cstr(path.as_bytes())?, cstr(name.as_bytes())?);
    // SAFETY: both strings are NUL-terminated and live across the call.
    let r = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Locks every page this process touches, now and later, into RAM so key
/// material is never swapped out. MCL_ONFAULT locks pages only once used, so
/// large reserved-but-untouched buffers do not become resident.
pub fn lock_memory() -> Result<(), Errno> {
    // SAFETY: mlockall takes only flags and touches no Rust-visible memory.
    let r = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
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
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent { child }),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// The inode flag that lets a file only be appended to (`chattr +a`).
const FS_APPEND_FL: libc::c_long = 0x0000_0020;
nix::ioctl_read!(fs_ioc_getflags, b'f', 1, libc::c_long);
nix::ioctl_write_ptr!(fs_ioc_setflags, b'f', 2, libc::c_long);

/// Marks a finished journal segment append-only (FS_APPEND_FL). Filesystems
/// without inode flags (tmpfs) answer ENOTTY or EOPNOTSUPP.
pub fn set_append_only(path: &std::path::Path) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let mut flags: libc::c_long = 0;
    // SAFETY: `f` is an open descriptor and `flags` a valid c_long the
    // kernel writes the inode flags into.
    unsafe { fs_ioc_getflags(f.as_raw_fd(), &mut flags) }?;
    if flags & FS_APPEND_FL != 0 {
        return Ok(());
    }
    flags |= FS_APPEND_FL;
    // SAFETY: as above; the kernel only reads `flags`.
    unsafe { fs_ioc_setflags(f.as_raw_fd(), &flags) }?;
    Ok(())
}
