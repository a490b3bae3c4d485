//! `callvault-keytool`: create callvault volumes and manage their keys.
#![forbid(unsafe_code)]

mod cli;
mod error;
mod init;
mod passphrase;
mod policy_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Init(a) => init::run(a),
        cli::Command::Policy(cli::PolicyCommand::Check { file }) => match policy_cmd::check(file) {
            Ok(line) => {
                println!("{line}");
                Ok(())
            }
            Err(line) => Err(error::Failure::new(policy_cmd::EXIT_INVALID, line)),
        },
        cli::Command::Policy(cli::PolicyCommand::Explain {
            file,
            user,
            groups,
            path,
            right,
        }) => match policy_cmd::explain(file, user, groups, path, right) {
            Ok((line, true)) => {
                println!("{line}");
                Ok(())
            }
            Ok((line, false)) => {
                println!("{line}");
                return ExitCode::from(policy_cmd::EXIT_DENIED);
            }
            Err(line) => Err(error::Failure::new(policy_cmd::EXIT_INVALID, line)),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("callvault-keytool: {}", f.message.replace('\n', "\n  "));
            ExitCode::from(f.code)
        }
    }
}
