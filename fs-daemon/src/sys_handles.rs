//! File handles (`name_to_handle_at(2)`, `open_by_handle_at(2)`): the
//! `unsafe` calls that let the inode table close a backing descriptor and
//! reopen the same object later, each wrapped in a safe function.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

/// The largest handle the kernel hands out (`MAX_HANDLE_SZ`).
const MAX_HANDLE_SZ: usize = libc::MAX_HANDLE_SZ as usize;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct HandleBuf {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE_SZ],
}

/// An opaque, filesystem-chosen name of one object (inode number and
/// generation on ext4 and tmpfs: 8 or 12 bytes), valid on its mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHandle {
    kind: i32,
    bytes: Box<[u8]>,
}

/// The handle of the object `fd` refers to (any descriptor, `O_PATH` too;
/// symlinks themselves, not their targets) and the id of its mount.
/// `EOPNOTSUPP`: the filesystem cannot export handles.
pub fn handle_of(fd: BorrowedFd<'_>) -> Result<(FileHandle, i32), Errno> {
    let mut buf =
        HandleBuf { handle_bytes: MAX_HANDLE_SZ as libc::c_uint, handle_type: 0, f_handle: [0; MAX_HANDLE_SZ] };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `buf` is a `struct file_handle` whose `handle_bytes` says how
    // many bytes follow it, all writable; the path is a NUL-terminated empty
    // string (AT_EMPTY_PATH: the object of `fd` itself); `mount_id` is a
    // writable int. All live across the call.
    let r = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            c"".as_ptr(),
            (&raw mut buf).cast::<libc::file_handle>(),
            &raw mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    let len = (buf.handle_bytes as usize).min(MAX_HANDLE_SZ);
    Ok((FileHandle { kind: buf.handle_type, bytes: buf.f_handle[..len].into() }, mount_id))
}

/// Opens the object `handle` names on the filesystem `mount` is on.
/// `mount` must be a real descriptor (the kernel refuses `O_PATH` ones);
/// needs CAP_DAC_READ_SEARCH (EPERM otherwise); ESTALE if the object is gone.
pub fn open_by_handle(mount: BorrowedFd<'_>, handle: &FileHandle, flags: OFlag) -> Result<OwnedFd, Errno> {
    let mut buf = HandleBuf {
        handle_bytes: handle.bytes.len() as libc::c_uint,
        handle_type: handle.kind,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let len = handle.bytes.len().min(MAX_HANDLE_SZ);
    buf.f_handle[..len].copy_from_slice(&handle.bytes[..len]);
    // SAFETY: `buf` is a valid `struct file_handle` of `handle_bytes` bytes
    // (at most MAX_HANDLE_SZ, the size of its array); the kernel only reads it.
    let fd =
        unsafe { libc::open_by_handle_at(mount.as_raw_fd(), (&raw mut buf).cast::<libc::file_handle>(), flags.bits()) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
