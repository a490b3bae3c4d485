//! The journal lock: one writer at a time (`flock` on `journal.lock`), and a probe for readers.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::JournalError;

/// File name of the lock inside the audit directory. It holds no data; the
/// kernel drops the lock when its holder exits, crash or not.
pub const LOCK_FILE: &str = "journal.lock";

/// Held for as long as a `Journal` is open.
pub(crate) struct JournalLock {
    _lock: Flock<File>,
}

fn open_lock_file(dir: &Path, create: bool) -> Result<Option<File>, JournalError> {
    let path = dir.join(LOCK_FILE);
    let r = if create {
        // World-readable so auditors can probe it; it carries nothing.
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(&path)
    } else {
        File::open(&path)
    };
    match r {
        Ok(f) => Ok(Some(f)),
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(JournalError::io(&path, "open lock file", e)),
    }
}

/// Takes the exclusive writer lock, retrying for up to `wait` (readers probe
/// it with brief shared locks).
pub(crate) fn acquire(dir: &Path, wait: Duration) -> Result<JournalLock, JournalError> {
    let deadline = Instant::now() + wait;
    let mut file = match open_lock_file(dir, true)? {
        Some(f) => f,
        None => {
            return Err(JournalError::NotInitialized { dir: dir.to_path_buf() });
        }
    };
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(JournalLock { _lock: lock }),
            Err((f, Errno::EWOULDBLOCK)) => {
                if Instant::now() >= deadline {
                    return Err(JournalError::Locked { dir: dir.to_path_buf() });
                }
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, errno)) => {
                return Err(JournalError::io(dir.join(LOCK_FILE), "flock", std::io::Error::from(errno)));
            }
        }
    }
}

/// Whether a writer (callvaultd, or a keytool command) holds the journal
/// open right now. Readers use this to tell a live unsealed tail from an
/// abandoned one.
pub fn writer_is_live(dir: &Path) -> Result<bool, JournalError> {
    let Some(file) = open_lock_file(dir, false)? else {
        return Ok(false);
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(lock) => {
            drop(lock);
            Ok(false)
        }
        Err((_, Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, errno)) => Err(JournalError::io(dir.join(LOCK_FILE), "flock", std::io::Error::from(errno))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_and_readers_see_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!writer_is_live(dir.path()).unwrap());
        let l = acquire(dir.path(), Duration::ZERO).unwrap();
        assert!(writer_is_live(dir.path()).unwrap());
        assert!(matches!(acquire(dir.path(), Duration::from_millis(50)), Err(JournalError::Locked { .. })));
        drop(l);
        assert!(!writer_is_live(dir.path()).unwrap());
        let _again = acquire(dir.path(), Duration::ZERO).unwrap();
    }
}
