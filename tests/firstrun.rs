//! The README's first-run block, run as it stands: only its base directory
//! moves to a temporary one and its user and group names get this test's
//! unique prefix. Then what it claims is checked from outside.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{daemon_bin, keytool, keytool_bin};
use crate::users::{Users, as_user};

const BEGIN: &str = "<!-- first-run:begin -->";
const END: &str = "<!-- first-run:end -->";
/// The line the block starts with; the test points it elsewhere.
const BASE_LINE: &str = "D=/srv/callvault-demo";
/// Every user and group the block names (they become this test's unique names).
const USERS: [&str; 4] = ["recorder", "alice", "sam", "mallory"];
const GROUPS: [&str; 1] = ["qa"];
/// What the block's recorder writes.
const RECORDING: &[u8] = b"RIFF call 0001\n";
const CALL: &str = "team-a/call-0001.wav";

/// The shell script between the markers, inside its one ```sh fence.
fn readme_block() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let (_, rest) = readme.split_once(BEGIN).expect("README.md has the first-run begin marker");
    let (inside, _) = rest.split_once(END).expect("README.md has the first-run end marker");
    let body = inside.trim().strip_prefix("```sh\n").expect("the first-run block is a ```sh fence");
    body.strip_suffix("```").expect("the first-run fence closes before the end marker").to_string()
}

/// Replaces whole words (runs of letters, digits and `_`) found in `names`.
fn rename_words(text: &str, rename: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(&rename(word).unwrap_or_else(|| word.clone()));
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Unmounts the block's mount (if it is still there) and waits for its
/// daemon to let go of the volume, even when the test failed half-way.
struct Cleanup {
    mnt: PathBuf,
    vol: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mounted = fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(4) == self.mnt.to_str()));
        if mounted {
            let ok = Command::new("fusermount3").arg("-u").arg(&self.mnt).status().is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).status();
            }
        }
        // The daemon holds the volume lock until it has exited.
        let lock = self.vol.join("callvault.lock");
        if lock.exists() {
            let _ = Command::new("flock").args(["-w", "30"]).arg(&lock).arg("true").status();
        }
    }
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn records(vol: &Path) -> Vec<serde_json::Value> {
    let out = keytool(&["audit", "show", vol.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "audit show: {}", text(&out));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn has(recs: &[serde_json::Value], event: &str, user: &str, path: &str, outcome: &str) -> bool {
    recs.iter().any(|r| r["event"] == event && r["user"] == user && r["path"] == path && r["outcome"] == outcome)
}

#[test]
fn firstrun_readme_block_runs_and_does_what_it_says() {
    let mut users = Users::new();
    users.adopt(&USERS, &[&GROUPS[..], &USERS[..]].concat());
    let tmp = tempfile::Builder::new().prefix("cv-firstrun-").tempdir().unwrap();
    // The block's users must reach the mount point inside it.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let base = tmp.path().join("demo");
    let (mnt, vol) = (base.join("mnt"), base.join("calls.vault"));
    let _cleanup = Cleanup { mnt: mnt.clone(), vol: vol.clone() };

    let block = readme_block();
    assert_eq!(block.lines().next(), Some(BASE_LINE), "the first-run block must start with {BASE_LINE}");
    let block = block.replacen(BASE_LINE, &format!("D={}", base.display()), 1);
    let script = rename_words(&block, |w| USERS.iter().chain(&GROUPS).any(|n| *n == w).then(|| users.name(w)));
    let bins: Vec<PathBuf> = [keytool_bin(), daemon_bin()].iter().map(|b| b.parent().unwrap().to_path_buf()).collect();
    let path =
        std::env::join_paths(bins.iter().cloned().chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())))
            .unwrap();
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", &script]).env("PATH", path).output().unwrap();
    assert!(out.status.success(), "the README's first-run block failed:\n{}", text(&out));

    let [rec, alice, sam, mallory] = USERS.map(|u| users.name(u));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The block's own output: two plays, two refusals, a verified journal.
    assert_eq!(stdout.matches(std::str::from_utf8(RECORDING).unwrap()).count(), 2, "{}", text(&out));
    assert!(stdout.contains(&format!("{rec}: refused")) && stdout.contains(&format!("{mallory}: refused")));
    assert_eq!(stderr.matches("Permission denied").count(), 2, "{}", text(&out));
    assert!(stdout.contains("checkpoint: cv1-"), "{}", text(&out));

    // The mount's root is the recorder's, QA's group, 0750.
    let root = fs::metadata(&mnt).unwrap();
    let uid = |name: &str| String::from_utf8(Command::new("id").args(["-u", name]).output().unwrap().stdout).unwrap();
    assert_eq!(root.uid().to_string(), uid(&rec).trim());
    assert_eq!(root.mode() & 0o7777, 0o750);

    // Through the mount, still up: the analyst and the supervisor read the
    // recording, exactly; the recorder and mallory get EACCES.
    let call = mnt.join(CALL);
    let call = call.to_str().unwrap();
    for reader in [&alice, &sam] {
        let r = as_user(reader, r#"cat "$1""#, &[call]);
        assert!(r.status.success(), "{reader}: {}", text(&r));
        assert_eq!(r.stdout, RECORDING, "{reader}");
    }
    for refused in [&rec, &mallory] {
        let r = as_user(refused, r#"cat "$1""#, &[call]);
        assert!(!r.status.success() && text(&r).contains("Permission denied"), "{refused}: {}", text(&r));
    }

    // The journal: init's choice of root, the recorder's mkdir and create,
    // both plays, the recorder's refused read-back; and it verifies.
    let recs = records(&vol);
    let init = recs.iter().find(|r| r["detail"]["action"] == "init-volume").expect("init-volume record");
    assert_eq!(init["detail"]["mode"], "0750");
    let changed: Vec<&str> =
        init["detail"]["changed"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(changed.len(), 3, "{changed:?}");
    assert!(changed[0].ends_with(&format!("({rec})")) && changed[1].ends_with(&format!("({})", users.name("qa"))));
    assert_eq!(changed[2], "mode=0750");
    assert!(has(&recs, "mkdir", &rec, "/team-a", "ok"));
    assert!(has(&recs, "create", &rec, "/team-a/call-0001.wav", "ok"));
    assert!(has(&recs, "open", &alice, "/team-a/call-0001.wav", "ok"));
    assert!(has(&recs, "open", &sam, "/team-a/call-0001.wav", "ok"));
    assert!(
        recs.iter()
            .any(|r| r["event"] == "denied" && r["user"] == rec.as_str() && r["detail"]["missing_right"] == "read"),
        "the recorder's read-back is recorded as denied"
    );
    let key = base.join("calls.vault.audit-key");
    let v = keytool(&["audit", "verify", vol.to_str().unwrap(), "--audit-key-file", key.to_str().unwrap()]);
    assert!(v.status.success(), "audit verify: {}", text(&v));
}

#[test]
fn firstrun_init_refuses_bad_owner_and_mode_as_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = tmp.path().join("pass");
    fs::write(&pass, "maple orbit 42 quartz lantern\n").unwrap();
    let vol = tmp.path().join("vol");
    let init = |extra: &[&str]| {
        let mut args = vec!["init", vol.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()];
        args.extend_from_slice(&["--kdf-memory", "8", "--kdf-time", "0"]);
        args.extend_from_slice(extra);
        keytool(&args)
    };
    for (extra, says) in [
        (&["--mode", "8"][..], "--mode \"8\": expected an octal mode from 0 to 7777"),
        (&["--mode", "17777"], "--mode \"17777\""),
        (&["--owner", "cv-no-such-user-firstrun"], "no such user \"cv-no-such-user-firstrun\""),
        (&["--owner", "root:cv-no-such-group-firstrun"], "no such group \"cv-no-such-group-firstrun\""),
        (&["--owner", "root:"], "expected USER or USER:GROUP"),
    ] {
        let out = init(extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(!vol.exists(), "{extra:?} left a volume behind");
    }
    // Numeric ids need no user database entry; the backing root gets them.
    let out = init(&["--owner", "4242:4343", "--mode", "02770"]);
    assert!(out.status.success(), "{}", text(&out));
    let data = fs::metadata(vol.join("data")).unwrap();
    assert_eq!((data.uid(), data.gid(), data.mode() & 0o7777), (4242, 4343, 0o2770));
}
