//! The identity audit log: append-only JSON lines, one per verification or reset event.
//!
//! ```text
//! {"time":"2026-06-01T14:03:07Z","call_sid":"CA…","node":"verify","event":"verify_attempt",
//!  "attempt":2,"record":"<pseudonym>","outcome":"no_match"}
//! ```
//!
//! Every field is typed so that nothing a caller typed can reach a line: the event and outcome
//! are enums, the record only a [`RecordPseudonym`] (made by the pepper), the attempt a number.
//! Each line is one `write` to a file opened for appending, so concurrent calls (and several
//! careline processes on one host) never interleave within a line. A failed write is returned
//! to the caller to log and count; it never ends a call.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::Serialize;

use super::secret::RecordPseudonym;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// A well-formed claim was checked against the directory.
    VerifyAttempt,
    /// The caller is verified (the call now carries the patient reference).
    VerifySuccess,
    /// The caller used up the node's attempts and goes to a person, flagged.
    VerifyFailure,
    /// Self-service is (or already was) disabled for the record.
    Lockout,
    /// The portal was asked to send its reset link.
    ResetRequested,
    /// A one-time code was made and spoken.
    ResetCodeIssued,
    /// The portal tried to redeem a code.
    ResetCodeRedeemed,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Match,
    NoMatch,
    /// More than one record matched; the caller goes to a person.
    Ambiguous,
    /// The directory could not tell; the caller goes to a person.
    DirectoryUnavailable,
    /// The record is locked: the caller goes to a person.
    LockedOut,
    /// Handed to a person.
    ToAgent,
    /// The portal accepted the reset request.
    Sent,
    /// The portal did not take the reset request; the caller goes to a person.
    PortalUnavailable,
    Issued,
    Redeemed,
    WrongCode,
    /// No live code (never issued, expired, used, or out of checks).
    NoCode,
    /// An agent cleared the record's lockout.
    Cleared,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: Timestamp,
    pub call_sid: Option<String>,
    pub node: Option<String>,
    pub event: AuditEvent,
    /// The attempt number within the call (1-based) where that means something.
    pub attempt: Option<u32>,
    pub record: Option<RecordPseudonym>,
    pub outcome: AuditOutcome,
}

impl AuditEntry {
    pub fn new(time: Timestamp, event: AuditEvent, outcome: AuditOutcome) -> AuditEntry {
        AuditEntry {
            time,
            call_sid: None,
            node: None,
            event,
            attempt: None,
            record: None,
            outcome,
        }
    }

    /// The call and node the event happened in.
    pub fn in_call(mut self, call_sid: &str, node: &str) -> AuditEntry {
        self.call_sid = Some(call_sid.to_owned());
        self.node = Some(node.to_owned());
        self
    }

    pub fn attempt(mut self, attempt: u32) -> AuditEntry {
        self.attempt = Some(attempt);
        self
    }

    pub fn record(mut self, record: RecordPseudonym) -> AuditEntry {
        self.record = Some(record);
        self
    }

    /// The JSON line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Line<'a> {
            time: String,
            call_sid: Option<&'a str>,
            node: Option<&'a str>,
            event: AuditEvent,
            attempt: Option<u32>,
            record: Option<&'a RecordPseudonym>,
            outcome: AuditOutcome,
        }
        let line = Line {
            time: self.time.to_string(),
            call_sid: self.call_sid.as_deref(),
            node: self.node.as_deref(),
            event: self.event,
            attempt: self.attempt,
            record: self.record.as_ref(),
            outcome: self.outcome,
        };
        // Strings, numbers and unit enums always serialise.
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {}: {source} (check [identity] audit_log and its directory's permissions)", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to the audit log {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The open audit log, shared by every call.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Open (creating it and its directories) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let open_error = |source| AuditError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(open_error)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(open_error)?;
        Ok(AuditLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line and flush it. A short local write; fine to call from async code.
    pub fn write(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let line = entry.to_line();
        // A panic while holding the lock cannot leave a half-written line behind (one
        // write_all per line), so a poisoned lock is still safe to use.
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line)
            .and_then(|()| file.flush())
            .map_err(|source| AuditError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::identity::secret::Pepper;

    fn time() -> Timestamp {
        "2026-06-01T14:03:07Z".parse().expect("valid timestamp")
    }

    fn pseudonym() -> RecordPseudonym {
        Pepper::new("0123456789abcdef0123456789abcdef")
            .expect("long enough")
            .pseudonym("P000123")
    }

    #[test]
    fn a_line_has_every_field_in_order() {
        let entry = AuditEntry::new(time(), AuditEvent::VerifyAttempt, AuditOutcome::NoMatch)
            .in_call("CA123", "verify")
            .attempt(2)
            .record(pseudonym());
        let line = String::from_utf8(entry.to_line()).expect("UTF-8");
        assert_eq!(
            line,
            format!(
                "{{\"time\":\"2026-06-01T14:03:07Z\",\"call_sid\":\"CA123\",\"node\":\"verify\",\
                 \"event\":\"verify_attempt\",\"attempt\":2,\"record\":\"{}\",\
                 \"outcome\":\"no_match\"}}\n",
                pseudonym()
            )
        );
    }

    #[test]
    fn absent_fields_are_null() {
        let entry = AuditEntry::new(
            time(),
            AuditEvent::ResetCodeRedeemed,
            AuditOutcome::WrongCode,
        );
        let value: serde_json::Value =
            serde_json::from_slice(&entry.to_line()).expect("one JSON object");
        assert_eq!(value["call_sid"], serde_json::Value::Null);
        assert_eq!(value["record"], serde_json::Value::Null);
        assert_eq!(value["attempt"], serde_json::Value::Null);
        assert_eq!(value["event"], "reset_code_redeemed");
        assert_eq!(value["outcome"], "wrong_code");
    }

    #[test]
    fn event_names_are_the_ones_the_design_lists() {
        let names: Vec<String> = [
            AuditEvent::VerifyAttempt,
            AuditEvent::VerifySuccess,
            AuditEvent::VerifyFailure,
            AuditEvent::Lockout,
            AuditEvent::ResetRequested,
            AuditEvent::ResetCodeIssued,
            AuditEvent::ResetCodeRedeemed,
        ]
        .iter()
        .map(|event| {
            serde_json::to_value(event)
                .expect("serialisable")
                .to_string()
        })
        .collect();
        assert_eq!(
            names,
            [
                "\"verify_attempt\"",
                "\"verify_success\"",
                "\"verify_failure\"",
                "\"lockout\"",
                "\"reset_requested\"",
                "\"reset_code_issued\"",
                "\"reset_code_redeemed\""
            ]
        );
    }

    #[test]
    fn the_log_is_created_with_its_directories_and_appended_to() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("var/audit/identity.jsonl");
        let entry = AuditEntry::new(time(), AuditEvent::Lockout, AuditOutcome::LockedOut);
        AuditLog::open(&path)
            .expect("opens")
            .write(&entry)
            .expect("writes");
        AuditLog::open(&path)
            .expect("reopens")
            .write(&entry)
            .expect("writes");
        let text = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn concurrent_writers_never_interleave_lines() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("audit.jsonl");
        let log = Arc::new(AuditLog::open(&path).expect("opens"));
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for attempt in 0..200 {
                        let entry =
                            AuditEntry::new(time(), AuditEvent::VerifyAttempt, AuditOutcome::Match)
                                .in_call(&format!("CA{writer}"), "verify")
                                .attempt(attempt)
                                .record(pseudonym());
                        log.write(&entry).expect("writes");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer finished");
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1600);
        for line in lines {
            let value: serde_json::Value = serde_json::from_str(line).expect("whole JSON line");
            assert_eq!(value["outcome"], "match");
        }
    }

    #[test]
    fn an_unwritable_location_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").expect("writable");
        let error = AuditLog::open(&blocker.join("audit.jsonl")).expect_err("not a directory");
        assert!(error.to_string().contains("audit_log"), "{error}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_is_returned_to_the_caller() {
        let log = AuditLog::open(Path::new("/dev/full")).expect("the device opens");
        let entry = AuditEntry::new(time(), AuditEvent::Lockout, AuditOutcome::LockedOut);
        let error = log.write(&entry).expect_err("the device is full");
        assert!(matches!(error, AuditError::Write { .. }));
    }
}
