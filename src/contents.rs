//! File contents encryption: AES-256-XTS over whole 4096-byte sectors.
//!
//! The tweak is the sector number inside the file and the key is the file's
//! own (derived from its random file ID), so two recordings that start with
//! the same WAV header never share ciphertext. XTS authenticates nothing: a
//! changed sector decrypts to garbage without an error (docs/FORMAT.md).
//!
//! The cipher runs the 256 blocks of a sector through the `aes` crate's
//! multi-block path (AES-NI/VAES pipelines 8 or more blocks at once) instead
//! of one block at a time; `xts-mode` is the reference it is tested against.

use aes::Aes256;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

use crate::Error;
use crate::secret::Key64;
use crate::sectors::SECTOR_SIZE;

/// One plaintext or ciphertext sector.
pub type Sector = [u8; SECTOR_SIZE as usize];
const BLOCKS: usize = SECTOR_SIZE as usize / 16;

/// AES-256-XTS for one file (IEEE 1619 key order: data key, then tweak key).
pub struct SectorCipher {
    data: Aes256,
    tweak: Aes256,
}

impl SectorCipher {
    /// Builds the cipher from a 64-byte XTS key. Refuses equal halves, which
    /// IEEE 1619 forbids (the `xts-mode` crate does not check).
    pub fn new(key: &Key64) -> Result<Self, Error> {
        let k = key.expose_secret();
        if k[..32] == k[32..] {
            return Err(Error::EqualKeyHalves);
        }
        let data = Aes256::new(&Array::try_from(&k[..32]).map_err(|_| Error::EqualKeyHalves)?);
        let tweak = Aes256::new(&Array::try_from(&k[32..]).map_err(|_| Error::EqualKeyHalves)?);
        Ok(SectorCipher { data, tweak })
    }

    /// The first tweak of sector `index`: E_k2(index as little-endian u128).
    fn first_tweak(&self, index: u64) -> u128 {
        let mut t = Array((index as u128).to_le_bytes());
        self.tweak.encrypt_block(&mut t);
        u128::from_le_bytes(t.0)
    }

    /// XORs each block of `src` with its tweak into `dst`, keeping the tweaks
    /// for the second XOR. Each tweak is the previous one times alpha in
    /// GF(2^128); generating them in the same loop as the XOR lets the XOR
    /// work hide under that serial chain instead of costing its own pass.
    fn whiten(&self, index: u64, src: &Sector, dst: &mut Sector, tweaks: &mut [u128; BLOCKS]) {
        let mut t = self.first_tweak(index);
        for ((slot, s), d) in tweaks.iter_mut().zip(src.chunks_exact(16)).zip(dst.chunks_exact_mut(16)) {
            *slot = t;
            d.copy_from_slice(&(block(s) ^ t).to_le_bytes());
            t = times_alpha(t);
        }
    }

    /// `whiten` with the sector as both source and destination.
    fn whiten_in_place(&self, index: u64, sector: &mut Sector, tweaks: &mut [u128; BLOCKS]) {
        let mut t = self.first_tweak(index);
        for (slot, b) in tweaks.iter_mut().zip(sector.chunks_exact_mut(16)) {
            *slot = t;
            b.copy_from_slice(&(block(b) ^ t).to_le_bytes());
            t = times_alpha(t);
        }
    }

    fn unwhiten(sector: &mut Sector, tweaks: &[u128; BLOCKS]) {
        for (b, t) in sector.chunks_exact_mut(16).zip(tweaks) {
            b.copy_from_slice(&(block(b) ^ t).to_le_bytes());
        }
    }

    /// Encrypts sector `index` in place.
    pub fn encrypt(&self, index: u64, sector: &mut Sector) {
        let mut tweaks = [0u128; BLOCKS];
        self.whiten_in_place(index, sector, &mut tweaks);
        self.encrypt_whitened(sector, &tweaks);
    }

    /// Encrypts plaintext sector `src` (sector `index`) into `dst`, saving
    /// the copy a caller would otherwise make to encrypt in place.
    pub fn encrypt_into(&self, index: u64, src: &Sector, dst: &mut Sector) {
        let mut tweaks = [0u128; BLOCKS];
        self.whiten(index, src, dst, &mut tweaks);
        self.encrypt_whitened(dst, &tweaks);
    }

    fn encrypt_whitened(&self, sector: &mut Sector, tweaks: &[u128; BLOCKS]) {
        let (blocks, _) = Array::slice_as_chunks_mut(&mut sector[..]);
        self.data.encrypt_blocks(blocks);
        Self::unwhiten(sector, tweaks);
    }

    /// Decrypts sector `index` in place.
    pub fn decrypt(&self, index: u64, sector: &mut Sector) {
        let mut tweaks = [0u128; BLOCKS];
        self.whiten_in_place(index, sector, &mut tweaks);
        let (blocks, _) = Array::slice_as_chunks_mut(&mut sector[..]);
        self.data.decrypt_blocks(blocks);
        Self::unwhiten(sector, &tweaks);
    }

    /// Encrypts consecutive sectors starting at sector `first` in place.
    /// `buf` must be a whole number of sectors.
    pub fn encrypt_run(&self, first: u64, buf: &mut [u8]) {
        for (i, chunk) in buf.chunks_exact_mut(SECTOR_SIZE as usize).enumerate() {
            if let Ok(sector) = <&mut Sector>::try_from(chunk) {
                self.encrypt(first + i as u64, sector);
            }
        }
    }

    /// Decrypts consecutive sectors in place. An all-zero ciphertext sector is a
    /// hole (never written, or sparse in the backing file) and reads as zeros.
    pub fn decrypt_run(&self, first: u64, buf: &mut [u8]) {
        for (i, chunk) in buf.chunks_exact_mut(SECTOR_SIZE as usize).enumerate() {
            if is_hole(chunk) {
                continue;
            }
            if let Ok(sector) = <&mut Sector>::try_from(chunk) {
                self.decrypt(first + i as u64, sector);
            }
        }
    }
}

/// A 16-byte block as a little-endian u128 (`b` is always 16 bytes long).
fn block(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    u128::from_le_bytes(a)
}

/// Multiplication by alpha in GF(2^128) as IEEE 1619 defines it, branch-free.
fn times_alpha(t: u128) -> u128 {
    let carry = ((t as i128) >> 127) as u128 & 0x87;
    (t << 1) ^ carry
}

/// Whether a ciphertext sector is all zeros. A real ciphertext sector starts
/// with 16 zero bytes with probability 2^-128, so the first block decides
/// almost always and the whole sector is scanned only for holes; the scan goes
/// by 8-byte words so it does not cost a second pass over every read.
fn is_hole(sector: &[u8]) -> bool {
    if sector[..16].iter().any(|&b| b != 0) {
        return false;
    }
    sector.chunks_exact(8).all(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) == 0)
}

/// The unbatched `xts-mode` implementation, kept as the reference the fast
/// path is tested against (benches/sector_crypto.rs has its own copy, so
/// `xts-mode` is only a dev-dependency).
#[cfg(test)]
pub(crate) fn reference_encrypt(key: &Key64, index: u64, sector: &mut Sector) {
    let k = key.expose_secret();
    let (Ok(k1), Ok(k2)) = (Array::try_from(&k[..32]), Array::try_from(&k[32..])) else {
        return;
    };
    let xts = xts_mode::Xts128::new(Aes256::new(&k1), Aes256::new(&k2));
    xts.encrypt_sector(sector, xts_mode::get_tweak_default(index as u128));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LABEL_FILE_CONTENTS, derive64};
    use crate::secret::MasterKey;

    fn key() -> Key64 {
        derive64(&MasterKey::generate().unwrap(), LABEL_FILE_CONTENTS, &[7; 16])
    }

    #[test]
    fn batched_xts_matches_the_xts_mode_crate() {
        let k = key();
        let c = SectorCipher::new(&k).unwrap();
        for index in [0u64, 1, 2, 255, 256, 1 << 20, u64::MAX / 4096] {
            let mut a = [0u8; 4096];
            crate::random::fill(&mut a).unwrap();
            let plain = a;
            let mut b = a;
            c.encrypt(index, &mut a);
            reference_encrypt(&k, index, &mut b);
            assert_eq!(a, b, "sector {index}");
            c.decrypt(index, &mut a);
            assert_eq!(a, plain);
        }
    }

    #[test]
    fn encrypting_into_another_buffer_matches_in_place() {
        let c = SectorCipher::new(&key()).unwrap();
        let mut plain = [0u8; 4096];
        crate::random::fill(&mut plain).unwrap();
        let mut in_place = plain;
        c.encrypt(42, &mut in_place);
        let mut out = [0u8; 4096];
        c.encrypt_into(42, &plain, &mut out);
        assert_eq!(out, in_place);
    }

    #[test]
    fn same_plaintext_in_other_sectors_or_files_differs() {
        let k1 = key();
        let k2 = key();
        let (c1, c2) = (SectorCipher::new(&k1).unwrap(), SectorCipher::new(&k2).unwrap());
        let mut a = [b'R'; 4096];
        let mut b = [b'R'; 4096];
        let mut c = [b'R'; 4096];
        c1.encrypt(0, &mut a);
        c1.encrypt(1, &mut b);
        c2.encrypt(0, &mut c);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(!a.windows(4).any(|w| w == b"RRRR"));
    }

    #[test]
    fn all_zero_ciphertext_reads_as_a_hole() {
        let c = SectorCipher::new(&key()).unwrap();
        let mut buf = vec![0u8; 8192];
        c.decrypt_run(3, &mut buf);
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_sector_that_only_starts_with_zeros_is_not_a_hole() {
        let c = SectorCipher::new(&key()).unwrap();
        let mut buf = vec![0u8; 4096];
        buf[4095] = 1;
        let stored = buf.clone();
        c.decrypt_run(0, &mut buf);
        assert_ne!(buf, stored, "the sector was decrypted, not passed through as a hole");
        c.encrypt_run(0, &mut buf);
        assert_eq!(buf, stored);
    }

    #[test]
    fn equal_key_halves_are_refused() {
        let mut k = Key64::zeroed();
        k.bytes_mut().fill(9);
        assert!(matches!(SectorCipher::new(&k), Err(Error::EqualKeyHalves)));
    }
}
