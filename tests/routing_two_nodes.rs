//! The router on a shared Redis: two careline nodes (two `Router`s, each with its own
//! connection) serving one queue exactly once, a caller whose next stream lands on the other
//! node after a missed offer, and what happens when Redis goes away or restarts empty.
//!
//! The exactly-once test keeps a ledger of what the routers deliver: a call or an agent is taken
//! when a session receives its reservation and given back before the store is told the call
//! ended, so a call delivered twice or an agent given a second call shows up in the ledger.
//!
//! These tests run on real time (Redis answers over a socket); nothing asserts on how long
//! anything took, the deadlines only stop a broken build from hanging.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use careline::config::Config;
use careline::dispatch::router::{JoinRefusal, LeaveReason, Router};
use careline::store::test_redis::TestRedis;
use careline::store::{AgentStatus, MissedOffer, QueuedCall, Reservation, Store, StoreError};
use common::ledger::Ledger;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

const AGENTS: usize = 20;
const CALLS: usize = 200;
const T0: i64 = 1_767_268_800_000;
/// Long enough for anything here to finish on a loaded machine; only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

fn config(agents: usize) -> Config {
    let mut text = String::from(
        r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "main"

[queues.portal]
skills = ["portal"]
wrap_up_secs = 0
"#,
    );
    for n in 0..agents {
        text.push_str(&format!(
            "\n[[agents]]\nid = \"{}\"\nname = \"Agent {n}\"\nskills = [\"portal\"]\ndial = \"+1555000{n:04}\"\n",
            agent(n)
        ));
    }
    toml::from_str(&text).expect("test config parses")
}

fn agent(n: usize) -> String {
    format!("agent-{n:02}")
}

fn portal_call(sid: &str, node: &Router, enqueued_at_ms: i64) -> QueuedCall {
    common::queued_call(sid, "portal", node.node_id(), enqueued_at_ms)
}

async fn connect(server: &TestRedis) -> Arc<dyn Store> {
    Arc::new(common::redis::store(server, "routing").await)
}

/// A node: its router with the loop running.
fn start_node(
    store: Arc<dyn Store>,
    config: &Config,
    name: &str,
    shutdown: &CancellationToken,
) -> Arc<Router> {
    let router = Router::new(store, config, name.to_owned());
    tokio::spawn(router.clone().run(shutdown.clone()));
    router
}

async fn all_available(store: &dyn Store, agents: usize) {
    let ids: Vec<String> = (0..agents).map(agent).collect();
    store
        .register_agents(&ids, Timestamp::now().as_millisecond())
        .await
        .expect("register");
    for id in &ids {
        store
            .set_agent_status(
                id,
                AgentStatus::Available,
                Timestamp::now().as_millisecond(),
            )
            .await
            .expect("available");
    }
}

/// Try until it works (Redis coming back, the router catching up), or give up at the deadline.
async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next_offer(offers: &mut tokio::sync::mpsc::UnboundedReceiver<Reservation>) -> Reservation {
    tokio::time::timeout(DEADLINE, offers.recv())
        .await
        .expect("an offer before the deadline")
        .expect("the router delivers a reservation")
}

/// One caller: joins on `node`, takes the offer; every seventh offer rings out and the caller's
/// next stream joins again on the same node; otherwise the agent answers, talks, hangs up.
async fn caller(
    node: Arc<Router>,
    store: Arc<dyn Store>,
    call: QueuedCall,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut offers = node
        .join(call.clone(), Timestamp::now())
        .await
        .expect("join");
    loop {
        let offer = next_offer(&mut offers).await;
        assert_eq!(offer.call.call_sid, call.call_sid);
        assert_eq!(
            offer.call.enqueued_at_ms, call.enqueued_at_ms,
            "the call kept its place"
        );
        let agent = offer.agent_id.clone();
        let miss = {
            let mut ledger = ledger.lock().expect("ledger");
            ledger.take(&offer);
            ledger.offers.is_multiple_of(7)
        };
        assert!(offers.recv().await.is_none(), "one reservation per join");
        if miss {
            ledger
                .lock()
                .expect("ledger")
                .missed(&call.call_sid, &agent);
            let outcome = node
                .offer_missed(&agent, &offer.call, Timestamp::now())
                .await
                .expect("offer missed");
            if outcome == MissedOffer::PutOnBreak {
                store
                    .set_agent_status(
                        &agent,
                        AgentStatus::Available,
                        Timestamp::now().as_millisecond(),
                    )
                    .await
                    .expect("back from break");
                node.wake();
            }
            offers = node
                .join(call.clone(), Timestamp::now())
                .await
                .expect("join again");
            continue;
        }
        node.offer_answered(&agent, &call.call_sid, Timestamp::now())
            .await
            .expect("answered");
        tokio::task::yield_now().await;
        ledger
            .lock()
            .expect("ledger")
            .served(&call.call_sid, &agent);
        node.call_finished(
            &agent,
            &call.call_sid,
            "portal",
            Duration::from_millis(5),
            Timestamp::now(),
        )
        .await
        .expect("finished");
        return;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_every_call_once_and_never_give_an_agent_two_calls() {
    let server = common::redis::start();
    let config = config(AGENTS);
    let shutdown = CancellationToken::new();
    let stores = [connect(&server).await, connect(&server).await];
    let nodes = [
        start_node(stores[0].clone(), &config, "node-a", &shutdown),
        start_node(stores[1].clone(), &config, "node-b", &shutdown),
    ];
    all_available(stores[0].as_ref(), AGENTS).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut callers = tokio::task::JoinSet::new();
    for n in 0..CALLS {
        let side = n % 2;
        let call = portal_call(&format!("CA{n:04}"), &nodes[side], T0 + n as i64);
        callers.spawn(caller(
            nodes[side].clone(),
            stores[side].clone(),
            call,
            ledger.clone(),
        ));
    }
    while let Some(done) = callers.join_next().await {
        done.expect("a caller failed");
    }

    {
        let ledger = ledger.lock().expect("ledger");
        assert_eq!(ledger.served.len(), CALLS, "every call served");
        assert_eq!(ledger.offers, CALLS + ledger.misses);
        assert!(ledger.misses > 0, "some offers rang out");
        assert!(ledger.all_given_back());
    }
    assert!(
        stores[0]
            .waiting("portal")
            .await
            .expect("waiting")
            .is_empty()
    );
    for record in stores[1].agents().await.expect("agents") {
        assert!(
            !matches!(
                record.activity,
                careline::store::AgentActivity::Reserved { .. }
                    | careline::store::AgentActivity::OnCall { .. }
            ),
            "{} still holds a call",
            record.id
        );
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_next_stream_lands_on_the_other_node_after_a_missed_offer_is_served() {
    let server = common::redis::start();
    let config = config(1);
    let shutdown = CancellationToken::new();
    let stores = [connect(&server).await, connect(&server).await];
    let node_a = start_node(stores[0].clone(), &config, "node-a", &shutdown);
    let node_b = start_node(stores[1].clone(), &config, "node-b", &shutdown);
    all_available(stores[0].as_ref(), 1).await;

    let call = portal_call("CA1", &node_a, T0);
    let mut offers = node_a
        .join(call.clone(), Timestamp::now())
        .await
        .expect("join");
    let offer = next_offer(&mut offers).await;
    node_a
        .offer_missed(&offer.agent_id, &offer.call, Timestamp::now())
        .await
        .expect("missed");

    // Node A holds the call's next reservation for a stream that joins on node B instead.
    let mut offers = node_b
        .join(call.clone(), Timestamp::now())
        .await
        .expect("join on B");
    let offer = next_offer(&mut offers).await;
    assert_eq!(offer.agent_id, agent(0));
    assert_eq!(offer.call.call_sid, "CA1");
    assert_eq!(offer.call.node, "node-b");
    assert_eq!(offer.call.enqueued_at_ms, T0);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_agents_are_registered_and_calls_get_their_places_back() {
    let mut server = common::redis::start();
    let config = config(3);
    let shutdown = CancellationToken::new();
    let store = connect(&server).await;
    let node = start_node(store.clone(), &config, "node-a", &shutdown);

    // Nobody is available, so the calls wait; they join out of order.
    let mut offers = HashMap::new();
    for offset in [30, 10, 50, 20, 40] {
        let sid = format!("CA{offset}");
        let call = portal_call(&sid, &node, T0 + offset);
        offers.insert(sid, node.join(call, Timestamp::now()).await.expect("join"));
    }
    let expected: Vec<(String, i64)> = [10, 20, 30, 40, 50]
        .into_iter()
        .map(|offset| (format!("CA{offset}"), T0 + offset))
        .collect();
    let waiting = async || -> Option<Vec<(String, i64)>> {
        let calls = store.waiting("portal").await.ok()?;
        Some(
            calls
                .into_iter()
                .map(|call| (call.call_sid, call.enqueued_at_ms))
                .collect(),
        )
    };
    assert_eq!(waiting().await, Some(expected.clone()));

    server.restart().expect("redis restarts empty");
    eventually("the calls are back in their places", async || {
        waiting().await.filter(|now| *now == expected)
    })
    .await;
    let agents = eventually("the agents are registered again", async || {
        store.agents().await.ok().filter(|agents| agents.len() == 3)
    })
    .await;
    assert!(
        agents
            .iter()
            .all(|agent| agent.status == AgentStatus::Offline)
    );

    // Service goes on: the first caller gets the first agent who comes back.
    store
        .set_agent_status(
            &agent(1),
            AgentStatus::Available,
            Timestamp::now().as_millisecond(),
        )
        .await
        .expect("available");
    node.wake();
    let first = offers.get_mut("CA10").expect("CA10 joined");
    let offer = next_offer(first).await;
    assert_eq!(offer.agent_id, agent(1));
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_join_is_refused_as_unavailable_and_routing_resumes_when_it_is_back() {
    let mut server = common::redis::start();
    let config = config(1);
    let shutdown = CancellationToken::new();
    let store = connect(&server).await;
    let node = start_node(store.clone(), &config, "node-a", &shutdown);

    server.stop();
    let refused = node
        .join(portal_call("CA1", &node, T0), Timestamp::now())
        .await;
    assert!(
        matches!(
            refused,
            Err(JoinRefusal::Unavailable(StoreError::Unavailable(_)))
        ),
        "{refused:?}"
    );

    server.start_again().expect("redis is back");
    let mut offers = eventually("a join succeeds once Redis is back", async || {
        node.join(portal_call("CA1", &node, T0), Timestamp::now())
            .await
            .ok()
    })
    .await;
    eventually("the agent is registered again", async || {
        store.agent(&agent(0)).await.ok().flatten()
    })
    .await;
    store
        .set_agent_status(
            &agent(0),
            AgentStatus::Available,
            Timestamp::now().as_millisecond(),
        )
        .await
        .expect("available");
    node.wake();
    let offer = next_offer(&mut offers).await;
    assert_eq!(offer.call.call_sid, "CA1");
    node.leave("CA1", LeaveReason::HungUp).await;
    shutdown.cancel();
}
