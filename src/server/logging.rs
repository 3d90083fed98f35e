//! Logging that cannot leak what callers key in.
//!
//! careline's own logs never carry a keyed digit. Some dependencies are less careful: at
//! `trace`, the WebSocket library dumps every frame it reads (hex-encoded), and a `dtmf`
//! frame carries the key. Those crates are capped at `info` whatever `RUST_LOG` says.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// Crates whose verbose levels dump raw frames or bodies.
const FRAME_DUMPERS: [&str; 3] = ["tungstenite", "tokio_tungstenite", "h2"];

/// `filter` with the frame-dumping crates held at `info`.
pub fn phi_safe(mut filter: EnvFilter) -> EnvFilter {
    for target in FRAME_DUMPERS {
        if let Ok(directive) = format!("{target}=info").parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Logs to stderr at `RUST_LOG` (default `info`), PHI-safe.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(phi_safe(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
