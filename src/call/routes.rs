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
use crate::store::{CallStep, QueuedCall, StoreError};
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
pub(super) struct TwilioForm {
    params: Vec<(String, String)>,
}

impl TwilioForm {
    pub(super) fn parse(
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

    pub(super) fn get(&self, name: &str) -> Option<&str> {
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

pub(super) fn twiml_response(xml: String) -> Response {
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
    match state.calls.register(call_sid, from).await {
        Ok(token) => {
            tracing::info!(%call_sid, "incoming call");
            Ok(twiml_response(stream_to_careline(&state, from, &token)))
        }
        Err(error) => Ok(ask_again(&state, "/twilio/voice", call_sid, &error)),
    }
}

/// The store did not answer: the caller hears a second of silence and Twilio asks again
/// (never dropped, never a stream careline could not authorise).
fn ask_again(state: &CallServices, path: &str, call_sid: &str, error: &StoreError) -> Response {
    state.metrics.store_error();
    tracing::warn!(%call_sid, %error, "the call's record could not be read or written; Twilio asks again in a second");
    twiml_response(twiml::pause_then_redirect(
        1,
        &format!("{}{path}", state.public_base),
    ))
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
    if state.drain.is_cancelled() {
        // Twilio finds the stream refused and runs the `<Redirect>`: the balancer sends it to a
        // node that is not draining, which resumes the call.
        return Ok((StatusCode::SERVICE_UNAVAILABLE, "draining").into_response());
    }
    // The configuration running now; the call keeps it even if a reload replaces it.
    let running = state.running.current();
    let context = SessionContext {
        flow: running.flow.clone(),
        prompts: running.prompts.clone(),
        calls: state.calls.clone(),
        force_close: state.force_close.clone(),
        drain: state.drain.clone(),
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

/// `POST /twilio/next`: the stream closed; what now. Any node answers: the call's record says.
pub async fn next(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let call_sid = form.call_sid()?;
    let step = match state.calls.next_step(call_sid).await {
        Ok(step) => step,
        Err(error) => return Ok(ask_again(&state, "/twilio/next", call_sid, &error)),
    };
    let dial_status_url = format!("{}/twilio/dial-status", state.public_base);
    let xml = match step {
        NextStep::Hangup => twiml::hangup(),
        NextStep::Resume { token, from } => {
            tracing::info!(%call_sid, "the call's stream ended without a next step; resuming it where it was");
            stream_to_careline(&state, &from, &token)
        }
        NextStep::Dial(CallStep::Agent {
            agent_id,
            ring_timeout_secs,
            call,
            queue_node,
        }) => match dial_target(&state, &agent_id) {
            Some(target) => {
                tracing::info!(%call_sid, agent = %agent_id, "dialing the reserved agent");
                twiml::dial(
                    target,
                    &dial_status_url,
                    ring_timeout_secs,
                    None,
                    Some(&dial_status_url),
                )
            }
            None => {
                // Gone from the roster by a reload: the call goes back to its place.
                tracing::warn!(%call_sid, agent = %agent_id, "the reserved agent can no longer be dialed; the call rejoins its queue");
                let now = state.router.now();
                if let Err(error) = state.router.offer_missed(&agent_id, &call, now).await {
                    tracing::warn!(%error, "the missed offer could not be recorded");
                }
                let _ = state.calls.dial_finished(call_sid).await;
                resume_stream(&state, call_sid, &queue_node, Some(call)).await
            }
        },
        NextStep::Dial(CallStep::Transfer {
            number,
            timeout_secs,
            ..
        }) => {
            tracing::info!(%call_sid, "transferring the call");
            twiml::dial(
                twiml::DialTarget::Number(number),
                &dial_status_url,
                timeout_secs,
                None,
                None,
            )
        }
        NextStep::Dial(CallStep::Hangup) => twiml::hangup(),
    };
    Ok(twiml_response(xml))
}

/// How to ring an agent of the running roster.
pub(super) fn dial_target(state: &CallServices, agent_id: &str) -> Option<twiml::DialTarget> {
    let roster = state.roster();
    let agent = roster.agents.iter().find(|agent| agent.id == agent_id)?;
    if let Some(number) = &agent.dial {
        Some(twiml::DialTarget::Number(number.clone()))
    } else if let Some(client) = &agent.client {
        Some(twiml::DialTarget::Client(client.clone()))
    } else {
        agent.sip.clone().map(twiml::DialTarget::Sip)
    }
}

/// The TwiML that sends a call back to careline on a new media stream resuming at `node`.
async fn resume_stream(
    state: &CallServices,
    call_sid: &str,
    node: &str,
    queued: Option<QueuedCall>,
) -> String {
    match state.calls.resume(call_sid, node, queued).await {
        Ok(Some((token, from))) => stream_to_careline(state, &from, &token),
        Ok(None) => twiml::hangup(),
        Err(error) => {
            state.metrics.store_error();
            tracing::warn!(%call_sid, %error, "the call could not be resumed; Twilio asks again");
            twiml::pause_then_redirect(1, &format!("{}/twilio/next", state.public_base))
        }
    }
}

/// `POST /twilio/status`: the call's status changed; a finished call ends everywhere at once:
/// its record, its place in any queue, an agent reserved for it or talking to it.
pub async fn status(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let call_sid = form.call_sid()?;
    let status = form.get("CallStatus").unwrap_or("");
    if !matches!(
        status,
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    ) {
        return Ok(StatusCode::NO_CONTENT);
    }
    tracing::info!(%call_sid, status, "call ended");
    let record = match state.calls.end(call_sid).await {
        Ok(record) => record,
        Err(error) => {
            // The record's deadline releases what it holds.
            state.metrics.store_error();
            tracing::warn!(%call_sid, %error, "the ended call's record could not be removed");
            None
        }
    };
    let now = state.router.now();
    match record.as_ref().and_then(|record| match &record.dial {
        Some(CallStep::Agent { agent_id, call, .. }) if record.answered_at_ms != 0 => {
            Some((agent_id, call, record.answered_at_ms))
        }
        _ => None,
    }) {
        // The agent was talking and the dial's own status never came: the call ends now.
        Some((agent_id, call, answered_at_ms)) => {
            let talked = std::time::Duration::from_millis(
                u64::try_from(now.as_millisecond() - answered_at_ms).unwrap_or(0),
            );
            if let Err(error) = state
                .router
                .call_finished(agent_id, call_sid, &call.queue, talked, now)
                .await
            {
                tracing::warn!(%error, "the end of the agent's call could not be recorded");
            }
        }
        // Wherever the call was, it waits in no queue now and no agent stays reserved for it.
        None => state.router.leave(call_sid, LeaveReason::HungUp).await,
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
    let now = state.router.now();
    let Some(outcome) = form.get("DialCallStatus") else {
        // The dialed leg's own status callback: the far end answered.
        if form.get("CallStatus") == Some("in-progress") {
            let parent = form.get("ParentCallSid").unwrap_or(call_sid);
            match state.calls.dial_answered(parent).await {
                Ok(Some(CallStep::Agent { agent_id, call, .. })) => {
                    tracing::info!(call_sid = %parent, agent = %agent_id, "agent answered");
                    let wait_ms = now.as_millisecond() - call.enqueued_at_ms;
                    state.router.record(
                        &call.queue,
                        QueueStatEvent::Answered {
                            wait_ms: wait_ms.max(0),
                        },
                    );
                    if let Err(error) = state.router.offer_answered(&agent_id, parent, now).await {
                        tracing::warn!(%error, "the answer could not be recorded in the store");
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    state.metrics.store_error();
                    tracing::warn!(%error, "the answer could not be noted in the call's record");
                }
            }
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    tracing::info!(%call_sid, outcome, "dial finished");
    let finished = match state.calls.dial_finished(call_sid).await {
        Ok(finished) => finished,
        Err(error) => {
            return Ok(ask_again(&state, "/twilio/dial-status", call_sid, &error));
        }
    };
    let xml = match finished {
        Some((
            CallStep::Agent {
                agent_id,
                call,
                queue_node,
                ..
            },
            answered_for,
        )) => match outcome {
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
                        &call.queue,
                        QueueStatEvent::Answered {
                            wait_ms: (answered_ms - call.enqueued_at_ms).max(0),
                        },
                    );
                    talked
                });
                if let Err(error) = state
                    .router
                    .call_finished(&agent_id, call_sid, &call.queue, talked, now)
                    .await
                {
                    tracing::warn!(%error, "the end of the agent's call could not be recorded");
                }
                end_call(&state, call_sid).await;
                twiml::hangup()
            }
            "no-answer" | "busy" | "failed" => {
                match state.router.offer_missed(&agent_id, &call, now).await {
                    Ok(missed) => {
                        tracing::info!(%call_sid, agent = %agent_id, ?missed, "agent did not answer; the call goes back to the front of its queue");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the missed offer could not be recorded; the call rejoins its queue");
                    }
                }
                resume_stream(&state, call_sid, &queue_node, Some(call)).await
            }
            // The caller hung up while the agent's phone rang.
            _ => {
                state.router.leave(call_sid, LeaveReason::HungUp).await;
                end_call(&state, call_sid).await;
                twiml::hangup()
            }
        },
        Some((CallStep::Transfer { on_failure, .. }, _)) => match (outcome, on_failure) {
            ("no-answer" | "busy" | "failed", Some(node)) => {
                resume_stream(&state, call_sid, &node, None).await
            }
            _ => {
                end_call(&state, call_sid).await;
                twiml::hangup()
            }
        },
        Some((CallStep::Hangup, _)) | None => {
            end_call(&state, call_sid).await;
            twiml::hangup()
        }
    };
    Ok(twiml_response(xml))
}

/// careline answers the call's last TwiML with a hang-up: its record ends now (the status
/// callback that follows finds nothing left to release).
async fn end_call(state: &CallServices, call_sid: &str) {
    if let Err(error) = state.calls.end(call_sid).await {
        tracing::debug!(%call_sid, %error, "the call's record could not be removed; its deadline will");
    }
}

/// `GET /healthz`: liveness, store reachability and which Redis master the store uses.
/// The process answers (200) whatever the store does: calls in the menus work without it. A
/// store that does not answer makes the status `degraded`, so a monitor can tell callers who
/// need a queue are hearing the apology path. A draining node answers 503 `draining`, so a
/// balancer sends nothing more its way.
pub async fn healthz(State(state): State<CallServices>) -> Response {
    let store_reachable = matches!(
        tokio::time::timeout(STORE_PING_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let draining = state.drain.is_cancelled();
    let status = match (draining, store_reachable) {
        (true, _) => "draining",
        (false, true) => "ok",
        (false, false) => "degraded",
    };
    let code = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        axum::Json(serde_json::json!({
            "status": status,
            "node": state.calls.node_id(),
            "store": state.store.kind(),
            "store_reachable": store_reachable,
            // The Redis master in use (host:port, never credentials): after a Sentinel
            // failover, the promoted one.
            "store_master": state.store.master_address(),
            "streams": state.calls.streams_here(),
            "sessions": state.tracker.len(),
        })),
    )
        .into_response()
}

/// How long `/healthz` waits for the store's answer.
const STORE_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
