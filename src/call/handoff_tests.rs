//! Twilio's requests around a hand-off, served from the call records with an injected clock
//! (tokio's paused time): long waits, unanswered offers, lost dial statuses and lost calls.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::CallServices;
use super::registry::{CallRegistry, Clock};
use super::routes;
use super::running::{Running, RunningConfig};
use crate::config::Config;
use crate::dispatch::router::Router;
use crate::ivr::Flow;
use crate::media::prompt::PromptLibrary;
use crate::store::memory::MemoryStore;
use crate::store::{AgentActivity, AgentStatus, CallStep, QueuedCall, Reservation, Store};
use crate::telemetry::{EventBus, Metrics};

const CONFIG: &str = r#"
[server]
public_url = "https://ivr.example.org"

[ivr]
entry = "portal_queue"
operator = "portal_queue"

[nodes.portal_queue]
type = "queue"
queue = "portal"

[queues.portal]
skills = ["portal"]
ring_timeout_secs = 20
wrap_up_secs = 30

[[agents]]
id = "anguyen"
name = "A. Nguyen"
skills = ["portal"]
dial = "+15550000001"
"#;

struct Desk {
    services: CallServices,
    store: Arc<MemoryStore>,
    app: axum::Router,
    shutdown: CancellationToken,
}

/// One node's call services on a memory store, the router's loop running, everything on a clock
/// that starts now and moves with tokio's (paused) time.
async fn desk() -> Desk {
    let start = jiff::Timestamp::now();
    let origin = Instant::now();
    let clock: Clock = Arc::new(move || {
        let elapsed = i64::try_from((Instant::now() - origin).as_millis()).unwrap_or(0);
        jiff::Timestamp::from_millisecond(start.as_millisecond() + elapsed).unwrap_or(start)
    });
    let config: Config = toml::from_str(CONFIG).expect("test config parses");
    let store = Arc::new(MemoryStore::new());
    let shared: Arc<dyn Store> = store.clone();
    let events = Arc::new(EventBus::local("node-a".to_owned()));
    let metrics = Arc::new(Metrics::new());
    let router = Router::with_events(
        shared.clone(),
        &config,
        "node-a".to_owned(),
        clock.clone(),
        events.clone(),
    );
    router.attach_metrics(metrics.clone());
    let running = Running::from_parts(
        &config,
        Flow::from_config(&config).expect("flow compiles"),
        PromptLibrary::default(),
        std::path::Path::new("var/voicemail"),
    );
    let services = CallServices {
        running: Arc::new(RunningConfig::new(running, None)),
        calls: Arc::new(CallRegistry::with_clock(shared.clone(), "node-a", clock)),
        public_base: Arc::from("https://ivr.example.org"),
        websocket_base: Arc::from("wss://ivr.example.org"),
        twilio_auth_token: None,
        tracker: TaskTracker::new(),
        force_close: CancellationToken::new(),
        drain: CancellationToken::new(),
        store: shared,
        identity: None,
        router: router.clone(),
        events,
        metrics,
        twilio_account: None,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(router.run(shutdown.clone()));
    let app = axum::Router::new()
        .route("/twilio/next", post(routes::next))
        .route("/twilio/status", post(routes::status))
        .route("/twilio/dial-status", post(routes::dial_status))
        .with_state(services.clone());
    settle().await;
    Desk {
        services,
        store,
        app,
        shutdown,
    }
}

/// Let spawned tasks (the router's rounds, record notes) run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

impl Desk {
    fn now_ms(&self) -> i64 {
        self.services.router.now().as_millisecond()
    }

    /// Twilio posts a form to `path`; the TwiML (or empty body) and status come back.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .app
            .clone()
            .oneshot(
                Request::post(path)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await
            .expect("answered");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A call announced, its stream open on this node and its record saying it waits in the
    /// portal queue, joined through the router.
    async fn queued_caller(
        &self,
        sid: &str,
    ) -> (
        QueuedCall,
        tokio::sync::mpsc::UnboundedReceiver<Reservation>,
    ) {
        let calls = &self.services.calls;
        let token = calls
            .register(sid, "+13125550147")
            .await
            .expect("registered");
        calls.claim_stream(sid, &token).await.expect("claimed");
        let call = QueuedCall {
            call_sid: sid.to_owned(),
            queue: "portal".to_owned(),
            node: "node-a".to_owned(),
            enqueued_at_ms: self.now_ms(),
            priority: 0,
            verification_failed: false,
            callback_id: None,
        };
        self.join(&call).await
    }

    async fn join(
        &self,
        call: &QueuedCall,
    ) -> (
        QueuedCall,
        tokio::sync::mpsc::UnboundedReceiver<Reservation>,
    ) {
        let calls = &self.services.calls;
        calls
            .note(&call.call_sid, |record| {
                record.at_node = "portal_queue".to_owned();
                record.queued = Some(call.clone());
            })
            .await
            .expect("noted");
        let receiver = self
            .services
            .router
            .join(call.clone(), self.services.router.now())
            .await
            .expect("joined");
        (call.clone(), receiver)
    }

    /// Time passes as it does in service: the node renews its stream leases as it goes.
    async fn wait(&self, total: Duration) {
        let step = Duration::from_secs(5);
        let mut waited = Duration::ZERO;
        while waited < total {
            tokio::time::advance(step).await;
            waited += step;
            self.services.calls.renew_leases().await.expect("renewed");
            settle().await;
        }
    }

    async fn available(&self) {
        self.store
            .set_agent_status("anguyen", AgentStatus::Available, self.now_ms())
            .await
            .expect("status");
        self.services.router.wake();
        settle().await;
    }

    async fn activity(&self) -> AgentActivity {
        self.store
            .agent("anguyen")
            .await
            .expect("read")
            .expect("known")
            .activity_at(self.now_ms())
    }

    /// The session's hand-off: "connecting you now", then the stream closes with the dial.
    async fn hand_off(&self, call: &QueuedCall, reservation: &Reservation) {
        self.services
            .calls
            .stream_ended(
                &call.call_sid,
                Some(CallStep::Agent {
                    agent_id: reservation.agent_id.clone(),
                    ring_timeout_secs: 20,
                    call: call.clone(),
                    queue_node: "portal_queue".to_owned(),
                }),
            )
            .await
            .expect("ended");
    }

    /// A queued caller offered to the agent, whose phone Twilio now rings.
    async fn ringing_the_agent(&self, sid: &str) {
        let (call, mut reservations) = self.queued_caller(sid).await;
        self.available().await;
        let reservation = reservations.recv().await.expect("offered");
        self.hand_off(&call, &reservation).await;
        let (_, dial) = self.post("/twilio/next", &[("CallSid", sid)]).await;
        assert!(dial.contains("<Dial"), "{dial}");
    }

    async fn waiting(&self) -> Vec<String> {
        self.store
            .waiting("portal")
            .await
            .expect("waiting")
            .into_iter()
            .map(|call| call.call_sid)
            .collect()
    }
}

/// The value of the stream's `token` parameter in TwiML.
fn stream_token(twiml: &str) -> String {
    let marker = "name=\"token\" value=\"";
    let start = twiml.find(marker).expect("a token parameter") + marker.len();
    let end = twiml[start..].find('"').expect("the token ends") + start;
    twiml[start..end].to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_caller_who_waited_ten_minutes_is_rung_missed_back_at_the_front_then_answered() {
    let desk = desk().await;
    let (first, mut reservations) = desk.queued_caller("CA-first").await;
    desk.wait(Duration::from_secs(10 * 60)).await;
    // Calls keep arriving meanwhile: nothing about them touches the one waiting.
    let (_, _second_reservations) = desk.queued_caller("CA-second").await;
    for n in 0..20 {
        let sid = format!("CA-new-{n}");
        desk.services
            .calls
            .register(&sid, "+13125550100")
            .await
            .expect("registered");
    }
    desk.available().await;
    let reservation = reservations
        .recv()
        .await
        .expect("the longest waiting call is offered");
    assert_eq!(reservation.call.call_sid, "CA-first");
    desk.hand_off(&first, &reservation).await;
    let (_, dial) = desk.post("/twilio/next", &[("CallSid", "CA-first")]).await;
    assert!(
        dial.contains("<Dial") && dial.contains("+15550000001"),
        "{dial}"
    );

    // Twenty seconds of ringing, nobody answers: back at the front of the queue.
    desk.wait(Duration::from_secs(20)).await;
    let (_, resumed) = desk
        .post(
            "/twilio/dial-status",
            &[("CallSid", "CA-first"), ("DialCallStatus", "no-answer")],
        )
        .await;
    assert!(
        resumed.contains("<Stream"),
        "the call comes back to careline: {resumed}"
    );
    assert_eq!(desk.waiting().await, ["CA-first", "CA-second"]);

    // Its next stream joins with its place and is offered again; this time the agent answers.
    let claim = desk
        .services
        .calls
        .claim_stream("CA-first", &stream_token(&resumed))
        .await
        .expect("the new stream claims the call");
    assert_eq!(claim.queued.as_ref(), Some(&first), "its original place");
    let (first, mut reservations) = desk.join(&first).await;
    let reservation = reservations.recv().await.expect("offered again");
    desk.hand_off(&first, &reservation).await;
    desk.post("/twilio/next", &[("CallSid", "CA-first")]).await;
    desk.post(
        "/twilio/dial-status",
        &[
            ("CallSid", "CA-leg"),
            ("ParentCallSid", "CA-first"),
            ("CallStatus", "in-progress"),
        ],
    )
    .await;
    assert!(matches!(
        desk.activity().await,
        AgentActivity::OnCall { .. }
    ));
    desk.wait(Duration::from_secs(60)).await;
    let (_, done) = desk
        .post(
            "/twilio/dial-status",
            &[("CallSid", "CA-first"), ("DialCallStatus", "completed")],
        )
        .await;
    assert!(done.contains("<Hangup"), "{done}");
    assert!(matches!(
        desk.activity().await,
        AgentActivity::WrapUp { .. }
    ));
    desk.wait(Duration::from_secs(30)).await;
    assert!(
        matches!(desk.activity().await, AgentActivity::Reserved { ref call_sid, .. } if call_sid == "CA-second"),
        "free after wrap-up, the agent is offered the next caller"
    );
    desk.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_ring_whose_dial_status_never_comes_ends_with_the_status_callback() {
    let desk = desk().await;
    desk.ringing_the_agent("CA1").await;
    assert!(matches!(
        desk.activity().await,
        AgentActivity::Reserved { .. }
    ));
    // The caller hangs up during the ring; Twilio's dial status is lost, its status callback
    // comes.
    let (status, _) = desk
        .post(
            "/twilio/status",
            &[("CallSid", "CA1"), ("CallStatus", "completed")],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        desk.activity().await,
        AgentActivity::Idle,
        "the agent is released"
    );
    assert_eq!(desk.store.call_record("CA1").await.expect("read"), None);
    desk.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_talking_agent_is_released_by_the_status_callback_when_the_dial_status_is_lost() {
    let desk = desk().await;
    desk.ringing_the_agent("CA1").await;
    desk.post(
        "/twilio/dial-status",
        &[
            ("CallSid", "CA-leg"),
            ("ParentCallSid", "CA1"),
            ("CallStatus", "in-progress"),
        ],
    )
    .await;
    assert!(matches!(
        desk.activity().await,
        AgentActivity::OnCall { .. }
    ));
    desk.post(
        "/twilio/status",
        &[("CallSid", "CA1"), ("CallStatus", "completed")],
    )
    .await;
    assert!(
        matches!(desk.activity().await, AgentActivity::WrapUp { .. }),
        "the call ended: wrap-up, then free"
    );
    desk.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_ring_that_loses_every_signal_is_released_by_its_safety_deadline() {
    let desk = desk().await;
    desk.ringing_the_agent("CA1").await;
    assert!(matches!(
        desk.activity().await,
        AgentActivity::Reserved { .. }
    ));
    // Neither the dial status nor the status callback ever comes.
    desk.wait(Duration::from_secs(60)).await;
    assert!(
        matches!(desk.activity().await, AgentActivity::Reserved { .. }),
        "a minute is an ordinary ring plus a slow Twilio"
    );
    desk.wait(Duration::from_secs(120)).await;
    assert_eq!(
        desk.activity().await,
        AgentActivity::Idle,
        "released by the deadline"
    );
    assert_eq!(desk.store.call_record("CA1").await.expect("read"), None);
    assert_eq!(desk.services.metrics.counters().calls_expired, 1);
    desk.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_whose_node_vanished_and_never_came_back_leaves_the_queue() {
    let desk = desk().await;
    let (_call, _reservations) = desk.queued_caller("CA1").await;
    assert_eq!(desk.waiting().await, ["CA1"]);
    // The node carrying the stream stops renewing (it died) and Twilio never redirects.
    desk.services.router.forget("CA1");
    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    settle().await;
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert!(
        desk.waiting().await.is_empty(),
        "nothing is held for a call that is gone"
    );
    assert_eq!(desk.store.call_record("CA1").await.expect("read"), None);
    desk.shutdown.cancel();
}
