//! Who is calling: identity claims, the patient directory, password reset and the audit log.
//!
//! Protected health information stays inside this module. Identifier digits live only in
//! [`SecretBytes`]-backed types ([`Claim`], [`ResetCode`]) that never print and wipe their
//! buffers when dropped; what leaves is a keyed hash, a [`RecordPseudonym`], or an opaque
//! [`PatientRef`] (itself never printed).
//!
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
pub mod directory;
pub mod hashed_file;
pub mod http;
pub mod import;
pub mod reset;
pub mod secret;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditEntry, AuditError, AuditEvent, AuditLog, AuditOutcome};
pub use claim::{Claim, ClaimError, DateOfBirth, SecondIdentifier};
pub use csv::CsvError;
pub use directory::{Directory, DirectoryError, PatientRef, PatientRefError, Verification};
pub use hashed_file::{HashedFileDirectory, LoadError};
pub use http::{EndpointError, HttpVerifier};
pub use import::{ImportError, ImportOptions, ImportReport, import, import_file};
pub use reset::{CODE_DIGITS, CODE_MAX_CHECKS, PortalReset, ResetCode, ResetError, code_hash};
pub use secret::{
    Pepper, RecordPseudonym, SIGNATURE_HEADER, SecretBytes, SecretError, WebhookSecret,
};

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
