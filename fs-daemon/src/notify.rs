//! Telling whoever started the daemon that the mount is live: systemd's
//! notify socket (Type=notify) and, with `--background`, the waiting parent.

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixDatagram;

/// Where readiness and stopping are announced.
#[derive(Default)]
pub struct Notifier {
    /// Write end of the pipe the `--background` parent waits on.
    pub parent_pipe: Option<File>,
}

pub fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), &path)
    };
    if let Err(e) = sent {
        log::warn!("could not notify the service manager: {e}");
    }
}

impl Notifier {
    pub fn ready(&mut self, mountpoint: &str) {
        sd_notify(&format!("READY=1\nSTATUS=serving {mountpoint}"));
        if let Some(mut p) = self.parent_pipe.take() {
            // `--background`: the caller may be reading our output to its
            // end (`out=$(callvaultd ... --background)`); let it go.
            crate::logger::detach();
            let _ = p.write_all(b"R");
        }
    }

    pub fn stopping() {
        sd_notify("STOPPING=1");
    }

    /// Brackets a configuration reload (systemd's Type=notify-reload protocol):
    /// RELOADING=1 now, READY=1 once `reload` has run.
    pub fn reloading(reload: impl FnOnce() -> String) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        sd_notify(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
        let status = reload();
        sd_notify(&format!("READY=1\nSTATUS={status}"));
    }
}
