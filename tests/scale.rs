//! Volumes of many files under a small open-file limit: the daemon's
//! descriptors stay bounded however many files are looked up
//! (fs-daemon/src/vault/backing.rs).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use crate::harness::{OwnMount, Volume};

/// The daemon's open descriptors, counted in /proc.
fn descriptors_of(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).expect("read the daemon's /proc fd directory").count()
}

/// The daemon's soft open-file limit, from /proc/PID/limits.
fn open_file_limit_of(pid: u32) -> u64 {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a Max open files line");
    line.split_whitespace().nth(3).and_then(|n| n.parse().ok()).expect("a number")
}

const LIMIT: u64 = 4096;
const DIRS: usize = 20;
const PER_DIR: usize = 10_000;
const HELD_OPEN: usize = 1000;

/// Before the descriptor cache, the daemon held one descriptor per inode the
/// kernel had cached, so the 4,096th file created failed with EMFILE.
#[test]
fn two_hundred_thousand_files_under_a_4096_descriptor_limit() {
    let vol = Volume::new();
    // Audited, as the product always is, with the journal on a tmpfs of its
    // own: on this disk every create's intent costs an fdatasync (200,000
    // creates took 325 s with the journal on disk). With it on tmpfs they
    // take what --no-audit takes (37 s against 34 s; 138 s against 138 s on
    // a busier day). The journal's descriptors do not grow with the files.
    let journal = OwnMount::new(&vol.path.join("audit"), vol.dir.path(), "size=2g");
    let m = vol.mount_under_fd_limit(LIMIT, &[]);
    let pid = m.pid();
    assert_eq!(open_file_limit_of(pid), LIMIT, "the daemon runs under the limit the test set");
    let mut most = descriptors_of(pid);
    let t = Instant::now();

    for d in 0..DIRS {
        let dir = m.p(&format!("d{d:02}"));
        fs::create_dir(&dir).unwrap();
        for i in 0..PER_DIR {
            let p = dir.join(format!("rec-{i:05}.wav"));
            if let Err(e) = File::create_new(&p) {
                panic!("creating file {} of {}: {e}", d * PER_DIR + i + 1, DIRS * PER_DIR);
            }
        }
        most = most.max(descriptors_of(pid));
    }
    let created = t.elapsed();

    let t = Instant::now();
    let mut listed = 0;
    for d in 0..DIRS {
        let dir = m.p(&format!("d{d:02}"));
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap_or_else(|err| panic!("stat {:?}: {err}", e.path()));
            assert!(md.is_file() && md.len() == 0, "{:?}", e.path());
            listed += 1;
        }
        most = most.max(descriptors_of(pid));
    }
    assert_eq!(listed, DIRS * PER_DIR);
    let stated = t.elapsed();

    // 1,000 recordings open at once, each written while all are open.
    let t = Instant::now();
    let frame = |i: usize, round: u8| -> Vec<u8> { (0..320).map(|k| (i as u8) ^ (k as u8) ^ round).collect() };
    let paths: Vec<_> = (0..HELD_OPEN).map(|i| m.p(&format!("d{:02}/rec-{:05}.wav", i % DIRS, i))).collect();
    let mut open: Vec<File> = paths
        .iter()
        .map(|p| OpenOptions::new().append(true).open(p).unwrap_or_else(|e| panic!("open {p:?}: {e}")))
        .collect();
    for round in 0..2u8 {
        for (i, f) in open.iter_mut().enumerate() {
            f.write_all(&frame(i, round)).unwrap_or_else(|e| panic!("write to open file {i}: {e}"));
        }
        most = most.max(descriptors_of(pid));
    }
    // Meanwhile the rest of the volume stays reachable.
    for d in 0..DIRS {
        let p = m.p(&format!("d{d:02}/rec-{:05}.wav", PER_DIR - 1));
        fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("stat {p:?} with {HELD_OPEN} files open: {e}"));
    }
    most = most.max(descriptors_of(pid));
    for f in &open {
        f.sync_all().unwrap();
    }
    drop(open);
    let held = t.elapsed();

    for (i, p) in paths.iter().enumerate().step_by(97) {
        let mut got = Vec::new();
        File::open(p).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, [frame(i, 0), frame(i, 1)].concat(), "{p:?}");
    }
    assert!(most < LIMIT as usize, "the daemon held {most} descriptors at most, not under its limit of {LIMIT}");
    eprintln!(
        "scale: {} files created in {created:.1?}, listed and stat'ed in {stated:.1?}, {HELD_OPEN} held open and \
         written in {held:.1?}; the daemon held at most {most} descriptors (limit {LIMIT})",
        DIRS * PER_DIR
    );
    let log = m.log_text();
    assert!(!log.contains("Too many open files") && !log.contains("EMFILE"), "daemon log:\n{log}");
    assert!(m.unmount().success());
    assert!(Path::new(&vol.path).exists());
    // Every create is on record, done.
    let created: Vec<String> = vol
        .records(&["--event", "create", "--outcome", "ok"])
        .iter()
        .filter_map(|r| r["path"].as_str().map(str::to_string))
        .collect();
    assert_eq!(created.len(), DIRS * PER_DIR, "create records with outcome ok");
    let distinct: std::collections::HashSet<&String> = created.iter().collect();
    assert_eq!(distinct.len(), DIRS * PER_DIR, "one record per file");
    assert!(distinct.contains(&format!("/d{:02}/rec-{:05}.wav", DIRS - 1, PER_DIR - 1)));
    drop(journal);
}

/// A file whose last name goes while the kernel still knows it (here through
/// an `O_PATH` descriptor, which sends no open) keeps its backing descriptor:
/// a file handle cannot reopen a nameless file, and more files than the
/// descriptor budget pass through the cache meanwhile.
#[test]
fn a_removed_file_still_known_stays_usable_under_the_limit() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let vol = Volume::new();
    let m = vol.mount_under_fd_limit(LIMIT, &["--no-audit"]);
    fs::write(m.p("kept.wav"), b"recording").unwrap();
    let held = OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(m.p("kept.wav")).unwrap();
    fs::remove_file(m.p("kept.wav")).unwrap();
    fs::create_dir(m.p("many")).unwrap();
    for i in 0..2 * LIMIT {
        File::create_new(m.p(&format!("many/f{i}"))).unwrap_or_else(|e| panic!("create {i}: {e}"));
    }
    let through = format!("/proc/self/fd/{}", held.as_raw_fd());
    fs::set_permissions(&through, fs::Permissions::from_mode(0o600)).expect("chmod of the removed file");
    assert_eq!(fs::metadata(&through).unwrap().permissions().mode() & 0o7777, 0o600);
    drop(held);
    assert!(m.unmount().success());
}
