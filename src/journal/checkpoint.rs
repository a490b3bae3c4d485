//! Checkpoint tokens: the auditor's off-machine anchor of a verified journal, `cv1-<seq>-<hash>`.
//!
//! `audit verify` prints `checkpoint: cv1-<seq>-<64 hex>` where `seq` is the
//! last seal record it verified and the hex is the SHA-256 of that seal's
//! line (the value the next record stores in `prev`). Kept off the machine,
//! it lets a later `audit verify --since TOKEN` prove the journal still
//! holds that sealed record unchanged and extends it: restoring an older
//! copy of the whole audit directory, or cutting records up to that seal,
//! then fails with its own exit code.

use std::fmt;
use std::str::FromStr;

use super::chain::{Hash, from_hex, to_hex};

/// Version prefix of the token.
const PREFIX: &str = "cv1-";

/// A sealed position in the journal: seq of a seal record and its line hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: Hash,
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}-{}", self.seq, to_hex(&self.hash))
    }
}

impl FromStr for Checkpoint {
    type Err = String;
    /// Parses a token; the message says what is wrong with it, in one line.
    fn from_str(s: &str) -> Result<Checkpoint, String> {
        let bad = |why: &str| format!("checkpoint {s:?} is malformed ({why}); expected cv1-<seq>-<64 hex digits>");
        if s.len() > 4 + 20 + 1 + 64 {
            return Err(bad("too long"));
        }
        let rest = s.strip_prefix(PREFIX).ok_or_else(|| bad("it does not start with cv1-"))?;
        let (seq, hex) = rest.split_once('-').ok_or_else(|| bad("no - between seq and hash"))?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) || (seq.len() > 1 && seq.starts_with('0')) {
            return Err(bad("the seq is not a decimal number"));
        }
        let seq: u64 = seq.parse().map_err(|_| bad("the seq is out of range"))?;
        if seq == 0 {
            return Err(bad("seq 0 is never sealed"));
        }
        let hash = from_hex::<32>(hex).ok_or_else(|| bad("the hash is not 64 hex digits"))?;
        Ok(Checkpoint { seq, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_are_refused() {
        let c = Checkpoint { seq: 42, hash: [0xab; 32] };
        let t = c.to_string();
        assert_eq!(t, format!("cv1-42-{}", "ab".repeat(32)));
        assert_eq!(t.parse::<Checkpoint>().unwrap(), c);
        // Upper-case hex is the same token.
        assert_eq!(t.to_uppercase().replace("CV1", "cv1").parse::<Checkpoint>().unwrap(), c);
        for bad in [
            "",
            "cv1-",
            "cv2-42-".to_string().as_str(),
            &format!("cv1-42{}", "ab".repeat(32)),
            &format!("cv1-x-{}", "ab".repeat(32)),
            &format!("cv1--1-{}", "ab".repeat(32)),
            &format!("cv1-0-{}", "ab".repeat(32)),
            &format!("cv1-042-{}", "ab".repeat(32)),
            &format!("cv1-99999999999999999999-{}", "ab".repeat(32)),
            &format!("cv1-42-{}", "ab".repeat(31)),
            &format!("cv1-42-{}zz", "ab".repeat(31)),
            &format!("cv1-42-{} ", "ab".repeat(32)),
            &"9".repeat(10_000),
        ] {
            let e = bad.parse::<Checkpoint>().unwrap_err();
            assert!(e.contains("malformed") && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
