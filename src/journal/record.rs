//! The record type and its JSON line: what one audited event looks like on disk.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use super::actor::Actor;

/// What happened. Serialized as the snake_case names below (`"open"`,
/// `"unlock_failed"`, ...). `genesis` and `seal` are written by the journal
/// itself; callers never append them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Open,
    Close,
    Create,
    Mkdir,
    Unlink,
    Rmdir,
    Rename,
    Link,
    Symlink,
    Setattr,
    Setxattr,
    Removexattr,
    Truncate,
    Denied,
    Mount,
    Unmount,
    Unlock,
    UnlockFailed,
    PolicyLoad,
    PolicyReload,
    KeyAdmin,
    BlackoutStart,
    BlackoutStop,
    /// A blackout has lasted longer than the alert threshold (it keeps silencing).
    BlackoutAlert,
    /// Automatic masking silenced a DTMF keypad tone.
    BlackoutDtmf,
    /// A read found sectors whose tags do not match (format 3): EIO for them.
    Integrity,
    AuditRead,
    TornTail,
    Seal,
    Genesis,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 30] = [
        EventKind::Open,
        EventKind::Close,
        EventKind::Create,
        EventKind::Mkdir,
        EventKind::Unlink,
        EventKind::Rmdir,
        EventKind::Rename,
        EventKind::Link,
        EventKind::Symlink,
        EventKind::Setattr,
        EventKind::Setxattr,
        EventKind::Removexattr,
        EventKind::Truncate,
        EventKind::Denied,
        EventKind::Mount,
        EventKind::Unmount,
        EventKind::Unlock,
        EventKind::UnlockFailed,
        EventKind::PolicyLoad,
        EventKind::PolicyReload,
        EventKind::KeyAdmin,
        EventKind::BlackoutStart,
        EventKind::BlackoutStop,
        EventKind::BlackoutAlert,
        EventKind::BlackoutDtmf,
        EventKind::Integrity,
        EventKind::AuditRead,
        EventKind::TornTail,
        EventKind::Seal,
        EventKind::Genesis,
    ];

    /// The name as written in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Close => "close",
            EventKind::Create => "create",
            EventKind::Mkdir => "mkdir",
            EventKind::Unlink => "unlink",
            EventKind::Rmdir => "rmdir",
            EventKind::Rename => "rename",
            EventKind::Link => "link",
            EventKind::Symlink => "symlink",
            EventKind::Setattr => "setattr",
            EventKind::Setxattr => "setxattr",
            EventKind::Removexattr => "removexattr",
            EventKind::Truncate => "truncate",
            EventKind::Denied => "denied",
            EventKind::Mount => "mount",
            EventKind::Unmount => "unmount",
            EventKind::Unlock => "unlock",
            EventKind::UnlockFailed => "unlock_failed",
            EventKind::PolicyLoad => "policy_load",
            EventKind::PolicyReload => "policy_reload",
            EventKind::KeyAdmin => "key_admin",
            EventKind::BlackoutStart => "blackout_start",
            EventKind::BlackoutStop => "blackout_stop",
            EventKind::BlackoutAlert => "blackout_alert",
            EventKind::BlackoutDtmf => "blackout_dtmf",
            EventKind::Integrity => "integrity",
            EventKind::AuditRead => "audit_read",
            EventKind::TornTail => "torn_tail",
            EventKind::Seal => "seal",
            EventKind::Genesis => "genesis",
        }
    }

    /// Kinds only the journal itself writes.
    pub fn is_internal(self) -> bool {
        matches!(self, EventKind::Seal | EventKind::Genesis)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown event name {s:?}"))
    }
}

/// How the operation ended: `"ok"` or the errno name (`"EACCES"`, `"EIO"`);
/// `"intent"` on the record written before an operation takes effect (its
/// outcome follows in a record naming it in `detail.intent`); `"interrupted"`
/// on the record recovery writes for an intent whose outcome never came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Err(String),
    Intent,
    Interrupted,
}

impl Outcome {
    /// The outcome for a Linux errno number (`13` → `"EACCES"`).
    pub fn errno(n: i32) -> Outcome {
        Outcome::Err(errno_name(n))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Err(e) => e,
            Outcome::Intent => "intent",
            Outcome::Interrupted => "interrupted",
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "ok" => Outcome::Ok,
            "intent" => Outcome::Intent,
            "interrupted" => Outcome::Interrupted,
            _ => Outcome::Err(s),
        })
    }
}

/// The symbolic name of a Linux errno; `E<n>` for numbers not in the table.
pub fn errno_name(n: i32) -> String {
    let name = match n {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        31 => "EMLINK",
        34 => "ERANGE",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        61 => "ENODATA",
        75 => "EOVERFLOW",
        95 => "EOPNOTSUPP",
        122 => "EDQUOT",
        125 => "ECANCELED",
        _ => return format!("E{n}"),
    };
    name.to_string()
}

/// Event-specific fields. All optional; only those set are written, in this
/// order. The journal fills the seal, genesis and torn-tail fields itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// For `denied`: the operation that was refused (`"open"`, `"unlink"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Open flags by name, `|`-separated (`"O_RDONLY|O_NOFOLLOW"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    /// Access mode of an open: `"read"`, `"write"` or `"read-write"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// File mode in octal (`"0640"`), for create, mkdir, setattr; on
    /// `init-volume`, the root directory's mode given with `--mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The daemon's handle number, to pair an open with its close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fh: Option<u64>,
    /// Bytes read through a handle (on close).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// Bytes written through a handle (on close).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// For `denied`: the right the policy did not grant (`"read"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_right: Option<String>,
    /// Hex SHA-256 of the policy text (policy_load, policy_reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_sha256: Option<String>,
    /// For setattr: what changed, as `name=value` (`"mode=0640"`, `"size=0"`);
    /// on `init-volume`, the root directory's `uid=`, `gid=` and `mode=` set
    /// by `--owner` and `--mode` (`"uid=1001(recorder)"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// New size (truncate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Extended attribute name (setxattr, removexattr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattr: Option<String>,
    /// Key administration action (`"add-keyslot"`, `"remove-keyslot"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Keyslot number a key administration action touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Keys: the operator ID of the keyslot an unlock used or tried, or that
    /// a key administration action changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Keys: every operator who took part (an unlock under dual control: the
    /// K who unlocked; a key administration action: the operators whose
    /// unlock authorized it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Free text for the operator (why an unlock failed, which command ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On an outcome record: the sequence number of the `intent` record it
    /// completes (same kind, same actor, same paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<u64>,
    /// On an `interrupted` record: what recovery found at the path (for
    /// example `"present"` or `"absent"`), so the auditor knows whether the
    /// interrupted operation took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// Set when `path`/`path2` hold names that are not UTF-8: in them `\\`
    /// is a backslash and `\xNN` a raw byte, so distinct names never share
    /// a path text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escaped: Option<bool>,
    /// Blackouts: `"file"` for a trigger on a recording, `"directory"` for
    /// one covering the files written in a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Blackouts: the directory whose blackout covers this file (a file's
    /// own start and stop records under a directory trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Blackout start: the file offset from which appended bytes are silenced
    /// (the file's size when the blackout took hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Blackout stop, DTMF masking: the byte ranges of the file replaced by
    /// silence, half-open and decimal (`"44-8044,9000-9160"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced: Option<String>,
    /// The number of bytes in `silenced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_bytes: Option<u64>,
    /// When `silenced` is split over several records: `"2/3"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Close of a handle that wrote (format 3): the recording's seal, 64 hex
    /// digits (SHA-256 over its file ID, sector tags and size; docs/FORMAT.md),
    /// which `verify-recordings` checks the file against later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents_seal: Option<String>,
    /// With `contents_seal`: the file's size when it was sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_size: Option<u64>,
    /// Integrity: the byte ranges of the file whose sectors failed their
    /// tags, half-open and decimal (`"8192-12288"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    /// Blackout stop: how it ended (`"stop"`, `"closed"`, `"directory stop"`, `"unmount"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// What the silence was made of: the sample encoding (`"ulaw"`,
    /// `"pcm_s16le"`) or `"zero bytes"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<String>,
    /// For events recorded from a request file: the uid owning that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_uid: Option<u32>,
    /// Genesis: the journal's id (32 hex digits), also in the auditor key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_id: Option<String>,
    /// Genesis: the journal format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<u32>,
    /// Torn tail: the segment file and offset where unfinished bytes were found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_sha256: Option<String>,
    /// Torn tail: the file the unfinished bytes were moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_as: Option<String>,
    /// Seal: epoch number (0 for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Seal: first and last sequence number covered, and their count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Seal: hex SHA-256 of the line of `last_seq` (equal to this record's `prev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Seal: hex HMAC-SHA256 under the epoch's key; always the last field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Detail {
    pub fn is_empty(&self) -> bool {
        *self == Detail::default()
    }
}

/// One event as the daemon or keytool reports it. The journal adds the
/// sequence number, the timestamp and the hash of the previous record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub outcome: Outcome,
    pub actor: Actor,
    /// Path inside the volume (starting with `/`), when the event has one.
    #[serde(default)]
    pub path: Option<String>,
    /// Second path: the new name of a rename, the new link, a symlink's target.
    #[serde(default)]
    pub path2: Option<String>,
    #[serde(default)]
    pub detail: Detail,
}

impl Event {
    /// A successful event of `kind` by `actor`, with no path and no detail.
    pub fn new(kind: EventKind, actor: Actor) -> Event {
        Event { kind, outcome: Outcome::Ok, actor, path: None, path2: None, detail: Detail::default() }
    }
    pub fn outcome(mut self, outcome: Outcome) -> Event {
        self.outcome = outcome;
        self
    }
    pub fn path(mut self, path: impl Into<String>) -> Event {
        self.path = Some(path.into());
        self
    }
    pub fn path2(mut self, path: impl Into<String>) -> Event {
        self.path2 = Some(path.into());
        self
    }
    pub fn detail(mut self, detail: Detail) -> Event {
        self.detail = detail;
        self
    }
}

/// One line of the journal, parsed. Field order here is the order on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// UTC, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    pub ts: String,
    pub event: EventKind,
    pub outcome: Outcome,
    pub uid: u32,
    pub user: Option<String>,
    pub gid: u32,
    pub pid: u32,
    /// The login uid of the process (see [`Actor::login_uid`]); written only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_user: Option<String>,
    /// The audit session id of the process; written only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
    pub exe: Option<String>,
    pub cmdline: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    #[serde(default, skip_serializing_if = "Detail::is_empty")]
    pub detail: Detail,
    /// Hex SHA-256 of the previous line's bytes (64 zeros for the genesis record).
    pub prev: String,
}

impl Record {
    /// Builds the record for `ev` at position `seq`.
    pub fn from_event(ev: Event, seq: u64, ts: String, prev: String) -> Record {
        let Event { kind, outcome, actor, path, path2, detail } = ev;
        Record {
            seq,
            ts,
            event: kind,
            outcome,
            uid: actor.uid,
            user: actor.user,
            gid: actor.gid,
            pid: actor.pid,
            login_uid: actor.login_uid,
            login_user: actor.login_user,
            session: actor.session,
            exe: actor.exe,
            cmdline: actor.cmdline,
            path,
            path2,
            detail,
            prev,
        }
    }

    /// The exact bytes of the line, without the trailing newline.
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing plain strings, integers and options into a Vec cannot
        // fail: serde_json only errors on non-string map keys and I/O.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Cuts a record whose line would be longer than
    /// [`MAX_LINE`](super::segment::MAX_LINE) so that it fits, keeping it:
    /// every string keeps at most its first 1024 bytes, every list its first
    /// 16 entries, and `detail.reason` says the record was cut. About 45
    /// strings of at most 6 escaped bytes per input byte, plus two lists:
    /// well under 1 MiB whatever the input.
    pub(crate) fn cut_to_fit(&mut self) {
        const KEEP_BYTES: usize = 1024;
        const KEEP_ITEMS: usize = 16;
        fn cut(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::String(s) if s.len() > KEEP_BYTES => {
                    let mut end = KEEP_BYTES;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    s.truncate(end);
                }
                serde_json::Value::Array(a) => {
                    a.truncate(KEEP_ITEMS);
                    a.iter_mut().for_each(cut);
                }
                serde_json::Value::Object(m) => m.values_mut().for_each(cut),
                _ => {}
            }
        }
        let before = self.to_line().len();
        if let Ok(mut v) = serde_json::to_value(&*self) {
            cut(&mut v);
            if let Ok(r) = serde_json::from_value::<Record>(v) {
                *self = r;
            }
        }
        let note = format!("record cut to fit the journal's line limit ({before} bytes before cutting)");
        self.detail.reason = Some(match self.detail.reason.take() {
            Some(r) => format!("{note}: {r}"),
            None => note,
        });
    }

    /// Parses one line (without its newline). Any input is safe.
    pub fn parse(line: &[u8]) -> Result<Record, String> {
        serde_json::from_slice(line).map_err(|e| e.to_string())
    }

    /// The actor as a struct, for callers that want it back.
    pub fn actor(&self) -> Actor {
        Actor {
            uid: self.uid,
            user: self.user.clone(),
            gid: self.gid,
            pid: self.pid,
            login_uid: self.login_uid,
            login_user: self.login_user.clone(),
            session: self.session,
            exe: self.exe.clone(),
            cmdline: self.cmdline.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            uid: 1000,
            user: Some("alice".into()),
            gid: 1000,
            pid: 4242,
            exe: Some("/usr/bin/cat".into()),
            cmdline: Some(vec!["cat".into(), "/mnt/team-a/c1.wav".into()]),
            ..Actor::default()
        }
    }

    #[test]
    fn line_layout_is_stable() {
        let ev = Event::new(EventKind::Close, actor()).path("/team-a/c1.wav").detail(Detail {
            fh: Some(3),
            bytes_read: Some(4096),
            bytes_written: Some(0),
            ..Detail::default()
        });
        let r = Record::from_event(ev, 7, "2026-05-01T10:00:00.000000001Z".into(), "ab".repeat(32));
        let line = String::from_utf8(r.to_line()).unwrap();
        assert_eq!(
            line,
            format!(
                "{{\"seq\":7,\"ts\":\"2026-05-01T10:00:00.000000001Z\",\"event\":\"close\",\"outcome\":\"ok\",\
                 \"uid\":1000,\"user\":\"alice\",\"gid\":1000,\"pid\":4242,\"exe\":\"/usr/bin/cat\",\
                 \"cmdline\":[\"cat\",\"/mnt/team-a/c1.wav\"],\"path\":\"/team-a/c1.wav\",\
                 \"detail\":{{\"fh\":3,\"bytes_read\":4096,\"bytes_written\":0}},\"prev\":\"{}\"}}",
                "ab".repeat(32)
            )
        );
        assert_eq!(Record::parse(line.as_bytes()).unwrap(), r);
    }

    #[test]
    fn outcome_is_ok_or_errno_name() {
        let ev = Event::new(EventKind::Open, actor()).outcome(Outcome::errno(13));
        let r = Record::from_event(ev, 1, "t".into(), "0".repeat(64));
        let line = String::from_utf8(r.to_line()).unwrap();
        assert!(line.contains("\"outcome\":\"EACCES\""), "{line}");
        assert_eq!(errno_name(9999), "E9999");
    }

    #[test]
    fn event_names_round_trip() {
        for k in EventKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
        assert!("opened".parse::<EventKind>().is_err());
    }

    #[test]
    fn over_long_records_are_cut_to_fit() {
        let max = crate::journal::segment::MAX_LINE;
        let mut a = actor();
        a.cmdline = Some(vec!["\u{1}".repeat(4096); 5000]);
        let ev = Event::new(EventKind::Setattr, a).path("/p").detail(Detail {
            reason: Some("é".repeat(max)),
            changed: Some(vec!["x".repeat(max); 3]),
            ..Detail::default()
        });
        let mut r = Record::from_event(ev, 9, "2026-05-01T10:00:00.000000001Z".into(), "ab".repeat(32));
        assert!(r.to_line().len() > max);
        r.cut_to_fit();
        let line = r.to_line();
        assert!(line.len() < max / 2, "{}", line.len());
        assert_eq!((r.seq, r.path.as_deref(), r.prev.len()), (9, Some("/p"), 64));
        assert!(r.detail.reason.as_deref().unwrap().starts_with("record cut to fit"));
        assert_eq!(r.cmdline.as_ref().unwrap().len(), 16);
        assert_eq!(Record::parse(&line).unwrap(), r);
    }

    #[test]
    fn garbage_never_panics() {
        for bad in [&b""[..], b"{", b"\xff\xfe", b"{\"seq\":-1}", b"null", b"[1,2]", &[0u8; 300]] {
            assert!(Record::parse(bad).is_err());
        }
    }
}
