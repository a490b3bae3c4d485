//! Throttles unlock attempts on one volume: a failure count, kept on disk, that makes each guess wait longer.
//!
//! Both callvault-keytool and callvaultd open an [`UnlockGuard`] on the
//! volume directory before trying a passphrase, wait out
//! [`UnlockGuard::delay`], and then call [`UnlockGuard::record_failure`] or
//! [`UnlockGuard::record_success`]. The first [`FREE_ATTEMPTS`] failures in a
//! row cost nothing (typos happen); after that each attempt waits 1 s after
//! the 5th failure, doubling with every further one, up to [`MAX_DELAY`]
//! (see [`delay_for`]). A success resets the count. This module never
//! sleeps and never logs: the caller does both, so it can say why it waits.
//!
//! The delay is counted from the time of the last failure, which is stored:
//! a guesser gains nothing by starting a new process, and an operator who
//! has already waited elsewhere (or gone for coffee) does not wait again.
//!
//! # What it protects against, and what not
//!
//! It slows down guessing through callvault's own tools on this machine:
//! someone who may run keytool or talk to the daemon but cannot read the
//! volume header gets 5 quick guesses, then about one guess per 5 minutes
//! once the delay has reached its cap. Attempts run in parallel (many
//! processes opened at the same moment) each wait the same delay, but each
//! adds to the count, and each costs a full Argon2id derivation in memory
//! and time, so parallelism is bounded by the machine.
//!
//! It does nothing against anyone who can copy the header (root, a backup):
//! they guess offline at whatever speed they can afford, and the only
//! defence there is the Argon2id cost of each keyslot (`kdf.rs`) and the
//! passphrase rules (`passrules.rs`). It is no defence either against
//! someone who can write the volume directory: they can delete the count.
//! And it is a trade-off: one person's failures delay everyone's unlock of
//! this volume, by at most [`MAX_DELAY`] per attempt.
//!
//! # The state file
//!
//! [`STATE_FILE`] in the volume directory, mode 0600, one line of ASCII:
//!
//! ```text
//! callvault unlock-failures v1 failures=7 last-failure-unix-ms=1767225600000
//! ```
//!
//! Written whole to a temporary file, fsynced, renamed over the old one and
//! the directory fsynced, so a reader sees the old or the new state, never
//! half of one. Changes happen under an exclusive `flock` on [`LOCK_FILE`],
//! so two processes (or two threads) recording failures at once never lose
//! one. A state file that is not exactly this line (damaged, truncated,
//! edited, over [`MAX_STATE_FILE`] bytes, not a regular file) counts as the
//! maximum number of failures, with the last failure now: the next attempt
//! waits [`MAX_DELAY`], and its outcome writes a well-formed file again.
//! A missing file is no failures.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg, OFlag};

/// Failures in a row that cost no delay.
pub const FREE_ATTEMPTS: u32 = 5;
/// The longest delay between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// The failure count, in the volume directory.
pub const STATE_FILE: &str = "callvault.unlock-failures";
/// Locked while the count changes. A file of its own: the state file is
/// replaced by a rename, and a lock on the replaced file would not keep out
/// a process that opened the new one.
pub const LOCK_FILE: &str = "callvault.unlock-failures.lock";
/// Largest state file read; the real line is under 100 bytes.
pub const MAX_STATE_FILE: usize = 256;

const TEMP_FILE: &str = "callvault.unlock-failures.tmp";
const PREFIX: &str = "callvault unlock-failures v1 failures=";
const LAST: &str = " last-failure-unix-ms=";

/// The delay before the next attempt after `consecutive_failures` failures
/// in a row, counted from the last one: zero below [`FREE_ATTEMPTS`], then
/// 1 s, 2 s, 4 s, ... up to [`MAX_DELAY`]. Pure.
pub fn delay_for(consecutive_failures: u32) -> Duration {
    if consecutive_failures < FREE_ATTEMPTS {
        return Duration::ZERO;
    }
    let doublings = consecutive_failures - FREE_ATTEMPTS;
    // A shift of 64 or more would overflow: saturate (the cap is 2^9 s away).
    let secs = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_DELAY)
}

/// What went wrong reading or writing the failure count. Every variant
/// names the path and the step.
#[derive(Debug)]
#[non_exhaustive]
pub enum GuardError {
    /// An I/O error on `path` during `op` ("open", "lock", "write", ...).
    Io { path: PathBuf, op: &'static str, source: io::Error },
    /// The volume directory does not exist or is not a directory.
    NotADirectory { path: PathBuf },
}

impl GuardError {
    fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        GuardError::Io { path: path.to_path_buf(), op, source }
    }
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Io { path, op, source } => {
                write!(f, "unlock failure count {}: {op}: {source}; no unlock is tried without it", path.display())
            }
            GuardError::NotADirectory { path } => {
                write!(f, "{} is not a directory; give the volume directory", path.display())
            }
        }
    }
}

impl std::error::Error for GuardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GuardError::Io { source, .. } => Some(source),
            GuardError::NotADirectory { .. } => None,
        }
    }
}

/// The stored state: failures in a row and when the last one happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct State {
    failures: u32,
    last_failure_unix_ms: u64,
}

impl State {
    fn render(&self) -> String {
        format!("{PREFIX}{}{LAST}{}\n", self.failures, self.last_failure_unix_ms)
    }

    /// Exactly what [`State::render`] writes, or nothing: re-rendering the
    /// parsed values must give back the same bytes, so leading zeros, signs,
    /// spaces or trailing bytes are damage too.
    fn parse(bytes: &[u8]) -> Option<State> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (failures, last) = text.strip_prefix(PREFIX)?.strip_suffix('\n')?.split_once(LAST)?;
        let state = State { failures: failures.parse().ok()?, last_failure_unix_ms: last.parse().ok()? };
        (state.render() == text).then_some(state)
    }

    /// What a damaged file counts as.
    fn worst(now_ms: u64) -> State {
        State { failures: u32::MAX, last_failure_unix_ms: now_ms }
    }
}

fn now_unix_ms() -> u64 {
    // A clock before 1970 counts as 1970: the delay then runs from a time
    // long past, and is bounded by MAX_DELAY anyway.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The failure count of one volume, as read when opened and as changed by
/// this guard since. See the module doc.
#[derive(Debug)]
pub struct UnlockGuard {
    dir: PathBuf,
    state: State,
    damaged: bool,
}

impl UnlockGuard {
    /// Reads the failure count of the volume in `volume_dir`. Takes no
    /// lock and writes nothing: the state file is only ever replaced
    /// whole, so it is read whole.
    pub fn open(volume_dir: &Path) -> Result<UnlockGuard, GuardError> {
        match std::fs::metadata(volume_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(GuardError::NotADirectory { path: volume_dir.to_path_buf() }),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(GuardError::NotADirectory { path: volume_dir.to_path_buf() });
            }
            Err(e) => return Err(GuardError::io(volume_dir, "open volume directory", e)),
        }
        let (state, damaged) = read_state(volume_dir)?;
        Ok(UnlockGuard { dir: volume_dir.to_path_buf(), state, damaged })
    }

    /// Failures in a row so far (`u32::MAX` if the state file was damaged).
    pub fn failures(&self) -> u32 {
        self.state.failures
    }

    /// Whether the state file was damaged when read (it then counts as
    /// [`u32::MAX`] failures), so the caller can say so in its log.
    pub fn state_was_damaged(&self) -> bool {
        self.damaged
    }

    /// How long to wait, from now, before the next attempt: [`delay_for`]
    /// the count, less the time since the last failure. At most
    /// [`MAX_DELAY`], even if the clock was set back.
    pub fn delay(&self) -> Duration {
        let full = delay_for(self.state.failures);
        let since = Duration::from_millis(now_unix_ms().saturating_sub(self.state.last_failure_unix_ms));
        full.saturating_sub(since)
    }

    /// Records one more failure and returns the new count. The count is
    /// re-read under the lock, so failures recorded by other processes since
    /// [`UnlockGuard::open`] are counted too.
    pub fn record_failure(&mut self) -> Result<u32, GuardError> {
        let _lock = lock(&self.dir)?;
        let (current, _) = read_state(&self.dir)?;
        let next = State { failures: current.failures.saturating_add(1), last_failure_unix_ms: now_unix_ms() };
        write_state(&self.dir, &next)?;
        self.state = next;
        self.damaged = false;
        Ok(next.failures)
    }

    /// Resets the count after a successful unlock.
    pub fn record_success(&mut self) -> Result<(), GuardError> {
        let _lock = lock(&self.dir)?;
        let next = State::default();
        write_state(&self.dir, &next)?;
        self.state = next;
        self.damaged = false;
        Ok(())
    }
}

/// The exclusive lock on [`LOCK_FILE`], released when dropped (and by the
/// kernel if the process dies). flock(2) locks belong to the open file,
/// not the process, so two guards in one process exclude each other too
/// (fcntl locks would not). Blocking: holders keep it for one read, one
/// write and two fsyncs. Mode 0600: anyone who could open it could hold the
/// lock forever and stall every unlock.
fn lock(dir: &Path) -> Result<Flock<File>, GuardError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(&path)
        .map_err(|e| GuardError::io(&path, "open lock file", e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| GuardError::io(&path, "lock", errno.into()))
}

/// The state on disk, and whether it was damaged. A missing file is no
/// failures. Opened without following a symlink and non-blocking (a FIFO
/// planted there must not hang the unlock); read through a cap.
fn read_state(dir: &Path) -> Result<(State, bool), GuardError> {
    let path = dir.join(STATE_FILE);
    let opened = OpenOptions::new().read(true).custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits()).open(&path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((State::default(), false)),
        // O_NOFOLLOW on a symlink: not a file callvault wrote.
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Ok((State::worst(now_unix_ms()), true));
        }
        Err(e) => return Err(GuardError::io(&path, "open", e)),
    };
    let is_file = file.metadata().map_err(|e| GuardError::io(&path, "stat", e))?.is_file();
    if !is_file {
        return Ok((State::worst(now_unix_ms()), true));
    }
    let mut buf = [0u8; MAX_STATE_FILE + 1];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(GuardError::io(&path, "read", e)),
        }
    }
    match State::parse(&buf[..filled]).filter(|_| filled <= MAX_STATE_FILE) {
        Some(state) => Ok((state, false)),
        None => Ok((State::worst(now_unix_ms()), true)),
    }
}

/// Replaces the state file atomically and durably. Called under the lock,
/// so the temporary name is ours alone; one left by a crash is removed.
fn write_state(dir: &Path, state: &State) -> Result<(), GuardError> {
    let tmp = dir.join(TEMP_FILE);
    let path = dir.join(STATE_FILE);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(GuardError::io(&tmp, "remove stale temporary file", e)),
    }
    // create_new: never follows a symlink, never reuses someone's file.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| GuardError::io(&tmp, "create", e))?;
    f.write_all(state.render().as_bytes()).and_then(|()| f.sync_all()).map_err(|e| GuardError::io(&tmp, "write", e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| GuardError::io(&path, "rename", e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| GuardError::io(dir, "fsync directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write_raw(dir: &Path, contents: &[u8]) {
        std::fs::write(dir.join(STATE_FILE), contents).unwrap();
    }

    fn state_line(failures: u32, last_ms: u64) -> String {
        format!("callvault unlock-failures v1 failures={failures} last-failure-unix-ms={last_ms}\n")
    }

    #[test]
    fn delay_schedule() {
        for n in 0..FREE_ATTEMPTS {
            assert_eq!(delay_for(n), Duration::ZERO, "{n}");
        }
        let secs = |n| delay_for(n).as_secs();
        assert_eq!([secs(5), secs(6), secs(7), secs(8), secs(9)], [1, 2, 4, 8, 16]);
        assert_eq!([secs(12), secs(13), secs(14), secs(15)], [128, 256, 300, 300]);
        for n in [63, 64, 68, 69, 70, 1000, u32::MAX - 1, u32::MAX] {
            assert_eq!(delay_for(n), MAX_DELAY, "{n}");
        }
        // Never shrinks as failures grow.
        assert!((0..200).all(|n| delay_for(n) <= delay_for(n + 1)));
    }

    #[test]
    fn a_fresh_volume_has_no_failures_and_no_delay() {
        let d = tempfile::tempdir().unwrap();
        let g = UnlockGuard::open(d.path()).unwrap();
        assert_eq!((g.failures(), g.delay(), g.state_was_damaged()), (0, Duration::ZERO, false));
        // Opening writes nothing.
        assert!(!d.path().join(STATE_FILE).exists());
    }

    #[test]
    fn counts_persist_across_reopen_and_success_resets() {
        let d = tempfile::tempdir().unwrap();
        let mut g = UnlockGuard::open(d.path()).unwrap();
        for want in 1..=6 {
            assert_eq!(g.record_failure().unwrap(), want);
        }
        assert_eq!(g.failures(), 6);
        let again = UnlockGuard::open(d.path()).unwrap();
        assert_eq!(again.failures(), 6);
        // Just failed: about the full 2 s to wait, from any process.
        assert!(again.delay() > Duration::from_millis(1500) && again.delay() <= Duration::from_secs(2));
        let mut other = UnlockGuard::open(d.path()).unwrap();
        assert_eq!(other.record_failure().unwrap(), 7);
        // The first guard's next failure counts the other's too.
        assert_eq!(g.record_failure().unwrap(), 8);
        g.record_success().unwrap();
        assert_eq!((g.failures(), g.delay()), (0, Duration::ZERO));
        assert_eq!(UnlockGuard::open(d.path()).unwrap().failures(), 0);
        assert_eq!(g.record_failure().unwrap(), 1);
    }

    #[test]
    fn the_state_file_is_one_line_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        let mut g = UnlockGuard::open(d.path()).unwrap();
        g.record_failure().unwrap();
        g.record_failure().unwrap();
        let text = std::fs::read_to_string(d.path().join(STATE_FILE)).unwrap();
        let last: u64 = text.trim_end().rsplit('=').next().unwrap().parse().unwrap();
        assert_eq!(text, state_line(2, last));
        assert!(last.abs_diff(now_unix_ms()) < 60_000, "{last}");
        for f in [STATE_FILE, LOCK_FILE] {
            let mode = std::fs::metadata(d.path().join(f)).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{f}");
        }
        assert!(!d.path().join(TEMP_FILE).exists());
    }

    #[test]
    fn the_delay_runs_from_the_last_failure() {
        let d = tempfile::tempdir().unwrap();
        let now = now_unix_ms();
        // 10 failures: 32 s, of which 10 s have passed.
        write_raw(d.path(), state_line(10, now - 10_000).as_bytes());
        let g = UnlockGuard::open(d.path()).unwrap();
        assert_eq!(g.failures(), 10);
        assert!(!g.state_was_damaged());
        let left = g.delay();
        assert!(left > Duration::from_secs(20) && left <= Duration::from_secs(22), "{left:?}");
        // Waited out long ago: no delay, though the count stands.
        write_raw(d.path(), state_line(10, now - 3_600_000).as_bytes());
        assert_eq!(UnlockGuard::open(d.path()).unwrap().delay(), Duration::ZERO);
        // A last failure in the future (clock set back): the full delay,
        // never more.
        write_raw(d.path(), state_line(10, now + 86_400_000).as_bytes());
        assert_eq!(UnlockGuard::open(d.path()).unwrap().delay(), Duration::from_secs(32));
        write_raw(d.path(), state_line(40, u64::MAX).as_bytes());
        assert_eq!(UnlockGuard::open(d.path()).unwrap().delay(), MAX_DELAY);
    }

    #[test]
    fn a_damaged_state_file_counts_as_the_most_failures() {
        let d = tempfile::tempdir().unwrap();
        let now = now_unix_ms();
        let damaged: Vec<Vec<u8>> = vec![
            b"garbage".to_vec(),
            Vec::new(),
            state_line(3, now).trim_end().as_bytes().to_vec(),
            state_line(3, now).replace("=3", "=03").into_bytes(),
            state_line(3, now).replace("=3", "=+3").into_bytes(),
            state_line(3, now).replace("v1", "v2").into_bytes(),
            format!("{}\n", state_line(3, now)).into_bytes(),
            state_line(3, now).replace("failures=3", "failures=4294967296").into_bytes(),
            vec![0xff; 40],
            // Well-formed but padded past the cap.
            [state_line(3, now).as_bytes(), &[b' '; MAX_STATE_FILE]].concat(),
            vec![b'9'; 1 << 20],
        ];
        for contents in damaged {
            write_raw(d.path(), &contents);
            let g = UnlockGuard::open(d.path()).unwrap();
            let shown = String::from_utf8_lossy(&contents[..contents.len().min(60)]).into_owned();
            assert!(g.state_was_damaged(), "{shown:?}");
            assert_eq!(g.failures(), u32::MAX, "{shown:?}");
            assert!(g.delay() > MAX_DELAY - Duration::from_secs(5), "{shown:?}: {:?}", g.delay());
        }
        // The line itself parses: the cases above fail for their damage.
        write_raw(d.path(), state_line(3, now).as_bytes());
        assert!(!UnlockGuard::open(d.path()).unwrap().state_was_damaged());
    }

    #[test]
    fn after_damage_the_next_outcome_writes_a_good_file() {
        let d = tempfile::tempdir().unwrap();
        write_raw(d.path(), b"\x00\x01damaged");
        let mut g = UnlockGuard::open(d.path()).unwrap();
        assert_eq!(g.record_failure().unwrap(), u32::MAX, "saturates, never wraps");
        let again = UnlockGuard::open(d.path()).unwrap();
        assert!(!again.state_was_damaged());
        assert_eq!(again.failures(), u32::MAX);
        g.record_success().unwrap();
        assert_eq!(UnlockGuard::open(d.path()).unwrap().failures(), 0);
    }

    #[test]
    fn a_state_path_that_is_not_a_file_is_damage_and_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(STATE_FILE);
        // A FIFO: a blocking open would wait here for a writer forever.
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
        assert!(UnlockGuard::open(d.path()).unwrap().state_was_damaged());
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        assert!(UnlockGuard::open(d.path()).unwrap().state_was_damaged());
        // A record replaces the link with a file, not what it points to.
        let mut g = UnlockGuard::open(d.path()).unwrap();
        assert_eq!(g.record_failure().unwrap(), u32::MAX);
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
    }

    #[test]
    fn concurrent_failures_from_two_threads_are_all_counted() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let mut g = UnlockGuard::open(&dir).unwrap();
                    (0..50).map(|_| g.record_failure().unwrap()).collect::<Vec<u32>>()
                })
            })
            .collect();
        let mut seen: Vec<u32> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        seen.sort_unstable();
        // Every increment saw a different count: none was lost.
        assert_eq!(seen, (1..=100).collect::<Vec<u32>>());
        assert_eq!(UnlockGuard::open(&dir).unwrap().failures(), 100);
    }

    #[test]
    fn a_missing_volume_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let e = UnlockGuard::open(&d.path().join("nope")).unwrap_err();
        assert!(matches!(e, GuardError::NotADirectory { .. }), "{e}");
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(UnlockGuard::open(&f), Err(GuardError::NotADirectory { .. })));
    }

    #[test]
    fn a_stale_temporary_file_from_a_crash_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(TEMP_FILE), b"half written").unwrap();
        let mut g = UnlockGuard::open(d.path()).unwrap();
        assert_eq!(g.record_failure().unwrap(), 1);
        assert_eq!(UnlockGuard::open(d.path()).unwrap().failures(), 1);
    }
}
