//! `careline check`: print every problem in the configuration; non-zero exit on errors.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The configuration file.
    #[arg(long, default_value = "config/careline.toml")]
    pub config: PathBuf,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let report = match crate::config::load(&args.config) {
        Ok(loaded) => crate::config::check::check(&loaded),
        Err(report) => report,
    };
    print!("{report}");
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    if errors > 0 {
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            args.config.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{}: OK ({warnings} warning(s))", args.config.display());
    Ok(ExitCode::SUCCESS)
}
