//! `careline directory import CSV --out FILE`: turn a patient export into the hashed directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::identity::{ImportOptions, Pepper, import_file};

#[derive(Debug, clap::Args)]
pub struct DirectoryArgs {
    #[command(subcommand)]
    pub command: DirectoryCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DirectoryCommand {
    /// Hash a patient CSV (header `patient_ref,dob,mrn,zip,ssn4`, dob as YYYY-MM-DD) into the
    /// directory file `[identity] directory` names. Keys every identifier with
    /// CARELINE_DIRECTORY_PEPPER; no plaintext identifier is written.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The patient export.
    pub csv: PathBuf,
    /// The directory file to write (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Leave out rows that cannot be imported (and list them) instead of refusing the import.
    #[arg(long)]
    pub skip_invalid: bool,
}

pub fn run(args: DirectoryArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DirectoryCommand::Import(args) => import(args),
    }
}

fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let pepper = Pepper::from_env()?;
    let options = ImportOptions {
        today: jiff::Zoned::now().date(),
        skip_invalid: args.skip_invalid,
    };
    let report = import_file(&args.csv, &args.out, &pepper, &options)
        .with_context(|| format!("importing {}", args.csv.display()))?;
    for problem in &report.skipped {
        eprintln!("skipped {problem}");
    }
    println!(
        "{}: {} patient(s) written{}",
        args.out.display(),
        report.imported,
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} row(s) skipped", report.skipped.len())
        }
    );
    Ok(ExitCode::SUCCESS)
}
