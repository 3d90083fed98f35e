//! The behaviour every [`Store`] must have, run against both implementations.
//!
//! Each check is an `async fn(&dyn Store)`; [`conformance!`] turns the list into one
//! `#[tokio::test]` per implementation: `memory::<check>` on a fresh [`MemoryStore`] and
//! `redis::<check>` on a [`RedisStore`] over a `redis-server` the test starts itself.

use super::call_record::LEASE_GRACE_MS;
use super::{
    AgentActivity, AgentStatus, AttemptOutcome, CallCounters, CallOutcomeStat, CallPhase,
    CallRecord, CallStep, CallbackRequest, CallbackStatus, CodeCheck, Enqueued, MissedOffer,
    QueueCounters, QueueStatEvent, QueuedCall, RecordWrite, StatsInterval, Store, StoreError,
    Strategy,
};

/// 2026-01-01 12:00 UTC: mid-day, so a few hours either way stay on the same day.
const T0: i64 = 1_767_268_800_000;
const SECOND: i64 = 1_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

const NODE_A: &str = "node-a";
const NODE_B: &str = "node-b";

fn call(sid: &str, queue: &str, node: &str, enqueued_at_ms: i64, priority: i32) -> QueuedCall {
    QueuedCall {
        call_sid: sid.to_owned(),
        queue: queue.to_owned(),
        node: node.to_owned(),
        enqueued_at_ms,
        priority,
        verification_failed: false,
        callback_id: None,
    }
}

fn portal_call(sid: &str, enqueued_at_ms: i64) -> QueuedCall {
    call(sid, "portal", NODE_A, enqueued_at_ms, 0)
}

fn ids(agents: &[&str]) -> Vec<String> {
    agents.iter().map(|id| (*id).to_owned()).collect()
}

async fn waiting_sids(store: &dyn Store, queue: &str) -> Vec<String> {
    store
        .waiting(queue)
        .await
        .expect("waiting calls")
        .into_iter()
        .map(|call| call.call_sid)
        .collect()
}

/// Register `agents`, each made available at the time given, in that order.
async fn available_agents(store: &dyn Store, agents: &[(&str, i64)]) {
    let all: Vec<String> = agents.iter().map(|(id, _)| (*id).to_owned()).collect();
    store
        .register_agents(&all, T0 - HOUR)
        .await
        .expect("register");
    for (id, at) in agents {
        store
            .set_agent_status(id, AgentStatus::Available, *at)
            .await
            .expect("available");
    }
}

async fn enqueue_all(store: &dyn Store, calls: &[QueuedCall]) {
    for call in calls {
        store.enqueue(call).await.expect("enqueue");
    }
}

/// Reserve for node A from `candidates`, answer and finish at once (no wrap-up): the agent
/// who took the call.
async fn serve_next(
    store: &dyn Store,
    candidates: &[String],
    strategy: Strategy,
    now: i64,
) -> Option<String> {
    let reservation = store
        .reserve("portal", NODE_A, candidates, strategy, now)
        .await
        .expect("reserve")?;
    let agent = reservation.agent_id;
    let sid = reservation.call.call_sid;
    store
        .offer_answered(&agent, &sid, now)
        .await
        .expect("answer");
    store
        .call_finished(&agent, &sid, now, now)
        .await
        .expect("finish");
    Some(agent)
}

async fn activity(store: &dyn Store, agent: &str) -> AgentActivity {
    store
        .agent(agent)
        .await
        .expect("agent")
        .expect("agent exists")
        .activity
}

// --- queues ---

pub async fn calls_are_served_in_arrival_order(store: &dyn Store) {
    enqueue_all(
        store,
        &[
            portal_call("CA2", T0 + 2 * SECOND),
            portal_call("CA1", T0 + SECOND),
            portal_call("CA3", T0 + 3 * SECOND),
        ],
    )
    .await;
    assert_eq!(waiting_sids(store, "portal").await, ["CA1", "CA2", "CA3"]);
    for (sid, place) in [("CA1", 1), ("CA2", 2), ("CA3", 3)] {
        assert_eq!(
            store.position("portal", sid).await.expect("position"),
            Some(place)
        );
    }
}

pub async fn higher_priority_calls_are_served_first(store: &dyn Store) {
    enqueue_all(
        store,
        &[
            call("CA-early", "portal", NODE_A, T0, -1),
            call("CA-normal", "portal", NODE_A, T0 + SECOND, 0),
            call("CA-urgent", "portal", NODE_A, T0 + 2 * SECOND, 5),
            call("CA-urgent-later", "portal", NODE_A, T0 + 3 * SECOND, 5),
            call("CA-top", "portal", NODE_A, T0 + 4 * SECOND, i32::MAX),
            call("CA-bottom", "portal", NODE_A, T0 - SECOND, i32::MIN),
        ],
    )
    .await;
    assert_eq!(
        waiting_sids(store, "portal").await,
        [
            "CA-top",
            "CA-urgent",
            "CA-urgent-later",
            "CA-normal",
            "CA-early",
            "CA-bottom"
        ]
    );
    assert_eq!(
        store
            .position("portal", "CA-normal")
            .await
            .expect("position"),
        Some(4)
    );
}

pub async fn each_queue_has_its_own_line(store: &dyn Store) {
    enqueue_all(
        store,
        &[
            call("CA1", "portal", NODE_A, T0, 0),
            call("CA2", "ios", NODE_A, T0 + SECOND, 0),
            call("CA3", "portal", NODE_A, T0 + 2 * SECOND, 0),
        ],
    )
    .await;
    assert_eq!(waiting_sids(store, "portal").await, ["CA1", "CA3"]);
    assert_eq!(waiting_sids(store, "ios").await, ["CA2"]);
    assert_eq!(
        store.position("ios", "CA2").await.expect("position"),
        Some(1)
    );
    assert_eq!(
        store.position("portal", "CA3").await.expect("position"),
        Some(2)
    );
    assert_eq!(store.position("ios", "CA3").await.expect("position"), None);
    assert_eq!(
        store
            .position("portal", "CA-unknown")
            .await
            .expect("position"),
        None
    );
    assert!(waiting_sids(store, "spanish").await.is_empty());
}

pub async fn enqueueing_a_call_again_keeps_its_place(store: &dyn Store) {
    enqueue_all(
        store,
        &[portal_call("CA1", T0), portal_call("CA2", T0 + SECOND)],
    )
    .await;
    let mut again = call("CA1", "portal", NODE_B, T0 + 10 * SECOND, 9);
    again.verification_failed = true;
    store.enqueue(&again).await.expect("enqueue again");

    let waiting = store.waiting("portal").await.expect("waiting");
    assert_eq!(waiting.len(), 2);
    assert_eq!(waiting[0].call_sid, "CA1");
    assert_eq!(waiting[0].enqueued_at_ms, T0, "original enqueue time kept");
    assert_eq!(waiting[0].priority, 0);
    assert!(!waiting[0].verification_failed);
    assert_eq!(
        waiting[0].node, NODE_B,
        "the node now carrying the stream dispatches it"
    );
}

pub async fn calls_registered_again_in_any_order_get_their_original_places(store: &dyn Store) {
    // What a node does after Redis restarted empty: its calls come back in whatever order
    // it walks them, with the times they first entered the queue.
    enqueue_all(
        store,
        &[
            portal_call("CA3", T0 + 3 * SECOND),
            portal_call("CA1", T0 + SECOND),
            portal_call("CA2", T0 + 2 * SECOND),
            portal_call("CA1", T0 + SECOND),
        ],
    )
    .await;
    assert_eq!(waiting_sids(store, "portal").await, ["CA1", "CA2", "CA3"]);
}

pub async fn enqueueing_a_reserved_call_again_hands_its_reservation_to_the_new_node(
    store: &dyn Store,
) {
    available_agents(store, &[("anguyen", T0)]).await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let candidates = ids(&["anguyen"]);
    let reservation = store
        .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, T0)
        .await
        .expect("reserve")
        .expect("reserved");
    let joined_elsewhere = store
        .enqueue(&call("CA1", "portal", NODE_B, T0, 0))
        .await
        .expect("enqueue again");
    let Enqueued::Reserved(moved) = joined_elsewhere else {
        panic!("the reservation comes back: {joined_elsewhere:?}");
    };
    assert_eq!(moved.agent_id, "anguyen");
    assert_eq!(moved.reserved_at_ms, reservation.reserved_at_ms);
    assert_eq!(moved.call.node, NODE_B, "the call now belongs to node B");
    assert!(waiting_sids(store, "portal").await.is_empty());
    assert_eq!(
        store.position("portal", "CA1").await.expect("position"),
        None
    );
    // Node A releasing what it held must not take the call from node B.
    assert!(
        !store
            .remove_call_of_node("CA1", NODE_A)
            .await
            .expect("release by A")
    );
    assert!(matches!(
        store
            .agent("anguyen")
            .await
            .expect("agent")
            .expect("known")
            .activity,
        AgentActivity::Reserved { .. }
    ));
    assert!(
        store
            .remove_call_of_node("CA1", NODE_B)
            .await
            .expect("release by B")
    );
    assert_eq!(
        store
            .agent("anguyen")
            .await
            .expect("agent")
            .expect("known")
            .activity,
        AgentActivity::Idle
    );
}

pub async fn a_caller_who_hangs_up_leaves_the_queue(store: &dyn Store) {
    enqueue_all(
        store,
        &[portal_call("CA1", T0), portal_call("CA2", T0 + SECOND)],
    )
    .await;
    let removed = store.remove_call("CA1").await.expect("remove");
    assert_eq!(removed, Some(portal_call("CA1", T0)));
    assert_eq!(waiting_sids(store, "portal").await, ["CA2"]);
    assert_eq!(
        store.position("portal", "CA2").await.expect("position"),
        Some(1)
    );
    assert_eq!(
        store.position("portal", "CA1").await.expect("position"),
        None
    );
    assert_eq!(store.remove_call("CA1").await.expect("remove again"), None);
}

pub async fn a_hang_up_during_an_offer_frees_the_agent(store: &dyn Store) {
    available_agents(
        store,
        &[("anguyen", T0 - 50 * SECOND), ("bkim", T0 - 40 * SECOND)],
    )
    .await;
    enqueue_all(
        store,
        &[portal_call("CA1", T0), portal_call("CA2", T0 + SECOND)],
    )
    .await;
    let candidates = ids(&["anguyen", "bkim"]);
    let first = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + 2 * SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(first.agent_id, "anguyen");

    let removed = store.remove_call("CA1").await.expect("remove");
    assert_eq!(removed.map(|call| call.call_sid).as_deref(), Some("CA1"));
    assert_eq!(activity(store, "anguyen").await, AgentActivity::Idle);
    // The offer that never happened costs the agent nothing: still the longest idle.
    let next = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + 3 * SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(
        (next.call.call_sid.as_str(), next.agent_id.as_str()),
        ("CA2", "anguyen")
    );
}

// --- reservation ---

pub async fn the_head_call_goes_to_the_longest_idle_agent(store: &dyn Store) {
    available_agents(
        store,
        &[
            ("anguyen", T0 - 10 * SECOND),
            ("bkim", T0 - 30 * SECOND),
            ("cdiaz", T0 - 20 * SECOND),
        ],
    )
    .await;
    let mut urgent = call("CA2", "portal", NODE_A, T0 + SECOND, 1);
    urgent.verification_failed = true;
    enqueue_all(store, &[portal_call("CA1", T0), urgent.clone()]).await;

    let reservation = store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["anguyen", "bkim", "cdiaz"]),
            Strategy::LongestIdle,
            T0 + 5 * SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(
        reservation.call, urgent,
        "the call comes back whole, flag included"
    );
    assert_eq!(reservation.agent_id, "bkim");
    assert_eq!(reservation.reserved_at_ms, T0 + 5 * SECOND);
    assert_eq!(
        activity(store, "bkim").await,
        AgentActivity::Reserved {
            call_sid: "CA2".to_owned(),
            since_ms: T0 + 5 * SECOND
        }
    );
    assert_eq!(waiting_sids(store, "portal").await, ["CA1"]);
    assert_eq!(
        store.position("portal", "CA2").await.expect("position"),
        None
    );
}

pub async fn longest_idle_ties_go_to_the_smaller_id(store: &dyn Store) {
    available_agents(store, &[("cdiaz", T0), ("anguyen", T0), ("bkim", T0)]).await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let reservation = store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["cdiaz", "bkim", "anguyen"]),
            Strategy::LongestIdle,
            T0 + SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(reservation.agent_id, "anguyen");
}

pub async fn each_node_dispatches_only_its_own_calls(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0), ("bkim", T0)]).await;
    enqueue_all(
        store,
        &[
            call("CA-b", "portal", NODE_B, T0, 0),
            call("CA-a", "portal", NODE_A, T0 + SECOND, 0),
        ],
    )
    .await;
    let candidates = ids(&["anguyen", "bkim"]);
    let now = T0 + 2 * SECOND;

    // Node A never jumps node B's caller, who has waited longer.
    let by_a = store
        .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, now)
        .await
        .expect("reserve");
    assert_eq!(by_a, None);
    assert_eq!(waiting_sids(store, "portal").await, ["CA-b", "CA-a"]);

    let by_b = store
        .reserve("portal", NODE_B, &candidates, Strategy::LongestIdle, now)
        .await
        .expect("reserve")
        .expect("node B reserves its call");
    assert_eq!(by_b.call.call_sid, "CA-b");
    let by_a = store
        .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, now)
        .await
        .expect("reserve")
        .expect("now node A's call is at the head");
    assert_eq!(by_a.call.call_sid, "CA-a");
    assert_ne!(by_a.agent_id, by_b.agent_id);
}

pub async fn nothing_is_reserved_without_a_free_agent(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0), ("bkim", T0), ("cdiaz", T0)]).await;
    store
        .set_agent_status("bkim", AgentStatus::Break, T0)
        .await
        .expect("break");
    store
        .set_agent_status("cdiaz", AgentStatus::Offline, T0)
        .await
        .expect("offline");
    enqueue_all(
        store,
        &[portal_call("CA1", T0), portal_call("CA2", T0 + SECOND)],
    )
    .await;
    let candidates = ids(&["anguyen", "bkim", "cdiaz", "nobody"]);
    let now = T0 + 2 * SECOND;

    let first = store
        .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, now)
        .await
        .expect("reserve")
        .expect("the one available agent");
    assert_eq!(first.agent_id, "anguyen");
    for strategy in [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
    ] {
        let again = store
            .reserve("portal", NODE_A, &candidates, strategy, now)
            .await
            .expect("reserve");
        assert_eq!(
            again, None,
            "{strategy:?}: a reserved agent is not reserved twice"
        );
    }
    assert_eq!(
        store.position("portal", "CA2").await.expect("position"),
        Some(1)
    );
    let with_nobody = store
        .reserve("portal", NODE_A, &[], Strategy::LongestIdle, now)
        .await
        .expect("reserve");
    assert_eq!(with_nobody, None);
}

pub async fn a_reserved_call_is_not_offered_again(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0), ("bkim", T0)]).await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let candidates = ids(&["anguyen", "bkim"]);
    let first = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + SECOND,
        )
        .await
        .expect("reserve");
    assert!(first.is_some());
    let second = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + SECOND,
        )
        .await
        .expect("reserve");
    assert_eq!(second, None);
    let idle = store.agents().await.expect("agents");
    let idle: Vec<&str> = idle
        .iter()
        .filter(|agent| agent.activity == AgentActivity::Idle)
        .map(|agent| agent.id.as_str())
        .collect();
    assert_eq!(idle.len(), 1, "exactly one agent holds the call");
}

pub async fn round_robin_takes_turns_whatever_the_candidate_order(store: &dyn Store) {
    available_agents(
        store,
        &[
            ("anguyen", T0 - 3 * SECOND),
            ("bkim", T0 - 2 * SECOND),
            ("cdiaz", T0 - SECOND),
        ],
    )
    .await;
    let forward = ids(&["anguyen", "bkim", "cdiaz"]);
    let backward = ids(&["cdiaz", "bkim", "anguyen"]);
    let mut served = Vec::new();
    for n in 0..5 {
        let now = T0 + n * SECOND;
        store
            .enqueue(&portal_call(&format!("CA{n}"), now))
            .await
            .expect("enqueue");
        let candidates = if n % 2 == 0 { &forward } else { &backward };
        served.push(
            serve_next(store, candidates, Strategy::RoundRobin, now)
                .await
                .expect("served"),
        );
    }
    assert_eq!(served, ["anguyen", "bkim", "cdiaz", "anguyen", "bkim"]);
}

pub async fn round_robin_skips_agents_who_are_not_free(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0), ("bkim", T0), ("cdiaz", T0)]).await;
    let candidates = ids(&["anguyen", "bkim", "cdiaz"]);
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let first = serve_next(store, &candidates, Strategy::RoundRobin, T0).await;
    assert_eq!(first.as_deref(), Some("anguyen"));
    store
        .set_agent_status("bkim", AgentStatus::Break, T0)
        .await
        .expect("break");
    store
        .enqueue(&portal_call("CA2", T0 + SECOND))
        .await
        .expect("enqueue");
    let second = serve_next(store, &candidates, Strategy::RoundRobin, T0 + SECOND).await;
    assert_eq!(second.as_deref(), Some("cdiaz"));
    store
        .enqueue(&portal_call("CA3", T0 + 2 * SECOND))
        .await
        .expect("enqueue");
    let third = serve_next(store, &candidates, Strategy::RoundRobin, T0 + 2 * SECOND).await;
    assert_eq!(
        third.as_deref(),
        Some("anguyen"),
        "wraps around to the start"
    );
}

pub async fn round_robin_keeps_a_turn_per_queue(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0), ("bkim", T0)]).await;
    let candidates = ids(&["anguyen", "bkim"]);
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    assert_eq!(
        serve_next(store, &candidates, Strategy::RoundRobin, T0)
            .await
            .as_deref(),
        Some("anguyen")
    );
    store
        .enqueue(&call("CA2", "ios", NODE_A, T0 + SECOND, 0))
        .await
        .expect("enqueue");
    let ios = store
        .reserve(
            "ios",
            NODE_A,
            &candidates,
            Strategy::RoundRobin,
            T0 + SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(
        ios.agent_id, "anguyen",
        "the ios queue has served nobody yet"
    );
}

pub async fn fewest_calls_goes_to_the_agent_with_fewest_answered_today(store: &dyn Store) {
    available_agents(
        store,
        &[
            ("anguyen", T0 - 3 * HOUR),
            ("bkim", T0 - 3 * HOUR),
            ("cdiaz", T0 - 3 * HOUR),
        ],
    )
    .await;
    // Yesterday anguyen took many calls: they do not count today.
    let yesterday = T0 - DAY;
    for n in 0..3 {
        let sid = format!("CA-old{n}");
        store
            .enqueue(&portal_call(&sid, yesterday))
            .await
            .expect("enqueue");
        serve_next(store, &ids(&["anguyen"]), Strategy::LongestIdle, yesterday)
            .await
            .expect("served");
    }
    // Today: bkim twice, cdiaz once.
    for (sid, agent) in [("CA1", "bkim"), ("CA2", "bkim"), ("CA3", "cdiaz")] {
        store
            .enqueue(&portal_call(sid, T0 - 2 * HOUR))
            .await
            .expect("enqueue");
        serve_next(store, &ids(&[agent]), Strategy::LongestIdle, T0 - 2 * HOUR)
            .await
            .expect("served");
    }
    let anguyen = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(anguyen.calls_today_at(yesterday), 3);
    assert_eq!(anguyen.calls_today_at(T0), 0);

    let candidates = ids(&["anguyen", "bkim", "cdiaz"]);
    store
        .enqueue(&portal_call("CA4", T0))
        .await
        .expect("enqueue");
    assert_eq!(
        serve_next(store, &candidates, Strategy::FewestCalls, T0)
            .await
            .as_deref(),
        Some("anguyen")
    );
    // anguyen and cdiaz now have one call each; cdiaz has been idle longer.
    store
        .enqueue(&portal_call("CA5", T0 + SECOND))
        .await
        .expect("enqueue");
    assert_eq!(
        serve_next(store, &candidates, Strategy::FewestCalls, T0 + SECOND)
            .await
            .as_deref(),
        Some("cdiaz")
    );
    let bkim = store.agent("bkim").await.expect("agent").expect("exists");
    assert_eq!(bkim.calls_today_at(T0), 2);
}

pub async fn an_agent_in_wrap_up_waits_until_it_ends(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    let candidates = ids(&["anguyen"]);
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    store
        .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, T0)
        .await
        .expect("reserve")
        .expect("reserved");
    store
        .offer_answered("anguyen", "CA1", T0 + 5 * SECOND)
        .await
        .expect("answer");
    let wrap_up_until = T0 + 100 * SECOND;
    store
        .call_finished("anguyen", "CA1", wrap_up_until, T0 + 70 * SECOND)
        .await
        .expect("finish");
    let agent = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(
        agent.activity_at(T0 + 80 * SECOND),
        AgentActivity::WrapUp {
            until_ms: wrap_up_until
        }
    );
    assert_eq!(agent.activity_at(wrap_up_until), AgentActivity::Idle);

    store
        .enqueue(&portal_call("CA2", T0 + 60 * SECOND))
        .await
        .expect("enqueue");
    let during = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + 80 * SECOND,
        )
        .await
        .expect("reserve");
    assert_eq!(during, None);
    let after = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            wrap_up_until,
        )
        .await
        .expect("reserve")
        .expect("free once wrap-up has ended");
    assert_eq!(after.call.call_sid, "CA2");
}

pub async fn break_or_offline_never_interrupts_a_call(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    let candidates = ids(&["anguyen"]);
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    store
        .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, T0)
        .await
        .expect("reserve")
        .expect("reserved");
    store
        .offer_answered("anguyen", "CA1", T0)
        .await
        .expect("answer");

    for status in [AgentStatus::Break, AgentStatus::Offline] {
        let record = store
            .set_agent_status("anguyen", status, T0 + SECOND)
            .await
            .expect("status");
        assert_eq!(record.status, status);
        assert_eq!(
            record.activity,
            AgentActivity::OnCall {
                call_sid: "CA1".to_owned(),
                since_ms: T0
            }
        );
    }
    store
        .call_finished("anguyen", "CA1", T0 + 2 * SECOND, T0 + 2 * SECOND)
        .await
        .expect("finish");
    store
        .enqueue(&portal_call("CA2", T0 + SECOND))
        .await
        .expect("enqueue");
    let while_offline = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + 10 * SECOND,
        )
        .await
        .expect("reserve");
    assert_eq!(while_offline, None);

    store
        .set_agent_status("anguyen", AgentStatus::Available, T0 + 11 * SECOND)
        .await
        .expect("available");
    let back = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + 12 * SECOND,
        )
        .await
        .expect("reserve");
    assert!(back.is_some());
}

pub async fn coming_back_from_a_break_does_not_jump_the_line(store: &dyn Store) {
    available_agents(
        store,
        &[("anguyen", T0 - 60 * SECOND), ("bkim", T0 - 30 * SECOND)],
    )
    .await;
    store
        .set_agent_status("anguyen", AgentStatus::Break, T0 - 20 * SECOND)
        .await
        .expect("break");
    let back = store
        .set_agent_status("anguyen", AgentStatus::Available, T0 - 10 * SECOND)
        .await
        .expect("available");
    assert_eq!(back.idle_since_ms, T0 - 10 * SECOND);
    assert_eq!(back.status_changed_ms, T0 - 10 * SECOND);
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let reservation = store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["anguyen", "bkim"]),
            Strategy::LongestIdle,
            T0,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(reservation.agent_id, "bkim");
}

// --- offers ---

pub async fn an_answered_offer_puts_the_agent_on_the_call(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["anguyen"]),
            Strategy::LongestIdle,
            T0,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    store
        .offer_answered("anguyen", "CA1", T0 + 4 * SECOND)
        .await
        .expect("answer");
    let agent = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(
        agent.activity,
        AgentActivity::OnCall {
            call_sid: "CA1".to_owned(),
            since_ms: T0 + 4 * SECOND
        }
    );
    assert_eq!(agent.calls_today_at(T0), 1);
    assert_eq!(agent.missed_in_a_row, 0);
    // The call is with the agent now: its hang-up is no abandoned call.
    assert_eq!(store.remove_call("CA1").await.expect("remove"), None);
    assert!(waiting_sids(store, "portal").await.is_empty());
}

pub async fn a_finished_call_whose_answer_was_not_reported_counts_as_answered(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["anguyen"]),
            Strategy::LongestIdle,
            T0,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    store
        .call_finished("anguyen", "CA1", T0 + 90 * SECOND, T0 + 60 * SECOND)
        .await
        .expect("finish");
    let agent = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(
        agent.activity,
        AgentActivity::WrapUp {
            until_ms: T0 + 90 * SECOND
        }
    );
    assert_eq!(agent.calls_today_at(T0), 1);
    assert_eq!(store.remove_call("CA1").await.expect("remove"), None);
}

pub async fn a_missed_offer_puts_the_call_back_at_the_front(store: &dyn Store) {
    available_agents(
        store,
        &[("anguyen", T0 - 20 * SECOND), ("bkim", T0 - 10 * SECOND)],
    )
    .await;
    enqueue_all(
        store,
        &[portal_call("CA1", T0), portal_call("CA2", T0 + SECOND)],
    )
    .await;
    let candidates = ids(&["anguyen", "bkim"]);
    let offer = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + 2 * SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(offer.agent_id, "anguyen");
    store
        .enqueue(&portal_call("CA3", T0 + 3 * SECOND))
        .await
        .expect("enqueue");

    let outcome = store
        .offer_missed("anguyen", &offer.call, 2, T0 + 22 * SECOND)
        .await
        .expect("missed");
    assert_eq!(outcome, MissedOffer::BackToIdle);
    let waiting = store.waiting("portal").await.expect("waiting");
    let order: Vec<&str> = waiting.iter().map(|call| call.call_sid.as_str()).collect();
    assert_eq!(order, ["CA1", "CA2", "CA3"]);
    assert_eq!(waiting[0].enqueued_at_ms, T0);

    let agent = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(agent.activity, AgentActivity::Idle);
    assert_eq!(agent.idle_since_ms, T0 + 22 * SECOND);
    assert_eq!(agent.missed_in_a_row, 1);
    assert_eq!(agent.status, AgentStatus::Available);
    let next = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            T0 + 23 * SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(
        (next.call.call_sid.as_str(), next.agent_id.as_str()),
        ("CA1", "bkim")
    );
}

pub async fn two_missed_offers_in_a_row_put_the_agent_on_break(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    let candidates = ids(&["anguyen"]);
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let offer_and_miss = async |now: i64| {
        let offer = store
            .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, now)
            .await
            .expect("reserve")
            .expect("reserved");
        store
            .offer_missed("anguyen", &offer.call, 2, now + 20 * SECOND)
            .await
            .expect("missed")
    };
    assert_eq!(offer_and_miss(T0).await, MissedOffer::BackToIdle);
    let now = T0 + 30 * SECOND;
    assert_eq!(offer_and_miss(now).await, MissedOffer::PutOnBreak);

    let agent = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(agent.status, AgentStatus::Break);
    assert_eq!(agent.status_changed_ms, now + 20 * SECOND);
    assert_eq!(agent.activity, AgentActivity::Idle);
    assert_eq!(agent.missed_in_a_row, 0, "a fresh start after the break");
    let on_break = store
        .reserve(
            "portal",
            NODE_A,
            &candidates,
            Strategy::LongestIdle,
            now + HOUR,
        )
        .await
        .expect("reserve");
    assert_eq!(on_break, None);
    assert_eq!(waiting_sids(store, "portal").await, ["CA1"]);
}

pub async fn an_answer_between_misses_starts_the_count_again(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    let candidates = ids(&["anguyen"]);
    for (n, answer) in [false, true, false].into_iter().enumerate() {
        let now = T0 + n as i64 * 60 * SECOND;
        let sid = format!("CA{n}");
        store
            .enqueue(&portal_call(&sid, now))
            .await
            .expect("enqueue");
        let offer = store
            .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, now)
            .await
            .expect("reserve")
            .expect("reserved");
        if answer {
            store
                .offer_answered("anguyen", &sid, now)
                .await
                .expect("answer");
            store
                .call_finished("anguyen", &sid, now, now)
                .await
                .expect("finish");
        } else {
            let outcome = store
                .offer_missed("anguyen", &offer.call, 2, now + 20 * SECOND)
                .await
                .expect("missed");
            assert_eq!(outcome, MissedOffer::BackToIdle);
            store.remove_call(&sid).await.expect("caller gives up");
        }
    }
    let agent = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(agent.status, AgentStatus::Available);
    assert_eq!(agent.missed_in_a_row, 1);
}

pub async fn a_call_that_hung_up_during_the_offer_stays_gone(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let offer = store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["anguyen"]),
            Strategy::LongestIdle,
            T0,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    store.remove_call("CA1").await.expect("hang-up");
    let outcome = store
        .offer_missed("anguyen", &offer.call, 2, T0 + 20 * SECOND)
        .await
        .expect("missed");
    assert_eq!(outcome, MissedOffer::BackToIdle);
    assert!(waiting_sids(store, "portal").await.is_empty());
    let agent = store
        .agent("anguyen")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(agent.missed_in_a_row, 0, "nobody rang unanswered");

    store
        .offer_answered("anguyen", "CA1", T0 + 21 * SECOND)
        .await
        .expect("late answer");
    assert_eq!(activity(store, "anguyen").await, AgentActivity::Idle);
}

// --- agents ---

pub async fn registering_agents_again_keeps_what_they_said(store: &dyn Store) {
    store
        .register_agents(&ids(&["bkim", "anguyen"]), T0)
        .await
        .expect("register");
    store
        .set_agent_status("anguyen", AgentStatus::Available, T0 + SECOND)
        .await
        .expect("available");
    store
        .register_agents(&ids(&["anguyen", "cdiaz"]), T0 + 2 * SECOND)
        .await
        .expect("register again");

    let agents = store.agents().await.expect("agents");
    let listed: Vec<(&str, AgentStatus)> = agents
        .iter()
        .map(|agent| (agent.id.as_str(), agent.status))
        .collect();
    assert_eq!(
        listed,
        [
            ("anguyen", AgentStatus::Available),
            ("bkim", AgentStatus::Offline),
            ("cdiaz", AgentStatus::Offline)
        ]
    );
    let cdiaz = &agents[2];
    assert_eq!(cdiaz.activity, AgentActivity::Idle);
    assert_eq!(cdiaz.status_changed_ms, T0 + 2 * SECOND);
    assert_eq!(cdiaz.calls_today_at(T0), 0);
    assert_eq!(store.agent("nobody").await.expect("agent"), None);
}

pub async fn unknown_agents_are_reported(store: &dyn Store) {
    let status = store
        .set_agent_status("nobody", AgentStatus::Available, T0)
        .await;
    assert!(matches!(status, Err(StoreError::UnknownAgent(id)) if id == "nobody"));
    let answered = store.offer_answered("nobody", "CA1", T0).await;
    assert!(matches!(answered, Err(StoreError::UnknownAgent(_))));
    let missed = store
        .offer_missed("nobody", &portal_call("CA1", T0), 2, T0)
        .await;
    assert!(matches!(missed, Err(StoreError::UnknownAgent(_))));
    let finished = store.call_finished("nobody", "CA1", T0, T0).await;
    assert!(matches!(finished, Err(StoreError::UnknownAgent(_))));
}

pub async fn the_data_epoch_holds_while_the_data_does(store: &dyn Store) {
    let first = store.data_epoch().await.expect("epoch");
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    assert_eq!(store.data_epoch().await.expect("epoch"), first);
    assert!(!first.is_empty());
    store.ping().await.expect("ping");
}

/// After data loss the store has the agent idle and the call waiting, as if the offer never
/// happened; the node that made it puts it back.
pub async fn a_restored_offer_holds_the_agent_and_takes_the_call_out_of_its_queue(
    store: &dyn Store,
) {
    available_agents(store, &[("a1", T0 - 20 * SECOND), ("a2", T0 - 10 * SECOND)]).await;
    let ringing = portal_call("CA1", T0);
    enqueue_all(store, &[ringing.clone(), portal_call("CA2", T0 + 1)]).await;

    let held = store
        .restore_offer("a1", &ringing, false, T0 + 5 * SECOND)
        .await
        .expect("restore");
    assert!(held);
    let agent = store.agent("a1").await.expect("agent").expect("known");
    assert_eq!(
        agent.activity,
        AgentActivity::Reserved {
            call_sid: "CA1".to_owned(),
            since_ms: T0 + 5 * SECOND
        }
    );
    assert_eq!(waiting_sids(store, "portal").await, ["CA2"]);
    // Nobody else is offered to a1, and a1 is offered nothing else.
    let next = store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["a1", "a2"]),
            Strategy::LongestIdle,
            T0 + 6 * SECOND,
        )
        .await
        .expect("reserve")
        .expect("a2 is free");
    assert_eq!(
        (next.call.call_sid.as_str(), next.agent_id.as_str()),
        ("CA2", "a2")
    );
    // Doing it again changes nothing; the offer's outcome applies as to any offer.
    assert!(
        store
            .restore_offer("a1", &ringing, false, T0 + 7 * SECOND)
            .await
            .expect("again")
    );
    store
        .offer_answered("a1", "CA1", T0 + 8 * SECOND)
        .await
        .expect("answered");
    let agent = store.agent("a1").await.expect("agent").expect("known");
    assert!(
        matches!(agent.activity, AgentActivity::OnCall { ref call_sid, .. } if call_sid == "CA1")
    );
}

pub async fn a_restored_call_in_progress_keeps_the_agent_on_it(store: &dyn Store) {
    available_agents(store, &[("a1", T0 - 20 * SECOND), ("a2", T0 - 10 * SECOND)]).await;
    let talking = portal_call("CA1", T0);
    enqueue_all(store, std::slice::from_ref(&talking)).await;
    assert!(
        store
            .restore_offer("a1", &talking, true, T0 + 5 * SECOND)
            .await
            .expect("restore")
    );
    assert!(waiting_sids(store, "portal").await.is_empty());
    let agent = store.agent("a1").await.expect("agent").expect("known");
    assert_eq!(
        agent.activity,
        AgentActivity::OnCall {
            call_sid: "CA1".to_owned(),
            since_ms: T0 + 5 * SECOND
        }
    );
    // A reservation restored after the answer is known changes nothing.
    assert!(
        store
            .restore_offer("a1", &talking, false, T0)
            .await
            .expect("restore")
    );
    assert!(matches!(
        store
            .agent("a1")
            .await
            .expect("agent")
            .expect("known")
            .activity,
        AgentActivity::OnCall { .. }
    ));
    // An agent holding another call keeps it.
    let other = portal_call("CA2", T0 + 1);
    enqueue_all(store, std::slice::from_ref(&other)).await;
    assert!(
        !store
            .restore_offer("a1", &other, false, T0)
            .await
            .expect("restore")
    );
    assert_eq!(waiting_sids(store, "portal").await, ["CA2"]);
    assert!(matches!(
        store.restore_offer("nobody", &other, false, T0).await,
        Err(StoreError::UnknownAgent(_))
    ));
}

// --- statistics ---

const MINUTE: i64 = 60 * SECOND;
/// The UTC day T0 falls in.
const DAY0: i64 = T0 - 12 * HOUR;

async fn record(store: &dyn Store, queue: &str, events: &[(QueueStatEvent, i64)]) {
    for (event, at) in events {
        store
            .record_queue_stat(queue, *event, *at)
            .await
            .expect("record a queue event");
    }
}

async fn queue_counters(
    store: &dyn Store,
    queue: &str,
    from: i64,
    to: i64,
    interval: StatsInterval,
) -> Vec<(i64, QueueCounters)> {
    store
        .queue_stats(queue, from, to, interval)
        .await
        .expect("queue stats")
        .into_iter()
        .map(|bucket| (bucket.start_ms, bucket.counters))
        .collect()
}

pub async fn queue_events_count_in_their_day_and_their_quarter_hour(store: &dyn Store) {
    record(
        store,
        "portal",
        &[
            (QueueStatEvent::Offered, T0 + MINUTE),
            (QueueStatEvent::Offered, T0 + 2 * MINUTE),
            (
                QueueStatEvent::Answered { wait_ms: 12_000 },
                T0 + 3 * MINUTE,
            ),
            (QueueStatEvent::Offered, T0 + 20 * MINUTE),
            (
                QueueStatEvent::Abandoned { wait_ms: 45_000 },
                T0 + 21 * MINUTE,
            ),
            (QueueStatEvent::Offered, T0 + 22 * MINUTE),
            (
                QueueStatEvent::Answered { wait_ms: 30_000 },
                T0 + 23 * MINUTE,
            ),
            (QueueStatEvent::CallbackRequested, T0 + 29 * MINUTE),
        ],
    )
    .await;

    let quarter = StatsInterval::FifteenMinutes;
    let intervals = queue_counters(store, "portal", T0, T0 + 45 * MINUTE, quarter).await;
    assert_eq!(
        intervals,
        [
            (
                T0,
                QueueCounters {
                    offered: 2,
                    answered: 1,
                    answered_within_20s: 1,
                    answer_wait_ms: 12_000,
                    ..QueueCounters::default()
                }
            ),
            (
                T0 + 15 * MINUTE,
                QueueCounters {
                    offered: 2,
                    answered: 1,
                    abandoned: 1,
                    abandoned_after_5s: 1,
                    answer_wait_ms: 30_000,
                    callbacks: 1,
                    ..QueueCounters::default()
                }
            ),
            (T0 + 30 * MINUTE, QueueCounters::default()),
        ]
    );

    let total = store
        .queue_stats_total("portal", T0, T0 + 45 * MINUTE, quarter)
        .await
        .expect("total");
    let mut both_quarters = intervals[0].1;
    both_quarters += intervals[1].1;
    assert_eq!(total, both_quarters);
    assert_eq!(
        store
            .queue_stats_total("portal", T0, T0, quarter)
            .await
            .expect("total of nothing"),
        QueueCounters::default()
    );

    let hours = queue_counters(store, "portal", T0 - HOUR, T0 + HOUR, StatsInterval::Hour).await;
    assert_eq!(hours.len(), 2);
    assert_eq!(hours[0], (T0 - HOUR, QueueCounters::default()));
    assert_eq!(hours[1], (T0, both_quarters));

    let days = queue_counters(store, "portal", T0, T0 + HOUR, StatsInterval::Day).await;
    assert_eq!(
        days,
        [(
            DAY0,
            QueueCounters {
                offered: 4,
                answered: 2,
                answered_within_20s: 1,
                abandoned: 1,
                abandoned_after_5s: 1,
                answer_wait_ms: 42_000,
                callbacks: 1,
                ..QueueCounters::default()
            }
        )]
    );
}

pub async fn each_queue_counts_its_own_calls(store: &dyn Store) {
    record(store, "portal", &[(QueueStatEvent::Offered, T0)]).await;
    record(
        store,
        "registration",
        &[
            (QueueStatEvent::Offered, T0),
            (QueueStatEvent::Offered, T0 + SECOND),
        ],
    )
    .await;
    let day = |queue| queue_counters(store, queue, T0, T0 + 1, StatsInterval::Day);
    assert_eq!(day("portal").await[0].1.offered, 1);
    assert_eq!(day("registration").await[0].1.offered, 2);
    assert_eq!(day("never_used").await, [(DAY0, QueueCounters::default())]);
}

pub async fn a_range_over_several_days_has_a_bucket_for_each_day(store: &dyn Store) {
    record(
        store,
        "portal",
        &[
            (QueueStatEvent::Offered, T0 - DAY),
            (QueueStatEvent::Offered, T0 + DAY),
            (QueueStatEvent::Offered, T0 + DAY + HOUR),
        ],
    )
    .await;
    let offered: Vec<(i64, u64)> =
        queue_counters(store, "portal", T0 - DAY, T0 + DAY, StatsInterval::Day)
            .await
            .into_iter()
            .map(|(start, counters)| (start, counters.offered))
            .collect();
    assert_eq!(
        offered,
        [(DAY0 - DAY, 1), (DAY0, 0), (DAY0 + DAY, 2)],
        "the bucket holding the range's end is read when the range reaches into it"
    );
    assert!(
        store
            .queue_stats("portal", T0, T0, StatsInterval::Day)
            .await
            .expect("empty range")
            .is_empty()
    );
}

pub async fn call_outcomes_are_counted_apart_from_queues(store: &dyn Store) {
    for (outcome, at) in [
        (CallOutcomeStat::Contained, T0),
        (CallOutcomeStat::Contained, T0 + MINUTE),
        (CallOutcomeStat::Routed, T0 + 2 * MINUTE),
        (CallOutcomeStat::VerificationPassed, T0 + 16 * MINUTE),
        (CallOutcomeStat::VerificationFailed, T0 + 17 * MINUTE),
        (CallOutcomeStat::VerificationPassed, T0 + 18 * MINUTE),
    ] {
        store
            .record_call_outcome(outcome, at)
            .await
            .expect("record an outcome");
    }
    let intervals: Vec<(i64, CallCounters)> = store
        .call_outcome_stats(T0, T0 + 30 * MINUTE, StatsInterval::FifteenMinutes)
        .await
        .expect("call stats")
        .into_iter()
        .map(|bucket| (bucket.start_ms, bucket.counters))
        .collect();
    assert_eq!(
        intervals,
        [
            (
                T0,
                CallCounters {
                    contained: 2,
                    routed: 1,
                    ..CallCounters::default()
                }
            ),
            (
                T0 + 15 * MINUTE,
                CallCounters {
                    verification_passed: 2,
                    verification_failed: 1,
                    ..CallCounters::default()
                }
            ),
        ]
    );
    let day = store
        .call_outcome_stats(T0, T0 + 1, StatsInterval::Day)
        .await
        .expect("call stats");
    assert_eq!(
        day[0].counters,
        CallCounters {
            contained: 2,
            routed: 1,
            verification_passed: 2,
            verification_failed: 1,
        }
    );
    assert_eq!(
        queue_counters(store, "portal", T0, T0 + 1, StatsInterval::Day).await,
        [(DAY0, QueueCounters::default())]
    );
}

// --- identity ---

pub async fn verification_failures_count_in_a_sliding_window(store: &dyn Store) {
    let record = "rec-7f3a";
    let mut counts = Vec::new();
    for at in [T0, T0 + HOUR, T0 + 2 * HOUR] {
        counts.push(
            store
                .record_verification_failure(record, DAY, at)
                .await
                .expect("failure"),
        );
    }
    assert_eq!(counts, [1, 2, 3]);
    let failures = |now| store.verification_failures(record, DAY, now);
    assert_eq!(failures(T0 + 2 * HOUR).await.expect("count"), 3);
    assert_eq!(failures(T0 + DAY - 1).await.expect("count"), 3);
    assert_eq!(
        failures(T0 + DAY).await.expect("count"),
        2,
        "a day old: out"
    );
    assert_eq!(
        store
            .record_verification_failure(record, DAY, T0 + DAY + HOUR)
            .await
            .expect("failure"),
        2,
        "the two oldest have slid out, this one counts"
    );
    assert_eq!(failures(T0 + 3 * DAY).await.expect("count"), 0);
}

pub async fn failures_at_the_same_instant_all_count(store: &dyn Store) {
    for expected in 1..=5 {
        let count = store
            .record_verification_failure("rec-1", DAY, T0)
            .await
            .expect("failure");
        assert_eq!(count, expected);
    }
}

pub async fn failures_are_counted_per_record_and_cleared_by_an_agent(store: &dyn Store) {
    for _ in 0..5 {
        store
            .record_verification_failure("rec-locked", DAY, T0)
            .await
            .expect("failure");
    }
    store
        .record_verification_failure("rec-other", DAY, T0)
        .await
        .expect("failure");
    assert_eq!(
        store
            .verification_failures("rec-locked", DAY, T0)
            .await
            .expect("count"),
        5
    );
    assert_eq!(
        store
            .verification_failures("rec-other", DAY, T0)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .verification_failures("rec-never", DAY, T0)
            .await
            .expect("count"),
        0
    );
    store
        .clear_verification_failures("rec-locked")
        .await
        .expect("clear");
    assert_eq!(
        store
            .verification_failures("rec-locked", DAY, T0)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        store
            .verification_failures("rec-other", DAY, T0)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .record_verification_failure("rec-locked", DAY, T0 + SECOND)
            .await
            .expect("failure"),
        1
    );
}

const TEN_MINUTES: i64 = 600_000;

pub async fn a_reset_code_works_once(store: &dyn Store) {
    store
        .put_reset_code("pt-1", "hash-good", 5, T0 + TEN_MINUTES)
        .await
        .expect("put");
    assert_eq!(
        store
            .check_reset_code("pt-1", "hash-good", T0 + SECOND)
            .await
            .expect("check"),
        CodeCheck::Valid {
            patient_ref: "pt-1".to_owned()
        }
    );
    assert_eq!(
        store
            .check_reset_code("pt-1", "hash-good", T0 + 2 * SECOND)
            .await
            .expect("check"),
        CodeCheck::NoCode
    );
    assert_eq!(
        store
            .check_reset_code("pt-2", "hash-good", T0)
            .await
            .expect("check"),
        CodeCheck::NoCode
    );
}

pub async fn wrong_codes_use_up_the_checks_then_the_code_is_void(store: &dyn Store) {
    store
        .put_reset_code("pt-1", "hash-good", 3, T0 + TEN_MINUTES)
        .await
        .expect("put");
    let mut left = Vec::new();
    for _ in 0..3 {
        left.push(
            store
                .check_reset_code("pt-1", "hash-wrong", T0 + SECOND)
                .await
                .expect("check"),
        );
    }
    assert_eq!(
        left,
        [
            CodeCheck::Wrong { checks_left: 2 },
            CodeCheck::Wrong { checks_left: 1 },
            CodeCheck::Wrong { checks_left: 0 }
        ]
    );
    assert_eq!(
        store
            .check_reset_code("pt-1", "hash-good", T0 + 2 * SECOND)
            .await
            .expect("check"),
        CodeCheck::NoCode,
        "even the right code is refused once the checks are used up"
    );
}

pub async fn a_right_code_after_wrong_ones_still_works(store: &dyn Store) {
    store
        .put_reset_code("pt-1", "hash-good", 5, T0 + TEN_MINUTES)
        .await
        .expect("put");
    for expected in [4, 3, 2, 1] {
        assert_eq!(
            store
                .check_reset_code("pt-1", "hash-wrong", T0)
                .await
                .expect("check"),
            CodeCheck::Wrong {
                checks_left: expected
            }
        );
    }
    assert!(matches!(
        store
            .check_reset_code("pt-1", "hash-good", T0)
            .await
            .expect("check"),
        CodeCheck::Valid { .. }
    ));
}

pub async fn a_reset_code_expires(store: &dyn Store) {
    store
        .put_reset_code("pt-1", "hash-good", 5, T0 + TEN_MINUTES)
        .await
        .expect("put");
    assert_eq!(
        store
            .check_reset_code("pt-1", "hash-good", T0 + TEN_MINUTES)
            .await
            .expect("check"),
        CodeCheck::NoCode
    );
    store
        .put_reset_code("pt-2", "hash-good", 5, T0 + TEN_MINUTES)
        .await
        .expect("put");
    assert!(matches!(
        store
            .check_reset_code("pt-2", "hash-good", T0 + TEN_MINUTES - 1)
            .await
            .expect("check"),
        CodeCheck::Valid { .. }
    ));
}

pub async fn a_new_code_replaces_the_old_one(store: &dyn Store) {
    store
        .put_reset_code("pt-1", "hash-first", 5, T0 + TEN_MINUTES)
        .await
        .expect("put");
    store
        .check_reset_code("pt-1", "hash-wrong", T0)
        .await
        .expect("check");
    store
        .put_reset_code("pt-1", "hash-second", 5, T0 + 2 * TEN_MINUTES)
        .await
        .expect("put again");
    assert_eq!(
        store
            .check_reset_code("pt-1", "hash-first", T0)
            .await
            .expect("check"),
        CodeCheck::Wrong { checks_left: 4 },
        "the first code no longer works, and the checks started afresh"
    );
    assert!(matches!(
        store
            .check_reset_code("pt-1", "hash-second", T0 + TEN_MINUTES + SECOND)
            .await
            .expect("check"),
        CodeCheck::Valid { .. }
    ));
    store
        .put_reset_code("pt-1", "hash-third", 0, T0 + TEN_MINUTES)
        .await
        .expect("put with no checks");
    assert_eq!(
        store
            .check_reset_code("pt-1", "hash-third", T0)
            .await
            .expect("check"),
        CodeCheck::NoCode
    );
}

// --- callbacks ---

fn callback(id: &str, place_ms: i64, due_at_ms: i64) -> CallbackRequest {
    CallbackRequest {
        id: id.to_owned(),
        queue: "portal".to_owned(),
        number: "+13125550147".to_owned(),
        call_sid: format!("CA-{id}"),
        requested_at_ms: T0,
        place_ms,
        due_at_ms,
        status: CallbackStatus::Pending,
        completed_at_ms: None,
        ..CallbackRequest::default()
    }
}

async fn callback_ids(store: &dyn Store) -> Vec<String> {
    store
        .callbacks()
        .await
        .expect("callbacks")
        .into_iter()
        .map(|request| request.id)
        .collect()
}

pub async fn a_callback_request_is_kept_as_asked(store: &dyn Store) {
    assert!(store.callbacks().await.expect("callbacks").is_empty());
    let mut request = callback("cb1", T0 - 5 * SECOND, T0);
    request.number = "3125550147".to_owned();
    request.requested_at_ms = T0 - SECOND;
    store.add_callback(&request).await.expect("add");
    assert_eq!(store.callbacks().await.expect("callbacks"), [request]);
}

pub async fn adding_a_callback_again_changes_nothing(store: &dyn Store) {
    let first = callback("cb1", T0, T0);
    store.add_callback(&first).await.expect("add");
    let mut again = first.clone();
    again.number = "+13125550199".to_owned();
    again.due_at_ms = T0 + HOUR;
    store.add_callback(&again).await.expect("add again");
    assert_eq!(
        store.callbacks().await.expect("callbacks"),
        std::slice::from_ref(&first)
    );

    // Nor does it reopen one that was returned.
    assert!(
        store
            .complete_callback("cb1", T0 + HOUR)
            .await
            .expect("done")
    );
    store.add_callback(&first).await.expect("add after done");
    let listed = store.callbacks().await.expect("callbacks");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, CallbackStatus::Done);
}

pub async fn callbacks_are_listed_by_when_they_are_due_then_by_place(store: &dyn Store) {
    for request in [
        // Due when the desk opens tomorrow.
        callback("tomorrow", T0 - 2 * HOUR, T0 + DAY),
        // Due now; the caller who was in line earlier first.
        callback("later_in_line", T0 - 10 * SECOND, T0),
        callback("earlier_in_line", T0 - 60 * SECOND, T0),
        callback("due_soon", T0, T0 + HOUR),
    ] {
        store.add_callback(&request).await.expect("add");
    }
    assert_eq!(
        callback_ids(store).await,
        ["earlier_in_line", "later_in_line", "due_soon", "tomorrow"]
    );
}

pub async fn done_callbacks_come_after_every_pending_one(store: &dyn Store) {
    for request in [
        callback("first", T0 - HOUR, T0),
        callback("second", T0, T0),
        callback("next_day", T0, T0 + DAY),
    ] {
        store.add_callback(&request).await.expect("add");
    }
    assert!(
        store
            .complete_callback("first", T0 + SECOND)
            .await
            .expect("done")
    );
    assert_eq!(callback_ids(store).await, ["second", "next_day", "first"]);
}

pub async fn completing_a_callback_marks_it_done_once(store: &dyn Store) {
    store
        .add_callback(&callback("cb1", T0, T0))
        .await
        .expect("add");
    assert!(
        store
            .complete_callback("cb1", T0 + HOUR)
            .await
            .expect("done")
    );
    assert!(
        store
            .complete_callback("cb1", T0 + 2 * HOUR)
            .await
            .expect("done again"),
        "completing twice still finds the request"
    );
    let listed = store.callbacks().await.expect("callbacks");
    assert_eq!(listed[0].status, CallbackStatus::Done);
    assert_eq!(
        listed[0].completed_at_ms,
        Some(T0 + HOUR),
        "the first completion counts"
    );
    assert_eq!(listed[0].number, "+13125550147");
    assert!(
        !store.complete_callback("nope", T0).await.expect("unknown"),
        "an unknown request is not found"
    );
    assert_eq!(callback_ids(store).await, ["cb1"]);
}

pub async fn a_callback_request_is_written_whole_by_version(store: &dyn Store) {
    let mut request = callback("cb1", T0 - 5 * SECOND, T0);
    request.language = "es".to_owned();
    request.patient_ref = Some("P000101".to_owned());
    store.add_callback(&request).await.expect("add");
    assert_eq!(
        store.callback("cb1").await.expect("read").as_ref(),
        Some(&request)
    );
    assert_eq!(store.callback("nope").await.expect("read"), None);

    let mut dialing = request.clone();
    dialing.claim(NODE_A, T0 + 15 * SECOND);
    let number = dialing.start_attempt("anguyen", T0 + SECOND);
    dialing.attempt_placed(number, "CAout1");
    assert_eq!(
        store.replace_callback(&dialing, 0).await.expect("write"),
        RecordWrite::Written { version: 1 }
    );
    dialing.version = 1;
    assert_eq!(
        store.callback("cb1").await.expect("read").as_ref(),
        Some(&dialing),
        "attempts, claim and patient come back whole"
    );
    assert_eq!(
        store.replace_callback(&request, 0).await.expect("stale"),
        RecordWrite::Conflict,
        "a writer who read an older version loses"
    );
    let mut unknown = request.clone();
    unknown.id = "nope".to_owned();
    assert_eq!(
        store.replace_callback(&unknown, 0).await.expect("unknown"),
        RecordWrite::Conflict,
        "only add_callback adds"
    );

    // An agent marking it done is a write too: the dialer must read again.
    assert!(
        store
            .complete_callback("cb1", T0 + HOUR)
            .await
            .expect("done")
    );
    assert_eq!(
        store.replace_callback(&dialing, 1).await.expect("stale"),
        RecordWrite::Conflict
    );
    let done = store.callback("cb1").await.expect("read").expect("kept");
    assert_eq!(done.status, CallbackStatus::Done);
    assert_eq!(done.version, 2);
    assert_eq!(done.attempts, dialing.attempts, "the attempts are kept");
    assert!(done.claimed_by.is_empty());
}

pub async fn a_failed_callback_can_still_be_marked_done(store: &dyn Store) {
    let mut request = callback("cb1", T0, T0);
    store.add_callback(&request).await.expect("add");
    let number = request.start_attempt("anguyen", T0);
    request.finish_attempt(number, AttemptOutcome::NoAnswer, T0 + SECOND, 0, 1);
    assert_eq!(request.status, CallbackStatus::Failed);
    store.replace_callback(&request, 0).await.expect("write");
    let listed = store.callbacks().await.expect("callbacks");
    assert_eq!(listed[0].status, CallbackStatus::Failed);
    assert_eq!(listed[0].completed_at_ms, Some(T0 + SECOND));
    assert!(
        store
            .complete_callback("cb1", T0 + HOUR)
            .await
            .expect("done")
    );
    let done = store.callback("cb1").await.expect("read").expect("kept");
    assert_eq!(done.status, CallbackStatus::Done);
    assert_eq!(done.completed_at_ms, Some(T0 + HOUR));
}

pub async fn a_callback_waits_in_its_queue_as_a_call_that_names_it(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    let mut entry = portal_call("callback:cb1", T0 - HOUR);
    entry.callback_id = Some("cb1".to_owned());
    enqueue_all(store, &[portal_call("CA1", T0), entry.clone()]).await;
    assert_eq!(
        store.waiting("portal").await.expect("waiting")[0],
        entry,
        "at its place, flag included"
    );
    let reservation = store
        .reserve(
            "portal",
            NODE_A,
            &ids(&["anguyen"]),
            Strategy::LongestIdle,
            T0 + SECOND,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(reservation.call, entry);
}

pub async fn a_call_record_keeps_its_path_and_patient_through_renewals(store: &dyn Store) {
    let mut record = call_record("CA1", T0);
    record.phase = CallPhase::Menus;
    record.stream_node = NODE_A.to_owned();
    record.lease_until_ms = T0 + 10 * SECOND;
    for node in ["main", "verify", "reset"] {
        record.moved_to(node);
    }
    record.patient_ref = Some("P000101".to_owned());
    write(store, &mut record).await;
    let mut bare = call_record("CA2", T0);
    bare.phase = CallPhase::Menus;
    bare.stream_node = NODE_A.to_owned();
    write(store, &mut bare).await;
    store
        .renew_stream_leases(NODE_A, &ids(&["CA1", "CA2"]), T0 + 20 * SECOND)
        .await
        .expect("renew");
    let read = store.call_record("CA1").await.expect("read").expect("kept");
    assert_eq!(read.path, ["main", "verify", "reset"]);
    assert_eq!(read.patient_ref.as_deref(), Some("P000101"));
    let read = store.call_record("CA2").await.expect("read").expect("kept");
    assert!(read.path.is_empty() && read.patient_ref.is_none());
}

/// One `#[tokio::test]` per check and implementation.
fn call_record(sid: &str, now_ms: i64) -> CallRecord {
    CallRecord::new(sid, "+13125550147", "hash-of-token".to_owned(), now_ms)
}

/// Write `record` over the version it carries; panics on a conflict.
async fn write(store: &dyn Store, record: &mut CallRecord) {
    match store
        .replace_call_record(record, record.version)
        .await
        .expect("write")
    {
        RecordWrite::Written { version } => record.version = version,
        RecordWrite::Conflict => panic!("unexpected conflict writing {}", record.call_sid),
    }
}

pub async fn a_call_record_is_kept_whole_and_versioned(store: &dyn Store) {
    let mut record = call_record("CA1", T0);
    record.queued = Some(portal_call("CA1", T0));
    record.next = Some(CallStep::Agent {
        agent_id: "anguyen".to_owned(),
        ring_timeout_secs: 20,
        call: portal_call("CA1", T0),
        queue_node: "portal_queue".to_owned(),
    });
    record.dial = Some(CallStep::Transfer {
        number: "+18005550100".to_owned(),
        timeout_secs: 30,
        on_failure: None,
    });
    write(store, &mut record).await;
    assert_eq!(record.version, 1);
    let stored = store.call_record("CA1").await.expect("read").expect("kept");
    assert_eq!(stored, record);
    assert_eq!(store.call_record("CA2").await.expect("read"), None);
}

pub async fn a_stale_write_loses_and_changes_nothing(store: &dyn Store) {
    let mut first = call_record("CA1", T0);
    write(store, &mut first).await;
    let mut second = first.clone();
    second.phase = CallPhase::Menus;
    write(store, &mut second).await;
    // A writer that read version 1 is too late now.
    first.phase = CallPhase::Between;
    assert_eq!(
        store.replace_call_record(&first, 1).await.expect("write"),
        RecordWrite::Conflict
    );
    // Creating a record that exists is a conflict too.
    assert_eq!(
        store.replace_call_record(&first, 0).await.expect("write"),
        RecordWrite::Conflict
    );
    let stored = store.call_record("CA1").await.expect("read").expect("kept");
    assert_eq!(stored.phase, CallPhase::Menus);
    assert_eq!(stored.version, 2);
    assert!(
        !store
            .remove_call_record("CA1", 1)
            .await
            .expect("stale remove")
    );
    assert!(store.remove_call_record("CA1", 2).await.expect("remove"));
    assert_eq!(store.call_record("CA1").await.expect("read"), None);
    assert!(store.call_records().await.expect("list").is_empty());
}

pub async fn records_past_their_deadline_are_listed_earliest_first(store: &dyn Store) {
    for (sid, deadline) in [("CA1", T0 + 30 * SECOND), ("CA2", T0), ("CA3", T0 + HOUR)] {
        let mut record = call_record(sid, T0 - HOUR);
        record.deadline_ms = deadline;
        write(store, &mut record).await;
    }
    let sids = |records: Vec<CallRecord>| -> Vec<String> {
        records.into_iter().map(|record| record.call_sid).collect()
    };
    assert_eq!(
        sids(
            store
                .expired_call_records(T0 + 30 * SECOND, 10)
                .await
                .expect("expired")
        ),
        ["CA2", "CA1"]
    );
    assert_eq!(
        sids(
            store
                .expired_call_records(T0 + 30 * SECOND, 1)
                .await
                .expect("expired")
        ),
        ["CA2"]
    );
    assert!(
        store
            .expired_call_records(T0 - 1, 10)
            .await
            .expect("expired")
            .is_empty()
    );
    assert_eq!(sids(store.call_records().await.expect("all")).len(), 3);
}

pub async fn only_the_node_carrying_a_stream_renews_its_lease(store: &dyn Store) {
    let mut ours = call_record("CA1", T0);
    ours.phase = CallPhase::Queued;
    ours.stream_node = NODE_A.to_owned();
    ours.lease_until_ms = T0 + 10 * SECOND;
    ours.deadline_ms = ours.deadline_for(T0);
    write(store, &mut ours).await;
    let mut theirs = call_record("CA2", T0);
    theirs.phase = CallPhase::Menus;
    theirs.stream_node = NODE_B.to_owned();
    theirs.lease_until_ms = T0 + 10 * SECOND;
    theirs.deadline_ms = theirs.deadline_for(T0);
    write(store, &mut theirs).await;
    let renewed = store
        .renew_stream_leases(NODE_A, &ids(&["CA1", "CA2", "CA3"]), T0 + 20 * SECOND)
        .await
        .expect("renew");
    assert_eq!(renewed, 1);
    let ours = store.call_record("CA1").await.expect("read").expect("kept");
    assert_eq!(ours.lease_until_ms, T0 + 20 * SECOND);
    assert_eq!(ours.deadline_ms, T0 + 20 * SECOND + LEASE_GRACE_MS);
    assert_eq!(
        ours.version, 2,
        "a renewal is a write: a stale writer must read again"
    );
    let theirs = store.call_record("CA2").await.expect("read").expect("kept");
    assert_eq!(theirs.lease_until_ms, T0 + 10 * SECOND);
    assert_eq!(theirs.version, 1);
}

pub async fn a_join_that_lands_after_the_caller_left_leaves_nothing(store: &dyn Store) {
    available_agents(store, &[("anguyen", T0)]).await;
    // The record says the call waits in no queue: it left (or never got in) before this
    // join reached the store.
    let mut left = call_record("CA1", T0);
    write(store, &mut left).await;
    assert_eq!(
        store
            .enqueue(&portal_call("CA1", T0))
            .await
            .expect("enqueue"),
        Enqueued::Refused
    );
    assert!(waiting_sids(store, "portal").await.is_empty());
    let candidates = ids(&["anguyen"]);
    assert_eq!(
        store
            .reserve("portal", NODE_A, &candidates, Strategy::LongestIdle, T0)
            .await
            .expect("reserve"),
        None,
        "nobody is reserved for a ghost"
    );
    // A record that says the call is queued lets the join in.
    left.queued = Some(portal_call("CA1", T0));
    write(store, &mut left).await;
    assert_eq!(
        store
            .enqueue(&portal_call("CA1", T0))
            .await
            .expect("enqueue"),
        Enqueued::Waiting
    );
    assert_eq!(waiting_sids(store, "portal").await, ["CA1"]);
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            use crate::store::memory::MemoryStore;
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&MemoryStore::new()).await;
                }
            )*
        }

        mod redis {
            use crate::store::redis::RedisStore;
            use crate::store::test_redis::TestRedis;
            $(
                #[tokio::test]
                async fn $check() {
                    let server = TestRedis::start().expect("a redis-server of our own");
                    let store = RedisStore::connect(&server.url(), "careline-test")
                        .await
                        .expect("connect to the test redis-server");
                    super::$check(&store).await;
                }
            )*
        }
    };
}

conformance!(
    calls_are_served_in_arrival_order,
    higher_priority_calls_are_served_first,
    each_queue_has_its_own_line,
    enqueueing_a_call_again_keeps_its_place,
    calls_registered_again_in_any_order_get_their_original_places,
    enqueueing_a_reserved_call_again_hands_its_reservation_to_the_new_node,
    a_call_record_is_kept_whole_and_versioned,
    a_stale_write_loses_and_changes_nothing,
    records_past_their_deadline_are_listed_earliest_first,
    only_the_node_carrying_a_stream_renews_its_lease,
    a_join_that_lands_after_the_caller_left_leaves_nothing,
    a_caller_who_hangs_up_leaves_the_queue,
    a_hang_up_during_an_offer_frees_the_agent,
    the_head_call_goes_to_the_longest_idle_agent,
    longest_idle_ties_go_to_the_smaller_id,
    each_node_dispatches_only_its_own_calls,
    nothing_is_reserved_without_a_free_agent,
    a_reserved_call_is_not_offered_again,
    round_robin_takes_turns_whatever_the_candidate_order,
    round_robin_skips_agents_who_are_not_free,
    round_robin_keeps_a_turn_per_queue,
    fewest_calls_goes_to_the_agent_with_fewest_answered_today,
    an_agent_in_wrap_up_waits_until_it_ends,
    break_or_offline_never_interrupts_a_call,
    coming_back_from_a_break_does_not_jump_the_line,
    an_answered_offer_puts_the_agent_on_the_call,
    a_finished_call_whose_answer_was_not_reported_counts_as_answered,
    a_missed_offer_puts_the_call_back_at_the_front,
    two_missed_offers_in_a_row_put_the_agent_on_break,
    an_answer_between_misses_starts_the_count_again,
    a_call_that_hung_up_during_the_offer_stays_gone,
    registering_agents_again_keeps_what_they_said,
    unknown_agents_are_reported,
    queue_events_count_in_their_day_and_their_quarter_hour,
    each_queue_counts_its_own_calls,
    a_range_over_several_days_has_a_bucket_for_each_day,
    call_outcomes_are_counted_apart_from_queues,
    the_data_epoch_holds_while_the_data_does,
    a_restored_offer_holds_the_agent_and_takes_the_call_out_of_its_queue,
    a_restored_call_in_progress_keeps_the_agent_on_it,
    verification_failures_count_in_a_sliding_window,
    failures_at_the_same_instant_all_count,
    failures_are_counted_per_record_and_cleared_by_an_agent,
    a_reset_code_works_once,
    wrong_codes_use_up_the_checks_then_the_code_is_void,
    a_right_code_after_wrong_ones_still_works,
    a_reset_code_expires,
    a_new_code_replaces_the_old_one,
    a_callback_request_is_kept_as_asked,
    adding_a_callback_again_changes_nothing,
    callbacks_are_listed_by_when_they_are_due_then_by_place,
    done_callbacks_come_after_every_pending_one,
    completing_a_callback_marks_it_done_once,
    a_callback_request_is_written_whole_by_version,
    a_failed_callback_can_still_be_marked_done,
    a_callback_waits_in_its_queue_as_a_call_that_names_it,
    a_call_record_keeps_its_path_and_patient_through_renewals,
);
