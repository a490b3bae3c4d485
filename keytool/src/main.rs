//! `callvault-keytool`: create callvault volumes and manage their keys.
#![forbid(unsafe_code)]

mod cli;
mod error;
mod init;
mod passphrase;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Init(a) => init::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("callvault-keytool: {}", f.message.replace('\n', "\n  "));
            ExitCode::from(f.code)
        }
    }
}
