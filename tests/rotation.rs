//! Key rotation on real volumes: a tree made through a mount, rotated with
//! the library while unmounted, the header replaced so that only the new
//! master key unlocks it, mounted again and compared; and a rotation in a
//! child process killed after its Nth file, resumed here.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callvault::contents::SectorCipher;
use callvault::fileheader::FileHeader;
use callvault::header::{NewSlot, VolumeHeader};
use callvault::kdf::KdfParams;
use callvault::keys::VolumeKeys;
use callvault::layout::Layout;
use callvault::names::{self, DIRID_FILE, EntryKind, LONG_NAME_SUFFIX};
use callvault::rotation::{self, NoProgress, STAGING_DIR, TEMP_PREFIX, TIMES_RECORD_XATTR};
use callvault::secret::MasterKey;
use callvault::sectors::{FILE_HEADER_LEN, SECTOR_SIZE, sectors_for_size};
use callvault::volume::{self, VolumePaths};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use sha2::{Digest, Sha256};

use crate::harness::{Mount, PASSPHRASE, Volume, pattern};

const MIB: usize = 1 << 20;

fn hash(b: &[u8]) -> String {
    Sha256::digest(b)[..10].iter().map(|b| format!("{b:02x}")).collect()
}

fn set_times(p: &Path, secs: i64) {
    let t = rfs::Timestamps {
        last_access: rfs::Timespec { tv_sec: secs + 7, tv_nsec: 123_456_789 },
        last_modification: rfs::Timespec { tv_sec: secs, tv_nsec: 987_654_321 },
    };
    rfs::utimensat(rfs::CWD, p, &t, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rfs::setxattr(p, name, value, rfs::XattrFlags::empty()).unwrap();
}

/// A varied tree, made through the mount.
fn populate(m: &Mount) {
    let long_dir = "D".repeat(200);
    let long_file = format!("{}.wav", "n".repeat(246));
    for d in ["team-a/2026-11/week-48", "team-b", &format!("team-a/{long_dir}")] {
        fs::create_dir_all(m.p(d)).unwrap();
    }
    fs::write(m.p("team-a/2026-11/empty.wav"), b"").unwrap();
    fs::write(m.p("team-a/2026-11/one.wav"), b"x").unwrap();
    fs::write(m.p("team-a/2026-11/4097.wav"), pattern(1, 4097)).unwrap();
    fs::write(m.p("team-a/2026-11/week-48/big.wav"), pattern(2, 5 * MIB + 333)).unwrap();
    fs::write(m.p(&format!("team-a/{long_dir}/{long_file}")), pattern(3, 70_000)).unwrap();
    fs::write(m.p(&format!("team-b/{long_file}")), pattern(4, 10)).unwrap();
    // Sparse: 64 MiB with 1 MiB of data at 10 MiB and 10 bytes at the end.
    let sparse = fs::OpenOptions::new().write(true).create_new(true).open(m.p("team-b/sparse.wav")).unwrap();
    sparse.set_len(64 * MIB as u64).unwrap();
    sparse.write_all_at(&pattern(5, MIB), 10 * MIB as u64).unwrap();
    sparse.write_all_at(&pattern(6, 10), 64 * MIB as u64 - 10).unwrap();
    sparse.sync_all().unwrap();
    drop(sparse);
    // Two files (format 3 binds a file to its one name: no hard links;
    // src/rotation/tests.rs rotates hard links of format-2 trees).
    fs::write(m.p("team-a/2026-11/shared.wav"), pattern(7, 3 * 4096 + 5)).unwrap();
    fs::write(m.p("team-b/shared-link.wav"), pattern(8, 2 * 4096)).unwrap();
    std::os::unix::fs::symlink("team-a/2026-11/4097.wav", m.p("latest")).unwrap();
    std::os::unix::fs::symlink("../team-a/2026-11/one.wav", m.p(&format!("team-b/{}", "l".repeat(200)))).unwrap();
    nix::unistd::mkfifo(&m.p("team-b/pipe"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    set_xattr(&m.p("team-a/2026-11/4097.wav"), "user.agent", b"42");
    set_xattr(&m.p("team-a/2026-11/4097.wav"), "user.note", &pattern(8, 200));
    set_xattr(&m.p("team-a/2026-11/shared.wav"), "user.who", b"both names");
    set_xattr(&m.p("team-a/2026-11/empty.wav"), "user.state", b"pending");
    set_xattr(&m.p("team-a"), "user.team", b"A");
    fs::set_permissions(m.p("team-a/2026-11/one.wav"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(m.p("team-b"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(m.p("team-a/2026-11/4097.wav"), Some(1001), Some(1002)).unwrap();
    std::os::unix::fs::lchown(m.p("latest"), Some(77), Some(88)).unwrap();
    // Explicit times, deepest first (each entry made moves its directory's).
    let mut all = Vec::new();
    walk_paths(&m.path, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_times(p, 1_600_000_000 + 1000 * i as i64);
    }
}

fn walk_paths(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            walk_paths(&p, out);
        }
        out.push(p);
    }
}

/// One object as the mount shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    nlink: u64,
    /// Contents or link target: length and hash.
    data: (usize, String),
    xattrs: BTreeMap<String, String>,
    /// The first path (in name order) with the same inode number.
    group: String,
}

fn mount_xattrs(p: &Path) -> BTreeMap<String, String> {
    let mut buf = vec![0u8; 65536];
    let n = rfs::listxattr(p, &mut buf[..]).unwrap();
    let mut out = BTreeMap::new();
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8(name.to_vec()).unwrap();
        let mut v = vec![0u8; 65536];
        let len = rfs::getxattr(p, name.as_str(), &mut v[..]).unwrap();
        out.insert(name, hash(&v[..len]));
    }
    out
}

/// Everything the mount shows, by path.
fn through_mount(m: &Mount) -> BTreeMap<String, Seen> {
    let mut paths = Vec::new();
    walk_paths(&m.path, &mut paths);
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<u64, String> = BTreeMap::new();
    let mut inos = BTreeMap::new();
    for p in paths {
        let rel = format!("/{}", p.strip_prefix(&m.path).unwrap().display());
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let (kind, data, xattrs) = if ft.is_dir() {
            ("dir", (0, String::new()), mount_xattrs(&p))
        } else if ft.is_symlink() {
            let t = fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes();
            ("symlink", (t.len(), hash(&t)), BTreeMap::new())
        } else if ft.is_file() {
            let d = fs::read(&p).unwrap();
            ("file", (d.len(), hash(&d)), mount_xattrs(&p))
        } else {
            ("fifo", (0, String::new()), BTreeMap::new())
        };
        let g = groups.entry(md.ino()).or_insert_with(|| rel.clone());
        if rel < *g {
            g.clone_from(&rel);
        }
        inos.insert(rel.clone(), md.ino());
        let seen = Seen {
            kind,
            size: if ft.is_dir() { 0 } else { md.len() },
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: (md.mtime(), md.mtime_nsec()),
            nlink: if ft.is_dir() { 0 } else { md.nlink() },
            data,
            xattrs,
            group: String::new(),
        };
        out.insert(rel, seen);
    }
    for (rel, seen) in out.iter_mut() {
        seen.group = groups[&inos[rel]].clone();
    }
    out
}

/// One backing object, decrypted: what the rotation must carry over exactly
/// (access times included, which a mount cannot show unmoved).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Backing {
    kind: &'static str,
    /// Plaintext size of a file.
    size: u64,
    data: (usize, String),
    xattrs: BTreeMap<Vec<u8>, String>,
    mode: u32,
    uid: u32,
    gid: u32,
    atime: (i64, i64),
    mtime: (i64, i64),
    nlink: u64,
    group: String,
    /// Sectors of a file holding ciphertext (holes left out).
    data_sectors: Vec<u64>,
}

fn noatime(dir: impl AsFd, name: &str, flags: OFlags) -> OwnedFd {
    rfs::openat(dir, name, flags | OFlags::NOATIME | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let fd = noatime(rfs::CWD, dir.to_str().unwrap(), OFlags::RDONLY | OFlags::DIRECTORY);
    let mut v: Vec<String> = rfs::Dir::new(fd)
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().file_name().to_bytes().to_vec()).unwrap())
        .filter(|n| n != "." && n != "..")
        .collect();
    v.sort();
    v
}

fn backing_xattrs(p: &Path, keys: &VolumeKeys, old: Option<&VolumeKeys>) -> BTreeMap<Vec<u8>, String> {
    let mut buf = vec![0u8; 65536];
    let n = rfs::llistxattr(p, &mut buf[..]).unwrap();
    let mut out = BTreeMap::new();
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8(name.to_vec()).unwrap();
        assert_ne!(name, TIMES_RECORD_XATTR, "{}: a times record is left behind", p.display());
        let mut v = vec![0u8; 65536];
        let len = rfs::lgetxattr(p, name.as_str(), &mut v[..]).unwrap();
        let plain = names::decrypt_xattr_name(&keys.xattrs, &name)
            .unwrap_or_else(|| panic!("{}: xattr {name} is not under the key", p.display()));
        let value = names::open_random(&keys.xattrs, name.as_bytes(), &v[..len]).unwrap();
        if let Some(old) = old {
            assert!(names::decrypt_xattr_name(&old.xattrs, &name).is_none(), "{}: xattr name {name}", p.display());
            assert!(names::open_random(&old.xattrs, name.as_bytes(), &v[..len]).is_err());
        }
        out.insert(plain, hash(&value));
    }
    out
}

/// Reads the backing tree under `keys`, strictly: every name, side file,
/// file header, link target and xattr decrypts under `keys` and, with
/// `old`, not under `old`; no leftover of a rotation is there.
fn backing(data: &Path, keys: &VolumeKeys, old: Option<&VolumeKeys>) -> BTreeMap<String, Backing> {
    let mut out = BTreeMap::new();
    let mut groups = BTreeMap::new();
    backing_dir(data, "", keys, old, &mut out, &mut groups);
    for b in out.values_mut() {
        b.group = groups[&b.group].clone();
    }
    out
}

fn backing_dir(
    dir: &Path,
    rel: &str,
    keys: &VolumeKeys,
    old: Option<&VolumeKeys>,
    out: &mut BTreeMap<String, Backing>,
    groups: &mut BTreeMap<String, String>,
) {
    let id: [u8; 16] = fs::read(dir.join(DIRID_FILE)).unwrap().try_into().unwrap();
    for e in entries(dir) {
        let encoded = match names::classify(&e) {
            EntryKind::Short(s) => s.to_string(),
            EntryKind::Long(h) => {
                let full = fs::read_to_string(dir.join(format!("{h}{LONG_NAME_SUFFIX}"))).unwrap();
                assert!(names::long_name_matches(h, &full));
                if let Some(old) = old {
                    assert!(names::decrypt_name(&old.names, &id, &full).is_err(), "side file of {e}");
                }
                full
            }
            EntryKind::Internal => {
                let side_of_entry =
                    e.strip_suffix(LONG_NAME_SUFFIX).is_some_and(|x| dir.join(x).symlink_metadata().is_ok());
                assert!(e == DIRID_FILE || side_of_entry, "{}: leftover {e}", dir.display());
                assert!(!e.starts_with(TEMP_PREFIX) && e != STAGING_DIR);
                continue;
            }
        };
        let plain = names::decrypt_name(&keys.names, &id, &encoded)
            .unwrap_or_else(|_| panic!("{}: {e} is not a name under the key", dir.display()));
        if let Some(old) = old {
            assert!(
                names::decrypt_name(&old.names, &id, &encoded).is_err(),
                "{}: {e} decrypts under the old key",
                dir.display()
            );
        }
        let name = format!("{rel}/{}", String::from_utf8(plain).unwrap());
        let p = dir.join(&e);
        let md = fs::symlink_metadata(&p).unwrap();
        let mut b = Backing {
            kind: "fifo",
            size: 0,
            data: (0, String::new()),
            xattrs: BTreeMap::new(),
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            atime: (md.atime(), md.atime_nsec()),
            mtime: (md.mtime(), md.mtime_nsec()),
            nlink: md.nlink(),
            group: format!("{}:{}", md.dev(), md.ino()),
            data_sectors: Vec::new(),
        };
        let first = groups.entry(b.group.clone()).or_insert_with(|| name.clone());
        if name < *first {
            first.clone_from(&name);
        }
        if md.is_dir() {
            b.kind = "dir";
            b.nlink = 0;
            b.xattrs = backing_xattrs(&p, keys, old);
            backing_dir(&p, &name, keys, old, out, groups);
        } else if md.file_type().is_symlink() {
            b.kind = "symlink";
            let stored = fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes();
            // readlink moved the access time: put it back for the next reader.
            let t = rfs::Timestamps {
                last_access: rfs::Timespec { tv_sec: b.atime.0, tv_nsec: b.atime.1 },
                last_modification: rfs::Timespec { tv_sec: b.mtime.0, tv_nsec: b.mtime.1 },
            };
            rfs::utimensat(rfs::CWD, &p, &t, AtFlags::SYMLINK_NOFOLLOW).unwrap();
            let target = names::decrypt_link_target(&keys.link_targets, &stored).unwrap();
            if let Some(old) = old {
                assert!(names::decrypt_link_target(&old.link_targets, &stored).is_err(), "{name}: link target");
            }
            b.data = (target.len(), hash(&target));
        } else if md.is_file() {
            b.kind = "file";
            b.xattrs = backing_xattrs(&p, keys, old);
            let (plain, sectors) = contents(&p, keys, old);
            (b.size, b.data, b.data_sectors) = (plain.len() as u64, (plain.len(), hash(&plain)), sectors);
        }
        out.insert(name, b);
    }
}

fn contents(p: &Path, keys: &VolumeKeys, old: Option<&VolumeKeys>) -> (Vec<u8>, Vec<u64>) {
    let f = fs::File::from(noatime(rfs::CWD, p.to_str().unwrap(), OFlags::RDONLY));
    let len = f.metadata().unwrap().len();
    if len == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut region = vec![0u8; FILE_HEADER_LEN as usize];
    f.read_exact_at(&mut region, 0).unwrap();
    let h = FileHeader::decode(&region, Layout::Tagged, &keys.file_header_mac)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if let Some(old) = old {
        assert!(
            FileHeader::decode(&region, Layout::Tagged, &old.file_header_mac).is_err(),
            "{}: header under the old key",
            p.display()
        );
    }
    let cipher = SectorCipher::new(&keys.file_key(&h.file_id)).unwrap();
    let mut plain = Vec::with_capacity(h.size as usize);
    let mut sectors = Vec::new();
    let mut buf = vec![0u8; SECTOR_SIZE as usize];
    for i in 0..sectors_for_size(h.size) {
        buf.fill(0);
        let n = f.read_at(&mut buf, Layout::Tagged.data_offset(i)).unwrap();
        if buf[..n].iter().any(|&b| b != 0) {
            sectors.push(i);
        }
        cipher.decrypt_run(i, &mut buf);
        plain.extend_from_slice(&buf);
    }
    plain.truncate(h.size as usize);
    (plain, sectors)
}

fn same<T: PartialEq + std::fmt::Debug>(a: &BTreeMap<String, T>, b: &BTreeMap<String, T>, what: &str) {
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    assert_eq!(ka, kb, "{what}: the same paths");
    for (k, v) in a {
        assert_eq!(v, &b[k], "{what}: {k}");
    }
}

/// The volume's master key, from its header with the test passphrase.
fn master_of(vol: &Volume) -> MasterKey {
    let op = volume::Operator::with_passphrase(PASSPHRASE.as_bytes()).unwrap();
    let u = volume::unlock(&vol.path, &[op]).unwrap();
    MasterKey::copy_from(u.keys.master().expose_secret())
}

/// Replaces the header with one whose only keyslot holds `master` under the
/// test passphrase (what `rotate-key` does once the tree is rotated).
fn header_for(vol: &Volume, master: &MasterKey) {
    let old = volume::read_header(&vol.path).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut h = VolumeHeader::new(now).unwrap();
    h.volume_id = old.volume_id();
    let kdf = KdfParams::calibrate(8, Duration::ZERO).unwrap();
    let op = volume::Operator::with_passphrase(PASSPHRASE.as_bytes()).unwrap();
    h.add_slot(master, NewSlot { label: "rotated", creds: &op.creds, kdf, no_self_change: false }, now).unwrap();
    volume::write_header(&VolumePaths::new(&vol.path), &mut h, master).unwrap();
}

/// A populated volume, unmounted, and what its mount showed.
fn prepared() -> (Volume, BTreeMap<String, Seen>) {
    let vol = Volume::new();
    let m = vol.mount();
    populate(&m);
    assert!(m.unmount().success());
    // What is stored, as a fresh mount shows it (times of data written
    // through the page cache settle when it reaches the daemon).
    let m = vol.mount();
    let seen = through_mount(&m);
    assert!(m.unmount().success());
    (vol, seen)
}

/// Mounts with the new header and compares with `before`; the old key no
/// longer unlocks anything.
fn check_mounted(vol: &Volume, new_master: &MasterKey, before: &BTreeMap<String, Seen>) {
    header_for(vol, new_master);
    let wrong = volume::Operator::with_passphrase(b"not the passphrase").unwrap();
    assert!(matches!(volume::unlock(&vol.path, &[wrong]), Err(callvault::Error::WrongPassphrase { .. })));
    let m = vol.mount();
    let after = through_mount(&m);
    same(before, &after, "through the mount");
    let log = m.log_text();
    assert!(!log.contains(": error:"), "daemon log: {log}");
    // Still a working volume: new files go in and come back.
    fs::write(m.p("team-b/after-rotation.wav"), pattern(9, 5000)).unwrap();
    assert_eq!(fs::read(m.p("team-b/after-rotation.wav")).unwrap(), pattern(9, 5000));
    assert!(m.unmount().success());
}

#[test]
fn rotated_volume_mounts_under_the_new_key_with_everything_as_it_was() {
    let (vol, before) = prepared();
    assert_eq!(before.len(), 17, "{:#?}", before.keys());
    let data = VolumePaths::new(&vol.path).data();
    let old = VolumeKeys::derive(master_of(&vol));
    let new_master = MasterKey::generate().unwrap();
    let new = VolumeKeys::derive(MasterKey::copy_from(new_master.expose_secret()));
    let stored = backing(&data, &old, None);
    let blocks_before = fs::metadata(backing_path(&data, &old, &["team-b", "sparse.wav"])).unwrap().blocks();

    let tagged = rotation::Layouts::same(Layout::Tagged);
    let s = rotation::survey(&data, &old, &new, tagged).unwrap();
    // 9 files with contents; the sparse file's holes are not counted.
    assert_eq!((s.files, s.names, s.symlinks, s.xattrs), (9, 17, 2, 5), "{s:?}");
    assert!(s.bytes > 6 * MIB as u64 && s.bytes < 8 * MIB as u64, "{s:?}");
    let stats = rotation::rotate_tree(&data, &old, &new, tagged, &mut NoProgress).unwrap();
    assert_eq!((stats.files, stats.bytes, stats.names, stats.relinked), (9, s.bytes, 17, 0), "{stats:?}");

    // Every name, side file, header, target and xattr is under the new key
    // and fails under the old; sizes, modes, owners, both times, links and
    // holes are as they were.
    let rotated = backing(&data, &new, Some(&old));
    same(&stored, &rotated, "in the backing store");
    let sparse = &rotated["/team-b/sparse.wav"];
    assert_eq!(sparse.data_sectors, [(2560..2816).collect::<Vec<u64>>(), vec![16383]].concat(), "holes stay holes");
    let blocks_after = fs::metadata(backing_path(&data, &new, &["team-b", "sparse.wav"])).unwrap().blocks();
    assert!(blocks_after <= blocks_before, "{blocks_after} blocks after, {blocks_before} before");
    assert!(rotation::survey(&data, &old, &new, tagged).unwrap().nothing_left());
    check_mounted(&vol, &new_master, &before);
}

/// The backing path of a plaintext path under `keys`.
fn backing_path(data: &Path, keys: &VolumeKeys, parts: &[&str]) -> PathBuf {
    let mut p = data.to_path_buf();
    for part in parts {
        let id: [u8; 16] = fs::read(p.join(DIRID_FILE)).unwrap().try_into().unwrap();
        p = p.join(names::encrypt_name(&keys.names, &id, part.as_bytes()).unwrap().entry());
    }
    p
}

/// `callvault-keytool rotate-key` itself: refused while mounted; killed with
/// SIGKILL at several points (right after it reported the work to do, when
/// the header already holds the new key and the tree is partly rotated)
/// and run again until it finishes; meanwhile callvaultd refuses to mount
/// (exit 30). Then every file reads as before under every operator's slot,
/// the old master key decrypts no name, an older header backup is refused,
/// and the journal records the rotation with the operator's label.
#[test]
fn rotate_key_killed_at_random_points_resumes_and_every_file_is_intact() {
    use crate::harness::keytool;
    let (vol, before) = prepared();
    let path = vol.path.to_str().unwrap();
    let pass = vol.pass.to_str().unwrap();
    // Enough recordings that the rotation takes a while to walk.
    let m = vol.mount();
    fs::create_dir(m.p("bulk")).unwrap();
    let mut bulk = BTreeMap::new();
    for i in 0..300u64 {
        let data = pattern(1000 + i, 4096 * (1 + (i as usize % 40)));
        fs::write(m.p(&format!("bulk/call-{i:04}.wav")), &data).unwrap();
        bulk.insert(i, hash(&data));
    }
    let out = keytool(&["rotate-key", path, "--passphrase-file", pass]);
    assert_eq!(out.status.code(), Some(16), "refused while served: {}", String::from_utf8_lossy(&out.stderr));
    assert!(m.unmount().success());
    let backup = vol.dir.path().join("before-rotation.header");
    let out = keytool(&["header", "backup", path, backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let old = VolumeKeys::derive(master_of(&vol));

    // Each round is killed as soon as it reports its work: wherever the
    // walk has got to by then (it goes on while the kill is sent).
    for round in 0..3 {
        let mut child = Command::new(crate::harness::keytool_bin())
            .args(["rotate-key", path, "--passphrase-file", pass])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        // The first progress line comes once the new key is in the header
        // and the survey is done; the kill lands wherever the walk is then.
        loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "round {round}: rotate-key ended before starting");
            if line.starts_with("rotate-key: ") && line.contains("to re-encrypt") {
                break;
            }
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
        let _ = child.wait();
        let refused = vol.mount_with(&[]).err().expect("a half-rotated volume must not mount");
        assert_eq!(refused.0, Some(30), "{}", refused.1);
        assert!(refused.1.contains("key rotation of this volume is in progress"), "{}", refused.1);
    }
    let out = keytool(&["rotate-key", path, "--passphrase-file", pass]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming the rotation"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("to generation 2"));

    let m = vol.mount();
    let mut after = through_mount(&m);
    for i in 0..300u64 {
        let got = fs::read(m.p(&format!("bulk/call-{i:04}.wav"))).unwrap();
        assert_eq!(hash(&got), bulk[&i], "bulk/call-{i:04}.wav");
    }
    assert!(m.unmount().success());
    after.retain(|k, _| !k.starts_with("/bulk"));
    same(&before, &after, "through the mount after rotate-key");
    // The previous master key opens no name of the root any more.
    let data = VolumePaths::new(&vol.path).data();
    let root_id: [u8; 16] = fs::read(data.join(DIRID_FILE)).unwrap().try_into().unwrap();
    for e in entries(&data) {
        if let EntryKind::Short(n) = names::classify(&e) {
            assert!(names::decrypt_name(&old.names, &root_id, n).is_err(), "{e} still decrypts under the old key");
        }
    }
    let out = keytool(&["header", "restore", path, backup.to_str().unwrap(), "--unlock-passphrase-file", pass]);
    assert_eq!(out.status.code(), Some(28), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("before the volume's key rotation"));
    let done: Vec<_> =
        vol.records(&["--event", "key_admin"]).into_iter().filter(|r| r["detail"]["action"] == "rotate-key").collect();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["detail"]["labels"][0], "initial");
}
