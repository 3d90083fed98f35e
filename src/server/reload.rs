//! The configuration careline runs now, and replacing it while calls go on: `SIGHUP` or
//! `POST /api/v1/reload` re-read the file, check it as `careline check` does, load its prompts,
//! and only then swap it in. A configuration with errors is refused with the same report and
//! the running one stays. Calls in progress keep the flow and prompts they started with (a
//! session holds its own `Arc`s); new calls get the new ones.
//!
//! What a running process cannot change — where it listens, its public URL, its store, its
//! identity settings and secrets — is reported as needing a restart and otherwise left alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::agents::Roster;
use crate::config::{Config, DtmfMode, LoadedConfig, Report};
use crate::ivr::Flow;
use crate::ivr::flow::FlowError;
use crate::media::prompt::{PromptError, PromptLibrary};

/// One configuration's parts that calls and routes read, replaced as one piece by a reload.
#[derive(Debug)]
pub struct Running {
    pub flow: Arc<Flow>,
    pub prompts: Arc<PromptLibrary>,
    pub roster: Arc<Roster>,
    pub dtmf: DtmfMode,
    /// `[recordings] dir`, resolved.
    pub recordings_dir: Arc<Path>,
    /// What needs a restart to change, as this process started with it.
    fixed: FixedSettings,
}

/// The settings a reload cannot apply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FixedSettings {
    listen: String,
    public_url: String,
    store: String,
    identity: String,
}

impl FixedSettings {
    fn of(config: &Config) -> FixedSettings {
        FixedSettings {
            listen: config.server.listen.clone(),
            public_url: config.server.public_url.clone(),
            store: format!("{:?}/{}", config.store.url, config.store.key_prefix),
            identity: format!("{:?}{:?}", config.identity, config.password_reset),
        }
    }

    /// The keys that differ in `new`.
    fn changed(&self, new: &FixedSettings) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.listen != new.listen {
            changed.push("server.listen");
        }
        if self.public_url != new.public_url {
            changed.push("server.public_url");
        }
        if self.store != new.store {
            changed.push("store");
        }
        if self.identity != new.identity {
            changed.push("identity / password_reset");
        }
        changed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Flow(#[from] FlowError),
    #[error("prompt audio could not be loaded:\n{}", list(.0))]
    Prompts(Vec<PromptError>),
    #[error("loading stopped unexpectedly ({0}); try again, and report it if it repeats")]
    Interrupted(String),
}

fn list(errors: &[PromptError]) -> String {
    errors
        .iter()
        .map(|error| format!("  {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Running {
    /// A configuration assembled from parts (tests and benchmarks that build no file).
    pub fn from_parts(
        config: &Config,
        flow: Flow,
        prompts: PromptLibrary,
        recordings_dir: &Path,
    ) -> Running {
        Running {
            flow: Arc::new(flow),
            prompts: Arc::new(prompts),
            roster: Arc::new(Roster::from_config(config)),
            dtmf: config.ivr.dtmf,
            recordings_dir: Arc::from(recordings_dir),
            fixed: FixedSettings::of(config),
        }
    }

    /// Compile the flow and load every prompt of a checked configuration (CPU-bound: the
    /// prompts are decoded and resampled here). Returns how long the prompts took.
    pub fn build(loaded: &LoadedConfig) -> Result<(Running, Duration), BuildError> {
        let config = &loaded.config;
        let flow = Flow::from_config(config)?;
        let started = Instant::now();
        let prompts = PromptLibrary::load(
            &loaded.prompts_dir(),
            &config.languages(),
            &config.prompt_ids(),
        )
        .map_err(BuildError::Prompts)?;
        let prompt_load_time = started.elapsed();
        let recordings_dir = config.recordings.as_ref().map_or(
            Path::new(crate::media::recording::DEFAULT_DIR),
            |recordings| recordings.dir.as_path(),
        );
        Ok((
            Running {
                flow: Arc::new(flow),
                prompts: Arc::new(prompts),
                roster: Arc::new(Roster::from_config(config)),
                dtmf: config.ivr.dtmf,
                recordings_dir: Arc::from(loaded.resolve(recordings_dir)),
                fixed: FixedSettings::of(config),
            },
            prompt_load_time,
        ))
    }
}

/// The running configuration, and the file it came from.
#[derive(Debug)]
pub struct RunningConfig {
    current: RwLock<Arc<Running>>,
    /// The file to re-read; `None` for a state built without one (tests, benches).
    source: Option<PathBuf>,
    /// One reload at a time: two at once could swap in the older file last.
    reloading: tokio::sync::Mutex<()>,
}

impl RunningConfig {
    pub fn new(running: Running, source: Option<PathBuf>) -> RunningConfig {
        RunningConfig {
            current: RwLock::new(Arc::new(running)),
            source,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The configuration new calls and requests use now.
    pub fn current(&self) -> Arc<Running> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The configuration file a reload re-reads.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    fn replace(&self, running: Running) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(running);
    }
}

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
pub async fn reload(state: &AppState) -> Result<ReloadReport, ReloadError> {
    let running = &state.running;
    let _one_at_a_time = running.reloading.lock().await;
    let source = running.source.clone().ok_or(ReloadError::NoSource)?;
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
    let restart_needed = running.current().fixed.changed(&new.fixed);
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
pub async fn reload_route(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = state.access.supervisor(&headers) {
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
