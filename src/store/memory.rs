//! The embedded store: one careline node, everything in process memory.
//!
//! All state sits behind one `std::sync::Mutex`, held only for the few map operations of a
//! single change (never across an `.await`), so every change is atomic exactly as a Lua script
//! is in Redis. It mirrors the Redis store rule for rule, down to tie-breaks, and the same
//! conformance suite runs against both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use super::call_record::LEASE_GRACE_MS;
use super::{
    AgentActivity, AgentRecord, AgentStatus, CallCounters, CallOutcomeStat, CallPhase, CallRecord,
    CallbackRequest, CallbackStatus, CodeCheck, Enqueued, MissedOffer, QueueCounters,
    QueueStatEvent, QueuedCall, RecordWrite, Reservation, StatsBucket, StatsInterval, Store,
    StoreError, Strategy, callback_order, day_of,
};

/// The embedded [`Store`]: the default when `[store] url` is absent.
pub struct MemoryStore {
    state: Mutex<State>,
    /// Fixed for the life of the process: the data is lost only with the process itself.
    epoch: String,
}

#[derive(Default)]
struct State {
    calls: HashMap<String, KnownCall>,
    /// Waiting calls per queue, in service order.
    queues: HashMap<String, BTreeSet<Place>>,
    /// By id, so listings and tie-breaks follow id order.
    agents: BTreeMap<String, AgentRecord>,
    /// The agent each queue served last (`round_robin`).
    last_served: HashMap<String, String>,
    /// Failure times per claimed record.
    failures: HashMap<String, Vec<i64>>,
    codes: HashMap<String, ResetCode>,
    /// Callback requests by id.
    callbacks: HashMap<String, CallbackRequest>,
    stats: StatsBook,
    /// Call records by call id.
    records: HashMap<String, CallRecord>,
}

/// Statistics counters by bucket start, for every bucket size.
#[derive(Default)]
struct StatsBook {
    queues: HashMap<(StatsInterval, String), BTreeMap<i64, QueueCounters>>,
    calls: HashMap<StatsInterval, BTreeMap<i64, CallCounters>>,
}

/// Forget buckets whose retention has passed, as Redis expires their keys: a bucket's key
/// lives `ttl_ms` after its last change, which is at the latest the bucket's end.
fn prune_buckets<C>(buckets: &mut BTreeMap<i64, C>, interval: StatsInterval, now_ms: i64) {
    let kept_for = interval.length_ms().saturating_add(interval.ttl_ms());
    while let Some(oldest) = buckets.first_entry()
        && oldest.key().saturating_add(kept_for) <= now_ms
    {
        oldest.remove();
    }
}

/// Every bucket of the range, zeros where nothing was counted.
fn read_buckets<C: Copy + Default>(
    buckets: Option<&BTreeMap<i64, C>>,
    from_ms: i64,
    to_ms: i64,
    interval: StatsInterval,
) -> Vec<StatsBucket<C>> {
    interval
        .bucket_starts(from_ms, to_ms)
        .map(|start_ms| StatsBucket {
            start_ms,
            counters: buckets
                .and_then(|buckets| buckets.get(&start_ms))
                .copied()
                .unwrap_or_default(),
        })
        .collect()
}

struct KnownCall {
    call: QueuedCall,
    /// The agent the call is offered to; `None` while it waits.
    reserved_by: Option<String>,
}

/// A call's place in its queue: the same order as the Redis store's lexicographic ranks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    /// Higher priority first.
    priority_rank: u32,
    /// Then earlier enqueue first.
    time_rank: u64,
    /// Then by call id, as Redis orders equal ranks.
    call_sid: String,
}

impl Place {
    fn of(call: &QueuedCall) -> Place {
        Place {
            priority_rank: priority_rank(call.priority),
            time_rank: time_rank(call.enqueued_at_ms),
            call_sid: call.call_sid.clone(),
        }
    }
}

/// Maps priority to an unsigned key that sorts higher priorities first.
pub(crate) fn priority_rank(priority: i32) -> u32 {
    (i64::from(i32::MAX) - i64::from(priority)) as u32
}

/// Maps a time to an unsigned key that sorts earlier times first (negative times included).
pub(crate) fn time_rank(enqueued_at_ms: i64) -> u64 {
    (enqueued_at_ms as u64) ^ (1 << 63)
}

struct ResetCode {
    hash: String,
    checks_left: u32,
    expires_at_ms: i64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State::default()),
            epoch: format!("{:016x}", rand::random::<u64>()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change completes before the lock is released and none can panic halfway, so
        // the state behind a poisoned lock is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

/// Sorted, without duplicates: the order every strategy breaks ties in.
pub(crate) fn candidate_order(candidates: &[String]) -> Vec<&str> {
    let mut ids: Vec<&str> = candidates.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn is_free(agent: &AgentRecord, now_ms: i64) -> bool {
    agent.status == AgentStatus::Available
        && matches!(agent.activity_at(now_ms), AgentActivity::Idle)
}

/// The agent `strategy` picks among `eligible` (in id order).
fn pick<'a>(
    eligible: &[&'a AgentRecord],
    strategy: Strategy,
    last_served: Option<&str>,
    now_ms: i64,
) -> Option<&'a AgentRecord> {
    match strategy {
        Strategy::LongestIdle => eligible.iter().copied().min_by_key(|a| a.idle_since_ms),
        Strategy::FewestCalls => eligible
            .iter()
            .copied()
            .min_by_key(|a| (a.calls_today_at(now_ms), a.idle_since_ms)),
        Strategy::RoundRobin => {
            let next = last_served
                .and_then(|last| eligible.iter().find(|a| a.id.as_str() > last))
                .or(eligible.first());
            next.copied()
        }
    }
}

/// Bookkeeping of an answered offer.
fn count_answered(agent: &mut AgentRecord, now_ms: i64) {
    let today = day_of(now_ms);
    agent.calls_today = if agent.calls_day == today {
        agent.calls_today.saturating_add(1)
    } else {
        1
    };
    agent.calls_day = today;
    agent.missed_in_a_row = 0;
}

fn is_reserved_for(agent: &AgentRecord, call_sid: &str) -> bool {
    matches!(&agent.activity, AgentActivity::Reserved { call_sid: held, .. } if held == call_sid)
}

impl State {
    fn agent_mut(&mut self, agent_id: &str) -> Result<&mut AgentRecord, StoreError> {
        self.agents
            .get_mut(agent_id)
            .ok_or_else(|| StoreError::UnknownAgent(agent_id.to_owned()))
    }

    /// The call leaves the store (answered): it no longer waits nor holds anyone.
    fn forget_call(&mut self, call_sid: &str) {
        if let Some(known) = self.calls.remove(call_sid)
            && let Some(places) = self.queues.get_mut(&known.call.queue)
        {
            places.remove(&Place::of(&known.call));
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn data_epoch(&self) -> Result<String, StoreError> {
        Ok(self.epoch.clone())
    }

    async fn enqueue(&self, call: &QueuedCall) -> Result<Enqueued, StoreError> {
        let mut state = self.state();
        if state
            .records
            .get(&call.call_sid)
            .is_some_and(|record| record.queued.is_none())
        {
            return Ok(Enqueued::Refused);
        }
        let State {
            calls,
            agents,
            queues,
            ..
        } = &mut *state;
        match calls.get_mut(&call.call_sid) {
            Some(known) => {
                known.call.node.clone_from(&call.node);
                if let Some(agent_id) = &known.reserved_by {
                    let reserved_at_ms = match agents.get(agent_id).map(|agent| &agent.activity) {
                        Some(AgentActivity::Reserved { since_ms, .. }) => *since_ms,
                        _ => 0,
                    };
                    return Ok(Enqueued::Reserved(Reservation {
                        call: known.call.clone(),
                        agent_id: agent_id.clone(),
                        reserved_at_ms,
                    }));
                }
            }
            None => {
                queues
                    .entry(call.queue.clone())
                    .or_default()
                    .insert(Place::of(call));
                calls.insert(
                    call.call_sid.clone(),
                    KnownCall {
                        call: call.clone(),
                        reserved_by: None,
                    },
                );
            }
        }
        Ok(Enqueued::Waiting)
    }

    async fn remove_call(&self, call_sid: &str) -> Result<Option<QueuedCall>, StoreError> {
        let mut state = self.state();
        let Some(known) = state.calls.remove(call_sid) else {
            return Ok(None);
        };
        if let Some(places) = state.queues.get_mut(&known.call.queue) {
            places.remove(&Place::of(&known.call));
        }
        if let Some(agent_id) = &known.reserved_by
            && let Some(agent) = state.agents.get_mut(agent_id)
            && is_reserved_for(agent, call_sid)
        {
            // The offer never happened as far as the agent's turn is concerned: their idle
            // time runs on from before it.
            agent.activity = AgentActivity::Idle;
        }
        Ok(Some(known.call))
    }

    async fn remove_call_of_node(&self, call_sid: &str, node: &str) -> Result<bool, StoreError> {
        let owned = self
            .state()
            .calls
            .get(call_sid)
            .is_some_and(|known| known.call.node == node);
        // One lock for the check and the removal, as one script in Redis.
        if !owned {
            return Ok(false);
        }
        Ok(self.remove_call(call_sid).await?.is_some())
    }

    async fn waiting(&self, queue: &str) -> Result<Vec<QueuedCall>, StoreError> {
        let state = self.state();
        let Some(places) = state.queues.get(queue) else {
            return Ok(Vec::new());
        };
        Ok(places
            .iter()
            .filter_map(|place| state.calls.get(&place.call_sid))
            .map(|known| known.call.clone())
            .collect())
    }

    async fn position(&self, queue: &str, call_sid: &str) -> Result<Option<usize>, StoreError> {
        let state = self.state();
        let Some(known) = state.calls.get(call_sid) else {
            return Ok(None);
        };
        if known.reserved_by.is_some() || known.call.queue != queue {
            return Ok(None);
        }
        let place = Place::of(&known.call);
        Ok(state
            .queues
            .get(queue)
            .map(|places| places.range(..place).count() + 1))
    }

    async fn register_agents(&self, agent_ids: &[String], now_ms: i64) -> Result<(), StoreError> {
        let mut state = self.state();
        for id in agent_ids {
            state
                .agents
                .entry(id.clone())
                .or_insert_with(|| AgentRecord {
                    id: id.clone(),
                    status: AgentStatus::Offline,
                    activity: AgentActivity::Idle,
                    idle_since_ms: now_ms,
                    status_changed_ms: now_ms,
                    calls_today: 0,
                    calls_day: day_of(now_ms),
                    missed_in_a_row: 0,
                });
        }
        Ok(())
    }

    async fn set_agent_status(
        &self,
        agent_id: &str,
        status: AgentStatus,
        now_ms: i64,
    ) -> Result<AgentRecord, StoreError> {
        let mut state = self.state();
        let agent = state.agent_mut(agent_id)?;
        if agent.status != status {
            if status == AgentStatus::Available {
                agent.idle_since_ms = agent.idle_since_ms.max(now_ms);
            }
            agent.status = status;
            agent.status_changed_ms = now_ms;
        }
        Ok(agent.clone())
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        Ok(self.state().agents.values().cloned().collect())
    }

    async fn agent(&self, agent_id: &str) -> Result<Option<AgentRecord>, StoreError> {
        Ok(self.state().agents.get(agent_id).cloned())
    }

    async fn reserve(
        &self,
        queue: &str,
        node: &str,
        candidates: &[String],
        strategy: Strategy,
        now_ms: i64,
    ) -> Result<Option<Reservation>, StoreError> {
        let mut state = self.state();
        let Some(head) = state.queues.get(queue).and_then(|places| places.first()) else {
            return Ok(None);
        };
        let head = head.clone();
        let Some(known) = state.calls.get(&head.call_sid) else {
            return Err(StoreError::Corrupt {
                key: format!("queue {queue}"),
                detail: format!("waiting call {} has no record", head.call_sid),
            });
        };
        if known.call.node != node {
            return Ok(None);
        }
        let eligible: Vec<&AgentRecord> = candidate_order(candidates)
            .into_iter()
            .filter_map(|id| state.agents.get(id))
            .filter(|agent| is_free(agent, now_ms))
            .collect();
        let last_served = state.last_served.get(queue).map(String::as_str);
        let Some(chosen) = pick(&eligible, strategy, last_served, now_ms) else {
            return Ok(None);
        };
        let agent_id = chosen.id.clone();

        let call = known.call.clone();
        if let Some(places) = state.queues.get_mut(queue) {
            places.remove(&head);
        }
        if let Some(known) = state.calls.get_mut(&head.call_sid) {
            known.reserved_by = Some(agent_id.clone());
        }
        if let Some(agent) = state.agents.get_mut(&agent_id) {
            agent.activity = AgentActivity::Reserved {
                call_sid: call.call_sid.clone(),
                since_ms: now_ms,
            };
        }
        state.last_served.insert(queue.to_owned(), agent_id.clone());
        Ok(Some(Reservation {
            call,
            agent_id,
            reserved_at_ms: now_ms,
        }))
    }

    async fn offer_answered(
        &self,
        agent_id: &str,
        call_sid: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let agent = state.agent_mut(agent_id)?;
        if !is_reserved_for(agent, call_sid) {
            return Ok(());
        }
        count_answered(agent, now_ms);
        agent.activity = AgentActivity::OnCall {
            call_sid: call_sid.to_owned(),
            since_ms: now_ms,
        };
        state.forget_call(call_sid);
        Ok(())
    }

    async fn restore_offer(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        answered: bool,
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let agent = state.agent_mut(agent_id)?;
        let holding = match &agent.activity {
            AgentActivity::Reserved { call_sid, .. } | AgentActivity::OnCall { call_sid, .. } => {
                Some(call_sid.clone())
            }
            AgentActivity::Idle | AgentActivity::WrapUp { .. } => None,
        };
        if holding.as_ref().is_some_and(|held| *held != call.call_sid) {
            return Ok(false);
        }
        if !answered && matches!(agent.activity, AgentActivity::OnCall { .. }) {
            // The store already knows the answer.
            return Ok(true);
        }
        let already = matches!(
            (&agent.activity, answered),
            (AgentActivity::OnCall { .. }, true) | (AgentActivity::Reserved { .. }, false)
        );
        if !already {
            agent.activity = if answered {
                AgentActivity::OnCall {
                    call_sid: call.call_sid.clone(),
                    since_ms,
                }
            } else {
                AgentActivity::Reserved {
                    call_sid: call.call_sid.clone(),
                    since_ms,
                }
            };
        }
        if answered {
            state.forget_call(&call.call_sid);
        } else {
            let known = state
                .calls
                .entry(call.call_sid.clone())
                .or_insert_with(|| KnownCall {
                    call: call.clone(),
                    reserved_by: None,
                });
            known.reserved_by = Some(agent_id.to_owned());
            let place = Place::of(&known.call);
            let queue = known.call.queue.clone();
            if let Some(places) = state.queues.get_mut(&queue) {
                places.remove(&place);
            }
        }
        Ok(true)
    }

    async fn offer_missed(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        max_missed: u32,
        now_ms: i64,
    ) -> Result<MissedOffer, StoreError> {
        let mut state = self.state();
        let agent = state.agent_mut(agent_id)?;
        if !is_reserved_for(agent, &call.call_sid) {
            return Ok(MissedOffer::BackToIdle);
        }
        agent.activity = AgentActivity::Idle;
        agent.idle_since_ms = now_ms;
        agent.missed_in_a_row = agent.missed_in_a_row.saturating_add(1);
        let outcome = if max_missed > 0 && agent.missed_in_a_row >= max_missed {
            agent.missed_in_a_row = 0;
            if agent.status != AgentStatus::Break {
                agent.status = AgentStatus::Break;
                agent.status_changed_ms = now_ms;
            }
            MissedOffer::PutOnBreak
        } else {
            MissedOffer::BackToIdle
        };

        let requeued = match state.calls.get_mut(&call.call_sid) {
            Some(known) if known.reserved_by.as_deref() == Some(agent_id) => {
                known.reserved_by = None;
                Some(known.call.clone())
            }
            _ => None,
        };
        if let Some(original) = requeued {
            state
                .queues
                .entry(original.queue.clone())
                .or_default()
                .insert(Place::of(&original));
        }
        Ok(outcome)
    }

    async fn call_finished(
        &self,
        agent_id: &str,
        call_sid: &str,
        wrap_up_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let agent = state.agent_mut(agent_id)?;
        let answer_unreported = is_reserved_for(agent, call_sid);
        let on_this_call = matches!(
            &agent.activity,
            AgentActivity::OnCall { call_sid: held, .. } if held == call_sid
        );
        if !answer_unreported && !on_this_call {
            return Ok(());
        }
        if answer_unreported {
            count_answered(agent, now_ms);
        }
        agent.activity = AgentActivity::WrapUp {
            until_ms: wrap_up_until_ms,
        };
        agent.idle_since_ms = wrap_up_until_ms;
        if answer_unreported {
            state.forget_call(call_sid);
        }
        Ok(())
    }

    async fn call_record(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        Ok(self.state().records.get(call_sid).cloned())
    }

    async fn replace_call_record(
        &self,
        record: &CallRecord,
        expected_version: u64,
    ) -> Result<RecordWrite, StoreError> {
        let mut state = self.state();
        let stored_version = state
            .records
            .get(&record.call_sid)
            .map_or(0, |stored| stored.version);
        if stored_version != expected_version {
            return Ok(RecordWrite::Conflict);
        }
        let version = expected_version.saturating_add(1);
        let mut stored = record.clone();
        stored.version = version;
        state.records.insert(record.call_sid.clone(), stored);
        Ok(RecordWrite::Written { version })
    }

    async fn remove_call_record(
        &self,
        call_sid: &str,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state
            .records
            .get(call_sid)
            .is_some_and(|stored| stored.version == expected_version)
        {
            state.records.remove(call_sid);
            return Ok(true);
        }
        Ok(false)
    }

    async fn call_records(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut records: Vec<CallRecord> = self.state().records.values().cloned().collect();
        records.sort_by(CallRecord::by_arrival);
        Ok(records)
    }

    async fn expired_call_records(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut expired: Vec<CallRecord> = self
            .state()
            .records
            .values()
            .filter(|record| record.deadline_ms <= now_ms)
            .cloned()
            .collect();
        expired.sort_by(|a, b| (a.deadline_ms, &a.call_sid).cmp(&(b.deadline_ms, &b.call_sid)));
        expired.truncate(limit);
        Ok(expired)
    }

    async fn renew_stream_leases(
        &self,
        node: &str,
        call_sids: &[String],
        lease_until_ms: i64,
    ) -> Result<usize, StoreError> {
        let mut state = self.state();
        let mut renewed = 0;
        for call_sid in call_sids {
            if let Some(record) = state.records.get_mut(call_sid)
                && record.stream_node == node
                && matches!(record.phase, CallPhase::Menus | CallPhase::Queued)
            {
                record.lease_until_ms = lease_until_ms;
                record.deadline_ms = lease_until_ms.saturating_add(LEASE_GRACE_MS);
                record.version = record.version.saturating_add(1);
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    async fn record_queue_stat(
        &self,
        queue: &str,
        event: QueueStatEvent,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        for interval in StatsInterval::ALL {
            let buckets = state
                .stats
                .queues
                .entry((interval, queue.to_owned()))
                .or_default();
            prune_buckets(buckets, interval, now_ms);
            buckets
                .entry(interval.bucket_start(now_ms))
                .or_default()
                .apply(event);
        }
        Ok(())
    }

    async fn record_call_outcome(
        &self,
        outcome: CallOutcomeStat,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        for interval in StatsInterval::ALL {
            let buckets = state.stats.calls.entry(interval).or_default();
            prune_buckets(buckets, interval, now_ms);
            buckets
                .entry(interval.bucket_start(now_ms))
                .or_default()
                .add(outcome.field(), 1);
        }
        Ok(())
    }

    async fn queue_stats(
        &self,
        queue: &str,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<Vec<StatsBucket<QueueCounters>>, StoreError> {
        let state = self.state();
        let buckets = state.stats.queues.get(&(interval, queue.to_owned()));
        Ok(read_buckets(buckets, from_ms, to_ms, interval))
    }

    async fn call_outcome_stats(
        &self,
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Result<Vec<StatsBucket<CallCounters>>, StoreError> {
        let state = self.state();
        let buckets = state.stats.calls.get(&interval);
        Ok(read_buckets(buckets, from_ms, to_ms, interval))
    }

    async fn record_verification_failure(
        &self,
        record: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        let oldest_counted = now_ms.saturating_sub(window_ms);
        let mut state = self.state();
        // Records nobody failed lately would otherwise stay forever (Redis expires them).
        state
            .failures
            .retain(|_, times| times.iter().any(|&t| t > oldest_counted));
        let times = state.failures.entry(record.to_owned()).or_default();
        times.retain(|&t| t > oldest_counted);
        times.push(now_ms);
        Ok(u32::try_from(times.len()).unwrap_or(u32::MAX))
    }

    async fn verification_failures(
        &self,
        record: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        let oldest_counted = now_ms.saturating_sub(window_ms);
        let state = self.state();
        let count = state.failures.get(record).map_or(0, |times| {
            times.iter().filter(|&&t| t > oldest_counted).count()
        });
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn clear_verification_failures(&self, record: &str) -> Result<(), StoreError> {
        self.state().failures.remove(record);
        Ok(())
    }

    async fn put_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        max_checks: u32,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if max_checks == 0 {
            state.codes.remove(patient_ref);
        } else {
            state.codes.insert(
                patient_ref.to_owned(),
                ResetCode {
                    hash: code_hash.to_owned(),
                    checks_left: max_checks,
                    expires_at_ms,
                },
            );
        }
        Ok(())
    }

    async fn check_reset_code(
        &self,
        patient_ref: &str,
        code_hash: &str,
        now_ms: i64,
    ) -> Result<CodeCheck, StoreError> {
        let mut state = self.state();
        state
            .codes
            .retain(|_, code| code.expires_at_ms > now_ms && code.checks_left > 0);
        let Some(code) = state.codes.get_mut(patient_ref) else {
            return Ok(CodeCheck::NoCode);
        };
        if bool::from(code.hash.as_bytes().ct_eq(code_hash.as_bytes())) {
            state.codes.remove(patient_ref);
            return Ok(CodeCheck::Valid {
                patient_ref: patient_ref.to_owned(),
            });
        }
        code.checks_left -= 1;
        let checks_left = code.checks_left;
        if checks_left == 0 {
            state.codes.remove(patient_ref);
        }
        Ok(CodeCheck::Wrong { checks_left })
    }

    async fn add_callback(&self, request: &CallbackRequest) -> Result<(), StoreError> {
        self.state()
            .callbacks
            .entry(request.id.clone())
            .or_insert_with(|| request.clone());
        Ok(())
    }

    async fn callbacks(&self) -> Result<Vec<CallbackRequest>, StoreError> {
        let mut requests: Vec<CallbackRequest> = self.state().callbacks.values().cloned().collect();
        requests.sort_by(callback_order);
        Ok(requests)
    }

    async fn complete_callback(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(request) = state.callbacks.get_mut(id) else {
            return Ok(false);
        };
        if request.status != CallbackStatus::Done {
            request.status = CallbackStatus::Done;
            request.completed_at_ms = Some(now_ms);
            request.release_claim();
        }
        request.version = request.version.saturating_add(1);
        Ok(true)
    }

    async fn callback(&self, id: &str) -> Result<Option<CallbackRequest>, StoreError> {
        Ok(self.state().callbacks.get(id).cloned())
    }

    async fn replace_callback(
        &self,
        request: &CallbackRequest,
        expected_version: u64,
    ) -> Result<RecordWrite, StoreError> {
        let mut state = self.state();
        let Some(stored) = state.callbacks.get_mut(&request.id) else {
            return Ok(RecordWrite::Conflict);
        };
        if stored.version != expected_version {
            return Ok(RecordWrite::Conflict);
        }
        let version = expected_version.saturating_add(1);
        *stored = request.clone();
        stored.version = version;
        Ok(RecordWrite::Written { version })
    }
}
