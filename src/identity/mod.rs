//! Who is calling: identity claims, the patient directory, password reset and the audit log.
//!
//! Protected health information stays inside this module. Identifier digits live only in
//! [`SecretBytes`]-backed types ([`Claim`], [`ResetCode`]) that never print and wipe their
//! buffers when dropped; what leaves is a keyed hash, a [`RecordPseudonym`], or an opaque
//! [`PatientRef`] (itself never printed).
//!
//! - [`digits`]: what a caller keyed ([`Digits`]) and the verification and reset outcomes the
//!   call engine acts on;
//! - [`claim`]: parsing and normalising identifiers, shared by keypad entry and CSV import;
//! - [`secret`]: the pepper and webhook secret (from the environment) and the keyed hashes;
//! - [`directory`]: the [`Directory`] trait and its answers;
//! - [`hashed_file`]: the directory file made by `careline directory import` ([`import`]);
//! - [`http`]: the portal's verification endpoint, signed POSTs;
//! - [`reset`]: one-time codes and the portal's reset endpoint;
//! - [`audit`]: the append-only audit log.

pub mod audit;
pub mod claim;
mod csv;
pub mod digits;
pub mod directory;
pub mod hashed_file;
pub mod http;
pub mod import;
pub mod reset;
pub mod secret;
pub mod service;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditEntry, AuditError, AuditEvent, AuditLog, AuditOutcome};
pub use claim::{Claim, ClaimError, DateOfBirth, SecondIdentifier};
pub use csv::CsvError;
pub use digits::{Digits, ResetOutcome, VerifyOutcome};
pub use directory::{Directory, DirectoryError, PatientRef, PatientRefError, Verification};
pub use hashed_file::{HashedFileDirectory, LoadError};
pub use http::{EndpointError, HttpVerifier};
pub use import::{ImportError, ImportOptions, ImportReport, import, import_file};
pub use reset::{CODE_DIGITS, CODE_MAX_CHECKS, PortalReset, ResetCode, ResetError, code_hash};
pub use secret::{
    Pepper, RecordPseudonym, SIGNATURE_HEADER, SecretBytes, SecretError, WebhookSecret,
};
pub use service::{IdentityService, IdentityStartError, Redemption};

use crate::config::DirectoryConfig;

/// The configured directory cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenDirectoryError {
    #[error(transparent)]
    File(#[from] LoadError),
    #[error("[identity] directory url: {0}")]
    Endpoint(#[from] EndpointError),
    #[error("an http directory signs its requests: {0}")]
    Secret(#[from] SecretError),
}

/// Open the directory `[identity] directory` configures. `resolve` turns a configured path
/// into a real one (`LoadedConfig::resolve`); `webhook_secret` is needed for `kind = "http"`.
pub fn open_directory(
    config: &DirectoryConfig,
    resolve: impl Fn(&Path) -> PathBuf,
    pepper: Arc<Pepper>,
    webhook_secret: Option<WebhookSecret>,
) -> Result<Arc<dyn Directory>, OpenDirectoryError> {
    match config {
        DirectoryConfig::File { path } => {
            Ok(Arc::new(HashedFileDirectory::load(&resolve(path), pepper)?))
        }
        DirectoryConfig::Http { url, timeout_ms } => {
            let secret = webhook_secret.ok_or(SecretError::Missing {
                var: WebhookSecret::ENV,
            })?;
            let timeout = Duration::from_millis(*timeout_ms);
            Ok(Arc::new(HttpVerifier::new(url, secret, timeout, pepper)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper() -> Arc<Pepper> {
        Arc::new(Pepper::new("0123456789abcdef0123456789abcdef").expect("long enough"))
    }

    #[test]
    fn an_http_directory_needs_the_webhook_secret() {
        let config = DirectoryConfig::Http {
            url: "https://portal.example.org/ivr/verify".to_owned(),
            timeout_ms: 2000,
        };
        let error = open_directory(&config, Path::to_path_buf, pepper(), None)
            .err()
            .expect("refused");
        assert!(error.to_string().contains(WebhookSecret::ENV), "{error}");
        let secret = WebhookSecret::new("webhook-secret-for-tests").expect("long enough");
        let directory =
            open_directory(&config, Path::to_path_buf, pepper(), Some(secret)).expect("opens");
        assert_eq!(directory.kind(), "http");
    }

    #[test]
    fn a_file_directory_is_read_from_the_resolved_path() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let csv = dir.path().join("patients.csv");
        std::fs::write(&csv, "patient_ref,dob,zip\nP1,1970-01-31,60601\n").expect("writable");
        let options = ImportOptions {
            today: jiff::civil::date(2026, 6, 1),
            skip_invalid: false,
        };
        import_file(
            &csv,
            &dir.path().join("directory.jsonl"),
            &pepper(),
            &options,
        )
        .expect("imports");
        let config = DirectoryConfig::File {
            path: PathBuf::from("directory.jsonl"),
        };
        let base = dir.path().to_owned();
        let directory = open_directory(&config, |p| base.join(p), pepper(), None).expect("opens");
        assert_eq!(directory.kind(), "file");
        let missing = open_directory(&config, Path::to_path_buf, pepper(), None)
            .err()
            .expect("not in the working directory");
        assert!(matches!(
            missing,
            OpenDirectoryError::File(LoadError::Read { .. })
        ));
    }
}
