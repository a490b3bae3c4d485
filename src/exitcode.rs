//! Exit codes shared by `callvaultd` and `callvault-keytool`. Scripts may rely
//! on them (docs/CLI.md); a code is never reused for another meaning.

use crate::Error;

pub const OK: u8 = 0;
/// An unexpected failure (I/O error, bug); the message says what.
pub const FAILURE: u8 = 1;
/// Bad command-line usage.
pub const USAGE: u8 = 2;
/// No keyslot opened with the passphrase or keyfile given.
pub const WRONG_PASSPHRASE: u8 = 10;
/// The directory is not a callvault volume.
pub const NOT_A_VOLUME: u8 = 11;
/// The volume's format version or features are newer than this build.
pub const UNSUPPORTED_FORMAT: u8 = 12;
/// The volume header is damaged or was changed outside callvault.
pub const DAMAGED_HEADER: u8 = 13;
/// The mount point is missing, not a directory, or already mounted.
pub const BAD_MOUNTPOINT: u8 = 14;
/// FUSE is unavailable (/dev/fuse missing) or the mount itself failed.
pub const FUSE_UNAVAILABLE: u8 = 15;
/// Another daemon already serves this volume.
pub const VOLUME_IN_USE: u8 = 16;
/// The passphrase could not be read (file missing, empty, no terminal).
pub const PASSPHRASE_SOURCE: u8 = 17;
/// `init` refused: a volume exists there, or the directory is not empty.
pub const VOLUME_EXISTS: u8 = 18;
/// The access policy file is invalid.
pub const BAD_POLICY: u8 = 19;
/// `policy explain`: the policy denies the access asked about.
pub const ACCESS_DENIED: u8 = 20;
/// `audit verify`: records were changed, removed, reordered, inserted or
/// truncated, or a seal does not verify.
pub const AUDIT_TAMPERED: u8 = 21;
/// `audit verify`: nothing proven changed, but the journal's end is not
/// sealed and no daemon is running (a crash; the next mount seals it).
pub const AUDIT_INCOMPLETE: u8 = 22;
/// `audit verify`: the auditor key file is unreadable, malformed, or for
/// another journal.
pub const AUDIT_WRONG_KEY: u8 = 23;
/// The audit journal cannot be opened or written.
pub const AUDIT_UNAVAILABLE: u8 = 24;
/// `audit verify --since TOKEN`: the journal does not extend the
/// checkpointed one (it ends before the checkpoint's seq, or holds another
/// record there): restored from an older copy, or cut.
pub const AUDIT_ROLLED_BACK: u8 = 25;
/// `blackout`: a path is not on a mounted callvault volume, so no blackout
/// can hold there (nothing was changed on it).
pub const NOT_ON_VOLUME: u8 = 26;
/// A new passphrase breaks a rule (length, letters and digits, strength,
/// operator ID) or is one of the slot's last four; the message names the rule.
pub const PASSPHRASE_RULE: u8 = 27;
/// A key change was refused as asked: an unknown or duplicate operator ID,
/// the last slot, a passphrase change reserved to an administrator, a
/// dual-control constraint, or a header backup that must not be restored.
pub const KEY_CHANGE_REFUSED: u8 = 28;
/// The volume is under dual control and fewer operators than its threshold
/// gave their secrets.
pub const MORE_OPERATORS_NEEDED: u8 = 29;
/// A key rotation is in progress: `callvault-keytool rotate-key` finishes it
/// (the daemon refuses to mount meanwhile).
pub const ROTATION_IN_PROGRESS: u8 = 30;

/// The exit code for a library error.
pub fn for_error(e: &Error) -> u8 {
    match e {
        Error::WrongPassphrase { .. } => WRONG_PASSPHRASE,
        Error::NotAVolume { .. } => NOT_A_VOLUME,
        Error::FormatTooNew { .. } | Error::UnknownFeatures { .. } => UNSUPPORTED_FORMAT,
        Error::HeaderDamaged { .. } | Error::HeaderTampered { .. } => DAMAGED_HEADER,
        Error::KdfOverLimit { .. } | Error::KdfBudgetExceeded { .. } => DAMAGED_HEADER,
        Error::VolumeExists { .. } | Error::DirectoryNotEmpty { .. } => VOLUME_EXISTS,
        Error::EmptyPassphrase => PASSPHRASE_SOURCE,
        Error::Audit(_) => AUDIT_UNAVAILABLE,
        Error::PassphraseRule(_) | Error::PassphraseReused { .. } => PASSPHRASE_RULE,
        Error::UnknownLabel { .. }
        | Error::InvalidLabel { .. }
        | Error::DuplicateLabel { .. }
        | Error::LastSlot { .. }
        | Error::SelfChangeForbidden { .. }
        | Error::DualControlOperators { .. }
        | Error::BackupTooOld { .. }
        | Error::BackupOfOtherVolume => KEY_CHANGE_REFUSED,
        Error::DualControlRequired { .. } | Error::NotEnoughOperators { .. } => MORE_OPERATORS_NEEDED,
        Error::RotationInProgress => ROTATION_IN_PROGRESS,
        Error::Keyfile(_) => PASSPHRASE_SOURCE,
        _ => FAILURE,
    }
}
