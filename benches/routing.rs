//! Routing through the router (`dispatch::router`), end to end on one node: how long a waiting
//! caller's reservation takes to reach its session once an agent comes free, and how many
//! join → reservation → hang-up cycles per second the router sustains. On the memory store and
//! on a `redis-server` on loopback that the bench starts itself.
//!
//! Two latencies, both ending when the head caller's receiver holds the reservation:
//! - "wake → reservation": the agent's change is already in the store (as the agent API writes
//!   it) and the router is woken; this is DESIGN.md's "agent available → reservation" figure.
//! - "call finished → reservation": `Router::call_finished` (the store write that frees the
//!   agent, with no wrap-up) and the round it triggers.
//!
//! Criterion's figures are per iteration; the medians and 99th percentiles of the individual
//! latencies are printed at the end of each group. Run with `cargo bench --bench routing`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use careline::config::Config;
use careline::dispatch::router::{LeaveReason, Router};
use careline::store::memory::MemoryStore;
use careline::store::redis::RedisStore;
use careline::store::test_redis::TestRedis;
use careline::store::{AgentStatus, QueuedCall, Reservation, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

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

fn agent(n: usize) -> String {
    format!("agent-{n:02}")
}

/// One queue, `portal`, no wrap-up; 20 agents with the skill and no shift.
fn config() -> Config {
    let mut text = String::from(
        "[server]\npublic_url = \"http://127.0.0.1:8080\"\n\n[ivr]\nentry = \"main\"\noperator = \"main\"\n\n\
         [queues.portal]\nskills = [\"portal\"]\nwrap_up_secs = 0\n",
    );
    for n in 0..AGENTS {
        text.push_str(&format!(
            "\n[[agents]]\nid = \"{}\"\nname = \"Agent {n}\"\nskills = [\"portal\"]\ndial = \"+1555000{n:04}\"\n",
            agent(n)
        ));
    }
    toml::from_str(&text).expect("bench config parses")
}

fn call(n: u64) -> QueuedCall {
    QueuedCall {
        call_sid: format!("CA{n:010}"),
        queue: "portal".to_owned(),
        node: "node-a".to_owned(),
        enqueued_at_ms: 1_767_268_800_000 + n as i64,
        priority: 0,
        verification_failed: false,
        callback_id: None,
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// A node with its loop running; agents registered and all but `free` on break.
async fn node(store: Arc<dyn Store>, free: &[usize]) -> (Arc<Router>, CancellationToken) {
    let router = Router::new(store.clone(), &config(), "node-a".to_owned());
    let shutdown = CancellationToken::new();
    tokio::spawn(router.clone().run(shutdown.clone()));
    let ids: Vec<String> = (0..AGENTS).map(agent).collect();
    store
        .register_agents(&ids, now_ms())
        .await
        .expect("register");
    for (n, id) in ids.iter().enumerate() {
        let status = if free.contains(&n) {
            AgentStatus::Available
        } else {
            AgentStatus::Break
        };
        store
            .set_agent_status(id, status, now_ms())
            .await
            .expect("status");
    }
    (router, shutdown)
}

/// 50 callers waiting with their receivers; one agent, on a call.
struct BusyFloor {
    router: Arc<Router>,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
    waiting: VecDeque<UnboundedReceiver<Reservation>>,
    /// The call the one agent is on.
    current: String,
    next_call: u64,
}

impl BusyFloor {
    async fn new(store: Arc<dyn Store>) -> BusyFloor {
        let (router, shutdown) = node(store.clone(), &[0]).await;
        let mut waiting = VecDeque::new();
        for n in 0..=WAITING as u64 {
            let offers = router.join(call(n), Timestamp::now()).await.expect("join");
            waiting.push_back(offers);
        }
        let mut floor = BusyFloor {
            router,
            store,
            shutdown,
            waiting,
            current: String::new(),
            next_call: WAITING as u64 + 1,
        };
        let first = floor.take_head().await;
        floor.answer(first).await;
        floor
    }

    async fn take_head(&mut self) -> Reservation {
        let mut head = self.waiting.pop_front().expect("a waiting caller");
        head.recv()
            .await
            .expect("the head caller is offered the free agent")
    }

    /// The agent answers; a new caller joins the back of the queue.
    async fn answer(&mut self, offer: Reservation) {
        assert_eq!(offer.agent_id, agent(0));
        self.router
            .offer_answered(&offer.agent_id, &offer.call.call_sid, Timestamp::now())
            .await
            .expect("answer");
        self.current = offer.call.call_sid;
        let offers = self
            .router
            .join(call(self.next_call), Timestamp::now())
            .await
            .expect("join");
        self.next_call += 1;
        self.waiting.push_back(offers);
    }
}

fn summary(name: &str, samples: &Mutex<Vec<Duration>>) {
    let mut samples = samples.lock().expect("samples").clone();
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "{name}: median {:?}, p99 {:?} over {} reservations",
        at(0.5),
        at(0.99),
        samples.len()
    );
}

fn latency(c: &mut Criterion, name: &str, rt: &Runtime, make_store: &dyn Fn() -> Arc<dyn Store>) {
    let wake_samples = Mutex::new(Vec::new());
    let mut floor = rt.block_on(BusyFloor::new(make_store()));
    c.bench_function(&format!("{name}: wake → reservation delivered"), |b| {
        b.iter_custom(|iterations| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    floor
                        .store
                        .call_finished(&agent(0), &floor.current, now_ms(), now_ms())
                        .await
                        .expect("finish");
                    let started = Instant::now();
                    floor.router.wake();
                    let offer = floor.take_head().await;
                    let took = started.elapsed();
                    spent += took;
                    wake_samples.lock().expect("samples").push(took);
                    floor.answer(offer).await;
                }
                spent
            })
        })
    });
    summary(&format!("{name}: wake → reservation"), &wake_samples);
    floor.shutdown.cancel();

    let finish_samples = Mutex::new(Vec::new());
    let mut floor = rt.block_on(BusyFloor::new(make_store()));
    c.bench_function(
        &format!("{name}: call finished → reservation delivered"),
        |b| {
            b.iter_custom(|iterations| {
                rt.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iterations {
                        let started = Instant::now();
                        floor
                            .router
                            .call_finished(
                                &agent(0),
                                &floor.current,
                                "portal",
                                Duration::from_secs(60),
                                Timestamp::now(),
                            )
                            .await
                            .expect("finish");
                        let offer = floor.take_head().await;
                        let took = started.elapsed();
                        spent += took;
                        finish_samples.lock().expect("samples").push(took);
                        floor.answer(offer).await;
                    }
                    spent
                })
            })
        },
    );
    summary(
        &format!("{name}: call finished → reservation"),
        &finish_samples,
    );
    floor.shutdown.cancel();
}

/// 16 callers join at once with 20 free agents; each takes its offer and hangs up (freeing
/// the agent), so every cycle is join, reservation, delivery, leave.
fn throughput(c: &mut Criterion, name: &str, rt: &Runtime, store: Arc<dyn Store>) {
    let all: Vec<usize> = (0..AGENTS).collect();
    let (router, shutdown) = rt.block_on(node(store, &all));
    let rates = Mutex::new(Vec::new());
    let mut round = 0u64;
    let mut group = c.benchmark_group(format!("{name}: join → reservation → hang-up"));
    group.throughput(Throughput::Elements(CONCURRENT_CALLERS as u64));
    group.bench_function(format!("{CONCURRENT_CALLERS} concurrent callers"), |b| {
        b.iter(|| {
            round += 1;
            let started = Instant::now();
            rt.block_on(async {
                let mut callers = tokio::task::JoinSet::new();
                for n in 0..CONCURRENT_CALLERS as u64 {
                    let router = router.clone();
                    let call = call(round * 1000 + n);
                    callers.spawn(async move {
                        let sid = call.call_sid.clone();
                        let mut offers = router.join(call, Timestamp::now()).await.expect("join");
                        offers.recv().await.expect("20 agents for 16 callers");
                        router.leave(&sid, LeaveReason::Callback).await;
                    });
                }
                while let Some(done) = callers.join_next().await {
                    done.expect("caller task");
                }
            });
            let cycles_per_sec = CONCURRENT_CALLERS as f64 / started.elapsed().as_secs_f64();
            rates.lock().expect("rates").push(cycles_per_sec);
        })
    });
    group.finish();
    let mut rates = rates.lock().expect("rates").clone();
    rates.sort_unstable_by(f64::total_cmp);
    if let Some(median) = rates.get(rates.len() / 2) {
        eprintln!("{name}: join → reservation → hang-up: median {median:.0} calls/s");
    }
    shutdown.cancel();
}

fn routing_benches(c: &mut Criterion) {
    let rt = runtime();
    latency(c, "memory", &rt, &|| Arc::new(MemoryStore::new()));
    throughput(c, "memory", &rt, Arc::new(MemoryStore::new()));

    let server = TestRedis::start().expect("a redis-server of our own");
    let prefixes = Mutex::new(0u32);
    let connect = || -> Arc<dyn Store> {
        let prefix = {
            let mut n = prefixes.lock().expect("prefix");
            *n += 1;
            format!("bench{n}")
        };
        Arc::new(
            rt.block_on(RedisStore::connect(&server.url(), &prefix))
                .expect("connect"),
        )
    };
    latency(c, "redis", &rt, &connect);
    throughput(c, "redis", &rt, connect());
}

criterion_group!(benches, routing_benches);
criterion_main!(benches);
