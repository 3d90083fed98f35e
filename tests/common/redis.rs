//! Redis for tests: a `redis-server` of the test's own (the library's `TestRedis`), a store on
//! it, a store on a port nobody listens on, and the `[store]` section naming a Redis.

use careline::store::redis::RedisStore;
use careline::store::test_redis::TestRedis;

/// Start a `redis-server` of our own on a free port, in a temporary directory.
pub fn start() -> TestRedis {
    TestRedis::start().expect("a redis-server of our own")
}

/// A store on `redis`, its keys under `prefix`.
pub async fn store(redis: &TestRedis, prefix: &str) -> RedisStore {
    RedisStore::connect(&redis.url(), prefix)
        .await
        .expect("the test redis-server answers")
}

/// A store on a loopback port nobody listens on: its operations fail, start-up and the IVR do not.
pub fn unreachable_store() -> RedisStore {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    RedisStore::connect_lazy(&format!("redis://127.0.0.1:{port}"), "careline-test")
        .expect("a lazy client")
}

/// The `[store]` section for the Redis at `url` with keys under `prefix`; none for the embedded
/// store.
pub fn store_section(url: Option<&str>, prefix: &str) -> String {
    url.map(|url| format!("[store]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n"))
        .unwrap_or_default()
}
