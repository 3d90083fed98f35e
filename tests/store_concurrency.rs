//! Exactly-once reservation across nodes: two careline nodes (two `RedisStore`s) on one Redis,
//! 200 callers arriving on both, 20 agents shared by two queues, many dispatchers per node
//! reserving at once while agents answer, miss offers, finish calls and take breaks.
//!
//! A ledger kept by the test records every offer as the store hands it out. It takes a call or
//! an agent only after the store has reserved them, and gives them back before the store frees
//! them, so any double reservation in the store shows up in the ledger as a call offered while
//! already offered, or an agent given a second call.

mod common;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use careline::store::redis::RedisStore;
use careline::store::{AgentStatus, QueuedCall, Store, Strategy};
use common::ledger::Ledger;

const CALLS_PER_NODE: usize = 100;
const AGENTS: usize = 20;
const DISPATCHERS_PER_NODE: usize = 6;
const QUEUES: [&str; 2] = ["portal", "ios"];
const STRATEGIES: [Strategy; 3] = [
    Strategy::LongestIdle,
    Strategy::RoundRobin,
    Strategy::FewestCalls,
];
const T0: i64 = 1_767_268_800_000;

struct Node {
    name: &'static str,
    store: RedisStore,
}

struct Shared {
    ledger: Mutex<Ledger>,
    /// The clock every node reads: strictly increasing, shared like the wall clock would be.
    clock: AtomicI64,
    reservations: AtomicU64,
    agents: Vec<String>,
}

impl Shared {
    fn now(&self) -> i64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("ledger lock")
    }

    fn all_served(&self) -> bool {
        self.ledger().served.len() == 2 * CALLS_PER_NODE
    }
}

async fn callers_arrive(node: Arc<Node>, shared: Arc<Shared>) {
    for n in 0..CALLS_PER_NODE {
        let call = QueuedCall {
            call_sid: format!("CA-{}-{n:03}", node.name),
            queue: QUEUES[n % QUEUES.len()].to_owned(),
            node: node.name.to_owned(),
            enqueued_at_ms: shared.now(),
            priority: i32::from(n % 5 == 0),
            verification_failed: false,
            callback_id: None,
        };
        node.store.enqueue(&call).await.expect("enqueue");
        if n % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

async fn dispatch(node: Arc<Node>, shared: Arc<Shared>, dispatcher: usize) {
    let mut turn = dispatcher;
    while !shared.all_served() {
        turn += 1;
        let queue = QUEUES[turn % QUEUES.len()];
        let strategy = STRATEGIES[turn % STRATEGIES.len()];
        let reservation = node
            .store
            .reserve(queue, node.name, &shared.agents, strategy, shared.now())
            .await
            .expect("reserve");
        let Some(reservation) = reservation else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        shared.ledger().take(&reservation);
        let call = &reservation.call;
        let agent = &reservation.agent_id;
        let nth = shared.reservations.fetch_add(1, Ordering::Relaxed);

        if nth % 7 == 3 {
            // No answer: the call goes back to its place, the agent is free again.
            shared.ledger().missed(&call.call_sid, agent);
            node.store
                .offer_missed(agent, call, 0, shared.now())
                .await
                .expect("offer missed");
        } else {
            node.store
                .offer_answered(agent, &call.call_sid, shared.now())
                .await
                .expect("offer answered");
            tokio::task::yield_now().await;
            shared.ledger().served(&call.call_sid, agent);
            let now = shared.now();
            node.store
                .call_finished(agent, &call.call_sid, now, now)
                .await
                .expect("call finished");
        }
    }
}

/// Agents step away and come back while calls are being handed out.
async fn agents_take_breaks(node: Arc<Node>, shared: Arc<Shared>) {
    let mut n = 0;
    while !shared.all_served() {
        let agent = &shared.agents[n % AGENTS];
        node.store
            .set_agent_status(agent, AgentStatus::Break, shared.now())
            .await
            .expect("break");
        tokio::time::sleep(Duration::from_millis(2)).await;
        node.store
            .set_agent_status(agent, AgentStatus::Available, shared.now())
            .await
            .expect("available");
        n += 7;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_never_offer_a_call_twice_nor_give_an_agent_two_calls() {
    let server = common::redis::start();
    let connect = async |name: &'static str| {
        let store = common::redis::store(&server, "careline").await;
        Arc::new(Node { name, store })
    };
    let nodes = [connect("node-a").await, connect("node-b").await];

    let agents: Vec<String> = (0..AGENTS).map(|n| format!("agent-{n:02}")).collect();
    let shared = Arc::new(Shared {
        ledger: Mutex::new(Ledger::default()),
        clock: AtomicI64::new(T0),
        reservations: AtomicU64::new(0),
        agents: agents.clone(),
    });
    nodes[0]
        .store
        .register_agents(&agents, shared.now())
        .await
        .expect("register");
    for agent in &agents {
        nodes[1]
            .store
            .set_agent_status(agent, AgentStatus::Available, shared.now())
            .await
            .expect("available");
    }

    let mut tasks = tokio::task::JoinSet::new();
    for node in &nodes {
        tasks.spawn(callers_arrive(node.clone(), shared.clone()));
        tasks.spawn(agents_take_breaks(node.clone(), shared.clone()));
        for dispatcher in 0..DISPATCHERS_PER_NODE {
            tasks.spawn(dispatch(node.clone(), shared.clone(), dispatcher));
        }
    }
    let everyone_served = async {
        while let Some(task) = tasks.join_next().await {
            task.expect("no task panicked");
        }
    };
    // A generous bound that only a stuck queue reaches; the test itself takes well under a second.
    if tokio::time::timeout(Duration::from_secs(120), everyone_served)
        .await
        .is_err()
    {
        let ledger = shared.ledger();
        panic!(
            "stuck with {} of {} calls served",
            ledger.served.len(),
            2 * CALLS_PER_NODE
        );
    }

    {
        let ledger = shared.ledger();
        assert_eq!(ledger.served.len(), 2 * CALLS_PER_NODE);
        assert!(ledger.all_given_back());
        assert!(ledger.misses > 0, "missed offers were exercised");
        assert_eq!(ledger.offers, ledger.served.len() + ledger.misses);
    }
    for queue in QUEUES {
        let waiting = nodes[0].store.waiting(queue).await.expect("waiting");
        assert!(waiting.is_empty(), "{queue} still has {waiting:?}");
    }
    let total_answered: u32 = nodes[1]
        .store
        .agents()
        .await
        .expect("agents")
        .iter()
        .map(|agent| agent.calls_today_at(shared.now()))
        .sum();
    assert_eq!(total_answered as usize, 2 * CALLS_PER_NODE);
}
