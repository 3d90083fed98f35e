//! The shipped example configuration and prompts, served for real and called.

use std::time::Duration;

use careline::caller::{CallEnd, CallOptions, place_call};
use careline::server::{self, AppState};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_example_help_desk_answers_and_routes_a_caller_to_a_person() {
    let (loaded, _warnings) = server::load_config("config/careline.toml".as_ref())
        .unwrap_or_else(|error| panic!("{error}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut loaded = loaded;
    // The example's public_url names port 8080; this test listens wherever the OS put it.
    loaded.config.server.public_url = base_url.clone();
    let state = AppState::load(&loaded)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .state;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        state,
        shutdown.clone(),
        Duration::from_secs(5),
    ));

    // An impatient caller presses 0 during the welcome.
    let report = place_call(
        CallOptions::new(&base_url)
            .digits("0".parse().expect("script"))
            .max_duration(Duration::from_secs(90)),
    )
    .await
    .expect("call completes");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    // The welcome was cut off (its end mark was never reached), so only these played in full.
    assert_eq!(report.played_prompts(), ["operator_hours", "goodbye"]);
    assert_eq!(report.ended, CallEnd::Hangup);

    shutdown.cancel();
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");
}
