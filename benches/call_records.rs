//! How long Twilio waits for careline between streams, with the call's record in the store:
//! `POST /twilio/next` (read the record, answer the dial careline chose) and
//! `POST /twilio/dial-status` (the dial's outcome), each a compare-and-set of the record, on
//! the embedded store and on a Redis of its own over loopback. Prints p50 and p99 of each.
//!
//! `cargo bench --bench call_records` (needs `redis-server`; the Redis half is skipped without).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use axum::routing::post;
use careline::call::CallServices;
use careline::call::registry::CallRegistry;
use careline::call::routes;
use careline::call::running::{Running, RunningConfig};
use careline::config::Config;
use careline::dispatch::router::Router;
use careline::ivr::Flow;
use careline::media::prompt::PromptLibrary;
use careline::store::memory::MemoryStore;
use careline::store::redis::RedisStore;
use careline::store::test_redis::TestRedis;
use careline::store::{CallStep, Store};
use careline::telemetry::{EventBus, Metrics};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

const CONFIG: &str = r#"
[server]
public_url = "https://ivr.example.org"

[ivr]
entry = "main"
operator = "main"

[nodes.main]
type = "hangup"
prompt = []
"#;

const CALLS: usize = 2_000;

fn services(store: Arc<dyn Store>) -> CallServices {
    let config: Config = toml::from_str(CONFIG).expect("bench config parses");
    let running = Running::from_parts(
        &config,
        Flow::from_config(&config).expect("flow compiles"),
        PromptLibrary::default(),
        std::path::Path::new("var/voicemail"),
    );
    CallServices {
        running: Arc::new(RunningConfig::new(running, None)),
        calls: Arc::new(CallRegistry::new(store.clone(), "bench")),
        public_base: Arc::from("https://ivr.example.org"),
        websocket_base: Arc::from("wss://ivr.example.org"),
        twilio_auth_token: None,
        twilio_account: None,
        tracker: TaskTracker::new(),
        force_close: CancellationToken::new(),
        drain: CancellationToken::new(),
        router: Router::new(store.clone(), &config, "bench".to_owned()),
        store,
        identity: None,
        events: Arc::new(EventBus::local("bench".to_owned())),
        metrics: Arc::new(Metrics::new()),
    }
}

async fn post_form(app: &axum::Router, path: &str, form: &[(&str, &str)]) -> Duration {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let request = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    let started = Instant::now();
    let response = app.clone().oneshot(request).await.expect("answered");
    axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn measure(label: &str, store: Arc<dyn Store>) {
    let services = services(store);
    let app = axum::Router::new()
        .route("/twilio/next", post(routes::next))
        .route("/twilio/dial-status", post(routes::dial_status))
        .with_state(services.clone());
    let transfer = CallStep::Transfer {
        number: "+18005550100".to_owned(),
        timeout_secs: 30,
        on_failure: None,
    };
    let (mut next, mut status) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
    for n in 0..CALLS {
        let sid = format!("CA{n:032x}");
        let calls = &services.calls;
        let token = calls
            .register(&sid, "+13125550147")
            .await
            .expect("register");
        calls.claim_stream(&sid, &token).await.expect("claim");
        calls
            .stream_ended(&sid, Some(transfer.clone()))
            .await
            .expect("ended");
        next.push(post_form(&app, "/twilio/next", &[("CallSid", &sid)]).await);
        status.push(
            post_form(
                &app,
                "/twilio/dial-status",
                &[("CallSid", &sid), ("DialCallStatus", "completed")],
            )
            .await,
        );
    }
    next.sort();
    status.sort();
    for (route, times) in [("/twilio/next", &next), ("/twilio/dial-status", &status)] {
        println!(
            "{label:>6} {route:<20} p50 {:>7.1} µs   p99 {:>7.1} µs   ({CALLS} calls)",
            percentile(times, 0.5).as_secs_f64() * 1e6,
            percentile(times, 0.99).as_secs_f64() * 1e6,
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        measure("memory", Arc::new(MemoryStore::new())).await;
        match TestRedis::start() {
            Ok(redis) => {
                let store = RedisStore::connect(&redis.url(), "bench")
                    .await
                    .expect("connect to the bench's redis-server");
                measure("redis", Arc::new(store)).await;
            }
            Err(error) => println!("redis: skipped ({error})"),
        }
    });
}
