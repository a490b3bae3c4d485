//! `callvault-keytool policy check|explain`: validate a policy file and say
//! which grant allows what.
//!
//! The functions here return the line to print and leave printing and exit
//! codes to the caller, so they stay independent of the argument parser:
//!
//! | command | outcome                                   | stream | exit code                 |
//! |---------|-------------------------------------------|--------|---------------------------|
//! | check   | `Ok(line)`                                | stdout | 0 (`exitcode::OK`)               |
//! | check   | `Err(line)`                               | stderr | [`EXIT_INVALID`]          |
//! | explain | `Ok((line, true))`                        | stdout | 0 (`exitcode::OK`)               |
//! | explain | `Ok((line, false))`                       | stdout | [`EXIT_DENIED`]           |
//! | explain | `Err(line)`                               | stderr | [`EXIT_INVALID`]          |
//!
//! Exit code 2 stays with the argument parser (clap) for usage errors.

use std::path::Path;

use callvault::policy::{self, IdResolver, Policy, Right, Subject, SystemIds, Via};

/// The policy file is unreadable or invalid, or `explain` was asked about an
/// unknown user, group or right.
pub const EXIT_INVALID: u8 = callvault::exitcode::BAD_POLICY;
/// `explain`: the policy denies it.
pub const EXIT_DENIED: u8 = callvault::exitcode::ACCESS_DENIED;

/// `policy check FILE`: `Ok("FILE: ok, N grants")` for stdout, or the one-line
/// `FILE:LINE: problem` for stderr.
pub fn check(path: &Path) -> Result<String, String> {
    let policy = Policy::load(path).map_err(|e| e.to_string())?;
    let n = policy.grant_count();
    let noun = if n == 1 { "grant" } else { "grants" };
    Ok(format!("{}: ok, {n} {noun}", path.display()))
}

/// `policy explain FILE --user NAME [--group NAME]... PATH RIGHT`.
///
/// `user` and `groups` are names or numeric ids. With no `groups`, the user's
/// primary and supplementary groups come from the system (getgrouplist); with
/// some, exactly those are used. Returns the stdout line and whether it is
/// allowed, or an error line for stderr.
pub fn explain(
    path: &Path,
    user: &str,
    groups: &[String],
    vol_path: &str,
    right: &str,
) -> Result<(String, bool), String> {
    explain_with(path, user, groups, vol_path, right, &SystemIds, &|uid| SystemIds.groups_of(uid))
}

/// [`explain`] with a chosen name resolver and group source, for tests.
fn explain_with(
    path: &Path,
    user: &str,
    groups: &[String],
    vol_path: &str,
    right: &str,
    ids: &dyn IdResolver,
    groups_of: &dyn Fn(u32) -> Option<Vec<u32>>,
) -> Result<(String, bool), String> {
    let right: Right = right.parse().map_err(|e| format!("{e}"))?;
    let policy = Policy::load_with(path, ids).map_err(|e| e.to_string())?;
    let uid = numeric(user).or_else(|| ids.uid(user)).ok_or_else(|| format!("unknown user {user:?}"))?;
    let gids = if groups.is_empty() {
        // A numeric uid with no passwd entry has no groups to look up.
        groups_of(uid).unwrap_or_default()
    } else {
        let mut gids = Vec::with_capacity(groups.len());
        for g in groups {
            let gid = numeric(g).or_else(|| ids.gid(g)).ok_or_else(|| format!("unknown group {g:?}"))?;
            gids.push(gid);
        }
        gids
    };
    let who = Subject::new(uid, gids);

    let Some(found) = policy.explain(&who, vol_path, right) else {
        let why = if vol_path.starts_with('/') {
            match policy::normalize_path(vol_path) {
                Some(_) => "",
                None => " (paths with `.` or `..` components are always denied)",
            }
        } else {
            " (paths inside the volume start with /)"
        };
        return Ok((format!("denied: no grant gives {right} on {vol_path} to user {user}{why}"), false));
    };
    // `found` came from this policy, so its grant exists; say so rather than
    // panic if that ever stops being true.
    let grant = policy.grant(found).ok_or_else(|| format!("internal error: grant #{} not found", found.index))?;
    let how = match found.via {
        Via::Direct => "",
        Via::Parent => ", as a directory leading to its paths",
    };
    Ok((
        format!("allowed by grant #{} ({}:{}){how}: {grant}", found.index, policy.source().display(), found.line),
        true,
    ))
}

/// An id written as digits, taken without lookup like the policy file does.
fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const ISSUE_EXAMPLE: &str = r#"[[grant]]
users  = ["recorder"]          # user names or numeric uids
groups = []                    # group names or numeric gids
paths  = ["/**"]               # globs on the path inside the volume
rights = ["list", "create", "write"]

[[grant]]
groups = ["qa-team-a"]
paths  = ["/team-a/**"]
rights = ["list", "read"]
"#;

    struct Table;

    impl IdResolver for Table {
        fn uid(&self, name: &str) -> Option<u32> {
            match name {
                "recorder" => Some(2001),
                "alice" => Some(1001),
                "bob" => Some(1002),
                _ => None,
            }
        }
        fn gid(&self, name: &str) -> Option<u32> {
            match name {
                "qa-team-a" => Some(3001),
                "qa-team-b" => Some(3002),
                _ => None,
            }
        }
    }

    /// The "system" groups of the table's users.
    fn table_groups(uid: u32) -> Option<Vec<u32>> {
        match uid {
            1001 => Some(vec![100, 3001]),
            1002 => Some(vec![100, 3002]),
            2001 => Some(vec![2001]),
            _ => None,
        }
    }

    fn write(dir: &tempfile::TempDir, text: &[u8]) -> PathBuf {
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, text).expect("write policy");
        path
    }

    fn ask(path: &Path, user: &str, groups: &[&str], vol_path: &str, right: &str) -> Result<(String, bool), String> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        explain_with(path, user, &groups, vol_path, right, &Table, &table_groups)
    }

    #[test]
    fn check_counts_grants() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, b"[[grant]]\nusers = [\"0\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n");
        assert_eq!(check(&path), Ok(format!("{}: ok, 1 grant", path.display())));
        let path = write(&dir, b"# deny everything\n");
        assert_eq!(check(&path), Ok(format!("{}: ok, 0 grants", path.display())));
        let path = write(
            &dir,
            b"[[grant]]\nusers = [0]\npaths = [\"/a\"]\nrights = [\"read\"]\n\
              [[grant]]\ngroups = [\"0\"]\npaths = [\"/b\"]\nrights = [\"read\"]\n",
        );
        assert_eq!(check(&path), Ok(format!("{}: ok, 2 grants", path.display())));
    }

    #[test]
    fn check_reports_file_line_and_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, b"[[grant]]\nusers = [\"0\"]\npaths = [\"/**\"]\nrights = [\"list\", \"raed\"]\n");
        assert_eq!(
            check(&path),
            Err(format!(
                "{}:4: unknown right \"raed\" (expected one of list, read, create, write, \
                 delete, rename, setattr, blackout)",
                path.display()
            ))
        );
        let path = write(&dir, b"[[grant]]\nusers = [\"no-such-user-callvault-test\"]\n");
        assert_eq!(check(&path), Err(format!("{}:2: unknown user \"no-such-user-callvault-test\"", path.display())));
    }

    #[test]
    fn check_reports_a_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing.toml");
        let e = check(&path).expect_err("missing");
        assert!(e.starts_with(&format!("{}: cannot read policy file", path.display())), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn explain_names_the_grant_and_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, ISSUE_EXAMPLE.as_bytes());
        assert_eq!(
            ask(&path, "alice", &[], "/team-a/c1.wav", "read"),
            Ok((
                format!(
                    "allowed by grant #2 ({}:7): groups [qa-team-a], paths [/team-a/**], \
                     rights [list, read]",
                    path.display()
                ),
                true
            ))
        );
        assert_eq!(
            ask(&path, "recorder", &[], "/team-b/x.wav", "create"),
            Ok((
                format!(
                    "allowed by grant #1 ({}:1): users [recorder], paths [/**], \
                     rights [list, create, write]",
                    path.display()
                ),
                true
            ))
        );
    }

    #[test]
    fn explain_says_denied_in_the_documented_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, ISSUE_EXAMPLE.as_bytes());
        assert_eq!(
            ask(&path, "recorder", &[], "/team-a/c1.wav", "read"),
            Ok(("denied: no grant gives read on /team-a/c1.wav to user recorder".to_owned(), false))
        );
        assert_eq!(ask(&path, "bob", &[], "/team-a/c1.wav", "read").map(|r| r.1), Ok(false));
        assert_eq!(
            ask(&path, "alice", &[], "/team-a/../team-b/c1.wav", "read"),
            Ok((
                "denied: no grant gives read on /team-a/../team-b/c1.wav to user alice \
                 (paths with `.` or `..` components are always denied)"
                    .to_owned(),
                false
            ))
        );
        assert_eq!(
            ask(&path, "alice", &[], "team-a/c1.wav", "read").map(|r| r.0),
            Ok("denied: no grant gives read on team-a/c1.wav to user alice \
                (paths inside the volume start with /)"
                .to_owned())
        );
    }

    #[test]
    fn explain_groups_replace_the_system_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, ISSUE_EXAMPLE.as_bytes());
        // bob is not in qa-team-a, but --group qa-team-a asks "what if he were".
        assert_eq!(ask(&path, "bob", &["qa-team-a"], "/team-a/c1.wav", "read").map(|r| r.1), Ok(true));
        assert_eq!(ask(&path, "bob", &["3001"], "/team-a/c1.wav", "read").map(|r| r.1), Ok(true));
        // alice with only qa-team-b given loses her system qa-team-a.
        assert_eq!(ask(&path, "alice", &["qa-team-b"], "/team-a/c1.wav", "read").map(|r| r.1), Ok(false));
    }

    #[test]
    fn explain_shows_the_parents_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path =
            write(&dir, b"[[grant]]\ngroups = [\"qa-team-a\"]\npaths = [\"/team-a/*.wav\"]\nrights = [\"read\"]\n");
        assert_eq!(
            ask(&path, "alice", &[], "/team-a", "list"),
            Ok((
                format!(
                    "allowed by grant #1 ({}:1), as a directory leading to its paths: \
                     groups [qa-team-a], paths [/team-a/*.wav], rights [read]",
                    path.display()
                ),
                true
            ))
        );
        assert_eq!(ask(&path, "alice", &[], "/team-b", "list").map(|r| r.1), Ok(false));
    }

    #[test]
    fn explain_refuses_unknown_names_and_rights() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, ISSUE_EXAMPLE.as_bytes());
        assert_eq!(ask(&path, "mallory", &[], "/x", "read"), Err("unknown user \"mallory\"".to_owned()));
        assert_eq!(ask(&path, "alice", &["qa-team-z"], "/x", "read"), Err("unknown group \"qa-team-z\"".to_owned()));
        assert_eq!(
            ask(&path, "alice", &[], "/x", "raed"),
            Err("unknown right \"raed\" (expected one of list, read, create, write, delete, \
                 rename, setattr, blackout)"
                .to_owned())
        );
        let bad = write(&dir, b"[[grant]]\nusers = [\"alice\"]\npaths = [\"x\"]\nrights = [\"read\"]\n");
        assert_eq!(
            ask(&bad, "alice", &[], "/x", "read"),
            Err(format!("{}:3: path \"x\" must start with \"/\" (the root of the volume)", bad.display()))
        );
    }

    #[test]
    fn explain_takes_numeric_ids_without_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, b"[[grant]]\nusers = [4242]\npaths = [\"/n/**\"]\nrights = [\"read\"]\n");
        assert_eq!(ask(&path, "4242", &[], "/n/x", "read").map(|r| r.1), Ok(true));
        assert_eq!(ask(&path, "4243", &[], "/n/x", "read").map(|r| r.1), Ok(false));
    }

    /// The public entry point, against the host's own databases: root always
    /// exists, and its groups come from the system.
    #[test]
    fn explain_uses_the_system_for_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, b"[[grant]]\ngroups = [\"0\"]\npaths = [\"/admin/**\"]\nrights = [\"list\"]\n");
        let (line, allowed) = explain(&path, "root", &[], "/admin/x", "list").expect("valid");
        assert!(allowed, "{line}");
        let (line, allowed) = explain(&path, "root", &[], "/team-a/x", "read").expect("valid");
        assert!(!allowed);
        assert_eq!(line, "denied: no grant gives read on /team-a/x to user root");
    }

    #[test]
    fn exit_codes_are_distinct() {
        assert_ne!(callvault::exitcode::OK, EXIT_INVALID);
        assert_ne!(callvault::exitcode::OK, EXIT_DENIED);
        assert_ne!(EXIT_INVALID, EXIT_DENIED);
        // 2 is clap's usage error.
        assert!(![callvault::exitcode::OK, EXIT_INVALID, EXIT_DENIED].contains(&2));
    }
}
