//! The hash chain: each record carries the SHA-256 of the previous record's exact line.

use sha2::{Digest, Sha256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// The `prev` of the genesis record: 32 zero bytes.
pub const GENESIS_PREV: Hash = [0u8; 32];

/// Hash of one journal line: SHA-256 over its bytes, without the newline.
pub fn line_hash(line: &[u8]) -> Hash {
    Sha256::digest(line).into()
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes exactly `N` bytes of hex (either case); `None` for anything else.
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

/// The tip of the chain: the last record written and the hash of its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Sequence number of the last record (0 before the genesis record).
    pub seq: u64,
    pub hash: Hash,
}

impl Tip {
    /// The state before the genesis record.
    pub const START: Tip = Tip { seq: 0, hash: GENESIS_PREV };

    /// Whether `(seq, prev)` is the record that must follow this tip.
    pub fn is_followed_by(&self, seq: u64, prev: &Hash) -> bool {
        seq == self.seq.wrapping_add(1) && prev == &self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let h = line_hash(b"{\"seq\":1}");
        assert_eq!(from_hex::<32>(&to_hex(&h)), Some(h));
        assert_eq!(from_hex::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(from_hex::<2>("0aF"), None);
        assert_eq!(from_hex::<2>("0aFg"), None);
        assert_eq!(from_hex::<2>("é0a"), None);
    }

    #[test]
    fn known_answer() {
        assert_eq!(to_hex(&line_hash(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
