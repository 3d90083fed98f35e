//! The HTTP server: Twilio's webhooks and media WebSocket, health, and graceful shutdown.
//!
//! [`serve`] takes its listener and a shutdown token, so tests run the real server on
//! `127.0.0.1:0`. Each media stream runs as its own task ([`session::run_session`]) tracked by
//! a `TaskTracker`: on shutdown the server stops accepting, lets calls in progress finish for
//! `shutdown_grace_secs`, then closes the rest.

pub mod calls;
pub mod player;
pub mod session;
mod twilio_routes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{LoadedConfig, Report};
use crate::ivr::{Flow, flow::FlowError};
use crate::media::prompt::{PromptError, PromptLibrary};
use crate::twilio::signature::{PublicUrlError, websocket_base};
use calls::CallRegistry;

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub flow: Arc<Flow>,
    pub prompts: Arc<PromptLibrary>,
    pub calls: Arc<CallRegistry>,
    /// `public_url` without a trailing slash: the base Twilio signs webhook URLs with.
    pub public_base: Arc<str>,
    /// `ws(s)://` form of `public_base`, for the stream URL and the upgrade's signature.
    pub websocket_base: Arc<str>,
    /// `CARELINE_TWILIO_AUTH_TOKEN`; when set, every `/twilio/*` request must be signed.
    pub twilio_auth_token: Option<Arc<str>>,
    pub tracker: TaskTracker,
    /// Cancelled when calls in progress must close (after the shutdown grace period).
    pub force_close: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration has problems:\n{0}")]
    Config(Report),
    #[error("{0}")]
    Flow(#[from] FlowError),
    #[error("prompt audio could not be loaded:\n{}", list(.0))]
    Prompts(Vec<PromptError>),
    #[error("server.public_url: {0}")]
    PublicUrl(#[from] PublicUrlError),
    #[error(
        "cannot listen on {addr}: {source} (is another server using that port? set --listen or server.listen)"
    )]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("server.listen `{0}` is not an address like 127.0.0.1:8080")]
    ListenAddress(String),
}

fn list(errors: &[PromptError]) -> String {
    errors
        .iter()
        .map(|error| format!("  {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What start-up loaded, with how long the prompts took (reported at start).
pub struct Loaded {
    pub state: AppState,
    pub prompt_load_time: Duration,
}

impl AppState {
    /// Build the state from a checked configuration: compile the flow, load every prompt.
    pub fn load(loaded: &LoadedConfig) -> Result<Loaded, StartError> {
        let config = &loaded.config;
        let flow = Flow::from_config(config)?;
        let started = Instant::now();
        let languages = config.languages();
        let ids = config.prompt_ids();
        let prompts = PromptLibrary::load(&loaded.prompts_dir(), &languages, &ids)
            .map_err(StartError::Prompts)?;
        let prompt_load_time = started.elapsed();
        let public_base: Arc<str> = Arc::from(config.server.public_url.trim_end_matches('/'));
        let websocket_base: Arc<str> = Arc::from(websocket_base(&public_base)?);
        Ok(Loaded {
            state: AppState {
                flow: Arc::new(flow),
                prompts: Arc::new(prompts),
                calls: Arc::new(CallRegistry::new()),
                public_base,
                websocket_base,
                twilio_auth_token: std::env::var("CARELINE_TWILIO_AUTH_TOKEN")
                    .ok()
                    .filter(|token| !token.is_empty())
                    .map(Arc::from),
                tracker: TaskTracker::new(),
                force_close: CancellationToken::new(),
            },
            prompt_load_time,
        })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/twilio/voice", post(twilio_routes::voice))
        .route("/twilio/media", get(twilio_routes::media))
        .route("/twilio/next", post(twilio_routes::next))
        .route("/twilio/status", post(twilio_routes::status))
        .route("/twilio/dial-status", post(twilio_routes::dial_status))
        .route("/healthz", get(twilio_routes::healthz))
        .with_state(state)
}

/// Run until `shutdown` is cancelled, then drain calls for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let tracker = state.tracker.clone();
    let force_close = state.force_close.clone();
    let app = router(state);
    // Media messages are small and latency-bound: no Nagle delay behind an unacknowledged one.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
    tracker.close();
    if !tracker.is_empty() {
        tracing::info!(
            calls = tracker.len(),
            ?grace,
            "waiting for calls in progress to finish"
        );
    }
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            calls = tracker.len(),
            "grace period over; closing remaining calls"
        );
        force_close.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// Parse the listen address from `--listen` or the config.
pub fn listen_address(listen: &str) -> Result<SocketAddr, StartError> {
    listen
        .parse()
        .map_err(|_| StartError::ListenAddress(listen.to_owned()))
}

/// Bind the listener, with an error that says what to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Load the configuration at `path` for serving: every check must pass.
pub fn load_config(path: &Path) -> Result<(LoadedConfig, Report), StartError> {
    crate::config::load_checked(path).map_err(StartError::Config)
}

#[cfg(test)]
mod tests;
