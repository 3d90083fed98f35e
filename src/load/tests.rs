//! Small load runs against a real careline server on loopback, with short generated prompts.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{LoadPlan, LoadReport, run};
use crate::call::CallServices;
use crate::call::registry::CallRegistry;
use crate::caller::KeySignalling;
use crate::config::Config;
use crate::ivr::Flow;
use crate::media::prompt::{CHUNK_BYTES, PromptAudio, PromptLibrary};
use crate::server::{self, AppState};
use crate::twilio::signature::websocket_base;

/// Two menus that lead to each other, so calls last; 9 says goodbye.
const LOOPING_FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "menu_a"
operator = "goodbye"

[nodes.menu_a]
type = "menu"
prompt = ["welcome"]
options = { "1" = "menu_b", "9" = "goodbye" }

[nodes.menu_b]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "menu_a", "9" = "goodbye" }

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]
"#;

struct Server {
    url: String,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_server() -> Server {
    let config: Config = toml::from_str(LOOPING_FLOW).expect("flow parses");
    let mut prompts = PromptLibrary::default();
    // 600 ms: two media messages per prompt, so a `pace:` mark falls inside each.
    let ids = ["welcome", "main_menu", "goodbye"]
        .into_iter()
        .chain(crate::config::system_prompts::system_prompts());
    for id in ids {
        prompts.insert(
            "en",
            id,
            PromptAudio::from_mulaw(vec![0x55; 10 * CHUNK_BYTES]),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let store: Arc<dyn crate::store::Store> = Arc::new(crate::store::memory::MemoryStore::new());
    let state = AppState {
        node: CallServices {
            router: crate::dispatch::router::Router::new(
                store.clone(),
                &config,
                "load-test".to_owned(),
            ),
            // The looping flow leaves no voicemail; nothing is written to its recordings dir.
            running: Arc::new(crate::call::running::RunningConfig::new(
                crate::call::running::Running::from_parts(
                    &config,
                    Flow::from_config(&config).expect("flow compiles"),
                    prompts,
                    &std::env::temp_dir().join("careline-load-test-voicemail"),
                ),
                None,
            )),
            calls: Arc::new(CallRegistry::new(store.clone(), "load-test")),
            public_base: Arc::from(url.as_str()),
            websocket_base: Arc::from(websocket_base(&url).expect("http URL")),
            twilio_auth_token: None,
            tracker: TaskTracker::new(),
            force_close: CancellationToken::new(),
            drain: CancellationToken::new(),
            store,
            identity: None,
            events: Arc::new(crate::telemetry::EventBus::local("load-test".to_owned())),
            metrics: Arc::default(),
            twilio_account: None,
        },
        webhook_secret: None,
        access: crate::admin::access::AccessPolicy::default(),
        limits: crate::connections::ConnectionLimits::of(&config.server),
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(server::serve(
        listener,
        state,
        shutdown.clone(),
        Duration::from_secs(1),
    ));
    Server { url, shutdown }
}

fn plan(url: &str, calls: usize, digits: &str) -> LoadPlan {
    LoadPlan {
        url: url.to_owned(),
        calls,
        ramp: Duration::from_millis(300),
        hold: Duration::from_secs(3),
        scripts: vec![digits.parse().expect("valid script")],
        repeat: true,
        signalling: KeySignalling::Events,
        auth_token: None,
        server_pid: Some(std::process::id()),
        max_p99: Duration::from_secs(1),
        progress: false,
    }
}

fn assert_clean(report: &LoadReport) {
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.calls_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_looping_through_menus_have_their_keys_answered_with_prompts() {
    let server = start_server().await;
    let report = run(plan(&server.url, 3, "w1")).await.expect("run");
    assert_clean(&report);
    assert_eq!(report.calls_started, 3, "no call ended early");
    assert_eq!(report.calls_completed, 3);
    assert_eq!(report.concurrent_peak, 3);
    assert!(
        report.key_to_prompt_all.samples >= 3,
        "each caller pressed 1 and heard the next menu: {:?}",
        report.key_to_prompt_all
    );
    let server_figures = report.server.expect("this process was measured");
    assert!(server_figures.rss_at_load_kib > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_careline_ends_is_replaced_by_a_new_one() {
    let server = start_server().await;
    let report = run(plan(&server.url, 1, "w9")).await.expect("run");
    assert_clean(&report);
    assert!(
        report.calls_started >= 2,
        "the goodbye ended the first call and another took its place"
    );
    assert_eq!(report.calls_completed, report.calls_started);
}

#[tokio::test]
async fn an_unreachable_server_fails_every_call_with_its_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let mut plan = plan(&url, 2, "w1");
    plan.server_pid = None;
    let report = run(plan).await.expect("run");
    assert!(!report.passed);
    assert_eq!(report.calls_completed, 0);
    assert!(report.calls_failed >= 2);
    assert!(report.errors.contains_key("webhook request failed"));
}
