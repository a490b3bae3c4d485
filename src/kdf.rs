//! Argon2id: turning a passphrase into a key-encryption key, and calibrating
//! its cost to the machine.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};

use crate::Error;
use crate::secret::Key32;

/// Default and minimum production memory cost, MiB (issue #2: at least 256 MiB).
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// Default calibration target.
pub const DEFAULT_TARGET: Duration = Duration::from_secs(1);
/// Bounds accepted from a header, so a damaged or hostile header cannot make
/// unlock allocate without limit or spin for hours before the MAC is checked.
pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
pub const MAX_TIME_COST: u32 = 1000;
pub const MIN_MEMORY_KIB: u32 = 1024;

/// Argon2id parameters as stored in a keyslot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub time_cost: u32,
    pub lanes: u32,
    pub salt: [u8; 32],
}

impl KdfParams {
    /// Checks parameters read from disk before running the KDF with them.
    pub fn check(&self) -> Result<(), String> {
        if !(MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(format!("Argon2 memory {} KiB out of range", self.memory_kib));
        }
        if !(1..=MAX_TIME_COST).contains(&self.time_cost) {
            return Err(format!("Argon2 time cost {} out of range", self.time_cost));
        }
        if !(1..=16).contains(&self.lanes) {
            return Err(format!("Argon2 lanes {} out of range", self.lanes));
        }
        Ok(())
    }

    fn argon(&self) -> Result<Argon2<'static>, Error> {
        let params = Params::new(self.memory_kib, self.time_cost, self.lanes, Some(32))
            .map_err(|e| Error::Kdf(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Derives the 256-bit key-encryption key for `secret`.
    pub fn derive(&self, secret: &[u8]) -> Result<Key32, Error> {
        self.check().map_err(Error::Kdf)?;
        let mut out = Key32::zeroed();
        self.argon()?.hash_password_into(secret, &self.salt, out.bytes_mut()).map_err(|e| Error::Kdf(e.to_string()))?;
        Ok(out)
    }

    /// Chooses a time cost so one derivation with `memory_mib` takes about
    /// `target` on this machine (at least one pass). A zero target gives one pass.
    pub fn calibrate(memory_mib: u32, target: Duration) -> Result<KdfParams, Error> {
        let memory_kib = memory_mib
            .checked_mul(1024)
            .filter(|m| (MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(m))
            .ok_or_else(|| {
                Error::Kdf(format!(
                    "--kdf-memory {memory_mib} MiB out of range ({} to {} MiB)",
                    MIN_MEMORY_KIB / 1024,
                    MAX_MEMORY_KIB / 1024
                ))
            })?;
        let mut p = KdfParams { memory_kib, time_cost: 1, lanes: 1, salt: crate::random::array()? };
        if target.is_zero() {
            return Ok(p);
        }
        let start = Instant::now();
        p.derive(b"calibration")?;
        let one_pass = start.elapsed().max(Duration::from_micros(1));
        let passes = (target.as_secs_f64() / one_pass.as_secs_f64()).round();
        p.time_cost = (passes as u32).clamp(1, MAX_TIME_COST);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_depends_on_secret_and_salt() {
        let p = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        let a = p.derive(b"correct horse 1").unwrap();
        let b = p.derive(b"correct horse 2").unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let mut q = p;
        q.salt[0] ^= 1;
        assert_ne!(q.derive(b"correct horse 1").unwrap().expose_secret(), a.expose_secret());
        assert_eq!(p.derive(b"correct horse 1").unwrap().expose_secret(), a.expose_secret());
    }

    #[test]
    fn hostile_parameters_are_refused_before_running() {
        let mut p = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        p.memory_kib = u32::MAX;
        assert!(p.derive(b"x").is_err());
        p.memory_kib = 1024;
        p.time_cost = 0;
        assert!(p.derive(b"x").is_err());
        assert!(KdfParams::calibrate(0, Duration::ZERO).is_err());
        assert!(KdfParams::calibrate(u32::MAX, Duration::ZERO).is_err());
    }

    #[test]
    fn calibration_picks_at_least_one_pass() {
        let p = KdfParams::calibrate(1, Duration::from_millis(5)).unwrap();
        assert!(p.time_cost >= 1);
    }
}
