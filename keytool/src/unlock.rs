//! Who authorizes a key change: the operators' factors from options or prompts, the throttled unlock and its journal records.
//!
//! Factors come from `--unlock-passphrase-file [LABEL=]FILE` and
//! `--unlock-keyfile [LABEL=]FILE` (grouped per operator by
//! `callvault::operators`, unlabelled ones taking `--unlock-label`), else
//! from the terminal: one passphrase, or under dual control each operator
//! in turn by operator ID, as `callvaultd` asks (fs-daemon/src/unlock.rs).
//!
//! Every unlock attempt is journaled: `unlock` with the slot and the
//! operators who took part, or `unlock_failed` with the operator tried and
//! the first line of the error (never a secret). A successful unlock whose
//! record cannot be made is refused: nothing is changed without it.

use std::path::Path;
use std::time::Duration;

use callvault::exitcode;
use callvault::header::AnyHeader;
use callvault::journal::{Actor, Detail, Event, EventKind, Outcome};
use callvault::operators::{self, OperatorSpec};
use callvault::secret::{MasterKey, Passphrase};
use callvault::unlock_guard::delay_for;
use callvault::volume::{Operator, Unlocked};

use crate::audit_cmd::record_event;
use crate::cli::UnlockArgs;
use crate::error::Failure;

fn source_error(e: impl std::fmt::Display) -> Failure {
    Failure::new(exitcode::PASSPHRASE_SOURCE, e)
}

/// The authorizing operators' factors: from the options, else prompted.
pub fn read_operators(volume: &Path, args: &UnlockArgs, header: &AnyHeader) -> Result<Vec<Operator>, Failure> {
    let specs = operators::group(args.unlock_label.as_deref(), &args.unlock_passphrase_files, &args.unlock_keyfiles)
        .map_err(|e| Failure::new(exitcode::USAGE, e))?;
    if !specs.is_empty() {
        return read_specs(&specs);
    }
    prompt_operators(volume, args.unlock_label.as_deref(), header, Vec::new())
}

/// Reads the files of each operator's factors.
pub fn read_specs(specs: &[OperatorSpec]) -> Result<Vec<Operator>, Failure> {
    specs.iter().map(|s| operators::read(s, None).map_err(source_error)).collect()
}

/// Asks on the terminal, with no echo.
pub fn ask(prompt: &str) -> Result<Passphrase, Failure> {
    let typed = rpassword::prompt_password(prompt).map_err(|e| {
        source_error(format!("cannot prompt for the passphrase ({e}); give --unlock-passphrase-file [LABEL=]FILE"))
    })?;
    Ok(Passphrase::new(typed.into_bytes()))
}

/// Prompts for the operators still missing: one passphrase (for `label`, if
/// named), or under dual control operator IDs and passphrases until
/// `threshold` operators, those in `ops` included, have given theirs.
pub fn prompt_operators(
    volume: &Path,
    label: Option<&str>,
    header: &AnyHeader,
    mut ops: Vec<Operator>,
) -> Result<Vec<Operator>, Failure> {
    let dual = match header {
        AnyHeader::V2(h) => h.dual.as_ref().map(|d| (d.threshold, h.labels())),
        AnyHeader::V1(_) => None,
    };
    let Some((threshold, labels)) = dual else {
        if !ops.is_empty() {
            return Ok(ops);
        }
        let who = label.map(|l| format!(" ({l})")).unwrap_or_default();
        let pass = ask(&format!("Passphrase for {}{who}: ", volume.display()))?;
        let spec = OperatorSpec { label: label.map(str::to_string), ..OperatorSpec::default() };
        return Ok(vec![operators::read(&spec, Some(pass)).map_err(source_error)?]);
    };
    if ops.len() >= usize::from(threshold) {
        return Ok(ops);
    }
    eprintln!(
        "{} is under dual control: {threshold} of {} must each type their passphrase.",
        volume.display(),
        labels.join(", ")
    );
    while ops.len() < usize::from(threshold) {
        let n = ops.len() + 1;
        eprint!("Operator {n} of {threshold}, operator ID: ");
        let mut id = String::new();
        match std::io::stdin().read_line(&mut id) {
            Ok(0) => {
                return Err(source_error(
                    "no operator ID typed; give --unlock-passphrase-file LABEL=FILE per operator",
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(source_error(format!("cannot read an operator ID ({e})"))),
        }
        let id = id.trim().to_string();
        if !labels.iter().any(|l| l.eq_ignore_ascii_case(&id)) {
            eprintln!("no operator {id:?} on this volume; one of {}", labels.join(", "));
            continue;
        }
        if ops.iter().any(|o| o.label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(&id))) {
            eprintln!("{id} has already given their passphrase");
            continue;
        }
        let pass = ask(&format!("Passphrase of {id}: "))?;
        let spec = OperatorSpec { label: Some(id), ..OperatorSpec::default() };
        ops.push(operators::read(&spec, Some(pass)).map_err(source_error)?);
    }
    Ok(ops)
}

/// Logs the throttle's wait before it happens.
fn log_delay(delay: Duration, failures: u32) {
    eprintln!(
        "callvault-keytool: warning: {failures} failed unlocks in a row on this volume: waiting {:.1} s before trying \
         (each attempt now waits {} s after the last failure)",
        delay.as_secs_f64(),
        delay_for(failures).as_secs()
    );
}

/// Unlocks the volume with `operators` (throttled) and journals the attempt.
pub fn unlock(volume: &Path, operators: &[Operator]) -> Result<Unlocked, Failure> {
    let result = callvault::unlocking::unlock_throttled(volume, operators, log_delay).map(|u| {
        let (slots, labels) = (u.slots.clone(), u.labels.clone());
        (u, slots, labels)
    });
    let u = journaled(volume, operators, None, result)?;
    for w in &u.warnings {
        eprintln!("callvault-keytool: warning: volume header: {w}");
    }
    Ok(u)
}

/// Unlocks a header backup read from `file` with `operators`, throttled by
/// the volume's failure count, and journals the attempt. Gives the master
/// key, and the slots and labels of the operators who opened it.
pub fn unlock_backup(
    volume: &Path,
    backup: &AnyHeader,
    file: &Path,
    operators: &[Operator],
) -> Result<(MasterKey, Vec<usize>, Vec<String>), Failure> {
    let result =
        callvault::unlocking::throttled(volume, log_delay, || callvault::volume::open_header(backup, operators, file))
            .map(|(master, slots, labels)| ((master, slots.clone(), labels.clone()), slots, labels));
    journaled(volume, operators, Some(format!("header backup {}", file.display())), result)
}

/// Records an unlock attempt's outcome; refuses a success whose record fails.
fn journaled<T>(
    volume: &Path,
    operators: &[Operator],
    what: Option<String>,
    result: Result<(T, Vec<usize>, Vec<String>), callvault::Error>,
) -> Result<T, Failure> {
    match result {
        Ok((value, slots, labels)) => {
            let ev = Event::new(EventKind::Unlock, Actor::current_process()).detail(Detail {
                slot: slots.first().map(|&s| s as u32),
                label: labels.first().cloned(),
                labels: (labels.len() > 1).then(|| labels.clone()),
                reason: what,
                ..Detail::default()
            });
            record_event(volume, ev).map_err(|e| {
                Failure::new(
                    exitcode::AUDIT_UNAVAILABLE,
                    format!("the unlock could not be recorded in the audit journal, so nothing was changed: {e}"),
                )
            })?;
            Ok(value)
        }
        Err(e) => {
            let tried: Vec<String> = operators.iter().filter_map(|o| o.label.clone()).collect();
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            let reason = match what {
                Some(w) => format!("{w}: {first}"),
                None => first,
            };
            let ev = Event::new(EventKind::UnlockFailed, Actor::current_process())
                .outcome(Outcome::errno(EACCES))
                .detail(Detail {
                    label: tried.first().cloned(),
                    labels: (tried.len() > 1).then(|| tried.clone()),
                    reason: Some(reason),
                    ..Detail::default()
                });
            // Not a volume: there is no journal to write to.
            if !matches!(e, callvault::Error::NotAVolume { .. })
                && let Err(je) = record_event(volume, ev)
            {
                eprintln!("callvault-keytool: warning: this failed unlock could not be recorded: {je}");
            }
            Err(match e {
                // The library's hint names callvaultd's options.
                callvault::Error::DualControlRequired { .. } => Failure::new(
                    exitcode::for_error(&e),
                    format!(
                        "{}\nhint: pass --unlock-passphrase-file LABEL=FILE (or --unlock-keyfile LABEL=FILE) once per operator",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                ),
                e => e.into(),
            })
        }
    }
}

/// errno for a refused unlock, as callvaultd records it.
const EACCES: i32 = 13;
