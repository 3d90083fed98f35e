//! The `careline` command line: `serve`, `check`, `call`, `load`, `directory`, `stats`.
//!
//! Thin: each subcommand parses its arguments and calls into the library. `anyhow` lives here,
//! at the edge, and nowhere else.

mod check;
mod directory;
mod serve;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "careline",
    version,
    about = "IVR and call router for patient-portal help desks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Validate the configuration and prompts; list every problem.
    Check(check::CheckArgs),
    /// Patient directory tools: `careline directory import CSV --out FILE`.
    Directory(directory::DirectoryArgs),
    /// Place a test call the way Twilio would; prints the prompts heard.
    Call(crate::caller::CallArgs),
    /// Place many concurrent test calls and report latency, underruns and errors.
    Load(crate::load::LoadArgs),
    /// Show the live queues and agents of a running careline (`--watch` to keep it on screen).
    Stats(stats::StatsArgs),
}

/// Run the command line; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Directory(args) => directory::run(args),
        Command::Call(args) => run_async(crate::caller::run_cli(args)),
        Command::Load(args) => run_async(crate::load::run_cli(args)),
        Command::Stats(args) => run_async(stats::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("careline: {}", describe(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error` and its causes joined by `: `, as anyhow's `{:#}` joins them, leaving out a cause
/// whose text is already there: many errors name their cause in their own message ("cannot
/// listen on 127.0.0.1:8080: Address in use") and return it as their source as well.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn run_async(
    future: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(future)?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::describe;
    use crate::admin::access::AccessConfigError;
    use crate::server::StartError;

    #[test]
    fn an_error_wrapped_at_start_up_is_printed_once() {
        let error = anyhow::Error::from(StartError::from(AccessConfigError::TooShort(1)))
            .context("careline could not start");
        let text = describe(&error);
        assert_eq!(
            text.matches("has a token shorter than 16 characters")
                .count(),
            1,
            "{text}"
        );
        assert!(text.starts_with("careline could not start: CARELINE_ADMIN_TOKENS entry 1"));
    }

    #[test]
    fn a_cause_the_message_already_names_is_not_repeated() {
        let error = anyhow::Error::from(StartError::Listen {
            addr: "127.0.0.1:8080".to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use"),
        });
        let text = describe(&error);
        assert_eq!(text.matches("address in use").count(), 1, "{text}");
        assert!(
            text.contains("(is another server using that port?"),
            "{text}"
        );
    }

    #[test]
    fn wrappers_that_add_nothing_are_transparent() {
        let error = StartError::from(AccessConfigError::Malformed(2));
        assert_eq!(
            format!("{:#}", anyhow::Error::from(error)),
            AccessConfigError::Malformed(2).to_string(),
            "printed with every cause, as anyhow prints it, the text appears once"
        );
    }
}
