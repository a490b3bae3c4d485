//! One channel's detector: sub-blocks in, window verdicts tracked into tones,
//! tones out as spans to silence, and the settled point behind which nothing
//! will change.
//!
//! Timeline of a tone (H = one 5 ms sub-block, M = [`MARGIN`]):
//! - a row window (5 H) passes every check: a candidate;
//! - a second window of the same key passes (at most one failed window
//!   between): confirmed. The onset is found by walking back sub-block by
//!   sub-block while the tone is still there, in phase (`presence`), and
//!   `onset - M .. end of this window` is reported at once;
//! - every further passing window extends the silence to its own end;
//! - after [`MAX_MISSES`] + 1 failing windows the tone has ended: the end is
//!   found by walking forward the same way, and `.. end + M` is reported,
//!   the part beyond the samples analysed so far as they arrive.

use std::ops::Range;

use super::MARGIN;
use super::goertzel::Bank;
use super::rules::{COL_BLOCKS, CONFIRM_HITS, MAX_MISSES, PRESENCE, ROW_BLOCKS};
use super::window::{Geometry, Hit, Ring};

/// Lowest sample rate accepted: the highest second harmonic checked is
/// 2 × 1633 = 3266 Hz, which needs more than 6532 samples a second; 8000 is
/// the telephone rate.
pub const MIN_SAMPLE_RATE: u32 = 8000;
/// Highest sample rate accepted (studio rates are at most 192 kHz).
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// Why a span is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A tone just confirmed: from its onset minus the margin to the samples analysed so far.
    Confirmed,
    /// The same tone still going on, its end plus the margin, or (at finish) its
    /// rest up to the end of the stream.
    Continued,
    /// At [`Detector::finish`]: a tone not confirmed yet, cut by the end of the stream.
    Cut,
}

/// A span to silence, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Stream sample indices, half-open, margins included.
    pub range: Range<u64>,
    pub kind: SpanKind,
    /// Which key (0..16, "123A456B789C*0#D"). Kept inside the crate: a keyed
    /// digit is exactly what must never reach a log line.
    pub(crate) key: u8,
}

#[derive(Clone, Copy, Debug)]
enum Track {
    Idle,
    /// Windows of one key seen, not yet enough.
    Candidate {
        first: Hit,
        hits: u32,
        misses: u32,
    },
    /// A confirmed tone still going on; silence reported up to `reported_end`.
    Active {
        last: Hit,
        misses: u32,
        reported_end: u64,
    },
}

/// Detects DTMF tones in one channel; see the module documentation.
pub struct Detector {
    sample_rate: u32,
    geo: Geometry,
    bank: Bank,
    ring: Ring,
    /// Samples in the sub-block being filled.
    filled: usize,
    /// Sub-blocks completed since the last reset.
    done: u64,
    /// Stream index of sub-block 0 (where the last reset happened).
    origin: u64,
    position: u64,
    margin: u64,
    track: Track,
    /// The end margin of a finished tone, still ahead of the samples analysed.
    tail: Option<(Range<u64>, u8)>,
    tones: u64,
}

impl Detector {
    /// A detector for a channel sampled at `sample_rate` Hz. Rates outside
    /// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`] are clamped into it (the
    /// detector then misses tones, it never panics); [`Detector::try_new`]
    /// refuses them instead.
    pub fn new(sample_rate: u32) -> Detector {
        let sample_rate = sample_rate.clamp(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE);
        let geo = Geometry::new(sample_rate);
        let bank = Bank::new(&geo.omega, geo.h);
        let margin = (MARGIN.as_secs_f64() * sample_rate as f64).round() as u64;
        Detector {
            sample_rate,
            geo,
            bank,
            ring: Ring::new(),
            filled: 0,
            done: 0,
            origin: 0,
            position: 0,
            margin,
            track: Track::Idle,
            tail: None,
            tones: 0,
        }
    }

    /// A detector, or `None` for a rate outside
    /// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
    pub fn try_new(sample_rate: u32) -> Option<Detector> {
        (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate).then(|| Detector::new(sample_rate))
    }

    /// The rate this detector works at (after clamping).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples pushed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Tones reported so far (confirmed, or cut by [`Detector::finish`]).
    pub fn tones(&self) -> u64 {
        self.tones
    }

    /// Feeds the next samples of this channel and appends the spans to silence.
    pub fn push(&mut self, samples: &[f32], found: &mut Vec<Range<u64>>) {
        self.push_spans(samples, &mut |s: Span| found.push(s.range));
    }

    /// As [`Detector::push`], with each span's kind.
    pub fn push_spans(&mut self, samples: &[f32], emit: &mut impl FnMut(Span)) {
        let mut rest = samples;
        while !rest.is_empty() {
            let n = (self.geo.h - self.filled).min(rest.len());
            self.bank.feed(&rest[..n]);
            self.filled += n;
            self.position += n as u64;
            rest = &rest[n..];
            if self.filled == self.geo.h {
                self.filled = 0;
                let block = self.bank.take();
                self.ring.put(self.done, block);
                self.done += 1;
                self.step(emit);
            }
        }
    }

    /// Every sample index below this is final.
    pub fn settled(&self) -> u64 {
        let h = self.geo.h as i64;
        let m = self.margin as i64;
        let start = |s: i64| self.origin as i64 + s * h;
        // The next window to pass starts at sub-block done-4 and may walk back
        // 4 more (see `walk_back`).
        let mut bound = start(self.done as i64 - 2 * (ROW_BLOCKS as i64 - 1)) - m;
        match self.track {
            Track::Idle => {}
            Track::Candidate { first, .. } => {
                bound = bound.min(start(first.row.first as i64 - (ROW_BLOCKS as i64 - 1)) - m);
            }
            Track::Active { reported_end, .. } => bound = bound.min(reported_end as i64),
        }
        if let Some((t, _)) = &self.tail {
            bound = bound.min(t.start as i64);
        }
        (bound.max(self.origin as i64) as u64).min(self.position)
    }

    /// End of stream: reports what looks like a tone cut by it, then resets so
    /// that [`Detector::push`] can continue; afterwards `settled() == position()`.
    pub fn finish(&mut self, found: &mut Vec<std::ops::Range<u64>>) {
        self.finish_spans(&mut |s: Span| found.push(s.range));
    }

    /// As [`Detector::finish`], with each span's kind.
    pub fn finish_spans(&mut self, emit: &mut impl FnMut(Span)) {
        let end = self.position;
        if let Some((t, key)) = self.tail.take() {
            self.emit(t.start..t.end.min(end), SpanKind::Continued, key, emit);
        }
        match self.track {
            Track::Active { last, reported_end, .. } => {
                self.emit(reported_end..end, SpanKind::Continued, last.key(), emit);
            }
            Track::Candidate { first, .. } => {
                let onset = self.walk_back(&first, first.row.first + ROW_BLOCKS as u64 / 2);
                self.emit(onset.saturating_sub(self.margin)..end, SpanKind::Cut, first.key(), emit);
                self.tones += 1;
            }
            Track::Idle => {
                // Shorter windows over the last sub-blocks: a tone of at least
                // 20 ms cut by the end holds 3 whole sub-blocks.
                for n in [ROW_BLOCKS - 1, COL_BLOCKS] {
                    if self.done < n as u64 {
                        continue;
                    }
                    let first = self.done - n as u64;
                    if let Ok(hit) = self.geo.evaluate(&self.ring, first, n, first, n) {
                        let onset = self.walk_back(&hit, first + n as u64 / 2);
                        self.emit(onset.saturating_sub(self.margin)..end, SpanKind::Cut, hit.key(), emit);
                        self.tones += 1;
                        break;
                    }
                }
            }
        }
        self.bank.reset();
        self.ring = Ring::new();
        self.filled = 0;
        self.done = 0;
        self.origin = end;
        self.track = Track::Idle;
    }

    /// Stream index where sub-block `s` starts.
    fn start(&self, s: u64) -> u64 {
        self.origin + s * self.geo.h as u64
    }

    /// Reports `range`, never below the stream's origin, if not empty.
    fn emit(&self, range: Range<u64>, kind: SpanKind, key: u8, emit: &mut impl FnMut(Span)) {
        let range = range.start.max(self.origin)..range.end;
        if !range.is_empty() {
            emit(Span { range, kind, key });
        }
    }

    /// After sub-block `done - 1` completed: the verdict of the window ending there.
    fn step(&mut self, emit: &mut impl FnMut(Span)) {
        let analysed = self.start(self.done);
        if let Some((t, key)) = self.tail.take() {
            let cut = t.end.min(analysed);
            self.emit(t.start..cut, SpanKind::Continued, key, emit);
            if cut < t.end {
                self.tail = Some((cut..t.end, key));
            }
        }
        if self.done < ROW_BLOCKS as u64 {
            return;
        }
        let first = self.done - ROW_BLOCKS as u64;
        let hit = self.geo.evaluate(&self.ring, first, ROW_BLOCKS, first + 1, COL_BLOCKS).ok();
        self.track = match (self.track, hit) {
            (Track::Idle, None) => Track::Idle,
            (Track::Idle, Some(h)) => Track::Candidate { first: h, hits: 1, misses: 0 },
            (Track::Candidate { first, hits, misses }, None) => {
                if misses < MAX_MISSES {
                    Track::Candidate { first, hits, misses: misses + 1 }
                } else {
                    Track::Idle
                }
            }
            (Track::Candidate { first, hits, .. }, Some(h)) if h.key() == first.key() => {
                if hits + 1 >= CONFIRM_HITS {
                    let onset = self.walk_back(&first, first.row.first + ROW_BLOCKS as u64 / 2);
                    self.emit(onset.saturating_sub(self.margin)..analysed, SpanKind::Confirmed, h.key(), emit);
                    self.tones += 1;
                    Track::Active { last: h, misses: 0, reported_end: analysed }
                } else {
                    Track::Candidate { first, hits: hits + 1, misses: 0 }
                }
            }
            (Track::Candidate { .. }, Some(h)) => Track::Candidate { first: h, hits: 1, misses: 0 },
            (Track::Active { last, misses, reported_end }, None) => {
                if misses < MAX_MISSES {
                    Track::Active { last, misses: misses + 1, reported_end }
                } else {
                    self.end_tone(&last, reported_end, emit);
                    Track::Idle
                }
            }
            (Track::Active { last, reported_end, .. }, Some(h)) if h.key() == last.key() => {
                self.emit(reported_end..analysed, SpanKind::Continued, h.key(), emit);
                Track::Active { last: h, misses: 0, reported_end: analysed }
            }
            (Track::Active { last, reported_end, .. }, Some(h)) => {
                self.end_tone(&last, reported_end, emit);
                Track::Candidate { first: h, hits: 1, misses: 0 }
            }
        };
    }

    /// Reports the rest of a tone that has ended: up to its end plus the
    /// margin, the part not yet analysed as a tail.
    fn end_tone(&mut self, last: &Hit, reported_end: u64, emit: &mut impl FnMut(Span)) {
        let offset = self.walk_forward(last, last.row.first + ROW_BLOCKS as u64 / 2);
        let end = offset + self.margin;
        let analysed = self.start(self.done);
        self.emit(reported_end..end.min(analysed), SpanKind::Continued, last.key(), emit);
        if end > analysed {
            let start = reported_end.max(analysed);
            self.tail = Some(match self.tail.take() {
                Some((t, _)) => (t.start.min(start)..t.end.max(end), last.key()),
                None => (start..end, last.key()),
            });
        }
    }

    /// How much of sub-block `s` is the tone measured by `hit`: its value in
    /// each tone's filter, less the other tone's predicted share, projected
    /// on the value the tone alone would give there. About 1 inside the tone,
    /// the fraction covered in a sub-block where it starts or stops, and near
    /// 0 (of either sign) for speech, whose phase does not follow the tone's.
    fn presence(&self, hit: &Hit, s: u64) -> f32 {
        let b = self.ring.get(s);
        if b.garbage {
            // Loud garbage next to a tone: silence it with the tone.
            return 1.0;
        }
        let g = &self.geo;
        let part = |own: &super::window::Fit, other: &super::window::Fit| {
            let want = own.predicted(g, s, own.filter);
            let got = b.c[own.filter] - other.predicted(g, s, own.filter);
            let n = want.norm_sqr();
            if n > 0.0 { (got * want.conj()).re / n } else { 0.0 }
        };
        part(&hit.row, &hit.col).min(part(&hit.col, &hit.row))
    }

    /// Onset of the tone `hit` belongs to: the earliest sub-block, walking
    /// back from `center`, still holding the tone, less the covered fraction
    /// of the one before. At most [`ROW_BLOCKS`] - 1 sub-blocks before the
    /// window (this bound is what `settled` relies on).
    fn walk_back(&self, hit: &Hit, center: u64) -> u64 {
        let floor = hit.row.first.saturating_sub(ROW_BLOCKS as u64 - 1);
        let mut s = center;
        while s > floor && self.presence(hit, s - 1) >= PRESENCE {
            s -= 1;
        }
        if s == floor {
            return self.start(s);
        }
        let part = self.presence(hit, s - 1).clamp(0.0, 1.0);
        self.start(s) - (part * self.geo.h as f32).round() as u64
    }

    /// End of the tone `hit` belongs to, walking forward from `center` over
    /// the sub-blocks analysed so far.
    fn walk_forward(&self, hit: &Hit, center: u64) -> u64 {
        let last = self.done - 1;
        let mut s = center;
        while s < last && self.presence(hit, s + 1) >= PRESENCE {
            s += 1;
        }
        if s == last {
            return self.start(self.done);
        }
        let part = self.presence(hit, s + 1).clamp(0.0, 1.0);
        self.start(s + 1) + (part * self.geo.h as f32).round() as u64
    }
}
