//! The receiver checks on one analysis window: is this window one DTMF digit?
//!
//! A window is whole sub-blocks: the row window is [`ROW_BLOCKS`] of them and the
//! column window the middle [`COL_BLOCKS`]. Sums of sub-block values rotated by
//! `e^{-jω·iH}` give the window's DFT at the nominal frequencies (for peak
//! picking); the phase advance between the two sub-windows shifted by one
//! sub-block gives each tone's true frequency; rotating at that frequency
//! instead gives its amplitude without the loss of an off-centre bin.

use super::goertzel::{COL_HARM0, COL0, Cpx, FILTERS, ROW_HARM0, ROW_HARM3_0, SubBlock, dirichlet, frequencies};
use super::rules::*;

/// Sub-blocks kept: enough for the onset walk-back of a tone confirmed late
/// (see `Detector`), a power of two for cheap indexing.
pub(crate) const RING: usize = 16;

/// The last [`RING`] sub-blocks, by index since the last reset.
pub(crate) struct Ring {
    blocks: [SubBlock; RING],
}

impl Ring {
    pub fn new() -> Ring {
        Ring { blocks: [SubBlock::EMPTY; RING] }
    }
    pub fn get(&self, index: u64) -> &SubBlock {
        &self.blocks[(index % RING as u64) as usize]
    }
    pub fn put(&mut self, index: u64, b: SubBlock) {
        self.blocks[(index % RING as u64) as usize] = b;
    }
}

/// `a <= b`, false when either is NaN: every check is written so that a
/// NaN (which the filters should never produce) rejects the window.
fn at_most(a: f32, b: f32) -> bool {
    a <= b
}

/// Everything that depends on the sample rate, computed once.
pub(crate) struct Geometry {
    /// Samples per sub-block.
    pub h: usize,
    /// Radians per sample, per filter.
    pub omega: [f32; FILTERS],
    /// `rot[f][i] = e^{-jω_f·iH}`: moves sub-block `i` of a window to the
    /// window's phase reference.
    rot: [[Cpx; ROW_BLOCKS]; FILTERS],
    min_pair_power: f32,
    rel_peak: f32,
    forward_twist: f32,
    reverse_twist: f32,
    harmonic: f32,
}

/// One tone of a pair, as measured over its window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fit {
    /// Filter index (0..8).
    pub filter: usize,
    /// First sub-block of the window it was measured over.
    pub first: u64,
    /// Estimated frequency, radians per sample.
    pub omega: f32,
    /// Predicted value of this filter in sub-block `first` (the tone alone);
    /// in sub-block `s` it is `per_block · e^{jω(s-first)H}`.
    pub per_block: Cpx,
    /// Amplitude, full scale 1.0.
    pub amp: f32,
}

/// The first check a window failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    Garbage,
    RowPeak,
    ColPeak,
    RowFrequency,
    ColFrequency,
    Level,
    Twist,
    Energy,
    RowHarmonic,
    ColHarmonic,
}

/// A window that passed every check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub row: Fit,
    pub col: Fit,
}

impl Hit {
    /// Key index 0..16, row-major on the keypad ("123A456B789C*0#D").
    pub fn key(&self) -> u8 {
        (self.row.filter * 4 + (self.col.filter - COL0)) as u8
    }
}

impl Fit {
    /// This tone's predicted value, alone, in filter `filter` of sub-block `s`.
    pub fn predicted(&self, g: &Geometry, s: u64, filter: usize) -> Cpx {
        let turn = (self.omega as f64 * g.h as f64 * (s as f64 - self.first as f64)).rem_euclid(std::f64::consts::TAU);
        let own = self.per_block * Cpx::expj(turn as f32);
        if filter == self.filter {
            return own;
        }
        // The same tone seen through another filter of the same sub-block length.
        let here = dirichlet(self.omega - g.omega[self.filter], g.h);
        let there = dirichlet(self.omega - g.omega[filter], g.h);
        own * there.div(here)
    }
}

impl Geometry {
    pub fn new(sample_rate: u32) -> Geometry {
        let fs = sample_rate as f64;
        let h = ((fs * SUB_BLOCK_SECONDS).round() as usize).max(1);
        let mut omega = [0.0; FILTERS];
        let mut rot = [[Cpx::ZERO; ROW_BLOCKS]; FILTERS];
        for (f, hz) in frequencies().iter().enumerate() {
            let w = std::f64::consts::TAU * *hz as f64 / fs;
            omega[f] = w as f32;
            for (i, r) in rot[f].iter_mut().enumerate() {
                *r = Cpx::expj(-((w * (i * h) as f64).rem_euclid(std::f64::consts::TAU)) as f32);
            }
        }
        let a0 = DBM0_AMPLITUDE;
        Geometry {
            h,
            omega,
            rot,
            min_pair_power: a0 * a0 / 2.0 * db_power(MIN_PAIR_DBM0),
            rel_peak: db_power(RELATIVE_PEAK_DB),
            forward_twist: db_power(MAX_FORWARD_TWIST_DB),
            reverse_twist: db_power(-MAX_REVERSE_TWIST_DB),
            harmonic: db_power(-HARMONIC_DB),
        }
    }

    /// Window sum of filter `f` over `n` sub-blocks from `first`, at the nominal frequency.
    fn sum(&self, ring: &Ring, f: usize, first: u64, n: usize) -> Cpx {
        let mut acc = Cpx::ZERO;
        for i in 0..n {
            acc = acc + ring.get(first + i as u64).c[f] * self.rot[f][i];
        }
        acc
    }

    /// Window sum of `values(s)` over `n` sub-blocks from `first`, rotated at `omega`.
    fn retuned(&self, omega: f32, first: u64, n: usize, values: impl Fn(u64) -> Cpx) -> Cpx {
        let step = Cpx::expj(-((omega as f64 * self.h as f64).rem_euclid(std::f64::consts::TAU)) as f32);
        let (mut acc, mut rot) = (Cpx::ZERO, Cpx { re: 1.0, im: 0.0 });
        for i in 0..n {
            acc = acc + values(first + i as u64) * rot;
            rot = rot * step;
        }
        acc
    }

    /// Mean power (DC removed) over `n` sub-blocks from `first`.
    fn power(&self, ring: &Ring, first: u64, n: usize) -> f32 {
        let (mut e, mut s) = (0.0f32, 0.0f32);
        for i in 0..n {
            let b = ring.get(first + i as u64);
            e += b.energy;
            s += b.sum;
        }
        let len = (n * self.h) as f32;
        ((e - s * s / len) / len).max(0.0)
    }

    /// Peak filter of a group of four, if it stands [`RELATIVE_PEAK_DB`] above the others.
    fn peak(&self, ring: &Ring, group: usize, first: u64, n: usize) -> Option<usize> {
        let p: [f32; 4] = std::array::from_fn(|i| self.sum(ring, group + i, first, n).norm_sqr());
        let best = (0..4).max_by(|&a, &b| p[a].total_cmp(&p[b]))?;
        let clear = (0..4).all(|i| i == best || p[best] >= self.rel_peak * p[i]);
        (clear && p[best] > 0.0).then_some(group + best)
    }

    /// The tone at filter `f` over `n` sub-blocks from `first`: frequency from the
    /// phase advance between the two sub-windows one sub-block apart, then the
    /// amplitude from the sum retuned to that frequency.
    fn fit(&self, ring: &Ring, f: usize, first: u64, n: usize) -> Option<Fit> {
        let early = self.sum(ring, f, first, n - 1);
        let late = self.sum(ring, f, first + 1, n - 1);
        let nominal = self.omega[f];
        let turn = (nominal as f64 * self.h as f64).rem_euclid(std::f64::consts::TAU) as f32;
        let mut dphi = (late * early.conj()).arg() - turn;
        // Wrap to (-π, π]: unambiguous for errors up to fs/(2H), 100 Hz.
        dphi -= std::f32::consts::TAU * (dphi / std::f32::consts::TAU).round();
        let dw = dphi / self.h as f32;
        if !at_most(dw.abs(), FREQ_TOLERANCE * nominal) {
            return None;
        }
        let omega = nominal + dw;
        let total = self.retuned(omega, first, n, |s| ring.get(s).c[f]);
        let per_block = total.scale(1.0 / n as f32);
        let gain = dirichlet(dw, self.h).abs();
        let amp = 2.0 * per_block.abs() / gain;
        Some(Fit { filter: f, first, omega, per_block, amp })
    }

    /// Runs every check on the row window of `row_n` sub-blocks from `row_first`
    /// and the column window of `col_n` from `col_first`.
    pub fn evaluate(
        &self,
        ring: &Ring,
        row_first: u64,
        row_n: usize,
        col_first: u64,
        col_n: usize,
    ) -> Result<Hit, Reject> {
        let span = row_first.min(col_first)..(row_first + row_n as u64).max(col_first + col_n as u64);
        if span.clone().any(|s| ring.get(s).garbage) {
            return Err(Reject::Garbage);
        }
        // One row peak and one column peak, each well above its group.
        let r = self.peak(ring, 0, row_first, row_n).ok_or(Reject::RowPeak)?;
        let c = self.peak(ring, COL0, col_first, col_n).ok_or(Reject::ColPeak)?;
        // Both within the frequency tolerance.
        let row = self.fit(ring, r, row_first, row_n).ok_or(Reject::RowFrequency)?;
        let col = self.fit(ring, c, col_first, col_n).ok_or(Reject::ColFrequency)?;
        // Level of the pair.
        let (pr, pc) = (row.amp * row.amp / 2.0, col.amp * col.amp / 2.0);
        let pair = pr + pc;
        if !at_most(self.min_pair_power, pair) {
            return Err(Reject::Level);
        }
        // Twist, column minus row.
        if !(at_most(pc, self.forward_twist * pr) && at_most(self.reverse_twist * pr, pc)) {
            return Err(Reject::Twist);
        }
        // The pair is most of the energy in both windows.
        let total = self.power(ring, row_first, row_n).max(self.power(ring, col_first, col_n));
        if !at_most(PAIR_ENERGY_FRACTION * total, pair) {
            return Err(Reject::Energy);
        }
        // No strong harmonics. Each is measured on what is left once both
        // tones' predicted share is taken out: the row harmonics (1394..1882
        // Hz) sit 58..93 Hz from columns, and a filter retuned away from its
        // nominal frequency also hears tones a multiple of 200 Hz away.
        let residual = |s: u64, f: usize| ring.get(s).c[f] - row.predicted(self, s, f) - col.predicted(self, s, f);
        let row_fund = row.per_block.scale(row_n as f32).norm_sqr();
        let col_fund = col.per_block.scale(col_n as f32).norm_sqr();
        let (h2, h3) = (ROW_HARM0 + r, ROW_HARM3_0 + r);
        let row_harm2 = self.retuned(2.0 * row.omega, row_first, row_n, |s| residual(s, h2));
        // The third harmonic too: a clarinet-like note (odd harmonics only)
        // right on a row frequency has no second harmonic.
        let row_harm3 = self.retuned(3.0 * row.omega, row_first, row_n, |s| residual(s, h3));
        if !at_most(row_harm2.norm_sqr().max(row_harm3.norm_sqr()), self.harmonic * row_fund) {
            return Err(Reject::RowHarmonic);
        }
        let hc = COL_HARM0 + (c - COL0);
        let col_harm = self.retuned(2.0 * col.omega, col_first, col_n, |s| residual(s, hc));
        if !at_most(col_harm.norm_sqr(), self.harmonic * col_fund) {
            return Err(Reject::ColHarmonic);
        }
        Ok(Hit { row, col })
    }
}
