//! Key material types that wipe themselves on drop and never print.
//!
//! None of these types is `Clone` or `Debug`: every copy is one more thing to
//! wipe, and a key must never reach a log line. Wiping covers the heap buffer
//! each type owns; copies the compiler makes in registers or on the stack
//! while a cipher runs are beyond what Rust can promise to erase.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the volume master key: two 256-bit AES-XTS halves.
pub const MASTER_KEY_LEN: usize = 64;

/// The volume master key. Everything else is derived from it with HKDF.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey(Box<[u8; MASTER_KEY_LEN]>);

impl MasterKey {
    /// Wraps raw key bytes (from a keyslot unwrap or the CSPRNG).
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        let mut boxed = Box::new([0u8; MASTER_KEY_LEN]);
        boxed.copy_from_slice(&bytes);
        let mut bytes = bytes;
        bytes.zeroize();
        MasterKey(boxed)
    }

    /// A fresh random master key whose two XTS halves differ (IEEE 1619).
    pub fn generate() -> Result<Self, crate::Error> {
        loop {
            let mut k = Box::new([0u8; MASTER_KEY_LEN]);
            crate::random::fill(&mut k[..])?;
            if k[..32] != k[32..] {
                return Ok(MasterKey(k));
            }
            k.zeroize();
        }
    }

    /// The raw key bytes. Named so every use is easy to find in review.
    pub fn expose_secret(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }
}

/// A passphrase or keyfile secret as typed or read. Wiped on drop.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Takes ownership of the bytes; the caller's buffer is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        Passphrase(Zeroizing::new(bytes))
    }

    /// Builds a passphrase from the contents of a passphrase file: exactly one
    /// trailing newline (`\n` or `\r\n`) is not part of the passphrase.
    pub fn from_file_contents(mut bytes: Vec<u8>) -> Self {
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Passphrase::new(bytes)
    }

    /// The raw bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Constant-time equality, for comparing the two typings of a new passphrase.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A 256-bit derived key (names, header MAC, key wrapping).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Key32(Box<[u8; 32]>);

impl Key32 {
    pub(crate) fn zeroed() -> Self {
        Key32(Box::new([0u8; 32]))
    }
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A 512-bit derived key (AES-256-XTS pair, AES-SIV-256 pair).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Key64(Box<[u8; 64]>);

impl Key64 {
    pub(crate) fn zeroed() -> Self {
        Key64(Box::new([0u8; 64]))
    }
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; 64] {
        &mut self.0
    }
    pub fn expose_secret(&self) -> &[u8; 64] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_file_drops_exactly_one_trailing_newline() {
        assert_eq!(Passphrase::from_file_contents(b"abc\n".to_vec()).expose_secret(), b"abc");
        assert_eq!(Passphrase::from_file_contents(b"abc\r\n".to_vec()).expose_secret(), b"abc");
        assert_eq!(Passphrase::from_file_contents(b"abc\n\n".to_vec()).expose_secret(), b"abc\n");
        assert_eq!(Passphrase::from_file_contents(b"abc".to_vec()).expose_secret(), b"abc");
        assert_eq!(Passphrase::from_file_contents(b" a b ".to_vec()).expose_secret(), b" a b ");
    }

    #[test]
    fn generated_master_keys_have_distinct_halves_and_differ() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.expose_secret()[..32], a.expose_secret()[32..]);
        assert_ne!(a.expose_secret()[..], b.expose_secret()[..]);
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"same", b"same"));
        assert!(!ct_eq(b"same", b"sane"));
        assert!(!ct_eq(b"same", b"same!"));
    }
}
