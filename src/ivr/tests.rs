//! Engine behaviour, event by event: no sockets, no clock, no Redis.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::engine::{Action, Call, Event, PlaybackId, TimerId};
use super::flow::Flow;
use crate::config::Config;

const FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "operator"
first_digit_timeout_secs = 7
inter_digit_timeout_secs = 3
max_retries = 3

[nodes.main]
type = "menu"
intro = ["welcome"]
prompt = ["main_menu"]
options = { "1" = "account", "2" = "info", "3" = "devices", "9" = "spanish" }
on_failure = "failed"

[nodes.devices]
type = "menu"
prompt = ["device_menu"]
options = { "1" = "iphone", "0" = "main" }

[nodes.account]
type = "collect"
prompt = ["enter_account"]
min_digits = 4
max_digits = 6
next = "thanks"

[nodes.info]
type = "say"
prompt = ["info"]
next = "main"

[nodes.spanish]
type = "language"
language = "es"
next = "main"

[nodes.iphone]
type = "say"
prompt = ["iphone_help"]
next = "goodbye"

[nodes.thanks]
type = "say"
prompt = ["thanks"]
next = "goodbye"

[nodes.operator]
type = "say"
prompt = ["operator_hours"]
next = "goodbye"

[nodes.failed]
type = "say"
prompt = ["failed"]
next = "goodbye"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]
"#;

fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

/// A call plus the bookkeeping a session would do: which playback and timer are current.
struct Harness {
    call: Call,
    playing: Option<PlaybackId>,
    timer: Option<(TimerId, Duration)>,
    played: Vec<String>,
    cleared: usize,
    hung_up: bool,
}

impl Harness {
    fn new() -> Harness {
        Harness::from_source(FLOW)
    }

    fn from_source(source: &str) -> Harness {
        let config: Config = toml::from_str(source).expect("test flow parses");
        let flow = Flow::from_config(&config).expect("test flow compiles");
        Harness {
            call: Call::new(Arc::new(flow)),
            playing: None,
            timer: None,
            played: Vec::new(),
            cleared: 0,
            hung_up: false,
        }
    }

    fn send(&mut self, event: Event) -> Vec<Action> {
        let actions = self.call.handle(event, now());
        for action in &actions {
            match action {
                Action::Play {
                    playback,
                    language,
                    prompts,
                } => {
                    self.playing = Some(*playback);
                    self.played
                        .extend(prompts.iter().map(|id| format!("{language}/{id}")));
                }
                Action::StopPlayback => {
                    self.cleared += 1;
                    self.playing = None;
                }
                Action::StartTimer { timer, after } => self.timer = Some((*timer, *after)),
                Action::CancelTimer => self.timer = None,
                Action::Hangup => self.hung_up = true,
                _ => {}
            }
        }
        actions
    }

    fn start(&mut self) {
        self.send(Event::Started);
    }

    fn press(&mut self, keys: &str) {
        for key in keys.chars() {
            self.send(Event::Digit(key));
        }
    }

    /// The current prompt plays to its end (its mark comes back).
    fn finish_prompt(&mut self) {
        let playback = self.playing.take().expect("something is playing");
        self.send(Event::PlaybackDone(playback));
    }

    /// The armed timer fires.
    fn wait_out(&mut self) -> Duration {
        let (timer, after) = self.timer.take().expect("a timer is armed");
        self.send(Event::TimerFired(timer));
        after
    }

    /// Forget what was played so far.
    fn take_played(&mut self) -> Vec<String> {
        std::mem::take(&mut self.played)
    }
}

#[test]
fn a_new_call_hears_the_entry_menu() {
    let mut call = Harness::new();
    call.start();
    assert_eq!(call.take_played(), ["en/welcome", "en/main_menu"]);
    assert_eq!(call.call.node(), "main");
}

#[test]
fn the_first_digit_timeout_starts_only_when_the_prompt_has_played() {
    let mut call = Harness::new();
    call.start();
    assert!(
        call.timer.is_none(),
        "no timer while the menu is still playing"
    );
    call.finish_prompt();
    assert_eq!(
        call.timer.map(|(_, after)| after),
        Some(Duration::from_secs(7))
    );
}

#[test]
fn a_timeout_too_large_for_any_clock_is_held_to_its_documented_limit() {
    // `careline check` refuses this value; a flow built without the check must still never
    // hand the session a duration that overflows `Instant + Duration`.
    let mut call = Harness::from_source(&FLOW.replace(
        "first_digit_timeout_secs = 7",
        "first_digit_timeout_secs = 18446744073709551615",
    ));
    call.start();
    call.finish_prompt();
    let after = call.timer.map(|(_, after)| after).expect("timer armed");
    assert_eq!(after, Duration::from_secs(60));
    assert!(std::time::Instant::now().checked_add(after).is_some());
}

#[test]
fn a_key_during_the_prompt_clears_it_and_acts_at_once() {
    let mut call = Harness::new();
    call.start();
    call.take_played();
    let actions = call.send(Event::Digit('3'));
    assert_eq!(actions.first(), Some(&Action::StopPlayback));
    assert_eq!(call.call.node(), "devices");
    assert_eq!(call.take_played(), ["en/device_menu"]);
}

#[test]
fn a_late_finish_of_an_interrupted_prompt_is_ignored() {
    let mut call = Harness::new();
    call.start();
    let first = call.playing.expect("menu playing");
    call.press("3");
    let actions = call.send(Event::PlaybackDone(first));
    assert!(actions.is_empty(), "stale mark produced {actions:?}");
    assert!(call.timer.is_none());
}

#[test]
fn silence_reprompts_then_goes_to_on_failure_after_max_retries() {
    let mut call = Harness::new();
    call.start();
    call.take_played();
    call.finish_prompt();
    call.wait_out();
    assert_eq!(call.take_played(), ["en/no_input", "en/main_menu"]);
    call.finish_prompt();
    call.wait_out();
    assert_eq!(
        call.call.node(),
        "main",
        "still a re-prompt after two silences"
    );
    call.finish_prompt();
    call.wait_out();
    assert_eq!(call.call.node(), "failed");
    assert_eq!(
        call.take_played().last().map(String::as_str),
        Some("en/failed")
    );
}

#[test]
fn caller_pressing_a_wrong_key_hears_the_choices_not_the_welcome() {
    let mut call = Harness::new();
    call.start();
    call.take_played();
    call.press("7");
    assert_eq!(call.take_played(), ["en/invalid_choice", "en/main_menu"]);
    assert_eq!(call.call.node(), "main");
}

#[test]
fn a_silent_caller_hears_the_choices_again_not_the_welcome() {
    let mut call = Harness::new();
    call.start();
    call.take_played();
    call.finish_prompt();
    call.wait_out();
    assert_eq!(call.take_played(), ["en/no_input", "en/main_menu"]);
}

#[test]
fn a_caller_coming_back_to_a_menu_hears_its_intro_again() {
    let mut call = Harness::new();
    call.start();
    call.press("2");
    call.take_played();
    call.finish_prompt();
    assert_eq!(call.call.node(), "main");
    assert_eq!(call.take_played(), ["en/welcome", "en/main_menu"]);
}

#[test]
fn a_key_typed_ahead_of_a_menu_skips_its_intro_too() {
    let mut call = Harness::new();
    call.start();
    call.press("2");
    // "9" typed during the info announcement acts as soon as the main menu is entered.
    call.press("9");
    call.take_played();
    call.finish_prompt();
    let played = call.take_played();
    assert!(!played.contains(&"en/welcome".to_owned()), "{played:?}");
    assert_eq!(call.call.language(), "es");
}

#[test]
fn caller_pressing_star_hears_the_menu_again_without_using_a_try() {
    let mut call = Harness::new();
    call.start();
    call.press("7");
    call.press("7");
    call.take_played();
    call.press("*");
    assert_eq!(
        call.take_played(),
        ["en/main_menu"],
        "the repeat key replays the choices, not the welcome"
    );
    call.press("*");
    assert_eq!(call.call.node(), "main", "star never counts as a failure");
    call.press("7");
    assert_eq!(
        call.call.node(),
        "failed",
        "third wrong key uses the last try"
    );
}

#[test]
fn zero_reaches_the_operator_from_any_menu() {
    let mut call = Harness::new();
    call.start();
    call.press("0");
    assert_eq!(call.call.node(), "operator");
}

#[test]
fn a_menu_that_maps_zero_itself_keeps_it() {
    let mut call = Harness::new();
    call.start();
    call.press("3");
    call.press("0");
    assert_eq!(call.call.node(), "main");
}

#[test]
fn collect_ends_on_pound() {
    let mut call = Harness::new();
    call.start();
    call.press("1");
    call.finish_prompt();
    call.press("12345#");
    assert_eq!(call.call.node(), "thanks");
    assert_eq!(
        call.call.collected("account").map(|digits| digits.expose()),
        Some("12345")
    );
}

#[test]
fn collect_ends_on_max_digits() {
    let mut call = Harness::new();
    call.start();
    call.press("1");
    call.press("123456");
    assert_eq!(call.call.node(), "thanks");
}

#[test]
fn collect_ends_on_the_inter_digit_timeout() {
    let mut call = Harness::new();
    call.start();
    call.press("1");
    call.finish_prompt();
    call.press("1234");
    let after = call.wait_out();
    assert_eq!(after, Duration::from_secs(3));
    assert_eq!(call.call.node(), "thanks");
}

#[test]
fn collect_too_short_is_an_invalid_entry_and_asks_again() {
    let mut call = Harness::new();
    call.start();
    call.press("1");
    call.take_played();
    call.press("12#");
    assert_eq!(call.call.node(), "account");
    assert_eq!(call.take_played(), ["en/invalid_entry", "en/enter_account"]);
    call.press("9876#");
    assert_eq!(
        call.call.collected("account").map(|digits| digits.expose()),
        Some("9876")
    );
}

#[test]
fn collect_waits_for_the_first_digit_only_after_its_prompt() {
    let mut call = Harness::new();
    call.start();
    call.press("1");
    assert!(call.timer.is_none());
    call.finish_prompt();
    assert_eq!(
        call.timer.map(|(_, after)| after),
        Some(Duration::from_secs(7))
    );
    call.wait_out();
    assert_eq!(
        call.take_played().last().map(String::as_str),
        Some("en/enter_account")
    );
}

#[test]
fn keys_typed_during_a_say_are_kept_for_the_next_menu() {
    let mut call = Harness::new();
    call.start();
    call.press("2");
    assert_eq!(call.call.node(), "info");
    call.take_played();
    call.press("3");
    assert_eq!(call.call.node(), "info", "a say is not interrupted");
    call.finish_prompt();
    assert_eq!(
        call.call.node(),
        "devices",
        "the key pressed during the say chose 3"
    );
    assert_eq!(call.take_played(), ["en/device_menu"]);
}

#[test]
fn keys_typed_ahead_of_a_submenu_prompt_are_not_lost() {
    let mut call = Harness::new();
    call.start();
    call.press("31");
    assert_eq!(call.call.node(), "iphone");
}

#[test]
fn the_language_node_switches_every_later_prompt() {
    let mut call = Harness::new();
    call.start();
    call.take_played();
    call.press("9");
    assert_eq!(call.take_played(), ["es/welcome", "es/main_menu"]);
    assert_eq!(call.call.language(), "es");
}

#[test]
fn hangup_plays_goodbye_then_ends_the_call() {
    let mut call = Harness::new();
    call.start();
    call.press("0");
    call.finish_prompt();
    assert_eq!(call.call.node(), "goodbye");
    assert!(!call.hung_up, "goodbye must be heard first");
    call.finish_prompt();
    assert!(call.hung_up);
    assert!(call.call.is_ended());
}

#[test]
fn keys_after_hang_up_do_nothing() {
    let mut call = Harness::new();
    call.start();
    call.send(Event::HungUp);
    assert!(call.send(Event::Digit('1')).is_empty());
}

#[test]
fn keys_typed_ahead_never_show_in_debug_output() {
    let mut call = Harness::new();
    call.start();
    call.press("2");
    // Typed during the `info` announcement: kept for the next menu, not yet acted on.
    call.press("0312");
    let shown = format!("{:?}", call.call);
    assert!(shown.contains("TypeAhead(<4 redacted>)"), "{shown}");
    assert!(!shown.contains("'0'") && !shown.contains("'3'"), "{shown}");
}

#[test]
fn collected_digits_never_show_in_debug_output() {
    let mut call = Harness::new();
    call.start();
    call.press("1");
    call.press("918273#");
    let shown = format!("{:?}", call.call);
    assert!(!shown.contains("918273"), "{shown}");
}

mod identity {
    //! The verify and password-reset steps.

    use super::*;
    use crate::config::{Identifier, ResetMethod};
    use crate::ivr::engine::{Digits, PatientRef, ResetOutcome, VerifyOutcome};

    const IDENTITY_FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "operator"

[identity]
directory = { kind = "file", path = "directory.jsonl" }
max_attempts = 3

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "verify", "2" = "reset" }

[nodes.verify]
type = "verify"
identifiers = ["dob", "zip"]
on_success = "reset"
on_failure = "operator"

[nodes.reset]
type = "password_reset"
method = "code"
next = "goodbye"
on_failure = "operator"

[nodes.operator]
type = "say"
prompt = ["operator_hours"]
next = "goodbye"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]
"#;

    fn harness() -> Harness {
        let config: Config = toml::from_str(IDENTITY_FLOW).expect("identity flow parses");
        let flow = Flow::from_config(&config).expect("identity flow compiles");
        Harness {
            call: Call::new(Arc::new(flow)),
            playing: None,
            timer: None,
            played: Vec::new(),
            cleared: 0,
            hung_up: false,
        }
    }

    /// Key `keys` and return the verification request they produced, if any.
    fn key_in(call: &mut Harness, keys: &str) -> Option<Action> {
        let mut request = None;
        for key in keys.chars() {
            for action in call.send(Event::Digit(key)) {
                if matches!(action, Action::Verify { .. }) {
                    request = Some(action);
                }
            }
        }
        request
    }

    fn at_verify() -> Harness {
        let mut call = harness();
        call.start();
        call.press("1");
        call.take_played();
        call
    }

    #[test]
    fn the_caller_keys_dob_then_zip_and_the_engine_asks_the_directory() {
        let mut call = at_verify();
        assert!(
            key_in(&mut call, "07041976").is_none(),
            "dob ends itself at 8 digits"
        );
        assert_eq!(call.take_played(), ["en/enter_zip"]);
        let request = key_in(&mut call, "60614").expect("zip ends the entry: verify");
        let Action::Verify {
            attempt,
            dob,
            identifier,
            value,
            ..
        } = &request
        else {
            unreachable!()
        };
        assert_eq!(*attempt, 1);
        assert_eq!(dob.expose(), "07041976");
        assert_eq!(*identifier, Identifier::Zip);
        assert_eq!(value.expose(), "60614");
        let shown = format!("{request:?}");
        assert!(
            !shown.contains("07041976") && !shown.contains("60614"),
            "{shown}"
        );
    }

    #[test]
    fn a_verified_caller_hears_so_and_goes_on_to_the_reset() {
        let mut call = at_verify();
        key_in(&mut call, "07041976#60614#");
        let actions = call.send(Event::Verification(VerifyOutcome::Verified {
            patient: PatientRef::new("P000123").expect("valid ref"),
        }));
        assert!(
            actions
                .iter()
                .any(|action| matches!(action, Action::Play { .. }))
        );
        assert_eq!(
            call.take_played().last().map(String::as_str),
            Some("en/verified")
        );
        let playback = call.playing.take().expect("verified playing");
        let actions = call.send(Event::PlaybackDone(playback));
        let reset = actions
            .iter()
            .find(|action| matches!(action, Action::RequestReset { .. }))
            .expect("reset requested after verification");
        assert!(matches!(
            reset,
            Action::RequestReset { method: ResetMethod::Code, patient, .. } if patient.as_str() == "P000123"
        ));
        assert!(!format!("{reset:?}").contains("P000123"));
    }

    #[test]
    fn three_failed_checks_send_the_caller_to_a_person_flagged() {
        let mut call = at_verify();
        for attempt in 1..=3 {
            let request = key_in(&mut call, "07041976#60614#").expect("verify");
            assert!(matches!(request, Action::Verify { attempt: a, .. } if a == attempt));
            call.take_played();
            call.send(Event::Verification(VerifyOutcome::NotVerified));
            let heard = call.take_played();
            assert_eq!(heard[0], "en/verify_failed", "generic failure message");
        }
        assert!(call.call.verification_failed());
        call.finish_prompt();
        assert_eq!(call.call.node(), "operator");
    }

    #[test]
    fn an_impossible_date_is_asked_again_without_using_an_attempt() {
        let mut call = at_verify();
        key_in(&mut call, "13451976#60614#");
        call.take_played();
        call.send(Event::Verification(VerifyOutcome::Malformed));
        assert_eq!(call.take_played(), ["en/invalid_entry", "en/enter_dob"]);
        let request = key_in(&mut call, "07041976#60614#").expect("verify again");
        assert!(matches!(request, Action::Verify { attempt: 1, .. }));
    }

    #[test]
    fn a_short_entry_is_invalid_and_never_reaches_the_directory() {
        let mut call = at_verify();
        assert!(key_in(&mut call, "0704197#").is_none());
        assert_eq!(call.take_played(), ["en/invalid_entry", "en/enter_dob"]);
        key_in(&mut call, "07041976");
        assert!(
            key_in(&mut call, "606#").is_none(),
            "a 3-digit ZIP is not checked"
        );
        assert_eq!(
            call.take_played(),
            ["en/enter_zip", "en/invalid_entry", "en/enter_zip"]
        );
    }

    #[test]
    fn a_locked_record_goes_to_a_person_flagged() {
        let mut call = at_verify();
        key_in(&mut call, "07041976#60614#");
        call.send(Event::Verification(VerifyOutcome::LockedOut));
        assert!(call.call.verification_failed());
        call.finish_prompt();
        assert_eq!(call.call.node(), "operator");
        assert!(call.call.patient().is_none());
    }

    #[test]
    fn an_unreachable_directory_never_verifies() {
        let mut call = at_verify();
        key_in(&mut call, "07041976#60614#");
        call.take_played();
        call.send(Event::Verification(VerifyOutcome::Unavailable));
        assert_eq!(call.take_played(), ["en/technical_difficulty"]);
        call.finish_prompt();
        assert_eq!(call.call.node(), "operator");
        assert!(call.call.patient().is_none());
    }

    fn verified() -> Harness {
        let mut call = at_verify();
        key_in(&mut call, "07041976#60614#");
        call.send(Event::Verification(VerifyOutcome::Verified {
            patient: PatientRef::new("P000123").expect("valid ref"),
        }));
        call.finish_prompt();
        call.take_played();
        call
    }

    #[test]
    fn a_reset_code_is_read_digit_by_digit_and_star_repeats_it() {
        let mut call = verified();
        call.send(Event::Reset(ResetOutcome::CodeIssued(Digits::new("40719"))));
        let read = [
            "en/reset_code_intro",
            "en/digit_4",
            "en/digit_0",
            "en/digit_7",
            "en/digit_1",
            "en/digit_9",
            "en/reset_code_repeat",
        ];
        assert_eq!(call.take_played(), read);
        call.finish_prompt();
        call.press("*");
        assert_eq!(call.take_played(), read);
        call.press("1");
        assert_eq!(
            call.call.node(),
            "reset",
            "a stray key does not cut the code off"
        );
        call.finish_prompt();
        call.wait_out();
        assert_eq!(call.call.node(), "goodbye");
    }

    #[test]
    fn a_reset_link_sent_by_the_portal_is_announced_then_the_call_goes_on() {
        let mut call = verified();
        call.send(Event::Reset(ResetOutcome::LinkSent));
        assert_eq!(call.take_played(), ["en/reset_link_sent"]);
        call.finish_prompt();
        assert_eq!(call.call.node(), "goodbye");
    }

    #[test]
    fn a_failed_reset_goes_to_a_person() {
        let mut call = verified();
        call.send(Event::Reset(ResetOutcome::Failed));
        assert_eq!(call.take_played(), ["en/technical_difficulty"]);
        call.finish_prompt();
        assert_eq!(call.call.node(), "operator");
    }

    #[test]
    fn a_reset_without_verification_is_refused() {
        let mut call = harness();
        call.start();
        let actions = call.send(Event::Digit('2'));
        assert!(
            !actions
                .iter()
                .any(|action| matches!(action, Action::RequestReset { .. }))
        );
        assert_eq!(call.call.node(), "operator");
    }
}
