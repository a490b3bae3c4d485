//! Request files: how a keytool command gets its event recorded while the daemon holds the journal.
//!
//! The command writes one event as JSON to `audit/requests/<nanos>-<pid>.json`
//! (via a `.tmp` name and a rename, synced); the journal's writer claims it
//! by renaming it to `*.json.recording`, reads it through a descriptor opened
//! with `O_NOFOLLOW | O_NONBLOCK` (a regular file with one link, at most
//! 64 KiB, read with that cap), appends it with the uid owning the opened
//! file as `requested_by_uid`, and then deletes it. A claimed file is never
//! read again, so a request whose deletion fails is not recorded twice. Only
//! `audit_read`, `key_admin`, `unlock` and `unlock_failed` events (a keytool
//! command unlocking the volume) are accepted this way; anything else
//! (and symlinks, FIFOs, devices, hard links, oversized files) is renamed to
//! `*.rejected` and left for the operator.
//!
//! The directory is mode 1730: group members may create files in it but not
//! list it, and the sticky bit stops one member from deleting or replacing
//! another's request before it is recorded.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::JournalError;
use super::record::{Event, EventKind};
use super::segment::fsync_dir;

/// Directory of pending requests inside the audit directory.
pub const REQUESTS_DIR: &str = "requests";

/// Largest request file read; bigger ones are rejected.
const MAX_REQUEST: u64 = 64 * 1024;

/// Mode of the requests directory: sticky, owner rwx, group write+search.
pub const REQUESTS_DIR_MODE: u32 = 0o1730;

/// Suffix of a request the writer has claimed (renamed before reading).
const CLAIMED: &str = ".recording";

/// Kinds a request file may carry.
pub fn accepted_by_request(kind: EventKind) -> bool {
    matches!(kind, EventKind::AuditRead | EventKind::KeyAdmin | EventKind::Unlock | EventKind::UnlockFailed)
}

/// Queues `ev` for the live writer. Returns the request file's path.
pub fn write_request(audit_dir: &Path, ev: &Event) -> Result<PathBuf, JournalError> {
    if !accepted_by_request(ev.kind) {
        return Err(JournalError::InvalidOption(format!(
            "event {} cannot be recorded through a request file",
            ev.kind
        )));
    }
    let dir = audit_dir.join(REQUESTS_DIR);
    let nanos = super::time::unix_nanos(std::time::SystemTime::now());
    let name = format!("{nanos:020}-{}.json", std::process::id());
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    let json = serde_json::to_vec(ev).map_err(|e| JournalError::InvalidOption(e.to_string()))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(|e| JournalError::io(&tmp, "create request file", e))?;
    f.write_all(&json).and_then(|()| f.sync_all()).map_err(|e| JournalError::io(&tmp, "write request file", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, "rename request file", e))?;
    fsync_dir(&dir)?;
    Ok(path)
}

/// A request waiting to be recorded, already claimed.
pub(crate) struct Request {
    /// The claimed file (`*.json.recording`).
    pub path: PathBuf,
    /// The name it was queued under, to give it back if recording fails.
    pub queued_as: PathBuf,
    pub event: Event,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.to_path_buf().into_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

/// Pending requests, oldest first, each claimed (renamed to
/// `*.json.recording`) before it is read, so it is read only once.
/// Unreadable or unacceptable files are renamed to `*.rejected` so they are
/// looked at once, not on every pass. A file that cannot be claimed is left
/// alone (and not recorded).
pub(crate) fn pending(audit_dir: &Path) -> Vec<Request> {
    let dir = audit_dir.join(REQUESTS_DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    names.sort();
    let mut out = Vec::new();
    for queued_as in names {
        let path = with_suffix(&queued_as, CLAIMED);
        if std::fs::rename(&queued_as, &path).is_err() {
            continue;
        }
        match read_request(&path) {
            Some(event) => out.push(Request { path, queued_as, event }),
            None => {
                let _ = std::fs::rename(&path, with_suffix(&queued_as, ".rejected"));
            }
        }
    }
    out
}

/// Gives a claimed request back (its record could not be written), so the
/// next pass tries again.
pub(crate) fn unclaim(req: &Request) {
    let _ = std::fs::rename(&req.path, &req.queued_as);
}

/// Sets the sticky bit (mode 1730) on the requests directory of a journal
/// made before it was used; best effort (the directory may not be ours).
pub(crate) fn make_sticky(audit_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let dir = audit_dir.join(REQUESTS_DIR);
    if let Ok(m) = std::fs::symlink_metadata(&dir) {
        if m.is_dir() && m.permissions().mode() & 0o1000 == 0 {
            let mode = (m.permissions().mode() & 0o777) | 0o1000;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
        }
    }
}

fn read_request(path: &Path) -> Option<Event> {
    use nix::fcntl::OFlag;
    // O_NOFOLLOW: a symlink (to /dev/zero, to a file of another user) is
    // refused; O_NONBLOCK: opening a FIFO does not wait for a writer.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .ok()?;
    // Everything below is about the opened file, not whatever the name
    // points to now.
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_REQUEST || meta.nlink() != 1 {
        return None;
    }
    let mut bytes = Vec::with_capacity(MAX_REQUEST as usize + 1);
    (&f).take(MAX_REQUEST + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > MAX_REQUEST {
        return None;
    }
    let mut ev: Event = serde_json::from_slice(&bytes).ok()?;
    if !accepted_by_request(ev.kind) {
        return None;
    }
    // Whoever wrote the file is who asked; the actor inside is a claim,
    // written by any group member: its command line is masked here too.
    ev.detail.requested_by_uid = Some(meta.uid());
    ev.actor.cmdline = ev.actor.cmdline.map(|c| super::actor::mask_pans(&c));
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Actor;

    #[test]
    fn requests_round_trip_and_bad_ones_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(REQUESTS_DIR)).unwrap();
        let ev = Event::new(EventKind::AuditRead, Actor::current_process()).path("/x");
        write_request(dir.path(), &ev).unwrap();
        assert!(write_request(dir.path(), &Event::new(EventKind::Open, Actor::default())).is_err());
        std::fs::write(dir.path().join(REQUESTS_DIR).join("zz.json"), b"\xff garbage").unwrap();
        let p = pending(dir.path());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].event.path.as_deref(), Some("/x"));
        assert!(p[0].event.detail.requested_by_uid.is_some());
        assert!(dir.path().join(REQUESTS_DIR).join("zz.json.rejected").exists());
    }

    #[test]
    fn card_numbers_in_a_requested_actor_are_masked() {
        let (dir, _r) = req_dir();
        let mut a = Actor::current_process();
        a.cmdline = Some(vec!["x".into(), "4111111111111111".into()]);
        write_request(dir.path(), &Event::new(EventKind::AuditRead, a)).unwrap();
        let p = pending(dir.path());
        assert_eq!(p[0].event.actor.cmdline.as_deref().unwrap(), ["x", "************1111"]);
    }

    fn req_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join(REQUESTS_DIR);
        std::fs::create_dir(&r).unwrap();
        (dir, r)
    }

    #[test]
    fn symlinks_fifos_and_hard_links_are_rejected_without_reading_them() {
        let (dir, r) = req_dir();
        // A symlink to /dev/zero would be an endless read without O_NOFOLLOW.
        std::os::unix::fs::symlink("/dev/zero", r.join("a.json")).unwrap();
        // A FIFO would block the writer forever without O_NONBLOCK.
        nix::unistd::mkfifo(&r.join("b.json"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // A hard link would attribute the request to another file's owner.
        let ev = Event::new(EventKind::AuditRead, Actor::current_process());
        let real = write_request(dir.path(), &ev).unwrap();
        std::fs::hard_link(&real, r.join("c.json")).unwrap();
        let p = pending(dir.path());
        assert!(p.is_empty(), "{}", p.len());
        for n in ["a", "b", "c"] {
            assert!(r.join(format!("{n}.json.rejected")).exists(), "{n}");
        }
    }

    #[test]
    fn a_claimed_request_is_never_read_again_even_if_its_removal_fails() {
        let (dir, _r) = req_dir();
        let ev = Event::new(EventKind::AuditRead, Actor::current_process());
        write_request(dir.path(), &ev).unwrap();
        let first = pending(dir.path());
        assert_eq!(first.len(), 1);
        // The writer recorded it but could not delete it: the next pass must not see it.
        assert!(first[0].path.exists());
        assert!(pending(dir.path()).is_empty());
        // A request whose record failed is given back and read once more.
        unclaim(&first[0]);
        assert_eq!(pending(dir.path()).len(), 1);
    }

    #[test]
    fn an_old_requests_directory_gets_the_sticky_bit() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, r) = req_dir();
        std::fs::set_permissions(&r, std::fs::Permissions::from_mode(0o730)).unwrap();
        make_sticky(dir.path());
        assert_eq!(std::fs::metadata(&r).unwrap().permissions().mode() & 0o7777, REQUESTS_DIR_MODE);
    }
}
