//! Reading a new passphrase: from a file, or typed twice without echo.

use std::path::Path;

use callvault::exitcode;
use callvault::secret::{Passphrase, ct_eq};

use crate::error::Failure;

/// Reads a passphrase file: capped at `secret::MAX_SECRET_FILE`, into one
/// buffer that never grows and is wiped on drop (`Passphrase::read_file`).
pub fn from_file(p: &Path) -> Result<Passphrase, Failure> {
    // Error::Io and SecretFileTooLarge both start with the path.
    let pass = Passphrase::read_file(p)
        .map_err(|e| Failure::new(exitcode::PASSPHRASE_SOURCE, format!("passphrase file {e}")))?;
    if pass.is_empty() {
        return Err(Failure::new(exitcode::PASSPHRASE_SOURCE, format!("passphrase file {} is empty", p.display())));
    }
    Ok(pass)
}

/// Asks twice on the terminal with no echo; the two must match.
pub fn prompt_new() -> Result<Passphrase, Failure> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map(|s| Passphrase::new(s.into_bytes())).map_err(|e| {
            Failure::new(
                exitcode::PASSPHRASE_SOURCE,
                format!("cannot prompt for a passphrase ({e}); give --passphrase-file FILE"),
            )
        })
    };
    let first = ask("New passphrase: ")?;
    let second = ask("Repeat passphrase: ")?;
    if !ct_eq(first.expose_secret(), second.expose_secret()) {
        return Err(Failure::new(exitcode::PASSPHRASE_SOURCE, "the two passphrases differ; nothing was created"));
    }
    if first.is_empty() {
        return Err(Failure::new(exitcode::PASSPHRASE_SOURCE, "the passphrase is empty; nothing was created"));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_files_lose_one_newline_and_empty_ones_fail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p");
        std::fs::write(&p, "secret phrase 1\n").unwrap();
        assert_eq!(from_file(&p).unwrap().expose_secret(), b"secret phrase 1");
        std::fs::write(&p, "\n").unwrap();
        assert_eq!(from_file(&p).err().map(|f| f.code), Some(exitcode::PASSPHRASE_SOURCE));
        assert_eq!(from_file(&d.path().join("missing")).err().map(|f| f.code), Some(exitcode::PASSPHRASE_SOURCE));
    }

    #[test]
    fn oversized_passphrase_files_are_refused_with_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p");
        std::fs::write(&p, vec![b'a'; callvault::secret::MAX_SECRET_FILE + 1]).unwrap();
        let f = from_file(&p).err().expect("too large");
        assert_eq!(f.code, exitcode::PASSPHRASE_SOURCE);
        assert!(f.message.contains("larger than 65536 bytes"), "{}", f.message);
        let f = from_file(Path::new("/dev/zero")).err().expect("endless");
        assert!(f.message.starts_with("passphrase file /dev/zero is larger than"), "{}", f.message);
    }
}
