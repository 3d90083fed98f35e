//! The live-state admin API for people and calls: who may read the roster and change an agent's
//! status, what the roster says about shifts and states, and that the call list never shows a
//! caller's number.

mod common;

use std::sync::Arc;

use careline::store::test_redis::TestRedis;
use careline::store::{QueuedCall, Strategy};
use common::http::{ANGUYEN, SUPERVISOR, VIEWER, call_arrives, get, set_status};
use common::{TestServer, enqueue_announced, queued_call};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Three agents: one on an always-open shift, one on a shift that never opens, one without a
/// shift (always on shift).
const ROSTER: &str = r#"
[schedules.always]
timezone = "America/Chicago"
hours = [{ days = "mon-sun", from = "00:00", to = "24:00" }]

[schedules.never]
timezone = "America/Chicago"
hours = []

[queues.portal]

[[agents]]
id = "anguyen"
name = "An Nguyen"
skills = ["ios", "spanish"]
shift = "always"
client = "anguyen"

[[agents]]
id = "bsmith"
name = "Bea Smith"
skills = ["android"]
shift = "never"
dial = "+13125550199"

[[agents]]
id = "cdiaz"
name = "Carla Diaz"
sip = "sip:cdiaz@pbx.example.org"
"#;

async fn desk() -> TestServer {
    desk_with(|_| {}).await
}

async fn desk_with(adjust: impl FnOnce(&mut careline::server::AppState)) -> TestServer {
    common::http::start_for_every_role(ROSTER, adjust).await
}

fn agent<'a>(roster: &'a Value, id: &str) -> &'a Value {
    roster
        .as_array()
        .expect("a list of agents")
        .iter()
        .find(|agent| agent["id"] == id)
        .unwrap_or_else(|| panic!("{id} is listed"))
}

#[tokio::test]
async fn a_viewer_sees_every_configured_agent_starting_offline_and_idle() {
    let server = desk().await;
    let (status, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = roster
        .as_array()
        .expect("a list")
        .iter()
        .map(|agent| agent["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["anguyen", "bsmith", "cdiaz"]);
    let anguyen = agent(&roster, "anguyen");
    assert_eq!(anguyen["name"], "An Nguyen");
    assert_eq!(anguyen["skills"], json!(["ios", "spanish"]));
    assert_eq!(anguyen["status"], "offline");
    assert_eq!(anguyen["state"], "idle");
    assert_eq!(anguyen["calls_today"], 0);
    assert!(anguyen["time_in_state_secs"].is_u64());
}

#[tokio::test]
async fn start_up_registers_every_configured_agent_in_the_store() {
    let server = desk().await;
    let mut ids: Vec<String> = server
        .state
        .node
        .store
        .agents()
        .await
        .expect("the store answers")
        .into_iter()
        .map(|agent| agent.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["anguyen", "bsmith", "cdiaz"]);
}

#[tokio::test]
async fn the_roster_never_shows_how_an_agent_is_reached() {
    let server = desk().await;
    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    let text = roster.to_string();
    assert!(!text.contains("5550199"), "{text}");
    assert!(!text.contains("pbx.example.org"), "{text}");
}

#[tokio::test]
async fn on_shift_follows_each_agents_shift_schedule() {
    let server = desk().await;
    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(agent(&roster, "anguyen")["on_shift"], true);
    assert_eq!(agent(&roster, "bsmith")["on_shift"], false);
    assert_eq!(
        agent(&roster, "cdiaz")["on_shift"],
        true,
        "an agent without a shift is always on shift"
    );
}

#[tokio::test]
async fn a_supervisor_changes_any_agent_and_the_roster_shows_it() {
    let server = desk().await;
    let (status, changed) = set_status(
        &server,
        "bsmith",
        r#"{"status": "available"}"#,
        Some(SUPERVISOR),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["id"], "bsmith");
    assert_eq!(changed["status"], "available");
    assert_eq!(changed["state"], "idle");

    let (status, _) =
        set_status(&server, "cdiaz", r#"{"status": "break"}"#, Some(SUPERVISOR)).await;
    assert_eq!(status, StatusCode::OK);

    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(agent(&roster, "bsmith")["status"], "available");
    assert_eq!(agent(&roster, "cdiaz")["status"], "break");
    assert_eq!(agent(&roster, "anguyen")["status"], "offline");
}

#[tokio::test]
async fn an_agent_changes_only_their_own_status() {
    let server = desk().await;
    let (status, changed) = set_status(
        &server,
        "anguyen",
        r#"{"status": "available"}"#,
        Some(ANGUYEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["status"], "available");

    let (status, _) =
        set_status(&server, "bsmith", r#"{"status": "offline"}"#, Some(ANGUYEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, roster) = get(&server, "/api/v1/agents", Some(ANGUYEN)).await;
    assert_eq!(agent(&roster, "bsmith")["status"], "offline");
    assert_eq!(agent(&roster, "anguyen")["status"], "available");
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_change_anyone() {
    let server = desk().await;
    let (status, _) = set_status(
        &server,
        "anguyen",
        r#"{"status": "available"}"#,
        Some(VIEWER),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(agent(&roster, "anguyen")["status"], "offline");
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_refused_everywhere() {
    let server = desk().await;
    for token in [None, Some("not-a-token-anyone-was-given")] {
        let (status, _) = get(&server, "/api/v1/agents", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get(&server, "/api/v1/calls", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = set_status(&server, "anguyen", r#"{"status": "available"}"#, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn an_unknown_agent_is_not_found() {
    let server = desk().await;
    let (status, body) = set_status(
        &server,
        "zzed",
        r#"{"status": "available"}"#,
        Some(SUPERVISOR),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn a_status_careline_does_not_know_is_refused_naming_the_accepted_ones() {
    let server = desk().await;
    for body in [
        r#"{"status": "lunch"}"#,
        r#"{"state": "available"}"#,
        "available",
        "",
    ] {
        let (status, answer) = set_status(&server, "anguyen", body, Some(SUPERVISOR)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = answer["error"].as_str().expect("an error message");
        for accepted in ["available", "break", "offline"] {
            assert!(message.contains(accepted), "{message}");
        }
    }
    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(agent(&roster, "anguyen")["status"], "offline");
}

#[tokio::test]
async fn the_call_list_shows_a_call_in_progress_with_only_the_last_two_digits() {
    let server = desk().await;
    let (_, calls) = get(&server, "/api/v1/calls", Some(VIEWER)).await;
    assert_eq!(calls, json!([]));

    call_arrives(&server, "CA0123", "+13125550147").await;

    let (status, calls) = get(&server, "/api/v1/calls", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    let text = calls.to_string();
    assert!(!text.contains("5550147"), "{text}");
    let calls = calls.as_array().expect("a list of calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["call_sid"], "CA0123");
    assert_eq!(calls[0]["state"], "connecting");
    assert_eq!(calls[0]["caller_id"], "•••••••••47");
    assert!(calls[0]["since_secs"].is_u64());
}

#[tokio::test]
async fn an_unreachable_store_is_reported_rather_than_an_empty_roster() {
    // A port nobody listens on: the store's operations fail, start-up and the IVR do not.
    let store = common::redis::unreachable_store();
    let server = desk_with(|state| state.node.store = Arc::new(store)).await;
    let (status, body) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| message.contains("unreachable")),
        "{body}"
    );
    let (status, _) = set_status(
        &server,
        "anguyen",
        r#"{"status": "available"}"#,
        Some(SUPERVISOR),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = get(&server, "/api/v1/calls", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK, "the call list needs no store");
}

fn queued(call_sid: &str, enqueued_at_ms: i64) -> QueuedCall {
    queued_call(call_sid, "portal", "this-node", enqueued_at_ms)
}

#[tokio::test]
async fn the_lists_follow_a_call_from_the_queue_to_an_agent_and_into_wrap_up() {
    let server = desk().await;
    let store = server.state.node.store.clone();
    let now_ms = jiff::Timestamp::now().as_millisecond();
    call_arrives(&server, "CA-first", "+13125550101").await;
    call_arrives(&server, "CA-second", "+13125550102").await;
    enqueue_announced(store.as_ref(), &queued("CA-first", now_ms - 90_000)).await;
    enqueue_announced(store.as_ref(), &queued("CA-second", now_ms - 30_000)).await;

    let (_, calls) = get(&server, "/api/v1/calls", Some(VIEWER)).await;
    assert_eq!(calls[0]["call_sid"], "CA-first");
    assert_eq!(calls[0]["state"], "queued");
    assert_eq!(calls[0]["queue"], "portal");
    assert_eq!(calls[0]["position"], 1);
    assert!(calls[0]["wait_secs"].as_i64().expect("a wait") >= 90);
    assert_eq!(calls[1]["position"], 2);

    set_status(
        &server,
        "cdiaz",
        r#"{"status": "available"}"#,
        Some(SUPERVISOR),
    )
    .await;
    let reservation = store
        .reserve(
            "portal",
            "this-node",
            &["cdiaz".to_owned()],
            Strategy::LongestIdle,
            now_ms,
        )
        .await
        .expect("reserve")
        .expect("cdiaz is free");
    assert_eq!(reservation.call.call_sid, "CA-first");

    let (_, calls) = get(&server, "/api/v1/calls", Some(VIEWER)).await;
    assert_eq!(calls[0]["state"], "offered");
    assert_eq!(calls[0]["agent"], "cdiaz");
    assert_eq!(calls[1]["state"], "queued");
    assert_eq!(calls[1]["position"], 1);
    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(agent(&roster, "cdiaz")["state"], "reserved");
    assert_eq!(agent(&roster, "cdiaz")["call_sid"], "CA-first");

    store
        .offer_answered("cdiaz", "CA-first", now_ms)
        .await
        .expect("answered");
    let (_, calls) = get(&server, "/api/v1/calls", Some(VIEWER)).await;
    assert_eq!(calls[0]["state"], "with_agent");
    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(agent(&roster, "cdiaz")["state"], "on_call");
    assert_eq!(agent(&roster, "cdiaz")["calls_today"], 1);

    store
        .call_finished("cdiaz", "CA-first", now_ms + 600_000, now_ms)
        .await
        .expect("finished");
    let (_, roster) = get(&server, "/api/v1/agents", Some(VIEWER)).await;
    let cdiaz = agent(&roster, "cdiaz");
    assert_eq!(cdiaz["state"], "wrap_up");
    assert_eq!(cdiaz["status"], "available");
    assert!(cdiaz["time_in_state_secs"].is_null());
    assert!(cdiaz["wrap_up_left_secs"].as_i64().expect("time left") > 0);
    assert_eq!(cdiaz["calls_today"], 1);
}

/// Two careline nodes sharing one Redis, each with the roster's agents unknown to Redis (the
/// store is swapped in after start-up, as if Redis had been down then).
async fn two_nodes_on(redis: &TestRedis) -> (TestServer, TestServer) {
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let store = common::redis::store(redis, "careline-agents-test").await;
        nodes.push(desk_with(|state| state.node.store = Arc::new(store)).await);
    }
    let second = nodes.pop().expect("two nodes");
    let first = nodes.pop().expect("two nodes");
    (first, second)
}

#[tokio::test]
async fn every_node_on_one_redis_shows_the_same_roster_even_after_redis_lost_its_data() {
    let mut redis = common::redis::start();
    let (first, second) = two_nodes_on(&redis).await;

    let (status, _) = set_status(
        &first,
        "anguyen",
        r#"{"status": "available"}"#,
        Some(ANGUYEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, roster) = get(&second, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(agent(&roster, "anguyen")["status"], "available");
    assert_eq!(agent(&roster, "bsmith")["status"], "offline");

    redis.stop();
    let (status, _) = get(&second, "/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    redis
        .start_again()
        .expect("redis-server starts again, empty");
    let mut roster = Value::Null;
    // The client reconnects on its own; give it a few tries rather than a fixed sleep.
    for _ in 0..50 {
        let (status, body) = get(&second, "/api/v1/agents", Some(VIEWER)).await;
        if status == StatusCode::OK {
            roster = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ids: Vec<&str> = roster
        .as_array()
        .expect("the roster is back once Redis is")
        .iter()
        .map(|agent| agent["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["anguyen", "bsmith", "cdiaz"]);
    assert_eq!(
        agent(&roster, "anguyen")["status"],
        "offline",
        "Redis forgot the status, so the agent sets it again"
    );
    let (status, changed) = set_status(
        &first,
        "anguyen",
        r#"{"status": "break"}"#,
        Some(SUPERVISOR),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["status"], "break");
}

#[tokio::test]
async fn an_agents_workspace_is_theirs_or_a_supervisors_and_names_their_call() {
    let server = desk().await;
    let path = "/api/v1/agents/anguyen/workspace";
    assert_eq!(get(&server, path, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&server, path, Some(VIEWER)).await.0,
        StatusCode::FORBIDDEN,
        "a wallboard token never sees a patient"
    );
    assert_eq!(
        get(&server, "/api/v1/agents/bsmith/workspace", Some(ANGUYEN))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "nor does another agent"
    );
    let (status, mine) = get(&server, path, Some(ANGUYEN)).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["agent"]["id"], "anguyen");
    assert_eq!(mine["call"], Value::Null);
    let (status, theirs) = get(&server, path, Some(SUPERVISOR)).await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(
        get(&server, "/api/v1/agents/nobody/workspace", Some(SUPERVISOR))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&server, "/api/v1/me", Some(ANGUYEN)).await.1,
        json!({"role": "agent", "agent_id": "anguyen"})
    );
    assert_eq!(
        get(&server, "/api/v1/me", Some(VIEWER)).await.1,
        json!({"role": "viewer"})
    );
}
