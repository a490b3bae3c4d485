//! Goertzel filters over 5 ms sub-blocks: one complex DFT value per DTMF
//! frequency (and per harmonic checked) for every sub-block of samples.
//!
//! Each sub-block is analysed on its own and its filter state starts from zero,
//! so a sub-block's values are final when it ends: windows of any length that
//! are whole sub-blocks are sums of them (see `window.rs`), f32 rounding never
//! accumulates over a long call, and a NaN poisons one sub-block, not the stream.

use std::ops::{Add, Mul, Sub};

/// Row frequencies (Hz), ITU-T Q.23.
pub(crate) const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column frequencies (Hz), ITU-T Q.23.
pub(crate) const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Filters, in this order: 4 rows, 4 columns, the rows' second harmonics,
/// the columns' second harmonics, the rows' third harmonics (the columns'
/// are above 3.4 kHz, cut by the telephone band).
pub(crate) const FILTERS: usize = 20;
/// Index of the first column filter, of the row harmonics and of the column harmonics.
pub(crate) const COL0: usize = 4;
pub(crate) const ROW_HARM0: usize = 8;
pub(crate) const COL_HARM0: usize = 12;
pub(crate) const ROW_HARM3_0: usize = 16;

/// Filter frequencies in Hz, in the order described at [`FILTERS`].
pub(crate) fn frequencies() -> [f32; FILTERS] {
    let mut f = [0.0; FILTERS];
    for i in 0..4 {
        f[i] = ROWS[i];
        f[COL0 + i] = COLS[i];
        f[ROW_HARM0 + i] = 2.0 * ROWS[i];
        f[COL_HARM0 + i] = 2.0 * COLS[i];
        f[ROW_HARM3_0 + i] = 3.0 * ROWS[i];
    }
    f
}

/// Samples beyond this magnitude (and NaN, infinities) are garbage, not audio:
/// full scale is ±1.0. They are fed as 0 so the filter state stays finite, and
/// their sub-block is marked so that no tone is ever read from it.
pub(crate) const SAMPLE_LIMIT: f32 = 4.0;

/// A complex number, just what the filters need.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cpx {
    pub re: f32,
    pub im: f32,
}

impl Cpx {
    pub const ZERO: Cpx = Cpx { re: 0.0, im: 0.0 };
    /// e^{jθ}
    pub fn expj(theta: f32) -> Cpx {
        let (s, c) = theta.sin_cos();
        Cpx { re: c, im: s }
    }
    pub fn conj(self) -> Cpx {
        Cpx { re: self.re, im: -self.im }
    }
    pub fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
    pub fn abs(self) -> f32 {
        self.norm_sqr().sqrt()
    }
    pub fn arg(self) -> f32 {
        self.im.atan2(self.re)
    }
    pub fn scale(self, k: f32) -> Cpx {
        Cpx { re: self.re * k, im: self.im * k }
    }
    pub fn div(self, d: Cpx) -> Cpx {
        let n = d.norm_sqr();
        if n <= f32::MIN_POSITIVE {
            return Cpx::ZERO;
        }
        (self * d.conj()).scale(1.0 / n)
    }
}

impl Add for Cpx {
    type Output = Cpx;
    fn add(self, o: Cpx) -> Cpx {
        Cpx { re: self.re + o.re, im: self.im + o.im }
    }
}

impl Sub for Cpx {
    type Output = Cpx;
    fn sub(self, o: Cpx) -> Cpx {
        Cpx { re: self.re - o.re, im: self.im - o.im }
    }
}

impl Mul for Cpx {
    type Output = Cpx;
    fn mul(self, o: Cpx) -> Cpx {
        Cpx { re: self.re * o.re - self.im * o.im, im: self.re * o.im + self.im * o.re }
    }
}

/// `S_len(θ) = Σ_{n<len} e^{jθn}`: how a sum over `len` samples at one
/// frequency sees a sinusoid `θ` radians per sample away from it.
pub(crate) fn dirichlet(theta: f32, len: usize) -> Cpx {
    let half = theta * 0.5;
    let s = half.sin();
    let mag = if s.abs() < 1e-6 { len as f32 } else { (half * len as f32).sin() / s };
    Cpx::expj(half * (len as f32 - 1.0)).scale(mag)
}

/// What one sub-block left behind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubBlock {
    /// `Σ_{n<H} x[n] e^{-jωn}` per filter, phase referred to the sub-block's first sample.
    pub c: [Cpx; FILTERS],
    /// Σ x², for the total-energy check.
    pub energy: f32,
    /// Σ x, so a DC offset does not count as energy outside the tone pair.
    pub sum: f32,
    /// A sample was NaN, infinite or far beyond full scale.
    pub garbage: bool,
}

impl SubBlock {
    pub const EMPTY: SubBlock = SubBlock { c: [Cpx::ZERO; FILTERS], energy: 0.0, sum: 0.0, garbage: false };
}

/// The running filters of the sub-block being filled.
pub(crate) struct Bank {
    /// 2 cos ω: the Goertzel recursion `s[n] = x[n] + 2cos ω s[n-1] - s[n-2]`.
    coef: [f32; FILTERS],
    /// e^{-jω}, for `s[N-1] - e^{-jω} s[N-2]`.
    step: [Cpx; FILTERS],
    /// e^{-jω(H-1)}: moves the result's phase reference to the sub-block's first sample.
    to_start: [Cpx; FILTERS],
    s1: [f32; FILTERS],
    s2: [f32; FILTERS],
    energy: f32,
    sum: f32,
    garbage: bool,
}

impl Bank {
    /// Filters at `omega` (radians per sample) over sub-blocks of `h` samples.
    pub fn new(omega: &[f32; FILTERS], h: usize) -> Bank {
        let mut b = Bank {
            coef: [0.0; FILTERS],
            step: [Cpx::ZERO; FILTERS],
            to_start: [Cpx::ZERO; FILTERS],
            s1: [0.0; FILTERS],
            s2: [0.0; FILTERS],
            energy: 0.0,
            sum: 0.0,
            garbage: false,
        };
        for (i, &w) in omega.iter().enumerate() {
            b.coef[i] = 2.0 * w.cos();
            b.step[i] = Cpx::expj(-w);
            // Reduced modulo 2π in f64 first: at 48 kHz ω(H-1) is dozens of radians.
            let turn = (w as f64 * (h as f64 - 1.0)).rem_euclid(std::f64::consts::TAU);
            b.to_start[i] = Cpx::expj(-(turn as f32));
        }
        b
    }

    /// Runs the filters over `samples`, all inside the current sub-block.
    #[inline]
    pub fn feed(&mut self, samples: &[f32]) {
        let coef = self.coef;
        let (mut s1, mut s2) = (self.s1, self.s2);
        let (mut energy, mut sum, mut garbage) = (self.energy, self.sum, self.garbage);
        for &x in samples {
            // `abs() <= LIMIT` is false for NaN too.
            let ok = x.abs() <= SAMPLE_LIMIT;
            let v = if ok { x } else { 0.0 };
            garbage |= !ok;
            energy += v * v;
            sum += v;
            for i in 0..FILTERS {
                let s = v + coef[i] * s1[i] - s2[i];
                s2[i] = s1[i];
                s1[i] = s;
            }
        }
        (self.s1, self.s2) = (s1, s2);
        (self.energy, self.sum, self.garbage) = (energy, sum, garbage);
    }

    /// Ends a full sub-block: its values, and filters reset for the next one.
    pub fn take(&mut self) -> SubBlock {
        let mut out = SubBlock { c: [Cpx::ZERO; FILTERS], energy: self.energy, sum: self.sum, garbage: self.garbage };
        for i in 0..FILTERS {
            let y = Cpx { re: self.s1[i], im: 0.0 } - self.step[i].scale(self.s2[i]);
            out.c[i] = y * self.to_start[i];
        }
        self.reset();
        out
    }

    pub fn reset(&mut self) {
        self.s1 = [0.0; FILTERS];
        self.s2 = [0.0; FILTERS];
        (self.energy, self.sum, self.garbage) = (0.0, 0.0, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recursion plus the phase fix-up equals the direct sum Σ x[n] e^{-jωn}.
    #[test]
    fn sub_block_value_is_the_direct_dft_sum() {
        let h = 40;
        let mut omega = [0.0; FILTERS];
        for (i, f) in frequencies().iter().enumerate() {
            omega[i] = std::f32::consts::TAU * f / 8000.0;
        }
        let x: Vec<f32> = (0..h).map(|n| ((n * 7919) % 97) as f32 / 97.0 - 0.5).collect();
        let mut bank = Bank::new(&omega, h);
        bank.feed(&x[..13]);
        bank.feed(&x[13..]);
        let got = bank.take();
        for (i, &w) in omega.iter().enumerate() {
            let want = x.iter().enumerate().fold(Cpx::ZERO, |acc, (n, &v)| acc + Cpx::expj(-w * n as f32).scale(v));
            assert!((got.c[i] - want).abs() < 1e-4, "filter {i}: {:?} vs {want:?}", got.c[i]);
        }
        let e: f32 = x.iter().map(|v| v * v).sum();
        assert!((got.energy - e).abs() < 1e-4);
    }

    #[test]
    fn garbage_is_flagged_and_state_stays_finite() {
        let omega = [0.3; FILTERS];
        let mut bank = Bank::new(&omega, 8);
        bank.feed(&[f32::NAN, f32::INFINITY, 1e30, -f32::INFINITY, 0.5, 0.0, 0.0, 0.0]);
        let sb = bank.take();
        assert!(sb.garbage);
        assert!(sb.c.iter().all(|c| c.re.is_finite() && c.im.is_finite()) && sb.energy.is_finite());
        bank.feed(&[0.5; 8]);
        assert!(!bank.take().garbage, "the next sub-block starts clean");
    }
}
