//! The mount's root directory: its owner, group and mode, chosen at `init`.
//!
//! The root of a mounted volume shows the owner, group and mode of the
//! backing `VOLUME/data/` directory (the daemon presents every directory's
//! backing `stat`). Under a deny-by-default policy root gets nothing from the
//! policy, so without a root directory owned by someone who may create in it
//! nobody can make the first directory; `init --owner --mode` sets it once.

use std::fmt;
use std::path::Path;

use crate::Error;
use crate::policy::{IdResolver, MAX_ID};

/// The largest mode accepted: permission bits plus set-uid, set-gid, sticky.
pub const MAX_MODE: u32 = 0o7777;

/// A user or group as given: the id and, when given by name, the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id {
    pub id: u32,
    pub name: Option<String>,
}

impl fmt::Display for Id {
    /// `1001(recorder)`, or `1001` for an id given as a number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}({n})", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// `--owner USER[:GROUP]`, resolved. Without `:GROUP` the group stays as it
/// is (root's), as `chown USER` leaves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub user: Id,
    pub group: Option<Id>,
}

/// Why an `--owner` or `--mode` value was refused (a usage error).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootDirError {
    /// The owner text is empty, or has an empty user or group part.
    BadOwner {
        text: String,
    },
    /// A numeric uid or gid above 4294967294.
    BadId {
        kind: &'static str,
        text: String,
    },
    UnknownUser {
        name: String,
    },
    UnknownGroup {
        name: String,
    },
    /// Not octal digits, or above 07777.
    BadMode {
        text: String,
    },
}

impl fmt::Display for RootDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootDirError::BadOwner { text } => {
                write!(f, "--owner {text:?}: expected USER or USER:GROUP (names or numeric ids)")
            }
            RootDirError::BadId { kind, text } => write!(f, "--owner: {kind} {text} is out of range (0..={MAX_ID})"),
            RootDirError::UnknownUser { name } => write!(f, "--owner: no such user {name:?} in the user database"),
            RootDirError::UnknownGroup { name } => write!(f, "--owner: no such group {name:?} in the group database"),
            RootDirError::BadMode { text } => {
                write!(f, "--mode {text:?}: expected an octal mode from 0 to 7777 (e.g. 2770 or 0750)")
            }
        }
    }
}

impl std::error::Error for RootDirError {}

fn resolve(text: &str, kind: &'static str, lookup: impl Fn(&str) -> Option<u32>) -> Result<Id, RootDirError> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let bad = || RootDirError::BadId { kind, text: text.to_string() };
        let id = text.parse::<u32>().map_err(|_| bad())?;
        return if id <= MAX_ID { Ok(Id { id, name: None }) } else { Err(bad()) };
    }
    match lookup(text) {
        Some(id) => Ok(Id { id, name: Some(text.to_string()) }),
        None if kind == "uid" => Err(RootDirError::UnknownUser { name: text.to_string() }),
        None => Err(RootDirError::UnknownGroup { name: text.to_string() }),
    }
}

/// Parses `USER[:GROUP]`: names are looked up through `ids` (the policy's
/// resolver, NSS on a real host); all-digit parts are ids, looked up never.
pub fn parse_owner(text: &str, ids: &dyn IdResolver) -> Result<Owner, RootDirError> {
    let bad = || RootDirError::BadOwner { text: text.to_string() };
    let (user, group) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    if user.is_empty() || group.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(bad());
    }
    let user = resolve(user, "uid", |n| ids.uid(n))?;
    let group = group.map(|g| resolve(g, "gid", |n| ids.gid(n))).transpose()?;
    Ok(Owner { user, group })
}

/// Parses an octal mode, `0` to `7777` (leading zeros allowed: `0750`,
/// `02770`). Signs, `0o` prefixes and other digits are refused.
pub fn parse_mode(text: &str) -> Result<u32, RootDirError> {
    let bad = || RootDirError::BadMode { text: text.to_string() };
    if text.is_empty() || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 4 {
        return Err(bad());
    }
    // At most four octal digits: no overflow, and at most 0o7777.
    u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, 8).map_err(|_| bad())
}

/// Sets the owner (then the mode, so a set-gid bit is not cleared by the
/// chown) of the backing root directory `data`. Either may be left alone.
pub fn apply(data: &Path, owner: Option<&Owner>, mode: Option<u32>) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(o) = owner {
        std::os::unix::fs::chown(data, Some(o.user.id), o.group.as_ref().map(|g| g.id))
            .map_err(|e| Error::io(data, e))?;
    }
    if let Some(m) = mode {
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(m)).map_err(|e| Error::io(data, e))?;
    }
    Ok(())
}

/// What `init` records of its choice, as `name=value` entries
/// (`uid=1001(recorder)`, `gid=1002(qa)`, `mode=2770`).
pub fn changes(owner: Option<&Owner>, mode: Option<u32>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(o) = owner {
        out.push(format!("uid={}", o.user));
        if let Some(g) = &o.group {
            out.push(format!("gid={g}"));
        }
    }
    if let Some(m) = mode {
        out.push(format!("mode={m:04o}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Table;
    impl IdResolver for Table {
        fn uid(&self, name: &str) -> Option<u32> {
            (name == "recorder").then_some(1001)
        }
        fn gid(&self, name: &str) -> Option<u32> {
            (name == "qa").then_some(2002)
        }
    }

    fn named(id: u32, name: &str) -> Id {
        Id { id, name: Some(name.into()) }
    }

    #[test]
    fn owners_are_names_or_ids() {
        assert_eq!(
            parse_owner("recorder:qa", &Table),
            Ok(Owner { user: named(1001, "recorder"), group: Some(named(2002, "qa")) })
        );
        assert_eq!(parse_owner("recorder", &Table), Ok(Owner { user: named(1001, "recorder"), group: None }));
        assert_eq!(
            parse_owner("0:4294967294", &Table),
            Ok(Owner { user: Id { id: 0, name: None }, group: Some(Id { id: MAX_ID, name: None }) })
        );
        assert_eq!(
            changes(parse_owner("recorder:7", &Table).ok().as_ref(), Some(0o2770)),
            ["uid=1001(recorder)", "gid=7", "mode=2770"]
        );
    }

    #[test]
    fn bad_owners_are_refused_by_name() {
        let err = |t: &str| parse_owner(t, &Table).unwrap_err();
        assert_eq!(err("nobody-here"), RootDirError::UnknownUser { name: "nobody-here".into() });
        assert_eq!(err("recorder:nogroup"), RootDirError::UnknownGroup { name: "nogroup".into() });
        assert!(err("recorder:nogroup").to_string().contains("\"nogroup\""));
        for t in ["", ":qa", "recorder:", "recorder:qa:x", ":"] {
            assert_eq!(err(t), RootDirError::BadOwner { text: t.into() }, "{t:?}");
        }
        assert!(matches!(err("4294967295"), RootDirError::BadId { kind: "uid", .. }));
        assert!(matches!(err("recorder:99999999999"), RootDirError::BadId { kind: "gid", .. }));
    }

    #[test]
    fn modes_are_octal_up_to_7777() {
        for (t, m) in [("2770", 0o2770), ("0750", 0o750), ("02770", 0o2770), ("0", 0), ("000", 0), ("7777", 0o7777)] {
            assert_eq!(parse_mode(t), Ok(m), "{t}");
        }
        for t in ["", "8", "0o755", "+755", "-1", "17777", "07778", "755 ", "0x1ff", "00000017777", "rwx"] {
            assert_eq!(parse_mode(t), Err(RootDirError::BadMode { text: t.into() }), "{t:?}");
        }
        assert_eq!(parse_mode("000000755"), Ok(0o755));
    }
}
