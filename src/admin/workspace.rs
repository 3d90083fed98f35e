//! The agent workspace, `GET /agent`: one agent's own page — their status buttons and state
//! with the time in it, the wrap-up countdown, the call being offered or in progress with what
//! the IVR established, the callback worklist, voicemails to play and mark handled, and
//! unlocking a patient's verification lockout.
//!
//! Built like the wallboard ([`super::dashboard`]): the page, its script and style are files in
//! `src/admin/workspace/`, built into the binary, holding no data and served without a token.
//! The script asks for the agent's own token (`agent:<id>`; a supervisor's works too, and may
//! open any agent's page with `?agent=<id>`), keeps it in the tab's session storage only, reads
//! [`workspace`] and the existing voicemail and callback routes, and refetches when
//! `/api/v1/events` says something changed. Voicemail audio is fetched with the token and
//! played from a `blob:` URL, since an `<audio>` element cannot send a bearer header.
//!
//! `GET /api/v1/agents/{id}/workspace` answers the agent themself or a supervisor, never a
//! viewer: it names the verified patient. It carries no digit the caller keyed — the menu path
//! is node names, the caller ID is masked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::access::{AccessPolicy, Role};
use super::agents::{AgentView, agent_view, on_shift, roster_records};
use super::recordings::{CallbackView, callback_view};
use crate::call::CallServices;
use crate::store::callback::callback_of_queue_call;
use crate::store::{AgentActivity, AgentRecord, CallRecord, CallStep, StoreError};

const PAGE: &str = include_str!("workspace/workspace.html");
const SCRIPT: &str = include_str!("workspace/workspace.js");
const STYLE: &str = include_str!("workspace/workspace.css");

/// The wallboard's policy, plus audio from `blob:` URLs the script makes from the voicemails
/// it fetched: nothing from elsewhere, no frames, no form posts, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; media-src blob:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        body,
    )
        .into_response()
}

/// `GET /agent`.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /agent/workspace.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /agent/workspace.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /api/v1/me`: the role of the request's token, so the page knows whose workspace to
/// open (`{"role": "agent", "agent_id": "anguyen"}`, `{"role": "supervisor"}`, or
/// `{"role": "viewer"}`).
pub async fn me(State(access): State<AccessPolicy>, headers: HeaderMap) -> Response {
    match access.role(&headers) {
        Ok(Role::Agent(agent_id)) => {
            Json(json!({ "role": "agent", "agent_id": agent_id })).into_response()
        }
        Ok(Role::Supervisor) => Json(json!({ "role": "supervisor" })).into_response(),
        Ok(Role::Viewer) => Json(json!({ "role": "viewer" })).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// What the IVR established about the caller's identity, as the agent reads it.
pub(super) fn identity_label(patient_ref: Option<&str>, verification_failed: bool) -> &'static str {
    if patient_ref.is_some() {
        "verified"
    } else if verification_failed {
        "failed"
    } else {
        "not_attempted"
    }
}

/// The call an agent is offered or talking to.
#[derive(Serialize)]
pub struct HeldCall<'a> {
    /// `call` (a caller on the line) or `callback` (careline calling a patient back).
    pub kind: &'static str,
    pub call_sid: &'a str,
    /// `ringing` (offered) or `on_call`.
    pub state: &'static str,
    pub queue: Option<String>,
    /// How long the caller waited in the queue before the offer (a callback: since their
    /// place in line).
    pub waited_secs: Option<i64>,
    /// The caller ID, all but its last two digits hidden (a callback: the number to call,
    /// which the agent needs).
    pub caller_id: String,
    /// The IVR nodes the call went through, in order: node names, never a digit.
    pub path: Vec<String>,
    /// `verified`, `failed` (flagged: verify the caller in person) or `not_attempted`.
    pub identity: &'static str,
    /// The verified patient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_ref: Option<String>,
    /// The callback request behind a callback call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackView<'a>>,
}

/// `GET /api/v1/agents/{id}/workspace`.
#[derive(Serialize)]
pub struct WorkspaceView<'a> {
    pub agent: AgentView<'a>,
    /// `null` while the agent holds no call.
    pub call: Option<HeldCall<'a>>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn store_failure(state: &CallServices, store_error: &StoreError) -> Response {
    state.metrics.store_error();
    tracing::warn!(error = %store_error, "the agent workspace could not be read");
    match store_error {
        StoreError::Unavailable(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unreachable, so the agent's state is unknown; try again",
        ),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store returned data careline cannot read; see the server log",
        ),
    }
}

/// What a call's record says for the agent holding it.
fn inbound_call<'a>(
    call_sid: &'a str,
    state: &'static str,
    offered_at_ms: i64,
    record: Option<&CallRecord>,
) -> HeldCall<'a> {
    let queued = record.and_then(
        |record| match (&record.dial, &record.next, &record.queued) {
            (Some(CallStep::Agent { call, .. }), _, _)
            | (None, Some(CallStep::Agent { call, .. }), _) => Some(call.clone()),
            (_, _, queued) => queued.clone(),
        },
    );
    HeldCall {
        kind: "call",
        call_sid,
        state,
        queue: queued.as_ref().map(|call| call.queue.clone()),
        waited_secs: queued
            .as_ref()
            .map(|call| (offered_at_ms - call.enqueued_at_ms).max(0) / 1000),
        caller_id: record.map(CallRecord::from_masked).unwrap_or_default(),
        path: record.map(|record| record.path.clone()).unwrap_or_default(),
        identity: record.map_or("not_attempted", |record| {
            identity_label(record.patient_ref.as_deref(), record.verification_failed)
        }),
        patient_ref: record.and_then(|record| record.patient_ref.clone()),
        callback: None,
    }
}

/// `GET /api/v1/agents/{id}/workspace`: the agent's state and the call they hold, from the
/// store and the call's record (or its callback request).
pub async fn workspace(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let role = match access.supervisor_or_agent(&headers, &agent_id) {
        Ok(role) => role,
        Err(refusal) => return refusal.into_response(),
    };
    let roster = state.roster();
    let Some(agent) = roster.agents.iter().find(|agent| agent.id == agent_id) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such agent (agents come from [[agents]] in the configuration)",
        );
    };
    let now = jiff::Timestamp::now();
    let now_ms = now.as_millisecond();
    let records = match roster_records(&state, now_ms).await {
        Ok(records) => records,
        Err(store_error) => return store_failure(&state, &store_error),
    };
    let Some(record) = records.get(&agent.id) else {
        return store_failure(&state, &StoreError::UnknownAgent(agent.id.clone()));
    };
    let held = match held_call(record, now_ms) {
        Some(held) => held,
        None => {
            let view = WorkspaceView {
                agent: agent_view(agent, record, on_shift(&state, agent, now), now_ms),
                call: None,
            };
            return Json(view).into_response();
        }
    };
    let (call_sid, call_state, since_ms) = held;
    let callback_request = match callback_of_queue_call(call_sid) {
        Some(id) => match state.store.callback(id).await {
            Ok(request) => Some(request),
            Err(store_error) => return store_failure(&state, &store_error),
        },
        None => None,
    };
    let call_record = if callback_request.is_none() {
        match state.store.call_record(call_sid).await {
            Ok(record) => record,
            Err(store_error) => return store_failure(&state, &store_error),
        }
    } else {
        None
    };
    let call = match &callback_request {
        Some(request) => request.as_ref().map(|request| HeldCall {
            kind: "callback",
            call_sid,
            state: call_state,
            queue: Some(request.queue.clone()),
            waited_secs: Some((since_ms - request.place_ms).max(0) / 1000),
            caller_id: request.number.clone(),
            path: Vec::new(),
            identity: identity_label(request.patient_ref.as_deref(), request.verification_failed),
            patient_ref: request.patient_ref.clone(),
            callback: Some(callback_view(request, &role)),
        }),
        None => Some(inbound_call(
            call_sid,
            call_state,
            since_ms,
            call_record.as_ref(),
        )),
    };
    let view = WorkspaceView {
        agent: agent_view(agent, record, on_shift(&state, agent, now), now_ms),
        call,
    };
    Json(view).into_response()
}

/// The call the agent holds: its id, `ringing` or `on_call`, and since when.
fn held_call(record: &AgentRecord, now_ms: i64) -> Option<(&str, &'static str, i64)> {
    match (&record.activity, record.activity_at(now_ms)) {
        (AgentActivity::Reserved { call_sid, since_ms }, _) => {
            Some((call_sid.as_str(), "ringing", *since_ms))
        }
        (AgentActivity::OnCall { call_sid, since_ms }, _) => {
            Some((call_sid.as_str(), "on_call", *since_ms))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::QueuedCall;

    #[test]
    fn the_page_loads_its_script_and_style_from_this_server_only() {
        assert!(PAGE.contains(r#"<script src="agent/workspace.js" defer>"#));
        assert!(PAGE.contains(r#"href="agent/workspace.css""#));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        assert!(!SCRIPT.contains("http://") && !SCRIPT.contains("https://"));
        assert_eq!(PAGE.matches("<script").count(), 1, "no inline script");
        assert!(
            !SCRIPT.contains("localStorage"),
            "the token lives in the tab's session storage only"
        );
    }

    #[test]
    fn identity_reads_verified_failed_or_not_attempted() {
        assert_eq!(identity_label(Some("P1"), false), "verified");
        assert_eq!(identity_label(None, true), "failed");
        assert_eq!(identity_label(None, false), "not_attempted");
    }

    #[test]
    fn an_offered_call_shows_its_queue_wait_path_and_patient_but_not_the_number() {
        let mut record = CallRecord::new("CA1", "+13125550147", String::new(), 0);
        for node in ["main", "verify", "portal_queue"] {
            record.moved_to(node);
        }
        record.patient_ref = Some("P000101".to_owned());
        let call = QueuedCall {
            call_sid: "CA1".to_owned(),
            queue: "portal".to_owned(),
            node: "n".to_owned(),
            enqueued_at_ms: 10_000,
            priority: 0,
            verification_failed: false,
            callback_id: None,
        };
        record.next = Some(CallStep::Agent {
            agent_id: "anguyen".to_owned(),
            ring_timeout_secs: 20,
            call,
            queue_node: "portal_queue".to_owned(),
        });
        let held = inbound_call("CA1", "ringing", 42_500, Some(&record));
        assert_eq!(held.queue.as_deref(), Some("portal"));
        assert_eq!(held.waited_secs, Some(32));
        assert_eq!(held.path, ["main", "verify", "portal_queue"]);
        assert_eq!(held.identity, "verified");
        assert_eq!(held.patient_ref.as_deref(), Some("P000101"));
        let json = serde_json::to_string(&held).expect("json");
        assert!(!json.contains("3125550147"), "{json}");
    }
}
