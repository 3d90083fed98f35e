//! Callbacks careline places itself, against a fake of Twilio's REST API started here (axum on
//! `127.0.0.1:0`): it checks the Basic auth header and the `Calls.json` parameters, then drives
//! the call through careline's webhooks as Twilio would — the patient answering (the test
//! caller runs the TwiML: `<Gather>`, `<Play>`, `<Dial>`), an answering machine, no answer — or
//! refuses with a 500. Retry delays are one second.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use careline::caller::{
    CallOptions, CallReport, DialBehaviour, DialStatus, OutboundAnswer, TranscriptEntry,
    answer_outbound_call,
};
use careline::store::{AgentActivity, AgentStatus, CallbackRequest, CallbackStatus};
use careline::twilio::rest::TwilioAccount;
use careline::twilio::signature::{SIGNATURE_HEADER, signature};
use careline::twilio::twiml::DialTarget;
use common::{TestServer, make_available, script};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

const ACCOUNT: &str = "ACcallbacktest0123456789abcdef0123";
const TOKEN: &str = "twilio-auth-token-for-callback-tests";
const DESK: &str = "+13125550100";
const PATIENT: &str = "+13125550147";

const FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 5

[prompts]
dir = "PROMPTS"
default_language = "en"

[ivr]
entry = "main"
operator = "portal_queue"

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "portal_queue", "9" = "spanish" }

[nodes.spanish]
type = "language"
language = "es"
next = "main"

[nodes.portal_queue]
type = "queue"
queue = "portal"

[queues.portal]
skills = ["portal"]
ring_timeout_secs = 20
wrap_up_secs = 2

[callbacks]
caller_id = "+13125550100"
retry_after_secs = 1
max_attempts = 2
api_base = "FAKE_TWILIO"
machine_message = true

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
client = "anguyen"
"#;

/// What the fake does with the next `Calls.json`.
#[derive(Debug, Clone)]
enum Twilio {
    /// The phone is answered (`AnsweredBy`), the test caller runs careline's TwiML with
    /// `digits` and the agent's phone behaving as `agent`.
    Answered {
        answered_by: &'static str,
        digits: &'static str,
        agent: DialBehaviour,
    },
    /// It rings out: `CallStatus=no-answer` to the status callback.
    NoAnswer,
    /// The REST API itself fails.
    ServerError,
}

/// One `Calls.json` the fake received.
#[derive(Debug, Clone)]
struct Placed {
    at: Instant,
    authorized: bool,
    form: HashMap<String, String>,
}

struct Fake {
    plan: Mutex<VecDeque<Twilio>>,
    placed: Mutex<Vec<Placed>>,
    reports: mpsc::UnboundedSender<CallReport>,
}

async fn calls_json(
    State(fake): State<Arc<Fake>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"))
    );
    let authorized = account == ACCOUNT
        && headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            == Some(expected.as_str());
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    fake.placed.lock().expect("lock").push(Placed {
        at: Instant::now(),
        authorized,
        form: form.clone(),
    });
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": 20003, "message": "Authenticate"})),
        )
            .into_response();
    }
    let next = fake.plan.lock().expect("lock").pop_front();
    let Some(next) = next else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 21220, "message": "no call planned"})),
        )
            .into_response();
    };
    if let Twilio::ServerError = next {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"code": 20500, "message": "Internal Server Error"})),
        )
            .into_response();
    }
    let sid = format!("CA{:032x}", rand_sid());
    let reports = fake.reports.clone();
    let call_sid = sid.clone();
    let to = form.get("To").cloned();
    tokio::spawn(async move {
        // Twilio dials, then runs the call.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drive(next, &call_sid, &form, reports).await;
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({"sid": sid, "status": "queued", "to": to})),
    )
        .into_response()
}

fn rand_sid() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Run the call as Twilio would.
async fn drive(
    plan: Twilio,
    call_sid: &str,
    form: &HashMap<String, String>,
    reports: mpsc::UnboundedSender<CallReport>,
) {
    let url = form.get("Url").cloned().unwrap_or_default();
    let status_callback = form.get("StatusCallback").cloned();
    match plan {
        Twilio::Answered {
            answered_by,
            digits,
            agent,
        } => {
            let origin = url.split("/twilio/").next().unwrap_or_default().to_owned();
            let report = answer_outbound_call(
                CallOptions::new(origin)
                    .call_sid(call_sid)
                    .account_sid(ACCOUNT)
                    .auth_token(TOKEN)
                    .from(DESK)
                    .to(PATIENT)
                    .digits(script(digits))
                    .dial(vec![agent])
                    .max_duration(Duration::from_secs(60)),
                OutboundAnswer {
                    url,
                    status_callback,
                    answered_by: answered_by.to_owned(),
                },
            )
            .await
            .expect("the callback call runs");
            let _ = reports.send(report);
        }
        Twilio::NoAnswer => {
            let Some(status_url) = status_callback else {
                return;
            };
            let params: Vec<(String, String)> = [
                ("AccountSid", ACCOUNT),
                ("CallSid", call_sid),
                ("CallStatus", "no-answer"),
                ("Direction", "outbound-api"),
                ("From", DESK),
                ("To", PATIENT),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
            let answer = reqwest::Client::new()
                .post(&status_url)
                .header(SIGNATURE_HEADER, signature(TOKEN, &status_url, &params))
                .form(&params)
                .send()
                .await
                .expect("careline answers the status callback");
            assert!(answer.status().is_success(), "{}", answer.status());
        }
        Twilio::ServerError => {}
    }
}

struct Desk {
    server: TestServer,
    fake: Arc<Fake>,
    reports: mpsc::UnboundedReceiver<CallReport>,
}

async fn desk(plan: Vec<Twilio>) -> Desk {
    let (reports_in, reports) = mpsc::unbounded_channel();
    let fake = Arc::new(Fake {
        plan: Mutex::new(plan.into()),
        placed: Mutex::new(Vec::new()),
        reports: reports_in,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_url = common::base_url(&listener);
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            axum::routing::post(calls_json),
        )
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let flow = FLOW.replace("FAKE_TWILIO", &fake_url);
    let server = TestServer::start_configured(&flow, &["en", "es"], &["main_menu"], |_, state| {
        state.node.twilio_auth_token = Some(Arc::from(TOKEN));
        state.node.twilio_account = Some(Arc::new(TwilioAccount::new(ACCOUNT, ACCOUNT, TOKEN)));
    })
    .await;
    Desk {
        server,
        fake,
        reports,
    }
}

impl Desk {
    /// A callback request for the portal queue, due now, asked in `language`.
    async fn request(&self, id: &str, language: &str) {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let request = CallbackRequest {
            id: id.to_owned(),
            queue: "portal".to_owned(),
            number: PATIENT.to_owned(),
            call_sid: "CAasked0001".to_owned(),
            requested_at_ms: now_ms - 60_000,
            place_ms: now_ms - 90_000,
            due_at_ms: now_ms,
            language: language.to_owned(),
            patient_ref: Some("P000101".to_owned()),
            ..CallbackRequest::default()
        };
        self.server
            .state
            .node
            .store
            .add_callback(&request)
            .await
            .expect("the store answers");
    }

    async fn callback(&self, id: &str) -> CallbackRequest {
        self.server
            .state
            .node
            .store
            .callback(id)
            .await
            .expect("the store answers")
            .expect("the request is kept")
    }

    /// Wait until the request leaves `pending`; on the way, note the kinds of call the
    /// agent's workspace showed.
    async fn until_settled(&self, id: &str) -> (CallbackRequest, Vec<String>) {
        let mut seen = Vec::new();
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let request = self.callback(id).await;
            if request.status != CallbackStatus::Pending {
                return (request, seen);
            }
            let workspace: serde_json::Value = serde_json::from_str(
                &client
                    .get(format!(
                        "{}/api/v1/agents/anguyen/workspace",
                        self.server.base_url
                    ))
                    .send()
                    .await
                    .expect("the workspace answers")
                    .text()
                    .await
                    .expect("a body"),
            )
            .expect("JSON");
            if let Some(kind) = workspace["call"]["kind"].as_str()
                && seen.last().map(String::as_str) != Some(kind)
            {
                seen.push(kind.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "callback {id} is still pending: {:?}",
            self.callback(id).await
        );
    }

    fn placed(&self) -> Vec<Placed> {
        self.fake.placed.lock().expect("lock").clone()
    }

    async fn queue_today(&self) -> careline::store::QueueCounters {
        let now = jiff::Timestamp::now().as_millisecond();
        self.server
            .state
            .node
            .store
            .queue_stats_total(
                "portal",
                now - 3_600_000,
                now + 1,
                careline::store::StatsInterval::Hour,
            )
            .await
            .expect("statistics")
    }

    async fn agent(&self) -> careline::store::AgentRecord {
        self.server
            .state
            .node
            .store
            .agent("anguyen")
            .await
            .expect("the store answers")
            .expect("registered")
    }
}

fn outcomes(request: &CallbackRequest) -> Vec<&'static str> {
    request
        .attempts
        .iter()
        .map(|attempt| {
            attempt
                .outcome
                .map_or("in progress", |outcome| outcome.as_str())
        })
        .collect()
}

#[tokio::test]
async fn an_answered_callback_asks_the_patient_in_their_language_then_rings_the_reserved_agent() {
    let mut desk = desk(vec![Twilio::Answered {
        answered_by: "human",
        digits: "1",
        agent: DialBehaviour::Answer {
            after: Duration::from_millis(500),
            talk: Duration::from_secs(1),
        },
    }])
    .await;
    make_available(&desk.server, "anguyen").await;
    desk.request("CAasked0001-1", "es").await;

    let (request, seen) = desk.until_settled("CAasked0001-1").await;
    assert_eq!(request.status, CallbackStatus::Done, "{request:?}");
    assert_eq!(outcomes(&request), ["connected"]);
    assert_eq!(request.attempts[0].agent_id, "anguyen");
    assert!(request.attempts[0].twilio_sid.is_some());
    assert!(
        seen.contains(&"callback".to_owned()),
        "the agent's workspace showed the callback: {seen:?}"
    );

    // What careline asked Twilio for.
    let placed = desk.placed();
    assert_eq!(placed.len(), 1);
    let form = &placed[0].form;
    assert!(
        placed[0].authorized,
        "Basic auth with the account and token"
    );
    assert_eq!(form["To"], PATIENT);
    assert_eq!(form["From"], DESK);
    assert_eq!(form["MachineDetection"], "Enable");
    assert_eq!(form["Timeout"], "30");
    let base = &desk.server.base_url;
    assert_eq!(
        form["Url"],
        format!("{base}/twilio/callback/answer?id=CAasked0001-1&attempt=1")
    );
    assert_eq!(
        form["StatusCallback"],
        format!("{base}/twilio/callback/status?id=CAasked0001-1&attempt=1")
    );

    // What the patient heard and did, as Twilio ran careline's TwiML.
    let report = desk.reports.recv().await.expect("the call ran");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    let heard: Vec<&str> = report
        .transcript
        .iter()
        .filter_map(|entry| match entry {
            TranscriptEntry::Heard { url, duration_ms } if *duration_ms > 0 => Some(url.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        heard,
        [format!(
            "{base}/twilio/callback/prompt/es/callback_returning.wav"
        )],
        "the prompt in the language they called in"
    );
    assert_eq!(report.sent_digits(), "1");
    assert_eq!(
        report.dials(),
        [(
            DialTarget::Client("anguyen".to_owned()),
            DialStatus::Completed
        )]
    );

    // The agent took it: one call today, wrapping up (or done wrapping up).
    let agent = desk.agent().await;
    assert_eq!(agent.calls_today, 1);
    assert!(matches!(
        agent.activity,
        AgentActivity::WrapUp { .. } | AgentActivity::Idle
    ));
    let today = desk.queue_today().await;
    assert_eq!((today.callback_attempts, today.callbacks_connected), (1, 1));
    assert_eq!(
        desk.server.state.node.metrics.counters().callbacks_placed,
        1
    );

    // The worklist shows the attempt and how it went.
    let listed: serde_json::Value = serde_json::from_str(
        &reqwest::Client::new()
            .get(format!("{base}/api/v1/callbacks"))
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("a body"),
    )
    .expect("JSON");
    assert_eq!(listed[0]["status"], "done");
    assert_eq!(listed[0]["attempts"][0]["outcome"], "connected");
    assert_eq!(listed[0]["identity"], "verified");
    desk.server.stop().await;
}

#[tokio::test]
async fn a_machine_then_no_answer_frees_the_agent_each_time_and_fails_after_max_attempts() {
    let mut desk = desk(vec![
        Twilio::Answered {
            answered_by: "machine_start",
            digits: "w",
            agent: DialBehaviour::NoAnswer,
        },
        Twilio::NoAnswer,
    ])
    .await;
    make_available(&desk.server, "anguyen").await;
    desk.request("CAasked0001-2", "en").await;

    let (request, _) = desk.until_settled("CAasked0001-2").await;
    assert_eq!(request.status, CallbackStatus::Failed, "{request:?}");
    assert_eq!(outcomes(&request), ["machine", "no_answer"]);

    // The machine heard the short message; nobody was dialed.
    let report = desk.reports.recv().await.expect("the first call ran");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert!(report.dials().is_empty());
    assert!(
        report.transcript.iter().any(|entry| matches!(
            entry,
            TranscriptEntry::Heard { url, .. } if url.ends_with("/en/callback_machine.wav")
        )),
        "{:?}",
        report.transcript
    );

    // Retried after the delay, no sooner.
    let placed = desk.placed();
    assert_eq!(placed.len(), 2);
    let first_ended = request.attempts[0].ended_at_ms.expect("ended");
    assert!(
        request.attempts[1].started_at_ms - first_ended >= 1_000,
        "retry_after_secs = 1: {:?}",
        request.attempts
    );
    assert!(placed[1].at - placed[0].at >= Duration::from_secs(1));

    // The agent was freed each time and is available, idle, with no call counted.
    let agent = desk.agent().await;
    assert_eq!(agent.status, AgentStatus::Available);
    assert_eq!(agent.activity, AgentActivity::Idle);
    assert_eq!(agent.calls_today, 0);
    assert!(
        desk.server
            .state
            .node
            .store
            .waiting("portal")
            .await
            .expect("waiting")
            .is_empty(),
        "nothing is left in the queue"
    );
    let today = desk.queue_today().await;
    assert_eq!((today.callback_attempts, today.callbacks_failed), (2, 1));
    desk.server.stop().await;
}

#[tokio::test]
async fn a_rest_api_error_is_counted_and_retried_and_the_request_is_not_lost() {
    let mut desk = desk(vec![
        Twilio::ServerError,
        Twilio::Answered {
            answered_by: "human",
            digits: "1",
            agent: DialBehaviour::Answer {
                after: Duration::from_millis(200),
                talk: Duration::from_millis(500),
            },
        },
    ])
    .await;
    make_available(&desk.server, "anguyen").await;
    desk.request("CAasked0001-3", "en").await;

    let (request, _) = desk.until_settled("CAasked0001-3").await;
    assert_eq!(request.status, CallbackStatus::Done, "{request:?}");
    assert_eq!(outcomes(&request), ["rest_error", "connected"]);
    assert_eq!(desk.placed().len(), 2);
    assert!(desk.placed().iter().all(|placed| placed.authorized));
    let counters = desk.server.state.node.metrics.counters();
    assert_eq!(
        (counters.callback_rest_errors, counters.callbacks_placed),
        (1, 1)
    );
    let report = desk.reports.recv().await.expect("the second call ran");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert_eq!(
        report.dials(),
        [(
            DialTarget::Client("anguyen".to_owned()),
            DialStatus::Completed
        )]
    );
    desk.server.stop().await;
}
