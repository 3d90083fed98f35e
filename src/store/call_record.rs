//! A call's record: what any careline node needs to answer any Twilio request of the call, kept
//! in the store so no state a call needs lives only in one node's memory.
//!
//! The record is written by whole-record compare-and-set ([`super::Store::replace_call_record`]
//! names the version it read; two nodes racing on one call cannot both win), so every
//! transition is a plain function of the record that callers can test without a store. It ends
//! with the call (a terminal status callback on any node) or, when every signal was lost, at its
//! safety deadline ([`CallRecord::deadline_ms`]), which each transition moves according to the
//! phase: never by the age of a registration.
//!
//! Nothing here prints a caller's number: `Debug` masks `from`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::QueuedCall;

/// Where a call is, as every node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// The voice webhook answered; no media stream has claimed the call's token yet.
    Connecting,
    /// A stream is open and the caller is in the menus.
    Menus,
    /// A stream is open and the caller waits in a queue.
    Queued,
    /// careline closed the stream; Twilio is about to ask `/twilio/next`.
    Between,
    /// Twilio is ringing an agent or a transfer number.
    Ringing,
    /// The far end of a dial answered.
    Connected,
}

impl CallPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CallPhase::Connecting => "connecting",
            CallPhase::Menus => "menus",
            CallPhase::Queued => "queued",
            CallPhase::Between => "between",
            CallPhase::Ringing => "ringing",
            CallPhase::Connected => "connected",
        }
    }

    /// Every phase, for gauges that list zeros too.
    pub const ALL: [CallPhase; 6] = [
        CallPhase::Connecting,
        CallPhase::Menus,
        CallPhase::Queued,
        CallPhase::Between,
        CallPhase::Ringing,
        CallPhase::Connected,
    ];
}

/// What Twilio does once careline has closed a call's stream on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum CallStep {
    /// End the call (the goodbye has been played).
    Hangup,
    /// Ring the agent reserved for the call (their dial target comes from the roster).
    Agent {
        agent_id: String,
        ring_timeout_secs: u32,
        /// The call as it first joined its queue: an unanswered offer puts it back in place.
        call: QueuedCall,
        /// The queue node the call resumes at if the agent does not answer.
        queue_node: String,
    },
    /// Ring an external number (a `transfer` node).
    Transfer {
        number: String,
        timeout_secs: u32,
        /// The node the call resumes at when nobody answers; `None` ends the call.
        on_failure: Option<String>,
    },
}

/// One call's shared state.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_sid: String,
    /// Caller ID as Twilio sent it: handed to the call's next stream (for a callback), shown
    /// masked, never logged.
    pub from: String,
    pub phase: CallPhase,
    pub created_at_ms: i64,
    /// SHA-256 (hex) of the token the next `<Connect><Stream>` carries; empty once a stream
    /// has presented it: each token opens one stream, once.
    pub token_hash: String,
    /// The node carrying the call's stream (empty when none) and until when its lease runs.
    pub stream_node: String,
    pub lease_until_ms: i64,
    /// Media streams the call has opened.
    pub streams: u32,
    /// The IVR node the call is at (empty: the flow's entry), where a lost stream resumes.
    pub at_node: String,
    /// The IVR nodes the call went through, in order (node names only, never what was keyed):
    /// how the caller got where they are, for the agent who takes the call. The last
    /// [`MAX_PATH_NODES`] are kept. Left out of the JSON while empty, so Lua's cjson (which
    /// writes an empty list back as an object) never sees one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// The call as it first joined its queue, while it waits or is being connected from it.
    pub queued: Option<QueuedCall>,
    /// The caller failed identity verification: the agent must know.
    pub verification_failed: bool,
    /// The patient the caller was verified as (an opaque reference, shown to the agent who
    /// takes the call; `Debug` hides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_ref: Option<String>,
    /// What careline decided when it closed the stream on purpose. `None` when the stream
    /// ended otherwise (a node lost, a connection broken, a node draining): the call resumes
    /// at `at_node` on its next stream.
    pub next: Option<CallStep>,
    /// The dial Twilio is running, after `/twilio/next` answered it.
    pub dial: Option<CallStep>,
    /// When the dial's far end answered; 0 until then.
    pub answered_at_ms: i64,
    /// The record's safety expiry: past it the call has lost every signal and anything held
    /// for it is released. Moved by every transition (see [`CallRecord::deadline_for`]).
    pub deadline_ms: i64,
    /// Bumped by every write; a write names the version it read.
    pub version: u64,
}

/// Most IVR nodes a call's [`CallRecord::path`] keeps (the latest).
pub const MAX_PATH_NODES: usize = 32;

/// How long after its lease runs out a stream's call waits for Twilio to come back (a
/// `<Redirect>` after the stream's connection closed) before it counts as gone.
pub const LEASE_GRACE_MS: i64 = 60_000;
/// A call announced by the voice webhook that no stream claims within this is gone.
pub const CONNECTING_DEADLINE_MS: i64 = 120_000;
/// Between streams: Twilio asks `/twilio/next` at once; this is generous.
pub const BETWEEN_DEADLINE_MS: i64 = 120_000;
/// A ring gets its `timeout`, then Twilio reports it; past this much more it was lost.
pub const RING_GRACE_MS: i64 = 120_000;
/// A conversation longer than this is not a real one: the agent is released.
pub const CONNECTED_DEADLINE_MS: i64 = 12 * 60 * 60 * 1000;

impl CallRecord {
    /// A call the voice webhook just announced.
    pub fn new(call_sid: &str, from: &str, token_hash: String, now_ms: i64) -> CallRecord {
        let mut record = CallRecord {
            call_sid: call_sid.to_owned(),
            from: from.to_owned(),
            phase: CallPhase::Connecting,
            created_at_ms: now_ms,
            token_hash,
            stream_node: String::new(),
            lease_until_ms: 0,
            streams: 0,
            at_node: String::new(),
            path: Vec::new(),
            queued: None,
            verification_failed: false,
            patient_ref: None,
            next: None,
            dial: None,
            answered_at_ms: 0,
            deadline_ms: 0,
            version: 0,
        };
        record.deadline_ms = record.deadline_for(now_ms);
        record
    }

    /// The safety deadline the record's phase gives it at `now_ms`.
    pub fn deadline_for(&self, now_ms: i64) -> i64 {
        match self.phase {
            CallPhase::Connecting => now_ms.saturating_add(CONNECTING_DEADLINE_MS),
            CallPhase::Menus | CallPhase::Queued => {
                self.lease_until_ms.saturating_add(LEASE_GRACE_MS)
            }
            CallPhase::Between => now_ms.saturating_add(BETWEEN_DEADLINE_MS),
            CallPhase::Ringing => {
                let ring_ms = match &self.dial {
                    Some(CallStep::Agent {
                        ring_timeout_secs, ..
                    }) => i64::from(*ring_timeout_secs) * 1000,
                    Some(CallStep::Transfer { timeout_secs, .. }) => {
                        i64::from(*timeout_secs) * 1000
                    }
                    Some(CallStep::Hangup) | None => 0,
                };
                now_ms.saturating_add(ring_ms).saturating_add(RING_GRACE_MS)
            }
            CallPhase::Connected => now_ms.saturating_add(CONNECTED_DEADLINE_MS),
        }
    }

    /// The call moved to IVR node `node`: it resumes there, and its path goes on to it.
    pub fn moved_to(&mut self, node: &str) {
        node.clone_into(&mut self.at_node);
        if self.path.last().map(String::as_str) != Some(node) {
            self.path.push(node.to_owned());
            if self.path.len() > MAX_PATH_NODES {
                let excess = self.path.len() - MAX_PATH_NODES;
                self.path.drain(..excess);
            }
        }
    }

    /// The agent held for this call, if any: reserved while it is being connected, or talking.
    pub fn held_agent(&self) -> Option<&str> {
        match (&self.dial, &self.next) {
            (Some(CallStep::Agent { agent_id, .. }), _)
            | (None, Some(CallStep::Agent { agent_id, .. })) => Some(agent_id),
            _ => None,
        }
    }

    /// Listing order: oldest call first, then by call id.
    pub fn by_arrival(a: &CallRecord, b: &CallRecord) -> std::cmp::Ordering {
        (a.created_at_ms, &a.call_sid).cmp(&(b.created_at_ms, &b.call_sid))
    }

    /// The caller ID, all but its last two digits hidden.
    pub fn from_masked(&self) -> String {
        mask_caller_id(&self.from)
    }
}

impl fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRecord")
            .field("call_sid", &self.call_sid)
            .field("from", &self.from_masked())
            .field("phase", &self.phase)
            .field("stream_node", &self.stream_node)
            .field("lease_until_ms", &self.lease_until_ms)
            .field("streams", &self.streams)
            .field("at_node", &self.at_node)
            .field("path", &self.path)
            .field("queued", &self.queued)
            .field("verification_failed", &self.verification_failed)
            .field(
                "patient_ref",
                &self.patient_ref.as_ref().map(|_| "<redacted>"),
            )
            .field("next", &self.next)
            .field("dial", &self.dial)
            .field("answered_at_ms", &self.answered_at_ms)
            .field("deadline_ms", &self.deadline_ms)
            .field("version", &self.version)
            .finish_non_exhaustive()
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

/// What a compare-and-set found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordWrite {
    /// Written; the record now has this version.
    Written { version: u64 },
    /// Someone else wrote first (or the record is gone): read it again and retry.
    Conflict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_records_each_node_once_in_order_and_keeps_the_latest() {
        let mut record = CallRecord::new("CA1", "+13125550101", String::new(), 0);
        for node in ["main", "verify", "verify", "reset", "portal_queue"] {
            record.moved_to(node);
        }
        assert_eq!(record.path, ["main", "verify", "reset", "portal_queue"]);
        assert_eq!(record.at_node, "portal_queue");
        for n in 0..(MAX_PATH_NODES + 3) {
            record.moved_to(if n % 2 == 0 { "main" } else { "info" });
        }
        assert_eq!(record.path.len(), MAX_PATH_NODES);
        assert_eq!(record.path.last().map(String::as_str), Some("main"));
    }

    #[test]
    fn a_record_never_prints_its_caller_or_patient() {
        let mut record = CallRecord::new("CA1", "+13125550101", String::new(), 0);
        record.patient_ref = Some("P000101".to_owned());
        let printed = format!("{record:?}");
        assert!(!printed.contains("P000101"), "{printed}");
        assert!(!printed.contains("3125550101"), "{printed}");
    }

    #[test]
    fn an_empty_path_and_no_patient_are_left_out_of_the_json() {
        let record = CallRecord::new("CA1", "+13125550101", String::new(), 0);
        let json = serde_json::to_string(&record).expect("json");
        assert!(
            !json.contains("path") && !json.contains("patient_ref"),
            "{json}"
        );
        let back: CallRecord = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, record);
    }
}
