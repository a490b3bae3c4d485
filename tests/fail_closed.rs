//! Fail closed: no change to the volume happens without its record. Every
//! mutating call against a full journal filesystem, a daemon killed between
//! an operation's intent and its outcome, and a backing store that fails
//! under written files (their close and the unmount report it).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{FailingDisk, OwnMount, Volume, pattern};

/// Attempts per operation: the first attempts may still fit in the last,
/// partly used page of the journal segment; one of them must be refused.
const TRIES: usize = 40;

/// One kind of change: how to attempt it on fixture `i`, how to tell after a
/// remount whether it took effect, and the journal event and path it is
/// recorded under.
struct Op {
    name: &'static str,
    event: &'static str,
    attempt: fn(&Path, usize) -> io::Result<()>,
    happened: fn(&Path, usize) -> bool,
    path: fn(usize) -> String,
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let out = Command::new("getfattr").args(["--only-values", "-n", name]).arg(p).output().unwrap();
    out.status.success().then_some(out.stdout)
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "create",
            event: "create",
            attempt: |m, i| {
                fs::OpenOptions::new().write(true).create_new(true).open(m.join(format!("fx/new{i}"))).map(drop)
            },
            happened: |m, i| exists(&m.join(format!("fx/new{i}"))),
            path: |i| format!("/fx/new{i}"),
        },
        Op {
            name: "mkdir",
            event: "mkdir",
            attempt: |m, i| fs::create_dir(m.join(format!("fx/newdir{i}"))),
            happened: |m, i| exists(&m.join(format!("fx/newdir{i}"))),
            path: |i| format!("/fx/newdir{i}"),
        },
        Op {
            name: "symlink",
            event: "symlink",
            attempt: |m, i| std::os::unix::fs::symlink("target", m.join(format!("fx/sym{i}"))),
            happened: |m, i| exists(&m.join(format!("fx/sym{i}"))),
            path: |i| format!("/fx/sym{i}"),
        },
        Op {
            name: "mkfifo",
            event: "create",
            attempt: |m, i| {
                nix::unistd::mkfifo(&m.join(format!("fx/fifo{i}")), nix::sys::stat::Mode::from_bits_truncate(0o644))
                    .map_err(io::Error::from)
            },
            happened: |m, i| exists(&m.join(format!("fx/fifo{i}"))),
            path: |i| format!("/fx/fifo{i}"),
        },
        Op {
            name: "unlink",
            event: "unlink",
            attempt: |m, i| fs::remove_file(m.join(format!("fx/unlink{i}"))),
            happened: |m, i| !exists(&m.join(format!("fx/unlink{i}"))),
            path: |i| format!("/fx/unlink{i}"),
        },
        Op {
            name: "rmdir",
            event: "rmdir",
            attempt: |m, i| fs::remove_dir(m.join(format!("fx/rmdir{i}"))),
            happened: |m, i| !exists(&m.join(format!("fx/rmdir{i}"))),
            path: |i| format!("/fx/rmdir{i}"),
        },
        Op {
            name: "rename",
            event: "rename",
            attempt: |m, i| fs::rename(m.join(format!("fx/rename{i}")), m.join(format!("fx/renamed{i}"))),
            happened: |m, i| !exists(&m.join(format!("fx/rename{i}"))),
            path: |i| format!("/fx/rename{i}"),
        },
        Op {
            name: "link",
            event: "link",
            attempt: |m, i| fs::hard_link(m.join(format!("fx/keep{i}")), m.join(format!("fx/hard{i}"))),
            happened: |m, i| exists(&m.join(format!("fx/hard{i}"))),
            path: |i| format!("/fx/hard{i}"),
        },
        Op {
            name: "chmod",
            event: "setattr",
            attempt: |m, i| fs::set_permissions(m.join(format!("fx/chmod{i}")), fs::Permissions::from_mode(0o600)),
            happened: |m, i| fs::metadata(m.join(format!("fx/chmod{i}"))).unwrap().mode() & 0o777 == 0o600,
            path: |i| format!("/fx/chmod{i}"),
        },
        Op {
            name: "chown",
            event: "setattr",
            attempt: |m, i| std::os::unix::fs::chown(m.join(format!("fx/chown{i}")), Some(4242), Some(4242)),
            happened: |m, i| fs::metadata(m.join(format!("fx/chown{i}"))).unwrap().uid() == 4242,
            path: |i| format!("/fx/chown{i}"),
        },
        Op {
            name: "utimes",
            event: "setattr",
            attempt: |m, i| {
                let f = fs::File::open(m.join(format!("fx/utime{i}")))?;
                f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            },
            happened: |m, i| fs::metadata(m.join(format!("fx/utime{i}"))).unwrap().mtime() == 1_000_000,
            path: |i| format!("/fx/utime{i}"),
        },
        Op {
            name: "truncate",
            event: "truncate",
            attempt: |m, i| fs::OpenOptions::new().write(true).open(m.join(format!("fx/trunc{i}")))?.set_len(1),
            happened: |m, i| fs::metadata(m.join(format!("fx/trunc{i}"))).unwrap().len() != 4,
            path: |i| format!("/fx/trunc{i}"),
        },
        Op {
            name: "open O_TRUNC",
            event: "open",
            attempt: |m, i| {
                fs::OpenOptions::new().write(true).truncate(true).open(m.join(format!("fx/otrunc{i}"))).map(drop)
            },
            happened: |m, i| fs::read(m.join(format!("fx/otrunc{i}"))).unwrap() != b"keep",
            path: |i| format!("/fx/otrunc{i}"),
        },
        Op {
            name: "setxattr",
            event: "setxattr",
            attempt: |m, i| {
                let st = Command::new("setfattr")
                    .args(["-n", "user.new", "-v", "x"])
                    .arg(m.join(format!("fx/xattr{i}")))
                    .output()?;
                if st.status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(String::from_utf8_lossy(&st.stderr).into_owned()))
                }
            },
            happened: |m, i| xattr(&m.join(format!("fx/xattr{i}")), "user.new").is_some(),
            path: |i| format!("/fx/xattr{i}"),
        },
        Op {
            name: "removexattr",
            event: "removexattr",
            attempt: |m, i| {
                let st =
                    Command::new("setfattr").args(["-x", "user.keep"]).arg(m.join(format!("fx/xattr{i}"))).output()?;
                if st.status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(String::from_utf8_lossy(&st.stderr).into_owned()))
                }
            },
            happened: |m, i| xattr(&m.join(format!("fx/xattr{i}")), "user.keep").is_none(),
            path: |i| format!("/fx/xattr{i}"),
        },
    ]
}

fn make_fixtures(m: &Path) {
    fs::create_dir(m.join("fx")).unwrap();
    for i in 0..TRIES {
        for f in ["unlink", "rename", "keep", "chmod", "chown", "utime", "trunc", "otrunc", "xattr"] {
            let p = m.join(format!("fx/{f}{i}"));
            fs::write(&p, b"keep").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::create_dir(m.join(format!("fx/rmdir{i}"))).unwrap();
        let st =
            Command::new("setfattr").args(["-n", "user.keep", "-v", "1"]).arg(m.join(format!("fx/xattr{i}"))).status();
        assert!(st.unwrap().success());
    }
}

fn outcome(r: &Value) -> &str {
    r["outcome"].as_str().unwrap_or("")
}

/// The records of `event` on `path` (as path or path2).
fn records_of<'a>(all: &'a [Value], event: &str, path: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["event"] == event && (r["path"] == path || r["path2"] == path)).collect()
}

/// A full journal filesystem, every mutating call: each is either done and
/// recorded, or refused with EIO and not done (or, if only its outcome could
/// not be written, done with its intent on record). Nothing changes unrecorded.
#[test]
fn with_the_journal_full_nothing_changes_unrecorded() {
    let vol = Volume::new();
    let m = vol.mount();
    make_fixtures(&m.path);
    assert!(m.unmount().success());
    let audit = vol.path.join("audit");
    // A tmpfs just larger than the journal so far: it fills with little filler.
    let du = Command::new("du").args(["-sb"]).arg(&audit).output().unwrap();
    let used: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
    let own = OwnMount::new(&audit, vol.dir.path(), &format!("size={}k", used / 1024 + 512));
    let m = vol.mount();
    // Only what happens from here on counts (the fixtures' own records do not).
    let baseline = vol.records(&[]).iter().filter_map(|r| r["seq"].as_u64()).max().unwrap();
    let filler = own.fill();

    let ops = ops();
    // (op, attempts that succeeded, the attempt refused with EIO)
    let mut results = Vec::new();
    for op in &ops {
        let mut ok = Vec::new();
        let mut refused = None;
        for i in 0..TRIES {
            match (op.attempt)(&m.path, i) {
                Ok(()) => ok.push(i),
                Err(e) => {
                    // setfattr reports the errno only as text.
                    let eio = e.raw_os_error() == Some(libc::EIO) || e.to_string().contains("Input/output error");
                    assert!(eio, "{}: {e}", op.name);
                    refused = Some(i);
                    break;
                }
            }
        }
        let refused =
            refused.unwrap_or_else(|| panic!("{}: {TRIES} attempts all succeeded with the journal full", op.name));
        results.push((ok, refused));
    }
    fs::remove_file(&filler).unwrap();
    assert!(m.unmount().success());
    own.unmount_keeping_contents(vol.dir.path());

    let m = vol.mount();
    let all: Vec<Value> =
        vol.records(&[]).into_iter().filter(|r| r["seq"].as_u64().is_some_and(|s| s > baseline)).collect();
    for (op, (ok, refused)) in ops.iter().zip(&results) {
        for &i in ok {
            assert!((op.happened)(&m.path, i), "{} #{i} succeeded but did not happen", op.name);
            // Done and recorded; or, when the batch its outcome was queued in
            // failed, its intent on record and the next mount's account of it.
            let recs = records_of(&all, op.event, &(op.path)(i));
            let done = recs.iter().any(|r| outcome(r) == "ok");
            let accounted =
                recs.iter().any(|r| outcome(r) == "intent") && recs.iter().any(|r| outcome(r) == "interrupted");
            assert!(done || accounted, "{} #{i} succeeded unrecorded: {recs:?}", op.name);
        }
        let i = *refused;
        let recs = records_of(&all, op.event, &(op.path)(i));
        assert!(!recs.iter().any(|r| outcome(r) == "ok"), "{} #{i} was refused but recorded as done", op.name);
        if (op.happened)(&m.path, i) {
            assert!(
                recs.iter().any(|r| outcome(r) == "intent"),
                "{} #{i} was refused, took effect, and has no intent on record: {recs:?}",
                op.name
            );
        }
    }
    assert!(m.unmount().success());
    let verified = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}
/// The daemon killed between an operation's intent and its outcome, before
/// and after the effect: the journal shows the intent, and the next mount
/// records it as interrupted with what it found at the path.
#[test]
fn a_crash_between_intent_and_outcome_is_recorded_by_the_next_mount() {
    for (stage, expect_present) in [("after-intent", true), ("before-outcome", false)] {
        let vol = Volume::new();
        let m = vol.mount();
        fs::write(m.p("call.wav"), b"recorded").unwrap();
        assert!(m.unmount().success());
        let fault = format!("{stage}:unlink");
        let m = vol.mount_env(&[], &[("CALLVAULTD_FAULT", &fault)]).unwrap();
        assert!(fs::remove_file(m.p("call.wav")).is_err(), "{stage}: the daemon died during the unlink");
        let _ = m.stop_with(nix::sys::signal::Signal::SIGKILL);
        let _ = Command::new("umount").arg("-l").arg(vol.mountpoint()).status();
        let m = vol.mount();
        assert_eq!(m.p("call.wav").exists(), expect_present, "{stage}");
        assert!(m.unmount().success());
        let recs = vol.records(&["--event", "unlink", "--path", "/call.wav"]);
        let outcomes: Vec<&str> = recs.iter().map(outcome).collect();
        assert_eq!(outcomes, ["intent", "interrupted"], "{stage}: {recs:?}");
        assert_eq!(recs[1]["detail"]["intent"], recs[0]["seq"], "{stage}: names its intent");
        let found = if expect_present { "path present" } else { "path absent" };
        assert_eq!(recs[1]["detail"]["found"], found, "{stage}");
        let verified = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"]);
        assert!(verified.status.success(), "{stage}: {}", String::from_utf8_lossy(&verified.stdout));
    }
}

/// Sends the file's dirty pages to the daemon (which encrypts them into the
/// backing file) without an fsync, which would also write the file's size
/// into its header: only the close is left to do that.
fn write_back_without_fsync(f: &fs::File) {
    use std::os::fd::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: plain syscall on a descriptor `f` keeps open; no memory is passed.
    let r = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, flags) };
    assert_eq!(r, 0, "sync_file_range: {}", io::Error::last_os_error());
}

/// The volume's data directory on an ext4 that hits an error (and goes
/// read-only) after a recording was written but before it was closed: the
/// close's final header write fails, the caller's close() gets the error and
/// the close record carries it.
#[test]
fn a_close_whose_size_cannot_be_written_fails_and_is_recorded_with_the_error() {
    let vol = Volume::new();
    let disk = FailingDisk::new(&vol.path.join("data"), vol.dir.path());
    let m = vol.mount();
    let data = pattern(9, 100_000);
    let mut f = fs::File::create(m.p("call.wav")).unwrap();
    io::Write::write_all(&mut f, &data).unwrap();
    write_back_without_fsync(&f);
    disk.error();
    let closed = nix::unistd::close(f);
    let err = closed.expect_err("close() succeeded although the file's size could not be written");
    assert!(m.unmount().success(), "no file was open at unmount");
    let recs = vol.records(&["--event", "close", "--path", "/call.wav"]);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(outcome(&recs[0]), format!("{err:?}"), "the close record carries close()'s error: {recs:?}");
    assert_eq!(recs[0]["detail"]["bytes_written"], data.len() as u64, "the data itself went through");
}

/// The same failing store, the data not yet handed to the daemon when ext4
/// goes read-only: the kernel's writeback at close fails in the daemon, the
/// caller's close() reports the loss, and so must the close record (it said
/// "ok", with 0 bytes written, before writes that fail stuck to the file).
#[test]
fn a_close_whose_written_data_could_not_be_stored_is_recorded_with_the_error() {
    let vol = Volume::new();
    let disk = FailingDisk::new(&vol.path.join("data"), vol.dir.path());
    let m = vol.mount();
    let mut f = fs::File::create(m.p("call.wav")).unwrap();
    io::Write::write_all(&mut f, &pattern(10, 100_000)).unwrap();
    disk.error();
    let closed = nix::unistd::close(f);
    assert!(closed.is_err(), "close() succeeded although the data could not be stored");
    assert!(m.unmount().success(), "no file was open at unmount");
    let recs = vol.records(&["--event", "close", "--path", "/call.wav"]);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(outcome(&recs[0]), "EROFS", "the daemon's write error, from the read-only ext4: {recs:?}");
}

/// Recordings still open when the mount is forced away (`umount -f` aborts
/// the FUSE connection, so their handles are never released), on a backing
/// store whose device ran out of space under ext4: the daemon's sync at
/// unmount fails, the unmount record has outcome EIO and names the files,
/// and callvaultd exits 1.
#[test]
fn an_unmount_whose_open_files_cannot_be_synced_is_recorded_as_eio_and_exits_1() {
    let vol = Volume::new();
    let disk = FailingDisk::new(&vol.path.join("data"), vol.dir.path());
    let m = vol.mount();
    let names = ["call-1.wav", "call-2.wav"];
    let open: Vec<fs::File> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut f = fs::File::create(m.p(n)).unwrap();
            io::Write::write_all(&mut f, &pattern(i as u64, 4 << 20)).unwrap();
            write_back_without_fsync(&f);
            f
        })
        .collect();
    disk.exhaust();
    let log = m.log.clone();
    let status = m.force_unmount();
    drop(open);
    let log = fs::read_to_string(log).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "callvaultd's exit status; its log:\n{log}");
    assert!(log.contains("2 open file(s) could not be synced"), "{log}");
    let recs = vol.records(&["--event", "unmount"]);
    let last = recs.last().expect("an unmount record");
    assert_eq!(outcome(last), "EIO", "{last:?}");
    let reason = last["detail"]["reason"].as_str().unwrap_or("");
    for n in names {
        assert!(reason.contains(&format!("/{n}")), "the unmount record names /{n}: {reason}");
    }
    let verified = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}
