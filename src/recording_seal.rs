//! A recording's seal: one hash naming its whole contents, written into the
//! journal's close record and checked later by `verify-recordings`.
//!
//! seal = SHA-256("callvault recording seal v1" ‖ file ID ‖ tag 0 ‖ … ‖
//! tag n-1 ‖ size as u64 LE), over the sector tags of format 3 (n = the
//! sectors the size needs; a hole's tag is 16 zero bytes).
//!
//! Why tags and not the plaintext: each tag is a MAC of its sector, so the
//! hash of all tags names the contents as well as a hash of the plaintext
//! would, costs 16 bytes per 4 KiB to compute, and tells a reader of the
//! (unencrypted) journal nothing about what was said: without the volume's
//! key no guess of the audio can be checked against it.
//!
//! The hash is built while a recorder appends: every sector it completes in
//! order is absorbed once ([`SealBuilder::absorb`]); the close only adds the
//! last, partial sector. A writer that goes back into sectors already
//! absorbed makes the builder start over from the tag sectors at the next
//! close (16 bytes read per 4 KiB of file: 4 MiB for a 1 GiB recording).

use sha2::{Digest, Sha256};

use crate::tags::Tag;

const DOMAIN: &[u8] = b"callvault recording seal v1";

/// A finished seal: the SHA-256 above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seal(pub [u8; 32]);

impl Seal {
    /// The form the journal stores: 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Seal::to_hex`]'s form; `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Seal> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Seal(out))
    }
}

/// The seal of a file being written, one completed sector at a time.
#[derive(Clone)]
pub struct SealBuilder {
    hash: Sha256,
    /// Sectors `0..next` are absorbed.
    next: u64,
}

impl SealBuilder {
    pub fn new(file_id: &[u8; 16]) -> Self {
        let mut hash = Sha256::new();
        hash.update(DOMAIN);
        hash.update(file_id);
        SealBuilder { hash, next: 0 }
    }

    /// How many leading sectors are absorbed.
    pub fn absorbed(&self) -> u64 {
        self.next
    }

    /// Absorbs the final tag of sector `index` if it is the next one;
    /// returns whether it was.
    pub fn absorb(&mut self, index: u64, tag: &Tag) -> bool {
        if index != self.next {
            return false;
        }
        self.hash.update(tag);
        self.next += 1;
        true
    }

    /// The seal of a file of `size` bytes whose tags past the absorbed ones
    /// are `rest`, in order (as many as the size needs).
    pub fn finish<'a>(&self, size: u64, rest: impl IntoIterator<Item = &'a Tag>) -> Seal {
        let mut hash = self.hash.clone();
        for tag in rest {
            hash.update(tag);
        }
        hash.update(size.to_le_bytes());
        Seal(hash.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: u8) -> Vec<Tag> {
        (0..n).map(|i| [i; 16]).collect()
    }

    #[test]
    fn incremental_and_all_at_once_agree() {
        let t = tags(5);
        let whole = SealBuilder::new(&[9; 16]).finish(5 * 4096 - 10, &t);
        let mut b = SealBuilder::new(&[9; 16]);
        for (i, tag) in t[..3].iter().enumerate() {
            assert!(b.absorb(i as u64, tag));
        }
        assert!(!b.absorb(7, &t[4]), "out of order is not absorbed");
        assert_eq!(b.absorbed(), 3);
        assert_eq!(b.finish(5 * 4096 - 10, &t[3..]), whole);
    }

    #[test]
    fn size_file_and_every_tag_change_the_seal() {
        let t = tags(3);
        let s = SealBuilder::new(&[1; 16]).finish(9000, &t);
        assert_ne!(SealBuilder::new(&[1; 16]).finish(9001, &t), s);
        assert_ne!(SealBuilder::new(&[2; 16]).finish(9000, &t), s);
        let mut u = t.clone();
        u[1][0] ^= 1;
        assert_ne!(SealBuilder::new(&[1; 16]).finish(9000, &u), s);
    }

    #[test]
    fn hex_round_trip_and_refusals() {
        let s = SealBuilder::new(&[1; 16]).finish(0, &[]);
        assert_eq!(Seal::from_hex(&s.to_hex()), Some(s));
        for bad in ["", "00", &"g".repeat(64), &"A".repeat(64), &"0".repeat(65)] {
            assert_eq!(Seal::from_hex(bad), None, "{bad}");
        }
    }
}
