//! Key material types that wipe themselves on drop and never print.
//!
//! None of these types is `Clone` or `Debug`: every copy is one more thing to
//! wipe, and a key must never reach a log line. Wiping covers the heap buffer
//! each type owns; copies the compiler makes in registers or on the stack
//! while a cipher runs are beyond what Rust can promise to erase. Cipher key
//! schedules (aes, aes-gcm, aes-siv: built with `zeroize`) and Argon2's
//! working memory (`kdf.rs`) are wiped too, and so are the HMAC-SHA-256 and
//! HKDF-SHA-256 states (hmac and sha2 built with `zeroize`: each SHA-256 core
//! wipes its chaining state and each block buffer its bytes on drop; an HMAC
//! is two keyed cores and a buffer, an HKDF one HMAC keyed with the PRK).
//! Not wiped, because the crates leave them where we cannot reach: the
//! 64-byte padded key block HMAC builds on the stack while keying (the key
//! XOR ipad/opad), HKDF-Expand's last output block, and the bytes a move of a
//! state leaves behind in its old place. The test below pins what is wiped.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Error;

/// Largest passphrase or key file read (64 KiB): far beyond any passphrase,
/// small enough that `--passphrase-file /dev/zero` is refused at once.
pub const MAX_SECRET_FILE: usize = 64 * 1024;

/// Reads a secret file of at most `max` bytes. The buffer is allocated once,
/// at `max + 1` bytes, before anything is read, and never grows, so no
/// reallocation leaves an unwiped copy of the secret behind on the heap; it
/// is wiped on drop (all of its capacity). A file longer than `max` is
/// refused with [`Error::SecretFileTooLarge`] without reading past `max + 1`.
/// What the kernel, the page cache or the file itself keep is out of reach.
pub fn read_secret_file(path: &Path, max: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let cap = max.checked_add(1).ok_or(Error::SecretFileTooLarge { path: path.to_path_buf(), limit: max })?;
    let mut buf = Zeroizing::new(vec![0u8; cap]);
    let mut filled = 0;
    while filled < cap {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    if filled > max {
        return Err(Error::SecretFileTooLarge { path: path.to_path_buf(), limit: max });
    }
    // Shortening keeps the allocation; the tail was never written (zeros).
    buf.truncate(filled);
    Ok(buf)
}

/// Length of the volume master key: two 256-bit AES-XTS halves.
pub const MASTER_KEY_LEN: usize = 64;

/// The volume master key. Everything else is derived from it with HKDF.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey(Box<[u8; MASTER_KEY_LEN]>);

impl MasterKey {
    /// Copies raw key bytes straight into the key's own heap buffer, with no
    /// intermediate copy (the caller wipes its source).
    pub fn copy_from(bytes: &[u8; MASTER_KEY_LEN]) -> Self {
        let mut boxed = Box::new([0u8; MASTER_KEY_LEN]);
        boxed.copy_from_slice(bytes);
        MasterKey(boxed)
    }

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
    pub fn from_file_contents(bytes: Vec<u8>) -> Self {
        Passphrase::from_zeroizing(Zeroizing::new(bytes))
    }

    fn from_zeroizing(mut bytes: Zeroizing<Vec<u8>>) -> Self {
        // pop never reallocates: the dropped bytes stay in the capacity,
        // which is wiped with the rest.
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Passphrase(bytes)
    }

    /// Reads a passphrase file through [`read_secret_file`] with
    /// [`MAX_SECRET_FILE`], dropping one trailing newline. May be empty: the
    /// caller says what an empty one means.
    pub fn read_file(path: &Path) -> Result<Self, Error> {
        read_secret_file(path, MAX_SECRET_FILE).map(Passphrase::from_zeroizing)
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

    /// The parts an `Hmac<Sha256>` (and so an `Hkdf<Sha256>`) is made of wipe
    /// themselves on drop. hmac does not mark `Hmac` itself `ZeroizeOnDrop`,
    /// so its fields are checked: the SHA-256 core type of both keyed
    /// digests and the block buffer. Fails to compile if the `zeroize`
    /// features of hmac/sha2 are dropped from Cargo.toml.
    #[test]
    fn hmac_and_hkdf_states_wipe_on_drop() {
        use hmac::EagerHash;
        use hmac::digest::block_api::Buffer;
        fn wiped<T: ZeroizeOnDrop>() {}
        wiped::<<sha2::Sha256 as EagerHash>::Core>();
        wiped::<Buffer<hmac::block_api::HmacCore<sha2::Sha256>>>();
        wiped::<sha2::Sha256>();
    }

    #[test]
    fn passphrase_file_drops_exactly_one_trailing_newline() {
        assert_eq!(Passphrase::from_file_contents(b"abc\n".to_vec()).expose_secret(), b"abc");
        assert_eq!(Passphrase::from_file_contents(b"abc\r\n".to_vec()).expose_secret(), b"abc");
        assert_eq!(Passphrase::from_file_contents(b"abc\n\n".to_vec()).expose_secret(), b"abc\n");
        assert_eq!(Passphrase::from_file_contents(b"abc".to_vec()).expose_secret(), b"abc");
        assert_eq!(Passphrase::from_file_contents(b" a b ".to_vec()).expose_secret(), b" a b ");
    }

    #[test]
    fn secret_files_are_read_up_to_the_cap_and_refused_beyond() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        std::fs::write(&p, b"0123456789").unwrap();
        let got = read_secret_file(&p, 10).unwrap();
        assert_eq!(&got[..], b"0123456789");
        // One allocation of max + 1 bytes, made before reading: never grown.
        assert_eq!(got.capacity(), 11);
        let e = read_secret_file(&p, 9).expect_err("over the cap");
        assert!(matches!(&e, Error::SecretFileTooLarge { limit: 9, .. }), "{e}");
        assert!(e.to_string().contains("larger than 9 bytes"), "{e}");
        assert!(matches!(read_secret_file(&d.path().join("missing"), 9), Err(Error::Io { .. })));
    }

    #[test]
    fn endless_passphrase_file_is_refused_not_read_forever() {
        let e = Passphrase::read_file(Path::new("/dev/zero")).err().expect("endless");
        assert!(matches!(e, Error::SecretFileTooLarge { limit: MAX_SECRET_FILE, .. }), "{e}");
    }

    #[test]
    fn passphrase_read_file_drops_one_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p");
        std::fs::write(&p, b"secret phrase 1\r\n").unwrap();
        assert_eq!(Passphrase::read_file(&p).unwrap().expose_secret(), b"secret phrase 1");
        assert_eq!(MasterKey::copy_from(&[7; MASTER_KEY_LEN]).expose_secret(), &[7; MASTER_KEY_LEN]);
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
