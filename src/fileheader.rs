//! The per-file header: file ID, exact plaintext size, and a MAC.
//!
//! The header occupies the first 4096 bytes of a non-empty backing file and
//! holds two copies (slots) of a 56-byte record, at offsets 0 and 2048, so a
//! write torn by a crash damages at most one of them. Each update goes to the
//! slot the current generation does not occupy; the valid slot with the
//! highest generation wins. A zero-length backing file is an empty file that
//! has no header yet.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Error;
use crate::secret::Key32;
use crate::sectors::FILE_HEADER_LEN;

pub const MAGIC: &[u8; 4] = b"CVFH";
pub const VERSION: u16 = 1;
/// Offsets of the two header slots inside the header region.
pub const SLOT_OFFSETS: [usize; 2] = [0, 2048];
/// Bytes of one slot: 40 bytes of fields and a 16-byte MAC.
pub const SLOT_LEN: usize = 56;
const MAC_LEN: usize = 16;
const FIELDS_LEN: usize = SLOT_LEN - MAC_LEN;

/// The decoded header of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub file_id: [u8; 16],
    /// Exact plaintext size in bytes.
    pub size: u64,
    /// Incremented on every header write; picks the newer slot.
    pub generation: u64,
}

impl FileHeader {
    /// A header for a brand-new file.
    pub fn new(file_id: [u8; 16]) -> Self {
        FileHeader { file_id, size: 0, generation: 0 }
    }

    /// Offset inside the backing file where this generation is written.
    pub fn slot_offset(&self) -> u64 {
        SLOT_OFFSETS[(self.generation % 2) as usize] as u64
    }

    /// The slot bytes for this header, MAC included.
    pub fn encode(&self, mac_key: &Key32) -> [u8; SLOT_LEN] {
        let mut out = [0u8; SLOT_LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&0u16.to_le_bytes());
        out[8..24].copy_from_slice(&self.file_id);
        out[24..32].copy_from_slice(&self.size.to_le_bytes());
        out[32..40].copy_from_slice(&self.generation.to_le_bytes());
        let tag = mac(mac_key, &out[..FIELDS_LEN]);
        out[FIELDS_LEN..].copy_from_slice(&tag[..MAC_LEN]);
        out
    }

    /// Parses the header region (the first bytes of a backing file; pass what
    /// was read, up to 4096 bytes). Picks the newest valid slot.
    pub fn decode(region: &[u8], mac_key: &Key32) -> Result<FileHeader, Error> {
        if (region.len() as u64) < FILE_HEADER_LEN {
            return Err(Error::FileHeaderDamaged {
                what: format!("truncated: {} of {FILE_HEADER_LEN} header bytes", region.len()),
            });
        }
        let mut best: Option<FileHeader> = None;
        let mut first_problem = None;
        for off in SLOT_OFFSETS {
            match decode_slot(&region[off..off + SLOT_LEN], mac_key) {
                Ok(h) if best.is_none_or(|b| h.generation > b.generation) => best = Some(h),
                Ok(_) => {}
                Err(e) => {
                    first_problem.get_or_insert(e);
                }
            }
        }
        best.ok_or_else(|| Error::FileHeaderDamaged {
            what: first_problem.unwrap_or_else(|| "no valid header slot".into()),
        })
    }
}

fn mac(key: &Key32, data: &[u8]) -> [u8; 32] {
    // new_from_slice only fails for key lengths HMAC cannot take; 32 is fine.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret()).expect("HMAC accepts 32-byte keys");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn decode_slot(slot: &[u8], mac_key: &Key32) -> Result<FileHeader, String> {
    if slot.iter().all(|&b| b == 0) {
        return Err("header slot is all zeros".into());
    }
    if &slot[0..4] != MAGIC {
        return Err(format!("bad magic {:02x?}", &slot[0..4]));
    }
    let version = u16::from_le_bytes([slot[4], slot[5]]);
    if version != VERSION {
        return Err(format!("unsupported file format version {version}"));
    }
    let flags = u16::from_le_bytes([slot[6], slot[7]]);
    if flags != 0 {
        return Err(format!("unknown file feature flags {flags:#06x}"));
    }
    let tag = mac(mac_key, &slot[..FIELDS_LEN]);
    if !crate::secret::ct_eq(&tag[..MAC_LEN], &slot[FIELDS_LEN..SLOT_LEN]) {
        return Err("header MAC mismatch".into());
    }
    let mut file_id = [0u8; 16];
    file_id.copy_from_slice(&slot[8..24]);
    let mut size = [0u8; 8];
    size.copy_from_slice(&slot[24..32]);
    let mut generation = [0u8; 8];
    generation.copy_from_slice(&slot[32..40]);
    Ok(FileHeader { file_id, size: u64::from_le_bytes(size), generation: u64::from_le_bytes(generation) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LABEL_FILE_HEADER_MAC, derive32};
    use crate::secret::MasterKey;

    fn region_with(h: &FileHeader, k: &Key32) -> Vec<u8> {
        let mut r = vec![0u8; FILE_HEADER_LEN as usize];
        let off = h.slot_offset() as usize;
        r[off..off + SLOT_LEN].copy_from_slice(&h.encode(k));
        r
    }

    fn key() -> Key32 {
        derive32(&MasterKey::generate().unwrap(), LABEL_FILE_HEADER_MAC)
    }

    #[test]
    fn round_trip_and_newest_slot_wins() {
        let k = key();
        let mut h = FileHeader::new([3; 16]);
        h.size = 4097;
        let mut r = region_with(&h, &k);
        assert_eq!(FileHeader::decode(&r, &k).unwrap(), h);
        let mut h2 = h;
        h2.generation += 1;
        h2.size = 9000;
        let off = h2.slot_offset() as usize;
        r[off..off + SLOT_LEN].copy_from_slice(&h2.encode(&k));
        assert_eq!(FileHeader::decode(&r, &k).unwrap(), h2);
        // A torn newest slot falls back to the previous generation.
        r[off + 25] ^= 1;
        assert_eq!(FileHeader::decode(&r, &k).unwrap(), h);
    }

    #[test]
    fn damage_is_a_typed_error_never_a_panic() {
        let k = key();
        let h = FileHeader::new([1; 16]);
        let r = region_with(&h, &k);
        for len in [0, 1, 55, 56, 4095] {
            assert!(matches!(FileHeader::decode(&r[..len], &k), Err(Error::FileHeaderDamaged { .. })));
        }
        let zero = vec![0u8; 4096];
        assert!(FileHeader::decode(&zero, &k).is_err());
        let mut bad = r.clone();
        bad[0] = b'X';
        let e = FileHeader::decode(&bad, &k).unwrap_err().to_string();
        assert!(e.contains("bad magic"), "{e}");
        let mut v = r.clone();
        v[4] = 9;
        assert!(FileHeader::decode(&v, &k).unwrap_err().to_string().contains("version 9"));
        let other = key();
        assert!(FileHeader::decode(&r, &other).unwrap_err().to_string().contains("MAC"));
    }
}
