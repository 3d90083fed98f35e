//! The shared store: several careline nodes on one Redis.
//!
//! Every change that touches more than one value is one Lua script (`src/store/lua/*.lua`), so
//! Redis runs it whole or not at all and no other node sees it half done: that is what makes a
//! reservation exactly-once across nodes. The key schema, each script's keys and arguments, and
//! why the keys are grouped as they are, are in `docs/redis.md`.
//!
//! The connection is a [`Link`]: to the one server `[store] url` names (reconnecting on its own
//! after Redis restarts), or to the master the Sentinels name, followed through a failover
//! (`super::redis_link`). Every operation has a deadline; an unreachable or silent Redis is
//! [`StoreError::Unavailable`] within it, so a caller who needs a queue hears the apology
//! instead of dead air. How to reach Redis (URL or Sentinels, credentials from the environment,
//! TLS) is a [`RedisAccess`].

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{RedisError, RedisResult, Script, ScriptInvocation, Value};
use serde::{Deserialize, Serialize};

use super::call_record::LEASE_GRACE_MS;
use super::memory::{candidate_order, priority_rank, time_rank};
use super::redis_access::{RedisAccess, RedisTarget};
use super::redis_link::{Link, RESPONSE_TIMEOUT};
use super::sentinel::{self, Who};
use super::stats::{CallField, QueueField};
use super::{
    AgentActivity, AgentRecord, AgentStatus, CallCounters, CallOutcomeStat, CallRecord,
    CallbackRequest, CallbackStatus, CodeCheck, Enqueued, MissedOffer, QueueCounters,
    QueueStatEvent, QueuedCall, RecordWrite, Reservation, StatsBucket, StatsInterval, Store,
    StoreError, Strategy, callback_order, day_of,
};

/// Whatever happens inside, an operation answers within this.
const OPERATION_DEADLINE: Duration = Duration::from_millis(2500);

/// The [`Store`] for several nodes: `[store] url` or `[store] sentinels` set.
pub struct RedisStore {
    link: Link,
    keys: Keys,
    scripts: Scripts,
}

/// Key names. Routing keys share one hash tag, `{<prefix>:routing}`: the reserve script reads
/// and writes the waiting set, the calls and the agents together, and agents serve every queue,
/// so on Redis Cluster all of them must live in one slot. Identity keys each touch one record
/// and carry their own tag, so they spread over the cluster. Statistics keys share the tag
/// `{<prefix>:stats}`: one read gathers many buckets of a queue and of the call counters.
struct Keys {
    prefix: String,
    /// Sorted set, all scores 0: member = queue, NUL, priority rank, time rank, call id.
    waiting: String,
    /// Hash: call id → call JSON (waiting or reserved).
    calls: String,
    /// Hash: call id → agent id, for reserved calls.
    reserved: String,
    /// Hash: agent id → agent JSON.
    agents: String,
    /// Hash: queue → the agent it served last (`round_robin`).
    last_served: String,
    /// String: the id of the data set (see [`Store::data_epoch`]).
    epoch: String,
    /// Hash: callback request id → callback JSON.
    callbacks: String,
    /// Hash: call id → call record JSON (see `call_record`). In the routing tag: a join reads
    /// the call's record to refuse a late one.
    records: String,
    /// Sorted set: call id scored by its record's safety deadline (ms).
    record_deadlines: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        let routing = |name: &str| format!("{{{prefix}:routing}}:{name}");
        Keys {
            prefix: prefix.to_owned(),
            waiting: routing("waiting"),
            calls: routing("calls"),
            reserved: routing("reserved"),
            agents: routing("agents"),
            last_served: routing("last_served"),
            epoch: routing("epoch"),
            callbacks: routing("callbacks"),
            records: routing("records"),
            record_deadlines: routing("record_deadlines"),
        }
    }

    /// Sorted set of failure times for one claimed record.
    fn failures(&self, record: &str) -> String {
        format!("{}:failures:{{{record}}}", self.prefix)
    }

    /// Hash of one patient's reset code.
    fn reset_code(&self, patient_ref: &str) -> String {
        format!("{}:reset_code:{{{patient_ref}}}", self.prefix)
    }

    /// Hash of one queue's counters in the bucket starting at `start_ms`.
    fn queue_stats(&self, queue: &str, interval: StatsInterval, start_ms: i64) -> String {
        format!(
            "{{{}:stats}}:queue:{queue}:{}:{start_ms}",
            self.prefix,
            interval.name()
        )
    }

    /// Hash of the call-level counters in the bucket starting at `start_ms`.
    fn call_stats(&self, interval: StatsInterval, start_ms: i64) -> String {
        format!(
            "{{{}:stats}}:calls:{}:{start_ms}",
            self.prefix,
            interval.name()
        )
    }
}

macro_rules! routing_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

struct Scripts {
    enqueue: Script,
    remove_call: Script,
    waiting: Script,
    position: Script,
    reserve: Script,
    offer_answered: Script,
    offer_missed: Script,
    call_finished: Script,
    restore_offer: Script,
    set_agent_status: Script,
    register_agents: Script,
    data_epoch: Script,
    record_stats: Script,
    read_stats: Script,
    sum_stats: Script,
    record_failure: Script,
    put_reset_code: Script,
    check_reset_code: Script,
    complete_callback: Script,
    put_callback: Script,
    put_call_record: Script,
    remove_call_record: Script,
    renew_stream_leases: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            enqueue: routing_script!("enqueue.lua"),
            remove_call: routing_script!("remove_call.lua"),
            waiting: routing_script!("waiting.lua"),
            position: routing_script!("position.lua"),
            reserve: routing_script!("reserve.lua"),
            offer_answered: routing_script!("offer_answered.lua"),
            offer_missed: routing_script!("offer_missed.lua"),
            call_finished: routing_script!("call_finished.lua"),
            restore_offer: routing_script!("restore_offer.lua"),
            set_agent_status: routing_script!("set_agent_status.lua"),
            register_agents: Script::new(include_str!("lua/register_agents.lua")),
            data_epoch: Script::new(include_str!("lua/data_epoch.lua")),
            record_stats: Script::new(include_str!("lua/record_stats.lua")),
            read_stats: Script::new(include_str!("lua/read_stats.lua")),
            sum_stats: Script::new(include_str!("lua/sum_stats.lua")),
            record_failure: Script::new(include_str!("lua/record_failure.lua")),
            put_reset_code: Script::new(include_str!("lua/put_reset_code.lua")),
            check_reset_code: Script::new(include_str!("lua/check_reset_code.lua")),
            complete_callback: routing_script!("complete_callback.lua"),
            put_callback: routing_script!("put_callback.lua"),
            put_call_record: routing_script!("put_call_record.lua"),
            remove_call_record: routing_script!("remove_call_record.lua"),
            renew_stream_leases: routing_script!("renew_stream_leases.lua"),
        }
    }
}

/// A call as the scripts keep it.
#[derive(Serialize, Deserialize)]
struct StoredCall {
    call_sid: String,
    queue: String,
    node: String,
    enqueued_at_ms: i64,
    priority: i32,
    verification_failed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback_id: Option<String>,
    /// Its member in the waiting set, kept so the scripts can put it back in the same place.
    rank: String,
}

impl StoredCall {
    /// `call` as the scripts keep it, as JSON.
    fn json(call: &QueuedCall, key: &str) -> Result<String, StoreError> {
        serde_json::to_string(&StoredCall {
            call_sid: call.call_sid.clone(),
            queue: call.queue.clone(),
            node: call.node.clone(),
            enqueued_at_ms: call.enqueued_at_ms,
            priority: call.priority,
            verification_failed: call.verification_failed,
            callback_id: call.callback_id.clone(),
            rank: rank(call),
        })
        .map_err(|error| corrupt(key, format!("a call: {error}")))
    }
}

/// An agent as the scripts keep it: flat, without nulls (Lua's cjson has no good `null`).
#[derive(Serialize, Deserialize)]
struct StoredAgent {
    status: AgentStatus,
    state: String,
    call_sid: String,
    since_ms: i64,
    until_ms: i64,
    idle_since_ms: i64,
    status_changed_ms: i64,
    calls_today: u32,
    calls_day: i64,
    missed_in_a_row: u32,
}

impl StoredAgent {
    fn new(now_ms: i64) -> StoredAgent {
        StoredAgent {
            status: AgentStatus::Offline,
            state: "idle".to_owned(),
            call_sid: String::new(),
            since_ms: 0,
            until_ms: 0,
            idle_since_ms: now_ms,
            status_changed_ms: now_ms,
            calls_today: 0,
            calls_day: day_of(now_ms),
            missed_in_a_row: 0,
        }
    }

    fn into_record(self, id: String, key: &str) -> Result<AgentRecord, StoreError> {
        let activity = match self.state.as_str() {
            "idle" => AgentActivity::Idle,
            "reserved" => AgentActivity::Reserved {
                call_sid: self.call_sid,
                since_ms: self.since_ms,
            },
            "on_call" => AgentActivity::OnCall {
                call_sid: self.call_sid,
                since_ms: self.since_ms,
            },
            "wrap_up" => AgentActivity::WrapUp {
                until_ms: self.until_ms,
            },
            other => {
                return Err(corrupt(
                    key,
                    format!("agent `{id}` has unknown state `{other}`"),
                ));
            }
        };
        Ok(AgentRecord {
            id,
            status: self.status,
            activity,
            idle_since_ms: self.idle_since_ms,
            status_changed_ms: self.status_changed_ms,
            calls_today: self.calls_today,
            calls_day: self.calls_day,
            missed_in_a_row: self.missed_in_a_row,
        })
    }
}

/// A callback request as Redis keeps it: flat, without nulls (`completed_at_ms` 0 while
/// pending, `patient_ref` empty without one). The fields added with callbacks careline places
/// itself default, so requests kept before them still read; an empty attempt list is left out
/// (Lua's cjson would write it back as an object).
#[derive(Serialize, Deserialize)]
struct StoredCallback {
    id: String,
    queue: String,
    number: String,
    call_sid: String,
    requested_at_ms: i64,
    place_ms: i64,
    due_at_ms: i64,
    status: CallbackStatus,
    completed_at_ms: i64,
    #[serde(default)]
    language: String,
    #[serde(default)]
    patient_ref: String,
    #[serde(default)]
    verification_failed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attempts: Vec<super::CallbackAttempt>,
    #[serde(default)]
    claimed_by: String,
    #[serde(default)]
    claimed_until_ms: i64,
    #[serde(default)]
    version: u64,
}

impl StoredCallback {
    fn of(request: &CallbackRequest) -> StoredCallback {
        StoredCallback {
            id: request.id.clone(),
            queue: request.queue.clone(),
            number: request.number.clone(),
            call_sid: request.call_sid.clone(),
            requested_at_ms: request.requested_at_ms,
            place_ms: request.place_ms,
            due_at_ms: request.due_at_ms,
            status: request.status,
            completed_at_ms: request.completed_at_ms.unwrap_or(0),
            language: request.language.clone(),
            patient_ref: request.patient_ref.clone().unwrap_or_default(),
            verification_failed: request.verification_failed,
            attempts: request.attempts.clone(),
            claimed_by: request.claimed_by.clone(),
            claimed_until_ms: request.claimed_until_ms,
            version: request.version,
        }
    }

    fn into_request(self) -> CallbackRequest {
        let completed_at_ms = match self.status {
            CallbackStatus::Pending => None,
            CallbackStatus::Done | CallbackStatus::Failed => Some(self.completed_at_ms),
        };
        CallbackRequest {
            id: self.id,
            queue: self.queue,
            number: self.number,
            call_sid: self.call_sid,
            requested_at_ms: self.requested_at_ms,
            place_ms: self.place_ms,
            due_at_ms: self.due_at_ms,
            status: self.status,
            completed_at_ms,
            language: self.language,
            patient_ref: Some(self.patient_ref).filter(|patient| !patient.is_empty()),
            verification_failed: self.verification_failed,
            attempts: self.attempts,
            claimed_by: self.claimed_by,
            claimed_until_ms: self.claimed_until_ms,
            version: self.version,
        }
    }
}

/// A callback from its JSON. Parse errors name the field, never the value: a value here may
/// be the caller's phone number.
fn callback_request(id: &str, value: Value, key: &str) -> Result<CallbackRequest, StoreError> {
    let raw = text(value, key, "a callback request")?;
    let stored: StoredCallback = serde_json::from_str(&raw).map_err(|error| {
        corrupt(
            key,
            format!(
                "callback `{id}` is not a careline callback request (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    Ok(stored.into_request())
}

/// The waiting-set member of a call: lexicographic order is service order.
fn rank(call: &QueuedCall) -> String {
    format!(
        "{}\0{:08x}{:016x}{}",
        call.queue,
        priority_rank(call.priority),
        time_rank(call.enqueued_at_ms),
        call.call_sid
    )
}

fn corrupt(key: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        detail: detail.into(),
    }
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::LongestIdle => "longest_idle",
        Strategy::RoundRobin => "round_robin",
        Strategy::FewestCalls => "fewest_calls",
    }
}

fn status_name(status: AgentStatus) -> &'static str {
    match status {
        AgentStatus::Available => "available",
        AgentStatus::Break => "break",
        AgentStatus::Offline => "offline",
    }
}

/// What a Redis failure means to careline.
fn store_error(error: RedisError) -> StoreError {
    if let Some(code) = error.code() {
        // Errors raised by a script end with " script: <sha>, on @user_script:<line>."
        let detail = error.detail().unwrap_or_default();
        let detail = detail.split(" script: ").next().unwrap_or_default().trim();
        match code {
            "CORRUPT" => {
                let (key, detail) = detail.split_once(' ').unwrap_or((detail, ""));
                return corrupt(key, detail);
            }
            "UNKNOWN_AGENT" => return StoreError::UnknownAgent(detail.to_owned()),
            "WRONGTYPE" => return corrupt("(a careline key)", format!("WRONGTYPE {detail}")),
            "READONLY" => {
                return StoreError::Unavailable(
                    "the Redis server is a replica now, not the master (failover)".to_owned(),
                );
            }
            _ => {}
        }
    }
    if let Some(StoreError::Config(problem)) = sentinel::auth_problem(&error, "Redis", Who::Master)
    {
        // Credentials changed under a running node: unreachable until they are put right.
        return StoreError::Unavailable(problem);
    }
    if error.is_timeout() {
        return StoreError::Unavailable(format!(
            "Redis did not answer within {} ms",
            RESPONSE_TIMEOUT.as_millis()
        ));
    }
    if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error() {
        return StoreError::Unavailable(format!(
            "cannot reach Redis: {}",
            sentinel::describe(&error)
        ));
    }
    match error.kind() {
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
            corrupt("(reply)", error.to_string())
        }
        _ => StoreError::Unavailable(format!("Redis refused the command: {error}")),
    }
}

fn text(value: Value, key: &str, what: &str) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|_| corrupt(key, format!("{what} is not UTF-8")))
        }
        Value::SimpleString(text) => Ok(text),
        Value::VerbatimString { text, .. } => Ok(text),
        other => Err(corrupt(key, format!("{what} is not text: {other:?}"))),
    }
}

fn integer(value: Value, key: &str, what: &str) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(n),
        other => Err(corrupt(key, format!("{what} is not an integer: {other:?}"))),
    }
}

fn array(value: Value, key: &str, what: &str) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(corrupt(key, format!("{what} is not a list: {other:?}"))),
    }
}

/// The field/value pairs of an `HGETALL` reply (a map in RESP3, a flat list in RESP2).
fn hash_pairs(value: Value, key: &str, what: &str) -> Result<Vec<(Value, Value)>, StoreError> {
    match value {
        Value::Map(pairs) => Ok(pairs),
        value => {
            let mut flat = array(value, key, what)?.into_iter();
            let mut pairs = Vec::new();
            while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
                pairs.push((field, value));
            }
            Ok(pairs)
        }
    }
}

fn json<T: for<'de> Deserialize<'de>>(raw: &str, key: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|error| corrupt(key, format!("{what}: {error}")))
}

fn queued_call(value: Value, key: &str) -> Result<QueuedCall, StoreError> {
    let raw = text(value, key, "a call")?;
    let stored: StoredCall = json(&raw, key, "a call")?;
    Ok(QueuedCall {
        call_sid: stored.call_sid,
        queue: stored.queue,
        node: stored.node,
        enqueued_at_ms: stored.enqueued_at_ms,
        priority: stored.priority,
        verification_failed: stored.verification_failed,
        callback_id: stored.callback_id,
    })
}

/// A call record from its JSON. A parse error names where, never the value: a record holds
/// the caller's number.
fn call_record(value: Value, key: &str) -> Result<CallRecord, StoreError> {
    let raw = text(value, key, "a call record")?;
    serde_json::from_str(&raw).map_err(|error| {
        corrupt(
            key,
            format!(
                "a call record is not one careline wrote ({:?} error at column {})",
                error.classify(),
                error.column()
            ),
        )
    })
}

fn agent_record(id: String, value: Value, key: &str) -> Result<AgentRecord, StoreError> {
    let raw = text(value, key, "an agent")?;
    let stored: StoredAgent = json(&raw, key, &format!("agent `{id}`"))?;
    stored.into_record(id, key)
}

impl RedisStore {
    /// Connect to the Redis at `url`, keeping careline's keys under `key_prefix`. Fails when
    /// Redis cannot be reached now.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisStore, StoreError> {
        RedisStore::open(&RedisAccess::url(url), key_prefix).await
    }

    /// Like [`RedisStore::connect`], but connects on first use: a node can start while Redis is
    /// down, and its operations fail with [`StoreError::Unavailable`] until Redis is back.
    pub fn connect_lazy(url: &str, key_prefix: &str) -> Result<RedisStore, StoreError> {
        check_key_prefix(key_prefix)?;
        let access = RedisAccess::url(url);
        let RedisTarget::Url(url) = access.target() else {
            return Err(StoreError::Config("a URL is needed".to_owned()));
        };
        let client = access.url_client(url)?;
        let connection =
            ConnectionManager::new_lazy_with_config(client, super::redis_link::manager_config())
                .map_err(store_error)?;
        Ok(RedisStore::with_link(
            Link::Fixed {
                connection,
                address: access.url_address(),
            },
            key_prefix,
        ))
    }

    /// `remove_call.lua`: the call out of every queue, any agent reserved for it freed; only
    /// while it belongs to `node` unless `node` is empty.
    async fn remove(&self, call_sid: &str, node: &str) -> Result<Option<QueuedCall>, StoreError> {
        let mut invocation = self.scripts.remove_call.prepare_invoke();
        invocation
            .key(&self.keys.waiting)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .key(&self.keys.agents)
            .arg(call_sid)
            .arg(node);
        match self.run(&invocation).await? {
            Value::Nil => Ok(None),
            value => queued_call(value, &self.keys.calls).map(Some),
        }
    }

    /// Connect to the master `access` names (a URL, or Sentinels), keeping careline's keys
    /// under `key_prefix`, and check that it answers with the credentials given. Fails with
    /// [`StoreError::Unavailable`] when Redis cannot be reached now, and with
    /// [`StoreError::Config`] (naming the variable to set) when it refuses the credentials.
    pub async fn open(access: &RedisAccess, key_prefix: &str) -> Result<RedisStore, StoreError> {
        check_key_prefix(key_prefix)?;
        let opening = async {
            let store = RedisStore::with_link(Link::open(access, false).await?, key_prefix);
            store.check_access().await?;
            Ok(store)
        };
        match tokio::time::timeout(OPERATION_DEADLINE, opening).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no connection to Redis within {} ms",
                OPERATION_DEADLINE.as_millis()
            ))),
        }
    }

    /// Like [`RedisStore::open`], but connects on first use.
    pub async fn open_lazy(
        access: &RedisAccess,
        key_prefix: &str,
    ) -> Result<RedisStore, StoreError> {
        check_key_prefix(key_prefix)?;
        Ok(RedisStore::with_link(
            Link::open(access, true).await?,
            key_prefix,
        ))
    }

    fn with_link(link: Link, key_prefix: &str) -> RedisStore {
        RedisStore {
            link,
            keys: Keys::new(key_prefix),
            scripts: Scripts::new(),
        }
    }

    /// One `PING` whose refusal for want of (or with wrong) credentials is a configuration
    /// problem naming the variables to set, not an outage.
    async fn check_access(&self) -> Result<(), StoreError> {
        let leased = self.link.connection().await?;
        let mut connection = leased.connection.clone();
        let answer = redis::cmd("PING")
            .query_async::<Value>(&mut connection)
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(error) => {
                self.link.failed(&leased, &error);
                let server = self
                    .link
                    .master_address()
                    .map_or_else(|| "Redis".to_owned(), |at| format!("Redis at {at}"));
                Err(sentinel::auth_problem(&error, &server, Who::Master)
                    .unwrap_or_else(|| store_error(error)))
            }
        }
    }

    /// One Redis exchange within the operation deadline; the outer error is the deadline, or
    /// no master to run it on (Sentinels that name none yet).
    async fn exchange<F, Fut>(&self, attempt: F) -> Result<RedisResult<Value>, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<Value>>,
    {
        let exchange = async {
            let leased = self.link.connection().await?;
            let result = attempt(leased.connection.clone()).await;
            if let Err(error) = &result {
                self.link.failed(&leased, error);
            }
            Ok(result)
        };
        tokio::time::timeout(OPERATION_DEADLINE, exchange)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "Redis did not answer within {} ms",
                    OPERATION_DEADLINE.as_millis()
                ))
            })?
    }

    async fn script_once(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<RedisResult<Value>, StoreError> {
        self.exchange(
            |mut connection| async move { invocation.invoke_async(&mut connection).await },
        )
        .await
    }

    /// Run a script once: for changes that must not happen twice if an answer was lost. Only
    /// a `-READONLY` answer (a demoted master: the script wrote nothing) is tried again, on the
    /// master the Sentinels name now.
    async fn run(&self, invocation: &ScriptInvocation<'_>) -> Result<Value, StoreError> {
        match self.script_once(invocation).await? {
            Err(error) if is_read_only(&error) => {
                self.script_once(invocation).await?.map_err(store_error)
            }
            result => result.map_err(store_error),
        }
    }

    /// Run a script that is safe to repeat, once more if the connection had dropped (the first
    /// command after a Redis restart finds the old connection dead and starts the reconnect)
    /// or the master had moved.
    async fn run_idempotent(&self, invocation: &ScriptInvocation<'_>) -> Result<Value, StoreError> {
        match self.script_once(invocation).await? {
            Err(error) if worth_another_try(&error) => {
                self.script_once(invocation).await?.map_err(store_error)
            }
            result => result.map_err(store_error),
        }
    }

    /// Run a plain command (each is safe to repeat), once more if the connection had dropped
    /// or the master had moved.
    async fn command(&self, command: &redis::Cmd) -> Result<Value, StoreError> {
        let once = || {
            self.exchange(|mut connection| async move {
                command.query_async::<Value>(&mut connection).await
            })
        };
        match once().await? {
            Err(error) if worth_another_try(&error) => once().await?.map_err(store_error),
            result => result.map_err(store_error),
        }
    }
}

/// A demoted master's answer to a write.
fn is_read_only(error: &RedisError) -> bool {
    error.code() == Some("READONLY")
}

/// Errors after which an operation that is safe to repeat is tried once more.
fn worth_another_try(error: &RedisError) -> bool {
    error.is_connection_dropped() || is_read_only(error)
}

fn check_key_prefix(key_prefix: &str) -> Result<(), StoreError> {
    if key_prefix.contains(['{', '}']) {
        return Err(StoreError::Config(format!(
            "key_prefix `{key_prefix}` contains `{{` or `}}`, which would break the Redis Cluster \
             hash tags careline puts around it; use letters, digits, `-`, `_` or `:`"
        )));
    }
    Ok(())
}

/// A counter read back from a stats hash: absent is zero, anything but a non-negative integer
/// is data careline did not write.
fn counter(value: Value, key: &str, field: &str) -> Result<u64, StoreError> {
    match value {
        Value::Nil => Ok(0),
        Value::Int(n) => u64::try_from(n).map_err(|_| corrupt(key, format!("{field} = {n}"))),
        other => {
            let raw = text(other, key, field)?;
            raw.parse()
                .map_err(|_| corrupt(key, format!("{field} is not a count: {raw:?}")))
        }
    }
}

fn queue_counters(values: Vec<Value>, key: &str) -> Result<QueueCounters, StoreError> {
    let mut counters = QueueCounters::default();
    if values.len() != QueueField::ALL.len() {
        return Err(corrupt(key, format!("{} counters read back", values.len())));
    }
    for (field, value) in QueueField::ALL.into_iter().zip(values) {
        counters.add(field, counter(value, key, field.name())?);
    }
    Ok(counters)
}

fn call_counters(values: Vec<Value>, key: &str) -> Result<CallCounters, StoreError> {
    let mut counters = CallCounters::default();
    if values.len() != CallField::ALL.len() {
        return Err(corrupt(key, format!("{} counters read back", values.len())));
    }
    for (field, value) in CallField::ALL.into_iter().zip(values) {
        counters.add(field, counter(value, key, field.name())?);
    }
    Ok(counters)
}

impl RedisStore {
    /// Add `increments` to the buckets of every size that hold `now_ms`, named by `key`.
    async fn record_stats(
        &self,
        key: impl Fn(StatsInterval, i64) -> String,
        increments: &[(&str, u64)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if increments.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.record_stats.prepare_invoke();
        for interval in StatsInterval::ALL {
            invocation
                .key(key(interval, interval.bucket_start(now_ms)))
                .arg(interval.ttl_ms());
        }
        for (field, amount) in increments {
            invocation.arg(*field).arg(*amount);
        }
        // Counting twice is worse than missing one: never repeated.
        self.run(&invocation).await?;
        Ok(())
    }

    /// Read `fields` of the bucket hashes `key` names, for every bucket of the range.
    async fn read_stats<C>(
        &self,
        key: impl Fn(StatsInterval, i64) -> String,
        fields: &[&str],
        parse: impl Fn(Vec<Value>, &str) -> Result<C, StoreError>,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<Vec<StatsBucket<C>>, StoreError> {
        let buckets: Vec<(i64, String)> = interval
            .bucket_starts(from_ms, to_ms)
            .map(|start_ms| (start_ms, key(interval, start_ms)))
            .collect();
        let Some((_, first_key)) = buckets.first() else {
            return Ok(Vec::new());
        };
        let mut invocation = self.scripts.read_stats.prepare_invoke();
        for (_, key) in &buckets {
            invocation.key(key);
        }
        for field in fields {
            invocation.arg(*field);
        }
        let rows = array(
            self.run_idempotent(&invocation).await?,
            first_key,
            "statistics",
        )?;
        if rows.len() != buckets.len() {
            return Err(corrupt(
                first_key,
                format!("{} buckets read back, {} asked", rows.len(), buckets.len()),
            ));
        }
        buckets
            .into_iter()
            .zip(rows)
            .map(|((start_ms, key), row)| {
                let values = array(row, &key, "a statistics bucket")?;
                Ok(StatsBucket {
                    start_ms,
                    counters: parse(values, &key)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn master_address(&self) -> Option<String> {
        self.link
            .master_address()
            .map(|address| address.to_string())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self.command(&redis::cmd("PING")).await? {
            Value::SimpleString(_) | Value::Okay | Value::BulkString(_) => Ok(()),
            other => Err(corrupt("(ping)", format!("unexpected answer {other:?}"))),
        }
    }

    async fn data_epoch(&self) -> Result<String, StoreError> {
        let mut invocation = self.scripts.data_epoch.prepare_invoke();
        invocation
            .key(&self.keys.epoch)
            .arg(format!("{:016x}", rand::random::<u64>()));
        let value = self.run_idempotent(&invocation).await?;
        text(value, &self.keys.epoch, "the data epoch")
    }

    async fn enqueue(&self, call: &QueuedCall) -> Result<Enqueued, StoreError> {
        let rank = rank(call);
        let stored = StoredCall::json(call, &self.keys.calls)?;
        let mut invocation = self.scripts.enqueue.prepare_invoke();
        invocation
            .key(&self.keys.waiting)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .key(&self.keys.agents)
            .key(&self.keys.records)
            .arg(&call.call_sid)
            .arg(stored)
            .arg(rank)
            .arg(&call.node);
        match self.run_idempotent(&invocation).await? {
            Value::Array(items) => {
                let mut items = items.into_iter();
                let (Some(agent_id), Some(since), Some(call)) =
                    (items.next(), items.next(), items.next())
                else {
                    return Err(corrupt(&self.keys.reserved, "a reservation reply is short"));
                };
                let reserved_at_ms = text(since, &self.keys.agents, "a reservation time")?
                    .parse()
                    .map_err(|_| corrupt(&self.keys.agents, "a reservation time is no number"))?;
                Ok(Enqueued::Reserved(Reservation {
                    call: queued_call(call, &self.keys.calls)?,
                    agent_id: text(agent_id, &self.keys.reserved, "an agent id")?,
                    reserved_at_ms,
                }))
            }
            value => match text(value, &self.keys.calls, "an enqueue reply")?.as_str() {
                "refused" => Ok(Enqueued::Refused),
                _ => Ok(Enqueued::Waiting),
            },
        }
    }

    async fn remove_call(&self, call_sid: &str) -> Result<Option<QueuedCall>, StoreError> {
        self.remove(call_sid, "").await
    }

    async fn remove_call_of_node(&self, call_sid: &str, node: &str) -> Result<bool, StoreError> {
        Ok(self.remove(call_sid, node).await?.is_some())
    }

    async fn waiting(&self, queue: &str) -> Result<Vec<QueuedCall>, StoreError> {
        let mut invocation = self.scripts.waiting.prepare_invoke();
        invocation
            .key(&self.keys.waiting)
            .key(&self.keys.calls)
            .arg(queue);
        let value = self.run_idempotent(&invocation).await?;
        array(value, &self.keys.waiting, "the waiting calls")?
            .into_iter()
            .map(|call| queued_call(call, &self.keys.calls))
            .collect()
    }

    async fn position(&self, queue: &str, call_sid: &str) -> Result<Option<usize>, StoreError> {
        let mut invocation = self.scripts.position.prepare_invoke();
        invocation
            .key(&self.keys.waiting)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .arg(queue)
            .arg(call_sid);
        match self.run_idempotent(&invocation).await? {
            Value::Nil => Ok(None),
            value => {
                let place = integer(value, &self.keys.waiting, "a place")?;
                usize::try_from(place)
                    .map(Some)
                    .map_err(|_| corrupt(&self.keys.waiting, format!("place {place}")))
            }
        }
    }

    async fn register_agents(&self, agent_ids: &[String], now_ms: i64) -> Result<(), StoreError> {
        if agent_ids.is_empty() {
            return Ok(());
        }
        let fresh = serde_json::to_string(&StoredAgent::new(now_ms))
            .map_err(|error| corrupt(&self.keys.agents, format!("an agent: {error}")))?;
        let mut invocation = self.scripts.register_agents.prepare_invoke();
        invocation.key(&self.keys.agents);
        for id in agent_ids {
            invocation.arg(id).arg(&fresh);
        }
        self.run_idempotent(&invocation).await?;
        Ok(())
    }

    async fn set_agent_status(
        &self,
        agent_id: &str,
        status: AgentStatus,
        now_ms: i64,
    ) -> Result<AgentRecord, StoreError> {
        let mut invocation = self.scripts.set_agent_status.prepare_invoke();
        invocation
            .key(&self.keys.agents)
            .arg(agent_id)
            .arg(status_name(status))
            .arg(now_ms);
        let value = self.run_idempotent(&invocation).await?;
        agent_record(agent_id.to_owned(), value, &self.keys.agents)
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut command = redis::cmd("HGETALL");
        command.arg(&self.keys.agents);
        let key = &self.keys.agents;
        let pairs = hash_pairs(self.command(&command).await?, key, "the agents")?;
        let mut agents = pairs
            .into_iter()
            .map(|(id, agent)| agent_record(text(id, key, "an agent id")?, agent, key))
            .collect::<Result<Vec<_>, _>>()?;
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
    }

    async fn agent(&self, agent_id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let mut command = redis::cmd("HGET");
        command.arg(&self.keys.agents).arg(agent_id);
        match self.command(&command).await? {
            Value::Nil => Ok(None),
            value => agent_record(agent_id.to_owned(), value, &self.keys.agents).map(Some),
        }
    }

    async fn reserve(
        &self,
        queue: &str,
        node: &str,
        candidates: &[String],
        strategy: Strategy,
        now_ms: i64,
    ) -> Result<Option<Reservation>, StoreError> {
        let mut invocation = self.scripts.reserve.prepare_invoke();
        invocation
            .key(&self.keys.waiting)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .key(&self.keys.agents)
            .key(&self.keys.last_served)
            .arg(queue)
            .arg(node)
            .arg(strategy_name(strategy))
            .arg(now_ms)
            .arg(day_of(now_ms));
        for id in candidate_order(candidates) {
            invocation.arg(id);
        }
        let value = self.run(&invocation).await?;
        if value == Value::Nil {
            return Ok(None);
        }
        let mut pair = array(value, &self.keys.reserved, "a reservation")?.into_iter();
        let (Some(call), Some(agent_id), None) = (pair.next(), pair.next(), pair.next()) else {
            return Err(corrupt(&self.keys.reserved, "a reservation is not a pair"));
        };
        Ok(Some(Reservation {
            call: queued_call(call, &self.keys.calls)?,
            agent_id: text(agent_id, &self.keys.reserved, "an agent id")?,
            reserved_at_ms: now_ms,
        }))
    }

    async fn offer_answered(
        &self,
        agent_id: &str,
        call_sid: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut invocation = self.scripts.offer_answered.prepare_invoke();
        invocation
            .key(&self.keys.agents)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .arg(agent_id)
            .arg(call_sid)
            .arg(now_ms)
            .arg(day_of(now_ms));
        self.run(&invocation).await?;
        Ok(())
    }

    async fn offer_missed(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        max_missed: u32,
        now_ms: i64,
    ) -> Result<MissedOffer, StoreError> {
        let mut invocation = self.scripts.offer_missed.prepare_invoke();
        invocation
            .key(&self.keys.waiting)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .key(&self.keys.agents)
            .arg(agent_id)
            .arg(&call.call_sid)
            .arg(max_missed)
            .arg(now_ms);
        let value = self.run(&invocation).await?;
        match text(value, &self.keys.agents, "a missed offer's outcome")?.as_str() {
            "idle" => Ok(MissedOffer::BackToIdle),
            "break" => Ok(MissedOffer::PutOnBreak),
            other => Err(corrupt(
                &self.keys.agents,
                format!("unknown missed-offer outcome `{other}`"),
            )),
        }
    }

    async fn call_finished(
        &self,
        agent_id: &str,
        call_sid: &str,
        wrap_up_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut invocation = self.scripts.call_finished.prepare_invoke();
        invocation
            .key(&self.keys.agents)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .arg(agent_id)
            .arg(call_sid)
            .arg(wrap_up_until_ms)
            .arg(day_of(now_ms));
        self.run(&invocation).await?;
        Ok(())
    }

    async fn call_record(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        let mut command = redis::cmd("HGET");
        command.arg(&self.keys.records).arg(call_sid);
        match self.command(&command).await? {
            Value::Nil => Ok(None),
            value => call_record(value, &self.keys.records).map(Some),
        }
    }

    async fn replace_call_record(
        &self,
        record: &CallRecord,
        expected_version: u64,
    ) -> Result<RecordWrite, StoreError> {
        let mut stored = record.clone();
        stored.version = expected_version.saturating_add(1);
        let json = serde_json::to_string(&stored)
            .map_err(|error| corrupt(&self.keys.records, format!("a call record: {error}")))?;
        let mut invocation = self.scripts.put_call_record.prepare_invoke();
        invocation
            .key(&self.keys.records)
            .key(&self.keys.record_deadlines)
            .arg(&record.call_sid)
            .arg(expected_version)
            .arg(json)
            .arg(record.deadline_ms);
        // Safe to repeat: a write that landed makes the repeat a conflict, read again.
        let written = integer(
            self.run_idempotent(&invocation).await?,
            &self.keys.records,
            "a record version",
        )?;
        Ok(match u64::try_from(written) {
            Ok(version) => RecordWrite::Written { version },
            Err(_) => RecordWrite::Conflict,
        })
    }

    async fn remove_call_record(
        &self,
        call_sid: &str,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.remove_call_record.prepare_invoke();
        invocation
            .key(&self.keys.records)
            .key(&self.keys.record_deadlines)
            .arg(call_sid)
            .arg(expected_version);
        let removed = integer(
            self.run_idempotent(&invocation).await?,
            &self.keys.records,
            "a removal",
        )?;
        Ok(removed == 1)
    }

    async fn call_records(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut command = redis::cmd("HGETALL");
        command.arg(&self.keys.records);
        let pairs = hash_pairs(
            self.command(&command).await?,
            &self.keys.records,
            "the call records",
        )?;
        let mut records = pairs
            .into_iter()
            .map(|(_, value)| call_record(value, &self.keys.records))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(CallRecord::by_arrival);
        Ok(records)
    }

    async fn expired_call_records(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut command = redis::cmd("ZRANGE");
        command
            .arg(&self.keys.record_deadlines)
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        let sids = array(
            self.command(&command).await?,
            &self.keys.record_deadlines,
            "the expired calls",
        )?;
        let mut expired = Vec::with_capacity(sids.len());
        for sid in sids {
            let sid = text(sid, &self.keys.record_deadlines, "a call id")?;
            match self.call_record(&sid).await? {
                Some(record) => expired.push(record),
                // Indexed without a record (a removal raced the listing): nothing to expire.
                None => {
                    let mut forget = redis::cmd("ZREM");
                    forget.arg(&self.keys.record_deadlines).arg(&sid);
                    self.command(&forget).await?;
                }
            }
        }
        Ok(expired)
    }

    async fn renew_stream_leases(
        &self,
        node: &str,
        call_sids: &[String],
        lease_until_ms: i64,
    ) -> Result<usize, StoreError> {
        if call_sids.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.scripts.renew_stream_leases.prepare_invoke();
        invocation
            .key(&self.keys.records)
            .key(&self.keys.record_deadlines)
            .arg(node)
            .arg(lease_until_ms)
            .arg(lease_until_ms.saturating_add(LEASE_GRACE_MS));
        for call_sid in call_sids {
            invocation.arg(call_sid);
        }
        let renewed = integer(
            self.run_idempotent(&invocation).await?,
            &self.keys.records,
            "a renewal count",
        )?;
        Ok(usize::try_from(renewed).unwrap_or(0))
    }

    async fn restore_offer(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        answered: bool,
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        let stored = StoredCall::json(call, &self.keys.calls)?;
        let mut invocation = self.scripts.restore_offer.prepare_invoke();
        invocation
            .key(&self.keys.waiting)
            .key(&self.keys.calls)
            .key(&self.keys.reserved)
            .key(&self.keys.agents)
            .arg(agent_id)
            .arg(&call.call_sid)
            .arg(if answered { "on_call" } else { "reserved" })
            .arg(since_ms)
            .arg(stored);
        // Safe to repeat: a second run finds the agent holding the call and changes nothing.
        let held = integer(
            self.run_idempotent(&invocation).await?,
            &self.keys.agents,
            "a restored offer",
        )?;
        Ok(held == 1)
    }

    async fn record_queue_stat(
        &self,
        queue: &str,
        event: QueueStatEvent,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let increments: Vec<(&str, u64)> = event
            .increments()
            .into_iter()
            .map(|(field, amount)| (field.name(), amount))
            .collect();
        self.record_stats(
            |interval, start_ms| self.keys.queue_stats(queue, interval, start_ms),
            &increments,
            now_ms,
        )
        .await
    }

    async fn record_call_outcome(
        &self,
        outcome: CallOutcomeStat,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.record_stats(
            |interval, start_ms| self.keys.call_stats(interval, start_ms),
            &[(outcome.field().name(), 1)],
            now_ms,
        )
        .await
    }

    async fn queue_stats(
        &self,
        queue: &str,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<Vec<StatsBucket<QueueCounters>>, StoreError> {
        let fields = QueueField::ALL.map(QueueField::name);
        self.read_stats(
            |interval, start_ms| self.keys.queue_stats(queue, interval, start_ms),
            &fields,
            queue_counters,
            from_ms,
            to_ms,
            interval,
        )
        .await
    }

    async fn queue_stats_total(
        &self,
        queue: &str,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<QueueCounters, StoreError> {
        let keys: Vec<String> = interval
            .bucket_starts(from_ms, to_ms)
            .map(|start_ms| self.keys.queue_stats(queue, interval, start_ms))
            .collect();
        let Some(first_key) = keys.first() else {
            return Ok(QueueCounters::default());
        };
        let mut invocation = self.scripts.sum_stats.prepare_invoke();
        for key in &keys {
            invocation.key(key);
        }
        for field in QueueField::ALL {
            invocation.arg(field.name());
        }
        let totals = array(
            self.run_idempotent(&invocation).await?,
            first_key,
            "statistics",
        )?;
        queue_counters(totals, first_key)
    }

    async fn call_outcome_stats(
        &self,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<Vec<StatsBucket<CallCounters>>, StoreError> {
        let fields = CallField::ALL.map(CallField::name);
        self.read_stats(
            |interval, start_ms| self.keys.call_stats(interval, start_ms),
            &fields,
            call_counters,
            from_ms,
            to_ms,
            interval,
        )
        .await
    }

    async fn record_verification_failure(
        &self,
        record: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        let key = self.keys.failures(record);
        let mut invocation = self.scripts.record_failure.prepare_invoke();
        invocation
            .key(&key)
            .arg(now_ms)
            .arg(window_ms)
            .arg(format!("{now_ms}:{:016x}", rand::random::<u64>()));
        let count = integer(self.run(&invocation).await?, &key, "a failure count")?;
        u32::try_from(count).map_err(|_| corrupt(&key, format!("failure count {count}")))
    }

    async fn verification_failures(
        &self,
        record: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        let key = self.keys.failures(record);
        let mut command = redis::cmd("ZCOUNT");
        command
            .arg(&key)
            .arg(format!("({}", now_ms.saturating_sub(window_ms)))
            .arg("+inf");
        let count = integer(self.command(&command).await?, &key, "a count")?;
        u32::try_from(count).map_err(|_| corrupt(&key, format!("failure count {count}")))
    }

    async fn clear_verification_failures(&self, record: &str) -> Result<(), StoreError> {
        let mut command = redis::cmd("DEL");
        command.arg(self.keys.failures(record));
        self.command(&command).await?;
        Ok(())
    }

    async fn put_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        max_checks: u32,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut invocation = self.scripts.put_reset_code.prepare_invoke();
        invocation
            .key(self.keys.reset_code(patient_ref))
            .arg(code_hash)
            .arg(max_checks)
            .arg(expires_at_ms);
        self.run_idempotent(&invocation).await?;
        Ok(())
    }

    async fn check_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        now_ms: i64,
    ) -> Result<CodeCheck, StoreError> {
        let key = self.keys.reset_code(patient_ref);
        let mut invocation = self.scripts.check_reset_code.prepare_invoke();
        invocation.key(&key).arg(code_hash).arg(now_ms);
        let mut answer = array(self.run(&invocation).await?, &key, "a code check")?.into_iter();
        let verdict = match answer.next() {
            Some(verdict) => text(verdict, &key, "a code check")?,
            None => return Err(corrupt(&key, "empty code check")),
        };
        match (verdict.as_str(), answer.next()) {
            ("valid", None) => Ok(CodeCheck::Valid {
                patient_ref: patient_ref.to_owned(),
            }),
            ("none", None) => Ok(CodeCheck::NoCode),
            ("wrong", Some(left)) => {
                let left = integer(left, &key, "checks left")?;
                let checks_left = u32::try_from(left)
                    .map_err(|_| corrupt(&key, format!("checks left {left}")))?;
                Ok(CodeCheck::Wrong { checks_left })
            }
            _ => Err(corrupt(&key, format!("unknown code check `{verdict}`"))),
        }
    }

    async fn add_callback(&self, request: &CallbackRequest) -> Result<(), StoreError> {
        let key = &self.keys.callbacks;
        let stored = serde_json::to_string(&StoredCallback::of(request))
            .map_err(|error| corrupt(key, format!("a callback request: {error}")))?;
        let mut command = redis::cmd("HSETNX");
        command.arg(key).arg(&request.id).arg(stored);
        self.command(&command).await?;
        Ok(())
    }

    async fn callbacks(&self) -> Result<Vec<CallbackRequest>, StoreError> {
        let key = &self.keys.callbacks;
        let mut command = redis::cmd("HGETALL");
        command.arg(key);
        let pairs = hash_pairs(self.command(&command).await?, key, "the callback requests")?;
        let mut requests = pairs
            .into_iter()
            .map(|(id, request)| {
                let id = text(id, key, "a callback id")?;
                callback_request(&id, request, key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        requests.sort_by(callback_order);
        Ok(requests)
    }

    async fn complete_callback(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.complete_callback.prepare_invoke();
        invocation.key(&self.keys.callbacks).arg(id).arg(now_ms);
        let found = integer(
            self.run_idempotent(&invocation).await?,
            &self.keys.callbacks,
            "a callback completion",
        )?;
        Ok(found == 1)
    }

    async fn callback(&self, id: &str) -> Result<Option<CallbackRequest>, StoreError> {
        let key = &self.keys.callbacks;
        let mut command = redis::cmd("HGET");
        command.arg(key).arg(id);
        match self.command(&command).await? {
            Value::Nil => Ok(None),
            value => callback_request(id, value, key).map(Some),
        }
    }

    async fn replace_callback(
        &self,
        request: &CallbackRequest,
        expected_version: u64,
    ) -> Result<RecordWrite, StoreError> {
        let key = &self.keys.callbacks;
        let mut stored = StoredCallback::of(request);
        stored.version = expected_version.saturating_add(1);
        let json = serde_json::to_string(&stored)
            .map_err(|error| corrupt(key, format!("a callback request: {error}")))?;
        let mut invocation = self.scripts.put_callback.prepare_invoke();
        invocation
            .key(key)
            .arg(&request.id)
            .arg(expected_version)
            .arg(json);
        // Safe to repeat: a write that landed makes the repeat a conflict, read again.
        let written = integer(
            self.run_idempotent(&invocation).await?,
            key,
            "a callback version",
        )?;
        Ok(match u64::try_from(written) {
            Ok(version) => RecordWrite::Written { version },
            Err(_) => RecordWrite::Conflict,
        })
    }
}
