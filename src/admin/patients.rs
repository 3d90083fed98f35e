//! The admin and portal API routes that act on patients: clearing a lockout, redeeming a code.
//!
//! Neither response carries anything about the patient beyond what the request named.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::access::AccessPolicy;
use crate::call::CallServices;
use crate::identity::{PatientRef, Redemption, WebhookSecret};

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `POST /api/v1/patients/{ref}/unlock`: a supervisor or agent clears a patient's lockout.
pub async fn unlock_patient(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    Path(patient_ref): Path<String>,
    headers: HeaderMap,
) -> Response {
    let role = match access.staff(&headers) {
        Ok(role) => role,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(identity) = &state.identity else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "identity verification is not configured on this server",
        );
    };
    let Ok(patient) = PatientRef::new(patient_ref) else {
        return error(StatusCode::BAD_REQUEST, "not a patient reference");
    };
    match identity.unlock(&patient, jiff::Timestamp::now()).await {
        Ok(()) => {
            tracing::info!(by = ?role, "patient lockout cleared");
            Json(json!({ "unlocked": true })).into_response()
        }
        Err(store_error) => {
            tracing::warn!(error = %store_error, "lockout could not be cleared");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unreachable; try again",
            )
        }
    }
}

/// `CARELINE_WEBHOOK_SECRET`, which signs the portal's calls to careline; `None` when unset
/// (code redemption is then refused).
#[derive(Clone)]
pub struct PortalSecret(pub Option<Arc<WebhookSecret>>);

#[derive(Deserialize)]
struct CodeRedemption {
    patient_ref: String,
    code: String,
}

/// `POST /api/v1/reset-codes/verify`: the portal redeems a one-time code. The request is signed
/// like careline's own calls to the portal (`X-Careline-Signature: sha256=<hex>` over the body
/// with `CARELINE_WEBHOOK_SECRET`).
pub async fn verify_reset_code(
    State(state): State<CallServices>,
    State(PortalSecret(secret)): State<PortalSecret>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &secret else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "CARELINE_WEBHOOK_SECRET is not set on this server",
        );
    };
    let signed = headers
        .get("x-careline-signature")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|header| secret.verify(&body, header));
    if !signed {
        return error(
            StatusCode::FORBIDDEN,
            "missing or invalid X-Careline-Signature",
        );
    }
    let Some(identity) = &state.identity else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "identity verification is not configured on this server",
        );
    };
    let Ok(request) = serde_json::from_slice::<CodeRedemption>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"patient_ref\": \"...\", \"code\": \"...\"}",
        );
    };
    let Ok(patient) = PatientRef::new(request.patient_ref) else {
        return error(StatusCode::BAD_REQUEST, "not a patient reference");
    };
    match identity
        .redeem(&patient, &request.code, jiff::Timestamp::now())
        .await
    {
        Ok(Redemption::Valid) => Json(json!({ "valid": true })).into_response(),
        Ok(Redemption::Wrong { checks_left }) => {
            Json(json!({ "valid": false, "checks_left": checks_left })).into_response()
        }
        Ok(Redemption::NoCode) => Json(json!({ "valid": false, "checks_left": 0 })).into_response(),
        Err(store_error) => {
            tracing::warn!(error = %store_error, "reset code could not be checked");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unreachable; try again",
            )
        }
    }
}
