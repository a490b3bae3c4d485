//! Extended attributes: the daemon's (`user.cv.*`, name and value under the
//! xattr key) are re-encrypted; any other is the backing object's own and
//! copied as it is.

use std::os::fd::AsFd;
use std::path::Path;

use super::error::RotationError;
use super::steps::Steps;
use super::sys::{self, Result};
use super::which::{Keys, XattrUnder};
use crate::names;

/// Prefix of the backing xattrs the daemon encrypts.
pub(crate) const OURS: &str = "user.cv.";

fn bad(path: &Path, name: &[u8], what: &str) -> RotationError {
    let name = String::from_utf8_lossy(name);
    RotationError::Undecryptable { path: path.to_path_buf(), what: format!("the {what} of xattr {name:.48}") }
}

/// One of ours, re-encrypted: (backing name, sealed value) under the new key.
fn reseal(keys: &Keys<'_>, rest: &[u8], value: &[u8], path: &Path) -> Result<(String, Vec<u8>)> {
    let crypto = |e: crate::Error| RotationError::Crypto { path: path.to_path_buf(), what: e.to_string() };
    let name = names::encrypt_xattr_name(&keys.new.xattrs, rest).map_err(crypto)?;
    let sealed = names::seal_random(&keys.new.xattrs, name.as_bytes(), value).map_err(crypto)?;
    Ok((name, sealed))
}

/// Where a backing xattr stands.
enum Found {
    /// Ours, under the old key: its new name and value.
    Old(String, Vec<u8>),
    /// Ours, under the new key.
    New,
    /// Not ours (or the rotation's own times record).
    Foreign,
}

fn judge(keys: &Keys<'_>, name: &[u8], value: &[u8], path: &Path) -> Result<Found> {
    let Some(text) = std::str::from_utf8(name).ok().filter(|n| n.starts_with(OURS)) else {
        return Ok(Found::Foreign);
    };
    match keys.xattr(text, value) {
        XattrUnder::Old { rest, value } => {
            let (n, v) = reseal(keys, &rest, &value, path)?;
            Ok(Found::Old(n, v))
        }
        XattrUnder::New => Ok(Found::New),
        XattrUnder::BadName => Err(bad(path, name, "name")),
        XattrUnder::BadValue => Err(bad(path, name, "value")),
    }
}

/// Gives `dst` (a new copy of `src`) every xattr of `src`, ours under the
/// new key. Returns how many of ours were re-encrypted.
pub(crate) fn copy(keys: &Keys<'_>, src: impl AsFd, dst: impl AsFd, path: &Path) -> Result<u64> {
    let (src, dst) = (src.as_fd(), dst.as_fd());
    let mut moved = 0;
    for name in sys::xattr_names(src, path)? {
        let Some(value) = sys::xattr_get(src, &name, path)? else { continue };
        let set = match judge(keys, &name, &value, path)? {
            Found::Old(n, v) => {
                moved += 1;
                sys::xattr_set(dst, n.as_bytes(), &v, path)?
            }
            Found::New | Found::Foreign => sys::xattr_set(dst, &name, &value, path)?,
        };
        if !set {
            return Err(RotationError::Io {
                path: path.to_path_buf(),
                op: "copying an xattr to the new copy of",
                source: std::io::Error::from(rustix::io::Errno::OPNOTSUPP),
            });
        }
    }
    Ok(moved)
}

/// Re-encrypts the xattrs of `fd` where they are (directories, empty files):
/// each new one is set and made durable before the old one goes, so a crash
/// leaves the old, or the new, or both with the same value. Returns how
/// many were re-encrypted.
pub(crate) fn rotate_in_place(keys: &Keys<'_>, fd: impl AsFd, path: &Path, steps: &mut Steps) -> Result<u64> {
    let fd = fd.as_fd();
    let mut moved = 0;
    for name in sys::xattr_names(fd, path)? {
        let Some(value) = sys::xattr_get(fd, &name, path)? else { continue };
        if let Found::Old(n, v) = judge(keys, &name, &value, path)? {
            steps.tick(path)?;
            sys::xattr_set(fd, n.as_bytes(), &v, path)?;
            sys::fsync(fd, path)?;
            steps.tick(path)?;
            sys::xattr_remove(fd, &name, path)?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// How many of the xattrs of `fd` are still under the old key (for the
/// survey; an undecryptable one is an error as in the rotation).
pub(crate) fn count_old(keys: &Keys<'_>, fd: impl AsFd, path: &Path) -> Result<u64> {
    let fd = fd.as_fd();
    let mut old = 0;
    for name in sys::xattr_names(fd, path)? {
        let Some(value) = sys::xattr_get(fd, &name, path)? else { continue };
        if let Found::Old(..) = judge(keys, &name, &value, path)? {
            old += 1;
        }
    }
    Ok(old)
}
