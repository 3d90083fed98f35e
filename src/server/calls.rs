//! The calls this node is carrying: who they are, the per-call stream token, and what Twilio
//! should do when careline closes a call's stream.
//!
//! `/twilio/voice` registers a call and hands Twilio a random token as a stream `<Parameter>`;
//! the media WebSocket must present it in `start.customParameters`, so nobody can attach a
//! stream to a call they did not place. `/twilio/next` reads the call's [`NextStep`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// What Twilio does after careline closes a call's media stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NextStep {
    /// End the call (the goodbye has been played).
    #[default]
    Hangup,
}

#[derive(Debug, Clone)]
struct CallEntry {
    token: String,
    /// Caller ID, masked to its last two digits: enough for an admin, not an identifier.
    from_masked: String,
    registered: Instant,
    streaming: bool,
    /// Media streams this call has opened (a call re-queued after a missed offer opens another).
    streams: u32,
    next: NextStep,
}

/// What a call is doing, as far as this node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// The voice webhook answered; Twilio has not opened the media stream yet.
    Connecting,
    /// The media stream is open: the caller is in the IVR or waiting in a queue.
    Streaming,
    /// The stream closed and Twilio is hanging up.
    Ending,
}

impl CallPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CallPhase::Connecting => "connecting",
            CallPhase::Streaming => "streaming",
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
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
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
                registered: now,
                streaming: false,
                streams: 0,
                next: NextStep::Hangup,
            },
        );
        token
    }

    /// A media stream starts for `call_sid`, presenting `token`.
    pub fn claim_stream(&self, call_sid: &str, token: &str) -> Result<(), ClaimError> {
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
        Ok(())
    }

    /// The stream ended; `next` is what Twilio should do now.
    pub fn stream_ended(&self, call_sid: &str, next: NextStep) {
        if let Some(call) = self.lock().get_mut(call_sid) {
            call.streaming = false;
            call.next = next;
        }
    }

    /// What to tell Twilio after the stream closed. Unknown calls are hung up.
    pub fn next_step(&self, call_sid: &str) -> NextStep {
        let mut calls = self.lock();
        match calls.get(call_sid).map(|call| call.next.clone()) {
            Some(NextStep::Hangup) | None => {
                calls.remove(call_sid);
                NextStep::Hangup
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
                    CallPhase::Streaming
                } else if call.streams == 0 {
                    CallPhase::Connecting
                } else {
                    match call.next {
                        NextStep::Hangup => CallPhase::Ending,
                    }
                };
                let snapshot = CallSnapshot {
                    call_sid: call_sid.clone(),
                    phase,
                    age: now.saturating_duration_since(call.registered),
                    caller_id_masked: call.from_masked.clone(),
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
        assert_eq!(calls.claim_stream("CA1", &token), Ok(()));
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
    fn caller_id_is_masked_to_the_last_two_digits() {
        assert_eq!(mask_caller_id("+13125550101"), "•••••••••01");
        assert_eq!(mask_caller_id("anonymous"), "");
    }
}
