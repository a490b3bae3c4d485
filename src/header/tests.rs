//! Format-2 header: slots of each kind, labels, history, dual control, rotation, damage.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::keyfiles::digest_keyfiles;
use crate::secret::Passphrase;

fn kdf() -> KdfParams {
    KdfParams::calibrate(1, Duration::ZERO).unwrap()
}

fn pass(p: &str) -> Credentials {
    Credentials::passphrase(Passphrase::new(p.as_bytes().to_vec())).unwrap()
}

fn p() -> &'static Path {
    Path::new("v/callvault.header")
}

fn slot<'a>(label: &'a str, creds: &'a Credentials) -> NewSlot<'a> {
    NewSlot { label, creds, kdf: kdf(), no_self_change: false }
}

/// A header with slots alice (passphrase), bob (passphrase), carol (passphrase).
fn three() -> (VolumeHeader, MasterKey) {
    let master = MasterKey::generate().unwrap();
    let mut h = VolumeHeader::new(1).unwrap();
    for (l, s) in [("alice", "alice secret 1"), ("bob", "bob secret 22"), ("carol", "carol secret 333")] {
        h.add_slot(&master, slot(l, &pass(s)), 2).unwrap();
    }
    (h, master)
}

fn reread(h: &VolumeHeader, master: &MasterKey) -> VolumeHeader {
    let bytes = h.encode(master);
    assert_eq!(bytes.len(), HEADER_LEN);
    match decode(&bytes, p()).unwrap() {
        AnyHeader::V2(h) => h,
        AnyHeader::V1(_) => panic!("wrote format 1"),
    }
}

#[test]
fn each_slot_unlocks_by_kind_or_label_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let k1 = t.path().join("k1");
    let k2 = t.path().join("k2");
    std::fs::write(&k1, b"usb stick key one").unwrap();
    std::fs::write(&k2, b"usb stick key two").unwrap();
    let files = || Some(digest_keyfiles(&[k1.clone(), k2.clone()]).unwrap());
    let master = MasterKey::generate().unwrap();
    let mut h = VolumeHeader::new(1).unwrap();
    let by_pass = pass("passphrase slot 1");
    let by_file = Credentials::new(None, files()).unwrap();
    let both = Credentials::new(Some(Passphrase::new(b"and a keyfile 2".to_vec())), files()).unwrap();
    h.add_slot(&master, slot("ops-pass", &by_pass), 5).unwrap();
    h.add_slot(&master, slot("ops-file", &by_file), 5).unwrap();
    h.add_slot(&master, slot("ops-both", &both), 5).unwrap();
    let h = reread(&h, &master);
    assert_eq!(h.labels(), ["ops-pass", "ops-file", "ops-both"]);
    let kinds: Vec<_> = h.slots.iter().flatten().map(|s| s.kind).collect();
    assert_eq!(kinds, [SlotKind::Passphrase, SlotKind::Keyfile, SlotKind::PassphraseAndKeyfile]);
    for (creds, want) in [(&by_pass, 0), (&by_file, 1), (&both, 2)] {
        let o = h.unlock(creds, None, p()).unwrap();
        assert_eq!((o.master.expose_secret(), o.slots), (master.expose_secret(), vec![want]));
    }
    // Order of keyfiles does not matter; the passphrase alone does not open the both-slot.
    let swapped = Credentials::new(None, Some(digest_keyfiles(&[k2.clone(), k1.clone()]).unwrap())).unwrap();
    assert_eq!(h.unlock(&swapped, None, p()).unwrap().slots, [1]);
    let half = pass("and a keyfile 2");
    assert!(matches!(h.unlock(&half, None, p()), Err(Error::WrongPassphrase { label: None })));
    // By label: only that slot is tried.
    assert!(matches!(
        h.unlock(&by_pass, Some("ops-file"), p()),
        Err(Error::WrongPassphrase { label: Some(l) }) if l == "ops-file"
    ));
    assert_eq!(h.unlock(&by_pass, Some("OPS-PASS"), p()).unwrap().slots, [0]);
    assert!(matches!(h.unlock(&by_pass, Some("nobody"), p()), Err(Error::UnknownLabel { .. })));
    // One changed byte in a keyfile: refused.
    std::fs::write(&k2, b"usb stick key twO").unwrap();
    assert!(matches!(
        h.unlock(&Credentials::new(None, files()).unwrap(), None, p()),
        Err(Error::WrongPassphrase { .. })
    ));
}

#[test]
fn labels_are_checked_and_unique() {
    let (mut h, m) = three();
    for bad in ["", "-rf", "has space", "ünïcode", &"x".repeat(65)] {
        assert!(
            matches!(h.add_slot(&m, slot(bad, &pass("some secret 9")), 3), Err(Error::InvalidLabel { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(h.add_slot(&m, slot("Alice", &pass("some secret 9")), 3), Err(Error::DuplicateLabel { .. })));
    assert_eq!(h.active_slots(), 3);
}

#[test]
fn removed_slot_no_longer_unlocks_and_the_last_one_stays() {
    let (mut h, m) = three();
    h.remove_slot(&m, "bob").unwrap();
    let h2 = reread(&h, &m);
    assert!(matches!(h2.unlock(&pass("bob secret 22"), None, p()), Err(Error::WrongPassphrase { .. })));
    assert!(h2.unlock(&pass("alice secret 1"), None, p()).is_ok());
    assert!(h2.unlock(&pass("carol secret 333"), None, p()).is_ok());
    h.remove_slot(&m, "alice").unwrap();
    assert!(matches!(h.remove_slot(&m, "carol"), Err(Error::LastSlot { .. })));
    assert!(matches!(h.remove_slot(&m, "bob"), Err(Error::UnknownLabel { .. })));
}

#[test]
fn own_change_needs_the_current_secret_respects_the_flag_and_history() {
    let (mut h, m) = three();
    let (cur, new) = (pass("alice secret 1"), pass("alice second 2"));
    assert!(matches!(
        h.change_own("alice", &pass("wrong one"), &new, kdf(), 9, p()),
        Err(Error::WrongPassphrase { .. })
    ));
    h.change_own("alice", &cur, &new, kdf(), 9, p()).unwrap();
    let h2 = reread(&h, &m);
    assert!(h2.unlock(&new, Some("alice"), p()).is_ok());
    assert!(matches!(h2.unlock(&cur, Some("alice"), p()), Err(Error::WrongPassphrase { .. })));
    assert_eq!(h2.slots[0].as_ref().unwrap().changed, 9);
    // Back to the first: it is one of the last four.
    assert!(matches!(h.change_own("alice", &new, &cur, kdf(), 10, p()), Err(Error::PassphraseReused { kept: 4, .. })));
    // Four newer ones push the first out of the history.
    let mut now = new;
    for i in 3..7 {
        let next = pass(&format!("alice pass {i}{i}"));
        h.change_own("alice", &now, &next, kdf(), 10, p()).unwrap();
        now = next;
    }
    assert_eq!(h.slots[0].as_ref().unwrap().history.len(), HISTORY);
    h.change_own("alice", &now, &cur, kdf(), 11, p()).unwrap();
    // No self-change: only a reset by another slot's authority.
    h.set_no_self_change("bob", true).unwrap();
    let h = reread(&h, &m);
    assert!(h.slots[1].as_ref().unwrap().no_self_change());
    let mut h = h;
    let e = h.change_own("bob", &pass("bob secret 22"), &pass("bob second 22"), kdf(), 12, p()).unwrap_err();
    assert_eq!(e.to_string().lines().next().unwrap(), "passphrase changes for bob are reserved to an administrator");
    h.reset_slot(&m, "bob", &pass("bob reset by admin 5"), kdf(), 13).unwrap();
    let h = reread(&h, &m);
    assert!(h.unlock(&pass("bob reset by admin 5"), None, p()).is_ok());
    assert!(matches!(h.unlock(&pass("bob secret 22"), None, p()), Err(Error::WrongPassphrase { .. })));
}

#[test]
fn dual_control_needs_k_distinct_operators() {
    let (mut h, m) = three();
    let all = ["alice".to_string(), "bob".to_string(), "carol".to_string()];
    assert!(
        matches!(h.enable_dual_control(&m, 2, &all[..2]), Err(Error::DualControlOperators { .. })),
        "carol unnamed"
    );
    assert!(matches!(h.enable_dual_control(&m, 1, &all), Err(Error::DualControlOperators { .. })));
    assert!(matches!(h.enable_dual_control(&m, 4, &all), Err(Error::DualControlOperators { .. })));
    h.enable_dual_control(&m, 2, &all).unwrap();
    let h2 = reread(&h, &m);
    let (a, b, c) = (pass("alice secret 1"), pass("bob secret 22"), pass("carol secret 333"));
    assert!(matches!(h2.unlock(&a, None, p()), Err(Error::DualControlRequired { threshold: 2, .. })));
    let one = [("alice".to_string(), &a)];
    assert!(matches!(h2.unlock_labelled(&one, p()), Err(Error::NotEnoughOperators { .. })));
    let twice = [("alice".to_string(), &a), ("Alice".to_string(), &a)];
    assert!(matches!(h2.unlock_labelled(&twice, p()), Err(Error::DualControlOperators { .. })));
    let wrong = [("alice".to_string(), &a), ("bob".to_string(), &c)];
    assert!(matches!(h2.unlock_labelled(&wrong, p()), Err(Error::WrongPassphrase { label: Some(l) }) if l == "bob"));
    for pair in [[("alice", &a), ("bob", &b)], [("carol", &c), ("alice", &a)], [("bob", &b), ("carol", &c)]] {
        let ops: Vec<_> = pair.iter().map(|(l, c)| (l.to_string(), *c)).collect();
        let o = h2.unlock_labelled(&ops, p()).unwrap();
        assert_eq!(o.master.expose_secret(), m.expose_secret());
    }
    // A removed operator's share is of a group key that no longer exists.
    let old_bob = h2.slots[1].clone();
    h.remove_slot(&m, "carol").unwrap();
    assert!(matches!(h.remove_slot(&m, "bob"), Err(Error::DualControlOperators { .. })));
    let mut h3 = reread(&h, &m);
    h3.slots[2] = None;
    h3.slots[1] = old_bob;
    let ops = [("alice".to_string(), &a), ("bob".to_string(), &b)];
    assert!(h3.unlock_labelled(&ops, p()).is_err(), "a share from before the removal");
    // Disable: each unlocks alone again.
    h.disable_dual_control(&m).unwrap();
    let h4 = reread(&h, &m);
    assert!(h4.unlock(&b, None, p()).is_ok());
}

#[test]
fn rotation_keeps_both_keys_until_finished_and_bumps_the_generation() {
    let (mut h, old) = three();
    let new = MasterKey::generate().unwrap();
    h.begin_rotation(&old, &new).unwrap();
    assert!(matches!(h.begin_rotation(&old, &new), Err(Error::RotationInProgress)));
    let h2 = reread(&h, &new);
    assert_eq!(h2.generation, 2);
    assert!(h2.rotating());
    let o = h2.unlock(&pass("bob secret 22"), None, p()).unwrap();
    assert_eq!(o.master.expose_secret(), new.expose_secret());
    let prev = h2.previous_master(&o.master, p()).unwrap().unwrap();
    assert_eq!(prev.expose_secret(), old.expose_secret());
    h.finish_rotation();
    let h3 = reread(&h, &new);
    assert!(!h3.rotating() && h3.previous_master(&new, p()).unwrap().is_none());
    // The old master's MAC no longer matches.
    assert!(matches!(h3.verify_mac(&old, p()), Err(Error::HeaderTampered { .. })));
}

#[test]
fn damage_is_told_apart_from_a_wrong_secret() {
    let (h, m) = three();
    let bytes = h.encode(&m);
    let cases: Vec<(usize, u8, &str)> = vec![
        (36, 3, "keyslot count"),
        (56, 0, "key generation 0"),
        (61, 0x80, "state flags"),
        (SLOTS_AT, 9, "unknown slot state"),
        (SLOTS_AT + 1, 7, "unknown slot kind"),
        (SLOTS_AT + 3, 0x40, "slot flags"),
        (SLOTS_AT + 140, 9, "payload kind"),
        (SLOTS_AT + 141, 200, "payload length"),
        (SLOTS_AT + 368, 9, "history"),
        (SLOTS_AT + 2 * KEYSLOT_LEN + 376 + 2 * 64, 1, "history"),
        (GROUP_AT + 3, 1, "dual-control threshold"),
        (ROTATION_AT + 3, 1, "rotation flag"),
        (SLOTS_AT + KEYSLOT_LEN + 300, 0, "label"),
    ];
    for (at, value, want) in cases {
        let mut b = bytes.clone();
        b[at] = value;
        if at == SLOTS_AT + KEYSLOT_LEN + 300 {
            // A NUL inside the label, text after it.
            b[at] = 0;
            b[at + 1] = b'x';
        }
        let e = decode(&b, p()).expect_err(want);
        assert!(matches!(e, Error::HeaderDamaged { .. }), "{want}: {e}");
        assert!(e.to_string().contains(want), "{e} should mention {want}");
    }
    // Bytes that parse but were changed: the MAC catches them once a slot opens.
    let mut b = bytes.clone();
    b[16] ^= 1;
    let AnyHeader::V2(h2) = decode(&b, p()).unwrap() else { panic!() };
    assert!(matches!(h2.unlock(&pass("alice secret 1"), None, p()), Err(Error::HeaderTampered { .. })));
    // A payload swapped between slots opens under neither: tampered, not a wrong passphrase.
    let mut b = bytes.clone();
    let (a, c) = (SLOTS_AT + 144, SLOTS_AT + 2 * KEYSLOT_LEN + 144);
    let tmp = b[a..a + 144].to_vec();
    b.copy_within(c..c + 144, a);
    b[c..c + 144].copy_from_slice(&tmp);
    let AnyHeader::V2(h2) = decode(&b, p()).unwrap() else { panic!() };
    assert!(matches!(h2.unlock(&pass("alice secret 1"), None, p()), Err(Error::HeaderTampered { .. })));
    assert!(matches!(decode(&bytes[..100], p()), Err(Error::HeaderDamaged { .. })));
    let mut b = bytes.clone();
    b[8] = 4;
    assert!(matches!(decode(&b, p()), Err(Error::FormatTooNew { found: 4, max: 3 })));
    // Version and the sector-tags bit must agree: turning tags off (or on)
    // by editing either is damage, before any MAC is checked.
    let mut b = bytes.clone();
    let tagged = b[12] & 1 != 0;
    b[8] = if tagged { 2 } else { 3 };
    assert!(matches!(decode(&b, p()), Err(Error::HeaderDamaged { .. })), "version alone changed");
    let mut b = bytes;
    b[12] ^= 1;
    assert!(matches!(decode(&b, p()), Err(Error::HeaderDamaged { .. })), "tags bit alone changed");
}

#[test]
fn hostile_costs_are_refused_before_any_kdf_runs() {
    let (h, m) = three();
    let mut b = h.encode(&m);
    let at = SLOTS_AT + 4;
    b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode(&b, p()), Err(Error::KdfOverLimit { slot: 0, .. })));
}

#[test]
fn a_format_1_header_is_read_and_upgraded_with_its_identity() {
    let m = MasterKey::generate().unwrap();
    let mut old = v1::V1Header::new(77).unwrap();
    old.add_passphrase_slot(&m, b"format one pass 1", kdf(), "initial", 77).unwrap();
    let AnyHeader::V1(v1h) = decode(&old.encode(&m), p()).unwrap() else { panic!("not v1") };
    let (master, slot) = v1h.unlock(b"format one pass 1", p()).unwrap();
    assert_eq!((master.expose_secret(), slot), (m.expose_secret(), 0));
    let creds = pass("format one pass 1");
    let up = VolumeHeader::from_v1(&v1h, &master, slot_for(&creds), 80).unwrap();
    let up = reread(&up, &master);
    assert_eq!((up.volume_id, up.created, up.generation), (v1h.volume_id, 77, 1));
    assert_eq!(up.unlock(&creds, None, p()).unwrap().master.expose_secret(), m.expose_secret());
}

fn slot_for(creds: &Credentials) -> NewSlot<'_> {
    NewSlot { label: "initial", creds, kdf: kdf(), no_self_change: false }
}

#[test]
fn history_is_checked_at_its_own_cost_when_the_slots_cost_changes() {
    let (mut h, m) = three();
    let (first, second) = (pass("alice secret 1"), pass("alice second 2"));
    // A passwd calibrated to another pass count (as --kdf-time gives from run to run).
    let mut costlier = kdf();
    costlier.time_cost = 3;
    costlier.salt = crate::random::array().unwrap();
    h.change_own("alice", &first, &second, costlier, 9, p()).unwrap();
    let h2 = reread(&h, &m);
    let slot = h2.slots[0].as_ref().unwrap();
    assert_eq!((slot.kdf.time_cost, slot.history_kdf.unwrap().time_cost), (3, 1));
    let mut h2 = h2;
    assert!(matches!(h2.change_own("alice", &second, &first, kdf(), 10, p()), Err(Error::PassphraseReused { .. })));
}
