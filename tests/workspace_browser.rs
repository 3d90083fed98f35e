//! The agent workspace in a real headless Chromium (see `tests/common/browser.rs`): an agent
//! signs in with their own token and goes available; a caller verifies their identity in the
//! IVR and is offered to them, and the page shows the queue, the menu path and "verified" with
//! the patient, then follows the agent's state from ringing to on call to wrap-up with no
//! reload; a voicemail plays in the page (its audio fetched with the token, loaded with a
//! duration) and is marked handled; a patient's lockout is cleared after a confirmation. A
//! screenshot of the offered call is written to `docs/workspace.png` (shown in the README).
//!
//! Needs Debian's `chromium` (`scripts/test` installs it); without it the test says so and
//! passes.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use careline::caller::{CallOptions, DialBehaviour, place_call};
use careline::identity::{IdentityService, ImportOptions, Pepper, import_file};
use careline::media::recording::{NewVoicemail, VoicemailRecorder};
use common::browser::{Browser, Page, find_chromium};
use common::desk::{DOB, PEPPER, ZIP};
use common::http::require_tokens;
use common::{TestServer, script};
use serde_json::json;

const AGENT: &str = "anguyen-workspace-token-0123456789";
const SUPERVISOR: &str = "supervisor-workspace-token-0123456789";

const FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 10

[prompts]
dir = "PROMPTS"
default_language = "en"

[ivr]
entry = "main"
operator = "portal_queue"
first_digit_timeout_secs = 5
inter_digit_timeout_secs = 2

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "verify", "2" = "portal_queue" }

[nodes.verify]
type = "verify"
identifiers = ["dob", "zip"]
on_success = "portal_queue"
on_failure = "portal_queue"

[nodes.portal_queue]
type = "queue"
queue = "portal"

[nodes.closed]
type = "hangup"
prompt = ["after_hours"]

[queues.portal]
skills = ["portal"]
when_closed = "closed"
ring_timeout_secs = 20
wrap_up_secs = 30

[identity]
directory = { kind = "file", path = "DIRECTORY" }
audit_log = "AUDIT"
max_attempts = 3
lockout_failures = 5

[recordings]
dir = "RECORDINGS"

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
client = "anguyen"
"#;

/// `docs/workspace.png` in the source tree: the README shows it.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workspace.png")
}

fn field(name: &str) -> String {
    format!(r#"document.querySelector('[data-field="{name}"]')?.textContent ?? null"#)
}

const STATE: &str = r#"document.querySelector('[data-field="state"]')?.dataset.state ?? null"#;

#[tokio::test]
async fn an_agent_takes_a_verified_call_plays_a_voicemail_and_unlocks_a_patient() {
    let Some(chromium) = find_chromium() else {
        eprintln!(
            "SKIPPED: no chromium on PATH (install it with `sudo apt-get install -y chromium`, \
             or set CARELINE_CHROMIUM); scripts/test installs it"
        );
        return;
    };
    let dir = tempfile::TempDir::new().expect("tempdir");
    let directory = dir.path().join("directory.jsonl");
    let pepper = Pepper::new(PEPPER).expect("pepper");
    import_file(
        Path::new("config/patients.example.csv"),
        &directory,
        &pepper,
        &ImportOptions {
            today: jiff::civil::date(2026, 11, 25),
            skip_invalid: false,
        },
    )
    .expect("import the example patients");
    let flow = FLOW
        .replace("DIRECTORY", &directory.display().to_string())
        .replace(
            "AUDIT",
            &dir.path().join("audit.jsonl").display().to_string(),
        );
    let server = TestServer::start_configured(
        &flow,
        &["en"],
        &["main_menu", "after_hours"],
        |loaded, state| {
            require_tokens(
                state,
                &format!("agent:anguyen:{AGENT},supervisor:{SUPERVISOR}"),
            );
            let identity = IdentityService::open(
                &loaded.config,
                |path| path.to_path_buf(),
                Arc::new(Pepper::new(PEPPER).expect("pepper")),
                None,
                state.node.store.clone(),
            )
            .expect("identity opens")
            .expect("identity configured")
            .with_metrics(state.node.metrics.clone());
            state.node.identity = Some(Arc::new(identity));
        },
    )
    .await;
    let store = server.state.node.store.clone();

    // A message a caller left earlier, one second long.
    let recordings = server.state.node.recordings_dir();
    let mut recorder = VoicemailRecorder::create(
        &recordings,
        NewVoicemail {
            call_sid: "CAvoicemail0001",
            caller_id_masked: "•••••••••47",
            node: "leave_message",
            max: Duration::from_secs(60),
            started_at: jiff::Timestamp::now(),
        },
    )
    .expect("a voicemail starts");
    for _ in 0..50 {
        recorder.push_mulaw(&[0x40; 160]).expect("audio written");
    }
    let voicemail = recorder.finish(jiff::Timestamp::now()).expect("saved");

    // Patient P000102 guessed at five times: locked out of self-service.
    let locked = pepper.pseudonym("P000102");
    let now_ms = jiff::Timestamp::now().as_millisecond();
    for n in 0..5 {
        store
            .record_verification_failure(locked.as_str(), 86_400_000, now_ms + n)
            .await
            .expect("the store answers");
    }

    // A callback request careline tried once already: the patient did not answer.
    let mut request = careline::store::CallbackRequest {
        id: "CAcallback0001-1".to_owned(),
        queue: "portal".to_owned(),
        number: "+13125550147".to_owned(),
        call_sid: "CAcallback0001".to_owned(),
        requested_at_ms: now_ms - 600_000,
        place_ms: now_ms - 900_000,
        due_at_ms: now_ms + 300_000,
        verification_failed: true,
        ..careline::store::CallbackRequest::default()
    };
    let attempt = request.start_attempt("anguyen", now_ms - 60_000);
    request.finish_attempt(
        attempt,
        careline::store::AttemptOutcome::NoAnswer,
        now_ms - 30_000,
        330_000,
        3,
    );
    store
        .add_callback(&request)
        .await
        .expect("the store answers");

    let browser = Browser::launch(&chromium).await;
    let mut page = Page::open(&browser).await;
    page.call(
        "Page.navigate",
        json!({"url": format!("{}/agent", server.base_url)}),
    )
    .await;
    page.until(
        "document.getElementById('token-overlay')?.hidden === false",
        json!(true),
    )
    .await;
    page.evaluate(&format!(
        "document.getElementById('token').value = '{AGENT}'; \
         document.getElementById('token-form').requestSubmit(); true"
    ))
    .await;
    page.until(
        "document.getElementById('agent-name')?.textContent ?? null",
        json!("Anh Nguyen"),
    )
    .await;
    page.until(STATE, json!("offline")).await;
    page.until(
        "document.getElementById('connection').dataset.state",
        json!("live"),
    )
    .await;
    assert_eq!(
        page.evaluate("sessionStorage.length === 1 && localStorage.length === 0")
            .await,
        json!(true),
        "the token is kept in the tab's session storage only"
    );
    page.evaluate("window.workspaceTestMark = 'loaded once'; true")
        .await;

    // The agent goes available with the button.
    page.evaluate(r#"document.querySelector('[data-status="available"]').click(); true"#)
        .await;
    page.until(STATE, json!("available")).await;
    assert_eq!(
        store
            .agent("anguyen")
            .await
            .expect("the store answers")
            .expect("registered")
            .status,
        careline::store::AgentStatus::Available
    );

    // A caller verifies as patient P000101 and waits in the portal queue; the agent's phone
    // rings for 3 s, they talk for 4 s.
    let call = tokio::spawn(place_call(
        CallOptions::new(&server.base_url)
            .digits(script(&format!("w1,w{DOB}#,w{ZIP}#")))
            .dial(vec![DialBehaviour::Answer {
                after: Duration::from_secs(3),
                talk: Duration::from_secs(4),
            }])
            .max_duration(Duration::from_secs(90)),
    ));
    page.until(STATE, json!("reserved")).await;
    page.until(
        r#"document.getElementById('call')?.dataset.kind ?? null"#,
        json!("call"),
    )
    .await;
    assert_eq!(page.evaluate(&field("call-queue")).await, json!("portal"));
    assert_eq!(
        page.evaluate(
            r#"Array.from(document.querySelectorAll('[data-field="call-path"] li')).map((li) => li.textContent)"#
        )
        .await,
        json!(["main", "verify", "portal_queue"])
    );
    assert_eq!(
        page.evaluate(r#"document.querySelector('[data-field="call-identity"]').dataset.identity"#)
            .await,
        json!("verified")
    );
    let identity = page.evaluate(&field("call-identity")).await;
    assert!(
        identity
            .as_str()
            .is_some_and(|text| text.contains("Verified") && text.contains("P000101")),
        "{identity}"
    );
    let text = page.evaluate("document.body.innerText").await;
    for keyed in [DOB, ZIP] {
        assert!(
            !text.as_str().unwrap_or_default().contains(keyed),
            "the page shows a digit the caller keyed"
        );
    }
    // The worklist: the callback with how its attempt went, its number in full for the agent.
    let callback_row = r#"document.querySelector('[data-callback="CAcallback0001-1"]')"#;
    assert_eq!(
        page.evaluate(&format!(
            "Array.from({callback_row}.querySelectorAll('.attempts li')).map((li) => li.dataset.outcome)"
        ))
        .await,
        json!(["no_answer"])
    );
    assert!(
        page.evaluate(&format!("{callback_row}.textContent"))
            .await
            .as_str()
            .is_some_and(|row| row.contains("+13125550147") && row.contains("Verification failed")),
    );
    let screenshot = screenshot_path();
    page.screenshot(&screenshot).await;
    println!("workspace screenshot: {}", screenshot.display());

    page.until(STATE, json!("on_call")).await;
    assert_eq!(page.evaluate(&field("call-state")).await, json!("on call"));
    page.until(STATE, json!("wrap_up")).await;
    let countdown = page.evaluate(&field("wrap-up-left")).await;
    assert!(
        countdown
            .as_str()
            .is_some_and(|text| text.starts_with("ready again in 0:")),
        "{countdown}"
    );
    assert_eq!(
        page.evaluate("document.getElementById('call').dataset.kind")
            .await,
        json!("none"),
        "the call is over"
    );
    call.await
        .expect("the call task ends")
        .expect("the call completes");

    // The voicemail plays from a blob: URL made from audio fetched with the token.
    let item = format!(
        r#"document.querySelector('[data-voicemail="{}"]')"#,
        voicemail.id
    );
    page.until(&format!("{item} !== null"), json!(true)).await;
    page.evaluate(&format!(
        r#"{item}.querySelector('[data-action="play"]').click(); true"#
    ))
    .await;
    page.until(
        &format!(
            r#"(() => {{ const audio = {item}.querySelector('audio');
                 return audio.src.startsWith('blob:') && audio.readyState >= 1
                   && Math.round(audio.duration) === 1; }})()"#
        ),
        json!(true),
    )
    .await;
    page.evaluate(&format!(
        r#"{item}.querySelector('[data-action="handled"]').click(); true"#
    ))
    .await;
    page.until(&format!("{item}.dataset.handled"), json!("true"))
        .await;
    let listed = careline::media::recording::list_voicemails(&recordings).expect("listed");
    assert_eq!(listed[0].handled_by.as_deref(), Some("agent:anguyen"));

    // Unlocking asks first; only "Yes, unlock" clears the lockout.
    page.evaluate(
        "document.getElementById('unlock-ref').value = 'P000102'; \
         document.getElementById('unlock-form').requestSubmit(); true",
    )
    .await;
    page.until(
        "document.getElementById('unlock-confirm').hidden",
        json!(false),
    )
    .await;
    let failures = |store: Arc<dyn careline::store::Store>| {
        let record = locked.as_str().to_owned();
        async move {
            store
                .verification_failures(&record, 86_400_000, jiff::Timestamp::now().as_millisecond())
                .await
                .expect("the store answers")
        }
    };
    assert_eq!(
        failures(store.clone()).await,
        5,
        "nothing before the confirmation"
    );
    page.evaluate("document.getElementById('unlock-yes').click(); true")
        .await;
    page.until(
        "document.getElementById('unlock-result').dataset.ok ?? null",
        json!("true"),
    )
    .await;
    assert_eq!(failures(store.clone()).await, 0, "the lockout is cleared");
    assert_eq!(
        page.evaluate("window.workspaceTestMark ?? null").await,
        json!("loaded once"),
        "all of it without a reload"
    );

    // A supervisor's token opens the same agent's page; a viewer's API calls are refused.
    let client = reqwest::Client::new();
    let answer = client
        .get(format!(
            "{}/api/v1/agents/anguyen/workspace",
            server.base_url
        ))
        .bearer_auth(SUPERVISOR)
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    server.shutdown.cancel();
}
