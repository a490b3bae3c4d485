//! Keyfiles as an unlock factor: any small files (on a USB stick, say), hashed into one 32-byte digest.
//!
//! As in LUKS and VeraCrypt, a keyfile is any file the operator holds: its
//! bytes are the secret, not its name. [`digest_keyfiles`] reads each one
//! through a hard cap ([`MAX_KEYFILE`]), streaming it into SHA-256, and
//! combines the per-file digests as
//!
//! ```text
//! SHA-256( "callvault v2 keyfiles" || count as u32 LE || d_1 || ... || d_n )
//! ```
//!
//! where `d_1 ..= d_n` are the per-file SHA-256 digests sorted bytewise. So
//! the order the files are named in does not matter (an operator need not
//! remember it), the same file named twice counts twice (the count and both
//! digests go in), and any change to any byte of any file changes the result.
//! The label keeps this digest from ever equalling a plain SHA-256 of some
//! other input; label and digests have fixed lengths, so the encoding is
//! unambiguous. The header code treats the result as a secret input to the
//! keyslot KDF, next to (or instead of) the passphrase.
//!
//! What is refused, each with its own [`KeyfileError`] naming the path: no
//! keyfile at all; a missing or unreadable file; a directory; a FIFO or
//! socket (what they yield depends on another process, and reading one
//! could wait forever); an empty file (it adds no secret); anything longer
//! than [`MAX_KEYFILE`], found by reading at most one byte past the cap, so
//! `/dev/zero` or `/dev/urandom` named as a keyfile is refused at once, never
//! read forever. Files are opened non-blocking, so a device or FIFO cannot
//! hold the caller in `open(2)` or `read(2)` either.
//!
//! Wiping: the read buffer, every per-file digest and the result are wiped
//! on drop, and so are the SHA-256 states (sha2 is built with `zeroize`).
//! The page cache and the files themselves are beyond reach.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Largest keyfile read (8 MiB): far beyond any key (LUKS's default cap is
/// the same), small enough that a device named by mistake is refused at
/// once. One byte more and the file is refused.
pub const MAX_KEYFILE: u64 = 8 * 1024 * 1024;
/// Most keyfiles one unlock may name: enough for any real setup, and it
/// bounds the work of one attempt to 64 x 8 MiB.
pub const MAX_KEYFILES: usize = 64;
/// Domain label hashed first, so the digest is callvault's and version 2's alone.
const DOMAIN: &[u8] = b"callvault v2 keyfiles";
/// Read size: large enough that an 8 MiB file is 128 reads.
const READ_BUF: usize = 64 * 1024;

/// The combined digest of a set of keyfiles: a secret, wiped on drop.
/// Not Clone, not Debug, like every key type (see `secret.rs`).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct KeyfileDigest(Box<[u8; 32]>);

impl KeyfileDigest {
    /// The digest bytes. Named so every use is easy to find in review.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a set of keyfiles could not be used. Every variant about one file
/// names it; none holds any of its contents.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyfileError {
    /// The list of keyfiles is empty.
    NoKeyfiles,
    /// More than [`MAX_KEYFILES`] were named.
    TooMany { count: usize, max: usize },
    /// The file does not exist (or a directory on its path does not).
    NotFound { path: PathBuf },
    /// Opening or reading failed for another reason (permissions, I/O).
    Io { path: PathBuf, source: io::Error },
    /// The path names a directory.
    IsDirectory { path: PathBuf },
    /// The path names a FIFO or a socket.
    NotAFile { path: PathBuf, kind: &'static str },
    /// A device opened non-blocking had nothing to give.
    WouldBlock { path: PathBuf },
    /// The file is empty.
    Empty { path: PathBuf },
    /// The file is longer than `limit` bytes ([`MAX_KEYFILE`]).
    TooLarge { path: PathBuf, limit: u64 },
}

impl fmt::Display for KeyfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyfileError::NoKeyfiles => write!(f, "no keyfile given; name at least one keyfile"),
            KeyfileError::TooMany { count, max } => {
                write!(f, "{count} keyfiles given; at most {max} may be used for one unlock")
            }
            KeyfileError::NotFound { path } => {
                write!(f, "keyfile {}: not found; check the path and that its device is mounted", path.display())
            }
            KeyfileError::Io { path, source } => write!(f, "keyfile {}: {source}", path.display()),
            KeyfileError::IsDirectory { path } => {
                write!(f, "keyfile {}: is a directory; name the keyfile itself, not its folder", path.display())
            }
            KeyfileError::NotAFile { path, kind } => {
                write!(f, "keyfile {}: is a {kind}; a keyfile must be a small regular file", path.display())
            }
            KeyfileError::WouldBlock { path } => write!(
                f,
                "keyfile {}: is a device with nothing to read now; a keyfile must be a small regular file",
                path.display()
            ),
            KeyfileError::Empty { path } => {
                write!(f, "keyfile {}: is empty; an empty file adds no secret", path.display())
            }
            KeyfileError::TooLarge { path, limit } => write!(
                f,
                "keyfile {}: larger than {}; a keyfile must be a small file, not a device",
                path.display(),
                human_size(*limit)
            ),
        }
    }
}

impl std::error::Error for KeyfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyfileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `8 MiB` for a whole number of MiB, else bytes.
fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 { format!("{} MiB", bytes / MIB) } else { format!("{bytes} bytes") }
}

/// Reads every keyfile in `paths` and combines them as the module doc says.
/// The order of `paths` does not matter; a path given twice counts twice.
pub fn digest_keyfiles(paths: &[PathBuf]) -> Result<KeyfileDigest, KeyfileError> {
    if paths.is_empty() {
        return Err(KeyfileError::NoKeyfiles);
    }
    if paths.len() > MAX_KEYFILES {
        return Err(KeyfileError::TooMany { count: paths.len(), max: MAX_KEYFILES });
    }
    // Allocated once at its final size: pushing never reallocates, so no
    // unwiped copy of a digest is left behind.
    let mut digests: Zeroizing<Vec<[u8; 32]>> = Zeroizing::new(Vec::with_capacity(paths.len()));
    let mut buf = Zeroizing::new(vec![0u8; READ_BUF]);
    for path in paths {
        digests.push(*digest_one(path, &mut buf)?);
    }
    // sort_unstable sorts in place; a stable sort would copy digests into
    // a scratch buffer of its own and free it unwiped.
    digests.sort_unstable();

    let count = u32::try_from(digests.len()).expect("at most MAX_KEYFILES, far below u32::MAX");
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(count.to_le_bytes());
    for d in digests.iter() {
        h.update(d);
    }
    let mut out = Box::new([0u8; 32]);
    h.finalize_into((&mut *out).into());
    Ok(KeyfileDigest(out))
}

/// SHA-256 of one keyfile, read in `buf`-sized pieces and never more than
/// [`MAX_KEYFILE`] + 1 bytes in all.
fn digest_one(path: &Path, buf: &mut [u8]) -> Result<Zeroizing<[u8; 32]>, KeyfileError> {
    let mut file = open_keyfile(path)?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(KeyfileError::IsDirectory { path: path.to_path_buf() });
    }
    if ft.is_fifo() || ft.is_socket() {
        let kind = if ft.is_fifo() { "FIFO" } else { "socket" };
        return Err(KeyfileError::NotAFile { path: path.to_path_buf(), kind });
    }
    // Regular files and devices are read the same way: the size in the
    // metadata is not trusted (a device says 0, a file may grow), only
    // what the reads return.
    let mut h = Sha256::new();
    let mut total: u64 = 0;
    let stop_at = MAX_KEYFILE + 1;
    while total < stop_at {
        // Never ask for more than would reach one byte past the cap.
        let want = usize::try_from(stop_at - total).map_or(buf.len(), |left| left.min(buf.len()));
        match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return Err(KeyfileError::WouldBlock { path: path.to_path_buf() });
            }
            Err(e) => return Err(io_error(path, e)),
        }
    }
    if total > MAX_KEYFILE {
        return Err(KeyfileError::TooLarge { path: path.to_path_buf(), limit: MAX_KEYFILE });
    }
    if total == 0 {
        return Err(KeyfileError::Empty { path: path.to_path_buf() });
    }
    let mut d = Zeroizing::new([0u8; 32]);
    h.finalize_into((&mut *d).into());
    Ok(d)
}

/// Opens read-only and non-blocking: a FIFO without a writer would
/// otherwise block `open(2)`, and a terminal or device `read(2)`. No
/// controlling terminal is acquired by opening a tty. Regular files ignore
/// both flags.
fn open_keyfile(path: &Path) -> Result<File, KeyfileError> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: io::Error) -> KeyfileError {
    match e.kind() {
        ErrorKind::NotFound => KeyfileError::NotFound { path: path.to_path_buf() },
        _ => KeyfileError::Io { path: path.to_path_buf(), source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    fn digest(paths: &[&PathBuf]) -> [u8; 32] {
        let paths: Vec<PathBuf> = paths.iter().map(|p| (*p).clone()).collect();
        *digest_keyfiles(&paths).unwrap().expose_secret()
    }

    #[test]
    fn order_of_the_keyfiles_does_not_matter() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a", b"first keyfile");
        let b = write(d.path(), "b", &[0u8, 1, 2, 3, 255]);
        let c = write(d.path(), "c.jpg", &vec![0x5a; 100_000]);
        let want = digest(&[&a, &b, &c]);
        for order in [[&a, &c, &b], [&b, &a, &c], [&b, &c, &a], [&c, &a, &b], [&c, &b, &a]] {
            assert_eq!(digest(&order), want);
        }
        // Fewer files, another digest.
        assert_ne!(digest(&[&a, &b]), want);
    }

    #[test]
    fn any_one_byte_change_changes_the_digest() {
        let d = tempfile::tempdir().unwrap();
        let mut contents = vec![7u8; 70_000];
        let a = write(d.path(), "a", b"other keyfile");
        let k = write(d.path(), "k", &contents);
        let before = digest(&[&a, &k]);
        // Last byte, a byte in the second read, and the first byte.
        for at in [69_999, READ_BUF + 1, 0] {
            contents[at] ^= 1;
            std::fs::write(&k, &contents).unwrap();
            assert_ne!(digest(&[&a, &k]), before, "byte {at}");
            contents[at] ^= 1;
        }
        std::fs::write(&k, &contents).unwrap();
        assert_eq!(digest(&[&a, &k]), before);
        // One byte appended.
        contents.push(0);
        std::fs::write(&k, &contents).unwrap();
        assert_ne!(digest(&[&a, &k]), before);
    }

    #[test]
    fn a_keyfile_given_twice_counts_twice() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a", b"keyfile contents");
        let copy = write(d.path(), "copy-of-a", b"keyfile contents");
        let once = digest(&[&a]);
        let twice = digest(&[&a, &a]);
        assert_ne!(once, twice);
        assert_ne!(digest(&[&a, &a, &a]), twice);
        // Contents count, not names: a copy is the same keyfile.
        assert_eq!(digest(&[&a, &copy]), twice);
        assert_eq!(digest(&[&copy]), once);
    }

    /// Pins the construction of the module doc: changing it would lock
    /// every operator out of every keyslot made with keyfiles.
    #[test]
    fn digest_is_the_documented_construction() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a", b"abc");
        let b = write(d.path(), "b", b"keyfile two");
        let mut per_file = [Sha256::digest(b"abc"), Sha256::digest(b"keyfile two")];
        per_file.sort();
        let mut h = Sha256::new();
        h.update(b"callvault v2 keyfiles");
        h.update(2u32.to_le_bytes());
        h.update(per_file[0]);
        h.update(per_file[1]);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(digest(&[&b, &a]), want);
        // And one known value, so a change in the hash itself shows too.
        let hex: String = digest(&[&a]).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a45a6537472d04df5c1316097e26ff332ef3b2670cfc6e0a7704561d41af1d10");
    }

    #[test]
    fn an_empty_keyfile_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a", b"fine");
        let e = write(d.path(), "empty", b"");
        let err = digest_keyfiles(&[a, e.clone()]).err().expect("empty");
        assert!(matches!(&err, KeyfileError::Empty { path } if *path == e), "{err}");
        assert_eq!(err.to_string(), format!("keyfile {}: is empty; an empty file adds no secret", e.display()));
    }

    #[test]
    fn a_keyfile_over_8_mib_is_refused_and_one_of_8_mib_is_not() {
        let d = tempfile::tempdir().unwrap();
        let mut contents = vec![0xa5u8; MAX_KEYFILE as usize];
        let exact = write(d.path(), "exact", &contents);
        assert!(digest_keyfiles(&[exact]).is_ok());
        contents.push(0);
        let over = write(d.path(), "over", &contents);
        let err = digest_keyfiles(std::slice::from_ref(&over)).err().expect("over the cap");
        assert!(matches!(&err, KeyfileError::TooLarge { path, limit: MAX_KEYFILE } if *path == over), "{err}");
        assert_eq!(
            err.to_string(),
            format!("keyfile {}: larger than 8 MiB; a keyfile must be a small file, not a device", over.display())
        );
    }

    #[test]
    fn endless_devices_are_refused_quickly_not_read_forever() {
        for dev in ["/dev/zero", "/dev/urandom"] {
            let start = Instant::now();
            let err = digest_keyfiles(&[PathBuf::from(dev)]).err().expect(dev);
            assert!(matches!(&err, KeyfileError::TooLarge { .. }), "{dev}: {err}");
            assert!(err.to_string().starts_with(&format!("keyfile {dev}: larger than 8 MiB")), "{err}");
            // 8 MiB and a byte: milliseconds, not the forever an unbounded
            // read would take. The bound is loose for a loaded machine.
            assert!(start.elapsed() < Duration::from_secs(20), "{dev}: {:?}", start.elapsed());
        }
        // /dev/null reads as empty.
        assert!(matches!(digest_keyfiles(&[PathBuf::from("/dev/null")]), Err(KeyfileError::Empty { .. })));
    }

    #[test]
    fn a_missing_keyfile_is_named_in_the_error() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a", b"fine");
        let missing = d.path().join("usb").join("k");
        let err = digest_keyfiles(&[a, missing.clone()]).err().expect("missing");
        assert!(matches!(&err, KeyfileError::NotFound { path } if *path == missing), "{err}");
        assert!(err.to_string().starts_with(&format!("keyfile {}: not found", missing.display())), "{err}");
    }

    #[test]
    fn a_directory_is_refused_with_a_clear_message() {
        let d = tempfile::tempdir().unwrap();
        let err = digest_keyfiles(&[d.path().to_path_buf()]).err().expect("directory");
        assert!(matches!(&err, KeyfileError::IsDirectory { .. }), "{err}");
        assert!(err.to_string().contains("is a directory; name the keyfile itself"), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
        // A blocking open would hang here, with no writer ever coming.
        let err = digest_keyfiles(std::slice::from_ref(&fifo)).err().expect("fifo");
        assert!(matches!(&err, KeyfileError::NotAFile { kind: "FIFO", .. }), "{err}");
    }

    #[test]
    fn no_keyfiles_or_too_many_are_refused() {
        assert!(matches!(digest_keyfiles(&[]), Err(KeyfileError::NoKeyfiles)));
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a", b"fine");
        assert!(digest_keyfiles(&vec![a.clone(); MAX_KEYFILES]).is_ok());
        let err = digest_keyfiles(&vec![a; MAX_KEYFILES + 1]).err().expect("too many");
        assert!(matches!(err, KeyfileError::TooMany { count: 65, max: 64 }), "{err}");
    }

    #[test]
    fn unreadable_keyfile_is_an_io_error_naming_the_path() {
        // Root reads anything: use a path through a regular file instead,
        // which fails with ENOTDIR for every user.
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a", b"fine");
        let bad = a.join("k");
        let err = digest_keyfiles(std::slice::from_ref(&bad)).err().expect("ENOTDIR");
        assert!(matches!(&err, KeyfileError::Io { path, .. } if *path == bad), "{err}");
        assert!(err.to_string().starts_with(&format!("keyfile {}: ", bad.display())), "{err}");
    }
}
