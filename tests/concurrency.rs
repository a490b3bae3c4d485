use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

use crate::harness::{Volume, pattern};

/// 100 threads: 40 write and verify files of their own, 30 write disjoint
/// byte ranges of one shared file (ranges share sectors, so each write is a
/// read-modify-write that must not lose a neighbour's bytes), and 30 read the
/// shared file throughout, checking every byte is either its old or its new
/// value, never garbage.
#[test]
fn hundred_concurrent_writers_and_readers_stay_correct() {
    let vol = Volume::new();
    let m = vol.mount();
    const REGION: usize = 1000; // not a sector multiple: regions straddle sectors
    const WRITERS: usize = 30;
    let shared = m.p("shared.wav");
    let old: Vec<u8> = vec![b'.'; REGION * WRITERS];
    fs::write(&shared, &old).unwrap();
    let new_region = |i: usize| pattern(1000 + i as u64, REGION);
    let barrier = Arc::new(Barrier::new(100));
    let mut threads = Vec::new();
    for i in 0..40 {
        let (b, p) = (barrier.clone(), m.p(&format!("own-{i}.wav")));
        threads.push(thread::spawn(move || {
            b.wait();
            let data = pattern(i as u64, 50_000 + i * 777);
            for chunk in 0..5 {
                let f = OpenOptions::new().create(true).append(true).open(&p).unwrap();
                let part = &data[chunk * data.len() / 5..(chunk + 1) * data.len() / 5];
                f.write_all_at(part, 0).unwrap(); // O_APPEND: the kernel appends
            }
            assert_eq!(fs::read(&p).unwrap(), data, "private file {i}");
        }));
    }
    for i in 0..WRITERS {
        let (b, p) = (barrier.clone(), shared.clone());
        let data = new_region(i);
        threads.push(thread::spawn(move || {
            b.wait();
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            for _ in 0..20 {
                f.write_all_at(&data, (i * REGION) as u64).unwrap();
            }
        }));
    }
    for r in 0..30 {
        let (b, p) = (barrier.clone(), shared.clone());
        threads.push(thread::spawn(move || {
            b.wait();
            let f = fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; REGION * WRITERS];
            for _ in 0..20 {
                f.read_exact_at(&mut buf, 0).unwrap();
                // Reads are not atomic against writes (on any Linux
                // filesystem a read may see part of a concurrent write), but
                // every byte must be the old or the new one: never garbage,
                // never a neighbour's lost update.
                for (i, chunk) in buf.chunks(REGION).enumerate() {
                    let new = new_region(i);
                    let ok = chunk.iter().zip(&new).all(|(&c, &n)| c == b'.' || c == n);
                    assert!(ok, "reader {r}: region {i} holds bytes that were never written");
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("a worker failed");
    }
    let got = fs::read(&shared).unwrap();
    for (i, chunk) in got.chunks(REGION).enumerate() {
        assert_eq!(chunk, new_region(i).as_slice(), "final region {i}");
    }
    assert!(m.unmount().success());
}

/// A file written by one process and read by another sees the same bytes.
#[test]
fn data_written_by_one_process_is_read_by_another() {
    let vol = Volume::new();
    let m = vol.mount();
    let p = m.p("handoff");
    let w = Command::new("dd")
        .args(["if=/dev/urandom", "bs=65536", "count=40", "status=none"])
        .arg(format!("of={}", p.display()))
        .status()
        .unwrap();
    assert!(w.success());
    let ours = fs::read(&p).unwrap();
    let theirs = Command::new("cat").arg(&p).output().unwrap().stdout;
    assert_eq!(ours.len(), 65536 * 40);
    assert_eq!(ours, theirs);
    let sum1 = Command::new("sha256sum").arg(&p).output().unwrap().stdout;
    let sum2 = Command::new("sha256sum").arg(&p).output().unwrap().stdout;
    assert_eq!(sum1, sum2);
    assert!(m.unmount().success());
}
