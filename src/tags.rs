//! Sector tags: a MAC over every encrypted data sector (format 3).
//!
//! tag = AES-256(K, POLYVAL(H, ciphertext) ⊕ index), with K and H the file's
//! own (derived from the master key and the file ID), the sector index as a
//! little-endian u64 in the first 8 bytes of the block.
//!
//! Why this MAC: it is the tag computation of AES-GCM-SIV (RFC 8452), a
//! universal hash encrypted by a block cipher, which is a PRF and so a MAC
//! for fixed-length messages: POLYVAL over the 256 blocks of a sector is
//! 2^-120-almost-XOR-universal, so a forgery succeeds with probability about
//! 2^-120 per try. Both halves run on instructions this class of machine has
//! (PCLMULQDQ for POLYVAL, AES-NI for the one block), measured at 2.5 to 3.5
//! GB/s per core for 4 KiB sectors against 0.8 to 1.0 for HMAC-SHA-256 (SHA-NI)
//! and 0.6 for keyed BLAKE3, whose SIMD lanes a 4 KiB input cannot fill.
//! Unlike GMAC it needs no nonce: sectors are rewritten in place, and a
//! nonce derived from the index would repeat across rewrites and leak H.
//!
//! The index binds a tag to its position (a sector moved elsewhere in its
//! file fails), the per-file keys bind it to its file (a sector copied from
//! another file fails). An all-zero sector with an all-zero tag is a hole.

use aes::Aes256;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use polyval::Polyval;
use polyval::universal_hash::UniversalHash;

use crate::layout::TAG_LEN;
use crate::secret::Key64;

/// One sector's tag.
pub type Tag = [u8; TAG_LEN];

/// The tag of a hole: never written, or sparse in the backing file.
pub const HOLE_TAG: Tag = [0; TAG_LEN];

/// What checking one sector against its tag found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The tag matches: the ciphertext is what this file wrote there.
    Intact,
    /// Sector and tag both all zeros: a hole, reading as zeros.
    Hole,
    /// Neither: changed, replaced, or torn by a crash.
    Mismatch,
}

/// The tag key of one file: bytes 0..32 of its 64-byte derived key are the
/// AES-256 key, bytes 32..48 the POLYVAL key (48..64 are unused).
pub struct SectorTagger {
    aes: Aes256,
    /// POLYVAL keyed with H and nothing absorbed; cloned for every sector so
    /// the powers of H are computed once per file.
    fresh: Polyval,
}

impl SectorTagger {
    pub fn new(key: &Key64) -> Self {
        let k = key.expose_secret();
        let mut aes_key = Array::default();
        aes_key.copy_from_slice(&k[..32]);
        let mut h = polyval::Key::default();
        h.copy_from_slice(&k[32..48]);
        let tagger = SectorTagger { aes: Aes256::new(&aes_key), fresh: Polyval::new(&h) };
        zeroize::Zeroize::zeroize(&mut aes_key.0);
        zeroize::Zeroize::zeroize(&mut h.0);
        tagger
    }

    /// The tag of ciphertext `sector` stored as data sector `index`.
    pub fn tag(&self, index: u64, sector: &[u8]) -> Tag {
        let mut p = self.fresh.clone();
        p.update_padded(sector);
        let mut block = p.finalize();
        for (b, i) in block[..8].iter_mut().zip(index.to_le_bytes()) {
            *b ^= i;
        }
        self.aes.encrypt_block(&mut block);
        block.0
    }

    /// Checks ciphertext `sector` (data sector `index`) against its stored tag.
    pub fn check(&self, index: u64, sector: &[u8], stored: &Tag) -> Checked {
        if *stored == HOLE_TAG && sector.iter().all(|&b| b == 0) {
            return Checked::Hole;
        }
        if crate::secret::ct_eq(&self.tag(index, sector), stored) { Checked::Intact } else { Checked::Mismatch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LABEL_SECTOR_TAGS, derive64};
    use crate::secret::MasterKey;

    fn tagger(master: &MasterKey, file_id: &[u8; 16]) -> SectorTagger {
        SectorTagger::new(&derive64(master, LABEL_SECTOR_TAGS, file_id))
    }

    #[test]
    fn a_tag_binds_the_bytes_the_index_and_the_file() {
        let m = MasterKey::generate().unwrap();
        let (a, b) = (tagger(&m, &[1; 16]), tagger(&m, &[2; 16]));
        let mut sector = [0u8; 4096];
        crate::random::fill(&mut sector).unwrap();
        let t = a.tag(5, &sector);
        assert_eq!(a.check(5, &sector, &t), Checked::Intact);
        assert_eq!(a.tag(5, &sector), t, "deterministic");
        assert_eq!(a.check(6, &sector, &t), Checked::Mismatch, "moved to another index");
        assert_eq!(b.check(5, &sector, &t), Checked::Mismatch, "copied to another file");
        for at in [0, 15, 16, 2047, 4095] {
            let mut changed = sector;
            changed[at] ^= 0x01;
            assert_eq!(a.check(5, &changed, &t), Checked::Mismatch, "byte {at} flipped");
        }
        let mut bad_tag = t;
        bad_tag[15] ^= 0x80;
        assert_eq!(a.check(5, &sector, &bad_tag), Checked::Mismatch);
    }

    #[test]
    fn only_a_zero_sector_with_a_zero_tag_is_a_hole() {
        let m = MasterKey::generate().unwrap();
        let a = tagger(&m, &[1; 16]);
        let zeros = [0u8; 4096];
        assert_eq!(a.check(0, &zeros, &HOLE_TAG), Checked::Hole);
        // Zeros written on purpose carry a real tag, and it still verifies.
        let t = a.tag(0, &zeros);
        assert_ne!(t, HOLE_TAG);
        assert_eq!(a.check(0, &zeros, &t), Checked::Intact);
        let mut one = zeros;
        one[100] = 1;
        assert_eq!(a.check(0, &one, &HOLE_TAG), Checked::Mismatch, "a tag wiped from a written sector");
    }
}
