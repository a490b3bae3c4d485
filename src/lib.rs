//! callvault: encrypted, access-controlled, audited storage for call recordings.
//!
//! This crate is the library under the `callvaultd` FUSE daemon and the
//! `callvault-keytool` command: the on-disk volume format, its cryptography and
//! key handling. It has no FUSE code, no terminal code and no `unsafe`.
//!
//! The downward chain is: [`volume`] (a volume on disk) → [`header`] (the
//! volume header and its keyslots) → [`keys`] (subkeys for every purpose) →
//! [`contents`] / [`names`] (what is encrypted and how) → [`secret`] (key
//! types that wipe themselves).
#![forbid(unsafe_code)]

pub mod audio;
pub mod backing_file;
pub mod contents;
/// Detects DTMF keypad tones in a stream of samples, so the daemon can silence them before they are stored.
pub mod dtmf;
pub mod error;
pub mod exitcode;
pub mod filecrypto;
pub mod fileheader;
/// Entry points for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod journal;
pub mod kdf;
pub mod keyfiles;
pub mod keys;
pub mod layout;
pub mod names;
pub mod operators;
pub mod passrules;
pub mod policy;
pub mod random;
pub mod recording_seal;
pub mod rootdir;
pub mod rotation;
pub mod secret;
pub mod sectors;
pub mod shamir;
pub mod tags;
pub mod unlock_guard;
pub mod unlocking;
pub mod volume;

pub use error::Error;
