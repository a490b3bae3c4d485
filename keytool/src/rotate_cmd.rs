//! `callvault-keytool rotate-key`: a new master key, and every file, name and link re-encrypted under it.
//!
//! Order (each step durable before the next, so a crash or SIGKILL anywhere
//! leaves a volume that `rotate-key` finishes and nothing unreadable):
//!
//! 1. the volume lock (`callvault.lock`, as callvaultd takes it): the volume
//!    stays unmounted throughout;
//! 2. unlock; if the header already records a rotation in progress, resume
//!    it with the two keys it holds;
//! 3. otherwise record a `rotate-key-begin` journal event, then write the
//!    header with the new master key sealed to every slot, the generation +1
//!    and the previous key kept (`VolumeHeader::begin_rotation`): from here
//!    any operator's slot opens the new key and the header gives the old;
//! 4. re-encrypt the tree (`callvault::rotation::rotate_tree`, resumable);
//! 5. drop the previous key from the header and record `rotate-key`.
//!
//! Afterwards the previous master key decrypts nothing in the volume, and
//! header backups made before the rotation are refused by `header restore`
//! (their key generation is lower). The audit journal's keys are not touched.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use callvault::exitcode;
use callvault::header::AnyHeader;
use callvault::journal::Outcome;
use callvault::keys::VolumeKeys;
use callvault::secret::MasterKey;
use callvault::volume::{self, VolumePaths};

use crate::error::Failure;

/// Holds the volume's lock file exclusively, as a serving daemon does.
fn lock_volume(paths: &VolumePaths) -> Result<nix_flock::Locked, Failure> {
    nix_flock::lock(&paths.lock()).map_err(|held_by| {
        Failure::new(
            exitcode::VOLUME_IN_USE,
            format!(
                "volume {} is in use (callvaultd pid {held_by} serves it): unmount it before rotate-key",
                paths.root.display()
            ),
        )
    })
}

/// The flock on `callvault.lock`, kept in one place.
mod nix_flock {
    use super::*;

    pub struct Locked(#[allow(dead_code, reason = "held for its lock, released on drop")] rustix::fs::OwnedFd);

    pub fn lock(path: &Path) -> Result<Locked, String> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("? ({}: {e})", path.display()))?;
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(pid.trim().to_string());
        }
        let _ = f.set_len(0);
        let _ = write!(f, "{}", std::process::id());
        Ok(Locked(File::into(f)))
    }
}

pub struct RotateArgs<'a> {
    pub volume: &'a Path,
    pub unlock: &'a crate::unlock::UnlockArgs,
}

pub fn run(args: &RotateArgs<'_>) -> Result<(), Failure> {
    let paths = VolumePaths::new(args.volume);
    volume::read_headers(args.volume)?;
    let _lock = lock_volume(&paths)?;
    let unlocked = crate::unlock::unlock(args.volume, args.unlock)?;
    let unlocked = crate::unlock::upgraded(args.volume, unlocked, args.unlock)?;
    let AnyHeader::V2(mut header) = unlocked.header.clone() else {
        return Err(Failure::new(exitcode::FAILURE, "the header is still format 1 after the upgrade"));
    };
    let path = unlocked.header_path.clone();
    let current = MasterKey::copy_from(unlocked.keys.master().expose_secret());
    let (old, new) = match header.previous_master(&current, &path)? {
        Some(previous) => {
            eprintln!("rotate-key: resuming the rotation to key generation {}", header.generation);
            (previous, current)
        }
        None => {
            let new = MasterKey::generate()?;
            crate::unlock::record_admin(args.volume, &unlocked, "rotate-key-begin", None, Outcome::Ok, None)?;
            header.begin_rotation(&current, &new)?;
            volume::write_header(&paths, &mut header, &new)?;
            (current, new)
        }
    };
    let old_keys = VolumeKeys::derive(old);
    let new_keys = VolumeKeys::derive(new);
    let mut progress = crate::progress::Progress::new();
    let stats = callvault::rotation::rotate_tree(&paths.data(), &old_keys, &new_keys, &mut progress)
        .map_err(|e| Failure::new(exitcode::FAILURE, format!("{e}\nhint: fix the cause and run rotate-key again: it resumes")))?;
    header.finish_rotation();
    volume::write_header(&paths, &mut header, new_keys.master())?;
    let summary = format!(
        "{} files ({} bytes), {} names, {} links re-encrypted in {:.1} s",
        stats.files,
        stats.bytes,
        stats.names,
        stats.symlinks,
        stats.elapsed.as_secs_f64()
    );
    crate::unlock::record_admin(args.volume, &unlocked, "rotate-key", None, Outcome::Ok, Some(summary.clone()))?;
    println!("rotated the master key of {} to generation {}: {summary}", args.volume.display(), header.generation);
    Ok(())
}
