//! Nothing that holds identifier digits, a reset code or a secret shows them when printed:
//! `Debug`, `Display`, and every error made from them.

use std::sync::Arc;

use careline::config::Identifier;
use careline::identity::{
    Claim, ClaimError, DateOfBirth, HashedFileDirectory, ImportOptions, PatientRef, Pepper,
    ResetCode, SecondIdentifier, SecretBytes, Verification, WebhookSecret, import,
};
use jiff::civil::date;

const TODAY: jiff::civil::Date = date(2026, 6, 1);
const DOB_KEYED: &str = "07141953";
const MRN: &str = "90817263";
const ZIP: &str = "48213";
const SSN4: &str = "7391";
const CODE: &str = "58204716";
const PEPPER: &str = "pepper-that-must-never-print-0123456789";
const SECRET: &str = "secret-that-must-never-print";

/// Fragments that would give an identifier away.
const FRAGMENTS: &[&str] = &[
    "0714",
    "1953",
    "1953-07-14",
    MRN,
    "9081",
    ZIP,
    "4821",
    SSN4,
    CODE,
    "5820",
    "4716",
    "never-print",
    "P000777",
];

fn assert_hidden(what: &str, printed: &str) {
    for fragment in FRAGMENTS {
        assert!(
            !printed.contains(fragment),
            "{what} printed `{fragment}`: {printed}"
        );
    }
}

fn assert_debug_and_display_hidden<T: std::fmt::Debug + std::fmt::Display>(what: &str, value: &T) {
    assert_hidden(what, &format!("{value:?}"));
    assert_hidden(what, &format!("{value:#?}"));
    assert_hidden(what, &format!("{value}"));
}

#[test]
fn identifiers_do_not_print() {
    let dob = DateOfBirth::from_keyed(DOB_KEYED, TODAY).expect("valid");
    assert_debug_and_display_hidden("DateOfBirth", &dob);
    for (kind, digits) in [
        (Identifier::Mrn, MRN),
        (Identifier::Zip, ZIP),
        (Identifier::Ssn4, SSN4),
    ] {
        let second = SecondIdentifier::from_keyed(kind, digits).expect("valid");
        assert_debug_and_display_hidden("SecondIdentifier", &second);
        let claim = Claim::new(dob.clone(), second);
        assert_debug_and_display_hidden("Claim", &claim);
    }
}

#[test]
fn codes_secrets_and_refs_do_not_print() {
    assert_debug_and_display_hidden("ResetCode", &ResetCode::from_entered(CODE).expect("valid"));
    assert_hidden(
        "Pepper",
        &format!("{:?}", Pepper::new(PEPPER).expect("long")),
    );
    assert_hidden(
        "WebhookSecret",
        &format!("{:?}", WebhookSecret::new(SECRET).expect("long")),
    );
    assert_hidden(
        "SecretBytes",
        &format!("{:?}", SecretBytes::new(MRN.as_bytes().to_vec())),
    );
    let patient_ref = PatientRef::new("P000777").expect("valid");
    assert_hidden("PatientRef", &format!("{patient_ref:?}"));
    let verification = Verification::Match {
        patient_ref,
        record: Pepper::new(PEPPER).expect("long").pseudonym("P000777"),
    };
    assert_hidden("Verification", &format!("{verification:?}"));
}

#[test]
fn malformed_entries_are_described_without_their_digits() {
    let errors: Vec<ClaimError> = vec![
        DateOfBirth::from_keyed("07141", TODAY).expect_err("short"),
        DateOfBirth::from_keyed("07321953", TODAY).expect_err("no 32nd"),
        DateOfBirth::from_keyed("07141853", TODAY).expect_err("too early"),
        DateOfBirth::from_iso("07/14/1953", TODAY).expect_err("not ISO"),
        SecondIdentifier::from_keyed(Identifier::Mrn, "908").expect_err("short"),
        SecondIdentifier::from_keyed(Identifier::Zip, "4821").expect_err("short"),
        SecondIdentifier::from_keyed(Identifier::Ssn4, "73910").expect_err("long"),
        SecondIdentifier::from_keyed(Identifier::Ssn4, "73*1").expect_err("not digits"),
    ];
    for error in errors {
        assert_hidden("ClaimError", &format!("{error:?} {error}"));
    }
    for entered in ["5820", "58204716x", "582047169"] {
        let error = ResetCode::from_entered(entered).expect_err("not a code");
        assert_hidden("ResetError", &format!("{error:?} {error}"));
    }
}

#[test]
fn import_and_load_errors_are_described_without_values() {
    let pepper = Pepper::new(PEPPER).expect("long");
    let options = ImportOptions {
        today: TODAY,
        skip_invalid: false,
    };
    let csv = format!(
        "patient_ref,dob,mrn,zip,ssn4\n\
         P000777,1953-07-32,{MRN},{ZIP},{SSN4}\n\
         P000778,1953-07-14,{MRN}x,{ZIP},{SSN4}\n\
         P000779,1953-07-14,{MRN},{ZIP}1,{SSN4}\n\
         P000780,1953-07-14,{MRN},{ZIP},{SSN4}0\n"
    );
    let error = import(csv.as_bytes(), &pepper, &options, &mut Vec::new()).expect_err("bad rows");
    assert_hidden("ImportError", &format!("{error:?} {error}"));

    let header_is_data = format!("P000777,1953-07-14,{MRN},{ZIP},{SSN4}\n");
    let error = import(
        header_is_data.as_bytes(),
        &pepper,
        &options,
        &mut Vec::new(),
    )
    .expect_err("no header");
    assert_hidden("ImportError", &format!("{error:?} {error}"));

    let directory = format!(
        "{{\"format\":\"careline-directory/1\",\"pepper_check\":\"00\"}}\n\
         {{\"ref\":\"P000777\",\"dob\":\"1953-07-14\",\"zip\":\"{ZIP}\"}}\n"
    );
    let error = HashedFileDirectory::read(directory.as_bytes(), Arc::new(pepper.clone()))
        .err()
        .expect("refused");
    assert_hidden("LoadError", &format!("{error:?} {error}"));
}
