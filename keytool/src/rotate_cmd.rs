//! `callvault-keytool rotate-key`: a new master key, and every file, name and link re-encrypted under it.
//!
//! Order (each step durable before the next, so a crash or SIGKILL anywhere
//! leaves a volume that `rotate-key` finishes, with nothing unreadable):
//!
//! 1. the volume lock (`callvault.lock`, the one callvaultd holds while
//!    serving): the volume stays unmounted throughout, and the daemon
//!    refuses to mount it until the rotation is finished (exit 30);
//! 2. unlock with the operators' factors (and the key-change lock); if the
//!    header already records a rotation in progress, resume it with the two
//!    keys it holds;
//! 3. otherwise record `rotate-key-begin` in the journal, then write the
//!    header with a new master key sealed to every slot, the key generation
//!    one higher, and the previous key kept under the new one
//!    (`VolumeHeader::begin_rotation`): from here every operator's slot opens
//!    the new key and the header gives the old one;
//! 4. re-encrypt the tree (`callvault::rotation::rotate_tree`, resumable);
//! 5. record `rotate-key`, then drop the previous key from the header.
//!
//! Afterwards the previous master key decrypts nothing in the volume, and
//! header backups made before the rotation are refused by `header restore`
//! (their key generation is lower). The audit journal's keys are not touched:
//! the auditor's key stays valid.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use callvault::exitcode;
use callvault::journal::Outcome;
use callvault::keys::VolumeKeys;
use callvault::secret::MasterKey;
use callvault::volume::{self, VolumePaths};
use rustix::fs::{FlockOperation, flock};

use crate::audit_cmd::record_events;
use crate::cli::{RotateKeyArgs, UnlockArgs};
use crate::error::Failure;
use crate::key_change;

/// Holds `callvault.lock` as a serving daemon does; refuses if one does.
fn lock_volume(paths: &VolumePaths) -> Result<std::fs::File, Failure> {
    let p = paths.lock();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&p)
        .map_err(|e| Failure::new(exitcode::FAILURE, format!("{}: {e}", p.display())))?;
    if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        return Err(Failure::new(
            exitcode::VOLUME_IN_USE,
            format!(
                "volume {} is served by callvaultd (pid {}): unmount it before rotate-key",
                paths.root.display(),
                pid.trim()
            ),
        ));
    }
    let _ = f.set_len(0);
    let _ = write!(f, "{}", std::process::id());
    Ok(f)
}

pub fn run(args: &RotateKeyArgs) -> Result<(), Failure> {
    let paths = VolumePaths::new(&args.volume);
    volume::read_headers(&args.volume)?;
    let _served = lock_volume(&paths)?;
    let unlock = UnlockArgs {
        unlock_label: args.label.clone(),
        unlock_passphrase_files: args.passphrase_files.clone(),
        unlock_keyfiles: args.keyfiles.clone(),
    };
    let mut auth = key_change::authorize(&args.volume, &unlock)?;
    let volume_dir = auth.volume.clone();
    let upgrade_event =
        auth.upgraded.clone().map(|label| auth.event("upgrade-header", Some(&label), Some(0), Outcome::Ok));
    let begin = auth.event("rotate-key-begin", None, None, Outcome::Ok);
    let done_event = auth.event("rotate-key", None, None, Outcome::Ok);
    let (header, current) = auth.parts();
    let layouts = callvault::rotation::Layouts::same(header.layout());
    let current = MasterKey::copy_from(current.expose_secret());
    let (old, new) = match header.previous_master(&current, &paths.header())? {
        Some(previous) => {
            eprintln!("rotate-key: resuming the rotation to key generation {}", header.generation);
            (previous, current)
        }
        None => {
            let new = MasterKey::generate()?;
            let mut events: Vec<_> = upgrade_event.into_iter().collect();
            let mut begin = begin;
            begin.detail.reason = Some(format!("to key generation {}", header.generation + 1));
            events.push(begin);
            record_events(&volume_dir, events).map_err(|e| {
                Failure::new(
                    exitcode::AUDIT_UNAVAILABLE,
                    format!("the rotation could not be recorded in the audit journal, so nothing was changed: {e}"),
                )
            })?;
            header.begin_rotation(&current, &new)?;
            volume::write_header(&paths, header, &new)?;
            (current, new)
        }
    };
    let (old_keys, new_keys) = (VolumeKeys::derive(old), VolumeKeys::derive(new));
    let mut progress = crate::progress::RotateProgress::new();
    let stats =
        callvault::rotation::rotate_tree(&paths.data(), &old_keys, &new_keys, layouts, &mut progress).map_err(|e| {
            Failure::new(
                exitcode::FAILURE,
                format!("{e}\nhint: the volume stays consistent; run rotate-key again to resume"),
            )
        })?;
    let summary = format!(
        "{} files ({} bytes), {} names, {} links, {} xattrs re-encrypted in {:.1} s",
        stats.files,
        stats.bytes,
        stats.names,
        stats.symlinks,
        stats.xattrs,
        stats.elapsed.as_secs_f64()
    );
    let mut done = done_event;
    done.detail.reason = Some(format!("key generation {}: {summary}", header.generation));
    record_events(&volume_dir, vec![done]).map_err(|e| {
        Failure::new(
            exitcode::AUDIT_UNAVAILABLE,
            format!(
                "the finished rotation could not be recorded; run rotate-key again once the journal can be written: {e}"
            ),
        )
    })?;
    header.finish_rotation();
    volume::write_header(&paths, header, new_keys.master())?;
    println!("rotated the master key of {} to generation {}: {summary}", paths.root.display(), header.generation);
    Ok(())
}
