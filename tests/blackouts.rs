//! Blackouts through a real mount: a recorder (this process) writes WAVs in
//! 20 ms frames while other processes (`setfattr`, `callvault-keytool
//! blackout`) start and stop blackouts; what is stored is checked byte for
//! byte, in the journal, and in the backing files after unmount.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use callvault::backing_file::BackingFile;
use callvault::sectors::FILE_HEADER_LEN;
use serde_json::Value;

use crate::harness::{PASSPHRASE, Volume, keytool_bin, pattern};
use crate::users::{Users, as_user};

const XATTR: &str = "user.callvault.blackout";

/// Sets the trigger from a separate process, as a CTI hook would.
fn setfattr(path: &Path, value: &str) {
    let out = Command::new("setfattr").args(["-n", XATTR, "-v", value]).arg(path).output().expect("setfattr");
    assert!(out.status.success(), "setfattr {value}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `callvault-keytool blackout ACTION PATH...`: (exit code, stdout, stderr).
fn keytool_blackout(action: &str, paths: &[&Path]) -> (i32, String, String) {
    let out = Command::new(keytool_bin()).args(["blackout", action]).args(paths).output().expect("keytool");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `cond` until it holds (for what the kernel does just after a call
/// returns, such as the release after close), failing after 10 s.
fn wait_until_true(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not after 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn status(path: &Path) -> String {
    let out = Command::new("getfattr").args(["--only-values", "-n", XATTR]).arg(path).output().expect("getfattr");
    assert!(out.status.success(), "getfattr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A WAV made by sox (`-n ... synth`): its header as sox writes it, the
/// offset of its sample data (found by walking the chunks here, not with
/// the code under test) and its frame size.
struct SoxWav {
    header: Vec<u8>,
    data_start: usize,
    frame: usize,
}

fn sox_wav(args: &[&str], dir: &Path) -> SoxWav {
    let out = dir.join("sox.wav");
    let st = Command::new("sox")
        .args(["-n", "-r", "8000"])
        .args(args)
        .arg(&out)
        .args(["synth", "0.1", "sine", "440"])
        .status()
        .expect("sox (apt install sox)");
    assert!(st.success(), "sox {args:?}");
    let bytes = fs::read(&out).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    let mut at = 12;
    let (mut channels, mut block_align) = (0usize, 0usize);
    loop {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"fmt " {
            channels = u16::from_le_bytes([bytes[at + 10], bytes[at + 11]]) as usize;
            block_align = u16::from_le_bytes([bytes[at + 20], bytes[at + 21]]) as usize;
        }
        if id == b"data" {
            at += 8;
            break;
        }
        at += 8 + len + (len & 1);
    }
    assert!(channels > 0 && block_align > 0);
    SoxWav { header: bytes[..at].to_vec(), data_start: at, frame: block_align }
}

/// 20 ms of samples (160 frames at 8 kHz) from a pattern no silence byte
/// repeats in for long, distinct per `seed`.
fn frame20(wav: &SoxWav, seed: u64) -> Vec<u8> {
    pattern(seed, 160 * wav.frame).into_iter().map(|b| b | 0x01).map(|b| if b == 0xFF { 0x7F } else { b }).collect()
}

fn silence_of(args: &[&str]) -> u8 {
    let e = args.iter().position(|a| *a == "-e").map(|i| args[i + 1]).unwrap_or("signed");
    match e {
        "unsigned" => 0x80,
        "a-law" => 0xD5,
        "u-law" => 0xFF,
        _ => 0x00,
    }
}

/// The blackout records of one path.
fn blackout_records(vol: &Volume, path: &str) -> Vec<Value> {
    vol.records(&["--event", "blackout", "--path", path])
}

/// `silenced` of the file's stop records, joined.
fn silenced_ranges(records: &[Value]) -> Vec<(u64, u64)> {
    records
        .iter()
        .filter(|r| r["event"] == "blackout_stop" && r["detail"]["scope"] == "file")
        .filter_map(|r| r["detail"]["silenced"].as_str())
        .flat_map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .map(|r| {
            let (a, b) = r.split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect()
}

/// Every backing file decrypted with the library (keys from the volume
/// header), whole sectors past the recorded size included.
pub(crate) fn decrypted_backing(vol: &Volume) -> Vec<Vec<u8>> {
    let unlocked = callvault::volume::unlock(
        &vol.path,
        &[callvault::volume::Operator::with_passphrase(PASSPHRASE.as_bytes()).unwrap()],
    )
    .unwrap();
    let layout = unlocked.header.layout();
    let mut out = Vec::new();
    for (path, bytes) in crate::harness::backing_files(&vol.path.join("data")) {
        if (bytes.len() as u64) < FILE_HEADER_LEN || path.file_name().is_some_and(|n| n.as_encoded_bytes()[0] == b'.') {
            continue;
        }
        let Ok(Some(f)) = BackingFile::open(std::fs::File::open(&path).unwrap(), &unlocked.keys, layout) else {
            continue;
        };
        let mut body = Vec::new();
        for i in 0..f.sectors_stored() {
            body.extend_from_slice(&f.read_sector(i).unwrap().plain[..]);
        }
        out.push(body);
    }
    out
}

/// Asserts no 24-byte piece of `secret` is anywhere in the backing store,
/// raw or decrypted.
fn nowhere_in_backing(vol: &Volume, secret: &[u8]) {
    let raw: Vec<Vec<u8>> = crate::harness::backing_files(&vol.path).into_iter().map(|(_, b)| b).collect();
    let plain = decrypted_backing(vol);
    assert!(!plain.is_empty(), "no backing file could be decrypted");
    for piece in secret.chunks_exact(24).step_by(7) {
        for hay in raw.iter().chain(plain.iter()) {
            assert!(!hay.windows(24).any(|w| w == piece), "bytes written during a blackout are in the backing store");
        }
    }
}

fn open_recording(path: &Path) -> File {
    OpenOptions::new().write(true).create_new(true).mode(0o666).open(path).unwrap()
}

/// The final header a recorder writes at hang-up: RIFF and data sizes.
fn final_header(header: &[u8], data_start: usize, total: usize) -> Vec<u8> {
    let mut h = header.to_vec();
    h[4..8].copy_from_slice(&((total - 8) as u32).to_le_bytes());
    h[data_start - 4..data_start].copy_from_slice(&((total - data_start) as u32).to_le_bytes());
    h
}

/// One recording with a blackout in the middle: `before` frames, start,
/// `during` frames, stop, `after` frames, final header. Returns what the
/// file must read as and the bytes written during the blackout.
fn record_with_blackout(wav: &SoxWav, path: &Path, silence: u8, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let (before, during, after) = (50, 37, 40);
    let mut f = open_recording(path);
    f.write_all(&wav.header).unwrap();
    let mut expect = wav.header.clone();
    let mut secret = Vec::new();
    for i in 0..before {
        let fr = frame20(wav, seed + i);
        f.write_all(&fr).unwrap();
        expect.extend_from_slice(&fr);
    }
    setfattr(path, "start");
    assert_eq!(status(path), "active");
    for i in 0..during {
        let fr = frame20(wav, seed + 1000 + i);
        f.write_all(&fr).unwrap();
        secret.extend_from_slice(&fr);
        expect.extend(std::iter::repeat_n(silence, fr.len()));
    }
    let (code, _, err) = keytool_blackout("stop", &[path]);
    assert_eq!(code, 0, "keytool blackout stop: {err}");
    assert_eq!(status(path), "inactive");
    for i in 0..after {
        let fr = frame20(wav, seed + 2000 + i);
        f.write_all(&fr).unwrap();
        expect.extend_from_slice(&fr);
    }
    let h = final_header(&wav.header, wav.data_start, expect.len());
    f.write_all_at(&h, 0).unwrap();
    expect[..h.len()].copy_from_slice(&h);
    drop(f);
    (expect, secret)
}

#[test]
fn every_encoding_is_silenced_exactly_between_the_triggers_and_nowhere_stored() {
    let vol = Volume::new();
    let m = vol.mount();
    let scratch = tempfile::tempdir().unwrap();
    let encodings: &[&[&str]] = &[
        &["-e", "u-law"],
        &["-e", "a-law"],
        &["-e", "unsigned", "-b", "8"],
        &["-e", "signed", "-b", "16"],
        &["-e", "signed", "-b", "24"],
        &["-e", "signed", "-b", "32"],
        &["-e", "floating-point", "-b", "32"],
        &["-e", "floating-point", "-b", "64"],
        &["-e", "signed", "-b", "16", "-c", "2"],
        // Six channels: sox writes WAVE_FORMAT_EXTENSIBLE.
        &["-e", "signed", "-b", "24", "-c", "6"],
        &["-e", "u-law", "-c", "2"],
    ];
    let mut secrets = Vec::new();
    for (i, args) in encodings.iter().enumerate() {
        let wav = sox_wav(args, scratch.path());
        let name = format!("call-{i}.wav");
        let path = m.p(&name);
        let (expect, secret) = record_with_blackout(&wav, &path, silence_of(args), 10_000 * i as u64);
        let got = fs::read(&path).unwrap();
        assert_eq!(got.len(), expect.len(), "{args:?}: length");
        let first_bad = got.iter().zip(&expect).position(|(a, b)| a != b);
        assert!(first_bad.is_none(), "{args:?}: differs from the expected bytes at offset {first_bad:?}");
        // The journal names exactly the silenced range.
        let recs = blackout_records(&vol, &format!("/{name}"));
        let from = (wav.data_start + 50 * 160 * wav.frame) as u64;
        let to = from + 37 * 160 * wav.frame as u64;
        assert_eq!(silenced_ranges(&recs), vec![(from, to)], "{args:?}: {recs:?}");
        let start = recs.iter().find(|r| r["event"] == "blackout_start").expect("start record");
        assert_eq!(start["detail"]["from"], from, "{args:?}");
        assert_eq!(start["exe"].as_str().map(|e| e.ends_with("setfattr")), Some(true), "{start}");
        let stop = recs.iter().find(|r| r["event"] == "blackout_stop").unwrap();
        assert_eq!(stop["detail"]["ended"], "stop");
        assert!(stop["exe"].as_str().unwrap().ends_with("callvault-keytool"), "{stop}");
        secrets.push(secret);
    }
    assert!(m.unmount().success());
    for s in secrets {
        nowhere_in_backing(&vol, &s);
    }
}

/// Writes race the triggers: a recorder thread appends numbered frames as
/// fast as it can while the triggers run from other processes. Each
/// `write(2)` is whole on one side of a trigger (the kernel holds the file's
/// lock for the trigger), every frame begun after the start returned and
/// ended before the stop was issued is silence, every frame ended before the
/// start or begun after the stop returned is intact.
#[test]
fn writes_racing_the_triggers_fall_whole_on_one_side() {
    let vol = Volume::new();
    let m = vol.mount();
    let scratch = tempfile::tempdir().unwrap();
    let wav = Arc::new(sox_wav(&["-e", "signed", "-b", "16"], scratch.path()));
    let path = m.p("race.wav");
    let mut f = open_recording(&path);
    f.write_all(&wav.header).unwrap();
    let t0 = Instant::now();
    let writer = {
        let wav = wav.clone();
        std::thread::spawn(move || {
            let mut times = Vec::new();
            let stop_at = Instant::now() + Duration::from_secs(3);
            let mut i = 0u64;
            while Instant::now() < stop_at {
                let fr = frame20(&wav, i);
                let a = Instant::now();
                f.write_all(&fr).unwrap();
                times.push((a, Instant::now()));
                i += 1;
            }
            times
        })
    };
    // Triggers while the writer runs (the writer's own clock bounds them).
    let wait_until = |d: Duration| {
        while t0.elapsed() < d {
            std::thread::yield_now();
        }
    };
    wait_until(Duration::from_millis(800));
    let start_call = Instant::now();
    setfattr(&path, "start");
    let start_ret = Instant::now();
    wait_until(Duration::from_millis(1800));
    let stop_call = Instant::now();
    setfattr(&path, "stop");
    let stop_ret = Instant::now();
    let times = writer.join().unwrap();
    let got = fs::read(&path).unwrap();
    let flen = 160 * wav.frame;
    assert_eq!(got.len(), wav.data_start + times.len() * flen);
    let (mut silenced, mut intact) = (0, 0);
    for (i, (began, ended)) in times.iter().enumerate() {
        let at = wav.data_start + i * flen;
        let stored = &got[at..at + flen];
        let is_silence = stored.iter().all(|b| *b == 0);
        let is_intact = stored == frame20(&wav, i as u64).as_slice();
        assert!(is_silence || is_intact, "frame {i} is partly silenced");
        if *began > start_ret && *ended < stop_call {
            assert!(is_silence, "frame {i} was written during the blackout but stored");
        }
        if *ended < start_call || *began > stop_ret {
            assert!(is_intact, "frame {i} was written outside the blackout but silenced");
        }
        if is_silence {
            silenced += 1;
        } else {
            intact += 1;
        }
    }
    assert!(silenced > 10 && intact > 10, "the race did not happen: {silenced} silenced, {intact} intact");
    let ranges = silenced_ranges(&blackout_records(&vol, "/race.wav"));
    let total: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    assert_eq!(total, (silenced * flen) as u64, "journal ranges {ranges:?}");
    assert!(m.unmount().success());
}

/// A directory trigger covers the call's two audio files (both directions,
/// written by two threads, headers rewritten at hang-up) and its screen
/// recording, and a file created in the directory during the blackout.
#[test]
fn a_directory_trigger_covers_every_file_being_written_in_it() {
    let vol = Volume::new();
    let m = vol.mount();
    let scratch = tempfile::tempdir().unwrap();
    let wav = Arc::new(sox_wav(&["-e", "a-law"], scratch.path()));
    let call = m.p("calls/c42");
    fs::create_dir_all(&call).unwrap();
    fs::set_permissions(&call, fs::Permissions::from_mode(0o777)).unwrap();
    let (before, during, after) = (30u64, 20u64, 25u64);
    // Three phases of writing; between them the main thread triggers, and
    // the writers go on only once the trigger has returned.
    let phase = Arc::new(Barrier::new(4));
    let mut writers = Vec::new();
    for (k, name) in ["in.wav", "out.wav"].into_iter().enumerate() {
        let (wav, phase, p) = (wav.clone(), phase.clone(), call.join(name));
        writers.push(std::thread::spawn(move || {
            let mut f = open_recording(&p);
            f.write_all(&wav.header).unwrap();
            let mut expect = wav.header.clone();
            let mut secret = Vec::new();
            let seed = 10_000 * (k as u64 + 1);
            for (phase_no, (n, silenced, base)) in
                [(before, false, 0), (during, true, 1000), (after, false, 2000)].into_iter().enumerate()
            {
                if phase_no > 0 {
                    phase.wait(); // the trigger between the phases has returned
                }
                for i in 0..n {
                    let fr = frame20(&wav, seed + base + i);
                    f.write_all(&fr).unwrap();
                    if silenced {
                        expect.extend(std::iter::repeat_n(0xD5, fr.len()));
                        secret.extend_from_slice(&fr);
                    } else {
                        expect.extend_from_slice(&fr);
                    }
                }
                phase.wait();
            }
            let h = final_header(&wav.header, wav.data_start, expect.len());
            f.write_all_at(&h, 0).unwrap();
            expect[..h.len()].copy_from_slice(&h);
            (p, expect, secret)
        }));
    }
    // The screen recording: not audio, so its blackout bytes become zeros.
    let screen_phase = phase.clone();
    let screen_path = call.join("screen.webm");
    let screen = std::thread::spawn(move || {
        let mut f = open_recording(&screen_path);
        let mut expect = Vec::new();
        let mut secret = Vec::new();
        for (i, (silenced, seed)) in [(false, 1u64), (true, 2), (false, 3)].into_iter().enumerate() {
            if i > 0 {
                screen_phase.wait();
            }
            let chunk = pattern(seed, 10_000).into_iter().map(|b| b | 1).collect::<Vec<_>>();
            f.write_all(&chunk).unwrap();
            if silenced {
                expect.extend(std::iter::repeat_n(0, chunk.len()));
                secret.extend_from_slice(&chunk);
            } else {
                expect.extend_from_slice(&chunk);
            }
            screen_phase.wait();
        }
        (screen_path, expect, secret)
    });
    phase.wait(); // before: written
    let (code, _, err) = keytool_blackout("start", &[&call]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status(&call), "active");
    phase.wait(); // go on
    // A file created in the directory while the blackout lasts is covered
    // from its first byte (a plain file: all zeros).
    let late = call.join("notes.bin");
    let late_secret = pattern(77, 5000).into_iter().map(|b| b | 1).collect::<Vec<_>>();
    fs::write(&late, &late_secret).unwrap();
    phase.wait(); // during: written
    setfattr(&call, "stop");
    assert_eq!(status(&call), "inactive");
    phase.wait(); // go on
    phase.wait(); // after: written
    let mut results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    results.push(screen.join().unwrap());
    for (p, expect, _) in &results {
        let got = fs::read(p).unwrap();
        let first_bad = got.iter().zip(expect).position(|(a, b)| a != b);
        let show = |v: &[u8], i: Option<usize>| i.map(|i| format!("{:02x?}", &v[i..(i + 8).min(v.len())]));
        assert!(
            got.len() == expect.len() && first_bad.is_none(),
            "{}: {} bytes, {} expected; differs at {first_bad:?}: {:?} instead of {:?}",
            p.display(),
            got.len(),
            expect.len(),
            show(&got, first_bad),
            show(expect, first_bad)
        );
        let name = format!("/calls/c42/{}", p.file_name().unwrap().to_str().unwrap());
        let recs = blackout_records(&vol, &name);
        let ranges = silenced_ranges(&recs);
        let silenced: u64 = expect
            .iter()
            .enumerate()
            .filter(|(i, b)| ranges.iter().any(|(a, z)| (*a..*z).contains(&(*i as u64))) && (**b == 0xD5 || **b == 0))
            .count() as u64;
        assert_eq!(ranges.iter().map(|(a, b)| b - a).sum::<u64>(), silenced, "{name}: {ranges:?}");
        assert!(recs.iter().any(|r| r["event"] == "blackout_start" && r["detail"]["cause"] == "/calls/c42"), "{name}");
    }
    assert_eq!(fs::read(&late).unwrap(), vec![0u8; late_secret.len()], "the file created during the blackout");
    assert_eq!(silenced_ranges(&blackout_records(&vol, "/calls/c42/notes.bin")), vec![(0, late_secret.len() as u64)]);
    assert!(m.unmount().success());
    for (_, _, secret) in &results {
        nowhere_in_backing(&vol, secret);
    }
    nowhere_in_backing(&vol, &late_secret);
}

/// Headerless telephony audio is silenced by its name's encoding: µ-law
/// `.ul`, A-law `.al`, signed 16-bit `.sln`; every byte is sample data.
#[test]
fn headerless_telephony_audio_gets_the_silence_of_its_extension() {
    let vol = Volume::new();
    let m = vol.mount();
    for (name, silence) in [("c.ul", 0xFFu8), ("c.mu", 0xFF), ("c.alaw", 0xD5), ("c.sln", 0x00), ("c.pcm", 0x00)] {
        let p = m.p(name);
        let mut f = open_recording(&p);
        let before = pattern(1, 1600).into_iter().map(|b| b | 1).collect::<Vec<_>>();
        let during = pattern(2, 800).into_iter().map(|b| b | 1).collect::<Vec<_>>();
        f.write_all(&before).unwrap();
        setfattr(&p, "start");
        f.write_all(&during).unwrap();
        setfattr(&p, "stop");
        f.write_all(&before).unwrap();
        drop(f);
        let want = [&before[..], &vec![silence; 800], &before[..]].concat();
        assert_eq!(fs::read(&p).unwrap(), want, "{name}");
        let recs = blackout_records(&vol, &format!("/{name}"));
        assert_eq!(silenced_ranges(&recs), vec![(1600, 2400)], "{name}");
    }
    assert!(m.unmount().success());
}

/// Renaming or hard-linking does not end a blackout; closing the file does
/// (recorded as `closed`), and writes after that are stored as written.
#[test]
fn a_blackout_follows_the_file_through_a_rename_and_ends_at_close() {
    // Format 2: the second name below is a hard link, which format 3 refuses.
    let vol = Volume::from_fixture("format-2");
    let m = vol.mount();
    let a = m.p("a.bin");
    let mut f = open_recording(&a);
    f.write_all(b"before-").unwrap();
    setfattr(&a, "start");
    fs::rename(&a, m.p("b.bin")).unwrap();
    f.write_all(b"secret-4111").unwrap();
    let b = m.p("b.bin");
    assert_eq!(status(&b), "active");
    // A second name (allowed without a policy) is the same file, under the same blackout.
    fs::hard_link(&b, m.p("c.bin")).unwrap();
    assert_eq!(status(&m.p("c.bin")), "active");
    assert_eq!(status(&b), "active");
    drop(f);
    // The kernel sends the release that ends it just after close(2) returns.
    wait_until_true(|| status(&b) == "inactive", "closing the file ends its blackout");
    let mut f = OpenOptions::new().append(true).open(&b).unwrap();
    f.write_all(b"-after").unwrap();
    drop(f);
    assert_eq!(fs::read(&b).unwrap(), [&b"before-"[..], &[0u8; 11], b"-after"].concat());
    let recs = vol.records(&["--event", "blackout_stop"]);
    assert_eq!(recs.len(), 1, "{recs:?}");
    // A file with two names is recorded under the one it was last seen by.
    assert!(recs[0]["path"] == "/b.bin" || recs[0]["path"] == "/c.bin", "{}", recs[0]);
    assert_eq!(recs[0]["detail"]["ended"], "closed");
    assert_eq!(recs[0]["detail"]["silenced"], "7-18");
    assert_eq!(recs[0]["detail"]["silence"], "zero bytes");
    assert!(m.unmount().success());
}

/// Bad values, removal, and the daemon's own attribute names.
#[test]
fn the_trigger_attribute_is_the_daemons_own() {
    let vol = Volume::new();
    let m = vol.mount();
    let f = m.p("x.wav");
    fs::write(&f, b"RIFF").unwrap();
    for bad in ["on", "START", "start now"] {
        let out = Command::new("setfattr").args(["-n", XATTR, "-v", bad]).arg(&f).output().unwrap();
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Invalid argument"), "{bad}");
    }
    let rm = Command::new("setfattr").args(["-x", XATTR]).arg(&f).output().unwrap();
    assert!(!rm.status.success());
    let other = Command::new("setfattr").args(["-n", "user.callvault.seal", "-v", "x"]).arg(&f).output().unwrap();
    assert!(!other.status.success(), "user.callvault.* is reserved");
    setfattr(&f, "start");
    // Never listed, never stored as a real attribute.
    let list = Command::new("getfattr").args(["-d", "-m", "-"]).arg(&f).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains("callvault"), "listed as an attribute");
    setfattr(&f, "stop");
    assert!(m.unmount().success());
    let m = vol.mount();
    assert_eq!(status(&m.p("x.wav")), "inactive", "a blackout is not stored with the file");
    assert!(m.unmount().success());
}

/// Triggers need the `blackout` right: a refusal is EACCES and a record.
#[test]
fn triggers_need_the_blackout_right() {
    let mut u = Users::new();
    let rec = u.user("bo-rec", "bo-rec", &[]);
    let cti = u.user("bo-cti", "bo-cti", &[]);
    let nosy = u.user("bo-nosy", "bo-nosy", &[]);
    let vol = Volume::new();
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            r#"
[[grant]]
users = ["{rec}"]
paths = ["/**"]
rights = ["list", "create", "write"]

[[grant]]
users = ["{cti}"]
paths = ["/calls", "/calls/**"]
rights = ["list", "blackout"]

[[grant]]
users = ["{nosy}"]
paths = ["/**"]
rights = ["list"]
"#
        ),
    )
    .unwrap();
    {
        let m = vol.mount();
        fs::create_dir(m.p("calls")).unwrap();
        fs::set_permissions(m.p("calls"), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(m.unmount().success());
    }
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    let p = m.p("calls/1.bin");
    let ps = p.to_str().unwrap();
    // The recorder's file is writable by mode for everyone, so every refusal is the policy's.
    let w = as_user(&rec, r#"umask 0; printf 'abc' > "$1""#, &[ps]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    let refused = as_user(&nosy, &format!(r#"exec "{}" blackout start "$1""#, keytool_bin().display()), &[ps]);
    assert_eq!(refused.status.code(), Some(20), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("blackout"), "names the right");
    let ok = as_user(&cti, &format!(r#"exec "{}" blackout start "$1""#, keytool_bin().display()), &[ps]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let st = as_user(&cti, &format!(r#"exec "{}" blackout status "$1""#, keytool_bin().display()), &[ps]);
    assert_eq!(String::from_utf8_lossy(&st.stdout), format!("{ps}: active\n"));
    assert!(m.unmount().success());
    let denied = vol.records(&["--event", "blackout", "--outcome", "EACCES"]);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["user"], nosy.as_str());
    assert_eq!(denied[0]["detail"]["missing_right"], "blackout");
    assert!(vol.records(&["--event", "blackout_start", "--user", &cti]).len() == 1);
    // Unmount ended the blackout and said so.
    let stop = vol.records(&["--event", "blackout_stop"]);
    assert_eq!(stop.last().unwrap()["detail"]["ended"], "unmount");
}

/// A blackout past the alert threshold is flagged once and keeps silencing.
#[test]
fn a_long_blackout_is_flagged_and_keeps_silencing() {
    let vol = Volume::new();
    let m = vol.mount_with(&["--blackout-alert", "1"]).unwrap();
    let p = m.p("long.bin");
    let mut f = open_recording(&p);
    setfattr(&p, "start");
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        let a = vol.records(&["--event", "blackout_alert"]);
        if !a.is_empty() {
            break a;
        }
        assert!(Instant::now() < deadline, "no alert after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(alert[0]["path"], "/long.bin");
    assert!(m.log_text().contains("still silencing"), "{}", m.log_text());
    f.write_all(b"4111-1111-1111-1111 cvv 123").unwrap();
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), vec![0u8; 27]);
    assert!(m.unmount().success());
    assert_eq!(vol.records(&["--event", "blackout_alert"]).len(), 1, "flagged once");
}

/// `callvault-keytool blackout`: refuses paths off a volume before touching
/// them (exit 26), and takes several paths.
#[test]
fn keytool_blackout_takes_several_paths_and_refuses_others() {
    let vol = Volume::new();
    let m = vol.mount();
    let (a, b) = (m.p("a"), m.p("b"));
    fs::write(&a, b"x").unwrap();
    fs::write(&b, b"y").unwrap();
    let (code, _, err) = keytool_blackout("start", &[&a, &b]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = keytool_blackout("status", &[&a, &b]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("{}: active\n{}: active\n", a.display(), b.display()));
    let outside: PathBuf = vol.dir.path().join("outside.wav");
    fs::write(&outside, b"RIFF").unwrap();
    let (code, _, err) = keytool_blackout("start", &[&outside]);
    assert_eq!(code, 26, "{err}");
    assert!(err.contains("not on a mounted callvault volume"), "{err}");
    let (code, _, err) = keytool_blackout("stop", &[&a, &m.p("missing"), &b]);
    assert_eq!(code, 1, "{err}");
    let (_, out, _) = keytool_blackout("status", &[&a, &b]);
    assert_eq!(out, format!("{}: inactive\n{}: inactive\n", a.display(), b.display()), "the good paths were stopped");
    assert!(m.unmount().success());
}
