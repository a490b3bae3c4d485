//! End-to-end tests of the journal: write, crash, tamper, verify, query.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

fn actor(user: &str, uid: u32) -> Actor {
    Actor {
        uid,
        user: Some(user.into()),
        gid: uid,
        pid: 4000 + uid,
        exe: Some("/usr/bin/sox".into()),
        cmdline: Some(vec!["sox".into(), "c1.wav".into()]),
        ..Actor::default()
    }
}

fn open_ev(i: usize) -> Event {
    Event::new(EventKind::Open, actor("alice", 1000)).path(format!("/team-a/c{i}.wav")).detail(Detail {
        flags: Some("O_RDONLY".into()),
        access: Some("read".into()),
        ..Detail::default()
    })
}

struct Vol {
    _tmp: tempfile::TempDir,
    audit: PathBuf,
    key: AuditorKey,
}

fn new_volume() -> Vol {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit");
    let key = init_journal(&audit).unwrap();
    Vol { _tmp: tmp, audit, key }
}

fn opts() -> JournalOptions {
    JournalOptions { lock_wait: Duration::ZERO, ..JournalOptions::default() }
}

/// A volume with `n` open records appended and the journal closed.
fn volume_with(n: usize, o: JournalOptions) -> Vol {
    let v = new_volume();
    let j = Journal::open(&v.audit, o).unwrap();
    for i in 0..n {
        j.append(open_ev(i)).unwrap();
    }
    j.close().unwrap();
    v
}

fn seg_path(v: &Vol, n: u64) -> PathBuf {
    v.audit.join(segment_name(n))
}

fn read_lines(p: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(p).unwrap();
    data.split_inclusive(|&b| b == b'\n').map(|l| l.to_vec()).collect()
}

fn write_lines(p: &Path, lines: &[Vec<u8>]) {
    std::fs::write(p, lines.concat()).unwrap();
}

/// Index of the line (in segment 1) holding seq `seq`.
fn index_of(lines: &[Vec<u8>], seq: u64) -> usize {
    let needle = format!("{{\"seq\":{seq},");
    lines.iter().position(|l| l.starts_with(needle.as_bytes())).unwrap()
}

fn seq_of_path(v: &Vol, path: &str) -> u64 {
    records(&v.audit).unwrap().map(|r| r.unwrap()).find(|r| r.path.as_deref() == Some(path)).unwrap().seq
}

fn problem(v: &Vol) -> Problem {
    match verify(&v.audit, &v.key) {
        Err(VerifyError::Failed(p)) => p,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn a_fresh_journal_verifies_and_k0_is_gone_from_disk() {
    let v = new_volume();
    let r = verify(&v.audit, &v.key).unwrap();
    assert_eq!(r.seals, 1, "init seals the genesis record");
    assert_eq!(r.key_epoch, 1);
    let text = std::fs::read_to_string(v.audit.join(SEAL_KEY_FILE)).unwrap();
    assert!(text.contains("epoch 00000000000000000001"), "{text}");
    assert!(matches!(init_journal(&v.audit), Err(JournalError::AlreadyInitialized { .. })));
}

#[test]
fn records_carry_every_field_and_verify() {
    let v = volume_with(5, opts());
    let all: Vec<Record> = records(&v.audit).unwrap().map(|r| r.unwrap()).collect();
    let opens: Vec<_> = all.iter().filter(|r| r.event == EventKind::Open).collect();
    assert_eq!(opens.len(), 5);
    let r = opens[0];
    assert_eq!((r.uid, r.user.as_deref(), r.pid), (1000, Some("alice"), 5000));
    assert_eq!(r.exe.as_deref(), Some("/usr/bin/sox"));
    assert_eq!(r.ts.len(), 30);
    let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(all.last().unwrap().event, EventKind::Seal, "close writes a final seal");
    let rep = verify(&v.audit, &v.key).unwrap();
    assert_eq!(rep.last_sealed_seq, rep.last_seq);
    assert!(!rep.writer_live);
}

#[test]
fn internal_kinds_cannot_be_appended() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    assert!(j.append(Event::new(EventKind::Seal, actor("x", 1))).is_err());
    assert!(j.append(Event::new(EventKind::Genesis, actor("x", 1))).is_err());
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_journal() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    assert!(matches!(Journal::open(&v.audit, opts()), Err(JournalError::Locked { .. })));
    j.close().unwrap();
    Journal::open(&v.audit, opts()).unwrap().close().unwrap();
}

#[test]
fn tamper_changed_byte_keeping_json_valid_names_that_record() {
    let v = volume_with(20, opts());
    let seq = seq_of_path(&v, "/team-a/c7.wav");
    let p = seg_path(&v, 1);
    let mut lines = read_lines(&p);
    let i = index_of(&lines, seq);
    let pos = lines[i].windows(6).position(|w| w == b"/c7.wa").unwrap();
    lines[i][pos + 2] = b'8';
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (seq, ProblemKind::Changed), "{pr}");
    assert!(pr.to_string().starts_with(&format!("seq {seq}: changed")), "{pr}");
}

#[test]
fn tamper_changed_byte_breaking_json_names_that_record() {
    let v = volume_with(20, opts());
    let seq = seq_of_path(&v, "/team-a/c3.wav");
    let p = seg_path(&v, 1);
    let mut lines = read_lines(&p);
    let i = index_of(&lines, seq);
    lines[i][0] = b'[';
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (seq, ProblemKind::Changed), "{pr}");
}

#[test]
fn tamper_changed_seq_digit_names_that_record() {
    let v = volume_with(20, opts());
    let seq = seq_of_path(&v, "/team-a/c5.wav");
    let p = seg_path(&v, 1);
    let mut lines = read_lines(&p);
    let i = index_of(&lines, seq);
    let text = String::from_utf8(lines[i].clone()).unwrap();
    lines[i] = text.replacen(&format!("\"seq\":{seq},"), &format!("\"seq\":{},", seq + 40), 1).into_bytes();
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (seq, ProblemKind::Changed), "{pr}");
}

#[test]
fn tamper_flipping_any_single_byte_is_detected() {
    // Every byte position of one record, flipped in turn.
    let v = volume_with(6, opts());
    let seq = seq_of_path(&v, "/team-a/c2.wav");
    let p = seg_path(&v, 1);
    let orig = read_lines(&p);
    let i = index_of(&orig, seq);
    for pos in 0..orig[i].len() - 1 {
        let mut lines = orig.clone();
        lines[i][pos] ^= 0x01;
        write_lines(&p, &lines);
        let pr = problem(&v);
        assert!(pr.seq == seq || pr.seq == seq + 1 || pr.kind == ProblemKind::BadSeal, "byte {pos}: {pr}");
        assert!(pr.seq <= seq + 1, "byte {pos}: {pr}");
    }
    write_lines(&p, &orig);
    verify(&v.audit, &v.key).unwrap();
}

#[test]
fn tamper_changed_final_seal_is_a_bad_seal() {
    let v = volume_with(5, opts());
    let p = seg_path(&v, 1);
    let mut lines = read_lines(&p);
    let last = lines.len() - 1;
    let text = String::from_utf8(lines[last].clone()).unwrap();
    let seal_seq: u64 = Record::parse(text.trim_end().as_bytes()).unwrap().seq;
    lines[last] = text.replace("\"ts\":\"2", "\"ts\":\"1").into_bytes();
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (seal_seq, ProblemKind::BadSeal), "{pr}");
}

#[test]
fn tamper_deleted_line_is_missing() {
    let v = volume_with(20, opts());
    let seq = seq_of_path(&v, "/team-a/c9.wav");
    let p = seg_path(&v, 1);
    let mut lines = read_lines(&p);
    lines.remove(index_of(&lines, seq));
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (seq, ProblemKind::Missing), "{pr}");
    assert!(pr.to_string().contains(&format!("seq {seq} is missing")), "{pr}");
}

#[test]
fn tamper_swapped_lines_are_reordered() {
    let v = volume_with(20, opts());
    let a = seq_of_path(&v, "/team-a/c4.wav");
    let p = seg_path(&v, 1);
    // Adjacent and distant swaps.
    for dist in [1u64, 5] {
        let orig = read_lines(&p);
        let mut lines = orig.clone();
        lines.swap(index_of(&orig, a), index_of(&orig, a + dist));
        write_lines(&p, &lines);
        let pr = problem(&v);
        assert_eq!((pr.seq, pr.kind), (a, ProblemKind::Reordered), "{pr}");
        write_lines(&p, &orig);
    }
}

#[test]
fn tamper_inserted_lines_are_inserted() {
    let v = volume_with(20, opts());
    let a = seq_of_path(&v, "/team-a/c10.wav");
    let p = seg_path(&v, 1);
    let orig = read_lines(&p);
    let i = index_of(&orig, a);
    // A copy of an older record placed after seq a.
    let mut lines = orig.clone();
    lines.insert(i + 1, orig[index_of(&orig, a - 4)].clone());
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (a + 1, ProblemKind::Inserted), "{pr}");
    // A duplicate right after the original.
    let mut lines = orig.clone();
    lines.insert(i + 1, orig[i].clone());
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (a + 1, ProblemKind::Inserted), "{pr}");
    assert!(pr.what.contains("duplicate"), "{pr}");
    // A forged record that claims the right seq and chains correctly.
    let mut forged = Record::parse(orig[i + 1].strip_suffix(b"\n").unwrap()).unwrap();
    forged.path = Some("/team-a/forged.wav".into());
    let mut fl = forged.to_line();
    fl.push(b'\n');
    let mut lines = orig.clone();
    lines.insert(i + 1, fl);
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (a + 1, ProblemKind::Inserted), "{pr}");
    // Garbage.
    let mut lines = orig.clone();
    lines.insert(i + 1, b"hello auditor\n".to_vec());
    write_lines(&p, &lines);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (a + 1, ProblemKind::Inserted), "{pr}");
}

#[test]
fn tamper_truncated_last_n_is_truncated() {
    let v = volume_with(20, opts());
    let p = seg_path(&v, 1);
    let orig = read_lines(&p);
    for n in [1usize, 2, 7] {
        let lines = &orig[..orig.len() - n];
        write_lines(&p, lines);
        let pr = problem(&v);
        let last_kept = orig.len() - n; // seq == line number in a single segment
        assert_eq!((pr.seq, pr.kind), (last_kept as u64 + 1, ProblemKind::Truncated), "n={n}: {pr}");
    }
    // Cut in the middle of a line: the torn end shows first, the truncation still fails.
    let mut cut = orig.concat();
    cut.truncate(cut.len() - 10);
    std::fs::write(&p, cut).unwrap();
    assert!(verify(&v.audit, &v.key).is_err());
}

#[test]
fn seal_key_rollback_or_removal_is_detected() {
    let v = new_volume();
    let old_key = std::fs::read(v.audit.join(SEAL_KEY_FILE)).unwrap();
    let j = Journal::open(&v.audit, JournalOptions { epoch_records: 3, ..opts() }).unwrap();
    for i in 0..10 {
        j.append(open_ev(i)).unwrap();
    }
    j.close().unwrap();
    verify(&v.audit, &v.key).unwrap();
    // Restoring an old seal.key (taken by someone earlier) is caught.
    let cur = std::fs::read(v.audit.join(SEAL_KEY_FILE)).unwrap();
    std::fs::write(v.audit.join(SEAL_KEY_FILE), &old_key).unwrap();
    assert_eq!(problem(&v).kind, ProblemKind::KeyState);
    assert!(matches!(Journal::open(&v.audit, opts()), Err(JournalError::KeyState { .. })));
    // A made-up key at the right epoch is caught.
    let text = String::from_utf8(cur.clone()).unwrap();
    let fake: String = text
        .lines()
        .map(|l| if l.starts_with("key ") { format!("key {}", "ab".repeat(32)) } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(v.audit.join(SEAL_KEY_FILE), fake + "\n").unwrap();
    assert_eq!(problem(&v).kind, ProblemKind::KeyState);
    std::fs::remove_file(v.audit.join(SEAL_KEY_FILE)).unwrap();
    assert_eq!(problem(&v).kind, ProblemKind::KeyState);
    std::fs::write(v.audit.join(SEAL_KEY_FILE), &cur).unwrap();
    verify(&v.audit, &v.key).unwrap();
}

#[test]
fn wrong_auditor_key_is_not_a_tamper_report() {
    let v = volume_with(2, opts());
    let other = new_volume();
    let e = verify(&v.audit, &other.key).unwrap_err();
    assert!(matches!(e, VerifyError::WrongKey { .. }), "{e}");
    assert_eq!(e.exit_code(), EXIT_WRONG_KEY);
}

fn rotating_volume() -> (Vol, Arc<AtomicUsize>) {
    let v = new_volume();
    let finished = Arc::new(AtomicUsize::new(0));
    let f2 = finished.clone();
    let o = JournalOptions {
        segment_size: 4096,
        epoch_records: 7,
        on_segment_finished: Some(Box::new(move |p: &Path| {
            assert!(parse_segment_name(p.file_name().unwrap().to_str().unwrap()).is_some());
            f2.fetch_add(1, Ordering::SeqCst);
        })),
        ..opts()
    };
    let j = Journal::open(&v.audit, o).unwrap();
    for i in 0..200 {
        j.append(open_ev(i)).unwrap();
    }
    j.close().unwrap();
    (v, finished)
}

#[test]
fn rotation_spreads_the_chain_over_segments_and_verifies() {
    let (v, finished) = rotating_volume();
    let segs = list_segments(&v.audit).unwrap();
    assert!(segs.len() >= 10, "{} segments", segs.len());
    assert!(finished.load(Ordering::SeqCst) >= segs.len() - 1);
    for s in &segs[..segs.len() - 1] {
        // A batch may overshoot the size by a little, never by much.
        assert!(std::fs::metadata(&s.path).unwrap().len() < 4096 + 2048);
    }
    let r = verify(&v.audit, &v.key).unwrap();
    assert_eq!(r.segments, segs.len());
    assert!(r.seals > 200 / 7);
    // Reopening continues in the last segment and stays valid.
    let j = Journal::open(&v.audit, opts()).unwrap();
    j.append(open_ev(999)).unwrap();
    j.close().unwrap();
    verify(&v.audit, &v.key).unwrap();
}

#[test]
fn tamper_deleted_segment_is_missing_and_named() {
    let (v, _) = rotating_volume();
    let segs = list_segments(&v.audit).unwrap();
    // A middle segment.
    let mid = &segs[3];
    let first_seq_of_mid = Record::parse(read_lines(&mid.path)[0].strip_suffix(b"\n").unwrap()).unwrap().seq;
    let saved = std::fs::read(&mid.path).unwrap();
    std::fs::remove_file(&mid.path).unwrap();
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (first_seq_of_mid, ProblemKind::Missing), "{pr}");
    assert!(pr.what.contains(&format!("segment {} is missing", segment_name(mid.number))), "{pr}");
    std::fs::write(&mid.path, saved).unwrap();
    // The first segment.
    let saved = std::fs::read(&segs[0].path).unwrap();
    std::fs::remove_file(&segs[0].path).unwrap();
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (1, ProblemKind::Missing), "{pr}");
    std::fs::write(&segs[0].path, saved).unwrap();
    // The last segment.
    let last = segs.last().unwrap();
    let last_first = Record::parse(read_lines(&last.path)[0].strip_suffix(b"\n").unwrap()).unwrap().seq;
    std::fs::remove_file(&last.path).unwrap();
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (last_first, ProblemKind::Truncated), "{pr}");
}

#[test]
fn forward_security_resealing_with_the_current_key_fails() {
    // The attacker holds the machine: the journal and seal.key (K_n). They
    // change a record of an early epoch, recompute the whole chain, and
    // recompute every seal with the only key they have.
    let v = new_volume();
    let j = Journal::open(&v.audit, JournalOptions { epoch_records: 5, ..opts() }).unwrap();
    for i in 0..30 {
        j.append(open_ev(i)).unwrap();
    }
    j.close().unwrap();
    let p = seg_path(&v, 1);
    let state = keyfile::SealKeyState::read(&v.audit).unwrap();
    let mut tip = chain::Tip::START;
    let mut out = Vec::new();
    let mut first_seal_after_change = None;
    let mut changed = false;
    for raw in read_lines(&p) {
        let mut r = Record::parse(raw.strip_suffix(b"\n").unwrap()).unwrap();
        if r.path.as_deref() == Some("/team-a/c2.wav") {
            r.path = Some("/team-b/innocent.wav".into());
            changed = true;
        }
        r.prev = to_hex(&tip.hash);
        let mut line = if r.event == EventKind::Seal && changed {
            // Seals before the change still verify; those after must be redone.
            if first_seal_after_change.is_none() {
                first_seal_after_change = Some(r.seq);
            }
            r.detail.chain = Some(r.prev.clone());
            r.detail.mac = Some(seal::MAC_PLACEHOLDER.into());
            let mut l = r.to_line();
            assert!(seal::fill_mac(&mut l, &state.key, &state.journal_id));
            l
        } else if r.event == EventKind::Seal {
            raw.strip_suffix(b"\n").unwrap().to_vec()
        } else {
            r.to_line()
        };
        tip = chain::Tip { seq: r.seq, hash: line_hash(&line) };
        line.push(b'\n');
        out.push(line);
    }
    write_lines(&p, &out);
    let pr = problem(&v);
    assert_eq!((Some(pr.seq), pr.kind), (first_seal_after_change, ProblemKind::BadSeal), "{pr}");
    // And the current key is not the one that sealed any past epoch.
    let k0 = v.key.k0();
    for e in 0..state.key.epoch() {
        assert!(!k0.evolve_to(e).unwrap().same_as(&state.key));
    }
}

#[test]
fn torn_tail_is_detected_set_aside_recorded_and_sealed_over() {
    let v = volume_with(10, opts());
    let p = seg_path(&v, 1);
    let before = std::fs::read(&p).unwrap();
    // Half a record, as a crash in the middle of a write leaves it.
    let half = br#"{"seq":99,"ts":"2026-05-01T10:00:00.0000"#;
    let mut torn = before.clone();
    torn.extend_from_slice(half);
    std::fs::write(&p, &torn).unwrap();
    let pr = problem(&v);
    assert_eq!(pr.kind, ProblemKind::TornTail, "{pr}");
    assert_eq!(VerifyError::Failed(pr).exit_code(), EXIT_INCOMPLETE);

    let j = Journal::open(&v.audit, opts()).unwrap();
    j.append(open_ev(77)).unwrap();
    j.close().unwrap();
    let rep = verify(&v.audit, &v.key).unwrap();
    assert_eq!(rep.torn_tails.len(), 1);
    let all: Vec<Record> = records(&v.audit).unwrap().map(|r| r.unwrap()).collect();
    let t = all.iter().find(|r| r.event == EventKind::TornTail).unwrap();
    assert_eq!(t.detail.torn_offset, Some(before.len() as u64));
    assert_eq!(t.detail.torn_bytes, Some(half.len() as u64));
    // Nothing before the tear was lost, and the torn bytes were kept.
    assert!(std::fs::read(&p).unwrap().starts_with(&before));
    let saved = v.audit.join(t.detail.saved_as.clone().unwrap());
    assert_eq!(std::fs::read(saved).unwrap(), half);
    // The torn_tail record is sealed right after it.
    let next = all.iter().find(|r| r.seq == t.seq + 1).unwrap();
    assert_eq!(next.event, EventKind::Seal);
}

#[test]
fn crash_with_an_unsealed_tail_is_reported_then_sealed_on_the_next_open() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    for i in 0..5 {
        j.append(open_ev(i)).unwrap();
    }
    // While the writer runs, the unsealed tail is expected.
    let rep = verify(&v.audit, &v.key).unwrap();
    assert!(rep.writer_live);
    assert_eq!(rep.unsealed, 5);
    // A snapshot of the directory now is what a crash leaves behind.
    let crashed = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&v.audit).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), crashed.path().join(e.file_name())).unwrap();
        }
    }
    j.close().unwrap();
    let e = verify(crashed.path(), &v.key).unwrap_err();
    assert_eq!(e.problem().unwrap().kind, ProblemKind::UnsealedTail, "{e}");
    assert_eq!(e.exit_code(), EXIT_INCOMPLETE);
    Journal::open(crashed.path(), opts()).unwrap().close().unwrap();
    verify(crashed.path(), &v.key).unwrap();
}

#[test]
fn crash_between_seal_and_key_save_is_finished_on_open() {
    let v = volume_with(3, opts());
    let key_before = std::fs::read(v.audit.join(SEAL_KEY_FILE)).unwrap();
    let j = Journal::open(&v.audit, opts()).unwrap();
    j.append(open_ev(1)).unwrap();
    j.close().unwrap();
    // Put back the key of the epoch just sealed: as if the rename never happened.
    std::fs::write(v.audit.join(SEAL_KEY_FILE), key_before).unwrap();
    let rep = verify(&v.audit, &v.key).unwrap();
    assert_eq!(rep.warnings.len(), 1, "{rep}");
    Journal::open(&v.audit, opts()).unwrap().close().unwrap();
    let rep = verify(&v.audit, &v.key).unwrap();
    assert!(rep.warnings.is_empty(), "{rep}");
}

#[test]
fn damage_before_a_seal_refuses_to_open() {
    let v = new_volume();
    let j = Journal::open(&v.audit, JournalOptions { epoch_records: 4, ..opts() }).unwrap();
    for i in 0..10 {
        j.append(open_ev(i)).unwrap();
    }
    j.close().unwrap();
    let p = seg_path(&v, 1);
    let mut lines = read_lines(&p);
    lines[4][0] = b'X';
    write_lines(&p, &lines);
    assert!(matches!(Journal::open(&v.audit, opts()), Err(JournalError::Damaged { .. })));
}

#[test]
fn concurrent_appends_are_all_present_contiguous_and_group_committed() {
    let v = new_volume();
    let j = Arc::new(Journal::open(&v.audit, opts()).unwrap());
    let syncs_before = j.sync_count();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || (0..500).map(|i| j.append(open_ev(t * 1000 + i)).unwrap()).collect::<Vec<u64>>())
        })
        .collect();
    let mut seqs: Vec<u64> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let syncs = j.sync_count() - syncs_before;
    Arc::try_unwrap(j).ok().unwrap().close().unwrap();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 4000);
    let all: Vec<Record> = records(&v.audit).unwrap().map(|r| r.unwrap()).collect();
    let opens = all.iter().filter(|r| r.event == EventKind::Open).count();
    assert_eq!(opens, 4000);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
    }
    // 4000 records plus 4 seals: far fewer fdatasyncs than records.
    assert!(syncs < 4000, "{syncs} fdatasyncs for 4000 records");
    eprintln!("group commit: {syncs} fdatasyncs for 4000 concurrent appends");
    let rep = verify(&v.audit, &v.key).unwrap();
    assert!(rep.seals >= 4);
}

#[test]
fn time_based_epochs_seal_without_further_appends() {
    let v = new_volume();
    let j = Journal::open(&v.audit, JournalOptions { epoch_duration: Duration::from_millis(40), ..opts() }).unwrap();
    j.append(open_ev(1)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rep = verify(&v.audit, &v.key).unwrap();
        if rep.unsealed == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no time-based seal");
        std::thread::sleep(Duration::from_millis(20));
    }
    j.close().unwrap();
}

#[test]
fn request_files_are_recorded_by_the_live_writer() {
    let v = new_volume();
    let j = Journal::open(&v.audit, JournalOptions { epoch_duration: Duration::from_millis(40), ..opts() }).unwrap();
    let ev = Event::new(EventKind::AuditRead, actor("auditor", 0))
        .detail(Detail { reason: Some("audit show".into()), ..Detail::default() });
    let req = write_request(&v.audit, &ev).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while req.exists() {
        assert!(std::time::Instant::now() < deadline, "request not ingested");
        std::thread::sleep(Duration::from_millis(20));
    }
    j.close().unwrap();
    let r = records(&v.audit).unwrap().map(|r| r.unwrap()).find(|r| r.event == EventKind::AuditRead).unwrap();
    assert_eq!(r.detail.requested_by_uid, Some(nix::unistd::geteuid().as_raw()));
    verify(&v.audit, &v.key).unwrap();
}

#[test]
fn syslog_forwarding_failures_never_fail_appends() {
    let v = new_volume();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log");
    let server = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    let o = JournalOptions { syslog: Some(SyslogOptions { socket: sock_path, ..SyslogOptions::default() }), ..opts() };
    let j = Journal::open(&v.audit, o).unwrap();
    j.append(open_ev(1)).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = server.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.contains(" open - {\"seq\":"), "{msg}");
    drop(server);
    j.append(open_ev(2)).unwrap();
    assert!(j.syslog_failures() >= 1);
    j.close().unwrap();
}

#[test]
fn garbage_segments_never_panic_readers_or_verify() {
    let v = volume_with(3, opts());
    let p = seg_path(&v, 1);
    let good = std::fs::read(&p).unwrap();
    let mut seed = 0x1234_5678u64;
    for round in 0..200 {
        let mut data = good.clone();
        for _ in 0..(1 + round % 7) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pos = (seed >> 33) as usize % data.len();
            data[pos] = (seed >> 20) as u8;
        }
        if round % 5 == 0 {
            data.truncate((seed >> 40) as usize % data.len());
        }
        std::fs::write(&p, &data).unwrap();
        let _ = verify(&v.audit, &v.key);
        let _ = records(&v.audit).map(|it| it.count());
    }
    std::fs::write(&p, vec![0xffu8; 5000]).unwrap();
    assert!(verify(&v.audit, &v.key).is_err());
}

#[test]
fn show_filters_ten_thousand_records_quickly() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    let bob = actor("bob", 1001);
    let events: Vec<Event> = (0..10_000)
        .map(|i| {
            if i % 100 == 0 {
                Event::new(EventKind::Denied, bob.clone())
                    .outcome(Outcome::errno(13))
                    .path("/team-a/c1.wav")
                    .detail(Detail { op: Some("open".into()), missing_right: Some("read".into()), ..Detail::default() })
            } else {
                open_ev(i % 500 + 2)
            }
        })
        .collect();
    // Batches of 1,000: the test is about reading, not about fdatasync.
    let mut it = events.into_iter().peekable();
    while it.peek().is_some() {
        j.append_all(it.by_ref().take(1000).collect()).unwrap();
    }
    j.close().unwrap();
    let started = std::time::Instant::now();
    let f = Filter::new().path("/team-a/c1.wav").unwrap();
    let pre = f.prefilter();
    let mut n = 0;
    let mut lines = Lines::open(&v.audit).unwrap();
    let mut buf = Vec::new();
    while let Some(info) = lines.read_line(&mut buf).unwrap() {
        if info.complete && pre.may_match(&buf) {
            if let Ok(r) = Record::parse(&buf) {
                if f.matches(&r) {
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 100);
    eprintln!("filtered 10,000 records in {:?}", started.elapsed());
    verify(&v.audit, &v.key).unwrap();
}

/// Disk full: a journal on a tiny tmpfs refuses appends with NoSpace, keeps a
/// valid chain, and works again once space is freed. Needs root (mount).
#[test]
fn disk_full_refuses_appends_and_recovers_when_space_is_freed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("NOT RUN: disk_full test needs root to mount a tmpfs (CI runs as root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    nix::mount::mount(Some("tmpfs"), &mnt, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=96k"))
        .expect("mount tmpfs");
    let _guard = Unmount(mnt.clone());
    let audit = mnt.join("audit");
    let key = init_journal(&audit).unwrap();
    let filler = mnt.join("filler");
    let j = Journal::open(&audit, JournalOptions { epoch_records: 1_000_000, ..opts() }).unwrap();
    // Fill the file system, leaving a little room.
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let mut ok = 0;
    let err = loop {
        match j.append(open_ev(ok)) {
            Ok(_) => ok += 1,
            Err(e) => break e,
        }
        assert!(ok < 100_000);
    };
    assert!(matches!(err, JournalError::NoSpace { .. }), "{err}");
    assert!(err.to_string().contains("no space left on device; accesses are refused until space is freed"), "{err}");
    // Still refused while full.
    assert!(j.append(open_ev(1)).is_err());
    std::fs::remove_file(&filler).unwrap();
    j.append(open_ev(2)).unwrap();
    j.close().unwrap();
    verify(&audit, &key).unwrap();
}

#[test]
fn a_panicking_segment_callback_does_not_stop_the_journal() {
    let v = new_volume();
    let o = JournalOptions {
        segment_size: 1024,
        on_segment_finished: Some(Box::new(|_: &Path| panic!("chattr failed"))),
        ..opts()
    };
    let j = Journal::open(&v.audit, o).unwrap();
    for i in 0..20 {
        j.append(open_ev(i)).unwrap();
    }
    j.close().unwrap();
    assert!(list_segments(&v.audit).unwrap().len() > 2);
    verify(&v.audit, &v.key).unwrap();
}

#[test]
fn a_refused_open_changes_nothing_on_disk() {
    // A torn tail plus a seal.key from the wrong epoch: open must refuse
    // before setting anything aside.
    let v = volume_with(3, opts());
    let p = seg_path(&v, 1);
    let mut data = std::fs::read(&p).unwrap();
    data.extend_from_slice(b"{\"seq\":");
    std::fs::write(&p, &data).unwrap();
    let key_path = v.audit.join(SEAL_KEY_FILE);
    let good = std::fs::read_to_string(&key_path).unwrap();
    std::fs::write(&key_path, good.replace("epoch 0000000000000000000", "epoch 0000000000000000009")).unwrap();
    assert!(matches!(Journal::open(&v.audit, opts()), Err(JournalError::KeyState { .. })));
    assert_eq!(std::fs::read(&p).unwrap(), data);
    std::fs::write(&key_path, good).unwrap();
    Journal::open(&v.audit, opts()).unwrap().close().unwrap();
    verify(&v.audit, &v.key).unwrap();
}

#[test]
fn absurd_numbers_on_disk_are_errors_not_panics() {
    let v = volume_with(2, opts());
    std::fs::write(v.audit.join("journal-18446744073709551615.log"), b"").unwrap();
    // An empty segment far ahead loses no record: a warning, not a failure.
    assert!(!verify(&v.audit, &v.key).unwrap().warnings.is_empty());
    std::fs::remove_file(v.audit.join("journal-18446744073709551615.log")).unwrap();
    let key_path = v.audit.join(SEAL_KEY_FILE);
    let good = std::fs::read_to_string(&key_path).unwrap();
    let huge = good
        .lines()
        .map(|l| if l.starts_with("epoch ") { "epoch 18446744073709551615".to_string() } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&key_path, huge + "\n").unwrap();
    assert_eq!(problem(&v).kind, ProblemKind::Truncated);
    assert!(Journal::open(&v.audit, opts()).is_err());
    std::fs::write(&key_path, good).unwrap();
    // A segment whose last record claims the largest seq.
    let p = seg_path(&v, 1);
    let mut lines = read_lines(&p);
    let mut r = Record::parse(lines.last().unwrap().strip_suffix(b"\n").unwrap()).unwrap();
    r.seq = u64::MAX;
    let mut l = r.to_line();
    l.push(b'\n');
    lines.push(l);
    write_lines(&p, &lines);
    std::fs::write(seg_path(&v, 2), b"").unwrap();
    assert!(verify(&v.audit, &v.key).is_err());
    assert!(Journal::open(&v.audit, opts()).is_err());
}

#[test]
fn an_event_too_long_for_one_line_is_recorded_cut_and_verifies() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    let huge = Event::new(EventKind::KeyAdmin, actor("alice", 1000))
        .detail(Detail { reason: Some("r".repeat(3 * MAX_LINE)), ..Detail::default() });
    let seq = j.append(huge).unwrap();
    j.close().unwrap();
    verify(&v.audit, &v.key).unwrap();
    for l in read_lines(&seg_path(&v, 1)) {
        assert!(l.len() <= MAX_LINE);
    }
    let r = records(&v.audit).unwrap().map(|r| r.unwrap()).find(|r| r.seq == seq).unwrap();
    assert!(r.detail.reason.unwrap().starts_with("record cut to fit"));
}

#[test]
fn an_over_long_line_is_damage_for_verify_and_a_torn_tail_at_mount() {
    let v = volume_with(3, opts());
    let p = seg_path(&v, 1);
    let good = std::fs::read(&p).unwrap();
    let junk = vec![b'{'; MAX_LINE + 10];
    // In the middle: verify names it as a changed record, with the line.
    let lines = read_lines(&p);
    let mut mid = lines.clone();
    mid.insert(2, junk.clone());
    write_lines(&p, &mid);
    let pr = problem(&v);
    assert_eq!((pr.seq, pr.kind), (3, ProblemKind::Changed), "{pr}");
    assert_eq!(pr.location, Some((segment_name(1), 3)));
    // `show` and records() refuse with a typed error instead of holding it.
    assert!(records(&v.audit).unwrap().any(|r| matches!(r, Err(JournalError::LineTooLong { .. }))));
    // At the end, unterminated, after the last seal: a crash cannot write
    // that, but it does not continue the chain either, so it is set aside.
    let mut tail = good.clone();
    tail.extend_from_slice(&junk);
    std::fs::write(&p, &tail).unwrap();
    let j = Journal::open(&v.audit, opts()).unwrap();
    j.close().unwrap();
    assert!(std::fs::read(&p).unwrap().starts_with(&good));
    let rep = verify(&v.audit, &v.key).unwrap();
    assert_eq!(rep.torn_tails.len(), 1);
}

#[test]
fn a_new_journal_has_a_sticky_requests_directory() {
    use std::os::unix::fs::PermissionsExt;
    let v = new_volume();
    let mode = std::fs::metadata(v.audit.join(REQUESTS_DIR)).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o1730);
}

/// A copy of every regular file of the audit directory (not `requests/`).
fn snapshot(v: &Vol) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(&v.audit).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Puts a snapshot back, removing files made since, as root restoring an
/// older copy of the directory would.
fn restore(v: &Vol, snap: &[(PathBuf, Vec<u8>)]) {
    for e in std::fs::read_dir(&v.audit).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && !snap.iter().any(|(s, _)| *s == p) {
            std::fs::remove_file(&p).unwrap();
        }
    }
    for (p, data) in snap {
        std::fs::write(p, data).unwrap();
    }
}

fn rolled_back(v: &Vol, since: Checkpoint) -> Problem {
    match verify_since(&v.audit, &v.key, Some(since)) {
        Err(e @ VerifyError::Failed(_)) => {
            assert_eq!(e.exit_code(), EXIT_ROLLED_BACK, "{e}");
            e.problem().unwrap().clone()
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[test]
fn restoring_an_older_copy_passes_plain_verify_but_not_verify_since_the_checkpoint() {
    let v = volume_with(3, opts());
    let rep = verify(&v.audit, &v.key).unwrap();
    let old_cp = rep.checkpoint.unwrap();
    assert_eq!(old_cp.seq, rep.last_sealed_seq);
    assert!(rep.to_string().ends_with(&format!("\ncheckpoint: {old_cp}")), "{rep}");
    let old = snapshot(&v);
    let j = Journal::open(&v.audit, opts()).unwrap();
    for i in 10..15 {
        j.append(open_ev(i)).unwrap();
    }
    j.close().unwrap();
    let rep = verify_since(&v.audit, &v.key, Some(old_cp)).unwrap();
    assert_eq!(rep.extends, Some(old_cp));
    let cp = rep.checkpoint.unwrap();
    assert!(cp.seq > old_cp.seq);
    // The checkpoint itself verifies against the journal it came from.
    verify_since(&v.audit, &v.key, Some(cp)).unwrap();

    restore(&v, &old);
    // Without a checkpoint nothing is wrong to see: this is the attack.
    verify(&v.audit, &v.key).unwrap();
    let pr = rolled_back(&v, cp);
    assert_eq!(pr.seq, cp.seq);
    assert!(pr.to_string().contains("before the checkpoint's seq"), "{pr}");
}

#[test]
fn a_checkpoint_at_another_record_or_hash_is_a_rollback() {
    let v = volume_with(3, JournalOptions { epoch_records: 2, ..opts() });
    let cp = verify(&v.audit, &v.key).unwrap().checkpoint.unwrap();
    // Same seq, another hash: another history.
    let pr = rolled_back(&v, Checkpoint { seq: cp.seq, hash: [7u8; 32] });
    assert!(pr.what.contains("another history"), "{pr}");
    // A seq that is not a seal.
    let pr = rolled_back(&v, Checkpoint { seq: cp.seq - 1, hash: cp.hash });
    assert!(pr.what.contains("not the seal"), "{pr}");
}

#[test]
fn cutting_records_up_to_the_checkpoint_is_a_rollback() {
    // While the daemon runs, the auditor checkpoints a mid-session seal.
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    let before = snapshot(&v);
    j.append(Event::new(EventKind::Mount, actor("root", 0))).unwrap();
    for i in 0..3 {
        j.append(open_ev(i)).unwrap();
    }
    j.seal().unwrap();
    j.append(open_ev(9)).unwrap();
    let rep = verify(&v.audit, &v.key).unwrap();
    assert!(rep.writer_live && rep.unsealed == 1);
    let cp = rep.checkpoint.unwrap();
    j.close().unwrap();
    // Root cuts the whole session and puts back the seal state from before it.
    restore(&v, &before);
    let pr = rolled_back(&v, cp);
    assert_eq!(pr.kind, ProblemKind::RolledBack);
}

/// Rewrites every record through `f`, then re-chains and re-seals the
/// journal with the auditor's key, so only what `f` changed differs.
fn rewrite(v: &Vol, mut f: impl FnMut(&mut Record)) {
    let p = seg_path(v, 1);
    let mut tip = chain::Tip::START;
    let mut out = Vec::new();
    for raw in read_lines(&p) {
        let mut r = Record::parse(raw.strip_suffix(b"\n").unwrap()).unwrap();
        f(&mut r);
        r.prev = to_hex(&tip.hash);
        let mut line = if r.event == EventKind::Seal {
            r.detail.chain = Some(r.prev.clone());
            r.detail.mac = Some(seal::MAC_PLACEHOLDER.into());
            let mut l = r.to_line();
            let k = v.key.k0().evolve_to(r.detail.epoch.unwrap()).unwrap();
            assert!(seal::fill_mac(&mut l, &k, v.key.journal_id()));
            l
        } else {
            r.to_line()
        };
        tip = chain::Tip { seq: r.seq, hash: line_hash(&line) };
        line.push(b'\n');
        out.push(line);
    }
    write_lines(&p, &out);
}

#[test]
fn records_whose_time_goes_backwards_or_lies_in_the_future_are_warned_about() {
    let v = volume_with(6, opts());
    assert_eq!(verify(&v.audit, &v.key).unwrap().time_problems, 0);
    rewrite(&v, |r| match r.seq {
        4 => r.ts = "2001-01-01T00:00:00.000000000Z".into(),
        6 => r.ts = "2999-01-01T00:00:00.000000000Z".into(),
        _ => {}
    });
    let rep = verify(&v.audit, &v.key).unwrap();
    // seq 4 goes back; seq 6 is in the future, and seq 7 goes back from it.
    assert_eq!(rep.time_problems, 3, "{rep}");
    let text = rep.to_string();
    assert!(text.contains("warning: seq 4: time goes backwards: 2001-01-01T00:00:00.000000000Z is before"), "{text}");
    assert!(text.contains("warning: seq 6: time 2999-01-01T00:00:00.000000000Z is in the future"), "{text}");
    assert!(text.contains("warning: seq 7: time goes backwards"), "{text}");
}

#[test]
fn many_time_problems_are_listed_ten_and_counted() {
    let v = volume_with(30, opts());
    rewrite(&v, |r| {
        if r.seq > 2 {
            r.ts = format!("2000-01-01T00:00:{:02}.000000000Z", 59 - r.seq.min(59));
        }
    });
    let rep = verify(&v.audit, &v.key).unwrap();
    assert!(rep.time_problems > 20);
    assert_eq!(rep.warnings.iter().filter(|w| w.contains("time goes backwards")).count(), 10);
    assert!(rep.warnings.iter().any(|w| w.contains("more record(s) with a time")), "{rep}");
}

#[test]
fn intent_and_interrupted_records_verify_and_read_back() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    let i = j.append(Event::new(EventKind::Unlink, actor("alice", 1000)).outcome(Outcome::Intent).path("/a")).unwrap();
    j.append(
        Event::new(EventKind::Unlink, actor("alice", 1000)).outcome(Outcome::Interrupted).path("/a").detail(Detail {
            intent: Some(i),
            found: Some("absent".into()),
            ..Detail::default()
        }),
    )
    .unwrap();
    j.close().unwrap();
    verify(&v.audit, &v.key).unwrap();
    let all: Vec<Record> = records(&v.audit).unwrap().map(|r| r.unwrap()).collect();
    let got: Vec<&str> = all.iter().filter(|r| r.event == EventKind::Unlink).map(|r| r.outcome.as_str()).collect();
    assert_eq!(got, ["intent", "interrupted"]);
}

#[test]
fn verify_warns_about_intents_without_outcome_once_the_writer_stopped() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    let done =
        j.append(Event::new(EventKind::Unlink, actor("alice", 1000)).outcome(Outcome::Intent).path("/a")).unwrap();
    j.append(
        Event::new(EventKind::Unlink, actor("alice", 1000))
            .path("/a")
            .detail(Detail { intent: Some(done), ..Detail::default() }),
    )
    .unwrap();
    let cut =
        j.append(Event::new(EventKind::Rename, actor("alice", 1000)).outcome(Outcome::Intent).path("/b")).unwrap();
    // In flight while the writer runs: no warning.
    let rep = verify(&v.audit, &v.key).unwrap();
    assert_eq!(rep.open_intents, 1);
    assert!(!rep.warnings.iter().any(|w| w.contains("intent")), "{rep}");
    j.close().unwrap();
    let rep = verify(&v.audit, &v.key).unwrap();
    assert!(
        rep.warnings.iter().any(|w| w.starts_with(&format!("1 intent record(s) have no outcome (seq {cut} (rename))"))),
        "{rep}"
    );
}

/// A record appended lazily is not waited for, keeps its place in the
/// chain, goes out with the next durable append, and is flushed at close.
#[test]
fn lazily_appended_records_go_out_with_the_next_batch_and_at_close() {
    let v = new_volume();
    let j = Journal::open(&v.audit, opts()).unwrap();
    let lazy = j.append_lazily(open_ev(1)).unwrap();
    let durable = j.append(open_ev(2)).unwrap();
    assert_eq!(durable, lazy + 1);
    assert!(j.last_seq() >= durable, "the durable append carried the lazy one");
    let last = j.append_lazily(open_ev(3)).unwrap();
    j.close().unwrap();
    let seqs: Vec<u64> =
        records(&v.audit).unwrap().map(|r| r.unwrap()).filter(|r| r.event == EventKind::Open).map(|r| r.seq).collect();
    assert_eq!(seqs, [lazy, durable, last]);
    verify(&v.audit, &v.key).unwrap();
    assert!(matches!(
        Journal::open(&v.audit, opts()).unwrap().append_lazily(Event::new(EventKind::Seal, actor("x", 1))),
        Err(JournalError::InvalidOption(_))
    ));
}
