//! After a crash: operations whose intent is on record but whose outcome
//! never came. The next mount records each as `interrupted`, with what it
//! finds at the paths now, so the auditor knows whether it took effect.

use std::os::fd::OwnedFd;

use callvault::journal::{DanglingIntent, Detail, Event, Outcome};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, fstatat};

use super::inode::ROOT;
use super::paths::VolPath;
use super::{Vault, read_dir_id};

impl Vault {
    /// Whether an object exists at `path` now. Walks the backing tree from
    /// the root by encrypted names and keeps no inode.
    pub fn exists(&self, path: &VolPath) -> Result<bool, Errno> {
        let raw = path.raw();
        let parts: Vec<&[u8]> = raw.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
        let Some((last, dirs)) = parts.split_last() else { return Ok(true) };
        let root = self.inodes.get(ROOT).ok_or(Errno::ESTALE)?;
        let mut id = self.dir_id(&root)?;
        let mut dir: Option<OwnedFd> = None;
        let root_fd = root.fd()?;
        for part in dirs {
            let bn = self.backing_name_in(&id, part)?;
            let at = dir.as_ref().unwrap_or(&root_fd);
            let next =
                match openat(at, bn.entry(), OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(false),
                    Err(e) => return Err(e),
                };
            id = read_dir_id(&next, 0)?;
            dir = Some(next);
        }
        let bn = self.backing_name_in(&id, last)?;
        match fstatat(dir.as_ref().unwrap_or(&root_fd), bn.entry(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// What is at the paths of an interrupted operation now:
    /// `"path present"`, `"path absent; path2 present"`, ...
    fn found(&self, i: &DanglingIntent) -> String {
        let state = |text: &str| {
            let p = VolPath { text: text.to_string(), escaped: i.escaped };
            match self.exists(&p) {
                Ok(true) => "present".to_string(),
                Ok(false) => "absent".to_string(),
                Err(e) => format!("unknown ({e})"),
            }
        };
        let mut found = Vec::new();
        if let Some(p) = &i.path {
            found.push(format!("path {}", state(p)));
        }
        if let Some(p) = &i.path2 {
            found.push(format!("path2 {}", state(p)));
        }
        found.join("; ")
    }

    /// Records every intent the previous session left without an outcome
    /// as `interrupted`, in the name of the process that intended it. Done
    /// at mount, before the `mount` record. EIO if they cannot be recorded.
    pub fn record_interrupted(&self, intents: &[DanglingIntent]) -> Result<(), Errno> {
        for i in intents {
            let detail = Detail {
                intent: Some(i.seq),
                found: Some(self.found(i)),
                escaped: i.escaped.then_some(true),
                ..Detail::default()
            };
            let mut ev = Event::new(i.kind, i.actor.clone()).outcome(Outcome::Interrupted).detail(detail);
            if let Some(p) = &i.path {
                ev = ev.path(p.clone());
            }
            if let Some(p) = &i.path2 {
                ev = ev.path2(p.clone());
            }
            self.audit.record(ev)?;
        }
        Ok(())
    }
}
