//! Digits a caller keyed in, and what verification and reset answered: the values that carry
//! PHI between the call engine and this layer, none of which can print what the caller typed.

use std::fmt;

use super::PatientRef;

/// Digits a caller keyed in. Never printed: `Debug` and `Display` show only the length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Digits(String);

impl Digits {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Digits from outside the engine (a reset code to read out, tests).
    pub fn new(digits: impl Into<String>) -> Digits {
        Digits(digits.into())
    }

    pub(crate) fn push(&mut self, key: char) {
        self.0.push(key);
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

impl Drop for Digits {
    /// Keyed digits do not linger in freed memory.
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

impl fmt::Debug for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digits(<{} redacted>)", self.0.len())
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} digits redacted>", self.0.len())
    }
}

/// The directory's answer to a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified {
        patient: PatientRef,
    },
    /// The identifiers match no record (or not the same one).
    NotVerified,
    /// The entry is not a possible value (an impossible date): ask again, not an attempt.
    Malformed,
    /// Too many failures for the claimed record: self-service is off until an agent clears it.
    LockedOut,
    /// The directory could not answer: never "verified"; the caller goes to a person.
    Unavailable,
}

/// The outcome of a password reset request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The portal sent a reset link to the contact on file.
    LinkSent,
    /// A one-time code to read out to the caller.
    CodeIssued(Digits),
    /// The reset could not be requested: a person helps instead.
    Failed,
}
