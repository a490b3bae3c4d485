//! `callvault-keytool passwd`: an operator changes their own passphrase after giving the current one.
//!
//! The slot keeps its key pair (and its keyfiles, for a passphrase+keyfile
//! slot): only the wrap of its private key changes. Writing the header
//! needs the master key for its MAC, which the operator's own slot gives,
//! except under dual control: then K operators, the owner included, unlock
//! together (`--unlock-passphrase-file LABEL=FILE` for the others, or
//! prompts). Refused for a slot flagged no-self-change, and for a new
//! passphrase that breaks a rule or is one of the slot's last four.

use callvault::exitcode;
use callvault::header::{AnyHeader, SlotKind};
use callvault::journal::Outcome;
use callvault::operators::{self, OperatorSpec};
use callvault::volume::{self, VolumePaths};

use crate::cli::PasswdArgs;
use crate::error::Failure;
use crate::key_change;
use crate::new_secret::{self, NewSecretArgs};
use crate::slot_cmd::waived;
use crate::unlock;

const ACTION: &str = "passwd";

pub fn run(args: &PasswdArgs) -> Result<(), Failure> {
    new_secret::check_kdf(&args.kdf)?;
    let header = volume::read_header(&args.volume)?;
    if let AnyHeader::V2(h) = &header {
        let Some(index) = h.find(&args.label) else {
            return Err(callvault::Error::UnknownLabel { label: args.label.clone(), known: h.labels() }.into());
        };
        if h.slots[index].as_ref().is_some_and(|s| s.kind == SlotKind::Keyfile) {
            let f = Failure::new(
                exitcode::KEY_CHANGE_REFUSED,
                format!(
                    "keyslot {index} \"{}\" opens with keyfiles only: it has no passphrase to change\n\
                     hint: an administrator sets new factors with `callvault-keytool slot reset`",
                    args.label
                ),
            );
            return Err(key_change::refuse(&args.volume, ACTION, Some(&args.label), None, f));
        }
    }
    let own = OperatorSpec {
        label: Some(args.label.clone()),
        passphrase_file: args.passphrase_file.clone(),
        keyfiles: args.keyfiles.clone(),
    };
    let prompted = match &args.passphrase_file {
        Some(_) => None,
        None => Some(unlock::ask(&format!("Current passphrase of {}: ", args.label))?),
    };
    let mut ops = vec![operators::read(&own, prompted).map_err(|e| Failure::new(exitcode::PASSPHRASE_SOURCE, e))?];
    let others = operators::group(None, &args.unlock_passphrase_files, &args.unlock_keyfiles)
        .map_err(|e| Failure::new(exitcode::USAGE, e))?;
    if others.iter().any(|s| s.label.is_none()) {
        return Err(Failure::new(
            exitcode::USAGE,
            "--unlock-passphrase-file and --unlock-keyfile name the other operators: give them as LABEL=FILE",
        ));
    }
    let given_others = !others.is_empty();
    ops.extend(unlock::read_specs(&others)?);
    if !given_others {
        // Under dual control, ask the other operators in turn.
        ops = unlock::prompt_operators(&args.volume, None, &header, ops)?;
    }
    let mut a = key_change::authorize_with(&args.volume, &ops)?;
    let label = Some(args.label.as_str());
    if let Some(index) = a.header.find(&args.label)
        && a.header.slots[index].as_ref().is_some_and(|s| s.no_self_change())
    {
        let e = callvault::Error::SelfChangeForbidden { label: args.label.clone() };
        return Err(a.refuse(ACTION, label, e.into()));
    }
    let secret = new_secret::read(&NewSecretArgs {
        passphrase_file: args.new_passphrase_file.as_ref(),
        keyfiles: &args.keyfiles,
        allow_weak: args.allow_weak_passphrase,
        label: &args.label,
        passphrase_required: true,
    })
    .map_err(|f| a.refuse(ACTION, label, f))?;
    let kdf = new_secret::kdf_params(&args.kdf)?;
    let path = VolumePaths::new(&args.volume).header();
    let (header, _) = a.parts();
    let changed = header.change_own(&args.label, &ops[0].creds, &secret.creds, kdf, key_change::now(), &path);
    let index = changed.map_err(|e| a.refuse(ACTION, label, e.into()))?;
    let mut ev = a.event(ACTION, label, Some(index), Outcome::Ok);
    ev.detail.reason = waived(&secret.waived);
    a.commit(ev)?;
    println!("changed the passphrase of keyslot {index} \"{}\"", args.label);
    Ok(())
}
