//! `callvault-keytool init`: create a volume.

use callvault::exitcode;

use crate::cli::InitArgs;
use crate::error::Failure;
use crate::new_secret::{self, NewSecretArgs};

pub fn run(args: &InitArgs) -> Result<(), Failure> {
    new_secret::check_kdf(&args.kdf)?;
    let usage = |e: callvault::rootdir::RootDirError| Failure::new(exitcode::USAGE, e);
    let owner = args
        .owner
        .as_deref()
        .map(|o| callvault::rootdir::parse_owner(o, &callvault::policy::SystemIds))
        .transpose()
        .map_err(usage)?;
    let mode = args.mode.as_deref().map(callvault::rootdir::parse_mode).transpose().map_err(usage)?;
    // Refuse before asking for a passphrase that would be thrown away.
    match callvault::volume::read_header(&args.volume) {
        Err(callvault::Error::NotAVolume { .. }) => {}
        _ => {
            return Err(callvault::Error::VolumeExists { path: args.volume.clone() }.into());
        }
    }
    let key_file = args.audit_key_file.clone().unwrap_or_else(|| {
        let mut p = args.volume.clone().into_os_string();
        p.push(".audit-key");
        p.into()
    });
    if key_file.exists() {
        return Err(Failure::new(
            exitcode::VOLUME_EXISTS,
            format!("audit key file {} already exists; refusing to overwrite it", key_file.display()),
        ));
    }
    callvault::header::validate_label(&args.label)?;
    let secret = new_secret::read(&NewSecretArgs {
        passphrase_file: args.passphrase_file.as_ref(),
        keyfiles: &args.keyfiles,
        allow_weak: args.allow_weak_passphrase,
        label: &args.label,
        passphrase_required: false,
    })?;
    let params = new_secret::kdf_params(&args.kdf)?;
    callvault::volume::create(&args.volume, &secret.creds, params, &args.label, |paths| {
        // Before the header: a root directory that could not be given away
        // leaves no mountable volume behind.
        callvault::rootdir::apply(&paths.data(), owner.as_ref(), mode)?;
        crate::audit_cmd::init_audit(&args.volume, &key_file).map(drop).map_err(callvault::Error::Audit)
    })?;
    let mut created = crate::audit_cmd::key_admin_event("init-volume", Some(0), callvault::journal::Outcome::Ok);
    created.detail.label = Some(args.label.clone());
    created.detail.mode = mode.map(|m| format!("{m:04o}"));
    let changed = callvault::rootdir::changes(owner.as_ref(), mode);
    created.detail.changed = (!changed.is_empty()).then_some(changed);
    created.detail.reason =
        secret.waived.map(|rule| format!("passphrase rule {rule} waived by --allow-weak-passphrase"));
    crate::audit_cmd::record_event(&args.volume, created).map_err(|e| Failure::new(exitcode::AUDIT_UNAVAILABLE, e))?;
    println!(
        "created volume {} (Argon2id {} MiB x {} passes, keyslot 0 \"{}\", {})",
        args.volume.display(),
        params.memory_kib / 1024,
        params.time_cost,
        args.label,
        secret.creds.kind().name()
    );
    println!(
        "auditor's journal verification key: {} (give it to the auditor and remove it from this machine)",
        key_file.display()
    );
    Ok(())
}
