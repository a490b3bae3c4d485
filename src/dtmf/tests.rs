//! Detection, rejection, span placement, chunking, end of stream and garbage.

use std::ops::Range;

use proptest::prelude::{ProptestConfig, prop_assert_eq, proptest};

use super::signals::*;
use super::*;

/// Runs `x` through a fresh detector in chunks of `chunk`, then `finish`.
fn run(fs: u32, x: &[f32], chunk: usize) -> Vec<Span> {
    let mut d = Detector::new(fs);
    let mut out = Vec::new();
    for c in x.chunks(chunk.max(1)) {
        d.push_spans(c, &mut |s| out.push(s));
    }
    d.finish_spans(&mut |s| out.push(s));
    out
}

/// Tones reported: confirmed ones plus those cut by the end.
fn tones(spans: &[Span]) -> Vec<u8> {
    spans.iter().filter(|s| s.kind == SpanKind::Confirmed || s.kind == SpanKind::Cut).map(|s| s.key).collect()
}

/// Union of the spans, sorted, touching ones joined.
fn merge(spans: &[Span]) -> Vec<Range<u64>> {
    let mut r: Vec<Range<u64>> = spans.iter().map(|s| s.range.clone()).collect();
    r.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for x in r {
        match out.last_mut() {
            Some(l) if x.start <= l.end => l.end = l.end.max(x.end),
            _ => out.push(x),
        }
    }
    out
}

fn margin(fs: u32) -> u64 {
    (MARGIN.as_secs_f64() * fs as f64).round() as u64
}

fn ms(fs: u32, t: f64) -> usize {
    (fs as f64 * t / 1000.0).round() as usize
}

/// A signal with tones at known places: (key, start, end) of each.
struct Script {
    fs: u32,
    x: Vec<f32>,
    truth: Vec<(u8, usize, usize)>,
}

impl Script {
    fn new(fs: u32) -> Script {
        Script { fs, x: Vec::new(), truth: Vec::new() }
    }
    fn gap(&mut self, t_ms: f64) -> &mut Script {
        let n = ms(self.fs, t_ms);
        self.x.resize(self.x.len() + n, 0.0);
        self
    }
    fn fill(&mut self, s: &[f32]) -> &mut Script {
        self.x.extend_from_slice(s);
        self
    }
    fn tone(&mut self, p: Pair, t_ms: f64, rng: &mut Rng) -> &mut Script {
        let n = ms(self.fs, t_ms);
        let at = self.x.len();
        self.x.resize(at + n, 0.0);
        p.add(&mut self.x, at, n, self.fs as f64, rng);
        self.truth.push((p.key, at, at + n));
        self
    }
}

#[test]
fn digital_milliwatt_is_0_dbm0() {
    // ITU-T G.711 Table 5: the µ-law digital milliwatt, a 1 kHz sine at 0 dBm0.
    let seq = [0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E];
    let ms = seq.iter().map(|&b| (ulaw_decode(b) as f64 / 32768.0).powi(2)).sum::<f64>() / 8.0;
    let amp = (2.0 * ms).sqrt();
    let db = 20.0 * (amp / DBM0_AMPLITUDE as f64).log10();
    assert!(db.abs() < 0.05, "digital milliwatt at {db:.3} dB from DBM0_AMPLITUDE");
}

#[test]
fn all_16_keys_at_every_level_with_noise_through_mu_law() {
    let mut rng = Rng::new(1);
    for level in [0.0, -6.0, -12.0, -18.0, -25.0] {
        for key in 0..16u8 {
            let mut s = Script::new(8000);
            s.gap(100.0).tone(Pair::new(key, level, 0.0), 60.0, &mut rng).gap(100.0);
            // White noise 15 dB below the tone pair.
            add_white(&mut s.x, level - 15.0, &mut rng);
            ulaw_roundtrip(&mut s.x);
            let spans = run(8000, &s.x, 160);
            assert_eq!(tones(&spans), vec![key], "key {} at {level} dBm0", KEYS[key as usize] as char);
        }
    }
}

#[test]
fn keys_in_babble_noise() {
    let mut rng = Rng::new(2);
    for (i, key) in (0..16u8).enumerate() {
        let level = -25.0 + (i % 6) as f64 * 5.0;
        let mut s = Script::new(8000);
        s.gap(200.0).tone(Pair::new(key, level, [-6.0, 0.0, 3.0][i % 3]), 50.0, &mut rng).gap(200.0);
        let mut noise = babble(s.x.len(), 8000.0, &mut rng);
        set_level(&mut noise, level - 15.0);
        s.x.iter_mut().zip(noise).for_each(|(x, n)| *x += n);
        assert_eq!(tones(&run(8000, &s.x, 160)), vec![key], "key {} at {level} dBm0", KEYS[key as usize] as char);
    }
}

#[test]
fn twist_and_frequency_error_within_limits_are_accepted() {
    let mut rng = Rng::new(3);
    for key in 0..16u8 {
        for twist in [4.0, -8.0, 0.0] {
            for (dr, dc) in [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015), (-0.015, 0.015)] {
                for level in [-25.0, -3.0] {
                    let mut s = Script::new(8000);
                    s.gap(80.0).tone(Pair::new(key, level, twist).deviation(dr, dc), 45.0, &mut rng).gap(80.0);
                    add_white(&mut s.x, level - 20.0, &mut rng);
                    assert_eq!(
                        tones(&run(8000, &s.x, 160)),
                        vec![key],
                        "key {} twist {twist} dev {dr}/{dc} at {level}",
                        KEYS[key as usize] as char
                    );
                }
            }
        }
    }
}

#[test]
fn out_of_spec_tones_are_rejected() {
    let mut rng = Rng::new(4);
    for key in 0..16u8 {
        for p in [
            Pair::new(key, -10.0, 0.0).deviation(0.04, 0.0),
            Pair::new(key, -10.0, 0.0).deviation(0.0, -0.04),
            Pair::new(key, -10.0, 12.0),
            Pair::new(key, -10.0, -16.0),
            Pair::new(key, -45.0, 0.0),
        ] {
            let mut s = Script::new(8000);
            s.gap(80.0).tone(p, 100.0, &mut rng).gap(80.0);
            assert!(tones(&run(8000, &s.x, 160)).is_empty(), "{p:?}");
        }
        // One frequency alone is not a digit.
        let mut x = vec![0.0f32; 2000];
        let mut p = Pair::new(key, -10.0, 0.0);
        p.col_dbm0 = -200.0;
        p.add(&mut x, 400, 800, 8000.0, &mut rng);
        assert!(tones(&run(8000, &x, 160)).is_empty());
    }
}

#[test]
fn fast_dialing_40_ms_tones_40_ms_pauses_at_every_rate() {
    let mut rng = Rng::new(5);
    for fs in [8000, 16000, 44100, 48000] {
        let mut s = Script::new(fs);
        s.gap(50.0);
        let keys: Vec<u8> = (0..16).chain([5, 5, 5, 0, 0]).collect();
        for &k in &keys {
            s.tone(Pair::new(k, -20.0, -2.0), 40.0, &mut rng).gap(40.0);
        }
        add_white(&mut s.x, -38.0, &mut rng);
        assert_eq!(tones(&run(fs, &s.x, 160)), keys, "at {fs} Hz");
    }
}

#[test]
fn spans_cover_each_tone_and_its_margins_but_not_the_speech_around() {
    let mut rng = Rng::new(6);
    for fs in [8000, 16000, 48000] {
        let m = margin(fs) as i64;
        let tol_in = ms(fs, 1.0) as i64; // the margin may fall short by at most 1 ms
        let tol_out = ms(fs, 7.0) as i64; // and overshoot by at most 7 ms
        let mut s = Script::new(fs);
        for (i, key) in [4u8, 1, 13, 6, 15, 8, 0, 11].iter().enumerate() {
            let mut talk = speech(ms(fs, 300.0), fs as f64, VOICES[i % 5], &mut rng);
            set_level(&mut talk, -15.0);
            s.fill(&talk).tone(Pair::new(*key, -12.0 + i as f64, 0.0), 45.0 + 20.0 * i as f64, &mut rng);
        }
        let mut talk = speech(ms(fs, 300.0), fs as f64, VOICES[0], &mut rng);
        set_level(&mut talk, -15.0);
        s.fill(&talk);
        let spans = run(fs, &s.x, 160);
        let merged = merge(&spans);
        assert_eq!(merged.len(), s.truth.len(), "one masked stretch per tone at {fs} Hz: {merged:?}");
        for ((key, a, b), r) in s.truth.iter().zip(&merged) {
            let (a, b) = (*a as i64, *b as i64);
            let (rs, re) = (r.start as i64, r.end as i64);
            assert!(rs <= a - m + tol_in && re >= b + m - tol_in, "key {key} {a}..{b} covered by {r:?} at {fs}");
            assert!(rs >= a - m - tol_out && re <= b + m + tol_out, "key {key} {a}..{b} masked by {r:?} at {fs}");
        }
    }
}

#[test]
fn speech_like_signals_never_fire() {
    let mut rng = Rng::new(7);
    let mut total = 0.0;
    for (i, v) in VOICES.iter().enumerate() {
        for level in [-6.0, -18.0, -30.0] {
            let mut x = speech(8000 * 40, 8000.0, *v, &mut rng);
            set_level(&mut x, level);
            if i % 2 == 0 {
                ulaw_roundtrip(&mut x);
            }
            let spans = run(8000, &x, 160);
            assert!(spans.is_empty(), "voice {i} at {level} dBm0: {spans:?}");
            total += 40.0;
        }
    }
    let mut x = babble(8000 * 60, 8000.0, &mut rng);
    set_level(&mut x, -10.0);
    assert!(run(8000, &x, 160).is_empty(), "babble");
    assert!(total >= 600.0);
}

#[test]
fn music_like_signals_never_fire() {
    let mut rng = Rng::new(8);
    for (i, level) in [-3.0, -10.0, -20.0, -28.0].iter().enumerate() {
        let mut x = music(8000 * 60, 8000.0, &mut rng);
        set_level(&mut x, *level);
        if i % 2 == 1 {
            ulaw_roundtrip(&mut x);
        }
        let spans = run(8000, &x, 160);
        assert!(spans.is_empty(), "music at {level} dBm0: {spans:?}");
    }
    // Chords of notes right at DTMF rows and columns, each with harmonics.
    for timbre in TIMBRES {
        let mut x = vec![0.0f32; 8000 * 3];
        for (k, (a, b)) in [(8, 18), (10, 23), (8, 13), (10, 20)].iter().enumerate() {
            add_note(&mut x, k * 6000, 6000, note(*a), timbre, 0.0, 8000.0, 0.3);
            add_note(&mut x, k * 6000, 6000, note(*b), timbre, 0.0, 8000.0, 0.3);
        }
        assert!(run(8000, &x, 160).is_empty(), "chord in {timbre:?}");
    }
}

#[test]
fn a_tone_cut_by_the_end_of_the_stream_is_reported_at_finish() {
    let mut rng = Rng::new(9);
    for fs in [8000, 48000] {
        for key in 0..16u8 {
            for cut_ms in [20.0, 23.0, 27.0, 33.0, 60.0] {
                for before_speech in [false, true] {
                    let mut s = Script::new(fs);
                    if before_speech {
                        let mut talk = speech(ms(fs, 200.0), fs as f64, VOICES[2], &mut rng);
                        set_level(&mut talk, -20.0);
                        s.fill(&talk);
                    } else {
                        s.gap(200.0);
                    }
                    s.tone(Pair::new(key, -15.0, 0.0), cut_ms, &mut rng);
                    let spans = run(fs, &s.x, 160);
                    let (_, a, b) = s.truth[0];
                    let merged = merge(&spans);
                    let covered = merged.iter().any(|r| r.start as usize <= a && r.end as usize >= b);
                    assert!(covered, "key {key} cut after {cut_ms} ms at {fs} (speech {before_speech}): {spans:?}");
                }
            }
        }
    }
}

#[test]
fn settled_is_final_monotone_and_close_behind() {
    let mut rng = Rng::new(10);
    for fs in [8000, 44100] {
        let mut s = Script::new(fs);
        for k in 0..16u8 {
            let mut talk = speech(ms(fs, 100.0 + 10.0 * k as f64), fs as f64, VOICES[1], &mut rng);
            set_level(&mut talk, -20.0);
            s.fill(&talk).tone(Pair::new(k, -10.0, 0.0), 40.0 + 15.0 * k as f64, &mut rng);
        }
        let mut d = Detector::new(fs);
        let mut settled = 0;
        let bound = ms(fs, 100.0) as u64;
        for c in s.x.chunks(37) {
            let mut got = Vec::new();
            d.push(c, &mut got);
            for r in &got {
                assert!(r.start >= settled, "{r:?} reaches below settled {settled}");
                assert!(r.end <= d.position(), "{r:?} beyond position {}", d.position());
            }
            let now = d.settled();
            assert!(now >= settled, "settled went back from {settled} to {now}");
            assert!(d.position() - now <= bound, "settled {now} too far behind {}", d.position());
            settled = now;
        }
        let mut got = Vec::new();
        d.finish(&mut got);
        assert!(got.iter().all(|r| r.start >= settled));
        assert_eq!(d.settled(), d.position());
    }
}

#[test]
fn finish_resets_and_the_stream_continues() {
    let mut rng = Rng::new(11);
    let mut s = Script::new(8000);
    s.gap(50.0).tone(Pair::new(3, -10.0, 0.0), 50.0, &mut rng).gap(60.0);
    let mut d = Detector::new(8000);
    let mut all = Vec::new();
    for round in 0..3u64 {
        let mut got = Vec::new();
        d.push(&s.x, &mut got);
        d.finish(&mut got);
        assert_eq!(d.settled(), d.position());
        let base = round * s.x.len() as u64;
        assert_eq!(merge_ranges(&got).len(), 1, "round {round}: {got:?}");
        assert!(got.iter().all(|r| r.start >= base && r.end <= base + s.x.len() as u64));
        all.extend(got);
    }
    assert_eq!(d.tones(), 3);
}

fn merge_ranges(r: &[Range<u64>]) -> Vec<Range<u64>> {
    let spans: Vec<Span> = r.iter().map(|r| Span { range: r.clone(), kind: SpanKind::Continued, key: 0 }).collect();
    merge(&spans)
}

#[test]
fn garbage_never_fires_and_the_state_recovers() {
    let mut rng = Rng::new(12);
    let mut d = Detector::new(8000);
    let mut got = Vec::new();
    let mut x = vec![0.0f32; 8000];
    for (i, v) in x.iter_mut().enumerate() {
        *v = match i % 7 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => 1e30,
            4 => f32::MAX,
            _ => rng.gauss() as f32,
        };
    }
    d.push(&x, &mut got);
    // NaN at a tone's frequency pattern: a valid tone with every 50th sample NaN.
    let mut t = Script::new(8000);
    t.tone(Pair::new(7, -10.0, 0.0), 200.0, &mut rng);
    let mut poisoned = t.x.clone();
    poisoned.iter_mut().step_by(50).for_each(|v| *v = f32::NAN);
    d.push(&poisoned, &mut got);
    assert!(got.is_empty(), "garbage fired: {got:?}");
    // Afterwards a clean tone is detected normally.
    let mut s = Script::new(8000);
    s.gap(50.0).tone(Pair::new(9, -20.0, 0.0), 50.0, &mut rng).gap(100.0);
    d.push(&s.x, &mut got);
    assert_eq!(merge_ranges(&got).len(), 1);
    assert_eq!(d.tones(), 1);
}

#[test]
fn nonsense_rates_are_clamped_and_never_panic() {
    for fs in [0, 1, 7999, 192_001, u32::MAX] {
        assert!(Detector::try_new(fs).is_none());
        let mut d = Detector::new(fs);
        let mut got = Vec::new();
        d.push(&[0.5; 1000], &mut got);
        d.finish(&mut got);
        assert_eq!(d.position(), 1000);
    }
    assert!(Detector::try_new(8000).is_some() && Detector::try_new(192_000).is_some());
}

/// A signal for the chunking property: digits in speech, in noise.
fn chunking_signal() -> Vec<f32> {
    let mut rng = Rng::new(13);
    let mut s = Script::new(8000);
    for k in [1u8, 5, 9, 14] {
        let mut talk = speech(1200, 8000.0, VOICES[3], &mut rng);
        set_level(&mut talk, -18.0);
        s.fill(&talk).tone(Pair::new(k, -14.0, 2.0), 45.0, &mut rng).gap(40.0);
    }
    s.tone(Pair::new(2, -14.0, 0.0), 30.0, &mut rng);
    add_white(&mut s.x, -40.0, &mut rng);
    s.x
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Spans are identical however the samples are cut into calls.
    #[test]
    fn chunking_does_not_change_the_spans(cuts in proptest::collection::vec(1usize..700, 1..200)) {
        let x = chunking_signal();
        let whole = run(8000, &x, x.len());
        prop_assert_eq!(tones(&whole), vec![1, 5, 9, 14, 2]);
        let mut d = Detector::new(8000);
        let mut out = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < x.len() {
            let n = cuts[i % cuts.len()].min(x.len() - at);
            d.push_spans(&x[at..at + n], &mut |s| out.push(s));
            at += n;
            i += 1;
        }
        d.finish_spans(&mut |s| out.push(s));
        prop_assert_eq!(&out, &whole);
    }
}

#[test]
fn chunking_one_sample_and_20_ms_frames_match_one_call() {
    let x = chunking_signal();
    let whole = run(8000, &x, x.len());
    assert_eq!(run(8000, &x, 1), whole);
    assert_eq!(run(8000, &x, 160), whole);
}
