//! The audit journal through real mounts, real users and the auditor's tools.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::harness::{OwnMount, Volume, pattern};
use crate::users::{Users, as_user};

fn field<'a>(r: &'a Value, k: &str) -> &'a str {
    r[k].as_str().unwrap_or("")
}

fn verify(vol: &Volume) -> std::process::Output {
    vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}"])
}

/// The check the issue names: alice plays, bob is refused, both are in the
/// journal with user, pid and executable; verify passes, and detects a
/// flipped byte and a deleted line, naming the record.
#[test]
fn journal_shows_who_played_and_who_was_refused_and_verify_catches_tampering() {
    let mut u = Users::new();
    u.group("qa-team-a");
    let recorder = u.user("recorder", "recorder", &[]);
    let alice = u.user("alice", "alice", &["qa-team-a"]);
    let bob = u.user("bob", "bob", &[]);
    let vol = Volume::new();
    let m = vol.mount();
    fs::create_dir(m.p("team-a")).unwrap();
    fs::set_permissions(m.p("team-a"), fs::Permissions::from_mode(0o777)).unwrap();
    assert!(m.unmount().success());
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "[[grant]]\nusers = [\"{recorder}\"]\npaths = [\"/**\"]\nrights = [\"list\", \"create\", \"write\"]\n\n\
             [[grant]]\ngroups = [\"{}\"]\npaths = [\"/team-a/**\"]\nrights = [\"list\", \"read\"]\n",
            u.name("qa-team-a")
        ),
    )
    .unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    let c1 = m.p("team-a/c1.wav");
    let c1s = c1.to_str().unwrap();
    let call = pattern(7, 5000);
    fs::write(vol.dir.path().join("call.bin"), &call).unwrap();
    let w = as_user(&recorder, r#"cat "$2" > "$1""#, &[c1s, vol.dir.path().join("call.bin").to_str().unwrap()]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    let a = as_user(&alice, r#"cat "$1""#, &[c1s]);
    assert_eq!(a.stdout, call);
    assert!(!as_user(&bob, r#"cat "$1""#, &[c1s]).status.success());
    assert!(m.unmount().success());

    let recs = vol.records(&["--path", "/team-a/c1.wav"]);
    let by = |user: &str, event: &str| -> Vec<&Value> {
        recs.iter().filter(|r| field(r, "user") == user && field(r, "event") == event).collect()
    };
    let opens = by(&alice, "open");
    assert_eq!(opens.len(), 1, "{recs:#?}");
    let open = opens[0];
    assert_eq!(field(open, "outcome"), "ok");
    assert_eq!(field(open, "exe"), "/usr/bin/cat");
    assert!(open["pid"].as_u64().unwrap() > 1);
    assert_eq!(open["detail"]["access"], "read");
    let closes = by(&alice, "close");
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0]["detail"]["bytes_read"].as_u64(), Some(5000));
    // The kernel may retry a refused lookup once: one or more records, all alike.
    let denied = by(&bob, "denied");
    assert!(!denied.is_empty(), "bob's refusal is recorded against the file: {recs:#?}");
    for d in &denied {
        assert_eq!(field(d, "outcome"), "EACCES");
        assert_eq!(field(d, "exe"), "/usr/bin/cat");
        assert_eq!(d["detail"]["missing_right"], "list");
    }
    let writes: Vec<_> = by(&recorder, "create").into_iter().filter(|r| field(r, "outcome") == "ok").collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(by(&recorder, "close")[0]["detail"]["bytes_written"].as_u64(), Some(5000));

    let ok = verify(&vol);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    // Flip one byte inside alice's open record.
    let seg = vol.path.join("audit/journal-000001.log");
    let text = fs::read(&seg).unwrap();
    let seq = open["seq"].as_u64().unwrap();
    let at = String::from_utf8_lossy(&text).find(&format!("\"seq\":{seq},")).unwrap();
    let mut flipped = text.clone();
    let pos = at + 60;
    flipped[pos] ^= 0x01;
    fs::write(&seg, &flipped).unwrap();
    let bad = verify(&vol);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains(&format!("seq {seq}")),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // Delete that line instead.
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let kept: Vec<u8> = lines
        .iter()
        .filter(|l| !l.starts_with(format!("{{\"seq\":{seq},").as_bytes()))
        .flat_map(|l| l.iter().copied())
        .collect();
    assert_eq!(
        kept.len() + lines.iter().find(|l| l.starts_with(format!("{{\"seq\":{seq},").as_bytes())).unwrap().len(),
        text.len()
    );
    fs::write(&seg, &kept).unwrap();
    let bad = verify(&vol);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains(&format!("seq {seq}")),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    fs::write(&seg, &text).unwrap();
}

/// Each kind of operation leaves a record with the right user, executable and outcome.
#[test]
fn every_operation_is_recorded() {
    let mut u = Users::new();
    let carol = u.user("carol", "carol", &[]);
    let vol = Volume::new();
    let m = vol.mount();
    fs::create_dir(m.p("work")).unwrap();
    fs::set_permissions(m.p("work"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::create_dir(m.p("secret")).unwrap();
    fs::write(m.p("secret/x.wav"), b"x").unwrap();
    assert!(m.unmount().success());
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "[[grant]]\nusers = [\"{carol}\"]\npaths = [\"/work/**\"]\n\
             rights = [\"list\", \"read\", \"create\", \"write\", \"delete\", \"rename\", \"setattr\"]\n"
        ),
    )
    .unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    let w = m.p("work");
    let script = r#"set -e
cd "$1"
printf 'hello' > a.wav
cat a.wav > /dev/null
mkdir d
mv a.wav d/b.wav
! ln d/b.wav hard.wav
cp d/b.wav hard.wav
ln -s d/b.wav sym.wav
chmod 600 hard.wav
truncate -s 2 hard.wav
setfattr -n user.agent -v carol hard.wav
setfattr -x user.agent hard.wav
rm sym.wav hard.wav d/b.wav
rmdir d
cat "$2" 2>/dev/null || true
"#;
    let out = as_user(&carol, script, &[w.to_str().unwrap(), m.p("secret/x.wav").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(m.unmount().success());
    let recs = vol.records(&["--user", &carol]);
    // Outcome records; a change's intent record comes first and is checked below.
    let done = |r: &&Value| field(r, "outcome") != "intent";
    let find = |event: &str, path: &str| -> &Value {
        recs.iter()
            .filter(done)
            .find(|r| field(r, "event") == event && field(r, "path") == path)
            .unwrap_or_else(|| panic!("no {event} record for {path}: {recs:#?}"))
    };
    let find_by = |event: &str, path: &str, exe: &str| -> &Value {
        recs.iter()
            .filter(done)
            .find(|r| field(r, "event") == event && field(r, "path") == path && field(r, "exe") == exe)
            .unwrap_or_else(|| panic!("no {event} record for {path} by {exe}: {recs:#?}"))
    };
    let expect = [
        ("create", "/work/a.wav", "/usr/bin/bash"),
        ("open", "/work/a.wav", "/usr/bin/cat"),
        ("close", "/work/a.wav", "/usr/bin/cat"),
        ("mkdir", "/work/d", "/usr/bin/mkdir"),
        ("rename", "/work/a.wav", "/usr/bin/mv"),
        ("link", "/work/hard.wav", "/usr/bin/ln"),
        ("create", "/work/hard.wav", "/usr/bin/cp"),
        ("symlink", "/work/sym.wav", "/usr/bin/ln"),
        ("setattr", "/work/hard.wav", "/usr/bin/chmod"),
        ("truncate", "/work/hard.wav", "/usr/bin/truncate"),
        ("setxattr", "/work/hard.wav", "/usr/bin/setfattr"),
        ("removexattr", "/work/hard.wav", "/usr/bin/setfattr"),
        ("unlink", "/work/d/b.wav", "/usr/bin/rm"),
        ("rmdir", "/work/d", "/usr/bin/rmdir"),
        ("denied", "/secret/x.wav", "/usr/bin/cat"),
    ];
    for (event, path, exe) in expect {
        let r = if exe.ends_with("bash") { find(event, path) } else { find_by(event, path, exe) };
        assert_eq!(field(r, "user"), carol);
        let shown_exe = field(r, "exe");
        assert!(
            shown_exe == exe || (exe == "/usr/bin/bash" && shown_exe.ends_with("sh")),
            "{event} {path}: exe {shown_exe}, expected {exe}"
        );
        let want = match event {
            "denied" => "EACCES",
            "link" => "EPERM", // hard links are refused under a policy
            _ => "ok",
        };
        assert_eq!(field(r, "outcome"), want, "{event} {path}");
        // Every change was recorded as intended before it took effect.
        if !["open", "close", "denied", "link"].contains(&event) {
            let seq = r["detail"]["intent"].as_u64().unwrap_or_else(|| panic!("{event} {path} names no intent: {r}"));
            let intent = recs.iter().find(|i| i["seq"].as_u64() == Some(seq)).expect("the intent record");
            assert_eq!((field(intent, "outcome"), field(intent, "event")), ("intent", event), "{event} {path}");
            assert!(seq < r["seq"].as_u64().unwrap());
        }
        assert!(
            r["uid"].as_u64().unwrap() >= 1000
                && r["gid"].as_u64().is_some()
                && r["ts"].as_str().unwrap().ends_with('Z')
        );
    }
    assert_eq!(field(find("rename", "/work/a.wav"), "path2"), "/work/d/b.wav");
    // The kernel sends the times it keeps for a file whose last name it just
    // removed; that is part of the recorded unlink, not an attribute change
    // by rm. (hard.wav kept a name, d/b.wav, so its times still count.)
    let rm_setattr = |path: &str| {
        recs.iter()
            .any(|r| field(r, "event") == "setattr" && field(r, "exe") == "/usr/bin/rm" && field(r, "path") == path)
    };
    assert!(!rm_setattr("/work/d/b.wav"), "the last unlink was recorded as a setattr too: {recs:#?}");
    let chmod = recs
        .iter()
        .find(|r| field(r, "event") == "setattr" && r["detail"]["changed"][0] == "mode=0600")
        .expect("the chmod's setattr record");
    assert_eq!(field(chmod, "exe"), "/usr/bin/chmod");
    // The daemon's own events, and the policy's hash.
    let all = vol.records(&[]);
    for event in ["mount", "unmount", "unlock", "policy_load", "key_admin"] {
        assert!(all.iter().any(|r| field(r, "event") == event), "no {event} record");
    }
    assert!(verify(&vol).status.success());
}

/// A journal that cannot be written refuses accesses with EIO: nothing is
/// served unrecorded, and service resumes once space is freed.
#[test]
fn a_full_journal_fails_closed() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::write(m.p("call.wav"), b"recorded call").unwrap();
    assert!(m.unmount().success());
    // Put the journal on a tiny tmpfs of its own.
    let audit = vol.path.join("audit");
    let own = OwnMount::new(&audit, vol.dir.path(), "size=256k");
    let m = vol.mount();
    assert_eq!(fs::read(m.p("call.wav")).unwrap(), b"recorded call");
    // Fill it.
    let filler = own.fill();
    let mut refused = false;
    for _ in 0..200 {
        match fs::read(m.p("call.wav")) {
            Ok(_) => continue,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "opens kept succeeding with the journal full");
    assert!(m.log_text().contains("no space left on device"), "{}", m.log_text());
    fs::remove_file(&filler).unwrap();
    assert_eq!(fs::read(m.p("call.wav")).unwrap(), b"recorded call", "service resumes once space is freed");
    assert!(m.unmount().success());
}

/// SIGKILL under load: after the next mount the journal verifies, and every
/// open that returned success is in it.
#[test]
fn sigkill_under_load_leaves_a_journal_that_verifies() {
    let vol = Volume::new();
    let m = vol.mount();
    for i in 0..20 {
        fs::write(m.p(&format!("f{i}.wav")), pattern(i, 1000)).unwrap();
    }
    let succeeded = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..4u64 {
        let (p, ok, stop) = (m.path.clone(), succeeded.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut i = t;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if fs::read(p.join(format!("f{}.wav", i % 20))).is_ok() {
                    *ok.lock().unwrap() += 1;
                }
                i += 4;
            }
        }));
    }
    while *succeeded.lock().unwrap() < 200 {
        std::thread::yield_now();
    }
    let status = m.stop_with(nix::sys::signal::Signal::SIGKILL);
    assert!(!status.success());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let _ = Command::new("umount").arg("-l").arg(vol.mountpoint()).status();
    let opened_ok = *succeeded.lock().unwrap();
    // Before the next mount nothing seals the tail: verify says so.
    let before = verify(&vol);
    assert!(!before.status.success());
    let m = vol.mount();
    assert!(m.unmount().success());
    let after = verify(&vol);
    assert!(after.status.success(), "{}", String::from_utf8_lossy(&after.stderr));
    let opens = vol.records(&["--event", "open"]).iter().filter(|r| field(r, "outcome") == "ok").count();
    assert!(opens >= opened_ok, "{opens} open records for {opened_ok} successful opens");
}

/// Segments rotate at the configured size; finished ones carry the
/// append-only inode flag on a filesystem that has inode flags (ext4).
#[test]
fn segments_rotate_and_finished_ones_are_append_only() {
    let vol = Volume::new();
    let audit = vol.path.join("audit");
    let _own = OwnMount::new(&audit, vol.dir.path(), "ext4");
    let m = vol.mount_with(&["--audit-segment-mib", "1"]).unwrap();
    fs::write(m.p("call.wav"), b"x").unwrap();
    for _ in 0..2500 {
        fs::read(m.p("call.wav")).unwrap();
    }
    assert!(m.unmount().success());
    let mut segments: Vec<_> = fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("journal-") && n.ends_with(".log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "expected rotation, got {segments:?}");
    let active = segments.pop().unwrap();
    for s in &segments {
        let attrs = Command::new("lsattr").arg(audit.join(s)).output().unwrap();
        let flags = String::from_utf8_lossy(&attrs.stdout);
        assert!(flags.split_whitespace().next().unwrap_or("").contains('a'), "{s} is not append-only: {flags}");
        let opened = fs::OpenOptions::new().write(true).open(audit.join(s));
        assert!(opened.is_err(), "a finished segment {s} opened for writing");
    }
    let flags = Command::new("lsattr").arg(audit.join(&active)).output().unwrap();
    assert!(!String::from_utf8_lossy(&flags.stdout).split_whitespace().next().unwrap_or("").contains('a'));
    let ok = verify(&vol);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("in {} segment(s)", segments.len() + 1)));
    // Remove the flags so the test directory can be cleaned up.
    for s in &segments {
        let _ = Command::new("chattr").arg("-a").arg(audit.join(s)).status();
    }
}

/// With --syslog, every record also goes to the syslog socket, RFC 5424.
#[test]
fn records_are_forwarded_to_syslog() {
    let vol = Volume::new();
    let sock_path = vol.dir.path().join("syslog.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let m = vol.mount_with(&[&format!("--syslog={}", sock_path.display())]).unwrap();
    fs::write(m.p("call.wav"), b"x").unwrap();
    assert!(m.unmount().success());
    let mut buf = [0u8; 8192];
    let mut seen = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.contains("\"event\":\"unmount\"");
        seen.push(msg);
        if done {
            break;
        }
    }
    let create = seen.iter().find(|m| m.contains("\"event\":\"create\"")).unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(create.starts_with('<') && create.contains(">1 "), "RFC 5424 header: {create}");
    assert!(create.contains("/call.wav"));
}

/// A failed unlock and policy reloads (accepted and refused) are recorded.
#[test]
fn failed_unlocks_and_policy_reloads_are_recorded() {
    let vol = Volume::new();
    let good = fs::read(&vol.pass).unwrap();
    fs::write(&vol.pass, "wrong passphrase 1\n").unwrap();
    let Err((code, _)) = vol.mount_with(&[]) else { panic!("a wrong passphrase mounted") };
    assert_eq!(code, Some(10));
    fs::write(&vol.pass, good).unwrap();
    let policy = vol.dir.path().join("policy.toml");
    fs::write(&policy, "[[grant]]\nusers = [\"root\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n").unwrap();
    let mut m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    fs::write(&policy, "[[grant]]\nusers = [\"root\"]\npaths = [\"/**\"]\nrights = [\"list\", \"read\"]\n").unwrap();
    m.reload();
    fs::write(&policy, "not toml [").unwrap();
    m.reload();
    assert!(m.unmount().success());
    let all = vol.records(&[]);
    let failed = all.iter().find(|r| field(r, "event") == "unlock_failed").expect("unlock_failed record");
    assert_eq!(field(failed, "outcome"), "EACCES");
    assert!(failed["detail"]["reason"].as_str().unwrap().contains("wrong passphrase"));
    let reloads: Vec<_> = all.iter().filter(|r| field(r, "event") == "policy_reload").collect();
    assert_eq!(reloads.len(), 2);
    assert_eq!(field(reloads[0], "outcome"), "ok");
    assert_eq!(reloads[0]["detail"]["policy_sha256"].as_str().map(str::len), Some(64));
    assert_eq!(field(reloads[1], "outcome"), "EINVAL");
}

/// Every regular file of `from` copied into `to` (a root's backup of the
/// audit directory: segments and seal state).
fn copy_files(from: &std::path::Path, to: &std::path::Path) {
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Restoring an older copy of the whole audit directory passes a plain
/// verify (consistent in itself), but not `verify --since` the checkpoint
/// printed before the restore: exit 25. A malformed token is a usage error.
#[test]
fn restoring_an_older_audit_directory_fails_verify_since_the_checkpoint() {
    let vol = Volume::new();
    let m = vol.mount();
    fs::write(m.p("c1.wav"), pattern(1, 100)).unwrap();
    assert!(m.unmount().success());
    let audit = vol.path.join("audit");
    let backup = tempfile::tempdir().unwrap();
    copy_files(&audit, backup.path());

    let m = vol.mount();
    fs::write(m.p("c2.wav"), pattern(2, 100)).unwrap();
    assert_eq!(fs::read(m.p("c1.wav")).unwrap(), pattern(1, 100));
    assert!(m.unmount().success());
    let out = verify(&vol);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().strip_prefix("checkpoint: ").expect(&stdout).to_string();
    assert!(token.starts_with("cv1-") && !token.contains(char::is_whitespace), "{token}");
    let out = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}", "--since", &token]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("extends checkpoint {token}")));

    // Root puts the old copy back: segments and seal.key.
    for e in fs::read_dir(&audit).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            fs::remove_file(p).unwrap();
        }
    }
    copy_files(backup.path(), &audit);
    assert!(verify(&vol).status.success(), "a plain verify cannot see the rollback");
    let out = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}", "--since", &token]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(callvault::exitcode::AUDIT_ROLLED_BACK as i32), "{err}");
    assert!(err.contains("rolled back") && err.contains("before the checkpoint's seq"), "{err}");

    for bad in ["cv1-12", "cv2-3-00", "nonsense", &token.replace("cv1-", "cv1-0")] {
        let out = vol.audit(&["verify", "{vol}", "--audit-key-file", "{key}", "--since", bad]);
        assert_eq!(out.status.code(), Some(callvault::exitcode::USAGE as i32), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("malformed"), "{bad}");
    }
}

/// A card number typed on a command line reaches the journal masked; the
/// path the command wrote stays exact.
#[test]
fn card_numbers_on_command_lines_are_masked_in_the_journal() {
    let vol = Volume::new();
    let m = vol.mount();
    let f = m.p("card-4111111111111111.txt");
    let out = Command::new("sh")
        .args(["-c", "echo 4111111111111111 > \"$1\"; : --card=5500-0000-0000-0004", "sh", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(m.unmount().success());
    let recs = vol.records(&["--path", "/card-4111111111111111.txt"]);
    assert!(!recs.is_empty());
    for r in &recs {
        let cmd = r["cmdline"].to_string();
        assert!(!cmd.contains("4111111111111111") && !cmd.contains("5500-0000"), "{cmd}");
        assert!(cmd.contains("************1111") && cmd.contains("****-****-****-0004"), "{cmd}");
        assert_eq!(field(r, "path"), "/card-4111111111111111.txt");
    }
}

/// Who acted is the program running now and the person behind it: a process
/// that reads one file and then execs another program is recorded as that
/// program for what it does next (no stale cache by pid), and root acting as
/// someone else (`runuser` in a login session of uid 1234) carries the login
/// uid of the person.
#[test]
fn records_name_the_program_running_now_and_the_login_behind_it() {
    let mut u = Users::new();
    let carol = u.user("carol", "carol", &[]);
    let vol = Volume::new();
    let m = vol.mount();
    for f in ["f1.wav", "f2.wav"] {
        fs::write(m.p(f), b"call").unwrap();
        fs::set_permissions(m.p(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (f1, f2) = (m.p("f1.wav"), m.p("f2.wav"));
    let same_pid =
        Command::new("sh").arg("-c").arg(r#"read x < "$1"; exec cat "$2""#).arg("sh").arg(&f1).arg(&f2).output();
    assert!(same_pid.unwrap().status.success());
    let login = Command::new("sh")
        .arg("-c")
        .arg(r#"echo 1234 > /proc/self/loginuid && exec runuser -u "$2" -- cat "$1""#)
        .arg("sh")
        .arg(&f1)
        .arg(&carol)
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    assert!(m.unmount().success());
    let opens = vol.records(&["--event", "open"]);
    let by_root = |path: &str| opens.iter().find(|r| field(r, "path") == path && r["uid"] == 0).unwrap();
    let (o1, o2) = (by_root("/f1.wav"), by_root("/f2.wav"));
    assert_eq!(o1["pid"], o2["pid"], "one process, before and after its exec");
    assert!(field(o1, "exe").ends_with("sh"), "{o1}");
    assert_eq!(field(o2, "exe"), "/usr/bin/cat", "the exec'd program, not the shell: {o2}");
    let as_carol = opens.iter().find(|r| field(r, "user") == carol).expect("carol's open");
    assert_eq!(as_carol["login_uid"], 1234, "root acting as carol shows the login behind it: {as_carol}");
}

/// A session's start is sealed at once: a daemon killed right after
/// mounting leaves its unlock and mount records under a seal, so cutting the
/// unsealed tail of a crashed journal cannot erase them, and the auditor's
/// checkpoint covers them.
#[test]
fn unlock_and_mount_records_are_sealed_at_once() {
    let vol = Volume::new();
    let m = vol.mount();
    let _ = m.stop_with(nix::sys::signal::Signal::SIGKILL);
    let _ = Command::new("umount").arg("-l").arg(vol.mountpoint()).status();
    let all = vol.records(&[]);
    let last = |event: &str| all.iter().filter(|r| field(r, "event") == event).filter_map(|r| r["seq"].as_u64()).max();
    let (unlock, mount) = (last("unlock").unwrap(), last("mount").expect("the mount record, before readiness"));
    let out = verify(&vol);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text.lines().find_map(|l| l.strip_prefix("checkpoint: ")).expect("a checkpoint line");
    let sealed: u64 = token.split('-').nth(1).unwrap().parse().unwrap();
    assert!(sealed > mount && mount > unlock, "checkpoint at seq {sealed}, unlock {unlock}, mount {mount}");
}
