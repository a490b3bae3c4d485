//! Start-up and shutdown: checks, unlock, mount, serve until told to stop.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callvault::exitcode;
use callvault::journal::{Actor, Detail, Event, EventKind, Journal, JournalOptions, Outcome, SyslogOptions};
use callvault::policy::Policy;
use callvault::volume::{self, VolumePaths};
use fuser::{Config, MountOption, SessionACL};
use log::{info, warn};
use nix::sys::signal::{SigSet, Signal};

use crate::cli::Args;
use crate::fuse::CallvaultFs;
use crate::notify::Notifier;
use crate::sys::{self, Forked};
use crate::vault::{Vault, VaultOptions};

/// A start-up failure: one line for the operator and the exit code.
pub struct Fatal {
    pub code: u8,
    pub message: String,
}

impl Fatal {
    pub fn new(code: u8, message: impl fmt::Display) -> Self {
        Fatal { code, message: message.to_string() }
    }
}

impl From<callvault::Error> for Fatal {
    fn from(e: callvault::Error) -> Self {
        Fatal::new(exitcode::for_error(&e), e)
    }
}

/// Refuses a mount point that is missing, not a directory, already mounted,
/// or (unless `nonempty`) holding files.
fn check_mountpoint(m: &Path, nonempty: bool) -> Result<PathBuf, Fatal> {
    let bad = |what: String| Fatal::new(exitcode::BAD_MOUNTPOINT, what);
    let meta = std::fs::metadata(m).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad(format!("mount point {} does not exist", m.display())),
        std::io::ErrorKind::NotConnected => {
            bad(format!("mount point {} is a dead FUSE mount; run `fusermount3 -u {}`", m.display(), m.display()))
        }
        _ => bad(format!("mount point {}: {e}", m.display())),
    })?;
    if !meta.is_dir() {
        return Err(bad(format!("mount point {} is not a directory", m.display())));
    }
    let canon = m.canonicalize().map_err(|e| bad(format!("mount point {}: {e}", m.display())))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = canon.to_string_lossy();
    if mounts.lines().any(|l| l.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(&*target)) {
        return Err(bad(format!("mount point {} is already mounted", m.display())));
    }
    if !nonempty {
        let mut entries = std::fs::read_dir(&canon).map_err(|e| bad(format!("mount point {}: {e}", m.display())))?;
        if entries.next().is_some() {
            return Err(bad(format!(
                "mount point {} is not empty (a recorder may have written there unencrypted); \
                 move its files away, or give --nonempty to mount over them",
                m.display()
            )));
        }
    }
    Ok(canon)
}

/// Readahead the kernel does for this mount, KiB. The kernel offers FUSE only
/// 128 KiB at INIT; sequential playback and copies go much faster with reads
/// of the full request size (1 MiB).
const READAHEAD_KB: u32 = 1024;

/// This mount's share of the system's dirty page limit, percent. The kernel
/// gives a FUSE mount 1 % (and throttles writers strictly at it) so that an
/// untrusted daemon cannot pin much dirty memory. That is 36 MB on a 24 GiB
/// machine, and writers stall before the daemon is busy: 2 GiB sequential
/// writes on fresh mounts measured 10-30 % faster at 5 % (1.3 -> 1.9 GB/s into
/// a preallocated file; bench/README.md). callvaultd runs as a root service,
/// so it takes 5 %.
const DIRTY_SHARE_PERCENT: u32 = 5;

/// Tunes the mount through its backing-device entry in sysfs (root only;
/// otherwise the kernel defaults stay): readahead and dirty page share.
fn tune_bdi(mountpoint: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = mountpoint.to_string_lossy();
    let dev = mounts.lines().rev().find_map(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        (fields.get(4).map(|m| unescape_mountinfo(m)).as_deref() == Some(&*target)).then(|| fields[2].to_string())
    });
    let Some(dev) = dev else { return };
    for (knob, value) in [("read_ahead_kb", READAHEAD_KB), ("max_ratio", DIRTY_SHARE_PERCENT)] {
        let path = format!("/sys/class/bdi/{dev}/{knob}");
        if let Err(e) = std::fs::write(&path, value.to_string()) {
            log::debug!("{path}: {e}; it stays at the kernel's default");
        }
    }
}

/// /proc/self/mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Holds VOLUME/callvault.lock so two daemons never serve one volume.
fn lock_volume(paths: &VolumePaths) -> Result<nix::fcntl::Flock<File>, Fatal> {
    let p = paths.lock();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&p)
        .map_err(|e| Fatal::new(exitcode::FAILURE, format!("{}: {e}", p.display())))?;
    let mut lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(mut f, _)| {
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        Fatal::new(
            exitcode::VOLUME_IN_USE,
            format!("volume {} is already served by callvaultd (pid {})", paths.root.display(), pid.trim()),
        )
    })?;
    let _ = lock.set_len(0);
    let _ = write!(lock, "{}", std::process::id());
    Ok(lock)
}

fn describe(p: &Policy) -> String {
    let hash: String = p.text_sha256().iter().map(|b| format!("{b:02x}")).collect();
    format!("{} grants, sha256 {hash}", p.grant_count())
}

/// The access policy named on the command line, refusing to start without
/// one, and the line to log once the volume is unlocked.
fn load_policy(args: &Args) -> Result<(Policy, String), Fatal> {
    match &args.policy {
        Some(path) => {
            let p = Policy::load(path).map_err(|e| Fatal::new(exitcode::BAD_POLICY, format!("invalid policy: {e}")))?;
            let line = format!("access policy {} loaded ({})", path.display(), describe(&p));
            Ok((p, line))
        }
        None if args.allow_all => Ok((
            Policy::allow_all(),
            "access policy: --allow-all given: every user may do everything on this mount".into(),
        )),
        None => Err(Fatal::new(
            exitcode::BAD_POLICY,
            "no access policy: give --policy FILE (deny by default), or --allow-all to grant everything",
        )),
    }
}

fn policy_detail(p: &Policy, line: &str) -> Detail {
    let hash: String = p.text_sha256().iter().map(|b| format!("{b:02x}")).collect();
    Detail { policy_sha256: Some(hash), reason: Some(line.to_string()), ..Detail::default() }
}

/// Opens the volume's audit journal (unless `--no-audit`). Finished segments
/// are made append-only where the backing filesystem supports it.
fn open_journal(args: &Args, paths: &VolumePaths) -> Result<Option<Journal>, Fatal> {
    if args.no_audit {
        warn!("--no-audit: accesses to this volume are NOT recorded (PCI DSS 10 requires the journal)");
        return Ok(None);
    }
    let opts = JournalOptions {
        on_segment_finished: Some(Box::new(|p: &Path| {
            if let Err(e) = sys::set_append_only(p) {
                log::debug!("{}: append-only flag not set: {e}", p.display());
            }
        })),
        syslog: args.syslog.as_ref().map(|socket| SyslogOptions { socket: socket.clone(), ..SyslogOptions::default() }),
        segment_size: args.audit_segment_mib << 20,
        actor: Some(Actor::current_process()),
        ..JournalOptions::default()
    };
    Journal::open(&paths.audit(), opts).map(Some).map_err(|e| Fatal::new(exitcode::AUDIT_UNAVAILABLE, e))
}

/// SIGHUP: re-reads the policy file; a bad file leaves the old policy in
/// force. Returns a status line for the service manager.
fn reload_policy(vault: &Vault, path: Option<&Path>) -> String {
    let Some(path) = path else {
        info!("SIGHUP: running with --allow-all; there is no policy file to re-read");
        return "no policy file (--allow-all)".into();
    };
    let daemon = Actor::current_process();
    let (line, ev) = match Policy::load(path) {
        Ok(p) => {
            let line = format!("access policy {} reloaded ({})", path.display(), describe(&p));
            info!("{line}");
            let ev = Event::new(EventKind::PolicyReload, daemon).detail(policy_detail(&p, &line));
            vault.replace_policy(p);
            (line, ev)
        }
        Err(e) => {
            warn!("policy reload refused, the previous policy stays in force: {e}");
            let line = format!("policy reload refused: {e}");
            let detail = Detail { reason: Some(line.clone()), ..Detail::default() };
            (line, Event::new(EventKind::PolicyReload, daemon).outcome(Outcome::errno(libc::EINVAL)).detail(detail))
        }
    };
    if vault.audit.record(ev).is_err() {
        warn!("the policy reload could not be recorded in the audit journal");
    }
    line
}

/// Protects key material: no core dumps, no ptrace by non-root, no swap.
fn harden() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        warn!("could not disable core dumps: {e}");
    }
    if let Err(e) = sys::lock_memory() {
        warn!("could not lock memory (key material may be swapped): {e}; raise LimitMEMLOCK or run as root");
    }
    raise_descriptor_limit();
}

/// Lifts the soft open-file limit to the hard one. The hard limit is the
/// administrator's (the systemd unit sets 1048576) and is left alone: the
/// inode descriptors are bounded by a budget derived from it
/// (`vault::backing::budget_for`), so only open files need more.
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Said once mounted (not before, so a failed start stays one line): what
/// the open-file limit allows, and a warning if descriptors cannot be
/// bounded or little room is left for open files.
fn warn_if_descriptor_limit_low(vault: &Vault) {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((limit, _)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    let d = vault.descriptors();
    if let Some(why) = d.unavailable() {
        warn!(
            "backing descriptors cannot be reopened by handle ({why}): every file the kernel has cached \
             keeps one open, so beyond about {limit} files looked up since mounting lookups fail with \
             EMFILE; run callvaultd as root on ext4, xfs, btrfs or tmpfs, or raise LimitNOFILE"
        );
        return;
    }
    let room = limit.saturating_sub(d.budget() as u64 + crate::vault::backing::RESERVED_DESCRIPTORS);
    if room < MIN_GOOD_OPEN_FILES {
        warn!(
            "open file limit is {limit}: {} descriptors for inodes leave room for about {room} files open \
             at once through this mount (EMFILE beyond); raise LimitNOFILE (the unit sets 1048576)",
            d.budget()
        );
    } else {
        info!("open file limit {limit}: at most {} inode descriptors kept open, reopened by handle beyond", d.budget());
    }
}

/// Below this many possible open files a busy recorder host can run out.
const MIN_GOOD_OPEN_FILES: u64 = 1000;

/// `--background`: the parent waits for the child's readiness byte and exits
/// with 0, or with the child's own exit code if it failed first.
/// Once a second, flags blackouts that have lasted past the alert threshold.
fn start_blackout_alerts(vault: Arc<Vault>) -> Result<(), Fatal> {
    std::thread::Builder::new()
        .name("blackout-alerts".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                vault.blackout_alerts();
            }
        })
        .map(drop)
        .map_err(|e| Fatal::new(exitcode::FAILURE, format!("cannot start the blackout alert thread: {e}")))
}

fn daemonize(notifier: &mut Notifier) -> Result<(), Fatal> {
    let (r, w) = nix::unistd::pipe().map_err(|e| Fatal::new(exitcode::FAILURE, format!("pipe: {e}")))?;
    match sys::fork_before_threads().map_err(|e| Fatal::new(exitcode::FAILURE, format!("fork: {e}")))? {
        Forked::Parent { child } => {
            drop(w);
            let mut byte = [0u8; 1];
            let mut r = File::from(r);
            if matches!(r.read(&mut byte), Ok(1)) {
                std::process::exit(0);
            }
            let code = match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
                _ => exitcode::FAILURE as i32,
            };
            std::process::exit(if code == 0 { exitcode::FAILURE as i32 } else { code });
        }
        Forked::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            notifier.parent_pipe = Some(File::from(w));
            Ok(())
        }
    }
}

pub fn run(args: Args) -> Result<(), Fatal> {
    // Everything that can be checked is checked before the passphrase is asked for.
    if !Path::new("/dev/fuse").exists() {
        return Err(Fatal::new(
            exitcode::FUSE_UNAVAILABLE,
            "/dev/fuse is missing: load the fuse module (modprobe fuse) or give the container the device",
        ));
    }
    let paths = VolumePaths::new(&args.volume);
    let header = volume::read_header(&args.volume)?;
    if let callvault::header::AnyHeader::V2(h) = &header
        && h.rotating()
    {
        return Err(callvault::Error::RotationInProgress.into());
    }
    let mountpoint = check_mountpoint(&args.mountpoint, args.nonempty)?;
    let (policy, policy_line) = load_policy(&args)?;
    // Asked before forking: the background child has no terminal.
    let operators = crate::unlock::read_operators(&args, &header)?;
    let mut notifier = Notifier::default();
    if args.background {
        daemonize(&mut notifier)?;
    }
    // Signals are taken by one thread with sigwait; block them everywhere first.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    let _ = signals.thread_block();
    harden();
    // The kernel hands each create the caller's umask and the daemon applies
    // it; its own umask must not mask the mode a second time.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let _lock = lock_volume(&paths)?;
    let journal = open_journal(&args, &paths)?;
    // Read before this session's records: what the last one left undone.
    let dangling = match &journal {
        Some(j) => {
            callvault::journal::dangling_intents(j.dir()).map_err(|e| Fatal::new(exitcode::AUDIT_UNAVAILABLE, e))?
        }
        None => Default::default(),
    };
    let record = |ev: Event| -> Result<(), Fatal> {
        match &journal {
            Some(j) => j.append(ev).map(drop).map_err(|e| Fatal::new(exitcode::AUDIT_UNAVAILABLE, e)),
            None => Ok(()),
        }
    };
    let tried: Vec<String> = operators.iter().filter_map(|o| o.label.clone()).collect();
    let unlocked = match callvault::unlocking::unlock_throttled(&args.volume, &operators, |delay, failures| {
        warn!("{failures} failed unlocks in a row on this volume: waiting {} s before trying", delay.as_secs());
    }) {
        Ok(u) => u,
        Err(e) => {
            let reason = Detail {
                reason: Some(e.to_string().lines().next().unwrap_or_default().to_string()),
                label: tried.first().cloned(),
                labels: (tried.len() > 1).then(|| tried.clone()),
                ..Detail::default()
            };
            record(
                Event::new(EventKind::UnlockFailed, Actor::current_process())
                    .outcome(Outcome::errno(libc::EACCES))
                    .detail(reason),
            )?;
            return Err(e.into());
        }
    };
    drop(operators);
    for w in &unlocked.warnings {
        warn!("volume header: {w}");
    }
    record(Event::new(EventKind::Unlock, Actor::current_process()).detail(Detail {
        slot: unlocked.slots.first().map(|&s| s as u32),
        label: unlocked.labels.first().cloned(),
        labels: (unlocked.labels.len() > 1).then(|| unlocked.labels.clone()),
        ..Detail::default()
    }))?;
    // Sealed at once: an unlock is never left in an unsealed tail that root
    // could cut after a crash.
    if let Some(j) = &journal {
        j.seal().map_err(|e| Fatal::new(exitcode::AUDIT_UNAVAILABLE, e))?;
    }
    if policy.is_allow_all() {
        warn!("{policy_line}");
    } else {
        info!("{policy_line}");
    }
    record(Event::new(EventKind::PolicyLoad, Actor::current_process()).detail(policy_detail(&policy, &policy_line)))?;
    info!("volume {} unlocked by {}", args.volume.display(), unlocked.labels.join(", "));
    let layout = unlocked.header.layout();

    let vault = Arc::new(
        Vault::new(
            &paths.data(),
            unlocked.keys,
            policy,
            journal,
            VaultOptions {
                read_only: args.read_only,
                blackout_alert: Duration::from_secs(args.blackout_alert),
                auto_dtmf: args.auto_blackout == Some(crate::cli::AutoBlackout::Dtmf),
                layout,
            },
        )
        .map_err(|e| Fatal::new(exitcode::DAMAGED_HEADER, format!("volume data directory: {e}")))?,
    );
    if !dangling.intents.is_empty() {
        warn!(
            "{} operation(s) of the last session were interrupted between their intent and their outcome; \
             recorded as interrupted with what is found now{}",
            dangling.intents.len(),
            if dangling.more { " (more than could be listed; see `audit show --outcome intent`)" } else { "" }
        );
        vault.record_interrupted(&dangling.intents).map_err(|_| {
            Fatal::new(exitcode::AUDIT_UNAVAILABLE, "interrupted operations could not be recorded in the audit journal")
        })?;
    }
    let as_root = nix::unistd::geteuid().is_root();
    let mut options = vec![
        MountOption::FSName(format!("callvault:{}", args.volume.display())),
        MountOption::Subtype("callvault".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if args.read_only {
        options.push(MountOption::RO);
    }
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if as_root { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(args.threads as usize);
    config.clone_fd = true;

    let (triggers, pending_triggers) = crate::triggers::queue();
    let fs = CallvaultFs { vault: vault.clone(), triggers: triggers.clone() };
    let mut session = fuser::Session::new(fs, &mountpoint, &config).map_err(|e| {
        Fatal::new(exitcode::FUSE_UNAVAILABLE, format!("cannot mount at {}: {e}", mountpoint.display()))
    })?;
    crate::triggers::start(pending_triggers, &triggers, session.notifier(), vault.clone())
        .map_err(|e| Fatal::new(exitcode::FAILURE, format!("cannot start the blackout thread: {e}")))?;
    start_blackout_alerts(vault.clone())?;
    tune_bdi(&mountpoint);
    warn_if_descriptor_limit_low(&vault);
    let mut unmounter = session.unmount_callable();
    let mounted = Detail { reason: Some(format!("mounted at {}", mountpoint.display())), ..Detail::default() };
    vault
        .audit
        .record(Event::new(EventKind::Mount, Actor::current_process()).path("/").detail(mounted))
        .and_then(|()| vault.audit.seal())
        .map_err(|_| Fatal::new(exitcode::AUDIT_UNAVAILABLE, "the mount could not be recorded in the audit journal"))?;
    // The kernel's INIT was answered inside Session::new: the mount answers,
    // and its start is recorded and sealed. Only now is it ready.
    notifier.ready(&mountpoint.display().to_string());
    info!("serving {}", mountpoint.display());
    let shown = mountpoint.display().to_string();
    let (reload_vault, policy_path) = (vault.clone(), args.policy.clone());
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                match signals.wait() {
                    Ok(Signal::SIGHUP) => Notifier::reloading(|| reload_policy(&reload_vault, policy_path.as_deref())),
                    Ok(sig) => {
                        info!("{sig}: unmounting {shown}");
                        Notifier::stopping();
                        if let Err(e) = unmounter.unmount() {
                            warn!("unmount {shown}: {e}; retry with `fusermount3 -u {shown}`");
                            continue;
                        }
                        return;
                    }
                    Err(e) => {
                        warn!("waiting for signals: {e}");
                        return;
                    }
                }
            }
        })
        .map_err(|e| Fatal::new(exitcode::FAILURE, format!("cannot start the signal thread: {e}")))?;

    let served = session.run();
    vault.end_all_blackouts();
    let unsynced = vault.flush_all();
    Notifier::stopping();
    let mut reason = format!("unmounted from {}", mountpoint.display());
    let mut unmount = Event::new(EventKind::Unmount, Actor::current_process()).path("/");
    if !unsynced.is_empty() {
        reason.push_str(&format!("; {}", unsynced_paths(&unsynced)));
        unmount = unmount.outcome(Outcome::errno(libc::EIO));
    }
    let unmounted = Detail { reason: Some(reason), ..Detail::default() };
    if vault.audit.record(unmount.detail(unmounted)).is_err() {
        warn!("the unmount could not be recorded in the audit journal");
    }
    vault.audit.shutdown();
    served.map_err(|e| Fatal::new(exitcode::FAILURE, format!("serving {}: {e}", mountpoint.display())))?;
    if !unsynced.is_empty() {
        let inodes: Vec<String> = unsynced.iter().map(|u| format!("inode {}: {}", u.ino, u.error)).collect();
        return Err(Fatal::new(
            exitcode::FAILURE,
            format!(
                "unmounted {}, but {} open file(s) could not be synced ({}); their last writes may be lost\n\
                 hint: the unmount record in the audit journal names their paths; check the backing filesystem",
                mountpoint.display(),
                unsynced.len(),
                inodes.join(", ")
            ),
        ));
    }
    info!("unmounted {}; all data flushed", mountpoint.display());
    Ok(())
}

/// At most this many paths are named in the unmount record (a journal line
/// is capped at 1 MiB); the count is always complete.
const UNSYNCED_LISTED: usize = 100;

/// "N open file(s) could not be synced: /a.wav (EIO), ..." for the unmount
/// record: the journal names files by path (log lines name only inodes).
fn unsynced_paths(unsynced: &[crate::vault::Unsynced]) -> String {
    let mut listed: Vec<String> = unsynced
        .iter()
        .take(UNSYNCED_LISTED)
        .map(|u| format!("{} ({})", u.path.text, callvault::journal::errno_name(u.error as i32)))
        .collect();
    if unsynced.len() > UNSYNCED_LISTED {
        listed.push(format!("and {} more", unsynced.len() - UNSYNCED_LISTED));
    }
    format!("{} open file(s) could not be synced: {}", unsynced.len(), listed.join(", "))
}
