//! Shared state: queues, agents, reservations, lockout counters and reset codes.
//!
//! One [`Store`] trait, two implementations: [`memory::MemoryStore`] (embedded, one node) and
//! [`redis::RedisStore`] (several careline nodes sharing one Redis; Lua scripts make every
//! multi-key change atomic). Both pass the same conformance suite (`conformance`), so the
//! server never knows which one it has.
//!
//! Times are milliseconds since the Unix epoch, passed in by the caller: the store never reads
//! a clock, so tests move time freely and every node agrees on what "now" meant for a change.

pub mod memory;
pub mod redis;

#[cfg(test)]
mod conformance;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use crate::config::Strategy;

/// A call waiting in (or reserved from) a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedCall {
    pub call_sid: String,
    pub queue: String,
    /// The careline node carrying the call's media stream; only it dispatches the call.
    pub node: String,
    /// When the call first entered the queue. Kept across re-queues, so a call that went back
    /// after an unanswered offer is ahead of everyone who came later.
    pub enqueued_at_ms: i64,
    /// Higher goes first; equal priorities are served in enqueue order.
    pub priority: i32,
    /// The caller failed identity verification: the agent must know.
    pub verification_failed: bool,
}

/// What an agent has said about themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Available,
    Break,
    Offline,
}

/// What calls are doing with an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentActivity {
    Idle,
    /// Offered a call, ringing.
    Reserved { call_sid: String, since_ms: i64 },
    OnCall { call_sid: String, since_ms: i64 },
    /// After a call; eligible again once `until_ms` has passed (no timer needed).
    WrapUp { until_ms: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub status: AgentStatus,
    pub activity: AgentActivity,
    /// When the agent last became free (for `longest_idle`).
    pub idle_since_ms: i64,
    pub status_changed_ms: i64,
    /// Calls answered today (for `fewest_calls` and the wallboard); the day is the caller's.
    pub calls_today: u32,
    /// Offers missed in a row; reset by an answer.
    pub missed_in_a_row: u32,
}

/// A call offered to an agent: both are now held for each other and nobody else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub call: QueuedCall,
    pub agent_id: String,
    pub reserved_at_ms: i64,
}

/// The outcome of an offer the agent did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedOffer {
    /// The agent is idle again.
    BackToIdle,
    /// Too many misses in a row: the agent was put on break.
    PutOnBreak,
}

/// The outcome of redeeming a one-time reset code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code matched; it is now used up. Carries the record it was issued for.
    Valid { patient_ref: String },
    /// Wrong code; `checks_left` more tries before the code is void.
    Wrong { checks_left: u32 },
    /// No live code for this record (never issued, expired, used, or out of checks).
    NoCode,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached: callers who need it get the closed/apology path.
    #[error("the store is unreachable: {0} (check that Redis is running and [store] url)")]
    Unavailable(String),
    /// The store answered with something careline did not write.
    #[error("the store holds unexpected data at {key}: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("no agent `{0}` (agents come from [[agents]] in the configuration)")]
    UnknownAgent(String),
}

/// Everything careline keeps outside a single call.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `memory` or `redis`, for health output.
    fn kind(&self) -> &'static str;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    // --- queues ---

    /// Put a call in its queue. Idempotent: re-adding a call keeps its place, which is how a
    /// node re-registers its calls after Redis lost its data.
    async fn enqueue(&self, call: &QueuedCall) -> Result<(), StoreError>;

    /// Take a call out of every queue and release any agent reserved for it (hang-up).
    /// Returns the call if it was waiting or reserved.
    async fn remove_call(&self, call_sid: &str) -> Result<Option<QueuedCall>, StoreError>;

    /// The waiting calls of `queue`, in service order.
    async fn waiting(&self, queue: &str) -> Result<Vec<QueuedCall>, StoreError>;

    /// 1-based place of `call_sid` in its queue.
    async fn position(&self, queue: &str, call_sid: &str) -> Result<Option<usize>, StoreError>;

    // --- agents ---

    /// Make sure every configured agent exists (new ones start `offline`, idle).
    async fn register_agents(&self, agent_ids: &[String], now_ms: i64) -> Result<(), StoreError>;

    async fn set_agent_status(
        &self,
        agent_id: &str,
        status: AgentStatus,
        now_ms: i64,
    ) -> Result<AgentRecord, StoreError>;

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    async fn agent(&self, agent_id: &str) -> Result<Option<AgentRecord>, StoreError>;

    /// Atomically match the first waiting call of `queue` with one of `candidates` (agents
    /// on shift with the queue's skills, decided by the caller), if the call belongs to `node`
    /// and one candidate is available and idle (or past wrap-up). Exactly once across every
    /// node sharing the store: no call is offered twice, no agent holds two calls.
    async fn reserve(
        &self,
        queue: &str,
        node: &str,
        candidates: &[String],
        strategy: Strategy,
        now_ms: i64,
    ) -> Result<Option<Reservation>, StoreError>;

    /// The agent answered the reserved call: `on_call`.
    async fn offer_answered(&self, agent_id: &str, call_sid: &str, now_ms: i64)
    -> Result<(), StoreError>;

    /// The agent did not answer (no-answer, busy, failed): the agent is freed (or put on
    /// break after `max_missed` misses in a row) and the call goes back to its queue with its
    /// original place.
    async fn offer_missed(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        max_missed: u32,
        now_ms: i64,
    ) -> Result<MissedOffer, StoreError>;

    /// The agent's call ended: wrap-up until `wrap_up_until_ms`.
    async fn call_finished(
        &self,
        agent_id: &str,
        call_sid: &str,
        wrap_up_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    // --- identity ---

    /// Count a failed verification against a claimed record (a keyed pseudonym, never an
    /// identifier). Returns the failures within the window, this one included.
    async fn record_verification_failure(
        &self,
        record: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<u32, StoreError>;

    /// Failures within the window for a record.
    async fn verification_failures(
        &self,
        record: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<u32, StoreError>;

    /// An agent cleared the record's lockout.
    async fn clear_verification_failures(&self, record: &str) -> Result<(), StoreError>;

    /// Store the hash of a one-time reset code for `patient_ref`, replacing any earlier one.
    async fn put_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        max_checks: u32,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Check a code hash for `patient_ref`: single use, at most `max_checks` tries.
    async fn check_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        now_ms: i64,
    ) -> Result<CodeCheck, StoreError>;
}
