//! The session task driven through channels with paused tokio time: protocol handling, bad
//! input, barge-in and timeouts, without sockets.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, PollSender};

use super::player::LEAD;
use super::registry::CallRegistry;
use super::session::{
    CLOSE_POLICY_VIOLATION, QUIET_STREAM_TIMEOUT, STREAM_WRITE_TIMEOUT, SessionContext, SessionEnd,
    deadline_after, run_session,
};
use crate::config::Config;
use crate::ivr::Flow;
use crate::media::prompt::{CHUNK_BYTES, PromptAudio, PromptLibrary};
use crate::telemetry::Metrics;
use crate::twilio::wire::OutboundOwned;

const FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "goodbye"

[nodes.main]
type = "menu"
prompt = ["welcome", "main_menu"]
options = { "1" = "goodbye" }

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]
"#;

fn library() -> PromptLibrary {
    let mut library = PromptLibrary::default();
    for id in [
        "welcome",
        "main_menu",
        "goodbye",
        "no_input",
        "invalid_choice",
        "hold",
    ] {
        library.insert(
            "en",
            id,
            PromptAudio::from_mulaw(vec![0x55; 10 * CHUNK_BYTES]),
        );
    }
    library
}

/// A session under test, with the Twilio side held by the test.
struct Line {
    to_careline: mpsc::UnboundedSender<Result<Message, std::io::Error>>,
    from_careline: mpsc::Receiver<Message>,
    session: JoinHandle<SessionEnd>,
    calls: Arc<CallRegistry>,
    metrics: Arc<Metrics>,
    /// The server's "stop waiting for calls" and "drain" signals.
    force_close: CancellationToken,
    drain: CancellationToken,
}

/// A flow that puts every caller in a queue with one agent on shift (and not available).
const QUEUE_FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "portal_queue"
operator = "portal_queue"

[nodes.portal_queue]
type = "queue"
queue = "portal"

[queues.portal]
skills = ["portal"]
hold_prompt = "hold"

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
dial = "+13125550101"
"#;

impl Line {
    fn open() -> Line {
        Line::open_with(FLOW)
    }

    /// A session on `flow`.
    fn open_with(flow: &str) -> Line {
        Line::open_reading(flow, 1024)
    }

    /// A session whose Twilio side takes `unread` messages and then reads no more until the
    /// test takes them (a peer that stops reading).
    fn open_reading(flow: &str, unread: usize) -> Line {
        let config: Config = toml::from_str(flow).expect("flow parses");
        let store: Arc<dyn crate::store::Store> =
            Arc::new(crate::store::memory::MemoryStore::new());
        let calls = Arc::new(CallRegistry::new(store.clone(), "session-test"));
        let metrics: Arc<Metrics> = Arc::default();
        let router =
            crate::dispatch::router::Router::new(store.clone(), &config, "session-test".to_owned());
        router.attach_metrics(metrics.clone());
        let force_close = CancellationToken::new();
        let drain = CancellationToken::new();
        let context = SessionContext {
            flow: Arc::new(Flow::from_config(&config).expect("flow compiles")),
            prompts: Arc::new(library()),
            calls: calls.clone(),
            force_close: force_close.clone(),
            drain: drain.clone(),
            dtmf: crate::config::DtmfMode::Events,
            identity: None,
            router,
            roster: Arc::default(),
            store,
            recordings_dir: Arc::from(std::path::Path::new("var/voicemail")),
            metrics: metrics.clone(),
        };
        let (to_careline, incoming) = mpsc::unbounded_channel();
        let incoming = futures_util::stream::unfold(incoming, |mut incoming| async move {
            incoming.recv().await.map(|message| (message, incoming))
        })
        .boxed();
        let (outgoing, from_careline) = mpsc::channel(unread);
        let session = tokio::spawn(run_session(incoming, PollSender::new(outgoing), context));
        Line {
            to_careline,
            from_careline,
            session,
            calls,
            metrics,
            force_close,
            drain,
        }
    }

    fn send(&self, text: &str) {
        self.to_careline
            .send(Ok(Message::Text(text.to_owned().into())))
            .expect("session is listening");
    }

    async fn start(&self) {
        let token = self
            .calls
            .register("CA1", "+13125550101")
            .await
            .expect("registered");
        self.send(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#);
        self.send(&format!(
            r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"from":"+13125550101","token":"{token}"}}}},"streamSid":"MZ1"}}"#
        ));
    }

    /// Send inbound `media` every 20 ms from now on, as Twilio does all through a call, until
    /// the session stops listening (or the task is aborted).
    fn keep_sending_media(&self) -> JoinHandle<()> {
        let to_careline = self.to_careline.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            for sequence in 2u64.. {
                every.tick().await;
                let frame = format!(
                    r#"{{"event":"media","sequenceNumber":"{sequence}","media":{{"track":"inbound","chunk":"{sequence}","timestamp":"{}","payload":"//////////8="}},"streamSid":"MZ1"}}"#,
                    sequence * 20
                );
                if to_careline.send(Ok(Message::Text(frame.into()))).is_err() {
                    return;
                }
            }
        })
    }

    fn press(&self, key: char) {
        self.send(&format!(
            r#"{{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"9","dtmf":{{"track":"inbound_track","digit":"{key}"}}}}"#
        ));
    }

    fn echo(&self, name: &str) {
        self.send(&format!(
            r#"{{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{{"name":"{name}"}}}}"#
        ));
    }

    /// Everything careline has sent so far (lets the session run first).
    async fn received(&mut self) -> Vec<Message> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut out = Vec::new();
        while let Ok(message) = self.from_careline.try_recv() {
            out.push(message);
        }
        out
    }

    /// Play along like Twilio: echo every mark when the audio sent before it has played, in
    /// real time, until careline has nothing more to send. Returns the prompts whose end marks
    /// were echoed.
    async fn play_all(&mut self) -> Vec<String> {
        let first = self.received().await;
        self.play_all_from(first).await
    }

    /// As [`Line::play_all`], starting with messages already taken from careline.
    async fn play_all_from(&mut self, first: Vec<Message>) -> Vec<String> {
        let mut prompts = Vec::new();
        let mut messages = first;
        // When Twilio would be done playing what it was sent.
        let mut plays_until = tokio::time::Instant::now();
        loop {
            let mut marks = Vec::new();
            for message in &messages {
                let now = tokio::time::Instant::now();
                match parse(message) {
                    Some(OutboundOwned::Media { media, .. }) => {
                        let bytes = media.payload.len() / 4 * 3;
                        plays_until =
                            plays_until.max(now) + Duration::from_millis(bytes as u64 / 8);
                    }
                    Some(OutboundOwned::Mark { mark, .. }) => marks.push((mark.name, plays_until)),
                    Some(OutboundOwned::Clear { .. }) => plays_until = now,
                    None => {}
                }
            }
            if marks.is_empty() {
                return prompts;
            }
            for (name, played) in marks {
                tokio::time::sleep_until(played).await;
                if let Some(prompt) = name.strip_prefix("prompt:") {
                    prompts.push(
                        prompt
                            .rsplit_once(':')
                            .map_or(prompt, |(id, _)| id)
                            .to_owned(),
                    );
                }
                self.echo(&name);
            }
            messages = self.received().await;
        }
    }
}

fn parse(message: &Message) -> Option<OutboundOwned> {
    match message {
        Message::Text(text) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

fn close_code(messages: &[Message]) -> Option<u16> {
    messages.iter().find_map(|message| match message {
        Message::Close(Some(frame)) => Some(frame.code),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn a_started_stream_hears_the_entry_menu_and_its_marks_come_back() {
    let mut line = Line::open();
    line.start().await;
    assert_eq!(line.play_all().await, ["en/welcome", "en/main_menu"]);
}

#[tokio::test(start_paused = true)]
async fn every_outbound_message_is_json_text_for_this_stream() {
    let mut line = Line::open();
    line.start().await;
    for message in line.received().await {
        let parsed = parse(&message).expect("careline sends only valid JSON text frames");
        let (OutboundOwned::Media { stream_sid, .. }
        | OutboundOwned::Mark { stream_sid, .. }
        | OutboundOwned::Clear { stream_sid }) = parsed;
        assert_eq!(stream_sid, "MZ1");
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_during_the_prompt_sends_clear_before_anything_else() {
    let mut line = Line::open();
    line.start().await;
    line.received().await;
    line.press('7');
    let after = line.received().await;
    assert!(
        matches!(
            after.first().and_then(parse),
            Some(OutboundOwned::Clear { .. })
        ),
        "first message after the key must be clear, got {:?}",
        after.first()
    );
    assert_eq!(
        line.play_all_from(after).await,
        ["en/invalid_choice", "en/welcome", "en/main_menu"]
    );
}

#[tokio::test(start_paused = true)]
async fn silence_after_the_menu_brings_the_no_input_prompt_seven_seconds_later() {
    let mut line = Line::open();
    line.start().await;
    line.keep_sending_media();
    line.play_all().await;
    tokio::time::sleep(Duration::from_millis(6900)).await;
    assert!(
        line.received().await.is_empty(),
        "nothing before the timeout"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(line.play_all().await[0], "en/no_input");
}

#[tokio::test(start_paused = true)]
async fn the_timeout_waits_for_the_prompt_to_finish_playing() {
    let mut line = Line::open();
    line.start().await;
    line.keep_sending_media();
    line.received().await;
    // Marks never come back: Twilio is still playing. No timeout may fire.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(line.received().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_goodbye_plays_before_careline_closes_the_stream() {
    let mut line = Line::open();
    line.start().await;
    line.play_all().await;
    line.press('1');
    let heard = line.play_all().await;
    assert_eq!(heard, ["en/goodbye"]);
    assert_eq!(
        line.session.await.expect("session ends"),
        SessionEnd::HungUpByCareline
    );
}

#[tokio::test(start_paused = true)]
async fn media_before_start_closes_the_stream_as_a_policy_violation() {
    let mut line = Line::open();
    line.send(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#);
    line.send(r#"{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"//8="},"streamSid":"MZ1"}"#);
    let messages = line.received().await;
    assert_eq!(close_code(&messages), Some(CLOSE_POLICY_VIOLATION));
    assert!(matches!(
        line.session.await,
        Ok(SessionEnd::PolicyViolation(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn dtmf_before_start_closes_the_stream_as_a_policy_violation() {
    let mut line = Line::open();
    line.press('1');
    assert_eq!(
        close_code(&line.received().await),
        Some(CLOSE_POLICY_VIOLATION)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_without_its_call_token_is_refused() {
    let mut line = Line::open();
    line.calls
        .register("CA1", "+13125550101")
        .await
        .expect("registered");
    line.send(r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","customParameters":{"token":"guess"}},"streamSid":"MZ1"}"#);
    assert_eq!(
        close_code(&line.received().await),
        Some(CLOSE_POLICY_VIOLATION)
    );
}

#[tokio::test(start_paused = true)]
async fn junk_frames_are_skipped_and_the_call_carries_on() {
    let mut line = Line::open();
    line.start().await;
    line.play_all().await;
    line.send("this is not json");
    line.send(r#"{"event":"surprise","streamSid":"MZ1"}"#);
    line.send(r#"{"event":"media","streamSid":"MZ1"}"#);
    line.send(r#"{"event":"dtmf","streamSid":"MZ-other","dtmf":{"digit":"1"}}"#);
    line.to_careline
        .send(Ok(Message::Binary(vec![1, 2, 3].into())))
        .expect("session listening");
    assert!(close_code(&line.received().await).is_none());
    line.press('7');
    assert_eq!(line.play_all().await[0], "en/invalid_choice");
}

#[tokio::test(start_paused = true)]
async fn an_oversized_message_closes_the_stream_as_a_policy_violation() {
    let mut line = Line::open();
    line.start().await;
    line.play_all().await;
    line.send(&format!(
        r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{}"}}}}"#,
        "A".repeat(70 * 1024)
    ));
    assert_eq!(
        close_code(&line.received().await),
        Some(CLOSE_POLICY_VIOLATION)
    );
}

#[tokio::test(start_paused = true)]
async fn stop_ends_the_session_as_a_caller_hang_up() {
    let line = Line::open();
    line.start().await;
    line.send(r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#);
    assert_eq!(line.session.await.expect("ends"), SessionEnd::CallerHungUp);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        line.calls.streams_here(),
        0,
        "this node carries the stream no more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_socket_counts_as_stop() {
    let line = Line::open();
    line.start().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(line.to_careline);
    assert_eq!(line.session.await.expect("ends"), SessionEnd::CallerHungUp);
}

#[tokio::test(start_paused = true)]
async fn a_timer_too_long_for_the_clock_is_never_rather_than_a_panic() {
    let now = tokio::time::Instant::now();
    let never = deadline_after(now, Duration::MAX);
    assert!(never > now + Duration::from_secs(86_400 * 365));
    assert_eq!(
        deadline_after(now, Duration::from_secs(7)),
        now + Duration::from_secs(7)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_goes_quiet_ends_as_a_hang_up() {
    let mut line = Line::open();
    line.start().await;
    line.play_all().await;
    tokio::time::sleep(QUIET_STREAM_TIMEOUT - Duration::from_millis(100)).await;
    assert!(!line.session.is_finished(), "not quiet for long enough yet");
    let end = tokio::time::timeout(Duration::from_millis(500), &mut line.session)
        .await
        .expect("quiet for five seconds: the stream ends")
        .expect("session");
    assert_eq!(end, SessionEnd::CallerHungUp);
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_keeps_sending_media_stays_up_however_long_the_silence() {
    let mut line = Line::open();
    line.start().await;
    line.play_all().await;
    line.keep_sending_media();
    tokio::time::sleep(QUIET_STREAM_TIMEOUT * 4).await;
    assert!(!line.session.is_finished());
    assert!(close_code(&line.received().await).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_queued_caller_whose_stream_goes_quiet_counts_as_abandoned() {
    let mut line = Line::open_with(QUEUE_FLOW);
    line.start().await;
    let media = line.keep_sending_media();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        line.calls.snapshot().await.expect("records")[0]
            .phase
            .as_str(),
        "queued",
        "the caller waits in the queue"
    );
    // The stream falls silent: no media, no marks, no close.
    media.abort();
    line.received().await;
    let end = tokio::time::timeout(QUIET_STREAM_TIMEOUT * 2, &mut line.session)
        .await
        .expect("the quiet stream ends")
        .expect("session");
    assert_eq!(end, SessionEnd::CallerHungUp);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(line.metrics.counters().abandoned, 1);
}

/// A started call whose peer took `unread` messages and then stopped reading, but keeps
/// sending media (so the call is not quiet).
async fn a_peer_that_stopped_reading(unread: usize) -> Line {
    let line = Line::open_reading(FLOW, unread);
    line.start().await;
    line.keep_sending_media();
    line
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_dropped_once_a_write_waits_too_long() {
    let mut line = a_peer_that_stopped_reading(2).await;
    tokio::time::sleep(STREAM_WRITE_TIMEOUT - Duration::from_millis(100)).await;
    assert!(!line.session.is_finished(), "the write may still complete");
    let end = tokio::time::timeout(Duration::from_millis(200), &mut line.session)
        .await
        .expect("the stalled stream is dropped")
        .expect("session");
    assert_eq!(end, SessionEnd::WriteStalled);
    assert_eq!(line.metrics.counters().streams_stalled, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_not_held_up_by_a_write_to_a_peer_that_stopped_reading() {
    let mut line = a_peer_that_stopped_reading(2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    line.force_close.cancel();
    let end = tokio::time::timeout(Duration::from_secs(1), &mut line.session)
        .await
        .expect("the session ends within a second of being told to")
        .expect("session");
    assert_eq!(end, SessionEnd::Shutdown);
    assert_eq!(line.metrics.counters().streams_stalled, 0);
}

#[tokio::test(start_paused = true)]
async fn a_drain_is_heard_during_a_write_to_a_peer_that_stopped_reading() {
    let mut line = a_peer_that_stopped_reading(2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    line.drain.cancel();
    let end = tokio::time::timeout(Duration::from_secs(3), &mut line.session)
        .await
        .expect("the session ends")
        .expect("session");
    assert_eq!(end, SessionEnd::Drained);
}

#[tokio::test(start_paused = true)]
async fn a_peer_echoing_every_mark_at_once_gets_hold_music_no_faster_than_real_time() {
    let mut line = Line::open_with(QUEUE_FLOW);
    line.start().await;
    line.keep_sending_media();
    let began = tokio::time::Instant::now();
    let until = began + Duration::from_secs(30);
    let mut audio = Duration::ZERO;
    while let Ok(Some(message)) = tokio::time::timeout_at(until, line.from_careline.recv()).await {
        match parse(&message) {
            Some(OutboundOwned::Media { media, .. }) => {
                audio += Duration::from_millis((media.payload.len() / 4 * 3) as u64 / 8);
            }
            Some(OutboundOwned::Mark { mark, .. }) => line.echo(&mark.name),
            _ => {}
        }
        if audio > Duration::from_secs(600) {
            break;
        }
    }
    let elapsed = began.elapsed();
    assert!(
        audio <= elapsed + LEAD,
        "{audio:?} of audio in {elapsed:?}: more than real time and the lead"
    );
    assert!(
        audio >= elapsed,
        "{audio:?} in {elapsed:?}: the caller ran dry"
    );
}
