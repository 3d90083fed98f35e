//! What only the Redis store has to get right: its key schema, sharing one Redis between
//! deployments, and staying honest when Redis is down, frozen, restarted empty, or holds data
//! careline did not write. (Behaviour shared with the memory store is in the conformance suite.)

mod common;

use careline::store::redis::RedisStore;
use careline::store::test_redis::TestRedis;
use careline::store::{
    AgentStatus, CallOutcomeStat, CallbackRequest, CallbackStatus, QueueStatEvent, QueuedCall,
    StatsInterval, Store, StoreError, Strategy,
};
use redis::AsyncCommands;

const T0: i64 = 1_767_268_800_000;
const DAY: i64 = 86_400_000;

fn portal_call(sid: &str, enqueued_at_ms: i64) -> QueuedCall {
    common::queued_call(sid, "portal", "node-a", enqueued_at_ms)
}

fn callback(id: &str) -> CallbackRequest {
    CallbackRequest {
        id: id.to_owned(),
        queue: "portal".to_owned(),
        number: "+13125550147".to_owned(),
        call_sid: "CA1".to_owned(),
        requested_at_ms: T0,
        place_ms: T0,
        due_at_ms: T0,
        status: CallbackStatus::Pending,
        completed_at_ms: None,
        ..CallbackRequest::default()
    }
}

async fn raw(server: &TestRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("test URL")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection to the test redis-server")
}

async fn waiting_sids(store: &dyn Store) -> Vec<String> {
    store
        .waiting("portal")
        .await
        .expect("waiting")
        .into_iter()
        .map(|call| call.call_sid)
        .collect()
}

/// A few attempts while the connection manager notices the server came back.
async fn eventually<T>(mut attempt: impl AsyncFnMut() -> Result<T, StoreError>) -> T {
    let mut last = None;
    for _ in 0..40 {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the store never recovered: {last:?}");
}

#[tokio::test]
async fn keys_live_under_the_prefix_and_routing_keys_share_one_hash_tag() {
    let server = common::redis::start();
    let store = common::redis::store(&server, "clinic").await;
    store
        .register_agents(&["anguyen".to_owned()], T0)
        .await
        .expect("register");
    store
        .set_agent_status("anguyen", AgentStatus::Available, T0)
        .await
        .expect("available");
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    store
        .enqueue(&portal_call("CA2", T0))
        .await
        .expect("enqueue");
    store
        .reserve(
            "portal",
            "node-a",
            &["anguyen".to_owned()],
            Strategy::RoundRobin,
            T0,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    store.data_epoch().await.expect("epoch");
    store
        .record_verification_failure("rec-9c1e", DAY, T0)
        .await
        .expect("failure");
    store
        .put_reset_code("pt-42", "hash", 5, T0 + 600_000)
        .await
        .expect("code");
    store
        .add_callback(&callback("cb1"))
        .await
        .expect("callback");
    store
        .complete_callback("cb1", T0)
        .await
        .expect("callback done");

    let mut redis = raw(&server).await;
    let mut keys: Vec<String> = redis.keys("*").await.expect("KEYS");
    keys.sort();
    assert_eq!(
        keys,
        [
            "clinic:failures:{rec-9c1e}",
            "clinic:reset_code:{pt-42}",
            "{clinic:routing}:agents",
            "{clinic:routing}:callbacks",
            "{clinic:routing}:calls",
            "{clinic:routing}:epoch",
            "{clinic:routing}:last_served",
            "{clinic:routing}:reserved",
            "{clinic:routing}:waiting",
        ]
    );
    // Identity keys clear themselves away; routing keys live as long as the calls and agents.
    for key in ["clinic:failures:{rec-9c1e}", "clinic:reset_code:{pt-42}"] {
        let ttl: i64 = redis.pttl(key).await.expect("PTTL");
        assert!(ttl > 0, "{key} has no expiry");
    }
    let failures_ttl: i64 = redis
        .pttl("clinic:failures:{rec-9c1e}")
        .await
        .expect("PTTL");
    assert!(failures_ttl <= DAY);
    let agents_ttl: i64 = redis.pttl("{clinic:routing}:agents").await.expect("PTTL");
    assert_eq!(agents_ttl, -1);
}

#[tokio::test]
async fn statistics_live_under_their_own_hash_tag_and_expire() {
    let server = common::redis::start();
    let store = common::redis::store(&server, "clinic").await;
    // 12:07 UTC: the day bucket starts at midnight, the hour and the quarter hour at 12:00.
    let at = T0 + 7 * 60_000;
    store
        .record_queue_stat("portal", QueueStatEvent::Answered { wait_ms: 4_000 }, at)
        .await
        .expect("record");
    store
        .record_call_outcome(CallOutcomeStat::Contained, at)
        .await
        .expect("record");
    let day = T0 - 12 * 3_600_000;
    let mut connection = raw(&server).await;
    let mut keys: Vec<String> = connection.keys("*").await.expect("keys");
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{{clinic:stats}}:calls:15m:{T0}"),
            format!("{{clinic:stats}}:calls:day:{day}"),
            format!("{{clinic:stats}}:calls:hour:{T0}"),
            format!("{{clinic:stats}}:queue:portal:15m:{T0}"),
            format!("{{clinic:stats}}:queue:portal:day:{day}"),
            format!("{{clinic:stats}}:queue:portal:hour:{T0}"),
        ]
    );
    let counters: std::collections::HashMap<String, i64> = connection
        .hgetall(format!("{{clinic:stats}}:queue:portal:day:{day}"))
        .await
        .expect("hgetall");
    assert_eq!(
        counters,
        [
            ("answered".to_owned(), 1),
            ("answered_within_20s".to_owned(), 1),
            ("answer_wait_ms".to_owned(), 4_000),
        ]
        .into_iter()
        .collect()
    );
    let day_ttl: i64 = connection
        .pttl(format!("{{clinic:stats}}:queue:portal:day:{day}"))
        .await
        .expect("pttl");
    let quarter_ttl: i64 = connection
        .pttl(format!("{{clinic:stats}}:calls:15m:{T0}"))
        .await
        .expect("pttl");
    assert!(day_ttl > 399 * DAY && day_ttl <= 400 * DAY, "{day_ttl}");
    assert!(
        quarter_ttl > 39 * DAY && quarter_ttl <= 40 * DAY,
        "{quarter_ttl}"
    );
}

#[tokio::test]
async fn statistics_careline_did_not_write_are_reported_not_trusted() {
    let server = common::redis::start();
    let store = common::redis::store(&server, "clinic").await;
    let day = T0 - 12 * 3_600_000;
    let mut connection = raw(&server).await;
    let _: () = connection
        .hset(
            format!("{{clinic:stats}}:queue:portal:day:{day}"),
            "offered",
            "lots",
        )
        .await
        .expect("hset");
    let error = store
        .queue_stats("portal", T0, T0 + 1, StatsInterval::Day)
        .await
        .expect_err("not a count");
    assert!(
        matches!(&error, StoreError::Corrupt { key, .. } if key.contains("queue:portal:day")),
        "{error:?}"
    );
    let error = store
        .queue_stats_total("portal", T0, T0 + 1, StatsInterval::Day)
        .await
        .expect_err("not a count");
    assert!(
        matches!(&error, StoreError::Corrupt { key, detail } if key.contains("queue:portal:day") && detail.contains("offered")),
        "{error:?}"
    );
    let _: () = connection
        .set(format!("{{clinic:stats}}:calls:day:{day}"), "a string")
        .await
        .expect("set");
    assert!(matches!(
        store
            .call_outcome_stats(T0, T0 + 1, StatsInterval::Day)
            .await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn two_deployments_on_one_redis_do_not_see_each_other() {
    let server = common::redis::start();
    let north = common::redis::store(&server, "north").await;
    let south = common::redis::store(&server, "south").await;
    north
        .enqueue(&portal_call("CA-north", T0))
        .await
        .expect("enqueue");
    south
        .enqueue(&portal_call("CA-south", T0))
        .await
        .expect("enqueue");
    north
        .record_verification_failure("rec-1", DAY, T0)
        .await
        .expect("failure");

    assert_eq!(waiting_sids(&north).await, ["CA-north"]);
    assert_eq!(waiting_sids(&south).await, ["CA-south"]);
    assert_eq!(
        south
            .verification_failures("rec-1", DAY, T0)
            .await
            .expect("count"),
        0
    );
    assert_ne!(
        north.data_epoch().await.expect("epoch"),
        south.data_epoch().await.expect("epoch")
    );
}

#[tokio::test]
async fn a_redis_that_is_down_is_reported_as_unavailable_and_rejoined_when_back() {
    let mut server = common::redis::start();
    server.stop();

    let refused = RedisStore::connect(&server.url(), "careline").await;
    let Err(StoreError::Unavailable(message)) = refused else {
        panic!("connecting to a stopped Redis must fail as unavailable");
    };
    assert!(message.contains("Redis"), "{message}");

    // A node may start while Redis is down, and carry on once it is back.
    let store = RedisStore::connect_lazy(&server.url(), "careline").expect("lazy store");
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.enqueue(&portal_call("CA1", T0)).await,
        Err(StoreError::Unavailable(_))
    ));
    let reserve = store
        .reserve(
            "portal",
            "node-a",
            &["anguyen".to_owned()],
            Strategy::LongestIdle,
            T0,
        )
        .await;
    assert!(matches!(reserve, Err(StoreError::Unavailable(_))));

    server.start_again().expect("redis-server back");
    eventually(async || store.ping().await).await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    assert_eq!(waiting_sids(&store).await, ["CA1"]);
}

#[tokio::test]
async fn a_redis_that_stops_answering_fails_operations_instead_of_hanging_them() {
    let server = common::redis::start();
    let store = common::redis::store(&server, "careline").await;
    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");

    server.freeze().expect("freeze redis-server");
    let position = store.position("portal", "CA1").await;
    server.thaw().expect("thaw redis-server");
    let Err(StoreError::Unavailable(message)) = position else {
        panic!("a frozen Redis must fail the operation, got {position:?}");
    };
    assert!(message.contains("did not answer"), "{message}");

    let place = eventually(async || store.position("portal", "CA1").await).await;
    assert_eq!(place, Some(1));
}

#[tokio::test]
async fn after_redis_restarts_empty_nodes_put_their_calls_back_in_their_original_places() {
    let mut server = common::redis::start();
    let store = common::redis::store(&server, "careline").await;
    let agents = vec!["anguyen".to_owned()];
    store.register_agents(&agents, T0).await.expect("register");
    let calls = [
        portal_call("CA1", T0 + 1_000),
        portal_call("CA2", T0 + 2_000),
        portal_call("CA3", T0 + 3_000),
    ];
    for call in &calls {
        store.enqueue(call).await.expect("enqueue");
    }
    let epoch_before = store.data_epoch().await.expect("epoch");

    server.restart().expect("restart redis-server");

    // The node notices through the epoch, then registers what it carries again.
    let epoch_after = eventually(async || store.data_epoch().await).await;
    assert_ne!(
        epoch_after, epoch_before,
        "an emptied Redis gets a new epoch"
    );
    assert!(waiting_sids(&store).await.is_empty());
    store
        .register_agents(&agents, T0 + 10_000)
        .await
        .expect("register");
    for call in [&calls[2], &calls[0], &calls[1]] {
        store.enqueue(call).await.expect("re-enqueue");
    }
    assert_eq!(waiting_sids(&store).await, ["CA1", "CA2", "CA3"]);
    store
        .enqueue(&portal_call("CA4", T0 + 20_000))
        .await
        .expect("a new caller");
    assert_eq!(
        store.position("portal", "CA4").await.expect("position"),
        Some(4)
    );

    store
        .set_agent_status("anguyen", AgentStatus::Available, T0 + 20_000)
        .await
        .expect("available");
    let reservation = store
        .reserve(
            "portal",
            "node-a",
            &agents,
            Strategy::LongestIdle,
            T0 + 21_000,
        )
        .await
        .expect("reserve")
        .expect("reserved");
    assert_eq!(reservation.call, calls[0]);
}

#[tokio::test]
async fn data_careline_did_not_write_is_reported_not_trusted() {
    let server = common::redis::start();
    let store = common::redis::store(&server, "careline").await;
    let mut redis = raw(&server).await;
    let _: () = redis
        .hset("{careline:routing}:agents", "anguyen", "{not json")
        .await
        .expect("HSET");
    let _: () = redis
        .hset(
            "{careline:routing}:agents",
            "bkim",
            r#"{"status":"available"}"#,
        )
        .await
        .expect("HSET");

    assert!(matches!(
        store.agent("anguyen").await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.agents().await,
        Err(StoreError::Corrupt { .. })
    ));
    let status = store.set_agent_status("bkim", AgentStatus::Break, T0).await;
    let Err(StoreError::Corrupt { key, detail }) = status else {
        panic!("an agent record without its fields is corrupt, got {status:?}");
    };
    assert_eq!(key, "{careline:routing}:agents");
    assert!(detail.contains("bkim"), "{detail}");

    store
        .enqueue(&portal_call("CA1", T0))
        .await
        .expect("enqueue");
    let reserve = store
        .reserve(
            "portal",
            "node-a",
            &["anguyen".to_owned(), "bkim".to_owned()],
            Strategy::LongestIdle,
            T0,
        )
        .await;
    assert!(
        matches!(reserve, Err(StoreError::Corrupt { .. })),
        "{reserve:?}"
    );

    let _: () = redis
        .set("careline:reset_code:{pt-1}", "a string, not a hash")
        .await
        .expect("SET");
    let check = store.check_reset_code("pt-1", "hash", T0).await;
    assert!(
        matches!(check, Err(StoreError::Corrupt { .. })),
        "{check:?}"
    );

    // A callback request careline did not write is reported without repeating its contents,
    // which may hold a phone number.
    let _: () = redis
        .hset(
            "{careline:routing}:callbacks",
            "cb1",
            r#"{"id":"cb1","number":"+13125550147","due_at_ms":"soon"}"#,
        )
        .await
        .expect("HSET");
    let listed = store.callbacks().await;
    let Err(StoreError::Corrupt { key, detail }) = listed else {
        panic!("a callback without its fields is corrupt, got {listed:?}");
    };
    assert_eq!(key, "{careline:routing}:callbacks");
    assert!(detail.contains("cb1"), "{detail}");
    assert!(!detail.contains("5550147"), "{detail}");
    let _: () = redis
        .hset("{careline:routing}:callbacks", "cb2", "{not json")
        .await
        .expect("HSET");
    let done = store.complete_callback("cb2", T0).await;
    assert!(matches!(done, Err(StoreError::Corrupt { .. })), "{done:?}");

    // Nor a call record: it holds the caller's number.
    let _: () = redis
        .hset(
            "{careline:routing}:records",
            "CA9",
            r#"{"call_sid":"CA9","from":13125550147,"phase":"menus"}"#,
        )
        .await
        .expect("HSET");
    let record = store.call_record("CA9").await;
    let Err(StoreError::Corrupt { key, detail }) = record else {
        panic!("a call record without its fields is corrupt, got {record:?}");
    };
    assert_eq!(key, "{careline:routing}:records");
    assert!(!detail.contains("5550147"), "{detail}");
}

#[tokio::test]
async fn unusable_store_settings_are_refused_with_what_to_do() {
    let braces = RedisStore::connect_lazy("redis://127.0.0.1:1/", "care{line}");
    let Err(StoreError::Config(message)) = braces else {
        panic!("a key prefix with braces must be refused");
    };
    assert!(message.contains("key_prefix"), "{message}");

    let not_redis = RedisStore::connect_lazy("http://:s3cret@example.org/", "careline");
    let Err(StoreError::Config(message)) = not_redis else {
        panic!("a URL that is not redis:// must be refused");
    };
    assert!(
        !message.contains("s3cret"),
        "the password leaked: {message}"
    );
    assert!(message.contains("redis://"), "{message}");
}
