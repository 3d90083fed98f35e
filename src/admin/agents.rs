//! The live-state admin routes for people and calls: the agent roster with status, state and
//! shift, an agent's status change, and the calls this node is carrying.
//!
//! Agents come from `[[agents]]`; what they are doing comes from the store, so every node shows
//! the same roster. Calls come from this node's [`crate::call::registry::CallRegistry`] and carry no
//! caller identifier beyond the masked caller ID.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::access::AccessPolicy;
use crate::call::CallServices;
use crate::config::AgentConfig;
use crate::store::CallPhase;
use crate::store::{AgentActivity, AgentRecord, AgentStatus, StoreError};
use crate::telemetry::{Change, ChangeEvent, EventKind};

/// One agent as `GET /api/v1/agents` shows them.
#[derive(Debug, Serialize)]
pub struct AgentView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub skills: &'a [String],
    pub status: AgentStatus,
    /// `idle`, `reserved`, `on_call` or `wrap_up`.
    pub state: &'static str,
    /// Their `shift` schedule is open now; an agent without a shift is always on shift.
    pub on_shift: bool,
    /// How long the agent has been in `state`. `null` in wrap-up: the store keeps only when a
    /// wrap-up ends, so `wrap_up_left_secs` says how long it has to go instead.
    pub time_in_state_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrap_up_left_secs: Option<i64>,
    /// The call the agent is offered or on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<&'a str>,
    pub calls_today: u32,
}

/// The view of `agent` given their store record and whether they are on shift at `now_ms`.
pub fn agent_view<'a>(
    agent: &'a AgentConfig,
    record: &'a AgentRecord,
    on_shift: bool,
    now_ms: i64,
) -> AgentView<'a> {
    let seconds_since = |since_ms: i64| Some((now_ms - since_ms).max(0) / 1000);
    let (label, time_in_state_secs, wrap_up_left_secs, call_sid) = match record.activity_at(now_ms)
    {
        AgentActivity::Idle => {
            // `idle_since_ms` is the end of the last wrap-up, or when the agent came back.
            ("idle", seconds_since(record.idle_since_ms), None, None)
        }
        AgentActivity::Reserved { since_ms, .. } => (
            "reserved",
            seconds_since(since_ms),
            None,
            activity_call(&record.activity),
        ),
        AgentActivity::OnCall { since_ms, .. } => (
            "on_call",
            seconds_since(since_ms),
            None,
            activity_call(&record.activity),
        ),
        AgentActivity::WrapUp { until_ms } => {
            // Round up: "0 s left" while the agent is still in wrap-up would read as done.
            let left = (until_ms - now_ms).max(0);
            ("wrap_up", None, Some((left + 999) / 1000), None)
        }
    };
    AgentView {
        id: &agent.id,
        name: &agent.name,
        skills: &agent.skills,
        status: record.status,
        state: label,
        on_shift,
        time_in_state_secs,
        wrap_up_left_secs,
        call_sid,
        calls_today: record.calls_today_at(now_ms),
    }
}

fn activity_call(activity: &AgentActivity) -> Option<&str> {
    match activity {
        AgentActivity::Reserved { call_sid, .. } | AgentActivity::OnCall { call_sid, .. } => {
            Some(call_sid)
        }
        AgentActivity::Idle | AgentActivity::WrapUp { .. } => None,
    }
}

/// Whether `agent` is on shift at `now`. A shift naming a schedule the flow does not have
/// (impossible after `careline check`) counts as off shift, so nobody is routed by mistake.
pub fn on_shift(state: &CallServices, agent: &AgentConfig, now: jiff::Timestamp) -> bool {
    match &agent.shift {
        None => true,
        Some(name) => state
            .flow()
            .schedules
            .get(name)
            .is_some_and(|schedule| schedule.is_open(now)),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn store_failure(state: &CallServices, store_error: &StoreError) -> Response {
    state.metrics.store_error();
    tracing::warn!(error = %store_error, "agent state could not be read or changed");
    match store_error {
        StoreError::Unavailable(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unreachable, so agent state is unknown; try again",
        ),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store returned agent data careline cannot read; see the server log",
        ),
    }
}

/// The store's records of every configured agent. Agents the store does not know (it lost its
/// data, or was unreachable at start-up) are registered first, as `offline`.
pub(super) async fn roster_records(
    state: &CallServices,
    now_ms: i64,
) -> Result<HashMap<String, AgentRecord>, StoreError> {
    let mut records = index(state.store.agents().await?);
    let missing: Vec<String> = state
        .roster()
        .agents
        .iter()
        .filter(|agent| !records.contains_key(&agent.id))
        .map(|agent| agent.id.clone())
        .collect();
    if !missing.is_empty() {
        state.store.register_agents(&missing, now_ms).await?;
        records = index(state.store.agents().await?);
    }
    Ok(records)
}

fn index(records: Vec<AgentRecord>) -> HashMap<String, AgentRecord> {
    records
        .into_iter()
        .map(|record| (record.id.clone(), record))
        .collect()
}

/// `GET /api/v1/agents`: every configured agent, in configuration order.
pub async fn list_agents(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = access.viewer(&headers) {
        return refusal.into_response();
    }
    let now = jiff::Timestamp::now();
    let records = match roster_records(&state, now.as_millisecond()).await {
        Ok(records) => records,
        Err(store_error) => return store_failure(&state, &store_error),
    };
    let roster = state.roster();
    let views: Vec<AgentView<'_>> = roster
        .agents
        .iter()
        .filter_map(|agent| {
            records.get(&agent.id).map(|record| {
                agent_view(
                    agent,
                    record,
                    on_shift(&state, agent, now),
                    now.as_millisecond(),
                )
            })
        })
        .collect();
    Json(views).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: AgentStatus,
}

const STATUS_BODY: &str =
    "expected {\"status\": \"available\"}, {\"status\": \"break\"} or {\"status\": \"offline\"}";

/// `PUT /api/v1/agents/{id}/status`: a supervisor sets anyone's status, an agent their own.
pub async fn set_status(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let role = match access.supervisor_or_agent(&headers, &agent_id) {
        Ok(role) => role,
        Err(refusal) => return refusal.into_response(),
    };
    let roster = state.roster();
    let Some(agent) = roster.agents.iter().find(|agent| agent.id == agent_id) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such agent (agents come from [[agents]] in the configuration)",
        );
    };
    let Ok(change) = serde_json::from_slice::<StatusChange>(&body) else {
        return error(StatusCode::BAD_REQUEST, STATUS_BODY);
    };
    let now = jiff::Timestamp::now();
    let now_ms = now.as_millisecond();
    let mut result = state
        .store
        .set_agent_status(&agent.id, change.status, now_ms)
        .await;
    if let Err(StoreError::UnknownAgent(_)) = result {
        // The store lost its data or missed start-up: the roster is the configuration.
        result = match state
            .store
            .register_agents(std::slice::from_ref(&agent.id), now_ms)
            .await
        {
            Ok(()) => {
                state
                    .store
                    .set_agent_status(&agent.id, change.status, now_ms)
                    .await
            }
            Err(store_error) => Err(store_error),
        };
    }
    match result {
        Ok(record) => {
            tracing::info!(agent = %agent.id, status = ?change.status, by = ?role, "agent status changed");
            state.events.publish(
                ChangeEvent::new(EventKind::Agent, Change::Status, now_ms).agent(&agent.id),
            );
            // An agent back at their desk may take a waiting call at once.
            state.router.wake();
            let on_shift = on_shift(&state, agent, now);
            Json(agent_view(agent, &record, on_shift, now_ms)).into_response()
        }
        Err(store_error) => store_failure(&state, &store_error),
    }
}

/// One call as `GET /api/v1/calls` shows it.
#[derive(Debug, Serialize)]
pub struct CallView {
    pub call_sid: String,
    /// `connecting` (the stream is not open yet), `ivr` (in the menus), `queued` (waiting in a
    /// queue), `offered` (an agent's phone is ringing), `with_agent`, `between` (streams), or
    /// `ringing`/`connected` (a transfer).
    pub state: &'static str,
    /// Seconds since the call reached careline.
    pub since_secs: u64,
    /// The caller ID with all but its last two digits hidden.
    pub caller_id: String,
    /// The careline node carrying the call's media stream; empty between streams.
    pub node: String,
    /// The queue the call waits in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Seconds since the call first entered its queue (kept across re-queues).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<i64>,
    /// 1-based place in its queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The agent offered the call or talking to the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The caller failed identity verification before reaching the queue: whoever takes the
    /// call verifies them in person (no detail of what failed, ever).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub verification_failed: bool,
}

/// What the store says about a call this node carries.
#[derive(Debug, Default)]
struct QueueSide {
    queue: Option<String>,
    enqueued_at_ms: Option<i64>,
    position: Option<usize>,
    agent: Option<(String, &'static str)>,
    verification_failed: bool,
}

/// The store's side of the calls: where each waits, and which agent holds it. Reading it may
/// fail (Redis down); the call list then shows what this node knows, without queue details.
async fn queue_sides(state: &CallServices) -> Result<HashMap<String, QueueSide>, StoreError> {
    let mut sides: HashMap<String, QueueSide> = HashMap::new();
    for queue in &state.roster().queues {
        for (index, call) in state.store.waiting(queue).await?.into_iter().enumerate() {
            let side = sides.entry(call.call_sid).or_default();
            side.queue = Some(call.queue);
            side.enqueued_at_ms = Some(call.enqueued_at_ms);
            side.position = Some(index + 1);
            side.verification_failed = call.verification_failed;
        }
    }
    for agent in state.store.agents().await? {
        let (call_sid, label) = match agent.activity {
            AgentActivity::Reserved { call_sid, .. } => (call_sid, "offered"),
            AgentActivity::OnCall { call_sid, .. } => (call_sid, "with_agent"),
            AgentActivity::Idle | AgentActivity::WrapUp { .. } => continue,
        };
        sides.entry(call_sid).or_default().agent = Some((agent.id, label));
    }
    Ok(sides)
}

/// `GET /api/v1/calls`: the calls of every node, oldest first, each with the node carrying its
/// stream.
pub async fn list_calls(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = access.viewer(&headers) {
        return refusal.into_response();
    }
    let calls = match state.calls.snapshot().await {
        Ok(calls) => calls,
        Err(store_error) => return store_failure(&state, &store_error),
    };
    let mut sides = if calls.is_empty() {
        HashMap::new()
    } else {
        queue_sides(&state).await.unwrap_or_else(|store_error| {
            state.metrics.store_error();
            tracing::warn!(error = %store_error, "queue details of calls could not be read");
            HashMap::new()
        })
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let views: Vec<CallView> = calls
        .into_iter()
        .map(|call| {
            let side = sides.remove(&call.call_sid).unwrap_or_default();
            let state = match (&side.agent, side.position, call.phase) {
                (Some((_, label)), _, _) => label,
                (None, Some(_), _) => "queued",
                (None, None, CallPhase::Connecting) => "connecting",
                (None, None, CallPhase::Menus) => "ivr",
                (None, None, CallPhase::Queued) => "queued",
                (None, None, CallPhase::Between) => "between",
                (None, None, CallPhase::Ringing) => "ringing",
                (None, None, CallPhase::Connected) => "connected",
            };
            let queued = call.queue.as_ref();
            CallView {
                call_sid: call.call_sid,
                state,
                since_secs: call.age.as_secs(),
                caller_id: call.caller_id_masked,
                node: call.node,
                queue: side
                    .queue
                    .or_else(|| queued.map(|(queue, _)| queue.clone())),
                wait_secs: side
                    .enqueued_at_ms
                    .or_else(|| queued.map(|(_, since)| *since))
                    .map(|enqueued| (now_ms - enqueued).max(0) / 1000),
                position: side.position,
                agent: side.agent.map(|(agent, _)| agent),
                verification_failed: call.verification_failed || side.verification_failed,
            }
        })
        .collect();
    Json(views).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_764_000_000_000;

    fn agent() -> AgentConfig {
        AgentConfig {
            id: "anguyen".to_owned(),
            name: "An Nguyen".to_owned(),
            skills: vec!["ios".to_owned()],
            shift: None,
            dial: None,
            client: Some("anguyen".to_owned()),
            sip: None,
        }
    }

    fn record(activity: AgentActivity) -> AgentRecord {
        AgentRecord {
            id: "anguyen".to_owned(),
            status: AgentStatus::Available,
            activity,
            idle_since_ms: NOW_MS - 125_000,
            status_changed_ms: NOW_MS - 600_000,
            calls_today: 4,
            calls_day: crate::store::day_of(NOW_MS),
            missed_in_a_row: 0,
        }
    }

    #[test]
    fn an_idle_agent_has_been_idle_since_they_became_free() {
        let (agent, record) = (agent(), record(AgentActivity::Idle));
        let view = agent_view(&agent, &record, true, NOW_MS);
        assert_eq!(view.state, "idle");
        assert_eq!(view.time_in_state_secs, Some(125));
        assert_eq!(view.calls_today, 4);
    }

    #[test]
    fn an_agent_on_a_call_counts_from_the_answer() {
        let agent = agent();
        let record = record(AgentActivity::OnCall {
            call_sid: "CA1".to_owned(),
            since_ms: NOW_MS - 61_500,
        });
        let view = agent_view(&agent, &record, true, NOW_MS);
        assert_eq!(view.state, "on_call");
        assert_eq!(view.time_in_state_secs, Some(61));
        assert_eq!(view.call_sid, Some("CA1"));
    }

    #[test]
    fn wrap_up_shows_the_time_left_rounded_up_until_it_ends() {
        let agent = agent();
        let record = record(AgentActivity::WrapUp {
            until_ms: NOW_MS + 200,
        });
        let view = agent_view(&agent, &record, true, NOW_MS);
        assert_eq!(view.state, "wrap_up");
        assert_eq!(view.time_in_state_secs, None);
        assert_eq!(view.wrap_up_left_secs, Some(1));

        let ended = agent_view(&agent, &record, true, NOW_MS + 3_200);
        assert_eq!(ended.state, "idle");
        assert_eq!(ended.wrap_up_left_secs, None);
    }

    #[test]
    fn calls_counted_on_an_earlier_day_are_not_today() {
        let agent = agent();
        let record = record(AgentActivity::Idle);
        let tomorrow = NOW_MS + 86_400_000;
        assert_eq!(agent_view(&agent, &record, true, tomorrow).calls_today, 0);
    }
}
