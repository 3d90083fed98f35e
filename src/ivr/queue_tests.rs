//! Queued callers, event by event: joining, hold audio, announcements, the callback offer, the
//! maximum wait, the hand-off to an agent, transfers, voicemail and callback nodes. The clock is
//! a number the test moves.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::engine::{
    Action, Call, CallbackOutcome, Event, HandOff, LeaveReason, PlaybackId, QueueEvent, TimerId,
    number_prompts,
};
use super::flow::Flow;
use crate::config::Config;

const FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "desk"
first_digit_timeout_secs = 7
inter_digit_timeout_secs = 3
max_retries = 3

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "desk", "2" = "outsourced", "3" = "message", "4" = "call_me" }

[nodes.desk]
type = "queue"
queue = "portal"
priority = 5

[nodes.closed]
type = "say"
prompt = ["after_hours"]
next = "message"

[nodes.message]
type = "voicemail"
max_secs = 60

[nodes.outsourced]
type = "transfer"
number = "+18005550199"
timeout_secs = 25
on_failure = "message"

[nodes.call_me]
type = "callback"
queue = "portal"
next = "goodbye"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]

[queues.portal]
skills = ["portal"]
when_closed = "closed"
on_timeout = "message"
max_wait_secs = 300
announce_every_secs = 45
hold_prompt = "hold_music"
"#;

/// A call, the clock, and what a session would keep track of.
struct Harness {
    call: Call,
    now: Timestamp,
    playing: Option<PlaybackId>,
    holding: bool,
    timer: Option<(TimerId, Duration)>,
    played: Vec<String>,
    actions: Vec<Action>,
}

impl Harness {
    fn new() -> Harness {
        let config: Config = toml::from_str(FLOW).expect("test flow parses");
        let flow = Flow::from_config(&config).expect("test flow compiles");
        Harness {
            call: Call::new(Arc::new(flow)),
            now: Timestamp::UNIX_EPOCH,
            playing: None,
            holding: false,
            timer: None,
            played: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn with_caller(raw: &str) -> Harness {
        let mut harness = Harness::new();
        harness.call.set_caller_number(raw);
        harness
    }

    fn send(&mut self, event: Event) -> Vec<Action> {
        let actions = self.call.handle(event, self.now);
        for action in &actions {
            match action {
                Action::Play {
                    playback, prompts, ..
                } => {
                    self.playing = Some(*playback);
                    self.holding = false;
                    self.played.extend(prompts.iter().map(|id| id.to_string()));
                }
                Action::PlayHold { prompt, .. } => {
                    self.playing = None;
                    self.holding = true;
                    self.played.push(format!("loop:{prompt}"));
                }
                Action::StopPlayback => {
                    self.playing = None;
                    self.holding = false;
                }
                Action::StartTimer { timer, after } => self.timer = Some((*timer, *after)),
                Action::CancelTimer => self.timer = None,
                _ => {}
            }
        }
        self.actions.extend(actions.iter().cloned());
        actions
    }

    fn press(&mut self, keys: &str) {
        for key in keys.chars() {
            self.send(Event::Digit(key));
        }
    }

    fn finish_prompt(&mut self) {
        let playback = self.playing.take().expect("something is playing");
        self.send(Event::PlaybackDone(playback));
    }

    /// Move the clock to the armed timer and fire it.
    fn wait_out(&mut self) -> Duration {
        let (timer, after) = self.timer.take().expect("a timer is armed");
        self.now = self.now.checked_add(after).expect("time moves");
        self.send(Event::TimerFired(timer));
        after
    }

    fn take_played(&mut self) -> Vec<String> {
        std::mem::take(&mut self.played)
    }

    fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// From the main menu into the queue and joined, with what was played so far forgotten.
    fn joined(&mut self) {
        self.send(Event::Started);
        self.press("1");
        self.send(Event::Queue(QueueEvent::Joined));
        self.take_played();
    }

    /// From the main menu into the queue, joined, first announcement played: holding.
    fn waiting_in_queue(&mut self) {
        self.send(Event::Started);
        self.press("1");
        self.send(Event::Queue(QueueEvent::Joined));
        self.send(Event::Queue(QueueEvent::Status {
            position: Some(3),
            estimate: Some(Duration::from_secs(400)),
        }));
        self.finish_prompt();
        assert!(self.holding, "hold audio after the announcement");
        self.take_played();
        self.take_actions();
    }
}

#[test]
fn a_queue_node_enqueues_with_its_priority_and_the_verification_flag() {
    let mut call = Harness::new();
    call.send(Event::Started);
    let actions = call.send(Event::Digit('1'));
    assert!(actions.contains(&Action::Enqueue {
        queue: Arc::from("portal"),
        priority: 5,
        verification_failed: false,
    }));
    assert_eq!(call.call.queue(), Some("portal"));
}

#[test]
fn a_joined_caller_hears_place_and_wait_then_hold_audio() {
    let mut call = Harness::new();
    call.send(Event::Started);
    call.press("1");
    call.take_played();
    let actions = call.send(Event::Queue(QueueEvent::Joined));
    assert_eq!(
        actions,
        [Action::AskQueueStatus {
            queue: Arc::from("portal")
        }]
    );
    call.send(Event::Queue(QueueEvent::Status {
        position: Some(12),
        estimate: Some(Duration::from_secs(7 * 60 + 10)),
    }));
    assert_eq!(
        call.take_played(),
        [
            "queue_position",
            "number_12",
            "queue_wait_minutes",
            "digit_8",
            "callback_offer"
        ]
    );
    call.finish_prompt();
    assert_eq!(call.take_played(), ["loop:hold_music"]);
    assert_eq!(
        call.timer.map(|(_, after)| after),
        Some(Duration::from_secs(45))
    );
}

#[test]
fn a_short_wait_is_less_than_a_minute_never_zero_minutes() {
    let mut call = Harness::new();
    call.joined();
    call.send(Event::Queue(QueueEvent::Status {
        position: Some(1),
        estimate: Some(Duration::from_secs(20)),
    }));
    assert_eq!(
        call.take_played(),
        [
            "queue_position",
            "digit_1",
            "queue_wait_less_than_minute",
            "callback_offer"
        ]
    );
}

#[test]
fn announcements_repeat_every_interval_while_waiting() {
    let mut call = Harness::new();
    call.waiting_in_queue();
    assert_eq!(call.wait_out(), Duration::from_secs(45));
    assert!(call.take_actions().contains(&Action::AskQueueStatus {
        queue: Arc::from("portal")
    }));
    call.send(Event::Queue(QueueEvent::Status {
        position: Some(2),
        estimate: None,
    }));
    assert_eq!(
        call.take_played(),
        ["queue_position", "digit_2", "callback_offer"]
    );
}

#[test]
fn the_maximum_wait_leaves_the_queue_for_on_timeout() {
    let mut call = Harness::new();
    call.waiting_in_queue();
    // 300 s max wait, announcements every 45 s: six announcements, then the deadline.
    for _ in 0..6 {
        assert_eq!(call.wait_out(), Duration::from_secs(45));
        call.send(Event::Queue(QueueEvent::Status {
            position: Some(1),
            estimate: None,
        }));
        call.finish_prompt();
    }
    call.take_actions();
    assert_eq!(call.wait_out(), Duration::from_secs(30));
    let actions = call.take_actions();
    assert!(actions.contains(&Action::LeaveQueue {
        reason: LeaveReason::TimedOut
    }));
    assert_eq!(call.call.node(), "message");
    assert_eq!(call.call.queue(), None);
}

#[test]
fn a_closed_queue_runs_when_closed() {
    let mut call = Harness::new();
    call.send(Event::Started);
    call.press("1");
    call.take_played();
    call.send(Event::Queue(QueueEvent::Closed));
    assert_eq!(call.call.node(), "closed");
    assert_eq!(call.take_played(), ["after_hours"]);
}

#[test]
fn an_unreachable_store_apologises_then_runs_when_closed() {
    let mut call = Harness::new();
    call.send(Event::Started);
    call.press("1");
    call.take_played();
    call.send(Event::Queue(QueueEvent::Unavailable));
    assert_eq!(call.take_played(), ["queue_unavailable"]);
    call.finish_prompt();
    assert_eq!(call.call.node(), "closed");
    assert_eq!(call.take_played(), ["after_hours"]);
}

#[test]
fn a_reserved_agent_interrupts_hold_says_connecting_then_hands_off() {
    let mut call = Harness::new();
    call.waiting_in_queue();
    let actions = call.send(Event::AgentReserved);
    assert_eq!(actions.first(), Some(&Action::StopPlayback));
    assert_eq!(call.take_played(), ["connecting"]);
    call.finish_prompt();
    assert!(
        call.take_actions()
            .contains(&Action::HandOff(HandOff::Agent))
    );
    assert!(call.call.is_ended());
}

#[test]
fn zero_and_other_keys_do_nothing_while_queued() {
    let mut call = Harness::new();
    call.waiting_in_queue();
    for key in ['0', '5', '*', '#', '9'] {
        assert!(call.send(Event::Digit(key)).is_empty(), "key {key} acted");
    }
    assert!(call.holding);
    assert_eq!(call.call.queue(), Some("portal"));
}

#[test]
fn pressing_one_offers_a_callback_to_the_caller_id_keeping_the_place() {
    let mut call = Harness::with_caller("+1 (312) 555-0101");
    call.waiting_in_queue();
    call.press("1");
    let played = call.take_played();
    assert_eq!(
        played.first().map(String::as_str),
        Some("callback_confirm_intro")
    );
    assert_eq!(
        played.last().map(String::as_str),
        Some("callback_confirm_choice")
    );
    assert_eq!(played.len(), 2 + 11, "the number is read digit by digit");
    assert_eq!(call.call.queue(), Some("portal"), "still in line meanwhile");
    call.finish_prompt();
    call.press("1");
    let actions = call.take_actions();
    let request = actions
        .iter()
        .find_map(|action| match action {
            Action::RequestCallback {
                queue,
                number,
                keeps_place,
            } => Some((queue.clone(), number.expose().to_owned(), *keeps_place)),
            _ => None,
        })
        .expect("a callback request");
    assert_eq!(
        request,
        (Some(Arc::from("portal")), "13125550101".to_owned(), true)
    );
    assert!(
        !actions
            .iter()
            .any(|action| matches!(action, Action::LeaveQueue { .. })),
        "the place is kept until the request is stored"
    );
    call.send(Event::Callback(CallbackOutcome::Scheduled));
    assert!(call.take_actions().contains(&Action::LeaveQueue {
        reason: LeaveReason::Callback
    }));
    assert_eq!(call.take_played(), ["callback_scheduled"]);
    call.finish_prompt();
    assert!(call.take_actions().contains(&Action::Hangup));
}

#[test]
fn a_caller_can_key_another_callback_number() {
    let mut call = Harness::with_caller("+13125550101");
    call.waiting_in_queue();
    call.press("1");
    call.finish_prompt();
    call.press("2");
    assert_eq!(
        call.take_played().last().map(String::as_str),
        Some("callback_enter_number")
    );
    call.press("123");
    call.press("#");
    assert_eq!(
        call.take_played().first().map(String::as_str),
        Some("invalid_entry"),
        "too short for a phone number"
    );
    call.press("7735550123#");
    let played = call.take_played();
    assert_eq!(
        played.first().map(String::as_str),
        Some("callback_confirm_intro")
    );
    assert_eq!(played.len(), 2 + 10);
    call.press("1");
    let number = call.take_actions().iter().find_map(|action| match action {
        Action::RequestCallback { number, .. } => Some(number.expose().to_owned()),
        _ => None,
    });
    assert_eq!(number.as_deref(), Some("7735550123"));
}

#[test]
fn a_withheld_caller_id_asks_for_the_number_first() {
    let mut call = Harness::with_caller("anonymous");
    call.waiting_in_queue();
    call.press("1");
    assert_eq!(call.take_played(), ["callback_enter_number"]);
}

#[test]
fn a_callback_that_cannot_be_stored_keeps_the_caller_waiting() {
    let mut call = Harness::with_caller("+13125550101");
    call.waiting_in_queue();
    call.press("1");
    call.press("1");
    call.take_played();
    call.send(Event::Callback(CallbackOutcome::Failed));
    assert_eq!(call.take_played(), ["technical_difficulty"]);
    call.finish_prompt();
    assert!(call.holding);
    assert_eq!(call.call.queue(), Some("portal"));
    assert!(
        !call
            .take_actions()
            .iter()
            .any(|action| matches!(action, Action::LeaveQueue { .. }))
    );
}

#[test]
fn an_agent_reserved_while_confirming_a_callback_wins() {
    let mut call = Harness::with_caller("+13125550101");
    call.waiting_in_queue();
    call.press("1");
    call.take_played();
    call.send(Event::AgentReserved);
    assert_eq!(call.take_played(), ["connecting"]);
}

#[test]
fn a_resumed_call_joins_its_queue_again() {
    let config: Config = toml::from_str(FLOW).expect("test flow parses");
    let flow = Arc::new(Flow::from_config(&config).expect("compiles"));
    let mut call = Call::resuming_at(flow, "desk");
    let actions = call.handle(Event::Started, Timestamp::UNIX_EPOCH);
    assert!(
        actions
            .iter()
            .any(|action| matches!(action, Action::Enqueue { .. }))
    );
}

#[test]
fn a_transfer_plays_its_prompt_then_hands_off_to_the_number() {
    let mut call = Harness::new();
    call.send(Event::Started);
    call.take_played();
    call.press("2");
    assert_eq!(call.take_played(), ["transferring"]);
    call.finish_prompt();
    assert!(
        call.take_actions()
            .contains(&Action::HandOff(HandOff::Transfer {
                number: Arc::from("+18005550199"),
                timeout: Duration::from_secs(25),
                on_failure: Some(Arc::from("message")),
            }))
    );
}

#[test]
fn voicemail_records_after_the_greeting_until_pound() {
    let mut call = Harness::new();
    call.send(Event::Started);
    call.take_played();
    call.press("3");
    assert_eq!(call.take_played(), ["voicemail_intro"]);
    call.finish_prompt();
    assert!(call.take_actions().contains(&Action::StartRecording {
        max: Duration::from_secs(60)
    }));
    call.press("5");
    assert!(
        !call.take_actions().contains(&Action::StopRecording),
        "other keys are part of the message"
    );
    call.press("#");
    assert!(call.take_actions().contains(&Action::StopRecording));
    assert_eq!(call.take_played(), ["voicemail_saved"]);
    call.finish_prompt();
    assert!(call.take_actions().contains(&Action::Hangup));
}

#[test]
fn voicemail_stops_at_its_maximum_length() {
    let mut call = Harness::new();
    call.send(Event::Started);
    call.press("3");
    call.finish_prompt();
    assert_eq!(call.wait_out(), Duration::from_secs(60));
    assert!(call.take_actions().contains(&Action::StopRecording));
}

#[test]
fn a_callback_node_schedules_and_goes_on() {
    let mut call = Harness::with_caller("+13125550101");
    call.send(Event::Started);
    call.press("4");
    call.finish_prompt();
    call.press("1");
    call.take_played();
    let keeps_place = call.take_actions().iter().find_map(|action| match action {
        Action::RequestCallback { keeps_place, .. } => Some(*keeps_place),
        _ => None,
    });
    assert_eq!(keeps_place, Some(false));
    call.send(Event::Callback(CallbackOutcome::ScheduledLater));
    assert_eq!(call.take_played(), ["callback_scheduled_later"]);
    call.finish_prompt();
    assert_eq!(call.call.node(), "goodbye");
}

#[test]
fn numbers_are_read_as_words_up_to_ninety_nine() {
    let said = |n| -> Vec<String> {
        number_prompts(n, "en")
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    assert_eq!(said(0), ["digit_0"]);
    assert_eq!(said(7), ["digit_7"]);
    assert_eq!(said(13), ["number_13"]);
    assert_eq!(said(40), ["number_40"]);
    assert_eq!(said(99), ["number_90", "digit_9"]);
    assert_eq!(said(105), ["digit_1", "digit_0", "digit_5"]);
}

#[test]
fn long_estimates_are_read_in_whole_tens_of_minutes() {
    let mut call = Harness::new();
    call.joined();
    call.send(Event::Queue(QueueEvent::Status {
        position: Some(31),
        estimate: Some(Duration::from_secs(33 * 60 + 20)),
    }));
    assert_eq!(
        call.take_played(),
        [
            "queue_position",
            "number_30",
            "digit_1",
            "queue_wait_minutes",
            "number_30",
            "callback_offer"
        ]
    );
}

#[test]
fn an_agent_reserved_while_a_failed_callback_was_being_stored_still_gets_the_caller() {
    let mut call = Harness::with_caller("+13125550101");
    call.waiting_in_queue();
    call.press("1");
    call.press("1");
    call.take_played();
    assert!(
        call.send(Event::AgentReserved).is_empty(),
        "nothing while storing"
    );
    call.send(Event::Callback(CallbackOutcome::Failed));
    assert_eq!(call.take_played(), ["connecting"]);
    call.finish_prompt();
    assert!(
        call.take_actions()
            .contains(&Action::HandOff(HandOff::Agent))
    );
}
