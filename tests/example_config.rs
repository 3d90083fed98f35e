//! The shipped example configuration and prompts, served for real and called: a caller who
//! wants a person reaches an on-shift agent while the desk is open, and the after-hours menu
//! when it is closed. The schedules are set for each test, so the outcome never depends on
//! when the suite runs.

mod common;

use std::time::Duration;

use careline::caller::{CallEnd, CallOptions, DialBehaviour, DialStatus};
use careline::config::{HoursRule, LoadedConfig};
use careline::server;
use careline::twilio::twiml::DialTarget;
use common::{TestServer, call, make_available, script};

/// Serve config/careline.toml with every schedule open around the clock (`open`) or the help
/// desk closed all week.
async fn serve_example(open: bool) -> TestServer {
    let (loaded, _warnings) = server::load_config("config/careline.toml".as_ref())
        .unwrap_or_else(|error| panic!("{error}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut loaded: LoadedConfig = loaded;
    // The example's public_url names port 8080; this test listens wherever the OS put it.
    loaded.config.server.public_url = common::base_url(&listener);
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
    TestServer::serve(listener, &loaded, Duration::from_secs(5), |_, _| {}).await
}

#[tokio::test]
async fn a_caller_who_presses_zero_reaches_the_available_agent_while_the_desk_is_open() {
    let example = serve_example(true).await;
    make_available(&example, "anguyen").await;

    // An impatient caller presses 0 during the welcome.
    let report = call(
        CallOptions::new(&example.base_url)
            .digits(script("0"))
            .dial(vec![DialBehaviour::Answer {
                after: Duration::from_millis(300),
                talk: Duration::from_millis(300),
            }])
            .max_duration(Duration::from_secs(90)),
    )
    .await;
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
    let report = common::call_keying(&example, "0,w3", 90).await;
    let played = report.played_prompts();
    assert_eq!(played.first().map(String::as_str), Some("after_hours"));
    assert_eq!(played.last().map(String::as_str), Some("goodbye"));
    assert!(report.dials().is_empty());
    assert_eq!(report.ended, CallEnd::Hangup);
    example.stop().await;
}
