//! callvault: encrypted, access-controlled, audited storage for call recordings.
#![forbid(unsafe_code)]

pub mod error;
pub mod journal;
pub mod random;
pub mod secret;

pub use error::Error;
