//! Queues on a real `redis-server` started by the test: two careline nodes sharing one queue,
//! Redis restarting empty under waiting callers, and Redis gone while callers need a queue.

mod common;

use std::time::Duration;

use careline::caller::{CallEnd, CallOptions, DialBehaviour, DialStatus, place_call};
use careline::store::test_redis::TestRedis;
use common::{TestServer, call, call_keying, make_available, script};

const FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 10

[store]
url = "REDIS_URL"
key_prefix = "careline"

[prompts]
dir = "PROMPTS"
default_language = "en"

[recordings]
dir = "RECORDINGS"

[ivr]
entry = "main"
operator = "desk"
first_digit_timeout_secs = 2
inter_digit_timeout_secs = 1
max_retries = 2

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "desk", "2" = "info" }

[nodes.info]
type = "say"
prompt = ["info"]
next = "main"

[nodes.desk]
type = "queue"
queue = "portal"

[nodes.closed]
type = "hangup"
prompt = ["after_hours"]

[queues.portal]
skills = ["portal"]
when_closed = "closed"
announce_every_secs = 30
ring_timeout_secs = 5
wrap_up_secs = 0

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
client = "anguyen"

[[agents]]
id = "bwilliams"
name = "Brianna Williams"
skills = ["portal"]
client = "bwilliams"

[[agents]]
id = "cgarcia"
name = "Carlos Garcia"
skills = ["portal"]
client = "cgarcia"

# Answers no queue here: available all along, so the restart test can watch her status.
[[agents]]
id = "dokafor"
name = "Dana Okafor"
skills = ["billing"]
client = "dokafor"
"#;

const PROMPTS: [&str; 3] = ["main_menu", "info", "after_hours"];
const AGENTS: [&str; 3] = ["anguyen", "bwilliams", "cgarcia"];

async fn node(redis: &TestRedis) -> TestServer {
    let flow = FLOW.replace("REDIS_URL", &redis.url());
    TestServer::start_with(&flow, &["en"], &PROMPTS, None).await
}

#[tokio::test]
async fn two_nodes_share_one_queue_and_every_call_reaches_one_agent_once() {
    let redis = common::redis::start();
    let first = node(&redis).await;
    let second = node(&redis).await;
    for agent in AGENTS {
        make_available(&first, agent).await;
    }
    let calls = (0..12).map(|index| {
        let base = if index % 2 == 0 {
            first.base_url.clone()
        } else {
            second.base_url.clone()
        };
        call(
            CallOptions::new(base)
                .digits(script("1"))
                .dial(vec![DialBehaviour::Answer {
                    after: Duration::from_millis(100),
                    talk: Duration::from_millis(300),
                }])
                .max_duration(Duration::from_secs(60)),
        )
    });
    let reports = futures_util::future::join_all(calls).await;
    for report in &reports {
        let dials: Vec<DialStatus> = report
            .dials()
            .into_iter()
            .map(|(_, status)| status)
            .collect();
        assert_eq!(
            dials,
            [DialStatus::Completed],
            "each call is offered once and answered"
        );
        assert_eq!(report.ended, CallEnd::Hangup);
    }
    let agents = first
        .state
        .node
        .store
        .agents()
        .await
        .expect("store answers");
    let handled: u32 = agents.iter().map(|agent| agent.calls_today).sum();
    assert_eq!(handled, 12, "{agents:?}");
    assert!(
        first
            .state
            .node
            .store
            .waiting("portal")
            .await
            .expect("store")
            .is_empty()
    );
}

#[tokio::test]
async fn a_redis_that_restarts_empty_gets_the_waiting_call_back_in_its_place() {
    let mut redis = common::redis::start();
    let server = node(&redis).await;
    let (steps, live_steps) = tokio::sync::mpsc::unbounded_channel();
    let base_url = server.base_url.clone();
    let waiting_call = tokio::spawn(place_call(
        CallOptions::new(base_url)
            .digits(script("1"))
            .live_steps(live_steps)
            .dial(vec![DialBehaviour::Answer {
                after: Duration::from_millis(100),
                talk: Duration::from_millis(200),
            }])
            .max_duration(Duration::from_secs(60)),
    ));
    let waiting = wait_for_waiting(&server, 1).await;
    let before = waiting[0].clone();
    make_available(&server, "dokafor").await;
    // The router notes statuses every couple of seconds; let it see this one.
    tokio::time::sleep(Duration::from_secs(3)).await;

    redis.restart().unwrap_or_else(|error| panic!("{error}"));
    let waiting = wait_for_waiting(&server, 1).await;
    assert_eq!(waiting[0].call_sid, before.call_sid);
    assert_eq!(
        waiting[0].enqueued_at_ms, before.enqueued_at_ms,
        "re-registered with its original enqueue time"
    );
    let mut restored = None;
    for _ in 0..100 {
        if let Ok(Some(agent)) = server.state.node.store.agent("dokafor").await
            && agent.status == careline::store::AgentStatus::Available
        {
            restored = Some(agent);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        restored.is_some(),
        "an agent who was available is available again after the store lost its data"
    );

    make_available(&server, "anguyen").await;
    let report = waiting_call
        .await
        .expect("call task")
        .expect("call completes");
    drop(steps);
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    let dials: Vec<DialStatus> = report
        .dials()
        .into_iter()
        .map(|(_, status)| status)
        .collect();
    assert_eq!(dials, [DialStatus::Completed]);
}

#[tokio::test]
async fn with_redis_gone_menus_carry_on_and_a_caller_for_a_queue_hears_an_apology() {
    let mut redis = common::redis::start();
    let server = node(&redis).await;
    redis.stop();
    let health: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!("{}/healthz", server.base_url))
            .await
            .expect("healthz answers")
            .text()
            .await
            .expect("body"),
    )
    .expect("JSON");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store_reachable"], false, "{health}");
    let report = call_keying(&server, "w2,w1", 30).await;
    assert_eq!(
        report.played_prompts(),
        [
            "main_menu",
            "info",
            "main_menu",
            "queue_unavailable",
            "after_hours"
        ],
        "the menus work without Redis; the queue apologises and runs when_closed"
    );
    assert_eq!(report.ended, CallEnd::Hangup);
}

/// Poll the store until `count` calls wait in the portal queue (bounded, no timing asserted).
async fn wait_for_waiting(server: &TestServer, count: usize) -> Vec<careline::store::QueuedCall> {
    for _ in 0..200 {
        if let Ok(waiting) = server.state.node.store.waiting("portal").await
            && waiting.len() == count
        {
            return waiting;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} call(s) never waited in the queue");
}
