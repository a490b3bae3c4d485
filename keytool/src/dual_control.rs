//! `callvault-keytool dual-control enable|disable`: K of the operators must unlock together, or each alone again.

use std::path::Path;

use callvault::journal::Outcome;

use crate::cli::UnlockArgs;
use crate::error::Failure;
use crate::key_change;

/// `dual-control enable VOLUME --threshold K --labels A,B,C`: authorized by
/// one operator (the volume is not under dual control yet).
pub fn enable(volume: &Path, threshold: u8, labels: &[String], unlock: &UnlockArgs) -> Result<(), Failure> {
    const ACTION: &str = "dual-control-enable";
    let labels: Vec<String> = labels.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    let mut a = key_change::authorize(volume, unlock)?;
    let (header, master) = a.parts();
    let enabled = header.enable_dual_control(master, threshold, &labels);
    enabled.map_err(|e| a.refuse(ACTION, None, e.into()))?;
    let mut ev = a.event(ACTION, None, None, Outcome::Ok);
    ev.detail.reason = Some(format!("threshold {threshold} of {}", labels.join(", ")));
    a.commit(ev)?;
    println!("dual control enabled: {threshold} of {} must unlock together", labels.join(", "));
    Ok(())
}

/// `dual-control disable VOLUME`: authorized by K operators.
pub fn disable(volume: &Path, unlock: &UnlockArgs) -> Result<(), Failure> {
    const ACTION: &str = "dual-control-disable";
    let mut a = key_change::authorize(volume, unlock)?;
    let (header, master) = a.parts();
    let disabled = header.disable_dual_control(master);
    disabled.map_err(|e| a.refuse(ACTION, None, e.into()))?;
    let ev = a.event(ACTION, None, None, Outcome::Ok);
    a.commit(ev)?;
    println!("dual control disabled: each keyslot unlocks alone again");
    Ok(())
}
