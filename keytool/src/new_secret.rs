//! Getting the factors of a new or changed keyslot, and holding its passphrase to the rules.

use std::path::PathBuf;

use callvault::exitcode;
use callvault::header::Credentials;
use callvault::keyfiles::digest_keyfiles;
use callvault::passrules::check_new_passphrase;
use callvault::secret::Passphrase;

use crate::error::Failure;
use crate::passphrase;

/// Exit code of a passphrase refused by a rule (docs/CLI.md).
pub const EXIT_WEAK_PASSPHRASE: u8 = exitcode::PASSPHRASE_RULE;

/// Where the new factors come from.
pub struct NewSecretArgs<'a> {
    pub passphrase_file: Option<&'a PathBuf>,
    pub keyfiles: &'a [PathBuf],
    pub allow_weak: bool,
    /// The slot's operator ID (a passphrase may not contain it).
    pub label: &'a str,
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
        None if args.keyfiles.is_empty() => Some(passphrase::prompt_new()?),
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
