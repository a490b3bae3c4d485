use std::fs;

use crate::harness::{Volume, backing_files, contains};

const MARKER: &[u8] = b"CALLVAULT-PLAINTEXT-MARKER-7f3a";

/// A minimal but valid 8 kHz mono 16-bit WAV file of `samples` samples.
pub fn wav(samples: usize) -> Vec<u8> {
    let data_len = samples * 2;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data_len as u32).to_le_bytes());
    for i in 0..samples {
        let v = ((i as f64 * 0.05).sin() * 8000.0) as i16;
        w.extend_from_slice(&v.to_le_bytes());
    }
    w
}

#[test]
fn backing_directory_holds_no_plaintext_data_or_names() {
    let vol = Volume::new();
    let m = vol.mount();
    let names = ["team-a", "customer-smith-4111.wav", "notes.txt", "same-name", "link-to-call", "hard-link.wav"];
    fs::create_dir(m.p("team-a")).unwrap();
    fs::create_dir(m.p("team-a/same-name")).unwrap();
    fs::create_dir(m.p("same-name")).unwrap();
    fs::write(m.p("team-a/customer-smith-4111.wav"), wav(40_000)).unwrap();
    let mut notes = b"call notes: ".to_vec();
    notes.extend_from_slice(MARKER);
    notes.extend_from_slice(&vec![b'x'; 10_000]);
    notes.extend_from_slice(MARKER);
    fs::write(m.p("team-a/notes.txt"), &notes).unwrap();
    std::os::unix::fs::symlink("team-a/customer-smith-4111.wav", m.p("link-to-call")).unwrap();
    // Format 3 has no hard links of files (a header names its one entry).
    fs::write(m.p("hard-link.wav"), wav(1_000)).unwrap();
    let long = "L".repeat(255);
    fs::write(m.p(&long), MARKER).unwrap();
    assert!(m.unmount().success());

    // Everything but the audit journal, whose records name paths in clear
    // by design (PCI DSS 10.2.2); it is readable by root only.
    let mut files = backing_files(&vol.path.join("data"));
    files.push((vol.path.join("callvault.header"), fs::read(vol.path.join("callvault.header")).unwrap()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(vol.path.join("audit")).unwrap().permissions().mode() & 0o077, 0);
    assert_eq!(fs::metadata(&vol.path).unwrap().permissions().mode() & 0o077, 0);
    assert!(files.len() >= 6, "expected backing files, found {}", files.len());
    for (path, bytes) in &files {
        let shown = path.display();
        assert!(!contains(bytes, MARKER), "{shown} holds the plaintext marker");
        assert!(!contains(bytes, b"RIFF"), "{shown} holds a RIFF header");
        assert!(!contains(bytes, b"WAVEfmt"), "{shown} holds a WAVE header");
        for n in names.iter().chain(&["customer-smith", "team-a/customer"]) {
            assert!(!contains(bytes, n.as_bytes()), "{shown} holds the name {n}");
        }
        let rel = path.strip_prefix(&vol.path).unwrap().to_string_lossy().into_owned();
        for n in names.iter().chain(&["LLLLLLLL"]) {
            assert!(!rel.contains(n), "backing path {rel} shows the name {n}");
        }
    }
    // Equal names in different directories must not look equal.
    let entries = |d: &std::path::Path| -> Vec<String> {
        fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    };
    let root = entries(&vol.path.join("data"));
    let team_dir = root
        .iter()
        .map(|n| vol.path.join("data").join(n))
        .find(|p| p.is_dir() && entries(p).len() >= 3)
        .expect("the encrypted team-a directory");
    let inner = entries(&team_dir);
    assert!(
        root.iter().all(|n| n.starts_with('.') || !inner.contains(n)),
        "a name encrypts the same in two directories"
    );
}
