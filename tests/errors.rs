use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::{Command, Output, Stdio};

use crate::harness::{PASSPHRASE, Volume, daemon_bin, keytool};

fn daemon(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(daemon_bin()).args(args).arg("--allow-all").stdin(Stdio::null()).output().unwrap()
}

fn one_line(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!s.contains("panicked"), "panic: {s}");
    s
}

#[test]
fn wrong_passphrase_is_refused_with_a_clear_message() {
    let vol = Volume::new();
    let bad = vol.dir.path().join("bad");
    fs::write(&bad, "not the passphrase\n").unwrap();
    let out =
        daemon(&[vol.path.as_os_str(), vol.mountpoint().as_os_str(), "--passphrase-file".as_ref(), bad.as_os_str()]);
    assert_eq!(out.status.code(), Some(10));
    assert_eq!(one_line(&out).trim(), "callvaultd: wrong passphrase or keyfile");
    // The trailing newline is not part of the passphrase; without it the same passphrase works.
    fs::write(&vol.pass, PASSPHRASE).unwrap();
    let m = vol.mount();
    assert!(m.unmount().success());
    // Nothing leaks the passphrase into the daemon's output.
    let m = vol.mount();
    assert!(!m.log_text().contains(PASSPHRASE));
    assert!(m.unmount().success());
}

#[test]
fn not_a_volume_damaged_and_newer_headers_are_named() {
    let vol = Volume::new();
    let mnt = vol.mountpoint();
    let pass = vol.pass.as_os_str();
    let run = |v: &std::path::Path| daemon(&[v.as_os_str(), mnt.as_os_str(), "--passphrase-file".as_ref(), pass]);

    let empty = vol.dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = run(&empty);
    assert_eq!(out.status.code(), Some(11));
    assert!(one_line(&out).contains("is not a callvault volume"));

    // Both header copies damaged the same way: the error of the first.
    let header = vol.path.join("callvault.header");
    let copy = vol.path.join("callvault.header.copy");
    let good = fs::read(&header).unwrap();
    let both = |bytes: &[u8]| {
        fs::write(&header, bytes).unwrap();
        fs::write(&copy, bytes).unwrap();
    };
    let mut newer = good.clone();
    newer[8] = 9;
    both(&newer);
    let out = run(&vol.path);
    assert_eq!(out.status.code(), Some(12));
    assert!(one_line(&out).contains("unsupported volume format version 9"));

    both(&good[..1000]);
    let out = run(&vol.path);
    assert_eq!(out.status.code(), Some(13));
    assert!(one_line(&out).contains("damaged volume header"));
    assert!(one_line(&out).contains("1000 bytes"));

    let mut tampered = good.clone();
    tampered[17] ^= 0x40; // optional feature flags: parses, but the MAC catches it
    both(&tampered);
    let out = run(&vol.path);
    assert_eq!(out.status.code(), Some(13));
    assert!(one_line(&out).contains("integrity check"));

    // One copy damaged (each way above): the volume mounts from the other,
    // with a warning naming the damaged file.
    for bad in [&newer[..], &good[..1000], &tampered[..]] {
        for (damaged, intact) in [(&header, &copy), (&copy, &header)] {
            fs::write(damaged, bad).unwrap();
            fs::write(intact, &good).unwrap();
            let m = vol.mount();
            let log = m.log_text();
            assert!(m.unmount().success());
            let name = damaged.file_name().unwrap().to_str().unwrap();
            assert!(log.contains("volume header:") && log.contains(name), "{name}: {log}");
        }
    }

    both(&good);
    let m = vol.mount();
    assert!(m.log_text().find("volume header:").is_none(), "{}", m.log_text());
    assert!(m.unmount().success());
}

#[test]
fn bad_mount_points_and_a_volume_in_use_are_refused() {
    let vol = Volume::new();
    let pass = vol.pass.as_os_str();
    let run =
        |mnt: &std::path::Path| daemon(&[vol.path.as_os_str(), mnt.as_os_str(), "--passphrase-file".as_ref(), pass]);
    let missing = vol.dir.path().join("missing");
    let out = run(&missing);
    assert_eq!(out.status.code(), Some(14));
    assert!(one_line(&out).contains("does not exist"));
    let file = vol.dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let out = run(&file);
    assert_eq!(out.status.code(), Some(14));
    assert!(one_line(&out).contains("not a directory"));

    let m = vol.mount();
    let out = run(&m.path);
    assert_eq!(out.status.code(), Some(14));
    assert!(one_line(&out).contains("already mounted"));
    let other = vol.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    let out = run(&other);
    assert_eq!(out.status.code(), Some(16));
    assert!(one_line(&out).contains("already served by callvaultd"));
    assert!(m.unmount().success());
}

#[test]
fn missing_dev_fuse_is_named() {
    let vol = Volume::new();
    // A private mount namespace whose /dev lacks fuse.
    let script = format!(
        "mount -t tmpfs none /dev && exec {} {} {} --passphrase-file {} --allow-all",
        daemon_bin().display(),
        vol.path.display(),
        vol.mountpoint().display(),
        vol.pass.display()
    );
    let out =
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(one_line(&out).contains("/dev/fuse is missing"));
}

#[test]
fn init_refuses_existing_volumes_and_non_empty_directories() {
    let vol = Volume::new();
    let pass = vol.pass.to_str().unwrap();
    let out = keytool(&[
        "init",
        vol.path.to_str().unwrap(),
        "--passphrase-file",
        pass,
        "--kdf-memory",
        "8",
        "--kdf-time",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(18));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a callvault volume"));
    let busy = vol.dir.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("keep.txt"), b"precious").unwrap();
    let out =
        keytool(&["init", busy.to_str().unwrap(), "--passphrase-file", pass, "--kdf-memory", "8", "--kdf-time", "0"]);
    assert_eq!(out.status.code(), Some(18));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    assert_eq!(fs::read(busy.join("keep.txt")).unwrap(), b"precious", "nothing already stored is touched");
    let out = keytool(&["init", vol.dir.path().join("v2").to_str().unwrap(), "--passphrase-file", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(17));
}

/// Finds the backing file of the only regular file in the volume.
fn only_backing_file(vol: &Volume, min_len: u64) -> std::path::PathBuf {
    crate::harness::backing_files(&vol.path.join("data"))
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| {
            !p.file_name().unwrap().to_string_lossy().starts_with('.') && fs::metadata(p).unwrap().len() >= min_len
        })
        .expect("backing file")
}

#[test]
fn a_damaged_file_gives_eio_for_that_file_only() {
    for damage in ["header", "torn-slot", "truncated", "cut-data"] {
        let vol = Volume::new();
        let m = vol.mount();
        fs::create_dir(m.p("d")).unwrap();
        fs::write(m.p("d/victim.wav"), crate::harness::pattern(5, 20_000)).unwrap();
        assert!(m.unmount().success());
        // The victim is the only file at the time it is damaged.
        let backing = only_backing_file(&vol, 8192);
        let f = OpenOptions::new().write(true).open(&backing).unwrap();
        match damage {
            "header" => f.write_all_at(&[0xAA; 4096], 0).unwrap(),
            "torn-slot" => f.write_all_at(&[0xAA; 56], 2048).unwrap(),
            "truncated" => f.set_len(100).unwrap(),
            _ => f.set_len(4096 + 4096 + 100).unwrap(),
        }
        drop(f);
        let m = vol.mount();
        fs::write(m.p("d/healthy.wav"), b"fine").unwrap();
        let r = fs::read(m.p("d/victim.wav"));
        if damage == "torn-slot" {
            // One slot is enough: the other copy of the header still opens the file.
            assert_eq!(r.unwrap(), crate::harness::pattern(5, 20_000));
        } else {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EIO), "damage {damage}");
            assert!(m.log_text().contains("inode"), "damage {damage} must be logged");
        }
        // The rest keeps working, and the damaged file can be listed and removed.
        assert_eq!(fs::read(m.p("d/healthy.wav")).unwrap(), b"fine");
        assert_eq!(fs::read_dir(m.p("d")).unwrap().count(), 2);
        fs::remove_file(m.p("d/victim.wav")).unwrap();
        assert!(m.unmount().success());
    }
}

#[test]
fn daemon_protects_key_memory() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::write(m.p("x"), b"x").unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let locked: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmLck line");
    assert!(locked > 0, "the daemon's memory is locked (VmLck {locked} kB)");
    // Not dumpable: /proc/PID/mem and core dumps are closed even to the same uid.
    let dumpable =
        Command::new("sh").arg("-c").arg(format!("grep -c . /proc/{}/coredump_filter", m.pid())).output().unwrap();
    assert!(dumpable.status.success());
    assert!(m.unmount().success());
}

/// A mount point holding files is refused (exit 14): whatever a recorder
/// wrote there before the mount is unencrypted and would be hidden. With
/// `--nonempty` it is mounted over, and the files are there again after.
#[test]
fn a_non_empty_mount_point_is_refused_unless_nonempty_is_given() {
    let vol = Volume::new();
    let mnt = vol.mountpoint();
    fs::write(mnt.join("stray.wav"), b"written before the mount").unwrap();
    let out = daemon(&[vol.path.as_os_str(), mnt.as_os_str(), "--passphrase-file".as_ref(), vol.pass.as_os_str()]);
    assert_eq!(out.status.code(), Some(14), "{}", one_line(&out));
    assert!(one_line(&out).contains("is not empty"), "{}", one_line(&out));
    let m = vol.mount_with(&["--nonempty"]).unwrap();
    assert!(!m.p("stray.wav").exists(), "the volume's view is served, not the directory's");
    assert!(m.unmount().success());
    assert_eq!(fs::read(mnt.join("stray.wav")).unwrap(), b"written before the mount");
}

/// `--background` returns once the mount is live and lets go of the
/// caller's output, so `out=$(callvaultd ... --background)` does not wait
/// for the unmount.
#[test]
fn background_returns_once_mounted_and_releases_the_callers_output() {
    let vol = Volume::new();
    let mnt = vol.mountpoint();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"out=$("$@" --background); echo "returned $?""#)
        .arg("sh")
        .arg(daemon_bin())
        .arg(&vol.path)
        .arg(&mnt)
        .args(["--passphrase-file".as_ref(), vol.pass.as_os_str(), "--allow-all".as_ref()]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(cmd.output().unwrap()));
    // A safety net only: if the shell is still waiting on the daemon's
    // output after a minute, the daemon kept it; unmount so nothing hangs.
    let out = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out,
        Err(_) => {
            let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
            panic!("`out=$(callvaultd --background)` did not return while the daemon was serving");
        }
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "returned 0", "{}", String::from_utf8_lossy(&out.stderr));
    fs::write(mnt.join("call.wav"), b"served in the background").unwrap();
    assert!(Command::new("fusermount3").arg("-u").arg(&mnt).status().unwrap().success());
}
