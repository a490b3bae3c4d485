//! Random bytes from the operating system, with one error path.

use crate::Error;

/// Fills `buf` from the OS CSPRNG (getrandom(2)).
pub fn fill(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
}

/// A fresh random array.
pub fn array<const N: usize>() -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
