//! Encrypted contents of one open regular file: read, write and truncate at
//! any offset, on whole XTS sectors in the backing file.
//!
//! One `OpenFile` is shared by every handle open on the same inode, so two
//! processes see the same size and data. Its lock serialises writers of that
//! file only; other files proceed in parallel.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use callvault::contents::SectorCipher;
use callvault::fileheader::{FileHeader, SLOT_LEN};
use callvault::keys::VolumeKeys;
use callvault::sectors::{
    self, BackingLen, FILE_HEADER_LEN, SECTOR_SIZE, backing_len_for_size, backing_offset, covers_whole_sector,
    sectors_for_size, sectors_touched,
};
use log::{error, warn};
use nix::errno::Errno;

/// How long a grown size may stay only in memory before the header records
/// it, bounding what a crash can lose of a file nobody fsynced.
const HEADER_PERSIST_INTERVAL: Duration = Duration::from_secs(1);

struct State {
    /// `None` until the first byte is written: an empty backing file.
    header: Option<FileHeader>,
    cipher: Option<SectorCipher>,
    size: u64,
    /// The in-memory size is ahead of the header on disk.
    dirty: bool,
    persisted_at: Instant,
    /// Plaintext of the last, partly filled sector, so the next append can
    /// fill it without reading it back and decrypting it first.
    tail: Option<(u64, Box<[u8; SECTOR_SIZE as usize]>)>,
    /// The first write that failed. With the writeback cache the writer's
    /// write(2) succeeded long before; the kernel reports the loss at its
    /// close, and so must every later flush, fsync and close record of this
    /// file until it is closed: bytes handed over and not stored are never
    /// reported as stored.
    lost_write: Option<Errno>,
}

impl State {
    fn empty() -> State {
        State {
            header: None,
            cipher: None,
            size: 0,
            dirty: false,
            persisted_at: Instant::now(),
            tail: None,
            lost_write: None,
        }
    }

    /// The cached plaintext of sector `s`, if it is the tail.
    fn cached_tail(&self, s: u64) -> Option<&[u8; SECTOR_SIZE as usize]> {
        self.tail.as_ref().filter(|(i, _)| *i == s).map(|(_, t)| &**t)
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
            let t = self.tail.get_or_insert_with(|| (idx, Box::new([0u8; SECTOR_SIZE as usize])));
            t.0 = idx;
            t.1.copy_from_slice(&buf[at..at + SECTOR_SIZE as usize]);
        } else if self.tail.as_ref().is_some_and(|(i, _)| *i != idx) {
            self.tail = None;
        }
    }
}

pub struct OpenFile {
    pub fd: File,
    /// A name for log lines: the inode number (never a plaintext path).
    ino: u64,
    state: RwLock<State>,
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl OpenFile {
    /// Decodes the header of an opened backing file. A damaged header or an
    /// impossible length is EIO for this file only, with a log line.
    pub fn load(fd: File, ino: u64, keys: &VolumeKeys, writable: bool) -> Result<OpenFile, Errno> {
        let len = fd.metadata().map_err(io_errno)?.len();
        let mut st = State::empty();
        if len > 0 {
            let mut region = vec![0u8; FILE_HEADER_LEN as usize];
            let n = read_full(&fd, &mut region, 0).map_err(io_errno)?;
            let header = FileHeader::decode(&region[..n], &keys.file_header_mac).map_err(|e| {
                error!("inode {ino}: {e}; the file reads as an I/O error, the rest of the volume is unaffected");
                Errno::EIO
            })?;
            if header.size > sectors::MAX_FILE_SIZE {
                error!("inode {ino}: header records {} bytes, past the largest file size; EIO", header.size);
                return Err(Errno::EIO);
            }
            match sectors::classify_backing_len(len, header.size) {
                BackingLen::Exact => {}
                BackingLen::Excess { trim_to } => {
                    if writable {
                        // Bytes written past the recorded size before a crash:
                        // trim so a later extension reads zeros there.
                        fd.set_len(trim_to).map_err(io_errno)?;
                    }
                }
                BackingLen::Impossible => {
                    error!(
                        "inode {ino}: backing file is {len} bytes, too short for its recorded size {}; \
                         the file reads as an I/O error",
                        header.size
                    );
                    return Err(Errno::EIO);
                }
            }
            st.cipher = Some(SectorCipher::new(&keys.file_key(&header.file_id)).map_err(|e| {
                error!("inode {ino}: {e}");
                Errno::EIO
            })?);
            st.size = header.size;
            st.header = Some(header);
        }
        Ok(OpenFile { fd, ino, state: RwLock::new(st) })
    }

    /// The state of a file just created (no header until the first write).
    pub fn empty(fd: File, ino: u64) -> OpenFile {
        OpenFile { fd, ino, state: RwLock::new(State::empty()) }
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

    /// Reads up to `len` bytes at `off`; short at end of file.
    /// Reads up to `len` bytes at `off` into `buf` (a buffer reused across
    /// requests, so no allocation or clearing per read). Returns where in
    /// `buf` the bytes are; short at end of file.
    pub fn read(&self, off: u64, len: u32, buf: &mut Vec<u8>) -> Result<Range<usize>, Errno> {
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
        match &st.cipher {
            Some(cipher) => {
                read_full(&self.fd, buf, backing_offset(range.start)).map_err(io_errno)?;
                // One core per request: on this two-core class of machine the
                // kernel's copying needs the other one, and splitting large
                // requests across cores measured slower (bench/README.md).
                cipher.decrypt_run(range.start, buf);
            }
            None => buf.fill(0),
        }
        let skip = (off - sectors::sector_start(range.start)) as usize;
        Ok(skip..skip + (end - off) as usize)
    }

    /// Gives the file a header (and so a file ID and key) on first write.
    fn ensure_header(&self, st: &mut State, keys: &VolumeKeys) -> Result<(), Errno> {
        if st.header.is_some() {
            return Ok(());
        }
        let id: [u8; 16] = callvault::random::array().map_err(|e| {
            error!("{e}");
            Errno::EIO
        })?;
        let header = FileHeader::new(id);
        st.cipher = Some(SectorCipher::new(&keys.file_key(&id)).map_err(|_| Errno::EIO)?);
        // Both slots are written so a torn first update still leaves one valid.
        let mut region = vec![0u8; FILE_HEADER_LEN as usize];
        let slot = header.encode(&keys.file_header_mac);
        for off in callvault::fileheader::SLOT_OFFSETS {
            region[off..off + SLOT_LEN].copy_from_slice(&slot);
        }
        self.fd.write_all_at(&region, 0).map_err(io_errno)?;
        st.header = Some(header);
        st.persisted_at = Instant::now();
        Ok(())
    }

    /// Writes the in-memory size into the next header slot; with `both`, into
    /// both slots (on close, fsync and truncate), so damage to either copy
    /// later loses nothing.
    fn persist_header(&self, st: &mut State, keys: &VolumeKeys, both: bool) -> Result<(), Errno> {
        let Some(h) = st.header.as_mut() else {
            return Ok(());
        };
        let mut next = *h;
        next.size = st.size;
        for _ in 0..if both { 2 } else { 1 } {
            next.generation += 1;
            self.fd.write_all_at(&next.encode(&keys.file_header_mac), next.slot_offset()).map_err(io_errno)?;
        }
        *h = next;
        st.dirty = false;
        st.persisted_at = Instant::now();
        Ok(())
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
        self.ensure_header(&mut st, keys)?;
        let range = sectors_touched(off, data.len() as u64);
        let n = ((range.end - range.start) * SECTOR_SIZE) as usize;
        WRITE_BUF.with_borrow_mut(|buf| -> Result<(), Errno> {
            // Reused across requests: only the edge sectors that `data` does
            // not cover whole are built here (old contents plus their part of
            // `data`); the others are encrypted straight from `data` below.
            if buf.len() < n {
                buf.resize(n, 0);
            }
            let buf = &mut buf[..n];
            let existing = sectors_for_size(st.size);
            let cipher = st.cipher.as_ref().ok_or(Errno::EIO)?;
            let at = (off - sectors::sector_start(range.start)) as usize;
            let last = range.end - 1;
            for s in [range.start, last] {
                if covers_whole_sector(off, data.len() as u64, s) {
                    continue;
                }
                let lo = ((s - range.start) * SECTOR_SIZE) as usize;
                let sector = &mut buf[lo..lo + SECTOR_SIZE as usize];
                if s >= existing {
                    sector.fill(0);
                } else if let Some(plain) = st.cached_tail(s) {
                    sector.copy_from_slice(plain);
                } else {
                    read_full(&self.fd, sector, backing_offset(s)).map_err(io_errno)?;
                    cipher.decrypt_run(s, sector);
                }
                let (a, b) = (at.max(lo), (at + data.len()).min(lo + SECTOR_SIZE as usize));
                buf[a..b].copy_from_slice(&data[a - at..b - at]);
                if range.start == last {
                    break;
                }
            }
            // The tail sector (the one holding an unaligned end of file) is
            // never one `data` covers whole, so it is built above and `buf`
            // holds its plaintext here.
            let new_size = st.size.max(end);
            let old_size = std::mem::replace(&mut st.size, new_size);
            st.remember_tail(range.start, buf);
            st.size = old_size;
            let cipher = st.cipher.as_ref().ok_or(Errno::EIO)?;
            let (sectors, _) = buf.as_chunks_mut::<{ SECTOR_SIZE as usize }>();
            for (i, sector) in sectors.iter_mut().enumerate() {
                let s = range.start + i as u64;
                if covers_whole_sector(off, data.len() as u64, s) {
                    let from = i * SECTOR_SIZE as usize - at;
                    let plain = data[from..].first_chunk::<{ SECTOR_SIZE as usize }>().ok_or(Errno::EIO)?;
                    cipher.encrypt_into(s, plain, sector);
                } else {
                    cipher.encrypt(s, sector);
                }
            }
            if let Err(e) = self.fd.write_all_at(buf, backing_offset(range.start)) {
                st.tail = None; // what is on disk is no longer known
                return Err(io_errno(e));
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

    /// Sets the size to `new_size`; bytes past a shrink are gone, a grow reads zeros.
    pub fn truncate(&self, new_size: u64, keys: &VolumeKeys) -> Result<(), Errno> {
        if new_size > sectors::MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut st = self.write_state();
        st.tail = None;
        if new_size == st.size && !st.dirty {
            return Ok(());
        }
        if st.header.is_none() && new_size == 0 {
            return Ok(());
        }
        self.ensure_header(&mut st, keys)?;
        if new_size < st.size {
            let tail = new_size % SECTOR_SIZE;
            if tail != 0 {
                // Zero the cut-off part of the last sector, keeping the
                // invariant that bytes past the size are zero.
                let s = sectors::sector_of(new_size);
                let mut sector = vec![0u8; SECTOR_SIZE as usize];
                read_full(&self.fd, &mut sector, backing_offset(s)).map_err(io_errno)?;
                let cipher = st.cipher.as_ref().ok_or(Errno::EIO)?;
                cipher.decrypt_run(s, &mut sector);
                sector[tail as usize..].fill(0);
                cipher.encrypt_run(s, &mut sector);
                self.fd.write_all_at(&sector, backing_offset(s)).map_err(io_errno)?;
            }
            // Header first: a crash between the two leaves excess sectors, which are harmless.
            st.size = new_size;
            self.persist_header(&mut st, keys, true)?;
            self.fd.set_len(backing_len_for_size(new_size)).map_err(io_errno)?;
        } else {
            // Backing first: the header must never claim sectors that do not exist.
            let need = backing_len_for_size(new_size);
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
        let start = backing_offset(range.start) as i64;
        let blen = ((range.end - range.start) * SECTOR_SIZE) as i64;
        let mode = if keep_size {
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE
        } else {
            nix::fcntl::FallocateFlags::empty()
        };
        // Allocated-but-unwritten backing sectors are zeros, which read as holes.
        match nix::fcntl::fallocate(&self.fd, mode, start, blen) {
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
        if st.dirty {
            self.persist_header(&mut st, keys, true).inspect_err(|e| {
                warn!("inode {}: could not record the file size: {e}", self.ino);
            })?;
        }
        st.lost_write.map_or(Ok(()), Err)
    }

    /// Makes everything written so far durable.
    pub fn sync(&self, keys: &VolumeKeys, data_only: bool) -> Result<(), Errno> {
        let flushed = self.flush(keys);
        let synced = if data_only { self.fd.sync_data() } else { self.fd.sync_all() }.map_err(io_errno);
        flushed.and(synced)
    }
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
