//! `careline directory import`: a patient CSV in, the hashed directory file out.
//!
//! The CSV's header names its columns: `patient_ref` and `dob` (YYYY-MM-DD) are required,
//! `mrn`, `zip`, `ssn4` optional, in any order (`patient_ref,dob,mrn,zip,ssn4` is the usual
//! export). Every identifier is validated and normalised exactly as keypad entry is
//! ([`super::claim`]), then only its keyed hash is written. A bad row is reported by row
//! number and column, never by content; by default any bad row refuses the whole import, so
//! no patient silently goes missing.
//!
//! The plaintext only lives in memory, in buffers wiped after use; the output is written to a
//! temporary file beside the target (owner-only permissions) and renamed into place, so a
//! failed import never leaves half a directory.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use super::claim::{ClaimError, DateOfBirth, SecondIdentifier};
use super::csv::{CsvError, CsvReader};
use super::directory::{PatientRef, PatientRefError};
use super::hashed_file::{FORMAT, HeaderLine, RecordLine};
use super::secret::{Pepper, SecretBytes};
use crate::config::Identifier;

/// How many row problems an error lists before summarising the rest.
const PROBLEMS_SHOWN: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Dates of birth after this are malformed.
    pub today: Date,
    /// Leave bad rows out (and report them) instead of refusing the import.
    pub skip_invalid: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Patients written to the directory.
    pub imported: usize,
    /// Rows left out (only with `skip_invalid`).
    pub skipped: Vec<RowProblem>,
}

/// What is wrong with one row. Never holds a value from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RowFault {
    #[error("{found} fields where the header has {expected}")]
    FieldCount { found: usize, expected: usize },
    #[error("patient_ref: {0}")]
    Ref(PatientRefError),
    #[error("patient_ref is the same as on row {first_row}")]
    DuplicateRef { first_row: usize },
    #[error("dob is empty")]
    MissingDob,
    #[error("{}: {error}", .column.name())]
    Identifier {
        column: Identifier,
        error: ClaimError,
    },
    #[error("no mrn, zip or ssn4: the patient could never verify by phone")]
    NoSecondIdentifier,
}

/// A bad row: its spreadsheet row number (the header is row 1) and what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("row {row}: {fault}")]
pub struct RowProblem {
    pub row: usize,
    pub fault: RowFault,
}

/// What is wrong with the header row. Never quotes it: a file without a header would have a
/// patient's identifiers there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    #[error("the file is empty")]
    Empty,
    #[error(
        "column {column} of the header is not one of patient_ref, dob, mrn, zip, ssn4 \
         (the first row must be the header)"
    )]
    UnknownColumn { column: usize },
    #[error("column {column} of the header repeats an earlier column name")]
    DuplicateColumn { column: usize },
    #[error("the header has no `{0}` column")]
    Missing(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the patient CSV {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the directory{}: {source}", describe_path(path.as_deref()))]
    Write {
        path: Option<PathBuf>,
        source: std::io::Error,
    },
    #[error("--out must not be the CSV itself")]
    OutputIsInput,
    #[error("the patient CSV cannot be read as CSV: {0}")]
    Csv(#[from] CsvError),
    #[error("the patient CSV's header is wrong: {0}")]
    Header(#[from] HeaderFault),
    #[error("the patient CSV has no patient rows")]
    NoPatients,
    #[error("{}", InvalidRows(.0))]
    InvalidRows(Vec<RowProblem>),
}

fn describe_path(path: Option<&Path>) -> String {
    path.map(|p| format!(" file {}", p.display()))
        .unwrap_or_default()
}

struct InvalidRows<'a>(&'a [RowProblem]);

impl fmt::Display for InvalidRows<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} row(s) of the patient CSV cannot be imported; nothing was written:",
            self.0.len()
        )?;
        for problem in self.0.iter().take(PROBLEMS_SHOWN) {
            writeln!(f, "  {problem}")?;
        }
        if self.0.len() > PROBLEMS_SHOWN {
            writeln!(f, "  ... and {} more", self.0.len() - PROBLEMS_SHOWN)?;
        }
        write!(
            f,
            "fix them in the export, or pass --skip-invalid to leave those patients out"
        )
    }
}

/// Which field of a row holds what.
struct Columns {
    count: usize,
    patient_ref: usize,
    dob: usize,
    seconds: Vec<(Identifier, usize)>,
}

fn columns(header: &[SecretBytes]) -> Result<Columns, HeaderFault> {
    let mut found: HashMap<&'static str, usize> = HashMap::new();
    for (index, cell) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(cell.expose()).to_ascii_lowercase();
        let known = ["patient_ref", "dob", "mrn", "zip", "ssn4"]
            .into_iter()
            .find(|known| *known == name)
            .ok_or(HeaderFault::UnknownColumn { column: index + 1 })?;
        if found.insert(known, index).is_some() {
            return Err(HeaderFault::DuplicateColumn { column: index + 1 });
        }
    }
    let required = |name| found.get(name).copied().ok_or(HeaderFault::Missing(name));
    Ok(Columns {
        count: header.len(),
        patient_ref: required("patient_ref")?,
        dob: required("dob")?,
        seconds: Identifier::SECOND
            .into_iter()
            .filter_map(|kind| found.get(kind.name()).map(|&index| (kind, index)))
            .collect(),
    })
}

/// Turn the CSV bytes into directory lines written to `out`. With invalid rows and no
/// `skip_invalid`, the error lists them and `out` may hold part of a directory
/// ([`import_file`] discards it).
pub fn import(
    csv: &[u8],
    pepper: &Pepper,
    options: &ImportOptions,
    out: &mut impl Write,
) -> Result<ImportReport, ImportError> {
    let write_error = |source| ImportError::Write { path: None, source };
    let mut reader = CsvReader::new(csv);
    let mut fields = Vec::new();
    if reader.next_record(&mut fields)?.is_none() {
        return Err(HeaderFault::Empty.into());
    }
    let columns = columns(&fields)?;

    let header = HeaderLine {
        format: FORMAT.to_owned(),
        pepper_check: pepper.check_value(),
    };
    serde_json::to_writer(&mut *out, &header).map_err(|e| write_error(e.into()))?;
    out.write_all(b"\n").map_err(write_error)?;

    let mut problems = Vec::new();
    let mut first_row_of: HashMap<String, usize> = HashMap::new();
    let mut imported = 0;
    while let Some(row) = reader.next_record(&mut fields)? {
        match record_line(&fields, &columns, pepper, options.today) {
            Err(fault) => problems.push(RowProblem { row, fault }),
            Ok(line) => match first_row_of.entry(line.patient_ref.clone()) {
                MapEntry::Occupied(first) => problems.push(RowProblem {
                    row,
                    fault: RowFault::DuplicateRef {
                        first_row: *first.get(),
                    },
                }),
                MapEntry::Vacant(slot) => {
                    slot.insert(row);
                    if problems.is_empty() || options.skip_invalid {
                        serde_json::to_writer(&mut *out, &line)
                            .map_err(|e| write_error(e.into()))?;
                        out.write_all(b"\n").map_err(write_error)?;
                    }
                    imported += 1;
                }
            },
        }
    }
    if !problems.is_empty() && !options.skip_invalid {
        return Err(ImportError::InvalidRows(problems));
    }
    if imported == 0 {
        return Err(ImportError::NoPatients);
    }
    Ok(ImportReport {
        imported,
        skipped: problems,
    })
}

fn record_line(
    fields: &[SecretBytes],
    columns: &Columns,
    pepper: &Pepper,
    today: Date,
) -> Result<RecordLine, RowFault> {
    if fields.len() != columns.count {
        return Err(RowFault::FieldCount {
            found: fields.len(),
            expected: columns.count,
        });
    }
    let text = |index: usize| std::str::from_utf8(fields[index].expose());
    let patient_ref =
        text(columns.patient_ref).map_err(|_| RowFault::Ref(PatientRefError::BadCharacter))?;
    let patient_ref = PatientRef::new(patient_ref).map_err(RowFault::Ref)?;

    let dob = text(columns.dob).map_err(|_| RowFault::Identifier {
        column: Identifier::Dob,
        error: ClaimError::DobNotIso,
    })?;
    if dob.is_empty() {
        return Err(RowFault::MissingDob);
    }
    let dob = DateOfBirth::from_iso(dob, today).map_err(|error| RowFault::Identifier {
        column: Identifier::Dob,
        error,
    })?;

    let mut line = RecordLine {
        patient_ref: patient_ref.as_str().to_owned(),
        dob: dob.hash(pepper).to_hex(),
        mrn: None,
        zip: None,
        ssn4: None,
    };
    for &(kind, index) in &columns.seconds {
        let bad = |error| RowFault::Identifier {
            column: kind,
            error,
        };
        let value = text(index).map_err(|_| bad(ClaimError::NotDigits(kind)))?;
        if value.is_empty() {
            continue;
        }
        let hash = SecondIdentifier::from_export(kind, value)
            .map_err(bad)?
            .hash(pepper)
            .to_hex();
        match kind {
            Identifier::Mrn => line.mrn = Some(hash),
            Identifier::Zip => line.zip = Some(hash),
            Identifier::Ssn4 => line.ssn4 = Some(hash),
            Identifier::Dob => {}
        }
    }
    if line.mrn.is_none() && line.zip.is_none() && line.ssn4.is_none() {
        return Err(RowFault::NoSecondIdentifier);
    }
    Ok(line)
}

/// Import the CSV at `csv_path` into the directory file `out_path` (created or replaced
/// atomically, parent directories created, owner-only permissions on Unix).
pub fn import_file(
    csv_path: &Path,
    out_path: &Path,
    pepper: &Pepper,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let same_file = match (csv_path.canonicalize(), out_path.canonicalize()) {
        (Ok(csv), Ok(out)) => csv == out,
        _ => false,
    };
    if same_file {
        return Err(ImportError::OutputIsInput);
    }
    let csv = SecretBytes::new(std::fs::read(csv_path).map_err(|source| ImportError::Read {
        path: csv_path.to_owned(),
        source,
    })?);

    let write_error = |source| ImportError::Write {
        path: Some(out_path.to_owned()),
        source,
    };
    if let Some(parent) = out_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let temporary = temporary_path(out_path);
    let file = create_private(&temporary).map_err(write_error)?;
    let written = write_directory(file, csv.expose(), pepper, options).and_then(|report| {
        std::fs::rename(&temporary, out_path).map_err(write_error)?;
        Ok(report)
    });
    if written.is_err() {
        // Best effort: the temporary holds only hashes, and the error that matters is the one
        // being returned.
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(|error| match error {
        ImportError::Write { path: None, source } => write_error(source),
        other => other,
    })
}

fn write_directory(
    file: std::fs::File,
    csv: &[u8],
    pepper: &Pepper,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let write_error = |source| ImportError::Write { path: None, source };
    let mut out = std::io::BufWriter::new(file);
    let report = import(csv, pepper, options, &mut out)?;
    let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.sync_all().map_err(write_error)?;
    Ok(report)
}

fn temporary_path(out_path: &Path) -> PathBuf {
    let name = out_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "directory".to_owned());
    out_path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::civil::date;

    use super::*;
    use crate::identity::claim::Claim;
    use crate::identity::directory::Verification;
    use crate::identity::hashed_file::HashedFileDirectory;

    const OPTIONS: ImportOptions = ImportOptions {
        today: date(2026, 6, 1),
        skip_invalid: false,
    };

    fn pepper() -> Pepper {
        Pepper::new("0123456789abcdef0123456789abcdef").expect("long enough")
    }

    fn run(csv: &str, options: &ImportOptions) -> Result<(ImportReport, String), ImportError> {
        let mut out = Vec::new();
        let report = import(csv.as_bytes(), &pepper(), options, &mut out)?;
        Ok((report, String::from_utf8(out).expect("JSON is UTF-8")))
    }

    const GOOD: &str = "patient_ref,dob,mrn,zip,ssn4\n\
                        P000001,1970-01-31,00123456,60601,1234\n\
                        P000002,1985-07-04,,\"02115-0001\",\n";

    #[test]
    fn a_good_export_becomes_a_directory_that_verifies_its_patients() {
        let (report, text) = run(GOOD, &OPTIONS).expect("imports");
        assert_eq!(report.imported, 2);
        assert!(report.skipped.is_empty());
        assert_eq!(text.lines().count(), 3);

        let directory =
            HashedFileDirectory::read(text.as_bytes(), Arc::new(pepper())).expect("loads");
        let claim = Claim::from_keyed(Identifier::Zip, "07041985", "02115", OPTIONS.today)
            .expect("well-formed");
        assert!(matches!(
            directory.check(&claim),
            Verification::Match { .. }
        ));
        let claim = Claim::from_keyed(Identifier::Mrn, "01311970", "123456", OPTIONS.today)
            .expect("well-formed");
        assert!(matches!(
            directory.check(&claim),
            Verification::Match { .. }
        ));
    }

    #[test]
    fn no_identifier_is_written_in_plain_text() {
        let (_, text) = run(GOOD, &OPTIONS).expect("imports");
        for plain in ["1970", "01-31", "123456", "60601", "1234", "02115", "1985"] {
            assert!(!text.contains(plain), "{plain} leaked into {text}");
        }
        assert!(text.contains("\"ref\":\"P000001\""));
    }

    #[test]
    fn missing_identifiers_are_left_out_of_the_line() {
        let (_, text) = run(GOOD, &OPTIONS).expect("imports");
        let second = text.lines().nth(2).expect("second patient");
        assert!(second.contains("\"zip\""));
        assert!(!second.contains("\"mrn\""));
        assert!(!second.contains("\"ssn4\""));
    }

    #[test]
    fn columns_may_come_in_any_order_and_optional_ones_may_be_absent() {
        let csv = "zip,DOB,Patient_Ref\n60601,1970-01-31,P1\n";
        let (report, _) = run(csv, &OPTIONS).expect("imports");
        assert_eq!(report.imported, 1);
    }

    const BAD: &str = "patient_ref,dob,mrn,zip,ssn4\n\
                       P1,1970-01-31,,60601,\n\
                       P2,1970-02-30,,60601,\n\
                       P3,01/31/1970,,60601,\n\
                       P4,1970-01-31,,6060,\n\
                       P1,1980-01-01,,60601,\n\
                       P6,1980-01-01,,,\n\
                       P7,1980-01-01,12a45,,\n\
                       P 8,1980-01-01,,60601,\n\
                       P9,1980-01-01\n\
                       P10,,,60601,\n\
                       P11,1990-12-12,,60601,987654321\n";

    #[test]
    fn bad_rows_are_named_by_row_and_column_and_refuse_the_import() {
        let Err(ImportError::InvalidRows(problems)) = run(BAD, &OPTIONS) else {
            panic!("bad rows refuse the import");
        };
        let described: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            described,
            [
                "row 3: dob: the date of birth is not a real calendar date",
                "row 4: dob: the date of birth must be written YYYY-MM-DD",
                "row 5: zip: the zip must be 5 digits",
                "row 6: patient_ref is the same as on row 2",
                "row 7: no mrn, zip or ssn4: the patient could never verify by phone",
                "row 8: mrn: the mrn must be digits only",
                "row 9: patient_ref: the patient reference may hold only letters, digits and . _ : -",
                "row 10: 2 fields where the header has 5",
                "row 11: dob is empty",
                "row 12: ssn4: the ssn4 must be 4 digits",
            ]
        );
    }

    #[test]
    fn the_import_error_never_echoes_a_value() {
        let error = run(BAD, &OPTIONS).expect_err("refused");
        let message = error.to_string();
        for value in ["1970", "01/31", "6060", "12a45", "987654321", "P 8", "P11"] {
            assert!(!message.contains(value), "{value} in {message}");
        }
        assert!(message.contains("--skip-invalid"));
    }

    #[test]
    fn skip_invalid_imports_the_good_rows_and_reports_the_rest() {
        let options = ImportOptions {
            skip_invalid: true,
            ..OPTIONS
        };
        let (report, text) = run(BAD, &options).expect("imports what it can");
        assert_eq!(report.imported, 1);
        assert_eq!(report.skipped.len(), 10);
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn a_header_with_an_unknown_column_is_refused_without_quoting_it() {
        let error = run("P000001,1970-01-31,60601\n", &OPTIONS).expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("column 1"), "{message}");
        assert!(
            !message.contains("P000001") && !message.contains("1970"),
            "{message}"
        );
    }

    #[test]
    fn a_header_needs_patient_ref_and_dob() {
        assert!(matches!(
            run("patient_ref,zip\nP1,60601\n", &OPTIONS),
            Err(ImportError::Header(HeaderFault::Missing("dob")))
        ));
        assert!(matches!(
            run("dob,dob,zip\n", &OPTIONS),
            Err(ImportError::Header(HeaderFault::DuplicateColumn {
                column: 2
            }))
        ));
        assert!(matches!(
            run("", &OPTIONS),
            Err(ImportError::Header(HeaderFault::Empty))
        ));
        assert!(matches!(
            run("patient_ref,dob,zip\n", &OPTIONS),
            Err(ImportError::NoPatients)
        ));
    }
}
