//! Who did it: uid, user name, login uid and session, gid, pid, executable and command line of a process.
//!
//! Card numbers typed on a command line (`echo 4111111111111111 > f`) are
//! masked before they reach a record: see [`mask_pans`].

use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;

/// The process behind an event. Fields that could not be read (the process
/// exited, `/proc` is hidden) are `None` rather than guessed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub uid: u32,
    /// Name of `uid` from the user database (NSS), `None` when it has none.
    pub user: Option<String>,
    pub gid: u32,
    pub pid: u32,
    /// `/proc/PID/loginuid`: the uid that logged in to start this session,
    /// kept across `su`, `sudo`, `runuser` and `setpriv`. `None` when unset
    /// (4294967295: daemons, boot scripts) or unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// Name of `login_uid` from the user database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_user: Option<String>,
    /// `/proc/PID/sessionid`: the audit session of the login; `None` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
    /// Target of `/proc/PID/exe`.
    pub exe: Option<String>,
    /// `/proc/PID/cmdline`, split at NUL bytes, with card numbers masked.
    pub cmdline: Option<Vec<String>>,
}

/// The login behind a process: login uid, its name, audit session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Login {
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub session: Option<u32>,
}

impl Login {
    /// Reads `/proc/PID/{loginuid,sessionid}`; the login user's name is
    /// looked up only when the login uid differs from `uid` (named `user`).
    pub fn of_process(pid: u32, uid: u32, user: Option<&str>) -> Login {
        let login_uid = read_audit_id(&format!("/proc/{pid}/loginuid"));
        let login_user = match login_uid {
            Some(l) if l == uid => user.map(str::to_string),
            Some(l) => user_name(l),
            None => None,
        };
        Login { uid: login_uid, user: login_user, session: read_audit_id(&format!("/proc/{pid}/sessionid")) }
    }
}

impl Actor {
    /// The process behind a request: `uid`/`gid`/`pid` as the kernel reported
    /// them (FUSE request header), login uid, session, exe and command line
    /// read from `/proc`, names from the user database (NSS) on every call.
    pub fn for_process(uid: u32, gid: u32, pid: u32) -> Actor {
        Actor::for_process_with_user(uid, gid, pid, user_name(uid))
    }

    /// Like [`Actor::for_process`] with the name of `uid` already known (a
    /// caller caching names per uid). Reads `/proc/PID/{loginuid,sessionid,
    /// exe,cmdline}` fresh; looks up the login user's name only when the
    /// login uid differs from `uid`.
    pub fn for_process_with_user(uid: u32, gid: u32, pid: u32, user: Option<String>) -> Actor {
        let login = Login::of_process(pid, uid, user.as_deref());
        Actor::for_process_with_login(uid, gid, pid, user, login)
    }

    /// Like [`Actor::for_process_with_user`] with the login identity already
    /// known (a caller caching it per process: it survives `exec` and
    /// changes only by a privileged write to `/proc/PID/loginuid`). Reads
    /// `/proc/PID/{exe,cmdline}` fresh, so a process that execs another
    /// program is named as the program it runs now.
    pub fn for_process_with_login(uid: u32, gid: u32, pid: u32, user: Option<String>, login: Login) -> Actor {
        Actor {
            uid,
            user,
            gid,
            pid,
            login_uid: login.uid,
            login_user: login.user,
            session: login.session,
            exe: read_exe(&format!("/proc/{pid}/exe")),
            cmdline: read_cmdline(&format!("/proc/{pid}/cmdline")),
        }
    }

    /// The calling process itself (the daemon, or callvault-keytool), with
    /// its effective uid and gid.
    pub fn current_process() -> Actor {
        let (uid, gid) = current_ids();
        let mut a = Actor::for_process_with_user(uid, gid, std::process::id(), user_name(uid));
        if a.exe.is_none() {
            a.exe = std::env::current_exe().ok().map(|p| p.to_string_lossy().into_owned());
        }
        if a.cmdline.is_none() {
            let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
            a.cmdline = Some(mask_pans(&args));
        }
        a
    }
}

/// The value of `/proc/PID/loginuid` or `/proc/PID/sessionid`; `None` when
/// unreadable, not a number, or 4294967295 ("unset").
fn read_audit_id(path: &str) -> Option<u32> {
    use std::io::Read;
    let mut raw = [0u8; 16];
    let mut f = std::fs::File::open(path).ok()?;
    let mut n = 0;
    while n < raw.len() {
        match f.read(&mut raw[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    parse_audit_id(&raw[..n])
}

fn parse_audit_id(raw: &[u8]) -> Option<u32> {
    let v: u32 = std::str::from_utf8(raw).ok()?.trim().parse().ok()?;
    (v != u32::MAX).then_some(v)
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
    let args: Vec<String> = body.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let mut args = mask_pans(&args);
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

/// The user name of `uid` from the user database (getpwuid_r through NSS,
/// the lookup the policy uses), or `None`.
pub fn user_name(uid: u32) -> Option<String> {
    crate::policy::SystemIds.user_name(uid)
}

/// The uid of a user name from the user database (getpwnam_r through NSS),
/// or `None`.
pub fn uid_of(name: &str) -> Option<u32> {
    use crate::policy::IdResolver;
    crate::policy::SystemIds.uid(name)
}

/// Fewest and most digits of a card number (ISO/IEC 7812).
const PAN_MIN_DIGITS: usize = 13;
const PAN_MAX_DIGITS: usize = 19;
/// Digits of a masked card number left readable, at its end.
pub const PAN_KEPT_DIGITS: usize = 4;

/// Masks everything in `args` that looks like a card number (PCI DSS 3.4.1):
/// 13 to 19 digits that pass the Luhn check, written together or in groups
/// separated by a single space or dash, also inside a longer argument
/// (`--card=4111-1111-1111-1111`) or spread over consecutive arguments
/// (`echo 4111 1111 1111 1111`, which the shell splits). A group boundary is
/// also tried as a start and end, so `call 555 4111 1111 1111 1111` masks the
/// card and keeps `555`. Every digit but the last four becomes `*`;
/// separators stay. A run of more than 19 digits without separators is not a
/// card number and stays, as do non-Luhn numbers and phone numbers.
pub fn mask_pans(args: &[String]) -> Vec<String> {
    // Arguments are joined with a space, which counts as a separator, so a
    // number split by the shell is found; ASCII digits become ASCII `*`, so
    // byte offsets stay valid in both the joined text and each argument.
    let mut joined = Vec::new();
    let mut starts = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            joined.push(b' ');
        }
        starts.push(joined.len());
        joined.extend_from_slice(a.as_bytes());
    }
    let masked = mask_digits(&joined);
    if masked.is_empty() {
        return args.to_vec();
    }
    args.iter()
        .zip(&starts)
        .map(|(a, &s)| {
            let mut b = a.as_bytes().to_vec();
            for &m in &masked {
                if m >= s && m < s + b.len() {
                    b[m - s] = b'*';
                }
            }
            // Only ASCII digits were replaced by an ASCII byte: still UTF-8.
            String::from_utf8(b).unwrap_or_else(|_| a.clone())
        })
        .collect()
}

/// Byte offsets of the digits to mask in `text`.
fn mask_digits(text: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() || (i > 0 && text[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        // A candidate: digit groups joined by exactly one ' ' or '-'.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut j = i;
        loop {
            let mut g = Vec::new();
            while j < text.len() && text[j].is_ascii_digit() {
                g.push(j);
                j += 1;
            }
            groups.push(g);
            let sep = j < text.len() && matches!(text[j], b' ' | b'-');
            if sep && j + 1 < text.len() && text[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        // The longest span of whole groups that is a card number, leftmost
        // first; masked groups are not reused.
        let mut a = 0;
        while a < groups.len() {
            let mut hit = None;
            let mut digits: Vec<usize> = Vec::new();
            for (b, g) in groups.iter().enumerate().skip(a) {
                digits.extend_from_slice(g);
                if digits.len() > PAN_MAX_DIGITS {
                    break;
                }
                if digits.len() >= PAN_MIN_DIGITS && luhn(text, &digits) {
                    hit = Some((b, digits.clone()));
                }
            }
            match hit {
                Some((b, d)) => {
                    out.extend_from_slice(&d[..d.len() - PAN_KEPT_DIGITS]);
                    a = b + 1;
                }
                None => a += 1,
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// The Luhn check over the digits at `positions` of `text`.
fn luhn(text: &[u8], positions: &[usize]) -> bool {
    let mut sum = 0u32;
    for (k, &p) in positions.iter().rev().enumerate() {
        let mut d = u32::from(text[p] - b'0');
        if k % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_user_database() {
        // Every Unix host has root; nothing else can be assumed.
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(uid_of("no-such-user-callvault"), None);
        assert_eq!(user_name(4_000_000_000), None);
    }

    #[test]
    fn login_uid_and_session_unset_is_absent() {
        assert_eq!(parse_audit_id(b"4294967295"), None);
        assert_eq!(parse_audit_id(b"1000\n"), Some(1000));
        assert_eq!(parse_audit_id(b"0"), Some(0));
        assert_eq!(parse_audit_id(b"x"), None);
        assert_eq!(parse_audit_id(b""), None);
        assert_eq!(read_audit_id("/nonexistent/loginuid"), None);
        // This process: whatever the kernel says, the same through both constructors.
        let me = Actor::current_process();
        let raw = std::fs::read_to_string("/proc/self/loginuid").ok();
        let want = raw.as_deref().and_then(|r| parse_audit_id(r.as_bytes()));
        assert_eq!(me.login_uid, want);
        if let Some(l) = me.login_uid {
            assert_eq!(me.login_user, user_name(l));
        } else {
            assert_eq!(me.login_user, None);
        }
    }

    #[test]
    fn the_cached_name_constructor_reads_proc_fresh() {
        let me = Actor::current_process();
        let a = Actor::for_process_with_user(me.uid, me.gid, me.pid, Some("cached".into()));
        assert_eq!(a.user.as_deref(), Some("cached"));
        assert_eq!((a.exe.clone(), a.cmdline.clone(), a.session), (me.exe.clone(), me.cmdline.clone(), me.session));
    }

    fn masked(args: &[&str]) -> Vec<String> {
        mask_pans(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn card_numbers_in_command_lines_are_masked() {
        assert_eq!(masked(&["echo", "4111111111111111"]), ["echo", "************1111"]);
        assert_eq!(masked(&["x", "--card=4111-1111-1111-1111"]), ["x", "--card=****-****-****-1111"]);
        assert_eq!(masked(&["pay", "5500 0000 0000 0004", "ok"]), ["pay", "**** **** **** 0004", "ok"]);
        // Split by the shell into four arguments.
        assert_eq!(masked(&["echo", "4111", "1111", "1111", "1111"]), ["echo", "****", "****", "****", "1111"]);
        // Amex (15), 13 and 19 digits.
        assert_eq!(masked(&["378282246310005"]), ["***********0005"]);
        assert_eq!(masked(&["4222222222222"]), ["*********2222"]);
        assert_eq!(masked(&["6011000990139424000"]).len(), 1);
        assert_eq!(masked(&["4000000000000000006"]), ["***************0006"]);
        // A number before the card in the same run stays.
        assert_eq!(masked(&["call 555 4111 1111 1111 1111"]), ["call 555 **** **** **** 1111"]);
        assert_eq!(masked(&["a4111111111111111b"]), ["a************1111b"]);
    }

    #[test]
    fn near_misses_stay() {
        for keep in [
            &["echo", "4111111111111112"][..],    // fails Luhn
            &["dial", "+1-555-123-4567"],         // a phone number
            &["dial", "+44 20 7946 0958"],        // another
            &["sox", "2026-05-01T10:00:00Z.wav"], // a date
            &["x", "41111111111111110000000"],    // 23 digits, no separators
            &["x", "4111--1111-1111-1111"],       // double separator splits it
            &["x", "411111111111"],               // 12 digits
            &["play", "/mnt/calls/team-a/c1.wav"],
        ] {
            let v: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
            assert_eq!(mask_pans(&v), v, "{keep:?}");
        }
    }

    #[test]
    fn cmdlines_read_from_proc_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cmdline");
        std::fs::write(&p, b"echo\x004111111111111111\x00").unwrap();
        assert_eq!(read_cmdline(p.to_str().unwrap()).unwrap(), ["echo", "************1111"]);
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
