//! Where the daemon's unlock secrets come from: options, systemd credentials, or prompts.
//!
//! In this order: `--passphrase-file`/`--keyfile` (each `[LABEL=]FILE`,
//! repeatable); else the systemd credentials `callvault-passphrase` and
//! `callvault-keyfile` in `$CREDENTIALS_DIRECTORY`; else a prompt on the
//! terminal, once per operator under dual control (by operator ID).

use std::path::PathBuf;

use callvault::exitcode;
use callvault::header::AnyHeader;
use callvault::operators::{self, OperatorSpec};
use callvault::secret::Passphrase;
use callvault::volume::Operator;

use crate::cli::Args;
use crate::run::Fatal;

/// Name of the systemd credential holding the passphrase (LoadCredential=).
pub const CREDENTIAL_NAME: &str = "callvault-passphrase";
/// Name of the systemd credential holding a keyfile.
pub const KEYFILE_CREDENTIAL_NAME: &str = "callvault-keyfile";

fn source_error(e: impl std::fmt::Display) -> Fatal {
    Fatal::new(exitcode::PASSPHRASE_SOURCE, e)
}

/// The operators' factors, read before the daemon forks (the background
/// child has no terminal).
pub fn read_operators(args: &Args, header: &AnyHeader) -> Result<Vec<Operator>, Fatal> {
    let mut specs = operators::group(args.label.as_deref(), &args.passphrase_files, &args.keyfiles)
        .map_err(|e| Fatal::new(exitcode::USAGE, e))?;
    if specs.is_empty()
        && let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
    {
        let dir = PathBuf::from(dir);
        let (p, k) = (dir.join(CREDENTIAL_NAME), dir.join(KEYFILE_CREDENTIAL_NAME));
        if p.exists() || k.exists() {
            specs.push(OperatorSpec {
                label: args.label.clone(),
                passphrase_file: p.exists().then_some(p),
                keyfiles: if k.exists() { vec![k] } else { Vec::new() },
            });
        }
    }
    if !specs.is_empty() {
        return specs.iter().map(|s| operators::read(s, None).map_err(source_error)).collect();
    }
    prompt_operators(args, header)
}

fn ask(prompt: &str) -> Result<Passphrase, Fatal> {
    let typed = rpassword::prompt_password(prompt).map_err(|e| {
        source_error(format!("cannot prompt for the passphrase ({e}); give --passphrase-file [LABEL=]FILE"))
    })?;
    Ok(Passphrase::new(typed.into_bytes()))
}

fn prompt_operators(args: &Args, header: &AnyHeader) -> Result<Vec<Operator>, Fatal> {
    let dual = match header {
        AnyHeader::V2(h) => h.dual.as_ref().map(|d| (d.threshold, h.labels())),
        AnyHeader::V1(_) => None,
    };
    let Some((threshold, labels)) = dual else {
        let who = args.label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
        let pass = ask(&format!("Passphrase for {}{who}: ", args.volume.display()))?;
        let spec = OperatorSpec { label: args.label.clone(), ..OperatorSpec::default() };
        return Ok(vec![operators::read(&spec, Some(pass)).map_err(source_error)?]);
    };
    eprintln!(
        "{} is under dual control: {threshold} of {} must each type their passphrase.",
        args.volume.display(),
        labels.join(", ")
    );
    let mut ops: Vec<Operator> = Vec::new();
    while ops.len() < usize::from(threshold) {
        let n = ops.len() + 1;
        eprint!("Operator {n} of {threshold}, operator ID: ");
        let mut label = String::new();
        match std::io::stdin().read_line(&mut label) {
            Ok(0) => return Err(source_error("no operator ID typed; give --passphrase-file LABEL=FILE per operator")),
            Ok(_) => {}
            Err(e) => return Err(source_error(format!("cannot read an operator ID ({e})"))),
        }
        let label = label.trim().to_string();
        if !labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
            eprintln!("no operator {label:?} on this volume; one of {}", labels.join(", "));
            continue;
        }
        let pass = ask(&format!("Passphrase of {label}: "))?;
        let spec = OperatorSpec { label: Some(label), ..OperatorSpec::default() };
        ops.push(operators::read(&spec, Some(pass)).map_err(source_error)?);
    }
    Ok(ops)
}
