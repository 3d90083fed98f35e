//! Routing through the store: how long a reservation takes once an agent is free (the
//! "agent available → call reserved" figure), and how many enqueue + reserve cycles per second
//! the store sustains, on the memory store and on a `redis-server` on loopback that the bench
//! starts itself.
//!
//! Run with `cargo bench --bench store`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use careline::store::memory::MemoryStore;
use careline::store::redis::RedisStore;
use careline::store::test_redis::TestRedis;
use careline::store::{AgentStatus, QueuedCall, Store, Strategy};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const T0: i64 = 1_767_268_800_000;
const AGENTS: usize = 20;
const WAITING: usize = 50;
const CONCURRENT_CALLERS: usize = 16;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn agents() -> Vec<String> {
    (0..AGENTS).map(|n| format!("agent-{n:02}")).collect()
}

fn waiting_call(queue: &str, n: u64) -> QueuedCall {
    QueuedCall {
        call_sid: format!("CA-{queue}-{n:08}"),
        queue: queue.to_owned(),
        node: "node-a".to_owned(),
        enqueued_at_ms: T0 + n as i64,
        priority: 0,
        verification_failed: false,
        callback_id: None,
    }
}

/// 20 agents on shift, 19 of them on calls, and 50 callers waiting: one agent comes free.
async fn busy_floor(store: &dyn Store) -> String {
    let agents = agents();
    store.register_agents(&agents, T0).await.expect("register");
    for agent in &agents {
        store
            .set_agent_status(agent, AgentStatus::Available, T0)
            .await
            .expect("available");
    }
    for n in 0..(AGENTS - 1 + WAITING) as u64 {
        store
            .enqueue(&waiting_call("portal", n))
            .await
            .expect("enqueue");
    }
    for _ in 0..AGENTS - 1 {
        let reservation = store
            .reserve("portal", "node-a", &agents, Strategy::LongestIdle, T0)
            .await
            .expect("reserve")
            .expect("reserved");
        store
            .offer_answered(&reservation.agent_id, &reservation.call.call_sid, T0)
            .await
            .expect("answer");
    }
    let free = store.agents().await.expect("agents");
    free.into_iter()
        .find(|agent| agent.activity == careline::store::AgentActivity::Idle)
        .expect("one free agent")
        .id
}

/// Time `reserve` alone: the free agent takes the head call; untimed, their call ends at once
/// (no wrap-up) and a new caller joins the back of the queue.
fn reservation_latency(c: &mut Criterion, name: &str, rt: &Runtime, store: Arc<dyn Store>) {
    let agents = agents();
    let free = rt.block_on(busy_floor(store.as_ref()));
    let mut next_call = (AGENTS - 1 + WAITING) as u64;
    let mut now = T0 + 1;
    c.bench_function(
        &format!("{name}: reserve (agent available → call reserved)"),
        |b| {
            b.iter_custom(|iterations| {
                rt.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iterations {
                        now += 1;
                        let started = Instant::now();
                        let reservation = store
                            .reserve("portal", "node-a", &agents, Strategy::LongestIdle, now)
                            .await
                            .expect("reserve")
                            .expect("the free agent is reserved");
                        spent += started.elapsed();
                        assert_eq!(reservation.agent_id, free);
                        let sid = &reservation.call.call_sid;
                        store.offer_answered(&free, sid, now).await.expect("answer");
                        store
                            .call_finished(&free, sid, now, now)
                            .await
                            .expect("finish");
                        store
                            .enqueue(&waiting_call("portal", next_call))
                            .await
                            .expect("enqueue");
                        next_call += 1;
                    }
                    spent
                })
            })
        },
    );
}

/// Enqueue + reserve cycles from many tasks at once, each on its own queue (a node's calls);
/// the hang-up that frees the agent again is part of the cycle.
fn cycle_throughput(c: &mut Criterion, name: &str, rt: &Runtime, store: Arc<dyn Store>) {
    let agents = Arc::new(agents());
    rt.block_on(async {
        store.register_agents(&agents, T0).await.expect("register");
        for agent in agents.iter() {
            store
                .set_agent_status(agent, AgentStatus::Available, T0)
                .await
                .expect("available");
        }
    });
    let mut group = c.benchmark_group(format!("{name}: enqueue + reserve + hang-up"));
    group.throughput(Throughput::Elements(CONCURRENT_CALLERS as u64));
    let mut round = 0u64;
    group.bench_function(format!("{CONCURRENT_CALLERS} concurrent callers"), |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for task in 0..CONCURRENT_CALLERS {
                    let store = store.clone();
                    let agents = agents.clone();
                    let call = waiting_call(&format!("q{task}"), round);
                    tasks.spawn(async move {
                        store.enqueue(&call).await.expect("enqueue");
                        let reserved = store
                            .reserve(&call.queue, "node-a", &agents, Strategy::LongestIdle, T0)
                            .await
                            .expect("reserve");
                        assert!(reserved.is_some(), "20 agents for 16 callers");
                        store.remove_call(&call.call_sid).await.expect("hang-up");
                    });
                }
                while let Some(task) = tasks.join_next().await {
                    task.expect("cycle task");
                }
            })
        })
    });
    group.finish();
}

fn store_benches(c: &mut Criterion) {
    let rt = runtime();
    reservation_latency(c, "memory", &rt, Arc::new(MemoryStore::new()));
    cycle_throughput(c, "memory", &rt, Arc::new(MemoryStore::new()));

    let server = TestRedis::start().expect("a redis-server of our own");
    let connect = |prefix: &str| -> Arc<dyn Store> {
        Arc::new(
            rt.block_on(RedisStore::connect(&server.url(), prefix))
                .expect("connect"),
        )
    };
    let floor = connect("ping");
    c.bench_function("redis: PING round trip (the loopback floor)", |b| {
        b.iter(|| rt.block_on(floor.ping()).expect("ping"))
    });
    reservation_latency(c, "redis", &rt, connect("latency"));
    cycle_throughput(c, "redis", &rt, connect("throughput"));
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
