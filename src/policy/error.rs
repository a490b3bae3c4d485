//! Why a policy file was refused, as one `FILE:LINE: problem` line.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::Right;

/// A policy file that cannot be used. `Display` is one line,
/// `FILE:LINE: problem`, or `FILE: problem` when no line applies (an
/// unreadable file), so the daemon and `callvault-keytool policy check` print
/// the same thing.
#[derive(Debug)]
pub struct PolicyError {
    file: PathBuf,
    line: Option<usize>,
    problem: Problem,
}

/// What is wrong with a policy file. Each variant carries what its message
/// needs; grant numbers count from 1 in file order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// The file could not be read.
    Unreadable(io::Error),
    /// The file is larger than [`super::MAX_POLICY_BYTES`]; nothing past
    /// the limit was read.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The file is not UTF-8 (TOML must be).
    NotUtf8,
    /// TOML syntax, an unknown key, a value of the wrong type, a duplicate
    /// key: the message comes from the TOML parser.
    Toml(String),
    /// A right that is not one of [`Right::ALL`].
    UnknownRight(String),
    /// A user name the user database does not know.
    UnknownUser(String),
    /// A group name the group database does not know.
    UnknownGroup(String),
    /// A numeric uid or gid outside 0..=4294967294.
    BadId {
        /// "uid" or "gid".
        kind: &'static str,
        /// The number as written.
        value: String,
    },
    /// A path glob that does not start with `/`.
    RelativeGlob(String),
    /// A path glob that is not valid in the dialect.
    BadGlob {
        /// The glob as written.
        glob: String,
        /// Why it was refused.
        reason: String,
    },
    /// A grant with neither users nor groups, which would apply to nobody.
    NoSubjects {
        /// The grant's number, from 1.
        grant: usize,
    },
    /// A grant with no paths.
    NoPaths {
        /// The grant's number, from 1.
        grant: usize,
    },
    /// A grant with no rights.
    NoRights {
        /// The grant's number, from 1.
        grant: usize,
    },
    /// An `[[auto_blackout]]` detector that does not exist (only `dtmf`).
    UnknownDetector(String),
    /// An `[[auto_blackout]]` table with no paths or no detectors.
    EmptyAutoBlackout {
        /// The table's number, from 1.
        number: usize,
    },
}

impl PolicyError {
    pub(crate) fn new(file: &Path, line: Option<usize>, problem: Problem) -> Self {
        PolicyError { file: file.to_path_buf(), line, problem }
    }

    /// The policy file, as it was named to [`super::Policy::load`].
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The 1-based line of the offending value, when there is one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.problem),
            None => write!(f, "{}: {}", self.file.display(), self.problem),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable(e) => write!(f, "cannot read policy file: {e}"),
            Problem::TooLarge { limit } => write!(
                f,
                "policy file is larger than the {} MiB limit; split rules with groups and globs instead",
                limit / (1024 * 1024)
            ),
            Problem::NotUtf8 => write!(f, "policy file is not valid UTF-8"),
            Problem::Toml(message) => write!(f, "{message}"),
            Problem::UnknownRight(right) => {
                write!(f, "unknown right {right:?} (expected one of ")?;
                for (i, r) in Right::ALL.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{r}")?;
                }
                write!(f, ")")
            }
            Problem::UnknownUser(name) => write!(f, "unknown user {name:?}"),
            Problem::UnknownGroup(name) => write!(f, "unknown group {name:?}"),
            Problem::BadId { kind, value } => {
                write!(f, "{kind} {value} is out of range (0 to 4294967294)")
            }
            Problem::RelativeGlob(glob) => {
                write!(f, "path {glob:?} must start with \"/\" (the root of the volume)")
            }
            Problem::BadGlob { glob, reason } => write!(f, "bad path glob {glob:?}: {reason}"),
            Problem::NoSubjects { grant } => {
                write!(f, "grant #{grant} has no users and no groups (it would apply to nobody)")
            }
            Problem::NoPaths { grant } => write!(f, "grant #{grant} has no paths"),
            Problem::UnknownDetector(d) => write!(f, "unknown auto_blackout detector {d:?} (expected \"dtmf\")"),
            Problem::EmptyAutoBlackout { number } => {
                write!(f, "auto_blackout #{number} needs both `paths` and `detect = [\"dtmf\"]`")
            }
            Problem::NoRights { grant } => write!(f, "grant #{grant} has no rights"),
        }
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Unreadable(e) => Some(e),
            _ => None,
        }
    }
}
