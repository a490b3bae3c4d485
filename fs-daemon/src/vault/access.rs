//! Who is asking, and whether the policy lets them: rights checks at the
//! moment a name is used or a handle opened.
//!
//! The subject is the caller's uid and gid from the kernel's request header
//! plus the supplementary groups of the calling process, read from
//! /proc/PID/status. A process that vanished before it could be asked about
//! is denied. Group sets are cached for a second per (pid, uid, gid), so a
//! burst of lookups costs one read of /proc.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use callvault::policy::{Policy, Right, Subject};
use log::debug;
use nix::errno::Errno;

use super::Caller;
use super::inode::lock;

const SUBJECT_TTL: Duration = Duration::from_secs(1);
/// Above this many cached subjects, expired ones are swept.
const SUBJECT_CACHE_SWEEP: usize = 4096;

type SubjectKey = (u32, u32, u32);

pub struct Access {
    policy: RwLock<Arc<Policy>>,
    subjects: Mutex<HashMap<SubjectKey, (Instant, Arc<Subject>)>>,
}

/// Supplementary groups from the text of /proc/PID/status.
pub fn groups_from_status(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    line.split_whitespace().map(|g| g.parse().ok()).collect()
}

impl Access {
    pub fn new(policy: Policy) -> Self {
        Access { policy: RwLock::new(Arc::new(policy)), subjects: Mutex::new(HashMap::new()) }
    }

    /// The policy in force now. New checks use it; open handles keep the
    /// rights they were opened with.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new policy in force atomically.
    pub fn replace(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }

    fn subject(&self, who: &Caller) -> Result<Arc<Subject>, Errno> {
        let key = (who.pid, who.uid, who.gid);
        let now = Instant::now();
        if let Some((at, s)) = lock(&self.subjects).get(&key)
            && now.duration_since(*at) < SUBJECT_TTL
        {
            return Ok(s.clone());
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", who.pid)).map_err(|_| {
            debug!("pid {} is gone; denied", who.pid);
            Errno::EACCES
        })?;
        let mut gids = vec![who.gid];
        for g in groups_from_status(&status).ok_or(Errno::EACCES)? {
            if !gids.contains(&g) {
                gids.push(g);
            }
        }
        let subject = Arc::new(Subject::new(who.uid, gids));
        let mut cache = lock(&self.subjects);
        if cache.len() > SUBJECT_CACHE_SWEEP {
            cache.retain(|_, (at, _)| now.duration_since(*at) < SUBJECT_TTL);
        }
        cache.insert(key, (now, subject.clone()));
        Ok(subject)
    }

    /// Ok if the policy grants `right` on `path` to the caller, else EACCES.
    pub fn check(&self, who: &Caller, path: &str, right: Right) -> Result<(), Errno> {
        let policy = self.policy();
        if policy.is_allow_all() {
            return Ok(());
        }
        let subject = self.subject(who)?;
        if policy.allows(&subject, path, right) {
            Ok(())
        } else {
            debug!("denied: uid {} pid {} has no {right} on {path}", who.uid, who.pid);
            Err(Errno::EACCES)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::groups_from_status;

    #[test]
    fn supplementary_groups_parse_from_proc_status() {
        let status = "Name:\tcat\nUid:\t1001\t1001\t1001\t1001\nGid:\t100\t100\t100\t100\nGroups:\t100 2001 2002 \nVmPeak:\t1 kB\n";
        assert_eq!(groups_from_status(status), Some(vec![100, 2001, 2002]));
        assert_eq!(groups_from_status("Groups:\t\n"), Some(vec![]));
        assert_eq!(groups_from_status("Name:\tx\n"), None);
        assert_eq!(groups_from_status("Groups:\tabc\n"), None);
    }
}
