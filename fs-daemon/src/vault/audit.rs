//! Recording accesses in the volume's audit journal, failing closed.
//!
//! Every record is durable before the operation's result goes back to the
//! caller. If a record cannot be written, the operation answers EIO: nothing
//! is served unrecorded. Who did it: executable and command line are read
//! from /proc for every record; login uid and session once a second per
//! process (exec keeps them); user names are cached per uid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use callvault::journal::{Actor, Detail, Event, EventKind, Journal, Login, Outcome};
use log::error;
use nix::errno::Errno;

use super::Caller;
use super::inode::lock;
use super::paths::VolPath;

/// How long a user name looked up for a uid is reused.
const NAME_TTL: Duration = Duration::from_secs(10);
/// (pid, uid, gid) of a request.
type ProcessKey = (u32, u32, u32);

/// How long a process's login uid and session are reused.
const LOGIN_TTL: Duration = Duration::from_secs(1);
/// Above this many cached names (or logins), expired ones are swept.
const NAME_CACHE_SWEEP: usize = 4096;

pub struct Audit {
    journal: Option<Journal>,
    fault: Option<Fault>,
    /// User names by uid, with when they were looked up.
    names: Mutex<HashMap<u32, (Instant, Option<String>)>>,
    /// Login identities by (pid, uid, gid), with when they were read.
    logins: Mutex<HashMap<ProcessKey, (Instant, Login)>>,
}

/// Open flags by name, for open and create records.
pub fn flag_names(flags: i32) -> String {
    let mut names = vec![match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        _ => "O_RDWR",
    }];
    for (bit, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_DIRECT, "O_DIRECT"),
        (libc::O_SYNC, "O_SYNC"),
    ] {
        if flags & bit != 0 {
            names.push(name);
        }
    }
    names.join("|")
}

/// `read`, `write` or `read-write`.
pub fn access_name(readable: bool, writable: bool) -> &'static str {
    match (readable, writable) {
        (true, true) => "read-write",
        (false, true) => "write",
        _ => "read",
    }
}

/// Fault injection for the crash tests: `CALLVAULTD_FAULT=STAGE:EVENT`
/// (`after-intent:unlink`: die right after an unlink's intent is durable,
/// before its effect; `before-outcome:unlink`: after the effect, before its
/// outcome is recorded). The daemon kills itself with SIGKILL there, as a
/// power cut would stop it. Documented in docs/CLI.md; harmless to leave
/// unset, and whoever sets a daemon's environment can kill it anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    stage: FaultStage,
    kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultStage {
    AfterIntent,
    BeforeOutcome,
}

impl Fault {
    fn from_env() -> Option<Fault> {
        let spec = std::env::var("CALLVAULTD_FAULT").ok()?;
        let parsed = Fault::parse(&spec);
        if parsed.is_none() {
            error!("CALLVAULTD_FAULT={spec:?} is not STAGE:EVENT (after-intent or before-outcome); ignored");
        }
        parsed
    }

    fn parse(spec: &str) -> Option<Fault> {
        let (stage, kind) = spec.split_once(':')?;
        let stage = match stage {
            "after-intent" => FaultStage::AfterIntent,
            "before-outcome" => FaultStage::BeforeOutcome,
            _ => return None,
        };
        Some(Fault { stage, kind: kind.parse().ok()? })
    }
}

/// An operation recorded as intended and not yet as done.
#[must_use = "an intent needs its outcome recorded"]
pub struct Intent {
    seq: u64,
    /// The intent's event, to be repeated with the outcome; `None` without a journal.
    ev: Option<Event>,
}

impl Intent {
    /// The handle the operation produced, for its outcome record.
    pub fn set_fh(&mut self, fh: u64) {
        if let Some(ev) = &mut self.ev {
            ev.detail.fh = Some(fh);
        }
    }
}

fn event(
    kind: EventKind,
    actor: Actor,
    outcome: Outcome,
    path: Option<&VolPath>,
    path2: Option<&VolPath>,
    mut detail: Detail,
) -> Event {
    if path.is_some_and(|p| p.escaped) || path2.is_some_and(|p| p.escaped) {
        detail.escaped = Some(true);
    }
    let mut ev = Event::new(kind, actor).outcome(outcome).detail(detail);
    if let Some(p) = path {
        ev = ev.path(p.text.clone());
    }
    if let Some(p) = path2 {
        ev = ev.path2(p.text.clone());
    }
    ev
}

pub fn outcome<T>(r: &Result<T, Errno>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::errno(*e as i32),
    }
}

impl Audit {
    /// `None` runs without a journal (`--no-audit`, benchmarks only).
    pub fn new(journal: Option<Journal>) -> Self {
        Audit {
            journal,
            fault: Fault::from_env(),
            names: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.journal.is_some()
    }

    /// The process behind a request: uid and user, gid, pid, login uid and
    /// session, exe, command line. Exe and command line are read from /proc
    /// for each record: a process that execs another program is recorded as
    /// what it runs now. The login uid and session survive exec and change
    /// only by a privileged write, so they are read once per [`LOGIN_TTL`]
    /// per (pid, uid, gid). Names come from NSS, cached per uid for
    /// [`NAME_TTL`] (a lookup may go to LDAP).
    pub fn actor(&self, who: &Caller) -> Actor {
        let now = Instant::now();
        let user = self.user_name(who.uid, now);
        let key = (who.pid, who.uid, who.gid);
        let cached = lock(&self.logins).get(&key).filter(|(at, _)| now.duration_since(*at) < LOGIN_TTL).cloned();
        let login = match cached {
            Some((_, login)) => login,
            None => {
                let login = Login::of_process(who.pid, who.uid, user.as_deref());
                let mut logins = lock(&self.logins);
                if logins.len() > NAME_CACHE_SWEEP {
                    logins.retain(|_, (at, _)| now.duration_since(*at) < LOGIN_TTL);
                }
                logins.insert(key, (now, login.clone()));
                login
            }
        };
        Actor::for_process_with_login(who.uid, who.gid, who.pid, user, login)
    }

    /// The user name of `uid`, from the cache or NSS.
    fn user_name(&self, uid: u32, now: Instant) -> Option<String> {
        let cached = lock(&self.names).get(&uid).filter(|(at, _)| now.duration_since(*at) < NAME_TTL).cloned();
        match cached {
            Some((_, name)) => name,
            None => {
                let name = callvault::journal::user_name(uid);
                let mut names = lock(&self.names);
                if names.len() > NAME_CACHE_SWEEP {
                    names.retain(|_, (at, _)| now.duration_since(*at) < NAME_TTL);
                }
                names.insert(uid, (now, name.clone()));
                name
            }
        }
    }

    /// Appends `ev` durably; EIO (and a log line) if it cannot be recorded.
    pub fn record(&self, ev: Event) -> Result<(), Errno> {
        let Some(j) = &self.journal else { return Ok(()) };
        j.append(ev).map(drop).map_err(|e| {
            error!("{e}; the access was refused");
            Errno::EIO
        })
    }

    /// Records an event by `who` with the outcome of `r` (one record: for
    /// what has no effect to come, or an attempt refused before any effect).
    pub fn log<T>(
        &self,
        who: &Caller,
        kind: EventKind,
        r: &Result<T, Errno>,
        path: Option<&VolPath>,
        path2: Option<&VolPath>,
        detail: Detail,
    ) -> Result<(), Errno> {
        self.log_as(self.actor_of(who), kind, r, path, path2, detail)
    }

    /// The actor to name in records for `who`: `None` without a journal.
    /// Kept on a handle, it names the opener in the close record even after
    /// that process is gone.
    pub fn actor_of(&self, who: &Caller) -> Option<Actor> {
        self.enabled().then(|| self.actor(who))
    }

    /// [`Audit::log`] with the actor already read.
    pub fn log_as<T>(
        &self,
        actor: Option<Actor>,
        kind: EventKind,
        r: &Result<T, Errno>,
        path: Option<&VolPath>,
        path2: Option<&VolPath>,
        detail: Detail,
    ) -> Result<(), Errno> {
        let Some(actor) = actor else { return Ok(()) };
        self.record(event(kind, actor, outcome(r), path, path2, detail))
    }

    /// Records that `who` is about to do `kind`, durably, before it takes
    /// effect: an access that cannot be recorded does not happen (EIO, and
    /// nothing changes). [`Audit::finish`] records the outcome.
    pub fn intend(
        &self,
        who: &Caller,
        kind: EventKind,
        path: Option<&VolPath>,
        path2: Option<&VolPath>,
        detail: Detail,
    ) -> Result<Intent, Errno> {
        self.intend_as(self.actor_of(who), kind, path, path2, detail)
    }

    /// [`Audit::intend`] with the actor already read.
    pub fn intend_as(
        &self,
        actor: Option<Actor>,
        kind: EventKind,
        path: Option<&VolPath>,
        path2: Option<&VolPath>,
        detail: Detail,
    ) -> Result<Intent, Errno> {
        let (Some(j), Some(actor)) = (&self.journal, actor) else { return Ok(Intent { seq: 0, ev: None }) };
        let ev = event(kind, actor, Outcome::Intent, path, path2, detail);
        match j.append(ev.clone()) {
            Ok(seq) => {
                self.inject(FaultStage::AfterIntent, kind);
                Ok(Intent { seq, ev: Some(ev) })
            }
            Err(e) => {
                error!("{e}; the {kind} was refused before it took effect");
                Err(Errno::EIO)
            }
        }
    }

    /// Records how an intended operation ended. The record is queued, not
    /// waited for: it reaches the disk with the next batch (the next
    /// access's record, or within a second), so a change costs one sync, its
    /// intent's. If it is lost (a crash, or the journal failing before that
    /// batch) the intent stays on record and the next mount records it as
    /// interrupted, with what it finds. If the journal refuses records at
    /// all, the effect stands with its intent on record and the caller gets EIO.
    pub fn finish<T>(&self, intent: Intent, r: &Result<T, Errno>) -> Result<(), Errno> {
        let (Some(j), Some(mut ev)) = (&self.journal, intent.ev) else { return Ok(()) };
        self.inject(FaultStage::BeforeOutcome, ev.kind);
        ev.outcome = outcome(r);
        ev.detail.intent = Some(intent.seq);
        j.append_lazily(ev).map(drop).map_err(|e| {
            error!("{e}; the outcome of an operation already done could not be recorded");
            Errno::EIO
        })
    }

    fn inject(&self, stage: FaultStage, kind: EventKind) {
        if self.fault == Some(Fault { stage, kind }) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Ends the journal's current epoch now (after the mount record).
    pub fn seal(&self) -> Result<(), Errno> {
        let Some(j) = &self.journal else { return Ok(()) };
        j.seal().map_err(|e| {
            error!("{e}");
            Errno::EIO
        })
    }

    /// Seals and closes the journal (unmount).
    pub fn shutdown(&self) {
        if let Some(j) = &self.journal
            && let Err(e) = j.shutdown()
        {
            error!("closing the audit journal: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse_or_are_refused() {
        assert_eq!(
            Fault::parse("after-intent:unlink"),
            Some(Fault { stage: FaultStage::AfterIntent, kind: EventKind::Unlink })
        );
        assert_eq!(
            Fault::parse("before-outcome:rename"),
            Some(Fault { stage: FaultStage::BeforeOutcome, kind: EventKind::Rename })
        );
        assert_eq!(Fault::parse("after-intent"), None);
        assert_eq!(Fault::parse("later:unlink"), None);
        assert_eq!(Fault::parse("after-intent:nothing"), None);
    }

    #[test]
    fn flags_and_access_are_named() {
        assert_eq!(flag_names(libc::O_RDONLY), "O_RDONLY");
        assert_eq!(flag_names(libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND), "O_WRONLY|O_CREAT|O_APPEND");
        assert_eq!(flag_names(libc::O_RDWR | libc::O_TRUNC), "O_RDWR|O_TRUNC");
        assert_eq!(access_name(true, false), "read");
        assert_eq!(access_name(false, true), "write");
        assert_eq!(access_name(true, true), "read-write");
        assert_eq!(outcome::<()>(&Err(Errno::EACCES)).as_str(), "EACCES");
    }
}
