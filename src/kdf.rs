//! Argon2id: turning a passphrase into a key-encryption key, and calibrating
//! its cost to the machine.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroizing;

use crate::Error;
use crate::secret::Key32;

/// Default and minimum production memory cost, MiB (issue #2: at least 256 MiB).
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// Default calibration target.
pub const DEFAULT_TARGET: Duration = Duration::from_secs(1);
/// Bounds accepted from a header, so a damaged or hostile header cannot make
/// unlock allocate without limit or spin for hours before the MAC is checked.
/// `init` never writes a slot beyond them (docs/FORMAT.md, "Argon2id
/// parameters"). Largest memory cost of one slot (4 GiB).
pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Largest number of passes of one slot.
pub const MAX_TIME_COST: u32 = 1000;
/// Smallest memory cost of one slot (1 MiB).
pub const MIN_MEMORY_KIB: u32 = 1024;
/// Largest work of one slot, memory KiB x passes (16 GiB-passes: 256 MiB x 64
/// passes, 4 GiB x 4). Argon2id fills about 0.5 GiB a second on one core of
/// the reference host, so one slot costs at most about 30 s there.
pub const MAX_SLOT_WORK: u64 = 16 * 1024 * 1024;
/// Largest total work of one unlock attempt, summed over every active slot
/// (a wrong passphrase tries them all): 32 GiB-passes, about a minute on the
/// reference host. 16 slots at the defaults (256 MiB, about 2 passes) are 8.
pub const MAX_UNLOCK_WORK: u64 = 32 * 1024 * 1024;

/// Why stored KDF parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsProblem {
    /// Not valid Argon2id parameters (zero passes, too little memory, bad
    /// lanes): the header is damaged. The string says which value.
    Malformed(String),
    /// Valid, but costlier than [`MAX_MEMORY_KIB`], [`MAX_TIME_COST`] or
    /// [`MAX_SLOT_WORK`] allow: refused before any KDF runs.
    OverLimit,
}

/// Argon2id parameters as stored in a keyslot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub time_cost: u32,
    pub lanes: u32,
    pub salt: [u8; 32],
}

impl KdfParams {
    /// The work of one derivation: memory KiB x passes. Lanes split the same
    /// memory, so they do not change it.
    pub fn work(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.time_cost)
    }

    /// Checks parameters read from disk before running the KDF with them.
    pub fn check(&self) -> Result<(), ParamsProblem> {
        if self.memory_kib < MIN_MEMORY_KIB {
            return Err(ParamsProblem::Malformed(format!("Argon2 memory {} KiB out of range", self.memory_kib)));
        }
        if self.time_cost == 0 {
            return Err(ParamsProblem::Malformed("Argon2 time cost 0 out of range".into()));
        }
        if !(1..=16).contains(&self.lanes) {
            return Err(ParamsProblem::Malformed(format!("Argon2 lanes {} out of range", self.lanes)));
        }
        if self.memory_kib > MAX_MEMORY_KIB || self.time_cost > MAX_TIME_COST || self.work() > MAX_SLOT_WORK {
            return Err(ParamsProblem::OverLimit);
        }
        Ok(())
    }

    /// [`KdfParams::check`] as the library error, naming `slot`.
    pub fn check_slot(&self, slot: usize) -> Result<(), Error> {
        match self.check() {
            Ok(()) => Ok(()),
            Err(ParamsProblem::Malformed(what)) => Err(Error::Kdf(format!("keyslot {slot}: {what}"))),
            Err(ParamsProblem::OverLimit) => Err(self.over_limit(slot)),
        }
    }

    pub(crate) fn over_limit(&self, slot: usize) -> Error {
        Error::KdfOverLimit { slot, memory_kib: self.memory_kib, time_cost: self.time_cost }
    }

    fn argon(&self) -> Result<Argon2<'static>, Error> {
        let params = Params::new(self.memory_kib, self.time_cost, self.lanes, Some(32))
            .map_err(|e| Error::Kdf(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Argon2's working memory, wiped when dropped. argon2's own `zeroize`
    /// feature wipes only its initial hash and final block and frees the
    /// memory blocks (derived from the passphrase) unwiped, so the blocks are
    /// ours: allocated once at the right size, zeroed on drop.
    fn memory(argon: &Argon2<'_>) -> Zeroizing<Vec<Block>> {
        Zeroizing::new(vec![Block::default(); argon.params().block_count()])
    }

    /// Derives the 256-bit key-encryption key for `secret`.
    pub fn derive(&self, secret: &[u8]) -> Result<Key32, Error> {
        match self.check() {
            Ok(()) => {}
            Err(ParamsProblem::Malformed(what)) => return Err(Error::Kdf(what)),
            Err(ParamsProblem::OverLimit) => {
                return Err(Error::Kdf(format!(
                    "Argon2 {} KiB x {} passes is beyond this build's limits",
                    self.memory_kib, self.time_cost
                )));
            }
        }
        let mut out = Key32::zeroed();
        let argon = self.argon()?;
        let mut memory = Self::memory(&argon);
        argon
            .hash_password_into_with_memory(secret, &self.salt, out.bytes_mut(), memory.as_mut_slice())
            .map_err(|e| Error::Kdf(e.to_string()))?;
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
        // Never more than a reader accepts: at most MAX_TIME_COST passes and
        // MAX_SLOT_WORK in all (memory_kib >= 1024, so the quotient fits).
        let max_passes = (MAX_SLOT_WORK / u64::from(memory_kib)).min(u64::from(MAX_TIME_COST)) as u32;
        p.time_cost = (passes as u32).clamp(1, max_passes.max(1));
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
    fn wiped_memory_gives_the_same_key_as_argon2s_own() {
        let p = KdfParams { memory_kib: 1024, time_cost: 2, lanes: 2, salt: [9; 32] };
        let mut theirs = [0u8; 32];
        p.argon().unwrap().hash_password_into(b"pass", &p.salt, &mut theirs).unwrap();
        assert_eq!(p.derive(b"pass").unwrap().expose_secret(), &theirs);
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
    fn cost_limits_are_over_limit_not_malformed() {
        let mut p = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        p.memory_kib = MAX_MEMORY_KIB + 1;
        assert_eq!(p.check(), Err(ParamsProblem::OverLimit));
        p.memory_kib = MAX_MEMORY_KIB;
        p.time_cost = MAX_TIME_COST;
        assert_eq!(p.check(), Err(ParamsProblem::OverLimit), "4 GiB x 1000 passes is beyond the slot work");
        p.time_cost = (MAX_SLOT_WORK / u64::from(MAX_MEMORY_KIB)) as u32;
        assert_eq!(p.check(), Ok(()));
        p.time_cost += 1;
        assert!(matches!(p.check_slot(3), Err(Error::KdfOverLimit { slot: 3, time_cost: 5, .. })));
        p.time_cost = 0;
        assert!(matches!(p.check(), Err(ParamsProblem::Malformed(_))));
    }

    #[test]
    fn calibration_never_exceeds_the_slot_work() {
        // Every memory size init accepts gets a time cost a reader accepts,
        // even for a target far beyond what the limits allow.
        for mib in [1, 256, 1024, MAX_MEMORY_KIB / 1024] {
            let memory_kib = mib * 1024;
            let max = (MAX_SLOT_WORK / u64::from(memory_kib)).min(u64::from(MAX_TIME_COST)) as u32;
            let p = KdfParams { memory_kib, time_cost: max, lanes: 1, salt: [0; 32] };
            assert_eq!(p.check(), Ok(()), "{mib} MiB x {max}");
        }
        // 1 MiB passes take well under a millisecond: a 60 s target asks for
        // far more than MAX_TIME_COST and is clamped.
        let p = KdfParams::calibrate(1, Duration::from_secs(60)).unwrap();
        assert_eq!(p.check(), Ok(()));
        assert!(p.time_cost <= MAX_TIME_COST);
    }

    #[test]
    fn calibration_picks_at_least_one_pass() {
        let p = KdfParams::calibrate(1, Duration::from_millis(5)).unwrap();
        assert!(p.time_cost >= 1);
    }
}
