//! `callvault-keytool header backup|restore`: the volume header to a file, and back.
//!
//! A backup is the newest header copy that decodes, byte for byte: it holds
//! no secret in the clear (every slot is wrapped under its operator's
//! factors), but whoever has it and an old passphrase can unlock the
//! volume, so it is written mode 0400 and never over an existing file.
//! Restoring needs the backup itself to unlock (the operators' factors as
//! they were when it was made), refuses a backup of another volume or one
//! from before a key rotation, and names the keyslots that come back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use callvault::exitcode;
use callvault::header::{self, AnyHeader};
use callvault::journal::Outcome;
use callvault::volume::{self, VolumePaths};

use crate::audit_cmd::{key_admin_event, record_events};
use crate::cli::UnlockArgs;
use crate::error::Failure;
use crate::key_change::{self, Authorized};
use crate::unlock;

fn labels_of(h: &AnyHeader) -> Vec<String> {
    match h {
        AnyHeader::V1(h) => h.slots.iter().flatten().map(|s| s.label.clone()).collect(),
        AnyHeader::V2(h) => h.labels(),
    }
}

fn describe(h: &AnyHeader) -> String {
    format!("format {}, key generation {}, keyslots {}", h.version(), h.generation(), labels_of(h).join(", "))
}

/// `header backup VOLUME FILE`.
pub fn backup(volume: &Path, file: &Path) -> Result<(), Failure> {
    const ACTION: &str = "header-backup";
    let (from, bytes, h) = volume::newest_header_bytes(volume)?;
    let mut out =
        OpenOptions::new().write(true).create_new(true).mode(0o400).open(file).map_err(|e| {
            Failure::new(exitcode::FAILURE, format!("cannot create header backup {}: {e}", file.display()))
        })?;
    let mut ev = key_admin_event(ACTION, None, Outcome::Ok);
    ev.detail.reason = Some(format!("{} to {}", from.display(), file.display()));
    if let Err(e) = record_events(volume, vec![ev]) {
        drop(out);
        let _ = std::fs::remove_file(file);
        return Err(Failure::new(
            exitcode::AUDIT_UNAVAILABLE,
            format!("the backup could not be recorded in the audit journal, so none was written: {e}"),
        ));
    }
    if let Err(e) = out.write_all(&bytes).and_then(|()| out.sync_all()) {
        drop(out);
        let _ = std::fs::remove_file(file);
        let mut failed = key_admin_event(ACTION, None, Outcome::errno(5));
        failed.detail.reason = Some(format!("{}: {e}", file.display()));
        let _ = record_events(volume, vec![failed]);
        return Err(Failure::new(exitcode::FAILURE, format!("cannot write header backup {}: {e}", file.display())));
    }
    println!("wrote a backup of the header of {} ({}) to {}", volume.display(), describe(&h), file.display());
    Ok(())
}

/// Reads a backup file, at most one byte more than any header.
fn read_backup(file: &Path) -> Result<AnyHeader, Failure> {
    let f = File::open(file)
        .map_err(|e| Failure::new(exitcode::FAILURE, format!("header backup {}: {e}", file.display())))?;
    let mut bytes = Vec::with_capacity(header::MAX_HEADER_LEN + 1);
    f.take(header::MAX_HEADER_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new(exitcode::FAILURE, format!("header backup {}: {e}", file.display())))?;
    if bytes.len() > header::MAX_HEADER_LEN {
        let what = format!("longer than {} bytes", header::MAX_HEADER_LEN);
        return Err(callvault::Error::HeaderDamaged { path: file.to_path_buf(), what }.into());
    }
    Ok(header::decode(&bytes, file)?)
}

/// The current header copies that decode (none if both are damaged or
/// missing: then the backup is what repairs the volume).
fn current_copies(volume: &Path) -> Result<Vec<(PathBuf, AnyHeader)>, Failure> {
    if !VolumePaths::new(volume).data().is_dir() {
        return Err(callvault::Error::NotAVolume { path: volume.to_path_buf() }.into());
    }
    match volume::read_headers(volume) {
        Ok(copies) => {
            for w in copies.damage_warnings() {
                eprintln!("callvault-keytool: warning: {w}");
            }
            Ok(copies.decoded)
        }
        Err(callvault::Error::NotAVolume { .. }) => Ok(Vec::new()),
        Err(e @ callvault::Error::HeaderDamaged { .. }) => {
            eprintln!("callvault-keytool: warning: {}", e.to_string().lines().next().unwrap_or_default());
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// Labels in `a` and not in `b` (case-insensitive, as labels compare).
fn missing_from(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|l| !b.iter().any(|m| m.eq_ignore_ascii_case(l))).cloned().collect()
}

/// `header restore VOLUME FILE`.
pub fn restore(volume: &Path, file: &Path, unlock_args: &UnlockArgs) -> Result<(), Failure> {
    const ACTION: &str = "header-restore";
    let backup = read_backup(file)?;
    if !VolumePaths::new(volume).data().is_dir() {
        return Err(callvault::Error::NotAVolume { path: volume.to_path_buf() }.into());
    }
    // Taken before the copies are judged, so no key change slips in between.
    let lock = key_change::lock_changes(volume)?;
    let current = current_copies(volume)?;
    volume::check_restorable(&backup, &current)
        .map_err(|e| key_change::refuse(volume, ACTION, None, None, e.into()))?;
    let operators = unlock::read_operators(volume, unlock_args, &backup)?;
    // While a copy of the current header decodes, it is that header's
    // authority (K operators under dual control) that may replace it: an
    // old backup alone must not undo a removal or dual control. Only when no
    // copy decodes (what restore is for) does the backup's own unlock do.
    if !current.is_empty()
        && let Err(f) = unlock::unlock(volume, &operators)
    {
        let f = Failure::new(
            f.code,
            format!(
                "restoring over a readable header needs its operators' authority too: {}",
                f.message.lines().next().unwrap_or_default()
            ),
        );
        return Err(key_change::refuse(volume, ACTION, None, None, f));
    }
    let (master, slots, labels) = unlock::unlock_backup(volume, &backup, file, &operators)?;
    let (mut header, upgraded) = match &backup {
        AnyHeader::V2(h) => (h.clone(), None),
        AnyHeader::V1(v1) => {
            let (h, label) = key_change::upgrade(v1, slots.first().copied().unwrap_or(0), &master, &operators)?;
            (h, Some(label))
        }
    };
    let restored = header.labels();
    let mut note = format!("from {}", file.display());
    match current.first() {
        Some((_, now)) => {
            let back = missing_from(&restored, &labels_of(now));
            let gone = missing_from(&labels_of(now), &restored);
            if !back.is_empty() {
                eprintln!(
                    "callvault-keytool: warning: keyslot(s) removed since this backup come back: {}",
                    back.join(", ")
                );
                note.push_str(&format!("; keyslots that come back: {}", back.join(", ")));
            }
            if !gone.is_empty() {
                eprintln!(
                    "callvault-keytool: warning: keyslot(s) added since this backup are dropped: {}",
                    gone.join(", ")
                );
                note.push_str(&format!("; keyslots dropped: {}", gone.join(", ")));
            }
        }
        None => eprintln!(
            "callvault-keytool: warning: no current header copy decodes, so the keyslots of the backup ({}) \
             cannot be compared with it",
            restored.join(", ")
        ),
    }
    if let Some((_, now)) = current.first() {
        let dual_now = match now {
            AnyHeader::V2(h) => h.dual.as_ref().map(|d| d.threshold),
            AnyHeader::V1(_) => None,
        };
        let dual_back = header.dual.as_ref().map(|d| d.threshold);
        if dual_now != dual_back {
            let say = |k: Option<u8>| match k {
                Some(k) => format!("dual control with a threshold of {k}"),
                None => "no dual control".to_string(),
            };
            eprintln!(
                "callvault-keytool: warning: the volume has {}, this backup has {}: restoring it changes that",
                say(dual_now),
                say(dual_back)
            );
            note.push_str(&format!("; dual control: {} before, {} after", say(dual_now), say(dual_back)));
        }
    }
    // Newer than both copies, so neither can win over the restored header.
    header.write_seq = current.iter().map(|(_, h)| h.write_seq()).chain([header.write_seq]).max().unwrap_or(0);
    let a = Authorized::from_backup(lock, volume, header, master, labels, upgraded);
    let mut ev = a.event(ACTION, None, None, Outcome::Ok);
    ev.detail.reason = Some(note);
    a.commit(ev)?;
    println!("restored the header of {} from {} (keyslots {})", volume.display(), file.display(), restored.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_that_come_back_compare_labels_without_case() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(missing_from(&s(&["alice", "Bob", "carol"]), &s(&["ALICE", "carol"])), s(&["Bob"]));
        assert!(missing_from(&s(&["alice"]), &s(&["alice", "dave"])).is_empty());
    }
}
