//! A directory's access and modification times, kept across the changes a
//! rotation makes to its entries (each rename, temporary and removal moves
//! its mtime) and across a crash in the middle of them.
//!
//! Before the first change to a directory's entries, its times go into the
//! xattr [`RECORD`] on the directory itself (an xattr, because writing one
//! changes only the ctime, and the root directory has no other place that
//! does not change its mtime) and are made durable. When the directory is
//! done, the times are put back and only then is the record removed, so a
//! run that resumes after a crash restores the times from before the first
//! run. The daemon lists only `user.cv.*` xattrs, so a record is never seen
//! through a mount.

use std::os::fd::AsFd;
use std::path::Path;

use super::error::RotationError;
use super::steps::Steps;
use super::sys::{self, Meta, Result};

/// The xattr holding a directory's times from before a rotation changed it.
pub const RECORD: &str = "user.callvault.rotation-times";
const RECORD_LEN: usize = 32;

/// The times of one directory and whether they are on record.
#[derive(Debug)]
pub(crate) struct DirTimes {
    atime: (i64, i64),
    mtime: (i64, i64),
    /// The record exists on disk (made by this run or an interrupted one).
    recorded: bool,
    /// This run changed the directory's entries.
    changed: bool,
    /// The filesystem has no user xattrs: the times are kept in memory only.
    unsupported: bool,
}

fn encode(atime: (i64, i64), mtime: (i64, i64)) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    for (i, v) in [atime.0, atime.1, mtime.0, mtime.1].into_iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

fn decode(b: &[u8]) -> Option<((i64, i64), (i64, i64))> {
    if b.len() != RECORD_LEN {
        return None;
    }
    let v = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i * 8..i * 8 + 8]);
        i64::from_le_bytes(a)
    };
    let valid = |ns: i64| (0..1_000_000_000).contains(&ns);
    (valid(v(1)) && valid(v(3))).then(|| ((v(0), v(1)), (v(2), v(3))))
}

impl DirTimes {
    /// The times of directory `fd` (described by `m`): from its record if an
    /// interrupted rotation left one, else as they are now.
    pub fn load(fd: impl AsFd, m: &Meta, path: &Path) -> Result<DirTimes> {
        let mut t = DirTimes { atime: m.atime, mtime: m.mtime, recorded: false, changed: false, unsupported: false };
        if let Some(b) = sys::xattr_get(fd, RECORD.as_bytes(), path)? {
            let (atime, mtime) = decode(&b).ok_or_else(|| RotationError::Damaged {
                path: path.to_path_buf(),
                what: format!("its {RECORD} xattr holds {} bytes that are not a times record", b.len()),
            })?;
            (t.atime, t.mtime, t.recorded) = (atime, mtime, true);
        }
        Ok(t)
    }

    /// Whether a record of an interrupted rotation was found or made.
    pub fn recorded(&self) -> bool {
        self.recorded
    }

    /// Call before any change to the entries of directory `fd`. Ok(false):
    /// the filesystem keeps no user xattrs, so a crash from here on loses
    /// this directory's times (said once by the caller).
    pub fn before_change(&mut self, fd: impl AsFd, path: &Path, steps: &mut Steps) -> Result<bool> {
        self.changed = true;
        if self.recorded || self.unsupported {
            return Ok(!self.unsupported);
        }
        let fd = fd.as_fd();
        steps.tick(path)?;
        if sys::xattr_set(fd, RECORD.as_bytes(), &encode(self.atime, self.mtime), path)? {
            sys::fsync(fd, path)?;
            self.recorded = true;
            Ok(true)
        } else {
            self.unsupported = true;
            Ok(false)
        }
    }

    /// Puts the times back once the directory's entries are done, then
    /// drops the record.
    pub fn finish(self, fd: impl AsFd, path: &Path, steps: &mut Steps) -> Result<()> {
        if !self.changed && !self.recorded {
            return Ok(());
        }
        let fd = fd.as_fd();
        steps.tick(path)?;
        sys::set_times(fd, &sys::timestamps(self.atime, self.mtime), path)?;
        // The entries changed and the restored times are durable before the
        // record goes (and before the staging area is removed).
        sys::fsync(fd, path)?;
        if self.recorded {
            steps.tick(path)?;
            sys::xattr_remove(fd, RECORD.as_bytes(), path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let (a, m) = ((1_234_567_890, 5), (-3, 999_999_999));
        assert_eq!(decode(&encode(a, m)), Some((a, m)));
        assert_eq!(decode(&encode(a, m)[..31]), None);
        assert_eq!(decode(&encode((0, 1_000_000_000), m)), None);
        assert_eq!(decode(&[]), None);
    }
}
