//! Automatic DTMF masking through a real mount: real speech (espeak-ng) with
//! keypad tones mixed in, written in 20 ms frames; an independent decoder
//! (multimon-ng) finds the digits in what was written and none in what was
//! stored, and everything outside the masked ranges is bit-identical.

use std::f64::consts::PI;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{Volume, pattern};

const RATE: f64 = 8000.0;

fn key_freqs(key: char) -> (f64, f64) {
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let row = KEYS.iter().position(|r| r.contains(key)).expect("a DTMF key");
    let col = KEYS[row].find(key).unwrap();
    ([697.0, 770.0, 852.0, 941.0][row], [1209.0, 1336.0, 1477.0, 1633.0][col])
}

/// Amplitude (full scale 1.0) of a sine at `dbm0` in G.711 µ-law, where a
/// full-scale sine is +3.17 dBm0.
fn amplitude(dbm0: f64) -> f64 {
    10f64.powf((dbm0 - 3.17) / 20.0)
}

/// ITU-T G.711 µ-law encoding of a linear sample (full scale 1.0), written
/// here independently of the code under test.
fn ulaw(x: f64) -> u8 {
    let s = (x.clamp(-1.0, 1.0) * 32635.0) as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    let mag = (s.unsigned_abs() as i32 + 0x84).min(0x7FFF);
    let exp = (0..8).rev().find(|e| mag & (0x80 << e) != 0).unwrap_or(0);
    let mant = (mag >> (exp + 3)) & 0x0F;
    !(sign | ((exp as u8) << 4) | mant as u8)
}

/// Speech from espeak-ng, resampled to 8 kHz, as linear samples.
fn speech(text: &str, voice: &str, dir: &Path) -> Vec<f64> {
    let wav = dir.join("speech.wav");
    let raw = dir.join("speech.raw");
    let st = Command::new("espeak-ng").args(["-v", voice, "-s", "165", "-w"]).arg(&wav).arg(text).status();
    assert!(st.expect("espeak-ng (apt install espeak-ng)").success());
    let st = Command::new("sox")
        .arg(&wav)
        .args(["-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1"])
        .arg(&raw)
        .status();
    assert!(st.expect("sox").success());
    fs::read(&raw).unwrap().chunks_exact(2).map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0).collect()
}

/// A call: speech, keyed digits (each 70 ms, 60 ms apart, at a level and
/// twist of their own, over background noise), speech, hold music, more
/// digits, speech again. Returns the
/// samples and the sample ranges holding tones.
fn call_audio(dir: &Path) -> (Vec<f64>, Vec<(usize, usize)>) {
    let mut s = speech("Thank you for calling. Please key in your card number after the tone.", "en", dir);
    let mut tones = Vec::new();
    let noise = pattern(9, 1 << 20);
    let mut n = 0usize;
    let mut add_digits = |s: &mut Vec<f64>, digits: &str, dbm0: &[f64], twist_db: &[f64]| {
        for (i, k) in digits.chars().enumerate() {
            let (lo, hi) = key_freqs(k);
            let a_lo = amplitude(dbm0[i % dbm0.len()]);
            let a_hi = a_lo * 10f64.powf(twist_db[i % twist_db.len()] / 20.0);
            let start = s.len();
            for t in 0..560 {
                let x = t as f64 / RATE;
                s.push(a_lo * (2.0 * PI * lo * x).sin() + a_hi * (2.0 * PI * hi * x).sin());
            }
            tones.push((start, s.len()));
            s.extend(std::iter::repeat_n(0.0, 480));
        }
        // Background noise about 30 dB below speech level over everything.
        for v in s.iter_mut() {
            *v += (f64::from(noise[n % noise.len()]) - 127.5) / 127.5 * 0.003;
            n += 1;
        }
    };
    add_digits(&mut s, "0123456789ABCD*#", &[-20.0, -10.0, -5.0, -15.0], &[0.0, 3.0, -3.0, 2.0]);
    s.extend(speech("Thank you. And the three digits on the back.", "en+f3", dir));
    // Hold music: chords with harmonics, some notes close to DTMF rows and
    // columns (F5 698 Hz, E6 1319 Hz), which must not be taken for keys.
    for (i, chord) in
        [[523.25, 659.25, 783.99], [698.46, 880.0, 1318.5], [587.33, 739.99, 1174.7]].iter().cycle().take(9).enumerate()
    {
        for t in 0..2400 {
            let x = t as f64 / RATE;
            let env = (t as f64 / 400.0).min(1.0) * (1.0 - t as f64 / 2400.0);
            let v: f64 = chord
                .iter()
                .map(|f| (0..3).map(|h| (2.0 * PI * f * (h + 1) as f64 * x).sin() / (h + 1) as f64).sum::<f64>())
                .sum();
            s.push(0.08 * env * v * if i % 2 == 0 { 1.0 } else { 0.7 });
        }
    }
    add_digits(&mut s, "4111111111111111737", &[-8.0, -25.0, 0.0], &[1.0, -4.0]);
    // The twist limits (+4 dB forward, -8 dB reverse): stricter decoders
    // such as multimon-ng may miss these; the masking must not.
    add_digits(&mut s, "9876", &[-12.0], &[4.0, -8.0]);
    s.extend(speech("That is all, goodbye.", "en", dir));
    (s, tones)
}

fn wav_header_ulaw(data_len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&8u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// The digits multimon-ng hears in a µ-law WAV.
fn decoded_digits(wav: &[u8], dir: &Path) -> String {
    let f = dir.join("decode.wav");
    fs::write(&f, wav).unwrap();
    let out = Command::new("multimon-ng").args(["-q", "-a", "DTMF", "-t", "wav"]).arg(&f).output();
    let out = out.expect("multimon-ng (apt install multimon-ng)");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.strip_prefix("DTMF: ")).collect()
}

/// Writes `audio` as a streaming µ-law WAV in 20 ms frames, rewriting the
/// header with the final sizes at hang-up, as a recorder does.
fn record(path: &Path, audio: &[u8]) {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).unwrap();
    f.write_all(&wav_header_ulaw(0)).unwrap();
    for frame in audio.chunks(160) {
        f.write_all(frame).unwrap();
    }
    use std::os::unix::fs::FileExt;
    f.write_all_at(&wav_header_ulaw(audio.len() as u32), 0).unwrap();
}

fn masked_ranges(records: &[Value]) -> Vec<(u64, u64)> {
    records
        .iter()
        .map(|r| {
            assert_eq!(r["detail"]["silence"], "ulaw", "{r}");
            let (a, b) = r["detail"]["silenced"].as_str().unwrap().split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect()
}

#[test]
fn keyed_digits_are_masked_and_speech_is_left_alone() {
    let scratch = tempfile::tempdir().unwrap();
    let (audio, tones) = call_audio(scratch.path());
    let written: Vec<u8> = audio.iter().map(|x| ulaw(*x)).collect();
    let mut original = wav_header_ulaw(written.len() as u32);
    original.extend_from_slice(&written);
    let heard = decoded_digits(&original, scratch.path());
    assert!(
        heard.contains("0123456789ABCD*#") && heard.contains("4111111111111111737"),
        "the test signal itself: multimon-ng heard {heard:?}"
    );

    let vol = Volume::new();
    let m = vol.mount_with(&["--auto-blackout", "dtmf"]).unwrap();
    let path = m.p("call.wav");
    record(&path, &written);
    let stored = fs::read(&path).unwrap();
    assert_eq!(stored.len(), original.len());
    assert_eq!(stored[..44], original[..44], "the header is intact");
    assert_eq!(decoded_digits(&stored, scratch.path()), "", "a digit survived in what was stored");

    let ranges = masked_ranges(&vol.records(&["--event", "blackout_dtmf", "--path", "/call.wav"]));
    let tone_bytes: Vec<(u64, u64)> = tones.iter().map(|(a, b)| (44 + *a as u64, 44 + *b as u64)).collect();
    // Each tone lies inside a masked range; each masked range holds a tone
    // and reaches at most 60 ms past it (the margin, and no more).
    for (a, b) in &tone_bytes {
        assert!(ranges.iter().any(|(x, y)| x <= a && b <= y), "tone at {a}-{b} not masked: {ranges:?}");
    }
    for (x, y) in &ranges {
        assert!(
            tone_bytes.iter().any(|(a, b)| x + 480 >= *a && *y <= b + 480 && x < b && a < y),
            "masked range {x}-{y} is not around a tone"
        );
    }
    // Everything outside the masked ranges is as written; inside, silence.
    for (i, (s, o)) in stored.iter().zip(&original).enumerate() {
        let inside = ranges.iter().any(|(x, y)| (*x..*y).contains(&(i as u64)));
        if inside {
            assert_eq!(*s, 0xFF, "byte {i} in a masked range");
        } else {
            assert_eq!(s, o, "byte {i} outside every masked range changed");
        }
    }
    // The same call as headerless µ-law (`.ul`, as Asterisk stores it).
    let raw = m.p("call.ul");
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&raw).unwrap();
    for frame in written.chunks(160) {
        f.write_all(frame).unwrap();
    }
    drop(f);
    let stored_raw = fs::read(&raw).unwrap();
    assert_eq!(stored_raw.len(), written.len());
    let as_wav = [wav_header_ulaw(written.len() as u32), stored_raw].concat();
    assert_eq!(decoded_digits(&as_wav, scratch.path()), "", "a digit survived in the .ul recording");
    assert!(m.unmount().success());
}

/// A policy's `[[auto_blackout]]` table masks under its paths only.
#[test]
fn the_policy_names_where_tones_are_masked() {
    let scratch = tempfile::tempdir().unwrap();
    let mut audio = vec![0.0; 1600];
    for t in 0..800 {
        let x = t as f64 / RATE;
        let (lo, hi) = key_freqs('5');
        audio.push(amplitude(-10.0) * ((2.0 * PI * lo * x).sin() + (2.0 * PI * hi * x).sin()));
    }
    audio.extend(vec![0.0; 1600]);
    let written: Vec<u8> = audio.iter().map(|x| ulaw(*x)).collect();
    let vol = Volume::new();
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        "[[grant]]\nusers = [0]\npaths = [\"/**\"]\nrights = [\"list\", \"read\", \"create\", \"write\"]\n\n\
         [[auto_blackout]]\npaths = [\"/ivr/**\"]\ndetect = [\"dtmf\"]\n",
    )
    .unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    for d in ["ivr", "other"] {
        fs::create_dir(m.p(d)).unwrap();
        record(&m.p(&format!("{d}/c.wav")), &written);
    }
    let masked = fs::read(m.p("ivr/c.wav")).unwrap();
    let kept = fs::read(m.p("other/c.wav")).unwrap();
    assert_eq!(decoded_digits(&kept, scratch.path()), "5", "outside the policy's paths the audio is as written");
    assert_eq!(decoded_digits(&masked, scratch.path()), "");
    assert!(masked[44 + 1600 + 100..44 + 1600 + 700].iter().all(|b| *b == 0xFF));
    assert_eq!(vol.records(&["--event", "blackout_dtmf"]).len(), 1);
    assert!(m.unmount().success());
}

/// The start of a tone, not yet confirmed when the daemon is killed, is on
/// disk as silence (the held-back tail), never as the tone: after a restart
/// the file reads silence there and the tone's bytes are nowhere in the
/// backing store.
#[test]
fn a_crash_while_a_tone_is_held_back_leaves_silence_on_disk() {
    let scratch = tempfile::tempdir().unwrap();
    let speech = speech("One moment please.", "en", scratch.path());
    let speech: Vec<u8> = speech.iter().map(|x| ulaw(*x)).collect();
    let (lo, hi) = key_freqs('7');
    let tone: Vec<u8> = (0..280) // 35 ms: begun, not yet a tone
        .map(|t| {
            let x = f64::from(t) / RATE;
            ulaw(amplitude(-6.0) * ((2.0 * PI * lo * x).sin() + (2.0 * PI * hi * x).sin()))
        })
        .collect();
    let vol = Volume::new();
    let m = vol.mount_with(&["--auto-blackout", "dtmf"]).unwrap();
    let path = m.p("call.wav");
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path).unwrap();
    f.write_all(&wav_header_ulaw(0)).unwrap();
    for frame in speech.chunks(160).chain(tone.chunks(160)) {
        f.write_all(frame).unwrap();
    }
    // Push the pages to the daemon without an fsync (which would make it
    // store what it holds): the daemon has every byte, the disk the silence
    // standing in for the unsettled tail.
    use std::os::fd::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: a valid descriptor of an open file; no memory is passed.
    assert_eq!(unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, flags) }, 0);
    assert!(!m.stop_with(nix::sys::signal::Signal::SIGKILL).success());
    drop(f);
    let _ = Command::new("umount").arg("-l").arg(vol.mountpoint()).output();
    // The file's recorded size may lag (it is persisted within a second), so
    // look at every sector the daemon wrote, decrypted with the library. The
    // last, partly filled sector stays in the daemon until it fills or a
    // size covering it is recorded (docs/FORMAT.md), so only whole sectors
    // before it are sure to be on disk.
    let plain = crate::blackouts::decrypted_backing(&vol);
    let body = plain.iter().max_by_key(|b| b.len()).expect("the recording's sectors");
    let tone_at = 44 + speech.len();
    // What was settled in whole sectors is stored; the unsettled tail (the
    // tone) is silence where it reached the disk at all.
    assert!(speech.len() > 5000, "speech of {} bytes", speech.len());
    let settled_speech = &speech[speech.len() - 4700..speech.len() - 4500];
    assert!(body.windows(200).any(|w| w == settled_speech), "the speech before the tone was not stored");
    if let Some(stored_tone) = body.get(tone_at..tone_at + tone.len()) {
        assert!(
            stored_tone.iter().all(|b| *b == 0xFF) || stored_tone.iter().all(|b| *b == 0),
            "the unsettled tone is not silence on disk"
        );
    }
    let raw: Vec<Vec<u8>> = crate::harness::backing_files(&vol.path).into_iter().map(|(_, b)| b).collect();
    for piece in tone.chunks_exact(24) {
        assert!(
            !plain.iter().chain(raw.iter()).any(|h| h.windows(24).any(|w| w == piece)),
            "tone bytes in the backing store"
        );
    }
}
