//! What an operator presents to open a keyslot: a passphrase, keyfiles, or both.

use zeroize::Zeroizing;

use crate::keyfiles::KeyfileDigest;
use crate::secret::Passphrase;

/// Which factors a keyslot needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Passphrase = 1,
    Keyfile = 2,
    PassphraseAndKeyfile = 3,
}

impl SlotKind {
    pub fn from_byte(b: u8) -> Option<SlotKind> {
        match b {
            1 => Some(SlotKind::Passphrase),
            2 => Some(SlotKind::Keyfile),
            3 => Some(SlotKind::PassphraseAndKeyfile),
            _ => None,
        }
    }

    /// The name `slot list` shows.
    pub fn name(self) -> &'static str {
        match self {
            SlotKind::Passphrase => "passphrase",
            SlotKind::Keyfile => "keyfile",
            SlotKind::PassphraseAndKeyfile => "passphrase+keyfile",
        }
    }

    pub fn has_passphrase(self) -> bool {
        self != SlotKind::Keyfile
    }
}

/// One operator's secret factors. Both parts wipe themselves on drop.
pub struct Credentials {
    passphrase: Option<Passphrase>,
    keyfiles: Option<KeyfileDigest>,
}

const LABEL_SLOT_SECRET: &[u8] = b"callvault v2 slot secret\0";
const LABEL_HISTORY: &[u8] = b"callvault v2 passphrase history\0";

impl Credentials {
    /// `None` when neither factor is given.
    pub fn new(passphrase: Option<Passphrase>, keyfiles: Option<KeyfileDigest>) -> Option<Credentials> {
        let passphrase = passphrase.filter(|p| !p.is_empty());
        if passphrase.is_none() && keyfiles.is_none() {
            return None;
        }
        Some(Credentials { passphrase, keyfiles })
    }

    pub fn passphrase(p: Passphrase) -> Option<Credentials> {
        Credentials::new(Some(p), None)
    }

    /// The slot kind these factors open.
    pub fn kind(&self) -> SlotKind {
        match (&self.passphrase, &self.keyfiles) {
            (Some(_), None) => SlotKind::Passphrase,
            (None, Some(_)) => SlotKind::Keyfile,
            _ => SlotKind::PassphraseAndKeyfile,
        }
    }

    pub fn passphrase_bytes(&self) -> Option<&[u8]> {
        self.passphrase.as_ref().map(Passphrase::expose_secret)
    }

    /// Argon2id's input for a slot: a label, the kind, the passphrase with
    /// its length, then the keyfiles' combined digest. The kind is in it so
    /// that one passphrase opens a passphrase slot and a passphrase+keyfile
    /// slot only with their own factors.
    pub(crate) fn kdf_input(&self) -> Zeroizing<Vec<u8>> {
        let pass = self.passphrase_bytes().unwrap_or(&[]);
        let mut v = Zeroizing::new(Vec::with_capacity(LABEL_SLOT_SECRET.len() + 5 + pass.len() + 32));
        v.extend_from_slice(LABEL_SLOT_SECRET);
        v.push(self.kind() as u8);
        v.extend_from_slice(&(pass.len() as u32).to_le_bytes());
        v.extend_from_slice(pass);
        if let Some(k) = &self.keyfiles {
            v.extend_from_slice(k.expose_secret());
        }
        v
    }

    /// Argon2id's input for a passphrase-history verifier (passphrase only).
    pub(crate) fn history_input(&self) -> Option<Zeroizing<Vec<u8>>> {
        let pass = self.passphrase_bytes()?;
        let mut v = Zeroizing::new(Vec::with_capacity(LABEL_HISTORY.len() + pass.len()));
        v.extend_from_slice(LABEL_HISTORY);
        v.extend_from_slice(pass);
        Some(v)
    }
}
