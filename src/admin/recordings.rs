//! The admin routes for what callers left behind: voicemails (listed from `[recordings] dir`,
//! audio fetched by id, marked handled) and callback requests (listed from the store with every
//! attempt careline made, marked done).
//!
//! Anyone with a token may list; only supervisors and agents, who return the calls, hear a
//! voicemail, mark it handled, or see a callback's full number and verified patient: viewers (a
//! wallboard) see the number masked and no patient. A number is never logged.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::access::AccessPolicy;
use super::access::Role;
use crate::call::CallServices;
use crate::call::registry::mask_caller_id;
use crate::media::recording::{self, RecordingError, Voicemail};
use crate::store::{CallbackAttempt, CallbackRequest, CallbackStatus, StoreError};

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// One voicemail as `GET /api/v1/voicemails` shows it.
#[derive(Serialize)]
struct VoicemailView {
    #[serde(flatten)]
    voicemail: Voicemail,
    /// Where to fetch the audio.
    audio_url: String,
}

/// `GET /api/v1/voicemails`: every finished voicemail, newest first.
pub async fn list_voicemails(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = access.viewer(&headers) {
        return refusal.into_response();
    }
    let dir = state.recordings_dir().clone();
    let listed = tokio::task::spawn_blocking(move || recording::list_voicemails(&dir)).await;
    match listed {
        Ok(Ok(voicemails)) => {
            let views: Vec<VoicemailView> = voicemails
                .into_iter()
                .map(|voicemail| VoicemailView {
                    audio_url: format!("/api/v1/voicemails/{}", voicemail.file),
                    voicemail,
                })
                .collect();
            Json(views).into_response()
        }
        Ok(Err(recording_error)) => recordings_failure(&recording_error),
        Err(join_error) => {
            tracing::error!(error = %join_error, "listing voicemails failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "voicemails could not be listed; see the server log",
            )
        }
    }
}

fn recordings_failure(recording_error: &RecordingError) -> Response {
    tracing::warn!(error = %recording_error, "voicemails could not be listed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the recordings directory cannot be read; see the server log",
    )
}

/// `GET /api/v1/voicemails/{id}.wav`: the audio of one voicemail (supervisors and agents).
pub async fn voicemail_audio(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = access.staff(&headers) {
        return refusal.into_response();
    }
    let Some(path) = file
        .strip_suffix(".wav")
        .and_then(|id| recording::audio_path(&state.recordings_dir(), id))
    else {
        return error(StatusCode::NOT_FOUND, "no such voicemail");
    };
    match tokio::fs::read(&path).await {
        Ok(audio) => (
            [
                (header::CONTENT_TYPE, "audio/wav"),
                // A patient's voice: not for shared caches or the browser's disk.
                (header::CACHE_CONTROL, "no-store"),
            ],
            audio,
        )
            .into_response(),
        Err(read_error) if read_error.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, "no such voicemail")
        }
        Err(read_error) => {
            tracing::warn!(path = %path.display(), error = %read_error, "a voicemail could not be read");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the voicemail cannot be read; see the server log",
            )
        }
    }
}

/// One callback request as `GET /api/v1/callbacks` shows it.
#[derive(Serialize)]
pub struct CallbackView<'a> {
    id: &'a str,
    queue: &'a str,
    /// In full for supervisors and agents; all but the last two digits hidden for viewers.
    number: String,
    call_sid: &'a str,
    requested_at_ms: i64,
    place_ms: i64,
    due_at_ms: i64,
    status: CallbackStatus,
    completed_at_ms: Option<i64>,
    /// The language the call back speaks (the caller's).
    language: &'a str,
    /// What the IVR established before the request: `verified`, `failed` or `not_attempted`.
    identity: &'static str,
    /// The verified patient, for supervisors and agents only.
    #[serde(skip_serializing_if = "Option::is_none")]
    patient_ref: Option<&'a str>,
    /// careline is placing the call right now (an agent is reserved for it).
    in_progress: bool,
    /// Every attempt careline made, oldest first, with how it ended.
    attempts: &'a [CallbackAttempt],
}

pub fn callback_view<'a>(request: &'a CallbackRequest, role: &Role) -> CallbackView<'a> {
    let staff = matches!(role, Role::Supervisor | Role::Agent(_));
    let number = if staff {
        request.number.clone()
    } else {
        mask_caller_id(&request.number)
    };
    CallbackView {
        id: &request.id,
        queue: &request.queue,
        number,
        call_sid: &request.call_sid,
        requested_at_ms: request.requested_at_ms,
        place_ms: request.place_ms,
        due_at_ms: request.due_at_ms,
        status: request.status,
        completed_at_ms: request.completed_at_ms,
        language: &request.language,
        identity: super::workspace::identity_label(
            request.patient_ref.as_deref(),
            request.verification_failed,
        ),
        patient_ref: request.patient_ref.as_deref().filter(|_| staff),
        in_progress: request.attempt_in_progress().is_some(),
        attempts: &request.attempts,
    }
}

fn store_failure(store_error: &StoreError) -> Response {
    tracing::warn!(error = %store_error, "callback requests could not be read or changed");
    match store_error {
        StoreError::Unavailable(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unreachable, so callback requests are unknown; try again",
        ),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store returned callback data careline cannot read; see the server log",
        ),
    }
}

/// `GET /api/v1/callbacks`: pending requests first, by when they are due and the callers'
/// places, then those done.
pub async fn list_callbacks(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
) -> Response {
    let role = match access.viewer(&headers) {
        Ok(role) => role,
        Err(refusal) => return refusal.into_response(),
    };
    match state.store.callbacks().await {
        Ok(requests) => {
            let views: Vec<CallbackView<'_>> = requests
                .iter()
                .map(|request| callback_view(request, &role))
                .collect();
            Json(views).into_response()
        }
        Err(store_error) => store_failure(&store_error),
    }
}

/// `POST /api/v1/voicemails/{id}/handled`: a supervisor or agent dealt with the message.
pub async fn mark_voicemail_handled(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let role = match access.staff(&headers) {
        Ok(role) => role,
        Err(refusal) => return refusal.into_response(),
    };
    let dir = state.recordings_dir().clone();
    let by = format!("{role:?}");
    let marked = tokio::task::spawn_blocking(move || {
        recording::mark_handled(&dir, &id, &by, jiff::Timestamp::now())
    })
    .await;
    match marked {
        Ok(Ok(Some(voicemail))) => {
            tracing::info!(by = ?role, voicemail = %voicemail.id, "voicemail marked handled");
            Json(voicemail).into_response()
        }
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no such voicemail"),
        Ok(Err(recording_error)) => {
            tracing::warn!(error = %recording_error, "a voicemail could not be marked handled");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the voicemail could not be marked; see the server log",
            )
        }
        Err(join_error) => {
            tracing::error!(error = %join_error, "marking a voicemail failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the voicemail could not be marked; see the server log",
            )
        }
    }
}

/// `POST /api/v1/callbacks/{id}/done`: a supervisor or agent returned the call.
pub async fn complete_callback(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let role = match access.staff(&headers) {
        Ok(role) => role,
        Err(refusal) => return refusal.into_response(),
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    match state.store.complete_callback(&id, now_ms).await {
        Ok(true) => {
            tracing::info!(by = ?role, callback = %id, "callback marked done");
            // A dialer waiting for an agent for it stops: it waits in no queue any more.
            state
                .router
                .leave(
                    &crate::store::callback::queue_call_sid(&id),
                    crate::dispatch::router::LeaveReason::Callback,
                )
                .await;
            Json(json!({ "id": id, "status": CallbackStatus::Done })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such callback request"),
        Err(store_error) => store_failure(&store_error),
    }
}
