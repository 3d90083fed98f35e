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
        let server::Loaded {
            state,
            prompt_load_time,
        } = AppState::load(&loaded).await?;
        tracing::info!(
            prompts = state.node.prompts().len(),
            millis = prompt_load_time.as_millis() as u64,
            "prompts loaded and resampled"
        );
        let listener = server::bind(addr).await?;
        tracing::info!(
            %addr,
            public_url = %state.node.public_base,
            store = state.node.store.kind(),
            identity = state.node.identity.is_some(),
            "careline listening"
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        #[cfg(unix)]
        tokio::spawn(reload_on_hangup(state.node.clone()));
        server::serve(listener, state, shutdown, grace)
            .await
            .context("server failed")?;
        tracing::info!("careline stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `kill -HUP`: re-read, check and swap in the configuration (see `admin::reload`).
#[cfg(unix)]
async fn reload_on_hangup(state: CallServices) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /api/v1/reload");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        if let Err(error) = crate::admin::reload::reload(&state).await {
            tracing::error!("{error}");
        }
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C still stops careline");
                let _ = interrupt.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested: no new calls; calls in progress may finish");
    shutdown.cancel();
}
