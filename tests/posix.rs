//! Each test here backs a rule in docs/SEMANTICS.md.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, FallocateFlags, RenameFlags, fallocate, renameat2};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::harness::{Volume, pattern};

fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

#[test]
fn open_flags_excl_append_trunc() {
    let vol = Volume::new();
    let m = vol.mount();
    let p = m.p("call.wav");
    OpenOptions::new().write(true).create_new(true).open(&p).unwrap().write_all(b"first").unwrap();
    let again = OpenOptions::new().write(true).create_new(true).open(&p);
    assert_eq!(errno(again.unwrap_err()), Errno::EEXIST, "O_CREAT|O_EXCL on an existing file");
    // O_CREAT without O_EXCL opens the existing file.
    OpenOptions::new().write(true).create(true).truncate(false).open(&p).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"first");
    let mut a = OpenOptions::new().append(true).open(&p).unwrap();
    a.write_all(b"+second").unwrap();
    let mut b = OpenOptions::new().append(true).open(&p).unwrap();
    b.write_all(b"+third").unwrap();
    a.write_all(b"+fourth").unwrap();
    drop((a, b));
    assert_eq!(fs::read(&p).unwrap(), b"first+second+third+fourth");
    OpenOptions::new().write(true).truncate(true).open(&p).unwrap().write_all(b"new").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new");
    assert!(m.unmount().success());
}

#[test]
fn read_write_seek_pread_pwrite() {
    let vol = Volume::new();
    let m = vol.mount();
    let mut f = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(m.p("f")).unwrap();
    f.write_all(&pattern(1, 10_000)).unwrap();
    f.seek(SeekFrom::Start(5000)).unwrap();
    f.write_all(b"OVERWRITE").unwrap();
    f.write_all_at(b"PWRITE", 4094).unwrap();
    let mut expect = pattern(1, 10_000);
    expect[5000..5009].copy_from_slice(b"OVERWRITE");
    expect[4094..4100].copy_from_slice(b"PWRITE");
    let mut got = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, expect);
    let mut six = [0u8; 6];
    f.read_exact_at(&mut six, 4094).unwrap();
    assert_eq!(&six, b"PWRITE");
    // Reading past the end returns nothing.
    assert_eq!(f.read_at(&mut six, 20_000).unwrap(), 0);
    drop(f);
    assert!(m.unmount().success());
}

#[test]
fn truncate_ftruncate_and_fallocate() {
    let vol = Volume::new();
    let m = vol.mount();
    let p = m.p("t");
    fs::write(&p, pattern(2, 9000)).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(5000).unwrap();
    f.set_len(12_000).unwrap();
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 12_000);
    assert_eq!(&got[..5000], &pattern(2, 9000)[..5000]);
    assert!(got[5000..].iter().all(|&b| b == 0), "bytes after a shrink-then-grow must be zero");
    // truncate(2) by path, no open handle.
    Command::new("truncate").args(["-s", "100"]).arg(&p).status().unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 100);
    // fallocate mode 0 grows the size; KEEP_SIZE does not; both read as zeros.
    fallocate(&f, FallocateFlags::empty(), 0, 50_000).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 50_000);
    fallocate(&f, FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, 100_000).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 50_000);
    let got = fs::read(&p).unwrap();
    assert_eq!(&got[..100], &pattern(2, 100)[..]);
    assert!(got[100..].iter().all(|&b| b == 0));
    let punch = fallocate(&f, FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, 4096);
    assert_eq!(punch, Err(Errno::EOPNOTSUPP), "hole punching is refused");
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    drop(f);
    assert!(m.unmount().success());
}

#[test]
fn directories_mkdir_rmdir_readdir() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::create_dir(m.p("d")).unwrap();
    assert_eq!(errno(fs::create_dir(m.p("d")).unwrap_err()), Errno::EEXIST);
    fs::write(m.p("d/a"), b"a").unwrap();
    fs::create_dir(m.p("d/sub")).unwrap();
    assert_eq!(errno(fs::remove_dir(m.p("d")).unwrap_err()), Errno::ENOTEMPTY);
    let out = Command::new("ls").arg("-a1").arg(m.p("d")).output().unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(names, [".", "..", "a", "sub"]);
    assert_eq!(errno(fs::remove_dir(m.p("d/a")).unwrap_err()), Errno::ENOTDIR);
    assert_eq!(errno(fs::remove_file(m.p("d/sub")).unwrap_err()), Errno::EISDIR);
    fs::remove_file(m.p("d/a")).unwrap();
    fs::remove_dir(m.p("d/sub")).unwrap();
    fs::remove_dir(m.p("d")).unwrap();
    assert!(!m.p("d").exists());
    // Many entries list completely (more than one readdir reply).
    fs::create_dir(m.p("many")).unwrap();
    for i in 0..600 {
        fs::write(m.p(&format!("many/file-{i:04}")), b"").unwrap();
    }
    assert_eq!(fs::read_dir(m.p("many")).unwrap().count(), 600);
    assert!(m.unmount().success());
}

#[test]
fn rename_replace_noreplace_exchange() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::write(m.p("a"), b"A").unwrap();
    fs::write(m.p("b"), b"B").unwrap();
    fs::create_dir(m.p("dir")).unwrap();
    fs::rename(m.p("a"), m.p("dir/a2")).unwrap();
    assert_eq!(fs::read(m.p("dir/a2")).unwrap(), b"A");
    assert!(!m.p("a").exists());
    // Replacing an existing target.
    fs::rename(m.p("dir/a2"), m.p("b")).unwrap();
    assert_eq!(fs::read(m.p("b")).unwrap(), b"A");
    fs::write(m.p("c"), b"C").unwrap();
    let noreplace = renameat2(AT_FDCWD, &m.p("c"), AT_FDCWD, &m.p("b"), RenameFlags::RENAME_NOREPLACE);
    assert_eq!(noreplace, Err(Errno::EEXIST));
    renameat2(AT_FDCWD, &m.p("c"), AT_FDCWD, &m.p("b"), RenameFlags::RENAME_EXCHANGE).unwrap();
    assert_eq!(fs::read(m.p("b")).unwrap(), b"C");
    assert_eq!(fs::read(m.p("c")).unwrap(), b"A");
    // Directories: renamed with their contents, and over an empty directory.
    fs::write(m.p("dir/inside"), b"in").unwrap();
    fs::rename(m.p("dir"), m.p("moved")).unwrap();
    assert_eq!(fs::read(m.p("moved/inside")).unwrap(), b"in");
    fs::create_dir(m.p("empty")).unwrap();
    fs::rename(m.p("moved"), m.p("empty")).unwrap();
    assert_eq!(fs::read(m.p("empty/inside")).unwrap(), b"in");
    fs::create_dir(m.p("full")).unwrap();
    fs::write(m.p("full/x"), b"x").unwrap();
    fs::create_dir(m.p("other")).unwrap();
    assert_eq!(errno(fs::rename(m.p("other"), m.p("full")).unwrap_err()), Errno::ENOTEMPTY);
    assert_eq!(fs::read(m.p("full/x")).unwrap(), b"x", "a failed rename leaves the target intact");
    // Long names survive renames in both directions.
    let long = "n".repeat(255);
    fs::rename(m.p("b"), m.p(&long)).unwrap();
    fs::rename(m.p(&long), m.p("short")).unwrap();
    assert_eq!(fs::read(m.p("short")).unwrap(), b"C");
    assert!(m.unmount().success());
}

#[test]
fn unlinked_open_file_stays_readable_until_closed() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::write(m.p("gone"), pattern(3, 20_000)).unwrap();
    let mut f = fs::File::open(m.p("gone")).unwrap();
    fs::remove_file(m.p("gone")).unwrap();
    assert!(!m.p("gone").exists());
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, pattern(3, 20_000));
    drop(f);
    assert!(m.unmount().success());
}

/// On a format-2 volume: format 3 binds a file to its one name and refuses
/// hard links of files (tests/integrity.rs).
#[test]
fn symlinks_and_hard_links() {
    let vol = Volume::from_fixture("format-2");
    let m = vol.mount();
    fs::write(m.p("target.wav"), b"audio").unwrap();
    std::os::unix::fs::symlink("target.wav", m.p("sym")).unwrap();
    assert_eq!(fs::read_link(m.p("sym")).unwrap().to_str().unwrap(), "target.wav");
    assert_eq!(fs::symlink_metadata(m.p("sym")).unwrap().len(), "target.wav".len() as u64);
    assert_eq!(fs::read(m.p("sym")).unwrap(), b"audio");
    std::os::unix::fs::symlink("/an/absolute/dangling/target", m.p("dangling")).unwrap();
    assert_eq!(fs::read_link(m.p("dangling")).unwrap().to_str().unwrap(), "/an/absolute/dangling/target");
    fs::hard_link(m.p("target.wav"), m.p("hard.wav")).unwrap();
    let (a, b) = (fs::metadata(m.p("target.wav")).unwrap(), fs::metadata(m.p("hard.wav")).unwrap());
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    fs::write(m.p("hard.wav"), b"changed").unwrap();
    assert_eq!(fs::read(m.p("target.wav")).unwrap(), b"changed");
    fs::remove_file(m.p("target.wav")).unwrap();
    assert_eq!(fs::metadata(m.p("hard.wav")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.p("hard.wav")).unwrap(), b"changed");
    assert_eq!(errno(fs::hard_link(m.p("hard.wav"), m.p("hard.wav")).unwrap_err()), Errno::EEXIST);
    assert!(m.unmount().success());
}

#[test]
fn chmod_chown_and_nanosecond_times() {
    let vol = Volume::new();
    let m = vol.mount();
    let p = m.p("meta");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    let at = TimeSpec::new(1_600_000_000, 123_456_789);
    let mt = TimeSpec::new(1_700_000_000, 987_654_321);
    utimensat(AT_FDCWD, &p, &at, &mt, UtimensatFlags::FollowSymlink).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.atime(), md.atime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_700_000_000, 987_654_321));
    // Set while open and written: the time set last wins over the pending size update.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(b"more data", 1).unwrap();
    utimensat(AT_FDCWD, &p, &at, &mt, UtimensatFlags::FollowSymlink).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().mtime_nsec(), 987_654_321);
    // Symlink times are the link's own (lutimes).
    std::os::unix::fs::symlink("meta", m.p("l")).unwrap();
    utimensat(AT_FDCWD, &m.p("l"), &at, &at, UtimensatFlags::NoFollowSymlink).unwrap();
    assert_eq!(fs::symlink_metadata(m.p("l")).unwrap().mtime(), 1_600_000_000);
    assert_eq!(fs::metadata(&p).unwrap().mtime(), 1_700_000_000);
    assert!(m.unmount().success());
}

#[test]
fn statfs_reports_the_backing_filesystem_and_name_limit() {
    let vol = Volume::new();
    let m = vol.mount();
    let s = nix::sys::statvfs::statvfs(&m.path).unwrap();
    assert!(s.blocks() > 0 && s.blocks_available() > 0);
    assert_eq!(s.name_max(), 255);
    assert!(m.unmount().success());
}

#[test]
fn user_xattrs_round_trip_and_other_namespaces_are_refused() {
    let vol = Volume::new();
    let m = vol.mount();
    let p = m.p("x");
    fs::write(&p, b"x").unwrap();
    let set = Command::new("setfattr").args(["-n", "user.agent", "-v", "alice-42"]).arg(&p).output().unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let get = Command::new("getfattr").args(["--only-values", "-n", "user.agent"]).arg(&p).output().unwrap();
    assert_eq!(get.stdout, b"alice-42");
    let list = Command::new("getfattr").args(["-d", "--absolute-names"]).arg(&p).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("user.agent=\"alice-42\""));
    let rm = Command::new("setfattr").args(["-x", "user.agent"]).arg(&p).status().unwrap();
    assert!(rm.success());
    let gone = Command::new("getfattr").args(["-n", "user.agent"]).arg(&p).output().unwrap();
    assert!(!gone.status.success());
    let trusted = Command::new("setfattr").args(["-n", "trusted.x", "-v", "1"]).arg(&p).output().unwrap();
    assert!(!trusted.status.success());
    assert!(String::from_utf8_lossy(&trusted.stderr).contains("Operation not supported"));
    // The backing xattr names and values are encrypted.
    Command::new("setfattr").args(["-n", "user.secretname", "-v", "secretvalue"]).arg(&p).status().unwrap();
    assert!(m.unmount().success());
    let dump = Command::new("getfattr")
        .args(["-R", "-d", "-m", "-", "--absolute-names"])
        .arg(vol.path.join("data"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("user.cv."), "expected encrypted xattrs in the backing tree");
    assert!(!text.contains("secretname") && !text.contains("secretvalue"));
}

#[test]
fn names_up_to_255_bytes_and_refusals() {
    let vol = Volume::new();
    let m = vol.mount();
    for len in [1usize, 100, 175, 176, 200, 255] {
        let name = "é".repeat(len / 2) + &"x".repeat(len % 2);
        assert_eq!(name.len(), len);
        fs::write(m.p(&name), name.as_bytes()).unwrap();
        assert_eq!(fs::read(m.p(&name)).unwrap(), name.as_bytes());
    }
    let listed: Vec<String> =
        fs::read_dir(&m.path).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(listed.iter().any(|n| n.len() == 255), "a 255-byte name is listed");
    let too_long = "y".repeat(256);
    assert_eq!(errno(fs::write(m.p(&too_long), b"").unwrap_err()), Errno::ENAMETOOLONG);
    // Device nodes are refused; named pipes work.
    let dev = Command::new("mknod").arg(m.p("dev")).args(["c", "1", "3"]).output().unwrap();
    assert!(!dev.status.success(), "character devices are refused");
    let fifo = Command::new("mkfifo").arg(m.p("fifo")).status().unwrap();
    assert!(fifo.success());
    assert!(fs::symlink_metadata(m.p("fifo")).unwrap().file_type().is_fifo_like());
    assert!(m.unmount().success());
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn copy_tools_preserve_a_tree() {
    let vol = Volume::new();
    let m = vol.mount();
    let src = vol.dir.path().join("src");
    fs::create_dir_all(src.join("team-a/2026-11-25")).unwrap();
    fs::write(src.join("team-a/2026-11-25/c1.wav"), pattern(4, 300_000)).unwrap();
    fs::write(src.join("team-a/notes"), b"n").unwrap();
    std::os::unix::fs::symlink("notes", src.join("team-a/link")).unwrap();
    let cp = Command::new("cp").arg("-a").arg(&src).arg(m.p("copy")).status().unwrap();
    assert!(cp.success());
    let diff = Command::new("diff").arg("-r").arg("--no-dereference").arg(&src).arg(m.p("copy")).output().unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    let tar = Command::new("tar")
        .arg("-C")
        .arg(m.p("copy"))
        .arg("-cf")
        .arg(vol.dir.path().join("t.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    fs::create_dir(m.p("untar")).unwrap();
    let untar =
        Command::new("tar").arg("-C").arg(m.p("untar")).arg("-xf").arg(vol.dir.path().join("t.tar")).status().unwrap();
    assert!(untar.success());
    let diff = Command::new("diff").arg("-r").arg("--no-dereference").arg(&src).arg(m.p("untar")).output().unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    let e = fs::File::open(m.p("nope")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let _ = OpenOptions::new().custom_flags(0).read(true).open(m.p("copy/team-a/notes")).unwrap();
    assert!(m.unmount().success());
}

/// New files, directories and FIFOs get the mode asked for minus the
/// caller's umask, and nothing else (the daemon's own umask plays no part),
/// as stored and after a remount.
#[test]
fn new_objects_take_the_callers_umask_and_nothing_else() {
    let vol = Volume::new();
    let m = vol.mount();
    let cases = [(0o000, 0o666, 0o777), (0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o077, 0o600, 0o700)];
    for (umask, _, _) in cases {
        let script =
            format!("cd \"$1\" && umask {umask:03o} && touch f{umask:o} && mkdir d{umask:o} && mkfifo p{umask:o}");
        let st = Command::new("sh").arg("-c").arg(&script).arg("sh").arg(&m.path).status().unwrap();
        assert!(st.success());
    }
    let check = |root: &std::path::Path| {
        for (umask, file, dir) in cases {
            let mode = |n: &str| fs::symlink_metadata(root.join(format!("{n}{umask:o}"))).unwrap().mode() & 0o7777;
            assert_eq!(mode("f"), file, "file under umask {umask:03o}");
            assert_eq!(mode("d"), dir, "directory under umask {umask:03o}");
            assert_eq!(mode("p"), file, "fifo under umask {umask:03o}");
        }
    };
    check(&m.path);
    assert!(m.unmount().success());
    let m = vol.mount();
    check(&m.path);
    assert!(m.unmount().success());
}

/// No file grows past 2^62 bytes: truncates and allocations beyond are
/// EFBIG (no sector arithmetic near i64::MAX), and the mount keeps working.
#[test]
fn sizes_past_the_largest_file_are_efbig() {
    let vol = Volume::new();
    let m = vol.mount();
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.p("big.wav")).unwrap();
    for size in [(1u64 << 62) + 1, i64::MAX as u64 - 1] {
        assert_eq!(errno(f.set_len(size).unwrap_err()), Errno::EFBIG, "truncate to {size}");
    }
    assert_eq!(fallocate(&f, FallocateFlags::empty(), 1 << 62, 4096), Err(Errno::EFBIG));
    assert_eq!(f.metadata().unwrap().len(), 0);
    f.write_all_at(b"still fine", 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::read(m.p("big.wav")).unwrap(), b"still fine");
    assert!(m.unmount().success());
}
