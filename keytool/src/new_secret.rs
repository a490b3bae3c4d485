//! Getting the factors and the Argon2id cost of a new or changed keyslot, and holding its passphrase to the rules.

use std::path::PathBuf;
use std::time::Duration;

use callvault::exitcode;
use callvault::header::Credentials;
use callvault::kdf::{self, KdfParams};
use callvault::keyfiles::digest_keyfiles;
use callvault::passrules::check_new_passphrase;
use callvault::secret::Passphrase;

use crate::cli::KdfArgs;
use crate::error::Failure;
use crate::passphrase;

/// Checks `--kdf-memory` and `--kdf-time` (usage errors, exit 2): done
/// first, before anything is read or asked.
pub fn check_kdf(args: &KdfArgs) -> Result<(), Failure> {
    if !(1..=kdf::MAX_MEMORY_KIB / 1024).contains(&args.kdf_memory) {
        return Err(Failure::new(
            exitcode::USAGE,
            format!("--kdf-memory must be between 1 and {} MiB", kdf::MAX_MEMORY_KIB / 1024),
        ));
    }
    if !args.kdf_time.is_finite() || args.kdf_time < 0.0 || args.kdf_time > 60.0 {
        return Err(Failure::new(exitcode::USAGE, "--kdf-time must be between 0 and 60 seconds"));
    }
    Ok(())
}

/// The Argon2id parameters of a new slot: warns below the production
/// memory cost, then calibrates the passes to `--kdf-time` on this machine.
pub fn kdf_params(args: &KdfArgs) -> Result<KdfParams, Failure> {
    check_kdf(args)?;
    if args.kdf_memory < kdf::DEFAULT_MEMORY_MIB {
        eprintln!(
            "callvault-keytool: warning: --kdf-memory {} MiB is below the {} MiB production minimum; use it for tests only",
            args.kdf_memory,
            kdf::DEFAULT_MEMORY_MIB
        );
    }
    Ok(KdfParams::calibrate(args.kdf_memory, Duration::from_secs_f64(args.kdf_time))?)
}

/// Exit code of a passphrase refused by a rule (docs/CLI.md).
pub const EXIT_WEAK_PASSPHRASE: u8 = exitcode::PASSPHRASE_RULE;

/// Where the new factors come from.
pub struct NewSecretArgs<'a> {
    pub passphrase_file: Option<&'a PathBuf>,
    pub keyfiles: &'a [PathBuf],
    pub allow_weak: bool,
    /// The slot's operator ID (a passphrase may not contain it).
    pub label: &'a str,
    /// Ask for a passphrase when no file is given even if keyfiles are
    /// (`passwd`: the slot keeps its keyfiles and gets a new passphrase).
    pub passphrase_required: bool,
}

/// The new factors, and whether a rule was waived (the caller records it).
pub struct NewSecret {
    pub creds: Credentials,
    /// The rule a passphrase broke and --allow-weak-passphrase let pass.
    pub waived: Option<String>,
}

/// Reads the passphrase file (or asks twice when no factor is given at
/// all), digests the keyfiles, and checks the passphrase rules.
pub fn read(args: &NewSecretArgs<'_>) -> Result<NewSecret, Failure> {
    let pass = match args.passphrase_file {
        Some(p) => Some(passphrase::from_file(p)?),
        None if args.keyfiles.is_empty() || args.passphrase_required => Some(passphrase::prompt_new()?),
        None => None,
    };
    let mut waived = None;
    if let Some(p) = &pass
        && let Err(rule) = check_new_passphrase(p.expose_secret(), args.label)
    {
        if !args.allow_weak {
            return Err(Failure::new(
                EXIT_WEAK_PASSPHRASE,
                format!("{rule}\nhint: choose a longer passphrase of unrelated words with a digit"),
            ));
        }
        eprintln!("callvault-keytool: warning: --allow-weak-passphrase: {rule}; this is recorded in the audit journal");
        waived = Some(rule.name().to_string());
    }
    let keyfiles = if args.keyfiles.is_empty() {
        None
    } else {
        Some(digest_keyfiles(args.keyfiles).map_err(|e| Failure::new(exitcode::PASSPHRASE_SOURCE, e))?)
    };
    let creds = Credentials::new(pass.filter(|p: &Passphrase| !p.is_empty()), keyfiles)
        .ok_or_else(|| Failure::new(exitcode::PASSPHRASE_SOURCE, "no passphrase and no keyfile given"))?;
    Ok(NewSecret { creds, waived })
}
