//! Operators' keyslots through the real binaries: every slot kind unlocks a
//! real mount, removed and altered secrets are refused by keytool and the
//! daemon, the passphrase rules and history hold, dual control needs K
//! operators, header backups restore (and refuse what they must), damaged
//! header copies are survived or named, a format-1 volume is upgraded, and
//! repeated failures are throttled. Every test ends by checking that no
//! secret it used appears in any output, daemon log or journal record.

use std::cell::RefCell;
use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::{Mount, Volume, keytool};

const ALICE: &str = "maple orbit 42 quartz lantern";
const BOB: &str = "violet canyon 17 harbor sprocket";
const CAROL: &str = "quiet meadow 93 copper falcon";
const KDF: [&str; 4] = ["--kdf-memory", "1", "--kdf-time", "0"];

/// A volume, the secrets written for it, and everything its commands printed.
struct Lab {
    vol: Volume,
    secrets: RefCell<Vec<String>>,
    seen: RefCell<String>,
}

impl Lab {
    /// A volume whose first slot is alice's passphrase slot.
    fn new() -> Lab {
        Lab::from(Volume::with_operator("alice", ALICE), &[ALICE])
    }

    fn from(vol: Volume, secrets: &[&str]) -> Lab {
        Lab { vol, secrets: RefCell::new(secrets.iter().map(|s| s.to_string()).collect()), seen: RefCell::default() }
    }

    fn v(&self) -> &str {
        self.vol.path.to_str().unwrap()
    }

    /// Writes a passphrase or keyfile (mode 0600) and remembers it as a secret.
    fn secret(&self, name: &str, text: &str) -> String {
        let p = self.vol.dir.path().join(name);
        fs::write(&p, format!("{text}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        self.secrets.borrow_mut().push(text.to_string());
        p.to_str().unwrap().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = keytool(args);
        let mut seen = self.seen.borrow_mut();
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Runs keytool, expects success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?} failed ({:?}): {err}", out.status.code());
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs keytool, expects exit `code`, returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    /// Mounts with exactly these unlock options; keeps the daemon's log.
    fn mount(&self, secrets: &[&str]) -> Result<Mount, (Option<i32>, String)> {
        let r = self.vol.mount_as(secrets);
        match &r {
            Ok(m) => self.seen.borrow_mut().push_str(&m.log_text()),
            Err((_, log)) => self.seen.borrow_mut().push_str(log),
        }
        r
    }

    fn mounted(&self, secrets: &[&str]) -> Mount {
        self.mount(secrets).unwrap_or_else(|(code, log)| panic!("mount with {secrets:?} failed ({code:?}): {log}"))
    }

    fn refused_mount(&self, secrets: &[&str], code: i32) -> String {
        match self.mount(secrets) {
            Ok(m) => {
                m.unmount();
                panic!("mount with {secrets:?} was accepted")
            }
            Err((c, log)) => {
                assert_eq!(c, Some(code), "mount with {secrets:?}: {log}");
                log
            }
        }
    }

    fn unmount(&self, m: Mount) {
        self.seen.borrow_mut().push_str(&m.log_text());
        assert!(m.unmount().success());
    }

    /// Journal records of one event kind.
    fn records(&self, event: &str) -> Vec<serde_json::Value> {
        self.vol.records(&["--event", event])
    }

    fn key_admin(&self, action: &str) -> Vec<serde_json::Value> {
        self.records("key_admin").into_iter().filter(|r| r["detail"]["action"] == action).collect()
    }

    /// No secret in anything printed, logged or journaled.
    fn assert_no_secret_leaked(&self) {
        let out = self.run(&["audit", "show", self.v(), "--format", "json"]);
        assert!(out.status.success());
        let journal = String::from_utf8_lossy(&out.stdout).into_owned();
        let seen = self.seen.borrow();
        for s in self.secrets.borrow().iter() {
            assert!(!seen.contains(s.as_str()), "secret {s:?} in output or log:\n{seen}");
            assert!(!journal.contains(s.as_str()), "secret {s:?} in the journal");
        }
    }
}

/// The concatenation of argument lists.
fn cat<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.concat()
}

fn labels(r: &serde_json::Value) -> Vec<String> {
    r["detail"]["labels"]
        .as_array()
        .map(|a| a.iter().map(|l| l.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Writes a recording through an alice mount, for later mounts to read back.
fn write_recording(lab: &Lab, alice: &str) -> Vec<u8> {
    let data = crate::harness::pattern(7, 10_000);
    let m = lab.mounted(&["--passphrase-file", alice]);
    fs::write(m.p("call-0001.wav"), &data).unwrap();
    lab.unmount(m);
    data
}

fn reads_back(lab: &Lab, secrets: &[&str], data: &[u8]) {
    let m = lab.mounted(secrets);
    assert_eq!(fs::read(m.p("call-0001.wav")).unwrap(), data, "through a mount with {secrets:?}");
    lab.unmount(m);
}

#[test]
fn each_slot_kind_mounts_and_removed_or_altered_secrets_are_refused() {
    let lab = Lab::new();
    let v = lab.v();
    let alice = lab.vol.pass.to_str().unwrap().to_string();
    let data = write_recording(&lab, &alice);
    let k1 = lab.secret("k1.key", "keyfile one 5f0c9e2ab1d4 usb stick");
    let k2 = lab.secret("k2.key", "keyfile two 8e17c3d09a66 smart card");
    let k3 = lab.secret("k3.key", "keyfile three 2b94aa71f0c5 hsm export");
    let carol = lab.secret("carol.pass", CAROL);
    let by = ["--unlock-passphrase-file", alice.as_str()];
    let out = lab.ok(&cat(&[&["slot", "add", v, "--label", "bob", "--keyfile", &k1, "--keyfile", &k2], &KDF[..], &by]));
    assert_eq!(out, "added keyslot 1 \"bob\" (keyfile)\n");
    let out = lab.ok(&cat(&[
        &["slot", "add", v, "--label", "carol", "--passphrase-file", &carol, "--keyfile", &k3],
        &KDF[..],
        &by,
    ]));
    assert_eq!(out, "added keyslot 2 \"carol\" (passphrase+keyfile)\n");

    let list: serde_json::Value = serde_json::from_str(&lab.ok(&["slot", "list", v, "--format", "json"])).unwrap();
    assert_eq!(list["format"], 3);
    let kinds: Vec<(&str, &str)> = list["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["label"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("alice", "passphrase"), ("bob", "keyfile"), ("carol", "passphrase+keyfile")]);
    let table = lab.ok(&["slot", "list", v]);
    assert!(table.starts_with(&format!("volume {v}: format 3, key generation 1, no dual control\n")), "{table}");
    assert!(table.contains("passphrase+keyfile"), "{table}");

    // Each kind mounts; keyfiles in either order.
    reads_back(&lab, &["--keyfile", &k2, "--keyfile", &k1], &data);
    reads_back(&lab, &["--keyfile", &k1, "--keyfile", &k2], &data);
    reads_back(&lab, &["--passphrase-file", &carol, "--keyfile", &k3], &data);
    reads_back(&lab, &["--passphrase-file", &alice], &data);
    let mounts = lab.records("unlock");
    let used: Vec<&str> = mounts.iter().filter_map(|r| r["detail"]["label"].as_str()).collect();
    for l in ["alice", "bob", "carol"] {
        assert!(used.contains(&l), "{used:?}");
    }
    // carol's passphrase alone opens nothing: her slot needs her keyfile too.
    lab.refused_mount(&["--passphrase-file", &carol], 10);

    // One byte changed in one keyfile.
    let mut bytes = fs::read(&k1).unwrap();
    bytes[3] ^= 1;
    let k1_bad = lab.vol.dir.path().join("k1-bad.key");
    fs::write(&k1_bad, &bytes).unwrap();
    let k1_bad = k1_bad.to_str().unwrap();
    lab.fails(&["slot", "remove", v, "--label", "carol", "--unlock-keyfile", k1_bad, "--unlock-keyfile", &k2], 10);
    lab.refused_mount(&["--keyfile", k1_bad, "--keyfile", &k2], 10);

    let out = lab.ok(&["slot", "remove", v, "--label", "bob", "--unlock-passphrase-file", &alice]);
    assert_eq!(out, "removed keyslot 1 \"bob\"\n");
    let err =
        lab.fails(&["slot", "remove", v, "--label", "carol", "--unlock-keyfile", &k1, "--unlock-keyfile", &k2], 10);
    assert_eq!(err, "callvault-keytool: wrong passphrase or keyfile\n");
    let log = lab.refused_mount(&["--keyfile", &k1, "--keyfile", &k2], 10);
    assert!(log.contains("wrong passphrase or keyfile"), "{log}");
    reads_back(&lab, &["--passphrase-file", &carol, "--keyfile", &k3], &data);

    let added = lab.key_admin("add-keyslot");
    assert_eq!(added.len(), 2);
    assert!(added.iter().all(|r| r["outcome"] == "ok" && labels(r) == ["alice"]), "{added:?}");
    let removed = lab.key_admin("remove-keyslot");
    assert_eq!((removed[0]["detail"]["label"].as_str(), removed[0]["detail"]["slot"].as_u64()), (Some("bob"), Some(1)));
    let failed = lab.records("unlock_failed");
    assert!(failed.iter().all(|r| r["detail"]["reason"] == "wrong passphrase or keyfile"), "{failed:?}");
    assert!(failed.len() >= 5, "{failed:?}");
    lab.assert_no_secret_leaked();
}

#[test]
fn weak_passphrases_are_refused_at_slot_add_and_the_refusal_is_journaled() {
    let lab = Lab::new();
    let v = lab.v();
    let alice = lab.vol.pass.to_str().unwrap().to_string();
    let by = ["--unlock-passphrase-file", alice.as_str()];
    for (text, rule) in [("Password1234", "rule: strength"), ("tulip83box", "rule: length")] {
        let weak = lab.secret("weak.pass", text);
        let err =
            lab.fails(&cat(&[&["slot", "add", v, "--label", "bob", "--passphrase-file", &weak], &KDF[..], &by]), 27);
        assert!(err.starts_with(&format!("callvault-keytool: passphrase refused ({rule})")), "{err}");
    }
    let refused = lab.key_admin("add-keyslot");
    assert_eq!(refused.len(), 2);
    for (r, rule) in refused.iter().zip(["rule: strength", "rule: length"]) {
        assert_eq!(r["outcome"], "EPERM");
        assert!(r["detail"]["reason"].as_str().unwrap().contains(rule), "{r}");
        assert_eq!(r["detail"]["label"], "bob");
    }
    let list = lab.ok(&["slot", "list", v]);
    assert!(!list.contains("bob"), "{list}");
    // Only with --allow-weak-passphrase, and then the waiver is recorded.
    let weak = lab.secret("weak2.pass", "Password1234");
    lab.ok(&cat(&[
        &["slot", "add", v, "--label", "bob", "--passphrase-file", &weak, "--allow-weak-passphrase"],
        &KDF[..],
        &by,
    ]));
    let added = lab.key_admin("add-keyslot");
    let waived = added.last().unwrap();
    assert_eq!(waived["outcome"], "ok");
    assert_eq!(waived["detail"]["reason"], "passphrase rule strength waived by --allow-weak-passphrase");
    lab.assert_no_secret_leaked();
}

#[test]
fn passwd_refuses_the_last_four_passphrases_and_accepts_the_fifth_previous() {
    let lab = Lab::new();
    let v = lab.v();
    let mut current = lab.vol.pass.to_str().unwrap().to_string();
    let original = current.clone();
    let next = [
        "amber glacier 58 tulip rocket",
        "silent ember 71 walnut comet",
        "rusty anchor 26 prism meadow",
        "frozen kettle 39 cobalt willow",
    ];
    let mut files = Vec::new();
    for (i, p) in next.iter().enumerate() {
        let new = lab.secret(&format!("p{i}.pass"), p);
        let out = lab.ok(&cat(&[
            &["passwd", v, "--label", "alice", "--passphrase-file", &current, "--new-passphrase-file", &new],
            &KDF[..],
        ]));
        assert_eq!(out, "changed the passphrase of keyslot 0 \"alice\"\n");
        files.push(new.clone());
        current = new;
    }
    // The last four (the current one included) are refused.
    for old in &files[..3] {
        let err = lab.fails(
            &cat(&[
                &["passwd", v, "--label", "alice", "--passphrase-file", &current, "--new-passphrase-file", old],
                &KDF[..],
            ]),
            27,
        );
        assert!(err.lines().any(|l| l.starts_with("callvault-keytool: passphrase refused (rule: history)")), "{err}");
    }
    // The old passphrase is no longer the current one.
    lab.fails(&["slot", "remove", v, "--label", "alice", "--unlock-passphrase-file", &original], 10);
    // The fifth-previous is accepted again.
    lab.ok(&cat(&[
        &["passwd", v, "--label", "alice", "--passphrase-file", &current, "--new-passphrase-file", &original],
        &KDF[..],
    ]));
    let m = lab.mounted(&["--passphrase-file", &original]);
    lab.unmount(m);
    let changes = lab.key_admin("passwd");
    let outcomes: Vec<&str> = changes.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["ok", "ok", "ok", "ok", "EPERM", "EPERM", "EPERM", "ok"]);
    assert!(changes[4]["detail"]["reason"].as_str().unwrap().contains("rule: history"));
    lab.assert_no_secret_leaked();
}

#[test]
fn a_no_self_change_slot_is_refused_passwd_and_reset_by_another_operator() {
    let lab = Lab::new();
    let v = lab.v();
    let alice = lab.vol.pass.to_str().unwrap().to_string();
    let bob = lab.secret("bob.pass", BOB);
    let bob2 = lab.secret("bob2.pass", "harvest lagoon 64 ivory beacon");
    let by_alice = ["--unlock-label", "alice", "--unlock-passphrase-file", alice.as_str()];
    let out = lab.ok(&cat(&[
        &["slot", "add", v, "--label", "bob", "--passphrase-file", &bob, "--no-self-change"],
        &KDF[..],
        &by_alice,
    ]));
    assert_eq!(out, "added keyslot 1 \"bob\" (passphrase, no-self-change)\n");
    assert!(lab.ok(&["slot", "list", v]).contains("no-self-change"));

    let err = lab.fails(
        &cat(&[&["passwd", v, "--label", "bob", "--passphrase-file", &bob, "--new-passphrase-file", &bob2], &KDF[..]]),
        28,
    );
    assert_eq!(
        err.lines().next().unwrap(),
        "callvault-keytool: passphrase changes for bob are reserved to an administrator"
    );
    let refused = lab.key_admin("passwd");
    assert_eq!((refused.len(), refused[0]["outcome"].as_str()), (1, Some("EPERM")));

    // Resetting with its own authority is passwd's job, and refused.
    let own = ["--unlock-label", "bob", "--unlock-passphrase-file", bob.as_str()];
    let err =
        lab.fails(&cat(&[&["slot", "reset", v, "--label", "bob", "--new-passphrase-file", &bob2], &KDF[..], &own]), 28);
    assert!(err.contains("on its own authority"), "{err}");
    lab.fails(&["slot", "flag", v, "--label", "bob", "--no-self-change", "off", "--unlock-passphrase-file", &bob], 28);

    let out =
        lab.ok(&cat(&[&["slot", "reset", v, "--label", "bob", "--new-passphrase-file", &bob2], &KDF[..], &by_alice]));
    assert_eq!(out, "reset keyslot 1 \"bob\" (passphrase)\n");
    lab.fails(&["slot", "flag", v, "--label", "alice", "--no-self-change", "on", "--unlock-passphrase-file", &bob], 10);
    let m = lab.mounted(&["--passphrase-file", &bob2, "--label", "bob"]);
    lab.unmount(m);
    let reset = lab.key_admin("reset-keyslot");
    let ok: Vec<_> = reset.iter().filter(|r| r["outcome"] == "ok").collect();
    assert_eq!(
        (ok.len(), labels(ok[0]), ok[0]["detail"]["label"].as_str()),
        (1, vec!["alice".to_string()], Some("bob"))
    );

    // Once the flag is cleared by alice, bob changes his own passphrase.
    let out =
        lab.ok(&["slot", "flag", v, "--label", "bob", "--no-self-change", "off", "--unlock-passphrase-file", &alice]);
    assert_eq!(out, "cleared no-self-change on keyslot 1 \"bob\"\n");
    let bob3 = lab.secret("bob3.pass", "gravel orchid 15 saffron tide");
    lab.ok(&cat(&[
        &["passwd", v, "--label", "bob", "--passphrase-file", &bob2, "--new-passphrase-file", &bob3],
        &KDF[..],
    ]));
    let cleared = lab.key_admin("clear-no-self-change");
    let outcomes: Vec<&str> = cleared.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["EPERM", "ok"], "by bob himself, then by alice");
    lab.assert_no_secret_leaked();
}

#[test]
fn two_of_three_dual_control_needs_two_operators_to_mount_and_to_disable() {
    let lab = Lab::new();
    let v = lab.v();
    let alice_file = lab.vol.pass.to_str().unwrap().to_string();
    let data = write_recording(&lab, &alice_file);
    let bob = lab.secret("bob.pass", BOB);
    let carol = lab.secret("carol.pass", CAROL);
    let by = ["--unlock-passphrase-file", alice_file.as_str()];
    lab.ok(&cat(&[&["slot", "add", v, "--label", "bob", "--passphrase-file", &bob], &KDF[..], &by]));
    lab.ok(&cat(&[&["slot", "add", v, "--label", "carol", "--passphrase-file", &carol], &KDF[..], &by]));
    let out = lab.ok(&[
        "dual-control",
        "enable",
        v,
        "--threshold",
        "2",
        "--labels",
        "alice,bob,carol",
        "--unlock-passphrase-file",
        &alice_file,
    ]);
    assert_eq!(out, "dual control enabled: 2 of alice, bob, carol must unlock together\n");
    let list = lab.ok(&["slot", "list", v]);
    assert!(list.lines().next().unwrap().ends_with("dual control 2 of alice, bob, carol"), "{list}");

    let alice = format!("alice={alice_file}");
    let bob_l = format!("bob={bob}");
    let log = lab.refused_mount(&["--passphrase-file", &alice], 29);
    assert!(log.contains("1 of the 2 operators needed"), "{log}");
    lab.refused_mount(&["--passphrase-file", &alice_file], 29);
    reads_back(&lab, &["--passphrase-file", &alice, "--passphrase-file", &bob_l], &data);
    let unlocks = lab.records("unlock");
    let last = unlocks.last().unwrap();
    assert_eq!(labels(last), ["alice", "bob"], "{last}");

    let err = lab.fails(&["dual-control", "disable", v, "--unlock-passphrase-file", &alice], 29);
    assert!(err.contains("1 of the 2 operators needed"), "{err}");
    // passwd under dual control: carol and one more.
    let carol2 = lab.secret("carol2.pass", "lunar thicket 47 pewter kite");
    let args = cat(&[
        &["passwd", v, "--label", "carol", "--passphrase-file", &carol, "--new-passphrase-file", &carol2],
        &KDF[..],
    ]);
    lab.fails(&cat(&[&args, &["--unlock-passphrase-file", "bob"]]), 2);
    lab.ok(&cat(&[&args, &["--unlock-passphrase-file", &bob_l]]));
    let carol_l = format!("carol={carol2}");
    let pw = lab.key_admin("passwd");
    assert_eq!(labels(pw.last().unwrap()), ["bob", "carol"]);

    let out = lab.ok(&[
        "dual-control",
        "disable",
        v,
        "--unlock-passphrase-file",
        &alice,
        "--unlock-passphrase-file",
        &carol_l,
    ]);
    assert_eq!(out, "dual control disabled: each keyslot unlocks alone again\n");
    reads_back(&lab, &["--passphrase-file", &alice_file], &data);
    let disabled = lab.key_admin("dual-control-disable");
    let outcomes: Vec<(&str, Vec<String>)> =
        disabled.iter().map(|r| (r["outcome"].as_str().unwrap(), labels(r))).collect();
    assert_eq!(outcomes, [("ok", vec!["alice".to_string(), "carol".to_string()])]);
    let enabled = lab.key_admin("dual-control-enable");
    assert_eq!(enabled[0]["detail"]["reason"], "threshold 2 of alice, bob, carol");
    lab.assert_no_secret_leaked();
}

#[test]
fn a_header_backup_brings_removed_slots_back_and_another_volumes_is_refused() {
    let lab = Lab::new();
    let v = lab.v();
    let alice = lab.vol.pass.to_str().unwrap().to_string();
    let data = write_recording(&lab, &alice);
    let bob = lab.secret("bob.pass", BOB);
    let by = ["--unlock-passphrase-file", alice.as_str()];
    lab.ok(&cat(&[&["slot", "add", v, "--label", "bob", "--passphrase-file", &bob], &KDF[..], &by]));
    let backup = lab.vol.dir.path().join("header.backup");
    let b = backup.to_str().unwrap();
    let out = lab.ok(&["header", "backup", v, b]);
    assert!(
        out.starts_with(&format!(
            "wrote a backup of the header of {v} (format 3, key generation 1, keyslots alice, bob)"
        )),
        "{out}"
    );
    assert_eq!(fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o400);
    assert_eq!(fs::read(&backup).unwrap(), fs::read(lab.vol.path.join("callvault.header")).unwrap());
    lab.fails(&["header", "backup", v, b], 1);

    lab.ok(&["slot", "remove", v, "--label", "bob", "--unlock-passphrase-file", &alice]);
    lab.refused_mount(&["--passphrase-file", &bob], 10);
    let err = lab.run(&["header", "restore", v, b, "--unlock-passphrase-file", &alice]);
    assert!(err.status.success(), "{}", String::from_utf8_lossy(&err.stderr));
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(stderr.contains("warning: keyslot(s) removed since this backup come back: bob"), "{stderr}");
    assert!(String::from_utf8_lossy(&err.stdout).starts_with("restored the header of"));
    reads_back(&lab, &["--passphrase-file", &bob], &data);

    // A backup of another volume is refused before any secret is asked for.
    let other = Lab::from(Volume::with_operator("alice", ALICE), &[ALICE]);
    let theirs = other.vol.dir.path().join("theirs.backup");
    other.ok(&["header", "backup", other.v(), theirs.to_str().unwrap()]);
    let err = lab.fails(&["header", "restore", v, theirs.to_str().unwrap(), "--unlock-passphrase-file", &alice], 28);
    assert!(err.contains("belongs to another volume"), "{err}");
    let restores = lab.key_admin("header-restore");
    let outcomes: Vec<&str> = restores.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["ok", "EPERM"]);
    assert!(restores[0]["detail"]["reason"].as_str().unwrap().contains("keyslots that come back: bob"));
    assert_eq!(lab.key_admin("header-backup").len(), 1);
    lab.assert_no_secret_leaked();
    other.assert_no_secret_leaked();
}

/// Overwrites 64 bytes in the middle of a header copy (an unused keyslot).
fn damage(path: &Path) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0x5a; 64], 3000).unwrap();
}

#[test]
fn a_damaged_first_copy_mounts_from_the_second_and_two_damaged_copies_are_named() {
    let lab = Lab::new();
    let v = lab.v();
    let alice = lab.vol.pass.to_str().unwrap().to_string();
    let data = write_recording(&lab, &alice);
    let backup = lab.vol.dir.path().join("header.backup");
    lab.ok(&["header", "backup", v, backup.to_str().unwrap()]);
    let first: PathBuf = lab.vol.path.join("callvault.header");
    damage(&first);
    let m = lab.mounted(&["--passphrase-file", &alice]);
    let log = m.log_text();
    assert!(log.contains("warning: volume header: damaged volume header"), "{log}");
    assert!(log.contains("callvault.header:"), "{log}");
    assert_eq!(fs::read(m.p("call-0001.wav")).unwrap(), data);
    lab.unmount(m);

    damage(&lab.vol.path.join("callvault.header.copy"));
    let log = lab.refused_mount(&["--passphrase-file", &alice], 13);
    assert!(log.contains("damaged volume header"), "{log}");
    assert!(!log.contains("wrong passphrase"), "{log}");
    let err = lab.fails(&["slot", "remove", v, "--label", "alice", "--unlock-passphrase-file", &alice], 13);
    assert!(err.starts_with("callvault-keytool: damaged volume header"), "{err}");

    // The backup repairs it.
    lab.ok(&["header", "restore", v, backup.to_str().unwrap(), "--unlock-passphrase-file", &alice]);
    let m = lab.mounted(&["--passphrase-file", &alice]);
    assert!(!m.log_text().contains("warning: volume header"), "{}", m.log_text());
    lab.unmount(m);
    lab.assert_no_secret_leaked();
}

#[test]
fn a_format_1_volume_is_upgraded_by_slot_add_and_both_slots_unlock() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/volumes");
    let old_pass = fs::read_to_string(fixtures.join("format-1.passphrase")).unwrap();
    let old_pass = old_pass.strip_suffix('\n').unwrap_or(&old_pass).to_string();
    let dir = tempfile::Builder::new().prefix("cv-test-").tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("vol");
    let cp = std::process::Command::new("cp").arg("-a").arg(fixtures.join("format-1")).arg(&path).status().unwrap();
    assert!(cp.success());
    let pass = dir.path().join("frozen.pass");
    fs::write(&pass, format!("{old_pass}\n")).unwrap();
    let lab = Lab::from(Volume { dir, path, pass }, &[&old_pass]);
    let v = lab.v();
    let old = lab.vol.pass.to_str().unwrap().to_string();
    assert!(lab.ok(&["slot", "list", v]).starts_with(&format!("volume {v}: format 1, key generation 1")));

    let bob = lab.secret("bob.pass", BOB);
    // The existing (weak) secret authorizes; only the new one meets the rules.
    let out = lab.ok(&cat(&[
        &["slot", "add", v, "--label", "bob", "--passphrase-file", &bob, "--unlock-passphrase-file", &old],
        &KDF[..],
    ]));
    assert_eq!(
        out,
        format!(
            "upgraded the header of {v} from format 1 to format 2 (keyslot 0 \"frozen-operator\")\nadded keyslot 1 \"bob\" (passphrase)\n"
        )
    );
    let list: serde_json::Value = serde_json::from_str(&lab.ok(&["slot", "list", v, "--format", "json"])).unwrap();
    assert_eq!(list["format"], 2);
    let names: Vec<&str> = list["slots"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(names, ["frozen-operator", "bob"]);
    assert!(lab.vol.path.join("callvault.header.copy").exists());
    for secrets in [["--passphrase-file", old.as_str()], ["--passphrase-file", bob.as_str()]] {
        let m = lab.mounted(&secrets);
        assert_eq!(fs::read(m.p("calls/call-0001.wav")).unwrap(), b"RIFF frozen recording of format 1\n");
        assert_eq!(fs::read(m.p("calls/screen.bin")).unwrap().len(), 5000);
        lab.unmount(m);
    }
    let upgrade = lab.key_admin("upgrade-header");
    assert_eq!(upgrade.len(), 1);
    assert_eq!(upgrade[0]["detail"]["label"], "frozen-operator");
    lab.assert_no_secret_leaked();
}

#[test]
fn the_sixth_failed_unlock_in_a_row_waits_and_says_so() {
    let lab = Lab::new();
    let v = lab.v();
    let wrong = lab.secret("wrong.pass", "cedar bramble 88 onyx drift");
    let args = ["slot", "remove", v, "--label", "alice", "--unlock-passphrase-file", wrong.as_str()];
    for _ in 0..5 {
        let err = lab.fails(&args, 10);
        assert!(!err.contains("waiting"), "{err}");
    }
    let err = lab.fails(&args, 10);
    assert!(
        err.contains("warning: 5 failed unlocks in a row on this volume: waiting")
            && err.contains("(each attempt now waits 1 s after the last failure)"),
        "{err}"
    );
    assert_eq!(lab.records("unlock_failed").len(), 6);
    // A success resets the count.
    let alice = lab.vol.pass.to_str().unwrap().to_string();
    lab.fails(&["slot", "remove", v, "--label", "alice", "--unlock-passphrase-file", &alice], 28);
    let err = lab.fails(&args, 10);
    assert!(!err.contains("waiting"), "{err}");
    lab.assert_no_secret_leaked();
}

/// A backup made before dual control was enabled cannot end it on one
/// operator's say: while the current header is readable, restoring needs its
/// authority (K operators) too.
#[test]
fn an_old_backup_alone_cannot_undo_dual_control() {
    let lab = Lab::new();
    let v = lab.v();
    let alice_file = lab.vol.pass.to_str().unwrap().to_string();
    let bob = lab.secret("bob.pass", BOB);
    let by = ["--unlock-passphrase-file", alice_file.as_str()];
    lab.ok(&cat(&[&["slot", "add", v, "--label", "bob", "--passphrase-file", &bob], &KDF[..], &by]));
    let backup = lab.vol.dir.path().join("before-dual.header");
    lab.ok(&["header", "backup", v, backup.to_str().unwrap()]);
    lab.ok(&[
        "dual-control",
        "enable",
        v,
        "--threshold",
        "2",
        "--labels",
        "alice,bob",
        "--unlock-passphrase-file",
        &alice_file,
    ]);
    let alice = format!("alice={alice_file}");
    let bob_l = format!("bob={bob}");
    let err = lab.fails(&["header", "restore", v, backup.to_str().unwrap(), "--unlock-passphrase-file", &alice], 29);
    assert!(err.contains("needs its operators' authority too"), "{err}");
    lab.refused_mount(&["--passphrase-file", &alice], 29);
    // With both operators, the restore is theirs to make (and says what changes).
    let out = lab.run(&[
        "header",
        "restore",
        v,
        backup.to_str().unwrap(),
        "--unlock-passphrase-file",
        &alice,
        "--unlock-passphrase-file",
        &bob_l,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("dual control with a threshold of 2, this backup has no dual control"), "{err}");
    lab.assert_no_secret_leaked();
}
