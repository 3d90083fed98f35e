//! Calls through queues on the real server, placed by the Twilio-faithful caller: waiting with
//! hold audio, the hand-off to an agent with `<Dial>`, an agent who does not answer, a caller who
//! hangs up while waiting, a queue that is closed, and a transfer.

mod common;

use std::time::Duration;

use careline::caller::{CallEnd, CallOptions, DialBehaviour, DialStatus};
use careline::media::recording::list_voicemails;
use careline::store::{
    AgentActivity, AgentStatus, CallCounters, CallbackStatus, QueueCounters, StatsInterval,
};
use careline::twilio::twiml::DialTarget;
use common::{TestServer, call, call_keying, make_available, script};

const QUEUE_FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 10

[prompts]
dir = "PROMPTS"
default_language = "en"

[recordings]
dir = "RECORDINGS"

[ivr]
entry = "main"
operator = "desk"
first_digit_timeout_secs = 2
inter_digit_timeout_secs = 1
max_retries = 2

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "desk", "2" = "outsourced", "3" = "night_desk", "4" = "message" }

[nodes.message]
type = "voicemail"
max_secs = 2

[nodes.desk]
type = "queue"
queue = "portal"

[nodes.night_desk]
type = "queue"
queue = "night"

[nodes.outsourced]
type = "transfer"
number = "+18005550199"
timeout_secs = 5

[nodes.closed]
type = "hangup"
prompt = ["after_hours"]

[queues.portal]
skills = ["portal"]
when_closed = "closed"
max_wait_secs = 600
announce_every_secs = 30
ring_timeout_secs = 1
wrap_up_secs = 30

[queues.night]
skills = ["portal"]
schedule = "never"
when_closed = "closed"

[schedules.never]
timezone = "America/Chicago"
hours = []

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
client = "anguyen"
"#;

const PROMPTS: [&str; 2] = ["main_menu", "after_hours"];

async fn server() -> TestServer {
    TestServer::start_with(QUEUE_FLOW, &["en"], &PROMPTS, None).await
}

/// The portal queue is empty: nobody was left behind in the store.
async fn assert_nobody_waits(server: &TestServer) {
    let waiting = server
        .state
        .node
        .store
        .waiting("portal")
        .await
        .expect("store answers");
    assert!(waiting.is_empty(), "{waiting:?}");
}

/// The store's record of `agent`.
async fn agent_record(server: &TestServer, agent: &str) -> careline::store::AgentRecord {
    server
        .state
        .node
        .store
        .agent(agent)
        .await
        .expect("store answers")
        .expect("agent exists")
}

/// Today's counters of `queue`, once `ready` says the background writes have landed (bounded
/// polling; nothing about time is asserted).
async fn today(
    server: &TestServer,
    queue: &str,
    ready: impl Fn(&QueueCounters) -> bool,
) -> QueueCounters {
    let now = jiff::Timestamp::now().as_millisecond();
    let day = 86_400_000;
    let mut counters = QueueCounters::default();
    for _ in 0..100 {
        counters = server
            .state
            .node
            .store
            .queue_stats_total(
                queue,
                now - now % day,
                now - now % day + day,
                StatsInterval::Day,
            )
            .await
            .expect("store answers");
        if ready(&counters) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    counters
}

async fn calls_today(server: &TestServer, ready: impl Fn(&CallCounters) -> bool) -> CallCounters {
    let now = jiff::Timestamp::now().as_millisecond();
    let day = 86_400_000;
    let mut counters = CallCounters::default();
    for _ in 0..100 {
        let buckets = server
            .state
            .node
            .store
            .call_outcome_stats(now - now % day, now - now % day + day, StatsInterval::Day)
            .await
            .expect("store answers");
        counters = buckets
            .iter()
            .fold(CallCounters::default(), |sum, bucket| CallCounters {
                contained: sum.contained + bucket.counters.contained,
                routed: sum.routed + bucket.counters.routed,
                verification_passed: sum.verification_passed + bucket.counters.verification_passed,
                verification_failed: sum.verification_failed + bucket.counters.verification_failed,
            });
        if ready(&counters) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    counters
}

#[tokio::test]
async fn a_queued_caller_is_connected_to_the_available_agent_and_the_agent_wraps_up() {
    let server = server().await;
    make_available(&server, "anguyen").await;
    let report = call(
        CallOptions::new(&server.base_url)
            .digits(script("1"))
            .dial(vec![DialBehaviour::Answer {
                after: Duration::from_millis(200),
                talk: Duration::from_millis(500),
            }])
            .max_duration(Duration::from_secs(30)),
    )
    .await;
    assert!(
        report.played_prompts().contains(&"connecting".to_owned()),
        "{:?}",
        report.played_prompts()
    );
    assert_eq!(
        report.dials(),
        [(
            DialTarget::Client("anguyen".to_owned()),
            DialStatus::Completed
        )]
    );
    assert_eq!(report.ended, CallEnd::Hangup);
    let agent = agent_record(&server, "anguyen").await;
    assert!(
        matches!(agent.activity, AgentActivity::WrapUp { .. }),
        "{:?}",
        agent.activity
    );
    assert_eq!(agent.calls_today, 1);
    assert_nobody_waits(&server).await;
}

#[tokio::test]
async fn an_unanswered_offer_puts_the_caller_back_in_line_and_offers_again() {
    let server = server().await;
    make_available(&server, "anguyen").await;
    let report = call(
        CallOptions::new(&server.base_url)
            .digits(script("1"))
            .dial(vec![
                DialBehaviour::NoAnswer,
                DialBehaviour::Answer {
                    after: Duration::from_millis(100),
                    talk: Duration::from_millis(300),
                },
            ])
            .max_duration(Duration::from_secs(30)),
    )
    .await;
    let dials: Vec<DialStatus> = report
        .dials()
        .into_iter()
        .map(|(_, status)| status)
        .collect();
    assert_eq!(dials, [DialStatus::NoAnswer, DialStatus::Completed]);
    assert_eq!(
        report.stream_closes.len(),
        2,
        "a second stream after the missed offer"
    );
    let agent = agent_record(&server, "anguyen").await;
    assert_eq!(agent.missed_in_a_row, 0, "the answer forgets the miss");
    assert_eq!(agent.status, AgentStatus::Available);
}

#[tokio::test]
async fn two_missed_offers_put_the_agent_on_break_and_the_caller_keeps_waiting() {
    let server = server().await;
    make_available(&server, "anguyen").await;
    let report = call(
        CallOptions::new(&server.base_url)
            .digits(script("1"))
            .dial(vec![DialBehaviour::NoAnswer])
            .max_duration(Duration::from_secs(8)),
    )
    .await;
    assert_eq!(report.dials().len(), 2);
    assert_eq!(report.ended, CallEnd::CallerHungUp);
    let agent = agent_record(&server, "anguyen").await;
    assert_eq!(agent.status, AgentStatus::Break);
    assert!(
        report
            .played_prompts()
            .iter()
            .any(|prompt| prompt == "queue_position"),
        "the caller heard their place again after the misses"
    );
    // The caller hung up while waiting: gone from the queue at once.
    assert_nobody_waits(&server).await;
}

#[tokio::test]
async fn an_agent_is_freed_when_the_caller_hangs_up_while_being_connected() {
    let server = server().await;
    make_available(&server, "anguyen").await;
    let report = call_keying(&server, "1,hangup", 20).await;
    assert!(
        report.dials().is_empty(),
        "nobody is dialed for a caller who left"
    );
    let mut agent = None;
    for _ in 0..100 {
        let record = agent_record(&server, "anguyen").await;
        if record.activity == AgentActivity::Idle {
            agent = Some(record);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agent = agent.expect("the agent is not left reserved for a call that has gone");
    assert_eq!(agent.status, AgentStatus::Available);
    assert_eq!(agent.calls_today, 0);
    assert_nobody_waits(&server).await;
}

#[tokio::test]
async fn a_caller_who_hangs_up_while_waiting_leaves_the_queue() {
    let server = server().await;
    // The agent is on shift but not available: the queue is open, nobody takes the call.
    let report = call_keying(&server, "1", 4).await;
    let played = report.played_prompts();
    assert!(played.contains(&"queue_position".to_owned()), "{played:?}");
    assert!(played.contains(&"callback_offer".to_owned()), "{played:?}");
    assert!(
        played.contains(&"hold_music".to_owned()),
        "hold audio loops: {played:?}"
    );
    assert_eq!(report.ended, CallEnd::CallerHungUp);
    assert_nobody_waits(&server).await;
}

#[tokio::test]
async fn a_closed_queue_sends_the_caller_to_when_closed() {
    let server = server().await;
    let report = call_keying(&server, "3", 20).await;
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("after_hours")
    );
    assert_eq!(report.ended, CallEnd::Hangup);
    assert!(report.dials().is_empty());
    let calls = calls_today(&server, |c| c.routed == 1).await;
    assert_eq!(
        calls.routed, 1,
        "a caller sent to when_closed was routed, not self-served"
    );
}

#[tokio::test]
async fn a_transfer_dials_the_outside_number() {
    let server = server().await;
    let report = call(
        CallOptions::new(&server.base_url)
            .digits(script("2"))
            .dial(vec![DialBehaviour::Answer {
                after: Duration::from_millis(100),
                talk: Duration::from_millis(100),
            }])
            .max_duration(Duration::from_secs(20)),
    )
    .await;
    assert_eq!(
        report.dials(),
        [(
            DialTarget::Number("+18005550199".to_owned()),
            DialStatus::Completed
        )]
    );
    assert_eq!(report.ended, CallEnd::Hangup);
}

#[tokio::test]
async fn a_waiting_caller_asks_for_a_callback_and_keeps_their_place() {
    let server = server().await;
    let report = call(
        CallOptions::new(&server.base_url)
            .from("+13125550101")
            .digits(script("1,p1,1,p1.5,1"))
            .max_duration(Duration::from_secs(20)),
    )
    .await;
    let played = report.played_prompts();
    assert!(
        played.contains(&"callback_confirm_intro".to_owned()),
        "{played:?}"
    );
    assert_eq!(
        played.last().map(String::as_str),
        Some("callback_scheduled")
    );
    assert_eq!(report.ended, CallEnd::Hangup);
    let callbacks = server
        .state
        .node
        .store
        .callbacks()
        .await
        .expect("store answers");
    assert_eq!(callbacks.len(), 1);
    let callback = &callbacks[0];
    assert_eq!(callback.number, "13125550101");
    assert_eq!(callback.queue, "portal");
    assert_eq!(callback.status, CallbackStatus::Pending);
    let counters = today(&server, "portal", |c| c.callbacks == 1).await;
    assert_eq!(
        (counters.offered, counters.callbacks, counters.abandoned),
        (1, 1, 0)
    );
    assert!(
        callback.place_ms < callback.requested_at_ms,
        "the request keeps the place the caller had in line"
    );
    assert_nobody_waits(&server).await;
}

#[tokio::test]
async fn a_voicemail_is_recorded_to_a_wav_and_listed() {
    let server = server().await;
    let report = call_keying(&server, "4", 20).await;
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("voicemail_saved")
    );
    assert_eq!(report.ended, CallEnd::Hangup);
    let voicemails = list_voicemails(&server.state.node.recordings_dir()).expect("listing");
    assert_eq!(voicemails.len(), 1);
    let voicemail = &voicemails[0];
    assert!(voicemail.duration_secs > 0.0 && voicemail.duration_secs <= 2.0);
    let wav = hound::WavReader::open(
        server
            .state
            .node
            .recordings_dir()
            .join(format!("{}.wav", voicemail.id)),
    )
    .expect("a readable WAV");
    assert_eq!(wav.spec().bits_per_sample, 16);
    assert_eq!(wav.spec().sample_rate, 8000);
}
