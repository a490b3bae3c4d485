//! Test signals: DTMF tones, noise, speech-like and music-like sounds, G.711 µ-law.

use std::f64::consts::TAU;

use super::DBM0_AMPLITUDE;
use super::goertzel::{COLS, ROWS};

/// The keypad, row-major, as key indices 0..16 name it.
pub const KEYS: &[u8; 16] = b"123A456B789C*0#D";

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn gauss(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        (-2.0 * u.ln()).sqrt() * (TAU * self.uniform()).cos()
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
}

/// Amplitude of a sine at `dbm0`.
pub fn amplitude(dbm0: f64) -> f64 {
    DBM0_AMPLITUDE as f64 * 10f64.powf(dbm0 / 20.0)
}

/// Power (mean square) of a sine at `dbm0`.
pub fn power(dbm0: f64) -> f64 {
    amplitude(dbm0).powi(2) / 2.0
}

/// A tone pair with each frequency's own level and frequency error.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    pub key: u8,
    pub row_dbm0: f64,
    pub col_dbm0: f64,
    pub row_dev: f64,
    pub col_dev: f64,
}

impl Pair {
    /// Key `key` with the pair at `dbm0` in total and `twist` dB (column minus row).
    pub fn new(key: u8, dbm0: f64, twist: f64) -> Pair {
        // Split the total power so that col - row = twist.
        let r = 1.0 / (1.0 + 10f64.powf(twist / 10.0));
        let row = dbm0 + 10.0 * r.log10();
        Pair { key, row_dbm0: row, col_dbm0: row + twist, row_dev: 0.0, col_dev: 0.0 }
    }
    pub fn deviation(mut self, row: f64, col: f64) -> Pair {
        (self.row_dev, self.col_dev) = (row, col);
        self
    }
    pub fn freqs(&self) -> (f64, f64) {
        let (r, c) = (ROWS[(self.key / 4) as usize] as f64, COLS[(self.key % 4) as usize] as f64);
        (r * (1.0 + self.row_dev), c * (1.0 + self.col_dev))
    }
    /// Adds `len` samples of the pair to `out` from `at`, random phases.
    pub fn add(&self, out: &mut [f32], at: usize, len: usize, fs: f64, rng: &mut Rng) {
        let (fr, fc) = self.freqs();
        let (ar, ac) = (amplitude(self.row_dbm0), amplitude(self.col_dbm0));
        let (pr, pc) = (rng.range(0.0, TAU), rng.range(0.0, TAU));
        for n in 0..len.min(out.len().saturating_sub(at)) {
            let t = n as f64 / fs;
            out[at + n] += (ar * (TAU * fr * t + pr).sin() + ac * (TAU * fc * t + pc).sin()) as f32;
        }
    }
}

/// White Gaussian noise at `dbm0` (power of a sine at that level), added.
pub fn add_white(out: &mut [f32], dbm0: f64, rng: &mut Rng) {
    let sigma = power(dbm0).sqrt();
    for x in out.iter_mut() {
        *x += (sigma * rng.gauss()) as f32;
    }
}

/// Scales `x` so that its mean power is that of a sine at `dbm0`.
pub fn set_level(x: &mut [f32], dbm0: f64) {
    let p = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len().max(1) as f64;
    if p > 0.0 {
        let k = (power(dbm0) / p).sqrt();
        x.iter_mut().for_each(|v| *v = (*v as f64 * k) as f32);
    }
}

/// Two-pole resonator (a formant), unit gain at its peak frequency roughly.
struct Resonator {
    a1: f64,
    a2: f64,
    g: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn new() -> Resonator {
        Resonator { a1: 0.0, a2: 0.0, g: 0.0, y1: 0.0, y2: 0.0 }
    }
    fn tune(&mut self, f: f64, bw: f64, fs: f64) {
        let r = (-std::f64::consts::PI * bw / fs).exp();
        self.a1 = 2.0 * r * (TAU * f / fs).cos();
        self.a2 = -r * r;
        self.g = 1.0 - r;
    }
    fn run(&mut self, x: f64) -> f64 {
        let y = self.g * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// A voice: pitch range and formant scale (1.0 adult male, ~1.2 female, ~1.35 child).
#[derive(Clone, Copy)]
pub struct Voice {
    pub pitch_lo: f64,
    pub pitch_hi: f64,
    pub formant_scale: f64,
}

pub const VOICES: [Voice; 5] = [
    Voice { pitch_lo: 85.0, pitch_hi: 140.0, formant_scale: 1.0 },
    Voice { pitch_lo: 110.0, pitch_hi: 180.0, formant_scale: 1.05 },
    Voice { pitch_lo: 170.0, pitch_hi: 280.0, formant_scale: 1.18 },
    Voice { pitch_lo: 200.0, pitch_hi: 340.0, formant_scale: 1.22 },
    Voice { pitch_lo: 250.0, pitch_hi: 450.0, formant_scale: 1.35 },
];

/// Vowel formants (F1, F2, F3) of an adult male voice, Hz.
const VOWELS: [(f64, f64, f64); 8] = [
    (730.0, 1090.0, 2440.0),
    (270.0, 2290.0, 3010.0),
    (530.0, 1840.0, 2480.0),
    (660.0, 1720.0, 2410.0),
    (570.0, 840.0, 2410.0),
    (300.0, 870.0, 2240.0),
    (640.0, 1190.0, 2390.0),
    (490.0, 1350.0, 1690.0),
];

/// Speech-like sound: a glottal pulse train whose pitch glides within the
/// voice's range, through three formants moving between vowels, in
/// syllables with unvoiced (noise) consonants and short pauses between.
pub fn speech(len: usize, fs: f64, voice: Voice, rng: &mut Rng) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    let mut res = [Resonator::new(), Resonator::new(), Resonator::new()];
    let mut phase = 0.0f64;
    let mut n = 0;
    let mut to = 1usize;
    let mut hp_prev = 0.0;
    while n < len {
        // One syllable: 80-300 ms, a consonant, a vowel glide, sometimes a pause.
        let syl = (rng.range(0.08, 0.3) * fs) as usize;
        let cons = (rng.range(0.0, 0.35) * syl as f64) as usize;
        let pause = if rng.uniform() < 0.2 { (rng.range(0.02, 0.2) * fs) as usize } else { 0 };
        let from = to;
        to = (rng.next_u64() % VOWELS.len() as u64) as usize;
        let p0 = rng.range(voice.pitch_lo, voice.pitch_hi);
        let p1 = rng.range(voice.pitch_lo, voice.pitch_hi);
        let loud = rng.range(0.3, 1.0);
        for i in 0..syl + pause {
            if n >= len {
                break;
            }
            let s = if i < syl {
                let t = i as f64 / syl as f64;
                let lerp = |a: f64, b: f64| a + (b - a) * t;
                let (a, b) = (VOWELS[from], VOWELS[to]);
                let k = voice.formant_scale;
                if i % 16 == 0 {
                    res[0].tune(lerp(a.0, b.0) * k, 80.0, fs);
                    res[1].tune(lerp(a.1, b.1) * k, 100.0, fs);
                    res[2].tune(lerp(a.2, b.2) * k, 140.0, fs);
                }
                let env = (std::f64::consts::PI * t).sin().powf(0.5) * loud;
                if i < cons {
                    // Unvoiced consonant: high-passed noise.
                    let w = rng.gauss();
                    let y = w - hp_prev;
                    hp_prev = w;
                    0.05 * y * env
                } else {
                    let pitch = lerp(p0, p1) * (1.0 + 0.01 * rng.gauss());
                    phase += pitch / fs;
                    // Rosenberg-like glottal pulse: open phase 40 % of the period.
                    let ph = phase.fract();
                    let g = if ph < 0.4 { 0.5 * (1.0 - (TAU * ph / 0.8).cos()) } else { 0.0 };
                    let exc = g - 0.2 + 0.02 * rng.gauss();
                    let y = res[0].run(exc) + 0.7 * res[1].run(exc) + 0.3 * res[2].run(exc);
                    y * env
                }
            } else {
                0.0
            };
            out[n] = s as f32;
            n += 1;
        }
    }
    out
}

/// Babble: several voices at once.
pub fn babble(len: usize, fs: f64, rng: &mut Rng) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    for v in VOICES.iter().cycle().take(6) {
        let s = speech(len, fs, *v, rng);
        out.iter_mut().zip(s).for_each(|(o, x)| *o += x);
    }
    out
}

/// Equal-tempered note frequency, A4 = 440 Hz, `semis` semitones from A4.
pub fn note(semis: i32) -> f64 {
    440.0 * 2f64.powf(semis as f64 / 12.0)
}

/// Adds a note with harmonics (amplitudes `harm[k]` for harmonic k+1) and
/// an attack-decay envelope, optional vibrato.
#[allow(clippy::too_many_arguments)] // a test generator; named fields would not read better
pub fn add_note(out: &mut [f32], at: usize, len: usize, f: f64, harm: &[f64], vibrato: f64, fs: f64, amp: f64) {
    let attack = (0.01 * fs) as usize;
    let mut ph = 0.0f64;
    for n in 0..len.min(out.len().saturating_sub(at)) {
        let t = n as f64 / fs;
        let env = if n < attack { n as f64 / attack as f64 } else { (-((n - attack) as f64) / (0.6 * fs)).exp() };
        ph += f * (1.0 + vibrato * (TAU * 5.5 * t).sin()) / fs;
        let mut s = 0.0;
        for (k, a) in harm.iter().enumerate() {
            s += a * (TAU * ph * (k + 1) as f64).sin();
        }
        out[at + n] += (amp * env * s) as f32;
    }
}

/// Harmonic profiles of a few instrument-like timbres.
pub const TIMBRES: [&[f64]; 5] = [
    &[1.0, 0.5, 0.33, 0.25, 0.2, 0.16],   // sawtooth-like (strings, brass)
    &[1.0, 0.0, 0.33, 0.0, 0.2, 0.0],     // square-like (clarinet)
    &[1.0, 0.3, 0.1, 0.05],               // flute-like
    &[1.0, 0.7, 0.5, 0.3, 0.3, 0.2, 0.1], // piano-like
    &[1.0, 0.2, 0.25, 0.1, 0.1],          // organ-like
];

/// Music: melodies and chords in several timbres, with notes near DTMF
/// frequencies (F5 698, F#5 740, G5 784, A5 880, A#5 932, D6 1175,
/// D#6 1245, E6 1319, F6 1397, F#6 1480, G#6 1661 Hz) on purpose.
pub fn music(len: usize, fs: f64, rng: &mut Rng) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    // Semitones from A4 of the notes near DTMF rows and columns, and others.
    let near: [i32; 11] = [8, 9, 10, 12, 13, 17, 18, 19, 20, 21, 23];
    let mut at = 0;
    while at < len {
        let dur = (rng.range(0.1, 0.6) * fs) as usize;
        let timbre = TIMBRES[(rng.next_u64() % TIMBRES.len() as u64) as usize];
        let vib = if rng.uniform() < 0.5 { 0.0 } else { 0.004 };
        let voices = 1 + (rng.next_u64() % 3) as usize;
        for v in 0..voices {
            let semis = if rng.uniform() < 0.7 {
                near[(rng.next_u64() % near.len() as u64) as usize] - 12 * (v as i32 % 2)
            } else {
                (rng.next_u64() % 36) as i32 - 12
            };
            add_note(&mut out, at, dur + (0.2 * fs) as usize, note(semis), timbre, vib, fs, 0.2);
        }
        at += dur;
    }
    out
}

/// G.711 µ-law encoding of a 16-bit sample.
pub fn ulaw_encode(x: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut v = x as i32;
    let sign = if v < 0 {
        v = -v;
        0x80
    } else {
        0
    };
    v = (v + BIAS).min(32635 + BIAS);
    let exp = (31 - (v as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mant = (v >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) | mant) as u8
}

/// G.711 µ-law decoding to a 16-bit sample.
pub fn ulaw_decode(b: u8) -> i16 {
    let b = !b;
    let exp = ((b >> 4) & 7) as i32;
    let mant = (b & 0x0F) as i32;
    let v = (((mant << 3) + 0x84) << exp) - 0x84;
    (if b & 0x80 != 0 { -v } else { v }) as i16
}

/// Through a µ-law channel and back, as the daemon would see a G.711 recording.
pub fn ulaw_roundtrip(x: &mut [f32]) {
    for v in x.iter_mut() {
        let s = (*v * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        *v = ulaw_decode(ulaw_encode(s)) as f32 / 32768.0;
    }
}
