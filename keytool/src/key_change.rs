//! What every slot-changing command shares: authorization by unlocking, the format-1 upgrade, and "journal, then write".
//!
//! A command unlocks the volume with an existing slot ([`authorize`]),
//! changes the decoded header in memory, then [`Authorized::commit`]s:
//! the `key_admin` record (and an `upgrade-header` record first, for a
//! format-1 volume) is made **before** the header is written, and if it
//! cannot be made nothing is written. The record therefore says "done" a
//! moment before it is; if the write then fails, a second record of the
//! same action with outcome `EIO` says it was not. A refused change (a
//! rule, the last slot, a self-change reserved to an administrator) is
//! recorded with outcome `EPERM` and the first line of why.
//!
//! A format-1 volume's header is upgraded to format 2 by the first such
//! command: one slot for the operator who unlocked it, labelled as their
//! format-1 slot was (if that label is a valid operator ID, else
//! `initial`), with that slot's Argon2id cost and a fresh salt. Their
//! existing secret is kept as it is: the passphrase rules are for new
//! passphrases only.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use callvault::exitcode;
use callvault::header::{AnyHeader, NewSlot, VolumeHeader, v1::V1Header, validate_label};
use callvault::journal::{Event, Outcome};
use callvault::kdf::KdfParams;
use callvault::keys::VolumeKeys;
use callvault::secret::MasterKey;
use callvault::volume::{self, Operator, VolumePaths};

use crate::audit_cmd::{key_admin_event, record_events};
use crate::cli::UnlockArgs;
use crate::error::Failure;

/// errno names for refused and failed key changes.
const EPERM: i32 = 1;
const EIO: i32 = 5;

/// Seconds since the epoch, for slot times.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Held (flock) by a key change from before its unlock until its header is
/// written, in `VOLUME/callvault.keys.lock`: two changes at once would each
/// write the header they read, and the first one's change would be lost
/// although journaled. Released by the kernel when the process ends.
pub struct ChangeLock {
    _file: File,
}

pub const CHANGE_LOCK_FILE: &str = "callvault.keys.lock";

/// Takes the volume's key-change lock, waiting (and saying so) while another
/// key change holds it. The caller has checked that `volume` is a volume.
pub fn lock_changes(volume: &Path) -> Result<ChangeLock, Failure> {
    let path = volume.join(CHANGE_LOCK_FILE);
    let failed = |e: std::io::Error| Failure::new(exitcode::FAILURE, format!("{}: {e}", path.display()));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(failed)?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            eprintln!("callvault-keytool: waiting for another key change of {} to finish", volume.display());
            flock(&f, FlockOperation::LockExclusive).map_err(|e| failed(e.into()))?;
        }
        Err(e) => return Err(failed(e.into())),
    }
    Ok(ChangeLock { _file: f })
}

/// A volume unlocked by existing slots, its format-2 header ready to change.
pub struct Authorized {
    _lock: ChangeLock,
    pub volume: PathBuf,
    pub header: VolumeHeader,
    keys: VolumeKeys,
    /// The operators whose unlock authorized the change, in slot order.
    pub labels: Vec<String>,
    /// Set when the volume was format 1: the label its slot got in format 2.
    pub upgraded: Option<String>,
}

/// Unlocks `volume` with the operators `args` name (or prompts for them).
pub fn authorize(volume: &Path, args: &UnlockArgs) -> Result<Authorized, Failure> {
    let header = volume::read_header(volume)?;
    let operators = crate::unlock::read_operators(volume, args, &header)?;
    authorize_with(volume, &operators)
}

/// Unlocks `volume` with `operators` (the first is the one a format-1
/// volume's slot is kept for).
pub fn authorize_with(volume: &Path, operators: &[Operator]) -> Result<Authorized, Failure> {
    // A volume, before a lock file is made in it; the lock is taken
    // before the unlock reads the header that will be changed.
    volume::read_headers(volume)?;
    let lock = lock_changes(volume)?;
    let unlocked = crate::unlock::unlock(volume, operators)?;
    let labels = unlocked.labels.clone();
    let (header, upgraded) = match &unlocked.header {
        AnyHeader::V2(h) => (h.clone(), None),
        AnyHeader::V1(v1) => {
            let index = unlocked.slots.first().copied().unwrap_or(0);
            let (h, label) = upgrade(v1, index, unlocked.keys.master(), operators)?;
            (h, Some(label))
        }
    };
    Ok(Authorized { _lock: lock, volume: volume.to_path_buf(), header, keys: unlocked.keys, labels, upgraded })
}

/// A format-2 header for a format-1 one whose slot `index` the first of
/// `operators` opened; also gives the slot's label.
pub fn upgrade(
    v1: &V1Header,
    index: usize,
    master: &MasterKey,
    operators: &[Operator],
) -> Result<(VolumeHeader, String), Failure> {
    let op = operators.first().ok_or_else(|| Failure::new(exitcode::FAILURE, "no operator unlocked the volume"))?;
    let old = v1.slots.get(index).and_then(Option::as_ref);
    let label = old.map(|s| s.label.clone()).filter(|l| validate_label(l).is_ok()).unwrap_or_else(|| "initial".into());
    let kdf = match old {
        Some(s) => KdfParams { salt: callvault::random::array()?, ..s.kdf },
        None => return Err(Failure::new(exitcode::FAILURE, format!("format-1 keyslot {index} is not in use"))),
    };
    // The secret is the format-1 slot's, so its times stay: created and
    // last changed when that slot was made.
    let since = old.map(|s| s.created).unwrap_or_else(now);
    let new = NewSlot { label: &label, creds: &op.creds, kdf, no_self_change: false };
    let h = VolumeHeader::from_v1(v1, master, new, since)?;
    Ok((h, label))
}

/// Records `action` on `label` as refused with `failure`'s first line
/// (`labels`: who had authorized it, if anyone yet), and gives the failure
/// back for the caller to return.
pub fn refuse(
    volume: &Path,
    action: &str,
    label: Option<&str>,
    labels: Option<Vec<String>>,
    failure: Failure,
) -> Failure {
    let mut ev = key_admin_event(action, None, Outcome::errno(EPERM));
    ev.detail.label = label.map(str::to_string);
    ev.detail.labels = labels;
    ev.detail.reason = Some(failure.message.lines().next().unwrap_or_default().to_string());
    if let Err(e) = record_events(volume, vec![ev]) {
        eprintln!("callvault-keytool: warning: this refusal could not be recorded in the audit journal: {e}");
    }
    failure
}

impl Authorized {
    /// A volume whose header backup was unlocked (`header restore`).
    pub fn from_backup(
        lock: ChangeLock,
        volume: &Path,
        header: VolumeHeader,
        master: MasterKey,
        labels: Vec<String>,
        upgraded: Option<String>,
    ) -> Self {
        Authorized {
            _lock: lock,
            volume: volume.to_path_buf(),
            header,
            keys: VolumeKeys::derive(master),
            labels,
            upgraded,
        }
    }

    /// The header to change and the master key that reseals and MACs it.
    pub fn parts(&mut self) -> (&mut VolumeHeader, &MasterKey) {
        (&mut self.header, self.keys.master())
    }

    /// The `key_admin` record of `action` on slot `label`/`slot`, naming the
    /// authorizing operators.
    pub fn event(&self, action: &str, label: Option<&str>, slot: Option<usize>, outcome: Outcome) -> Event {
        let mut ev = key_admin_event(action, slot.map(|s| s as u32), outcome);
        ev.detail.label = label.map(str::to_string);
        ev.detail.labels = Some(self.labels.clone());
        ev
    }

    /// Records `action` on `label` as refused with `failure`'s first line,
    /// and gives the failure back for the caller to return.
    pub fn refuse(&self, action: &str, label: Option<&str>, failure: Failure) -> Failure {
        refuse(&self.volume, action, label, Some(self.labels.clone()), failure)
    }

    /// Records `ev` (after an `upgrade-header` record if the volume was
    /// format 1), then writes the header to both copies. Prints the upgrade
    /// line; the caller prints its own.
    pub fn commit(mut self, ev: Event) -> Result<(), Failure> {
        let mut events = Vec::new();
        if let Some(label) = &self.upgraded {
            events.push(self.event("upgrade-header", Some(label), Some(0), Outcome::Ok));
        }
        let action = ev.detail.action.clone().unwrap_or_default();
        let (label, slot) = (ev.detail.label.clone(), ev.detail.slot);
        events.push(ev);
        record_events(&self.volume, events).map_err(|e| {
            Failure::new(
                exitcode::AUDIT_UNAVAILABLE,
                format!("{action} could not be recorded in the audit journal, so nothing was changed: {e}"),
            )
        })?;
        let paths = VolumePaths::new(&self.volume);
        if let Err(e) = volume::write_header(&paths, &mut self.header, self.keys.master()) {
            let mut failed = self.event(&action, label.as_deref(), slot.map(|s| s as usize), Outcome::errno(EIO));
            failed.detail.reason =
                Some(format!("the header was not written: {}", e.to_string().lines().next().unwrap_or_default()));
            if let Err(je) = record_events(&self.volume, vec![failed]) {
                eprintln!("callvault-keytool: warning: this failure could not be recorded in the audit journal: {je}");
            }
            return Err(e.into());
        }
        if let Some(label) = &self.upgraded {
            println!(
                "upgraded the header of {} from format 1 to format 2 (keyslot 0 \"{label}\")",
                self.volume.display()
            );
        }
        Ok(())
    }

    /// Whether `label` is one of the slots that authorized this change.
    pub fn authorized_by(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l.eq_ignore_ascii_case(label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callvault::header::Credentials;
    use callvault::secret::Passphrase;
    use std::time::Duration;

    fn op(p: &str) -> Operator {
        Operator { label: None, creds: Credentials::passphrase(Passphrase::new(p.as_bytes().to_vec())).unwrap() }
    }

    #[test]
    fn a_key_change_excludes_another_until_it_ends() {
        let t = tempfile::tempdir().unwrap();
        let held = lock_changes(t.path()).unwrap();
        let other = File::open(t.path().join(CHANGE_LOCK_FILE)).unwrap();
        assert_eq!(flock(&other, FlockOperation::NonBlockingLockExclusive), Err(rustix::io::Errno::WOULDBLOCK));
        drop(held);
        flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
    }

    #[test]
    fn a_format_1_slot_keeps_its_label_cost_and_times_with_a_fresh_salt() {
        let master = MasterKey::generate().unwrap();
        let kdf = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        let mut v1 = V1Header::new(100).unwrap();
        v1.add_passphrase_slot(&master, b"weak old one", kdf, "night-shift", 200).unwrap();
        let (h, label) = upgrade(&v1, 0, &master, &[op("weak old one")]).unwrap();
        assert_eq!(label, "night-shift");
        assert_eq!((h.volume_id, h.created), (v1.volume_id, 100));
        let slot = h.slots[0].as_ref().unwrap();
        assert_eq!((slot.label.as_str(), slot.created, slot.changed), ("night-shift", 200, 200));
        assert_eq!((slot.kdf.memory_kib, slot.kdf.time_cost), (kdf.memory_kib, kdf.time_cost));
        assert_ne!(slot.kdf.salt, kdf.salt);
        // The existing (weak) secret opens the new slot; no rule was applied.
        let AnyHeader::V2(written) = callvault::header::decode(&h.encode(&master), Path::new("h")).unwrap() else {
            panic!("format 2 written")
        };
        assert_eq!(written.unlock(&op("weak old one").creds, None, Path::new("h")).unwrap().slots, [0]);

        // A format-1 label that is no operator ID becomes "initial".
        let mut v1 = V1Header::new(100).unwrap();
        v1.add_passphrase_slot(&master, b"another one", kdf, "night shift", 200).unwrap();
        assert_eq!(upgrade(&v1, 0, &master, &[op("another one")]).unwrap().1, "initial");
    }
}
