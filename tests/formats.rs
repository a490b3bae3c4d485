//! Frozen example volumes of every format version still read by this build.

use std::fs;

use sha2::{Digest, Sha256};

use crate::harness::{Volume, keytool};

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// The format-1 volume made by the release before labelled keyslots:
/// unlocks with its passphrase, mounts, reads back what was written then,
/// and its journal (written by that release) still verifies.
#[test]
fn a_format_1_volume_still_unlocks_mounts_and_reads_the_same_bytes() {
    let vol = Volume::from_fixture("format-1");
    let out = keytool(&["slot", "list", vol.path.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "slot list: {}", String::from_utf8_lossy(&out.stderr));
    assert!(listing.contains("frozen-operator"), "{listing}");
    let m = vol.mount();
    let wav = fs::read(m.p("calls/call-0001.wav")).unwrap();
    assert_eq!(wav, b"RIFF frozen recording of format 1\n");
    assert_eq!(sha256_hex(&wav), "cc66c74e2a971db8178b11599a3dcec482220b875b62afd25366f9afb03d3f4b");
    let screen = fs::read(m.p("calls/screen.bin")).unwrap();
    assert_eq!(screen.len(), 5000);
    assert_eq!(sha256_hex(&screen), "be518bc928637b99f5fde85664bbea81641d682b172663162d727be920f26ea3");
    assert_eq!(fs::read_link(m.p("calls/latest")).unwrap().to_str(), Some("call-0001.wav"));
    // It stays writable: a new recording lands and reads back.
    fs::write(m.p("calls/call-0002.wav"), b"written by this build").unwrap();
    assert!(m.unmount().success());
    // Mounting did not rewrite the header: still format 1, no copy.
    assert_eq!(&fs::read(vol.path.join("callvault.header")).unwrap()[8..10], &[1, 0]);
    assert!(!vol.path.join("callvault.header.copy").exists());
    let verify = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"]);
    assert!(verify.status.success(), "audit verify: {}", String::from_utf8_lossy(&verify.stderr));
    let m = vol.mount();
    assert_eq!(fs::read(m.p("calls/call-0002.wav")).unwrap(), b"written by this build");
}

/// The first format-2 volume (labelled slots, two header copies): unlocks by
/// passphrase and by keyfile, and reads back what was written then.
#[test]
fn a_format_2_volume_still_unlocks_by_passphrase_and_keyfile_and_reads_the_same_bytes() {
    let vol = Volume::from_fixture("format-2");
    let keyfile = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/volumes/format-2.keyfile");
    let m = vol.mount();
    let wav = fs::read(m.p("calls/call-0001.wav")).unwrap();
    assert_eq!(sha256_hex(&wav), "a141003aa4c554dba10b4ebebef17b8f8dced571cda0b9fa62f3e64b32122e29");
    let screen = fs::read(m.p("calls/screen.bin")).unwrap();
    assert_eq!(sha256_hex(&screen), "ab34fdbbe8891f38170690f435756e80a9a52d3ae4b6e33f3dc866b5e4427fe3");
    assert_eq!(fs::read_link(m.p("calls/latest")).unwrap().to_str(), Some("call-0001.wav"));
    assert!(m.unmount().success());
    let m = vol
        .mount_as(&["--keyfile", keyfile.to_str().unwrap(), "--label", "frozen-keyfile"])
        .unwrap_or_else(|(code, err)| panic!("keyfile mount failed ({code:?}): {err}"));
    assert_eq!(sha256_hex(&fs::read(m.p("calls/call-0001.wav")).unwrap()), sha256_hex(&wav));
    assert!(m.unmount().success());
    let verify = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"]);
    assert!(verify.status.success(), "audit verify: {}", String::from_utf8_lossy(&verify.stderr));
}

/// The first format-3 volume (sector tags, name bindings): unlocks, reads
/// back what was written then, every sector passes its tag, and appending
/// keeps working.
#[test]
fn a_format_3_volume_still_unlocks_and_reads_the_same_bytes_with_valid_tags() {
    let vol = Volume::from_fixture("format-3");
    let m = vol.mount();
    let wav = fs::read(m.p("calls/call-0001.wav")).unwrap();
    assert_eq!(wav, b"RIFF frozen recording of format 3\n");
    assert_eq!(sha256_hex(&wav), "050e42685d891195db794b2e59944d69625540821f429d16a651af1143f2992a");
    let screen = fs::read(m.p("calls/screen.bin")).unwrap();
    assert_eq!(sha256_hex(&screen), "beebeebedd0a8aded279eaa7a026033a18a7276f2f5b0164327bbdf01e25eef0");
    assert_eq!(fs::read_link(m.p("calls/latest")).unwrap().to_str(), Some("call-0001.wav"));
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(m.p("calls/screen.bin")).unwrap();
        f.write_all(b"appended by this build").unwrap();
    }
    assert!(m.unmount().success());
    let m = vol.mount();
    assert_eq!(fs::read(m.p("calls/screen.bin")).unwrap().len(), 5000 + 22);
    assert!(m.unmount().success());
    let verify = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"]);
    assert!(verify.status.success(), "audit verify: {}", String::from_utf8_lossy(&verify.stderr));
}
