//! Turns user and group names into numeric ids, from the system or a table.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// The largest usable id: `(uid_t)-1` means "no change" to chown and is
/// nobody's id.
pub const MAX_ID: u32 = u32::MAX - 1;

/// Looks up user and group names. The policy parser takes one so tests can use
/// a fixed table instead of the host's user database. Numeric strings never
/// reach a resolver: "1001" is taken as id 1001 without lookup.
pub trait IdResolver {
    /// The uid of a user name, or `None` if there is no such user.
    fn uid(&self, name: &str) -> Option<u32>;
    /// The gid of a group name, or `None` if there is no such group.
    fn gid(&self, name: &str) -> Option<u32>;
}

/// The host's user and group databases (getpwnam, getgrnam, getgrouplist,
/// through NSS). A lookup that fails for any reason counts as "no such name".
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemIds;

impl IdResolver for SystemIds {
    fn uid(&self, name: &str) -> Option<u32> {
        User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
    }

    fn gid(&self, name: &str) -> Option<u32> {
        Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
    }
}

impl SystemIds {
    /// The groups of the user with this uid according to the user database:
    /// the primary gid first, then the supplementary ones, without repeats.
    /// `None` when the uid has no passwd entry.
    ///
    /// This is what the user *would* get at login; a running process may have
    /// other groups (newgrp, setgroups). The daemon, which knows the calling
    /// process, may prefer that process's own groups.
    pub fn groups_of(&self, uid: u32) -> Option<Vec<u32>> {
        let user = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
        let primary = user.gid.as_raw();
        let mut gids = vec![primary];
        // A name with a NUL byte cannot come from the user database; if it
        // somehow does, the primary group alone is the safe answer.
        if let Ok(name) = CString::new(user.name) {
            if let Ok(list) = getgrouplist(&name, Gid::from_raw(primary)) {
                for gid in list {
                    let gid = gid.as_raw();
                    if !gids.contains(&gid) {
                        gids.push(gid);
                    }
                }
            }
        }
        Some(gids)
    }

    /// The name of a uid, for messages; `None` when it has no passwd entry.
    pub fn user_name(&self, uid: u32) -> Option<String> {
        User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every Unix host has root (uid 0, group 0); nothing else can be assumed.
    #[test]
    fn system_ids_know_root() {
        assert_eq!(SystemIds.uid("root"), Some(0));
        assert_eq!(SystemIds.user_name(0).as_deref(), Some("root"));
        let gids = SystemIds.groups_of(0).expect("root has a passwd entry");
        assert_eq!(gids.first(), Some(&0));
    }

    #[test]
    fn system_ids_say_none_for_unknown_names() {
        assert_eq!(SystemIds.uid("no-such-user-callvault-test"), None);
        assert_eq!(SystemIds.gid("no-such-group-callvault-test"), None);
        assert_eq!(SystemIds.uid("bad\0name"), None);
    }
}
