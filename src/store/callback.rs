//! Callback requests: a caller's wish to be called back, and every attempt careline makes to
//! place that call itself.
//!
//! A request is written whole by compare-and-set ([`super::Store::replace_callback`] names the
//! version it read), so every step below is a plain function of the request that a test checks
//! without a store, and two nodes racing on one request cannot both win.
//!
//! The life of a request: it is *pending* until it is due (`due_at_ms`); then one node's dialer
//! *claims* it (a lease, renewed while it waits, so a node that dies lets another take over),
//! puts it in its queue at its place and, once an agent is reserved for it, *starts an attempt*
//! and asks Twilio to place the call. The attempt ends with an [`AttemptOutcome`] reported by
//! whichever node Twilio's webhooks reach: connected (the request is done), or not, and then
//! the request is due again `retry_after` later, or *failed* once the patient was tried
//! `max_attempts` times. An agent may mark it done by hand at any time.
//!
//! Nothing here prints a caller's number or a patient reference: `Debug` masks both.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::call_record::mask_caller_id;

/// Attempts kept with a request; older ones are dropped (the count goes on).
pub const MAX_ATTEMPT_LOG: usize = 20;

/// A caller's request to be called back by an agent of `queue`.
///
/// `number` is what the caller asked to be called at: shown to supervisors and agents through
/// the API, never logged (the `Debug` form masks it).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CallbackRequest {
    pub id: String,
    pub queue: String,
    /// E.164, or the digits the caller keyed.
    pub number: String,
    pub call_sid: String,
    pub requested_at_ms: i64,
    /// The caller's place: their original enqueue time when they asked from a queue, else when
    /// the request became due (now, or the queue's next opening). Callbacks due at the same time
    /// are returned in this order, and the dialer queues the request at this place.
    pub place_ms: i64,
    /// When the callback should be made: the next open time of the queue's schedule, or now;
    /// after an attempt that did not reach the patient, the time of the next try.
    pub due_at_ms: i64,
    pub status: CallbackStatus,
    /// When it was done (connected, or marked done by an agent) or given up; `None` while
    /// pending.
    pub completed_at_ms: Option<i64>,
    /// The language the caller used (empty: the flow's default): the call back speaks it.
    pub language: String,
    /// The patient the IVR verified before the request, if any (an opaque reference).
    pub patient_ref: Option<String>,
    /// The caller failed identity verification before the request.
    pub verification_failed: bool,
    /// careline's attempts at placing the call, oldest first (the last [`MAX_ATTEMPT_LOG`]).
    pub attempts: Vec<CallbackAttempt>,
    /// The node whose dialer holds the request (queued for an agent), and until when: past
    /// it, another node may take the request over.
    pub claimed_by: String,
    pub claimed_until_ms: i64,
    /// Bumped by every write; a write names the version it read.
    pub version: u64,
}

impl fmt::Debug for CallbackRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackRequest")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("number", &mask_caller_id(&self.number))
            .field("call_sid", &self.call_sid)
            .field("requested_at_ms", &self.requested_at_ms)
            .field("place_ms", &self.place_ms)
            .field("due_at_ms", &self.due_at_ms)
            .field("status", &self.status)
            .field("completed_at_ms", &self.completed_at_ms)
            .field("language", &self.language)
            .field(
                "patient_ref",
                &self.patient_ref.as_ref().map(|_| "<redacted>"),
            )
            .field("verification_failed", &self.verification_failed)
            .field("attempts", &self.attempts)
            .field("claimed_by", &self.claimed_by)
            .field("claimed_until_ms", &self.claimed_until_ms)
            .field("version", &self.version)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    #[default]
    Pending,
    Done,
    /// The patient could not be reached in `max_attempts` tries: a person decides what next.
    Failed,
}

/// One try at placing a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackAttempt {
    /// 1-based, over the request's whole life.
    pub number: u32,
    /// The agent reserved for it.
    pub agent_id: String,
    pub started_at_ms: i64,
    /// Twilio's CallSid of the outbound call, once Twilio took the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio_sid: Option<String>,
    /// `None` while the attempt is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The patient pressed 1 and the agent answered.
    Connected,
    /// The patient's phone rang out.
    NoAnswer,
    Busy,
    /// Twilio could not place the call (an unreachable number, a carrier error).
    Failed,
    /// An answering machine or fax answered.
    Machine,
    /// The patient answered but did not press 1 (or hung up first).
    NoResponse,
    /// The patient pressed 1 but the agent did not answer.
    AgentMissed,
    /// Twilio's REST API refused the request or did not answer; the patient was not called.
    RestError,
    /// No webhook ever told how it went; released after a safety deadline.
    Lost,
}

impl AttemptOutcome {
    /// Whether the attempt tried the patient and did not reach them: these count towards
    /// `max_attempts`. Errors on careline's or the agent's side do not.
    pub fn counts_against_patient(self) -> bool {
        matches!(
            self,
            AttemptOutcome::NoAnswer
                | AttemptOutcome::Busy
                | AttemptOutcome::Failed
                | AttemptOutcome::Machine
                | AttemptOutcome::NoResponse
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Connected => "connected",
            AttemptOutcome::NoAnswer => "no_answer",
            AttemptOutcome::Busy => "busy",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Machine => "machine",
            AttemptOutcome::NoResponse => "no_response",
            AttemptOutcome::AgentMissed => "agent_missed",
            AttemptOutcome::RestError => "rest_error",
            AttemptOutcome::Lost => "lost",
        }
    }
}

/// What finishing an attempt did to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Connected: the request is done.
    Done,
    /// Due again at this time.
    Retry { at_ms: i64 },
    /// The patient was tried `max_attempts` times: the request failed.
    GaveUp,
}

/// The call id a callback request waits under in its queue: never a Twilio CallSid.
pub fn queue_call_sid(callback_id: &str) -> String {
    format!("callback:{callback_id}")
}

/// The callback id behind a queue call id made by [`queue_call_sid`].
pub fn callback_of_queue_call(call_sid: &str) -> Option<&str> {
    call_sid.strip_prefix("callback:")
}

impl CallbackRequest {
    /// The attempt in progress (started, no outcome yet).
    pub fn attempt_in_progress(&self) -> Option<&CallbackAttempt> {
        self.attempts
            .last()
            .filter(|attempt| attempt.outcome.is_none())
    }

    /// Attempts that tried the patient and did not reach them.
    pub fn patient_attempts(&self) -> usize {
        self.attempts
            .iter()
            .filter(|attempt| {
                attempt
                    .outcome
                    .is_some_and(AttemptOutcome::counts_against_patient)
            })
            .count()
    }

    /// Whether `node` may claim the request at `now_ms`: pending, due, no attempt in progress,
    /// and held by nobody else (or their hold ran out).
    pub fn claimable_by(&self, node: &str, now_ms: i64) -> bool {
        self.status == CallbackStatus::Pending
            && self.due_at_ms <= now_ms
            && self.attempt_in_progress().is_none()
            && (self.claimed_by.is_empty()
                || self.claimed_by == node
                || self.claimed_until_ms <= now_ms)
    }

    /// Whether `node` holds the request at `now_ms`.
    pub fn held_by(&self, node: &str, now_ms: i64) -> bool {
        self.status == CallbackStatus::Pending
            && self.claimed_by == node
            && self.claimed_until_ms > now_ms
    }

    pub fn claim(&mut self, node: &str, until_ms: i64) {
        node.clone_into(&mut self.claimed_by);
        self.claimed_until_ms = until_ms;
    }

    pub fn release_claim(&mut self) {
        self.claimed_by.clear();
        self.claimed_until_ms = 0;
    }

    /// An agent is reserved: a new attempt starts. Returns its number.
    pub fn start_attempt(&mut self, agent_id: &str, now_ms: i64) -> u32 {
        let number = self.attempts.last().map_or(1, |last| last.number + 1);
        self.attempts.push(CallbackAttempt {
            number,
            agent_id: agent_id.to_owned(),
            started_at_ms: now_ms,
            twilio_sid: None,
            outcome: None,
            ended_at_ms: None,
        });
        if self.attempts.len() > MAX_ATTEMPT_LOG {
            let excess = self.attempts.len() - MAX_ATTEMPT_LOG;
            self.attempts.drain(..excess);
        }
        number
    }

    /// The attempt `number`, if it is the one in progress.
    pub fn in_progress_mut(&mut self, number: u32) -> Option<&mut CallbackAttempt> {
        self.attempts
            .last_mut()
            .filter(|attempt| attempt.number == number && attempt.outcome.is_none())
    }

    /// Twilio took attempt `number`'s call. Returns whether it was in progress.
    pub fn attempt_placed(&mut self, number: u32, twilio_sid: &str) -> bool {
        match self.in_progress_mut(number) {
            Some(attempt) => {
                attempt.twilio_sid = Some(twilio_sid.to_owned());
                true
            }
            None => false,
        }
    }

    /// Attempt `number` ended with `outcome`. `None` when it is not the one in progress (it
    /// ended already: a webhook repeated, or crossed with another). Otherwise the request is
    /// done, due again `retry_after_ms` from now, or failed after `max_attempts` tries of the
    /// patient; the claim is released either way.
    pub fn finish_attempt(
        &mut self,
        number: u32,
        outcome: AttemptOutcome,
        now_ms: i64,
        retry_after_ms: i64,
        max_attempts: u32,
    ) -> Option<AttemptEnd> {
        let attempt = self.in_progress_mut(number)?;
        attempt.outcome = Some(outcome);
        attempt.ended_at_ms = Some(now_ms);
        self.release_claim();
        if self.status != CallbackStatus::Pending {
            // Marked done by hand while the attempt ran.
            return Some(AttemptEnd::Done);
        }
        if outcome == AttemptOutcome::Connected {
            self.status = CallbackStatus::Done;
            self.completed_at_ms = Some(now_ms);
            return Some(AttemptEnd::Done);
        }
        let tried = u32::try_from(self.patient_attempts()).unwrap_or(u32::MAX);
        if outcome.counts_against_patient() && tried >= max_attempts.max(1) {
            self.status = CallbackStatus::Failed;
            self.completed_at_ms = Some(now_ms);
            return Some(AttemptEnd::GaveUp);
        }
        let at_ms = now_ms.saturating_add(retry_after_ms.max(0));
        self.due_at_ms = at_ms;
        Some(AttemptEnd::Retry { at_ms })
    }

    /// The number of the attempt in progress if it started at or before `started_before_ms`:
    /// no webhook will end it any more.
    pub fn stale_attempt(&self, started_before_ms: i64) -> Option<u32> {
        self.attempt_in_progress()
            .filter(|attempt| attempt.started_at_ms <= started_before_ms)
            .map(|attempt| attempt.number)
    }
}

/// The order [`super::Store::callbacks`] lists in: pending before done or failed, then by when
/// they are due, then by the callers' places, then by id.
pub fn callback_order(a: &CallbackRequest, b: &CallbackRequest) -> std::cmp::Ordering {
    let rank = |request: &CallbackRequest| {
        (
            request.status != CallbackStatus::Pending,
            request.due_at_ms,
            request.place_ms,
        )
    };
    rank(a).cmp(&rank(b)).then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CallbackRequest {
        CallbackRequest {
            id: "cb1".to_owned(),
            queue: "portal".to_owned(),
            number: "+13125550147".to_owned(),
            call_sid: "CA1".to_owned(),
            requested_at_ms: 1_000,
            place_ms: 500,
            due_at_ms: 1_000,
            patient_ref: Some("P000101".to_owned()),
            ..CallbackRequest::default()
        }
    }

    #[test]
    fn a_callback_request_never_prints_its_number_or_patient() {
        let printed = format!("{:?} {:#?}", request(), request());
        assert!(!printed.contains("3125550147"), "{printed}");
        assert!(!printed.contains("555"), "{printed}");
        assert!(!printed.contains("P000101"), "{printed}");
        assert!(printed.contains("•••••••••47"), "{printed}");
    }

    #[test]
    fn a_due_request_is_claimed_by_one_node_until_its_hold_runs_out() {
        let mut request = request();
        assert!(!request.claimable_by("a", 999), "not due yet");
        assert!(request.claimable_by("a", 1_000));
        request.claim("a", 16_000);
        assert!(request.held_by("a", 2_000));
        assert!(!request.claimable_by("b", 2_000));
        assert!(request.claimable_by("b", 16_000), "the hold ran out");
        request.start_attempt("anguyen", 3_000);
        assert!(
            !request.claimable_by("b", 20_000),
            "an attempt is in progress"
        );
    }

    #[test]
    fn unanswered_attempts_are_retried_later_then_the_request_fails() {
        let mut request = request();
        let first = request.start_attempt("anguyen", 2_000);
        assert!(request.attempt_placed(first, "CAout1"));
        assert_eq!(
            request.finish_attempt(first, AttemptOutcome::NoAnswer, 3_000, 60_000, 2),
            Some(AttemptEnd::Retry { at_ms: 63_000 })
        );
        assert_eq!(
            request.finish_attempt(first, AttemptOutcome::Busy, 3_500, 60_000, 2),
            None,
            "an attempt ends once"
        );
        assert_eq!(request.due_at_ms, 63_000);
        assert!(request.claimed_by.is_empty());
        // careline's own errors do not use up the patient's tries.
        let second = request.start_attempt("anguyen", 63_000);
        assert_eq!(
            request.finish_attempt(second, AttemptOutcome::RestError, 63_100, 60_000, 2),
            Some(AttemptEnd::Retry { at_ms: 123_100 })
        );
        let third = request.start_attempt("bsmith", 123_100);
        assert_eq!(third, 3);
        assert_eq!(
            request.finish_attempt(third, AttemptOutcome::Machine, 124_000, 60_000, 2),
            Some(AttemptEnd::GaveUp)
        );
        assert_eq!(request.status, CallbackStatus::Failed);
        assert_eq!(request.completed_at_ms, Some(124_000));
        assert_eq!(request.patient_attempts(), 2);
    }

    #[test]
    fn a_connected_attempt_completes_the_request() {
        let mut request = request();
        let number = request.start_attempt("anguyen", 2_000);
        assert_eq!(
            request.finish_attempt(number, AttemptOutcome::Connected, 9_000, 60_000, 3),
            Some(AttemptEnd::Done)
        );
        assert_eq!(request.status, CallbackStatus::Done);
        assert_eq!(request.completed_at_ms, Some(9_000));
    }

    #[test]
    fn the_attempt_log_keeps_the_latest_and_counts_on() {
        let mut request = request();
        for at in 0..(MAX_ATTEMPT_LOG as i64 + 5) {
            let number = request.start_attempt("anguyen", at);
            request.finish_attempt(number, AttemptOutcome::RestError, at, 0, 3);
        }
        assert_eq!(request.attempts.len(), MAX_ATTEMPT_LOG);
        assert_eq!(
            request.attempts.last().map(|attempt| attempt.number),
            Some(MAX_ATTEMPT_LOG as u32 + 5)
        );
    }

    #[test]
    fn a_queue_call_id_names_its_request() {
        let sid = queue_call_sid("CA1-17");
        assert_eq!(callback_of_queue_call(&sid), Some("CA1-17"));
        assert_eq!(callback_of_queue_call("CA1"), None);
    }
}
