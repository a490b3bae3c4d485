//! Per-user rights through a real mount, with real users and processes.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::harness::{Volume, daemon_bin};
use crate::users::{Users, as_user};

/// The policy from the issue, with this test's real user and group names.
fn issue_policy(u: &Users) -> String {
    format!(
        r#"
[[grant]]
users  = ["{rec}"]          # user names or numeric uids
groups = []                    # group names or numeric gids
paths  = ["/**"]               # globs on the path inside the volume
rights = ["list", "create", "write"]

[[grant]]
groups = ["{qa}"]
paths  = ["/team-a/**"]
rights = ["list", "read"]
"#,
        rec = u.name("recorder"),
        qa = u.name("qa-team-a")
    )
}

fn denied(out: &std::process::Output) -> bool {
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Permission denied")
}

/// Makes shared team directories (as root, through an --allow-all mount).
fn prepare_tree(vol: &Volume) {
    let m = vol.mount();
    for d in ["team-a", "team-b"] {
        fs::create_dir(m.p(d)).unwrap();
        // World-writable but not sticky: the mode bits let everyone through,
        // so every refusal seen below is the policy's.
        fs::set_permissions(m.p(d), fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::write(m.p("team-b/c2.wav"), b"team b call").unwrap();
    fs::set_permissions(m.p("team-b/c2.wav"), fs::Permissions::from_mode(0o644)).unwrap();
    assert!(m.unmount().success());
}

#[test]
fn recorder_writes_blind_qa_reads_its_team_others_and_root_are_denied() {
    let mut u = Users::new();
    u.group("qa-team-a");
    let recorder = u.user("recorder", "recorder", &[]);
    let alice = u.user("alice", "alice", &["qa-team-a"]);
    let bob = u.user("bob", "bob", &[]);
    let vol = Volume::new();
    prepare_tree(&vol);
    let policy = vol.dir.path().join("policy.toml");
    fs::write(&policy, issue_policy(&u)).unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    let c1 = m.p("team-a/c1.wav");
    let c1s = c1.to_str().unwrap();

    // The recorder creates, writes, appends, seeks and overwrites, closes ...
    let w = as_user(
        &recorder,
        r#"set -e
printf 'RIFF0000WAVEdata' > "$1"
printf 'frame1' >> "$1"
printf 'XX' | dd of="$1" bs=1 seek=4 conv=notrunc status=none
exec 3>>"$1"; printf 'frame2' >&3; exec 3>&-"#,
        &[c1s],
    );
    assert!(w.status.success(), "recorder write: {}", String::from_utf8_lossy(&w.stderr));
    // ... and cannot read it back.
    assert!(denied(&as_user(&recorder, r#"cat "$1""#, &[c1s])), "recorder must not read back");
    // A member of qa-team-a (a supplementary group) plays team A's call ...
    let r = as_user(&alice, r#"cat "$1""#, &[c1s]);
    assert!(r.status.success(), "alice: {}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(r.stdout, b"RIFFXX00WAVEdataframe1frame2");
    // The recording belongs to the recorder, though the daemon (root) made it.
    let owner = nix::unistd::User::from_name(&recorder).unwrap().unwrap();
    let st = as_user(&alice, r#"stat -c '%u %g' "$1""#, &[c1s]);
    assert_eq!(String::from_utf8_lossy(&st.stdout).trim(), format!("{} {}", owner.uid, owner.gid));
    // ... and nothing of team B.
    let c2 = m.p("team-b/c2.wav");
    assert!(denied(&as_user(&alice, r#"cat "$1""#, &[c2.to_str().unwrap()])));
    let ls = as_user(&alice, r#"ls "$1""#, &[m.path.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "team-a", "team-b is not even listed");
    assert!(denied(&as_user(&alice, r#"printf x > "$1""#, &[c1s])), "QA cannot change recordings");
    assert!(denied(&as_user(&alice, r#"rm -f "$1""#, &[c1s])), "QA cannot delete recordings");
    // Someone with no grant gets nothing, not even a listing.
    for p in [&c1, &c2] {
        assert!(denied(&as_user(&bob, r#"cat "$1""#, &[p.to_str().unwrap()])));
    }
    assert!(denied(&as_user(&bob, r#"ls "$1""#, &[m.path.to_str().unwrap()])));
    // Root is no exception.
    for p in [&c1, &c2] {
        let e = fs::read(p).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "root reading {}", p.display());
    }
    assert_eq!(fs::remove_file(&c1).unwrap_err().raw_os_error(), Some(libc::EACCES));
    assert!(m.unmount().success());
}

#[test]
fn sighup_widens_and_narrows_access_and_open_handles_keep_their_rights() {
    let mut u = Users::new();
    let carol = u.user("carol", "carol", &[]);
    let vol = Volume::new();
    prepare_tree(&vol);
    let policy = vol.dir.path().join("policy.toml");
    let grant =
        |paths: &str| format!("[[grant]]\nusers = [\"{carol}\"]\npaths = [{paths}]\nrights = [\"list\", \"read\"]\n");
    fs::write(&policy, grant("\"/team-a/**\"")).unwrap();
    let mut m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    let c2 = m.p("team-b/c2.wav");
    let c2s = c2.to_str().unwrap();
    assert!(denied(&as_user(&carol, r#"cat "$1""#, &[c2s])));

    // Widen.
    fs::write(&policy, grant("\"/team-a/**\", \"/team-b/**\"")).unwrap();
    m.reload();
    let out = as_user(&carol, r#"cat "$1""#, &[c2s]);
    assert_eq!(out.stdout, b"team b call", "{}", String::from_utf8_lossy(&out.stderr));

    // A handle opened now survives the narrowing; new opens do not.
    let mut holder = Command::new("runuser")
        .args(["-u", &carol, "--", "sh", "-c", r#"exec 3<"$1"; echo opened; read go; cat <&3"#, "sh", c2s])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "opened\n");
    fs::write(&policy, grant("\"/team-a/**\"")).unwrap();
    m.reload();
    assert!(denied(&as_user(&carol, r#"cat "$1""#, &[c2s])), "narrowed: new opens are denied");
    holder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest).unwrap();
    assert!(holder.wait().unwrap().success());
    assert_eq!(rest, b"team b call", "the handle opened before the reload keeps its read right");

    // A bad policy at reload keeps the old one in force, and says why.
    fs::write(&policy, "[[grant]]\nusers = [\"nobody-such-user-x\"]\npaths = [\"/**\"]\nrights = [\"read\"]\n")
        .unwrap();
    m.reload();
    assert!(m.log_text().contains("policy reload refused"), "{}", m.log_text());
    assert!(m.log_text().contains(":2:"), "the log names the line: {}", m.log_text());
    assert!(denied(&as_user(&carol, r#"cat "$1""#, &[c2s])));
    assert!(m.unmount().success());
}

#[test]
fn invalid_or_missing_policy_refuses_to_start() {
    let vol = Volume::new();
    let policy = vol.dir.path().join("policy.toml");
    let cases = [
        ("[[grant]]\nusers = [\"root\"]\npaths = [\"/**\"]\nrights = [\"raed\"]\n", ":4:", "unknown right"),
        ("[[grant]]\nusers = [\"no-such-user-cv\"]\npaths = [\"/**\"]\nrights = [\"read\"]\n", ":2:", "unknown user"),
        (
            "[[grant]]\ngroups = [\"no-such-group-cv\"]\npaths = [\"/**\"]\nrights = [\"read\"]\n",
            ":2:",
            "unknown group",
        ),
        ("[[grant]]\nusers = [\"root\"]\npaths = [\"/[\"]\nrights = [\"read\"]\n", ":3:", "glob"),
        ("[[grant]]\nusers = [\"root\"]\npaths = [\"/**\"]\nrights = [\"read\"]\ncolour = 1\n", ":5:", "unknown"),
    ];
    for (text, line, what) in cases {
        fs::write(&policy, text).unwrap();
        let Err((code, err)) = vol.mount_with(&["--policy", policy.to_str().unwrap()]) else {
            panic!("a policy with {what} was accepted");
        };
        assert_eq!(code, Some(19), "{err}");
        assert!(err.contains(policy.to_str().unwrap()) && err.contains(line) && err.contains(what), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // Neither --policy nor --allow-all: refused, deny by default.
    let out = Command::new(daemon_bin())
        .arg(&vol.path)
        .arg(vol.mountpoint())
        .arg("--passphrase-file")
        .arg(&vol.pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy"));
}

#[test]
fn keytool_checks_and_explains_policies() {
    let mut u = Users::new();
    u.group("qa-team-a");
    u.user("recorder", "recorder", &[]);
    let alice = u.user("alice", "alice", &["qa-team-a"]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    fs::write(&policy, issue_policy(&u)).unwrap();
    let p = policy.to_str().unwrap();
    let out = crate::harness::keytool(&["policy", "check", p]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{p}: ok, 2 grants"));
    let out = crate::harness::keytool(&["policy", "explain", p, "--user", &alice, "/team-a/c1.wav", "read"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("grant #2"));
    let out = crate::harness::keytool(&["policy", "explain", p, "--user", &alice, "/team-b/c2.wav", "read"]);
    assert_eq!(out.status.code(), Some(20));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("denied"));
    fs::write(&policy, "[[grant]]\nusers = [\"root\"]\npaths = [\"/**\"]\nrights = [\"raed\"]\n").unwrap();
    let out = crate::harness::keytool(&["policy", "check", p]);
    assert_eq!(out.status.code(), Some(19));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{p}:4:")));
}

/// A hard link would make a file readable under a grant meant for another
/// path. Under a policy links are refused outright (EPERM), even for a user
/// holding every right everywhere, and the attempt is recorded.
#[test]
fn hard_links_are_refused_under_a_policy() {
    let mut u = Users::new();
    let recorder = u.user("recorder", "recorder", &[]);
    let vol = Volume::new();
    prepare_tree(&vol);
    // The recorder owns the file, so the kernel's own hard-link protection
    // (fs.protected_hardlinks) lets the link through to the daemon.
    let m = vol.mount();
    let uid = nix::unistd::User::from_name(&recorder).unwrap().unwrap().uid.as_raw();
    std::os::unix::fs::chown(m.p("team-b/c2.wav"), Some(uid), None).unwrap();
    assert!(m.unmount().success());
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "[[grant]]\nusers = [\"{recorder}\"]\npaths = [\"/**\"]\n\
             rights = [\"list\", \"read\", \"create\", \"write\", \"delete\", \"rename\", \"setattr\"]\n"
        ),
    )
    .unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    for to in ["team-a/c2.wav", "team-b/again.wav"] {
        let out =
            as_user(&recorder, r#"ln "$1" "$2""#, &[m.p("team-b/c2.wav").to_str().unwrap(), m.p(to).to_str().unwrap()]);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
            "{to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!m.p(to).exists());
    }
    assert!(m.unmount().success());
    let links = vol.records(&["--event", "link"]);
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links.iter().all(|r| r["outcome"] == "EPERM" && r["path2"] == "/team-b/c2.wav"), "{links:?}");
}

/// Renaming over a recording destroys it: that needs `delete` on the
/// replaced file, not only `rename`.
#[test]
fn renaming_over_a_recording_needs_the_delete_right() {
    let mut u = Users::new();
    let mover = u.user("mover", "mover", &[]);
    let vol = Volume::new();
    prepare_tree(&vol);
    let m = vol.mount();
    fs::write(m.p("team-b/other.wav"), b"other call").unwrap();
    assert!(m.unmount().success());
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!("[[grant]]\nusers = [\"{mover}\"]\npaths = [\"/**\"]\nrights = [\"list\", \"create\", \"rename\"]\n"),
    )
    .unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    let (c2, other) = (m.p("team-b/c2.wav"), m.p("team-b/other.wav"));
    let out = as_user(&mover, r#"mv -f "$1" "$2""#, &[c2.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(denied(&out), "{}", String::from_utf8_lossy(&out.stderr));
    let moved =
        as_user(&mover, r#"mv "$1" "$2""#, &[other.to_str().unwrap(), m.p("team-b/kept.wav").to_str().unwrap()]);
    assert!(
        moved.status.success(),
        "a rename to a free name needs only rename: {}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(m.unmount().success());
    let m = vol.mount();
    assert_eq!(fs::read(m.p("team-b/c2.wav")).unwrap(), b"team b call");
    assert_eq!(fs::read(m.p("team-b/kept.wav")).unwrap(), b"other call");
    assert!(m.unmount().success());
    let denials = vol.records(&["--event", "denied"]);
    assert!(
        denials.iter().any(|r| r["path"] == "/team-b/other.wav" && r["detail"]["missing_right"] == "delete"),
        "{denials:?}"
    );
}

/// Opens `names` one below the other from `dir` (no path string ever passes
/// PATH_MAX), returning the last descriptor or the errno where it failed.
fn open_chain(
    dir: &std::path::Path,
    names: &[String],
    last: nix::fcntl::OFlag,
) -> Result<std::os::fd::OwnedFd, nix::errno::Errno> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    // O_CLOEXEC: a process another test spawns meanwhile must not inherit
    // these descriptors (it would keep this mount busy).
    let mut fd = open(dir, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    for (i, n) in names.iter().enumerate() {
        let flags = if i + 1 == names.len() { last } else { OFlag::O_DIRECTORY | OFlag::O_RDONLY };
        fd = openat(&fd, n.as_str(), flags | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o644))?;
    }
    Ok(fd)
}

/// Paths are whole or refused: a tree moved so deep that its files' paths
/// pass 4,096 bytes is not judged (or journaled) by a shortened path. Every
/// access to what lies too deep is ENAMETOOLONG, for every user.
#[test]
fn a_path_too_long_to_name_is_refused_never_cut() {
    let vol = Volume::new();
    let m = vol.mount();
    let level = |c: char| -> String { std::iter::repeat_n(c, 100).collect() };
    // /a/<25 x 100 bytes> and /team-b/<20 x 100 bytes>/call.wav: each fits.
    let a_chain: Vec<String> = std::iter::once("a".to_string()).chain((0..25).map(|_| level('a'))).collect();
    let mut b_chain: Vec<String> = std::iter::once("team-b".to_string()).chain((0..20).map(|_| level('b'))).collect();
    let mkdirs = |chain: &[String]| {
        let mut p = m.path.clone();
        for n in chain {
            p.push(n);
            fs::create_dir(&p).unwrap();
        }
        p
    };
    let a_deep = mkdirs(&a_chain);
    let b_deep = mkdirs(&b_chain);
    fs::write(b_deep.join("call.wav"), b"team b call").unwrap();
    // Move /team-b under the deep end of /a: call.wav's path now passes 4,096 bytes.
    let mut dst = a_chain.clone();
    dst.push("team-b".into());
    let src_fd = open_chain(&m.path, &[], nix::fcntl::OFlag::O_DIRECTORY).unwrap();
    let dst_dir = open_chain(&m.path, &a_chain, nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY).unwrap();
    nix::fcntl::renameat(&src_fd, "team-b", &dst_dir, "team-b").unwrap();
    drop(a_deep);
    b_chain.push("call.wav".into());
    let mut deep_file = dst.clone();
    deep_file.extend(b_chain[1..].iter().cloned());
    let got = open_chain(&m.path, &deep_file, nix::fcntl::OFlag::O_RDONLY);
    assert_eq!(got.err(), Some(nix::errno::Errno::ENAMETOOLONG), "a file too deep to name was opened");
    let mut new_name = deep_file.clone();
    new_name.pop();
    new_name.push("new.wav".into());
    let created = open_chain(&m.path, &new_name, nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY);
    assert_eq!(created.err(), Some(nix::errno::Errno::ENAMETOOLONG), "a file too deep to name was created");
    // Moved back within reach, it is served again, unchanged.
    let b_dir = open_chain(&m.path, &a_chain, nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY).unwrap();
    nix::fcntl::renameat(&b_dir, "team-b", &src_fd, "team-b").unwrap();
    drop((b_dir, dst_dir, src_fd));
    assert_eq!(fs::read(b_deep.join("call.wav")).unwrap(), b"team b call");
    assert!(m.unmount().success());
    // No record names a shortened path: every path in the journal is whole.
    for r in vol.records(&[]) {
        if let Some(p) = r["path"].as_str() {
            assert!(p == "/" || p.starts_with("/a") || p.starts_with("/team-b"), "a cut path was recorded: {p}");
        }
    }
}

/// As on ext4, a write by a user without CAP_FSETID clears the set-user and
/// set-group-ID bits (the daemon does it: the kernel delegates it).
#[test]
fn a_write_by_another_user_clears_setuid_and_setgid_bits() {
    let mut u = Users::new();
    let dave = u.user("dave", "dave", &[]);
    let vol = Volume::new();
    let m = vol.mount();
    let p = m.p("tool");
    fs::write(&p, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
    let out = as_user(&dave, r#"printf 'echo hi\n' >> "$1""#, &[p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read(&p).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o777);
    assert!(m.unmount().success());
    let m = vol.mount();
    assert_eq!(fs::metadata(m.p("tool")).unwrap().permissions().mode() & 0o7777, 0o777, "cleared on disk too");
    assert!(m.unmount().success());
}

/// Names that are not UTF-8 are judged and journaled by an unambiguous text:
/// two different names never share a recorded path, and a grant on their
/// directory covers them.
#[test]
fn names_that_are_not_utf8_are_recorded_unambiguously() {
    use std::os::unix::ffi::OsStrExt;
    let mut u = Users::new();
    let qa = u.user("qa", "qa", &[]);
    let vol = Volume::new();
    prepare_tree(&vol);
    let m = vol.mount();
    let names: [&[u8]; 3] = [b"call-\xff.wav", b"call-\xfe.wav", b"call-\\xff.wav"];
    for (i, n) in names.iter().enumerate() {
        let p = m.p("team-a").join(std::ffi::OsStr::from_bytes(n));
        fs::write(&p, format!("call {i}")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert!(m.unmount().success());
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!("[[grant]]\nusers = [\"{qa}\"]\npaths = [\"/team-a/**\"]\nrights = [\"list\", \"read\"]\n"),
    )
    .unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    for (i, n) in names.iter().enumerate() {
        let p = m.p("team-a").join(std::ffi::OsStr::from_bytes(n));
        let read = Command::new("runuser").args(["-u", &qa, "--", "cat"]).arg(&p).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&read.stdout),
            format!("call {i}"),
            "{}",
            String::from_utf8_lossy(&read.stderr)
        );
    }
    assert!(m.unmount().success());
    let opens: Vec<_> = vol.records(&["--event", "open", "--user", &qa]);
    let mut seen: Vec<(String, bool)> =
        opens.iter().map(|r| (r["path"].as_str().unwrap().to_string(), r["detail"]["escaped"] == true)).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            ("/team-a/call-\\xfe.wav".to_string(), true),
            ("/team-a/call-\\xff.wav".to_string(), false),
            ("/team-a/call-\\xff.wav".to_string(), true),
        ],
        "{opens:?}"
    );
}
