//! `callvault-keytool slot list|add|remove|reset|flag`: the operators' keyslots.

use std::path::Path;

use callvault::exitcode;
use callvault::header::{AnyHeader, NewSlot, validate_label};
use callvault::journal::Outcome;

use crate::cli::{SlotAddArgs, SlotResetArgs, UnlockArgs};
use crate::error::Failure;
use crate::key_change::{self, Authorized};
use crate::new_secret::{self, NewSecretArgs};

/// One row of `slot list`: nothing secret, nothing that needs a key.
struct Row {
    slot: usize,
    label: String,
    kind: &'static str,
    created: u64,
    changed: u64,
    no_self_change: bool,
    dual_control: bool,
    memory_kib: u32,
    time_cost: u32,
}

/// What `slot list` shows of a header.
struct Listing {
    rows: Vec<Row>,
    generation: u32,
    /// The threshold and the member labels.
    dual: Option<(u8, Vec<String>)>,
    rotating: bool,
}

/// Unix seconds as RFC 3339 UTC, to the second.
fn rfc3339(secs: u64) -> String {
    let nanos = i128::from(secs) * 1_000_000_000;
    let full = callvault::journal::time::format_unix_nanos(nanos);
    format!("{}Z", &full[..19])
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `slot list VOLUME [--format table|json]`.
pub fn list(volume: &Path, format: &str) -> Result<(), Failure> {
    let copies = callvault::volume::read_headers(volume)?;
    for w in copies.damage_warnings() {
        eprintln!("callvault-keytool: warning: {w}");
    }
    let header = copies.best().expect("read_headers gives at least one decoded copy");
    let Listing { rows, generation, dual, rotating } = match header {
        AnyHeader::V1(h) => {
            let rows = h
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
                .map(|(slot, s)| Row {
                    slot,
                    label: s.label.clone(),
                    kind: "passphrase",
                    created: s.created,
                    changed: s.created,
                    no_self_change: false,
                    dual_control: false,
                    memory_kib: s.kdf.memory_kib,
                    time_cost: s.kdf.time_cost,
                })
                .collect();
            Listing { rows, generation: 1, dual: None, rotating: false }
        }
        AnyHeader::V2(h) => {
            let rows = h
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
                .map(|(slot, s)| Row {
                    slot,
                    label: s.label.clone(),
                    kind: s.kind.name(),
                    created: s.created,
                    changed: s.changed,
                    no_self_change: s.no_self_change(),
                    dual_control: h.dual.is_some(),
                    memory_kib: s.kdf.memory_kib,
                    time_cost: s.kdf.time_cost,
                })
                .collect();
            Listing {
                rows,
                generation: h.generation,
                dual: h.dual.as_ref().map(|d| (d.threshold, h.labels())),
                rotating: h.rotating(),
            }
        }
    };
    let version = header.version();
    if format == "json" {
        let dual_json = match &dual {
            Some((k, labels)) => format!(
                "{{\"threshold\":{k},\"labels\":[{}]}}",
                labels.iter().map(|l| json_str(l)).collect::<Vec<_>>().join(",")
            ),
            None => "null".into(),
        };
        let slots: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"slot\":{},\"label\":{},\"kind\":\"{}\",\"created\":\"{}\",\"changed\":\"{}\",\
                     \"no_self_change\":{},\"dual_control\":{},\"kdf_memory_kib\":{},\"kdf_time_cost\":{}}}",
                    r.slot,
                    json_str(&r.label),
                    r.kind,
                    rfc3339(r.created),
                    rfc3339(r.changed),
                    r.no_self_change,
                    r.dual_control,
                    r.memory_kib,
                    r.time_cost
                )
            })
            .collect();
        println!(
            "{{\"volume\":{},\"format\":{version},\"generation\":{generation},\"rotation_in_progress\":{rotating},\
             \"dual_control\":{dual_json},\"slots\":[{}]}}",
            json_str(&volume.display().to_string()),
            slots.join(",")
        );
        return Ok(());
    }
    let mut line = format!("volume {}: format {version}, key generation {generation}", volume.display());
    match &dual {
        Some((k, labels)) => line.push_str(&format!(", dual control {k} of {}", labels.join(", "))),
        None => line.push_str(", no dual control"),
    }
    if rotating {
        line.push_str(", key rotation in progress");
    }
    println!("{line}");
    let width = rows.iter().map(|r| r.label.len()).max().unwrap_or(0).max(5);
    println!(
        "{:<4}  {:<width$}  {:<18}  {:<20}  {:<20}  {:<12}  FLAGS",
        "SLOT", "LABEL", "KIND", "CREATED", "CHANGED", "ARGON2ID"
    );
    for r in &rows {
        let mut flags = Vec::new();
        if r.no_self_change {
            flags.push("no-self-change");
        }
        if r.dual_control {
            flags.push("dual-control");
        }
        let flags = if flags.is_empty() { "-".to_string() } else { flags.join(",") };
        let cost = format!("{} MiB x {}", r.memory_kib / 1024, r.time_cost);
        println!(
            "{:<4}  {:<width$}  {:<18}  {:<20}  {:<20}  {:<12}  {flags}",
            r.slot,
            r.label,
            r.kind,
            rfc3339(r.created),
            rfc3339(r.changed),
            cost
        );
    }
    Ok(())
}

/// `slot add`.
pub fn add(args: &SlotAddArgs) -> Result<(), Failure> {
    new_secret::check_kdf(&args.kdf)?;
    validate_label(&args.label)?;
    let mut a = key_change::authorize(&args.volume, &args.unlock)?;
    const ACTION: &str = "add-keyslot";
    let label = Some(args.label.as_str());
    // Before the new secret is asked for.
    if a.header.find(&args.label).is_some() {
        return Err(a.refuse(ACTION, label, callvault::Error::DuplicateLabel { label: args.label.clone() }.into()));
    }
    let secret = new_secret::read(&NewSecretArgs {
        passphrase_file: args.passphrase_file.as_ref(),
        keyfiles: &args.keyfiles,
        allow_weak: args.allow_weak_passphrase,
        label: &args.label,
        passphrase_required: false,
    })
    .map_err(|f| a.refuse(ACTION, label, f))?;
    let kdf = new_secret::kdf_params(&args.kdf)?;
    let new = NewSlot { label: &args.label, creds: &secret.creds, kdf, no_self_change: args.no_self_change };
    let (header, master) = a.parts();
    let added = header.add_slot(master, new, key_change::now());
    let index = added.map_err(|e| a.refuse(ACTION, label, e.into()))?;
    let mut ev = a.event(ACTION, label, Some(index), Outcome::Ok);
    ev.detail.reason = waived(&secret.waived);
    a.commit(ev)?;
    let flag = if args.no_self_change { ", no-self-change" } else { "" };
    println!("added keyslot {index} \"{}\" ({}{flag})", args.label, secret.creds.kind().name());
    Ok(())
}

/// The journal's note of a waived passphrase rule.
pub fn waived(rule: &Option<String>) -> Option<String> {
    rule.as_ref().map(|rule| format!("passphrase rule {rule} waived by --allow-weak-passphrase"))
}

/// `slot remove`.
pub fn remove(volume: &Path, label: &str, unlock: &UnlockArgs) -> Result<(), Failure> {
    let mut a = key_change::authorize(volume, unlock)?;
    const ACTION: &str = "remove-keyslot";
    let (header, master) = a.parts();
    let removed = header.remove_slot(master, label);
    let index = removed.map_err(|e| a.refuse(ACTION, Some(label), e.into()))?;
    let ev = a.event(ACTION, Some(label), Some(index), Outcome::Ok);
    a.commit(ev)?;
    println!("removed keyslot {index} \"{label}\"");
    Ok(())
}

/// Refuses a change of `label` authorized by that very slot.
fn not_by_itself(a: &Authorized, action: &str, label: &str, what: &str) -> Result<(), Failure> {
    if a.authorized_by(label) {
        return Err(a.refuse(
            action,
            Some(label),
            Failure::new(
                exitcode::KEY_CHANGE_REFUSED,
                format!(
                    "refusing to {what} {label} on its own authority: it is one of the slots that unlocked the volume\n\
                     hint: authorize with another operator's slot (--unlock-label ID); to change your own passphrase use `callvault-keytool passwd`"
                ),
            ),
        ));
    }
    Ok(())
}

/// `slot reset`.
pub fn reset(args: &SlotResetArgs) -> Result<(), Failure> {
    new_secret::check_kdf(&args.kdf)?;
    let mut a = key_change::authorize(&args.volume, &args.unlock)?;
    const ACTION: &str = "reset-keyslot";
    let label = Some(args.label.as_str());
    not_by_itself(&a, ACTION, &args.label, "reset")?;
    if a.header.find(&args.label).is_none() {
        let e = callvault::Error::UnknownLabel { label: args.label.clone(), known: a.header.labels() };
        return Err(a.refuse(ACTION, label, e.into()));
    }
    let secret = new_secret::read(&NewSecretArgs {
        passphrase_file: args.new_passphrase_file.as_ref(),
        keyfiles: &args.new_keyfiles,
        allow_weak: args.allow_weak_passphrase,
        label: &args.label,
        passphrase_required: false,
    })
    .map_err(|f| a.refuse(ACTION, label, f))?;
    let kdf = new_secret::kdf_params(&args.kdf)?;
    let (header, master) = a.parts();
    let reset = header.reset_slot(master, &args.label, &secret.creds, kdf, key_change::now());
    let index = reset.map_err(|e| a.refuse(ACTION, label, e.into()))?;
    let mut ev = a.event(ACTION, label, Some(index), Outcome::Ok);
    ev.detail.reason = waived(&secret.waived);
    a.commit(ev)?;
    println!("reset keyslot {index} \"{}\" ({})", args.label, secret.creds.kind().name());
    Ok(())
}

/// `slot flag --no-self-change on|off`.
pub fn flag(volume: &Path, label: &str, on: bool, unlock: &UnlockArgs) -> Result<(), Failure> {
    let mut a = key_change::authorize(volume, unlock)?;
    let action = if on { "set-no-self-change" } else { "clear-no-self-change" };
    not_by_itself(&a, action, label, "change the flags of")?;
    let index = a.header.set_no_self_change(label, on).map_err(|e| a.refuse(action, Some(label), e.into()))?;
    let ev = a.event(action, Some(label), Some(index), Outcome::Ok);
    a.commit(ev)?;
    let verb = if on { "set" } else { "cleared" };
    println!("{verb} no-self-change on keyslot {index} \"{label}\"");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_753_457), "2025-12-03T09:17:37Z");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("ops"), "\"ops\"");
        assert_eq!(json_str("/srv/a\"b\\c\n"), "\"/srv/a\\\"b\\\\c\\u000a\"");
    }
}
