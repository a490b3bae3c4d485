//! Verification with the auditor key: chain, sequence, seals and key state, naming the first bad record.

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;

use super::JournalError;
use super::chain::{Hash, Tip, from_hex, line_hash, to_hex};
use super::checkpoint::Checkpoint;
use super::keyfile::{AuditorKey, SEAL_KEY_FILE, SealKeyState};
use super::lock::writer_is_live;
use super::reader::{LineInfo, Lines};
use super::record::{EventKind, Record};
use super::seal::{EpochKey, check_mac};
use super::segment::segment_name;
use super::time::{UnixNanos, format_unix_nanos, parse_time, unix_nanos};

/// Exit status of `audit verify` when everything checks out (warnings allowed).
pub const EXIT_OK: i32 = crate::exitcode::OK as i32;
/// Exit status when verification could not run: unreadable files, or the
/// read could not be recorded (the general "failure" code of callvault tools).
pub const EXIT_CANNOT_VERIFY: i32 = crate::exitcode::FAILURE as i32;
/// Exit status when records were changed, removed, reordered, inserted or
/// truncated, or a seal or the key state does not verify.
pub const EXIT_TAMPERED: i32 = crate::exitcode::AUDIT_TAMPERED as i32;
/// Exit status when nothing is proven changed but the end of the journal is
/// not sealed and no writer is running (a crash; the next mount seals it).
pub const EXIT_INCOMPLETE: i32 = crate::exitcode::AUDIT_INCOMPLETE as i32;
/// Exit status when the auditor key file is unreadable, malformed, or
/// belongs to another journal.
pub const EXIT_WRONG_KEY: i32 = crate::exitcode::AUDIT_WRONG_KEY as i32;

/// Exit status of `audit verify --since TOKEN` when the journal does not
/// extend the checkpointed one (restored from an older copy, or cut).
pub const EXIT_ROLLED_BACK: i32 = crate::exitcode::AUDIT_ROLLED_BACK as i32;

/// How far a record's time may lie ahead of the verifier's clock before it
/// is reported: clocks of two machines differ a little.
pub const FUTURE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Time problems listed one by one; more are counted in one line.
const MAX_TIME_NOTES: usize = 10;

/// How many lines past a suspicious one are read to tell the cases apart.
const LOOKAHEAD: usize = 4096;

/// What is wrong with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// Bytes of the record differ from what was written.
    Changed,
    /// Records (or a segment) are gone from the middle or the start.
    Missing,
    /// Records are present but out of order.
    Reordered,
    /// A line that was never written by the journal is present.
    Inserted,
    /// Sealed records at the end are gone.
    Truncated,
    /// A seal record does not verify under the auditor key.
    BadSeal,
    /// `seal.key` does not match the journal or the auditor key.
    KeyState,
    /// Records at the end are not covered by a seal and no writer runs.
    UnsealedTail,
    /// The last record is incomplete and no writer runs.
    TornTail,
    /// The journal does not extend an auditor's checkpoint: it ends before
    /// the checkpoint's seq, or another record stands there.
    RolledBack,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Changed => "changed",
            ProblemKind::Missing => "missing",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Truncated => "truncated",
            ProblemKind::BadSeal => "bad seal",
            ProblemKind::KeyState => "key state",
            ProblemKind::UnsealedTail => "unsealed tail",
            ProblemKind::TornTail => "torn tail",
            ProblemKind::RolledBack => "rolled back",
        }
    }
}

/// The first thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The first sequence number that is not as written.
    pub seq: u64,
    pub kind: ProblemKind,
    /// One sentence, no newline.
    pub what: String,
    /// Where it was found: segment file name and line number in it.
    pub location: Option<(String, u64)>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {}: {}", self.seq, self.kind.as_str(), self.what)?;
        if let Some((seg, line)) = &self.location {
            write!(f, " [{seg} line {line}]")?;
        }
        Ok(())
    }
}

/// Why verification did not pass.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// The journal does not check out.
    Failed(Problem),
    /// The auditor key belongs to another journal.
    WrongKey { key_journal: String, journal: String },
    /// The auditor key file cannot be read or parsed.
    BadKeyFile(JournalError),
    /// Files could not be read.
    Journal(JournalError),
    /// Verification passed or failed, but this read could not be recorded
    /// in the journal (reading the journal is an audited event).
    Unrecorded { error: JournalError },
}

impl VerifyError {
    /// The process exit status `audit verify` uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyError::Failed(p) if matches!(p.kind, ProblemKind::UnsealedTail | ProblemKind::TornTail) => {
                EXIT_INCOMPLETE
            }
            VerifyError::Failed(p) if p.kind == ProblemKind::RolledBack => EXIT_ROLLED_BACK,
            VerifyError::Failed(_) => EXIT_TAMPERED,
            VerifyError::WrongKey { .. } | VerifyError::BadKeyFile(_) => EXIT_WRONG_KEY,
            VerifyError::Journal(_) | VerifyError::Unrecorded { .. } => EXIT_CANNOT_VERIFY,
        }
    }

    pub fn problem(&self) -> Option<&Problem> {
        match self {
            VerifyError::Failed(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Failed(p) => write!(f, "audit journal verification failed: {p}"),
            VerifyError::WrongKey { key_journal, journal } => write!(
                f,
                "the audit key file is for journal {key_journal}, but this journal is {journal}; use the key written when this volume was created"
            ),
            VerifyError::BadKeyFile(e) => write!(f, "cannot verify: {e}"),
            VerifyError::Journal(e) => write!(f, "cannot verify: {e}"),
            VerifyError::Unrecorded { error } => {
                write!(f, "this read of the audit journal could not be recorded, so it was refused: {error}")
            }
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<JournalError> for VerifyError {
    fn from(e: JournalError) -> Self {
        VerifyError::Journal(e)
    }
}

/// What a successful verification saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub journal_id: String,
    pub segments: usize,
    /// Records read (including seals).
    pub records: u64,
    pub last_seq: u64,
    /// Seal records verified.
    pub seals: u64,
    /// Seq of the last seal (0 if none).
    pub last_sealed_seq: u64,
    /// Epoch in `seal.key`.
    pub key_epoch: u64,
    /// Whether a writer held the journal during verification.
    pub writer_live: bool,
    /// Records after the last seal (only possible with a live writer).
    pub unsealed: u64,
    /// `torn_tail` records found: recoveries after crashes.
    pub torn_tails: Vec<u64>,
    /// Things an auditor should know that are not failures (including
    /// records whose time goes backwards or lies in the future).
    pub warnings: Vec<String>,
    /// Records whose time goes backwards, lies more than
    /// [`FUTURE_TOLERANCE`] ahead of the verifier's clock, or does not parse.
    pub time_problems: u64,
    /// `intent` records no later record names in `detail.intent` (counted
    /// up to [`super::MAX_DANGLING`]); a warning when no writer runs.
    pub open_intents: u64,
    /// The last verified seal, to keep off the machine and pass to a later
    /// `verify --since`.
    pub checkpoint: Option<Checkpoint>,
    /// The checkpoint given with `--since`, proven extended by this journal.
    pub extends: Option<Checkpoint>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit journal {} verified: {} records (seq 1..{}) in {} segment(s), {} seal(s), last sealed seq {}",
            self.journal_id, self.records, self.last_seq, self.segments, self.seals, self.last_sealed_seq
        )?;
        if self.unsealed > 0 {
            write!(f, ", {} record(s) after it not yet sealed (writer running)", self.unsealed)?;
        }
        for w in &self.warnings {
            write!(f, "\nwarning: {w}")?;
        }
        if let Some(c) = &self.extends {
            write!(f, "\nextends checkpoint {c}: seq {} is present, sealed and unchanged", c.seq)?;
        }
        if let Some(c) = &self.checkpoint {
            write!(f, "\ncheckpoint: {c}")?;
        }
        Ok(())
    }
}

struct Entry {
    info: LineInfo,
    bytes: Vec<u8>,
    hash: Hash,
    rec: Option<Record>,
    prev: Option<Hash>,
}

impl Entry {
    fn seq(&self) -> Option<u64> {
        self.rec.as_ref().map(|r| r.seq)
    }
    fn location(&self) -> Option<(String, u64)> {
        Some((segment_name(self.info.segment), self.info.line_no))
    }
}

struct Cursor {
    lines: Lines,
    buf: VecDeque<Entry>,
}

impl Cursor {
    fn read(&mut self) -> Result<Option<Entry>, JournalError> {
        let mut bytes = Vec::new();
        let Some(info) = self.lines.read_line(&mut bytes)? else {
            return Ok(None);
        };
        let rec = if info.complete { Record::parse(&bytes).ok() } else { None };
        let prev = rec.as_ref().and_then(|r| from_hex::<32>(&r.prev));
        let rec = if prev.is_some() { rec } else { None };
        Ok(Some(Entry { hash: line_hash(&bytes), info, bytes, rec, prev }))
    }

    fn next(&mut self) -> Result<Option<Entry>, JournalError> {
        match self.buf.pop_front() {
            Some(e) => Ok(Some(e)),
            None => self.read(),
        }
    }

    fn peek(&mut self, i: usize) -> Result<Option<&Entry>, JournalError> {
        while self.buf.len() <= i {
            match self.read()? {
                Some(e) => self.buf.push_back(e),
                None => return Ok(None),
            }
        }
        Ok(self.buf.get(i))
    }
}

/// Where verification stands after the last good record.
struct Walk<'k> {
    key: &'k AuditorKey,
    tip: Tip,
    /// `prev` of the last good record (the hash of the one before it).
    tip_prev: Hash,
    tip_bytes: Vec<u8>,
    epoch_key: EpochKey,
    epoch_first_seq: u64,
    seals: u64,
    last_seal_seq: u64,
    /// Line hash of the seal at `last_seal_seq`.
    last_seal_hash: Hash,
    records: u64,
    /// The checkpoint to prove extended, and whether its seq was reached.
    since: Option<Checkpoint>,
    since_seen: bool,
    /// Time of the previous record, and the verifier's clock plus tolerance.
    prev_time: Option<UnixNanos>,
    latest_ok: UnixNanos,
    time_problems: u64,
    time_notes: Vec<String>,
    /// Intents without an outcome so far: seq -> kind (bounded).
    open_intents: std::collections::BTreeMap<u64, EventKind>,
    torn_tails: Vec<u64>,
    /// (first missing segment number, last missing, the segment after the gap).
    segment_gaps: Vec<(u64, u64, u64)>,
}

/// Verifies the journal in `audit_dir` against the auditor key. Streams the
/// segments; memory stays bounded however long the journal is.
pub fn verify(audit_dir: &Path, key: &AuditorKey) -> Result<VerifyReport, VerifyError> {
    verify_since(audit_dir, key, None)
}

/// Like [`verify`], and with `since` also proves that the journal extends
/// that checkpoint: the record at its seq exists, is a seal, has its hash,
/// and the chain continues from it. Otherwise the problem is
/// [`ProblemKind::RolledBack`] (exit [`EXIT_ROLLED_BACK`]).
pub fn verify_since(
    audit_dir: &Path,
    key: &AuditorKey,
    since: Option<Checkpoint>,
) -> Result<VerifyReport, VerifyError> {
    // seal.key first: a live writer only moves it forward after the seal it
    // follows is durable, so the journal read next holds at least its seals.
    let key_path = audit_dir.join(SEAL_KEY_FILE);
    let sealed_state = match SealKeyState::read(audit_dir) {
        Ok(s) => Some(s),
        Err(JournalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
        Err(e @ JournalError::KeyFile { .. }) => {
            return Err(VerifyError::Failed(Problem {
                seq: 0,
                kind: ProblemKind::KeyState,
                what: format!("{e}"),
                location: None,
            }));
        }
        Err(e) => return Err(VerifyError::Journal(e)),
    };
    let writer_live = writer_is_live(audit_dir)?;
    let lines = Lines::open(audit_dir)?;
    let segments: Vec<u64> = lines.segments().iter().map(|s| s.number).collect();
    let mut walk = Walk {
        key,
        tip: Tip::START,
        tip_prev: Tip::START.hash,
        tip_bytes: Vec::new(),
        epoch_key: EpochKey::from_bytes(0, key.k0().expose_secret()),
        epoch_first_seq: 1,
        seals: 0,
        last_seal_seq: 0,
        last_seal_hash: [0u8; 32],
        records: 0,
        since,
        since_seen: false,
        prev_time: None,
        latest_ok: unix_nanos(std::time::SystemTime::now()) + FUTURE_TOLERANCE.as_nanos() as i128,
        time_problems: 0,
        time_notes: Vec::new(),
        open_intents: std::collections::BTreeMap::new(),
        torn_tails: Vec::new(),
        segment_gaps: gaps(&segments),
    };
    let mut cursor = Cursor { lines, buf: VecDeque::new() };
    let mut torn: Option<Entry> = None;

    // A line longer than any record is damage at the record after the tip.
    let too_long = |e: JournalError, seq: u64| match e {
        JournalError::LineTooLong { path, line, limit } => VerifyError::Failed(Problem {
            seq,
            kind: ProblemKind::Changed,
            what: format!("a line is longer than {limit} bytes, more than any record the journal writes"),
            location: Some((
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                line.unwrap_or(0),
            )),
        }),
        e => VerifyError::Journal(e),
    };
    while let Some(cur) = cursor.next().map_err(|e| too_long(e, walk.tip.seq + 1))? {
        if !cur.info.complete {
            let is_end = cur.info.last_in_segment && segments.last() == Some(&cur.info.segment);
            if is_end {
                torn = Some(cur);
                break;
            }
            return Err(fail(
                walk.tip.seq + 1,
                ProblemKind::Changed,
                format!("segment {} ends inside a record", segment_name(cur.info.segment)),
                &cur,
            ));
        }
        let follows = match (&cur.rec, &cur.prev) {
            (Some(r), Some(p)) => walk.tip.is_followed_by(r.seq, p),
            _ => false,
        };
        if !follows {
            let seq = walk.tip.seq + 1;
            return Err(VerifyError::Failed(walk.classify(&cur, &mut cursor).map_err(|e| too_long(e, seq))?));
        }
        walk.accept(cur)?;
    }

    let last_seq = walk.tip.seq;
    if walk.records == 0 && torn.is_none() {
        return Err(VerifyError::Failed(Problem {
            seq: 1,
            kind: if segments.is_empty() { ProblemKind::Missing } else { ProblemKind::Truncated },
            what: "the journal holds no records (every segment is missing or empty)".into(),
            location: None,
        }));
    }

    // The checkpoint before anything else: a restored older copy is
    // consistent in itself, so this is what names it.
    if let Some(c) = since.filter(|_| !walk.since_seen) {
        return Err(VerifyError::Failed(Problem {
            seq: c.seq,
            kind: ProblemKind::RolledBack,
            what: format!(
                "the journal ends at seq {last_seq}, before the checkpoint's seq {}: it was restored from an older \
                 copy or records up to the checkpoint were cut",
                c.seq
            ),
            location: None,
        }));
    }

    let mut report = VerifyReport {
        journal_id: key.journal_id_hex(),
        segments: segments.len(),
        records: walk.records,
        last_seq,
        seals: walk.seals,
        last_sealed_seq: walk.last_seal_seq,
        writer_live,
        torn_tails: walk.torn_tails.clone(),
        time_problems: walk.time_problems,
        open_intents: walk.open_intents.len() as u64,
        checkpoint: (walk.last_seal_seq > 0)
            .then_some(Checkpoint { seq: walk.last_seal_seq, hash: walk.last_seal_hash }),
        extends: since,
        ..VerifyReport::default()
    };
    report.warnings.append(&mut walk.time_notes);
    if !writer_live && !walk.open_intents.is_empty() {
        let first: Vec<String> =
            walk.open_intents.iter().take(5).map(|(seq, kind)| format!("seq {seq} ({kind})")).collect();
        report.warnings.push(format!(
            "{} intent record(s) have no outcome ({}{}): the daemon stopped before reporting them; the next mount \
             records them as interrupted",
            walk.open_intents.len(),
            first.join(", "),
            if walk.open_intents.len() > first.len() { ", ..." } else { "" }
        ));
    }
    if walk.time_problems > MAX_TIME_NOTES as u64 {
        report.warnings.push(format!(
            "{} more record(s) with a time going backwards or in the future",
            walk.time_problems - MAX_TIME_NOTES as u64
        ));
    }
    for &(a, b, _) in &walk.segment_gaps {
        report.warnings.push(format!(
            "segment numbers {} are absent although no record is missing",
            if a == b { segment_name(a) } else { format!("{}..{}", segment_name(a), segment_name(b)) }
        ));
    }

    // Sealed records at the end must all be present: seal.key tells how many
    // epochs were sealed, and its key proves it was not rolled back.
    let Some(state) = sealed_state else {
        return Err(VerifyError::Failed(Problem {
            seq: last_seq + 1,
            kind: ProblemKind::KeyState,
            what: format!("{} is missing, so truncation of sealed records cannot be ruled out", key_path.display()),
            location: None,
        }));
    };
    let e0 = state.key.epoch();
    report.key_epoch = e0;
    if state.journal_id != *key.journal_id() {
        return Err(VerifyError::Failed(Problem {
            seq: last_seq + 1,
            kind: ProblemKind::KeyState,
            what: format!("{} belongs to journal {}, not this one", key_path.display(), to_hex(&state.journal_id)),
            location: None,
        }));
    }
    if walk.seals < e0 {
        return Err(VerifyError::Failed(Problem {
            seq: last_seq + 1,
            kind: ProblemKind::Truncated,
            what: format!(
                "the journal ends at seq {last_seq} after {} seal(s), but seal.key shows {e0} epoch(s) sealed: \
                 records sealed after seq {} were removed",
                walk.seals, walk.last_seal_seq
            ),
            location: None,
        }));
    }
    if walk.seals > e0.saturating_add(1) {
        return Err(VerifyError::Failed(Problem {
            seq: walk.last_seal_seq,
            kind: ProblemKind::KeyState,
            what: format!(
                "seal.key is at epoch {e0} but the journal holds seals up to epoch {}: seal.key was rolled back",
                walk.seals - 1
            ),
            location: None,
        }));
    }
    // epoch_key is now K_{seals}. seal.key holds K_{e0}, e0 = seals or seals - 1.
    let derives = if e0 == walk.seals {
        walk.epoch_key.same_as(&state.key)
    } else {
        walk.key.k0().evolve_to(e0).is_some_and(|k| k.same_as(&state.key))
    };
    if !derives {
        return Err(VerifyError::Failed(Problem {
            seq: last_seq + 1,
            kind: ProblemKind::KeyState,
            what: format!(
                "seal.key (epoch {e0}) does not derive from the auditor key: it was replaced, so seals after it cannot be trusted"
            ),
            location: None,
        }));
    }
    if walk.seals == e0.saturating_add(1) && !writer_live {
        report.warnings.push(format!(
            "the writer stopped after the seal of epoch {e0} but before saving the next key; the next mount finishes this"
        ));
    }

    if let Some(t) = torn {
        if writer_live {
            report.warnings.push(format!("a record after seq {last_seq} is being written"));
        } else {
            return Err(fail(
                last_seq + 1,
                ProblemKind::TornTail,
                format!(
                    "the last record is incomplete ({} bytes) and no writer is running: a crash during a write; \
                     the next mount sets it aside, records a torn_tail event and seals",
                    t.bytes.len()
                ),
                &t,
            ));
        }
    }
    if last_seq > walk.last_seal_seq {
        let n = last_seq - walk.last_seal_seq;
        if writer_live {
            report.unsealed = n;
        } else {
            return Err(VerifyError::Failed(Problem {
                seq: walk.last_seal_seq + 1,
                kind: ProblemKind::UnsealedTail,
                what: format!(
                    "unsealed tail after seq {}: {n} record(s) up to seq {last_seq} are covered by no seal and no writer \
                     is running (the writer stopped without closing, or they were appended afterwards); \
                     the next mount seals them",
                    walk.last_seal_seq
                ),
                location: None,
            }));
        }
    }
    Ok(report)
}

fn fail(seq: u64, kind: ProblemKind, what: String, at: &Entry) -> VerifyError {
    VerifyError::Failed(Problem { seq, kind, what, location: at.location() })
}

/// Gaps in segment numbering: (first missing, last missing, segment after).
fn gaps(numbers: &[u64]) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut expect = 1;
    for &n in numbers {
        if n > expect {
            out.push((expect, n - 1, n));
        }
        expect = n.saturating_add(1);
    }
    out
}

impl Walk<'_> {
    fn accept(&mut self, cur: Entry) -> Result<(), VerifyError> {
        let Some(rec) = &cur.rec else { return Ok(()) };
        let seq = rec.seq;
        if seq == 1 {
            if rec.event != EventKind::Genesis {
                return Err(fail(1, ProblemKind::Changed, "the first record is not the genesis record".into(), &cur));
            }
            let id = rec.detail.journal_id.clone().unwrap_or_default();
            if id != self.key.journal_id_hex() {
                return Err(VerifyError::WrongKey { key_journal: self.key.journal_id_hex(), journal: id });
            }
        } else if rec.event == EventKind::Genesis {
            return Err(fail(seq, ProblemKind::Inserted, "a second genesis record".into(), &cur));
        }
        if rec.event == EventKind::Seal {
            self.check_seal(&cur, rec)?;
            self.seals += 1;
            self.epoch_key.advance();
            self.epoch_first_seq = seq + 1;
            self.last_seal_seq = seq;
            self.last_seal_hash = cur.hash;
        }
        if let Some(c) = self.since.filter(|c| c.seq == seq) {
            let what = if rec.event != EventKind::Seal {
                Some(format!("seq {seq} is a {} record, not the seal the checkpoint names", rec.event))
            } else if cur.hash != c.hash {
                Some(format!(
                    "seq {seq} is a seal with hash {}, not the checkpoint's {}: the journal was replaced by \
                     another history",
                    to_hex(&cur.hash),
                    to_hex(&c.hash)
                ))
            } else {
                None
            };
            if let Some(what) = what {
                return Err(fail(seq, ProblemKind::RolledBack, what, &cur));
            }
            self.since_seen = true;
        }
        self.check_time(seq, &rec.ts);
        if rec.outcome == super::record::Outcome::Intent {
            if self.open_intents.len() < super::intents::MAX_DANGLING {
                self.open_intents.insert(seq, rec.event);
            }
        } else if let Some(i) = rec.detail.intent {
            self.open_intents.remove(&i);
        }
        if rec.event == EventKind::TornTail {
            self.torn_tails.push(seq);
        }
        self.records += 1;
        self.tip_prev = cur.prev.unwrap_or(self.tip_prev);
        self.tip = Tip { seq, hash: cur.hash };
        self.tip_bytes = cur.bytes;
        Ok(())
    }

    /// Notes a record whose time is invalid, earlier than the previous
    /// record's, or ahead of the verifier's clock by more than the tolerance.
    fn check_time(&mut self, seq: u64, ts: &str) {
        let t = parse_time(ts);
        let note = match (t, self.prev_time) {
            (None, _) => Some(format!("seq {seq}: the time {ts:?} is not a valid timestamp")),
            (Some(t), Some(p)) if t < p => Some(format!(
                "seq {seq}: time goes backwards: {ts} is before {} of seq {}",
                format_unix_nanos(p),
                seq - 1
            )),
            (Some(t), _) if t > self.latest_ok => Some(format!(
                "seq {seq}: time {ts} is in the future (more than {} s ahead of this machine's clock)",
                FUTURE_TOLERANCE.as_secs()
            )),
            _ => None,
        };
        if let Some(n) = note {
            self.time_problems += 1;
            if self.time_notes.len() < MAX_TIME_NOTES {
                self.time_notes.push(n);
            }
        }
        if t.is_some() {
            self.prev_time = t;
        }
    }

    fn check_seal(&self, cur: &Entry, rec: &Record) -> Result<(), VerifyError> {
        let d = &rec.detail;
        let epoch = self.epoch_key.epoch();
        let want = (
            Some(epoch),
            Some(self.epoch_first_seq),
            Some(rec.seq - 1),
            Some(rec.seq - self.epoch_first_seq),
            Some(to_hex(&self.tip.hash)),
        );
        let got = (d.epoch, d.first_seq, d.last_seq, d.records, d.chain.clone());
        if got != want {
            return Err(fail(
                rec.seq,
                ProblemKind::BadSeal,
                format!(
                    "the seal's fields (epoch {:?}, seq {:?}..{:?}) disagree with the journal (epoch {epoch}, seq {}..{})",
                    d.epoch,
                    d.first_seq,
                    d.last_seq,
                    self.epoch_first_seq,
                    rec.seq - 1
                ),
                cur,
            ));
        }
        if !check_mac(&cur.bytes, &self.epoch_key, self.key.journal_id()) {
            return Err(fail(
                rec.seq,
                ProblemKind::BadSeal,
                format!(
                    "the seal of epoch {epoch} does not verify under the auditor key: records {}..{} or the seal \
                     itself were changed after sealing (re-chained or re-sealed without the epoch key)",
                    self.epoch_first_seq,
                    rec.seq - 1
                ),
                cur,
            ));
        }
        Ok(())
    }

    /// Names what went wrong at `cur`, which does not follow the tip.
    fn classify(&self, cur: &Entry, cursor: &mut Cursor) -> Result<Problem, JournalError> {
        let e = self.tip.seq + 1;
        let h = self.tip.hash;
        let at = |seq: u64, kind: ProblemKind, what: String| Problem { seq, kind, what, location: cur.location() };
        let next_chains_to = |n: Option<&Entry>, hash: &Hash| n.and_then(|n| n.prev).is_some_and(|p| &p == hash);

        let Some(seq) = cur.seq() else {
            let next = cursor.peek(0)?;
            if next.and_then(|n| n.seq()) == Some(e) && next_chains_to(next, &h) {
                return Ok(at(
                    e,
                    ProblemKind::Inserted,
                    format!("a line that is not a record was inserted after seq {} (before seq {e})", e - 1),
                ));
            }
            return Ok(at(e, ProblemKind::Changed, "the record is not valid JSON for a journal record".into()));
        };
        let prev_ok = cur.prev.is_some_and(|p| p == h);

        if seq == e {
            // The chain breaks here: this line's `prev` or the line before changed.
            if e == 1 {
                return Ok(at(1, ProblemKind::Changed, "the genesis record's prev is not all zeros".into()));
            }
            let next = cursor.peek(0)?;
            let before_changed = match next {
                Some(_) => next_chains_to(next, &cur.hash),
                None => {
                    cur.rec.as_ref().is_some_and(|r| r.event != EventKind::Seal)
                        || check_mac(&cur.bytes, &self.epoch_key, self.key.journal_id())
                }
            };
            if before_changed {
                let mut p = at(
                    e - 1,
                    ProblemKind::Changed,
                    format!("its content no longer matches the hash stored in seq {e}"),
                );
                p.location = cur.location().map(|(s, l)| if l > 1 { (s, l - 1) } else { (s, l) });
                return Ok(p);
            }
            return Ok(at(e, ProblemKind::Changed, format!("its prev field does not match seq {}", e - 1)));
        }

        if seq > e {
            // Is the missing seq a little further on?
            let mut found = None;
            let mut chained_from_cur = false;
            for i in 0..LOOKAHEAD {
                let Some(n) = cursor.peek(i)? else { break };
                if n.prev == Some(cur.hash) {
                    chained_from_cur = true;
                }
                if found.is_none() && n.seq() == Some(e) {
                    found = Some(i);
                }
                if found.is_some() && chained_from_cur {
                    break;
                }
            }
            if let Some(j) = found {
                let next = cursor.peek(0)?;
                if j == 0 && next_chains_to(next, &h) && !chained_from_cur {
                    return Ok(at(
                        e,
                        ProblemKind::Inserted,
                        format!("a record claiming seq {seq} was inserted after seq {} (before seq {e})", e - 1),
                    ));
                }
                return Ok(at(
                    e,
                    ProblemKind::Reordered,
                    format!("seq {seq} stands where seq {e} belongs; seq {e} comes {} line(s) later", j + 1),
                ));
            }
            let next = cursor.peek(0)?;
            if prev_ok && next.and_then(|n| n.seq()) == Some(e + 1) {
                return Ok(at(e, ProblemKind::Changed, format!("its seq field reads {seq}")));
            }
            let mut what = if seq == e + 1 {
                format!("seq {e} is missing (seq {} is followed by seq {seq})", e - 1)
            } else {
                format!("seq {e}..{} are missing (seq {} is followed by seq {seq})", seq - 1, e - 1)
            };
            if cur.info.line_no == 1 {
                if let Some(&(a, b, _)) = self.segment_gaps.iter().find(|g| g.2 == cur.info.segment) {
                    if a == b {
                        what.push_str(&format!("; segment {} is missing", segment_name(a)));
                    } else {
                        what.push_str(&format!("; segments {}..{} are missing", segment_name(a), segment_name(b)));
                    }
                }
            }
            return Ok(at(e, ProblemKind::Missing, what));
        }

        // seq < e: a record from earlier appears again, or a forged one.
        let next = cursor.peek(0)?;
        if next.and_then(|n| n.seq()) == Some(e) && next_chains_to(next, &h) {
            let what = if cur.bytes == self.tip_bytes {
                format!("a duplicate of seq {seq} was inserted after it (before seq {e})")
            } else {
                format!("a record claiming seq {seq} was inserted after seq {} (before seq {e})", e - 1)
            };
            return Ok(at(e, ProblemKind::Inserted, what));
        }
        if seq == e - 1 && cur.prev == Some(self.tip_prev) {
            let what = if cur.bytes == self.tip_bytes {
                format!("a duplicate of seq {seq} was inserted after it (before seq {e})")
            } else if next_chains_to(next, &cur.hash) {
                format!("two records claim seq {seq}; the first was inserted (the chain continues from the second)")
            } else {
                format!("two records claim seq {seq}; the second was inserted")
            };
            return Ok(at(seq, ProblemKind::Inserted, what));
        }
        if prev_ok {
            return Ok(at(e, ProblemKind::Changed, format!("its seq field reads {seq}")));
        }
        Ok(at(e, ProblemKind::Reordered, format!("seq {seq} appears after seq {} (out of order)", e - 1)))
    }
}
