//! A minimal logger: one line per record on stderr, where systemd's journal
//! or the calling terminal picks it up; once a `--background` daemon has
//! detached, to syslog (/dev/log). Never given key material.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) || !r.target().starts_with("callvault") {
            return;
        }
        let level = match r.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug | Level::Trace => "debug",
        };
        if let Some(sock) = SYSLOG.get() {
            // RFC 3164 as /dev/log takes it: facility daemon (3).
            let severity = match r.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            let line = format!("<{}>callvaultd[{}]: {level}: {}", 3 * 8 + severity, std::process::id(), r.args());
            let _ = sock.send(line.as_bytes());
            return;
        }
        let _ = writeln!(std::io::stderr().lock(), "callvaultd: {level}: {}", r.args());
    }

    fn flush(&self) {}
}

pub fn init(verbose: bool) {
    static LOGGER: StderrLogger = StderrLogger;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if verbose { LevelFilter::Debug } else { LevelFilter::Info });
}

/// Where log lines go once detached; unset while stderr is used.
static SYSLOG: OnceLock<UnixDatagram> = OnceLock::new();

/// Detaches from the caller's terminal and output: stdin, stdout and stderr
/// become /dev/null, and log lines go to syslog from now on (dropped if no
/// syslog socket listens).
pub fn detach() {
    if let Ok(sock) = UnixDatagram::unbound()
        && sock.connect("/dev/log").is_ok()
    {
        let _ = SYSLOG.set(sock);
    }
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
