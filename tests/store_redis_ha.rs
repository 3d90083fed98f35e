//! Redis as a hospital runs it: a master with a replica behind three Sentinels that fail over,
//! a password or an ACL user from the environment, and TLS with a private CA. Every server here
//! is a `redis-server` of the test's own on free loopback ports (`TestRedis`); none is shared.
//!
//! The failover test kills the master with SIGKILL while two nodes have callers waiting and
//! agents on calls, and checks what callers and agents would notice: every waiting caller is
//! served in the order they came, no call is offered twice and no agent is given two calls; it
//! also makes the promoted replica miss the last caller's join (as asynchronous replication
//! can) and checks that the caller's node puts the call back. It prints how long the failover
//! took; nothing here asserts on time (the deadlines only stop a broken build from hanging).
//!
//! Every test skips, saying why, when `redis-server` is not installed.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use careline::config::Config;
use careline::dispatch::router::Router;
use careline::store::redis::RedisStore;
use careline::store::redis_access::{Credentials, HostPort, RedisAccess};
use careline::store::test_redis::{
    TestCertificates, TestRedis, TestRedisOptions, TestSentinelOptions,
};
use careline::store::{AgentStatus, QueuedCall, Reservation, Store, StoreError};
use careline::telemetry::{Change, ChangeEvent, EventBus, EventKind};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::MakeWriter;

const T0: i64 = 1_767_268_800_000;
/// Only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(60);

/// The server, or `None` (printed) when `redis-server` is not installed.
fn started(server: std::io::Result<TestRedis>) -> Option<TestRedis> {
    match server {
        Ok(server) => Some(server),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: {error}");
            None
        }
        Err(error) => panic!("a test redis-server: {error}"),
    }
}

// --- every log line at trace, captured ---

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every test in this file logs into one capture at `trace` (the Redis client's own log
/// records included).
fn logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
                .with_writer(captured.clone())
                .with_ansi(false)
                .init();
            tracing::trace!("the capture of every log line starts");
            captured
        })
        .clone()
}

fn assert_not_logged(captured: &Captured, secret: &str) {
    let text = String::from_utf8_lossy(&captured.0.lock().expect("logs").clone()).into_owned();
    assert!(!text.is_empty(), "the capture works");
    assert!(!text.contains(secret), "a password reached the logs");
}

// --- the desk ---

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

fn portal_call(sid: &str, enqueued_at_ms: i64) -> QueuedCall {
    QueuedCall {
        call_sid: sid.to_owned(),
        queue: "portal".to_owned(),
        node: String::new(),
        enqueued_at_ms,
        priority: 0,
        verification_failed: false,
        callback_id: None,
    }
}

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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Repeat a store operation until it goes through: during a failover it fails for a while (a
/// Twilio webhook would be answered with an error meanwhile and the session would try again).
macro_rules! until_done {
    ($what:literal, $operation:expr) => {{
        let give_up = tokio::time::Instant::now() + DEADLINE;
        loop {
            match $operation.await {
                Ok(value) => break value,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < give_up,
                        "never happened: {}: {error}",
                        $what
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }};
}

/// What the callers were given, in order, and when.
#[derive(Default)]
struct Ledger {
    agents_in_hand: HashMap<String, String>,
    calls_in_hand: HashSet<String>,
    served: Vec<String>,
    /// (call, agent, when) for every offer, in the order the sessions received them.
    offers: Vec<(String, String, Instant)>,
}

impl Ledger {
    fn take(&mut self, reservation: &Reservation) {
        let call = &reservation.call.call_sid;
        let agent = &reservation.agent_id;
        assert!(
            !self.served.contains(call),
            "{call} offered again after it was served"
        );
        assert!(
            self.calls_in_hand.insert(call.clone()),
            "{call} offered twice at once"
        );
        if let Some(held) = self.agents_in_hand.insert(agent.clone(), call.clone()) {
            panic!("{agent} given {call} while still on {held}");
        }
        self.offers
            .push((call.clone(), agent.clone(), Instant::now()));
    }

    fn give_back(&mut self, call: &str, agent: &str) {
        assert!(self.calls_in_hand.remove(call));
        assert_eq!(self.agents_in_hand.remove(agent).as_deref(), Some(call));
        self.served.push(call.to_owned());
    }
}

/// One caller, already in the queue on `node`: waits for an agent, talks for `talk`, hangs
/// up. Every store operation is repeated until it goes through, as the failover makes some
/// fail for a while.
async fn caller(
    node: Arc<Router>,
    call: QueuedCall,
    mut offers: tokio::sync::mpsc::UnboundedReceiver<Reservation>,
    ledger: Arc<Mutex<Ledger>>,
    talk: Duration,
) {
    let offer = tokio::time::timeout(DEADLINE, offers.recv())
        .await
        .expect("an offer before the deadline")
        .expect("the router delivers a reservation");
    assert_eq!(offer.call.call_sid, call.call_sid);
    assert_eq!(
        offer.call.enqueued_at_ms, call.enqueued_at_ms,
        "kept its place"
    );
    ledger.lock().expect("ledger").take(&offer);
    until_done!(
        "answer",
        node.offer_answered(&offer.agent_id, &call.call_sid, Timestamp::now())
    );
    tokio::time::sleep(talk).await;
    ledger
        .lock()
        .expect("ledger")
        .give_back(&call.call_sid, &offer.agent_id);
    until_done!(
        "hang up",
        node.call_finished(
            &offer.agent_id,
            &call.call_sid,
            "portal",
            talk,
            Timestamp::now(),
        )
    );
}

/// One field of `SENTINEL master <name>` (a flat list of names and values, one a line).
fn sentinel_field(sentinel: &TestRedis, field: &str) -> Option<String> {
    let answer = sentinel.cli(&["SENTINEL", "master", "careline"]).ok()?;
    let mut lines = answer.lines();
    while let Some(line) = lines.next() {
        if line == field {
            return lines.next().map(str::to_owned);
        }
    }
    None
}

/// The master the Sentinel names now, as `host:port`.
fn named_master(sentinel: &TestRedis) -> Option<String> {
    let answer = sentinel
        .cli(&["SENTINEL", "get-master-addr-by-name", "careline"])
        .ok()?;
    let mut lines = answer.lines();
    Some(format!("{}:{}", lines.next()?, lines.next()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_master_dies_the_sentinels_promote_the_replica_and_every_caller_is_served_once_in_order()
 {
    let _logs = logs();
    let Some(mut master) = started(TestRedis::start()) else {
        return;
    };
    let replica = started(TestRedis::start_with(TestRedisOptions {
        replica_of: Some(master.port()),
        ..TestRedisOptions::default()
    }))
    .expect("redis-server is installed");
    eventually("the replica is in sync", async || {
        let info = replica.cli(&["INFO", "replication"]).ok()?;
        info.contains("master_link_status:up").then_some(())
    })
    .await;
    let sentinels: Vec<TestRedis> = (0..3)
        .map(|_| {
            TestRedis::sentinel("careline", master.port(), 2, TestSentinelOptions::default())
                .expect("a sentinel")
        })
        .collect();
    // A failover needs the Sentinels to know the replica and each other (they meet through
    // the master every two seconds).
    eventually(
        "the Sentinels know the replica and each other",
        async || {
            sentinels
                .iter()
                .all(|sentinel| {
                    sentinel_field(sentinel, "num-other-sentinels").as_deref() == Some("2")
                        && sentinel_field(sentinel, "num-slaves").as_deref() == Some("1")
                })
                .then_some(())
        },
    )
    .await;

    let addresses: Vec<HostPort> = sentinels
        .iter()
        .map(|sentinel| sentinel.address().parse().expect("host:port"))
        .collect();
    let access = RedisAccess::sentinels(addresses, "careline");
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::open(&access, "ha")
            .await
            .expect("the store finds the master through the Sentinels");
        stores.push(Arc::new(store));
    }
    assert_eq!(
        stores[0].master_address(),
        Some(master.address()),
        "the store uses the master the Sentinels name"
    );
    let agents = 3;
    let config = config(agents);
    let shutdown = CancellationToken::new();
    let buses: Vec<Arc<EventBus>> = ["node-a", "node-b"]
        .into_iter()
        .map(|node| Arc::new(EventBus::shared_on(node.to_owned(), &access, "ha")))
        .collect();
    for bus in &buses {
        let (bus, shutdown) = (bus.clone(), shutdown.clone());
        tokio::spawn(async move { bus.run(shutdown).await });
    }
    let nodes: Vec<Arc<Router>> = ["node-a", "node-b"]
        .into_iter()
        .zip(&stores)
        .zip(&buses)
        .map(|((name, store), bus)| {
            let router = Router::with_events(
                store.clone(),
                &config,
                name.to_owned(),
                Arc::new(Timestamp::now),
                bus.clone(),
            );
            tokio::spawn(router.clone().run(shutdown.clone()));
            router
        })
        .collect();
    let ids: Vec<String> = (0..agents).map(agent).collect();
    stores[0]
        .register_agents(&ids, Timestamp::now().as_millisecond())
        .await
        .expect("register");

    // Twelve callers, alternately on each node, queue while nobody is available. Two agents
    // take the first two calls, long ones that last through the failover; the third agent is
    // on a break until the master has died. Later calls take 300 ms.
    let calls = 12;
    let on_the_phone = 2;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut callers = tokio::task::JoinSet::new();
    for n in 0..calls {
        let call = portal_call(&format!("CA{n:02}"), T0 + n as i64);
        let node = nodes[n % 2].clone();
        let offers = node
            .join(call.clone(), Timestamp::now())
            .await
            .expect("join");
        let talk = if n < on_the_phone {
            Duration::from_secs(8)
        } else {
            Duration::from_millis(300)
        };
        callers.spawn(caller(node, call, offers, ledger.clone(), talk));
    }
    for id in &ids[..on_the_phone] {
        stores[0]
            .set_agent_status(
                id,
                AgentStatus::Available,
                Timestamp::now().as_millisecond(),
            )
            .await
            .expect("available");
    }
    for node in &nodes {
        node.wake();
    }
    let waiting_sids = async |store: &Arc<dyn Store>| -> Option<Vec<String>> {
        let calls = store.waiting("portal").await.ok()?;
        Some(calls.into_iter().map(|call| call.call_sid).collect())
    };
    let before = eventually("two agents are on calls and ten callers wait", async || {
        let waiting = waiting_sids(&stores[0]).await?;
        let answered = stores[0].agents().await.ok()?.iter().all(|agent| {
            agent.status != AgentStatus::Available
                || matches!(
                    agent.activity,
                    careline::store::AgentActivity::OnCall { .. }
                )
        });
        (answered && waiting.len() == calls - on_the_phone).then_some(waiting)
    })
    .await;
    let expected: Vec<String> = (on_the_phone..calls).map(|n| format!("CA{n:02}")).collect();
    let talking = ledger
        .lock()
        .expect("ledger")
        .agents_in_hand
        .iter()
        .find(|(_, call)| call.as_str() == "CA00")
        .map(|(agent, _)| agent.clone())
        .expect("CA00 is with an agent");
    assert_eq!(before, expected, "the queue is in arrival order");

    // The replica must be able to lose writes, as asynchronous replication can: right after
    // the master dies, before its promotion, the last caller's join and the answer of the
    // first call (its agent back to idle and available) are taken out of it.
    replica
        .cli(&["CONFIG", "SET", "replica-read-only", "no"])
        .expect("replica writable");
    master.stop(); // SIGKILL
    let killed = Instant::now();
    let last = expected.last().expect("callers wait").clone();
    let forget = "local members = redis.call('ZRANGE', KEYS[1], 0, -1) \
         for _, member in ipairs(members) do \
           if string.sub(member, -string.len(ARGV[1])) == ARGV[1] then redis.call('ZREM', KEYS[1], member) end \
         end \
         return redis.call('HDEL', KEYS[2], ARGV[1])";
    let forgotten = replica
        .cli(&[
            "EVAL",
            forget,
            "2",
            "{ha:routing}:waiting",
            "{ha:routing}:calls",
            &last,
        ])
        .expect("the replica forgets the last join");
    assert_eq!(forgotten, "1", "the replica had the last caller");
    let unanswer = "local agent = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1])) \
         agent.state = 'idle' agent.call_sid = '' agent.since_ms = 0 \
         redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(agent)) return agent.status";
    let status = replica
        .cli(&["EVAL", unanswer, "1", "{ha:routing}:agents", &talking])
        .expect("the replica forgets the answer");
    assert_eq!(status, "available");
    // The third agent comes back from break as soon as the store answers again.
    let back = {
        let (store, nodes, agent) = (stores[1].clone(), nodes.clone(), ids[2].clone());
        tokio::spawn(async move {
            until_done!(
                "back from break",
                store.set_agent_status(
                    &agent,
                    AgentStatus::Available,
                    Timestamp::now().as_millisecond()
                )
            );
            for node in &nodes {
                node.wake();
            }
            Instant::now()
        })
    };

    let promoted_at = eventually("a Sentinel names the replica as master", async || {
        (named_master(&sentinels[0]).as_deref() == Some(replica.address().as_str()))
            .then(Instant::now)
    })
    .await;
    // The caller whose join the new master lacked is put back by its node, at its place.
    let reregistered_at = eventually("the lost caller is back in the queue", async || {
        let waiting = waiting_sids(&stores[1]).await?;
        waiting.contains(&last).then(Instant::now)
    })
    .await;
    // The agent whose answer the new master lacked is on that call again.
    let record = eventually("the lost answer is put back", async || {
        let record = stores[1].agent(&talking).await.ok()??;
        matches!(
            record.activity,
            careline::store::AgentActivity::OnCall { .. }
        )
        .then_some(record)
    })
    .await;
    assert_eq!(
        record.activity,
        careline::store::AgentActivity::OnCall {
            call_sid: "CA00".to_owned(),
            since_ms: match record.activity {
                careline::store::AgentActivity::OnCall { since_ms, .. } => since_ms,
                _ => 0,
            }
        }
    );
    {
        let offered = || -> HashSet<String> {
            ledger
                .lock()
                .expect("ledger")
                .offers
                .iter()
                .map(|(call, _, _)| call.clone())
                .collect()
        };
        // Offers go on meanwhile: whoever is neither waiting nor offered was lost.
        let offered_before = offered();
        let waiting = waiting_sids(&stores[1])
            .await
            .expect("the new master answers");
        let offered_after = offered();
        let mut in_order = waiting.clone();
        in_order.sort();
        assert_eq!(waiting, in_order, "the queue is in arrival order");
        for call in &expected {
            assert!(
                waiting.contains(call) != offered_after.contains(call)
                    || offered_after.contains(call) && !offered_before.contains(call),
                "{call} is neither waiting nor with an agent: {waiting:?}"
            );
        }
    }
    while let Some(done) = callers.join_next().await {
        done.expect("a caller failed");
    }

    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    let order: Vec<&str> = ledger
        .offers
        .iter()
        .map(|(call, _, _)| call.as_str())
        .collect();
    let arrival: Vec<String> = (0..calls).map(|n| format!("CA{n:02}")).collect();
    let mut offered_once = order.clone();
    offered_once.sort_unstable();
    assert_eq!(offered_once, arrival, "each caller offered once");
    // Reservations are made head first; two nodes' sessions may note two offers made a moment
    // apart in either order, but never further out of place.
    for (place, call) in order.iter().enumerate() {
        let arrived = arrival.iter().position(|sid| sid == call).expect("known");
        assert!(
            arrived.abs_diff(place) <= 1,
            "{call} (arrived {arrived}) was offered {place}th: {order:?}"
        );
    }
    assert_eq!(ledger.served.len(), calls);
    assert!(ledger.agents_in_hand.is_empty() && ledger.calls_in_hand.is_empty());
    let first_after = ledger
        .offers
        .iter()
        .find(|(_, _, at)| *at > killed)
        .map(|(_, _, at)| *at)
        .expect("callers were offered after the failover");
    assert_eq!(
        stores[1].master_address(),
        Some(replica.address()),
        "the store follows the promoted replica"
    );
    for store in &stores {
        for record in store.agents().await.expect("agents") {
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
    }

    // The event relays follow the master too: an event from node A reaches node B.
    for bus in &buses {
        let mut relaying = bus.relaying();
        tokio::time::timeout(DEADLINE, relaying.wait_for(|now| *now))
            .await
            .expect("the relay resubscribes on the new master")
            .expect("the bus is alive");
    }
    let mut on_b = buses[1].subscribe();
    let event = ChangeEvent::new(EventKind::Agent, Change::Status, 7).agent(&agent(0));
    let relayed = eventually("an event crosses to the other node", async || {
        buses[0].publish(event.clone());
        match tokio::time::timeout(Duration::from_millis(300), on_b.recv()).await {
            Ok(Ok(received)) if received == event => Some(()),
            _ => None,
        }
    })
    .await;
    assert_eq!(relayed, ());

    let answering_again = back.await.expect("the agent came back");
    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_millis();
    println!(
        "failover figures (from the master's SIGKILL): replica promoted by the Sentinels \
         {} ms; store answers again (a status change goes through) {} ms; the caller and the \
         answer the new master lacked put back {} ms; first reservation on the new master {} ms \
         (promotion → first reservation {} ms, of which {} ms settling after the new epoch)",
        ms(killed, promoted_at),
        ms(killed, answering_again),
        ms(killed, reregistered_at),
        ms(killed, first_after),
        ms(promoted_at, first_after),
        careline::dispatch::router::SETTLE_AFTER_NEW_EPOCH.as_millis(),
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_password_and_an_acl_user_come_from_the_credentials_and_are_never_shown() {
    let captured = logs();
    let admin_password = "admin-Pw-7c1e9";
    let careline_password = "acl-Pw-51d0b";
    let Some(server) = started(TestRedis::start_with(TestRedisOptions {
        password: Some(admin_password.to_owned()),
        // The ACL docs/redis.md recommends: careline's keys and channel, no dangerous
        // commands but the two careline reads (INFO for the data epoch, ROLE after a failover).
        acl_users: vec![format!(
            "careline on >{careline_password} ~careline:* ~{{careline:* &careline:events \
             +@all -@dangerous +info +role"
        )],
        ..TestRedisOptions::default()
    })) else {
        return;
    };

    let as_default =
        RedisAccess::url(&server.url()).with_credentials(Credentials::new(None, admin_password));
    let store = RedisStore::open(&as_default, "careline")
        .await
        .expect("the default user with requirepass");
    store.ping().await.expect("ping");

    let as_careline = RedisAccess::url(&server.url())
        .with_credentials(Credentials::new(Some("careline"), careline_password));
    let store = RedisStore::open(&as_careline, "careline")
        .await
        .expect("the ACL user");
    // What a node does: epoch, agents, a queue, a reservation, statistics.
    store.data_epoch().await.expect("data epoch (INFO)");
    let now = Timestamp::now().as_millisecond();
    store
        .register_agents(&[agent(0)], now)
        .await
        .expect("register");
    store
        .set_agent_status(&agent(0), AgentStatus::Available, now)
        .await
        .expect("available");
    let mut call = portal_call("CA1", now);
    call.node = "node-a".to_owned();
    store.enqueue(&call).await.expect("enqueue");
    let reservation = store
        .reserve(
            "portal",
            "node-a",
            &[agent(0)],
            careline::store::Strategy::LongestIdle,
            now,
        )
        .await
        .expect("reserve");
    assert!(reservation.is_some());
    store
        .record_queue_stat("portal", careline::store::QueueStatEvent::Offered, now)
        .await
        .expect("statistics");

    let refusals = [
        (
            RedisStore::open(&RedisAccess::url(&server.url()), "careline").await,
            "CARELINE_REDIS_PASSWORD",
        ),
        (
            RedisStore::open(
                &RedisAccess::url(&server.url())
                    .with_credentials(Credentials::new(Some("careline"), "Not-the-Pw-0")),
                "careline",
            )
            .await,
            "CARELINE_REDIS_USERNAME / CARELINE_REDIS_PASSWORD",
        ),
    ];
    for (refusal, names) in refusals {
        let error = match refusal {
            Err(error @ StoreError::Config(_)) => error,
            Err(other) => panic!("expected a configuration error, got {other}"),
            Ok(_) => panic!("Redis let careline in without the right credentials"),
        };
        let message = error.to_string();
        assert!(message.contains(names), "{message}");
        assert!(
            message.contains(&format!("127.0.0.1:{}", server.port())),
            "{message}"
        );
        assert!(!message.contains("Not-the-Pw-0"), "{message}");
        assert!(!format!("{error:?}").contains("Not-the-Pw-0"));
    }
    for secret in [admin_password, careline_password, "Not-the-Pw-0"] {
        assert_not_logged(&captured, secret);
    }
}

#[tokio::test]
async fn sentinels_and_the_master_they_name_take_the_same_credentials_by_default() {
    let captured = logs();
    let password = "shared-Pw-4e2aa";
    let Some(master) = started(TestRedis::start_with(TestRedisOptions {
        password: Some(password.to_owned()),
        ..TestRedisOptions::default()
    })) else {
        return;
    };
    let sentinel = TestRedis::sentinel(
        "careline",
        master.port(),
        1,
        TestSentinelOptions {
            master_password: Some(password.to_owned()),
            password: Some(password.to_owned()),
            tls: None,
        },
    )
    .expect("a sentinel with a password");
    let address: HostPort = sentinel.address().parse().expect("host:port");

    let with_password = RedisAccess::sentinels(vec![address.clone()], "careline")
        .with_credentials(Credentials::new(None, password));
    let store = RedisStore::open(&with_password, "careline")
        .await
        .expect("the master through a password-protected Sentinel");
    assert_eq!(store.master_address(), Some(master.address()));
    store.ping().await.expect("ping");

    let without = RedisAccess::sentinels(vec![address.clone()], "careline");
    let refused = match RedisStore::open(&without, "careline").await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("the Sentinel let careline in without a password"),
    };
    assert!(refused.contains("CARELINE_SENTINEL_PASSWORD"), "{refused}");
    assert!(refused.contains(&sentinel.address()), "{refused}");

    let unknown = RedisAccess::sentinels(vec![address], "not-monitored")
        .with_credentials(Credentials::new(None, password));
    let refused = match RedisStore::open(&unknown, "careline").await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a master the Sentinels do not know was found"),
    };
    assert!(refused.contains("not-monitored"), "{refused}");
    assert!(!refused.contains(password), "{refused}");
    assert_not_logged(&captured, password);
}

#[tokio::test]
async fn careline_serve_names_the_missing_variable_and_shows_its_master_but_never_a_password() {
    let password = "serve-Pw-90a4f";
    let Some(server) = started(TestRedis::start_with(TestRedisOptions {
        password: Some(password.to_owned()),
        ..TestRedisOptions::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_serve_config(dir.path(), &server.url());
    let listen = free_address();

    let serve = |password: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_careline"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", &listen])
            .env_clear()
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(password) = password {
            command.env("CARELINE_REDIS_PASSWORD", password);
        }
        command
    };

    let without = serve(None).output().expect("careline runs");
    let said = String::from_utf8_lossy(&without.stderr).into_owned()
        + &String::from_utf8_lossy(&without.stdout);
    assert!(!without.status.success(), "{said}");
    assert!(said.contains("CARELINE_REDIS_PASSWORD"), "{said}");

    let wrong = serve(Some("Wrong-Pw-33")).output().expect("careline runs");
    let said = String::from_utf8_lossy(&wrong.stderr).into_owned()
        + &String::from_utf8_lossy(&wrong.stdout);
    assert!(!wrong.status.success(), "{said}");
    assert!(said.contains("CARELINE_REDIS_PASSWORD"), "{said}");
    assert!(!said.contains("Wrong-Pw-33"), "{said}");

    let mut running = serve(Some(password)).spawn().expect("careline starts");
    let stderr = running.stderr.take().expect("stderr");
    let output = Arc::new(Mutex::new(String::new()));
    let reader = std::thread::spawn({
        let output = output.clone();
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                output.lock().expect("output").push_str(&(line + "\n"));
            }
        }
    });
    let health = eventually("careline answers /healthz", async || {
        let answer = reqwest::get(format!("http://{listen}/healthz"))
            .await
            .ok()?;
        serde_json::from_str::<serde_json::Value>(&answer.text().await.ok()?).ok()
    })
    .await;
    // Stopped by its id: this process started it.
    let _ = running.kill();
    let _ = running.wait();
    let _ = reader.join();
    assert_eq!(health["store"], "redis");
    assert_eq!(health["store_reachable"], true);
    assert_eq!(
        health["store_master"],
        format!("127.0.0.1:{}", server.port()),
        "{health}"
    );
    let said = output.lock().expect("output").clone();
    assert!(said.contains("careline listening"), "{said}");
    assert!(!said.contains(password), "the password reached the log");
    assert!(!health.to_string().contains(password));
}

/// A configuration `careline serve` accepts, on the Redis at `url`, with its prompts.
fn write_serve_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let prompts = dir.join("prompts");
    let mut ids: Vec<&str> = common::SHORT_PROMPTS.to_vec();
    ids.extend(careline::ivr::prompts::system_prompts());
    for id in ids {
        for language in ["en", "es"] {
            common::write_tone(&prompts.join(language).join(format!("{id}.wav")), 60);
        }
    }
    let path = dir.join("careline.toml");
    let flow = common::SHORT_FLOW
        .replace("PUBLIC_URL", "http://127.0.0.1:8080")
        .replace("PROMPTS", &prompts.display().to_string());
    std::fs::write(&path, format!("[store]\nurl = \"{url}\"\n{flow}")).expect("write config");
    path
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").to_string()
}

#[tokio::test]
async fn over_tls_careline_trusts_the_private_ca_it_is_given_and_refuses_another() {
    let _logs = logs();
    let certificates = tempfile::tempdir().expect("a temporary directory");
    let tls = match TestCertificates::generate(certificates.path()) {
        Ok(tls) => tls,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: {error}");
            return;
        }
        Err(error) => panic!("test certificates: {error}"),
    };
    let Some(server) = started(TestRedis::start_with(TestRedisOptions {
        tls: Some(tls.clone()),
        ..TestRedisOptions::default()
    })) else {
        return;
    };
    let url = server.tls_url().expect("a TLS port");

    let trusted = RedisAccess::url(&url)
        .with_tls_ca_file(&tls.ca)
        .expect("the CA file reads");
    let store = RedisStore::open(&trusted, "careline")
        .await
        .expect("TLS with the private CA");
    store.ping().await.expect("ping over TLS");
    let now = Timestamp::now().as_millisecond();
    store
        .register_agents(&[agent(0)], now)
        .await
        .expect("register over TLS");
    assert_eq!(
        store.master_address(),
        Some(
            url.trim_start_matches("rediss://")
                .trim_end_matches('/')
                .to_owned()
        )
    );

    for access in [
        RedisAccess::url(&url)
            .with_tls_ca_file(&tls.other_ca)
            .expect("the other CA file reads"),
        // Without tls_ca: the public web roots, which never signed a test certificate.
        RedisAccess::url(&url),
    ] {
        let refused = match RedisStore::open(&access, "careline").await {
            Err(error) => error.to_string(),
            Ok(_) => panic!("careline trusted a certificate its CA did not sign"),
        };
        assert!(refused.contains("certificate"), "{refused}");
        assert!(refused.contains("tls_ca"), "{refused}");
    }
    // A plain client on the TLS port gets nowhere either.
    let plain = url.replacen("rediss://", "redis://", 1);
    assert!(
        RedisStore::open(&RedisAccess::url(&plain), "careline")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn over_tls_the_sentinels_and_the_master_they_name_are_reached_with_the_private_ca() {
    let _logs = logs();
    let certificates = tempfile::tempdir().expect("a temporary directory");
    let tls = match TestCertificates::generate(certificates.path()) {
        Ok(tls) => tls,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: {error}");
            return;
        }
        Err(error) => panic!("test certificates: {error}"),
    };
    let Some(master) = started(TestRedis::start_with(TestRedisOptions {
        tls: Some(tls.clone()),
        ..TestRedisOptions::default()
    })) else {
        return;
    };
    let master_tls_port = master.tls_port().expect("a TLS port");
    let sentinel = TestRedis::sentinel(
        "careline",
        master_tls_port,
        1,
        TestSentinelOptions {
            tls: Some(tls.clone()),
            ..TestSentinelOptions::default()
        },
    )
    .expect("a TLS sentinel");
    let address: HostPort = sentinel
        .tls_address()
        .expect("a TLS port")
        .parse()
        .expect("host:port");

    let access = RedisAccess::sentinels(vec![address.clone()], "careline")
        .with_sentinel_tls(true)
        .with_tls_ca_file(&tls.ca)
        .expect("the CA file reads");
    let store = RedisStore::open(&access, "careline")
        .await
        .expect("the master through a TLS Sentinel, over TLS");
    assert_eq!(
        store.master_address(),
        master.tls_address(),
        "the master's TLS port, as the Sentinel names it"
    );
    store.ping().await.expect("ping over TLS");

    let untrusted = RedisAccess::sentinels(vec![address], "careline")
        .with_sentinel_tls(true)
        .with_tls_ca_file(&tls.other_ca)
        .expect("the other CA file reads");
    let refused = match RedisStore::open(&untrusted, "careline").await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("careline trusted a Sentinel its CA did not sign"),
    };
    assert!(refused.contains("certificate"), "{refused}");
}

#[test]
fn careline_check_points_at_the_store_key_and_line_of_each_problem() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("careline.toml");
    std::fs::write(
        &path,
        r#"[server]
public_url = "http://127.0.0.1:8080"

[store]
sentinels = ["10.0.0.5:26379", "10.0.0.6"]
sentinels_tls = true
tls_ca = "/nonexistent/careline-ca.pem"

[ivr]
entry = "main"
operator = "main"

[nodes.main]
type = "hangup"
"#,
    )
    .expect("write config");
    let loaded = careline::config::load(&path).expect("parses");
    let report = careline::config::check::check(&loaded);
    let found = |key: &str| {
        report
            .errors()
            .find(|finding| finding.key_path == key)
            .unwrap_or_else(|| panic!("no finding at {key}: {report}"))
    };
    assert!(found("store.sentinels").message.contains("master_name"));
    assert_eq!(found("store.sentinels").line, Some(5));
    assert_eq!(found("store.sentinels[1]").line, Some(5));
    assert_eq!(found("store.tls_ca").line, Some(7));
    assert!(
        found("store.tls_ca")
            .message
            .contains("/nonexistent/careline-ca.pem")
    );
}
