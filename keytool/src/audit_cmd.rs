//! `callvault-keytool audit show|verify|follow` and the audit part of `init`, free of clap.
//!
//! None of these needs the master key or a mount. Each read of the journal is
//! itself recorded as an `audit_read` event, before anything is shown (show,
//! follow) or right after the check (verify, so that it sees the journal as
//! it was found). How it is recorded: if no writer holds the journal lock,
//! this process opens the journal, appends the event and closes it (which
//! seals); if callvaultd holds it, the event goes into a request file in
//! `VOLUME/audit/requests/` that the daemon records within a second. If
//! neither works, the command refuses to show anything.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use callvault::journal::{
    Actor, AuditorKey, Checkpoint, Detail, Event, EventKind, Filter, Format, Journal, JournalError, JournalOptions,
    Lines, Outcome, Record, Tail, VerifyError, VerifyReport, init_journal, render_header, render_record, write_request,
};

/// The journal directory of a volume.
pub fn audit_dir(volume: &Path) -> PathBuf {
    volume.join("audit")
}

/// Creates the volume's audit journal and writes the auditor's verification
/// key to `key_file` (a new file, mode 0400). Returns the journal id.
/// The key file is created first, so an existing file stops everything
/// before the journal is made.
pub fn init_audit(volume: &Path, key_file: &Path) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(key_file)
        .map_err(|e| format!("cannot create audit key file {}: {e}", key_file.display()))?;
    let key = match init_journal(&audit_dir(volume)) {
        Ok(k) => k,
        Err(e) => {
            drop(f);
            let _ = std::fs::remove_file(key_file);
            return Err(e.to_string());
        }
    };
    key.write_into(&mut f, key_file).map_err(|e| e.to_string())?;
    Ok(key.journal_id_hex())
}

/// Builds a filter from the command-line options (`--user`, `--path`,
/// `--event`, `--outcome`, `--since`, `--until`); the message names the bad option.
pub fn filter_with_outcome(
    user: Option<&str>,
    path: Option<&str>,
    event: Option<&str>,
    outcome: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<Filter, String> {
    let mut f = Filter::new();
    if let Some(u) = user {
        f = f.user(u);
    }
    if let Some(p) = path {
        f = f.path(p)?;
    }
    if let Some(e) = event {
        f = f.event(e)?;
    }
    if let Some(o) = outcome {
        f = f.outcome(o)?;
    }
    if let Some(s) = since {
        f = f.since(s)?;
    }
    if let Some(u) = until {
        f = f.until(u)?;
    }
    Ok(f)
}

/// Prints the records that match `filter`, oldest first. Returns how many.
/// Lines that are not valid records are skipped: `show` reads, `verify` judges.
pub fn show(volume: &Path, filter: &Filter, format: Format, out: &mut dyn Write) -> Result<usize, String> {
    let dir = audit_dir(volume);
    record_read(volume, "show").map_err(|e| refused(&e))?;
    let mut lines = Lines::open(&dir).map_err(|e| e.to_string())?;
    let pre = filter.prefilter();
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let io_err = |e: std::io::Error| format!("cannot write output: {e}");
    if let Some(h) = render_header(format) {
        out.write_all(h.as_bytes()).map_err(io_err)?;
    }
    let mut shown = 0;
    let mut buf = Vec::new();
    while let Some(info) = lines.read_line(&mut buf).map_err(|e| e.to_string())? {
        if !info.complete || !pre.may_match(&buf) {
            continue;
        }
        let Ok(rec) = Record::parse(&buf) else {
            continue;
        };
        if filter.matches(&rec) {
            render_record(format, &rec, &buf, &mut out).map_err(io_err)?;
            shown += 1;
        }
    }
    out.flush().map_err(io_err)?;
    Ok(shown)
}

/// Parses a `--since` checkpoint token; the message is for a usage error.
pub fn parse_checkpoint(token: &str) -> Result<Checkpoint, String> {
    token.parse::<Checkpoint>().map_err(|e| format!("--since: {e}"))
}

/// Verifies the journal with the auditor key, then records the read; with
/// `since`, also proves the journal extends that checkpoint (see
/// `callvault::journal::verify_since`). `Display` of the error is one line
/// naming the first bad seq and what is wrong; `VerifyError::exit_code`
/// gives the process status.
pub fn verify_since(volume: &Path, key_file: &Path, since: Option<Checkpoint>) -> Result<VerifyReport, VerifyError> {
    let key = AuditorKey::read_from(key_file).map_err(VerifyError::BadKeyFile)?;
    let result = callvault::journal::verify_since(&audit_dir(volume), &key, since);
    let recorded = record_read(volume, "verify");
    match (result, recorded) {
        (Ok(report), Ok(())) => Ok(report),
        (Ok(_), Err(error)) => Err(VerifyError::Unrecorded { error }),
        // A failed check matters more than a failed record of it.
        (Err(e), _) => Err(e),
    }
}

/// Prints records appended from now on that match `filter`, until `stop`
/// returns true (checked every 200 ms). Returns how many were printed.
pub fn follow(
    volume: &Path,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> Result<usize, String> {
    let dir = audit_dir(volume);
    // Start at the end first, so our own audit_read shows up.
    let mut tail = Tail::at_end(&dir).map_err(|e| e.to_string())?;
    record_read(volume, "follow").map_err(|e| refused(&e))?;
    let io_err = |e: std::io::Error| format!("cannot write output: {e}");
    if let Some(h) = render_header(format) {
        out.write_all(h.as_bytes()).map_err(io_err)?;
        out.flush().map_err(io_err)?;
    }
    let pre = filter.prefilter();
    let mut shown = 0;
    let mut write_err: Option<std::io::Error> = None;
    loop {
        let mut on_line = |line: &[u8]| {
            if write_err.is_some() || !pre.may_match(line) {
                return;
            }
            let Ok(rec) = Record::parse(line) else { return };
            if filter.matches(&rec) {
                match render_record(format, &rec, line, out) {
                    Ok(()) => shown += 1,
                    Err(e) => write_err = Some(e),
                }
            }
        };
        tail.poll(&mut on_line).map_err(|e| e.to_string())?;
        if let Some(e) = write_err.take() {
            return Err(io_err(e));
        }
        out.flush().map_err(io_err)?;
        if stop() {
            return Ok(shown);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The event a key administration command records (`add-keyslot`,
/// `remove-keyslot`, `change-passphrase`, ...), with the slot it touched.
pub fn key_admin_event(action: &str, slot: Option<u32>, outcome: Outcome) -> Event {
    Event::new(EventKind::KeyAdmin, Actor::current_process()).outcome(outcome).detail(Detail {
        action: Some(action.to_string()),
        slot,
        ..Detail::default()
    })
}

/// Records an event from keytool: directly when no writer holds the
/// journal, otherwise through a request file for the running daemon.
pub fn record_event(volume: &Path, ev: Event) -> Result<(), JournalError> {
    let dir = audit_dir(volume);
    let opts = JournalOptions { lock_wait: Duration::from_millis(200), ..JournalOptions::default() };
    match Journal::open(&dir, opts) {
        Ok(j) => {
            j.append(ev)?;
            j.close()
        }
        Err(JournalError::Locked { .. }) => write_request(&dir, &ev).map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Records several events from keytool, in order: in one append when no
/// writer holds the journal, otherwise as one request file each.
pub fn record_events(volume: &Path, events: Vec<Event>) -> Result<(), JournalError> {
    let dir = audit_dir(volume);
    let opts = JournalOptions { lock_wait: Duration::from_millis(200), ..JournalOptions::default() };
    match Journal::open(&dir, opts) {
        Ok(j) => {
            j.append_all(events)?;
            j.close()
        }
        Err(JournalError::Locked { .. }) => events.iter().try_for_each(|ev| write_request(&dir, ev).map(|_| ())),
        Err(e) => Err(e),
    }
}

fn record_read(volume: &Path, action: &str) -> Result<(), JournalError> {
    let ev = Event::new(EventKind::AuditRead, Actor::current_process())
        .detail(Detail { action: Some(action.to_string()), ..Detail::default() });
    record_event(volume, ev)
}

fn refused(e: &JournalError) -> String {
    format!("this read of the audit journal could not be recorded, so it was refused: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use callvault::journal::{EXIT_TAMPERED, EXIT_WRONG_KEY, ProblemKind, segment_name};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn person(user: &str, uid: u32, pid: u32) -> Actor {
        Actor {
            uid,
            user: Some(user.into()),
            gid: uid,
            pid,
            exe: Some("/usr/bin/play".into()),
            cmdline: Some(vec!["play".into(), "/mnt/calls/team-a/c1.wav".into()]),
            ..Actor::default()
        }
    }

    /// A volume whose journal holds the scenario the issue describes.
    fn scenario() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let key = tmp.path().join("audit.key");
        init_audit(&vol, &key).unwrap();
        let j = Journal::open(&audit_dir(&vol), JournalOptions::default()).unwrap();
        let alice = person("alice", 1000, 2001);
        let bob = person("bob", 1001, 2002);
        j.append(Event::new(EventKind::Mount, Actor::current_process())).unwrap();
        j.append(Event::new(EventKind::Open, alice.clone()).path("/team-a/c1.wav").detail(Detail {
            flags: Some("O_RDONLY".into()),
            access: Some("read".into()),
            fh: Some(1),
            ..Detail::default()
        }))
        .unwrap();
        j.append(Event::new(EventKind::Open, alice.clone()).path("/team-a/c2.wav")).unwrap();
        j.append(Event::new(EventKind::Close, alice).path("/team-a/c1.wav").detail(Detail {
            fh: Some(1),
            bytes_read: Some(48_044),
            bytes_written: Some(0),
            ..Detail::default()
        }))
        .unwrap();
        j.append(Event::new(EventKind::Denied, bob).outcome(Outcome::errno(13)).path("/team-a/c1.wav").detail(
            Detail {
                op: Some("open".into()),
                access: Some("read".into()),
                missing_right: Some("read".into()),
                ..Detail::default()
            },
        ))
        .unwrap();
        j.close().unwrap();
        (tmp, vol, key)
    }

    fn audit_reads(vol: &Path) -> usize {
        callvault::journal::records(&audit_dir(vol))
            .unwrap()
            .filter(|r| r.as_ref().is_ok_and(|r| r.event == EventKind::AuditRead))
            .count()
    }

    #[test]
    fn init_writes_a_0400_key_and_refuses_to_overwrite_it() {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("k");
        let id = init_audit(tmp.path(), &key).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o400);
        let other = tempfile::tempdir().unwrap();
        assert!(init_audit(other.path(), &key).is_err(), "existing key file");
        assert!(!other.path().join("audit").join(segment_name(1)).exists());
        assert!(init_audit(tmp.path(), &tmp.path().join("k2")).is_err(), "existing journal");
        assert!(!tmp.path().join("k2").exists());
    }

    #[test]
    fn show_by_path_as_json_lists_the_open_close_and_denied_open() {
        let (_t, vol, _key) = scenario();
        let f = filter_with_outcome(None, Some("/team-a/c1.wav"), None, None, None, None).unwrap();
        let mut out = Vec::new();
        assert_eq!(show(&vol, &f, Format::Json, &mut out).unwrap(), 3);
        let text = String::from_utf8(out).unwrap();
        let recs: Vec<Record> = text.lines().map(|l| Record::parse(l.as_bytes()).unwrap()).collect();
        let summary: Vec<(EventKind, Option<&str>, &str)> =
            recs.iter().map(|r| (r.event, r.user.as_deref(), r.outcome.as_str())).collect();
        assert_eq!(
            summary,
            [
                (EventKind::Open, Some("alice"), "ok"),
                (EventKind::Close, Some("alice"), "ok"),
                (EventKind::Denied, Some("bob"), "EACCES")
            ]
        );
        assert_eq!(recs[1].detail.bytes_read, Some(48_044));
        assert_eq!(recs[2].detail.missing_right.as_deref(), Some("read"));
        for r in &recs {
            assert!(r.pid > 0 && r.exe.is_some());
        }
        // json is the record exactly as stored.
        let stored = std::fs::read_to_string(audit_dir(&vol).join(segment_name(1))).unwrap();
        for l in text.lines() {
            assert!(stored.lines().any(|s| s == l));
        }
        assert_eq!(audit_reads(&vol), 1, "the show itself was recorded");
    }

    #[test]
    fn show_table_and_csv_have_headers_and_filters_combine() {
        let (_t, vol, _key) = scenario();
        let f = filter_with_outcome(Some("alice"), Some("/team-a/*"), Some("open"), None, Some("2000-01-01"), None)
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(show(&vol, &f, Format::Table, &mut out).unwrap(), 2);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("SEQ "), "{text}");
        assert!(text.contains("alice(1000)"), "{text}");
        let mut out = Vec::new();
        let f = filter_with_outcome(Some("1001"), None, None, None, None, None).unwrap();
        assert_eq!(show(&vol, &f, Format::Csv, &mut out).unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("seq,ts,event,outcome,uid,user"), "{text}");
        assert!(text.contains(",denied,EACCES,1001,bob,"), "{text}");
        assert!(filter_with_outcome(None, None, Some("opened"), None, None, None).is_err());
        assert!(filter_with_outcome(None, None, None, None, Some("last tuesday"), None).is_err());
    }

    #[test]
    fn verify_passes_then_names_a_flipped_byte_and_a_deleted_line() {
        let (_t, vol, key) = scenario();
        let rep = verify_since(&vol, &key, None).unwrap();
        assert!(rep.records > 5);
        let seg = audit_dir(&vol).join(segment_name(1));
        let orig = std::fs::read(&seg).unwrap();
        let text = String::from_utf8(orig.clone()).unwrap();
        let line_no = text.lines().position(|l| l.contains("\"event\":\"close\"")).unwrap();
        let seq = line_no as u64 + 1;
        // Flip one byte inside the close record (a digit of bytes_read).
        let off = text.find("48044").unwrap();
        let mut flipped = orig.clone();
        flipped[off] = b'9';
        std::fs::write(&seg, &flipped).unwrap();
        let e = verify_since(&vol, &key, None).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_TAMPERED);
        assert!(e.to_string().contains(&format!("seq {seq}: changed")), "{e}");
        assert!(!e.to_string().contains('\n'));
        // Delete that line instead.
        let kept: Vec<&str> = text.lines().enumerate().filter(|(i, _)| *i != line_no).map(|(_, l)| l).collect();
        std::fs::write(&seg, kept.join("\n") + "\n").unwrap();
        let e = verify_since(&vol, &key, None).unwrap_err();
        assert_eq!(e.problem().unwrap().kind, ProblemKind::Missing);
        assert!(e.to_string().contains(&format!("seq {seq}: missing")), "{e}");
    }

    #[test]
    fn verify_prints_a_checkpoint_that_a_restored_copy_does_not_extend() {
        use callvault::journal::EXIT_ROLLED_BACK;
        let (_t, vol, key) = scenario();
        let old = tempfile::tempdir().unwrap();
        let copy = |from: &Path, to: &Path| {
            for e in std::fs::read_dir(from).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    std::fs::write(to.join(p.file_name().unwrap()), std::fs::read(&p).unwrap()).unwrap();
                }
            }
        };
        copy(&audit_dir(&vol), old.path());
        record_event(&vol, key_admin_event("add-keyslot", Some(1), Outcome::Ok)).unwrap();
        let rep = verify_since(&vol, &key, None).unwrap();
        let line = rep.to_string().lines().last().unwrap().to_string();
        let token = line.strip_prefix("checkpoint: ").unwrap().to_string();
        assert!(token.starts_with("cv1-") && !token.contains(' '), "{line}");
        let cp = parse_checkpoint(&token).unwrap();
        verify_since(&vol, &key, Some(cp)).unwrap();
        for e in std::fs::read_dir(audit_dir(&vol)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::remove_file(p).unwrap();
            }
        }
        copy(old.path(), &audit_dir(&vol));
        let e = verify_since(&vol, &key, Some(cp)).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_ROLLED_BACK, "{e}");
        assert!(parse_checkpoint("cv1-12-nothex").unwrap_err().starts_with("--since: checkpoint"));
    }

    #[test]
    fn outcome_filter_is_parsed_and_checked() {
        let (_t, vol, _key) = scenario();
        let f = filter_with_outcome(None, None, None, Some("error"), None, None).unwrap();
        let mut out = Vec::new();
        assert_eq!(show(&vol, &f, Format::Csv, &mut out).unwrap(), 1);
        assert!(filter_with_outcome(None, None, None, Some("bad"), None, None).is_err());
    }

    #[test]
    fn verify_with_another_journals_key_is_a_key_error() {
        let (_t, vol, _key) = scenario();
        let (_t2, _vol2, key2) = scenario();
        let e = verify_since(&vol, &key2, None).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_WRONG_KEY);
        let e = verify_since(&vol, Path::new("/nonexistent/key"), None).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_WRONG_KEY);
    }

    #[test]
    fn reads_while_the_daemon_holds_the_journal_go_through_a_request_file() {
        let (_t, vol, key) = scenario();
        let daemon = Journal::open(
            &audit_dir(&vol),
            JournalOptions { epoch_duration: Duration::from_millis(40), ..JournalOptions::default() },
        )
        .unwrap();
        let rep = verify_since(&vol, &key, None).unwrap();
        assert!(rep.writer_live);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while audit_reads(&vol) < 1 {
            assert!(std::time::Instant::now() < deadline, "request not recorded");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon.close().unwrap();
        verify_since(&vol, &key, None).unwrap();
    }

    #[test]
    fn follow_prints_new_records_until_stopped() {
        let (_t, vol, _key) = scenario();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let vol = vol.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let j = Journal::open(&audit_dir(&vol), JournalOptions::default()).unwrap();
                for i in 0..3 {
                    j.append(
                        Event::new(EventKind::Open, person("carol", 1002, 3000)).path(format!("/team-a/n{i}.wav")),
                    )
                    .unwrap();
                }
                j.close().unwrap();
                std::thread::sleep(Duration::from_millis(500));
                stop.store(true, Ordering::SeqCst);
            })
        };
        let f = filter_with_outcome(Some("carol"), None, None, None, None, None).unwrap();
        let mut out = Vec::new();
        let n = follow(&vol, &f, Format::Json, &mut out, &|| stop.load(Ordering::SeqCst)).unwrap();
        writer.join().unwrap();
        assert_eq!(n, 3, "{}", String::from_utf8_lossy(&out));
        assert_eq!(audit_reads(&vol), 1);
    }

    #[test]
    fn key_admin_events_are_recorded() {
        let (_t, vol, key) = scenario();
        record_event(&vol, key_admin_event("add-keyslot", Some(1), Outcome::Ok)).unwrap();
        let r = callvault::journal::records(&audit_dir(&vol))
            .unwrap()
            .map(|r| r.unwrap())
            .find(|r| r.event == EventKind::KeyAdmin)
            .unwrap();
        assert_eq!((r.detail.action.as_deref(), r.detail.slot), (Some("add-keyslot"), Some(1)));
        verify_since(&vol, &key, None).unwrap();
    }
}
