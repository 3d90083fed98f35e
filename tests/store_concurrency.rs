//! Exactly-once reservation across nodes: two careline nodes (two `RedisStore`s) on one Redis,
//! 200 callers arriving on both, 20 agents shared by two queues, many dispatchers per node
//! reserving at once while agents answer, miss offers, finish calls and take breaks.
//!
//! A ledger kept by the test records every offer as the store hands it out. It takes a call or
//! an agent only after the store has reserved them, and gives them back before the store frees
//! them, so any double reservation in the store shows up in the ledger as a call offered while
//! already offered, or an agent given a second call.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use careline::store::redis::RedisStore;
use careline::store::test_redis::TestRedis;
use careline::store::{AgentStatus, QueuedCall, Reservation, Store, Strategy};

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

#[derive(Default)]
struct Ledger {
    /// Call → the agent it is offered to or talking with.
    calls_in_hand: HashMap<String, String>,
    /// Agent → the call they hold.
    agents_in_hand: HashMap<String, String>,
    served: HashSet<String>,
    offers: u64,
    misses: u64,
}

impl Ledger {
    fn take(&mut self, reservation: &Reservation) {
        let call = &reservation.call.call_sid;
        let agent = &reservation.agent_id;
        assert!(
            !self.served.contains(call),
            "{call} was offered again after it was served"
        );
        if let Some(holder) = self.calls_in_hand.insert(call.clone(), agent.clone()) {
            panic!("{call} offered to {agent} while still with {holder}");
        }
        if let Some(held) = self.agents_in_hand.insert(agent.clone(), call.clone()) {
            panic!("{agent} given {call} while still holding {held}");
        }
        self.offers += 1;
    }

    fn give_back(&mut self, call: &str, agent: &str) {
        assert_eq!(self.calls_in_hand.remove(call).as_deref(), Some(agent));
        assert_eq!(self.agents_in_hand.remove(agent).as_deref(), Some(call));
    }

    fn missed(&mut self, call: &str, agent: &str) {
        self.give_back(call, agent);
        self.misses += 1;
    }

    fn served(&mut self, call: &str, agent: &str) {
        self.give_back(call, agent);
        assert!(self.served.insert(call.to_owned()), "{call} served twice");
    }
}

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
    let server = TestRedis::start().expect("a redis-server of our own");
    let connect = |name: &'static str| {
        let url = server.url();
        async move {
            let store = RedisStore::connect(&url, "careline")
                .await
                .expect("connect node");
            Arc::new(Node { name, store })
        }
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
        assert!(ledger.calls_in_hand.is_empty() && ledger.agents_in_hand.is_empty());
        assert!(ledger.misses > 0, "missed offers were exercised");
        assert_eq!(ledger.offers, ledger.served.len() as u64 + ledger.misses);
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
