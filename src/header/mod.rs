//! The volume header: format version, keyslots, dual control, rotation state, and a MAC.
//!
//! Formats 2 and 3 share one fixed layout, little-endian (worked sizes in
//! docs/FORMAT.md); format 3 is format 2 with the required feature
//! [`FEATURE_SECTOR_TAGS`], and the version says so too, so that no build
//! that predates tags opens such a volume and reads it unchecked:
//!
//! ```text
//! 0       8  magic "CALLVLT\0"
//! 8       2  format version (2, or 3 with sector tags)
//! 10      2  reserved (0)
//! 12      4  required feature flags (refused if unknown)
//! 16      4  optional feature flags (ignored if unknown)
//! 20     16  volume ID
//! 36      4  number of keyslots (16)
//! 40      8  creation time, Unix seconds
//! 48      8  write sequence: +1 on every write; the newer of the two copies wins
//! 56      4  key generation: 1 at init, +1 when a key rotation begins
//! 60      1  dual-control threshold K (0 = off)
//! 61      1  state flags: bit 0 = key rotation in progress
//! 62      2  reserved (0)
//! 64  10240  16 keyslots of 640 bytes (slot.rs)
//! 10304  96  dual control: nonce 12, master key under AES-256-GCM with the group key (64 + 16), 4 reserved
//! 10400  96  rotation: nonce 12, the previous master key under AES-256-GCM (64 + 16), 4 reserved
//! 10496  32  HMAC-SHA-256 over bytes 0..10496, key HKDF(master, "callvault v1 volume header mac")
//! ```
//!
//! Each keyslot holds an X25519 key pair: the private key wrapped under a
//! key-encryption key Argon2id derives from the slot's passphrase and/or
//! keyfiles, and a payload sealed to the public key: the master key, or
//! under dual control the slot's Shamir share of a group key that wraps the
//! master key. Anyone holding the master key can seal new payloads to every
//! slot without the slots' secrets (rotation, dual control, resets); only a
//! slot's own secret opens what is sealed to it.
//!
//! Format-1 headers (one passphrase slot wrapping the master key directly)
//! are still read and unlocked ([`v1`]); the first command that changes
//! keys writes the volume's header as format 2.

mod credentials;
mod seal;
mod slot;
pub mod v1;

#[cfg(test)]
mod tests;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

pub use credentials::{Credentials, SlotKind};
pub use slot::{FLAG_NO_SELF_CHANGE, HISTORY, KEYSLOT_LEN, Keyslot, LABEL_LEN, PayloadKind, validate_label};

use crate::Error;
use crate::kdf::{self, KdfParams};
use crate::keys::{LABEL_VOLUME_HEADER_MAC, derive32};
use crate::layout::Layout;
use crate::secret::{MASTER_KEY_LEN, MasterKey};
use crate::shamir::{self, Share};
use slot::SlotProblem;

pub const MAGIC: &[u8; 8] = b"CALLVLT\0";
/// The newest format version this build reads (and writes for new volumes).
pub const FORMAT_VERSION: u16 = 3;
/// Required feature: every data sector carries a tag and every file header
/// a name binding (format 3; [`crate::layout::Layout::Tagged`]).
pub const FEATURE_SECTOR_TAGS: u32 = 1;
/// Required feature flags this build understands.
pub const KNOWN_REQUIRED_FEATURES: u32 = FEATURE_SECTOR_TAGS;
pub const KEYSLOTS: usize = 16;
const SLOTS_AT: usize = 64;
const GROUP_AT: usize = SLOTS_AT + KEYSLOTS * KEYSLOT_LEN;
const ROTATION_AT: usize = GROUP_AT + 96;
const MAC_AT: usize = ROTATION_AT + 96;
/// Total format-2 header length in bytes.
pub const HEADER_LEN: usize = MAC_AT + 32;
/// The longest header of any version this build reads.
pub const MAX_HEADER_LEN: usize = HEADER_LEN;
const STATE_ROTATING: u8 = 1;
/// Info for the key that wraps the previous master key during a rotation.
const LABEL_ROTATION_PREVIOUS: &[u8] = b"callvault v2 rotation previous master key";
const SHARE_LEN: usize = 33;

/// The master key wrapped under a 256-bit key with AES-256-GCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    nonce: [u8; 12],
    wrapped: [u8; MASTER_KEY_LEN + 16],
}

impl WrappedKey {
    fn seal(key: &[u8; 32], master: &MasterKey, aad: &[u8]) -> Result<WrappedKey, Error> {
        let mut w = WrappedKey { nonce: crate::random::array()?, wrapped: [0; MASTER_KEY_LEN + 16] };
        let mut buf = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        buf.copy_from_slice(master.expose_secret());
        let tag = Aes256Gcm::new(key.into())
            .encrypt_inout_detached(&Nonce::from(w.nonce), aad, buf.as_mut_slice().into())
            .map_err(|_| Error::Kdf("key wrapping failed".into()))?;
        w.wrapped[..MASTER_KEY_LEN].copy_from_slice(&buf[..]);
        w.wrapped[MASTER_KEY_LEN..].copy_from_slice(&tag);
        Ok(w)
    }

    fn open(&self, key: &[u8; 32], aad: &[u8]) -> Option<MasterKey> {
        let mut buf = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        buf.copy_from_slice(&self.wrapped[..MASTER_KEY_LEN]);
        let tag = Tag::try_from(&self.wrapped[MASTER_KEY_LEN..]).ok()?;
        Aes256Gcm::new(key.into())
            .decrypt_inout_detached(&Nonce::from(self.nonce), aad, buf.as_mut_slice().into(), &tag)
            .ok()?;
        Some(MasterKey::copy_from(&buf))
    }

    fn decode(b: &[u8]) -> Result<Option<WrappedKey>, String> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if b[92..96].iter().any(|&x| x != 0) {
            return Err("reserved bytes are not zero".into());
        }
        let mut w = WrappedKey { nonce: [0; 12], wrapped: [0; MASTER_KEY_LEN + 16] };
        w.nonce.copy_from_slice(&b[..12]);
        w.wrapped.copy_from_slice(&b[12..92]);
        Ok(Some(w))
    }

    fn encode_into(&self, b: &mut [u8]) {
        b[..12].copy_from_slice(&self.nonce);
        b[12..92].copy_from_slice(&self.wrapped);
    }
}

/// Dual control: K of the slots' shares rebuild the group key, which
/// unwraps the master key. Every active slot holds a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DualControl {
    pub threshold: u8,
    group: WrappedKey,
}

/// The decoded format-2 volume header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeHeader {
    pub required_features: u32,
    pub optional_features: u32,
    pub volume_id: [u8; 16],
    pub created: u64,
    pub write_seq: u64,
    pub generation: u32,
    pub slots: Vec<Option<Keyslot>>,
    pub dual: Option<DualControl>,
    /// Set while a key rotation is in progress: the previous master key,
    /// wrapped under a key derived from the current one.
    rotation: Option<WrappedKey>,
    /// The MAC as read; checked once the master key is known.
    mac: [u8; 32],
}

/// A header of either version, as read from disk.
#[derive(Debug, Clone)]
pub enum AnyHeader {
    V1(v1::V1Header),
    V2(VolumeHeader),
}

impl AnyHeader {
    pub fn version(&self) -> u16 {
        match self {
            AnyHeader::V1(_) => 1,
            AnyHeader::V2(h) => h.version(),
        }
    }
    /// Where the volume's files keep their sectors (and tags).
    pub fn layout(&self) -> Layout {
        match self {
            AnyHeader::V1(_) => Layout::Plain,
            AnyHeader::V2(h) => h.layout(),
        }
    }
    pub fn write_seq(&self) -> u64 {
        match self {
            AnyHeader::V1(_) => 0,
            AnyHeader::V2(h) => h.write_seq,
        }
    }
    pub fn volume_id(&self) -> [u8; 16] {
        match self {
            AnyHeader::V1(h) => h.volume_id,
            AnyHeader::V2(h) => h.volume_id,
        }
    }
    /// The key generation (format 1 knew no rotation: always 1).
    pub fn generation(&self) -> u32 {
        match self {
            AnyHeader::V1(_) => 1,
            AnyHeader::V2(h) => h.generation,
        }
    }
}

/// An opened slot: its private key and its payload (master key or share).
type OpenSlot = (StaticSecret, Zeroizing<Vec<u8>>);

/// The master key and the slots that gave it.
pub struct Opened {
    pub master: MasterKey,
    /// Indices of the slots whose secrets were used, in slot order.
    pub slots: Vec<usize>,
}

/// A new slot to add.
pub struct NewSlot<'a> {
    pub label: &'a str,
    pub creds: &'a Credentials,
    pub kdf: KdfParams,
    pub no_self_change: bool,
}

/// A damaged-header error naming `path` and what is wrong (every format).
fn damaged(path: &Path, what: impl Into<String>) -> Error {
    Error::HeaderDamaged { path: path.to_path_buf(), what: what.into() }
}

/// Little-endian readers at a fixed offset; callers have checked the length.
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses header bytes of any supported version; `path` is only used in
/// error messages.
pub fn decode(bytes: &[u8], path: &Path) -> Result<AnyHeader, Error> {
    if bytes.len() >= 8 && &bytes[..8] != MAGIC {
        if bytes.iter().all(|&b| b == 0) {
            return Err(damaged(path, format!("{} bytes, all zero", bytes.len())));
        }
        return Err(damaged(path, format!("bad magic {:02x?}", &bytes[..8])));
    }
    if bytes.len() < 10 {
        return Err(damaged(path, format!("{} bytes, too short for a header", bytes.len())));
    }
    match u16_at(bytes, 8) {
        0 => Err(damaged(path, "format version 0")),
        1 => v1::V1Header::decode(bytes, path).map(AnyHeader::V1),
        2 | 3 => VolumeHeader::decode(bytes, path).map(AnyHeader::V2),
        found => Err(Error::FormatTooNew { found, max: FORMAT_VERSION }),
    }
}

impl VolumeHeader {
    /// A header for a new volume (format 3: sector tags) with no keyslots yet.
    pub fn new(created: u64) -> Result<Self, Error> {
        Ok(VolumeHeader {
            required_features: FEATURE_SECTOR_TAGS,
            optional_features: 0,
            volume_id: crate::random::array()?,
            created,
            write_seq: 0,
            generation: 1,
            slots: vec![None; KEYSLOTS],
            dual: None,
            rotation: None,
            mac: [0; 32],
        })
    }

    /// 3 when the files carry sector tags, else 2.
    pub fn version(&self) -> u16 {
        if self.required_features & FEATURE_SECTOR_TAGS != 0 { 3 } else { 2 }
    }

    pub fn layout(&self) -> Layout {
        if self.required_features & FEATURE_SECTOR_TAGS != 0 { Layout::Tagged } else { Layout::Plain }
    }

    /// The format-2 header of a format-1 volume: same volume ID and creation
    /// time, one slot for `creds` (which opened the format-1 slot).
    pub fn from_v1(old: &v1::V1Header, master: &MasterKey, slot: NewSlot<'_>, now: u64) -> Result<Self, Error> {
        let mut h = VolumeHeader::new(old.created)?;
        // The files stay as they are: untagged, so format 2.
        h.required_features = 0;
        h.volume_id = old.volume_id;
        h.optional_features = old.optional_features;
        h.add_slot(master, slot, now)?;
        Ok(h)
    }

    fn decode(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        if bytes.len() != HEADER_LEN {
            return Err(damaged(path, format!("{} bytes, expected {HEADER_LEN}", bytes.len())));
        }
        let required = u32_at(bytes, 12);
        if required & !KNOWN_REQUIRED_FEATURES != 0 {
            return Err(Error::UnknownFeatures { flags: required & !KNOWN_REQUIRED_FEATURES });
        }
        // The version and the tags bit must agree: either alone is damage
        // (and the MAC, once checked, would say so too).
        let version = u16_at(bytes, 8);
        if (version == 3) != (required & FEATURE_SECTOR_TAGS != 0) {
            return Err(damaged(path, format!("format {version} with required features {required:#x}")));
        }
        if u16_at(bytes, 10) != 0 || u16_at(bytes, 62) != 0 {
            return Err(damaged(path, "reserved header bytes are not zero"));
        }
        let count = u32_at(bytes, 36) as usize;
        if count != KEYSLOTS {
            return Err(damaged(path, format!("keyslot count {count}, expected {KEYSLOTS}")));
        }
        let generation = u32_at(bytes, 56);
        if generation == 0 {
            return Err(damaged(path, "key generation 0"));
        }
        if bytes[61] & !STATE_ROTATING != 0 {
            return Err(damaged(path, format!("unknown state flags {:#04x}", bytes[61])));
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
        let group = WrappedKey::decode(&bytes[GROUP_AT..GROUP_AT + 96])
            .map_err(|w| damaged(path, format!("dual control: {w}")))?;
        let threshold = bytes[60];
        let dual = match (threshold, group) {
            (0, None) => None,
            (k, Some(group)) if k >= 2 => Some(DualControl { threshold: k, group }),
            _ => return Err(damaged(path, format!("dual-control threshold {threshold} does not match its section"))),
        };
        let rotation = WrappedKey::decode(&bytes[ROTATION_AT..ROTATION_AT + 96])
            .map_err(|w| damaged(path, format!("rotation: {w}")))?;
        if rotation.is_some() != (bytes[61] & STATE_ROTATING != 0) {
            return Err(damaged(path, "rotation flag does not match its section"));
        }
        let h = VolumeHeader {
            required_features: required,
            optional_features: u32_at(bytes, 16),
            volume_id,
            created: u64_at(bytes, 40),
            write_seq: u64_at(bytes, 48),
            generation,
            slots,
            dual,
            rotation,
            mac: {
                let mut m = [0u8; 32];
                m.copy_from_slice(&bytes[MAC_AT..HEADER_LEN]);
                m
            },
        };
        h.check_consistent().map_err(|what| damaged(path, what))?;
        Ok(h)
    }

    /// Rules a well-formed header keeps whatever its MAC: unique labels,
    /// payload kinds matching dual control, enough members for K.
    fn check_consistent(&self) -> Result<(), String> {
        let want = if self.dual.is_some() { PayloadKind::Share } else { PayloadKind::MasterKey };
        let mut labels: Vec<String> = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let Some(s) = s else { continue };
            if s.payload_kind != want {
                return Err(format!("keyslot {i} holds a payload of the wrong kind"));
            }
            let lower = s.label.to_ascii_lowercase();
            if labels.contains(&lower) {
                return Err(format!("keyslot {i} repeats the label {:?}", s.label));
            }
            labels.push(lower);
        }
        if let Some(d) = &self.dual
            && usize::from(d.threshold) > labels.len()
        {
            return Err(format!("dual-control threshold {} is above the {} slots", d.threshold, labels.len()));
        }
        Ok(())
    }

    fn body(&self) -> Vec<u8> {
        let mut b = vec![0u8; MAC_AT];
        b[..8].copy_from_slice(MAGIC);
        b[8..10].copy_from_slice(&self.version().to_le_bytes());
        b[12..16].copy_from_slice(&self.required_features.to_le_bytes());
        b[16..20].copy_from_slice(&self.optional_features.to_le_bytes());
        b[20..36].copy_from_slice(&self.volume_id);
        b[36..40].copy_from_slice(&(KEYSLOTS as u32).to_le_bytes());
        b[40..48].copy_from_slice(&self.created.to_le_bytes());
        b[48..56].copy_from_slice(&self.write_seq.to_le_bytes());
        b[56..60].copy_from_slice(&self.generation.to_le_bytes());
        if let Some(d) = &self.dual {
            b[60] = d.threshold;
            d.group.encode_into(&mut b[GROUP_AT..GROUP_AT + 96]);
        }
        if let Some(r) = &self.rotation {
            b[61] = STATE_ROTATING;
            r.encode_into(&mut b[ROTATION_AT..ROTATION_AT + 96]);
        }
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

    /// Checks the stored MAC against the master key the slots yielded.
    pub fn verify_mac(&self, master: &MasterKey, path: &Path) -> Result<(), Error> {
        if crate::secret::ct_eq(&header_mac(master, &self.body()), &self.mac) {
            Ok(())
        } else {
            Err(Error::HeaderTampered { path: path.to_path_buf() })
        }
    }

    /// Number of keyslots in use.
    pub fn active_slots(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// The index of the slot labelled `label` (ASCII case-insensitive).
    pub fn find(&self, label: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.as_ref().is_some_and(|s| s.label.eq_ignore_ascii_case(label)))
    }

    fn slot_index(&self, label: &str) -> Result<usize, Error> {
        self.find(label).ok_or_else(|| Error::UnknownLabel { label: label.to_string(), known: self.labels() })
    }

    /// Labels of the active slots, in slot order.
    pub fn labels(&self) -> Vec<String> {
        self.slots.iter().flatten().map(|s| s.label.clone()).collect()
    }

    /// Whether a key rotation was begun and not finished.
    pub fn rotating(&self) -> bool {
        self.rotation.is_some()
    }

    fn payload_aad(&self, index: usize, kind: PayloadKind) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32);
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&self.volume_id);
        aad.extend_from_slice(&self.generation.to_le_bytes());
        aad.push(index as u8);
        aad.push(kind as u8);
        aad
    }

    /// Associated data of the dual-control and rotation wraps (40 and 36 bytes).
    fn section_aad(&self, section: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(40);
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&self.volume_id);
        aad.extend_from_slice(&self.generation.to_le_bytes());
        aad.extend_from_slice(section);
        aad
    }

    fn group_aad(&self) -> Vec<u8> {
        self.section_aad(b"dual control")
    }

    fn rotation_aad(&self) -> Vec<u8> {
        self.section_aad(b"rotation")
    }

    /// Opens slot `index`'s private key and payload with `creds`.
    fn open_slot(&self, index: usize, creds: &Credentials, path: &Path) -> Result<Option<OpenSlot>, Error> {
        let Some(slot) = &self.slots[index] else { return Ok(None) };
        let Some(secret) = slot.open(&self.volume_id, index, creds)? else { return Ok(None) };
        let aad = self.payload_aad(index, slot.payload_kind);
        match seal::open(&secret, &slot.payload, &aad) {
            Some(payload) => Ok(Some((secret, payload))),
            // The slot's secret was right and its payload does not open:
            // the header was changed (a swapped payload, an old generation).
            None => Err(Error::HeaderTampered { path: path.to_path_buf() }),
        }
    }

    fn check_budget_now(&self) -> Result<(), Error> {
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(s) = slot {
                s.kdf.check_slot(index)?;
            }
        }
        check_unlock_budget(&self.slots)
    }

    /// Unlocks with one operator's factors: the slot labelled `label`, or
    /// every slot of the factors' kind. Under dual control this says how
    /// many operators are needed instead.
    pub fn unlock(&self, creds: &Credentials, label: Option<&str>, path: &Path) -> Result<Opened, Error> {
        self.check_budget_now()?;
        let candidates: Vec<usize> = match label {
            Some(l) => vec![self.slot_index(l)?],
            None => (0..KEYSLOTS).filter(|&i| self.slots[i].as_ref().is_some_and(|s| s.kind == creds.kind())).collect(),
        };
        for index in candidates {
            let Some((_, payload)) = self.open_slot(index, creds, path)? else { continue };
            if let Some(d) = &self.dual {
                return Err(Error::DualControlRequired { threshold: d.threshold, labels: self.labels() });
            }
            let master = master_from(&payload).ok_or_else(|| damaged(path, format!("keyslot {index}: payload")))?;
            self.verify_mac(&master, path)?;
            return Ok(Opened { master, slots: vec![index] });
        }
        Err(Error::WrongPassphrase { label: label.map(str::to_string) })
    }

    /// Unlocks under dual control with each operator's factors, by label.
    /// Needs `threshold` distinct operators whose factors are right; the
    /// first wrong one is named. Without dual control one operator is enough.
    pub fn unlock_labelled(&self, operators: &[(String, &Credentials)], path: &Path) -> Result<Opened, Error> {
        self.check_budget_now()?;
        let Some(dual) = &self.dual else {
            let Some((label, creds)) = operators.first() else {
                return Err(Error::WrongPassphrase { label: None });
            };
            return self.unlock(creds, Some(label), path);
        };
        let mut shares: Vec<Share> = Vec::new();
        let mut used: Vec<usize> = Vec::new();
        for (label, creds) in operators {
            let index = self.slot_index(label)?;
            if used.contains(&index) {
                return Err(Error::DualControlOperators { what: format!("operator {label} is given twice") });
            }
            let Some((_, payload)) = self.open_slot(index, creds, path)? else {
                return Err(Error::WrongPassphrase { label: Some(label.clone()) });
            };
            let bytes: &[u8; SHARE_LEN] =
                payload.as_slice().try_into().map_err(|_| damaged(path, format!("keyslot {index}: share")))?;
            shares.push(Share::from_bytes(bytes).map_err(|e| damaged(path, format!("keyslot {index}: {e}")))?);
            used.push(index);
        }
        if used.len() < usize::from(dual.threshold) {
            let given = used.iter().filter_map(|&i| self.slots[i].as_ref().map(|s| s.label.clone())).collect();
            return Err(Error::NotEnoughOperators { given, threshold: dual.threshold, labels: self.labels() });
        }
        let group =
            shamir::combine(&shares, dual.threshold).map_err(|e| damaged(path, format!("dual control: {e}")))?;
        let master =
            dual.group.open(&group, &self.group_aad()).ok_or(Error::HeaderTampered { path: path.to_path_buf() })?;
        self.verify_mac(&master, path)?;
        used.sort_unstable();
        Ok(Opened { master, slots: used })
    }

    /// Gives every slot a fresh payload for `master`: the master key itself,
    /// or under dual control a share of a fresh group key.
    fn reseal(&mut self, master: &MasterKey) -> Result<(), Error> {
        let members: Vec<usize> = (0..KEYSLOTS).filter(|&i| self.slots[i].is_some()).collect();
        let payloads: Vec<(PayloadKind, Zeroizing<Vec<u8>>)> = match &self.dual {
            None => members
                .iter()
                .map(|_| (PayloadKind::MasterKey, Zeroizing::new(master.expose_secret().to_vec())))
                .collect(),
            Some(d) => {
                let group = Zeroizing::new(crate::random::array::<32>()?);
                let count = u8::try_from(members.len()).map_err(|_| Error::NoFreeKeyslot)?;
                let shares = shamir::split(&group, d.threshold, count)
                    .map_err(|e| Error::DualControlOperators { what: e.to_string() })?;
                let aad = self.group_aad();
                self.dual =
                    Some(DualControl { threshold: d.threshold, group: WrappedKey::seal(&group, master, &aad)? });
                shares.iter().map(|s| (PayloadKind::Share, Zeroizing::new(s.to_bytes().to_vec()))).collect()
            }
        };
        for (&index, (kind, plain)) in members.iter().zip(payloads) {
            let aad = self.payload_aad(index, kind);
            let slot = self.slots[index].as_mut().expect("members are active slots");
            slot.payload = seal::seal(&PublicKey::from(slot.public_key), &plain, &aad)?;
            slot.payload_kind = kind;
        }
        Ok(())
    }

    /// Adds a slot for a new operator; returns its index.
    pub fn add_slot(&mut self, master: &MasterKey, new: NewSlot<'_>, now: u64) -> Result<usize, Error> {
        validate_label(new.label)?;
        if self.find(new.label).is_some() {
            return Err(Error::DuplicateLabel { label: new.label.to_string() });
        }
        let index = self.slots.iter().position(Option::is_none).ok_or(Error::NoFreeKeyslot)?;
        // Never write a slot a reader would refuse, alone or with the others.
        new.kdf.check_slot(index)?;
        let mut with_new = self.slots.clone();
        let mut slot = Keyslot::create(&self.volume_id, index, new.creds, new.kdf, new.label, now)?;
        with_new[index] = Some(slot.clone());
        check_unlock_budget(&with_new)?;
        if new.no_self_change {
            slot.flags |= FLAG_NO_SELF_CHANGE;
        }
        slot.remember(new.creds)?;
        self.slots[index] = Some(slot);
        self.reseal(master)?;
        Ok(index)
    }

    /// Removes the slot labelled `label`. Refuses to remove the last slot,
    /// or one that would leave fewer operators than dual control needs.
    pub fn remove_slot(&mut self, master: &MasterKey, label: &str) -> Result<usize, Error> {
        let index = self.slot_index(label)?;
        if self.active_slots() == 1 {
            return Err(Error::LastSlot { label: label.to_string() });
        }
        if let Some(d) = &self.dual
            && self.active_slots() - 1 < usize::from(d.threshold)
        {
            return Err(Error::DualControlOperators {
                what: format!(
                    "removing {label} would leave {} operators for a threshold of {}; disable dual control or lower it first",
                    self.active_slots() - 1,
                    d.threshold
                ),
            });
        }
        self.slots[index] = None;
        // Under dual control the removed operator's share must be useless:
        // the remaining operators get shares of a new group key.
        self.reseal(master)?;
        Ok(index)
    }

    /// The passphrase rule PCI DSS 8.3.7 asks for: not one of the slot's
    /// last [`HISTORY`] passphrases.
    fn check_history(&self, index: usize, creds: &Credentials) -> Result<(), Error> {
        let slot = self.slots[index].as_ref().expect("checked by the caller");
        if slot.remembers(creds)? {
            return Err(Error::PassphraseReused { label: slot.label.clone(), kept: HISTORY });
        }
        Ok(())
    }

    /// An administrator sets new factors on another operator's slot (it gets
    /// a new key pair; the administrator never learns the old one).
    pub fn reset_slot(
        &mut self,
        master: &MasterKey,
        label: &str,
        creds: &Credentials,
        kdf: KdfParams,
        now: u64,
    ) -> Result<usize, Error> {
        let index = self.slot_index(label)?;
        self.check_history(index, creds)?;
        kdf.check_slot(index)?;
        let secret = seal::generate_secret()?;
        let volume_id = self.volume_id;
        let mut slot = self.slots[index].clone().expect("found above");
        slot.rewrap(&volume_id, index, creds, kdf, &secret)?;
        let mut with_new = self.slots.clone();
        with_new[index] = Some(slot.clone());
        check_unlock_budget(&with_new)?;
        slot.changed = now;
        slot.remember(creds)?;
        self.slots[index] = Some(slot);
        self.reseal(master)?;
        Ok(index)
    }

    /// An operator changes their own factors after giving the current ones.
    /// Refused for a slot created with no self-change. The caller then
    /// encodes the header with the master key (under dual control, which
    /// needs the other operators too).
    pub fn change_own(
        &mut self,
        label: &str,
        current: &Credentials,
        new: &Credentials,
        kdf: KdfParams,
        now: u64,
        path: &Path,
    ) -> Result<usize, Error> {
        let index = self.slot_index(label)?;
        let slot = self.slots[index].as_ref().expect("found above");
        if slot.no_self_change() {
            return Err(Error::SelfChangeForbidden { label: slot.label.clone() });
        }
        let Some((secret, _)) = self.open_slot(index, current, path)? else {
            return Err(Error::WrongPassphrase { label: Some(label.to_string()) });
        };
        self.check_history(index, new)?;
        kdf.check_slot(index)?;
        let volume_id = self.volume_id;
        let mut slot = self.slots[index].clone().expect("found above");
        let (kind, payload) = (slot.payload_kind, slot.payload.clone());
        slot.rewrap(&volume_id, index, new, kdf, &secret)?;
        // Same key pair: the sealed payload stays as it is.
        (slot.payload_kind, slot.payload) = (kind, payload);
        let mut with_new = self.slots.clone();
        with_new[index] = Some(slot.clone());
        check_unlock_budget(&with_new)?;
        slot.changed = now;
        slot.remember(new)?;
        self.slots[index] = Some(slot);
        Ok(index)
    }

    /// Sets or clears the no-self-change flag of `label`'s slot.
    pub fn set_no_self_change(&mut self, label: &str, on: bool) -> Result<usize, Error> {
        let index = self.slot_index(label)?;
        let slot = self.slots[index].as_mut().expect("found above");
        if on {
            slot.flags |= FLAG_NO_SELF_CHANGE;
        } else {
            slot.flags &= !FLAG_NO_SELF_CHANGE;
        }
        Ok(index)
    }

    /// Makes unlocking need `threshold` of the operators: every active slot
    /// must be named in `labels`, so that no slot unlocks alone.
    pub fn enable_dual_control(&mut self, master: &MasterKey, threshold: u8, labels: &[String]) -> Result<(), Error> {
        if self.dual.is_some() {
            return Err(Error::DualControlOperators {
                what: "dual control is already enabled; disable it first".into(),
            });
        }
        let mut named = Vec::new();
        for l in labels {
            let i = self.slot_index(l)?;
            if named.contains(&i) {
                return Err(Error::DualControlOperators { what: format!("{l} is named twice") });
            }
            named.push(i);
        }
        let unnamed: Vec<String> = self
            .slots
            .iter()
            .flatten()
            .filter(|s| !labels.iter().any(|l| l.eq_ignore_ascii_case(&s.label)))
            .map(|s| s.label.clone())
            .collect();
        if !unnamed.is_empty() {
            return Err(Error::DualControlOperators {
                what: format!(
                    "slot(s) {} are not in --labels and would still unlock alone: name them or remove them first",
                    unnamed.join(", ")
                ),
            });
        }
        if threshold < 2 || usize::from(threshold) > named.len() {
            return Err(Error::DualControlOperators {
                what: format!("threshold {threshold} must be between 2 and the {} operators named", named.len()),
            });
        }
        // A placeholder group; reseal makes the real one.
        self.dual = Some(DualControl { threshold, group: WrappedKey::seal(&[0; 32], master, b"")? });
        self.reseal(master)
    }

    /// Ends dual control: every slot unlocks alone again.
    pub fn disable_dual_control(&mut self, master: &MasterKey) -> Result<(), Error> {
        if self.dual.take().is_none() {
            return Err(Error::DualControlOperators { what: "dual control is not enabled".into() });
        }
        self.reseal(master)
    }

    /// Begins a key rotation: `new` becomes the master key every slot opens
    /// (generation + 1), and the previous one is kept, wrapped under a key
    /// derived from `new`, until [`VolumeHeader::finish_rotation`].
    pub fn begin_rotation(&mut self, old: &MasterKey, new: &MasterKey) -> Result<(), Error> {
        if self.rotation.is_some() {
            return Err(Error::RotationInProgress);
        }
        self.generation = self.generation.checked_add(1).ok_or(Error::Kdf("key generation overflow".into()))?;
        let key = derive32(new, LABEL_ROTATION_PREVIOUS);
        let aad = self.rotation_aad();
        self.rotation = Some(WrappedKey::seal(key.expose_secret(), old, &aad)?);
        self.reseal(new)
    }

    /// The master key before the rotation in progress, if one is.
    pub fn previous_master(&self, current: &MasterKey, path: &Path) -> Result<Option<MasterKey>, Error> {
        let Some(r) = &self.rotation else { return Ok(None) };
        let key = derive32(current, LABEL_ROTATION_PREVIOUS);
        r.open(key.expose_secret(), &self.rotation_aad())
            .map(Some)
            .ok_or(Error::HeaderTampered { path: path.to_path_buf() })
    }

    /// Drops the previous master key: the rotation is complete.
    pub fn finish_rotation(&mut self) {
        self.rotation = None;
    }
}

fn master_from(payload: &[u8]) -> Option<MasterKey> {
    let bytes: &[u8; MASTER_KEY_LEN] = payload.try_into().ok()?;
    Some(MasterKey::copy_from(bytes))
}

/// Refuses slots whose summed Argon2id work exceeds [`kdf::MAX_UNLOCK_WORK`]:
/// a wrong passphrase tries every active slot. Names the first slot at which
/// the running total crosses the budget.
pub(crate) fn check_unlock_budget<T: SlotCost>(slots: &[Option<T>]) -> Result<(), Error> {
    let mut total: u64 = 0;
    for (index, slot) in slots.iter().enumerate() {
        let Some(slot) = slot else { continue };
        total = total.saturating_add(slot.kdf_params().work());
        if total > kdf::MAX_UNLOCK_WORK {
            return Err(Error::KdfBudgetExceeded { slot: index, total, budget: kdf::MAX_UNLOCK_WORK });
        }
    }
    Ok(())
}

/// A slot of either format, for the unlock budget.
pub(crate) trait SlotCost {
    fn kdf_params(&self) -> &KdfParams;
}

impl SlotCost for Keyslot {
    fn kdf_params(&self) -> &KdfParams {
        &self.kdf
    }
}

pub(crate) fn header_mac(master: &MasterKey, body: &[u8]) -> [u8; 32] {
    let key = derive32(master, LABEL_VOLUME_HEADER_MAC);
    // new_from_slice only fails for key lengths HMAC cannot take; 32 is fine.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret()).expect("HMAC accepts 32-byte keys");
    m.update(body);
    m.finalize().into_bytes().into()
}
