//! The app: start-up (configuration, store, identity, the node's services), the route table
//! joining Twilio's routes (`crate::call`) and the people's (`crate::admin`), bind, serve and
//! graceful shutdown, and logging. The accept loop, connection cap and HTTP timeouts are
//! [`crate::connections`]'s.
//!
//! [`serve`] takes its listener and a shutdown token, so tests run the real server on
//! `127.0.0.1:0`. Each media stream runs as its own task (`crate::call::session::run_session`)
//! tracked by a `TaskTracker`: on shutdown the server stops accepting, lets calls in progress
//! finish for `shutdown_grace_secs`, then closes the rest.

pub mod logging;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::access::AccessPolicy;
use crate::admin::patients::PortalSecret;
use crate::admin::{
    access, agents, dashboard, events, history, metrics, patients, queues, recordings, reload,
    workspace,
};
use crate::call::registry::CallRegistry;
use crate::call::running::{BuildError, Running, RunningConfig};
use crate::call::{CallServices, callback_routes, routes as twilio_routes};
use crate::config::{LoadedConfig, Report};
use crate::connections::{ConnectionLimits, Http};
use crate::dispatch::Router;
use crate::identity::{IdentityService, IdentityStartError, Pepper, WebhookSecret};
use crate::ivr::flow::FlowError;
use crate::media::prompt::PromptError;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::redis_access::{HostPort, RedisAccess};
use crate::store::{Store, StoreError};
use crate::telemetry::{EventBus, Metrics};
use crate::twilio::signature::{PublicUrlError, websocket_base};

/// Everything a request handler can reach, composed from what each layer's routes need: the
/// node's services (every route), who may use the admin API, and the portal's signing secret.
/// Handlers take the part they need as their `State` ([`FromRef`]). Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub node: CallServices,
    /// Who may use `/api/*`.
    pub access: AccessPolicy,
    /// Signs the portal's calls to careline (reset code redemption).
    pub webhook_secret: Option<Arc<WebhookSecret>>,
    /// The connection cap and HTTP timeouts (`[server]`; a restart applies changes).
    pub limits: ConnectionLimits,
}

impl FromRef<AppState> for CallServices {
    fn from_ref(state: &AppState) -> CallServices {
        state.node.clone()
    }
}

impl FromRef<AppState> for AccessPolicy {
    fn from_ref(state: &AppState) -> AccessPolicy {
        state.access.clone()
    }
}

impl FromRef<AppState> for PortalSecret {
    fn from_ref(state: &AppState) -> PortalSecret {
        PortalSecret(state.webhook_secret.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration has problems:\n{0}")]
    Config(Report),
    #[error(transparent)]
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityStartError),
    #[error(transparent)]
    Secret(#[from] crate::identity::secret::SecretError),
    #[error(transparent)]
    Access(#[from] access::AccessConfigError),
    #[error(transparent)]
    Build(#[from] BuildError),
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
    /// Build the state from a checked configuration for a server whose listener is bound at
    /// `bound`: compile the flow, load every prompt, connect the store, open the patient
    /// directory. Secrets come from the environment. Who may use the admin API without a token
    /// depends on the address actually bound, not on `server.listen` (see
    /// [`access::loopback_only`]).
    pub async fn load(loaded: &LoadedConfig, bound: SocketAddr) -> Result<Loaded, StartError> {
        let config = &loaded.config;
        let metrics = Arc::new(Metrics::new());
        let redis = redis_access(loaded)?;
        let store = open_store(redis.as_ref(), &config.store.key_prefix).await?;
        register_agents(store.as_ref(), &config.agents).await;
        let webhook_secret = match WebhookSecret::from_env() {
            Ok(secret) => Some(secret),
            Err(crate::identity::secret::SecretError::Missing { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        let identity = match (&config.identity, Pepper::from_env()) {
            (None, _) => None,
            (Some(_), Ok(pepper)) => IdentityService::open(
                config,
                |path| loaded.resolve(path),
                Arc::new(pepper),
                webhook_secret.clone(),
                store.clone(),
            )?
            .map(|service| Arc::new(service.with_metrics(metrics.clone()))),
            (Some(_), Err(crate::identity::secret::SecretError::Missing { var })) => {
                tracing::warn!(
                    "{var} is not set: identity verification is off and verify nodes send callers to a person"
                );
                None
            }
            (Some(_), Err(error)) => return Err(error.into()),
        };
        let access = AccessPolicy::for_server(
            std::env::var("CARELINE_ADMIN_TOKENS").ok().as_deref(),
            bound,
            &config.server.public_url,
        )?;
        if access.refuses_everyone() {
            tracing::warn!(
                %bound,
                public_url = %config.server.public_url,
                "CARELINE_ADMIN_TOKENS is not set and careline is not loopback-only (the bound address and server.public_url must both be loopback): /api/* and /metrics refuse every request until tokens are set"
            );
        }
        let (running, prompt_load_time) = Running::build(loaded)?;
        let public_base: Arc<str> = Arc::from(config.server.public_url.trim_end_matches('/'));
        let websocket_base: Arc<str> = Arc::from(websocket_base(&public_base)?);
        let node_id = node_id();
        let events = Arc::new(match &redis {
            Some(access) => EventBus::shared_on(node_id.clone(), access, &config.store.key_prefix),
            None => EventBus::local(node_id.clone()),
        });
        let router = Router::with_events(
            store.clone(),
            config,
            node_id.clone(),
            Arc::new(jiff::Timestamp::now),
            events.clone(),
        );
        router.attach_metrics(metrics.clone());
        Ok(Loaded {
            state: AppState {
                node: CallServices {
                    running: Arc::new(RunningConfig::new(running, Some(loaded.path.clone()))),
                    calls: Arc::new(CallRegistry::new(store.clone(), &node_id)),
                    public_base,
                    websocket_base,
                    twilio_auth_token: std::env::var("CARELINE_TWILIO_AUTH_TOKEN")
                        .ok()
                        .filter(|token| !token.is_empty())
                        .map(Arc::from),
                    tracker: TaskTracker::new(),
                    force_close: CancellationToken::new(),
                    drain: CancellationToken::new(),
                    store: store.clone(),
                    identity,
                    router,
                    events,
                    metrics,
                    twilio_account: twilio_account(config).map(Arc::new),
                },
                webhook_secret: webhook_secret.map(Arc::new),
                access,
                limits: ConnectionLimits::of(&config.server),
            },
            prompt_load_time,
        })
    }
}

/// The Twilio account callbacks are placed from; a half-configured one is reported when
/// `[callbacks]` needs it (callbacks then wait for agents) and ignored otherwise.
fn twilio_account(config: &crate::config::Config) -> Option<crate::twilio::rest::TwilioAccount> {
    match crate::twilio::rest::TwilioAccount::from_env() {
        Ok(account) => account,
        Err(error) => {
            if config.callbacks.is_some() {
                tracing::warn!(%error, "callbacks cannot be placed");
            }
            None
        }
    }
}

/// This process's name among the careline nodes sharing a store: host, process and a random
/// part, so a restarted node never picks up calls its earlier self was carrying.
fn node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|host| !host.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "node".to_owned());
    let random: u32 = rand::random();
    format!("{host}-{}-{random:08x}", std::process::id())
}

/// How to reach Redis: `CARELINE_REDIS_URL`, else `[store] url`, else `[store] sentinels` with
/// `master_name`; credentials from the environment, `[store] tls_ca` read now. `None`: the
/// embedded store.
pub fn redis_access(loaded: &LoadedConfig) -> Result<Option<RedisAccess>, StoreError> {
    let store = &loaded.config.store;
    let env_url = std::env::var("CARELINE_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let access = match (env_url.or_else(|| store.url.clone()), &store.master_name) {
        (Some(url), _) => RedisAccess::url(&url),
        (None, Some(master_name)) if !store.sentinels.is_empty() => {
            let sentinels = store
                .sentinels
                .iter()
                .map(|entry| {
                    entry.parse::<HostPort>().map_err(|error| {
                        StoreError::Config(format!("sentinels: `{entry}` {error}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            RedisAccess::sentinels(sentinels, master_name).with_sentinel_tls(store.sentinels_tls)
        }
        (None, _) if !store.sentinels.is_empty() => {
            return Err(StoreError::Config(
                "sentinels is set without master_name (the name the Sentinels monitor the \
                 master under)"
                    .to_owned(),
            ));
        }
        (None, _) => return Ok(None),
    };
    let access = access.with_env_credentials();
    Ok(Some(match &store.tls_ca {
        Some(path) => access.with_tls_ca_file(&loaded.resolve(path))?,
        None => access,
    }))
}

/// The store `access` reaches; the embedded one without it.
pub async fn open_store(
    access: Option<&RedisAccess>,
    key_prefix: &str,
) -> Result<Arc<dyn Store>, StoreError> {
    let Some(access) = access else {
        return Ok(Arc::new(MemoryStore::new()));
    };
    Ok(match RedisStore::open(access, key_prefix).await {
        Ok(store) => Arc::new(store),
        // Start anyway: calls in the IVR do not need Redis, and those that do reach a
        // person until it answers; the store reconnects by itself.
        Err(StoreError::Unavailable(reason)) => {
            tracing::error!(%reason, "Redis is unreachable at start-up; carrying on without it until it answers");
            Arc::new(RedisStore::open_lazy(access, key_prefix).await?)
        }
        Err(error) => return Err(error),
    })
}

/// Make sure the store knows every configured agent. A store that cannot be reached now does
/// not stop start-up: calls in the IVR work without it, and the agents are registered again
/// when it is back (the API does so on first use).
async fn register_agents(store: &dyn Store, agents: &[crate::config::AgentConfig]) {
    let ids: Vec<String> = agents.iter().map(|agent| agent.id.clone()).collect();
    if ids.is_empty() {
        return;
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    if let Err(error) = store.register_agents(&ids, now_ms).await {
        tracing::warn!(%error, agents = ids.len(), "agents could not be registered in the store at start-up");
    }
}

pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/twilio/voice", post(twilio_routes::voice))
        .route("/twilio/media", get(twilio_routes::media))
        .route("/twilio/next", post(twilio_routes::next))
        .route("/twilio/status", post(twilio_routes::status))
        .route("/twilio/dial-status", post(twilio_routes::dial_status))
        .route("/twilio/callback/answer", post(callback_routes::answer))
        .route("/twilio/callback/connect", post(callback_routes::connect))
        .route(
            "/twilio/callback/dial-status",
            post(callback_routes::dial_status),
        )
        .route("/twilio/callback/status", post(callback_routes::status))
        .route(
            "/twilio/callback/prompt/{language}/{file}",
            get(callback_routes::prompt),
        )
        .route("/healthz", get(twilio_routes::healthz))
        .route(
            "/api/v1/patients/{patient_ref}/unlock",
            post(patients::unlock_patient),
        )
        .route(
            "/api/v1/reset-codes/verify",
            post(patients::verify_reset_code),
        )
        .route("/api/v1/agents", get(agents::list_agents))
        .route("/api/v1/agents/{agent_id}/status", put(agents::set_status))
        .route("/api/v1/calls", get(agents::list_calls))
        .route("/api/v1/reload", post(reload::reload_route))
        .route("/api/v1/events", get(events::stream_events))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/wallboard.js", get(dashboard::script))
        .route("/dashboard/wallboard.css", get(dashboard::style))
        .route("/api/v1/voicemails", get(recordings::list_voicemails))
        .route(
            "/api/v1/voicemails/{file}",
            get(recordings::voicemail_audio),
        )
        .route(
            "/api/v1/voicemails/{file}/handled",
            post(recordings::mark_voicemail_handled),
        )
        .route("/agent", get(workspace::page))
        .route("/agent/workspace.js", get(workspace::script))
        .route("/agent/workspace.css", get(workspace::style))
        .route("/api/v1/me", get(workspace::me))
        .route(
            "/api/v1/agents/{agent_id}/workspace",
            get(workspace::workspace),
        )
        .route("/api/v1/callbacks", get(recordings::list_callbacks))
        .route(
            "/api/v1/callbacks/{id}/done",
            post(recordings::complete_callback),
        )
        .route("/api/v1/queues", get(queues::list_queues))
        .route("/api/v1/stats", get(history::queue_history))
        .route("/metrics", get(metrics::scrape))
        .with_state(state)
}

/// Run until `shutdown` is cancelled, then let the calls in progress go. Shutdown ends within
/// `grace` plus [`AFTER_GRACE`], whatever the peers do.
///
/// With a store other nodes share, this node drains: `/healthz` answers 503 `draining` so the
/// balancer stops sending, every stream closes at once so Twilio resumes its call on another
/// node (at its place in its queue, or at its menu), and the node exits as soon as its streams
/// are gone. Alone (the embedded store), nobody could take the calls over: they may finish
/// for up to `grace`, then close.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let node = state.node.clone();
    let tracker = node.tracker.clone();
    let force_close = node.force_close.clone();
    // The dispatcher stops with the server: calls still waiting are being closed then anyway.
    let routing = tokio::spawn(node.router.clone().run(force_close.clone()));
    // Ends open event streams as shutdown starts: they would otherwise hold it open.
    let events = node.events.clone();
    let relay = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { events.run(shutdown).await }
    });
    let leases = tokio::spawn(renew_stream_leases(node.clone(), force_close.clone()));
    // Callbacks stop being placed as shutdown starts; the requests wait in the store.
    let callbacks = tokio::spawn(crate::call::callback::run(node.clone(), shutdown.clone()));
    let limits = state.limits;
    // The HTTP side stops only once the calls are gone: while draining, Twilio's requests for
    // this node's calls (and the balancer's health checks) must still be answered.
    let http = Http::start(listener, router(state), limits, node.metrics.clone());
    shutdown.cancelled().await;
    let shared = node.store.kind() != "memory";
    tracker.close();
    if shared {
        tracing::info!(
            streams = tracker.len(),
            "draining: streams close now and their calls resume on other nodes"
        );
        node.drain.cancel();
    } else if !tracker.is_empty() {
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
    } else if shared {
        // The balancer's health checks see `draining` and stop sending here before the
        // connections close: a redirect of one of this node's calls, already on its way over
        // a kept-alive connection, is still answered.
        tokio::time::sleep(DRAIN_LINGER).await;
    }
    // From here on everything ends within AFTER_GRACE, whatever the peers do.
    let deadline = tokio::time::Instant::now() + AFTER_GRACE;
    force_close.cancel();
    if tokio::time::timeout_at(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            streams = tracker.len(),
            "streams still closing at the end of shutdown; left behind"
        );
    }
    http.stop(deadline).await;
    finish_by(deadline, routing, "the queue dispatcher").await;
    finish_by(deadline, relay, "the event relay").await;
    finish_by(deadline, leases, "the stream lease renewal").await;
    finish_by(deadline, callbacks, "the callback dialer").await;
    Ok(())
}

/// How long shutdown may take once the grace period is over (or every call has ended).
pub const AFTER_GRACE: Duration = Duration::from_secs(1);

/// The outcome of `task` if it ends by `deadline`; otherwise it is stopped where it is.
async fn finish_by<T>(
    deadline: tokio::time::Instant,
    mut task: tokio::task::JoinHandle<T>,
    what: &str,
) -> Option<T> {
    match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(Ok(outcome)) => Some(outcome),
        Ok(Err(error)) => {
            tracing::error!(%error, "{what} stopped abnormally");
            None
        }
        Err(_) => {
            tracing::warn!("{what} did not stop in time; stopped where it was");
            task.abort();
            None
        }
    }
}

/// How long a drained node keeps answering HTTP after its streams are gone: a few of the
/// balancer's health checks (`deploy/haproxy.cfg` checks every 500 ms).
const DRAIN_LINGER: Duration = Duration::from_millis(1500);

/// Renew this node's leases on the streams it carries until `stop`.
async fn renew_stream_leases(node: CallServices, stop: CancellationToken) {
    let mut every = tokio::time::interval(crate::call::registry::LEASE_RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if node.calls.streams_here() == 0 {
            continue;
        }
        if let Err(error) = node.calls.renew_leases().await {
            node.metrics.store_error();
            tracing::debug!(%error, "stream leases could not be renewed now");
        }
    }
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
