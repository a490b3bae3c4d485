//! The one error type of the library, with messages an operator can act on.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the library. Messages never contain key
/// material or passphrases. Where a second line helps, it starts with `hint:`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named path.
    Io { path: PathBuf, source: io::Error },
    /// No keyslot opened with the given passphrase or keyfile (`label`: the
    /// slot that was tried, when one was named).
    WrongPassphrase { label: Option<String> },
    /// The directory does not hold a callvault volume header.
    NotAVolume { path: PathBuf },
    /// The header was written by a newer format version.
    FormatTooNew { found: u16, max: u16 },
    /// The header needs features this build does not know.
    UnknownFeatures { flags: u32 },
    /// The header is present but cannot be parsed (says which part).
    HeaderDamaged { path: PathBuf, what: String },
    /// The header parsed and a keyslot opened, but its MAC does not match.
    HeaderTampered { path: PathBuf },
    /// `init` was pointed at a directory that already holds a volume.
    VolumeExists { path: PathBuf },
    /// `init` was pointed at a non-empty directory.
    DirectoryNotEmpty { path: PathBuf },
    /// Every keyslot is in use.
    NoFreeKeyslot,
    /// The OS random number generator failed.
    Random(String),
    /// KDF parameters out of range, or the KDF itself failed.
    Kdf(String),
    /// A passphrase was empty.
    EmptyPassphrase,
    /// A per-file header is short, unknown or fails its MAC.
    FileHeaderDamaged { what: String },
    /// A backing file's size cannot come from this format.
    ImpossibleFileSize { len: u64 },
    /// An encrypted name in the backing directory does not decrypt.
    BadEncryptedName { what: String },
    /// A plaintext name is longer than 255 bytes.
    NameTooLong { len: usize },
    /// A derived XTS key has two equal halves (IEEE 1619 forbids it).
    EqualKeyHalves,
    /// The audit journal could not be created, opened or written.
    Audit(String),
    /// A plaintext name is empty, `.`, `..`, or contains `/` or NUL.
    InvalidName,
    /// A keyslot's Argon2id cost is beyond the per-slot limits
    /// (`kdf::MAX_MEMORY_KIB`, `kdf::MAX_TIME_COST`, `kdf::MAX_SLOT_WORK`).
    KdfOverLimit { slot: usize, memory_kib: u32, time_cost: u32 },
    /// Trying keyslots 0..=`slot` would cost more Argon2id work (memory KiB x
    /// passes) than one unlock attempt may (`kdf::MAX_UNLOCK_WORK`).
    KdfBudgetExceeded { slot: usize, total: u64, budget: u64 },
    /// A passphrase or key file is longer than the limit for secret files.
    SecretFileTooLarge { path: PathBuf, limit: usize },
    /// No keyslot has this label.
    UnknownLabel { label: String, known: Vec<String> },
    /// An operator ID that cannot be a slot label.
    InvalidLabel { label: String, why: String },
    /// Another slot already has this label.
    DuplicateLabel { label: String },
    /// Removing this slot would leave nothing that unlocks the volume.
    LastSlot { label: String },
    /// The slot opened, but the volume is under dual control.
    DualControlRequired { threshold: u8, labels: Vec<String> },
    /// Fewer operators than the dual-control threshold gave their secrets.
    NotEnoughOperators { given: Vec<String>, threshold: u8, labels: Vec<String> },
    /// A dual-control change that cannot be made as asked.
    DualControlOperators { what: String },
    /// The slot was created with --no-self-change.
    SelfChangeForbidden { label: String },
    /// The new passphrase is one of the slot's last `kept`.
    PassphraseReused { label: String, kept: usize },
    /// A new passphrase breaks a rule (names the rule).
    PassphraseRule(crate::passrules::PassphraseRule),
    /// A keyfile could not be used.
    Keyfile(crate::keyfiles::KeyfileError),
    /// A key rotation was begun and not finished.
    RotationInProgress,
    /// A header backup from before the volume's latest key rotation.
    BackupTooOld { backup: u32, current: u32 },
    /// A header backup of another volume.
    BackupOfOtherVolume,
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::WrongPassphrase { label: None } => write!(f, "wrong passphrase or keyfile"),
            Error::WrongPassphrase { label: Some(l) } => write!(f, "wrong passphrase or keyfile for operator {l}"),
            Error::NotAVolume { path } => write!(
                f,
                "{} is not a callvault volume (no callvault.header)\n\
                 hint: create one with `callvault-keytool init {}`",
                path.display(),
                path.display()
            ),
            Error::FormatTooNew { found, max } => write!(
                f,
                "unsupported volume format version {found}: this build reads versions up to {max}\n\
                 hint: upgrade callvault on this host; do not re-initialise the volume"
            ),
            Error::UnknownFeatures { flags } => write!(
                f,
                "volume needs format features this build does not know (flags {flags:#010x})\n\
                 hint: upgrade callvault on this host"
            ),
            Error::HeaderDamaged { path, what } => write!(
                f,
                "damaged volume header {}: {what}\n\
                 hint: restore callvault.header from a header backup",
                path.display()
            ),
            Error::HeaderTampered { path } => write!(
                f,
                "volume header {} fails its integrity check (changed outside callvault)\n\
                 hint: restore callvault.header from a header backup",
                path.display()
            ),
            Error::VolumeExists { path } => {
                write!(f, "{} already holds a callvault volume; refusing to overwrite it", path.display())
            }
            Error::DirectoryNotEmpty { path } => {
                write!(f, "{} is not empty; a new volume needs an empty or missing directory", path.display())
            }
            Error::NoFreeKeyslot => write!(f, "every keyslot of this volume is in use"),
            Error::Random(e) => write!(f, "the system random number generator failed: {e}"),
            Error::Kdf(e) => write!(f, "key derivation: {e}"),
            Error::EmptyPassphrase => write!(f, "the passphrase is empty"),
            Error::FileHeaderDamaged { what } => write!(f, "damaged file header: {what}"),
            Error::ImpossibleFileSize { len } => {
                write!(f, "backing file size {len} is impossible for this format")
            }
            Error::BadEncryptedName { what } => {
                write!(f, "undecryptable name in backing directory: {what}")
            }
            Error::NameTooLong { len } => write!(f, "name is {len} bytes; the limit is 255"),
            Error::EqualKeyHalves => {
                write!(f, "refusing an AES-XTS key whose two halves are equal")
            }
            Error::Audit(e) => write!(f, "{e}"),
            Error::InvalidName => write!(f, "invalid file name"),
            Error::KdfOverLimit { slot, memory_kib, time_cost } => write!(
                f,
                "keyslot {slot} asks for Argon2id {memory_kib} KiB x {time_cost} passes, beyond this build's \
                 limits ({} KiB, {} passes, {} KiB x passes per slot); no key derivation was run\n\
                 hint: callvault never writes such a slot; restore callvault.header from a header backup",
                crate::kdf::MAX_MEMORY_KIB,
                crate::kdf::MAX_TIME_COST,
                crate::kdf::MAX_SLOT_WORK
            ),
            Error::SecretFileTooLarge { path, limit } => write!(
                f,
                "{} is larger than {limit} bytes, too large for a passphrase or key file\n\
                 hint: check the path; a passphrase file holds the passphrase and one optional newline",
                path.display()
            ),
            Error::KdfBudgetExceeded { slot, total, budget } => write!(
                f,
                "keyslots 0 to {slot} together ask for {total} KiB x passes of Argon2id work, over the \
                 {budget} allowed for one unlock attempt; no key derivation was run\n\
                 hint: remove a keyslot or recreate slots with a lower --kdf-time"
            ),
            Error::UnknownLabel { label, known } => {
                write!(f, "no keyslot is labelled {label:?}\nhint: this volume's operators are: {}", known.join(", "))
            }
            Error::InvalidLabel { label, why } => write!(f, "operator ID {label:?} cannot label a keyslot: {why}"),
            Error::DuplicateLabel { label } => {
                write!(f, "a keyslot labelled {label:?} already exists; operator IDs are unique within a volume")
            }
            Error::LastSlot { label } => write!(
                f,
                "refusing to remove {label}: it is the last keyslot that can unlock this volume\n\
                 hint: add another operator's slot first"
            ),
            Error::DualControlRequired { threshold, labels } => write!(
                f,
                "this volume is under dual control: {threshold} of {} must each give their secret\n\
                 hint: pass --passphrase-file LABEL=FILE (or --keyfile LABEL=FILE) once per operator",
                labels.join(", ")
            ),
            Error::NotEnoughOperators { given, threshold, labels } => write!(
                f,
                "dual control: {} of the {threshold} operators needed gave their secret ({}); the volume needs {threshold} of {}",
                given.len(),
                if given.is_empty() { "none".to_string() } else { given.join(", ") },
                labels.join(", ")
            ),
            Error::DualControlOperators { what } => write!(f, "dual control: {what}"),
            Error::SelfChangeForbidden { label } => write!(
                f,
                "passphrase changes for {label} are reserved to an administrator\n\
                 hint: another operator runs `callvault-keytool slot reset VOLUME --label {label}`"
            ),
            Error::PassphraseReused { label, kept } => {
                write!(f, "passphrase refused (rule: history): it is one of the last {kept} passphrases of {label}")
            }
            Error::PassphraseRule(r) => write!(f, "{r}"),
            Error::Keyfile(e) => write!(f, "{e}"),
            Error::RotationInProgress => write!(
                f,
                "a key rotation of this volume is in progress\n\
                 hint: run `callvault-keytool rotate-key VOLUME` again to finish it"
            ),
            Error::BackupTooOld { backup, current } => write!(
                f,
                "this header backup is from key generation {backup}, before the volume's key rotation to generation {current}: \
                 its key decrypts nothing in the volume any more; refusing to restore it"
            ),
            Error::BackupOfOtherVolume => {
                write!(
                    f,
                    "this header backup belongs to another volume (its volume ID differs); refusing to restore it"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::PassphraseRule(e) => Some(e),
            Error::Keyfile(e) => Some(e),
            _ => None,
        }
    }
}
