//! Detects DTMF keypad tones in a stream of samples, so the daemon can silence them before they are stored.
//!
//! Card numbers keyed on a phone during a recorded call must never reach
//! disk. The daemon decodes each channel to f32 samples (full scale ±1.0,
//! G.711 decoded per ITU-T G.711, so 0 dBm0 is a sine of amplitude
//! [`DBM0_AMPLITUDE`]), feeds one [`Detector`] per channel, stores only the
//! samples below [`Detector::settled`] and silences the spans it reports.
//!
//! How a digit is recognised (thresholds and their sources in `rules.rs`):
//! Goertzel filters at the 8 DTMF frequencies and their harmonics run
//! over 5 ms sub-blocks; every 5 ms a 25 ms window (rows) and its middle
//! 15 ms (columns) are checked: one row and one column peak 8 dB above the
//! rest of their group, both within ±2.5 % of nominal (measured from the
//! phase advance over 5 ms), pair power at least -31 dBm0, twist within
//! +6/-10 dB, the pair at least 85 % of the energy, second harmonics (and
//! the rows' third) 20 dB down. Two such windows of the same key (30 ms) confirm a digit.
//!
//! Reporting: a confirmed tone is reported at once, from its onset minus
//! [`MARGIN`] to the samples analysed so far (so at least up to
//! [`Detector::settled`]); while it lasts, further spans continue it; when it
//! ends, a last span reaches its end plus [`MARGIN`]. Spans never reach below
//! the settled point seen before, never beyond the samples pushed, and may
//! overlap: the caller merges them. Nothing is allocated after
//! [`Detector::new`]: spans go into the caller's vector.

mod detector;
mod goertzel;
mod rules;
mod window;

#[cfg(test)]
mod signals;
#[cfg(test)]
mod tests;

pub use detector::{Detector, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Span, SpanKind};
pub use rules::DBM0_AMPLITUDE;

/// Silence added on both sides of a detected tone.
///
/// 20 ms: tone edges are located to within about one 5 ms sub-block, phone
/// tone generators ramp up and down over a few ms, and codecs smear edges by
/// a few more; 20 ms covers all of that with room to spare, while staying
/// short enough that speech next to a digit loses at most a syllable's edge.
/// Between fast-dialed digits (40 ms pauses) the margins meet, which costs
/// nothing: the pause carries no speech.
pub const MARGIN: std::time::Duration = std::time::Duration::from_millis(20);
