//! The calls this node is carrying: who they are, the per-call stream token, and what Twilio
//! should do when careline closes a call's stream.
//!
//! `/twilio/voice` registers a call and hands Twilio a random token as a stream `<Parameter>`;
//! the media WebSocket must present it in `start.customParameters`, so nobody can attach a
//! stream to a call they did not place. `/twilio/next` reads the call's [`NextStep`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::store::QueuedCall;
use crate::twilio::twiml::DialTarget;

/// What Twilio does after careline closes a call's media stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NextStep {
    /// End the call (the goodbye has been played).
    #[default]
    Hangup,
    /// Ring the agent the router reserved for the call.
    Agent(AgentDial),
    /// Ring an external number (a `transfer` node).
    Transfer(TransferDial),
}

/// A call offered to an agent, from `/twilio/next` until `/twilio/dial-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDial {
    pub agent_id: String,
    pub target: DialTarget,
    pub ring_timeout_secs: u32,
    /// The call as it first joined its queue: an unanswered offer puts it back in its place.
    pub call: QueuedCall,
    /// The queue node the call resumes at if the agent does not answer.
    pub queue_node: Arc<str>,
}

/// A `transfer` node's dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferDial {
    pub number: String,
    pub timeout_secs: u32,
    /// The node the call resumes at when nobody answers; `None` ends the call.
    pub on_failure: Option<Arc<str>>,
}

/// What a new media stream of a call picks up from the one before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamClaim {
    /// The node the call resumes at; `None`: the flow's entry (a new call).
    pub resume_at: Option<Arc<str>>,
    /// The call as it first joined its queue, to re-join with its original place.
    pub queued: Option<QueuedCall>,
}

#[derive(Debug, Clone)]
struct CallEntry {
    token: String,
    /// Caller ID, masked to its last two digits: enough for an admin, not an identifier.
    from_masked: String,
    /// Caller ID as Twilio sent it: handed to the call's next stream (for a callback), never
    /// shown or logged.
    from: String,
    registered: Instant,
    streaming: bool,
    /// Media streams this call has opened (a call re-queued after a missed offer opens another).
    streams: u32,
    next: NextStep,
    /// What the next stream resumes at (after an unanswered offer or transfer).
    resume: StreamClaim,
    /// The dial Twilio is running (after `/twilio/next` answered it), and when it was answered.
    dialing: Option<(NextStep, Option<Instant>)>,
    /// The queue the call waits in, and since when (for the admin API).
    queue: Option<(String, Instant)>,
    /// The caller failed identity verification: the agent must know.
    verification_failed: bool,
}

/// What a call is doing, as far as this node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// The voice webhook answered; Twilio has not opened the media stream yet.
    Connecting,
    /// The media stream is open: the caller is in the IVR or waiting in a queue.
    Streaming,
    /// Waiting in a queue.
    Queued,
    /// Ringing an agent or a transfer number.
    Ringing,
    /// Talking to an agent or a transfer number.
    Connected,
    /// The stream closed and Twilio is hanging up.
    Ending,
}

impl CallPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CallPhase::Connecting => "connecting",
            CallPhase::Streaming => "streaming",
            CallPhase::Queued => "queued",
            CallPhase::Ringing => "ringing",
            CallPhase::Connected => "connected",
            CallPhase::Ending => "ending",
        }
    }
}

/// One call as the admin API shows it: no caller identifier beyond the masked caller ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSnapshot {
    pub call_sid: String,
    pub phase: CallPhase,
    /// How long ago the voice webhook registered the call.
    pub age: Duration,
    pub caller_id_masked: String,
    /// The queue the call waits in (or was offered from), and for how long it has waited.
    pub queue: Option<(String, Duration)>,
    pub verification_failed: bool,
}

/// Calls registered by the voice webhook, keyed by Twilio's CallSid.
#[derive(Debug, Default)]
pub struct CallRegistry {
    calls: Mutex<HashMap<String, CallEntry>>,
}

/// Calls that never opened a stream are forgotten after this long.
const UNCLAIMED_TTL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("no call with this CallSid was announced by the voice webhook")]
    UnknownCall,
    #[error("the stream's call token does not match the one issued for this call")]
    WrongToken,
    #[error("this call already has a media stream")]
    AlreadyStreaming,
}

impl CallRegistry {
    pub fn new() -> CallRegistry {
        CallRegistry::default()
    }

    /// Register a call from the voice webhook; returns the token its stream must present.
    pub fn register(&self, call_sid: &str, from: &str) -> String {
        let token = new_token();
        let mut calls = self.lock();
        let now = Instant::now();
        calls.retain(|_, call| {
            call.streaming || now.duration_since(call.registered) < UNCLAIMED_TTL
        });
        calls.insert(
            call_sid.to_owned(),
            CallEntry {
                token: token.clone(),
                from_masked: mask_caller_id(from),
                from: from.to_owned(),
                registered: now,
                streaming: false,
                streams: 0,
                next: NextStep::Hangup,
                resume: StreamClaim::default(),
                dialing: None,
                queue: None,
                verification_failed: false,
            },
        );
        token
    }

    /// A media stream starts for `call_sid`, presenting `token`; returns where it resumes.
    pub fn claim_stream(&self, call_sid: &str, token: &str) -> Result<StreamClaim, ClaimError> {
        let mut calls = self.lock();
        let call = calls.get_mut(call_sid).ok_or(ClaimError::UnknownCall)?;
        let expected = call.token.as_bytes();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected, token.as_bytes())) {
            return Err(ClaimError::WrongToken);
        }
        if call.streaming {
            return Err(ClaimError::AlreadyStreaming);
        }
        call.streaming = true;
        call.streams += 1;
        Ok(std::mem::take(&mut call.resume))
    }

    /// The call waits in `queue` (or no longer waits: `None`).
    pub fn set_queue(&self, call_sid: &str, queue: Option<&str>) {
        if let Some(call) = self.lock().get_mut(call_sid) {
            match queue {
                Some(queue) => {
                    if call.queue.as_ref().is_none_or(|(name, _)| name != queue) {
                        call.queue = Some((queue.to_owned(), Instant::now()));
                    }
                }
                None => call.queue = None,
            }
        }
    }

    /// The caller failed identity verification (shown with the call until it ends).
    pub fn mark_verification_failed(&self, call_sid: &str) {
        if let Some(call) = self.lock().get_mut(call_sid) {
            call.verification_failed = true;
        }
    }

    /// The dial Twilio reported an answer for: `on_call` from now.
    pub fn dial_answered(&self, call_sid: &str) -> Option<NextStep> {
        let mut calls = self.lock();
        let (step, answered) = calls.get_mut(call_sid)?.dialing.as_mut()?;
        answered.get_or_insert_with(Instant::now);
        Some(step.clone())
    }

    /// The dial ended: what it was and how long the far end talked (if it answered).
    pub fn dial_finished(&self, call_sid: &str) -> Option<(NextStep, Option<Duration>)> {
        let mut calls = self.lock();
        let (step, answered) = calls.get_mut(call_sid)?.dialing.take()?;
        Some((step, answered.map(|at| at.elapsed())))
    }

    /// The call goes back to careline on a new media stream resuming at `node`; returns the
    /// token that stream must present and the caller ID for its `from` parameter. `None` when
    /// the call is unknown (it hung up).
    pub fn resume(
        &self,
        call_sid: &str,
        node: Arc<str>,
        queued: Option<QueuedCall>,
    ) -> Option<(String, String)> {
        let token = new_token();
        let mut calls = self.lock();
        let call = calls.get_mut(call_sid)?;
        call.token.clone_from(&token);
        call.next = NextStep::Hangup;
        call.resume = StreamClaim {
            resume_at: Some(node),
            queued,
        };
        Some((token, call.from.clone()))
    }

    /// The stream ended; `next` is what Twilio should do now.
    pub fn stream_ended(&self, call_sid: &str, next: NextStep) {
        if let Some(call) = self.lock().get_mut(call_sid) {
            call.streaming = false;
            call.next = next;
        }
    }

    /// What to tell Twilio after the stream closed. Unknown calls are hung up; a dial is
    /// remembered until `/twilio/dial-status` reports how it went.
    pub fn next_step(&self, call_sid: &str) -> NextStep {
        let mut calls = self.lock();
        let Some(call) = calls.get_mut(call_sid) else {
            return NextStep::Hangup;
        };
        match std::mem::take(&mut call.next) {
            NextStep::Hangup => {
                calls.remove(call_sid);
                NextStep::Hangup
            }
            dial => {
                call.dialing = Some((dial.clone(), None));
                dial
            }
        }
    }

    /// The call ended (status callback): forget it.
    pub fn remove(&self, call_sid: &str) {
        self.lock().remove(call_sid);
    }

    pub fn caller_id_masked(&self, call_sid: &str) -> Option<String> {
        self.lock()
            .get(call_sid)
            .map(|call| call.from_masked.clone())
    }

    /// Every call this node is carrying, oldest first. The lock is held only to copy the entries.
    pub fn snapshot(&self) -> Vec<CallSnapshot> {
        let now = Instant::now();
        let mut calls: Vec<(Instant, CallSnapshot)> = self
            .lock()
            .iter()
            .map(|(call_sid, call)| {
                let phase = if call.streaming {
                    if call.queue.is_some() {
                        CallPhase::Queued
                    } else {
                        CallPhase::Streaming
                    }
                } else if call.streams == 0 {
                    CallPhase::Connecting
                } else {
                    match (&call.next, &call.dialing) {
                        (_, Some((_, Some(_)))) => CallPhase::Connected,
                        (_, Some((_, None))) => CallPhase::Ringing,
                        (NextStep::Agent(_) | NextStep::Transfer(_), None) => CallPhase::Ringing,
                        (NextStep::Hangup, None) => CallPhase::Ending,
                    }
                };
                let snapshot = CallSnapshot {
                    call_sid: call_sid.clone(),
                    phase,
                    age: now.saturating_duration_since(call.registered),
                    caller_id_masked: call.from_masked.clone(),
                    queue: call
                        .queue
                        .as_ref()
                        .map(|(name, since)| (name.clone(), now.saturating_duration_since(*since))),
                    verification_failed: call.verification_failed,
                };
                (call.registered, snapshot)
            })
            .collect();
        calls.sort_by(|(a, left), (b, right)| {
            a.cmp(b).then_with(|| left.call_sid.cmp(&right.call_sid))
        });
        calls.into_iter().map(|(_, snapshot)| snapshot).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallEntry>> {
        // A panic while holding this lock cannot leave the map half-updated (each operation is
        // one insert/remove), so a poisoned lock is still safe to use.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `+13125550101` → `•••••••••01`.
pub fn mask_caller_id(from: &str) -> String {
    let digits: Vec<char> = from.chars().filter(char::is_ascii_digit).collect();
    let keep = digits.len().saturating_sub(2);
    digits
        .iter()
        .enumerate()
        .map(|(index, digit)| if index < keep { '•' } else { *digit })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_must_present_the_token_issued_for_its_call() {
        let calls = CallRegistry::new();
        let token = calls.register("CA1", "+13125550101");
        assert_eq!(
            calls.claim_stream("CA1", "forged"),
            Err(ClaimError::WrongToken)
        );
        assert_eq!(
            calls.claim_stream("CA2", &token),
            Err(ClaimError::UnknownCall)
        );
        assert_eq!(
            calls.claim_stream("CA1", &token),
            Ok(StreamClaim::default())
        );
        assert_eq!(
            calls.claim_stream("CA1", &token),
            Err(ClaimError::AlreadyStreaming)
        );
    }

    #[test]
    fn a_snapshot_follows_a_call_through_its_stream_without_its_number() {
        let calls = CallRegistry::new();
        let token = calls.register("CA1", "+13125550101");
        let phases = |calls: &CallRegistry| -> Vec<(String, CallPhase, String)> {
            calls
                .snapshot()
                .into_iter()
                .map(|call| (call.call_sid, call.phase, call.caller_id_masked))
                .collect()
        };
        let masked = "•••••••••01".to_owned();
        assert_eq!(
            phases(&calls),
            vec![("CA1".to_owned(), CallPhase::Connecting, masked.clone())]
        );
        calls.claim_stream("CA1", &token).expect("claims");
        calls.set_queue("CA1", Some("portal"));
        assert_eq!(calls.snapshot()[0].phase, CallPhase::Queued);
        calls.set_queue("CA1", None);
        assert_eq!(
            phases(&calls),
            vec![("CA1".to_owned(), CallPhase::Streaming, masked.clone())]
        );
        calls.stream_ended("CA1", NextStep::Hangup);
        assert_eq!(
            phases(&calls),
            vec![("CA1".to_owned(), CallPhase::Ending, masked)]
        );
    }

    #[test]
    fn a_caller_who_failed_verification_is_flagged_for_the_agent() {
        let calls = CallRegistry::new();
        let token = calls.register("CA1", "+13125550101");
        calls.claim_stream("CA1", &token).expect("claims");
        assert!(!calls.snapshot()[0].verification_failed);
        calls.mark_verification_failed("CA1");
        calls.set_queue("CA1", Some("portal"));
        assert!(calls.snapshot()[0].verification_failed);
    }

    #[test]
    fn caller_id_is_masked_to_the_last_two_digits() {
        assert_eq!(mask_caller_id("+13125550101"), "•••••••••01");
        assert_eq!(mask_caller_id("anonymous"), "");
    }
}
