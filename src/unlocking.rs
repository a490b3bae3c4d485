//! Unlocking a volume with brute-force throttling: what keytool and the daemon both call.
//!
//! After [`unlock_guard::FREE_ATTEMPTS`] failed unlocks in a row on a volume
//! (counted in `VOLUME/callvault.unlock-failures`, across processes), each
//! further attempt first waits a delay that doubles per failure up to five
//! minutes, counted from the last failure. A success resets the count.
//! `on_delay` is called before waiting so the caller can log it.

use std::path::Path;
use std::time::Duration;

use crate::Error;
use crate::unlock_guard::UnlockGuard;
use crate::volume::{self, Operator, Unlocked};

fn guard_error(e: impl std::fmt::Display) -> Error {
    Error::Audit(format!("unlock attempt counter: {e}"))
}

/// Unlocks `dir` with `operators`, waiting first if recent attempts failed.
/// Only a wrong secret counts as a failure (not a damaged header or a
/// missing file).
pub fn unlock_throttled(
    dir: &Path,
    operators: &[Operator],
    on_delay: impl FnOnce(Duration, u32),
) -> Result<Unlocked, Error> {
    // The volume must exist before a counter file is made in it.
    volume::read_headers(dir)?;
    throttled(dir, on_delay, || volume::unlock(dir, operators))
}

/// Runs one unlock `attempt` under the throttle of the volume in `dir`:
/// waits first if recent attempts failed, then counts a wrong secret as a
/// failure and a success as a reset. For unlocks that are not of the
/// volume's own header (a header backup being restored); the caller has
/// checked that `dir` is a volume.
pub fn throttled<T>(
    dir: &Path,
    on_delay: impl FnOnce(Duration, u32),
    attempt: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let mut guard = UnlockGuard::open(dir).map_err(guard_error)?;
    let delay = guard.delay();
    if !delay.is_zero() {
        on_delay(delay, guard.failures());
        std::thread::sleep(delay);
    }
    match attempt() {
        Ok(u) => {
            guard.record_success().map_err(guard_error)?;
            Ok(u)
        }
        Err(e @ (Error::WrongPassphrase { .. } | Error::NotEnoughOperators { .. })) => {
            guard.record_failure().map_err(guard_error)?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wrong_secrets_count_and_a_success_resets() {
        let t = tempfile::tempdir().unwrap();
        let wrong = || Err::<(), _>(Error::WrongPassphrase { label: None });
        for _ in 0..crate::unlock_guard::FREE_ATTEMPTS {
            assert!(throttled(t.path(), |_, _| panic!("no delay yet"), wrong).is_err());
        }
        // Not a failure: a damaged header says nothing about the secret.
        let damaged = || Err::<(), _>(Error::HeaderDamaged { path: t.path().into(), what: "x".into() });
        let mut waited = None;
        assert!(throttled(t.path(), |d, n| waited = Some((d, n)), damaged).is_err());
        let (d, n) = waited.expect("the 6th attempt waits");
        assert_eq!(n, crate::unlock_guard::FREE_ATTEMPTS);
        assert!(d > Duration::ZERO && d <= Duration::from_secs(1), "{d:?}");
        assert_eq!(UnlockGuard::open(t.path()).unwrap().failures(), crate::unlock_guard::FREE_ATTEMPTS);
        throttled(t.path(), |_, _| {}, || Ok(())).unwrap();
        assert_eq!(UnlockGuard::open(t.path()).unwrap().failures(), 0);
    }
}
