//! Secrets and the keyed hashes made with them: the directory pepper, the webhook secret, and
//! the buffer type that holds identifier digits and wipes them when dropped.
//!
//! The pepper keys every hash careline stores or writes: identifier hashes in the directory
//! file (`kind:value`), record pseudonyms for the audit log and lockout counters
//! (`record:<patient_ref>`) and reset-code hashes. A stolen directory file or store dump is
//! useless without it, because identifiers have too little entropy to survive an unkeyed hash.
//!
//! The webhook secret signs what careline POSTs to the portal (`X-Careline-Signature`).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Identifier;

type HmacSha256 = Hmac<Sha256>;

/// Bytes that must not outlive their use: identifier digits, secrets, a patient CSV.
///
/// Dropping (or [`SecretBytes::wipe`]) overwrites the whole allocation, spare capacity
/// included, so a freed buffer does not leave digits behind for the next allocation to see.
/// Never printed: `Debug` shows only the length.
#[derive(Default, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    pub fn with_capacity(capacity: usize) -> SecretBytes {
        SecretBytes(Vec::with_capacity(capacity))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, byte: u8) {
        if self.0.len() == self.0.capacity() {
            // Growing reallocates and frees the old buffer unwiped; move by hand instead.
            let mut grown = Vec::with_capacity((self.0.capacity() * 2).max(16));
            grown.extend_from_slice(&self.0);
            wipe_vec(&mut self.0);
            self.0 = grown;
        }
        self.0.push(byte);
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.push(byte);
        }
    }

    /// Empty the buffer, overwriting what it held; the allocation is kept for reuse.
    pub fn wipe(&mut self) {
        wipe_vec(&mut self.0);
    }
}

fn wipe_vec(bytes: &mut Vec<u8>) {
    let capacity = bytes.capacity();
    bytes.clear();
    // Within capacity, so this writes zeros over the old contents without reallocating.
    bytes.resize(capacity, 0);
    // Keeps the optimiser from proving the zeros are never read and removing the writes.
    std::hint::black_box(bytes.as_slice());
    bytes.clear();
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe_vec(&mut self.0);
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> SecretBytes {
        let mut copy = SecretBytes::with_capacity(self.0.len());
        copy.extend_from_slice(&self.0);
        copy
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// A secret from the environment is missing or unusable. Never carries the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "{var} is not set; generate one with `export {var}=$(openssl rand -hex 32)`, keep it \
         with your other secrets, and use the same value for `careline directory import` and \
         `careline serve`"
    )]
    Missing { var: &'static str },
    #[error("{var} is shorter than {min} characters; generate one with `openssl rand -hex 32`")]
    TooShort { var: &'static str, min: usize },
    #[error("{var} is not valid UTF-8; generate one with `openssl rand -hex 32`")]
    NotUnicode { var: &'static str },
}

fn read_env(var: &'static str) -> Result<SecretBytes, SecretError> {
    match std::env::var(var) {
        Ok(value) => Ok(SecretBytes::new(value.into_bytes())),
        Err(std::env::VarError::NotPresent) => Err(SecretError::Missing { var }),
        Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode { var }),
    }
}

/// Shell and env-file quirks (a trailing newline from `$(cat file)`) must not change the key.
fn trimmed(secret: SecretBytes) -> SecretBytes {
    let bytes = secret.expose();
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |last| last + 1);
    let mut out = SecretBytes::with_capacity(end - start);
    out.extend_from_slice(&bytes[start..end]);
    out
}

fn mac(key: &SecretBytes) -> HmacSha256 {
    // HMAC takes keys of any length; the fallback key is never used with a real secret
    // because constructors refuse short ones.
    HmacSha256::new_from_slice(key.expose())
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

/// The key of every hash careline keeps (`CARELINE_DIRECTORY_PEPPER`).
///
/// Holds the HMAC state with the key already absorbed rather than the key itself: each hash
/// then costs two SHA-256 blocks fewer, and the text of the pepper is wiped once read.
#[derive(Clone)]
pub struct Pepper(HmacSha256);

impl Pepper {
    pub const ENV: &'static str = "CARELINE_DIRECTORY_PEPPER";
    /// `openssl rand -hex 32` gives 64; 32 characters is the least we accept.
    pub const MIN_LEN: usize = 32;

    /// A pepper from its text (surrounding whitespace ignored).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Pepper, SecretError> {
        let secret = trimmed(SecretBytes::new(secret.into()));
        if secret.len() < Self::MIN_LEN {
            return Err(SecretError::TooShort {
                var: Self::ENV,
                min: Self::MIN_LEN,
            });
        }
        Ok(Pepper(mac(&secret)))
    }

    /// The pepper from `CARELINE_DIRECTORY_PEPPER`.
    pub fn from_env() -> Result<Pepper, SecretError> {
        Pepper::new(read_env(Self::ENV)?.expose().to_vec())
    }

    /// HMAC-SHA256(pepper, `kind:value`) of an already normalised identifier value.
    pub fn identifier_hash(&self, kind: Identifier, normalised: &[u8]) -> IdentifierHash {
        let mut mac = self.0.clone();
        mac.update(kind.name().as_bytes());
        mac.update(b":");
        mac.update(normalised);
        IdentifierHash(mac.finalize().into_bytes().into())
    }

    /// The keyed pseudonym of a patient record: what audit lines and lockout counters name.
    pub fn pseudonym(&self, patient_ref: &str) -> RecordPseudonym {
        RecordPseudonym(hex(&self.digest(&[b"record:", patient_ref.as_bytes()])))
    }

    /// Proves a directory file was made with this pepper without revealing anything about it.
    pub(crate) fn check_value(&self) -> String {
        hex(&self.digest(&[b"careline-directory-pepper-check"]))
    }

    pub(crate) fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// The key that signs careline's requests to the portal (`CARELINE_WEBHOOK_SECRET`).
#[derive(Clone)]
pub struct WebhookSecret(SecretBytes);

impl WebhookSecret {
    pub const ENV: &'static str = "CARELINE_WEBHOOK_SECRET";
    pub const MIN_LEN: usize = 16;

    pub fn new(secret: impl Into<Vec<u8>>) -> Result<WebhookSecret, SecretError> {
        let secret = trimmed(SecretBytes::new(secret.into()));
        if secret.len() < Self::MIN_LEN {
            return Err(SecretError::TooShort {
                var: Self::ENV,
                min: Self::MIN_LEN,
            });
        }
        Ok(WebhookSecret(secret))
    }

    /// The secret from `CARELINE_WEBHOOK_SECRET`.
    pub fn from_env() -> Result<WebhookSecret, SecretError> {
        WebhookSecret::new(read_env(Self::ENV)?.expose().to_vec())
    }

    /// The `X-Careline-Signature` value for `body`: `sha256=<hex HMAC-SHA256(secret, body)>`.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = mac(&self.0);
        mac.update(body);
        format!("sha256={}", hex(&mac.finalize().into_bytes()))
    }

    /// Whether `header_value` is this secret's signature of `body`, compared in constant time.
    /// For portals (and tests) checking what careline sent.
    pub fn verify(&self, body: &[u8], header_value: &str) -> bool {
        let expected = self.sign(body);
        expected
            .as_bytes()
            .ct_eq(header_value.trim().as_bytes())
            .into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The header careline signs its portal requests in.
pub const SIGNATURE_HEADER: &str = "x-careline-signature";

/// HMAC-SHA256 of one identifier under the pepper.
///
/// Not secret by itself, but with the pepper it gives the identifier away (a date of birth has
/// about 15 bits of entropy), so it is not printed either.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentifierHash(pub(crate) [u8; 32]);

impl IdentifierHash {
    pub(crate) fn to_hex(self) -> String {
        hex(&self.0)
    }

    pub(crate) fn from_hex(text: &str) -> Option<IdentifierHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *slot = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(IdentifierHash(out))
    }

    /// Equality that takes the same time wherever the hashes differ.
    pub(crate) fn ct_matches(&self, other: &IdentifierHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for IdentifierHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentifierHash(<redacted>)")
    }
}

/// The keyed pseudonym of a patient record: HMAC-SHA256(pepper, `record:<patient_ref>`), hex.
///
/// The only way to name a record in the audit log or a lockout counter. Made only by
/// [`Pepper::pseudonym`], so nothing else (an identifier, a typed digit) can pass for one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RecordPseudonym(String);

impl RecordPseudonym {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEPPER: &str = "0123456789abcdef0123456789abcdef";

    fn pepper() -> Pepper {
        Pepper::new(PEPPER).expect("long enough")
    }

    #[test]
    fn identifier_hash_is_hmac_sha256_of_kind_colon_value() {
        let mut mac = HmacSha256::new_from_slice(PEPPER.as_bytes()).expect("any key length");
        mac.update(b"zip:60601");
        let expected = hex(&mac.finalize().into_bytes());
        assert_eq!(
            pepper().identifier_hash(Identifier::Zip, b"60601").to_hex(),
            expected
        );
    }

    #[test]
    fn the_same_digits_hash_differently_as_different_identifiers() {
        let pepper = pepper();
        assert_ne!(
            pepper.identifier_hash(Identifier::Mrn, b"1234"),
            pepper.identifier_hash(Identifier::Ssn4, b"1234")
        );
    }

    #[test]
    fn another_pepper_gives_other_hashes_and_pseudonyms() {
        let other = Pepper::new("fedcba9876543210fedcba9876543210").expect("long enough");
        assert_ne!(
            pepper().identifier_hash(Identifier::Zip, b"60601"),
            other.identifier_hash(Identifier::Zip, b"60601")
        );
        assert_ne!(pepper().pseudonym("P000001"), other.pseudonym("P000001"));
    }

    #[test]
    fn pseudonym_is_hmac_of_record_prefix_and_never_contains_the_ref() {
        let pseudonym = pepper().pseudonym("P000123");
        let mut mac = HmacSha256::new_from_slice(PEPPER.as_bytes()).expect("any key length");
        mac.update(b"record:P000123");
        assert_eq!(pseudonym.as_str(), hex(&mac.finalize().into_bytes()));
        assert!(!pseudonym.as_str().contains("000123"));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = pepper().identifier_hash(Identifier::Dob, b"1970-01-31");
        assert_eq!(IdentifierHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(IdentifierHash::from_hex("abc"), None);
        assert_eq!(IdentifierHash::from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn a_short_pepper_is_refused_with_how_to_make_one() {
        let error = Pepper::new("short").expect_err("too short");
        assert!(error.to_string().contains("openssl rand -hex 32"));
        assert!(!error.to_string().contains("short;"));
    }

    #[test]
    fn surrounding_whitespace_does_not_change_the_pepper() {
        let padded = Pepper::new(format!("  {PEPPER}\n")).expect("long enough");
        assert_eq!(padded.pseudonym("P1"), pepper().pseudonym("P1"));
    }

    #[test]
    fn signature_is_sha256_hmac_of_the_body_and_verifies() {
        let secret = WebhookSecret::new("webhook-secret-for-tests").expect("long enough");
        let header = secret.sign(b"{\"a\":1}");
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), "sha256=".len() + 64);
        assert!(secret.verify(b"{\"a\":1}", &header));
        assert!(!secret.verify(b"{\"a\":2}", &header));
        assert!(!secret.verify(b"{\"a\":1}", "sha256=00"));
    }

    #[test]
    fn secrets_never_print() {
        let secret = WebhookSecret::new("webhook-secret-for-tests").expect("long enough");
        assert!(!format!("{secret:?}").contains("webhook-secret"));
        assert!(!format!("{:?}", pepper()).contains("0123"));
        let bytes = SecretBytes::new(b"19700131".to_vec());
        assert!(!format!("{bytes:?}").contains("1970"));
    }

    #[test]
    fn secret_bytes_keep_their_contents_across_growth_and_wipe_empties_them() {
        let mut bytes = SecretBytes::default();
        for digit in b"0123456789012345678901234567890123456789" {
            bytes.push(*digit);
        }
        assert_eq!(bytes.expose(), b"0123456789012345678901234567890123456789");
        bytes.wipe();
        assert!(bytes.is_empty());
    }
}
