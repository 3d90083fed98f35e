//! The verification policy and reset methods a call uses: a claim is checked against the
//! directory, failures count against the claimed record in the store (so a lockout holds across
//! calls, nodes and restarts), every step is audited, and a reset goes to the portal or becomes
//! a one-time code whose hash alone is kept.
//!
//! Answers are the engine's outcomes: anything that cannot be decided — a directory, portal or
//! store that does not answer — is "send to a person", never "verified".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::{
    AuditEntry, AuditEvent, AuditLog, AuditOutcome, CODE_MAX_CHECKS, Claim, Directory, PatientRef,
    Pepper, PortalReset, RecordPseudonym, ResetCode, Verification, WebhookSecret, code_hash,
    open_directory,
};
use super::{Digits, ResetOutcome, VerifyOutcome};
use crate::config::{Config, Identifier, ResetMethod};
use crate::store::{CallOutcomeStat, CodeCheck, Store, StoreError};
use crate::telemetry::Metrics;

/// Counting a verdict in the statistics never holds a caller up longer than this.
const STATS_DEADLINE: Duration = Duration::from_millis(250);

/// Why identity services could not start. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum IdentityStartError {
    #[error("[identity] directory: {0}")]
    Directory(#[from] super::OpenDirectoryError),
    #[error("[identity] audit_log: {0}")]
    Audit(#[from] super::AuditError),
    #[error("[password_reset] portal_url: {0}")]
    Portal(#[from] super::EndpointError),
    #[error(
        "[password_reset] portal_url needs {var} to sign its requests (set it in the environment)"
    )]
    PortalSecret { var: &'static str },
}

/// Identity verification and password reset for every call on this node.
pub struct IdentityService {
    directory: Arc<dyn Directory>,
    pepper: Arc<Pepper>,
    store: Arc<dyn Store>,
    audit: AuditLog,
    lockout_failures: u32,
    lockout_window: Duration,
    portal: Option<PortalReset>,
    code_digits: u32,
    code_ttl: Duration,
    /// Directory checks per verify node and call before the engine gives up (`max_attempts`).
    max_attempts: u32,
    /// Where decided verifications are counted; the server shares its own.
    metrics: Arc<Metrics>,
}

/// Whether `outcome` of attempt `attempt` decides the call's verification: passed, failed for
/// good (locked out, or the last attempt failed: the engine sends the caller on), or not yet
/// (`None`: another attempt follows, or nothing was decided, e.g. an unreachable directory).
/// Mirrors the engine's rule in `ivr::engine::verify`.
pub fn verification_verdict(
    outcome: &VerifyOutcome,
    attempt: u32,
    max_attempts: u32,
) -> Option<bool> {
    match outcome {
        VerifyOutcome::Verified { .. } => Some(true),
        VerifyOutcome::LockedOut => Some(false),
        VerifyOutcome::NotVerified if attempt >= max_attempts.max(1) => Some(false),
        VerifyOutcome::NotVerified | VerifyOutcome::Malformed | VerifyOutcome::Unavailable => None,
    }
}

/// What the portal learns when it redeems a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    Valid,
    Wrong { checks_left: u32 },
    NoCode,
}

impl IdentityService {
    /// Build from `[identity]` and `[password_reset]`. `resolve` maps configured paths.
    pub fn open(
        config: &Config,
        resolve: impl Fn(&Path) -> PathBuf,
        pepper: Arc<Pepper>,
        webhook_secret: Option<WebhookSecret>,
        store: Arc<dyn Store>,
    ) -> Result<Option<IdentityService>, IdentityStartError> {
        let Some(identity) = &config.identity else {
            return Ok(None);
        };
        let directory = open_directory(
            &identity.directory,
            &resolve,
            pepper.clone(),
            webhook_secret.clone(),
        )?;
        let audit = AuditLog::open(&resolve(&identity.audit_log))?;
        let reset = config.password_reset.as_ref();
        let portal = match reset.and_then(|reset| reset.portal_url.as_deref()) {
            Some(url) => {
                let secret = webhook_secret.ok_or(IdentityStartError::PortalSecret {
                    var: WebhookSecret::ENV,
                })?;
                Some(PortalReset::new(url, secret, Duration::from_secs(5))?)
            }
            None => None,
        };
        Ok(Some(IdentityService {
            directory,
            pepper,
            store,
            audit,
            lockout_failures: identity.lockout_failures.max(1),
            lockout_window: Duration::from_secs(identity.lockout_window_hours * 3600),
            portal,
            code_digits: reset.map_or(8, |reset| reset.code_digits),
            code_ttl: Duration::from_secs(reset.map_or(600, |reset| reset.code_ttl_secs)),
            max_attempts: identity.max_attempts.max(1),
            metrics: Arc::new(Metrics::new()),
        }))
    }

    /// Count decided verifications in `metrics` (the server's) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> IdentityService {
        self.metrics = metrics;
        self
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.lockout_window.as_millis()).unwrap_or(i64::MAX)
    }

    fn write(&self, entry: AuditEntry) {
        if let Err(error) = self.audit.write(&entry) {
            tracing::error!(%error, "audit log write failed; the event is lost from the log");
        }
    }

    /// Check what the caller keyed in at a verify node. A verdict that decides the call (see
    /// [`verification_verdict`]) is counted in the metrics and the store's call statistics.
    #[allow(clippy::too_many_arguments)]
    pub async fn verify(
        &self,
        call_sid: &str,
        node: &str,
        attempt: u32,
        dob: &Digits,
        identifier: Identifier,
        value: &Digits,
        now: Timestamp,
    ) -> VerifyOutcome {
        let outcome = self
            .check_claim(call_sid, node, attempt, dob, identifier, value, now)
            .await;
        if let Some(passed) = verification_verdict(&outcome, attempt, self.max_attempts) {
            self.count_verdict(passed, now).await;
        }
        outcome
    }

    async fn count_verdict(&self, passed: bool, now: Timestamp) {
        self.metrics.verification(passed);
        let stat = if passed {
            CallOutcomeStat::VerificationPassed
        } else {
            CallOutcomeStat::VerificationFailed
        };
        let recording = self.store.record_call_outcome(stat, now.as_millisecond());
        match tokio::time::timeout(STATS_DEADLINE, recording).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                self.metrics.store_error();
                tracing::warn!(%error, "a verification outcome could not be counted");
            }
            Err(_) => {
                self.metrics.store_error();
                tracing::warn!("a verification outcome was not counted: the store was too slow");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_claim(
        &self,
        call_sid: &str,
        node: &str,
        attempt: u32,
        dob: &Digits,
        identifier: Identifier,
        value: &Digits,
        now: Timestamp,
    ) -> VerifyOutcome {
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let Ok(claim) = Claim::from_keyed(identifier, dob.expose(), value.expose(), today) else {
            return VerifyOutcome::Malformed;
        };
        let entry = |event, outcome| {
            AuditEntry::new(now, event, outcome)
                .in_call(call_sid, node)
                .attempt(attempt)
        };
        let now_ms = now.as_millisecond();
        match self.directory.verify(call_sid, &claim).await {
            Err(error) => {
                tracing::warn!(%error, "verification could not be decided");
                self.write(entry(
                    AuditEvent::VerifyAttempt,
                    AuditOutcome::DirectoryUnavailable,
                ));
                VerifyOutcome::Unavailable
            }
            Ok(Verification::Ambiguous) => {
                self.write(entry(AuditEvent::VerifyAttempt, AuditOutcome::Ambiguous));
                VerifyOutcome::Unavailable
            }
            Ok(Verification::Match {
                patient_ref,
                record,
            }) => match self.failures(&record, now_ms).await {
                Err(error) => {
                    tracing::warn!(%error, "lockout state unknown; the caller goes to a person");
                    self.write(
                        entry(
                            AuditEvent::VerifyAttempt,
                            AuditOutcome::DirectoryUnavailable,
                        )
                        .record(record),
                    );
                    VerifyOutcome::Unavailable
                }
                Ok(failures) if failures >= self.lockout_failures => {
                    self.write(entry(AuditEvent::Lockout, AuditOutcome::LockedOut).record(record));
                    VerifyOutcome::LockedOut
                }
                Ok(_) => {
                    self.write(
                        entry(AuditEvent::VerifySuccess, AuditOutcome::Match).record(record),
                    );
                    VerifyOutcome::Verified {
                        patient: patient_ref,
                    }
                }
            },
            Ok(Verification::NoMatch { claimed_records }) => {
                let mut locked = false;
                for record in claimed_records {
                    match self
                        .store
                        .record_verification_failure(record.as_str(), self.window_ms(), now_ms)
                        .await
                    {
                        Ok(failures) => {
                            if failures >= self.lockout_failures {
                                locked = true;
                                self.write(
                                    entry(AuditEvent::Lockout, AuditOutcome::LockedOut)
                                        .record(record.clone()),
                                );
                            }
                            self.write(
                                entry(AuditEvent::VerifyFailure, AuditOutcome::NoMatch)
                                    .record(record),
                            );
                        }
                        Err(error) => {
                            tracing::warn!(%error, "a failed verification could not be counted");
                        }
                    }
                }
                if locked {
                    VerifyOutcome::LockedOut
                } else {
                    self.write(entry(AuditEvent::VerifyAttempt, AuditOutcome::NoMatch));
                    VerifyOutcome::NotVerified
                }
            }
        }
    }

    async fn failures(&self, record: &RecordPseudonym, now_ms: i64) -> Result<u32, StoreError> {
        self.store
            .verification_failures(record.as_str(), self.window_ms(), now_ms)
            .await
    }

    /// Carry out a password reset for the verified patient.
    pub async fn reset(
        &self,
        call_sid: &str,
        node: &str,
        method: ResetMethod,
        patient: &PatientRef,
        now: Timestamp,
    ) -> ResetOutcome {
        let record = self.pepper.pseudonym(patient.as_str());
        let entry = |event, outcome| {
            AuditEntry::new(now, event, outcome)
                .in_call(call_sid, node)
                .record(record.clone())
        };
        match method {
            ResetMethod::Portal => {
                let Some(portal) = &self.portal else {
                    tracing::error!("password reset by portal needs [password_reset] portal_url");
                    self.write(entry(
                        AuditEvent::ResetRequested,
                        AuditOutcome::PortalUnavailable,
                    ));
                    return ResetOutcome::Failed;
                };
                match portal.request(patient, call_sid, now).await {
                    Ok(()) => {
                        self.write(entry(AuditEvent::ResetRequested, AuditOutcome::Sent));
                        ResetOutcome::LinkSent
                    }
                    Err(_) => {
                        self.write(entry(
                            AuditEvent::ResetRequested,
                            AuditOutcome::PortalUnavailable,
                        ));
                        ResetOutcome::Failed
                    }
                }
            }
            ResetMethod::Code => {
                let code = match ResetCode::generate(self.code_digits) {
                    Ok(code) => code,
                    Err(error) => {
                        tracing::error!(%error, "no reset code could be made");
                        return ResetOutcome::Failed;
                    }
                };
                let hash = code_hash(&self.pepper, patient, &code);
                let ttl_ms = i64::try_from(self.code_ttl.as_millis()).unwrap_or(i64::MAX);
                let stored = self
                    .store
                    .put_reset_code(
                        record.as_str(),
                        &hash,
                        CODE_MAX_CHECKS,
                        now.as_millisecond().saturating_add(ttl_ms),
                    )
                    .await;
                match stored {
                    Ok(()) => {
                        self.write(entry(AuditEvent::ResetCodeIssued, AuditOutcome::Issued));
                        ResetOutcome::CodeIssued(Digits::new(code.expose()))
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reset code could not be stored");
                        ResetOutcome::Failed
                    }
                }
            }
        }
    }

    /// The portal redeems a code the caller was given.
    pub async fn redeem(
        &self,
        patient: &PatientRef,
        entered: &str,
        now: Timestamp,
    ) -> Result<Redemption, StoreError> {
        let record = self.pepper.pseudonym(patient.as_str());
        // A malformed code is still a wrong try against the record's live code.
        let hash = match ResetCode::from_entered(entered) {
            Ok(code) => code_hash(&self.pepper, patient, &code),
            Err(_) => "malformed".to_owned(),
        };
        let check = self
            .store
            .check_reset_code(record.as_str(), &hash, now.as_millisecond())
            .await?;
        let (redemption, outcome) = match check {
            CodeCheck::Valid { .. } => (Redemption::Valid, AuditOutcome::Redeemed),
            CodeCheck::Wrong { checks_left } => {
                (Redemption::Wrong { checks_left }, AuditOutcome::WrongCode)
            }
            CodeCheck::NoCode => (Redemption::NoCode, AuditOutcome::NoCode),
        };
        self.write(AuditEntry::new(now, AuditEvent::ResetCodeRedeemed, outcome).record(record));
        Ok(redemption)
    }

    /// An agent cleared a patient's lockout.
    pub async fn unlock(&self, patient: &PatientRef, now: Timestamp) -> Result<(), StoreError> {
        let record = self.pepper.pseudonym(patient.as_str());
        self.store
            .clear_verification_failures(record.as_str())
            .await?;
        self.write(AuditEntry::new(now, AuditEvent::Lockout, AuditOutcome::Cleared).record(record));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_is_decided_by_a_pass_a_lockout_or_the_last_failed_attempt() {
        let verified = VerifyOutcome::Verified {
            patient: PatientRef::new("pt-1".to_owned()).expect("a reference"),
        };
        assert_eq!(verification_verdict(&verified, 2, 3), Some(true));
        assert_eq!(
            verification_verdict(&VerifyOutcome::LockedOut, 1, 3),
            Some(false)
        );
        assert_eq!(
            verification_verdict(&VerifyOutcome::NotVerified, 2, 3),
            None
        );
        assert_eq!(
            verification_verdict(&VerifyOutcome::NotVerified, 3, 3),
            Some(false)
        );
        assert_eq!(
            verification_verdict(&VerifyOutcome::NotVerified, 1, 0),
            Some(false),
            "max_attempts 0 means one attempt, as in the engine"
        );
        assert_eq!(
            verification_verdict(&VerifyOutcome::Unavailable, 3, 3),
            None
        );
        assert_eq!(verification_verdict(&VerifyOutcome::Malformed, 3, 3), None);
    }
}
