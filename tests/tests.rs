//! Integration tests: real volumes, created with `callvault-keytool`, served
//! by `callvaultd` on real FUSE mounts. They run as root (as CI does), since
//! mounting with allow_other and acting as other users needs it.
//!
//! Build the binaries first (`cargo build --workspace --bins`); the harness
//! finds them in the target directory, or through $CALLVAULTD and
//! $CALLVAULT_KEYTOOL.

/// Creating volumes, mounting, waiting for readiness, unmounting.
mod harness;

/// The audit journal: records of real accesses, tampering, full disks, crashes.
mod audit;
/// Blackouts: what is written while one holds is stored as silence, exactly.
mod blackouts;
/// Many processes and threads on distinct and shared files; rights under a racing rename.
mod concurrency;
/// Unlock secrets from systemd credentials (passphrase, keyfile, both).
mod credentials;
/// Automatic DTMF masking: real speech, keyed digits, an independent decoder.
mod dtmf;
/// DTMF detection on real (espeak-ng) speech: no talk-off. Needs espeak-ng and sox, not root.
mod dtmf_speech;
/// Start-up errors, damaged files and volumes: clear messages, right codes.
mod errors;
/// No change without its record: a full journal, a crash between intent and outcome.
mod fail_closed;
/// The README's first-run set-up, run as it stands: users, init, policy, mount, reads, audit.
mod firstrun;
/// Frozen example volumes of each format version: still unlocked, mounted and read.
mod formats;
/// Format 3 integrity: changed, rolled-back and swapped sectors and files, seals, crashes.
mod integrity;
/// Operators' keyslots: kinds, removal, rules, history, dual control, header backups, format-1 upgrade, throttling.
mod keys;
/// Random writes and truncates checked against an in-memory model.
mod model;
/// What lands in the backing directory: no plaintext data, no plaintext names.
mod plaintext;
/// POSIX behaviour recorders and tools rely on (docs/SEMANTICS.md).
mod posix;
/// Unmount and remount keep data, names and metadata.
mod remount;
/// Per-user rights: real users and groups, real processes, a real mount.
mod rights;
/// Key rotation: a real volume rotated to a new master key, also killed half-way and resumed.
mod rotation;
/// 200,000 files under a 4,096-descriptor limit, audited: the daemon's descriptors stay bounded.
mod scale;
/// File sizes around sector boundaries and a sparse 10 GiB file.
mod sizes;
/// Creating and removing the unix users and groups the rights tests need.
mod users;
