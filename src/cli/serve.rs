//! `careline serve`: load and check the configuration, load prompts, serve until a signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::call::CallServices;
use crate::server::{self, AppState};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, default_value = "config/careline.toml")]
    pub config: PathBuf,
    /// Listen address; overrides `server.listen`.
    #[arg(long)]
    pub listen: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    server::logging::init();
    let (loaded, report) = server::load_config(&args.config)?;
    for warning in report.warnings() {
        tracing::warn!("{warning}");
    }
    let listen = args
        .listen
        .unwrap_or_else(|| loaded.config.server.listen.clone());
    let addr = server::listen_address(&listen)?;
    let grace = Duration::from_secs(loaded.config.server.shutdown_grace_secs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Bound first: what may be reached without a token depends on the address bound.
        let listener = server::bind(addr).await?;
        let bound = listener
            .local_addr()
            .context("cannot read the address careline is bound to")?;
        let server::Loaded {
            state,
            prompt_load_time,
        } = AppState::load(&loaded, bound).await?;
        tracing::info!(
            prompts = state.node.prompts().len(),
            millis = prompt_load_time.as_millis() as u64,
            "prompts loaded and resampled"
        );
        // The signal handlers are in place before anyone is told careline listens: a SIGHUP or
        // SIGTERM sent on that news must not meet the default action (the process ending).
        let shutdown = CancellationToken::new();
        #[cfg(unix)]
        {
            use tokio::signal::unix::SignalKind;
            let terminate = unix_signal(SignalKind::terminate(), "Ctrl-C still stops careline");
            tokio::spawn(cancel_on_signal(shutdown.clone(), terminate));
            if let Some(hangups) =
                unix_signal(SignalKind::hangup(), "reload with POST /api/v1/reload")
            {
                tokio::spawn(reload_on_hangup(hangups, state.node.clone()));
            }
        }
        #[cfg(not(unix))]
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        tracing::info!(
            addr = %bound,
            public_url = %state.node.public_base,
            store = state.node.store.kind(),
            identity = state.node.identity.is_some(),
            "careline listening"
        );
        server::serve(listener, state, shutdown, grace)
            .await
            .context("server failed")?;
        tracing::info!("careline stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A signal's handler, installed now; `None` (with a warning saying what still works) when
/// it cannot be.
#[cfg(unix)]
fn unix_signal(
    kind: tokio::signal::unix::SignalKind,
    instead: &str,
) -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(kind) {
        Ok(signals) => Some(signals),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for a signal; {instead}");
            None
        }
    }
}

/// `kill -HUP`: re-read, check and swap in the configuration (see `admin::reload`).
#[cfg(unix)]
async fn reload_on_hangup(mut hangups: tokio::signal::unix::Signal, state: CallServices) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        if let Err(error) = crate::admin::reload::reload(&state).await {
            tracing::error!("{error}");
        }
    }
}

/// Ctrl-C or SIGTERM (its handler installed by the caller, see [`unix_signal`]) ends careline.
async fn cancel_on_signal(
    shutdown: CancellationToken,
    #[cfg(unix)] terminate: Option<tokio::signal::unix::Signal>,
) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    match terminate {
        Some(mut terminate) => {
            tokio::select! {
                _ = interrupt => {}
                _ = terminate.recv() => {}
            }
        }
        None => {
            let _ = interrupt.await;
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested: no new calls; calls in progress may finish");
    shutdown.cancel();
}
