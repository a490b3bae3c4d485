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
    /// Argon2id memory cost in MiB (default 256; lower only for tests).
    #[arg(long, value_name = "MIB", default_value_t = callvault::kdf::DEFAULT_MEMORY_MIB)]
    pub kdf_memory: u32,
    /// Target time of one unlock in seconds; the time cost is calibrated to it
    /// on this machine (0 = a single pass, for tests).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub kdf_time: f64,
    /// The operator ID of the first keyslot (letters, digits, . _ @ -;
    /// unique within the volume).
    #[arg(long, default_value = "initial")]
    pub label: String,
    /// Where to write the auditor's journal verification key (a new file,
    /// mode 0400). Default: VOLUME.audit-key beside the volume. Move it off
    /// this machine to the auditor: whoever holds it can re-seal the journal.
    #[arg(long, value_name = "FILE")]
    pub audit_key_file: Option<PathBuf>,
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
