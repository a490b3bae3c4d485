//! `callvaultd`: serves an encrypted callvault volume through FUSE.
#![deny(unsafe_code)]

mod cli;
mod fuse;
mod logger;
mod notify;
mod run;
mod sys;
mod sys_handles;
mod triggers;
mod unlock;
mod vault;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    logger::init(args.verbose);
    match run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            eprintln!("callvaultd: {}", fatal.message.replace('\n', "\n  "));
            ExitCode::from(fatal.code)
        }
    }
}
