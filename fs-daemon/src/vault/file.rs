//! Encrypted contents of one open regular file: read, write and truncate at
//! any offset, on whole XTS sectors in the backing file; on format 3 every
//! sector written carries its tag and every sector read is checked.
//!
//! One `OpenFile` is shared by every handle open on the same inode, so two
//! processes see the same size and data. Its lock serialises writers of that
//! file only; other files proceed in parallel.
//!
//! The last, partly filled sector of a growing file (the tail) is kept as
//! plaintext in memory and written (encrypted and tagged) only once it is
//! full, or before the header records a size that covers it (close, fsync,
//! the 1-second header update, truncate, unmount). A recorder appending
//! 320-byte frames so costs one sector encryption, one tag and one write
//! per 4 KiB instead of per frame, and the tag on disk always matches the
//! sector on disk: nothing below the recorded size is ever left half new.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use callvault::contents::Sector;
use callvault::filecrypto::{self, FileCrypto};
use callvault::fileheader::{FileHeader, NameBinding, SLOT_OFFSETS};
use callvault::keys::VolumeKeys;
use callvault::layout::{BackingLen, Layout, SECTORS_PER_GROUP};
use callvault::recording_seal::{Seal, SealBuilder};
use callvault::sectors::{self, FILE_HEADER_LEN, SECTOR_SIZE, covers_whole_sector, sectors_for_size, sectors_touched};
use callvault::tags::{HOLE_TAG, Tag};
use log::{error, warn};
use nix::errno::Errno;

/// How long a grown size may stay only in memory before the header records
/// it, bounding what a crash can lose of a file nobody fsynced.
const HEADER_PERSIST_INTERVAL: Duration = Duration::from_secs(1);

const SECTOR: usize = SECTOR_SIZE as usize;

/// Why a read failed.
#[derive(Debug)]
pub enum ReadError {
    Io(Errno),
    /// Sectors whose tags do not match: these byte ranges of the file
    /// (half-open, clipped to its size). The read is EIO; other reads of
    /// the file are not affected.
    Damaged(Vec<Range<u64>>),
}

/// For the daemon's own reads (blackouts, masking): damage is EIO there
/// too; the reader that meets it through a handle records it.
impl From<ReadError> for Errno {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            ReadError::Damaged(_) => Errno::EIO,
        }
    }
}

impl From<Errno> for ReadError {
    fn from(e: Errno) -> Self {
        ReadError::Io(e)
    }
}

struct State {
    /// `None` until the first byte is written (formats 1 and 2 only: an
    /// empty backing file; format 3 writes the header at create).
    header: Option<FileHeader>,
    crypto: Option<FileCrypto>,
    size: u64,
    /// The in-memory size is ahead of the header on disk.
    dirty: bool,
    persisted_at: Instant,
    /// Plaintext of the last, partly filled sector, so the next append can
    /// fill it without reading it back and decrypting it first.
    tail: Option<(u64, Box<Sector>)>,
    /// The tail's plaintext is newer than the backing file's copy: it is
    /// written before anything reads that sector from disk or records a
    /// size covering it.
    tail_unwritten: bool,
    /// The first write that failed. With the writeback cache the writer's
    /// write(2) succeeded long before; the kernel reports the loss at its
    /// close, and so must every later flush, fsync and close record of this
    /// file until it is closed: bytes handed over and not stored are never
    /// reported as stored.
    lost_write: Option<Errno>,
    /// Format 3: the seal of the sectors written in order so far; `None`
    /// when a write went back into them (the next seal reads the tags).
    seal: Option<SealBuilder>,
}

impl State {
    fn empty() -> State {
        State {
            header: None,
            crypto: None,
            size: 0,
            dirty: false,
            persisted_at: Instant::now(),
            tail: None,
            tail_unwritten: false,
            lost_write: None,
            seal: None,
        }
    }

    /// The cached plaintext of sector `s`, if it is the tail.
    fn cached_tail(&self, s: u64) -> Option<&Sector> {
        self.tail.as_ref().filter(|(i, _)| *i == s).map(|(_, t)| &**t)
    }

    /// The index of the tail sector if its plaintext is not on disk yet.
    fn unwritten_tail(&self) -> Option<u64> {
        self.tail.as_ref().filter(|_| self.tail_unwritten).map(|(i, _)| *i)
    }

    /// After plaintext `buf` (sectors from `first`) was written and the size
    /// settled: keep the new tail if `buf` holds it, forget a stale one.
    fn remember_tail(&mut self, first: u64, buf: &[u8]) {
        let idx = self.size / SECTOR_SIZE;
        if self.size.is_multiple_of(SECTOR_SIZE) {
            self.tail = None;
            return;
        }
        let count = buf.len() as u64 / SECTOR_SIZE;
        if (first..first + count).contains(&idx) {
            let at = ((idx - first) * SECTOR_SIZE) as usize;
            let t = self.tail.get_or_insert_with(|| (idx, Box::new([0u8; SECTOR])));
            t.0 = idx;
            t.1.copy_from_slice(&buf[at..at + SECTOR]);
        } else if self.tail.as_ref().is_some_and(|(i, _)| *i != idx) {
            self.tail = None;
        }
    }
}

pub struct OpenFile {
    pub fd: File,
    /// A name for log lines: the inode number (never a plaintext path).
    ino: u64,
    layout: Layout,
    state: RwLock<State>,
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl OpenFile {
    /// Decodes the header of an opened backing file reached through the
    /// name `seen` (format 3 checks the file is bound to it). A damaged
    /// header, an impossible length or a file moved here from another name
    /// is EIO for this file only, with a log line.
    pub fn load(
        fd: File,
        ino: u64,
        keys: &VolumeKeys,
        layout: Layout,
        seen: Option<NameBinding>,
        writable: bool,
    ) -> Result<OpenFile, Errno> {
        let len = fd.metadata().map_err(io_errno)?.len();
        let mut st = State::empty();
        if len == 0 && layout == Layout::Tagged {
            error!("inode {ino}: the backing file is empty, but on this volume every file has a header; EIO");
            return Err(Errno::EIO);
        }
        if len > 0 {
            let mut region = vec![0u8; FILE_HEADER_LEN as usize];
            let n = read_full(&fd, &mut region, 0).map_err(io_errno)?;
            let header = FileHeader::decode(&region[..n], layout, &keys.file_header_mac).map_err(|e| {
                error!("inode {ino}: {e}; the file reads as an I/O error, the rest of the volume is unaffected");
                Errno::EIO
            })?;
            if layout == Layout::Tagged && !seen.is_some_and(|b| header.is_bound_to(&b)) {
                error!(
                    "inode {ino}: the file header belongs to another name: the backing file was moved or \\
                     copied here from elsewhere in the volume; EIO"
                );
                return Err(Errno::EIO);
            }
            if header.size > sectors::MAX_FILE_SIZE {
                error!("inode {ino}: header records {} bytes, past the largest file size; EIO", header.size);
                return Err(Errno::EIO);
            }
            match layout.classify(len, header.size) {
                BackingLen::Exact => {}
                BackingLen::Excess { trim_to } => {
                    if writable {
                        // Bytes written past the recorded size before a crash:
                        // trim (and clear their tags) so a later extension reads zeros there.
                        clear_tags_past(&fd, layout, header.size).map_err(io_errno)?;
                        fd.set_len(trim_to).map_err(io_errno)?;
                    }
                }
                BackingLen::Impossible => {
                    error!(
                        "inode {ino}: backing file is {len} bytes, too short for its recorded size {}; \\
                         the file reads as an I/O error",
                        header.size
                    );
                    return Err(Errno::EIO);
                }
            }
            st.crypto = Some(FileCrypto::new(keys, layout, &header.file_id).map_err(|e| {
                error!("inode {ino}: {e}");
                Errno::EIO
            })?);
            if header.size == 0 && layout == Layout::Tagged {
                st.seal = Some(SealBuilder::new(&header.file_id));
            }
            st.size = header.size;
            st.header = Some(header);
        }
        Ok(OpenFile { fd, ino, layout, state: RwLock::new(st) })
    }

    /// The state of a file just created. Format 3 writes its header (bound
    /// to `binding`) now, so an empty backing file is never a valid file;
    /// formats 1 and 2 leave it empty until the first write.
    pub fn created(
        fd: File,
        ino: u64,
        keys: &VolumeKeys,
        layout: Layout,
        binding: Option<NameBinding>,
    ) -> Result<OpenFile, Errno> {
        let f = OpenFile { fd, ino, layout, state: RwLock::new(State::empty()) };
        if layout == Layout::Tagged {
            let mut st = f.write_state();
            f.ensure_header(&mut st, keys, binding)?;
        }
        Ok(f)
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn size(&self) -> u64 {
        self.read_state().size
    }

    /// Reads up to `len` bytes at `off` into `buf` (a buffer reused across
    /// requests, so no allocation or clearing per read). Returns where in
    /// `buf` the bytes are; short at end of file. On format 3 every sector
    /// read is checked against its tag first.
    pub fn read(&self, off: u64, len: u32, buf: &mut Vec<u8>) -> Result<Range<usize>, ReadError> {
        let st = self.read_state();
        if off >= st.size || len == 0 {
            return Ok(0..0);
        }
        let end = st.size.min(off + len as u64);
        let range = sectors_touched(off, end - off);
        let n = ((range.end - range.start) * SECTOR_SIZE) as usize;
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let buf = &mut buf[..n];
        match &st.crypto {
            Some(c) => {
                let unwritten = st.unwritten_tail();
                let mut damaged: Vec<Range<u64>> = Vec::new();
                let mut tags = [HOLE_TAG; SECTORS_PER_GROUP as usize];
                for run in self.layout.runs(range.clone()) {
                    let at = ((run.start - range.start) * SECTOR_SIZE) as usize;
                    let bytes = &mut buf[at..at + ((run.end - run.start) * SECTOR_SIZE) as usize];
                    read_full(&self.fd, bytes, self.layout.data_offset(run.start)).map_err(io_errno)?;
                    if c.tagged() {
                        let k = (run.end - run.start) as usize;
                        filecrypto::read_tags(&self.fd, self.layout, run.clone(), &mut tags[..k]).map_err(io_errno)?;
                        for bad in c.check_run(run.start, bytes, &tags[..k]) {
                            // The unwritten tail's disk copy is stale; memory holds it.
                            for s in bad.filter(|s| Some(*s) != unwritten) {
                                let r = sectors::sector_start(s)..(sectors::sector_start(s) + SECTOR_SIZE).min(st.size);
                                match damaged.last_mut() {
                                    Some(last) if last.end == r.start => last.end = r.end,
                                    _ => damaged.push(r),
                                }
                            }
                        }
                    }
                    // One core per request: on this two-core class of machine the
                    // kernel's copying needs the other one, and splitting large
                    // requests across cores measured slower (bench/README.md).
                    c.cipher.decrypt_run(run.start, bytes);
                }
                if !damaged.is_empty() {
                    return Err(ReadError::Damaged(damaged));
                }
                if let Some(t) = unwritten.filter(|t| range.contains(t))
                    && let Some(plain) = st.cached_tail(t)
                {
                    let at = ((t - range.start) * SECTOR_SIZE) as usize;
                    buf[at..at + SECTOR].copy_from_slice(plain);
                }
            }
            None => buf.fill(0),
        }
        let skip = (off - sectors::sector_start(range.start)) as usize;
        Ok(skip..skip + (end - off) as usize)
    }

    /// Gives the file a header (and so a file ID and key): at create on
    /// format 3 (bound to `binding`), at the first write before.
    fn ensure_header(&self, st: &mut State, keys: &VolumeKeys, binding: Option<NameBinding>) -> Result<(), Errno> {
        if st.header.is_some() {
            return Ok(());
        }
        if self.layout == Layout::Tagged && binding.is_none() {
            error!("inode {}: a file without a header on a volume that requires one; EIO", self.ino);
            return Err(Errno::EIO);
        }
        let id: [u8; 16] = callvault::random::array().map_err(|e| {
            error!("{e}");
            Errno::EIO
        })?;
        let header = FileHeader::new(id, binding.filter(|_| self.layout == Layout::Tagged));
        st.crypto = Some(FileCrypto::new(keys, self.layout, &id).map_err(|_| Errno::EIO)?);
        // Both slots are written so a torn first update still leaves one valid.
        let mut region = vec![0u8; FILE_HEADER_LEN as usize];
        let slot = header.encode(self.layout, &keys.file_header_mac);
        for off in SLOT_OFFSETS {
            region[off..off + slot.len()].copy_from_slice(&slot);
        }
        self.fd.write_all_at(&region, 0).map_err(io_errno)?;
        if self.layout == Layout::Tagged {
            st.seal = Some(SealBuilder::new(&id));
        }
        st.header = Some(header);
        st.persisted_at = Instant::now();
        Ok(())
    }

    /// Writes the unwritten tail sector (encrypted and tagged).
    fn write_tail(&self, st: &mut State) -> Result<(), Errno> {
        let Some(idx) = st.unwritten_tail() else {
            return Ok(());
        };
        let (Some(c), Some(plain)) = (st.crypto.as_ref(), st.cached_tail(idx)) else {
            return Err(Errno::EIO);
        };
        let mut sector = [0u8; SECTOR];
        let tag = c.encrypt_into(idx, plain, &mut sector);
        self.fd.write_all_at(&sector, self.layout.data_offset(idx)).map_err(io_errno)?;
        if let Some(tag) = tag {
            filecrypto::write_tags(&self.fd, self.layout, idx, &[tag]).map_err(io_errno)?;
        }
        st.tail_unwritten = false;
        Ok(())
    }

    /// Writes the in-memory size into the next header slot; with `both`, into
    /// both slots (on close, fsync and truncate), so damage to either copy
    /// later loses nothing. The tail goes to disk first: the header never
    /// records a size whose sectors are not there.
    fn persist_header(&self, st: &mut State, keys: &VolumeKeys, both: bool) -> Result<(), Errno> {
        self.write_tail(st)?;
        let Some(h) = st.header.as_mut() else {
            return Ok(());
        };
        let mut next = *h;
        next.size = st.size;
        for _ in 0..if both { 2 } else { 1 } {
            next.generation += 1;
            self.fd
                .write_all_at(&next.encode(self.layout, &keys.file_header_mac), next.slot_offset())
                .map_err(io_errno)?;
        }
        *h = next;
        st.dirty = false;
        st.persisted_at = Instant::now();
        Ok(())
    }

    /// Format 3: binds the file to the name `to`, still accepting `also`
    /// (its name before a rename, while the rename is under way). Both
    /// header slots are written. Nothing to do on formats 1 and 2.
    pub fn rebind(&self, keys: &VolumeKeys, to: NameBinding, also: Option<NameBinding>) -> Result<(), Errno> {
        let mut st = self.write_state();
        if self.layout != Layout::Tagged {
            return Ok(());
        }
        let Some(h) = st.header.as_mut() else {
            return Err(Errno::EIO);
        };
        h.binding = Some(to);
        h.previous_binding = also;
        self.persist_header(&mut st, keys, true)
    }

    /// Writes `data` at `off`, growing the file if needed. A failure sticks
    /// to the file (see `State::lost_write`).
    pub fn write(&self, off: u64, data: &[u8], keys: &VolumeKeys) -> Result<(), Errno> {
        self.write_at(off, data, keys).inspect_err(|&e| {
            let mut st = self.write_state();
            if st.lost_write.is_none() {
                warn!(
                    "inode {}: a write failed ({e}); every later flush, fsync and close of it reports this",
                    self.ino
                );
                st.lost_write = Some(e);
            }
        })
    }

    fn write_at(&self, off: u64, data: &[u8], keys: &VolumeKeys) -> Result<(), Errno> {
        if data.is_empty() {
            return Ok(());
        }
        if !sectors::fits(off, data.len() as u64) {
            return Err(Errno::EFBIG);
        }
        let end = off + data.len() as u64;
        let mut st = self.write_state();
        self.ensure_header(&mut st, keys, None)?;
        let range = sectors_touched(off, data.len() as u64);
        // A tail this write does not rebuild stops being the tail (or stays
        // one behind a gap): it goes to disk as it is.
        if st.unwritten_tail().is_some_and(|t| !range.contains(&t)) {
            self.write_tail(&mut st)?;
        }
        let n = ((range.end - range.start) * SECTOR_SIZE) as usize;
        let new_size = st.size.max(end);
        // The new tail (the sector holding an unaligned end of file, if this
        // write ends in it) stays in memory; every other sector goes to disk.
        let deferred =
            (!new_size.is_multiple_of(SECTOR_SIZE) && range.end - 1 == new_size / SECTOR_SIZE).then_some(range.end - 1);
        WRITE_BUF.with_borrow_mut(|buf| -> Result<(), Errno> {
            // Reused across requests: only the edge sectors that `data` does
            // not cover whole are built here (old contents plus their part of
            // `data`); the others are encrypted straight from `data` below.
            if buf.len() < n {
                buf.resize(n, 0);
            }
            let buf = &mut buf[..n];
            let existing = sectors_for_size(st.size);
            let at = (off - sectors::sector_start(range.start)) as usize;
            let last = range.end - 1;
            for s in [range.start, last] {
                if covers_whole_sector(off, data.len() as u64, s) {
                    continue;
                }
                let lo = ((s - range.start) * SECTOR_SIZE) as usize;
                let sector = &mut buf[lo..lo + SECTOR];
                if s >= existing {
                    sector.fill(0);
                } else if let Some(plain) = st.cached_tail(s) {
                    sector.copy_from_slice(plain);
                } else {
                    self.read_sector(&st, s, sector)?;
                }
                let (a, b) = (at.max(lo), (at + data.len()).min(lo + SECTOR));
                buf[a..b].copy_from_slice(&data[a - at..b - at]);
                if range.start == last {
                    break;
                }
            }
            // The tail sector is never one `data` covers whole, so it is
            // built above and `buf` holds its plaintext here.
            let old_size = std::mem::replace(&mut st.size, new_size);
            st.remember_tail(range.start, buf);
            st.size = old_size;
            let c = st.crypto.as_ref().ok_or(Errno::EIO)?;
            let stored = range.start..deferred.unwrap_or(range.end);
            let mut tags = [HOLE_TAG; SECTORS_PER_GROUP as usize];
            let mut written: Vec<(u64, Tag)> = Vec::new();
            for run in self.layout.runs(stored) {
                let lo = ((run.start - range.start) * SECTOR_SIZE) as usize;
                let bytes = &mut buf[lo..lo + ((run.end - run.start) * SECTOR_SIZE) as usize];
                let (sectors, _) = bytes.as_chunks_mut::<SECTOR>();
                for (i, sector) in sectors.iter_mut().enumerate() {
                    let s = run.start + i as u64;
                    let tag = if covers_whole_sector(off, data.len() as u64, s) {
                        let from = ((s - range.start) * SECTOR_SIZE) as usize - at;
                        let plain = data[from..].first_chunk::<SECTOR>().ok_or(Errno::EIO)?;
                        c.encrypt_into(s, plain, sector)
                    } else {
                        c.cipher.encrypt(s, sector);
                        c.tag(s, sector)
                    };
                    if let Some(tag) = tag {
                        tags[i] = tag;
                        written.push((s, tag));
                    }
                }
                let k = (run.end - run.start) as usize;
                let stored = self
                    .fd
                    .write_all_at(bytes, self.layout.data_offset(run.start))
                    .and_then(|()| filecrypto::write_tags(&self.fd, self.layout, run.start, &tags[..k]));
                if let Err(e) = stored {
                    st.tail = None; // what is on disk is no longer known
                    st.tail_unwritten = false;
                    st.seal = None;
                    return Err(io_errno(e));
                }
            }
            st.tail_unwritten = deferred.is_some();
            if let Some(seal) = st.seal.as_mut() {
                for (s, tag) in &written {
                    if *s < seal.absorbed() {
                        // Back into sealed sectors: the next seal reads the tags.
                        st.seal = None;
                        break;
                    }
                    seal.absorb(*s, tag);
                }
            }
            Ok(())
        })?;
        if end > st.size {
            st.size = end;
            st.dirty = true;
            if st.persisted_at.elapsed() >= HEADER_PERSIST_INTERVAL {
                self.persist_header(&mut st, keys, false)?;
            }
        }
        Ok(())
    }

    /// Reads, checks and decrypts stored sector `s` into `out`.
    fn read_sector(&self, st: &State, s: u64, out: &mut [u8]) -> Result<(), Errno> {
        let c = st.crypto.as_ref().ok_or(Errno::EIO)?;
        read_full(&self.fd, out, self.layout.data_offset(s)).map_err(io_errno)?;
        let mut tag = [HOLE_TAG];
        filecrypto::read_tags(&self.fd, self.layout, s..s + 1, &mut tag).map_err(io_errno)?;
        if !c.check_run(s, out, &tag).is_empty() {
            // Building on a damaged sector would re-tag the damage as genuine.
            error!("inode {}: sector {s} does not match its tag; the write that needed it fails (EIO)", self.ino);
            return Err(Errno::EIO);
        }
        c.cipher.decrypt_run(s, out);
        Ok(())
    }

    /// Sets the size to `new_size`; bytes past a shrink are gone, a grow reads zeros.
    pub fn truncate(&self, new_size: u64, keys: &VolumeKeys) -> Result<(), Errno> {
        if new_size > sectors::MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut st = self.write_state();
        self.write_tail(&mut st)?;
        st.tail = None;
        if new_size == st.size && !st.dirty {
            return Ok(());
        }
        if st.header.is_none() && new_size == 0 {
            return Ok(());
        }
        self.ensure_header(&mut st, keys, None)?;
        st.seal = match (&st.header, new_size) {
            (Some(h), 0) if self.layout == Layout::Tagged => Some(SealBuilder::new(&h.file_id)),
            _ => None,
        };
        if new_size < st.size {
            let tail = new_size % SECTOR_SIZE;
            if tail != 0 {
                // Zero the cut-off part of the last sector, keeping the
                // invariant that bytes past the size are zero.
                let s = sectors::sector_of(new_size);
                let mut sector = [0u8; SECTOR];
                self.read_sector(&st, s, &mut sector)?;
                sector[tail as usize..].fill(0);
                let c = st.crypto.as_ref().ok_or(Errno::EIO)?;
                let plain = sector;
                let tag = c.encrypt_into(s, &plain, &mut sector);
                self.fd.write_all_at(&sector, self.layout.data_offset(s)).map_err(io_errno)?;
                if let Some(tag) = tag {
                    filecrypto::write_tags(&self.fd, self.layout, s, &[tag]).map_err(io_errno)?;
                }
            }
            // Header first: a crash between the two leaves excess sectors, which are harmless.
            st.size = new_size;
            self.persist_header(&mut st, keys, true)?;
            clear_tags_past(&self.fd, self.layout, new_size).map_err(io_errno)?;
            self.fd.set_len(self.layout.backing_len(new_size)).map_err(io_errno)?;
        } else {
            // Backing first: the header must never claim sectors that do not exist.
            let need = self.layout.backing_len(new_size);
            if self.fd.metadata().map_err(io_errno)?.len() < need {
                self.fd.set_len(need).map_err(io_errno)?;
            }
            st.size = new_size;
            self.persist_header(&mut st, keys, true)?;
        }
        Ok(())
    }

    /// Reserves backing space for `off .. off+len` (mode 0 grows the size).
    pub fn allocate(&self, off: u64, len: u64, keep_size: bool, keys: &VolumeKeys) -> Result<(), Errno> {
        if !sectors::fits(off, len) {
            return Err(Errno::EFBIG);
        }
        let end = off + len;
        if !keep_size && end > self.size() {
            self.truncate(end, keys)?;
        }
        let range = sectors_touched(off, len);
        if range.is_empty() {
            return Ok(());
        }
        let mode = if keep_size {
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE
        } else {
            nix::fcntl::FallocateFlags::empty()
        };
        // Allocated-but-unwritten backing sectors (and tags) are zeros, which read as holes.
        let start = self.layout.tag_offset(range.start).unwrap_or(self.layout.data_offset(range.start));
        let stop = self.layout.data_offset(range.end - 1) + SECTOR_SIZE;
        match nix::fcntl::fallocate(&self.fd, mode, start as i64, (stop - start) as i64) {
            Ok(()) | Err(Errno::EOPNOTSUPP) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Clears the set-user-ID and set-group-ID bits of the backing file.
    pub fn clear_suid(&self) -> Result<(), Errno> {
        use std::os::unix::fs::PermissionsExt;
        let mode = self.fd.metadata().map_err(io_errno)?.permissions().mode();
        let cleared = mode & !(libc::S_ISUID | libc::S_ISGID);
        if cleared != mode {
            self.fd.set_permissions(std::fs::Permissions::from_mode(cleared & 0o7777)).map_err(io_errno)?;
        }
        Ok(())
    }

    /// Records the in-memory size in the header if it moved (close, fsync,
    /// unmount). Fails, after that, if any write to the file failed.
    pub fn flush(&self, keys: &VolumeKeys) -> Result<(), Errno> {
        let mut st = self.write_state();
        let persisted = if st.dirty { self.persist_header(&mut st, keys, true) } else { self.write_tail(&mut st) };
        persisted.inspect_err(|e| {
            warn!("inode {}: could not record the file size: {e}", self.ino);
        })?;
        st.lost_write.map_or(Ok(()), Err)
    }

    /// Makes everything written so far durable.
    pub fn sync(&self, keys: &VolumeKeys, data_only: bool) -> Result<(), Errno> {
        let flushed = self.flush(keys);
        let synced = if data_only { self.fd.sync_data() } else { self.fd.sync_all() }.map_err(io_errno);
        flushed.and(synced)
    }

    /// Format 3: the seal of the file's contents as they are now on disk
    /// (call after `flush`). Built from the sectors appended in order; a
    /// file written elsewhere reads the tags it lacks (16 bytes per 4 KiB).
    /// `None` on formats 1 and 2, or for a file that never had contents.
    pub fn seal(&self) -> Result<Option<(Seal, u64)>, Errno> {
        let mut st = self.write_state();
        self.write_tail(&mut st)?;
        let Some(h) = st.header.filter(|_| self.layout == Layout::Tagged) else {
            return Ok(None);
        };
        let n = sectors_for_size(st.size);
        let mut builder = st.seal.clone().unwrap_or_else(|| SealBuilder::new(&h.file_id));
        let mut rest: Vec<Tag> = Vec::with_capacity((n.saturating_sub(builder.absorbed())) as usize);
        let mut tags = [HOLE_TAG; SECTORS_PER_GROUP as usize];
        for run in self.layout.runs(builder.absorbed()..n) {
            let k = (run.end - run.start) as usize;
            filecrypto::read_tags(&self.fd, self.layout, run, &mut tags[..k]).map_err(io_errno)?;
            rest.extend_from_slice(&tags[..k]);
        }
        let seal = builder.finish(st.size, &rest);
        // Keep what was read: every whole sector is absorbed, the partial
        // last one (which the next append changes) is not.
        let whole = st.size / SECTOR_SIZE;
        let first = builder.absorbed();
        for (i, tag) in rest.iter().enumerate() {
            let s = first + i as u64;
            if s >= whole {
                break;
            }
            builder.absorb(s, tag);
        }
        st.seal = Some(builder);
        Ok(Some((seal, st.size)))
    }
}

/// Clears the tags of the sectors past a file of `size` bytes in the tag
/// sector of its last group (later groups' tag sectors are cut off with
/// their data), so the sectors read as holes if the file grows again.
fn clear_tags_past(fd: &File, layout: Layout, size: u64) -> std::io::Result<()> {
    let n = sectors_for_size(size);
    let group_end = n.div_ceil(SECTORS_PER_GROUP).max(1) * SECTORS_PER_GROUP;
    if layout != Layout::Tagged || n == 0 || n == group_end {
        return Ok(());
    }
    let zeros = vec![HOLE_TAG; (group_end - n) as usize];
    filecrypto::write_tags(fd, layout, n, &zeros)
}

thread_local! {
    /// Each worker thread's buffer for building encrypted sectors.
    static WRITE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `pread` until `buf` is full or end of file; the unread rest stays zero
/// (a sparse or short backing file reads as holes). Returns bytes read.
fn read_full(fd: &File, buf: &mut [u8], mut off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match fd.read_at(&mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(done)
}
