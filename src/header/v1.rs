//! Format-1 volume headers: read, unlocked and upgraded, never written by `init`.
//!
//! Made by callvault before labelled keyslots (one passphrase slot per
//! volume in practice). Fixed layout, little-endian:
//!
//! ```text
//! 0      8  magic "CALLVLT\0"
//! 8      2  format version (1)
//! 10     2  reserved (0)
//! 12     4  required feature flags (refused if unknown)
//! 16     4  optional feature flags (ignored if unknown)
//! 20    16  volume ID
//! 36     4  number of keyslots (16)
//! 40     8  creation time, Unix seconds
//! 48    16  reserved (0)
//! 64  4096  16 keyslots of 256 bytes
//! 4160  32  HMAC-SHA-256 over bytes 0..4160, key HKDF(master, "callvault v1 volume header mac")
//! ```
//!
//! Each keyslot wraps the master key directly under a key-encryption key
//! derived from its passphrase (Argon2id), with AES-256-GCM.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::path::Path;
use zeroize::Zeroizing;

use super::{damaged, header_mac, u16_at, u32_at, u64_at};
use crate::Error;
use crate::kdf::{KdfParams, ParamsProblem};
use crate::secret::{MASTER_KEY_LEN, MasterKey};

use super::{MAGIC, SlotCost, check_unlock_budget};

/// The version these headers carry.
pub const FORMAT_VERSION: u16 = 1;
/// Required feature flags format 1 knew (none).
pub const KNOWN_REQUIRED_FEATURES: u32 = 0;
pub const KEYSLOTS: usize = 16;
pub const KEYSLOT_LEN: usize = 256;
const SLOTS_AT: usize = 64;
const MAC_AT: usize = SLOTS_AT + KEYSLOTS * KEYSLOT_LEN;
/// Total header length in bytes.
pub const HEADER_LEN: usize = MAC_AT + 32;
pub const LABEL_LEN: usize = 64;

/// What unlocks a keyslot (format 1 knew only passphrases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Passphrase = 1,
}

/// One active format-1 keyslot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyslot {
    pub kind: SlotKind,
    pub kdf: KdfParams,
    pub nonce: [u8; 12],
    /// The master key under AES-256-GCM, followed by the 16-byte tag.
    pub wrapped: [u8; MASTER_KEY_LEN + 16],
    /// Who or what this slot is for (an operator name), UTF-8.
    pub label: String,
    pub created: u64,
}

/// The decoded volume header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Header {
    pub version: u16,
    pub required_features: u32,
    pub optional_features: u32,
    pub volume_id: [u8; 16],
    pub created: u64,
    pub slots: Vec<Option<Keyslot>>,
    /// The MAC as read; checked once a keyslot yields the master key.
    mac: [u8; 32],
}

impl V1Header {
    /// A header for a new volume with no keyslots yet.
    pub fn new(created: u64) -> Result<Self, Error> {
        Ok(V1Header {
            version: FORMAT_VERSION,
            required_features: 0,
            optional_features: 0,
            volume_id: crate::random::array()?,
            created,
            slots: vec![None; KEYSLOTS],
            mac: [0; 32],
        })
    }

    /// Parses header bytes; `path` is only used in error messages.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        if bytes.len() >= 8 && &bytes[..8] != MAGIC {
            if bytes.iter().all(|&b| b == 0) {
                return Err(damaged(path, format!("{} bytes, all zero", bytes.len())));
            }
            return Err(damaged(path, format!("bad magic {:02x?}", &bytes[..8])));
        }
        if bytes.len() >= 10 {
            let version = u16_at(bytes, 8);
            if version > FORMAT_VERSION {
                return Err(Error::FormatTooNew { found: version, max: FORMAT_VERSION });
            }
            if version == 0 {
                return Err(damaged(path, "format version 0"));
            }
        }
        if bytes.len() != HEADER_LEN {
            return Err(damaged(path, format!("{} bytes, expected {HEADER_LEN}", bytes.len())));
        }
        let required = u32_at(bytes, 12);
        if required & !KNOWN_REQUIRED_FEATURES != 0 {
            return Err(Error::UnknownFeatures { flags: required & !KNOWN_REQUIRED_FEATURES });
        }
        if u16_at(bytes, 10) != 0 {
            return Err(damaged(path, "reserved bytes 10..12 are not zero"));
        }
        if bytes[48..SLOTS_AT].iter().any(|&b| b != 0) {
            return Err(damaged(path, "reserved bytes 48..64 are not zero"));
        }
        let count = u32_at(bytes, 36) as usize;
        if count != KEYSLOTS {
            return Err(damaged(path, format!("keyslot count {count}, expected {KEYSLOTS}")));
        }
        let mut volume_id = [0u8; 16];
        volume_id.copy_from_slice(&bytes[20..36]);
        let mut slots = Vec::with_capacity(KEYSLOTS);
        for i in 0..KEYSLOTS {
            let at = SLOTS_AT + i * KEYSLOT_LEN;
            let slot = Keyslot::decode(&bytes[at..at + KEYSLOT_LEN]).map_err(|e| match e {
                SlotProblem::Damaged(what) => damaged(path, format!("keyslot {i}: {what}")),
                SlotProblem::OverLimit(kdf) => kdf.over_limit(i),
            })?;
            slots.push(slot);
        }
        check_unlock_budget(&slots)?;
        let mut mac = [0u8; 32];
        mac.copy_from_slice(&bytes[MAC_AT..HEADER_LEN]);
        Ok(V1Header {
            version: u16_at(bytes, 8),
            required_features: required,
            optional_features: u32_at(bytes, 16),
            volume_id,
            created: u64_at(bytes, 40),
            slots,
            mac,
        })
    }

    fn body(&self) -> Vec<u8> {
        let mut b = vec![0u8; MAC_AT];
        b[..8].copy_from_slice(MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.required_features.to_le_bytes());
        b[16..20].copy_from_slice(&self.optional_features.to_le_bytes());
        b[20..36].copy_from_slice(&self.volume_id);
        b[36..40].copy_from_slice(&(KEYSLOTS as u32).to_le_bytes());
        b[40..48].copy_from_slice(&self.created.to_le_bytes());
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(s) = slot {
                let at = SLOTS_AT + i * KEYSLOT_LEN;
                s.encode_into(&mut b[at..at + KEYSLOT_LEN]);
            }
        }
        b
    }

    /// Serialises the header, MAC'd under the volume's master key.
    pub fn encode(&self, master: &MasterKey) -> Vec<u8> {
        let mut b = self.body();
        let mac = header_mac(master, &b);
        b.extend_from_slice(&mac);
        b
    }

    /// Checks the stored MAC against the master key a keyslot yielded.
    pub fn verify_mac(&self, master: &MasterKey, path: &Path) -> Result<(), Error> {
        let mac = header_mac(master, &self.body());
        if crate::secret::ct_eq(&mac, &self.mac) {
            Ok(())
        } else {
            Err(Error::HeaderTampered { path: path.to_path_buf() })
        }
    }

    /// Associated data binding a wrapped key to its volume, slot and KDF settings.
    fn wrap_aad(&self, index: usize, slot: &Keyslot) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&self.volume_id);
        aad.push(index as u8);
        aad.push(slot.kind as u8);
        aad.extend_from_slice(&slot.kdf.memory_kib.to_le_bytes());
        aad.extend_from_slice(&slot.kdf.time_cost.to_le_bytes());
        aad.extend_from_slice(&slot.kdf.lanes.to_le_bytes());
        aad.extend_from_slice(&slot.kdf.salt);
        aad
    }

    /// Wraps `master` under `secret` into the first free keyslot; returns its index.
    pub fn add_passphrase_slot(
        &mut self,
        master: &MasterKey,
        secret: &[u8],
        kdf: KdfParams,
        label: &str,
        now: u64,
    ) -> Result<usize, Error> {
        if secret.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let index = self.slots.iter().position(Option::is_none).ok_or(Error::NoFreeKeyslot)?;
        // Never write a slot a reader would refuse, alone or with the others.
        kdf.check_slot(index)?;
        let mut with_new = self.slots.clone();
        with_new[index] = Some(Keyslot {
            kind: SlotKind::Passphrase,
            kdf,
            nonce: [0; 12],
            wrapped: [0; MASTER_KEY_LEN + 16],
            label: String::new(),
            created: now,
        });
        check_unlock_budget(&with_new)?;
        let mut slot = Keyslot {
            kind: SlotKind::Passphrase,
            kdf,
            nonce: crate::random::array()?,
            wrapped: [0; MASTER_KEY_LEN + 16],
            label: truncate_label(label),
            created: now,
        };
        let kek = kdf.derive(secret)?;
        let aad = self.wrap_aad(index, &slot);
        let cipher = Aes256Gcm::new(kek.expose_secret().into());
        // Copied straight into the wiped buffer (no stack temporary of the key).
        let mut buf = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        buf.copy_from_slice(master.expose_secret());
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(slot.nonce), &aad, buf.as_mut_slice().into())
            .map_err(|_| Error::Kdf("key wrapping failed".into()))?;
        slot.wrapped[..MASTER_KEY_LEN].copy_from_slice(&buf[..]);
        slot.wrapped[MASTER_KEY_LEN..].copy_from_slice(&tag);
        self.slots[index] = Some(slot);
        Ok(index)
    }

    /// Tries every passphrase keyslot with `secret`; on success returns the
    /// master key and the slot index. The header MAC is then verified.
    pub fn unlock(&self, secret: &[u8], path: &Path) -> Result<(MasterKey, usize), Error> {
        // decode already refused such headers; a header built in memory is
        // held to the same bounds before the first KDF runs.
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(s) = slot {
                s.kdf.check_slot(index)?;
            }
        }
        check_unlock_budget(&self.slots)?;
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let kek = slot.kdf.derive(secret)?;
            let aad = self.wrap_aad(index, slot);
            let cipher = Aes256Gcm::new(kek.expose_secret().into());
            let mut buf = Zeroizing::new([0u8; MASTER_KEY_LEN]);
            buf.copy_from_slice(&slot.wrapped[..MASTER_KEY_LEN]);
            let tag =
                Tag::try_from(&slot.wrapped[MASTER_KEY_LEN..]).map_err(|_| Error::WrongPassphrase { label: None })?;
            if cipher.decrypt_inout_detached(&Nonce::from(slot.nonce), &aad, buf.as_mut_slice().into(), &tag).is_ok() {
                let master = MasterKey::copy_from(&buf);
                self.verify_mac(&master, path)?;
                return Ok((master, index));
            }
        }
        Err(Error::WrongPassphrase { label: None })
    }

    /// Number of keyslots in use.
    pub fn active_slots(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

impl SlotCost for Keyslot {
    fn kdf_params(&self) -> &KdfParams {
        &self.kdf
    }
}

/// Why one keyslot does not decode.
enum SlotProblem {
    /// Not a keyslot this format can hold: the header is damaged.
    Damaged(String),
    /// A well-formed slot whose KDF cost is beyond the per-slot limits.
    OverLimit(KdfParams),
}

impl From<String> for SlotProblem {
    fn from(what: String) -> Self {
        SlotProblem::Damaged(what)
    }
}

fn truncate_label(label: &str) -> String {
    let mut end = label.len().min(LABEL_LEN);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    label[..end].to_string()
}

impl Keyslot {
    fn decode(b: &[u8]) -> Result<Option<Keyslot>, SlotProblem> {
        match b[0] {
            0 => {
                return if b.iter().all(|&x| x == 0) {
                    Ok(None)
                } else {
                    Err("empty slot holds data".to_string().into())
                };
            }
            1 => {}
            s => return Err(format!("unknown slot state {s}").into()),
        }
        let kind = match b[1] {
            1 => SlotKind::Passphrase,
            k => return Err(format!("unknown slot kind {k}").into()),
        };
        if b[2] != 1 {
            return Err(format!("unknown KDF {}", b[2]).into());
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&b[16..48]);
        let kdf = KdfParams { memory_kib: u32_at(b, 4), time_cost: u32_at(b, 8), lanes: u32_at(b, 12), salt };
        match kdf.check() {
            Ok(()) => {}
            Err(ParamsProblem::Malformed(what)) => return Err(what.into()),
            Err(ParamsProblem::OverLimit) => return Err(SlotProblem::OverLimit(kdf)),
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&b[48..60]);
        let mut wrapped = [0u8; MASTER_KEY_LEN + 16];
        wrapped.copy_from_slice(&b[60..140]);
        let label_bytes = &b[140..140 + LABEL_LEN];
        let end = label_bytes.iter().position(|&c| c == 0).unwrap_or(LABEL_LEN);
        let label = std::str::from_utf8(&label_bytes[..end]).map_err(|_| "label is not UTF-8".to_string())?;
        Ok(Some(Keyslot { kind, kdf, nonce, wrapped, label: label.to_string(), created: u64_at(b, 204) }))
    }

    fn encode_into(&self, b: &mut [u8]) {
        b[0] = 1;
        b[1] = self.kind as u8;
        b[2] = 1; // Argon2id, version 0x13
        b[4..8].copy_from_slice(&self.kdf.memory_kib.to_le_bytes());
        b[8..12].copy_from_slice(&self.kdf.time_cost.to_le_bytes());
        b[12..16].copy_from_slice(&self.kdf.lanes.to_le_bytes());
        b[16..48].copy_from_slice(&self.kdf.salt);
        b[48..60].copy_from_slice(&self.nonce);
        b[60..140].copy_from_slice(&self.wrapped);
        b[140..140 + self.label.len()].copy_from_slice(self.label.as_bytes());
        b[204..212].copy_from_slice(&self.created.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf;
    use std::time::Duration;

    fn new_header(pass: &[u8]) -> (V1Header, MasterKey, Vec<u8>) {
        let master = MasterKey::generate().unwrap();
        let mut h = V1Header::new(1_700_000_000).unwrap();
        let kdf = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        h.add_passphrase_slot(&master, pass, kdf, "operator-1", 1_700_000_000).unwrap();
        let bytes = h.encode(&master);
        (h, master, bytes)
    }

    #[test]
    fn unlock_round_trip_and_wrong_passphrase() {
        let (_, master, bytes) = new_header(b"correct horse battery 9");
        assert_eq!(bytes.len(), HEADER_LEN);
        let p = Path::new("v/callvault.header");
        let h = V1Header::decode(&bytes, p).unwrap();
        let (m, slot) = h.unlock(b"correct horse battery 9", p).unwrap();
        assert_eq!(slot, 0);
        assert_eq!(m.expose_secret(), master.expose_secret());
        assert!(matches!(h.unlock(b"wrong", p), Err(Error::WrongPassphrase { label: None })));
        assert_eq!(h.slots[0].as_ref().unwrap().label, "operator-1");
    }

    #[test]
    fn changed_header_bytes_are_detected() {
        let (_, _, bytes) = new_header(b"pass phrase 12345");
        let p = Path::new("h");
        // Flipping optional flags keeps it parseable: the MAC catches it.
        let mut b = bytes.clone();
        b[16] ^= 1;
        let h = V1Header::decode(&b, p).unwrap();
        assert!(matches!(h.unlock(b"pass phrase 12345", p), Err(Error::HeaderTampered { .. })));
        // A changed salt breaks the unwrap (bound as associated data).
        let mut b = bytes.clone();
        b[SLOTS_AT + 20] ^= 1;
        let h = V1Header::decode(&b, p).unwrap();
        assert!(matches!(h.unlock(b"pass phrase 12345", p), Err(Error::WrongPassphrase { label: None })));
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let (_, _, bytes) = new_header(b"pass phrase 12345");
        let p = Path::new("h");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "0 bytes"),
            (bytes[..100].to_vec(), "100 bytes"),
            (
                {
                    let mut b = bytes.clone();
                    b.push(0);
                    b
                },
                "expected",
            ),
            (vec![0u8; HEADER_LEN], "all zero"),
            (
                {
                    let mut b = bytes.clone();
                    b[0] = b'X';
                    b
                },
                "bad magic",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[36] = 3;
                    b
                },
                "keyslot count",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[SLOTS_AT] = 9;
                    b
                },
                "unknown slot state",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[SLOTS_AT + 4..SLOTS_AT + 8].copy_from_slice(&1023u32.to_le_bytes());
                    b
                },
                "out of range",
            ),
        ];
        for (b, want) in cases {
            let e = V1Header::decode(&b, p).unwrap_err();
            assert!(matches!(e, Error::HeaderDamaged { .. }), "{e}");
            assert!(e.to_string().contains(want), "{e} should mention {want}");
        }
        let mut b = bytes.clone();
        b[8] = 2;
        assert!(matches!(V1Header::decode(&b, p), Err(Error::FormatTooNew { .. })));
        let mut b = bytes;
        b[12] = 4;
        assert!(matches!(V1Header::decode(&b, p), Err(Error::UnknownFeatures { flags: 4 })));
    }

    #[test]
    fn slots_fill_up_and_each_opens_independently() {
        let master = MasterKey::generate().unwrap();
        let mut h = V1Header::new(0).unwrap();
        let kdf = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        for i in 0..KEYSLOTS {
            assert_eq!(h.add_passphrase_slot(&master, format!("pass-{i}").as_bytes(), kdf, "", 0).unwrap(), i);
        }
        assert!(matches!(h.add_passphrase_slot(&master, b"x", kdf, "", 0), Err(Error::NoFreeKeyslot)));
        let bytes = h.encode(&master);
        let h = V1Header::decode(&bytes, Path::new("h")).unwrap();
        assert_eq!(h.unlock(b"pass-5", Path::new("h")).unwrap().1, 5);
    }

    /// Sets slot `i`'s stored Argon2 memory (KiB) and passes in header bytes.
    fn set_cost(b: &mut [u8], i: usize, memory_kib: u32, time_cost: u32) {
        let at = SLOTS_AT + i * KEYSLOT_LEN;
        b[at + 4..at + 8].copy_from_slice(&memory_kib.to_le_bytes());
        b[at + 8..at + 12].copy_from_slice(&time_cost.to_le_bytes());
    }

    #[test]
    fn hostile_slot_costs_are_refused_before_any_kdf_runs() {
        let (_, _, bytes) = new_header(b"pass phrase 12345");
        let p = Path::new("h");
        let over = kdf::MAX_SLOT_WORK / u64::from(kdf::MAX_MEMORY_KIB) + 1;
        for (memory_kib, time_cost) in [
            (kdf::MAX_MEMORY_KIB + 1, 1),              // memory over its cap
            (u32::MAX, 1),                             // the hours-long header of the issue
            (1024, kdf::MAX_TIME_COST + 1),            // passes over their cap
            (kdf::MAX_MEMORY_KIB, kdf::MAX_TIME_COST), // 4 GiB x 1000 passes
            (kdf::MAX_MEMORY_KIB, over as u32),        // each within its cap, work over
        ] {
            let mut b = bytes.clone();
            set_cost(&mut b, 0, memory_kib, time_cost);
            match V1Header::decode(&b, p) {
                Err(Error::KdfOverLimit { slot: 0, memory_kib: m, time_cost: t }) => {
                    assert_eq!((m, t), (memory_kib, time_cost));
                }
                other => panic!("{memory_kib} KiB x {time_cost}: {:?}", other.map(|_| ())),
            }
        }
        let mut b = bytes;
        set_cost(&mut b, 0, kdf::MAX_MEMORY_KIB, 1000);
        let e = V1Header::decode(&b, p).expect_err("refused").to_string();
        assert!(e.starts_with("keyslot 0 asks for Argon2id 4194304 KiB x 1000 passes"), "{e}");
    }

    #[test]
    fn total_work_over_the_unlock_budget_is_refused_naming_the_slot() {
        let master = MasterKey::generate().unwrap();
        let mut h = V1Header::new(0).unwrap();
        let kdf = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        for i in 0..KEYSLOTS {
            h.add_passphrase_slot(&master, format!("pass-{i}").as_bytes(), kdf, "", 0).unwrap();
        }
        let mut b = h.encode(&master);
        // Each slot alone is within its limits (4 GiB x 1 pass), but a wrong
        // passphrase would try all 16: 64 GiB-passes against a 32 budget.
        for i in 0..KEYSLOTS {
            set_cost(&mut b, i, kdf::MAX_MEMORY_KIB, 1);
        }
        let per = u64::from(kdf::MAX_MEMORY_KIB);
        let slot = (kdf::MAX_UNLOCK_WORK / per) as usize; // first slot past the budget
        match V1Header::decode(&b, Path::new("h")) {
            Err(Error::KdfBudgetExceeded { slot: s, total, budget }) => {
                assert_eq!((s, total, budget), (slot, per * (slot as u64 + 1), kdf::MAX_UNLOCK_WORK));
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        // A header built in memory is held to the same bound by unlock.
        for s in h.slots.iter_mut().flatten() {
            s.kdf.memory_kib = kdf::MAX_MEMORY_KIB;
        }
        assert!(matches!(h.unlock(b"pass-15", Path::new("h")), Err(Error::KdfBudgetExceeded { .. })));
        h.slots[3].as_mut().unwrap().kdf.time_cost = kdf::MAX_TIME_COST;
        assert!(matches!(h.unlock(b"pass-15", Path::new("h")), Err(Error::KdfOverLimit { slot: 3, .. })));
    }

    #[test]
    fn adding_a_slot_never_writes_a_header_a_reader_refuses() {
        let master = MasterKey::generate().unwrap();
        let mut h = V1Header::new(0).unwrap();
        let mut big = KdfParams::calibrate(1, Duration::ZERO).unwrap();
        big.memory_kib = kdf::MAX_MEMORY_KIB;
        big.time_cost = kdf::MAX_TIME_COST;
        assert!(matches!(h.add_passphrase_slot(&master, b"x", big, "", 0), Err(Error::KdfOverLimit { slot: 0, .. })));
        // Fill the budget with slots in memory (no KDF needed to check it).
        let mut cheap = big;
        cheap.time_cost = 1;
        let slot = Keyslot {
            kind: SlotKind::Passphrase,
            kdf: cheap,
            nonce: [0; 12],
            wrapped: [0; MASTER_KEY_LEN + 16],
            label: String::new(),
            created: 0,
        };
        let fit = (kdf::MAX_UNLOCK_WORK / u64::from(kdf::MAX_MEMORY_KIB)) as usize;
        for i in 0..fit {
            h.slots[i] = Some(slot.clone());
        }
        let e = h.add_passphrase_slot(&master, b"x", cheap, "", 0).expect_err("over budget");
        assert!(matches!(e, Error::KdfBudgetExceeded { slot, .. } if slot == fit), "{e}");
        assert!(h.slots[fit].is_none());
    }
}
