//! The shipped example configuration and prompts, served for real and called: a caller who
//! wants a person reaches an on-shift agent while the desk is open, and the after-hours menu
//! when it is closed. The schedules are set for each test, so the outcome never depends on
//! when the suite runs.

use std::time::Duration;

use careline::caller::{CallEnd, CallOptions, DialBehaviour, DialStatus, place_call};
use careline::config::{HoursRule, LoadedConfig};
use careline::server::{self, AppState};
use careline::store::AgentStatus;
use careline::twilio::twiml::DialTarget;
use tokio_util::sync::CancellationToken;

struct Example {
    base_url: String,
    state: AppState,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serve config/careline.toml with every schedule open around the clock (`open`) or the help
/// desk closed all week.
async fn serve_example(open: bool) -> Example {
    let (loaded, _warnings) = server::load_config("config/careline.toml".as_ref())
        .unwrap_or_else(|error| panic!("{error}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut loaded: LoadedConfig = loaded;
    // The example's public_url names port 8080; this test listens wherever the OS put it.
    loaded.config.server.public_url = base_url.clone();
    for (name, schedule) in &mut loaded.config.schedules {
        schedule.holidays.clear();
        schedule.overrides.clear();
        schedule.hours = if open || name != "helpdesk" {
            vec![HoursRule {
                days: "mon-sun".to_owned(),
                from: "00:00".to_owned(),
                to: "24:00".to_owned(),
            }]
        } else {
            Vec::new()
        };
    }
    let state = AppState::load(&loaded)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .state;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        state.clone(),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    Example {
        base_url,
        state,
        shutdown,
        server,
    }
}

impl Example {
    async fn stop(self) {
        self.shutdown.cancel();
        self.server
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }
}

#[tokio::test]
async fn a_caller_who_presses_zero_reaches_the_available_agent_while_the_desk_is_open() {
    let example = serve_example(true).await;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    example
        .state
        .node
        .store
        .set_agent_status("anguyen", AgentStatus::Available, now_ms)
        .await
        .expect("status set");
    example.state.node.router.wake();

    // An impatient caller presses 0 during the welcome.
    let report = place_call(
        CallOptions::new(&example.base_url)
            .digits("0".parse().expect("script"))
            .dial(vec![DialBehaviour::Answer {
                after: Duration::from_millis(300),
                talk: Duration::from_millis(300),
            }])
            .max_duration(Duration::from_secs(90)),
    )
    .await
    .expect("call completes");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    let played = report.played_prompts();
    assert!(played.contains(&"connecting".to_owned()), "{played:?}");
    assert_eq!(
        report.dials(),
        [(
            DialTarget::Number("+13125550101".to_owned()),
            DialStatus::Completed
        )]
    );
    assert_eq!(report.ended, CallEnd::Hangup);
    example.stop().await;
}

#[tokio::test]
async fn a_caller_after_hours_hears_the_hours_and_the_after_hours_menu() {
    let example = serve_example(false).await;
    let report = place_call(
        CallOptions::new(&example.base_url)
            .digits("0,w3".parse().expect("script"))
            .max_duration(Duration::from_secs(90)),
    )
    .await
    .expect("call completes");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    let played = report.played_prompts();
    assert_eq!(played.first().map(String::as_str), Some("after_hours"));
    assert_eq!(played.last().map(String::as_str), Some("goodbye"));
    assert!(report.dials().is_empty());
    assert_eq!(report.ended, CallEnd::Hangup);
    example.stop().await;
}
