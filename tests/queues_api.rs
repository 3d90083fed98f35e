//! The queue board, statistics history and Prometheus metrics as a supervisor's tools see them:
//! `GET /api/v1/queues` with calls waiting and agents in every state, `GET /api/v1/stats` over
//! days and quarter hours, `GET /metrics` in the text format, and who may read each.

mod common;

use std::sync::Arc;

use careline::admin::access::AccessPolicy;
use careline::server::AppState;
use careline::store::{AgentStatus, CallOutcomeStat, QueueStatEvent, QueuedCall, Store, Strategy};
use common::http::{ANGUYEN, SUPERVISOR, VIEWER, call_arrives, get, get_text};
use common::{TestServer, queued_call};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Two queues: `portal` (skill portal, counted in UTC) and `spanish` (portal + spanish, on a
/// Chicago schedule, so "today" is a Chicago day). Six agents, one for each board state.
const DESK: &str = r#"
[schedules.chicago]
timezone = "America/Chicago"
hours = [{ days = "mon-sun", from = "00:00", to = "24:00" }]

[queues.portal]
skills = ["portal"]

[queues.spanish]
skills = ["portal", "spanish"]
schedule = "chicago"
when_closed = "goodbye"

[[agents]]
id = "anguyen"
name = "An Nguyen"
skills = ["portal", "spanish"]
client = "anguyen"

[[agents]]
id = "bsmith"
name = "Bea Smith"
skills = ["portal"]
client = "bsmith"

[[agents]]
id = "cdiaz"
name = "Carla Diaz"
skills = ["portal"]
client = "cdiaz"

[[agents]]
id = "dlee"
name = "Dan Lee"
skills = ["portal"]
client = "dlee"

[[agents]]
id = "eford"
name = "Eve Ford"
skills = ["portal"]
client = "eford"

[[agents]]
id = "fgray"
name = "Fay Gray"
skills = ["portal", "spanish"]
client = "fgray"
"#;

/// Calls are put in by a node that is not this server, so nothing here dispatches them.
const OTHER_NODE: &str = "another-node";

async fn desk_with(adjust: impl FnOnce(&mut AppState)) -> TestServer {
    common::http::start_for_every_role(DESK, adjust).await
}

async fn desk() -> TestServer {
    desk_with(|_| {}).await
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn call(sid: &str, queue: &str, enqueued_at_ms: i64) -> QueuedCall {
    queued_call(sid, queue, OTHER_NODE, enqueued_at_ms)
}

/// Offer a fresh call in `portal` to `agent` (made available first).
async fn reserve_for(store: &dyn Store, agent: &str, sid: &str) {
    let now = now_ms();
    store
        .set_agent_status(agent, AgentStatus::Available, now)
        .await
        .expect("available");
    store
        .enqueue(&call(sid, "portal", now))
        .await
        .expect("enqueue");
    let reservation = store
        .reserve(
            "portal",
            OTHER_NODE,
            &[agent.to_owned()],
            Strategy::LongestIdle,
            now,
        )
        .await
        .expect("reserve")
        .expect("the agent is free");
    assert_eq!(reservation.call.call_sid, sid);
}

/// anguyen reserved, bsmith available, cdiaz on a call (then on break), dlee on break, eford
/// offline, fgray in wrap-up; two calls waiting in `portal`, 95 s and 30 s.
async fn staff_the_desk(store: &dyn Store) {
    let now = now_ms();
    reserve_for(store, "anguyen", "CA-offered").await;
    store
        .set_agent_status("bsmith", AgentStatus::Available, now)
        .await
        .expect("available");
    reserve_for(store, "cdiaz", "CA-talking").await;
    store
        .offer_answered("cdiaz", "CA-talking", now)
        .await
        .expect("answer");
    store
        .set_agent_status("cdiaz", AgentStatus::Break, now)
        .await
        .expect("break after this call");
    store
        .set_agent_status("dlee", AgentStatus::Break, now)
        .await
        .expect("break");
    reserve_for(store, "fgray", "CA-done").await;
    store
        .offer_answered("fgray", "CA-done", now)
        .await
        .expect("answer");
    store
        .call_finished("fgray", "CA-done", now + 600_000, now)
        .await
        .expect("finish");
    store
        .enqueue(&call("CA-early", "portal", now - 95_000))
        .await
        .expect("enqueue");
    store
        .enqueue(&call("CA-later", "portal", now - 30_000))
        .await
        .expect("enqueue");
}

/// Today in `portal`: 4 offered, answered after 10 s and 30 s, one abandoned after 8 s, one
/// callback.
async fn a_morning_in_portal(store: &dyn Store) {
    let now = now_ms();
    for event in [
        QueueStatEvent::Offered,
        QueueStatEvent::Offered,
        QueueStatEvent::Offered,
        QueueStatEvent::Offered,
        QueueStatEvent::Answered { wait_ms: 10_000 },
        QueueStatEvent::Answered { wait_ms: 30_000 },
        QueueStatEvent::Abandoned { wait_ms: 8_000 },
        QueueStatEvent::CallbackRequested,
    ] {
        store
            .record_queue_stat("portal", event, now)
            .await
            .expect("record");
    }
}

fn queue<'a>(board: &'a Value, name: &str) -> &'a Value {
    board
        .as_array()
        .expect("a list of queues")
        .iter()
        .find(|queue| queue["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed in {board}"))
}

async fn the_board_shows_waiting_calls_agents_by_state_and_today(server: &TestServer) {
    let store = server.state.node.store.as_ref();
    staff_the_desk(store).await;
    a_morning_in_portal(store).await;

    let (status, board) = get(server, "/api/v1/queues", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let names: Vec<&str> = board
        .as_array()
        .expect("a list")
        .iter()
        .map(|queue| queue["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["portal", "spanish"]);

    let portal = queue(&board, "portal");
    assert_eq!(portal["waiting"], 2);
    let longest = portal["longest_wait_secs"].as_i64().expect("seconds");
    assert!(
        longest >= 95,
        "the earliest caller has waited 95 s: {longest}"
    );
    assert_eq!(
        portal["agents"],
        json!({
            "available": 1, "reserved": 1, "on_call": 1,
            "wrap_up": 1, "break": 1, "offline": 1
        }),
        "cdiaz went on break during a call and still counts as on it"
    );
    let today = &portal["today"];
    assert_eq!(today["offered"], 4);
    assert_eq!(today["answered"], 2);
    assert_eq!(today["abandoned"], 1);
    assert_eq!(today["callbacks"], 1);
    assert_eq!(today["service_level"], json!(1.0 / 3.0));
    assert_eq!(today["asa_secs"], json!(20.0));
    assert_eq!(today["abandon_rate"], json!(0.25));
    assert_eq!(today["timezone"], "UTC");

    let spanish = queue(&board, "spanish");
    assert_eq!(spanish["waiting"], 0);
    assert_eq!(spanish["longest_wait_secs"], 0);
    assert_eq!(
        spanish["agents"],
        json!({
            "available": 0, "reserved": 1, "on_call": 0,
            "wrap_up": 1, "break": 0, "offline": 0
        }),
        "only agents with both skills serve spanish"
    );
    let today = &spanish["today"];
    assert_eq!(today["offered"], 0);
    assert_eq!(today["service_level"], Value::Null);
    assert_eq!(today["asa_secs"], Value::Null);
    assert_eq!(today["abandon_rate"], Value::Null);
    assert_eq!(today["timezone"], "America/Chicago");
    let chicago_date = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("America/Chicago").expect("tz"))
        .date()
        .to_string();
    assert_eq!(today["date"], chicago_date.as_str());
}

#[tokio::test]
async fn the_board_shows_waiting_calls_agents_by_state_and_today_in_memory() {
    let server = desk().await;
    the_board_shows_waiting_calls_agents_by_state_and_today(&server).await;
}

#[tokio::test]
async fn the_board_shows_waiting_calls_agents_by_state_and_today_in_redis() {
    let redis = common::redis::start();
    let store = common::redis::store(&redis, "careline-test").await;
    let server = desk_with(|state| state.node.store = Arc::new(store)).await;
    server
        .state
        .node
        .store
        .register_agents(
            &server
                .state
                .node
                .roster()
                .agents
                .iter()
                .map(|agent| agent.id.clone())
                .collect::<Vec<_>>(),
            now_ms(),
        )
        .await
        .expect("register");
    the_board_shows_waiting_calls_agents_by_state_and_today(&server).await;
}

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

/// Midnight UTC three days ago: recent enough that the store still keeps its hours and quarter
/// hours (40 days).
fn recorded_day() -> i64 {
    let now = now_ms();
    now - now.rem_euclid(DAY) - 3 * DAY
}

fn timestamp(at_ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(at_ms).expect("a representable time")
}

/// RFC 3339 in UTC, as the API writes times in UTC.
fn utc(at_ms: i64) -> String {
    timestamp(at_ms).to_string()
}

/// RFC 3339 with the Chicago offset of the moment, as the API writes Chicago times.
fn in_chicago(at_ms: i64) -> String {
    let chicago = jiff::tz::TimeZone::get("America/Chicago").expect("tz");
    let at = timestamp(at_ms);
    at.display_with_offset(chicago.to_offset(at)).to_string()
}

/// Two recorded days, from the UTC midnight of [`recorded_day`]: in `portal` 2 offered, 1
/// answered, 1 abandoned the first morning and a callback the next; in `spanish` 1 answered.
async fn a_recorded_week(store: &dyn Store) {
    let day = recorded_day();
    let events = [
        ("portal", QueueStatEvent::Offered, day + 9 * HOUR),
        (
            "portal",
            QueueStatEvent::Answered { wait_ms: 15_000 },
            day + 9 * HOUR + MINUTE,
        ),
        (
            "portal",
            QueueStatEvent::Offered,
            day + 9 * HOUR + 20 * MINUTE,
        ),
        (
            "portal",
            QueueStatEvent::Abandoned { wait_ms: 60_000 },
            day + 9 * HOUR + 21 * MINUTE,
        ),
        (
            "spanish",
            QueueStatEvent::Offered,
            day + 9 * HOUR + 5 * MINUTE,
        ),
        (
            "spanish",
            QueueStatEvent::Answered { wait_ms: 45_000 },
            day + 9 * HOUR + 6 * MINUTE,
        ),
        (
            "portal",
            QueueStatEvent::Offered,
            day + 24 * HOUR + 10 * HOUR,
        ),
        (
            "portal",
            QueueStatEvent::CallbackRequested,
            day + 24 * HOUR + 10 * HOUR,
        ),
    ];
    for (queue, event, at) in events {
        store
            .record_queue_stat(queue, event, at)
            .await
            .expect("record");
    }
    for (outcome, at) in [
        (CallOutcomeStat::Contained, day + 9 * HOUR),
        (CallOutcomeStat::Routed, day + 9 * HOUR),
        (CallOutcomeStat::Routed, day + 9 * HOUR + 20 * MINUTE),
        (CallOutcomeStat::VerificationPassed, day + 9 * HOUR),
    ] {
        store
            .record_call_outcome(outcome, at)
            .await
            .expect("record");
    }
}

#[tokio::test]
async fn history_by_day_lists_every_day_with_its_figures_and_a_total() {
    let server = desk().await;
    a_recorded_week(server.state.node.store.as_ref()).await;
    let day = recorded_day();
    let date = |at_ms: i64| utc(at_ms)[..10].to_owned();
    let (status, history) = get(
        &server,
        &format!(
            "/api/v1/stats?queue=portal&from={}&to={}&interval=day",
            date(day),
            date(day + DAY)
        ),
        Some(VIEWER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["queue"], "portal");
    assert_eq!(history["timezone"], "UTC", "portal has no schedule");
    assert_eq!(history["interval"], "day");
    assert_eq!(history["from"], utc(day));
    assert_eq!(history["to"], utc(day + 2 * DAY));
    assert_eq!(
        history["buckets"],
        json!([
            {
                "start": utc(day), "end": utc(day + DAY),
                "offered": 2, "answered": 1, "abandoned": 1, "handled": 1, "callbacks": 0,
                "service_level": 0.5, "asa_secs": 15.0, "abandon_rate": 0.5,
                "ivr_containment": 1.0 / 3.0, "verification_pass_rate": 1.0,
                "callback_attempts": 0, "callbacks_connected": 0, "callbacks_failed": 0
            },
            {
                "start": utc(day + DAY), "end": utc(day + 2 * DAY),
                "offered": 1, "answered": 0, "abandoned": 0, "handled": 1, "callbacks": 1,
                "service_level": null, "asa_secs": null, "abandon_rate": 0.0,
                "ivr_containment": null, "verification_pass_rate": null,
                "callback_attempts": 0, "callbacks_connected": 0, "callbacks_failed": 0
            }
        ])
    );
    assert_eq!(history["total"]["offered"], 3);
    assert_eq!(history["total"]["abandon_rate"], json!(1.0 / 3.0));
}

#[tokio::test]
async fn history_by_quarter_hour_or_hour_and_over_every_queue() {
    let server = desk().await;
    a_recorded_week(server.state.node.store.as_ref()).await;
    let day = recorded_day();
    // `from` in UTC, `to` with Chicago's offset: both are instants.
    let (status, history) = get(
        &server,
        &format!(
            "/api/v1/stats?from={}&to={}&interval=15m",
            utc(day + 9 * HOUR),
            in_chicago(day + 9 * HOUR + 30 * MINUTE)
        ),
        Some(VIEWER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["queue"], Value::Null);
    assert_eq!(
        history["timezone"], "America/Chicago",
        "over every queue: the zone of the first queue with a schedule"
    );
    let buckets = history["buckets"].as_array().expect("buckets");
    let offered: Vec<(&str, u64)> = buckets
        .iter()
        .map(|bucket| {
            (
                bucket["start"].as_str().expect("start"),
                bucket["offered"].as_u64().expect("offered"),
            )
        })
        .collect();
    assert_eq!(
        offered,
        [
            (in_chicago(day + 9 * HOUR).as_str(), 2),
            (in_chicago(day + 9 * HOUR + 15 * MINUTE).as_str(), 1)
        ],
        "portal and spanish added up, per quarter hour"
    );
    assert_eq!(buckets[0]["asa_secs"], json!(30.0));
    assert_eq!(buckets[1]["service_level"], json!(0.0));

    let (status, history) = get(
        &server,
        &format!(
            "/api/v1/stats?from={}&to={}&interval=hour&tz=UTC",
            utc(day + 9 * HOUR),
            utc(day + 10 * HOUR)
        ),
        Some(VIEWER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["timezone"], "UTC");
    assert_eq!(history["buckets"].as_array().map(Vec::len), Some(1));
    assert_eq!(history["buckets"][0]["start"], utc(day + 9 * HOUR));
    assert_eq!(history["buckets"][0]["offered"], 3);
    assert_eq!(history["buckets"][0]["answered"], 2);
}

#[tokio::test]
async fn history_refuses_what_it_cannot_read_and_says_what_it_accepts() {
    let server = desk().await;
    let (status, body) = get(&server, "/api/v1/stats?from=last-week", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"].as_str().expect("a message");
    assert!(
        message.contains("RFC 3339") && message.contains("2026-01-05"),
        "{message}"
    );
    let (status, body) = get(&server, "/api/v1/stats?interval=week", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = get(&server, "/api/v1/stats?tz=Mars/Olympus", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("`tz` must be an IANA time zone")),
        "{body}"
    );
    let (status, body) = get(&server, "/api/v1/stats?queue=billing", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("[queues]")),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_show_counters_calls_queues_and_agents_in_the_text_format() {
    let server = desk().await;
    staff_the_desk(server.state.node.store.as_ref()).await;
    server.state.node.metrics.reservation();
    server.state.node.metrics.frame_in();
    server.state.node.metrics.frame_out(4);
    call_arrives(&server, "CA0123", "+13125550147").await;

    let response = reqwest::Client::new()
        .get(format!("{}/metrics", server.base_url))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    let samples: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
    for expected in [
        "careline_reservations_total 1",
        "careline_media_frames_received_total 1",
        "careline_media_frames_sent_total 4",
        "careline_calls{phase=\"connecting\"} 1",
        "careline_calls{phase=\"menus\"} 0",
        "careline_streams 0",
        "careline_store_up 1",
        "careline_queue_waiting_calls{queue=\"portal\"} 2",
        "careline_queue_waiting_calls{queue=\"spanish\"} 0",
        "careline_agents{state=\"available\"} 1",
        "careline_agents{state=\"reserved\"} 1",
        "careline_agents{state=\"on_call\"} 1",
        "careline_agents{state=\"wrap_up\"} 1",
        "careline_agents{state=\"break\"} 1",
        "careline_agents{state=\"offline\"} 1",
    ] {
        assert!(samples.contains(&expected), "{expected} in\n{text}");
    }
    assert!(text.contains("# TYPE careline_queue_longest_wait_seconds gauge"));
    assert!(!text.contains("5550147"), "no caller number in metrics");
}

#[tokio::test]
async fn every_new_route_is_read_with_any_valid_token_and_refused_without() {
    let server = desk().await;
    for path in ["/api/v1/queues", "/api/v1/stats", "/metrics"] {
        for token in [VIEWER, SUPERVISOR, ANGUYEN] {
            let (status, body) = get_text(&server, path, Some(token)).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        for token in [None, Some("not-a-token-anyone-was-given")] {
            let (status, _) = get_text(&server, path, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }
    }
}

#[tokio::test]
async fn a_loopback_server_without_tokens_is_open_to_the_local_machine() {
    let server = desk_with(|state| {
        state.access = AccessPolicy::parse(None, true).expect("no tokens");
    })
    .await;
    for path in ["/api/v1/queues", "/api/v1/stats", "/metrics"] {
        let (status, body) = get_text(&server, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

#[tokio::test]
async fn an_unreachable_store_is_reported_and_counted() {
    let store = common::redis::unreachable_store();
    let server = desk_with(|state| state.node.store = Arc::new(store)).await;
    let (status, body) = get(&server, "/api/v1/queues", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, _) = get(&server, "/api/v1/stats", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, text) = get_text(&server, "/metrics", Some(VIEWER)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "metrics still answer without the store"
    );
    assert!(text.contains("\ncareline_store_up 0\n"), "{text}");
    assert!(!text.contains("careline_store_errors_total 0\n"), "{text}");
}
