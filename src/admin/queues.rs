//! The live queue board, `GET /api/v1/queues`: per configured queue, the calls waiting and the
//! longest wait, the agents who could take its calls by state, and today's figures.
//!
//! One request reads the agents once and each queue's waiting calls and today's counters once,
//! the queues concurrently, so its cost grows with the number of queues, not agents × queues.
//!
//! "Today" is the current day in the time zone of the queue's `schedule` (UTC for a queue
//! without one): the store counts in UTC days, hours and quarter hours, so a local day is the
//! sum of its hours (one UTC day bucket when the zone is UTC; quarter hours where midnight is
//! not on a UTC hour), added up inside the store.
//!
//! An agent counts in exactly one state: a call in hand comes first (`reserved`, `on_call`,
//! `wrap_up` whatever their status: an agent who went on break during a call is still on it),
//! then their status (`available` when idle, `break`, `offline`). Shifts are not considered
//! here; `/api/v1/agents` shows them.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::try_join_all;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::access::AccessPolicy;
use crate::call::CallServices;
use crate::config::{AgentConfig, QueueConfig};
use crate::store::stats;
use crate::store::{
    AgentActivity, AgentRecord, AgentStatus, QueuedCall, StatsInterval, StoreError,
};

/// Where an agent stands on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardState {
    /// Status `available` and idle (or past wrap-up): could take a call now.
    Available,
    Reserved,
    OnCall,
    WrapUp,
    Break,
    Offline,
}

/// The agent's board state at `now_ms`: a call in hand before the status.
pub fn board_state(record: &AgentRecord, now_ms: i64) -> BoardState {
    match record.activity_at(now_ms) {
        AgentActivity::Reserved { .. } => BoardState::Reserved,
        AgentActivity::OnCall { .. } => BoardState::OnCall,
        AgentActivity::WrapUp { .. } => BoardState::WrapUp,
        AgentActivity::Idle => match record.status {
            AgentStatus::Available => BoardState::Available,
            AgentStatus::Break => BoardState::Break,
            AgentStatus::Offline => BoardState::Offline,
        },
    }
}

/// Agents by board state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentCounts {
    pub available: u32,
    pub reserved: u32,
    pub on_call: u32,
    pub wrap_up: u32,
    #[serde(rename = "break")]
    pub on_break: u32,
    pub offline: u32,
}

impl AgentCounts {
    pub fn count(&mut self, state: BoardState) {
        let slot = match state {
            BoardState::Available => &mut self.available,
            BoardState::Reserved => &mut self.reserved,
            BoardState::OnCall => &mut self.on_call,
            BoardState::WrapUp => &mut self.wrap_up,
            BoardState::Break => &mut self.on_break,
            BoardState::Offline => &mut self.offline,
        };
        *slot += 1;
    }

    /// Each state with its count, named as in the JSON.
    pub fn by_state(&self) -> [(&'static str, u32); 6] {
        [
            ("available", self.available),
            ("reserved", self.reserved),
            ("on_call", self.on_call),
            ("wrap_up", self.wrap_up),
            ("break", self.on_break),
            ("offline", self.offline),
        ]
    }
}

/// The board state of each configured agent, in roster order. An agent the store does not know
/// counts as offline.
pub fn board_states(
    agents: &[AgentConfig],
    records: &HashMap<String, AgentRecord>,
    now_ms: i64,
) -> Vec<BoardState> {
    agents
        .iter()
        .map(|agent| {
            records
                .get(&agent.id)
                .map_or(BoardState::Offline, |record| board_state(record, now_ms))
        })
        .collect()
}

/// Which configured agents have each skill: found once per request, so counting a queue's
/// agents costs the agents with its rarest skill, not every agent times every queue.
pub struct SkillIndex<'a> {
    agents: usize,
    /// Skill → indexes of the agents who have it, ascending.
    by_skill: HashMap<&'a str, Vec<usize>>,
}

impl<'a> SkillIndex<'a> {
    pub fn new(agents: &'a [AgentConfig]) -> SkillIndex<'a> {
        let mut by_skill: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, agent) in agents.iter().enumerate() {
            for skill in &agent.skills {
                let holders = by_skill.entry(skill.as_str()).or_default();
                // An agent listing a skill twice is still one agent.
                if holders.last() != Some(&index) {
                    holders.push(index);
                }
            }
        }
        SkillIndex {
            agents: agents.len(),
            by_skill,
        }
    }

    /// The indexes of the agents who have every one of `skills` (all agents for none).
    pub fn agents_with(&self, skills: &[String]) -> Vec<usize> {
        let mut lists = Vec::with_capacity(skills.len());
        for skill in skills {
            match self.by_skill.get(skill.as_str()) {
                Some(holders) => lists.push(holders),
                None => return Vec::new(),
            }
        }
        lists.sort_by_key(|holders| holders.len());
        match lists.split_first() {
            None => (0..self.agents).collect(),
            Some((rarest, others)) => rarest
                .iter()
                .copied()
                .filter(|index| {
                    others
                        .iter()
                        .all(|holders| holders.binary_search(index).is_ok())
                })
                .collect(),
        }
    }
}

/// The agents who have every skill `queue` needs, counted by their board `states` (in roster
/// order).
pub fn queue_agents(
    queue: &QueueConfig,
    skills: &SkillIndex<'_>,
    states: &[BoardState],
) -> AgentCounts {
    let mut counts = AgentCounts::default();
    for index in skills.agents_with(&queue.skills) {
        if let Some(state) = states.get(index) {
            counts.count(*state);
        }
    }
    counts
}

/// How many calls wait in a queue, and for how long the longest has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueDepth {
    pub waiting: usize,
    /// Whole seconds; 0 when nobody waits.
    pub longest_wait_secs: i64,
}

impl QueueDepth {
    /// The depth of a queue whose waiting calls are `calls`. The longest wait is the earliest
    /// enqueue time's, which need not be the head's (priorities reorder the line).
    /// Callback requests waiting for an agent are nobody on the line, so they are not counted.
    pub fn of(calls: &[QueuedCall], now_ms: i64) -> QueueDepth {
        let on_the_line = || calls.iter().filter(|call| call.callback_id.is_none());
        let earliest = on_the_line().map(|call| call.enqueued_at_ms).min();
        QueueDepth {
            waiting: on_the_line().count(),
            longest_wait_secs: earliest.map_or(0, |at| (now_ms - at).max(0) / 1000),
        }
    }
}

/// The time zone "today" is counted in for `queue`: its schedule's, else UTC.
pub fn queue_time_zone(state: &CallServices, queue: &QueueConfig) -> TimeZone {
    let flow = state.flow();
    queue
        .schedule
        .as_ref()
        .and_then(|name| flow.schedules.get(name))
        .map_or(TimeZone::UTC, |schedule| schedule.time_zone().clone())
}

/// The store range that makes up the local day of `now_ms` in `zone`, up to `now_ms`, in the
/// largest buckets that start at local midnight: one UTC day bucket in UTC, hours where
/// midnight falls on a UTC hour (at most 25), quarter hours elsewhere (India, Nepal).
pub fn today_range(now_ms: i64, zone: &TimeZone) -> (i64, i64, StatsInterval) {
    let start = stats::local_day_start_ms(now_ms, zone)
        .unwrap_or_else(|| StatsInterval::Day.bucket_start(now_ms));
    (
        start,
        now_ms.saturating_add(1),
        StatsInterval::coarsest_starting_at(start),
    )
}

/// Today's figures of one queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TodayView {
    /// The local date counted, `YYYY-MM-DD`.
    pub date: String,
    /// The IANA name of the zone the day is counted in.
    pub timezone: String,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub callbacks: u64,
    /// Callback calls careline placed today, those that reached the patient and an agent,
    /// and those given up.
    #[serde(default)]
    pub callback_attempts: u64,
    #[serde(default)]
    pub callbacks_connected: u64,
    #[serde(default)]
    pub callbacks_failed: u64,
    /// Answered within 20 s ÷ (answered + abandoned after 5 s); `null` with neither.
    pub service_level: Option<f64>,
    /// Average wait of answered calls; `null` when none was answered.
    pub asa_secs: Option<f64>,
    /// Abandoned ÷ offered; `null` when none was offered.
    pub abandon_rate: Option<f64>,
}

/// One queue as `GET /api/v1/queues` shows it (and `careline stats` reads it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueView {
    pub name: String,
    pub waiting: usize,
    pub longest_wait_secs: i64,
    pub agents: AgentCounts,
    pub today: TodayView,
}

/// What the store says about one queue now.
struct QueueReading {
    depth: QueueDepth,
    today: stats::QueueCounters,
}

async fn read_queue(
    state: &CallServices,
    name: &str,
    zone: &TimeZone,
    now_ms: i64,
) -> Result<QueueReading, StoreError> {
    let (from, to, interval) = today_range(now_ms, zone);
    let (waiting, today) = futures_util::future::try_join(
        state.store.waiting(name),
        state.store.queue_stats_total(name, from, to, interval),
    )
    .await?;
    Ok(QueueReading {
        depth: QueueDepth::of(&waiting, now_ms),
        today,
    })
}

/// The board: every configured queue, in name order.
pub async fn queue_board(
    state: &CallServices,
    now: jiff::Timestamp,
) -> Result<Vec<QueueView>, StoreError> {
    let now_ms = now.as_millisecond();
    let roster = state.roster();
    let queues: Vec<(&String, &QueueConfig, TimeZone)> = roster
        .queue_configs
        .iter()
        .map(|(name, config)| (name, config, queue_time_zone(state, config)))
        .collect();
    let (records, readings) = futures_util::future::try_join(
        super::agents::roster_records(state, now_ms),
        try_join_all(
            queues
                .iter()
                .map(|(name, _, zone)| read_queue(state, name, zone, now_ms)),
        ),
    )
    .await?;
    let states = board_states(&roster.agents, &records, now_ms);
    let skills = SkillIndex::new(&roster.agents);
    Ok(queues
        .into_iter()
        .zip(readings)
        .map(|((name, config, zone), reading)| QueueView {
            name: name.clone(),
            waiting: reading.depth.waiting,
            longest_wait_secs: reading.depth.longest_wait_secs,
            agents: queue_agents(config, &skills, &states),
            today: TodayView {
                date: now.to_zoned(zone.clone()).date().to_string(),
                timezone: zone.iana_name().unwrap_or("UTC").to_owned(),
                offered: reading.today.offered,
                answered: reading.today.answered,
                abandoned: reading.today.abandoned,
                callbacks: reading.today.callbacks,
                callback_attempts: reading.today.callback_attempts,
                callbacks_connected: reading.today.callbacks_connected,
                callbacks_failed: reading.today.callbacks_failed,
                service_level: reading.today.service_level(),
                asa_secs: reading.today.asa_secs(),
                abandon_rate: reading.today.abandon_rate(),
            },
        })
        .collect())
}

/// What `/metrics` reads from the store: the same on every node.
#[derive(Debug, Clone, Default)]
pub struct StoreGauges {
    /// Each configured queue, by name.
    pub queues: Vec<(String, QueueDepth)>,
    /// Every configured agent.
    pub agents: AgentCounts,
}

/// The store's side of `/metrics`: each queue's depth, and every configured agent by state.
pub async fn store_gauges(state: &CallServices, now_ms: i64) -> Result<StoreGauges, StoreError> {
    let names = &state.roster().queues;
    let (agents, waiting) = futures_util::future::try_join(
        state.store.agents(),
        try_join_all(names.iter().map(|name| state.store.waiting(name))),
    )
    .await?;
    let records: HashMap<String, AgentRecord> = agents
        .into_iter()
        .map(|record| (record.id.clone(), record))
        .collect();
    let mut counts = AgentCounts::default();
    for state in board_states(&state.roster().agents, &records, now_ms) {
        counts.count(state);
    }
    Ok(StoreGauges {
        queues: names
            .iter()
            .cloned()
            .zip(waiting.iter().map(|calls| QueueDepth::of(calls, now_ms)))
            .collect(),
        agents: counts,
    })
}

/// `GET /api/v1/queues`.
pub async fn list_queues(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = access.viewer(&headers) {
        return refusal.into_response();
    }
    match queue_board(&state, jiff::Timestamp::now()).await {
        Ok(board) => Json(board).into_response(),
        Err(store_error) => store_unavailable(&state, &store_error, "queue state"),
    }
}

/// The answer when the store failed: 503 when unreachable, 500 when it holds what careline
/// cannot read. Counted in `/metrics`.
pub(super) fn store_unavailable(
    state: &CallServices,
    store_error: &StoreError,
    what: &str,
) -> Response {
    state.metrics.store_error();
    tracing::warn!(error = %store_error, "{what} could not be read");
    let (status, message) = match store_error {
        StoreError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store is unreachable, so {what} is unknown; try again"),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the store returned {what} careline cannot read; see the server log"),
        ),
    };
    (status, Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_767_268_800_000;

    fn record(id: &str, status: AgentStatus, activity: AgentActivity) -> AgentRecord {
        AgentRecord {
            id: id.to_owned(),
            status,
            activity,
            idle_since_ms: NOW_MS - 60_000,
            status_changed_ms: NOW_MS - 60_000,
            calls_today: 0,
            calls_day: crate::store::day_of(NOW_MS),
            missed_in_a_row: 0,
        }
    }

    fn agent(id: &str, skills: &[&str]) -> AgentConfig {
        AgentConfig {
            id: id.to_owned(),
            name: id.to_owned(),
            skills: skills.iter().map(|skill| (*skill).to_owned()).collect(),
            shift: None,
            dial: None,
            client: Some(id.to_owned()),
            sip: None,
        }
    }

    fn queue(skills: &[&str]) -> QueueConfig {
        let mut config: QueueConfig = toml::from_str("").expect("defaults");
        config.skills = skills.iter().map(|skill| (*skill).to_owned()).collect();
        config
    }

    fn on_call() -> AgentActivity {
        AgentActivity::OnCall {
            call_sid: "CA1".to_owned(),
            since_ms: NOW_MS - 1_000,
        }
    }

    #[test]
    fn a_call_in_hand_counts_before_the_status() {
        let on_break_on_a_call = record("a", AgentStatus::Break, on_call());
        assert_eq!(board_state(&on_break_on_a_call, NOW_MS), BoardState::OnCall);
        let offline_in_wrap_up = record(
            "b",
            AgentStatus::Offline,
            AgentActivity::WrapUp {
                until_ms: NOW_MS + 5_000,
            },
        );
        assert_eq!(board_state(&offline_in_wrap_up, NOW_MS), BoardState::WrapUp);
        assert_eq!(
            board_state(&offline_in_wrap_up, NOW_MS + 5_000),
            BoardState::Offline,
            "a wrap-up that has ended leaves the status"
        );
        let idle = record("c", AgentStatus::Available, AgentActivity::Idle);
        assert_eq!(board_state(&idle, NOW_MS), BoardState::Available);
    }

    #[test]
    fn a_queue_counts_only_agents_with_every_skill_it_needs() {
        let agents = [
            agent("both", &["portal", "spanish"]),
            agent("portal_only", &["portal"]),
            agent("unknown_to_the_store", &["portal", "spanish"]),
        ];
        let records: HashMap<String, AgentRecord> = [
            record("both", AgentStatus::Break, on_call()),
            record("portal_only", AgentStatus::Available, AgentActivity::Idle),
        ]
        .into_iter()
        .map(|record| (record.id.clone(), record))
        .collect();
        let states = board_states(&agents, &records, NOW_MS);
        let skills = SkillIndex::new(&agents);
        assert_eq!(
            queue_agents(&queue(&["portal", "spanish"]), &skills, &states),
            AgentCounts {
                on_call: 1,
                offline: 1,
                ..AgentCounts::default()
            }
        );
        assert_eq!(
            queue_agents(&queue(&[]), &skills, &states),
            AgentCounts {
                available: 1,
                on_call: 1,
                offline: 1,
                ..AgentCounts::default()
            },
            "a queue without skills takes every agent"
        );
    }

    #[test]
    fn the_skill_index_finds_agents_with_every_skill() {
        let agents = [
            agent("a", &["portal", "ios", "portal"]),
            agent("b", &["ios"]),
            agent("c", &["portal", "spanish", "ios"]),
            agent("d", &[]),
        ];
        let index = SkillIndex::new(&agents);
        let skills = |names: &[&str]| -> Vec<String> {
            names.iter().map(|name| (*name).to_owned()).collect()
        };
        assert_eq!(index.agents_with(&skills(&["portal"])), [0, 2]);
        assert_eq!(index.agents_with(&skills(&["ios", "portal"])), [0, 2]);
        assert_eq!(index.agents_with(&skills(&["ios", "spanish"])), [2]);
        assert_eq!(
            index.agents_with(&skills(&["android"])),
            Vec::<usize>::new()
        );
        assert_eq!(index.agents_with(&[]), [0, 1, 2, 3]);
    }

    #[test]
    fn the_longest_wait_is_the_earliest_caller_not_the_head() {
        let call = |sid: &str, enqueued_at_ms: i64, priority: i32| QueuedCall {
            call_sid: sid.to_owned(),
            queue: "portal".to_owned(),
            node: "n".to_owned(),
            enqueued_at_ms,
            priority,
            verification_failed: false,
            callback_id: None,
        };
        let line = [
            call("urgent", NOW_MS - 10_000, 5),
            call("early", NOW_MS - 95_500, 0),
        ];
        assert_eq!(
            QueueDepth::of(&line, NOW_MS),
            QueueDepth {
                waiting: 2,
                longest_wait_secs: 95,
            }
        );
        assert_eq!(QueueDepth::of(&[], NOW_MS), QueueDepth::default());
    }

    #[test]
    fn today_is_read_in_the_largest_buckets_that_start_at_local_midnight() {
        // 2026-01-01 12:00 UTC.
        assert_eq!(
            today_range(NOW_MS, &TimeZone::UTC),
            (NOW_MS - 12 * 3_600_000, NOW_MS + 1, StatsInterval::Day)
        );
        let chicago = TimeZone::get("America/Chicago").expect("tz");
        assert_eq!(
            today_range(NOW_MS, &chicago),
            (NOW_MS - 6 * 3_600_000, NOW_MS + 1, StatsInterval::Hour)
        );
        let kolkata = TimeZone::get("Asia/Kolkata").expect("tz");
        // 17:30 in Kolkata (UTC+5:30): the day started at 18:30 UTC the day before.
        assert_eq!(
            today_range(NOW_MS, &kolkata),
            (
                NOW_MS - 17 * 3_600_000 - 30 * 60_000,
                NOW_MS + 1,
                StatsInterval::FifteenMinutes
            )
        );
    }
}
