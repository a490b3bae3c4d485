//! Sorting a backing directory's entries into what to rotate, leftovers to
//! remove and strays to leave alone; and reading an entry's encrypted name
//! (short, or long from its side file).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::path::Path;

use super::error::RotationError;
use super::staging::STAGING_DIR;
use super::sys::{self, Result, TEMP_PREFIX};
use super::which::{Keys, Under};
use crate::names::{self, DIRID_LEN, EntryKind, LONG_NAME_SUFFIX, LONG_PREFIX};

/// A directory's entries, sorted out.
#[derive(Debug, Default)]
pub(crate) struct Sorted {
    /// Entries with an encrypted name (and names that are not UTF-8, which
    /// the rotation reports), in name order.
    pub entries: Vec<OsString>,
    /// The rotation's own temporaries, left by an interrupted run.
    pub temps: Vec<String>,
    /// Long-name side files whose entry is gone (left by an interrupted run
    /// or a crash of the daemon) and whose content is a name under one of
    /// the keys: garbage.
    pub orphans: Vec<String>,
    /// Orphaned side files whose content is no name under either key: not
    /// ours to judge, left alone.
    pub strays: Vec<String>,
}

/// Sorts the entries `all` of directory `dir` (ID `id`, at `path`).
pub(crate) fn sort(
    keys: &Keys<'_>,
    id: &[u8; DIRID_LEN],
    dir: impl AsFd,
    path: &Path,
    all: Vec<OsString>,
    is_root: bool,
) -> Result<Sorted> {
    let dir = dir.as_fd();
    let present: HashSet<&OsStr> = all.iter().map(OsString::as_os_str).collect();
    let mut s = Sorted::default();
    for e in &all {
        let Some(name) = e.to_str() else {
            s.entries.push(e.clone());
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            s.temps.push(name.to_string());
            continue;
        }
        if is_root && name == STAGING_DIR {
            continue;
        }
        if let Some(entry) = name.strip_suffix(LONG_NAME_SUFFIX).filter(|e| e.starts_with(LONG_PREFIX)) {
            if !present.contains(OsStr::new(entry)) {
                let full = sys::read_small_text(dir, name, &path.join(name))?;
                if full.is_some_and(|f| keys.name(id, &f).is_some()) {
                    s.orphans.push(name.to_string());
                } else {
                    s.strays.push(name.to_string());
                }
            }
            continue;
        }
        if names::classify(name) != EntryKind::Internal {
            s.entries.push(e.clone());
        }
    }
    Ok(s)
}

/// The name of an entry `name` of directory `dir` (ID `id`): its plaintext
/// under the key it is under.
pub(crate) fn name_of(
    keys: &Keys<'_>,
    id: &[u8; DIRID_LEN],
    dir: impl AsFd,
    name: &OsStr,
    path: &Path,
) -> Result<Under<Vec<u8>>> {
    let Some(text) = name.to_str() else {
        return Err(RotationError::Undecryptable { path: path.to_path_buf(), what: "a name that is not UTF-8".into() });
    };
    let encoded = match names::classify(text) {
        EntryKind::Short(s) => s.to_string(),
        EntryKind::Long(hashed) => {
            let side = format!("{hashed}{LONG_NAME_SUFFIX}");
            match sys::read_small_text(dir, &side, &path.with_file_name(&side))? {
                Some(full) if names::long_name_matches(hashed, &full) => full,
                Some(_) => {
                    return Err(RotationError::Damaged {
                        path: path.to_path_buf(),
                        what: format!("its long name's side file {side} does not hash to the entry's name"),
                    });
                }
                None => {
                    return Err(RotationError::Damaged {
                        path: path.to_path_buf(),
                        what: format!("its long name's side file {side} is missing or not text: it cannot be named"),
                    });
                }
            }
        }
        EntryKind::Internal => {
            return Err(RotationError::Conflict { path: path.to_path_buf(), what: "not an entry".into() });
        }
    };
    keys.name(id, &encoded)
        .ok_or_else(|| RotationError::Undecryptable { path: path.to_path_buf(), what: "its name".into() })
}
