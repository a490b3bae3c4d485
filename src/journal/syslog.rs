//! Optional forwarding of each record to the local syslog socket as an RFC 5424 line.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::record::{EventKind, Record};

/// Where and how to forward records.
#[derive(Clone, Debug)]
pub struct SyslogOptions {
    /// The local syslog datagram socket (default `/dev/log`).
    pub socket: PathBuf,
    /// APP-NAME field (default `callvault`).
    pub app_name: String,
    /// Facility number (default 10, authpriv).
    pub facility: u8,
}

impl Default for SyslogOptions {
    fn default() -> Self {
        SyslogOptions { socket: PathBuf::from("/dev/log"), app_name: "callvault".into(), facility: 10 }
    }
}

/// A connected-on-demand, non-blocking forwarder. Send failures are counted,
/// never returned: the journal on disk is the record of truth.
pub(crate) struct Syslog {
    opts: SyslogOptions,
    sock: Option<UnixDatagram>,
    hostname: String,
    pub(crate) failures: AtomicU64,
}

impl Syslog {
    pub(crate) fn new(opts: SyslogOptions) -> Syslog {
        let sock = UnixDatagram::unbound().ok().filter(|s| s.set_nonblocking(true).is_ok());
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
            .unwrap_or_else(|| "-".into());
        Syslog { opts, sock, hostname, failures: AtomicU64::new(0) }
    }

    /// The RFC 5424 message for a record whose JSON line is `line`.
    pub(crate) fn message(&self, rec: &Record, line: &[u8]) -> Vec<u8> {
        format_message(&self.opts, &self.hostname, rec, line)
    }

    pub(crate) fn send(&self, msg: &[u8]) {
        let ok = match &self.sock {
            Some(s) => s.send_to(msg, &self.opts.socket).is_ok(),
            None => false,
        };
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn format_message(opts: &SyslogOptions, hostname: &str, rec: &Record, line: &[u8]) -> Vec<u8> {
    // Severity: warning for a torn tail, notice for refusals, info otherwise.
    let severity = match (rec.event, rec.outcome.is_ok()) {
        (EventKind::TornTail, _) => 4,
        (EventKind::Denied | EventKind::UnlockFailed, _) | (_, false) => 5,
        _ => 6,
    };
    let pri = u32::from(opts.facility.min(23)) * 8 + severity;
    // RFC 5424 TIME-SECFRAC allows at most six digits: keep microseconds.
    let ts = match (rec.ts.get(..26), rec.ts.len()) {
        (Some(head), 30) => format!("{head}Z"),
        _ => "-".to_string(),
    };
    let app: String = opts.app_name.chars().filter(|c| c.is_ascii_graphic()).take(48).collect();
    let app = if app.is_empty() { "-".to_string() } else { app };
    let mut m = format!("<{pri}>1 {ts} {hostname} {app} {} {} - ", std::process::id(), rec.event.as_str()).into_bytes();
    m.extend_from_slice(line);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Actor, Event, Outcome};

    #[test]
    fn message_is_rfc5424_with_the_json_line() {
        let ev = Event::new(EventKind::Open, Actor::default()).outcome(Outcome::errno(13));
        let rec = Record::from_event(ev, 5, "2026-05-01T10:00:00.123456789Z".into(), "0".repeat(64));
        let line = rec.to_line();
        let m = format_message(&SyslogOptions::default(), "host1", &rec, &line);
        let m = String::from_utf8(m).unwrap();
        let head = format!("<85>1 2026-05-01T10:00:00.123456Z host1 callvault {} open - {{", std::process::id());
        assert!(m.starts_with(&head), "{m}");
        assert!(m.ends_with(&String::from_utf8(line).unwrap()));
    }

    #[test]
    fn forwarding_reaches_a_datagram_socket_and_failures_only_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let s = Syslog::new(SyslogOptions { socket: path, ..SyslogOptions::default() });
        s.send(b"<14>1 - - - - - - hi");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<14>1 - - - - - - hi");
        let gone = Syslog::new(SyslogOptions { socket: dir.path().join("nope"), ..SyslogOptions::default() });
        gone.send(b"x");
        assert_eq!(gone.failures.load(Ordering::Relaxed), 1);
    }
}
