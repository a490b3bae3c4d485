//! Test volumes and mounts. A [`Mount`] unmounts on drop (lazily, if a test
//! failed half-way) so one failing test does not leave mounts behind.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const PASSPHRASE: &str = "correct horse battery 42";

fn binary(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let p = target.join("debug").join(name);
    assert!(p.exists(), "{} not found: run `cargo build --workspace --bins` first (or set ${env})", p.display());
    p
}

pub fn daemon_bin() -> PathBuf {
    binary("CALLVAULTD", "callvaultd")
}

pub fn keytool_bin() -> PathBuf {
    binary("CALLVAULT_KEYTOOL", "callvault-keytool")
}

pub fn keytool(args: &[&str]) -> Output {
    Command::new(keytool_bin()).args(args).stdin(Stdio::null()).output().expect("run callvault-keytool")
}

/// A fresh volume in its own temporary directory, with a cheap KDF.
pub struct Volume {
    pub dir: TempDir,
    pub path: PathBuf,
    pub pass: PathBuf,
}

impl Volume {
    pub fn new() -> Volume {
        let dir = tempfile::Builder::new().prefix("cv-test-").tempdir().expect("tempdir");
        // Other users' processes must reach the mount point inside it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("vol");
        let pass = dir.path().join("pass");
        fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
        fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).unwrap();
        let out = keytool(&[
            "init",
            path.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--kdf-memory",
            "8",
            "--kdf-time",
            "0",
        ]);
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        Volume { dir, path, pass }
    }

    /// A copy of the frozen example volume `tests/fixtures/volumes/NAME`
    /// (with `NAME.passphrase` and `NAME.audit-key`), in its own temporary
    /// directory, so tests can mount and change it.
    pub fn from_fixture(name: &str) -> Volume {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/volumes");
        let dir = tempfile::Builder::new().prefix("cv-fixture-").tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("vol");
        let st = Command::new("cp").arg("-a").arg(fixtures.join(name)).arg(&path).status().expect("cp");
        assert!(st.success(), "copy fixture {name}");
        // git keeps neither empty directories nor modes beyond the x bit.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        let requests = path.join("audit/requests");
        let _ = fs::create_dir(&requests);
        fs::set_permissions(&requests, fs::Permissions::from_mode(0o1730)).unwrap();
        let pass = dir.path().join("pass");
        fs::copy(fixtures.join(format!("{name}.passphrase")), &pass).unwrap();
        fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).unwrap();
        fs::copy(fixtures.join(format!("{name}.audit-key")), dir.path().join("vol.audit-key")).unwrap();
        Volume { dir, path, pass }
    }

    /// A fresh volume whose first keyslot is `label`'s, with `passphrase`
    /// (kept in `pass`) and the cheapest KDF (1 MiB, one pass).
    pub fn with_operator(label: &str, passphrase: &str) -> Volume {
        let dir = tempfile::Builder::new().prefix("cv-test-").tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("vol");
        let pass = dir.path().join(format!("{label}.pass"));
        fs::write(&pass, format!("{passphrase}\n")).unwrap();
        fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).unwrap();
        let out = keytool(&[
            "init",
            path.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--label",
            label,
            "--kdf-memory",
            "1",
            "--kdf-time",
            "0",
        ]);
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        Volume { dir, path, pass }
    }

    /// The auditor's verification key `init` wrote beside the volume.
    pub fn audit_key(&self) -> PathBuf {
        self.dir.path().join("vol.audit-key")
    }

    /// Runs `callvault-keytool audit ARGS... VOLUME ...` style commands: the
    /// volume path replaces "{vol}" and the key file "{key}" in `args`.
    pub fn audit(&self, args: &[&str]) -> Output {
        let vol = self.path.to_str().unwrap().to_string();
        let key = self.audit_key().to_str().unwrap().to_string();
        let args: Vec<String> = std::iter::once("audit".to_string())
            .chain(args.iter().map(|a| a.replace("{vol}", &vol).replace("{key}", &key)))
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        keytool(&refs)
    }

    /// Every journal record matching `filter` (`audit show` options), as JSON.
    pub fn records(&self, filter: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["show", "{vol}", "--format", "json"];
        args.extend_from_slice(filter);
        let out = self.audit(&args);
        assert!(out.status.success(), "audit show: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad json line {l}: {e}")))
            .collect()
    }

    pub fn mountpoint(&self) -> PathBuf {
        let m = self.dir.path().join("mnt");
        let _ = fs::create_dir(&m);
        m
    }

    pub fn mount(&self) -> Mount {
        self.mount_with(&[]).unwrap_or_else(|(code, err)| panic!("mount failed ({code:?}): {err}"))
    }

    /// Starts `callvaultd` and waits for its readiness notification. Without
    /// `--policy` in `extra` the mount runs with `--allow-all`. On a start-up
    /// failure returns the exit code and stderr.
    pub fn mount_with(&self, extra: &[&str]) -> Result<Mount, (Option<i32>, String)> {
        self.start(extra, None, &[])
    }

    /// Starts `callvaultd` with exactly these unlock options
    /// (`--passphrase-file [LABEL=]F`, `--keyfile [LABEL=]K`, `--label ID`)
    /// instead of `--passphrase-file pass`, and `--allow-all`.
    pub fn mount_as(&self, secrets: &[&str]) -> Result<Mount, (Option<i32>, String)> {
        self.start_as(secrets.iter().map(OsString::from).collect(), &[], None, &[])
    }

    /// `mount_as`, with extra environment variables for the daemon.
    pub fn mount_as_env(&self, secrets: &[&str], env: &[(&str, &str)]) -> Result<Mount, (Option<i32>, String)> {
        self.start_as(secrets.iter().map(OsString::from).collect(), &[], None, env)
    }

    /// `mount_with`, with extra environment variables for the daemon.
    pub fn mount_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Result<Mount, (Option<i32>, String)> {
        self.start(extra, None, env)
    }

    /// `mount_with(extra)`, with the daemon's open-file limit (soft and hard)
    /// set to `nofile` through util-linux `prlimit`, which execs it (same pid).
    pub fn mount_under_fd_limit(&self, nofile: u64, extra: &[&str]) -> Mount {
        self.start(extra, Some(nofile), &[]).unwrap_or_else(|(code, err)| panic!("mount failed ({code:?}): {err}"))
    }

    fn start(&self, extra: &[&str], nofile: Option<u64>, env: &[(&str, &str)]) -> Result<Mount, (Option<i32>, String)> {
        let secrets = vec![OsString::from("--passphrase-file"), self.pass.clone().into_os_string()];
        self.start_as(secrets, extra, nofile, env)
    }

    fn start_as(
        &self,
        secrets: Vec<OsString>,
        extra: &[&str],
        nofile: Option<u64>,
        env: &[(&str, &str)],
    ) -> Result<Mount, (Option<i32>, String)> {
        let mut extra = extra.to_vec();
        if std::env::var_os("CALLVAULT_TEST_VERBOSE").is_some() {
            extra.push("-v");
        }
        if !extra.contains(&"--policy") {
            extra.push("--allow-all");
        }
        let mnt = self.mountpoint();
        let sock_path = self.dir.path().join(format!("notify-{}.sock", std::process::id()));
        let _ = fs::remove_file(&sock_path);
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let log = self.dir.path().join("daemon.log");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(daemon_bin());
                c
            }
            None => Command::new(daemon_bin()),
        };
        let mut child = cmd
            .arg(&self.path)
            .arg(&mnt)
            .args(&secrets)
            .args(&extra)
            .env("NOTIFY_SOCKET", &sock_path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn callvaultd");
        if let Err(status) = wait_ready(&sock, &mut child) {
            return Err((status, fs::read_to_string(&log).unwrap_or_default()));
        }
        Ok(Mount { path: mnt, child: Some(child), log, sock })
    }
}

/// Blocks until the daemon sends READY=1 on the notify socket; Err(exit code)
/// if it exits first.
fn wait_ready(sock: &UnixDatagram, child: &mut Child) -> Result<(), Option<i32>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 512];
    loop {
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains("READY=1")
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(status.code());
        }
        assert!(Instant::now() < deadline, "callvaultd did not become ready in 60 s");
    }
}

/// A live mount served by a `callvaultd` child process.
pub struct Mount {
    pub path: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
    sock: UnixDatagram,
}

impl Mount {
    pub fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Unmounts with `fusermount3 -u` and returns the daemon's exit status.
    ///
    /// Busy only for a moment is not a failure: a process another test forks
    /// holds copies of this process's descriptors until it execs. Then the
    /// mount is detached lazily, and the daemon must exit once the last
    /// reference is gone (within a minute, a safety net that fails the test).
    pub fn unmount(mut self) -> ExitStatus {
        let out = Command::new("fusermount3").arg("-u").arg(&self.path).output().expect("fusermount3");
        let mut child = self.child.take().unwrap();
        if out.status.success() {
            return child.wait().unwrap();
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("busy"), "fusermount3 -u: {err}");
        let lazy = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.path).output().expect("fusermount3");
        assert!(lazy.status.success(), "fusermount3 -u -z: {}", String::from_utf8_lossy(&lazy.stderr));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait().unwrap()));
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{} stayed busy after a lazy unmount: {err}", self.path.display()))
    }

    /// `umount -f` while files are still open: the kernel aborts the FUSE
    /// connection (the umount itself fails as busy, and the dead mount stays
    /// until they are closed), so the daemon's session ends with their
    /// handles never released. Returns the daemon's exit status (within a
    /// minute, a safety net that fails the test) and detaches the dead mount.
    pub fn force_unmount(mut self) -> ExitStatus {
        let _ = Command::new("umount").arg("-f").arg(&self.path).output().expect("umount -f");
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait().unwrap()));
        let status = rx.recv_timeout(Duration::from_secs(60));
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
        status.unwrap_or_else(|_| {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("callvaultd kept running a minute after its FUSE connection was aborted")
        })
    }

    /// Stops the daemon with a signal and returns its exit status.
    pub fn stop_with(mut self, sig: nix::sys::signal::Signal) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        child.wait().unwrap()
    }

    /// Sends SIGHUP and waits until the daemon reports the reload finished.
    pub fn reload(&mut self) {
        let child = self.child.as_mut().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGHUP)
            .unwrap();
        wait_ready(&self.sock, child).expect("daemon died during reload");
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("umount").arg("-l").arg(&self.path).output();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every byte of every file under `dir`, with its path.
pub fn backing_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push((e.path(), fs::read(e.path()).unwrap()));
            } else if ft.is_symlink() {
                let t = fs::read_link(e.path()).unwrap();
                out.push((e.path(), t.into_os_string().into_encoded_bytes()));
            }
        }
    }
    out
}

/// A deterministic pseudo-random byte pattern (xorshift), distinct per seed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
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

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Puts `dir` on a filesystem of its own (an ext4 image on a loop device, or
/// a tmpfs), keeping what it held. Unmounted on drop.
pub struct OwnMount(std::path::PathBuf);

impl OwnMount {
    pub fn new(dir: &std::path::Path, scratch: &std::path::Path, how: &str) -> OwnMount {
        let saved = scratch.join("saved");
        assert!(Command::new("cp").arg("-a").arg(dir).arg(&saved).status().unwrap().success());
        let mounted = match how {
            "ext4" => {
                let img = scratch.join("audit.img");
                let f = fs::File::create(&img).unwrap();
                f.set_len(32 << 20).unwrap();
                assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img).status().unwrap().success());
                Command::new("mount").args(["-o", "loop"]).arg(&img).arg(dir).status().unwrap()
            }
            _ => Command::new("mount").args(["-t", "tmpfs", "-o", how, "tmpfs"]).arg(dir).status().unwrap(),
        };
        assert!(mounted.success(), "mount {how} on {}", dir.display());
        let copied = Command::new("sh")
            .arg("-c")
            .arg(format!("cp -a {}/. {}/", saved.display(), dir.display()))
            .status()
            .unwrap();
        assert!(copied.success());
        OwnMount(dir.to_path_buf())
    }
}

impl OwnMount {
    /// Fills the filesystem with one file of zeros; returns its path
    /// (remove it to free the space again).
    pub fn fill(&self) -> std::path::PathBuf {
        let filler = self.0.join("filler");
        let _ = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", filler.display()))
            .args(["bs=4k", "status=none"])
            .stderr(Stdio::null())
            .status();
        filler
    }

    /// Unmounts, leaving in the directory what the filesystem held last.
    pub fn unmount_keeping_contents(self, scratch: &std::path::Path) {
        let kept = scratch.join("kept");
        assert!(Command::new("cp").arg("-a").arg(&self.0).arg(&kept).status().unwrap().success());
        let dir = self.0.clone();
        drop(self);
        let copied = Command::new("sh")
            .arg("-c")
            .arg(format!("cp -a {}/. {}/", kept.display(), dir.display()))
            .status()
            .unwrap();
        assert!(copied.success());
    }
}

impl Drop for OwnMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `dir` on an ext4 filesystem of its own, on a loop device whose image file
/// lives on a small tmpfs of its own: a backing store that fails for real,
/// on demand, while the rest of the volume (the journal) stays healthy.
/// Everything is undone on drop, a failed test included.
pub struct FailingDisk {
    dir: PathBuf,
    tmpfs: PathBuf,
    loop_dev: Option<String>,
    mounted: bool,
}

impl FailingDisk {
    /// Ext4 image size; sparse, and with its inode tables and journal
    /// written at mkfs, so nothing later claims tmpfs space behind the test's back.
    const IMAGE_MIB: u64 = 64;

    pub fn new(dir: &Path, scratch: &Path) -> FailingDisk {
        let saved = scratch.join("saved-disk");
        assert!(Command::new("cp").arg("-a").arg(dir).arg(&saved).status().unwrap().success());
        let mut disk =
            FailingDisk { dir: dir.to_path_buf(), tmpfs: scratch.join("disk"), loop_dev: None, mounted: false };
        fs::create_dir(&disk.tmpfs).unwrap();
        run("mount", &["-t", "tmpfs", "-o", &format!("size={}m", Self::IMAGE_MIB * 2), "tmpfs"], &disk.tmpfs);
        let img = disk.tmpfs.join("ext4.img");
        fs::File::create(&img).unwrap().set_len(Self::IMAGE_MIB << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"], &img);
        // Shrunk to what the image holds now plus a few MiB for what the
        // volume's data directory brings: later writes find no room.
        let used = fs::metadata(&img).map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512).unwrap();
        let size = format!("remount,size={}k", used / 1024 + 8192);
        run("mount", &["-o", &size], &disk.tmpfs);
        let out = Command::new("losetup").args(["--find", "--show"]).arg(&img).output().unwrap();
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        disk.loop_dev = Some(dev.clone());
        run("mount", &["-o", "errors=remount-ro", &dev], dir);
        disk.mounted = true;
        let copied =
            Command::new("sh").arg("-c").arg(format!("cp -a {}/. {}/", saved.display(), dir.display())).status();
        assert!(copied.unwrap().success());
        disk
    }

    /// Ext4 meets an error, through the kernel's own `trigger_fs_error`
    /// (the path a failed metadata write takes): it aborts its journal and,
    /// mounted `errors=remount-ro`, refuses every later write with EROFS.
    pub fn error(&self) {
        let dev = self.loop_dev.as_deref().unwrap().trim_start_matches("/dev/");
        fs::write(format!("/sys/fs/ext4/{dev}/trigger_fs_error"), "callvault test: backing store failed\n")
            .expect("trigger an ext4 error");
    }

    /// Fills the tmpfs under the image: ext4 still counts free blocks, but
    /// the device can no longer store them, so the next writeback of new
    /// data fails (the loop device's writes get ENOSPC) and fsync reports it.
    pub fn exhaust(&self) {
        let _ = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", self.tmpfs.join("filler").display()))
            .args(["bs=64k", "status=none"])
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &str, args: &[&str], path: &Path) {
    let out = Command::new(cmd).args(args).arg(path).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        if self.mounted {
            let clean = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
            if !clean {
                let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
            }
        }
        if let Some(dev) = &self.loop_dev {
            // Detached now, or (still busy after a lazy unmount) as soon as it is free.
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.tmpfs).status();
    }
}
