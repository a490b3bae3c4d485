//! `callvault-keytool`: create callvault volumes and manage their keys.
#![forbid(unsafe_code)]

mod audit_cmd;
mod blackout_cmd;
mod cli;
mod dual_control;
mod error;
mod header_cmd;
mod init;
mod key_change;
mod new_secret;
mod passphrase;
mod passwd;
mod policy_cmd;
mod progress;
mod rotate_cmd;
mod slot_cmd;
mod unlock;

use std::process::ExitCode;

use clap::Parser;

fn filter(a: &cli::AuditFilterArgs) -> Result<callvault::journal::Filter, error::Failure> {
    audit_cmd::filter_with_outcome(
        a.user.as_deref(),
        a.path.as_deref(),
        a.event.as_deref(),
        a.outcome.as_deref(),
        a.since.as_deref(),
        a.until.as_deref(),
    )
    .map_err(|e| error::Failure::new(callvault::exitcode::USAGE, e))
}

fn format(a: &cli::AuditFilterArgs) -> callvault::journal::Format {
    a.format.parse().unwrap_or(callvault::journal::Format::Table)
}

fn fail(f: error::Failure) -> ExitCode {
    eprintln!("callvault-keytool: {}", f.message.replace('\n', "\n  "));
    ExitCode::from(f.code)
}

/// `audit show|verify|follow`.
fn audit(cmd: &cli::AuditCommand) -> ExitCode {
    use callvault::exitcode::FAILURE;
    let mut out = std::io::stdout().lock();
    match cmd {
        cli::AuditCommand::Show { volume, filter: f } => match filter(f).and_then(|flt| {
            audit_cmd::show(volume, &flt, format(f), &mut out).map_err(|e| error::Failure::new(FAILURE, e))
        }) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        cli::AuditCommand::Follow { volume, filter: f } => match filter(f).and_then(|flt| {
            audit_cmd::follow(volume, &flt, format(f), &mut out, &|| false).map_err(|e| error::Failure::new(FAILURE, e))
        }) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        cli::AuditCommand::Verify { volume, audit_key_file, since } => {
            let since = match since.as_deref().map(audit_cmd::parse_checkpoint).transpose() {
                Ok(s) => s,
                Err(e) => return fail(error::Failure::new(callvault::exitcode::USAGE, e)),
            };
            match audit_cmd::verify_since(volume, audit_key_file, since) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(error::Failure::new(e.exit_code() as u8, e)),
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Init(a) => init::run(a),
        cli::Command::Slot(cmd) => match cmd {
            cli::SlotCommand::List { volume, format } => slot_cmd::list(volume, format),
            cli::SlotCommand::Add(a) => slot_cmd::add(a),
            cli::SlotCommand::Remove { volume, label, unlock } => slot_cmd::remove(volume, label, unlock),
            cli::SlotCommand::Reset(a) => slot_cmd::reset(a),
            cli::SlotCommand::Flag { volume, label, no_self_change, unlock } => {
                slot_cmd::flag(volume, label, no_self_change == "on", unlock)
            }
        },
        cli::Command::Passwd(a) => passwd::run(a),
        cli::Command::RotateKey(a) => rotate_cmd::run(a),
        cli::Command::DualControl(cmd) => match cmd {
            cli::DualControlCommand::Enable { volume, threshold, labels, unlock } => {
                dual_control::enable(volume, *threshold, labels, unlock)
            }
            cli::DualControlCommand::Disable { volume, unlock } => dual_control::disable(volume, unlock),
        },
        cli::Command::Header(cmd) => match cmd {
            cli::HeaderCommand::Backup { volume, file } => header_cmd::backup(volume, file),
            cli::HeaderCommand::Restore { volume, file, unlock } => header_cmd::restore(volume, file, unlock),
        },
        cli::Command::Audit(cmd) => return audit(cmd),
        cli::Command::Blackout(cmd) => {
            use blackout_cmd::Action;
            let (action, paths) = match cmd {
                cli::BlackoutCommand::Start { paths } => (Action::Start, paths),
                cli::BlackoutCommand::Stop { paths } => (Action::Stop, paths),
                cli::BlackoutCommand::Status { paths } => (Action::Status, paths),
            };
            blackout_cmd::run(action, paths)
        }
        cli::Command::Policy(cli::PolicyCommand::Check { file }) => match policy_cmd::check(file) {
            Ok(line) => {
                println!("{line}");
                Ok(())
            }
            Err(line) => Err(error::Failure::new(policy_cmd::EXIT_INVALID, line)),
        },
        cli::Command::Policy(cli::PolicyCommand::Explain { file, user, groups, path, right }) => {
            match policy_cmd::explain(file, user, groups, path, right) {
                Ok((line, true)) => {
                    println!("{line}");
                    Ok(())
                }
                Ok((line, false)) => {
                    println!("{line}");
                    return ExitCode::from(policy_cmd::EXIT_DENIED);
                }
                Err(line) => Err(error::Failure::new(policy_cmd::EXIT_INVALID, line)),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(f),
    }
}
