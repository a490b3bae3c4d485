//! File attributes as the vault reports them, built from backing `stat`s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::stat::{FileStat, SFlag};

use super::inode::Kind;

/// What `stat` shows for an object in the mounted tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub kind: Kind,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
}

/// The caller of an operation, from the kernel's request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// A time to set: a given instant, or the current time.
#[derive(Debug, Clone, Copy)]
pub enum SetTime {
    Now,
    At(SystemTime),
}

/// Attribute changes requested by `setattr`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

pub fn kind_of(mode: u32) -> Option<Kind> {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => Some(Kind::File),
        SFlag::S_IFDIR => Some(Kind::Dir),
        SFlag::S_IFLNK => Some(Kind::Symlink),
        SFlag::S_IFIFO => Some(Kind::Fifo),
        SFlag::S_IFSOCK => Some(Kind::Socket),
        _ => None,
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

/// Builds attributes from a backing `stat`, with the plaintext size supplied.
pub fn from_stat(ino: u64, kind: Kind, st: &FileStat, size: u64) -> Attr {
    Attr {
        ino,
        size,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        kind,
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
    }
}

/// Plaintext length of a symlink target from the length of its stored
/// (base64url, unpadded) form: nonce and SIV tag take 32 bytes.
pub fn link_target_len(stored_len: u64) -> u64 {
    (stored_len * 3 / 4).saturating_sub(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_sizes_are_exact() {
        for target in 0..600u64 {
            let stored = ((target + 32) * 4).div_ceil(3);
            assert_eq!(link_target_len(stored), target);
        }
    }
}
