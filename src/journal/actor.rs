//! Who did it: uid, user name, gid, pid, executable and command line of a process.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;

/// The process behind an event. Fields that could not be read (the process
/// exited, `/proc` is hidden) are `None` rather than guessed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub uid: u32,
    /// Name from `/etc/passwd`, `None` when the uid has no entry.
    pub user: Option<String>,
    pub gid: u32,
    pub pid: u32,
    /// Target of `/proc/PID/exe`.
    pub exe: Option<String>,
    /// `/proc/PID/cmdline`, split at NUL bytes.
    pub cmdline: Option<Vec<String>>,
}

impl Actor {
    /// The process behind a request: `uid`/`gid`/`pid` as the kernel reported
    /// them (FUSE request header), exe and command line read from `/proc`.
    /// Reads `/etc/passwd` for the name on every call; cache above this if it
    /// matters.
    pub fn for_process(uid: u32, gid: u32, pid: u32) -> Actor {
        Actor {
            uid,
            user: user_name(uid),
            gid,
            pid,
            exe: read_exe(&format!("/proc/{pid}/exe")),
            cmdline: read_cmdline(&format!("/proc/{pid}/cmdline")),
        }
    }

    /// The calling process itself (the daemon, or callvault-keytool), with
    /// its effective uid and gid.
    pub fn current_process() -> Actor {
        let (uid, gid) = current_ids();
        Actor {
            uid,
            user: user_name(uid),
            gid,
            pid: std::process::id(),
            exe: read_exe("/proc/self/exe")
                .or_else(|| std::env::current_exe().ok().map(|p| p.to_string_lossy().into_owned())),
            cmdline: read_cmdline("/proc/self/cmdline")
                .or_else(|| Some(std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect())),
        }
    }
}

fn read_exe(link: &str) -> Option<String> {
    std::fs::read_link(link).ok().map(|p| p.to_string_lossy().into_owned())
}

/// Longest command line kept, in bytes: arguments can reach megabytes, and
/// one record stays a readable line.
pub const MAX_CMDLINE_BYTES: usize = 4096;

fn read_cmdline(path: &str) -> Option<Vec<String>> {
    use std::io::Read;
    let mut raw = Vec::new();
    std::fs::File::open(path).ok()?.take(MAX_CMDLINE_BYTES as u64 + 1).read_to_end(&mut raw).ok()?;
    if raw.is_empty() {
        // Kernel threads and zombies have an empty command line.
        return None;
    }
    let truncated = raw.len() > MAX_CMDLINE_BYTES;
    raw.truncate(MAX_CMDLINE_BYTES);
    let body = raw.strip_suffix(&[0]).unwrap_or(&raw);
    let mut args: Vec<String> = body.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    if truncated {
        args.push(format!("[command line cut at {MAX_CMDLINE_BYTES} bytes]"));
    }
    Some(args)
}

/// Effective uid and gid of this process, from `/proc/self/status`
/// (falling back to the owner of `/proc/self`, which is the same thing).
fn current_ids() -> (u32, u32) {
    let from_status = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let field = |name: &str| -> Option<u32> {
            let line = s.lines().find(|l| l.starts_with(name))?;
            // "Uid:\treal\teffective\tsaved\tfs"
            line.split_whitespace().nth(2)?.parse().ok()
        };
        Some((field("Uid:")?, field("Gid:")?))
    });
    from_status
        .unwrap_or_else(|| std::fs::metadata("/proc/self").map(|m| (m.uid(), m.gid())).unwrap_or((u32::MAX, u32::MAX)))
}

/// The user name of `uid` from `/etc/passwd`, or `None`.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    user_name_in(&passwd, uid)
}

fn user_name_in(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let id: u32 = f.next()?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// The uid of a user name from `/etc/passwd`, or `None`.
pub fn uid_of(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let n = f.next()?;
        let _pw = f.next()?;
        let id: u32 = f.next()?.parse().ok()?;
        (n == name).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup_tolerates_junk_lines() {
        let p =
            "root:x:0:0:root:/root:/bin/bash\n\ngarbage\nbob:x:notanumber:1\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(user_name_in(p, 0).as_deref(), Some("root"));
        assert_eq!(user_name_in(p, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name_in(p, 4), None);
    }

    #[test]
    fn current_process_knows_itself() {
        let a = Actor::current_process();
        assert_eq!(a.pid, std::process::id());
        assert!(a.exe.is_some());
        assert!(a.cmdline.as_ref().is_some_and(|c| !c.is_empty()));
        let b = Actor::for_process(a.uid, a.gid, a.pid);
        assert_eq!(a.exe, b.exe);
    }

    #[test]
    fn long_command_lines_are_cut_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cmdline");
        let mut raw = b"sox\0".to_vec();
        raw.extend(std::iter::repeat_n(b'x', 10_000));
        raw.push(0);
        std::fs::write(&p, &raw).unwrap();
        let args = read_cmdline(p.to_str().unwrap()).unwrap();
        assert_eq!(args[0], "sox");
        assert_eq!(args.len(), 3);
        assert!(args[2].starts_with("[command line cut"));
        assert!(args[1].len() < MAX_CMDLINE_BYTES);
        std::fs::write(&p, b"a\0b\0").unwrap();
        assert_eq!(read_cmdline(p.to_str().unwrap()).unwrap(), ["a", "b"]);
    }
}
