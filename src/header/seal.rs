//! Sealing a secret to a keyslot's X25519 public key, and opening it.
//!
//! The construction is age's X25519 recipient stanza with AES-256-GCM in
//! place of ChaCha20-Poly1305 (the cipher this crate already uses for key
//! wrapping): an ephemeral X25519 key pair, the shared secret, a key from
//! HKDF-SHA-256 with salt `ephemeral public || recipient public`, and one
//! AES-256-GCM encryption under that single-use key (so a zero nonce is
//! safe). Output: ephemeral public key (32) || ciphertext || tag (16).
//!
//! Why public keys at all: rotation, dual control and an administrator's
//! reset must give every other operator's slot a new payload without that
//! operator's passphrase. Sealing to the slot's public key needs none; only
//! opening needs the slot's private key, which only the slot's secret
//! unwraps. A holder of an old master key or an old header learns nothing
//! about a payload sealed afterwards.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// Bytes a sealed payload adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 32 + 16;
const LABEL_SEAL: &[u8] = b"callvault v2 keyslot payload";

/// A fresh X25519 private key from the OS random generator.
pub fn generate_secret() -> Result<StaticSecret, Error> {
    let mut bytes = crate::random::array::<32>()?;
    let secret = StaticSecret::from(bytes);
    bytes.zeroize();
    Ok(secret)
}

fn payload_key(shared: &[u8; 32], ephemeral: &PublicKey, recipient: &PublicKey) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    // expand only fails for outputs over 255*32 bytes; 32 is always valid.
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(LABEL_SEAL, key.as_mut_slice())
        .expect("HKDF output of 32 bytes is within limits");
    key
}

/// Seals `plain` to `recipient`, bound to `aad`.
pub fn seal(recipient: &PublicKey, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let ephemeral = generate_secret()?;
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(recipient);
    if !shared.was_contributory() {
        return Err(Error::Kdf("a keyslot's public key is a low-order point".into()));
    }
    let key = payload_key(shared.as_bytes(), &ephemeral_public, recipient);
    let cipher = Aes256Gcm::new((&*key).into());
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
    out.extend_from_slice(ephemeral_public.as_bytes());
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from([0u8; 12]), aad, (&mut out[32..]).into())
        .map_err(|_| Error::Kdf("sealing a keyslot payload failed".into()))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens what [`seal`] made for `secret`'s public key; `None` if it was
/// sealed to another key, changed, or bound to other `aad`.
pub fn open(secret: &StaticSecret, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&sealed[..32]);
    let ephemeral = PublicKey::from(ephemeral);
    let shared = secret.diffie_hellman(&ephemeral);
    if !shared.was_contributory() {
        return None;
    }
    let key = payload_key(shared.as_bytes(), &ephemeral, &PublicKey::from(secret));
    let cipher = Aes256Gcm::new((&*key).into());
    let body = &sealed[32..sealed.len() - 16];
    let tag = Tag::try_from(&sealed[sealed.len() - 16..]).ok()?;
    let mut plain = Zeroizing::new(body.to_vec());
    cipher.decrypt_inout_detached(&Nonce::from([0u8; 12]), aad, plain.as_mut_slice().into(), &tag).ok()?;
    Some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_with_the_right_key_and_binding() {
        let sk = generate_secret().unwrap();
        let pk = PublicKey::from(&sk);
        let sealed = seal(&pk, b"master key bytes", b"slot 3").unwrap();
        assert_eq!(sealed.len(), 16 + SEAL_OVERHEAD);
        assert_eq!(&open(&sk, &sealed, b"slot 3").unwrap()[..], b"master key bytes");
        assert!(open(&sk, &sealed, b"slot 4").is_none(), "bound to its associated data");
        assert!(open(&generate_secret().unwrap(), &sealed, b"slot 3").is_none(), "another key");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open(&sk, &bad, b"slot 3").is_none(), "byte {i} changed");
        }
        assert!(open(&sk, &sealed[..40], b"slot 3").is_none());
        // Two seals of the same plaintext share nothing.
        let again = seal(&pk, b"master key bytes", b"slot 3").unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn a_low_order_public_key_is_refused() {
        assert!(seal(&PublicKey::from([0u8; 32]), b"x", b"").is_err());
    }
}
