//! A real careline server on `127.0.0.1:0` for end-to-end tests, with generated prompts.

#![allow(dead_code)]

pub mod alloc;
pub mod browser;
pub mod cluster;
pub mod desk;
pub mod http;
pub mod ledger;
pub mod redis;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use careline::caller::{CallOptions, CallReport, DigitScript, place_call};
use careline::config::LoadedConfig;
use careline::server::{self, AppState};
use careline::store::{AgentStatus, QueuedCall};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A flow with short prompts so calls finish in seconds.
pub const SHORT_FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 10

[prompts]
dir = "PROMPTS"
default_language = "en"

[ivr]
entry = "main"
operator = "operator"
first_digit_timeout_secs = 2
inter_digit_timeout_secs = 1
max_retries = 2

[nodes.main]
type = "menu"
prompt = ["welcome", "main_menu"]
options = { "1" = "account", "2" = "info", "9" = "spanish" }

[nodes.spanish]
type = "language"
language = "es"
next = "main"

[nodes.account]
type = "collect"
prompt = ["enter_account"]
min_digits = 4
max_digits = 8
next = "thanks"

[nodes.info]
type = "say"
prompt = ["info"]
next = "main"

[nodes.thanks]
type = "say"
prompt = ["thanks"]
next = "goodbye"

[nodes.operator]
type = "say"
prompt = ["operator_hours"]
next = "goodbye"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]
"#;

pub const SHORT_PROMPTS: [&str; 8] = [
    "welcome",
    "main_menu",
    "enter_account",
    "info",
    "thanks",
    "operator_hours",
    "goodbye",
    "language_option",
];

pub struct TestServer {
    pub base_url: String,
    pub shutdown: CancellationToken,
    pub state: AppState,
    pub handle: JoinHandle<std::io::Result<()>>,
    _dir: Option<TempDir>,
}

impl TestServer {
    /// Start the short flow with every prompt 240 ms long.
    pub async fn start() -> TestServer {
        TestServer::start_with(SHORT_FLOW, &["en", "es"], &SHORT_PROMPTS, None).await
    }

    /// Start `flow` (with `PUBLIC_URL`, `PROMPTS` and `RECORDINGS` placeholders) on a free port.
    pub async fn start_with(
        flow: &str,
        languages: &[&str],
        prompt_ids: &[&str],
        twilio_auth_token: Option<&str>,
    ) -> TestServer {
        let token = twilio_auth_token.map(Arc::from);
        TestServer::start_configured(flow, languages, prompt_ids, move |_, state| {
            state.node.twilio_auth_token = token;
        })
        .await
    }

    /// Start the short flow with `extra` configuration after it, letting `configure` adjust the
    /// state before serving.
    pub async fn start_short(
        extra: &str,
        configure: impl FnOnce(&LoadedConfig, &mut AppState),
    ) -> TestServer {
        let flow = format!("{SHORT_FLOW}\n{extra}");
        TestServer::start_configured(&flow, &["en", "es"], &SHORT_PROMPTS, configure).await
    }

    /// Start `flow`, letting `configure` adjust the state (secrets, identity) before serving.
    pub async fn start_configured(
        flow: &str,
        languages: &[&str],
        prompt_ids: &[&str],
        configure: impl FnOnce(&LoadedConfig, &mut AppState),
    ) -> TestServer {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = TempDir::new().expect("tempdir");
        let prompts = dir.path().join("prompts");
        write_prompts(&prompts, languages, prompt_ids, 240);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base_url = base_url(&listener);
        let config_path = dir.path().join("careline.toml");
        std::fs::write(
            &config_path,
            flow.replace("PUBLIC_URL", &base_url)
                .replace("PROMPTS", &prompts.display().to_string())
                .replace(
                    "RECORDINGS",
                    &dir.path().join("voicemail").display().to_string(),
                ),
        )
        .expect("write config");
        let (loaded, _warnings) =
            server::load_config(&config_path).unwrap_or_else(|error| panic!("{error}"));
        let mut server =
            TestServer::serve(listener, &loaded, Duration::from_secs(10), configure).await;
        server._dir = Some(dir);
        server
    }

    /// Serve `loaded` on `listener` (see [`base_url`]), letting `configure` adjust the state
    /// first; calls in progress at shutdown get `grace` to finish.
    pub async fn serve(
        listener: tokio::net::TcpListener,
        loaded: &LoadedConfig,
        grace: Duration,
        configure: impl FnOnce(&LoadedConfig, &mut AppState),
    ) -> TestServer {
        let base_url = base_url(&listener);
        let bound = listener.local_addr().expect("bound address");
        let mut state = AppState::load(loaded, bound)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .state;
        configure(loaded, &mut state);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server::serve(
            listener,
            state.clone(),
            shutdown.clone(),
            grace,
        ));
        TestServer {
            base_url,
            shutdown,
            state,
            handle,
            _dir: None,
        }
    }

    /// Shut the server down and require that it stops cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }

    pub fn ws_url(&self) -> String {
        format!("{}/twilio/media", self.base_url.replacen("http", "ws", 1))
    }
}

/// `http://ADDRESS` of a bound listener.
pub fn base_url(listener: &tokio::net::TcpListener) -> String {
    format!("http://{}", listener.local_addr().expect("local addr"))
}

/// A tone `millis` long in `dir/LANGUAGE/ID.wav` for each of `prompt_ids` and the system prompts,
/// in each language.
pub fn write_prompts(dir: &Path, languages: &[&str], prompt_ids: &[&str], millis: u32) {
    let mut ids: Vec<&str> = prompt_ids.to_vec();
    for id in careline::ivr::prompts::system_prompts() {
        ids.push(id);
    }
    for id in ids {
        for language in languages {
            write_tone(&dir.join(language).join(format!("{id}.wav")), millis);
        }
    }
}

/// A 16-bit 16 kHz WAV of a 440 Hz tone, `millis` long.
pub fn write_tone(path: &Path, millis: u32) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    let samples = 16 * millis;
    for n in 0..samples {
        let phase = n as f32 * 440.0 * std::f32::consts::TAU / 16_000.0;
        writer
            .write_sample((phase.sin() * 12_000.0) as i16)
            .expect("write sample");
    }
    writer.finalize().expect("finalize wav");
}

/// A digit script for the test caller.
pub fn script(text: &str) -> DigitScript {
    text.parse().expect("valid digit script")
}

/// Place a call and require that careline spoke the protocol as Twilio expects all along.
pub async fn call(options: CallOptions) -> CallReport {
    let report = place_call(options).await.expect("call completes");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    report
}

/// A call to `server` keying `digits`, hung up after `max_secs` at the latest, checked as
/// [`call`] checks it.
pub async fn call_keying(server: &TestServer, digits: &str, max_secs: u64) -> CallReport {
    call(
        CallOptions::new(&server.base_url)
            .digits(script(digits))
            .max_duration(Duration::from_secs(max_secs)),
    )
    .await
}

/// Make `agent` available and let the router know. Right after a Redis restart the store may not
/// know the agent until the node registers it again, so this tries for a while.
pub async fn make_available(server: &TestServer, agent: &str) {
    for _ in 0..100 {
        let now = jiff::Timestamp::now().as_millisecond();
        if server
            .state
            .node
            .store
            .set_agent_status(agent, AgentStatus::Available, now)
            .await
            .is_ok()
        {
            server.state.node.router.wake();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("agent {agent} could not be made available");
}

/// A call waiting in `queue` since `enqueued_at_ms`, put in by `node`, with no priority.
pub fn queued_call(call_sid: &str, queue: &str, node: &str, enqueued_at_ms: i64) -> QueuedCall {
    QueuedCall {
        call_sid: call_sid.to_owned(),
        queue: queue.to_owned(),
        node: node.to_owned(),
        enqueued_at_ms,
        priority: 0,
        verification_failed: false,
        callback_id: None,
    }
}

/// Put `call` in its queue as a session does: the call's record (written by the voice webhook)
/// first says it waits, then the store has it waiting.
pub async fn enqueue_announced(store: &dyn careline::store::Store, call: &QueuedCall) {
    for _ in 0..10 {
        let mut record = store
            .call_record(&call.call_sid)
            .await
            .expect("the record")
            .expect("the voice webhook announced the call");
        let read = record.version;
        record.queued = Some(call.clone());
        if let careline::store::RecordWrite::Written { .. } = store
            .replace_call_record(&record, read)
            .await
            .expect("write the record")
        {
            store.enqueue(call).await.expect("enqueue");
            return;
        }
    }
    panic!("the record of {} kept changing", call.call_sid);
}
