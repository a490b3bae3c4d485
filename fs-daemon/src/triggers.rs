//! The thread that serves blackout triggers and drops the kernel's cached
//! copies of silenced pages.
//!
//! A trigger waits for the kernel to write a file's dirty pages back to the
//! daemon, and those writes are served by the FUSE threads: were a trigger
//! served on one of them, a few triggers at once could leave no thread to
//! serve the writes they wait for. So the FUSE threads only queue a trigger
//! (with its reply) here and go on; the kernel keeps the file's inode locked
//! until the reply, which is what makes the blackout's boundary exact.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use fuser::{INodeNo, Notifier, ReplyEmpty};
use log::{debug, warn};

use crate::vault::blackout::KernelCache;
use crate::vault::{Caller, Vault};

enum Work {
    Trigger { ino: u64, value: Vec<u8>, who: Caller, reply: ReplyEmpty },
    DropPages { ino: u64, off: u64, len: u64 },
}

/// Where the FUSE threads hand work to the trigger thread.
#[derive(Clone)]
pub struct Triggers(Sender<Work>);

/// The receiving end, until the mount exists and the thread can start.
pub struct PendingTriggers(Receiver<Work>);

pub fn queue() -> (Triggers, PendingTriggers) {
    let (tx, rx) = channel();
    (Triggers(tx), PendingTriggers(rx))
}

impl Triggers {
    /// Queues a trigger; its reply is sent by the trigger thread.
    pub fn trigger(&self, ino: u64, value: &[u8], who: Caller, reply: ReplyEmpty) {
        if let Err(e) = self.0.send(Work::Trigger { ino, value: value.to_vec(), who, reply }) {
            // Only after the thread ended (unmount): refuse the trigger.
            if let Work::Trigger { reply, .. } = e.0 {
                reply.error(fuser::Errno::from_i32(libc::EIO));
            }
        }
    }
}

/// The kernel's page cache, driven through the FUSE notifier.
struct NotifierCache {
    notifier: Notifier,
    later: Sender<Work>,
}

impl KernelCache for NotifierCache {
    fn write_back_and_drop(&self, ino: u64) -> std::io::Result<()> {
        // offset 0, length 0: the whole file. The kernel writes dirty pages
        // back (launder) before it drops them, and answers once done.
        match self.notifier.inval_inode(INodeNo(ino), 0, 0) {
            // The kernel does not hold the inode: it has no pages of it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    fn drop_soon(&self, ino: u64, off: u64, len: u64) {
        let _ = self.later.send(Work::DropPages { ino, off, len });
    }
}

/// Starts the trigger thread once the mount exists, and gives the vault the
/// way to the kernel's cache.
pub fn start(
    pending: PendingTriggers,
    triggers: &Triggers,
    notifier: Notifier,
    vault: Arc<Vault>,
) -> std::io::Result<()> {
    let cache = Arc::new(NotifierCache { notifier, later: triggers.0.clone() });
    vault.set_kernel_cache(cache.clone());
    std::thread::Builder::new().name("blackouts".into()).spawn(move || serve(pending.0, &cache, &vault)).map(drop)
}

fn serve(work: Receiver<Work>, cache: &NotifierCache, vault: &Vault) {
    for w in work {
        match w {
            Work::Trigger { ino, value, who, reply } => match vault.blackout_trigger(ino, &value, &who) {
                Ok(()) => reply.ok(),
                Err(e) => {
                    debug!("blackout trigger on inode {ino}: {e}");
                    reply.error(fuser::Errno::from_i32(e as i32));
                }
            },
            Work::DropPages { ino, off, len } => {
                let (off, len) = (i64::try_from(off).unwrap_or(i64::MAX), i64::try_from(len).unwrap_or(i64::MAX));
                if let Err(e) = cache.notifier.inval_inode(INodeNo(ino), off, len.max(1))
                    && e.raw_os_error() != Some(libc::ENOENT)
                {
                    warn!("inode {ino}: the kernel's copy of silenced pages could not be dropped: {e}");
                }
            }
        }
    }
}
