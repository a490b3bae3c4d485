//! Encryption of file and directory names, symlink targets and xattrs.
//!
//! A name is encrypted with AES-SIV-256 (deterministic, authenticated) with
//! the 16-byte ID of the directory holding it as associated data, so equal
//! names in different directories look different, and then written in
//! unpadded base64url. That alphabet has no `.`, so every backing name that
//! starts with `.` belongs to callvault itself:
//!
//! * `.dirid` holds a directory's ID;
//! * `.L<hash>` is an entry whose encoded name is too long for the backing
//!   filesystem (over 255 bytes): `<hash>` is base64url(SHA-256(encoded)) and
//!   the full encoded name is kept in the side file `.L<hash>.name`;
//! * `.tmp-*` are files and directories under construction.

use aes_siv::KeyInit;
use aes_siv::siv::Aes256Siv;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::secret::Key64;

/// Name of the file holding a backing directory's ID.
pub const DIRID_FILE: &str = ".dirid";
/// Prefix of hashed long names.
pub const LONG_PREFIX: &str = ".L";
/// Suffix of the side file holding a long name.
pub const LONG_NAME_SUFFIX: &str = ".name";
/// Prefix of entries under construction.
pub const TMP_PREFIX: &str = ".tmp-";
/// Longest plaintext name accepted (as on ext4).
pub const NAME_MAX: usize = 255;
/// Longest encoded name stored as itself; longer ones are hashed.
pub const SHORT_MAX: usize = 255;
/// Length of a directory ID.
pub const DIRID_LEN: usize = 16;

/// Where an entry lives in its backing directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackingName {
    /// The encoded name itself.
    Short(String),
    /// A hashed name, with the full encoded name for its side file.
    Long { hashed: String, full: String },
}

impl BackingName {
    /// The backing directory entry.
    pub fn entry(&self) -> &str {
        match self {
            BackingName::Short(s) => s,
            BackingName::Long { hashed, .. } => hashed,
        }
    }

    /// The side file holding the full name, for long names.
    pub fn name_file(&self) -> Option<String> {
        match self {
            BackingName::Short(_) => None,
            BackingName::Long { hashed, .. } => Some(format!("{hashed}{LONG_NAME_SUFFIX}")),
        }
    }
}

/// What a backing directory entry is.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryKind<'a> {
    /// An encrypted short name to decrypt.
    Short(&'a str),
    /// A hashed long name; read its side file for the full name.
    Long(&'a str),
    /// Housekeeping (`.dirid`, side files, temporary entries): not listed.
    Internal,
}

/// Classifies a backing directory entry by its name alone.
pub fn classify(entry: &str) -> EntryKind<'_> {
    if !entry.starts_with('.') {
        EntryKind::Short(entry)
    } else if entry.starts_with(LONG_PREFIX) && !entry.ends_with(LONG_NAME_SUFFIX) {
        EntryKind::Long(entry)
    } else {
        EntryKind::Internal
    }
}

/// Checks a plaintext name the way the kernel and ext4 would.
pub fn validate(name: &[u8]) -> Result<(), Error> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(Error::InvalidName);
    }
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong { len: name.len() });
    }
    Ok(())
}

fn siv(key: &Key64) -> Aes256Siv {
    Aes256Siv::new(key.expose_secret().into())
}

/// Encrypts a name for the directory with ID `dir_id`.
pub fn encrypt_name(key: &Key64, dir_id: &[u8; DIRID_LEN], name: &[u8]) -> Result<BackingName, Error> {
    validate(name)?;
    let ct = siv(key)
        .encrypt([&dir_id[..]], name)
        .map_err(|_| Error::BadEncryptedName { what: "name encryption failed".into() })?;
    let full = B64.encode(ct);
    if full.len() <= SHORT_MAX {
        return Ok(BackingName::Short(full));
    }
    let hashed = format!("{LONG_PREFIX}{}", B64.encode(Sha256::digest(full.as_bytes())));
    Ok(BackingName::Long { hashed, full })
}

/// Decrypts an encoded (full) name found in the directory with ID `dir_id`.
pub fn decrypt_name(key: &Key64, dir_id: &[u8; DIRID_LEN], encoded: &str) -> Result<Vec<u8>, Error> {
    let ct = B64
        .decode(encoded.as_bytes())
        .map_err(|_| Error::BadEncryptedName { what: format!("{encoded:.40}: not base64url") })?;
    let name = siv(key)
        .decrypt([&dir_id[..]], &ct)
        .map_err(|_| Error::BadEncryptedName { what: format!("{encoded:.40}: authentication failed") })?;
    validate(&name).map_err(|_| Error::BadEncryptedName { what: format!("{encoded:.40}: not a valid name") })?;
    Ok(name)
}

/// Checks that a long name's side file content hashes to its entry name.
pub fn long_name_matches(hashed: &str, full: &str) -> bool {
    hashed == format!("{LONG_PREFIX}{}", B64.encode(Sha256::digest(full.as_bytes())))
}

/// Encrypts with a fresh random nonce (symlink targets, xattr values): equal
/// plaintexts do not give equal ciphertexts. Output: nonce || SIV ciphertext.
pub fn seal_random(key: &Key64, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, Error> {
    let nonce: [u8; 16] = crate::random::array()?;
    let ct = siv(key)
        .encrypt([&nonce[..], context], plain)
        .map_err(|_| Error::BadEncryptedName { what: "encryption failed".into() })?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Reverses [`seal_random`].
pub fn open_random(key: &Key64, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    if sealed.len() < 32 {
        return Err(Error::BadEncryptedName { what: "sealed value too short".into() });
    }
    let (nonce, ct) = sealed.split_at(16);
    siv(key)
        .decrypt([nonce, context], ct)
        .map_err(|_| Error::BadEncryptedName { what: "sealed value fails authentication".into() })
}

/// Encrypts a symlink target into the text stored as the backing link target.
pub fn encrypt_link_target(key: &Key64, target: &[u8]) -> Result<String, Error> {
    Ok(B64.encode(seal_random(key, b"symlink", target)?))
}

/// Decrypts a backing link target.
pub fn decrypt_link_target(key: &Key64, stored: &[u8]) -> Result<Vec<u8>, Error> {
    let sealed =
        B64.decode(stored).map_err(|_| Error::BadEncryptedName { what: "symlink target is not base64url".into() })?;
    open_random(key, b"symlink", &sealed)
}

/// Encrypts a `user.*` xattr name (without the `user.` prefix) into the
/// backing xattr name. Deterministic, so a name can be looked up.
pub fn encrypt_xattr_name(key: &Key64, name: &[u8]) -> Result<String, Error> {
    let ct = siv(key)
        .encrypt([&b"xattr name"[..]], name)
        .map_err(|_| Error::BadEncryptedName { what: "xattr name encryption failed".into() })?;
    Ok(format!("user.cv.{}", B64.encode(ct)))
}

/// Reverses [`encrypt_xattr_name`]; `None` for backing xattrs that are not ours.
pub fn decrypt_xattr_name(key: &Key64, backing: &str) -> Option<Vec<u8>> {
    let enc = backing.strip_prefix("user.cv.")?;
    let ct = B64.decode(enc.as_bytes()).ok()?;
    siv(key).decrypt([&b"xattr name"[..]], &ct).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LABEL_NAMES, derive64};
    use crate::secret::MasterKey;

    fn key() -> Key64 {
        derive64(&MasterKey::generate().unwrap(), LABEL_NAMES, &[])
    }

    #[test]
    fn names_round_trip_and_depend_on_the_directory() {
        let k = key();
        let (d1, d2) = ([1u8; 16], [2u8; 16]);
        for name in [&b"c1.wav"[..], b"a", "caf\u{e9}-\u{1F4DE}.wav".as_bytes(), &[b'x'; 175][..]] {
            let a = encrypt_name(&k, &d1, name).unwrap();
            let b = encrypt_name(&k, &d2, name).unwrap();
            assert_ne!(a.entry(), b.entry());
            assert!(matches!(a, BackingName::Short(_)));
            assert!(matches!(classify(a.entry()), EntryKind::Short(_)));
            assert!(!a.entry().contains('.'));
            assert_eq!(decrypt_name(&k, &d1, a.entry()).unwrap(), name);
            assert!(decrypt_name(&k, &d2, a.entry()).is_err());
        }
    }

    #[test]
    fn long_names_are_hashed_with_a_side_file() {
        let k = key();
        let d = [9u8; 16];
        let name = [b'n'; 255];
        let b = encrypt_name(&k, &d, &name).unwrap();
        let BackingName::Long { hashed, full } = &b else { panic!("255-byte name must be long") };
        assert!(hashed.len() <= 255 && b.name_file().unwrap().len() <= 255);
        assert_eq!(classify(hashed), EntryKind::Long(hashed));
        assert_eq!(classify(&b.name_file().unwrap()), EntryKind::Internal);
        assert!(long_name_matches(hashed, full));
        assert_eq!(decrypt_name(&k, &d, full).unwrap(), name);
        assert!(matches!(encrypt_name(&k, &d, &[b'n'; 256]), Err(Error::NameTooLong { len: 256 })));
    }

    #[test]
    fn invalid_names_and_garbage_are_errors() {
        let k = key();
        let d = [0u8; 16];
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(encrypt_name(&k, &d, bad).is_err());
        }
        for junk in ["", "!!!", "AAAA", "not-a-name"] {
            assert!(decrypt_name(&k, &d, junk).is_err());
        }
        assert_eq!(classify(DIRID_FILE), EntryKind::Internal);
        assert_eq!(classify(".tmp-123"), EntryKind::Internal);
    }

    #[test]
    fn link_targets_and_xattrs_round_trip_and_are_randomised() {
        let k = key();
        let a = encrypt_link_target(&k, b"../team-a/c1.wav").unwrap();
        let b = encrypt_link_target(&k, b"../team-a/c1.wav").unwrap();
        assert_ne!(a, b);
        assert_eq!(decrypt_link_target(&k, a.as_bytes()).unwrap(), b"../team-a/c1.wav");
        let n = encrypt_xattr_name(&k, b"comment").unwrap();
        assert_eq!(decrypt_xattr_name(&k, &n).unwrap(), b"comment");
        assert!(decrypt_xattr_name(&k, "user.other").is_none());
        let v = seal_random(&k, n.as_bytes(), b"value").unwrap();
        assert_eq!(open_random(&k, n.as_bytes(), &v).unwrap(), b"value");
        assert!(open_random(&k, b"other", &v).is_err());
    }
}
