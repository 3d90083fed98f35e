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
            eprintln!("careline: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
