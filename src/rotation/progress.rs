//! How a rotation reports how far it got, and what it did in the end.

use std::time::Duration;

/// Told about a rotation as it goes. The keytool's implementation draws a
/// progress bar; [`NoProgress`] ignores everything.
pub trait RotationProgress {
    /// Once, before anything changes: the regular files whose contents are
    /// still to re-encrypt and the bytes they hold (a resumed rotation counts
    /// only what is left). [`RotationProgress::file_done`] is called once for
    /// each of these files, with bytes adding up to `bytes`.
    fn start(&mut self, files: u64, bytes: u64);
    /// One file's contents are re-encrypted and in place (or staged, for a
    /// hard-linked file): `bytes` were read, re-encrypted and written.
    fn file_done(&mut self, bytes: u64);
    /// Something the operator may want to know (leftovers of an interrupted
    /// run removed, a filesystem without user xattrs). One line, no newline.
    fn message(&mut self, text: &str);
    /// The rotation is complete.
    fn finish(&mut self, _stats: &RotationStats) {}
}

/// A [`RotationProgress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl RotationProgress for NoProgress {
    fn start(&mut self, _files: u64, _bytes: u64) {}
    fn file_done(&mut self, _bytes: u64) {}
    fn message(&mut self, _text: &str) {}
}

/// What one call of [`super::rotate_tree`] did (a resumed rotation counts
/// only what it did itself).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationStats {
    /// Regular files (inodes) whose header and contents were re-encrypted.
    pub files: u64,
    /// Backing bytes of data sectors read and written (holes skipped).
    pub bytes: u64,
    /// Names of a hard-linked object moved onto its re-encrypted copy.
    pub relinked: u64,
    /// Entries renamed to their name under the new key.
    pub names: u64,
    /// Symbolic links whose target was re-encrypted.
    pub symlinks: u64,
    /// Encrypted extended attributes re-encrypted.
    pub xattrs: u64,
    /// Directories visited.
    pub dirs: u64,
    /// Leftovers of an interrupted run (or of the daemon) removed:
    /// temporaries, staged copies, orphaned long-name side files.
    pub leftovers: u64,
    /// Wall-clock time of the call, survey included.
    pub elapsed: Duration,
}
