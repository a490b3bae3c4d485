//! Command-line arguments of `callvaultd`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// What `--auto-blackout` detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoBlackout {
    /// DTMF keypad tones (card numbers keyed on the phone).
    Dtmf,
}

/// Serve an encrypted callvault volume at a mount point (FUSE).
///
/// Runs in the foreground until SIGINT/SIGTERM or `fusermount3 -u MOUNTPOINT`,
/// then flushes everything and exits 0. Readiness is announced to systemd
/// (Type=notify, $NOTIFY_SOCKET); `--background` instead returns once mounted.
#[derive(Debug, Parser)]
#[command(name = "callvaultd", version)]
pub struct Args {
    /// The volume directory (made by `callvault-keytool init`).
    pub volume: PathBuf,
    /// Where to mount the decrypted view.
    pub mountpoint: PathBuf,
    /// Read a passphrase from this file (one trailing newline is ignored).
    /// `LABEL=FILE` names the operator's slot; repeat it once per operator
    /// under dual control. Without it or --keyfile:
    /// $CREDENTIALS_DIRECTORY/callvault-passphrase and callvault-keyfile under
    /// systemd, else a prompt on the terminal (each operator in turn).
    #[arg(long = "passphrase-file", value_name = "[LABEL=]FILE")]
    pub passphrase_files: Vec<String>,
    /// A keyfile (repeatable; several combine in any order). `LABEL=FILE`
    /// gives it to that operator.
    #[arg(long = "keyfile", value_name = "[LABEL=]FILE")]
    pub keyfiles: Vec<String>,
    /// The operator ID of the slot to try (default: every slot of the kind
    /// the factors given open).
    #[arg(long, value_name = "ID")]
    pub label: Option<String>,
    /// Access policy (TOML): who may list, read, create, write, delete, ...
    /// what. Anything not granted is denied, root included. SIGHUP re-reads it.
    #[arg(long, value_name = "FILE", required_unless_present = "allow_all")]
    pub policy: Option<PathBuf>,
    /// Run without access control: every user may do everything. Logged.
    #[arg(long, conflicts_with = "policy")]
    pub allow_all: bool,
    /// Also forward every audit record to the local syslog socket (RFC 5424),
    /// so a central log server keeps a copy: /dev/log, or the socket given.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = "/dev/log")]
    pub syslog: Option<PathBuf>,
    /// Start a new audit journal segment after this many MiB; finished
    /// segments are made append-only where the filesystem supports it.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub audit_segment_mib: u64,
    /// Run without the audit journal. PCI DSS 10 requires the journal; this
    /// exists to measure its cost. Logged as a warning.
    #[arg(long)]
    pub no_audit: bool,
    /// Mount even if the mount point is not empty (its files are hidden
    /// while mounted). Without it a non-empty mount point is refused, so
    /// nothing written there before the mount goes unnoticed.
    #[arg(long)]
    pub nonempty: bool,
    /// Mount read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Fork, and exit 0 once the mount is live (the daemon goes on, detached
    /// from the caller's terminal and output; its log lines go to syslog).
    #[arg(long)]
    pub background: bool,
    /// Flag a blackout in the journal and the log once it has lasted this
    /// many seconds (it keeps silencing until stopped or the file is closed).
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub blackout_alert: u64,
    /// Silence what is detected in recordings as they are written, without
    /// a trigger: `dtmf` masks keypad tones in every WAV recording (the
    /// policy's `[[auto_blackout]]` tables can instead name paths). Off by default.
    #[arg(long, value_name = "DETECTOR", value_enum)]
    pub auto_blackout: Option<AutoBlackout>,
    /// Request-serving threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Log every operation that fails, not only errors.
    #[arg(long, short)]
    pub verbose: bool,
}
