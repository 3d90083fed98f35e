//! The configuration careline runs now: the compiled flow, the decoded prompts, the roster and
//! the settings new calls start on, replaced as one piece by a reload (`crate::admin::reload`).
//! Calls in progress keep the flow and prompts they started with (a session holds its own
//! `Arc`s).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::config::{Config, DtmfMode, LoadedConfig};
use crate::dispatch::roster::Roster;
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
    /// `[callbacks]`: careline places callback calls itself when set.
    pub callbacks: Option<crate::config::CallbacksConfig>,
    /// What needs a restart to change, as this process started with it.
    fixed: FixedSettings,
}

/// The settings a reload cannot apply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FixedSettings {
    listen: String,
    public_url: String,
    /// `max_connections` and the HTTP timeouts: the accept loop took them at start.
    connections: [u64; 4],
    store: String,
    identity: String,
}

impl FixedSettings {
    fn of(config: &Config) -> FixedSettings {
        FixedSettings {
            listen: config.server.listen.clone(),
            public_url: config.server.public_url.clone(),
            connections: [
                config.server.max_connections,
                config.server.header_timeout_secs,
                config.server.idle_timeout_secs,
                config.server.body_timeout_secs,
            ],
            store: format!("{:?}", config.store),
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
        let connection_keys = [
            "server.max_connections",
            "server.header_timeout_secs",
            "server.idle_timeout_secs",
            "server.body_timeout_secs",
        ];
        for ((key, old), new) in connection_keys
            .into_iter()
            .zip(self.connections)
            .zip(new.connections)
        {
            if old != new {
                changed.push(key);
            }
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
    #[error(transparent)]
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
    /// The keys of `new` that differ from this configuration but apply only after a restart.
    pub fn restart_needed(&self, new: &Running) -> Vec<&'static str> {
        self.fixed.changed(&new.fixed)
    }

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
            callbacks: config.callbacks.clone(),
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
                callbacks: config.callbacks.clone(),
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

    /// Held by a reload from reading the file to swapping it in: two reloads at once could
    /// swap in the older file last.
    pub async fn reload_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reloading.lock().await
    }

    /// Swap in a new configuration: new calls and requests use it from now on.
    pub fn replace(&self, running: Running) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(running);
    }
}
