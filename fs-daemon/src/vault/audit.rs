//! Recording accesses in the volume's audit journal, failing closed.
//!
//! Every record is durable before the operation's result goes back to the
//! caller. If a record cannot be written, the operation answers EIO: nothing
//! is served unrecorded. Who did it (user, executable, command line) is read
//! from /proc once a second per process, not on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use callvault::journal::{Actor, Detail, Event, EventKind, Journal, Outcome};
use log::error;
use nix::errno::Errno;

use super::Caller;
use super::inode::lock;

const ACTOR_TTL: Duration = Duration::from_secs(1);
const ACTOR_CACHE_SWEEP: usize = 4096;

/// (pid, uid, gid) of a request.
type ActorKey = (u32, u32, u32);

pub struct Audit {
    journal: Option<Journal>,
    actors: Mutex<HashMap<ActorKey, (Instant, Actor)>>,
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

pub fn outcome<T>(r: &Result<T, Errno>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::errno(*e as i32),
    }
}

impl Audit {
    /// `None` runs without a journal (`--no-audit`, benchmarks only).
    pub fn new(journal: Option<Journal>) -> Self {
        Audit { journal, actors: Mutex::new(HashMap::new()) }
    }

    pub fn enabled(&self) -> bool {
        self.journal.is_some()
    }

    /// The process behind a request: uid and user, gid, pid, exe, command line.
    pub fn actor(&self, who: &Caller) -> Actor {
        let key = (who.pid, who.uid, who.gid);
        let now = Instant::now();
        if let Some((at, a)) = lock(&self.actors).get(&key)
            && now.duration_since(*at) < ACTOR_TTL
        {
            return a.clone();
        }
        let actor = Actor::for_process(who.uid, who.gid, who.pid);
        let mut cache = lock(&self.actors);
        if cache.len() > ACTOR_CACHE_SWEEP {
            cache.retain(|_, (at, _)| now.duration_since(*at) < ACTOR_TTL);
        }
        cache.insert(key, (now, actor.clone()));
        actor
    }

    /// Appends `ev` durably; EIO (and a log line) if it cannot be recorded.
    pub fn record(&self, ev: Event) -> Result<(), Errno> {
        let Some(j) = &self.journal else { return Ok(()) };
        j.append(ev).map(drop).map_err(|e| {
            error!("{e}; the access was refused");
            Errno::EIO
        })
    }

    /// Records an event by `who` with the outcome of `r`.
    pub fn log<T>(
        &self,
        who: &Caller,
        kind: EventKind,
        r: &Result<T, Errno>,
        path: Option<String>,
        path2: Option<String>,
        detail: Detail,
    ) -> Result<(), Errno> {
        if !self.enabled() {
            return Ok(());
        }
        let mut ev = Event::new(kind, self.actor(who)).outcome(outcome(r)).detail(detail);
        if let Some(p) = path {
            ev = ev.path(p);
        }
        if let Some(p) = path2 {
            ev = ev.path2(p);
        }
        self.record(ev)
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
