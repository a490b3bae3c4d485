use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};

use crate::harness::{Volume, pattern};

#[test]
fn files_around_sector_boundaries_round_trip_with_exact_sizes() {
    let vol = Volume::new();
    let m = vol.mount();
    let sizes = [0usize, 1, 15, 16, 17, 4095, 4096, 4097, 8191, 8192, 8193, 1 << 20, (1 << 20) + 3];
    for &n in &sizes {
        fs::write(m.p(&format!("f{n}")), pattern(n as u64, n)).unwrap();
    }
    for &n in &sizes {
        let p = m.p(&format!("f{n}"));
        assert_eq!(fs::metadata(&p).unwrap().len(), n as u64, "st_size of a {n}-byte file");
        assert_eq!(fs::read(&p).unwrap(), pattern(n as u64, n), "contents of a {n}-byte file");
    }
    assert!(m.unmount().success());
    // And again from disk, through a fresh daemon.
    let m = vol.mount();
    for &n in &sizes {
        let p = m.p(&format!("f{n}"));
        assert_eq!(fs::metadata(&p).unwrap().len(), n as u64);
        assert_eq!(fs::read(&p).unwrap(), pattern(n as u64, n), "{n}-byte file after remount");
    }
    assert!(m.unmount().success());
}

#[test]
fn sparse_ten_gib_file_reads_zeros_in_its_holes_and_stays_sparse() {
    let vol = Volume::new();
    let m = vol.mount();
    let ten_gib = 10u64 << 30;
    let f = fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(m.p("sparse")).unwrap();
    f.set_len(ten_gib).unwrap();
    f.write_all_at(b"middle", 5 << 30).unwrap();
    f.write_all_at(b"end!", ten_gib - 4).unwrap();
    drop(f);
    assert_eq!(fs::metadata(m.p("sparse")).unwrap().len(), ten_gib);
    let f = fs::File::open(m.p("sparse")).unwrap();
    let mut buf = vec![1u8; 1 << 16];
    for off in [0u64, 4096, 1 << 30, (5 << 30) - (1 << 16), ten_gib - (1 << 16)] {
        f.read_exact_at(&mut buf, off).unwrap();
        let expect_marker = off == ten_gib - (1 << 16);
        let (zeros, tail) = buf.split_at(buf.len() - 4);
        assert!(zeros.iter().all(|&b| b == 0), "hole at {off} must read as zeros");
        if expect_marker {
            assert_eq!(tail, b"end!");
        } else {
            assert!(tail.iter().all(|&b| b == 0));
        }
    }
    let mut mid = [0u8; 6];
    f.read_exact_at(&mut mid, 5 << 30).unwrap();
    assert_eq!(&mid, b"middle");
    drop(f);
    assert!(m.unmount().success());
    // The backing file must not have allocated 10 GiB.
    let backing: u64 = crate::harness::backing_files(&vol.path.join("data"))
        .iter()
        .map(|(p, _)| fs::metadata(p).unwrap().blocks() * 512)
        .sum();
    assert!(backing < 64 << 20, "backing allocation {backing} bytes for a sparse file");
    let m = vol.mount();
    assert_eq!(fs::metadata(m.p("sparse")).unwrap().len(), ten_gib);
    assert!(m.unmount().success());
}
