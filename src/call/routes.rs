//! Twilio's HTTP side: the voice webhook, the media WebSocket upgrade, what to do after a stream,
//! status callbacks — each checked against `X-Twilio-Signature` when an auth token is set.

use axum::body::Bytes;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::CallServices;
use super::registry::NextStep;
use super::session::{SessionContext, configure_upgrade, run_session};
use crate::dispatch::router::LeaveReason;
use crate::store::stats::QueueStatEvent;
use crate::twilio::{signature, twiml};

/// A refused or malformed Twilio request. The body says what happened, never request data.
#[derive(Debug, thiserror::Error)]
pub enum TwilioRequestError {
    #[error("missing or invalid X-Twilio-Signature")]
    BadSignature,
    #[error("the request lacks the `{0}` parameter Twilio always sends")]
    MissingParam(&'static str),
}

impl IntoResponse for TwilioRequestError {
    fn into_response(self) -> Response {
        let status = match self {
            TwilioRequestError::BadSignature => StatusCode::FORBIDDEN,
            TwilioRequestError::MissingParam(_) => StatusCode::BAD_REQUEST,
        };
        tracing::warn!(error = %self, "Twilio request refused");
        (status, self.to_string()).into_response()
    }
}

/// A form-encoded Twilio webhook, signature checked.
struct TwilioForm {
    params: Vec<(String, String)>,
}

impl TwilioForm {
    fn parse(
        state: &CallServices,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<TwilioForm, TwilioRequestError> {
        let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        if let Some(token) = &state.twilio_auth_token {
            let url = format!(
                "{}{}",
                state.public_base,
                uri.path_and_query()
                    .map(|pq| pq.as_str())
                    .unwrap_or(uri.path())
            );
            check_signature(token, &url, &params, headers)?;
        }
        Ok(TwilioForm { params })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn call_sid(&self) -> Result<&str, TwilioRequestError> {
        self.get("CallSid")
            .filter(|sid| !sid.is_empty())
            .ok_or(TwilioRequestError::MissingParam("CallSid"))
    }
}

fn check_signature(
    token: &str,
    url: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<(), TwilioRequestError> {
    let claimed = headers
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok())
        .ok_or(TwilioRequestError::BadSignature)?;
    if signature::validate(token, url, params, claimed) {
        Ok(())
    } else {
        Err(TwilioRequestError::BadSignature)
    }
}

fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// `POST /twilio/voice`: a call arrives. Answer with a bidirectional stream to careline.
pub async fn voice(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let call_sid = form.call_sid()?;
    let from = form.get("From").unwrap_or("");
    let token = state.calls.register(call_sid, from);
    tracing::info!(%call_sid, "incoming call");
    Ok(twiml_response(stream_to_careline(&state, from, &token)))
}

/// `<Connect><Stream>` to careline's media WebSocket with the caller ID and the stream's
/// token as parameters, then `<Redirect>` to `/twilio/next` for when careline closes it.
fn stream_to_careline(state: &CallServices, from: &str, token: &str) -> String {
    twiml::connect_stream(
        &format!("{}/twilio/media", state.websocket_base),
        &[("from", from), ("token", token)],
        &format!("{}/twilio/next", state.public_base),
    )
}

/// `GET /twilio/media`: the Media Streams WebSocket.
pub async fn media(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, TwilioRequestError> {
    if let Some(token) = &state.twilio_auth_token {
        // Twilio signs the ws(s):// URL with no parameters.
        let url = format!(
            "{}{}",
            state.websocket_base,
            uri.path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or(uri.path())
        );
        check_signature(token, &url, &[], &headers)?;
    }
    // The configuration running now; the call keeps it even if a reload replaces it.
    let running = state.running.current();
    let context = SessionContext {
        flow: running.flow.clone(),
        prompts: running.prompts.clone(),
        calls: state.calls.clone(),
        force_close: state.force_close.clone(),
        dtmf: running.dtmf,
        identity: state.identity.clone(),
        router: state.router.clone(),
        roster: running.roster.clone(),
        store: state.store.clone(),
        recordings_dir: running.recordings_dir.clone(),
        metrics: state.metrics.clone(),
    };
    let tracker = state.tracker.clone();
    Ok(configure_upgrade(upgrade).on_upgrade(move |socket| {
        let (sink, stream) = socket.split();
        let session = run_session(stream, sink, context);
        async move {
            tracker.spawn(session);
        }
    }))
}

/// `POST /twilio/next`: the stream closed; what now.
pub async fn next(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let call_sid = form.call_sid()?;
    let dial_status_url = format!("{}/twilio/dial-status", state.public_base);
    let xml = match state.calls.next_step(call_sid) {
        NextStep::Hangup => twiml::hangup(),
        NextStep::Agent(dial) => {
            tracing::info!(%call_sid, agent = %dial.agent_id, "dialing the reserved agent");
            twiml::dial(
                dial.target,
                &dial_status_url,
                dial.ring_timeout_secs,
                None,
                Some(&dial_status_url),
            )
        }
        NextStep::Transfer(transfer) => {
            tracing::info!(%call_sid, "transferring the call");
            twiml::dial(
                twiml::DialTarget::Number(transfer.number),
                &dial_status_url,
                transfer.timeout_secs,
                None,
                None,
            )
        }
    };
    Ok(twiml_response(xml))
}

/// The TwiML that sends a call back to careline on a new media stream resuming at `node`.
fn resume_stream(
    state: &CallServices,
    call_sid: &str,
    node: std::sync::Arc<str>,
    queued: Option<crate::store::QueuedCall>,
) -> String {
    match state.calls.resume(call_sid, node, queued) {
        Some((token, from)) => stream_to_careline(state, &from, &token),
        None => twiml::hangup(),
    }
}

/// `POST /twilio/status`: the call's status changed; a finished call is forgotten at once.
pub async fn status(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let call_sid = form.call_sid()?;
    let status = form.get("CallStatus").unwrap_or("");
    if matches!(
        status,
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    ) {
        tracing::info!(%call_sid, status, "call ended");
        state.calls.remove(call_sid);
        // Wherever the call was, it waits in no queue now and no agent stays reserved for it.
        state.router.leave(call_sid, LeaveReason::HungUp).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /twilio/dial-status`: the outcome of a `<Dial>`.
pub async fn dial_status(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let call_sid = form.call_sid()?;
    let now = jiff::Timestamp::now();
    let Some(outcome) = form.get("DialCallStatus") else {
        // The dialed leg's own status callback: the far end answered.
        if form.get("CallStatus") == Some("in-progress") {
            let parent = form.get("ParentCallSid").unwrap_or(call_sid);
            if let Some(NextStep::Agent(dial)) = state.calls.dial_answered(parent) {
                tracing::info!(call_sid = %parent, agent = %dial.agent_id, "agent answered");
                let wait_ms = now.as_millisecond() - dial.call.enqueued_at_ms;
                state.router.record(
                    &dial.call.queue,
                    QueueStatEvent::Answered {
                        wait_ms: wait_ms.max(0),
                    },
                );
                if let Err(error) = state
                    .router
                    .offer_answered(&dial.agent_id, parent, now)
                    .await
                {
                    tracing::warn!(%error, "the answer could not be recorded in the store");
                }
            }
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    tracing::info!(%call_sid, outcome, "dial finished");
    let xml = match state.calls.dial_finished(call_sid) {
        Some((NextStep::Agent(dial), answered_for)) => match outcome {
            "completed" => {
                let talked = answered_for.unwrap_or_else(|| {
                    let secs = form
                        .get("DialCallDuration")
                        .and_then(|secs| secs.parse().ok())
                        .unwrap_or(0);
                    // No answered callback came (a number without one): the answer is counted
                    // now, timed from when the talking began.
                    let talked = std::time::Duration::from_secs(secs);
                    let answered_ms = now.as_millisecond()
                        - i64::try_from(talked.as_millis()).unwrap_or(i64::MAX);
                    state.router.record(
                        &dial.call.queue,
                        QueueStatEvent::Answered {
                            wait_ms: (answered_ms - dial.call.enqueued_at_ms).max(0),
                        },
                    );
                    talked
                });
                if let Err(error) = state
                    .router
                    .call_finished(&dial.agent_id, call_sid, &dial.call.queue, talked, now)
                    .await
                {
                    tracing::warn!(%error, "the end of the agent's call could not be recorded");
                }
                twiml::hangup()
            }
            "no-answer" | "busy" | "failed" => {
                match state
                    .router
                    .offer_missed(&dial.agent_id, &dial.call, now)
                    .await
                {
                    Ok(missed) => {
                        tracing::info!(%call_sid, agent = %dial.agent_id, ?missed, "agent did not answer; the call goes back to the front of its queue");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the missed offer could not be recorded; the call rejoins its queue");
                    }
                }
                resume_stream(&state, call_sid, dial.queue_node, Some(dial.call))
            }
            // The caller hung up while the agent's phone rang.
            _ => {
                state.router.leave(call_sid, LeaveReason::HungUp).await;
                twiml::hangup()
            }
        },
        Some((NextStep::Transfer(transfer), _)) => match (outcome, transfer.on_failure) {
            ("no-answer" | "busy" | "failed", Some(node)) => {
                resume_stream(&state, call_sid, node, None)
            }
            _ => twiml::hangup(),
        },
        Some((NextStep::Hangup, _)) | None => twiml::hangup(),
    };
    Ok(twiml_response(xml))
}

/// `GET /healthz`: liveness, store reachability and which Redis master the store uses.
/// The process answers (200) whatever the store does: calls in the menus work without it. A
/// store that does not answer makes the status `degraded`, so a monitor can tell callers who
/// need a queue are hearing the apology path.
pub async fn healthz(State(state): State<CallServices>) -> impl IntoResponse {
    let store_reachable = matches!(
        tokio::time::timeout(STORE_PING_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    axum::Json(serde_json::json!({
        "status": if store_reachable { "ok" } else { "degraded" },
        "store": state.store.kind(),
        "store_reachable": store_reachable,
        // The Redis master in use (host:port, never credentials): after a Sentinel failover,
        // the promoted one.
        "store_master": state.store.master_address(),
        "calls": state.calls.len(),
        "streams": state.tracker.len(),
    }))
}

/// How long `/healthz` waits for the store's answer.
const STORE_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
