//! The rotation on backing trees built here by hand (no daemon, no mount):
//! everything re-encrypted and nothing left under the old key, every crash
//! point resumed, damage refused with nothing deleted.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, XattrFlags};

use super::copy::CHUNK;
use super::progress::{NoProgress, RotationProgress};
use super::sys;
use super::*;
use crate::contents::SectorCipher;
use crate::fileheader::{FileHeader, SLOT_OFFSETS};
use crate::layout::Layout;
use crate::names::{self, BackingName, DIRID_FILE, EntryKind, LONG_NAME_SUFFIX};
use crate::secret::MasterKey;
use crate::sectors::{FILE_HEADER_LEN, SECTOR_SIZE, sectors_for_size};

/// These trees are built by hand in the plain layout (formats 1 and 2);
/// tagged volumes are rotated through the daemon in tests/rotation.rs.
const PLAIN: Layouts = Layouts { from: Layout::Plain, to: Layout::Plain };

fn backing_offset(i: u64) -> u64 {
    Layout::Plain.data_offset(i)
}

fn backing_len_for_size(size: u64) -> u64 {
    Layout::Plain.backing_len(size)
}

const S: usize = SECTOR_SIZE as usize;

fn keys() -> VolumeKeys {
    VolumeKeys::derive(MasterKey::generate().unwrap())
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn set_times(p: &Path, a: i64, m: i64) {
    let ts = sys::timestamps((a, 111), (m, 222));
    rfs::utimensat(rfs::CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// Writes backing objects the way the daemon does (docs/FORMAT.md).
struct Builder<'k> {
    keys: &'k VolumeKeys,
    /// Everything made, deepest last, for setting times at the end.
    made: Vec<PathBuf>,
}

impl<'k> Builder<'k> {
    fn new(keys: &'k VolumeKeys) -> Self {
        Builder { keys, made: Vec::new() }
    }

    fn data_dir(&mut self, base: &Path) -> (PathBuf, [u8; 16]) {
        let d = base.join("data");
        fs::create_dir(&d).unwrap();
        let id = [0x11; 16];
        crate::volume::write_dirid(&d, &id).unwrap();
        self.made.push(d.clone());
        (d, id)
    }

    /// The backing path of `name` in `dir`, its side file written if long.
    fn name(&self, dir: &Path, id: &[u8; 16], name: &str) -> PathBuf {
        let bn = names::encrypt_name(&self.keys.names, id, name.as_bytes()).unwrap();
        if let (Some(side), BackingName::Long { full, .. }) = (bn.name_file(), &bn) {
            fs::write(dir.join(&side), full).unwrap();
            fs::set_permissions(dir.join(&side), fs::Permissions::from_mode(0o400)).unwrap();
        }
        dir.join(bn.entry())
    }

    fn dir(&mut self, parent: &Path, pid: &[u8; 16], name: &str) -> (PathBuf, [u8; 16]) {
        let p = self.name(parent, pid, name);
        fs::create_dir(&p).unwrap();
        let id: [u8; 16] = crate::random::array().unwrap();
        crate::volume::write_dirid(&p, &id).unwrap();
        self.made.push(p.clone());
        (p, id)
    }

    /// A regular file holding `plain`: sectors in `holes` are never written
    /// (they must be zeros in `plain`), sectors in `zeroed` are written as
    /// all-zero ciphertext (reads as a hole), `excess` garbage sectors follow.
    fn file(
        &mut self,
        parent: &Path,
        pid: &[u8; 16],
        name: &str,
        plain: &[u8],
        holes: &[u64],
        zeroed: &[u64],
    ) -> PathBuf {
        let p = self.name(parent, pid, name);
        self.contents(&p, plain, holes, zeroed, 0);
        self.made.push(p.clone());
        p
    }

    fn contents(&self, p: &Path, plain: &[u8], holes: &[u64], zeroed: &[u64], excess: u64) {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(p).unwrap();
        let id: [u8; 16] = crate::random::array().unwrap();
        let mut h = FileHeader::new(id, None);
        h.size = plain.len() as u64;
        h.generation = 7;
        let mut region = vec![0u8; FILE_HEADER_LEN as usize];
        let slot = h.encode(Layout::Plain, &self.keys.file_header_mac);
        region[SLOT_OFFSETS[1]..SLOT_OFFSETS[1] + slot.len()].copy_from_slice(&slot);
        f.write_all_at(&region, 0).unwrap();
        let c = SectorCipher::new(&self.keys.file_key(&id)).unwrap();
        let n = sectors_for_size(plain.len() as u64);
        f.set_len(backing_len_for_size(plain.len() as u64) + excess * SECTOR_SIZE).unwrap();
        for i in 0..n {
            if holes.contains(&i) {
                assert!(plain[i as usize * S..].iter().take(S).all(|&b| b == 0));
                continue;
            }
            let mut sector = vec![0u8; S];
            if !zeroed.contains(&i) {
                let from = i as usize * S;
                let to = (from + S).min(plain.len());
                sector[..to - from].copy_from_slice(&plain[from..to]);
                c.encrypt_run(i, &mut sector);
            }
            f.write_all_at(&sector, backing_offset(i)).unwrap();
        }
        for i in n..n + excess {
            f.write_all_at(&pattern(i, S), backing_offset(i)).unwrap();
        }
    }

    fn empty(&mut self, parent: &Path, pid: &[u8; 16], name: &str) -> PathBuf {
        let p = self.name(parent, pid, name);
        fs::write(&p, b"").unwrap();
        self.made.push(p.clone());
        p
    }

    fn symlink(&mut self, parent: &Path, pid: &[u8; 16], name: &str, target: &str) -> PathBuf {
        let p = self.name(parent, pid, name);
        let stored = names::encrypt_link_target(&self.keys.link_targets, target.as_bytes()).unwrap();
        std::os::unix::fs::symlink(stored, &p).unwrap();
        self.made.push(p.clone());
        p
    }

    fn fifo(&mut self, parent: &Path, pid: &[u8; 16], name: &str) -> PathBuf {
        let p = self.name(parent, pid, name);
        rfs::mknodat(rfs::CWD, &p, FileType::Fifo, Mode::from_raw_mode(0o640), 0).unwrap();
        self.made.push(p.clone());
        p
    }

    fn link(&mut self, existing: &Path, parent: &Path, pid: &[u8; 16], name: &str) -> PathBuf {
        let p = self.name(parent, pid, name);
        fs::hard_link(existing, &p).unwrap();
        p
    }

    fn xattr(&self, p: &Path, name: &str, value: &[u8]) {
        let bname = names::encrypt_xattr_name(&self.keys.xattrs, name.as_bytes()).unwrap();
        let sealed = names::seal_random(&self.keys.xattrs, bname.as_bytes(), value).unwrap();
        rfs::setxattr(p, bname.as_str(), &sealed, XattrFlags::empty()).unwrap();
    }

    /// Gives everything made fixed times, deepest first (making entries
    /// moves their directory's times).
    fn settle(&self) {
        for (i, p) in self.made.iter().enumerate().rev() {
            set_times(p, 1_500_000_000 + i as i64, 1_400_000_000 + 3 * i as i64);
        }
    }
}

/// A varied tree: nested and long-named directories, empty, 1-byte,
/// 4097-byte, multi-chunk, sparse and zero-sector files, a file with excess
/// sectors, long names, symlinks (one hard-linked), a hard-linked file
/// across directories, a FIFO, a socket, xattrs on files and directories.
fn build(base: &Path, keys: &VolumeKeys, big: usize, depth: usize) -> PathBuf {
    let mut b = Builder::new(keys);
    let (data, rid) = b.data_dir(base);
    let (a, aid) = b.dir(&data, &rid, "team-a");
    let (nov, nid) = b.dir(&a, &aid, "2026-11");
    let long_dir = "d".repeat(200);
    let (ld, lid) = b.dir(&a, &aid, &long_dir);
    b.empty(&nov, &nid, "empty.wav");
    b.file(&nov, &nid, "one.wav", b"x", &[], &[]);
    let f4097 = b.file(&nov, &nid, "4097.wav", &pattern(1, 4097), &[], &[]);
    b.file(&nov, &nid, "big.wav", &pattern(2, big), &[], &[]);
    let mut sparse = vec![0u8; 40 * S + 100];
    sparse[3 * S..4 * S].copy_from_slice(&pattern(3, S));
    sparse[20 * S..22 * S].copy_from_slice(&pattern(4, 2 * S));
    sparse[40 * S..].copy_from_slice(&pattern(5, 100));
    let holes: Vec<u64> = (0..41).filter(|i| ![3, 20, 21, 30, 40].contains(i)).collect();
    b.file(&nov, &nid, "sparse.wav", &sparse, &holes, &[30]);
    let excess = b.name(&nov, &nid, "excess.wav");
    b.contents(&excess, &pattern(6, 5000), &[], &[], 3);
    b.made.push(excess.clone());
    let long_file = "f".repeat(250);
    let lf = b.file(&ld, &lid, &long_file, &pattern(7, 9000), &[], &[]);
    b.xattr(&lf, "comment", b"long and named");
    b.xattr(&f4097, "comment", b"agent 42");
    b.xattr(&f4097, "x".repeat(150).as_str(), &pattern(8, 300));
    b.xattr(&a, "team", b"A");
    b.xattr(&data, "root-note", b"r");
    let empty_x = b.empty(&a, &aid, "tagged-empty");
    b.xattr(&empty_x, "state", b"pending");
    // A hard link pair across directories, one of the names long.
    let shared = b.file(&nov, &nid, "shared.wav", &pattern(9, 3 * S + 5), &[], &[]);
    b.xattr(&shared, "who", b"both names");
    b.link(&shared, &ld, &lid, &"s".repeat(180));
    b.link(&shared, &data, &rid, "shared-too.wav");
    b.symlink(&data, &rid, "latest", "team-a/2026-11/4097.wav");
    let l = b.symlink(&ld, &lid, &"l".repeat(190), "../2026-11/one.wav");
    b.link(&l, &nov, &nid, "link-to-link");
    b.fifo(&a, &aid, "pipe");
    let sock = b.name(&a, &aid, "sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    b.made.push(sock);
    // Deep nesting.
    let (mut d, mut id) = (nov.clone(), nid);
    for i in 0..depth {
        (d, id) = b.dir(&d, &id, &format!("n{i}"));
    }
    b.file(&d, &id, "deep.wav", b"deep", &[], &[]);
    if root() {
        rfs::chownat(
            rfs::CWD,
            &f4097,
            Some(rfs::Uid::from_raw(1234)),
            Some(rfs::Gid::from_raw(5678)),
            AtFlags::empty(),
        )
        .unwrap();
        rfs::chownat(
            rfs::CWD,
            &l,
            Some(rfs::Uid::from_raw(77)),
            Some(rfs::Gid::from_raw(88)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        fs::set_permissions(&f4097, fs::Permissions::from_mode(0o6640)).unwrap();
        fs::set_permissions(&nov, fs::Permissions::from_mode(0o710)).unwrap();
    }
    b.settle();
    data
}

/// One object as the volume shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    /// Length and SHA-256 prefix of the contents or link target.
    data: (usize, String),
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    mode: u32,
    uid: u32,
    gid: u32,
    atime: (i64, i64),
    mtime: (i64, i64),
    nlink: u64,
    /// The first path (in name order) of the object's hard links.
    group: String,
    /// Sectors holding non-zero ciphertext (holes and zero sectors left out).
    data_sectors: Vec<u64>,
}

fn digest(b: &[u8]) -> (usize, String) {
    use sha2::Digest;
    (b.len(), sys::hex(&sha2::Sha256::digest(b)[..8]))
}

/// Asserts two readings are equal, showing only what differs.
fn same(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>, when: &str) {
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(only_a.is_empty() && only_b.is_empty(), "{when}: only before {only_a:?}, only after {only_b:?}");
    for (k, x) in a {
        assert_eq!(x, &b[k], "{when}: {k}");
    }
}

/// Reads the whole tree under `keys`, strictly: every name, header, target
/// and xattr must decrypt under `keys` and (if given) not under `not`, and no
/// leftover may be there.
fn read(data: &Path, keys: &VolumeKeys, not: Option<&VolumeKeys>) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut groups = BTreeMap::new();
    read_dir(data, "", keys, not, &mut out, &mut groups);
    for node in out.values_mut() {
        node.group = groups[&node.group].clone();
    }
    out
}

fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}

fn xattrs_of(p: &Path, keys: &VolumeKeys, not: Option<&VolumeKeys>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let f = sys::open_file(rfs::CWD, p.to_str().unwrap(), p).unwrap();
    let mut out = BTreeMap::new();
    for name in sys::xattr_names(&f, p).unwrap() {
        let text = String::from_utf8(name.clone()).unwrap();
        assert_ne!(text, dirtimes::RECORD, "{}: a times record is left", p.display());
        let value = sys::xattr_get(&f, &name, p).unwrap().unwrap();
        let plain = names::decrypt_xattr_name(&keys.xattrs, &text)
            .unwrap_or_else(|| panic!("{}: xattr {text} is not under the key", p.display()));
        let v = names::open_random(&keys.xattrs, text.as_bytes(), &value).unwrap();
        if let Some(not) = not {
            assert!(names::decrypt_xattr_name(&not.xattrs, &text).is_none());
            assert!(names::open_random(&not.xattrs, text.as_bytes(), &value).is_err());
        }
        out.insert(plain, v);
    }
    out
}

fn read_dir(
    dir: &Path,
    rel: &str,
    keys: &VolumeKeys,
    not: Option<&VolumeKeys>,
    out: &mut BTreeMap<String, Node>,
    groups: &mut BTreeMap<String, String>,
) {
    let id: [u8; 16] = fs::read(dir.join(DIRID_FILE)).unwrap().try_into().unwrap();
    let fd = sys::open_root(dir).unwrap();
    for e in sys::entries(&fd, dir).unwrap() {
        let e = e.to_str().unwrap().to_string();
        let encoded = match names::classify(&e) {
            EntryKind::Short(s) => s.to_string(),
            EntryKind::Long(h) => {
                let full = fs::read_to_string(dir.join(format!("{h}{LONG_NAME_SUFFIX}"))).unwrap();
                assert!(names::long_name_matches(h, &full));
                full
            }
            EntryKind::Internal => {
                let side = e.strip_suffix(LONG_NAME_SUFFIX).is_some_and(|x| dir.join(x).symlink_metadata().is_ok());
                assert!(e == DIRID_FILE || side, "{}: leftover {e}", dir.display());
                continue;
            }
        };
        let plain = names::decrypt_name(&keys.names, &id, &encoded)
            .unwrap_or_else(|_| panic!("{}: {e} is not under the key", dir.display()));
        if let Some(not) = not {
            assert!(names::decrypt_name(&not.names, &id, &encoded).is_err());
        }
        let name = format!("{rel}/{}", String::from_utf8(plain).unwrap());
        let p = dir.join(&e);
        let m = meta(&p);
        let ft = m.file_type();
        let mut node = Node {
            kind: "other",
            data: digest(&[]),
            xattrs: BTreeMap::new(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            atime: (m.atime(), m.atime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            nlink: m.nlink(),
            group: format!("{}:{}", m.dev(), m.ino()),
            data_sectors: Vec::new(),
        };
        let first = groups.entry(node.group.clone()).or_insert_with(|| name.clone());
        if name < *first {
            first.clone_from(&name);
        }
        if ft.is_dir() {
            node.kind = "dir";
            node.xattrs = xattrs_of(&p, keys, not);
            read_dir(&p, &name, keys, not, out, groups);
            // Reading it (O_NOATIME) moved nothing; its times are as before.
            let again = meta(&p);
            node.atime = (again.atime(), again.atime_nsec());
        } else if ft.is_symlink() {
            node.kind = "symlink";
            let stored = fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes();
            node.data = digest(&names::decrypt_link_target(&keys.link_targets, &stored).unwrap());
            if let Some(not) = not {
                assert!(names::decrypt_link_target(&not.link_targets, &stored).is_err());
            }
            // readlink moved the access time: put it back for the next reader.
            rfs::utimensat(rfs::CWD, &p, &sys::timestamps(node.atime, node.mtime), AtFlags::SYMLINK_NOFOLLOW).unwrap();
        } else if ft.is_file() {
            node.kind = "file";
            node.xattrs = xattrs_of(&p, keys, not);
            let (plain, sectors) = file_contents(&p, keys, not);
            (node.data, node.data_sectors) = (digest(&plain), sectors);
        } else if ft.is_fifo() {
            node.kind = "fifo";
        } else {
            node.kind = "socket";
        }
        out.insert(name, node);
    }
}

fn file_contents(p: &Path, keys: &VolumeKeys, not: Option<&VolumeKeys>) -> (Vec<u8>, Vec<u64>) {
    let f = sys::open_file(rfs::CWD, p.to_str().unwrap(), p).unwrap();
    let len = f.metadata().unwrap().len();
    if len == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut region = vec![0u8; 4096];
    sys::read_full(&f, &mut region, 0, p).unwrap();
    let h = FileHeader::decode(&region, Layout::Plain, &keys.file_header_mac).unwrap();
    if let Some(not) = not {
        assert!(FileHeader::decode(&region, Layout::Plain, &not.file_header_mac).is_err());
    }
    let c = SectorCipher::new(&keys.file_key(&h.file_id)).unwrap();
    let n = sectors_for_size(h.size);
    let mut plain = vec![0u8; (n * SECTOR_SIZE) as usize];
    sys::read_full(&f, &mut plain, FILE_HEADER_LEN, p).unwrap();
    let mut data_sectors = Vec::new();
    let mut runs = copy::DataRuns::new(&f, FILE_HEADER_LEN, backing_len_for_size(h.size), p);
    while let Some((a, b)) = runs.next_run().unwrap() {
        for s in (a - FILE_HEADER_LEN) / SECTOR_SIZE..(b - FILE_HEADER_LEN) / SECTOR_SIZE {
            let at = s as usize * S;
            if plain[at..at + S].iter().any(|&b| b != 0) {
                data_sectors.push(s);
            }
        }
    }
    c.decrypt_run(0, &mut plain);
    plain.truncate(h.size as usize);
    (plain, data_sectors)
}

/// Counts what a rotation reports.
#[derive(Default)]
struct Counted {
    started: Option<(u64, u64)>,
    files: u64,
    bytes: u64,
    messages: Vec<String>,
}

impl RotationProgress for Counted {
    fn start(&mut self, files: u64, bytes: u64) {
        self.started = Some((files, bytes));
    }
    fn file_done(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
    fn message(&mut self, text: &str) {
        self.messages.push(text.to_string());
    }
}

#[test]
fn everything_is_re_encrypted_and_nothing_is_left_under_the_old_key() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (keys(), keys());
    let data = build(t.path(), &old, 3 * CHUNK + 5 * S + 17, 30);
    let before = read(&data, &old, None);
    assert_eq!(before.len(), 50, "{} entries: {:#?}", before.len(), before.keys());
    let s = survey(&data, &old, &new, PLAIN).unwrap();
    // 8 files with contents (the hard-linked one once, the empty ones none).
    assert_eq!((s.files, s.files_done, s.symlinks, s.dirs), (8, 0, 3, 34), "{s:?}");
    assert_eq!(s.names as usize, before.len(), "every name, a hard link's each: {s:?}");
    assert_eq!(s.xattrs, 7);
    assert!(!s.nothing_left());

    let mut p = Counted::default();
    let stats = rotate_tree(&data, &old, &new, PLAIN, &mut p).unwrap();
    assert_eq!(p.started, Some((s.files, s.bytes)));
    assert_eq!((p.files, p.bytes), (s.files, s.bytes), "file_done adds up to what start announced");
    assert_eq!((stats.files, stats.bytes, stats.names, stats.xattrs), (s.files, s.bytes, s.names, s.xattrs));
    assert_eq!((stats.symlinks, stats.relinked, stats.leftovers), (2, 5, 0), "{stats:?}");
    // Holes are not counted: the sparse file holds 5 data sectors, one of them zeros.
    assert!(s.bytes < 3 * CHUNK as u64 + 30 * SECTOR_SIZE);

    let after = read(&data, &new, Some(&old));
    same(&before, &after, "after the rotation");
    let groups = |m: &BTreeMap<String, Node>| m.values().filter(|n| n.kind != "dir" && n.nlink > 1).count();
    assert_eq!(groups(&after), 5, "the hard-linked file (3 names) and symlink (2 names) stay linked");
    let sparse = &after["/team-a/2026-11/sparse.wav"];
    assert_eq!(sparse.data_sectors, vec![3, 20, 21, 40], "holes and the zero sector stay holes");
    let excess = data_dir_entry(&data, &new, &["team-a", "2026-11", "excess.wav"]);
    assert_eq!(fs::metadata(excess).unwrap().len(), backing_len_for_size(5000), "excess sectors are not carried over");

    let again = survey(&data, &old, &new, PLAIN).unwrap();
    assert!(again.nothing_left(), "{again:?}");
    assert_eq!(again.files_done, 8);
    let stats = rotate_tree(&data, &old, &new, PLAIN, &mut NoProgress).unwrap();
    assert_eq!((stats.files, stats.names, stats.symlinks, stats.xattrs), (0, 0, 0, 0), "a second run changes nothing");
    same(&read(&data, &new, Some(&old)), &before, "after a second run");
}

/// The backing path of a plaintext path under `keys`.
fn data_dir_entry(data: &Path, keys: &VolumeKeys, parts: &[&str]) -> PathBuf {
    let mut p = data.to_path_buf();
    for part in parts {
        let id: [u8; 16] = fs::read(p.join(DIRID_FILE)).unwrap().try_into().unwrap();
        p = p.join(names::encrypt_name(&keys.names, &id, part.as_bytes()).unwrap().entry());
    }
    p
}

#[test]
fn a_crash_before_any_change_is_resumed_with_nothing_lost() {
    let (old, new) = (keys(), keys());
    // On a tmpfs where there is one: fsync is free there, and this runs
    // hundreds of rotations.
    let shm = Path::new("/dev/shm");
    let t = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let big = CHUNK + 3 * S;
    let expected = read(&build(&t.path().join("ref").tap_mkdir(), &old, big, 2), &old, None);
    let total = {
        let base = t.path().join("count").tap_mkdir();
        let data = build(&base, &old, big, 2);
        let (r, changes) = run_until(&data, &old, &new, &mut NoProgress, None);
        r.unwrap();
        same(&read(&data, &new, Some(&old)), &expected, "one run");
        changes
    };
    assert!(total > 100, "{total} changes");
    eprintln!("stopping the rotation before each of its {total} changes");
    for stop in 0..total {
        let base = t.path().join(format!("stop-{stop}")).tap_mkdir();
        let data = build(&base, &old, big, 2);
        let (r, _) = run_until(&data, &old, &new, &mut NoProgress, Some(stop));
        let e = r.expect_err("stopped");
        assert!(e.to_string().contains("a simulated crash"), "{e}");
        // A second crash early in the resumed run, then a run to the end.
        let (r, _) = run_until(&data, &old, &new, &mut NoProgress, Some(stop % 7));
        if r.is_err() {
            let mut p = Counted::default();
            rotate_tree(&data, &old, &new, PLAIN, &mut p).unwrap_or_else(|e| panic!("resume after change {stop}: {e}"));
            assert_eq!((p.files, p.bytes), p.started.unwrap(), "after change {stop}");
        }
        same(&read(&data, &new, Some(&old)), &expected, &format!("after a crash before change {stop}"));
        assert!(survey(&data, &old, &new, PLAIN).unwrap().nothing_left());
        fs::remove_dir_all(&base).unwrap();
    }
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        fs::create_dir_all(&self).unwrap();
        self
    }
}

/// The backing tree as bytes and names, for "nothing was deleted".
fn raw(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = meta(&p);
            if m.is_dir() {
                stack.push(p.clone());
                out.insert(p, Vec::new());
            } else if m.is_file() {
                out.insert(p.clone(), fs::read(&p).unwrap());
            } else {
                out.insert(p, Vec::new());
            }
        }
    }
    out
}

#[test]
fn an_entry_under_neither_key_stops_the_rotation_with_its_path_and_nothing_deleted() {
    let (old, new, other) = (keys(), keys(), keys());
    /// Plants something under a third key (or damage) in a tree under `old`.
    type Spoil = fn(&Path, &VolumeKeys, &VolumeKeys) -> PathBuf;
    let cases: [(&str, Spoil); 6] = [
        ("its name", |data, _, other| Builder::new(other).file(data, &[0x11; 16], "stranger.wav", b"x", &[], &[])),
        ("its file header", |data, old, other| {
            let p = data_dir_entry(data, old, &["team-a", "2026-11", "one.wav"]);
            Builder::new(other).contents(&p, b"y", &[], &[], 0);
            p
        }),
        ("xattr", |data, old, other| {
            let f = data_dir_entry(data, old, &["team-a", "2026-11", "4097.wav"]);
            Builder::new(other).xattr(&f, "planted", b"v");
            f
        }),
        ("shorter than a file header", |data, old, _| {
            let f = data_dir_entry(data, old, &["team-a", "2026-11", "one.wav"]);
            fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(100).unwrap();
            f
        }),
        ("too short for the", |data, old, _| {
            let f = data_dir_entry(data, old, &["team-a", "2026-11", "4097.wav"]);
            fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(8192).unwrap();
            f
        }),
        ("its link target", |data, old, other| {
            let f = data_dir_entry(data, old, &["latest"]);
            fs::remove_file(&f).unwrap();
            let stored = names::encrypt_link_target(&other.link_targets, b"elsewhere").unwrap();
            std::os::unix::fs::symlink(stored, &f).unwrap();
            f
        }),
    ];
    for (what, spoil) in cases {
        let t = tempfile::tempdir().unwrap();
        let data = build(t.path(), &old, 5 * S, 2);
        let mut bad = spoil(&data, &old, &other);
        let raw_before = raw(&data);
        let e = rotate_tree(&data, &old, &new, PLAIN, &mut NoProgress).expect_err(what);
        if what == "its link target" {
            // Its name was rotated before its target was read.
            bad = data_dir_entry(&data, &new, &["latest"]);
        }
        let msg = e.to_string();
        assert!(msg.contains(what), "{what}: {msg}");
        assert!(msg.contains(&bad.display().to_string()), "{what}: the message names {}: {msg}", bad.display());
        assert!(msg.contains("nothing was deleted"), "{msg}");
        assert!(bad.symlink_metadata().is_ok(), "{what}: the bad entry is still there");
        if what != "its link target" {
            // Found by the survey, before anything changed.
            assert_eq!(raw(&data), raw_before, "{what}: nothing changed");
        }
        // Once the entry is dealt with, the rotation finishes.
        fs::remove_file(&bad).unwrap();
        rotate_tree(&data, &old, &new, PLAIN, &mut NoProgress).unwrap_or_else(|e| panic!("{what}: {e}"));
        read(&data, &new, Some(&old));
    }
}

#[test]
fn the_same_key_twice_and_a_directory_that_is_no_volume_are_refused() {
    let k = keys();
    let t = tempfile::tempdir().unwrap();
    let data = build(t.path(), &k, S, 1);
    let same = VolumeKeys::derive(MasterKey::copy_from(&[7; 64]));
    let same2 = VolumeKeys::derive(MasterKey::copy_from(&[7; 64]));
    assert!(matches!(rotate_tree(&data, &same, &same2, PLAIN, &mut NoProgress), Err(RotationError::SameKeys)));
    let e = rotate_tree(&t.path().join("missing"), &k, &keys(), PLAIN, &mut NoProgress).unwrap_err();
    assert!(matches!(e, RotationError::NotADataDirectory { .. }), "{e}");
    let e = survey(t.path(), &k, &keys(), PLAIN).unwrap_err();
    assert!(e.to_string().contains("is not a callvault data directory: it has no .dirid"), "{e}");
}

#[test]
fn leftovers_of_an_interrupted_run_and_of_the_daemon_are_removed() {
    let (old, new) = (keys(), keys());
    let t = tempfile::tempdir().unwrap();
    let data = build(t.path(), &old, S, 1);
    let expected = read(&data, &old, None);
    // A temporary of a killed run, an orphaned side file the daemon left, a
    // half-written staged copy; and a side file no key decrypts (left alone).
    fs::write(data.join(format!("{TEMP_PREFIX}0123456789abcdef01234567")), b"partial").unwrap();
    let orphan = Builder::new(&old).name(&data, &[0x11; 16], &"o".repeat(200));
    assert!(!orphan.exists());
    fs::create_dir(data.join(STAGING_DIR)).unwrap();
    fs::write(data.join(STAGING_DIR).join("part-00"), b"half").unwrap();
    let stray = data.join(format!(".L{}{LONG_NAME_SUFFIX}", "A".repeat(43)));
    fs::write(&stray, b"not a name").unwrap();
    let s = survey(&data, &old, &new, PLAIN).unwrap();
    assert_eq!(s.leftovers, 4, "temporary, orphan, staging directory and its part: {s:?}");
    let mut p = Counted::default();
    let stats = rotate_tree(&data, &old, &new, PLAIN, &mut p).unwrap();
    assert_eq!(stats.leftovers, 3);
    assert!(p.messages.iter().any(|m| m.contains("left alone")), "{:?}", p.messages);
    fs::remove_file(&stray).unwrap();
    same(&read(&data, &new, Some(&old)), &expected, "after leftovers");
}

#[test]
fn deep_trees_hold_one_directory_descriptor_at_a_time() {
    use std::io::Write;
    let (old, new) = (keys(), keys());
    let t = tempfile::tempdir().unwrap();
    let (data, rid) = Builder::new(&old).data_dir(t.path());
    // Deeper than a low descriptor limit would allow with one per level; the
    // backing path is far past PATH_MAX, so it is made relative to descriptors.
    let (mut fd, mut id) = (sys::open_root(&data).unwrap(), rid);
    for i in 0..400 {
        let bn = names::encrypt_name(&old.names, &id, format!("level-{i:03}").as_bytes()).unwrap();
        rfs::mkdirat(&fd, bn.entry(), Mode::from_raw_mode(0o755)).unwrap();
        let child = sys::open_dir(&fd, bn.entry(), &data).unwrap();
        id = crate::random::array().unwrap();
        let mut f = sys::create(&child, DIRID_FILE, &data).unwrap();
        f.write_all(&id).unwrap();
        rfs::futimens(&child, &sys::timestamps((1_000_000 + i, 5), (2_000_000 + i, 7))).unwrap();
        fd = child;
    }
    let before = read_deep(&data, &old);
    assert_eq!(before.len(), 400);
    rotate_tree(&data, &old, &new, PLAIN, &mut NoProgress).unwrap();
    assert_eq!(read_deep(&data, &new), before);
}

/// Plaintext names and times of a chain of single directories (paths too
/// long for the path-based reader).
fn read_deep(data: &Path, keys: &VolumeKeys) -> Vec<(String, (i64, i64))> {
    let mut out = Vec::new();
    let mut fd = sys::open_root(data).unwrap();
    loop {
        let id = sys::dir_id(&fd, data, false).unwrap();
        let e: Vec<_> = sys::entries(&fd, data).unwrap().into_iter().filter(|e| e != DIRID_FILE).collect();
        let [e] = &e[..] else { return out };
        let e = e.to_str().unwrap();
        let name = names::decrypt_name(&keys.names, &id, e).unwrap();
        let child = sys::open_dir(&fd, e, data).unwrap();
        out.push((String::from_utf8(name).unwrap(), sys::fstat(&child, data).unwrap().mtime));
        fd = child;
    }
}
