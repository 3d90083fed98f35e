//! The hashed directory file and the [`Directory`] that reads it.
//!
//! JSON lines, written by `careline directory import`:
//!
//! ```text
//! {"format":"careline-directory/1","pepper_check":"<hex>"}
//! {"ref":"P000123","dob":"<hex>","mrn":"<hex>","zip":"<hex>","ssn4":"<hex>"}
//! ```
//!
//! The first line says what the file is and carries HMAC(pepper, a fixed label), so a file made
//! with another pepper is refused at start-up instead of failing every caller (and counting
//! their failures towards lockouts). Each further line is one patient; identifiers are
//! HMAC-SHA256(pepper, `kind:value`) of the normal forms in [`super::claim`]; a missing one
//! is simply absent.
//!
//! In memory, records are grouped by date-of-birth hash: a lookup is one hash-map probe plus a
//! constant-time comparison per record sharing that date of birth.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::claim::Claim;
use super::directory::{Directory, DirectoryError, PatientRef, Verification};
use super::secret::{IdentifierHash, Pepper, RecordPseudonym};
use crate::config::Identifier;

/// The `format` of the first line.
pub const FORMAT: &str = "careline-directory/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderLine {
    pub format: String,
    pub pepper_check: String,
}

#[derive(Serialize)]
pub(crate) struct RecordLine {
    #[serde(rename = "ref")]
    pub patient_ref: String,
    pub dob: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssn4: Option<String>,
}

/// [`RecordLine`] as read: borrowed from the line where JSON allows, as it always does for
/// what import writes (hex and plain refs have nothing to unescape).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRecord<'a> {
    #[serde(rename = "ref", borrow)]
    patient_ref: Cow<'a, str>,
    #[serde(borrow)]
    dob: Cow<'a, str>,
    #[serde(default, borrow)]
    mrn: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    zip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ssn4: Option<Cow<'a, str>>,
}

/// A directory file cannot be used. Names the line, never its content.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the directory file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the directory file does not start with a careline directory header (line 1); make it \
         with `careline directory import CSV --out FILE`"
    )]
    NotADirectory,
    #[error(
        "the directory file was made with a different CARELINE_DIRECTORY_PEPPER; set the pepper \
         it was imported with, or import the CSV again with this one"
    )]
    WrongPepper,
    #[error("line {line} of the directory file is not a patient record ({problem})")]
    BadLine { line: usize, problem: &'static str },
    #[error("line {line} of the directory file repeats the patient_ref of line {first}")]
    DuplicateRef { line: usize, first: usize },
}

/// One patient, as kept in memory.
struct Record {
    patient_ref: PatientRef,
    pseudonym: RecordPseudonym,
    mrn: Option<IdentifierHash>,
    zip: Option<IdentifierHash>,
    ssn4: Option<IdentifierHash>,
}

impl Record {
    fn second(&self, kind: Identifier) -> Option<&IdentifierHash> {
        match kind {
            Identifier::Mrn => self.mrn.as_ref(),
            Identifier::Zip => self.zip.as_ref(),
            Identifier::Ssn4 => self.ssn4.as_ref(),
            Identifier::Dob => None,
        }
    }
}

/// Patients from a hashed directory file, checked in memory.
pub struct HashedFileDirectory {
    pepper: Arc<Pepper>,
    by_dob: HashMap<IdentifierHash, Vec<Record>>,
    records: usize,
    /// How many records hold each second identifier (`careline serve` warns when the
    /// configured one is rare or absent).
    with_mrn: usize,
    with_zip: usize,
    with_ssn4: usize,
}

impl HashedFileDirectory {
    /// Read the file at `path`, made with `pepper`.
    pub fn load(path: &Path, pepper: Arc<Pepper>) -> Result<HashedFileDirectory, LoadError> {
        let read_error = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        HashedFileDirectory::read(std::io::BufReader::new(file), pepper).map_err(
            |error| match error {
                LoadError::Read { source, .. } => read_error(source),
                other => other,
            },
        )
    }

    /// Read a directory from any reader (the path in a read error is empty).
    pub fn read(
        reader: impl BufRead,
        pepper: Arc<Pepper>,
    ) -> Result<HashedFileDirectory, LoadError> {
        let mut lines = reader.lines();
        let header = match lines.next() {
            Some(line) => line.map_err(|source| LoadError::Read {
                path: PathBuf::new(),
                source,
            })?,
            None => return Err(LoadError::NotADirectory),
        };
        let header: HeaderLine =
            serde_json::from_str(&header).map_err(|_| LoadError::NotADirectory)?;
        if header.format != FORMAT {
            return Err(LoadError::NotADirectory);
        }
        if header.pepper_check != pepper.check_value() {
            return Err(LoadError::WrongPepper);
        }

        let mut directory = HashedFileDirectory {
            pepper,
            by_dob: HashMap::new(),
            records: 0,
            with_mrn: 0,
            with_zip: 0,
            with_ssn4: 0,
        };
        let mut first_line_of: HashMap<String, usize> = HashMap::new();
        for (index, line) in lines.enumerate() {
            let number = index + 2;
            let line = line.map_err(|source| LoadError::Read {
                path: PathBuf::new(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |problem| LoadError::BadLine {
                line: number,
                problem,
            };
            let parsed: StoredRecord =
                serde_json::from_str(&line).map_err(|_| bad("not the expected JSON object"))?;
            let patient_ref =
                PatientRef::new(parsed.patient_ref).map_err(|_| bad("unusable ref"))?;
            match first_line_of.entry(patient_ref.as_str().to_owned()) {
                MapEntry::Occupied(first) => {
                    return Err(LoadError::DuplicateRef {
                        line: number,
                        first: *first.get(),
                    });
                }
                MapEntry::Vacant(slot) => {
                    slot.insert(number);
                }
            }
            let hash = |text: Option<Cow<str>>, problem| match text {
                None => Ok(None),
                Some(text) => IdentifierHash::from_hex(&text)
                    .map(Some)
                    .ok_or(bad(problem)),
            };
            let dob = hash(Some(parsed.dob), "dob is not a 64-digit hex hash")?
                .ok_or(bad("dob is missing"))?;
            let record = Record {
                pseudonym: directory.pepper.pseudonym(patient_ref.as_str()),
                patient_ref,
                mrn: hash(parsed.mrn, "mrn is not a 64-digit hex hash")?,
                zip: hash(parsed.zip, "zip is not a 64-digit hex hash")?,
                ssn4: hash(parsed.ssn4, "ssn4 is not a 64-digit hex hash")?,
            };
            directory.records += 1;
            directory.with_mrn += usize::from(record.mrn.is_some());
            directory.with_zip += usize::from(record.zip.is_some());
            directory.with_ssn4 += usize::from(record.ssn4.is_some());
            directory.by_dob.entry(dob).or_default().push(record);
        }
        Ok(directory)
    }

    /// Patients in the directory.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// How many patients have `kind` on file (all of them for `dob`).
    pub fn count_with(&self, kind: Identifier) -> usize {
        match kind {
            Identifier::Dob => self.records,
            Identifier::Mrn => self.with_mrn,
            Identifier::Zip => self.with_zip,
            Identifier::Ssn4 => self.with_ssn4,
        }
    }

    /// The lookup itself, without the async wrapper.
    pub fn check(&self, claim: &Claim) -> Verification {
        let kind = claim.second().kind();
        let Some(same_dob) = self.by_dob.get(&claim.dob().hash(&self.pepper)) else {
            return Verification::NoMatch {
                claimed_records: Vec::new(),
            };
        };
        let second = claim.second().hash(&self.pepper);
        let mut matched: Option<&Record> = None;
        let mut matches = 0usize;
        // Every record with this date of birth is compared, match or not, so the time taken
        // does not say which one matched.
        for record in same_dob {
            if record
                .second(kind)
                .is_some_and(|on_file| on_file.ct_matches(&second))
            {
                matches += 1;
                matched = Some(record);
            }
        }
        match (matches, matched) {
            (1, Some(record)) => Verification::Match {
                patient_ref: record.patient_ref.clone(),
                record: record.pseudonym.clone(),
            },
            (0, _) => Verification::NoMatch {
                claimed_records: same_dob
                    .iter()
                    .filter(|record| record.second(kind).is_some())
                    .map(|record| record.pseudonym.clone())
                    .collect(),
            },
            _ => Verification::Ambiguous,
        }
    }
}

#[async_trait]
impl Directory for HashedFileDirectory {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn verify(&self, _call_sid: &str, claim: &Claim) -> Result<Verification, DirectoryError> {
        Ok(self.check(claim))
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::{Date, date};

    use super::*;
    use crate::identity::claim::{DateOfBirth, SecondIdentifier};

    const TODAY: Date = date(2026, 6, 1);

    fn pepper() -> Arc<Pepper> {
        Arc::new(Pepper::new("0123456789abcdef0123456789abcdef").expect("long enough"))
    }

    fn line(
        pepper: &Pepper,
        patient_ref: &str,
        dob: &str,
        zip: Option<&str>,
        mrn: Option<&str>,
    ) -> String {
        let dob = DateOfBirth::from_iso(dob, TODAY)
            .expect("valid")
            .hash(pepper);
        let second = |kind, value: Option<&str>| {
            value.map(|v| {
                SecondIdentifier::from_keyed(kind, v)
                    .expect("valid")
                    .hash(pepper)
                    .to_hex()
            })
        };
        serde_json::to_string(&RecordLine {
            patient_ref: patient_ref.to_owned(),
            dob: dob.to_hex(),
            mrn: second(Identifier::Mrn, mrn),
            zip: second(Identifier::Zip, zip),
            ssn4: None,
        })
        .expect("serialisable")
    }

    fn header(pepper: &Pepper) -> String {
        serde_json::to_string(&HeaderLine {
            format: FORMAT.to_owned(),
            pepper_check: pepper.check_value(),
        })
        .expect("serialisable")
    }

    fn directory(lines: &[String]) -> Result<HashedFileDirectory, LoadError> {
        let pepper = pepper();
        let mut text = header(&pepper);
        for line in lines {
            text.push('\n');
            text.push_str(line);
        }
        HashedFileDirectory::read(text.as_bytes(), pepper)
    }

    fn sample() -> HashedFileDirectory {
        let p = pepper();
        directory(&[
            line(&p, "P1", "1970-01-31", Some("60601"), Some("1234")),
            line(&p, "P2", "1985-07-04", Some("02115"), None),
            line(&p, "TWIN_A", "2001-03-15", Some("10001"), Some("5551")),
            line(&p, "TWIN_B", "2001-03-15", Some("10001"), Some("5552")),
            line(&p, "P5", "1985-07-04", None, Some("777777")),
        ])
        .expect("valid directory")
    }

    fn claim(kind: Identifier, dob: &str, second: &str) -> Claim {
        Claim::from_keyed(kind, dob, second, TODAY).expect("well-formed claim")
    }

    #[test]
    fn both_identifiers_matching_one_record_verifies_it() {
        let verification = sample().check(&claim(Identifier::Zip, "01311970", "60601"));
        assert_eq!(
            verification,
            Verification::Match {
                patient_ref: PatientRef::new("P1").expect("valid"),
                record: pepper().pseudonym("P1"),
            }
        );
    }

    #[test]
    fn the_configured_second_identifier_is_the_one_compared() {
        let directory = sample();
        assert!(matches!(
            directory.check(&claim(Identifier::Mrn, "01311970", "0001234")),
            Verification::Match { .. }
        ));
        assert!(matches!(
            directory.check(&claim(Identifier::Mrn, "01311970", "60601")),
            Verification::NoMatch { .. }
        ));
    }

    #[test]
    fn a_wrong_second_identifier_counts_against_the_record_with_that_birthday() {
        assert_eq!(
            sample().check(&claim(Identifier::Zip, "01311970", "60602")),
            Verification::NoMatch {
                claimed_records: vec![pepper().pseudonym("P1")]
            }
        );
    }

    #[test]
    fn an_unknown_date_of_birth_names_no_record() {
        assert_eq!(
            sample().check(&claim(Identifier::Zip, "02011970", "60601")),
            Verification::NoMatch {
                claimed_records: vec![]
            }
        );
    }

    #[test]
    fn a_failure_counts_against_every_record_sharing_the_birthday_that_has_the_identifier() {
        let directory = sample();
        let Verification::NoMatch { claimed_records } =
            directory.check(&claim(Identifier::Mrn, "03152001", "9999"))
        else {
            panic!("a wrong MRN does not match");
        };
        let mut expected = vec![pepper().pseudonym("TWIN_A"), pepper().pseudonym("TWIN_B")];
        expected.sort();
        let mut claimed_records = claimed_records;
        claimed_records.sort();
        assert_eq!(claimed_records, expected);

        // P2 shares P5's birthday but has no MRN on file: an MRN guess cannot reach it.
        assert_eq!(
            directory.check(&claim(Identifier::Mrn, "07041985", "9999")),
            Verification::NoMatch {
                claimed_records: vec![pepper().pseudonym("P5")]
            }
        );
    }

    #[test]
    fn twins_at_one_zip_are_ambiguous_but_their_mrns_tell_them_apart() {
        let directory = sample();
        assert_eq!(
            directory.check(&claim(Identifier::Zip, "03152001", "10001")),
            Verification::Ambiguous
        );
        assert!(matches!(
            directory.check(&claim(Identifier::Mrn, "03152001", "5552")),
            Verification::Match { record, .. } if record == pepper().pseudonym("TWIN_B")
        ));
    }

    #[test]
    fn counts_say_which_identifiers_are_on_file() {
        let directory = sample();
        assert_eq!(directory.len(), 5);
        assert_eq!(directory.count_with(Identifier::Zip), 4);
        assert_eq!(directory.count_with(Identifier::Mrn), 4);
        assert_eq!(directory.count_with(Identifier::Ssn4), 0);
    }

    #[test]
    fn a_file_made_with_another_pepper_is_refused() {
        let other = Pepper::new("another-pepper-another-pepper-0000").expect("long enough");
        let text = header(&other);
        assert!(matches!(
            HashedFileDirectory::read(text.as_bytes(), pepper()),
            Err(LoadError::WrongPepper)
        ));
    }

    #[test]
    fn a_file_without_the_header_is_refused() {
        let text = line(&pepper(), "P1", "1970-01-31", None, None);
        assert!(matches!(
            HashedFileDirectory::read(text.as_bytes(), pepper()),
            Err(LoadError::NotADirectory)
        ));
        assert!(matches!(
            HashedFileDirectory::read(&b""[..], pepper()),
            Err(LoadError::NotADirectory)
        ));
    }

    #[test]
    fn a_bad_line_is_named_by_number_without_its_content() {
        let p = pepper();
        let error = directory(&[
            line(&p, "P1", "1970-01-31", None, None),
            "{\"ref\":\"P2\",\"dob\":\"19700131\"}".to_owned(),
        ])
        .err()
        .expect("a plaintext dob is refused");
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(!message.contains("19700131"), "{message}");
        assert!(!message.contains("P2"), "{message}");
    }

    #[test]
    fn unknown_fields_and_garbage_are_bad_lines() {
        for bad in [
            "{\"ref\":\"P2\",\"dob\":\"00\",\"name\":\"Jo\"}",
            "not json",
            "[1,2]",
        ] {
            let error = directory(&[bad.to_owned()]).err().expect("refused");
            assert!(
                matches!(error, LoadError::BadLine { line: 2, .. }),
                "{error}"
            );
        }
        let missing_dob = directory(&["{\"ref\":\"P2\"}".to_owned()])
            .err()
            .expect("refused");
        assert!(matches!(missing_dob, LoadError::BadLine { line: 2, .. }));
    }

    #[test]
    fn a_repeated_ref_is_refused_naming_both_lines() {
        let p = pepper();
        let error = directory(&[
            line(&p, "P1", "1970-01-31", None, None),
            line(&p, "P1", "1980-01-31", None, None),
        ])
        .err()
        .expect("refused");
        assert!(matches!(
            error,
            LoadError::DuplicateRef { line: 3, first: 2 }
        ));
    }
}
