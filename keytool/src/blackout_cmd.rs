//! `blackout start|stop|status PATH...`: the blackout trigger of a mounted
//! volume, for scripts (the same attribute a recorder or CTI hook sets).

use std::fs;
use std::path::{Path, PathBuf};

use callvault::exitcode;
use rustix::fs::XattrFlags;
use rustix::io::Errno;

use crate::error::Failure;

/// The attribute callvaultd serves; never stored.
const XATTR: &str = "user.callvault.blackout";
/// How `/proc/self/mountinfo` shows a callvault mount: type `fuse` (or
/// `fuse.callvault` where the subtype is kept) and source `callvault:VOLUME`.
const SOURCE_PREFIX: &str = "callvault:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Status,
}

/// Runs `action` on every path in order; prints `PATH: active|inactive` for
/// status. The first failure decides the exit code, but every path is tried,
/// so one bad path does not leave the others of a call unsilenced.
pub fn run(action: Action, paths: &[PathBuf]) -> Result<(), Failure> {
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Failure::new(exitcode::FAILURE, format!("cannot read /proc/self/mountinfo: {e}")))?;
    let mut first: Option<u8> = None;
    let mut failed = 0;
    for path in paths {
        match one(action, path, &mounts) {
            Ok(Some(state)) => println!("{}: {state}", path.display()),
            Ok(None) => {}
            Err(f) => {
                eprintln!("callvault-keytool: {}", f.message);
                failed += 1;
                first.get_or_insert(f.code);
            }
        }
    }
    match first {
        None => Ok(()),
        Some(code) => Err(Failure::new(code, format!("blackout: {failed} of {} path(s) failed", paths.len()))),
    }
}

fn one(action: Action, path: &Path, mounts: &str) -> Result<Option<String>, Failure> {
    on_volume(path, mounts)?;
    let failed = |e: Errno| {
        let code = if e == Errno::ACCESS || e == Errno::PERM { exitcode::ACCESS_DENIED } else { exitcode::FAILURE };
        let why = if e == Errno::ACCESS {
            "permission denied (the policy must grant `blackout` on this path, and the file's mode must let you write it)".to_string()
        } else {
            std::io::Error::from_raw_os_error(e.raw_os_error()).to_string()
        };
        Failure::new(code, format!("{}: {why}", path.display()))
    };
    match action {
        Action::Start | Action::Stop => {
            let value: &[u8] = if action == Action::Start { b"start" } else { b"stop" };
            rustix::fs::setxattr(path, XATTR, value, XattrFlags::empty()).map_err(failed)?;
            Ok(None)
        }
        Action::Status => {
            let mut buf = [0u8; 16];
            let n = rustix::fs::getxattr(path, XATTR, &mut buf).map_err(failed)?;
            Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned()))
        }
    }
}

/// Ok if `path` lies on a mounted callvault volume (checked before the
/// attribute is touched: on another filesystem it would be stored as an
/// ordinary attribute and silence nothing).
fn on_volume(path: &Path, mounts: &str) -> Result<(), Failure> {
    let real =
        fs::canonicalize(path).map_err(|e| Failure::new(exitcode::FAILURE, format!("{}: {e}", path.display())))?;
    match mount_of(&real, mounts) {
        Some((fstype, source)) if fstype.starts_with("fuse") && source.starts_with(SOURCE_PREFIX) => Ok(()),
        found => Err(Failure::new(
            exitcode::NOT_ON_VOLUME,
            format!(
                "{}: not on a mounted callvault volume ({}); start callvaultd and use a path under its mount point",
                path.display(),
                found.map_or("no mount found".to_string(), |(t, src)| format!("filesystem {t} from {src}"))
            ),
        )),
    }
}

/// The filesystem type and source of the mount holding `path` (an
/// absolute, resolved path): the longest mount point that is a prefix of it,
/// the last mounted winning among equals, as the kernel stacks them.
fn mount_of(path: &Path, mountinfo: &str) -> Option<(String, String)> {
    let mut best: Option<(usize, (String, String))> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source super
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(sep)) = (fields.get(4), fields.iter().position(|f| *f == "-")) else { continue };
        let (Some(fstype), Some(source)) = (fields.get(sep + 1), fields.get(sep + 2)) else { continue };
        let point = unescape_mountinfo(point);
        if path.starts_with(&point) && best.as_ref().is_none_or(|(len, _)| point.len() >= *len) {
            best = Some((point.len(), ((*fstype).to_string(), unescape_mountinfo(source))));
        }
    }
    best.map(|(_, m)| m)
}

/// Mount points in mountinfo write space, tab, newline and backslash as `\NNN` octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
30 22 0:40 / /mnt/calls rw,nosuid,nodev - fuse callvault:/srv/v rw,user_id=0
31 22 0:41 / /mnt/calls\\040old rw - tmpfs tmpfs rw
32 30 0:42 / /mnt/calls/inner rw - tmpfs tmpfs rw
";

    #[test]
    fn the_longest_mount_point_decides() {
        let t = |p: &str| mount_of(Path::new(p), INFO).map(|(t, s)| format!("{t} {s}"));
        assert_eq!(t("/mnt/calls/a/b.wav").as_deref(), Some("fuse callvault:/srv/v"));
        assert_eq!(t("/mnt/calls").as_deref(), Some("fuse callvault:/srv/v"));
        assert_eq!(t("/mnt/calls/inner/x").as_deref(), Some("tmpfs tmpfs"));
        assert_eq!(t("/mnt/callsx/y").as_deref(), Some("ext4 /dev/vda"));
        assert_eq!(t("/mnt/calls old/y").as_deref(), Some("tmpfs tmpfs"));
    }

    #[test]
    fn a_path_off_any_volume_is_refused_before_anything_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("call.wav");
        fs::write(&f, b"RIFF").unwrap();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let e = one(Action::Start, &f, &mounts).unwrap_err();
        assert_eq!(e.code, exitcode::NOT_ON_VOLUME);
        assert!(e.message.contains("not on a mounted callvault volume"), "{}", e.message);
        let mut buf = [0u8; 16];
        assert!(rustix::fs::getxattr(&f, XATTR, &mut buf).is_err(), "the attribute was stored on the other filesystem");
    }
}
