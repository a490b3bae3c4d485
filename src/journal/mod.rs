//! The audit journal: every access recorded, append-only, hash-chained and forward-securely sealed.
//!
//! Layout of `VOLUME/audit/`, record fields, the chain and seal
//! construction, key files and verify messages: see `docs/AUDIT.md`.

mod actor;
mod chain;
mod checkpoint;
mod error;
mod intents;
mod keyfile;
mod lock;
mod query;
mod reader;
mod record;
mod recover;
mod requests;
mod seal;
mod segment;
mod syslog;
pub mod time;
mod verify;
mod writer;

pub use actor::{Actor, Login, PAN_KEPT_DIGITS, mask_pans, uid_of, user_name};
pub use chain::{Hash, line_hash, to_hex};
pub use checkpoint::Checkpoint;
pub use error::JournalError;
pub use intents::{DanglingIntent, DanglingIntents, INTENT_SCAN_SEGMENTS, MAX_DANGLING, dangling_intents};
pub use keyfile::{AUDITOR_KEY_MAGIC, AuditorKey, SEAL_KEY_FILE, SEAL_KEY_MAGIC};
pub use lock::{LOCK_FILE, writer_is_live};
pub use query::{Filter, Format, Prefilter, render_header, render_record};
pub use reader::{LineInfo, Lines, Tail, records};
pub use record::{Detail, Event, EventKind, Outcome, Record, errno_name};
pub use requests::{REQUESTS_DIR, write_request};
pub use segment::{MAX_LINE, Segment, list_segments, parse_segment_name, segment_name};
pub use syslog::SyslogOptions;
pub use verify::{
    EXIT_CANNOT_VERIFY, EXIT_INCOMPLETE, EXIT_OK, EXIT_ROLLED_BACK, EXIT_TAMPERED, EXIT_WRONG_KEY, FUTURE_TOLERANCE,
    Problem, ProblemKind, VerifyError, VerifyReport, verify, verify_since,
};
pub use writer::{
    DEFAULT_EPOCH_DURATION, DEFAULT_EPOCH_RECORDS, DEFAULT_SEGMENT_SIZE, Journal, JournalOptions, SegmentFinished,
    init_journal,
};

// Reached by `crate::fuzzing` (the fuzz targets and the test replaying their corpora).
pub(crate) use recover::recover;
pub(crate) use requests::pending;
pub(crate) use segment::last_line;

#[cfg(test)]
mod tests;
