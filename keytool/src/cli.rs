//! Command-line grammar of `callvault-keytool`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Create callvault volumes and manage their keys.
#[derive(Debug, Parser)]
#[command(name = "callvault-keytool", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new encrypted volume in an empty or missing directory.
    Init(InitArgs),
    /// Check access policies and explain their decisions.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Start, stop or show blackouts on files or directories of a mounted
    /// volume: whatever is written to them meanwhile is stored as silence.
    #[command(subcommand)]
    Blackout(BlackoutCommand),
    /// Read, follow and verify the audit journal.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List, add, remove and reset the operators' keyslots.
    #[command(subcommand)]
    Slot(SlotCommand),
    /// Change your own passphrase, after giving the current one.
    Passwd(PasswdArgs),
    /// Make unlocking need K of the operators together, or stop it.
    #[command(subcommand)]
    DualControl(DualControlCommand),
    /// Back up the volume header to a file, or restore it from one.
    #[command(subcommand)]
    Header(HeaderCommand),
    /// Make a new master key and re-encrypt every file, name and link under
    /// it (the volume must be unmounted). Resumes an interrupted rotation.
    RotateKey(RotateKeyArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateKeyArgs {
    pub volume: PathBuf,
    /// The operator ID of the slot to unlock with.
    #[arg(long, visible_alias = "unlock-label", value_name = "ID")]
    pub label: Option<String>,
    /// A passphrase file; `LABEL=FILE` names the operator (repeat once per
    /// operator under dual control). Without it or --keyfile: prompts.
    #[arg(long = "passphrase-file", visible_alias = "unlock-passphrase-file", value_name = "[LABEL=]FILE")]
    pub passphrase_files: Vec<String>,
    /// A keyfile (repeatable); `LABEL=FILE` gives it to that operator.
    #[arg(long = "keyfile", visible_alias = "unlock-keyfile", value_name = "[LABEL=]FILE")]
    pub keyfiles: Vec<String>,
}

/// Argon2id cost of a new or changed keyslot (`init`, `slot add`, `slot
/// reset`, `passwd`).
#[derive(Debug, clap::Args)]
pub struct KdfArgs {
    /// Argon2id memory cost in MiB (default 256; lower only for tests).
    #[arg(long, value_name = "MIB", default_value_t = callvault::kdf::DEFAULT_MEMORY_MIB)]
    pub kdf_memory: u32,
    /// Target time of one unlock in seconds; the time cost is calibrated to it
    /// on this machine (0 = a single pass, for tests).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub kdf_time: f64,
}

/// Who authorizes a key change: the factors of an existing keyslot (under
/// dual control, of K operators). Without any, they are asked on the
/// terminal (under dual control each operator in turn, by operator ID).
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The operator ID of the authorizing slot (default: every slot the
    /// factors given open).
    #[arg(long, value_name = "ID")]
    pub unlock_label: Option<String>,
    /// The authorizing operator's passphrase file; `LABEL=FILE` names the
    /// operator (repeat once per operator under dual control).
    #[arg(long = "unlock-passphrase-file", value_name = "[LABEL=]FILE")]
    pub unlock_passphrase_files: Vec<String>,
    /// The authorizing operator's keyfile (repeatable); `LABEL=FILE` gives
    /// it to that operator.
    #[arg(long = "unlock-keyfile", value_name = "[LABEL=]FILE")]
    pub unlock_keyfiles: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SlotCommand {
    /// Show every keyslot: label, kind, created, last changed, flags (no unlock needed).
    List {
        volume: PathBuf,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Add a keyslot for a new operator.
    Add(SlotAddArgs),
    /// Remove an operator's keyslot (never the last one).
    Remove {
        volume: PathBuf,
        /// The operator ID of the slot to remove.
        #[arg(long, value_name = "ID")]
        label: String,
        #[command(flatten)]
        unlock: UnlockArgs,
    },
    /// Set new factors on another operator's keyslot (an administrator's
    /// reset; for your own slot use `passwd`).
    Reset(SlotResetArgs),
    /// Set or clear a keyslot's flags, with another operator's authority.
    Flag {
        volume: PathBuf,
        /// The operator ID of the slot.
        #[arg(long, value_name = "ID")]
        label: String,
        /// on: only an administrator (`slot reset`) may change this slot's
        /// passphrase; off: its operator may (`passwd`).
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        no_self_change: String,
        #[command(flatten)]
        unlock: UnlockArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct SlotAddArgs {
    pub volume: PathBuf,
    /// The new operator's ID (letters, digits, . _ @ -; unique within the volume).
    #[arg(long, value_name = "ID")]
    pub label: String,
    /// The new slot's passphrase file. Without it (and without --keyfile)
    /// the passphrase is asked twice on the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// A keyfile of the new slot (repeatable: several combine, in any
    /// order). With --passphrase-file too, the slot needs both.
    #[arg(long = "keyfile", value_name = "FILE")]
    pub keyfiles: Vec<PathBuf>,
    /// Only an administrator (`slot reset`) may change this slot's passphrase.
    #[arg(long)]
    pub no_self_change: bool,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Accept a passphrase that breaks the rules (recorded in the journal; for tests only).
    #[arg(long)]
    pub allow_weak_passphrase: bool,
    #[command(flatten)]
    pub unlock: UnlockArgs,
}

#[derive(Debug, clap::Args)]
pub struct SlotResetArgs {
    pub volume: PathBuf,
    /// The operator ID of the slot to reset.
    #[arg(long, value_name = "ID")]
    pub label: String,
    /// The slot's new passphrase file. Without it (and without
    /// --new-keyfile) the new passphrase is asked twice on the terminal.
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    /// A new keyfile of the slot (repeatable).
    #[arg(long = "new-keyfile", value_name = "FILE")]
    pub new_keyfiles: Vec<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Accept a passphrase that breaks the rules (recorded in the journal; for tests only).
    #[arg(long)]
    pub allow_weak_passphrase: bool,
    #[command(flatten)]
    pub unlock: UnlockArgs,
}

#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    pub volume: PathBuf,
    /// Your operator ID (the slot whose passphrase changes).
    #[arg(long, value_name = "ID")]
    pub label: String,
    /// Your current passphrase, from a file (else asked once on the terminal).
    #[arg(long, value_name = "CURRENT")]
    pub passphrase_file: Option<PathBuf>,
    /// Your slot's keyfiles, if it is a passphrase+keyfile slot (repeatable;
    /// they stay as they are).
    #[arg(long = "keyfile", value_name = "FILE")]
    pub keyfiles: Vec<PathBuf>,
    /// The new passphrase, from a file (else asked twice on the terminal).
    #[arg(long, value_name = "NEW")]
    pub new_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Accept a passphrase that breaks the rules (recorded in the journal; for tests only).
    #[arg(long)]
    pub allow_weak_passphrase: bool,
    /// Under dual control: another operator's passphrase file, `LABEL=FILE`
    /// (repeat until K operators, you included, are given).
    #[arg(long = "unlock-passphrase-file", value_name = "LABEL=FILE")]
    pub unlock_passphrase_files: Vec<String>,
    /// Under dual control: another operator's keyfile, `LABEL=FILE`.
    #[arg(long = "unlock-keyfile", value_name = "LABEL=FILE")]
    pub unlock_keyfiles: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum DualControlCommand {
    /// Make unlocking need THRESHOLD of the operators named (every slot
    /// must be named).
    Enable {
        volume: PathBuf,
        /// How many operators must unlock together (2 to the number named).
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u8).range(2..=16))]
        threshold: u8,
        /// The operators, comma-separated: every keyslot of the volume.
        #[arg(long, value_name = "A,B,C", value_delimiter = ',', required = true)]
        labels: Vec<String>,
        #[command(flatten)]
        unlock: UnlockArgs,
    },
    /// End dual control (needs K operators): each slot unlocks alone again.
    Disable {
        volume: PathBuf,
        #[command(flatten)]
        unlock: UnlockArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum HeaderCommand {
    /// Write the current header to FILE (a new file, mode 0400; no unlock needed).
    Backup { volume: PathBuf, file: PathBuf },
    /// Replace the volume's header with a backup, after unlocking the backup.
    Restore {
        volume: PathBuf,
        file: PathBuf,
        #[command(flatten)]
        unlock: UnlockArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BlackoutCommand {
    /// Start a blackout on each PATH (a recording, or a directory: every
    /// file written in it). Exit 0 once every one holds.
    Start {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Stop the blackout on each PATH.
    Stop {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print `PATH: active` or `PATH: inactive` for each PATH.
    Status {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: prints "FILE: ok, N grants", or FILE:LINE: problem.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// Say which grant allows RIGHT on PATH to a user, or that nothing does.
    Explain {
        /// The policy file (TOML).
        file: PathBuf,
        /// User name or numeric uid.
        #[arg(long)]
        user: String,
        /// Group name or gid to decide with (repeatable); default: the user's groups.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Path inside the volume, e.g. /team-a/c1.wav.
        path: String,
        /// One of list, read, create, write, delete, rename, setattr, blackout.
        right: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Directory for the new volume (created if missing; must be empty).
    pub volume: PathBuf,
    /// Read the passphrase from this file (one trailing newline is ignored).
    /// Without it (and without --keyfile), the passphrase is asked twice on
    /// the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// A keyfile for the first slot (repeatable: several combine, in any
    /// order). With --passphrase-file too, the slot needs both.
    #[arg(long = "keyfile", value_name = "FILE")]
    pub keyfiles: Vec<PathBuf>,
    /// Accept a passphrase that breaks the rules (length, letters and digits,
    /// strength, operator ID). Recorded in the journal; for tests only.
    #[arg(long)]
    pub allow_weak_passphrase: bool,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// The operator ID of the first keyslot (letters, digits, . _ @ -;
    /// unique within the volume).
    #[arg(long, default_value = "initial")]
    pub label: String,
    /// Where to write the auditor's journal verification key (a new file,
    /// mode 0400). Default: VOLUME.audit-key beside the volume. Move it off
    /// this machine to the auditor: whoever holds it can re-seal the journal.
    #[arg(long, value_name = "FILE")]
    pub audit_key_file: Option<PathBuf>,
    /// Owner of the mount's root directory (names or numeric ids; without
    /// :GROUP the group stays root's). Default: root:root.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub owner: Option<String>,
    /// Mode of the mount's root directory, octal 0 to 7777 (e.g. 2770).
    /// Default: 0755.
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct AuditFilterArgs {
    /// Only records of this user (name or uid).
    #[arg(long)]
    pub user: Option<String>,
    /// Only records whose path (or second path) matches this glob.
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only records of this event (open, close, create, denied, ...).
    #[arg(long)]
    pub event: Option<String>,
    /// Only records with this outcome: ok, intent, interrupted, error (any
    /// errno) or an errno name such as EACCES.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only records at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    pub format: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print journal records, filtered (needs no key and no mount).
    Show {
        volume: PathBuf,
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
    /// Check every record and seal with the auditor's key; prints
    /// `checkpoint: TOKEN` to keep off the machine.
    Verify {
        volume: PathBuf,
        #[arg(long, value_name = "FILE")]
        audit_key_file: PathBuf,
        /// Also prove the journal extends this checkpoint (a TOKEN printed
        /// by an earlier verify): exit 25 if it was rolled back or cut.
        #[arg(long, value_name = "TOKEN")]
        since: Option<String>,
    },
    /// Print new records as they arrive, until interrupted.
    Follow {
        volume: PathBuf,
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
}
