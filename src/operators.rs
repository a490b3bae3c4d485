//! Turning `--passphrase-file [LABEL=]FILE` and `--keyfile [LABEL=]FILE` options into operators.
//!
//! Shared by callvaultd and callvault-keytool so both accept the same
//! spellings. An option value is `LABEL=FILE` when the text before the first
//! `=` is a valid operator ID (letters, digits, `._@-`), otherwise the whole
//! value is a path: `/media/usb/a=b` is a path, `alice=/media/usb/k` names
//! alice. A file whose name itself looks like `ID=...` is given as `./ID=...`.
//!
//! Factors without a label belong to one operator, labelled by `--label` if
//! given; factors with the same label belong to the same operator, so
//! `--passphrase-file alice=p --keyfile alice=k` opens alice's
//! passphrase+keyfile slot.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::header::{Credentials, validate_label};
use crate::keyfiles::digest_keyfiles;
use crate::secret::Passphrase;
use crate::volume::Operator;

/// One option value split into its label (if any) and path.
pub fn split_labelled(value: &str) -> (Option<String>, PathBuf) {
    if let Some((label, path)) = value.split_once('=')
        && validate_label(label).is_ok()
        && !path.is_empty()
    {
        return (Some(label.to_string()), PathBuf::from(path));
    }
    (None, PathBuf::from(value))
}

/// The factors given for one operator before the files are read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OperatorSpec {
    pub label: Option<String>,
    pub passphrase_file: Option<PathBuf>,
    pub keyfiles: Vec<PathBuf>,
}

/// Groups option values by operator (see the module doc). Refuses two
/// passphrase files for one operator.
pub fn group(
    label: Option<&str>,
    passphrase_files: &[String],
    keyfiles: &[String],
) -> Result<Vec<OperatorSpec>, Error> {
    let mut specs: Vec<OperatorSpec> = Vec::new();
    let mut find = |l: Option<String>| -> usize {
        let l = l.or_else(|| label.map(str::to_string));
        match specs.iter().position(|s| match (&s.label, &l) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        }) {
            Some(i) => i,
            None => {
                specs.push(OperatorSpec { label: l, ..OperatorSpec::default() });
                specs.len() - 1
            }
        }
    };
    let mut pass_at = Vec::new();
    for v in passphrase_files {
        let (l, p) = split_labelled(v);
        pass_at.push((find(l), p));
    }
    let mut key_at = Vec::new();
    for v in keyfiles {
        let (l, p) = split_labelled(v);
        key_at.push((find(l), p));
    }
    for (i, p) in pass_at {
        if specs[i].passphrase_file.replace(p).is_some() {
            let who = specs[i].label.clone().unwrap_or_else(|| "the operator".into());
            return Err(Error::DualControlOperators { what: format!("two passphrase files for {who}") });
        }
    }
    for (i, p) in key_at {
        specs[i].keyfiles.push(p);
    }
    if specs.len() > 1 && specs.iter().any(|s| s.label.is_none()) {
        return Err(Error::DualControlOperators {
            what: "with several operators, each --passphrase-file/--keyfile must name its operator (LABEL=FILE)".into(),
        });
    }
    Ok(specs)
}

/// Reads a passphrase file (capped, wiped; one trailing newline dropped).
/// An empty file is refused: it is almost always a mistake.
pub fn read_passphrase(path: &Path) -> Result<Passphrase, Error> {
    let p = Passphrase::read_file(path)?;
    if p.is_empty() {
        return Err(Error::EmptyPassphrase);
    }
    Ok(p)
}

/// Reads the files of one spec; `prompted` supplies a passphrase typed
/// instead of a passphrase file.
pub fn read(spec: &OperatorSpec, prompted: Option<Passphrase>) -> Result<Operator, Error> {
    let passphrase = match (&spec.passphrase_file, prompted) {
        (Some(p), _) => Some(read_passphrase(p)?),
        (None, p) => p,
    };
    let keyfiles =
        if spec.keyfiles.is_empty() { None } else { Some(digest_keyfiles(&spec.keyfiles).map_err(Error::Keyfile)?) };
    let creds = Credentials::new(passphrase, keyfiles).ok_or(Error::EmptyPassphrase)?;
    Ok(Operator { label: spec.label.clone(), creds })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn labels_are_split_only_when_they_are_operator_ids() {
        assert_eq!(split_labelled("alice=/run/p"), (Some("alice".into()), PathBuf::from("/run/p")));
        assert_eq!(split_labelled("/media/a=b"), (None, PathBuf::from("/media/a=b")));
        assert_eq!(split_labelled("./k=1"), (None, PathBuf::from("./k=1")));
        assert_eq!(split_labelled("plain"), (None, PathBuf::from("plain")));
        assert_eq!(split_labelled("alice="), (None, PathBuf::from("alice=")));
    }

    #[test]
    fn factors_group_by_operator() {
        let g = group(None, &s(&["alice=pa", "bob=pb"]), &s(&["alice=k1", "alice=k2"])).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].label.as_deref(), Some("alice"));
        assert_eq!(g[0].keyfiles, [PathBuf::from("k1"), PathBuf::from("k2")]);
        assert_eq!(g[1].passphrase_file, Some(PathBuf::from("pb")));
        // Unlabelled factors take --label.
        let g = group(Some("ops"), &s(&["p"]), &s(&["k"])).unwrap();
        assert_eq!(
            g,
            [OperatorSpec { label: Some("ops".into()), passphrase_file: Some("p".into()), keyfiles: vec!["k".into()] }]
        );
        assert!(group(None, &s(&["alice=p", "q"]), &[]).is_err(), "mixed labelled and unlabelled");
        assert!(group(None, &s(&["alice=p", "ALICE=q"]), &[]).is_err(), "two passphrases for alice");
        assert!(group(None, &[], &[]).unwrap().is_empty());
    }
}
