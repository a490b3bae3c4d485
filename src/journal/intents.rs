//! Dangling intents: operations the previous session announced (`intent`) but never reported the outcome of.
//!
//! The daemon writes an `intent` record before a mutating operation takes
//! effect and an outcome record of the same kind naming it in
//! `detail.intent`. A crash between the two leaves an intent without an
//! outcome; at the next mount the daemon asks [`dangling_intents`] for them
//! and records an `interrupted` outcome for each (with what it found at the
//! path in `detail.found`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use memchr::memmem::Finder;

use super::JournalError;
use super::actor::Actor;
use super::record::{EventKind, Outcome, Record};
use super::segment::{LineRead, MAX_LINE, Segment, list_segments, read_line_capped};

/// How many segments, newest first, are searched for the previous session's
/// `mount` record (and then read): 4, that is 256 MiB at the default
/// segment size. A session longer than that is read from the start of the
/// oldest of these segments; an intent older than that is not found.
pub const INTENT_SCAN_SEGMENTS: usize = 4;

/// Most dangling intents returned; more set [`DanglingIntents::more`].
pub const MAX_DANGLING: usize = 10_000;

/// An intent record with no outcome record naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DanglingIntent {
    /// Seq of the intent record: put it in the `interrupted` record's `detail.intent`.
    pub seq: u64,
    pub kind: EventKind,
    pub path: Option<String>,
    pub path2: Option<String>,
    /// The paths are written escaped (`detail.escaped`): see [`Detail::escaped`](super::Detail::escaped).
    pub escaped: bool,
    pub actor: Actor,
}

/// What [`dangling_intents`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DanglingIntents {
    /// Oldest first.
    pub intents: Vec<DanglingIntent>,
    /// Seq of the `mount` record the search started at; `None` when none was
    /// found in the last [`INTENT_SCAN_SEGMENTS`] segments (then they were
    /// read whole).
    pub since_mount: Option<u64>,
    /// More than [`MAX_DANGLING`] intents were open; only the oldest are listed.
    pub more: bool,
}

/// The intents of the previous session that have no outcome record: every
/// `intent` record after the last `mount` record of the journal (searching
/// back at most [`INTENT_SCAN_SEGMENTS`] segments) that no later record
/// names in `detail.intent`.
///
/// Call it right after [`Journal::open`](super::Journal::open) and before
/// recording the new session's `mount`: after that mount, the "last mount"
/// is the new one and nothing is dangling. Reads finished files only
/// through capped lines; lines that do not parse are skipped (`verify`
/// judges them).
pub fn dangling_intents(audit_dir: &Path) -> Result<DanglingIntents, JournalError> {
    let segments = list_segments(audit_dir)?;
    let mount = Finder::new(b"\"event\":\"mount\"");
    let intent = Finder::new(b"\"intent\"");
    // Newest segment holding a mount record, within the bound.
    let window = &segments[segments.len().saturating_sub(INTENT_SCAN_SEGMENTS)..];
    let mut start = 0;
    for (i, seg) in window.iter().enumerate().rev() {
        let mut found = false;
        each_line(seg, &mut |line| found |= mount.find(line).is_some())?;
        if found {
            start = i;
            break;
        }
    }
    let mut open: BTreeMap<u64, DanglingIntent> = BTreeMap::new();
    let mut out = DanglingIntents::default();
    for seg in &window[start..] {
        each_line(seg, &mut |line| {
            if mount.find(line).is_none() && intent.find(line).is_none() {
                return;
            }
            let Ok(rec) = Record::parse(line) else { return };
            if rec.event == EventKind::Mount {
                open.clear();
                out.more = false;
                out.since_mount = Some(rec.seq);
            } else if rec.outcome == Outcome::Intent {
                if open.len() < MAX_DANGLING {
                    let actor = rec.actor();
                    open.insert(
                        rec.seq,
                        DanglingIntent {
                            seq: rec.seq,
                            kind: rec.event,
                            escaped: rec.detail.escaped == Some(true),
                            path: rec.path,
                            path2: rec.path2,
                            actor,
                        },
                    );
                } else {
                    out.more = true;
                }
            } else if let Some(i) = rec.detail.intent {
                open.remove(&i);
            }
        })?;
    }
    out.intents = open.into_values().collect();
    Ok(out)
}

/// Calls `f` with every complete line of a segment (without its newline);
/// over-long lines are skipped.
fn each_line(seg: &Segment, f: &mut dyn FnMut(&[u8])) -> Result<(), JournalError> {
    let file = File::open(&seg.path).map_err(|e| JournalError::io(&seg.path, "open", e))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    loop {
        match read_line_capped(&mut r, &mut buf, MAX_LINE).map_err(|e| JournalError::io(&seg.path, "read", e))? {
            LineRead::Eof => return Ok(()),
            LineRead::TooLong { .. } => {}
            LineRead::Line { .. } => {
                if let Some(line) = buf.strip_suffix(b"\n") {
                    f(line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Detail, Event, Journal, JournalOptions, init_journal};
    use std::time::Duration;

    fn who(uid: u32) -> Actor {
        Actor { uid, user: Some(format!("u{uid}")), pid: 77, ..Actor::default() }
    }

    fn intent(kind: EventKind, path: &str) -> Event {
        Event::new(kind, who(1000)).outcome(Outcome::Intent).path(path)
    }

    fn outcome(kind: EventKind, path: &str, of: u64, o: Outcome) -> Event {
        Event::new(kind, who(1000)).outcome(o).path(path).detail(Detail { intent: Some(of), ..Detail::default() })
    }

    fn opts(segment_size: u64) -> JournalOptions {
        JournalOptions { lock_wait: Duration::ZERO, segment_size, ..JournalOptions::default() }
    }

    #[test]
    fn intents_of_the_previous_session_without_outcome_are_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        init_journal(&dir).unwrap();
        // An older session with an intent that was never completed: resolved
        // by the mount after it, so not reported now.
        let j = Journal::open(&dir, opts(1 << 20)).unwrap();
        j.append(Event::new(EventKind::Mount, who(0))).unwrap();
        j.append(intent(EventKind::Unlink, "/old")).unwrap();
        j.close().unwrap();
        // The previous session: three intents, one completed ok, one failed,
        // one (a rename) cut by a crash.
        let j = Journal::open(&dir, opts(1 << 20)).unwrap();
        let mount = j.append(Event::new(EventKind::Mount, who(0))).unwrap();
        let a = j.append(intent(EventKind::Unlink, "/team-a/c1.wav")).unwrap();
        let b = j.append(intent(EventKind::Create, "/team-a/c2.wav")).unwrap();
        let c =
            j.append(Event::new(EventKind::Rename, who(1001)).outcome(Outcome::Intent).path("/x").path2("/y")).unwrap();
        j.append(outcome(EventKind::Unlink, "/team-a/c1.wav", a, Outcome::Ok)).unwrap();
        j.append(outcome(EventKind::Create, "/team-a/c2.wav", b, Outcome::errno(17))).unwrap();
        j.close().unwrap();
        let _j = Journal::open(&dir, opts(1 << 20)).unwrap();
        let d = dangling_intents(&dir).unwrap();
        assert_eq!(d.since_mount, Some(mount));
        assert!(!d.more);
        assert_eq!(d.intents.len(), 1, "{d:?}");
        let i = &d.intents[0];
        assert_eq!(
            (i.seq, i.kind, i.path.as_deref(), i.path2.as_deref()),
            (c, EventKind::Rename, Some("/x"), Some("/y"))
        );
        assert_eq!((i.actor.uid, i.actor.user.as_deref()), (1001, Some("u1001")));
    }

    #[test]
    fn the_search_spans_segments_back_to_the_mount_and_no_further_than_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        init_journal(&dir).unwrap();
        // Tiny segments: every few records a new one.
        let j = Journal::open(&dir, opts(600)).unwrap();
        j.append(intent(EventKind::Mkdir, "/before-mount")).unwrap();
        j.append(Event::new(EventKind::Mount, who(0))).unwrap();
        let first = j.append(intent(EventKind::Mkdir, "/d0")).unwrap();
        for i in 1..6 {
            j.append(intent(EventKind::Mkdir, &format!("/d{i}"))).unwrap();
        }
        j.close().unwrap();
        assert!(list_segments(&dir).unwrap().len() >= 3);
        let d = dangling_intents(&dir).unwrap();
        assert!(d.since_mount.is_some(), "{d:?}");
        assert_eq!(d.intents.len(), 6);
        assert_eq!(d.intents[0].seq, first);
        // Many segments after the mount: only the last INTENT_SCAN_SEGMENTS are read.
        let j = Journal::open(&dir, opts(600)).unwrap();
        for i in 0..40 {
            j.append(intent(EventKind::Mkdir, &format!("/late{i}"))).unwrap();
        }
        j.close().unwrap();
        let d = dangling_intents(&dir).unwrap();
        assert_eq!(d.since_mount, None);
        assert!(!d.intents.is_empty() && d.intents.len() < 46, "{}", d.intents.len());
        assert!(d.intents.iter().all(|i| i.path.as_deref().unwrap().starts_with("/late")));
    }
}
