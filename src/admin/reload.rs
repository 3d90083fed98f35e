//! The configuration careline runs now, and replacing it while calls go on: `SIGHUP` or
//! `POST /api/v1/reload` re-read the file, check it as `careline check` does, load its prompts,
//! and only then swap it in. A configuration with errors is refused with the same report and
//! the running one stays. Calls in progress keep the flow and prompts they started with (a
//! session holds its own `Arc`s); new calls get the new ones.
//!
//! What a running process cannot change — where it listens, its public URL, its store, its
//! identity settings and secrets — is reported as needing a restart and otherwise left alone.

use std::path::Path;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::access::AccessPolicy;
use crate::call::CallServices;
use crate::call::running::{BuildError, Running};
use crate::config::Report;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file has errors: exactly what `careline check` reports.
    #[error("the configuration has problems; the running one stays:\n{0}")]
    Config(Report),
    #[error("the configuration could not be loaded; the running one stays:\n{0}")]
    Build(BuildError),
    #[error("careline was not started from a configuration file, so there is nothing to re-read")]
    NoSource,
}

/// What a reload did.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    pub config: String,
    /// `careline check`'s warnings on the new configuration.
    pub warnings: Vec<String>,
    pub prompts: usize,
    pub prompt_load_millis: u64,
    pub nodes: usize,
    pub queues: usize,
    pub agents: usize,
    /// Settings that changed in the file but apply only after a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Re-read, check and swap in the configuration file careline started from.
pub async fn reload(state: &CallServices) -> Result<ReloadReport, ReloadError> {
    let running = &state.running;
    let _one_at_a_time = running.reload_lock().await;
    let source = running
        .source()
        .map(Path::to_path_buf)
        .ok_or(ReloadError::NoSource)?;
    let built = tokio::task::spawn_blocking(move || {
        let (loaded, report) = crate::config::load_checked(&source).map_err(ReloadError::Config)?;
        let (new, prompt_load_time) = Running::build(&loaded).map_err(ReloadError::Build)?;
        Ok::<_, ReloadError>((loaded, report, new, prompt_load_time))
    })
    .await;
    let (loaded, report, new, prompt_load_time) = match built {
        Ok(result) => result?,
        Err(join_error) => {
            // Loading panicked or was cancelled: report it as a load failure, keep running.
            return Err(ReloadError::Build(BuildError::Interrupted(
                join_error.to_string(),
            )));
        }
    };
    let config = &loaded.config;
    let restart_needed = running.current().restart_needed(&new);
    // Agents added to the roster exist in the store before anyone routes to them.
    let ids: Vec<String> = config.agents.iter().map(|agent| agent.id.clone()).collect();
    if let Err(error) = state
        .store
        .register_agents(&ids, jiff::Timestamp::now().as_millisecond())
        .await
    {
        tracing::warn!(%error, "reload: new agents could not be registered now; the router registers them when the store answers");
    }
    let summary = ReloadReport {
        config: loaded.path.display().to_string(),
        warnings: report
            .warnings()
            .map(|finding| finding.to_string())
            .collect(),
        prompts: new.prompts.len(),
        prompt_load_millis: u64::try_from(prompt_load_time.as_millis()).unwrap_or(u64::MAX),
        nodes: config.nodes.len(),
        queues: config.queues.len(),
        agents: config.agents.len(),
        restart_needed,
    };
    state.router.reload(config);
    running.replace(new);
    tracing::info!(
        prompts = summary.prompts,
        nodes = summary.nodes,
        queues = summary.queues,
        agents = summary.agents,
        restart_needed = ?summary.restart_needed,
        "configuration reloaded; calls in progress keep the one they started with"
    );
    Ok(summary)
}

/// `POST /api/v1/reload` (supervisors): 200 with what changed, 422 with the check report.
pub async fn reload_route(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = access.supervisor(&headers) {
        return refusal.into_response();
    }
    match reload(&state).await {
        Ok(report) => Json(report).into_response(),
        Err(error @ (ReloadError::Config(_) | ReloadError::Build(_))) => {
            tracing::warn!("reload refused: {error}");
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "reloaded": false, "error": error.to_string() })),
            )
                .into_response()
        }
        Err(error @ ReloadError::NoSource) => (
            StatusCode::CONFLICT,
            Json(json!({ "reloaded": false, "error": error.to_string() })),
        )
            .into_response(),
    }
}
