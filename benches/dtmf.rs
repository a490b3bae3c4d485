//! DTMF detection: samples per second through `Detector::push` in 20 ms
//! (160-sample) frames at 8 kHz, and what that means in concurrent 8 kHz
//! streams per core (samples/s ÷ 8000), printed after the criterion run.
//!
//! The signal is a mix the detector has to work on: tones, pauses, and a
//! harmonic-rich voice-like buzz, so the window checks run past their first
//! rejections as they do on real calls.

use std::time::{Duration, Instant};

use callvault::dtmf::Detector;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const RATE: u32 = 8000;
const FRAME: usize = 160;

/// 10 s at 8 kHz: every second a 60 ms key, then a buzz with glides, then noise.
fn signal() -> Vec<f32> {
    let fs = RATE as f32;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let (rows, cols) = ([697.0f32, 770.0, 852.0, 941.0], [1209.0f32, 1336.0, 1477.0, 1633.0]);
    let mut x = Vec::with_capacity(10 * RATE as usize);
    let mut phase = 0.0f32;
    for sec in 0..10 {
        for n in 0..RATE as usize {
            let t = n as f32 / fs;
            let v = if n < 480 {
                0.2 * (std::f32::consts::TAU * rows[sec % 4] * t).sin()
                    + 0.2 * (std::f32::consts::TAU * cols[(sec / 4) % 4] * t).sin()
            } else if n < 6000 {
                phase += (110.0 + 40.0 * (3.0 * t).sin()) / fs;
                let p = phase.fract();
                (0..12).map(|k| ((k + 1) as f32 * std::f32::consts::TAU * p).sin() / (k + 1) as f32).sum::<f32>() * 0.1
            } else {
                0.05 * noise()
            };
            x.push(v);
        }
    }
    x
}

fn push_frames(d: &mut Detector, x: &[f32], found: &mut Vec<std::ops::Range<u64>>) {
    for frame in x.chunks(FRAME) {
        d.push(frame, found);
        found.clear();
    }
}

fn dtmf(c: &mut Criterion) {
    let x = signal();
    let mut g = c.benchmark_group("dtmf");
    g.throughput(Throughput::Elements(x.len() as u64));
    g.bench_function("push 160-sample frames, 8 kHz (elements = samples)", |b| {
        let mut d = Detector::new(RATE);
        let mut found = Vec::with_capacity(64);
        b.iter(|| push_frames(&mut d, &x, &mut found))
    });
    g.finish();

    // The figure the daemon cares about, measured directly over ~2 s.
    let mut d = Detector::new(RATE);
    let mut found = Vec::with_capacity(64);
    let start = Instant::now();
    let mut samples = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        push_frames(&mut d, &x, &mut found);
        samples += x.len() as u64;
    }
    let per_sec = samples as f64 / start.elapsed().as_secs_f64();
    println!(
        "dtmf: {:.1} M samples/s on one core = {:.0} concurrent 8 kHz streams per core",
        per_sec / 1e6,
        per_sec / RATE as f64
    );
}

criterion_group!(benches, dtmf);
criterion_main!(benches);
