//! Subkeys derived from the master key with HKDF-SHA-256, one per purpose.
//!
//! File contents, names, link targets, extended attributes and header MACs
//! never share a key. Every label is a constant here so a second
//! implementation (docs/FORMAT.md) can derive the same keys.

use hkdf::Hkdf;
use sha2::Sha256;

use crate::secret::{Key32, Key64, MasterKey};

/// Info prefix for a file's AES-256-XTS key; the 16-byte file ID follows.
pub const LABEL_FILE_CONTENTS: &[u8] = b"callvault v1 file contents";
/// Info for the AES-SIV key that encrypts file and directory names.
pub const LABEL_NAMES: &[u8] = b"callvault v1 names";
/// Info for the AES-SIV key that encrypts symlink targets.
pub const LABEL_LINK_TARGETS: &[u8] = b"callvault v1 link targets";
/// Info for the AES-SIV key that encrypts extended attribute names and values.
pub const LABEL_XATTRS: &[u8] = b"callvault v1 xattrs";
/// Info for the HMAC-SHA-256 key over the volume header.
pub const LABEL_VOLUME_HEADER_MAC: &[u8] = b"callvault v1 volume header mac";
/// Info for the HMAC-SHA-256 key over per-file headers.
pub const LABEL_FILE_HEADER_MAC: &[u8] = b"callvault v1 file header mac";
/// Info prefix for a file's sector tag key (format 3); the file ID follows.
pub const LABEL_SECTOR_TAGS: &[u8] = b"callvault v3 sector tags";
/// Info for the HMAC-SHA-256 key binding a file header to its name (format 3).
pub const LABEL_NAME_BINDING: &[u8] = b"callvault v3 name binding";

fn hkdf(master: &MasterKey) -> Hkdf<Sha256> {
    // No salt: the master key is uniformly random, so extract needs none (RFC 5869 §3.1).
    Hkdf::<Sha256>::new(None, master.expose_secret())
}

/// Derives a 256-bit subkey for `label`.
pub fn derive32(master: &MasterKey, label: &[u8]) -> Key32 {
    let mut out = Key32::zeroed();
    // expand only fails for outputs over 255*32 bytes; 32 is always valid.
    hkdf(master).expand(label, out.bytes_mut()).expect("HKDF output of 32 bytes is within limits");
    out
}

/// Derives a 512-bit subkey for `label` followed by `context`.
pub fn derive64(master: &MasterKey, label: &[u8], context: &[u8]) -> Key64 {
    let mut out = Key64::zeroed();
    // expand only fails for outputs over 255*32 bytes; 64 is always valid.
    hkdf(master)
        .expand_multi_info(&[label, context], out.bytes_mut())
        .expect("HKDF output of 64 bytes is within limits");
    out
}

/// All long-lived subkeys of an unlocked volume, derived once at unlock.
pub struct VolumeKeys {
    master: MasterKey,
    pub names: Key64,
    pub link_targets: Key64,
    pub xattrs: Key64,
    pub file_header_mac: Key32,
    pub name_binding: Key32,
}

impl VolumeKeys {
    pub fn derive(master: MasterKey) -> Self {
        VolumeKeys {
            names: derive64(&master, LABEL_NAMES, &[]),
            link_targets: derive64(&master, LABEL_LINK_TARGETS, &[]),
            xattrs: derive64(&master, LABEL_XATTRS, &[]),
            file_header_mac: derive32(&master, LABEL_FILE_HEADER_MAC),
            name_binding: derive32(&master, LABEL_NAME_BINDING),
            master,
        }
    }

    /// The master key, for re-MACing and resealing the volume header after a
    /// key change; nothing else uses it directly.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The AES-256-XTS key pair of the file with this ID.
    pub fn file_key(&self, file_id: &[u8; 16]) -> Key64 {
        derive64(&self.master, LABEL_FILE_CONTENTS, file_id)
    }

    /// The sector tag key of the file with this ID (format 3).
    pub fn tag_key(&self, file_id: &[u8; 16]) -> Key64 {
        derive64(&self.master, LABEL_SECTOR_TAGS, file_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_and_file() {
        let keys = VolumeKeys::derive(MasterKey::generate().unwrap());
        let a = keys.file_key(&[1; 16]);
        let b = keys.file_key(&[2; 16]);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(keys.names.expose_secret(), keys.xattrs.expose_secret());
        assert_ne!(keys.names.expose_secret(), keys.link_targets.expose_secret());
        assert_eq!(keys.file_key(&[1; 16]).expose_secret(), a.expose_secret());
        assert_ne!(keys.tag_key(&[1; 16]).expose_secret(), a.expose_secret());
        assert_ne!(keys.name_binding.expose_secret(), keys.file_header_mac.expose_secret());
    }
}
