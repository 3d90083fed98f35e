//! Password reset after a successful verification: one-time codes careline speaks (method
//! `code`) and the signed request to the portal's own reset (method `portal`).
//!
//! Codes come from `rand::rng()`, rand 0.9's `ThreadRng`: ChaCha12 seeded from the operating
//! system's generator and reseeded as it goes, documented by rand as a cryptographically secure
//! generator. Each digit is drawn uniformly (no modulo bias). The store keeps only
//! [`code_hash`], keyed with the pepper, so a store dump cannot be brute-forced offline over
//! the few million possible codes.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use serde::Serialize;

use super::directory::PatientRef;
use super::http::{EndpointError, SignedEndpoint};
use super::secret::{Pepper, SecretBytes, WebhookSecret, hex};

/// How long a one-time code may be.
pub const CODE_DIGITS: RangeInclusive<u32> = 6..=8;

/// Redemptions allowed per code before it is void.
pub const CODE_MAX_CHECKS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error("a reset code must be 6 to 8 digits (set [password_reset] code_digits)")]
    CodeLength,
    #[error("a reset code is 6 to 8 digits")]
    NotACode,
    /// The portal did not take the request: the caller goes to a person.
    #[error("the portal's reset endpoint cannot be used ({reason}); the caller goes to a person")]
    PortalUnavailable { reason: String },
}

/// A one-time reset code, held in a buffer wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetCode(SecretBytes);

impl ResetCode {
    /// A fresh code of `digits` digits (6 to 8), leading zeros included.
    pub fn generate(digits: u32) -> Result<ResetCode, ResetError> {
        if !CODE_DIGITS.contains(&digits) {
            return Err(ResetError::CodeLength);
        }
        let mut rng = rand::rng();
        let mut code = SecretBytes::with_capacity(digits as usize);
        for _ in 0..digits {
            code.push(b'0' + rng.random_range(0..10u8));
        }
        Ok(ResetCode(code))
    }

    /// A code as someone typed it into the portal: spaces and dashes ignored.
    pub fn from_entered(text: &str) -> Result<ResetCode, ResetError> {
        let mut code = SecretBytes::with_capacity(text.len());
        for byte in text.bytes() {
            match byte {
                b'0'..=b'9' => code.push(byte),
                b' ' | b'-' => {}
                _ => return Err(ResetError::NotACode),
            }
        }
        let length = u32::try_from(code.len()).unwrap_or(u32::MAX);
        if !CODE_DIGITS.contains(&length) {
            return Err(ResetError::NotACode);
        }
        Ok(ResetCode(code))
    }

    /// The digits, for speaking them one by one.
    pub fn expose(&self) -> &str {
        std::str::from_utf8(self.0.expose()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ResetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResetCode(<{} digits redacted>)", self.0.len())
    }
}

impl fmt::Display for ResetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}-digit code redacted>", self.0.len())
    }
}

/// What the store keeps for a code: hex HMAC-SHA256(pepper, `reset-code:<patient_ref>:<code>`).
/// Bound to the record, so a code issued for one patient cannot redeem another's.
pub fn code_hash(pepper: &Pepper, patient_ref: &PatientRef, code: &ResetCode) -> String {
    hex(&pepper.digest(&[
        b"reset-code:",
        patient_ref.as_str().as_bytes(),
        b":",
        code.0.expose(),
    ]))
}

#[derive(Serialize)]
struct ResetRequest<'a> {
    patient_ref: &'a str,
    call_sid: &'a str,
    requested_at: String,
}

/// The portal's reset endpoint (method `portal`): it sends a reset link to the email or phone
/// already on file. careline never speaks or sets a password.
///
/// ```text
/// POST <url>   Content-Type: application/json   X-Careline-Signature: sha256=<hex>
/// {"patient_ref":"P000123","call_sid":"CA…","requested_at":"2026-06-01T14:03:07Z"}
/// any 2xx: sent; anything else, or no answer in time: the caller goes to a person
/// ```
pub struct PortalReset {
    endpoint: SignedEndpoint,
}

impl PortalReset {
    pub fn new(
        url: &str,
        secret: WebhookSecret,
        timeout: Duration,
    ) -> Result<PortalReset, EndpointError> {
        Ok(PortalReset {
            endpoint: SignedEndpoint::new(url, secret, timeout)?,
        })
    }

    /// Ask the portal to send its reset link for `patient_ref`.
    pub async fn request(
        &self,
        patient_ref: &PatientRef,
        call_sid: &str,
        requested_at: Timestamp,
    ) -> Result<(), ResetError> {
        let body = serde_json::to_vec(&ResetRequest {
            patient_ref: patient_ref.as_str(),
            call_sid,
            requested_at: requested_at.to_string(),
        })
        .map_err(|_| self.unavailable("cannot encode the request".to_owned()))?;
        self.endpoint
            .post(body)
            .await
            .map(|_| ())
            .map_err(|failure| self.unavailable(failure.describe(self.endpoint.timeout)))
    }

    fn unavailable(&self, reason: String) -> ResetError {
        tracing::warn!(url = %self.endpoint.url(), %reason, "portal reset request failed");
        ResetError::PortalUnavailable { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper() -> Pepper {
        Pepper::new("0123456789abcdef0123456789abcdef").expect("long enough")
    }

    #[test]
    fn codes_have_the_configured_number_of_digits_and_only_digits() {
        for digits in CODE_DIGITS {
            for _ in 0..100 {
                let code = ResetCode::generate(digits).expect("allowed length");
                assert_eq!(code.len(), digits as usize);
                assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn code_lengths_outside_six_to_eight_are_refused() {
        assert_eq!(ResetCode::generate(5), Err(ResetError::CodeLength));
        assert_eq!(ResetCode::generate(9), Err(ResetError::CodeLength));
    }

    #[test]
    fn every_digit_is_about_equally_likely_in_every_position() {
        // 10,000 codes: each digit is expected 1,000 times per position, with a standard
        // deviation of 30. The bounds are ten deviations wide: a fair generator never fails,
        // a stuck or biased one (modulo bias from a byte is 2.4%) does not get near passing
        // the overall check below.
        const CODES: usize = 10_000;
        let mut counts = [[0usize; 10]; 8];
        let mut overall = [0usize; 10];
        for _ in 0..CODES {
            let code = ResetCode::generate(8).expect("allowed length");
            for (position, digit) in code.expose().bytes().enumerate() {
                counts[position][usize::from(digit - b'0')] += 1;
                overall[usize::from(digit - b'0')] += 1;
            }
        }
        for (position, counts) in counts.iter().enumerate() {
            for (digit, &count) in counts.iter().enumerate() {
                assert!(
                    (700..=1300).contains(&count),
                    "digit {digit} at position {position} came up {count} times in {CODES}"
                );
            }
        }
        // 80,000 digits: 8,000 each expected, deviation 85.
        for (digit, &count) in overall.iter().enumerate() {
            assert!((7_150..=8_850).contains(&count), "digit {digit}: {count}");
        }
    }

    #[test]
    fn codes_do_not_repeat() {
        let codes: std::collections::HashSet<String> = (0..1000)
            .map(|_| ResetCode::generate(8).expect("allowed").expose().to_owned())
            .collect();
        // 1,000 draws from 10^8: a repeat has a probability of about 0.5%; two, about 1e-5.
        assert!(codes.len() >= 998);
    }

    #[test]
    fn an_entered_code_may_have_spaces_or_dashes() {
        let code = ResetCode::from_entered("123 45-678").expect("eight digits");
        assert_eq!(code.expose(), "12345678");
        assert_eq!(ResetCode::from_entered("12345"), Err(ResetError::NotACode));
        assert_eq!(
            ResetCode::from_entered("1234567a"),
            Err(ResetError::NotACode)
        );
        assert_eq!(
            ResetCode::from_entered("123456789"),
            Err(ResetError::NotACode)
        );
    }

    #[test]
    fn a_code_hash_is_bound_to_its_record_and_hides_the_code() {
        let code = ResetCode::from_entered("04711234").expect("valid");
        let first = PatientRef::new("P1").expect("valid");
        let second = PatientRef::new("P2").expect("valid");
        let hash = code_hash(&pepper(), &first, &code);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains("04711234"));
        assert_eq!(hash, code_hash(&pepper(), &first, &code));
        assert_ne!(hash, code_hash(&pepper(), &second, &code));
        let other = ResetCode::from_entered("04711235").expect("valid");
        assert_ne!(hash, code_hash(&pepper(), &first, &other));
    }

    #[test]
    fn a_code_is_never_printed() {
        let code = ResetCode::from_entered("04711234").expect("valid");
        assert!(!format!("{code:?}").contains("4711"));
        assert!(!format!("{code}").contains("4711"));
    }
}
