//! The journal's error type: one line per error, saying what failed and what to do.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Linux errno values the journal tells apart.
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// Everything that can go wrong while opening, writing or reading the audit
/// journal. `Display` is one line, naming the file and the action to take.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// An I/O error on a named path during a named step.
    Io { path: PathBuf, op: &'static str, source: io::Error },
    /// The file system holding the journal is full (or over quota).
    NoSpace { path: PathBuf },
    /// The audit directory has no journal yet.
    NotInitialized { dir: PathBuf },
    /// `init_journal` was pointed at a directory that already holds a journal.
    AlreadyInitialized { dir: PathBuf },
    /// Another process holds the journal lock.
    Locked { dir: PathBuf },
    /// A journal file is damaged where this process must not repair it.
    Damaged { path: PathBuf, what: String },
    /// A journal line is longer than any record the journal writes
    /// ([`MAX_LINE`](super::segment::MAX_LINE)): damage, read no further.
    LineTooLong { path: PathBuf, line: Option<u64>, limit: usize },
    /// `seal.key` and the seals in the journal disagree.
    KeyState { path: PathBuf, what: String },
    /// A key file (auditor key or `seal.key`) cannot be parsed.
    KeyFile { path: PathBuf, what: String },
    /// The OS random number generator failed.
    Random(String),
    /// An earlier write failure left the journal in an unknown state.
    Broken { why: String },
    /// An option is out of range.
    InvalidOption(String),
}

impl JournalError {
    /// Wraps an I/O error, turning "disk full" and "quota exceeded" into
    /// [`JournalError::NoSpace`].
    pub fn io(path: impl AsRef<Path>, op: &'static str, source: io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        match source.raw_os_error() {
            Some(ENOSPC | EDQUOT) => JournalError::NoSpace { path },
            _ => JournalError::Io { path, op, source },
        }
    }

    pub(crate) fn damaged(path: impl AsRef<Path>, what: impl Into<String>) -> Self {
        JournalError::Damaged { path: path.as_ref().to_path_buf(), what: what.into() }
    }

    pub(crate) fn key_file(path: impl AsRef<Path>, what: impl Into<String>) -> Self {
        JournalError::KeyFile { path: path.as_ref().to_path_buf(), what: what.into() }
    }

    /// The errno name an operation refused because of this error should
    /// return. Always `EIO`: the caller learns only that the access failed.
    pub fn errno_name(&self) -> &'static str {
        "EIO"
    }
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io { path, op, source } => write!(
                f,
                "audit journal {}: {op}: {source}; accesses are refused until the journal can be written",
                path.display()
            ),
            JournalError::NoSpace { path } => write!(
                f,
                "audit journal {}: no space left on device; accesses are refused until space is freed",
                path.display()
            ),
            JournalError::NotInitialized { dir } => write!(
                f,
                "{} holds no audit journal; create one with `callvault-keytool init VOLUME --audit-key-file FILE`",
                dir.display()
            ),
            JournalError::AlreadyInitialized { dir } => {
                write!(f, "{} already holds an audit journal; refusing to overwrite it", dir.display())
            }
            JournalError::Locked { dir } => write!(
                f,
                "audit journal {} is held open by another process (is callvaultd running on this volume?)",
                dir.display()
            ),
            JournalError::Damaged { path, what } => write!(
                f,
                "audit journal {} is damaged: {what}; run `callvault-keytool audit verify` and keep the files for investigation",
                path.display()
            ),
            JournalError::LineTooLong { path, line, limit } => {
                write!(f, "audit journal {} is damaged: ", path.display())?;
                if let Some(n) = line {
                    write!(f, "line {n} ")?;
                } else {
                    write!(f, "a line ")?;
                }
                write!(
                    f,
                    "is longer than {limit} bytes, more than any record holds; run `callvault-keytool audit verify` \
                     and keep the files for investigation"
                )
            }
            JournalError::KeyState { path, what } => write!(
                f,
                "sealing key state {} disagrees with the journal: {what}; run `callvault-keytool audit verify`",
                path.display()
            ),
            JournalError::KeyFile { path, what } => {
                write!(f, "key file {}: {what}", path.display())
            }
            JournalError::Random(e) => write!(f, "the system random number generator failed: {e}"),
            JournalError::Broken { why } => write!(
                f,
                "audit journal unusable after an earlier failure ({why}); accesses are refused until the journal is reopened"
            ),
            JournalError::InvalidOption(what) => write!(f, "invalid audit journal option: {what}"),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl JournalError {
    /// A copy for every appender of a failed batch (`io::Error` is not Clone:
    /// the copy keeps its OS error number or kind and message).
    pub(crate) fn duplicate(&self) -> JournalError {
        match self {
            JournalError::Io { path, op, source } => JournalError::Io {
                path: path.clone(),
                op,
                source: match source.raw_os_error() {
                    Some(n) => io::Error::from_raw_os_error(n),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            JournalError::NoSpace { path } => JournalError::NoSpace { path: path.clone() },
            JournalError::NotInitialized { dir } => JournalError::NotInitialized { dir: dir.clone() },
            JournalError::AlreadyInitialized { dir } => JournalError::AlreadyInitialized { dir: dir.clone() },
            JournalError::Locked { dir } => JournalError::Locked { dir: dir.clone() },
            JournalError::Damaged { path, what } => JournalError::Damaged { path: path.clone(), what: what.clone() },
            JournalError::LineTooLong { path, line, limit } => {
                JournalError::LineTooLong { path: path.clone(), line: *line, limit: *limit }
            }
            JournalError::KeyState { path, what } => JournalError::KeyState { path: path.clone(), what: what.clone() },
            JournalError::KeyFile { path, what } => JournalError::KeyFile { path: path.clone(), what: what.clone() },
            JournalError::Random(e) => JournalError::Random(e.clone()),
            JournalError::Broken { why } => JournalError::Broken { why: why.clone() },
            JournalError::InvalidOption(w) => JournalError::InvalidOption(w.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_is_named_and_says_what_happens_next() {
        let e = JournalError::io("/v/audit/journal-000003.log", "write", io::Error::from_raw_os_error(ENOSPC));
        assert_eq!(
            e.to_string(),
            "audit journal /v/audit/journal-000003.log: no space left on device; \
             accesses are refused until space is freed"
        );
        let q = JournalError::io("/x", "write", io::Error::from_raw_os_error(EDQUOT));
        assert!(matches!(q, JournalError::NoSpace { .. }));
    }

    #[test]
    fn every_message_is_one_line() {
        let all = [
            JournalError::io("/p", "fdatasync", io::Error::from_raw_os_error(5)),
            JournalError::NotInitialized { dir: "/d".into() },
            JournalError::AlreadyInitialized { dir: "/d".into() },
            JournalError::Locked { dir: "/d".into() },
            JournalError::damaged("/p", "x"),
            JournalError::LineTooLong { path: "/p".into(), line: Some(3), limit: 9 },
            JournalError::KeyState { path: "/p".into(), what: "x".into() },
            JournalError::key_file("/p", "x"),
            JournalError::Random("x".into()),
            JournalError::Broken { why: "x".into() },
            JournalError::InvalidOption("x".into()),
        ];
        for e in all {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
