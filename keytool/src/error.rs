//! The keytool's failure type: a one-line message and an exit code.

use std::fmt;

use callvault::exitcode;

#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl fmt::Display) -> Self {
        Failure { code, message: message.to_string() }
    }
}

impl From<callvault::Error> for Failure {
    fn from(e: callvault::Error) -> Self {
        Failure::new(exitcode::for_error(&e), e)
    }
}
