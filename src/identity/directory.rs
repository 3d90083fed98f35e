//! The directory a claim is checked against, behind one trait: the hashed file made by
//! `careline directory import` ([`super::HashedFileDirectory`]) or the portal's verification
//! endpoint ([`super::HttpVerifier`]).
//!
//! A directory answers match, no match or ambiguous, or says it cannot tell
//! ([`DirectoryError`]); the engine sends a caller it cannot tell about to a person, and never
//! treats "cannot tell" as verified.

use std::fmt;

use async_trait::async_trait;

use super::claim::Claim;
use super::secret::RecordPseudonym;

/// The portal's own reference for a patient record: opaque, but it names a patient, so it is
/// not printed (`Debug` redacts it); logs and audit lines use its [`RecordPseudonym`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PatientRef(String);

/// The longest patient reference careline accepts from a CSV, a verifier or an API call.
pub const PATIENT_REF_MAX_LEN: usize = 64;

/// Why a string cannot be a patient reference. Never carries the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatientRefError {
    #[error("the patient reference is empty")]
    Empty,
    #[error("the patient reference is longer than {PATIENT_REF_MAX_LEN} characters")]
    TooLong,
    #[error("the patient reference may hold only letters, digits and . _ : -")]
    BadCharacter,
}

impl PatientRef {
    /// Letters, digits and `._:-`, at most [`PATIENT_REF_MAX_LEN`]: enough for any EHR's
    /// record ids, and nothing that could break a log line, a Redis key or a URL path.
    pub fn new(text: impl Into<String>) -> Result<PatientRef, PatientRefError> {
        let text = text.into();
        if text.is_empty() {
            return Err(PatientRefError::Empty);
        }
        if text.len() > PATIENT_REF_MAX_LEN {
            return Err(PatientRefError::TooLong);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if !text.chars().all(allowed) {
            return Err(PatientRefError::BadCharacter);
        }
        Ok(PatientRef(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PatientRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PatientRef(<redacted>)")
    }
}

/// A directory's answer about one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Exactly one record has both identifiers. `record` is its pseudonym, for the audit log
    /// and for checking its lockout before anything is done for the caller.
    Match {
        patient_ref: PatientRef,
        record: RecordPseudonym,
    },
    /// No record has both identifiers. `claimed_records` are the records the attempt could
    /// have been aimed at, each of which a lockout counts it against:
    /// - hashed file: every record with the claimed date of birth that has the claimed kind of
    ///   second identifier on file. Each guess with that date tests all of them, so counting
    ///   it against each bounds the guesses any one patient's record can take. Records without
    ///   that identifier cannot be matched by it, so guesses cannot hurt them and are not
    ///   counted against them. An unknown date of birth names no record.
    /// - HTTP verifier: the record the portal names in `claimed_ref`, if it names one.
    NoMatch {
        claimed_records: Vec<RecordPseudonym>,
    },
    /// More than one record has both identifiers (twins at one ZIP code): the caller cannot be
    /// told apart by phone. Not a failed attempt; the engine sends them to a person.
    Ambiguous,
}

/// The directory cannot tell whether the claim matches. The caller goes to a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Unreachable, timed out, refused, or answered something careline does not understand.
    /// The reason never holds identifiers or the verifier's answer.
    #[error("the patient directory cannot tell ({reason}); the caller goes to a person")]
    Unavailable { reason: String },
}

/// Where a claim is checked.
#[async_trait]
pub trait Directory: Send + Sync {
    /// `file` or `http`, for health output and logs.
    fn kind(&self) -> &'static str;

    /// Check `claim` for the call `call_sid` (passed on to an HTTP verifier for its own audit).
    async fn verify(&self, call_sid: &str, claim: &Claim) -> Result<Verification, DirectoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_refs_are_plain_tokens() {
        assert!(PatientRef::new("P000123").is_ok());
        assert!(PatientRef::new("epic:Z12.345-6_7").is_ok());
        assert_eq!(PatientRef::new(""), Err(PatientRefError::Empty));
        assert_eq!(PatientRef::new("P 1"), Err(PatientRefError::BadCharacter));
        assert_eq!(PatientRef::new("P\n1"), Err(PatientRefError::BadCharacter));
        assert_eq!(
            PatientRef::new("x".repeat(65)),
            Err(PatientRefError::TooLong)
        );
    }

    #[test]
    fn a_patient_ref_is_not_printed() {
        let patient_ref = PatientRef::new("P000123").expect("valid");
        assert!(!format!("{patient_ref:?}").contains("123"));
    }
}
