//! The appender: one record per event, durable before `append` returns, with group commit and sealing.
//!
//! Group commit: an appender serializes its record under the state lock and
//! queues the line. If no other thread is writing, it becomes the leader:
//! it takes every queued line, writes them with one `write`, calls
//! `fdatasync` once, and wakes everyone whose record that covered. Threads
//! arriving meanwhile queue behind it; the next leader takes them all.
//!
//! Failure: if a write or sync fails, every record of that batch and every
//! record queued after it is refused (their appenders get the error), the
//! segment is cut back to the last durable byte, and the chain rolls back.
//! If the cut itself fails, the journal refuses everything until reopened.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::JournalError;
use super::actor::Actor;
use super::chain::{Hash, line_hash, to_hex};
use super::keyfile::{SEAL_KEY_FILE, SEAL_KEY_TMP, SealKeyState};
use super::lock::{self, JournalLock};
use super::record::{Detail, Event, EventKind, Record};
use super::recover::{self, TornInfo};
use super::requests;
use super::seal::{EpochKey, JOURNAL_ID_LEN, MAC_PLACEHOLDER, fill_mac};
use super::segment::{MAX_LINE, create_segment, segment_name};
use super::syslog::{Syslog, SyslogOptions};
use super::time::format_rfc3339_nanos;

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;
/// Default number of records per sealing epoch.
pub const DEFAULT_EPOCH_RECORDS: u64 = 1000;
/// Default longest sealing epoch.
pub const DEFAULT_EPOCH_DURATION: Duration = Duration::from_secs(60);

/// Callback run with the path of each finished segment (the daemon sets
/// FS_APPEND_FL there). Must be idempotent: it may run again for the same
/// segment after a restart.
pub type SegmentFinished = Box<dyn Fn(&Path) + Send + Sync>;

/// How the journal is written.
pub struct JournalOptions {
    /// Rotate when the active segment reaches this many bytes.
    pub segment_size: u64,
    /// Seal after this many records...
    pub epoch_records: u64,
    /// ...or this long after the first unsealed record, whichever is first.
    pub epoch_duration: Duration,
    /// Called with each finished segment's path.
    pub on_segment_finished: Option<SegmentFinished>,
    /// Forward each durable record to syslog (failures there never fail an append).
    pub syslog: Option<SyslogOptions>,
    /// Who writes the journal's own records (seal, torn_tail); defaults to
    /// the current process.
    pub actor: Option<Actor>,
    /// How long `open` waits for another writer to let go of the lock.
    pub lock_wait: Duration,
    /// Record events queued in `audit/requests/` by keytool commands.
    pub ingest_requests: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            epoch_records: DEFAULT_EPOCH_RECORDS,
            epoch_duration: DEFAULT_EPOCH_DURATION,
            on_segment_finished: None,
            syslog: None,
            actor: None,
            lock_wait: Duration::from_secs(10),
            ingest_requests: true,
        }
    }
}

/// Position of the chain and of the sealing epoch, as assigned (tentative)
/// or as durable (committed).
#[derive(Clone, Debug)]
struct Chain {
    next_seq: u64,
    last_hash: Hash,
    epoch: u64,
    epoch_first_seq: u64,
    epoch_records: u64,
    epoch_started: Option<Instant>,
}

/// The segment being appended to. `len` counts durable bytes only.
#[derive(Clone)]
struct Active {
    file: Arc<File>,
    number: u64,
    path: PathBuf,
    len: u64,
}

struct Failure {
    /// Generation in which the failed batch was queued.
    generation: u64,
    /// Every seq below this was durable when the failure happened.
    first_failed_seq: u64,
    error: JournalError,
}

struct State {
    tentative: Chain,
    committed: Chain,
    pending: Vec<u8>,
    pending_msgs: Vec<Vec<u8>>,
    pending_seal: bool,
    /// A seal is queued or being written, or its successor key is not yet
    /// saved: no other seal may be made until this clears.
    seal_in_flight: bool,
    /// The key advanced in memory but `seal.key` could not be rewritten.
    key_unsaved: bool,
    durable_seq: u64,
    generation: u64,
    failures: VecDeque<Failure>,
    leader_active: bool,
    /// Appenders waiting on `cond` for a leader's batch; with none, the
    /// leader skips the wake-up (a system call per batch otherwise).
    waiters: usize,
    active: Active,
    broken: Option<String>,
    closed: bool,
}

impl State {
    fn usable(&self) -> Result<(), JournalError> {
        if self.closed {
            return Err(JournalError::Broken { why: "the journal was closed".into() });
        }
        match &self.broken {
            Some(why) => Err(JournalError::Broken { why: why.clone() }),
            None => Ok(()),
        }
    }
}

struct Inner {
    dir: PathBuf,
    journal_id: [u8; JOURNAL_ID_LEN],
    segment_size: u64,
    epoch_records: u64,
    epoch_duration: Duration,
    on_segment_finished: Option<SegmentFinished>,
    syslog: Option<Syslog>,
    actor: Actor,
    ingest_requests: bool,
    state: Mutex<State>,
    cond: Condvar,
    /// K_epoch. Locked after `state` when both are needed.
    key: Mutex<EpochKey>,
    syncs: AtomicU64,
    stop: Mutex<bool>,
    stop_cond: Condvar,
    _lock: JournalLock,
}

/// The audit journal, open for appending. `Send + Sync`: share it between
/// FUSE worker threads behind an `Arc`.
pub struct Journal {
    inner: Arc<Inner>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

/// Result of writing one batch.
struct BatchDone {
    key_saved: bool,
}

impl Journal {
    /// Opens the journal in `audit_dir` for appending: takes the writer
    /// lock, recovers a torn tail (set aside, recorded as `torn_tail`),
    /// checks `seal.key` against the last seal, and seals whatever the
    /// previous writer left unsealed.
    pub fn open(audit_dir: &Path, opts: JournalOptions) -> Result<Journal, JournalError> {
        if opts.segment_size == 0 || opts.epoch_records == 0 || opts.epoch_duration.is_zero() {
            return Err(JournalError::InvalidOption(
                "segment size, epoch records and epoch duration must all be above zero".into(),
            ));
        }
        let dir = audit_dir.to_path_buf();
        if !dir.join(SEAL_KEY_FILE).exists() {
            return Err(JournalError::NotInitialized { dir });
        }
        let lock = lock::acquire(&dir, opts.lock_wait)?;
        if opts.ingest_requests {
            requests::make_sticky(&dir);
        }
        // A leftover temporary key from a crash during replacement: the
        // rename never happened, so seal.key is the one in force.
        let _ = std::fs::remove_file(dir.join(SEAL_KEY_TMP));
        let mut sk = SealKeyState::read(&dir)?;
        let rec = recover::recover(&dir, sk.key.epoch())?;
        if rec.tip.seq == 0 {
            return Err(JournalError::damaged(
                &rec.active.path,
                "the journal has no genesis record (initialization never finished)",
            ));
        }
        // Numbers read from disk: keep all arithmetic below far from overflow.
        let sane =
            rec.tip.seq < u64::MAX / 2 && rec.last_seal.is_none_or(|(l, s)| l < u64::MAX / 2 && s <= rec.tip.seq);
        if !sane {
            return Err(JournalError::damaged(&rec.active.path, "sequence or epoch numbers out of range"));
        }
        let key_epoch = sk.key.epoch();
        let key_path = dir.join(SEAL_KEY_FILE);
        match rec.last_seal {
            None if key_epoch == 0 => {}
            Some((l, _)) if key_epoch == l + 1 => {}
            Some((l, _)) if key_epoch == l => {
                // Crashed after the seal of epoch l was durable but before
                // its successor key was saved: finish that step now.
                sk.key.advance();
                sk.replace(&dir)?;
            }
            last => {
                let what = match last {
                    None => {
                        format!("seal.key is at epoch {key_epoch} but the journal holds no seal")
                    }
                    Some((l, seq)) => {
                        format!("seal.key is at epoch {key_epoch} but the last seal (seq {seq}) is of epoch {l}")
                    }
                };
                return Err(JournalError::KeyState { path: key_path, what });
            }
        }
        // The key state checks out: now the torn tail may be moved aside.
        let torn = match rec.torn {
            Some((start, end)) => Some(recover::set_aside(&dir, &rec.active, start, end)?),
            None => None,
        };
        let epoch_first_seq = rec.last_seal.map(|(_, s)| s + 1).unwrap_or(1);
        let epoch_records = (rec.tip.seq + 1).saturating_sub(epoch_first_seq);
        let chain = Chain {
            next_seq: rec.tip.seq + 1,
            last_hash: rec.tip.hash,
            epoch: sk.key.epoch(),
            epoch_first_seq,
            epoch_records,
            epoch_started: (epoch_records > 0).then(Instant::now),
        };
        let file = OpenOptions::new()
            .append(true)
            .open(&rec.active.path)
            .map_err(|e| JournalError::io(&rec.active.path, "open for append", e))?;
        if let (Some(prev), Some(cb)) = (&rec.previous, &opts.on_segment_finished) {
            run_callback(cb, prev);
        }
        let active = Active {
            file: Arc::new(file),
            number: rec.active.number,
            path: rec.active.path.clone(),
            len: rec.active_len,
        };
        let SealKeyState { journal_id, key } = sk;
        let inner = Arc::new(Inner {
            dir,
            journal_id,
            segment_size: opts.segment_size,
            epoch_records: opts.epoch_records,
            epoch_duration: opts.epoch_duration,
            on_segment_finished: opts.on_segment_finished,
            syslog: opts.syslog.map(Syslog::new),
            actor: opts.actor.unwrap_or_else(Actor::current_process),
            ingest_requests: opts.ingest_requests,
            state: Mutex::new(State {
                tentative: chain.clone(),
                committed: chain,
                pending: Vec::new(),
                pending_msgs: Vec::new(),
                pending_seal: false,
                seal_in_flight: false,
                key_unsaved: false,
                durable_seq: rec.tip.seq,
                generation: 0,
                failures: VecDeque::new(),
                leader_active: false,
                waiters: 0,
                active,
                broken: None,
                closed: false,
            }),
            cond: Condvar::new(),
            key: Mutex::new(key),
            syncs: AtomicU64::new(0),
            stop: Mutex::new(false),
            stop_cond: Condvar::new(),
            _lock: lock,
        });
        let journal = Journal { inner: inner.clone(), ticker: Mutex::new(None) };
        if let Some(t) = torn {
            inner.append_event(torn_event(&inner.actor, t))?;
        }
        if epoch_records > 0 || inner.lock_state().tentative.epoch_records > 0 {
            inner.seal_now()?;
        }
        if inner.ingest_requests {
            inner.ingest();
        }
        let ticker_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name("callvault-journal".into())
            .spawn(move || ticker_inner.run_ticker())
            .map_err(|e| JournalError::io(&inner.dir, "start journal thread", e))?;
        *journal.ticker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(journal)
    }

    /// Appends one event and returns its sequence number once the record is
    /// on stable storage. On error the caller must refuse the operation
    /// (EIO): the event was not recorded.
    pub fn append(&self, ev: Event) -> Result<u64, JournalError> {
        if ev.kind.is_internal() {
            return Err(JournalError::InvalidOption(format!("{} records are written by the journal itself", ev.kind)));
        }
        self.inner.append_event(ev)
    }

    /// Queues one event without waiting for it to reach stable storage, and
    /// returns its sequence number. It is written with the next batch: the
    /// next append's, or the journal thread's within a second. Only for a
    /// record whose loss in a crash or a failed batch is accounted for
    /// otherwise: the outcome of an operation whose `intent` record is
    /// durable (an intent left without its outcome is recorded as
    /// interrupted at the next mount). An error means the journal refuses
    /// records at all (closed or broken).
    pub fn append_lazily(&self, ev: Event) -> Result<u64, JournalError> {
        if ev.kind.is_internal() {
            return Err(JournalError::InvalidOption(format!("{} records are written by the journal itself", ev.kind)));
        }
        self.inner.enqueue_lazily(ev)
    }

    /// Appends several events as one batch (one `fdatasync`), in order, and
    /// returns their sequence numbers once all are durable. All or none: on
    /// error none of them was recorded.
    pub fn append_all(&self, events: Vec<Event>) -> Result<std::ops::RangeInclusive<u64>, JournalError> {
        if let Some(ev) = events.iter().find(|e| e.kind.is_internal()) {
            return Err(JournalError::InvalidOption(format!("{} records are written by the journal itself", ev.kind)));
        }
        self.inner.append_events(events)
    }

    /// Ends the current epoch now (if it has records): writes its seal and
    /// erases its key. Also done automatically per the epoch options.
    pub fn seal(&self) -> Result<(), JournalError> {
        self.inner.seal_now()
    }

    /// Writes a final seal and stops accepting records.
    pub fn close(self) -> Result<(), JournalError> {
        self.shutdown()
    }

    /// Like `close`, for a journal shared behind an `Arc`: later appends
    /// fail. Idempotent.
    pub fn shutdown(&self) -> Result<(), JournalError> {
        self.stop_ticker();
        self.inner.finish()
    }

    /// Highest sequence number known to be durable.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock_state().durable_seq
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The journal id, 32 hex digits.
    pub fn journal_id(&self) -> String {
        to_hex(&self.inner.journal_id)
    }

    /// Number of `fdatasync` calls on segments so far (tests, metrics).
    pub fn sync_count(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// Number of records that could not be forwarded to syslog.
    pub fn syslog_failures(&self) -> u64 {
        self.inner.syslog.as_ref().map(|s| s.failures.load(Ordering::Relaxed)).unwrap_or(0)
    }

    fn stop_ticker(&self) {
        *self.inner.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.inner.stop_cond.notify_all();
        let handle = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Best effort: a journal dropped without `close` still gets its
        // final seal when the disk allows. A failure here leaves an unsealed
        // tail, which the next `open` seals.
        let _ = self.shutdown();
    }
}

/// Runs the daemon's callback; a panic in it must not leave the journal
/// without a leader forever, so it is caught and ignored.
fn run_callback(cb: &SegmentFinished, path: &Path) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(path)));
}

fn torn_event(actor: &Actor, t: TornInfo) -> Event {
    Event::new(EventKind::TornTail, actor.clone()).detail(Detail {
        torn_segment: Some(t.segment),
        torn_offset: Some(t.offset),
        torn_bytes: Some(t.bytes),
        torn_sha256: Some(t.sha256),
        saved_as: Some(t.saved_as),
        ..Detail::default()
    })
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_event(&self, ev: Event) -> Result<u64, JournalError> {
        let mut st = self.lock_state();
        st.usable()?;
        let seq = self.enqueue(&mut st, ev);
        if self.seal_due(&st) {
            self.enqueue_seal(&mut st);
        }
        let generation_at = st.generation;
        let (_st, r) = self.wait_for(st, seq, generation_at);
        r.map(|()| seq)
    }

    fn enqueue_lazily(&self, ev: Event) -> Result<u64, JournalError> {
        let mut st = self.lock_state();
        st.usable()?;
        let seq = self.enqueue(&mut st, ev);
        if self.seal_due(&st) {
            self.enqueue_seal(&mut st);
        }
        Ok(seq)
    }

    /// Writes and syncs whatever is queued (records appended lazily), if no
    /// batch is under way to take it. Errors reach the next append.
    fn flush_queued(&self) {
        let st = self.lock_state();
        if st.pending.is_empty() || st.leader_active || st.usable().is_err() {
            return;
        }
        let generation_at = st.generation;
        let target = st.tentative.next_seq - 1;
        let _ = self.wait_for(st, target, generation_at);
    }

    fn append_events(&self, events: Vec<Event>) -> Result<std::ops::RangeInclusive<u64>, JournalError> {
        let mut st = self.lock_state();
        st.usable()?;
        let first = st.tentative.next_seq;
        let mut last = first.saturating_sub(1);
        for ev in events {
            last = self.enqueue(&mut st, ev);
            if self.seal_due(&st) {
                self.enqueue_seal(&mut st);
            }
        }
        let generation_at = st.generation;
        let target = st.tentative.next_seq - 1;
        let (_st, r) = self.wait_for(st, target, generation_at);
        r.map(|()| first..=last)
    }

    fn seal_now(&self) -> Result<(), JournalError> {
        let st = self.lock_state();
        st.usable()?;
        // Finish whatever is queued or in flight, and a pending key save.
        let generation_at = st.generation;
        let target = st.tentative.next_seq - 1;
        let (mut st, r) = self.wait_for(st, target, generation_at);
        r?;
        if st.key_unsaved {
            st = self.lead(st);
            if st.key_unsaved {
                return Err(JournalError::Broken { why: "the next sealing key could not be saved".into() });
            }
        }
        if let Some(seq) = self.enqueue_seal(&mut st) {
            let generation_at = st.generation;
            let (_st, r) = self.wait_for(st, seq, generation_at);
            r?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), JournalError> {
        if self.lock_state().closed {
            return Ok(());
        }
        let r = self.seal_now();
        self.lock_state().closed = true;
        r
    }

    /// Serializes `ev` as the next record and queues its line.
    fn enqueue(&self, st: &mut State, ev: Event) -> u64 {
        let seq = st.tentative.next_seq;
        let mut rec =
            Record::from_event(ev, seq, format_rfc3339_nanos(SystemTime::now()), to_hex(&st.tentative.last_hash));
        let mut line = rec.to_line();
        if line.len() > MAX_LINE {
            // No reader accepts a longer line: keep the event, cut its text.
            rec.cut_to_fit();
            line = rec.to_line();
        }
        self.push_line(st, &rec, line);
        st.tentative.epoch_records += 1;
        st.tentative.epoch_started.get_or_insert_with(Instant::now);
        seq
    }

    fn push_line(&self, st: &mut State, rec: &Record, line: Vec<u8>) {
        if let Some(s) = &self.syslog {
            st.pending_msgs.push(s.message(rec, &line));
        }
        st.tentative.last_hash = line_hash(&line);
        st.tentative.next_seq += 1;
        st.pending.extend_from_slice(&line);
        st.pending.push(b'\n');
    }

    fn seal_due(&self, st: &State) -> bool {
        let c = &st.tentative;
        !st.seal_in_flight
            && c.epoch_records > 0
            && (c.epoch_records >= self.epoch_records
                || c.epoch_started.is_some_and(|t| t.elapsed() >= self.epoch_duration))
    }

    /// Queues the seal of the current epoch, if it has records and no other
    /// seal is in flight. Returns the seal's seq.
    fn enqueue_seal(&self, st: &mut State) -> Option<u64> {
        if st.seal_in_flight || st.tentative.epoch_records == 0 {
            return None;
        }
        let seq = st.tentative.next_seq;
        let c = st.tentative.clone();
        let chain_hex = to_hex(&c.last_hash);
        let ev = Event::new(EventKind::Seal, self.actor.clone()).detail(Detail {
            epoch: Some(c.epoch),
            first_seq: Some(c.epoch_first_seq),
            last_seq: Some(seq - 1),
            records: Some(c.epoch_records),
            chain: Some(chain_hex.clone()),
            mac: Some(MAC_PLACEHOLDER.to_string()),
            ..Detail::default()
        });
        let rec = Record::from_event(ev, seq, format_rfc3339_nanos(SystemTime::now()), chain_hex);
        let mut line = rec.to_line();
        {
            let key = self.key.lock().unwrap_or_else(|p| p.into_inner());
            debug_assert_eq!(key.epoch(), c.epoch);
            fill_mac(&mut line, &key, &self.journal_id);
        }
        self.push_line(st, &rec, line);
        st.tentative.epoch += 1;
        st.tentative.epoch_first_seq = seq + 1;
        st.tentative.epoch_records = 0;
        st.tentative.epoch_started = None;
        st.pending_seal = true;
        st.seal_in_flight = true;
        Some(seq)
    }

    /// Waits until `seq` (queued in generation `generation_at`) is durable, leading
    /// a batch whenever nobody else is.
    fn wait_for<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        seq: u64,
        generation_at: u64,
    ) -> (MutexGuard<'a, State>, Result<(), JournalError>) {
        loop {
            if st.generation != generation_at {
                let r = match st.failures.iter().find(|f| f.generation == generation_at) {
                    Some(f) if seq < f.first_failed_seq => Ok(()),
                    Some(f) => Err(f.error.duplicate()),
                    None => Err(JournalError::Broken { why: "a batch failed".into() }),
                };
                return (st, r);
            }
            if st.durable_seq >= seq {
                return (st, Ok(()));
            }
            if !st.leader_active {
                st = self.lead(st);
                continue;
            }
            st.waiters += 1;
            st = self.cond.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiters -= 1;
        }
    }

    /// Writes and syncs everything queued, as the one leader.
    fn lead<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.leader_active = true;
        let bytes = std::mem::take(&mut st.pending);
        let msgs = std::mem::take(&mut st.pending_msgs);
        let has_seal = std::mem::take(&mut st.pending_seal);
        let snapshot = st.tentative.clone();
        let key_unsaved = st.key_unsaved;
        let mut active = st.active.clone();
        let generation_at = st.generation;
        drop(st);

        let result = self.write_batch(&mut active, &bytes, has_seal, key_unsaved);

        let mut st = self.lock_state();
        st.leader_active = false;
        st.active = active;
        match result {
            Ok(done) => {
                st.durable_seq = snapshot.next_seq - 1;
                st.committed = snapshot;
                if has_seal || key_unsaved {
                    st.key_unsaved = !done.key_saved;
                    st.seal_in_flight = !done.key_saved;
                }
            }
            Err((error, cut_ok)) => {
                let first_failed_seq = st.committed.next_seq;
                if !cut_ok {
                    st.broken = Some(error.to_string());
                }
                st.failures.push_back(Failure { generation: generation_at, first_failed_seq, error });
                while st.failures.len() > 64 {
                    st.failures.pop_front();
                }
                st.generation += 1;
                st.tentative = st.committed.clone();
                st.pending.clear();
                st.pending_msgs.clear();
                st.pending_seal = false;
                if !key_unsaved {
                    st.seal_in_flight = false;
                }
            }
        }
        if st.waiters > 0 {
            self.cond.notify_all();
        }
        if !msgs.is_empty() && st.generation == generation_at {
            drop(st);
            if let Some(s) = &self.syslog {
                for m in &msgs {
                    s.send(m);
                }
            }
            st = self.lock_state();
        }
        st
    }

    /// Outside the state lock: rotate if due, write, fdatasync, and after a
    /// durable seal evolve and save the key. On failure, cut the segment
    /// back to its durable length (the bool says whether that worked).
    fn write_batch(
        &self,
        active: &mut Active,
        bytes: &[u8],
        has_seal: bool,
        key_unsaved: bool,
    ) -> Result<BatchDone, (JournalError, bool)> {
        if key_unsaved {
            self.save_key().map_err(|e| (e, true))?;
        }
        if bytes.is_empty() {
            return Ok(BatchDone { key_saved: true });
        }
        if active.len >= self.segment_size {
            self.rotate(active).map_err(|e| (e, true))?;
        }
        let written =
            (&*active.file).write_all(bytes).map_err(|e| JournalError::io(&active.path, "write", e)).and_then(|()| {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                active.file.sync_data().map_err(|e| JournalError::io(&active.path, "fdatasync", e))
            });
        if let Err(e) = written {
            let cut = active.file.set_len(active.len).and_then(|()| active.file.sync_data()).is_ok();
            return Err((e, cut));
        }
        active.len += bytes.len() as u64;
        let mut key_saved = true;
        if has_seal {
            // The seal is durable: erase K_i for good, keep K_{i+1}.
            self.key.lock().unwrap_or_else(|p| p.into_inner()).advance();
            key_saved = self.save_key().is_ok();
        }
        Ok(BatchDone { key_saved })
    }

    fn save_key(&self) -> Result<(), JournalError> {
        let copy = {
            let k = self.key.lock().unwrap_or_else(|p| p.into_inner());
            EpochKey::from_bytes(k.epoch(), k.expose_secret())
        };
        SealKeyState { journal_id: self.journal_id, key: copy }.replace(&self.dir)
    }

    fn rotate(&self, active: &mut Active) -> Result<(), JournalError> {
        let next = active.number.checked_add(1).ok_or_else(|| {
            JournalError::damaged(&active.path, "segment number at its maximum; no further segment can be created")
        })?;
        let (file, path) = create_segment(&self.dir, next)?;
        let old = std::mem::replace(active, Active { file: Arc::new(file), number: next, path, len: 0 });
        if let Some(cb) = &self.on_segment_finished {
            run_callback(cb, &old.path);
        }
        Ok(())
    }

    /// Records events queued by keytool commands, deleting each request
    /// once its record is durable.
    fn ingest(&self) {
        let mut claimed = requests::pending(&self.dir).into_iter();
        while let Some(req) = claimed.next() {
            let event = req.event.clone();
            if self.append_event(event).is_ok() {
                // If this fails the claimed file stays, and is never read again.
                let _ = std::fs::remove_file(&req.path);
            } else {
                requests::unclaim(&req);
                claimed.for_each(|r| requests::unclaim(&r));
                return;
            }
        }
    }

    /// Background work: time-based seals, retrying a key save, requests.
    fn run_ticker(&self) {
        let tick = (self.epoch_duration / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            {
                let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
                if *stop {
                    return;
                }
                let (stop, _) = self.stop_cond.wait_timeout(stop, tick).unwrap_or_else(|p| p.into_inner());
                if *stop {
                    return;
                }
            }
            let (closed, due) = {
                let st = self.lock_state();
                (st.closed || st.broken.is_some(), self.seal_due(&st) || st.key_unsaved)
            };
            if closed {
                continue;
            }
            self.flush_queued();
            if due {
                // An error here also fails the next append, which reports it.
                let _ = self.seal_now();
            }
            if self.ingest_requests {
                self.ingest();
            }
        }
    }
}

/// Creates a new journal in `audit_dir` (made if missing, mode 0750): the
/// lock file, `requests/`, `seal.key` with a fresh random K_0, and
/// `journal-000001.log` with the genesis record; then seals the genesis
/// record, so K_0 leaves the machine's disk at once. Returns the auditor's
/// key (K_0 and the journal id), which must be written out with
/// [`AuditorKey::write_to`](super::AuditorKey::write_to).
pub fn init_journal(audit_dir: &Path) -> Result<super::AuditorKey, JournalError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = audit_dir;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| JournalError::io(dir, "create audit directory", e))?;
    }
    let busy = dir.join(SEAL_KEY_FILE).exists()
        || !super::segment::list_segments(dir)?.is_empty()
        || dir.join(segment_name(1)).exists();
    if busy {
        return Err(JournalError::AlreadyInitialized { dir: dir.to_path_buf() });
    }
    let req = dir.join(requests::REQUESTS_DIR);
    if !req.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&req)
            .map_err(|e| JournalError::io(&req, "create requests directory", e))?;
        // Set explicitly: the umask must not take the group's write bit or
        // the sticky bit away.
        std::fs::set_permissions(&req, std::fs::Permissions::from_mode(requests::REQUESTS_DIR_MODE))
            .map_err(|e| JournalError::io(&req, "set mode of requests directory", e))?;
    }
    let mut journal_id = [0u8; JOURNAL_ID_LEN];
    getrandom::fill(&mut journal_id).map_err(|e| JournalError::Random(e.to_string()))?;
    let k0 = EpochKey::generate()?;
    let auditor = super::AuditorKey::new(journal_id, EpochKey::from_bytes(0, k0.expose_secret()));

    let genesis = Event::new(EventKind::Genesis, Actor::current_process()).detail(Detail {
        journal_id: Some(to_hex(&journal_id)),
        format: Some(1),
        ..Detail::default()
    });
    let rec =
        Record::from_event(genesis, 1, format_rfc3339_nanos(SystemTime::now()), to_hex(&super::chain::GENESIS_PREV));
    let mut line = rec.to_line();
    line.push(b'\n');
    let (mut f, path) = create_segment(dir, 1)?;
    f.write_all(&line).and_then(|()| f.sync_data()).map_err(|e| JournalError::io(&path, "write genesis record", e))?;
    // seal.key last: its presence is what makes the journal openable.
    SealKeyState { journal_id, key: k0 }.create(dir)?;
    Journal::open(
        dir,
        JournalOptions { ingest_requests: false, lock_wait: Duration::ZERO, ..JournalOptions::default() },
    )?
    .close()?;
    Ok(auditor)
}
