//! What a caller claims to be: a date of birth plus one more identifier, parsed and normalised
//! the same way for keypad entry (verification) and for the patient CSV (import).
//!
//! A malformed entry (wrong length, an impossible date) is a [`ClaimError`]: the caller is asked
//! again and no attempt is used. Only a well-formed claim goes to the directory.
//!
//! Normal forms, hashed as `kind:value`:
//! - `dob`: `YYYY-MM-DD` (keyed MMDDYYYY; CSV `YYYY-MM-DD`), a real date from 1900 to today;
//! - `mrn`: the digits without leading zeros (printed MRNs are often zero-padded, keyed ones not);
//! - `zip`: 5 digits (the CSV may hold ZIP+4, of which the first 5 are used);
//! - `ssn4`: 4 digits.

use std::fmt;
use std::ops::RangeInclusive;

use jiff::civil::Date;

use super::secret::{IdentifierHash, Pepper, SecretBytes};
use crate::config::Identifier;

/// Digits a caller may key for an MRN (before leading zeros are dropped).
pub const MRN_DIGITS: RangeInclusive<usize> = 4..=12;

/// Nobody calling was born before this.
const EARLIEST_BIRTH_YEAR: i16 = 1900;

impl Identifier {
    /// The identifier's name in configuration, the CSV header and the directory file.
    pub fn name(self) -> &'static str {
        match self {
            Identifier::Dob => "dob",
            Identifier::Mrn => "mrn",
            Identifier::Zip => "zip",
            Identifier::Ssn4 => "ssn4",
        }
    }

    /// How many keys a caller types for this identifier (the `#` excluded): the engine ends
    /// entry at the maximum without waiting for `#`.
    pub fn keyed_digits(self) -> RangeInclusive<usize> {
        match self {
            Identifier::Dob => 8..=8,
            Identifier::Mrn => MRN_DIGITS,
            Identifier::Zip => 5..=5,
            Identifier::Ssn4 => 4..=4,
        }
    }

    /// The identifiers that can follow the date of birth.
    pub const SECOND: [Identifier; 3] = [Identifier::Mrn, Identifier::Zip, Identifier::Ssn4];
}

/// Why an entry is not a usable identifier. Says which item and what shape is expected, never
/// what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the date of birth must be 8 digits, month, day, year (MMDDYYYY)")]
    DobNotEightDigits,
    #[error("the date of birth must be written YYYY-MM-DD")]
    DobNotIso,
    #[error("the date of birth is not a real calendar date")]
    DobNotADate,
    #[error("the date of birth is before 1900 or in the future")]
    DobOutOfRange,
    #[error("the {} must be digits only", .0.name())]
    NotDigits(Identifier),
    #[error("the {} must be {} digits", .0.name(), describe_length(.0.keyed_digits()))]
    WrongLength(Identifier),
    #[error("the date of birth cannot be the second identifier (use mrn, zip or ssn4)")]
    DobAsSecond,
}

fn describe_length(range: RangeInclusive<usize>) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{} to {}", range.start(), range.end())
    }
}

/// A date of birth, held as `YYYY-MM-DD` in a buffer wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct DateOfBirth(SecretBytes);

impl DateOfBirth {
    /// Eight keypad digits, MMDDYYYY. `today` bounds the range (a date after it is malformed);
    /// the hospital's date or UTC's, a day either way only matters to babies born today.
    pub fn from_keyed(keys: &str, today: Date) -> Result<DateOfBirth, ClaimError> {
        let bytes = keys.as_bytes();
        if bytes.len() != 8 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(ClaimError::DobNotEightDigits);
        }
        let month = number(&bytes[0..2]);
        let day = number(&bytes[2..4]);
        let year = number(&bytes[4..8]);
        DateOfBirth::from_parts(year, month, day, today)
    }

    /// `YYYY-MM-DD`, as in the patient CSV.
    pub fn from_iso(text: &str, today: Date) -> Result<DateOfBirth, ClaimError> {
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shaped {
            return Err(ClaimError::DobNotIso);
        }
        let year = number(&bytes[0..4]);
        let month = number(&bytes[5..7]);
        let day = number(&bytes[8..10]);
        DateOfBirth::from_parts(year, month, day, today)
    }

    fn from_parts(year: u16, month: u16, day: u16, today: Date) -> Result<DateOfBirth, ClaimError> {
        let (Ok(year), Ok(month), Ok(day)) =
            (i16::try_from(year), i8::try_from(month), i8::try_from(day))
        else {
            return Err(ClaimError::DobNotADate);
        };
        let date = Date::new(year, month, day).map_err(|_| ClaimError::DobNotADate)?;
        if year < EARLIEST_BIRTH_YEAR || date > today {
            return Err(ClaimError::DobOutOfRange);
        }
        let mut iso = SecretBytes::with_capacity(10);
        push_number(&mut iso, u32::from(year.unsigned_abs()), 4);
        iso.push(b'-');
        push_number(&mut iso, u32::from(month.unsigned_abs()), 2);
        iso.push(b'-');
        push_number(&mut iso, u32::from(day.unsigned_abs()), 2);
        Ok(DateOfBirth(iso))
    }

    /// `YYYY-MM-DD`.
    pub fn expose_iso(&self) -> &str {
        // Built from ASCII digits and '-' only.
        std::str::from_utf8(self.0.expose()).unwrap_or_default()
    }

    pub(crate) fn hash(&self, pepper: &Pepper) -> IdentifierHash {
        pepper.identifier_hash(Identifier::Dob, self.0.expose())
    }
}

fn number(digits: &[u8]) -> u16 {
    digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
}

fn push_number(out: &mut SecretBytes, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u32.pow(place)) % 10;
        // A single decimal digit always fits a byte.
        out.push(b'0' + u8::try_from(digit).unwrap_or(0));
    }
}

impl fmt::Debug for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DateOfBirth(<redacted>)")
    }
}

impl fmt::Display for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<date of birth redacted>")
    }
}

/// The identifier after the date of birth: an MRN, a ZIP or the last four of an SSN, held as
/// entered (digits only) in a buffer wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecondIdentifier {
    kind: Identifier,
    digits: SecretBytes,
}

impl SecondIdentifier {
    /// Digits from the keypad: exactly the length [`Identifier::keyed_digits`] allows.
    pub fn from_keyed(kind: Identifier, keys: &str) -> Result<SecondIdentifier, ClaimError> {
        if kind == Identifier::Dob {
            return Err(ClaimError::DobAsSecond);
        }
        let bytes = keys.as_bytes();
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(ClaimError::NotDigits(kind));
        }
        if !kind.keyed_digits().contains(&bytes.len()) {
            return Err(ClaimError::WrongLength(kind));
        }
        let mut digits = SecretBytes::with_capacity(bytes.len());
        digits.extend_from_slice(bytes);
        Ok(SecondIdentifier { kind, digits })
    }

    /// A value from the patient CSV: as keyed, except that a ZIP+4 (`60601-1234`) is accepted
    /// and only its first five digits kept.
    pub fn from_export(kind: Identifier, text: &str) -> Result<SecondIdentifier, ClaimError> {
        let bytes = text.as_bytes();
        let is_zip_plus_four = kind == Identifier::Zip
            && bytes.len() == 10
            && bytes[5] == b'-'
            && bytes[..5].iter().chain(&bytes[6..]).all(u8::is_ascii_digit);
        if is_zip_plus_four {
            return SecondIdentifier::from_keyed(kind, &text[..5]);
        }
        SecondIdentifier::from_keyed(kind, text)
    }

    pub fn kind(&self) -> Identifier {
        self.kind
    }

    /// The digits as entered (what an HTTP verifier is sent).
    pub fn expose(&self) -> &str {
        std::str::from_utf8(self.digits.expose()).unwrap_or_default()
    }

    /// The normal form: MRNs lose their leading zeros (all zeros stay one zero).
    fn normalised(&self) -> &[u8] {
        let digits = self.digits.expose();
        if self.kind != Identifier::Mrn {
            return digits;
        }
        let first = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len().saturating_sub(1));
        &digits[first..]
    }

    pub(crate) fn hash(&self, pepper: &Pepper) -> IdentifierHash {
        pepper.identifier_hash(self.kind, self.normalised())
    }
}

impl fmt::Debug for SecondIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecondIdentifier({}: <redacted>)", self.kind.name())
    }
}

impl fmt::Display for SecondIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted>", self.kind.name())
    }
}

/// Who the caller says they are: date of birth plus one more identifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Claim {
    dob: DateOfBirth,
    second: SecondIdentifier,
}

impl Claim {
    pub fn new(dob: DateOfBirth, second: SecondIdentifier) -> Claim {
        Claim { dob, second }
    }

    /// A claim from the digits a `verify` node collected (`#` already removed).
    pub fn from_keyed(
        second_kind: Identifier,
        dob_keys: &str,
        second_keys: &str,
        today: Date,
    ) -> Result<Claim, ClaimError> {
        Ok(Claim {
            dob: DateOfBirth::from_keyed(dob_keys, today)?,
            second: SecondIdentifier::from_keyed(second_kind, second_keys)?,
        })
    }

    pub fn dob(&self) -> &DateOfBirth {
        &self.dob
    }

    pub fn second(&self) -> &SecondIdentifier {
        &self.second
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Claim(dob + {}: <redacted>)", self.second.kind.name())
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<date of birth and {} redacted>",
            self.second.kind.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    const TODAY: Date = date(2026, 6, 1);

    fn pepper() -> Pepper {
        Pepper::new("0123456789abcdef0123456789abcdef").expect("long enough")
    }

    #[test]
    fn keyed_and_exported_dates_of_birth_are_the_same_identifier() {
        let keyed = DateOfBirth::from_keyed("01311970", TODAY).expect("valid");
        let exported = DateOfBirth::from_iso("1970-01-31", TODAY).expect("valid");
        assert_eq!(keyed.expose_iso(), "1970-01-31");
        assert_eq!(keyed.hash(&pepper()), exported.hash(&pepper()));
    }

    #[test]
    fn an_impossible_date_is_malformed_not_a_guess() {
        assert_eq!(
            DateOfBirth::from_keyed("02301970", TODAY),
            Err(ClaimError::DobNotADate)
        );
        assert_eq!(
            DateOfBirth::from_keyed("13011970", TODAY),
            Err(ClaimError::DobNotADate)
        );
        assert_eq!(
            DateOfBirth::from_keyed("00101970", TODAY),
            Err(ClaimError::DobNotADate)
        );
        assert_eq!(
            DateOfBirth::from_keyed("02291999", TODAY),
            Err(ClaimError::DobNotADate)
        );
        assert!(DateOfBirth::from_keyed("02292000", TODAY).is_ok());
    }

    #[test]
    fn a_date_before_1900_or_after_today_is_malformed() {
        assert_eq!(
            DateOfBirth::from_keyed("12311899", TODAY),
            Err(ClaimError::DobOutOfRange)
        );
        assert_eq!(
            DateOfBirth::from_keyed("06022026", TODAY),
            Err(ClaimError::DobOutOfRange)
        );
        assert!(DateOfBirth::from_keyed("06012026", TODAY).is_ok());
        assert!(DateOfBirth::from_keyed("01011900", TODAY).is_ok());
    }

    #[test]
    fn a_date_of_birth_must_be_exactly_eight_digits() {
        for keys in ["0131197", "013119700", "0131197a", "", "01-31-1970"] {
            assert_eq!(
                DateOfBirth::from_keyed(keys, TODAY),
                Err(ClaimError::DobNotEightDigits),
                "{} keys",
                keys.len()
            );
        }
    }

    #[test]
    fn a_csv_date_must_be_iso() {
        for text in [
            "01/31/1970",
            "1970-1-31",
            "19700131",
            "1970-01-3x",
            "x970-01-31",
        ] {
            assert_eq!(
                DateOfBirth::from_iso(text, TODAY),
                Err(ClaimError::DobNotIso),
                "{text}"
            );
        }
        assert_eq!(
            DateOfBirth::from_iso("1970-02-30", TODAY),
            Err(ClaimError::DobNotADate)
        );
    }

    #[test]
    fn second_identifiers_have_fixed_shapes() {
        assert!(SecondIdentifier::from_keyed(Identifier::Zip, "60601").is_ok());
        assert_eq!(
            SecondIdentifier::from_keyed(Identifier::Zip, "6060"),
            Err(ClaimError::WrongLength(Identifier::Zip))
        );
        assert!(SecondIdentifier::from_keyed(Identifier::Ssn4, "0042").is_ok());
        assert_eq!(
            SecondIdentifier::from_keyed(Identifier::Ssn4, "12345"),
            Err(ClaimError::WrongLength(Identifier::Ssn4))
        );
        assert!(SecondIdentifier::from_keyed(Identifier::Mrn, "1234").is_ok());
        assert!(SecondIdentifier::from_keyed(Identifier::Mrn, "123456789012").is_ok());
        assert_eq!(
            SecondIdentifier::from_keyed(Identifier::Mrn, "123"),
            Err(ClaimError::WrongLength(Identifier::Mrn))
        );
        assert_eq!(
            SecondIdentifier::from_keyed(Identifier::Mrn, "1234567890123"),
            Err(ClaimError::WrongLength(Identifier::Mrn))
        );
        assert_eq!(
            SecondIdentifier::from_keyed(Identifier::Mrn, "12*4"),
            Err(ClaimError::NotDigits(Identifier::Mrn))
        );
        assert_eq!(
            SecondIdentifier::from_keyed(Identifier::Dob, "01311970"),
            Err(ClaimError::DobAsSecond)
        );
    }

    #[test]
    fn an_mrn_matches_with_or_without_its_leading_zeros() {
        let padded = SecondIdentifier::from_keyed(Identifier::Mrn, "00012345").expect("valid");
        let bare = SecondIdentifier::from_keyed(Identifier::Mrn, "12345").expect("valid");
        assert_eq!(padded.hash(&pepper()), bare.hash(&pepper()));
        let other = SecondIdentifier::from_keyed(Identifier::Mrn, "123450").expect("valid");
        assert_ne!(bare.hash(&pepper()), other.hash(&pepper()));
        let zeros = SecondIdentifier::from_keyed(Identifier::Mrn, "0000").expect("valid");
        assert_eq!(zeros.normalised(), b"0");
    }

    #[test]
    fn zip_codes_keep_their_leading_zeros() {
        let zip = SecondIdentifier::from_keyed(Identifier::Zip, "02115").expect("valid");
        assert_eq!(zip.normalised(), b"02115");
    }

    #[test]
    fn an_export_may_hold_zip_plus_four() {
        let plus_four = SecondIdentifier::from_export(Identifier::Zip, "60601-1234").expect("ok");
        let keyed = SecondIdentifier::from_keyed(Identifier::Zip, "60601").expect("ok");
        assert_eq!(plus_four.hash(&pepper()), keyed.hash(&pepper()));
        assert_eq!(
            SecondIdentifier::from_export(Identifier::Ssn4, "123-45-6789"),
            Err(ClaimError::NotDigits(Identifier::Ssn4))
        );
    }

    #[test]
    fn claim_from_keyed_reports_the_first_malformed_item() {
        assert_eq!(
            Claim::from_keyed(Identifier::Zip, "02301970", "60601", TODAY),
            Err(ClaimError::DobNotADate)
        );
        assert_eq!(
            Claim::from_keyed(Identifier::Zip, "01311970", "606", TODAY),
            Err(ClaimError::WrongLength(Identifier::Zip))
        );
    }

    #[test]
    fn errors_say_what_shape_is_expected() {
        assert_eq!(
            ClaimError::WrongLength(Identifier::Mrn).to_string(),
            "the mrn must be 4 to 12 digits"
        );
        assert_eq!(
            ClaimError::WrongLength(Identifier::Zip).to_string(),
            "the zip must be 5 digits"
        );
    }
}
