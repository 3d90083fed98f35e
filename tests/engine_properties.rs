//! The call engine under random event sequences: whatever the caller, the network, the store
//! and the directory do, in whatever order, the engine never panics, keeps one timer, plays
//! nothing once the call is over and never shows a keyed digit in `Debug`.
//!
//! 256 cases per run by default (`proptest`'s default). A longer run:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release --test engine_properties
//! ```

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use careline::config::Config;
use careline::ivr::engine::{CallbackOutcome, PatientRef, QueueEvent, ResetOutcome, VerifyOutcome};
use careline::ivr::{Action, Call, Digits, Event, Flow, PlaybackId, TimerId};
use jiff::Timestamp;
use proptest::prelude::*;

/// Every node type, short timeouts and queue intervals, so random walks reach them all.
const FLOW: &str = r#"
[server]
public_url = "https://ivr.example.org"

[ivr]
entry = "hours"
operator = "portal_queue"
first_digit_timeout_secs = 7
inter_digit_timeout_secs = 3
max_retries = 2

[nodes.hours]
type = "schedule"
schedule = "desk"
open = "main"
closed = "after_hours"

[nodes.main]
type = "menu"
intro = ["welcome"]
prompt = ["main_menu"]
options = { "1" = "verify", "2" = "account", "3" = "portal_queue", "4" = "callback", "5" = "message", "6" = "desk", "7" = "info", "8" = "goodbye", "9" = "spanish" }

[nodes.verify]
type = "verify"
identifiers = ["dob", "zip"]
on_success = "reset"
on_failure = "portal_queue"

[nodes.reset]
type = "password_reset"
method = "code"
next = "main"

[nodes.account]
type = "collect"
prompt = ["enter_account"]
min_digits = 4
max_digits = 8
next = "info"

[nodes.info]
type = "say"
prompt = ["info"]
next = "main"

[nodes.spanish]
type = "language"
language = "es"
next = "main"

[nodes.portal_queue]
type = "queue"
queue = "portal"

[nodes.callback]
type = "callback"
next = "goodbye"

[nodes.message]
type = "voicemail"
max_secs = 30
next = "goodbye"

[nodes.desk]
type = "transfer"
number = "+13125550100"
on_failure = "goodbye"

[nodes.after_hours]
type = "menu"
prompt = ["after_hours_menu"]
options = { "1" = "message", "2" = "callback", "3" = "goodbye" }

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]

[queues.portal]
max_wait_secs = 120
announce_every_secs = 10
when_closed = "after_hours"
on_timeout = "message"

[schedules.desk]
timezone = "America/Chicago"
hours = [{ days = "mon-fri", from = "07:00", to = "19:00" }]
"#;

/// One thing that can happen to a call, as the session would report it.
#[derive(Debug, Clone)]
enum Happening {
    Start,
    Key(char),
    /// The current playback's last mark comes back (or, if `stale`, an older one's).
    PlaybackDone {
        stale: bool,
    },
    /// The armed timer fires (or, if `stale`, one that was replaced or cancelled).
    TimerFired {
        stale: bool,
    },
    Verification(u8),
    Reset(u8),
    Queue(u8, u8, u16),
    AgentReserved,
    Callback(u8),
    HangUp,
    /// Time passes.
    Wait(u32),
}

fn happening() -> impl Strategy<Value = Happening> {
    prop_oneof![
        1 => Just(Happening::Start),
        6 => prop::sample::select(vec![
            '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'x'
        ])
        .prop_map(Happening::Key),
        4 => any::<bool>().prop_map(|stale| Happening::PlaybackDone { stale }),
        3 => any::<bool>().prop_map(|stale| Happening::TimerFired { stale }),
        1 => any::<u8>().prop_map(Happening::Verification),
        1 => any::<u8>().prop_map(Happening::Reset),
        2 => (any::<u8>(), any::<u8>(), any::<u16>())
            .prop_map(|(kind, place, wait)| Happening::Queue(kind, place, wait)),
        1 => Just(Happening::AgentReserved),
        1 => any::<u8>().prop_map(Happening::Callback),
        1 => Just(Happening::HangUp),
        1 => (0u32..200_000).prop_map(Happening::Wait),
    ]
}

/// The bookkeeping a session does around the engine, with the invariants checked as it goes.
struct Session {
    call: Call,
    now: Timestamp,
    playing: Option<PlaybackId>,
    finished_playbacks: Vec<PlaybackId>,
    timer: Option<TimerId>,
    dead_timers: Vec<TimerId>,
    hung_up: bool,
    over: bool,
    flow_debug: String,
}

impl Session {
    fn new(flow: Arc<Flow>, caller: &str) -> Session {
        let flow_debug = format!("{flow:?}");
        let mut call = Call::new(flow);
        call.set_caller_number(caller);
        Session {
            call,
            // A Tuesday morning in Chicago: the desk is open at first, and closes as time passes.
            now: "2026-03-10T14:00:00Z".parse().expect("timestamp"),
            playing: None,
            finished_playbacks: Vec::new(),
            timer: None,
            dead_timers: Vec::new(),
            hung_up: false,
            over: false,
            flow_debug,
        }
    }

    fn event(&self, happening: &Happening) -> Option<Event> {
        Some(match happening {
            Happening::Start => Event::Started,
            Happening::Key(key) => Event::Digit(*key),
            Happening::PlaybackDone { stale: false } => Event::PlaybackDone(self.playing?),
            Happening::PlaybackDone { stale: true } => {
                Event::PlaybackDone(*self.finished_playbacks.last()?)
            }
            Happening::TimerFired { stale: false } => Event::TimerFired(self.timer?),
            Happening::TimerFired { stale: true } => Event::TimerFired(*self.dead_timers.last()?),
            Happening::Verification(kind) => Event::Verification(match kind % 5 {
                0 => VerifyOutcome::Verified {
                    patient: PatientRef::new("P000101").expect("patient ref"),
                },
                1 => VerifyOutcome::NotVerified,
                2 => VerifyOutcome::Malformed,
                3 => VerifyOutcome::LockedOut,
                _ => VerifyOutcome::Unavailable,
            }),
            Happening::Reset(kind) => Event::Reset(match kind % 3 {
                0 => ResetOutcome::LinkSent,
                1 => ResetOutcome::CodeIssued(Digits::new("48213907")),
                _ => ResetOutcome::Failed,
            }),
            Happening::Queue(kind, place, wait) => Event::Queue(match kind % 4 {
                0 => QueueEvent::Joined,
                1 => QueueEvent::Closed,
                2 => QueueEvent::Unavailable,
                _ => QueueEvent::Status {
                    position: (*place > 0).then_some(usize::from(*place)),
                    estimate: (*wait > 0).then(|| Duration::from_secs(u64::from(*wait))),
                },
            }),
            Happening::AgentReserved => Event::AgentReserved,
            Happening::Callback(kind) => Event::Callback(match kind % 3 {
                0 => CallbackOutcome::Scheduled,
                1 => CallbackOutcome::ScheduledLater,
                _ => CallbackOutcome::Failed,
            }),
            Happening::HangUp => Event::HungUp,
            Happening::Wait(_) => return None,
        })
    }

    fn happen(&mut self, happening: &Happening, keyed: &str) -> Result<(), TestCaseError> {
        if let Happening::Wait(secs) = happening {
            self.now = self
                .now
                .checked_add(jiff::SignedDuration::from_secs(i64::from(*secs)))
                .unwrap_or(self.now);
            return Ok(());
        }
        let Some(event) = self.event(happening) else {
            return Ok(());
        };
        let stale = matches!(
            happening,
            Happening::PlaybackDone { stale: true } | Happening::TimerFired { stale: true }
        );
        let hung_up_before = self.hung_up;
        if matches!(event, Event::HungUp) {
            self.hung_up = true;
        }
        let actions = self.call.handle(event.clone(), self.now);

        if stale {
            prop_assert!(
                actions.is_empty(),
                "a stale {event:?} acted: {actions:?} (only one timer and one playback are live)"
            );
        }
        if hung_up_before || self.hung_up {
            prop_assert!(
                actions.is_empty(),
                "{event:?} after the caller hung up produced {actions:?}"
            );
        }
        for action in &actions {
            let debug = format!("{action:?}");
            match action {
                Action::Play { playback, .. } | Action::PlayHold { playback, .. } => {
                    prop_assert!(!self.over, "{action:?} after the call ended");
                    if let Some(old) = self.playing.replace(*playback) {
                        self.finished_playbacks.push(old);
                    }
                }
                Action::StopPlayback => {
                    if let Some(old) = self.playing.take() {
                        self.finished_playbacks.push(old);
                    }
                }
                Action::StartTimer { timer, after } => {
                    prop_assert!(!self.over, "{action:?} after the call ended");
                    prop_assert!(
                        *after <= Duration::from_secs(4 * 3600)
                            && Instant::now().checked_add(*after).is_some(),
                        "timer of {after:?}"
                    );
                    if let Some(old) = self.timer.replace(*timer) {
                        self.dead_timers.push(old);
                    }
                }
                Action::CancelTimer => {
                    if let Some(old) = self.timer.take() {
                        self.dead_timers.push(old);
                    }
                }
                Action::Hangup | Action::HandOff(_) => self.over = true,
                Action::Verify { dob, value, .. } => {
                    redacted(&debug, dob)?;
                    redacted(&debug, value)?;
                }
                Action::RequestCallback { number, .. } => redacted(&debug, number)?,
                _ => {}
            }
        }
        if matches!(event, Event::TimerFired(_)) && !stale {
            // The timer that fired is spent, whether or not it armed another.
            if let Some(fired) = self.timer.filter(|live| Event::TimerFired(*live) == event) {
                self.dead_timers.push(fired);
                self.timer = None;
            }
        }
        if matches!(event, Event::PlaybackDone(_))
            && !stale
            && let Some(done) = self
                .playing
                .filter(|live| Event::PlaybackDone(*live) == event)
        {
            self.finished_playbacks.push(done);
            self.playing = None;
        }
        // The flow's own numbers (a transfer's phone number) are configuration, not keys.
        let shown = format!("{:?}", self.call).replace(&self.flow_debug, "");
        // Six or more: the call's `Debug` shows years and small counters, never a longer run.
        if keyed.len() >= 6 {
            prop_assert!(
                !shown.contains(keyed),
                "keyed digits in the call's Debug: {shown}"
            );
        }
        for key in ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] {
            prop_assert!(
                !shown.contains(&format!("'{key}'")),
                "a keyed digit in the call's Debug: {shown}"
            );
        }
        Ok(())
    }
}

/// `Debug` of an action carrying `digits` shows their count, never them.
fn redacted(debug: &str, digits: &Digits) -> Result<(), TestCaseError> {
    prop_assert!(
        debug.contains(&format!("Digits(<{} redacted>)", digits.len())),
        "{debug}"
    );
    if digits.len() >= 4 {
        prop_assert!(!debug.contains(digits.expose()), "digits shown in {debug}");
    }
    Ok(())
}

/// Compiled once: every case walks the same flow.
fn flow() -> Arc<Flow> {
    static FLOW_ONCE: OnceLock<Arc<Flow>> = OnceLock::new();
    FLOW_ONCE
        .get_or_init(|| {
            let config: Config = toml::from_str(FLOW).expect("the test flow parses");
            Arc::new(Flow::from_config(&config).expect("the test flow compiles"))
        })
        .clone()
}

proptest! {
    #[test]
    fn the_engine_never_panics_and_keeps_its_invariants(
        happenings in prop::collection::vec(happening(), 1..120),
        withheld in any::<bool>(),
    ) {
        let caller = if withheld { "anonymous" } else { "+13125550199" };
        let mut session = Session::new(flow(), caller);
        let mut keyed = String::new();
        for happening in &happenings {
            if let Happening::Key(key) = happening
                && key.is_ascii_digit()
            {
                keyed.push(*key);
            }
            session.happen(happening, &keyed)?;
        }
    }

    #[test]
    fn digits_debug_shows_only_their_count(digits in "[0-9*#]{0,40}") {
        let shown = format!("{:?}", Digits::new(digits.clone()));
        prop_assert_eq!(shown, format!("Digits(<{} redacted>)", digits.len()));
        let shown = Digits::new(digits.clone()).to_string();
        prop_assert_eq!(shown, format!("<{} digits redacted>", digits.len()));
    }
}
