//! Semantics tests in process: a real volume in a temporary directory and
//! the vault's plain methods, no kernel and no mount. For rules whose
//! callers cannot be produced on demand through a mount (pid 0, races).

use std::path::Path;
use std::time::Duration;

use callvault::kdf::KdfParams;
use callvault::policy::{Policy, SystemIds};
use callvault::volume::{self, VolumePaths};
use nix::errno::Errno;
use tempfile::TempDir;

use super::inode::ROOT;
use super::{Caller, SetAttr, SetTime, Vault, VaultOptions};

const PASS: &[u8] = b"in-process test passphrase 42";

/// A fresh volume served by a vault under `policy` (TOML), without a journal.
fn vault(policy: &str) -> (TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("vol");
    volume::create(&v, PASS, KdfParams::calibrate(1, Duration::ZERO).unwrap(), "test", |_| Ok(())).unwrap();
    let keys = volume::unlock(&v, PASS).unwrap().keys;
    let policy = Policy::from_toml(policy, Path::new("test.toml"), &SystemIds).unwrap();
    let vault = Vault::new(&VolumePaths::new(&v).data(), keys, policy, None, VaultOptions::default()).unwrap();
    (dir, vault)
}

/// This test process as the caller (its /proc entry answers for its groups).
fn me() -> Caller {
    Caller { uid: nix::unistd::getuid().as_raw(), gid: nix::unistd::getgid().as_raw(), pid: std::process::id() }
}

/// A regression test for the pid-0 hole: a request reported with pid 0 (a
/// process outside the daemon's pid namespace, not only the kernel) was
/// taken for the kernel's own time update and could truncate a file with
/// no `write` right. Only a time update may pass as the kernel's.
#[test]
fn a_pid_zero_caller_cannot_truncate_but_the_kernels_time_update_passes() {
    let uid = me().uid;
    let (_dir, v) = vault(&format!(
        "[[grant]]\nusers = [\"{uid}\"]\npaths = [\"/**\"]\nrights = [\"list\", \"read\", \"create\", \"write\"]\n"
    ));
    let (attr, fh) = v.create(ROOT, b"call.wav", 0o644, 0o022, libc::O_WRONLY, &me()).unwrap();
    v.write(fh, 0, b"recorded call", false).unwrap();
    v.release(fh).unwrap();
    let outsider = Caller { uid, gid: me().gid, pid: 0 };
    let cut = SetAttr { size: Some(0), ..SetAttr::default() };
    assert_eq!(v.setattr(attr.ino, cut, None, &outsider).err(), Some(Errno::EACCES));
    assert_eq!(v.getattr(attr.ino, None, &me()).unwrap().size, 13);
    let touch = SetAttr { mtime: Some(SetTime::Now), ..SetAttr::default() };
    assert!(v.setattr(attr.ino, touch, None, &outsider).is_ok(), "the kernel's own time update");
}
