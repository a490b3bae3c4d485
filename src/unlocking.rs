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
    let mut guard = UnlockGuard::open(dir).map_err(guard_error)?;
    let delay = guard.delay();
    if !delay.is_zero() {
        on_delay(delay, guard.failures());
        std::thread::sleep(delay);
    }
    match volume::unlock(dir, operators) {
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
