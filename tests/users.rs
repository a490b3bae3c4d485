//! Real unix users and groups for rights tests, removed when dropped.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Users and groups made for one test; names carry a per-process suffix so
/// tests running in parallel never share one.
pub struct Users {
    users: Vec<String>,
    groups: Vec<String>,
    tag: String,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run user administration command");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

impl Users {
    pub fn new() -> Users {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Users { users: Vec::new(), groups: Vec::new(), tag: format!("{}x{n}", std::process::id() % 100_000) }
    }

    /// The real name of the logical name `name` in this test.
    pub fn name(&self, name: &str) -> String {
        format!("cv{}{name}", self.tag)
    }

    pub fn group(&mut self, name: &str) -> String {
        let real = self.name(name);
        run(Command::new("groupadd").arg(&real));
        self.groups.push(real.clone());
        real
    }

    /// Takes over users and groups someone else (a script) made under this
    /// test's names: they are removed on drop like those made here. Names
    /// that were never made are skipped then.
    pub fn adopt(&mut self, users: &[&str], groups: &[&str]) {
        self.users.extend(users.iter().map(|u| self.name(u)).collect::<Vec<_>>());
        self.groups.extend(groups.iter().map(|g| self.name(g)).collect::<Vec<_>>());
    }

    /// A user with its own primary group `primary` (made if missing) and
    /// supplementary groups.
    pub fn user(&mut self, name: &str, primary: &str, supplementary: &[&str]) -> String {
        let real = self.name(name);
        let primary = self.name(primary);
        if !self.groups.contains(&primary) {
            run(Command::new("groupadd").arg(&primary));
            self.groups.push(primary.clone());
        }
        let mut cmd = Command::new("useradd");
        cmd.args(["-M", "-N", "-s", "/bin/sh", "-g", &primary]);
        if !supplementary.is_empty() {
            let sup: Vec<String> = supplementary.iter().map(|g| self.name(g)).collect();
            cmd.arg("-G").arg(sup.join(","));
        }
        run(cmd.arg(&real));
        self.users.push(real.clone());
        real
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).output();
        }
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}

/// Runs `sh -c script` as `user` (runuser: a real process with that user's
/// uid, gid and supplementary groups). Extra arguments are $1, $2, ...
pub fn as_user(user: &str, script: &str, args: &[&str]) -> Output {
    Command::new("runuser").args(["-u", user, "--", "sh", "-c", script, "sh"]).args(args).output().expect("runuser")
}
