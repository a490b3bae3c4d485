//! Automatic DTMF masking: keypad tones in audio being written are found and
//! silenced before they are stored, so card numbers keyed on a phone never
//! reach the disk even when nobody triggered a blackout.
//!
//! A tone is known only some tens of milliseconds after it began, by which
//! time its start has been written. So the newest samples of a stream are
//! held back: what the detector has not settled yet is stored as silence
//! (the file keeps its size and a crash can only lose audio, never store a
//! tone) and kept here in memory, and stored for real, with any tone found
//! in it silenced, once the detector has settled it. At most about 150 ms of
//! audio per stream is held; an fsync, a close or a write elsewhere in the
//! file stores it at once (a tone cut there is silenced conservatively).
//! Reads see the held bytes. Silenced ranges stay silenced for as long as
//! the stream is open, since the kernel may send the writer's page again.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use callvault::audio::ranges::RangeSet;
use callvault::audio::raw;
use callvault::audio::samples::deinterleave;
use callvault::audio::wav::{self, Probe, WavLayout};
use callvault::dtmf::Detector;
use callvault::journal::{Actor, Detail, EventKind};
use log::error;
use nix::errno::Errno;

use super::file::OpenFile;
use super::inode::lock;
use super::paths::VolPath;
use super::{Caller, Vault};

/// More channels than this are stored unmasked (and logged): each costs a
/// detector on every sample.
const MAX_CHANNELS: u16 = 16;

/// The masking state of every file open for writing where masking applies.
pub struct DtmfMasking {
    /// `--auto-blackout dtmf`: every recording, not only the policy's paths.
    pub everywhere: bool,
    active: AtomicUsize,
    streams: Mutex<HashMap<u64, Arc<Mutex<Stream>>>>,
}

impl DtmfMasking {
    pub fn new(everywhere: bool) -> DtmfMasking {
        DtmfMasking { everywhere, active: AtomicUsize::new(0), streams: Mutex::new(HashMap::new()) }
    }

    fn stream(&self, ino: u64) -> Option<Arc<Mutex<Stream>>> {
        if self.active.load(Ordering::Relaxed) == 0 {
            return None;
        }
        lock(&self.streams).get(&ino).cloned()
    }
}

/// Where the bytes of a stream go: file offset and bytes.
type Store<'a> = dyn FnMut(u64, &[u8]) -> Result<(), Errno> + 'a;

/// One file's audio as it is written.
struct Stream {
    /// Who opened it for writing and where: named in the masking records.
    actor: Option<Actor>,
    path: VolPath,
    /// Known once the header has been written; `pass` when the file is not
    /// audio that can be masked (it is then stored as written).
    layout: Option<WavLayout>,
    /// Where the header says the RIFF form ends (see `wav::outgrown_as_streaming`).
    form_end: Option<u64>,
    pass: bool,
    detectors: Vec<Detector>,
    /// File offset of the detectors' sample 0.
    origin: u64,
    /// Bytes before `fed` went through the detectors (whole frames).
    fed: u64,
    /// End of what has arrived in order.
    next: u64,
    /// `held` holds the real bytes of `held_from..next`; on disk they are
    /// silence, but for a part of a frame left by a flush, stored as is.
    held_from: u64,
    held: Vec<u8>,
    masked: RangeSet,
    /// Masked ranges found after their bytes were stored: silenced on disk
    /// at the next store.
    late: Vec<Range<u64>>,
    /// Masked bytes below this are in the journal.
    recorded_to: u64,
    channels: Vec<Vec<f32>>,
    found: Vec<Range<u64>>,
}

impl Stream {
    fn new(actor: Option<Actor>, path: VolPath) -> Stream {
        Stream {
            actor,
            path,
            layout: None,
            form_end: None,
            pass: false,
            detectors: Vec::new(),
            origin: 0,
            fed: 0,
            next: 0,
            held_from: 0,
            held: Vec::new(),
            masked: RangeSet::with_max_ranges(65_536),
            late: Vec::new(),
            recorded_to: 0,
            channels: Vec::new(),
            found: Vec::new(),
        }
    }

    fn frame(&self) -> u64 {
        self.layout.map_or(1, |w| u64::from(w.format.frame_len))
    }

    fn silence(&self) -> u8 {
        self.layout.map_or(0, |w| w.format.encoding.silence_byte())
    }

    /// Starts the detectors afresh at `at` (the first whole frame there).
    fn restart_at(&mut self, at: u64) {
        let Some(w) = self.layout else { return };
        let frame = self.frame();
        let into = at.saturating_sub(w.data_start);
        self.origin = w.data_start + into.div_ceil(frame) * frame;
        self.fed = self.origin;
        self.next = at;
        self.held_from = at;
        self.held.clear();
        let rate = w.format.sample_rate;
        self.detectors = (0..w.format.channels).map(|_| Detector::new(rate)).collect();
        self.channels = vec![Vec::new(); w.format.channels as usize];
    }

    /// Turns detector spans (sample indices) into masked file ranges.
    fn take_found(&mut self) {
        let (origin, frame) = (self.origin, self.frame());
        for r in self.found.drain(..) {
            let a = origin.saturating_add(r.start.saturating_mul(frame));
            let b = origin.saturating_add(r.end.saturating_mul(frame));
            if a < b {
                self.masked.insert(a..b);
                if a < self.held_from {
                    self.late.push(a..b.min(self.held_from));
                }
            }
        }
    }

    /// Feeds the whole frames that arrived since the last call.
    fn feed(&mut self) {
        let frame = self.frame();
        let whole = self.fed + (self.next.saturating_sub(self.fed)) / frame * frame;
        if whole <= self.fed || self.fed < self.held_from {
            return;
        }
        let Some(w) = self.layout else { return };
        let lo = (self.fed - self.held_from) as usize;
        let hi = (whole - self.held_from) as usize;
        deinterleave(&w.format, &self.held[lo..hi], &mut self.channels);
        for (d, samples) in self.detectors.iter_mut().zip(&self.channels) {
            d.push(samples, &mut self.found);
        }
        self.fed = whole;
        self.take_found();
    }

    /// Offset below which every detector has settled.
    fn settled(&self) -> u64 {
        let samples = self.detectors.iter().map(Detector::settled).min().unwrap_or(0);
        (self.origin + samples * self.frame()).clamp(self.held_from, self.fed.max(self.held_from))
    }

    /// Stores the held bytes below `upto` for real, masks applied, and
    /// re-silences anything masked below `held_from` (a tone found late,
    /// at a flush).
    fn release_until(&mut self, upto: u64, store: &mut Store) -> Result<(), Errno> {
        let silence = self.silence();
        for r in std::mem::take(&mut self.late) {
            store(r.start, &vec![silence; (r.end - r.start) as usize])?;
        }
        if upto <= self.held_from {
            return Ok(());
        }
        let n = (upto - self.held_from) as usize;
        let mut out: Vec<u8> = self.held[..n].to_vec();
        mask(&self.masked, self.held_from, &mut out, silence);
        store(self.held_from, &out)?;
        self.held.drain(..n);
        self.held_from = upto;
        Ok(())
    }

    /// Stores everything held now (fsync, close, a write elsewhere): the
    /// detectors report conservatively what they have begun to see.
    fn flush(&mut self, store: &mut Store) -> Result<(), Errno> {
        if self.layout.is_none() || self.pass {
            return Ok(());
        }
        for d in &mut self.detectors {
            d.finish(&mut self.found);
        }
        self.take_found();
        // A trailing part of a frame is stored too, but stays held as well:
        // the next write completes the frame, which the detector then needs.
        let partial_from = self.fed.clamp(self.held_from, self.next);
        let keep: Vec<u8> = self.held[(partial_from - self.held_from) as usize..].to_vec();
        self.release_until(self.next, store)?;
        self.held = keep;
        self.held_from = partial_from;
        Ok(())
    }

    /// Masked ranges now entirely stored and not yet in the journal.
    fn take_unrecorded(&mut self, all: bool) -> Vec<Range<u64>> {
        let limit = if all { u64::MAX } else { self.held_from };
        let out: Vec<Range<u64>> = self
            .masked
            .iter()
            .filter(|r| r.end > self.recorded_to && r.end < limit)
            .map(|r| r.start.max(self.recorded_to)..r.end)
            .collect();
        if let Some(last) = out.last() {
            self.recorded_to = last.end;
        }
        out
    }
}

/// Fills with `silence` the bytes of `buf` (at file offset `off`) inside `masked`.
fn mask(masked: &RangeSet, off: u64, buf: &mut [u8], silence: u8) {
    let end = off + buf.len() as u64;
    for r in masked.iter().filter(|r| r.end > off && r.start < end) {
        let a = (r.start.max(off) - off) as usize;
        let b = (r.end.min(end) - off) as usize;
        buf[a..b].fill(silence);
    }
}

/// Whether the format's samples can be decoded for the detector.
fn maskable(w: &WavLayout) -> bool {
    w.format.channels >= 1 && w.format.channels <= MAX_CHANNELS && w.format.sample_rate >= 8000
}

impl Vault {
    /// A file opened for writing at `path`: masking starts if it applies
    /// there (`--auto-blackout dtmf`, or the policy's `auto_blackout`).
    pub(super) fn dtmf_on_open(&self, ino: u64, path: &VolPath, who: &Caller) {
        if !self.dtmf.everywhere && !self.access.policy().auto_dtmf(&path.text) {
            return;
        }
        let mut streams = lock(&self.dtmf.streams);
        if let std::collections::hash_map::Entry::Vacant(e) = streams.entry(ino) {
            e.insert(Arc::new(Mutex::new(Stream::new(self.audit.actor_of(who), path.clone()))));
            self.dtmf.active.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stores what a stream holds (fsync, flush, truncate, a blackout trigger).
    pub(super) fn dtmf_flush(&self, ino: u64, file: &OpenFile) -> Result<(), Errno> {
        let Some(stream) = self.dtmf.stream(ino) else { return Ok(()) };
        let mut s = lock(&stream);
        let mut store = |o: u64, b: &[u8]| file.write(o, b, &self.keys);
        s.flush(&mut store)?;
        self.record_masks(ino, &mut s, true);
        Ok(())
    }

    /// The file's size was set (truncate): what is held is stored, and the
    /// stream starts again from the header at the next write.
    pub(super) fn dtmf_reset(&self, ino: u64, file: &OpenFile) -> Result<(), Errno> {
        self.dtmf_flush(ino, file)?;
        if let Some(stream) = self.dtmf.stream(ino) {
            let mut s = lock(&stream);
            s.layout = None;
            s.pass = false;
        }
        Ok(())
    }

    /// The last writer closed: store what is held and forget the stream.
    pub(super) fn dtmf_on_release(&self, ino: u64, file: &OpenFile) {
        if self.dtmf.stream(ino).is_none() || self.handles.any_file(|h| h.ino == ino && h.writable) {
            return;
        }
        if let Err(e) = self.dtmf_flush(ino, file) {
            error!("inode {ino}: audio held for DTMF masking could not be stored at close: {e}");
        }
        if lock(&self.dtmf.streams).remove(&ino).is_some() {
            self.dtmf.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Puts the held bytes of `ino` over what was read from disk at `off`.
    pub(super) fn dtmf_overlay(&self, ino: u64, off: u64, buf: &mut [u8]) {
        let Some(stream) = self.dtmf.stream(ino) else { return };
        let s = lock(&stream);
        let end = off + buf.len() as u64;
        let (a, b) = (s.held_from.max(off), s.next.min(end));
        if a < b {
            let src = &s.held[(a - s.held_from) as usize..(b - s.held_from) as usize];
            buf[(a - off) as usize..(b - off) as usize].copy_from_slice(src);
        }
    }

    /// Writes `data` at `off` through the masking of its stream, if it has
    /// one; `store` puts bytes on disk.
    pub(super) fn store_through_dtmf(
        &self,
        ino: u64,
        file: &OpenFile,
        off: u64,
        data: &[u8],
        store: &mut Store,
    ) -> Result<(), Errno> {
        let Some(stream) = self.dtmf.stream(ino) else { return store(off, data) };
        let mut s = lock(&stream);
        let end = off + data.len() as u64;
        if s.pass {
            return store(off, data);
        }
        // The header: (re)read whenever a write touches it.
        if s.layout.is_none() || s.layout.is_some_and(|w| off < w.data_start) {
            let (probe, form_end) = self.probe_with(file, off, data)?;
            s.form_end = form_end;
            // Headerless telephony audio is known by its name.
            let probe = match probe {
                Probe::NotWav => raw::layout_by_name(&s.path.text).map_or(Probe::NotWav, Probe::Wav),
                p => p,
            };
            match probe {
                Probe::Wav(w) if maskable(&w) => {
                    if s.layout.is_none_or(|old| old.data_start != w.data_start || old.format != w.format) {
                        s.flush(store)?;
                        s.layout = Some(w);
                        // A recording opened again goes on from its end.
                        s.restart_at(w.data_start.max(file.size()));
                    } else {
                        s.layout = Some(w);
                    }
                }
                Probe::Incomplete { .. } => return store(off, data),
                Probe::Wav(w) => {
                    error!(
                        "inode {ino}: {} channel(s) at {} Hz: stored without DTMF masking",
                        w.format.channels, w.format.sample_rate
                    );
                    s.pass = true;
                    return store(off, data);
                }
                Probe::NotWav | Probe::Unsupported { .. } => {
                    s.pass = true;
                    return store(off, data);
                }
            }
        }
        let Some(w) = s.layout else { return store(off, data) };
        let w = wav::outgrown_as_streaming(w, s.form_end, file.size().max(end));
        let data_end = w.data_end.unwrap_or(u64::MAX);
        let lo = off.max(w.data_start).min(end);
        let hi = end.min(data_end).max(lo);
        if off < lo {
            store(off, &data[..(lo - off) as usize])?;
        }
        if hi < end {
            store(hi, &data[(hi - off) as usize..])?;
        }
        if lo < hi {
            self.masked_append(file, &mut s, lo, &data[(lo - off) as usize..(hi - off) as usize], store)?;
        }
        self.record_masks(ino, &mut s, false);
        Ok(())
    }

    /// Sample bytes `seg` at `at`: appended to the stream, or, if they land
    /// elsewhere, stored after what is held, masked on their own.
    fn masked_append(
        &self,
        file: &OpenFile,
        s: &mut Stream,
        at: u64,
        mut seg: &[u8],
        store: &mut Store,
    ) -> Result<(), Errno> {
        if at > s.next {
            s.flush(store)?;
            s.restart_at(at);
        }
        if at < s.next {
            let overlap = (s.next - at).min(seg.len() as u64) as usize;
            let (old, rest) = seg.split_at(overlap);
            if self.differs_from_view(file, s, at, old)? {
                // Written over earlier audio: judged on its own.
                s.flush(store)?;
                let mut out = old.to_vec();
                let silence = s.silence();
                mask_alone(s, at, &mut out);
                mask(&s.masked, at, &mut out, silence);
                store(at, &out)?;
            }
            seg = rest;
            if seg.is_empty() {
                return Ok(());
            }
        }
        let old_next = s.next;
        s.held.extend_from_slice(seg);
        s.next += seg.len() as u64;
        s.feed();
        let settled = s.settled();
        s.release_until(settled, store)?;
        let placeholder_from = old_next.max(settled);
        if placeholder_from < s.next {
            store(placeholder_from, &vec![s.silence(); (s.next - placeholder_from) as usize])?;
        }
        Ok(())
    }

    /// Whether `bytes` at `at` (all below the stream's end) differ from what
    /// the stream holds or has stored there: the kernel sending a page
    /// again brings the same bytes.
    fn differs_from_view(&self, file: &OpenFile, s: &Stream, at: u64, bytes: &[u8]) -> Result<bool, Errno> {
        let mut view = Vec::new();
        let got = file.read(at, bytes.len() as u32, &mut view)?;
        let mut view = view[got].to_vec();
        view.resize(bytes.len(), 0);
        let end = at + bytes.len() as u64;
        let (a, b) = (s.held_from.max(at), s.next.min(end));
        if a < b {
            view[(a - at) as usize..(b - at) as usize]
                .copy_from_slice(&s.held[(a - s.held_from) as usize..(b - s.held_from) as usize]);
        }
        // A masked byte sent again is the writer's tone: it must not count
        // as new audio, whatever it holds.
        let masked = |o: u64| s.masked.contains(o);
        Ok(bytes.iter().zip(&view).enumerate().any(|(i, (x, y))| x != y && !masked(at + i as u64)))
    }

    /// The file's header as this write leaves it.
    fn probe_with(&self, file: &OpenFile, off: u64, data: &[u8]) -> Result<(Probe, Option<u64>), Errno> {
        let prefix = super::blackout::header_as_written(file, off, data)?;
        Ok((wav::probe(&prefix), wav::form_end(&prefix)))
    }

    /// Journal records for masked tones now stored.
    fn record_masks(&self, ino: u64, s: &mut Stream, all: bool) {
        let ranges = s.take_unrecorded(all);
        if ranges.is_empty() {
            return;
        }
        let path = self.path_of(ino).unwrap_or_else(|_| s.path.clone());
        let silence = s.layout.map_or("zero bytes", |w| w.format.encoding.as_str());
        for r in ranges {
            if let Some(k) = self.kernel_cache() {
                k.drop_soon(ino, r.start, r.end - r.start);
            }
            let detail = Detail {
                reason: Some("DTMF tone".into()),
                silenced: Some(format!("{}-{}", r.start, r.end)),
                silenced_bytes: Some(r.end - r.start),
                silence: Some(silence.into()),
                ..Detail::default()
            };
            if self.audit.log_as(s.actor.clone(), EventKind::BlackoutDtmf, &Ok(()), Some(&path), None, detail).is_err()
            {
                error!("inode {ino}: a masked DTMF tone could not be recorded in the audit journal");
            }
        }
    }
}

/// Masks tones in bytes written over earlier audio, judged on their own.
fn mask_alone(s: &mut Stream, at: u64, out: &mut [u8]) {
    let Some(w) = s.layout else { return };
    let frame = u64::from(w.format.frame_len);
    let into = at.saturating_sub(w.data_start);
    let first = w.data_start + into.div_ceil(frame) * frame;
    let skip = (first - at) as usize;
    if skip >= out.len() {
        return;
    }
    let whole = (out.len() - skip) / frame as usize * frame as usize;
    let mut channels = vec![Vec::new(); w.format.channels as usize];
    deinterleave(&w.format, &out[skip..skip + whole], &mut channels);
    let mut found = Vec::new();
    for samples in &channels {
        let mut d = Detector::new(w.format.sample_rate);
        d.push(samples, &mut found);
        d.finish(&mut found);
    }
    for r in found {
        let a = first.saturating_add(r.start.saturating_mul(frame));
        let b = first.saturating_add(r.end.saturating_mul(frame));
        if a < b {
            s.masked.insert(a..b);
        }
    }
}
