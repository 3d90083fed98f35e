//! Shared state: queues, agents, reservations, lockout counters, reset codes, callback requests
//! and statistics.
//!
//! One [`Store`] trait, two implementations: [`memory::MemoryStore`] (embedded, one node) and
//! [`redis::RedisStore`] (several careline nodes sharing one Redis; Lua scripts make every
//! multi-key change atomic), reached as [`redis_access::RedisAccess`] says: one URL, or the
//! master that Redis Sentinels name, followed through failovers (`redis_link`, `sentinel`),
//! with credentials from the environment and optional TLS. Both pass the same conformance suite (`conformance`), so the
//! server never knows which one it has. [`test_redis::TestRedis`] starts a throwaway
//! `redis-server` for tests and benchmarks. [`stats`] says what the statistics count and what
//! the figures mean. The Redis key schema is in `docs/redis.md`.
//!
//! Times are milliseconds since the Unix epoch, passed in by the caller: the store never reads
//! a clock, so tests move time freely and every node agrees on what "now" meant for a change.

pub mod call_record;
pub mod callback;
pub mod memory;
pub mod redis;
pub mod redis_access;
mod redis_link;
pub mod sentinel;
pub mod stats;
pub mod test_redis;

#[cfg(test)]
mod conformance;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use crate::config::Strategy;
pub use call_record::{CallPhase, CallRecord, CallStep, RecordWrite};
pub use callback::{
    AttemptEnd, AttemptOutcome, CallbackAttempt, CallbackRequest, CallbackStatus, callback_order,
};
pub use stats::{
    CallCounters, CallOutcomeStat, QueueCounters, QueueStatEvent, StatsBucket, StatsInterval,
};

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
    /// Not a caller on the line but a callback request waiting for an agent (see
    /// [`callback`]): its reservation goes to the node's callback dialer, which places the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
}

/// What [`Store::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The call waits in its queue (new, or already waiting: same place).
    Waiting,
    /// The call was already reserved for an agent; it now belongs to the joining node.
    Reserved(Reservation),
    /// The call's record says it waits in no queue (it left, or ended): nothing was added.
    Refused,
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
    Reserved {
        call_sid: String,
        since_ms: i64,
    },
    OnCall {
        call_sid: String,
        since_ms: i64,
    },
    /// After a call; eligible again once `until_ms` has passed (no timer needed).
    WrapUp {
        until_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub status: AgentStatus,
    pub activity: AgentActivity,
    /// When the agent last became free (for `longest_idle`).
    pub idle_since_ms: i64,
    pub status_changed_ms: i64,
    /// Calls answered on `calls_day` (for `fewest_calls` and the wallboard). Read it through
    /// [`AgentRecord::calls_today_at`]: a count from an earlier day means none today.
    pub calls_today: u32,
    /// The UTC day (days since the Unix epoch) that `calls_today` counts.
    pub calls_day: i64,
    /// Offers missed in a row; reset by an answer and when the misses put the agent on break.
    pub missed_in_a_row: u32,
}

impl AgentRecord {
    /// What the agent is doing at `now_ms`: a wrap-up that has ended is idle (the store keeps
    /// no timer, so the record still says `WrapUp` until the agent's next change).
    pub fn activity_at(&self, now_ms: i64) -> AgentActivity {
        match self.activity {
            AgentActivity::WrapUp { until_ms } if until_ms <= now_ms => AgentActivity::Idle,
            ref activity => activity.clone(),
        }
    }

    /// Calls answered on the UTC day of `now_ms`.
    pub fn calls_today_at(&self, now_ms: i64) -> u32 {
        if self.calls_day == day_of(now_ms) {
            self.calls_today
        } else {
            0
        }
    }
}

/// The UTC day of an instant, in days since the Unix epoch: the day `calls_today` counts.
pub fn day_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(86_400_000)
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
    #[error(
        "the store is unreachable: {0} (check that Redis is running and [store] url, or \
         sentinels and master_name)"
    )]
    Unavailable(String),
    /// The store answered with something careline did not write.
    #[error("the store holds unexpected data at {key}: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("no agent `{0}` (agents come from [[agents]] in the configuration)")]
    UnknownAgent(String),
    /// `[store]` (or `CARELINE_REDIS_URL`) cannot be used as written.
    #[error("the [store] configuration is unusable: {0}")]
    Config(String),
}

/// Everything careline keeps outside a single call.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `memory` or `redis`, for health output.
    fn kind(&self) -> &'static str;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The server this node's data goes to now, `host:port` without credentials (the Redis
    /// master; `None` for the embedded store, or while Sentinels name no master).
    fn master_address(&self) -> Option<String> {
        None
    }

    /// An id of the data the store holds, the same on every node. It changes when the store
    /// may have lost data (Redis restarted, or a failover promoted a replica that may lack the
    /// last writes): a node that sees a new epoch registers its agents again, puts back the
    /// offers it handed out and re-enqueues the calls it is carrying, with their original
    /// enqueue times.
    async fn data_epoch(&self) -> Result<String, StoreError>;

    // --- queues ---

    /// Put a call in its queue. Idempotent: re-adding a waiting call keeps its queue, place,
    /// priority and enqueue time, and only takes the new `node` (after an unanswered offer the
    /// new media stream may land on another node); re-adding a reserved call changes nothing.
    /// A node re-registers its calls this way after Redis lost its data: with their original
    /// `enqueued_at_ms` they get their old places back.
    ///
    /// A call whose record ([`CallRecord`]) exists but says it waits in no queue is refused:
    /// the caller left (or hung up) and this join arrived late, so it must leave nothing behind.
    /// A call already reserved for an agent moves to the new `node` and its reservation is
    /// returned, so the node now carrying the call hands it over (its old node died, or its
    /// stream moved).
    async fn enqueue(&self, call: &QueuedCall) -> Result<Enqueued, StoreError>;

    /// Take a call out of every queue and release any agent reserved for it (hang-up).
    /// Returns the call if it was waiting or reserved.
    async fn remove_call(&self, call_sid: &str) -> Result<Option<QueuedCall>, StoreError>;

    /// [`Store::remove_call`], only while the call belongs to `node`: a node releasing what it
    /// held never takes a call another node carries now. Returns whether it was removed.
    async fn remove_call_of_node(&self, call_sid: &str, node: &str) -> Result<bool, StoreError>;

    /// The waiting calls of `queue`, in service order.
    async fn waiting(&self, queue: &str) -> Result<Vec<QueuedCall>, StoreError>;

    /// 1-based place of `call_sid` in its queue.
    async fn position(&self, queue: &str, call_sid: &str) -> Result<Option<usize>, StoreError>;

    // --- agents ---

    /// Make sure every configured agent exists (new ones start `offline`, idle). Existing
    /// agents are left as they are; agents missing from `agent_ids` are kept.
    async fn register_agents(&self, agent_ids: &[String], now_ms: i64) -> Result<(), StoreError>;

    /// Set what the agent says about themselves. A call in progress is never interrupted (the
    /// activity is unchanged); anything but `available` makes the agent ineligible for new
    /// calls. Becoming `available` starts the agent's idle time now (or when their wrap-up ends),
    /// so coming back from a break does not jump the `longest_idle` line.
    async fn set_agent_status(
        &self,
        agent_id: &str,
        status: AgentStatus,
        now_ms: i64,
    ) -> Result<AgentRecord, StoreError>;

    /// Every agent, by id.
    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    async fn agent(&self, agent_id: &str) -> Result<Option<AgentRecord>, StoreError>;

    /// Atomically match the first waiting call of `queue` with one of `candidates` (agents
    /// on shift with the queue's skills, decided by the caller), if the call belongs to `node`
    /// and one candidate is available and idle (or past wrap-up). Exactly once across every
    /// node sharing the store: no call is offered twice, no agent holds two calls.
    ///
    /// The head of the queue is never skipped: when it belongs to another node, nothing is
    /// reserved here. `longest_idle` takes the smallest `idle_since_ms`; `round_robin` the next
    /// candidate by id after the one this queue served last; `fewest_calls` the fewest calls
    /// today, then the longest idle. Remaining ties go to the smaller id, so the outcome does not
    /// depend on the order of `candidates`.
    async fn reserve(
        &self,
        queue: &str,
        node: &str,
        candidates: &[String],
        strategy: Strategy,
        now_ms: i64,
    ) -> Result<Option<Reservation>, StoreError>;

    /// The agent answered the reserved call: `on_call`, one more call today, misses forgotten;
    /// the call leaves the store. An answer for an offer the store no longer holds (the caller
    /// hung up meanwhile) changes nothing.
    async fn offer_answered(
        &self,
        agent_id: &str,
        call_sid: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// The agent did not answer (no-answer, busy, failed): the agent is freed (or put on
    /// break after `max_missed` misses in a row) and the call goes back to its queue with its
    /// original place. `max_missed` = 0 never puts the agent on break. Nothing changes when the
    /// agent is no longer reserved for the call, and a call that has gone (hung up) stays gone.
    async fn offer_missed(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        max_missed: u32,
        now_ms: i64,
    ) -> Result<MissedOffer, StoreError>;

    /// The agent's call ended: wrap-up until `wrap_up_until_ms`, idle from then on. A call still
    /// reserved (its answer was never reported) counts as answered: Dial completed means it was.
    async fn call_finished(
        &self,
        agent_id: &str,
        call_sid: &str,
        wrap_up_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    // --- call records (see `call_record`) ---

    /// The record of `call_sid`, while the call is alive.
    async fn call_record(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError>;

    /// Write `record` if the stored one still has `expected_version` (0: there is none yet).
    /// The stored copy gets version `expected_version + 1`, whatever `record.version` says.
    async fn replace_call_record(
        &self,
        record: &CallRecord,
        expected_version: u64,
    ) -> Result<RecordWrite, StoreError>;

    /// Remove the record if it still has `expected_version`. Returns whether it did.
    async fn remove_call_record(
        &self,
        call_sid: &str,
        expected_version: u64,
    ) -> Result<bool, StoreError>;

    /// Every live record, oldest first.
    async fn call_records(&self) -> Result<Vec<CallRecord>, StoreError>;

    /// Records whose deadline is at or before `now_ms`, earliest first, at most `limit`.
    async fn expired_call_records(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;

    /// `node` still carries the streams of `call_sids`: their leases run to `lease_until_ms` and
    /// their deadlines move with them. Records whose stream another node carries now (or none)
    /// are left alone. Returns how many were renewed.
    async fn renew_stream_leases(
        &self,
        node: &str,
        call_sids: &[String],
        lease_until_ms: i64,
    ) -> Result<usize, StoreError>;

    /// After the store lost data (a new [`Store::data_epoch`]: a failover promoted a replica
    /// that missed the last writes, or Redis restarted), put back an offer (`answered` false)
    /// or a call in progress (`answered` true) that this node handed out: the agent holds
    /// `call` again, reserved for it since `since_ms` (the call is stored as reserved, out of
    /// its queue) or on it (the call leaves the store). An agent who now holds another call
    /// is left as they are: returns whether the agent holds `call`. Status, idle time and the
    /// count of calls today are untouched.
    async fn restore_offer(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        answered: bool,
        since_ms: i64,
    ) -> Result<bool, StoreError>;

    // --- statistics (counters per queue and per call; see `stats` and docs/redis.md) ---

    /// Count `event` for `queue` in the UTC day and the 15-minute interval of `now_ms`.
    async fn record_queue_stat(
        &self,
        queue: &str,
        event: QueueStatEvent,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Count a call-level outcome (containment, verification) in the UTC day and the 15-minute
    /// interval of `now_ms`.
    async fn record_call_outcome(
        &self,
        outcome: CallOutcomeStat,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// The counters of `queue` in every bucket of `interval` that overlaps `[from_ms, to_ms)`,
    /// oldest first, zeros included; at most [`stats::MAX_BUCKETS`] buckets (the first ones).
    /// Buckets start on UTC days and quarter hours.
    async fn queue_stats(
        &self,
        queue: &str,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<Vec<StatsBucket<QueueCounters>>, StoreError>;

    /// The counters of `queue` added up over the buckets [`Store::queue_stats`] would list:
    /// one small answer however many buckets the range holds (a local day is up to 100
    /// quarter hours).
    async fn queue_stats_total(
        &self,
        queue: &str,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<QueueCounters, StoreError> {
        let buckets = self.queue_stats(queue, from_ms, to_ms, interval).await?;
        Ok(stats::total(&buckets))
    }

    /// The call-level counters, bucketed like [`Store::queue_stats`].
    async fn call_outcome_stats(
        &self,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<Vec<StatsBucket<CallCounters>>, StoreError>;

    // --- identity ---

    /// Count a failed verification against a claimed record (a keyed pseudonym, never an
    /// identifier). Returns the failures within the window, this one included. A failure
    /// counts while it is less than `window_ms` old.
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
    /// `max_checks` = 0 stores nothing (and voids any earlier code).
    async fn put_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        max_checks: u32,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Check a code hash for `patient_ref`: single use, at most `max_checks` tries. A code is
    /// live while `now_ms` < its `expires_at_ms`.
    async fn check_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        now_ms: i64,
    ) -> Result<CodeCheck, StoreError>;

    // --- callbacks ---

    /// Keep a callback request. Idempotent by id: adding an id the store already has changes
    /// nothing (a request marked done stays done).
    async fn add_callback(&self, request: &CallbackRequest) -> Result<(), StoreError>;

    /// Every callback request: pending ones first, by `due_at_ms` then `place_ms`, then those
    /// done (see [`callback_order`]).
    async fn callbacks(&self) -> Result<Vec<CallbackRequest>, StoreError>;

    /// An agent returned the call. Returns whether the request exists; completing it again
    /// keeps the first completion time. A failed request can be completed too (an agent
    /// reached the patient another way). Bumps the request's version.
    async fn complete_callback(&self, id: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// One callback request.
    async fn callback(&self, id: &str) -> Result<Option<CallbackRequest>, StoreError>;

    /// Write `request` if the stored one still has `expected_version`; the stored copy gets
    /// version `expected_version + 1`. A request the store does not have is a conflict: only
    /// [`Store::add_callback`] adds.
    async fn replace_callback(
        &self,
        request: &CallbackRequest,
        expected_version: u64,
    ) -> Result<RecordWrite, StoreError>;
}
