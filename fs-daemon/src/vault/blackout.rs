//! Blackouts: start and stop triggers on a recording or on a directory, and
//! the silencing of what is written to a file while one holds.
//!
//! A trigger is the extended attribute [`XATTR`] set to `start` or `stop`.
//! While the daemon serves it the kernel holds the file's inode lock, so no
//! `write(2)` to it runs; the daemon has the kernel write the file's dirty
//! pages back first ([`KernelCache::write_back_and_drop`]), so every byte
//! written before the trigger arrives unsilenced, and only then marks the
//! blackout at the file's size. From then on every byte that reaches the
//! daemon at or past that offset is silenced before it is encrypted, and so
//! is a byte below it that differs from what is stored (an overwrite during
//! the blackout). The stop trigger writes the dirty pages back again (they
//! hold bytes written during the blackout) and drops the kernel's cached
//! copies of them, so no page the writer wrote can be sent again unsilenced.
//!
//! Blackouts are kept by inode: renaming or linking a file does not end one.
//! Lock order: the blackout tables, then one file's period, then the open
//! file's state (taken by the store inside the period's lock).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use callvault::audio::ranges::RangeSet;
use callvault::audio::raw;
use callvault::audio::silence::{self, Layout};
use callvault::audio::wav::{self, Probe};
use callvault::journal::{Actor, Detail, EventKind};
use callvault::policy::Right;
use log::{error, warn};
use nix::errno::Errno;

use super::file::OpenFile;
use super::inode::{Kind, lock};
use super::paths::VolPath;
use super::{Caller, Vault};

/// The attribute that starts and stops a blackout; never stored.
pub const XATTR: &[u8] = b"user.callvault.blackout";

/// Attribute names the daemon keeps for itself: none can be stored.
pub const RESERVED_PREFIX: &[u8] = b"user.callvault.";

/// How many silenced ranges one journal record lists (a record stays far
/// below the journal's line limit); more are split over several records.
const RANGES_PER_RECORD: usize = 2048;

/// Ranges kept exactly per file (16 bytes each): past this many disjoint
/// ranges the closest are joined, so the record still covers every byte
/// silenced and says it is no longer exact.
const MAX_RANGES: usize = 65_536;

/// What a trigger asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Stop,
}

impl Trigger {
    /// `start` or `stop`, a trailing newline allowed (`echo start`); anything else is EINVAL.
    pub fn parse(value: &[u8]) -> Result<Trigger, Errno> {
        match value.strip_suffix(b"\n").unwrap_or(value) {
            b"start" => Ok(Trigger::Start),
            b"stop" => Ok(Trigger::Stop),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// The kernel's page cache of the mount, as the daemon drives it.
pub trait KernelCache: Send + Sync {
    /// Has the kernel write the file's dirty pages back to the daemon and
    /// drop its cached pages; returns once they are written. Called only
    /// from a thread that does not serve FUSE requests.
    fn write_back_and_drop(&self, ino: u64) -> io::Result<()>;
    /// Asks, without waiting, that the kernel drop its cached copy of a
    /// range the daemon has just silenced.
    fn drop_soon(&self, ino: u64, off: u64, len: u64);
}

/// One file's blackout, from the trigger (or the directory trigger) that
/// began it to the moment nothing holds it any more.
struct Period {
    /// Bytes at or past this offset are silenced: the size at the start.
    from: u64,
    since: Instant,
    /// Held by a trigger on the file itself.
    own: bool,
    /// Held by these directory blackouts (directory inodes).
    dirs: Vec<u64>,
    /// The path when it began: named in its records if the file has lost
    /// its name since.
    path: VolPath,
    silenced: RangeSet,
    /// The file's sample layout, as last read from its header, and where
    /// that header says the RIFF form ends.
    layout: Option<Layout>,
    form_end: Option<u64>,
    /// A write below this offset may change the layout: it is read again.
    header_end: u64,
    alerted: bool,
    /// Its end is recorded: a stop, a close and an unmount racing each
    /// other record it once, whoever locks it first.
    ended: bool,
}

impl Period {
    /// A blackout of a file from offset `from`, held by its own trigger or
    /// by directory blackouts `dirs`.
    fn new(from: u64, path: &VolPath, own: bool, dirs: Vec<u64>) -> Period {
        Period {
            from,
            since: Instant::now(),
            own,
            dirs,
            path: path.clone(),
            silenced: RangeSet::with_max_ranges(MAX_RANGES),
            layout: None,
            form_end: None,
            header_end: 0,
            alerted: false,
            ended: false,
        }
    }

    fn held(&self) -> bool {
        self.own || !self.dirs.is_empty()
    }
}

struct DirBlackout {
    since: Instant,
    path: VolPath,
    alerted: bool,
}

/// The blackouts of a mounted volume.
pub struct Blackouts {
    /// Files under a blackout: the write path's only cost when it is zero.
    active: AtomicUsize,
    files: Mutex<HashMap<u64, Arc<Mutex<Period>>>>,
    dirs: Mutex<HashMap<u64, DirBlackout>>,
    kernel: OnceLock<Arc<dyn KernelCache>>,
    alert_after: Duration,
}

impl Blackouts {
    pub fn new(alert_after: Duration) -> Blackouts {
        Blackouts {
            active: AtomicUsize::new(0),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            kernel: OnceLock::new(),
            alert_after,
        }
    }

    /// Whether any file is under a blackout (one relaxed load).
    pub fn any_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    fn period(&self, ino: u64) -> Option<Arc<Mutex<Period>>> {
        lock(&self.files).get(&ino).cloned()
    }

    /// Writes the kernel's dirty pages of `ino` back (a no-op before the
    /// mount exists, as in tests that call the vault directly).
    fn write_back(&self, ino: u64) -> Result<(), Errno> {
        let Some(k) = self.kernel.get() else { return Ok(()) };
        k.write_back_and_drop(ino).map_err(|e| {
            error!("inode {ino}: the kernel's cached pages could not be written back for a blackout: {e}");
            Errno::EIO
        })
    }
}

/// Whether `path` lies inside directory `dir`.
fn is_inside(path: &VolPath, dir: &VolPath) -> bool {
    dir.text == "/" || path.text.strip_prefix(dir.text.as_str()).is_some_and(|rest| rest.starts_with('/'))
}

/// What the silence of `layout` is made of, for records.
fn silence_name(layout: Option<&Layout>) -> String {
    match layout {
        Some(Layout::Wav(w)) => w.format.encoding.as_str().to_string(),
        _ => "zero bytes".to_string(),
    }
}

impl Vault {
    /// Called once the mount exists: how triggers reach the kernel's cache.
    pub fn set_kernel_cache(&self, k: Arc<dyn KernelCache>) {
        let _ = self.blackouts.kernel.set(k);
    }

    pub(super) fn kernel_cache(&self) -> Option<&Arc<dyn KernelCache>> {
        self.blackouts.kernel.get()
    }

    /// Stores the audio a DTMF stream holds back, so a trigger's boundary
    /// falls between stored bytes.
    fn store_held_audio(&self, ino: u64) -> Result<(), Errno> {
        let open = self.inode(ino)?.open.lock().unwrap_or_else(|e| e.into_inner()).upgrade();
        match open {
            Some(f) => self.dtmf_flush(ino, &f),
            None => Ok(()),
        }
    }

    /// A `start` or `stop` trigger on a file or directory, by `who`. Needs
    /// the `blackout` right on its path (a refusal is EACCES, recorded).
    /// Run it on a thread that serves no FUSE request: it waits for the
    /// kernel to write pages back, which those threads serve.
    pub fn blackout_trigger(&self, ino: u64, value: &[u8], who: &Caller) -> Result<(), Errno> {
        let trigger = Trigger::parse(value)?;
        let (path, kind) = {
            let _ns = self.names_shared();
            let path = self.path_of(ino)?;
            self.allow_path(who, "blackout", &path, Right::Blackout)?;
            (path, self.inode(ino)?.kind)
        };
        let actor = self.audit.actor_of(who);
        match (kind, trigger) {
            (Kind::File, Trigger::Start) => self.start_file(ino, &path, actor, None),
            (Kind::File, Trigger::Stop) => self.stop_file(ino, &path, actor),
            (Kind::Dir, Trigger::Start) => self.start_dir(ino, &path, actor),
            (Kind::Dir, Trigger::Stop) => self.stop_dir(ino, &path, actor),
            _ => Err(Errno::EPERM),
        }
    }

    /// `active` or `inactive`: what reading [`XATTR`] gives.
    pub fn blackout_status(&self, ino: u64, who: &Caller) -> Result<Vec<u8>, Errno> {
        self.allow(who, "getxattr", ino, Right::List)?;
        let active = match self.inode(ino)?.kind {
            Kind::Dir => lock(&self.blackouts.dirs).contains_key(&ino),
            _ => self.blackouts.period(ino).is_some_and(|p| lock(&p).held()),
        };
        Ok(if active { b"active".to_vec() } else { b"inactive".to_vec() })
    }

    /// Size of a file now, through its open state (loaded if not open).
    fn current_size(&self, ino: u64) -> Result<u64, Errno> {
        let inode = self.inode(ino)?;
        Ok(self.open_file(&inode, None)?.size())
    }

    /// Starts (or joins) the blackout of one file: by its own trigger
    /// (`dir` None) or because directory `dir` is under one.
    fn start_file(
        &self,
        ino: u64,
        path: &VolPath,
        actor: Option<Actor>,
        dir: Option<(u64, &VolPath)>,
    ) -> Result<(), Errno> {
        self.blackouts.write_back(ino)?;
        self.store_held_audio(ino)?;
        let mut files = lock(&self.blackouts.files);
        let (from, joined) = match files.get(&ino) {
            Some(p) => {
                let mut p = lock(p);
                match dir {
                    None => p.own = true,
                    Some((d, _)) if !p.dirs.contains(&d) => p.dirs.push(d),
                    Some(_) => {}
                }
                (p.from, true)
            }
            None => {
                let from = self.current_size(ino)?;
                let period = Period::new(from, path, dir.is_none(), dir.map(|(d, _)| vec![d]).unwrap_or_default());
                files.insert(ino, Arc::new(Mutex::new(period)));
                self.blackouts.active.fetch_add(1, Ordering::Relaxed);
                (from, false)
            }
        };
        drop(files);
        let detail = Detail {
            scope: Some("file".into()),
            from: Some(from),
            cause: dir.map(|(_, p)| p.text.clone()),
            reason: joined.then(|| "already under a blackout".into()),
            ..Detail::default()
        };
        // Silencing has begun whatever happens to the record: failing to
        // record must never mean storing card data. The trigger learns of it.
        self.audit.log_as(actor, EventKind::BlackoutStart, &Ok(()), Some(path), None, detail)
    }

    fn stop_file(&self, ino: u64, path: &VolPath, actor: Option<Actor>) -> Result<(), Errno> {
        self.blackouts.write_back(ino)?;
        self.store_held_audio(ino)?;
        let Some(period) = self.blackouts.period(ino) else {
            let detail = Detail {
                scope: Some("file".into()),
                reason: Some("no blackout was active".into()),
                ..Detail::default()
            };
            return self.audit.log_as(actor, EventKind::BlackoutStop, &Ok(()), Some(path), None, detail);
        };
        let mut p = lock(&period);
        if p.ended {
            return Ok(());
        }
        if !p.dirs.is_empty() {
            p.own = false;
            let covering: Vec<String> = p.dirs.iter().filter_map(|d| self.path_of(*d).ok().map(|p| p.text)).collect();
            let detail = Detail {
                scope: Some("file".into()),
                reason: Some(format!("still silenced: its directory is under a blackout ({})", covering.join(", "))),
                ..Detail::default()
            };
            return self.audit.log_as(actor, EventKind::BlackoutStop, &Ok(()), Some(path), None, detail);
        }
        // The stop is recorded before it takes effect: if it cannot be, the
        // blackout goes on (EIO), the safe side for card data.
        self.record_end(actor, ino, &p, "stop", None)?;
        p.own = false;
        p.ended = true;
        drop(p);
        self.forget_period(ino, &period);
        Ok(())
    }

    fn start_dir(&self, dir: u64, path: &VolPath, actor: Option<Actor>) -> Result<(), Errno> {
        let joined = {
            let mut dirs = lock(&self.blackouts.dirs);
            let joined = dirs.contains_key(&dir);
            dirs.entry(dir).or_insert_with(|| DirBlackout {
                since: Instant::now(),
                path: path.clone(),
                alerted: false,
            });
            joined
        };
        let detail = Detail {
            scope: Some("directory".into()),
            reason: joined.then(|| "already under a blackout".into()),
            ..Detail::default()
        };
        let recorded = self.audit.log_as(actor.clone(), EventKind::BlackoutStart, &Ok(()), Some(path), None, detail);
        // Files already being written in it: from now on, each at its size.
        for (ino, file_path) in self.files_being_written_in(path) {
            if let Err(e) = self.start_file(ino, &file_path, actor.clone(), Some((dir, path))) {
                error!("inode {ino}: could not join the blackout of its directory: {e}");
                return Err(e);
            }
        }
        recorded
    }

    fn stop_dir(&self, dir: u64, path: &VolPath, actor: Option<Actor>) -> Result<(), Errno> {
        if !lock(&self.blackouts.dirs).contains_key(&dir) {
            let detail = Detail {
                scope: Some("directory".into()),
                reason: Some("no blackout was active".into()),
                ..Detail::default()
            };
            return self.audit.log_as(actor, EventKind::BlackoutStop, &Ok(()), Some(path), None, detail);
        }
        let covered: Vec<u64> = lock(&self.blackouts.files)
            .iter()
            .filter(|(_, p)| lock(p).dirs.contains(&dir))
            .map(|(ino, _)| *ino)
            .collect();
        for &ino in &covered {
            self.blackouts.write_back(ino)?;
            self.store_held_audio(ino)?;
            let Some(period) = self.blackouts.period(ino) else { continue };
            let mut p = lock(&period);
            if p.ended {
                continue;
            }
            if p.own || p.dirs.len() > 1 {
                p.dirs.retain(|d| *d != dir);
                continue;
            }
            self.record_end(actor.clone(), ino, &p, "directory stop", Some(path))?;
            p.dirs.clear();
            p.ended = true;
            drop(p);
            self.forget_period(ino, &period);
        }
        let detail = Detail {
            scope: Some("directory".into()),
            reason: Some(format!("{} file(s) were covered", covered.len())),
            ..Detail::default()
        };
        self.audit.log_as(actor, EventKind::BlackoutStop, &Ok(()), Some(path), None, detail)?;
        lock(&self.blackouts.dirs).remove(&dir);
        Ok(())
    }

    /// Files with a handle open for writing whose path is inside `dir`.
    fn files_being_written_in(&self, dir: &VolPath) -> Vec<(u64, VolPath)> {
        let mut inos: Vec<u64> = self.handles.all_files().iter().filter(|h| h.writable).map(|h| h.ino).collect();
        inos.sort_unstable();
        inos.dedup();
        let _ns = self.names_shared();
        inos.into_iter()
            .filter_map(|ino| self.path_of(ino).ok().filter(|p| is_inside(p, dir)).map(|p| (ino, p)))
            .collect()
    }

    /// A file opened for writing at `path`: if a directory it is in is under
    /// a blackout, so is the file from its present size. Runs on a FUSE
    /// thread, so it never waits for the kernel: a file with no other writer
    /// has no dirty pages, and one with a writer is covered already.
    pub(super) fn blackout_on_open(&self, ino: u64, path: &VolPath, actor: Option<Actor>) {
        let covering: Vec<(u64, VolPath)> = {
            let dirs = lock(&self.blackouts.dirs);
            if dirs.is_empty() {
                return;
            }
            dirs.keys()
                .filter_map(|d| self.path_of(*d).ok().map(|p| (*d, p)))
                .filter(|(_, p)| is_inside(path, p))
                .collect()
        };
        for (dir, dir_path) in covering {
            if let Err(e) = self.start_covered(ino, path, actor.clone(), dir, &dir_path) {
                error!("inode {ino}: could not join the blackout of its directory: {e}");
            }
        }
    }

    /// [`Vault::start_file`] without writing pages back (see `blackout_on_open`).
    fn start_covered(
        &self,
        ino: u64,
        path: &VolPath,
        actor: Option<Actor>,
        dir: u64,
        dir_path: &VolPath,
    ) -> Result<(), Errno> {
        let mut files = lock(&self.blackouts.files);
        if let Some(p) = files.get(&ino) {
            let mut p = lock(p);
            if !p.dirs.contains(&dir) {
                p.dirs.push(dir);
            }
            return Ok(());
        }
        let from = self.current_size(ino)?;
        let period = Period::new(from, path, false, vec![dir]);
        files.insert(ino, Arc::new(Mutex::new(period)));
        self.blackouts.active.fetch_add(1, Ordering::Relaxed);
        drop(files);
        let detail = Detail {
            scope: Some("file".into()),
            from: Some(from),
            cause: Some(dir_path.text.clone()),
            ..Detail::default()
        };
        self.audit.log_as(actor, EventKind::BlackoutStart, &Ok(()), Some(path), None, detail)
    }

    /// The last handle open for writing on `ino` was closed: a blackout
    /// still holding the file ends here (its directory's goes on for others).
    pub(super) fn blackout_on_release(&self, ino: u64, actor: Option<Actor>) {
        if !self.blackouts.any_active() || self.handles.any_file(|h| h.ino == ino && h.writable) {
            return;
        }
        let Some(period) = self.blackouts.period(ino) else { return };
        let mut p = lock(&period);
        if p.ended {
            return;
        }
        if let Err(e) = self.record_end(actor, ino, &p, "closed", None) {
            error!("inode {ino}: the end of its blackout at close could not be recorded: {e}");
        }
        p.ended = true;
        drop(p);
        self.forget_period(ino, &period);
    }

    /// Drops `ino`'s period if it is still `period` (not a blackout started
    /// on the file again meanwhile).
    fn forget_period(&self, ino: u64, period: &Arc<Mutex<Period>>) {
        let mut files = lock(&self.blackouts.files);
        if files.get(&ino).is_some_and(|p| Arc::ptr_eq(p, period)) {
            files.remove(&ino);
            self.blackouts.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The records of a file's blackout ending: what was silenced, in as
    /// many records as the ranges need.
    fn record_end(
        &self,
        actor: Option<Actor>,
        ino: u64,
        p: &Period,
        ended: &str,
        dir: Option<&VolPath>,
    ) -> Result<(), Errno> {
        let path = self.path_of(ino).unwrap_or_else(|_| p.path.clone());
        let ranges: Vec<_> = p.silenced.iter().collect();
        let chunks: Vec<_> = if ranges.is_empty() { vec![&[][..]] } else { ranges.chunks(RANGES_PER_RECORD).collect() };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let silenced: Vec<String> = chunk.iter().map(|r| format!("{}-{}", r.start, r.end)).collect();
            let detail = Detail {
                scope: Some("file".into()),
                from: Some(p.from),
                ended: Some(ended.into()),
                cause: dir.map(|d| d.text.clone()),
                silenced: Some(silenced.join(",")),
                silenced_bytes: Some(chunk.iter().map(|r| r.end - r.start).sum()),
                silence: Some(silence_name(p.layout.as_ref())),
                part: (n > 1).then(|| format!("{}/{n}", i + 1)),
                reason: (!p.silenced.is_exact()).then(|| {
                    format!("more than {MAX_RANGES} separate ranges: nearby ones joined, covering at least every byte silenced")
                }),
                ..Detail::default()
            };
            self.audit.log_as(actor.clone(), EventKind::BlackoutStop, &Ok(()), Some(&path), None, detail)?;
        }
        Ok(())
    }

    /// Ends every blackout (unmount), recording what each silenced.
    pub fn end_all_blackouts(&self) {
        let inos: Vec<u64> = lock(&self.blackouts.files).keys().copied().collect();
        for ino in inos {
            if let Some(period) = self.blackouts.period(ino) {
                let mut p = lock(&period);
                if !p.ended
                    && let Err(e) = self.record_end(Some(Actor::current_process()), ino, &p, "unmount", None)
                {
                    error!("inode {ino}: the end of its blackout at unmount could not be recorded: {e}");
                }
                p.ended = true;
                drop(p);
                self.forget_period(ino, &period);
            }
        }
        lock(&self.blackouts.dirs).clear();
    }

    /// Flags, once each, blackouts older than the alert threshold: they keep
    /// silencing (ending one by itself could store card data), but someone
    /// should look. Called about once a second.
    pub fn blackout_alerts(&self) {
        let after = self.blackouts.alert_after;
        let mut late: Vec<(VolPath, &str, Duration)> = Vec::new();
        for (ino, period) in lock(&self.blackouts.files).iter() {
            let mut p = lock(period);
            if p.own && !p.alerted && p.since.elapsed() >= after {
                p.alerted = true;
                late.push((self.path_of(*ino).unwrap_or_else(|_| p.path.clone()), "file", p.since.elapsed()));
            }
        }
        for d in lock(&self.blackouts.dirs).values_mut() {
            if !d.alerted && d.since.elapsed() >= after {
                d.alerted = true;
                late.push((d.path.clone(), "directory", d.since.elapsed()));
            }
        }
        for (path, scope, age) in late {
            let reason = format!(
                "blackout active for {} s, longer than the alert threshold of {} s; still silencing until stopped",
                age.as_secs(),
                after.as_secs()
            );
            warn!("a blackout ({scope}) has been active for {} s; still silencing until it is stopped", age.as_secs());
            let detail = Detail { scope: Some(scope.into()), reason: Some(reason), ..Detail::default() };
            let daemon = Some(Actor::current_process());
            if self.audit.log_as(daemon, EventKind::BlackoutAlert, &Ok(()), Some(&path), None, detail).is_err() {
                error!("a blackout alert could not be recorded in the audit journal");
            }
        }
    }

    /// Silences what `data` (for file offset `off` of `ino`) carries inside
    /// the file's blackout, then hands the bytes to `store`, all under the
    /// period's lock so that concurrent writers of one file see one order.
    /// Without a blackout on the file, `data` goes to `store` as it is.
    pub(super) fn store_through_blackout(
        &self,
        ino: u64,
        file: &OpenFile,
        off: u64,
        data: &[u8],
        store: impl FnOnce(&[u8]) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let Some(period) = self.blackouts.period(ino) else { return store(data) };
        let mut p = lock(&period);
        let layout = self.layout_for(&mut p, file, off, data)?;
        SILENCE_BUF.with_borrow_mut(|buf| {
            buf.clear();
            buf.extend_from_slice(data);
            let end = off + data.len() as u64;
            let mut any = false;
            if end > p.from
                && let Some(r) = silence::silence(&layout, buf, off, off.max(p.from)..end)
            {
                p.silenced.insert(r);
                any = true;
            }
            if off < p.from {
                for run in self.overwritten_runs(file, off, &data[..(p.from.min(end) - off) as usize])? {
                    if let Some(r) = silence::silence(&layout, buf, off, run) {
                        p.silenced.insert(r);
                        any = true;
                    }
                }
            }
            store(buf)?;
            if any && let Some(k) = self.blackouts.kernel.get() {
                k.drop_soon(ino, off, data.len() as u64);
            }
            Ok(())
        })
    }

    /// The layout of the file as this write leaves its header: read again
    /// whenever the write touches the header region (a header rewritten at
    /// hang-up gives the final sizes), kept otherwise.
    fn layout_for(&self, p: &mut Period, file: &OpenFile, off: u64, data: &[u8]) -> Result<Layout, Errno> {
        let file_end = file.size().max(off + data.len() as u64);
        if let Some(l) = &p.layout
            && off >= p.header_end
        {
            return Ok(outgrown(l, p.form_end, file_end));
        }
        let prefix = header_as_written(file, off, data)?;
        let (layout, header_end) = match wav::probe(&prefix) {
            // Not RIFF/WAVE: only its first 12 bytes could make it one.
            // Headerless telephony audio is known by its name.
            Probe::NotWav => match raw::layout_by_name(&p.path.text) {
                Some(w) => (Layout::Wav(w), 0),
                None => (Layout::Opaque { keep_below: 0 }, 12),
            },
            Probe::Wav(w) => (Layout::Wav(w), w.data_start),
            probe => (Layout::from_probe(&probe), wav::MAX_HEADER_SCAN as u64),
        };
        p.form_end = wav::form_end(&prefix);
        p.header_end = header_end;
        p.layout = Some(layout.clone());
        Ok(outgrown(&layout, p.form_end, file_end))
    }

    /// The runs of `data` (for file offset `off`, all below the blackout's
    /// start) that differ from what is stored: bytes written over older data
    /// during the blackout. Bytes equal to the stored ones are the kernel
    /// sending a page again with the writer's earlier bytes in it.
    fn overwritten_runs(&self, file: &OpenFile, off: u64, data: &[u8]) -> Result<Vec<std::ops::Range<u64>>, Errno> {
        let mut stored = Vec::new();
        let got = file.read(off, data.len() as u32, &mut stored)?;
        let stored = &stored[got];
        let mut runs: Vec<std::ops::Range<u64>> = Vec::new();
        for (i, b) in data.iter().enumerate() {
            if stored.get(i) != Some(b) {
                let at = off + i as u64;
                match runs.last_mut() {
                    Some(r) if r.end == at => r.end += 1,
                    _ => runs.push(at..at + 1),
                }
            }
        }
        Ok(runs)
    }
}

/// The file's first [`wav::MAX_HEADER_SCAN`] bytes as a write of `data` at
/// `off` leaves them: what a header probe must look at.
pub(super) fn header_as_written(file: &OpenFile, off: u64, data: &[u8]) -> Result<Vec<u8>, Errno> {
    let scan = wav::MAX_HEADER_SCAN as u64;
    let mut read = Vec::new();
    let got = file.read(0, file.size().min(scan) as u32, &mut read)?;
    let mut prefix = read[got].to_vec();
    if off < scan {
        let until = (off + data.len() as u64).min(scan) as usize;
        if prefix.len() < until {
            prefix.resize(until, 0);
        }
        prefix[off as usize..until].copy_from_slice(&data[..until - off as usize]);
    }
    Ok(prefix)
}

/// `layout` for a file now `file_end` bytes long (see [`wav::outgrown_as_streaming`]).
fn outgrown(layout: &Layout, form_end: Option<u64>, file_end: u64) -> Layout {
    match layout {
        Layout::Wav(w) => Layout::Wav(wav::outgrown_as_streaming(*w, form_end, file_end)),
        other => other.clone(),
    }
}

thread_local! {
    /// Each FUSE thread's copy of a write being silenced.
    static SILENCE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_parse_strictly() {
        assert_eq!(Trigger::parse(b"start"), Ok(Trigger::Start));
        assert_eq!(Trigger::parse(b"stop\n"), Ok(Trigger::Stop));
        for bad in [&b""[..], b"Start", b"start ", b"stop\n\n", b"on", b"\xff"] {
            assert_eq!(Trigger::parse(bad), Err(Errno::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn inside_means_below_a_whole_directory_name() {
        let p = |s: &str| VolPath { text: s.into(), escaped: false };
        assert!(is_inside(&p("/calls/1/a.wav"), &p("/calls/1")));
        assert!(is_inside(&p("/calls/1/x/a.wav"), &p("/calls/1")));
        assert!(!is_inside(&p("/calls/10/a.wav"), &p("/calls/1")));
        assert!(!is_inside(&p("/calls/1"), &p("/calls/1")));
        assert!(is_inside(&p("/a.wav"), &p("/")));
    }
}
