//! Semantics tests in process: a real volume in a temporary directory and
//! the vault's plain methods, no kernel and no mount. For rules whose
//! callers cannot be produced on demand through a mount (pid 0, races).

use std::path::Path;
use std::time::Duration;

use callvault::header::Credentials;
use callvault::kdf::KdfParams;
use callvault::policy::{Policy, SystemIds};
use callvault::secret::Passphrase;
use callvault::volume::{self, Operator, VolumePaths};
use nix::errno::Errno;
use tempfile::TempDir;

use super::inode::ROOT;
use super::{Caller, SetAttr, SetTime, Vault, VaultOptions};

const PASS: &[u8] = b"in-process test passphrase 42";

/// A fresh volume served by a vault under `policy` (TOML), without a journal.
fn vault(policy: &str) -> (TempDir, Vault) {
    vault_with(policy, VaultOptions::default())
}

fn vault_with(policy: &str, opts: VaultOptions) -> (TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("vol");
    let creds = || Credentials::passphrase(Passphrase::new(PASS.to_vec())).unwrap();
    volume::create(&v, &creds(), KdfParams::calibrate(1, Duration::ZERO).unwrap(), "test", |_| Ok(())).unwrap();
    let keys = volume::unlock(&v, &[Operator { label: None, creds: creds() }]).unwrap().keys;
    let policy = Policy::from_toml(policy, Path::new("test.toml"), &SystemIds).unwrap();
    let vault = Vault::new(&VolumePaths::new(&v).data(), keys, policy, None, opts).unwrap();
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

/// What the kernel sends during a blackout, as the vault sees it: a page
/// sent again with the writer's earlier bytes is left as stored, bytes
/// written over older data are silenced, appends past the start are
/// silenced, and a µ-law WAV's header (rewritten at hang-up) never is.
#[test]
fn during_a_blackout_resent_bytes_stay_overwrites_and_appends_are_silenced() {
    let uid = me().uid;
    let (_dir, v) = vault(&format!(
        "[[grant]]\nusers = [\"{uid}\"]\npaths = [\"/**\"]\nrights = [\"list\", \"read\", \"create\", \"write\", \"blackout\"]\n"
    ));
    let (attr, fh) = v.create(ROOT, b"c.wav", 0o644, 0o022, libc::O_RDWR, &me()).unwrap();
    let mut header =
        b"RIFF\xff\xff\xff\xffWAVEfmt \x10\0\0\0\x07\0\x01\0\x40\x1f\0\0\x40\x1f\0\0\x01\0\x08\0data\xff\xff\xff\xff"
            .to_vec();
    assert_eq!(header.len(), 44);
    let before: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8 | 1).collect();
    v.write(fh, 0, &header, false).unwrap();
    v.write(fh, 44, &before, false).unwrap();
    v.blackout_trigger(attr.ino, b"start", &me()).unwrap();
    assert_eq!(v.blackout_status(attr.ino, &me()).unwrap(), b"active");
    // The kernel sends the page again: the first 1044 bytes as they were, then 300 new ones.
    let mut page = header.clone();
    page.extend_from_slice(&before);
    page.extend_from_slice(&[0x42; 300]);
    v.write(fh, 0, &page, false).unwrap();
    // An overwrite of older audio during the blackout.
    v.write(fh, 544, &[0x24; 100], false).unwrap();
    // Hang-up: the header with the final sizes.
    header[4..8].copy_from_slice(&(1344u32 - 8).to_le_bytes());
    header[40..44].copy_from_slice(&1300u32.to_le_bytes());
    v.write(fh, 0, &header, false).unwrap();
    v.blackout_trigger(attr.ino, b"stop", &me()).unwrap();
    v.write(fh, 1344, &[0x42; 10], false).unwrap();
    let mut buf = Vec::new();
    let got = v.read(fh, 0, 2000, &mut buf).unwrap();
    let stored = &buf[got];
    let mut expect = header.clone();
    expect.extend_from_slice(&before);
    expect[544..644].fill(0xFF);
    expect.extend_from_slice(&[0xFF; 300]);
    expect.extend_from_slice(&[0x42; 10]);
    assert_eq!(stored.len(), expect.len());
    assert_eq!(stored, &expect[..]);
    v.release(fh).unwrap();
    assert_eq!(v.blackout_status(attr.ino, &me()).unwrap(), b"inactive");
}

/// Without the `blackout` right a trigger is EACCES and changes nothing.
#[test]
fn a_trigger_without_the_right_is_refused() {
    let uid = me().uid;
    let (_dir, v) = vault(&format!(
        "[[grant]]\nusers = [\"{uid}\"]\npaths = [\"/**\"]\nrights = [\"list\", \"create\", \"write\"]\n"
    ));
    let (attr, fh) = v.create(ROOT, b"c.bin", 0o644, 0o022, libc::O_WRONLY, &me()).unwrap();
    assert_eq!(v.blackout_trigger(attr.ino, b"start", &me()).err(), Some(Errno::EACCES));
    assert_eq!(v.blackout_status(attr.ino, &me()).unwrap(), b"inactive");
    v.write(fh, 0, b"kept", false).unwrap();
    v.release(fh).unwrap();
    assert_eq!(v.getattr(attr.ino, None, &me()).unwrap().size, 4);
}

/// DTMF masking goes on after an fsync that left part of a sample frame
/// (24-bit mono: 3-byte frames): the tone written next is still masked.
#[test]
fn dtmf_masking_survives_an_fsync_in_the_middle_of_a_frame() {
    let uid = me().uid;
    let (_dir, v) = vault_with(
        &format!(
            "[[grant]]\nusers = [\"{uid}\"]\npaths = [\"/**\"]\nrights = [\"list\", \"read\", \"create\", \"write\"]\n"
        ),
        VaultOptions { auto_dtmf: true, ..VaultOptions::default() },
    );
    let (_attr, fh) = v.create(ROOT, b"c.wav", 0o644, 0o022, libc::O_RDWR, &me()).unwrap();
    let header =
        b"RIFF\xff\xff\xff\xffWAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\xc0\x5d\0\0\x03\0\x18\0data\xff\xff\xff\xff";
    v.write(fh, 0, header, false).unwrap();
    let sample = |x: f64| -> [u8; 3] {
        let s = (x * 8_388_607.0) as i32;
        let b = s.to_le_bytes();
        [b[0], b[1], b[2]]
    };
    let quiet: Vec<u8> = (0..4000).flat_map(|_| sample(0.0)).collect();
    // 1000 bytes: 333 frames and one byte of the next.
    v.write(fh, 44, &quiet[..1000], false).unwrap();
    v.fsync(fh, true).unwrap();
    v.write(fh, 1044, &quiet[1000..], false).unwrap();
    let tone: Vec<u8> = (0..800)
        .flat_map(|t| {
            let x = f64::from(t) / 8000.0;
            let w = |f: f64| (2.0 * std::f64::consts::PI * f * x).sin();
            sample(0.25 * (w(852.0) + w(1477.0)))
        })
        .collect();
    let at = 44 + quiet.len() as u64;
    v.write(fh, at, &tone, false).unwrap();
    v.write(fh, at + tone.len() as u64, &quiet, false).unwrap();
    v.release(fh).unwrap();
    let ino = v.lookup(ROOT, b"c.wav", &me()).unwrap().ino;
    let rfh = v.open(ino, libc::O_RDONLY, &me()).unwrap();
    let mut buf = Vec::new();
    let got = v.read(rfh, at, tone.len() as u32, &mut buf).unwrap();
    assert!(buf[got].iter().all(|b| *b == 0), "the tone after the fsync was stored");
}
