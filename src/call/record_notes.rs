//! What a call's session tells the call's record while it carries the stream — the node the
//! call is at (and so the path it took), the queue it waits in, the verified patient or a failed
//! verification, how the stream ended — written
//! in the order it happened by one task per call, so the session never waits on the store
//! except where the order with another node matters (before a join, before closing).
//!
//! A store that cannot be reached loses a note (logged): the call goes on, and at worst a lost
//! stream resumes at an older place.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::registry::CallRegistry;
use crate::identity::PatientRef;
use crate::store::{CallStep, QueuedCall};

/// One thing the record must learn.
#[derive(Debug)]
pub enum Note {
    /// The call moved to this IVR node.
    AtNode(String),
    /// The call waits in a queue (as it first joined), or no longer does. The sender learns
    /// when the record has it.
    Queued(Option<QueuedCall>, Option<oneshot::Sender<()>>),
    /// The caller failed identity verification.
    VerificationFailed,
    /// The caller passed identity verification as this patient.
    Verified(PatientRef),
    /// The stream ended: what careline decided (`None`: resume where it was).
    End(Option<CallStep>, Option<oneshot::Sender<()>>),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct RecordNotes {
    sender: mpsc::UnboundedSender<Note>,
}

impl RecordNotes {
    /// Start the writer of `call_sid`'s notes. It ends after the stream's [`Note::End`] (or when
    /// every sender is gone).
    pub fn start(calls: Arc<CallRegistry>, call_sid: String) -> RecordNotes {
        let (sender, mut notes) = mpsc::unbounded_channel::<Note>();
        tokio::spawn(async move {
            while let Some(note) = notes.recv().await {
                let done = matches!(note, Note::End(..));
                write(&calls, &call_sid, note).await;
                if done {
                    break;
                }
            }
        });
        RecordNotes { sender }
    }

    pub fn send(&self, note: Note) {
        // The writer lives as long as a sender does, until the stream's end: nothing is lost
        // but notes after the end, which have nothing to say.
        let _ = self.sender.send(note);
    }

    /// Note the queue the call waits in; the future resolves once the record has it (or the
    /// write failed).
    pub fn queued(&self, queued: Option<QueuedCall>) -> impl Future<Output = ()> + Send + 'static {
        let (done, written) = oneshot::channel();
        self.send(Note::Queued(queued, Some(done)));
        async move {
            let _ = written.await;
        }
    }

    /// Note how the stream ended and wait until the record has it.
    pub async fn end(&self, next: Option<CallStep>) {
        let (done, written) = oneshot::channel();
        self.send(Note::End(next, Some(done)));
        let _ = written.await;
    }
}

async fn write(calls: &CallRegistry, call_sid: &str, note: Note) {
    let (written, done) = match note {
        Note::AtNode(node) => (
            calls.note(call_sid, |record| record.moved_to(&node)).await,
            None,
        ),
        Note::Verified(patient) => (
            calls
                .note(call_sid, |record| {
                    record.patient_ref = Some(patient.as_str().to_owned());
                    record.verification_failed = false;
                })
                .await,
            None,
        ),
        Note::Queued(queued, done) => (
            calls
                .note(call_sid, |record| record.queued.clone_from(&queued))
                .await,
            done,
        ),
        Note::VerificationFailed => (
            calls
                .note(call_sid, |record| record.verification_failed = true)
                .await,
            None,
        ),
        Note::End(next, done) => (calls.stream_ended(call_sid, next).await, done),
    };
    if let Err(error) = written {
        tracing::warn!(%call_sid, %error, "the call's record could not be updated");
    }
    if let Some(done) = done {
        let _ = done.send(());
    }
}
