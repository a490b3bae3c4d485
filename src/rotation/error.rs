//! What can stop a key rotation: each error names the backing path and says
//! what to do next.

use std::fmt;
use std::path::PathBuf;

/// Why [`super::rotate_tree`] or [`super::survey`] stopped.
///
/// Whatever the error, nothing was lost: every entry of the backing tree is
/// whole under the old or the new key, and calling `rotate_tree` again with
/// the same two keys carries on from where it stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum RotationError {
    /// A system call on a backing object failed.
    Io { path: PathBuf, op: &'static str, source: std::io::Error },
    /// A name, file header, link target or xattr decrypts under neither key.
    Undecryptable { path: PathBuf, what: String },
    /// An entry is damaged in a way re-encrypting cannot carry over.
    Damaged { path: PathBuf, what: String },
    /// Something is in the way that a rotation never leaves behind (the
    /// volume was changed while the rotation was in progress?).
    Conflict { path: PathBuf, what: String },
    /// The old and the new keys are the same key.
    SameKeys,
    /// The directory given is not a volume's data directory.
    NotADataDirectory { path: PathBuf, what: String },
    /// A cryptographic operation failed (the random source, a refused key).
    Crypto { path: PathBuf, what: String },
}

const RESUME: &str = "run the rotation again with the same old and new keys: it carries on where it stopped";

impl fmt::Display for RotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotationError::Io { path, op, source } => write!(
                f,
                "key rotation: {op} {}: {source}\n\
                 hint: nothing was lost (every entry is whole under the old or the new key); \
                 fix the cause, then {RESUME}",
                path.display()
            ),
            RotationError::Undecryptable { path, what } => write!(
                f,
                "key rotation: {}: {what} decrypts under neither the old nor the new key\n\
                 hint: nothing was deleted; restore this entry from a backup or remove it from the \
                 backing directory, then {RESUME}",
                path.display()
            ),
            RotationError::Damaged { path, what } => write!(
                f,
                "key rotation: {}: {what}\n\
                 hint: nothing was deleted; restore this entry from a backup or remove it from the \
                 backing directory, then {RESUME}",
                path.display()
            ),
            RotationError::Conflict { path, what } => write!(
                f,
                "key rotation: {}: {what}\n\
                 hint: was the volume mounted or changed while the rotation was in progress? \
                 nothing was deleted; look at this entry, then {RESUME}",
                path.display()
            ),
            RotationError::SameKeys => write!(
                f,
                "key rotation: the old and the new keys are the same key: there is nothing to rotate\n\
                 hint: generate a new master key and rotate to it"
            ),
            RotationError::NotADataDirectory { path, what } => write!(
                f,
                "key rotation: {} is not a callvault data directory: {what}\n\
                 hint: pass the data/ directory of an unlocked volume (VOLUME/data)",
                path.display()
            ),
            RotationError::Crypto { path, what } => write!(
                f,
                "key rotation: {}: {what}\n\
                 hint: nothing was lost; check the system's random source, then {RESUME}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RotationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RotationError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_what_to_do() {
        let e = RotationError::Undecryptable { path: "/v/data/abc".into(), what: "its name".into() };
        let s = e.to_string();
        assert!(s.contains("/v/data/abc: its name decrypts under neither"), "{s}");
        assert!(s.lines().nth(1).is_some_and(|l| l.starts_with("hint: nothing was deleted")), "{s}");
        let e = RotationError::Io {
            path: "/v/data/x".into(),
            op: "renaming",
            source: std::io::Error::from_raw_os_error(libc_enospc()),
        };
        assert!(e.to_string().starts_with("key rotation: renaming /v/data/x: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    fn libc_enospc() -> i32 {
        rustix::io::Errno::NOSPC.raw_os_error()
    }
}
