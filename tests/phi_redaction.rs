//! Keyed digits are protected health information: a whole call that enters them, run with every
//! log at `trace`, must leave no trace of them in the logs.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use careline::caller::{CallOptions, place_call};
use careline::server::logging::phi_safe;
use common::TestServer;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn digits_keyed_into_a_collect_never_reach_a_log_even_at_trace() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_env_filter(phi_safe(EnvFilter::new("trace")))
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();

    let server = TestServer::start().await;
    let entry = "90817263";
    let report = place_call(
        CallOptions::new(&server.base_url)
            .digits(format!("w1,w{entry}").parse().expect("script"))
            .max_duration(Duration::from_secs(30)),
    )
    .await
    .expect("call completes");
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("goodbye"),
        "the entry was accepted and the call ended normally"
    );

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs").clone()).into_owned();
    assert!(
        logs.len() > 1000,
        "trace logging captured the call ({} bytes)",
        logs.len()
    );
    assert!(
        logs.contains("call entered node"),
        "engine traces are in the capture"
    );
    assert!(
        !logs.contains(entry),
        "the keyed entry leaked into the logs"
    );
    // Nor any keypad frame, as text or as a hex dump of the WebSocket frame ("digit" in hex).
    assert!(!logs.contains("\"digit\""), "a dtmf frame reached the logs");
    assert!(
        !logs.contains("6469676974"),
        "a hex dump of a dtmf frame reached the logs"
    );
}
