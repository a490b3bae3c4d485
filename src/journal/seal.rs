//! Forward-secure sealing: one-way epoch key evolution and the MAC of seal records.
//!
//! K_0 is 32 random bytes made at init, kept by the auditor and, on the machine,
//! only until the first seal. K_{i+1} = HKDF-SHA256(ikm = K_i, info = EVOLVE_LABEL).
//! The seal of epoch i is HMAC-SHA256 under M_i = HKDF-SHA256(ikm = K_i,
//! info = MAC_KEY_LABEL) over MAC_DOMAIN || journal id || the seal line with
//! its `mac` value replaced by 64 `0` characters. HKDF cannot be run
//! backwards, so whoever holds K_j learns nothing about K_i for i < j.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Key32;

use super::chain::{from_hex, to_hex};

/// HKDF info for the next epoch key.
pub const EVOLVE_LABEL: &[u8] = b"callvault v1 journal key evolve";
/// HKDF info for the epoch's MAC key.
pub const MAC_KEY_LABEL: &[u8] = b"callvault v1 journal seal mac";
/// Domain separation prefix of the MAC input.
pub const MAC_DOMAIN: &[u8] = b"callvault v1 journal seal\0";

/// Length of the journal id.
pub const JOURNAL_ID_LEN: usize = 16;

/// The key of one epoch. Not Clone, not Debug; wiped on drop (the `Key32`
/// heap buffer; the HKDF/HMAC states built from it wipe on drop, see
/// `secret.rs` for what they leave on the stack).
pub struct EpochKey {
    epoch: u64,
    key: Key32,
}

impl EpochKey {
    pub(crate) fn from_bytes(epoch: u64, bytes: &[u8; 32]) -> EpochKey {
        let mut key = Key32::zeroed();
        key.bytes_mut().copy_from_slice(bytes);
        EpochKey { epoch, key }
    }

    /// A fresh random K_0.
    pub(crate) fn generate() -> Result<EpochKey, super::JournalError> {
        let mut key = Key32::zeroed();
        getrandom::fill(key.bytes_mut()).map_err(|e| super::JournalError::Random(e.to_string()))?;
        Ok(EpochKey { epoch: 0, key })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The raw key bytes, for writing the key files.
    pub(crate) fn expose_secret(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }

    /// K_{i+1} from K_i. The caller drops (and so wipes) K_i.
    pub(crate) fn next(&self) -> EpochKey {
        EpochKey { epoch: self.epoch + 1, key: self.derive(EVOLVE_LABEL) }
    }

    /// Replaces this key by the next one; the old bytes are wiped on drop.
    pub(crate) fn advance(&mut self) {
        *self = self.next();
    }

    /// K_n derived from this key by repeated evolution (`n >= self.epoch()`).
    pub(crate) fn evolve_to(&self, n: u64) -> Option<EpochKey> {
        if n < self.epoch {
            return None;
        }
        let mut k = EpochKey::from_bytes(self.epoch, self.expose_secret());
        while k.epoch < n {
            k.advance();
        }
        Some(k)
    }

    /// Constant-time comparison of two keys and their epochs.
    pub(crate) fn same_as(&self, other: &EpochKey) -> bool {
        self.epoch == other.epoch && crate::secret::ct_eq(self.expose_secret(), other.expose_secret())
    }

    fn derive(&self, info: &[u8]) -> Key32 {
        let hk = Hkdf::<Sha256>::new(None, self.key.expose_secret());
        let mut out = Key32::zeroed();
        // 32 bytes is far below HKDF-SHA256's 255*32 limit, so expand cannot fail.
        let _ = hk.expand(info, out.bytes_mut());
        out
    }

    /// The MAC of a seal line whose `mac` value is already blanked.
    pub(crate) fn seal_mac(&self, journal_id: &[u8; JOURNAL_ID_LEN], blanked_line: &[u8]) -> [u8; 32] {
        let mac_key = self.derive(MAC_KEY_LABEL);
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let mut m = match <Hmac<Sha256> as KeyInit>::new_from_slice(mac_key.expose_secret()) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        m.update(MAC_DOMAIN);
        m.update(journal_id);
        m.update(blanked_line);
        let out = m.finalize().into_bytes();
        let mut mac = [0u8; 32];
        mac.copy_from_slice(&out);
        mac
    }
}

/// The `mac` value of a line being built, before it is computed.
pub const MAC_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const MAC_KEY: &[u8] = b"\"mac\":\"";

/// Finds the `"mac":"<64 hex>"` field of a seal line. Returns the byte range
/// of the hex value. The last occurrence is taken: the mac is the last detail
/// field, and inside JSON strings a `"` is always escaped, so the pattern
/// cannot come from a string value.
pub(crate) fn mac_range(line: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = line.windows(MAC_KEY.len()).rposition(|w| w == MAC_KEY)? + MAC_KEY.len();
    let end = start + 64;
    if line.get(end) != Some(&b'"') {
        return None;
    }
    Some(start..end)
}

/// Puts the MAC into a line built with [`MAC_PLACEHOLDER`].
pub(crate) fn fill_mac(line: &mut [u8], key: &EpochKey, journal_id: &[u8; JOURNAL_ID_LEN]) -> bool {
    let Some(r) = mac_range(line) else {
        return false;
    };
    let mac = key.seal_mac(journal_id, line);
    line[r].copy_from_slice(to_hex(&mac).as_bytes());
    true
}

/// Checks the MAC of a seal line under `key` (constant time).
pub(crate) fn check_mac(line: &[u8], key: &EpochKey, journal_id: &[u8; JOURNAL_ID_LEN]) -> bool {
    let Some(r) = mac_range(line) else {
        return false;
    };
    let Ok(hex) = std::str::from_utf8(&line[r.clone()]) else {
        return false;
    };
    let Some(found) = from_hex::<32>(hex) else {
        return false;
    };
    let mut blanked = line.to_vec();
    blanked[r].copy_from_slice(MAC_PLACEHOLDER.as_bytes());
    let want = key.seal_mac(journal_id, &blanked);
    crate::secret::ct_eq(&want, &found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evolution_is_deterministic_and_one_way_in_shape() {
        let k0 = EpochKey::from_bytes(0, &[7u8; 32]);
        let k1 = k0.next();
        let k2 = k1.next();
        assert_eq!(k2.epoch(), 2);
        assert!(k0.evolve_to(2).unwrap().same_as(&k2));
        assert!(!k1.same_as(&k2));
        assert_ne!(k1.expose_secret(), k0.expose_secret());
        assert!(k2.evolve_to(1).is_none());
    }

    #[test]
    fn mac_covers_the_whole_line() {
        let id = [1u8; JOURNAL_ID_LEN];
        let k = EpochKey::from_bytes(3, &[9u8; 32]);
        let mut line =
            format!("{{\"seq\":5,\"detail\":{{\"epoch\":3,\"mac\":\"{MAC_PLACEHOLDER}\"}},\"prev\":\"00\"}}")
                .into_bytes();
        assert!(fill_mac(&mut line, &k, &id));
        assert!(check_mac(&line, &k, &id));
        // Any other key, journal id or byte fails.
        assert!(!check_mac(&line, &k.next(), &id));
        assert!(!check_mac(&line, &k, &[2u8; JOURNAL_ID_LEN]));
        let mut changed = line.clone();
        changed[8] = b'6';
        assert!(!check_mac(&changed, &k, &id));
        assert!(!check_mac(b"{\"mac\":\"zz\"}", &k, &id));
    }
}
