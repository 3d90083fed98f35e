//! The shipped example patient CSV, imported and loaded as `careline serve` would, verifies the
//! patients it lists and nobody else; the file on disk holds no identifier.

use std::path::Path;
use std::sync::Arc;

use careline::config::Identifier;
use careline::identity::{
    Claim, HashedFileDirectory, ImportOptions, LoadError, Pepper, Verification, import_file,
};
use jiff::civil::date;

const OPTIONS: ImportOptions = ImportOptions {
    today: date(2026, 6, 1),
    skip_invalid: false,
};

fn pepper() -> Arc<Pepper> {
    Arc::new(Pepper::new("example-pepper-for-tests-0123456789abcdef").expect("long enough"))
}

struct Imported {
    _dir: tempfile::TempDir,
    text: String,
    directory: HashedFileDirectory,
}

fn import_example() -> Imported {
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/patients.example.csv");
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("var/directory.jsonl");
    let pepper = pepper();
    let report = import_file(&csv, &out, &pepper, &OPTIONS).expect("the example imports");
    assert_eq!(report.imported, 20);
    let directory = HashedFileDirectory::load(&out, pepper).expect("the directory loads");
    let text = std::fs::read_to_string(&out).expect("readable");
    Imported {
        _dir: dir,
        text,
        directory,
    }
}

fn claim(kind: Identifier, dob: &str, second: &str) -> Claim {
    Claim::from_keyed(kind, dob, second, OPTIONS.today).expect("well-formed claim")
}

#[test]
fn a_listed_patient_verifies_with_dob_and_any_identifier_on_file() {
    let imported = import_example();
    for (kind, second) in [
        (Identifier::Zip, "60601"),
        (Identifier::Mrn, "482913"),
        (Identifier::Mrn, "00482913"),
        (Identifier::Ssn4, "4821"),
    ] {
        match imported.directory.check(&claim(kind, "03121948", second)) {
            Verification::Match {
                patient_ref,
                record,
            } => {
                assert_eq!(patient_ref.as_str(), "P000101");
                assert_eq!(record, pepper().pseudonym("P000101"));
            }
            other => panic!("{kind:?} did not verify P000101: {other:?}"),
        }
    }
}

#[test]
fn a_wrong_identifier_names_the_claimed_record_for_lockout() {
    let imported = import_example();
    assert_eq!(
        imported
            .directory
            .check(&claim(Identifier::Ssn4, "02281961", "6621")),
        Verification::NoMatch {
            claimed_records: vec![pepper().pseudonym("P000104")]
        }
    );
}

#[test]
fn a_patient_without_that_identifier_on_file_cannot_verify_with_it() {
    let imported = import_example();
    assert_eq!(
        imported
            .directory
            .check(&claim(Identifier::Ssn4, "07041957", "0000")),
        Verification::NoMatch {
            claimed_records: vec![]
        }
    );
}

#[test]
fn the_example_twins_share_a_zip_but_not_an_mrn() {
    let imported = import_example();
    assert_eq!(
        imported
            .directory
            .check(&claim(Identifier::Zip, "09192001", "60605")),
        Verification::Ambiguous
    );
    assert!(matches!(
        imported.directory.check(&claim(Identifier::Mrn, "09192001", "1720056")),
        Verification::Match { patient_ref, .. } if patient_ref.as_str() == "P000118"
    ));
}

#[test]
fn the_directory_file_holds_refs_and_hashes_only() {
    let imported = import_example();
    let csv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/patients.example.csv"),
    )
    .expect("readable");
    for row in csv.lines().skip(1) {
        for value in row.split(',').skip(1).filter(|v| !v.is_empty()) {
            assert!(
                !imported.text.contains(value),
                "an identifier from the CSV is in the directory file"
            );
        }
    }
}

#[test]
fn the_directory_only_opens_with_the_pepper_it_was_made_with() {
    let imported = import_example();
    let other = Arc::new(Pepper::new("some-other-pepper-0123456789abcdef").expect("long enough"));
    let error = HashedFileDirectory::read(imported.text.as_bytes(), other)
        .err()
        .expect("refused");
    assert!(matches!(error, LoadError::WrongPepper));
    assert!(error.to_string().contains("CARELINE_DIRECTORY_PEPPER"));
}

#[cfg(unix)]
#[test]
fn only_the_owner_can_read_the_directory_file() {
    use std::os::unix::fs::PermissionsExt;
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/patients.example.csv");
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("directory.jsonl");
    import_file(&csv, &out, &pepper(), &OPTIONS).expect("imports");
    let mode = std::fs::metadata(&out)
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_refused_import_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let csv = dir.path().join("patients.csv");
    std::fs::write(&csv, "patient_ref,dob,zip\nP1,1970-02-30,60601\n").expect("writable");
    let out = dir.path().join("directory.jsonl");
    assert!(import_file(&csv, &out, &pepper(), &OPTIONS).is_err());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listable")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("patients.csv")]);
}
