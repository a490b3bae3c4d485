//! K-of-N Shamir secret sharing of a 32-byte secret, for dual control of a keyslot (PCI DSS 3.6.1.2).
//!
//! [`split`] cuts a secret into `n` shares of which any `k` ([`combine`])
//! give it back, and fewer give nothing: each byte of the secret is the
//! constant term of its own random polynomial of degree `k - 1` over
//! GF(2^8), and share `x` holds the 32 values at `x`. With `k - 1` shares
//! every value of the secret is equally likely: for any candidate secret
//! there is exactly one polynomial through it and those shares, and the
//! coefficients are drawn uniformly. A test below checks this with the
//! crate's own field arithmetic. Shares are numbered 1 to `n` (`x = 0` is
//! where the secret sits) and serialised as 33 bytes: `x`, then the 32 `y`.
//! The field is GF(2^8) with AES's polynomial x^8 + x^4 + x^3 + x + 1; a
//! test pins it, since a share handed out today must still combine after
//! any upgrade.
//!
//! 1-of-N is refused: one share would then be the secret itself, so one
//! holder alone could open the keyslot, which is not dual control.
//!
//! [`combine`] cannot tell a wrong share from a right one: plain Shamir has
//! no checksum, so a mistyped share, or shares of two different splits, give
//! 32 wrong bytes, not an error. The caller finds out when the keyslot
//! fails to open (its key wrap is authenticated).
//!
//! # Why vsss-rs
//!
//! Three crates were read (versions current on crates.io when written):
//! - sharks 0.5.0 (2021, no release since): draws the polynomial
//!   coefficients from 1 to 255, never 0. For 2-of-N that means `y != s` in
//!   every share, so a single share rules out one value of every secret
//!   byte: a leak, in exactly the property Shamir is used for.
//! - blahaj 0.7.0, the maintained fork of sharks, fixed that (0.6.0) and
//!   wipes its shares and field elements on drop. But its GF(2^8) multiply
//!   and divide look up log/exp tables indexed by secret bytes (a
//!   cache-timing channel), its field type cannot be named outside the
//!   crate, and `recover` given one `x` twice (with different `y`) returns
//!   garbage instead of refusing, as long as enough distinct `x` remain.
//! - vsss-rs 6.0.1 (chosen): maintained (6.0 in 2026), audited twice (the
//!   fixes show in its source: coefficients uniform over the whole field
//!   including zero, `x` never zero, no wrap-around of identifiers), field
//!   arithmetic without lookup tables (constant time), refuses zero and
//!   duplicate identifiers itself, has a `zeroize` feature, and exposes
//!   [`vsss_rs::Gf256`], which the tests use. Built without default
//!   features: only its GF(2^8) byte code, none of the curve or bigint code.
//!
//! # What is wiped
//!
//! Every [`Share`] and the result of [`combine`] are wiped on drop, and so
//! are the byte vectors exchanged with vsss-rs (wrapped in `Zeroizing` as
//! soon as they are ours). Not wiped, because vsss-rs frees it where we
//! cannot reach: the polynomial `split` evaluates, a vector of `Gf256`
//! (a `Copy` type, which cannot wipe itself on drop). The crate reuses it
//! for every byte, so what is left is the last byte of the secret and that
//! byte's `k - 1` coefficients. Copies in registers and on the stack, and
//! the bytes a move of a `Share` leaves behind, are beyond what Rust can
//! promise to erase.
//!
//! Randomness comes from the OS (getrandom(2)), as everywhere in callvault.

use std::fmt;

use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;
use vsss_rs::{Gf256, IdentifierGf256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the shared secret (a 256-bit key).
pub const SECRET_LEN: usize = 32;
/// Length of a serialised share: `x`, then `y`.
pub const SHARE_LEN: usize = SECRET_LEN + 1;
/// Smallest threshold: below 2 there is no dual control.
pub const MIN_THRESHOLD: u8 = 2;
/// Most shares one split makes.
pub const MAX_SHARES: u8 = 16;

/// One share: the values at `x` of the 32 polynomials. `y` is a secret,
/// wiped on drop, never printed (`Debug` shows `x` only); not Clone.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Share {
    /// The share's number, 1 to 255 (a split numbers its shares 1 to n).
    pub x: u8,
    y: [u8; SECRET_LEN],
}

impl Share {
    /// `x` followed by `y`, in a buffer wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SHARE_LEN]> {
        let mut out = Zeroizing::new([0u8; SHARE_LEN]);
        out[0] = self.x;
        out[1..].copy_from_slice(&self.y);
        out
    }

    /// Parses [`Share::to_bytes`]'s form. `x` must not be 0.
    pub fn from_bytes(bytes: &[u8; SHARE_LEN]) -> Result<Share, ShamirError> {
        if bytes[0] == 0 {
            return Err(ShamirError::ZeroX);
        }
        let mut share = Share { x: bytes[0], y: [0u8; SECRET_LEN] };
        share.y.copy_from_slice(&bytes[1..]);
        Ok(share)
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share").field("x", &self.x).finish_non_exhaustive()
    }
}

/// Why a split or a combination was refused. Holds no share values.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShamirError {
    /// Threshold below [`MIN_THRESHOLD`].
    ThresholdTooLow { threshold: u8 },
    /// Threshold above the number of shares to make.
    ThresholdAboveShares { threshold: u8, shares: u8 },
    /// More shares asked for than [`MAX_SHARES`].
    TooManyShares { shares: u8, max: u8 },
    /// Fewer shares given than the threshold.
    NotEnoughShares { given: usize, threshold: u8 },
    /// Two shares given have the same number.
    DuplicateShare { x: u8 },
    /// A share numbered 0 (damaged or mistyped: no split makes one).
    ZeroX,
    /// The OS random number generator failed.
    Random(getrandom::Error),
    /// vsss-rs refused: cannot happen with the checks above, kept so a
    /// change in the crate is an error rather than a panic.
    Backend(vsss_rs::Error),
}

impl fmt::Display for ShamirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShamirError::ThresholdTooLow { threshold } => write!(
                f,
                "threshold {threshold} is too low: one share alone would open the keyslot, which is not dual \
                 control; ask for at least {MIN_THRESHOLD}"
            ),
            ShamirError::ThresholdAboveShares { threshold, shares } => write!(
                f,
                "threshold {threshold} is more than the {shares} shares to make: the secret could never be \
                 recovered; make at least {threshold} shares"
            ),
            ShamirError::TooManyShares { shares, max } => {
                write!(f, "{shares} shares asked for; at most {max} can be made")
            }
            ShamirError::NotEnoughShares { given, threshold } => {
                write!(f, "{given} shares given; {threshold} are needed to recover the secret")
            }
            ShamirError::DuplicateShare { x } => {
                write!(f, "share {x} was given twice; each share must be a different holder's")
            }
            ShamirError::ZeroX => {
                write!(f, "share number 0 is invalid (shares are numbered from 1); the share is damaged or mistyped")
            }
            ShamirError::Random(e) => write!(f, "the system random number generator failed: {e}"),
            ShamirError::Backend(e) => write!(f, "secret sharing failed in vsss-rs: {e}"),
        }
    }
}

impl std::error::Error for ShamirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShamirError::Random(e) => Some(e),
            _ => None,
        }
    }
}

/// Splits `secret` into `shares` shares numbered 1 to `shares`, any
/// `threshold` of which recover it. 2 <= threshold <= shares <= 16.
pub fn split(secret: &[u8; SECRET_LEN], threshold: u8, shares: u8) -> Result<Vec<Share>, ShamirError> {
    if threshold < MIN_THRESHOLD {
        return Err(ShamirError::ThresholdTooLow { threshold });
    }
    if shares > MAX_SHARES {
        return Err(ShamirError::TooManyShares { shares, max: MAX_SHARES });
    }
    if threshold > shares {
        return Err(ShamirError::ThresholdAboveShares { threshold, shares });
    }
    // vsss-rs takes an infallible RNG, so the OS generator is wrapped in
    // UnwrapErr, which panics on failure. Tried once first so that a
    // failure is an error here: getrandom(2) fails only before the kernel's
    // pool is ready (a blocking call waits instead) or on a bad buffer, and
    // the crate retries EINTR, so once a call has succeeded later ones do too.
    getrandom::fill(&mut [0u8; 1]).map_err(ShamirError::Random)?;
    let ids = (1..=shares).map(|x| IdentifierGf256(Gf256(x)));
    let raw = Gf256::split_bytes_with_participant_ids_iter(
        usize::from(threshold),
        usize::from(shares),
        secret,
        UnwrapErr(SysRng),
        ids,
    )
    .map_err(ShamirError::Backend)?;
    // Ours from here: wiped whatever happens next.
    let raw: Vec<Zeroizing<Vec<u8>>> = raw.into_iter().map(Zeroizing::new).collect();
    if raw.len() != usize::from(shares) {
        return Err(ShamirError::Backend(vsss_rs::Error::InvalidShare));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (bytes, x) in raw.iter().zip(1..=shares) {
        // Each share is [x, y_0 .. y_31], in the order of the ids given.
        let bytes: &[u8; SHARE_LEN] =
            bytes.as_slice().try_into().map_err(|_| ShamirError::Backend(vsss_rs::Error::InvalidShare))?;
        if bytes[0] != x {
            return Err(ShamirError::Backend(vsss_rs::Error::InvalidShare));
        }
        out.push(Share::from_bytes(bytes)?);
    }
    Ok(out)
}

/// Recovers the secret from at least `threshold` shares of one split (all
/// of them are used). Refuses fewer than `threshold`, a threshold below 2,
/// a share numbered 0 and two shares with the same number. Shares of
/// another split, or a damaged one, give a wrong secret, not an error.
pub fn combine(shares: &[Share], threshold: u8) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    if threshold < MIN_THRESHOLD {
        return Err(ShamirError::ThresholdTooLow { threshold });
    }
    if shares.len() < usize::from(threshold) {
        return Err(ShamirError::NotEnoughShares { given: shares.len(), threshold });
    }
    for (i, s) in shares.iter().enumerate() {
        if s.x == 0 {
            return Err(ShamirError::ZeroX);
        }
        if shares[..i].iter().any(|t| t.x == s.x) {
            return Err(ShamirError::DuplicateShare { x: s.x });
        }
    }
    // Each inner vector is allocated once at 33 bytes and wiped on drop
    // (Zeroizing wipes every element of the outer vector).
    let mut raw: Zeroizing<Vec<Vec<u8>>> = Zeroizing::new(Vec::with_capacity(shares.len()));
    for s in shares {
        raw.push(s.to_bytes().to_vec());
    }
    let secret = Zeroizing::new(Gf256::combine_bytes(raw.as_slice()).map_err(ShamirError::Backend)?);
    let mut out = Zeroizing::new([0u8; SECRET_LEN]);
    if secret.len() != SECRET_LEN {
        return Err(ShamirError::Backend(vsss_rs::Error::InvalidSecret));
    }
    out.copy_from_slice(&secret);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_secret() -> [u8; SECRET_LEN] {
        crate::random::array().unwrap()
    }

    /// A share by value from a share by reference (Share is not Clone).
    fn copy(s: &Share) -> Share {
        Share::from_bytes(&s.to_bytes()).unwrap()
    }

    fn pick(shares: &[Share], which: &[usize]) -> Vec<Share> {
        which.iter().map(|&i| copy(&shares[i])).collect()
    }

    #[test]
    fn every_three_of_five_recover_the_secret() {
        let secret = random_secret();
        let shares = split(&secret, 3, 5).unwrap();
        assert_eq!(shares.iter().map(|s| s.x).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        let mut subsets = 0;
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    assert_eq!(*combine(&pick(&shares, &[a, b, c]), 3).unwrap(), secret, "{a} {b} {c}");
                    // Order does not matter.
                    assert_eq!(*combine(&pick(&shares, &[c, a, b]), 3).unwrap(), secret, "{c} {a} {b}");
                    subsets += 1;
                }
            }
        }
        assert_eq!(subsets, 10);
        // More than the threshold works too.
        assert_eq!(*combine(&pick(&shares, &[4, 0, 2, 1]), 3).unwrap(), secret);
        assert_eq!(*combine(&shares, 3).unwrap(), secret);
    }

    #[test]
    fn threshold_minus_one_shares_do_not_give_the_secret() {
        let secret = random_secret();
        let shares = split(&secret, 3, 5).unwrap();
        for (a, b) in [(0, 1), (1, 4), (2, 3)] {
            let two = pick(&shares, &[a, b]);
            let e = combine(&two, 3).expect_err("2 of 3");
            assert!(matches!(e, ShamirError::NotEnoughShares { given: 2, threshold: 3 }), "{e}");
            // Forced through with a threshold of 2: a line through two
            // points of a parabola, whose value at 0 is not the secret.
            assert_ne!(*combine(&two, 2).unwrap(), secret, "{a} {b}");
        }
    }

    /// The information-theoretic property, with vsss-rs's own field
    /// arithmetic: for one share (x, y) of a 2-of-n split and ANY candidate
    /// secret c, the line through (0, c) and (x, y) exists (its slope is
    /// (y - c) / x, unique), so a second share on it exists, and combining
    /// the real share with it gives c. One share is as consistent with every
    /// secret as with the true one; which line was used depends only on the
    /// slope, drawn uniformly, so y says nothing about the secret.
    #[test]
    fn one_share_of_two_of_three_is_consistent_with_every_secret() {
        let secret = random_secret();
        let shares = split(&secret, 2, 3).unwrap();
        let real = &shares[1];
        let x = Gf256(real.x);
        for c in 0..=255u8 {
            let candidate = [c; SECRET_LEN];
            let other_x = Gf256(3);
            let mut fake = [0u8; SHARE_LEN];
            fake[0] = other_x.0;
            for i in 0..SECRET_LEN {
                let slope = (Gf256(real.y[i]) - Gf256(c)) / x;
                assert_eq!(Gf256(c) + slope * x, Gf256(real.y[i]), "the line passes through the share");
                fake[1 + i] = (Gf256(c) + slope * other_x).0;
            }
            let pair = [copy(real), Share::from_bytes(&fake).unwrap()];
            assert_eq!(*combine(&pair, 2).unwrap(), candidate, "candidate {c}");
        }
    }

    /// Coefficients must be uniform over the whole field, zero included.
    /// Drawn from 1..=255, as sharks 0.5 does, a 2-of-n share would never
    /// equal the secret byte it hides (y = s + a*x with a*x != 0), leaking
    /// one excluded value per byte. Uniform, y == s happens 1 time in 256:
    /// 9,600 byte samples expect 37.5 hits (standard deviation 6.1). The
    /// chance of a false failure, outside 1..=150, is below 10^-16.
    #[test]
    fn a_share_byte_equals_the_secret_byte_one_time_in_256() {
        let secret = random_secret();
        let mut hits = 0usize;
        for _ in 0..300 {
            let shares = split(&secret, 2, 2).unwrap();
            hits += shares[0].y.iter().zip(&secret).filter(|(y, s)| y == s).count();
        }
        assert!((1..=150).contains(&hits), "{hits} hits in 9600");
    }

    /// Shares handed out must combine after any upgrade: pins the field
    /// (GF(2^8) with the AES polynomial 0x11b) and the byte layout. The line
    /// f(t) = 0x53 + 0x80 t gives f(1) = 0xd3 and f(2) = 0x53 ^ (0x80 * 2)
    /// = 0x53 ^ 0x1b = 0x48 (with 0x11d it would be 0x53 ^ 0x1d).
    #[test]
    fn known_shares_combine_to_the_known_secret() {
        let mut one = [0xd3u8; SHARE_LEN];
        one[0] = 1;
        let mut two = [0x48u8; SHARE_LEN];
        two[0] = 2;
        let shares = [Share::from_bytes(&two).unwrap(), Share::from_bytes(&one).unwrap()];
        assert_eq!(*combine(&shares, 2).unwrap(), [0x53; SECRET_LEN]);
    }

    #[test]
    fn split_refuses_bad_parameters() {
        let s = [7u8; SECRET_LEN];
        assert!(matches!(split(&s, 1, 3), Err(ShamirError::ThresholdTooLow { threshold: 1 })));
        assert!(matches!(split(&s, 0, 3), Err(ShamirError::ThresholdTooLow { threshold: 0 })));
        assert!(matches!(split(&s, 4, 3), Err(ShamirError::ThresholdAboveShares { threshold: 4, shares: 3 })));
        assert!(matches!(split(&s, 2, 17), Err(ShamirError::TooManyShares { shares: 17, max: 16 })));
        let e = split(&s, 1, 5).err().unwrap();
        assert!(e.to_string().contains("not dual control"), "{e}");
        // The edges that are allowed.
        assert_eq!(*combine(&split(&s, 2, 2).unwrap(), 2).unwrap(), s);
        let sixteen = split(&s, 16, 16).unwrap();
        assert_eq!(sixteen.len(), 16);
        assert_eq!(*combine(&sixteen, 16).unwrap(), s);
        assert!(combine(&sixteen[..15], 16).is_err());
    }

    #[test]
    fn combine_refuses_duplicates_zero_and_low_thresholds() {
        let secret = random_secret();
        let shares = split(&secret, 2, 3).unwrap();
        let dup = pick(&shares, &[0, 2, 0]);
        assert!(matches!(combine(&dup, 2), Err(ShamirError::DuplicateShare { x: 1 })));
        // Same number, other values (two holders' shares of two splits).
        let mut other = pick(&split(&secret, 2, 3).unwrap(), &[1]);
        other.push(copy(&shares[1]));
        assert!(matches!(combine(&other, 2), Err(ShamirError::DuplicateShare { x: 2 })));
        let mut zero = pick(&shares, &[0, 1]);
        zero[1].x = 0;
        assert!(matches!(combine(&zero, 2), Err(ShamirError::ZeroX)));
        assert!(matches!(combine(&pick(&shares, &[0]), 1), Err(ShamirError::ThresholdTooLow { threshold: 1 })));
        assert!(matches!(combine(&[], 2), Err(ShamirError::NotEnoughShares { given: 0, threshold: 2 })));
    }

    #[test]
    fn shares_round_trip_through_bytes_and_never_print_y() {
        let secret = random_secret();
        let shares = split(&secret, 2, 3).unwrap();
        for s in &shares {
            let b = s.to_bytes();
            assert_eq!(b[0], s.x);
            assert_eq!(b[1..], s.y);
            let back = Share::from_bytes(&b).unwrap();
            assert_eq!((back.x, back.y), (s.x, s.y));
        }
        assert!(matches!(Share::from_bytes(&[0u8; SHARE_LEN]), Err(ShamirError::ZeroX)));
        assert_eq!(format!("{:?}", shares[2]), "Share { x: 3, .. }");
        // Fresh randomness for every split.
        let again = split(&secret, 2, 3).unwrap();
        assert_ne!(again[0].y, shares[0].y);
    }
}
