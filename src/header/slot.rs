//! One format-2 keyslot: its byte layout, and wrapping and unwrapping its private key.
//!
//! ```text
//! 0     1  state (1 = in use; an unused slot is all zeros)
//! 1     1  kind: 1 passphrase, 2 keyfile(s), 3 passphrase and keyfile(s)
//! 2     1  KDF (1 = Argon2id, version 0x13)
//! 3     1  flags: bit 0 = no self-change
//! 4     4  Argon2id memory, KiB
//! 8     4  Argon2id passes
//! 12    4  Argon2id lanes
//! 16   32  salt
//! 48   12  nonce of the private-key wrap
//! 60   48  X25519 private key under AES-256-GCM with the KEK (32 + 16 tag)
//! 108  32  X25519 public key
//! 140   1  payload kind: 1 master key, 2 dual-control share
//! 141   1  payload length
//! 142   2  reserved (0)
//! 144 144  payload sealed to the public key, zero padded (112 or 81 bytes used)
//! 288  64  label (operator ID), UTF-8, NUL padded
//! 352   8  created, Unix seconds
//! 360   8  secret last changed, Unix seconds
//! 368   1  passphrase history entries (0..=4)
//! 369   3  reserved (0)
//! 372   4  history Argon2id lanes (0 when there is no history)
//! 376 256  history: 4 x (salt 32, Argon2id verifier 32), newest first, unused zero
//! 632   4  history Argon2id memory, KiB (0 when there is no history)
//! 636   4  history Argon2id passes (0 when there is no history)
//! ```

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::credentials::{Credentials, SlotKind};
use super::{u32_at, u64_at};
use crate::Error;
use crate::kdf::{KdfParams, ParamsProblem};

pub const KEYSLOT_LEN: usize = 640;
pub const LABEL_LEN: usize = 64;
pub const PAYLOAD_MAX: usize = 144;
/// Passphrases a slot remembers, current one included (PCI DSS 8.3.7).
pub const HISTORY: usize = 4;
pub const FLAG_NO_SELF_CHANGE: u8 = 1;

/// What a slot's sealed payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    MasterKey = 1,
    Share = 2,
}

/// One remembered passphrase: a salt and an Argon2id output, never the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub salt: [u8; 32],
    pub verifier: [u8; 32],
}

/// An active keyslot as stored. Holds nothing secret in the clear: the
/// private key is wrapped under the slot's KEK, the payload sealed to its
/// public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyslot {
    pub kind: SlotKind,
    pub kdf: KdfParams,
    pub flags: u8,
    pub(crate) nonce: [u8; 12],
    pub(crate) wrapped_secret: [u8; 48],
    pub public_key: [u8; 32],
    pub payload_kind: PayloadKind,
    pub(crate) payload: Vec<u8>,
    pub label: String,
    pub created: u64,
    pub changed: u64,
    pub history: Vec<HistoryEntry>,
    /// The Argon2id cost every history verifier is made with: the slot's
    /// cost when its first passphrase was remembered. Kept apart from the
    /// slot's own cost, which a later reset or passwd may change (the
    /// calibration of `--kdf-time` differs from run to run), so that an old
    /// passphrase is still recognised. Its salt field is unused.
    pub history_kdf: Option<KdfParams>,
}

/// Why one keyslot does not decode.
pub(crate) enum SlotProblem {
    Damaged(String),
    OverLimit(KdfParams),
}

fn zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

impl Keyslot {
    pub fn no_self_change(&self) -> bool {
        self.flags & FLAG_NO_SELF_CHANGE != 0
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Option<Keyslot>, SlotProblem> {
        let damaged = |what: &str| Err(SlotProblem::Damaged(what.to_string()));
        match b[0] {
            0 if zero(b) => return Ok(None),
            0 => return damaged("an unused slot holds data"),
            1 => {}
            s => return Err(SlotProblem::Damaged(format!("unknown slot state {s}"))),
        }
        let Some(kind) = SlotKind::from_byte(b[1]) else {
            return Err(SlotProblem::Damaged(format!("unknown slot kind {}", b[1])));
        };
        if b[2] != 1 {
            return Err(SlotProblem::Damaged(format!("unknown KDF {}", b[2])));
        }
        if b[3] & !FLAG_NO_SELF_CHANGE != 0 {
            return Err(SlotProblem::Damaged(format!("unknown slot flags {:#04x}", b[3])));
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&b[16..48]);
        let kdf = KdfParams { memory_kib: u32_at(b, 4), time_cost: u32_at(b, 8), lanes: u32_at(b, 12), salt };
        match kdf.check() {
            Ok(()) => {}
            Err(ParamsProblem::Malformed(what)) => return Err(SlotProblem::Damaged(what)),
            Err(ParamsProblem::OverLimit) => return Err(SlotProblem::OverLimit(kdf)),
        }
        let payload_kind = match b[140] {
            1 => PayloadKind::MasterKey,
            2 => PayloadKind::Share,
            k => return Err(SlotProblem::Damaged(format!("unknown payload kind {k}"))),
        };
        let len = b[141] as usize;
        if len > PAYLOAD_MAX || !zero(&b[144 + len..288]) || !zero(&b[142..144]) {
            return damaged("payload length or padding is wrong");
        }
        let label_bytes = &b[288..288 + LABEL_LEN];
        let end = label_bytes.iter().position(|&c| c == 0).unwrap_or(LABEL_LEN);
        if !zero(&label_bytes[end..]) {
            return damaged("label padding is not zero");
        }
        let Ok(label) = std::str::from_utf8(&label_bytes[..end]) else {
            return damaged("label is not UTF-8");
        };
        let entries = b[368] as usize;
        if entries > HISTORY || !zero(&b[369..372]) {
            return damaged("history count or reserved bytes are wrong");
        }
        let history_kdf = if entries == 0 {
            if !zero(&b[372..376]) || !zero(&b[632..KEYSLOT_LEN]) {
                return damaged("history cost set without a history");
            }
            None
        } else {
            let h = KdfParams {
                memory_kib: u32_at(b, 632),
                time_cost: u32_at(b, 636),
                lanes: u32_at(b, 372),
                salt: [0; 32],
            };
            match h.check() {
                Ok(()) => Some(h),
                Err(ParamsProblem::Malformed(what)) => {
                    return Err(SlotProblem::Damaged(format!("history cost: {what}")));
                }
                Err(ParamsProblem::OverLimit) => return Err(SlotProblem::OverLimit(h)),
            }
        };
        let mut history = Vec::with_capacity(entries);
        for i in 0..HISTORY {
            let at = 376 + i * 64;
            if i >= entries {
                if !zero(&b[at..at + 64]) {
                    return damaged("an unused history entry holds data");
                }
                continue;
            }
            let mut e = HistoryEntry { salt: [0; 32], verifier: [0; 32] };
            e.salt.copy_from_slice(&b[at..at + 32]);
            e.verifier.copy_from_slice(&b[at + 32..at + 64]);
            history.push(e);
        }
        let mut slot = Keyslot {
            kind,
            kdf,
            flags: b[3],
            nonce: [0; 12],
            wrapped_secret: [0; 48],
            public_key: [0; 32],
            payload_kind,
            payload: b[144..144 + len].to_vec(),
            label: label.to_string(),
            created: u64_at(b, 352),
            changed: u64_at(b, 360),
            history,
            history_kdf,
        };
        slot.nonce.copy_from_slice(&b[48..60]);
        slot.wrapped_secret.copy_from_slice(&b[60..108]);
        slot.public_key.copy_from_slice(&b[108..140]);
        Ok(Some(slot))
    }

    pub(crate) fn encode_into(&self, b: &mut [u8]) {
        b[0] = 1;
        b[1] = self.kind as u8;
        b[2] = 1;
        b[3] = self.flags;
        b[4..8].copy_from_slice(&self.kdf.memory_kib.to_le_bytes());
        b[8..12].copy_from_slice(&self.kdf.time_cost.to_le_bytes());
        b[12..16].copy_from_slice(&self.kdf.lanes.to_le_bytes());
        b[16..48].copy_from_slice(&self.kdf.salt);
        b[48..60].copy_from_slice(&self.nonce);
        b[60..108].copy_from_slice(&self.wrapped_secret);
        b[108..140].copy_from_slice(&self.public_key);
        b[140] = self.payload_kind as u8;
        b[141] = self.payload.len() as u8;
        b[144..144 + self.payload.len()].copy_from_slice(&self.payload);
        b[288..288 + self.label.len()].copy_from_slice(self.label.as_bytes());
        b[352..360].copy_from_slice(&self.created.to_le_bytes());
        b[360..368].copy_from_slice(&self.changed.to_le_bytes());
        b[368] = self.history.len() as u8;
        if let Some(h) = &self.history_kdf
            && !self.history.is_empty()
        {
            b[372..376].copy_from_slice(&h.lanes.to_le_bytes());
            b[632..636].copy_from_slice(&h.memory_kib.to_le_bytes());
            b[636..640].copy_from_slice(&h.time_cost.to_le_bytes());
        }
        for (i, e) in self.history.iter().enumerate() {
            let at = 376 + i * 64;
            b[at..at + 32].copy_from_slice(&e.salt);
            b[at + 32..at + 64].copy_from_slice(&e.verifier);
        }
    }

    /// Binds the wrapped private key to its volume, slot, kind, KDF settings
    /// and public key.
    fn wrap_aad(&self, volume_id: &[u8; 16], index: usize) -> Vec<u8> {
        let mut aad = Vec::with_capacity(128);
        aad.extend_from_slice(super::MAGIC);
        aad.extend_from_slice(volume_id);
        aad.push(index as u8);
        aad.push(self.kind as u8);
        aad.extend_from_slice(&self.kdf.memory_kib.to_le_bytes());
        aad.extend_from_slice(&self.kdf.time_cost.to_le_bytes());
        aad.extend_from_slice(&self.kdf.lanes.to_le_bytes());
        aad.extend_from_slice(&self.kdf.salt);
        aad.extend_from_slice(&self.public_key);
        aad
    }

    /// A new slot for `creds`: a fresh key pair, its private key wrapped
    /// under the KEK Argon2id derives from `creds` with `kdf`. The payload
    /// is left empty for the header to seal.
    pub(crate) fn create(
        volume_id: &[u8; 16],
        index: usize,
        creds: &Credentials,
        kdf: KdfParams,
        label: &str,
        now: u64,
    ) -> Result<Keyslot, Error> {
        let mut slot = Keyslot {
            kind: creds.kind(),
            kdf,
            flags: 0,
            nonce: [0; 12],
            wrapped_secret: [0; 48],
            public_key: [0; 32],
            payload_kind: PayloadKind::MasterKey,
            payload: Vec::new(),
            label: label.to_string(),
            created: now,
            changed: now,
            history: Vec::new(),
            history_kdf: None,
        };
        let secret = super::seal::generate_secret()?;
        slot.rewrap(volume_id, index, creds, kdf, &secret)?;
        Ok(slot)
    }

    /// Wraps `secret` (this slot's private key, or a new one) under `creds`
    /// with `kdf`, replacing the stored wrap and public key.
    pub(crate) fn rewrap(
        &mut self,
        volume_id: &[u8; 16],
        index: usize,
        creds: &Credentials,
        kdf: KdfParams,
        secret: &StaticSecret,
    ) -> Result<(), Error> {
        self.kind = creds.kind();
        self.kdf = kdf;
        self.public_key = PublicKey::from(secret).to_bytes();
        self.nonce = crate::random::array()?;
        let kek = kdf.derive(&creds.kdf_input())?;
        let aad = self.wrap_aad(volume_id, index);
        let cipher = Aes256Gcm::new(kek.expose_secret().into());
        let mut buf = Zeroizing::new(secret.to_bytes());
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(self.nonce), &aad, buf.as_mut_slice().into())
            .map_err(|_| Error::Kdf("key wrapping failed".into()))?;
        self.wrapped_secret[..32].copy_from_slice(&buf[..]);
        self.wrapped_secret[32..].copy_from_slice(&tag);
        Ok(())
    }

    /// The slot's private key if `creds` open it; `None` for a wrong secret.
    pub(crate) fn open(
        &self,
        volume_id: &[u8; 16],
        index: usize,
        creds: &Credentials,
    ) -> Result<Option<StaticSecret>, Error> {
        if creds.kind() != self.kind {
            return Ok(None);
        }
        let kek = self.kdf.derive(&creds.kdf_input())?;
        let aad = self.wrap_aad(volume_id, index);
        let cipher = Aes256Gcm::new(kek.expose_secret().into());
        let mut buf = Zeroizing::new([0u8; 32]);
        buf.copy_from_slice(&self.wrapped_secret[..32]);
        let Ok(tag) = Tag::try_from(&self.wrapped_secret[32..]) else {
            return Ok(None);
        };
        if cipher.decrypt_inout_detached(&Nonce::from(self.nonce), &aad, buf.as_mut_slice().into(), &tag).is_err() {
            return Ok(None);
        }
        let secret = StaticSecret::from(*buf);
        // The stored public key must be this private key's: otherwise a
        // payload sealed to it could not be opened, and the header is wrong.
        if PublicKey::from(&secret).to_bytes() != self.public_key {
            return Ok(None);
        }
        Ok(Some(secret))
    }

    /// Whether `creds`' passphrase is one this slot remembers.
    pub(crate) fn remembers(&self, creds: &Credentials) -> Result<bool, Error> {
        let Some(input) = creds.history_input() else { return Ok(false) };
        let Some(cost) = self.history_kdf else { return Ok(false) };
        for e in &self.history {
            let params = KdfParams { salt: e.salt, ..cost };
            let v = params.derive(&input)?;
            if crate::secret::ct_eq(v.expose_secret(), &e.verifier) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Remembers `creds`' passphrase (newest first, at most [`HISTORY`]).
    pub(crate) fn remember(&mut self, creds: &Credentials) -> Result<(), Error> {
        let Some(input) = creds.history_input() else { return Ok(()) };
        let cost = match self.history_kdf {
            Some(c) if !self.history.is_empty() => c,
            _ => KdfParams { salt: [0; 32], ..self.kdf },
        };
        self.history_kdf = Some(cost);
        let salt = crate::random::array()?;
        let params = KdfParams { salt, ..cost };
        let verifier = *params.derive(&input)?.expose_secret();
        self.history.insert(0, HistoryEntry { salt, verifier });
        self.history.truncate(HISTORY);
        Ok(())
    }
}

/// Checks an operator ID: 1 to 64 bytes of letters, digits and `._@-`,
/// not starting with `-` (it would read as an option).
pub fn validate_label(label: &str) -> Result<(), Error> {
    let why = if label.is_empty() {
        Some("it is empty")
    } else if label.len() > LABEL_LEN {
        Some("it is longer than 64 bytes")
    } else if label.starts_with('-') {
        Some("it starts with '-'")
    } else if !label.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c)) {
        Some("only letters, digits and . _ @ - are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::InvalidLabel { label: label.to_string(), why: why.to_string() }),
        None => Ok(()),
    }
}
