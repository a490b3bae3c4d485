//! Format 3 integrity, attacked through the backing store with the volume
//! unmounted (so no page cache hides what the daemon reads), then read
//! through a fresh mount: every changed sector is EIO for its range only,
//! logged by inode and recorded with its path; a backing file moved or
//! copied over another is refused at open; seals in close records match
//! what the files hold.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use callvault::backing_file::BackingFile;
use callvault::keys::VolumeKeys;
use callvault::layout::Layout;
use callvault::names::{self, DIRID_FILE};
use callvault::volume::{self, VolumePaths};

use crate::harness::{PASSPHRASE, Volume, pattern};

const SECTOR: u64 = 4096;

fn keys(vol: &Volume) -> VolumeKeys {
    let op = volume::Operator::with_passphrase(PASSPHRASE.as_bytes()).unwrap();
    let u = volume::unlock(&vol.path, &[op]).unwrap();
    assert_eq!(u.header.layout(), Layout::Tagged, "new volumes are format 3");
    u.keys
}

/// The backing file of the plaintext path `parts` (short names).
fn backing(vol: &Volume, keys: &VolumeKeys, parts: &[&str]) -> PathBuf {
    let mut p = VolumePaths::new(&vol.path).data();
    for part in parts {
        let id: [u8; 16] = fs::read(p.join(DIRID_FILE)).unwrap().try_into().unwrap();
        p = p.join(names::encrypt_name(&keys.names, &id, part.as_bytes()).unwrap().entry());
    }
    p
}

fn flip(path: &Path, at: u64) {
    let f = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, at).unwrap();
}

/// Reads `file` sector by sector with pread: which 4 KiB ranges fail.
fn failing_sectors(file: &Path, size: u64) -> Vec<u64> {
    let f = fs::File::open(file).unwrap();
    let mut bad = Vec::new();
    let mut buf = vec![0u8; SECTOR as usize];
    for s in 0..size.div_ceil(SECTOR) {
        match f.read_at(&mut buf, s * SECTOR) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "sector {s}: {e}");
                bad.push(s);
            }
        }
    }
    bad
}

fn field<'a>(r: &'a serde_json::Value, k: &str) -> &'a str {
    r[k].as_str().or_else(|| r["detail"][k].as_str()).unwrap_or("")
}

/// One flipped byte in a data sector, and one flipped tag: EIO for exactly
/// that sector's bytes, every other byte reads as written, the log names
/// the inode and not the path, and the journal has an `integrity` record
/// with the path and the range.
#[test]
fn a_changed_sector_or_tag_is_eio_for_its_range_only_and_recorded() {
    let vol = Volume::new();
    let data = pattern(1, 300 * SECTOR as usize + 123); // two tag groups
    let m = vol.mount();
    fs::create_dir(m.p("team-a")).unwrap();
    fs::write(m.p("team-a/call-0001.wav"), &data).unwrap();
    fs::write(m.p("team-a/call-0002.wav"), &data).unwrap();
    assert!(m.unmount().success());

    let k = keys(&vol);
    let one = backing(&vol, &k, &["team-a", "call-0001.wav"]);
    let two = backing(&vol, &k, &["team-a", "call-0002.wav"]);
    flip(&one, Layout::Tagged.data_offset(5) + 1000); // a data byte of sector 5
    flip(&two, Layout::Tagged.tag_offset(270).unwrap() + 3); // the tag of sector 270

    let m = vol.mount();
    assert_eq!(failing_sectors(&m.p("team-a/call-0001.wav"), data.len() as u64), vec![5]);
    assert_eq!(failing_sectors(&m.p("team-a/call-0002.wav"), data.len() as u64), vec![270]);
    let f = fs::File::open(m.p("team-a/call-0001.wav")).unwrap();
    let mut got = vec![0u8; 5 * SECTOR as usize];
    f.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(got, data[..5 * SECTOR as usize], "the sectors before it read as written");
    let mut rest = vec![0u8; data.len() - 6 * SECTOR as usize];
    f.read_exact_at(&mut rest, 6 * SECTOR).unwrap();
    assert_eq!(rest, data[6 * SECTOR as usize..], "the sectors after it read as written");
    drop(f);
    // A whole-file read fails, as a damaged recording must.
    assert!(fs::read(m.p("team-a/call-0001.wav")).is_err());
    let log = m.log_text();
    assert!(m.unmount().success());

    assert!(log.contains("do not match their sector tags"), "{log}");
    assert!(!log.contains("call-0001"), "no plaintext path in the log: {log}");
    let recs = vol.records(&["--event", "integrity"]);
    let ranges: Vec<(String, String)> =
        recs.iter().map(|r| (field(r, "path").to_string(), field(r, "damaged").to_string())).collect();
    assert!(ranges.contains(&("/team-a/call-0001.wav".into(), "20480-24576".into())), "{ranges:?}");
    assert!(ranges.contains(&("/team-a/call-0002.wav".into(), "1105920-1110016".into())), "{ranges:?}");
    assert!(recs.iter().all(|r| field(r, "outcome") == "EIO" || r["outcome"] == "EIO"), "{recs:?}");
    let out = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// An older ciphertext of a sector, put back in place of the newer one
/// (its tag now names the new contents), is detected.
#[test]
fn a_sector_rolled_back_to_an_older_ciphertext_is_detected() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::write(m.p("c.wav"), pattern(2, 4 * SECTOR as usize)).unwrap();
    assert!(m.unmount().success());
    let k = keys(&vol);
    let b = backing(&vol, &k, &["c.wav"]);
    let mut old = vec![0u8; SECTOR as usize];
    fs::File::open(&b).unwrap().read_exact_at(&mut old, Layout::Tagged.data_offset(2)).unwrap();

    let m = vol.mount();
    let f = fs::OpenOptions::new().write(true).open(m.p("c.wav")).unwrap();
    f.write_all_at(&pattern(3, SECTOR as usize), 2 * SECTOR).unwrap();
    drop(f);
    assert!(m.unmount().success());
    fs::OpenOptions::new().write(true).open(&b).unwrap().write_all_at(&old, Layout::Tagged.data_offset(2)).unwrap();

    let m = vol.mount();
    assert_eq!(failing_sectors(&m.p("c.wav"), 4 * SECTOR), vec![2]);
    assert!(m.unmount().success());
}

/// A backing file copied over another in the same directory, or moved
/// over one in another directory, is refused at open (EIO); the genuine
/// file it came from still reads; a rename through the mount keeps the
/// file readable under its new name, and hard links are refused.
#[test]
fn a_backing_file_moved_or_copied_over_another_is_refused_at_open() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::create_dir(m.p("team-a")).unwrap();
    fs::create_dir(m.p("team-b")).unwrap();
    for (name, seed) in [("team-a/a1.wav", 1), ("team-a/a2.wav", 2), ("team-b/b1.wav", 3)] {
        fs::write(m.p(name), pattern(seed, 10_000)).unwrap();
    }
    fs::rename(m.p("team-a/a2.wav"), m.p("team-b/moved.wav")).unwrap();
    let e = fs::hard_link(m.p("team-a/a1.wav"), m.p("team-b/link.wav")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    assert!(m.unmount().success());

    let k = keys(&vol);
    let a1 = backing(&vol, &k, &["team-a", "a1.wav"]);
    let moved = backing(&vol, &k, &["team-b", "moved.wav"]);
    let b1 = backing(&vol, &k, &["team-b", "b1.wav"]);
    // Same directory: moved.wav's bytes under b1's name.
    fs::copy(&moved, &b1).unwrap();
    // Across directories: a1 renamed over moved.wav.
    fs::rename(&a1, &moved).unwrap();

    let m = vol.mount();
    for name in ["team-b/b1.wav", "team-b/moved.wav"] {
        let e = fs::read(m.p(name)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{name}");
    }
    let log = m.log_text();
    assert!(log.contains("belongs to another name"), "{log}");
    assert!(m.unmount().success());

    // Put back where they belong, they read again.
    fs::rename(&moved, &a1).unwrap();
    let m = vol.mount();
    assert_eq!(fs::read(m.p("team-a/a1.wav")).unwrap(), pattern(1, 10_000));
    assert!(m.unmount().success());
}

/// Every close of a handle that wrote carries the seal of what the file
/// then holds: the seal computed offline from the backing file equals the
/// latest one; an append and close gives a new one that matches again.
#[test]
fn close_records_carry_a_seal_of_what_the_file_holds() {
    let vol = Volume::new();
    let m = vol.mount();
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().create(true).append(true).open(m.p("rec.wav")).unwrap();
        for i in 0..100 {
            f.write_all(&pattern(i, 320)).unwrap();
        }
    }
    assert!(m.unmount().success());
    let k = keys(&vol);
    let offline = || {
        let f = fs::File::open(backing(&vol, &k, &["rec.wav"])).unwrap();
        BackingFile::open(f, &k, Layout::Tagged).unwrap().unwrap().seal().unwrap().unwrap().to_hex()
    };
    let seals = |vol: &Volume| -> Vec<String> {
        vol.records(&["--event", "close", "--path", "/rec.wav"])
            .iter()
            .filter_map(|r| r["detail"]["contents_seal"].as_str().map(String::from))
            .collect()
    };
    let first = seals(&vol);
    assert_eq!(first.len(), 1, "one writer, one seal");
    assert_eq!(first[0], offline());

    let m = vol.mount();
    assert_eq!(fs::read(m.p("rec.wav")).unwrap().len(), 32_000);
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(m.p("rec.wav")).unwrap();
        f.write_all(&pattern(500, 5000)).unwrap();
    }
    assert!(m.unmount().success());
    let second = seals(&vol);
    assert_eq!(second.len(), 2);
    assert_ne!(second[1], second[0], "new contents, new seal");
    assert_eq!(second[1], offline());
    let sized: Vec<u64> = vol
        .records(&["--event", "close", "--path", "/rec.wav"])
        .iter()
        .filter_map(|r| r["detail"]["sealed_size"].as_u64())
        .collect();
    assert_eq!(sized, vec![32_000, 37_000]);
}

/// SIGKILL during appends: every byte written before an fsync reads back
/// after the next mount, with valid tags (no EIO anywhere up to the size).
#[test]
fn sigkill_during_appends_keeps_every_fsynced_byte_with_valid_tags() {
    use std::io::Write;
    let vol = Volume::new();
    let m = vol.mount();
    let mut f = fs::OpenOptions::new().create(true).append(true).open(m.p("live.wav")).unwrap();
    let mut synced = Vec::new();
    for i in 0..2000 {
        let frame = pattern(i, 320);
        f.write_all(&frame).unwrap();
        synced.extend_from_slice(&frame);
    }
    f.sync_all().unwrap();
    for i in 2000..2100 {
        f.write_all(&pattern(i, 320)).unwrap(); // not synced: may be lost
    }
    let status = m.stop_with(nix::sys::signal::Signal::SIGKILL);
    assert!(!status.success());
    drop(f);
    let _ = Command::new("umount").arg("-l").arg(vol.mountpoint()).status();

    let m = vol.mount();
    let got = fs::read(m.p("live.wav")).expect("no sector fails its tag");
    assert!(got.len() >= synced.len(), "{} of {} fsync'd bytes", got.len(), synced.len());
    assert_eq!(got[..synced.len()], synced[..]);
    assert!(m.unmount().success());
}

/// Holes stay holes: a sparse file reads zeros where nothing was written,
/// and its backing file stays sparse.
#[test]
fn holes_stay_sparse_and_read_as_zeros() {
    let vol = Volume::new();
    let m = vol.mount();
    let f = fs::File::create(m.p("sparse.wav")).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(b"end", (64 << 20) - 3).unwrap();
    drop(f);
    assert!(m.unmount().success());
    let k = keys(&vol);
    let b = backing(&vol, &k, &["sparse.wav"]);
    use std::os::unix::fs::MetadataExt;
    assert!(fs::metadata(&b).unwrap().blocks() * 512 < 1 << 20, "backing stays sparse");
    let m = vol.mount();
    let got = fs::read(m.p("sparse.wav")).unwrap();
    assert_eq!(got.len(), 64 << 20);
    assert!(got[..got.len() - 3].iter().all(|&b| b == 0));
    assert_eq!(&got[got.len() - 3..], b"end");
    assert!(m.unmount().success());
}
