//! Request files: how a keytool command gets its event recorded while the daemon holds the journal.
//!
//! The command writes one event as JSON to `audit/requests/<nanos>-<pid>.json`
//! (via a `.tmp` name and a rename, synced); the journal's writer appends it,
//! with the uid that owns the file as `requested_by_uid`, and then deletes
//! the file. Only `audit_read` and `key_admin` events are accepted this way;
//! anything else is renamed to `*.rejected` and left for the operator.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::JournalError;
use super::record::{Event, EventKind};
use super::segment::fsync_dir;

/// Directory of pending requests inside the audit directory.
pub const REQUESTS_DIR: &str = "requests";

/// Largest request file read; bigger ones are rejected.
const MAX_REQUEST: u64 = 64 * 1024;

/// Kinds a request file may carry.
pub fn accepted_by_request(kind: EventKind) -> bool {
    matches!(kind, EventKind::AuditRead | EventKind::KeyAdmin)
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

/// A request waiting to be recorded.
pub(crate) struct Request {
    pub path: PathBuf,
    pub event: Event,
}

/// Pending requests, oldest first. Unreadable or unacceptable files are
/// renamed to `*.rejected` so they are looked at once, not on every pass.
pub(crate) fn pending(audit_dir: &Path) -> Vec<Request> {
    let dir = audit_dir.join(REQUESTS_DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    names.sort();
    let mut out = Vec::new();
    for path in names {
        match read_request(&path) {
            Some(event) => out.push(Request { path, event }),
            None => {
                let mut rejected = path.clone().into_os_string();
                rejected.push(".rejected");
                let _ = std::fs::rename(&path, rejected);
            }
        }
    }
    out
}

fn read_request(path: &Path) -> Option<Event> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_REQUEST {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let mut ev: Event = serde_json::from_slice(&bytes).ok()?;
    if !accepted_by_request(ev.kind) {
        return None;
    }
    // Whoever wrote the file is who asked; the actor inside is a claim.
    ev.detail.requested_by_uid = Some(meta.uid());
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
}
