use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::harness::{Volume, pattern};

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    content: Vec<u8>,
}

fn walk(root: &Path, rel: &str, out: &mut BTreeMap<String, Seen>) {
    for e in fs::read_dir(root.join(rel.trim_start_matches('/'))).unwrap() {
        let e = e.unwrap();
        let name = format!("{rel}/{}", e.file_name().to_string_lossy());
        let md = fs::symlink_metadata(e.path()).unwrap();
        let (kind, content) = if md.is_dir() {
            ("dir", Vec::new())
        } else if md.file_type().is_symlink() {
            ("symlink", fs::read_link(e.path()).unwrap().into_os_string().into_encoded_bytes())
        } else {
            ("file", fs::read(e.path()).unwrap())
        };
        out.insert(
            name.clone(),
            Seen {
                kind,
                size: if md.is_dir() { 0 } else { md.len() },
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                mtime: (md.mtime(), md.mtime_nsec()),
                content,
            },
        );
        if md.is_dir() {
            walk(root, &name, out);
        }
    }
}

#[test]
fn remount_shows_identical_data_names_sizes_modes_and_times() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::create_dir_all(m.p("team-a/2026/11")).unwrap();
    fs::create_dir(m.p("team-b")).unwrap();
    for (i, size) in [0usize, 1, 4096, 4097, 123_457, 2_000_000].iter().enumerate() {
        let p = m.p(&format!("team-a/2026/11/call-{i}.wav"));
        fs::write(&p, pattern(i as u64, *size)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600 + (i as u32 % 2) * 0o40)).unwrap();
    }
    fs::write(m.p("team-b/ünïcødé name ☎.wav"), b"unicode").unwrap();
    std::os::unix::fs::symlink("../team-a/2026/11/call-3.wav", m.p("team-b/latest")).unwrap();
    std::os::unix::fs::lchown(m.p("team-b/latest"), Some(77), Some(88)).unwrap();
    std::os::unix::fs::chown(m.p("team-a/2026/11/call-1.wav"), Some(1001), Some(1002)).unwrap();
    let t = TimeSpec::new(1_234_567_890, 123_456_789);
    utimensat(AT_FDCWD, &m.p("team-a/2026/11/call-5.wav"), &t, &t, UtimensatFlags::FollowSymlink).unwrap();
    utimensat(AT_FDCWD, &m.p("team-b"), &t, &t, UtimensatFlags::FollowSymlink).unwrap();
    let mut before = BTreeMap::new();
    walk(&m.path, "", &mut before);
    assert!(m.unmount().success(), "the daemon exits 0 after fusermount3 -u");

    let m = vol.mount();
    let mut after = BTreeMap::new();
    walk(&m.path, "", &mut after);
    assert_eq!(before.len(), 12);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (path, b) in &before {
        let a = &after[path];
        assert_eq!(
            (b.kind, b.size, b.mode, b.uid, b.gid, &b.content),
            (a.kind, a.size, a.mode, a.uid, a.gid, &a.content),
            "{path}"
        );
        if b.kind == "file" && !path.ends_with("call-5.wav") {
            // Written through the page cache: the live view shows the time of
            // write(2), the volume the time the data reached the daemon, a
            // moment later (docs/SEMANTICS.md).
            let ns = |t: (i64, i64)| t.0 as i128 * 1_000_000_000 + t.1 as i128;
            assert!((ns(a.mtime) - ns(b.mtime)).abs() < 2_000_000_000, "{path}: {:?} vs {:?}", b.mtime, a.mtime);
        } else {
            assert_eq!(b.mtime, a.mtime, "{path}: times set explicitly, and directories' times, are exact");
        }
    }
    assert_eq!(after["/team-a/2026/11/call-5.wav"].mtime, (1_234_567_890, 123_456_789));
    // SIGTERM also unmounts cleanly with everything flushed.
    fs::write(m.p("late.wav"), pattern(9, 10_000)).unwrap();
    let status = m.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "SIGTERM exit status {status:?}");
    let m = vol.mount();
    assert_eq!(fs::read(m.p("late.wav")).unwrap(), pattern(9, 10_000));
    assert!(m.stop_with(nix::sys::signal::Signal::SIGINT).success());
}

#[test]
fn read_only_mount_serves_data_and_refuses_changes() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::write(m.p("kept.wav"), b"recording").unwrap();
    assert!(m.unmount().success());
    let m = vol.mount_with(&["--read-only"]).unwrap();
    assert_eq!(fs::read(m.p("kept.wav")).unwrap(), b"recording");
    let e = fs::write(m.p("new.wav"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let e = fs::OpenOptions::new().write(true).open(m.p("kept.wav")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    assert!(m.unmount().success());
}
