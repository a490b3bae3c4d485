//! What counts as a DTMF digit: the receiver's thresholds and the figures
//! (ITU-T Q.24, the Bell/AT&T receiver figures) they come from.
//!
//! Where a standard gives "must accept X, must reject Y", the threshold sits
//! between them, nearer the accept side by about the measurement error; the
//! product promise is masking, so a missed digit costs more than a masked
//! syllable, but talk-off (speech taken for a digit) still masks speech.

/// Amplitude (full scale ±1.0) of a 0 dBm0 sine.
///
/// ITU-T G.711 puts the µ-law full-scale sine (14-bit amplitude 8159) at
/// +3.17 dBm0 (A-law: 4096 at +3.14 dBm0), so 0 dBm0 is 8159/10^(3.17/20) =
/// 5666 of 8192, 0.6916 of full scale once decoded to 16 bits and divided by
/// 32768. The G.711 µ-law digital milliwatt (0x1E 0x0B 0x0B 0x1E 0x9E 0x8B
/// 0x8B 0x9E), decoded, has an RMS of 16017/32768, that is a sine of
/// amplitude 0.6913: the test `digital_milliwatt_is_0_dbm0` checks it. The
/// A-law reference differs by 0.03 dB, far below any threshold here.
pub const DBM0_AMPLITUDE: f32 = 0.6916;

/// Sub-block length: the time resolution of the detector and of span edges.
pub(crate) const SUB_BLOCK_SECONDS: f64 = 0.005;
/// Row window: 5 sub-blocks, 25 ms (200 samples at 8 kHz, the classic 205-sample
/// block's length): bins of 40 Hz separate rows 73 Hz apart.
pub(crate) const ROW_BLOCKS: usize = 5;
/// Column window: the middle 3 sub-blocks, 15 ms. Columns are at least 127 Hz
/// apart, and a 25 ms window would lose a 1633 Hz tone 2.5 % off frequency in
/// its first null; 15 ms loses only 5 dB there, and the amplitude is then
/// measured with the filter retuned to the estimated frequency anyway.
pub(crate) const COL_BLOCKS: usize = 3;

/// Minimum power of the pair, dBm0. The product promise is -25 dBm0; 6 dB of
/// margin for noise and for tones at the edge of the frequency tolerance.
/// Q.24's own reject levels (around -35 dBm0 per frequency) are lower still.
pub(crate) const MIN_PAIR_DBM0: f32 = -31.0;
/// Twist (column level minus row level), dB: Q.24 / Bell accept +4 dB forward
/// and -8 dB reverse; 2 dB added for measurement error (about ±1 dB measured
/// with noise 20 dB down and both tones 1.5 % off).
pub(crate) const MAX_FORWARD_TWIST_DB: f32 = 6.0;
pub(crate) const MAX_REVERSE_TWIST_DB: f32 = 10.0;
/// Frequency error: Q.24 accept within ±1.5 %, reject beyond ±3.5 %; the
/// threshold is the middle, with the estimate good to about 0.2 % in noise.
pub(crate) const FREQ_TOLERANCE: f32 = 0.025;
/// The row (column) peak must exceed every other row (column) filter by this
/// much, dB, as in the classic Goertzel receivers (spandsp: 8 dB).
pub(crate) const RELATIVE_PEAK_DB: f32 = 8.0;
/// The pair must carry at least this fraction of the energy of both windows
/// (DC removed): a tone with noise 15 dB below keeps 0.97 (10 dB below: 0.91),
/// while speech spreads its energy over many harmonics and formants.
pub(crate) const PAIR_ENERGY_FRACTION: f32 = 0.85;
/// A second (or, for rows, third) harmonic less than this far (dB) below its
/// fundamental means a voice or an instrument, not a tone generator: Q.23
/// wants a sender's other components at least 20 dB down. (15 dB let a
/// flute-like F5 + E6 chord through: 698 + 1319 Hz is key 2 within 1.3 %.)
pub(crate) const HARMONIC_DB: f32 = 20.0;

/// Consecutive windows (5 ms apart) that must agree before a digit is
/// confirmed: 2 windows span 30 ms. A 40 ms tone always holds at least three
/// whole 25 ms row windows 5 ms apart (their starts fall in 15 ms), so one of
/// them may fail in noise and the tone is still confirmed.
pub(crate) const CONFIRM_HITS: u32 = 2;
/// Windows that may fail inside a tone (a click, a codec glitch) without ending
/// it. One 5 ms step: a 23 ms inter-digit pause (the Q.24 minimum) fails at
/// least 4 windows in a row, so consecutive digits stay apart.
pub(crate) const MAX_MISSES: u32 = 1;
/// A sub-block belongs to the tone when it holds at least this fraction of the
/// tone's steady amplitude, in phase with it (see `Detector::presence`).
pub(crate) const PRESENCE: f32 = 0.5;

/// dB to a power ratio.
pub(crate) fn db_power(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}
