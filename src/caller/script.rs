//! The caller's keypad: the digit script (`--digits "1,w2,19700101#"`) and when each key goes.
//!
//! A script is comma-separated steps. A step is keys (`0-9 * # A-D`), sent as separate `dtmf`
//! messages [`KEY_GAP_TICKS`] ticks (100 ms) apart; `hangup` (the caller hangs up); or `pSECS`
//! (wait that long, e.g. `p8` to let a menu time out). A `w` prefix makes the step wait until
//! careline has played a prompt since the previous step and playback has finished (a bare `w`
//! only waits). Other steps go as soon as the previous one is done, but never before careline
//! has sent its first audio on the stream.
//!
//! [`Keypad`] is sans-IO: the stream driver reports arriving audio and calls
//! [`Keypad::tick`] every 20 ms with whether playback is busy, and sends what it returns.

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::Duration;

use crate::media::FRAME_MS;

/// Ticks between two keys of a step, and after a step's last key before the next step.
pub const KEY_GAP_TICKS: u32 = 5;
/// Playback must have been idle this many ticks before a `w` step counts the prompt as done, so
/// that a prompt sent in several pieces is not mistaken for two.
pub const SETTLE_TICKS: u32 = 5;

/// What a step does once its turn comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// Press these keys.
    Keys(Vec<char>),
    /// Only wait (a bare `w`).
    Listen,
    /// Wait this long.
    Pause(Duration),
    /// Hang up.
    HangUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `w`: wait for the current prompt to finish first.
    pub after_prompt: bool,
    pub action: StepAction,
}

/// Why a digit script could not be read. Never quotes the script: it may hold PHI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("digit script step {step} is empty (steps are separated by commas)")]
    EmptyStep { step: usize },
    #[error(
        "digit script step {step} has a character that is not a keypad key (0-9, *, #, A-D); steps are keys, `hangup` or `pSECS`, optionally prefixed with `w`"
    )]
    NotAKey { step: usize },
    #[error("digit script step {step} pauses for an invalid time (write e.g. `p8` or `p0.5`)")]
    BadPause { step: usize },
}

/// A parsed `--digits` script.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigitScript {
    pub steps: Vec<Step>,
}

impl FromStr for DigitScript {
    type Err = ScriptError;

    fn from_str(script: &str) -> Result<Self, Self::Err> {
        let steps = script
            .split(',')
            .enumerate()
            .map(|(index, text)| parse_step(index + 1, text))
            .collect::<Result<_, _>>()?;
        Ok(DigitScript { steps })
    }
}

/// Whether `key` is on a DTMF keypad.
pub fn is_key(key: char) -> bool {
    matches!(key, '0'..='9' | '*' | '#' | 'A'..='D')
}

fn parse_step(step: usize, text: &str) -> Result<Step, ScriptError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ScriptError::EmptyStep { step });
    }
    let (after_prompt, body) = match text.strip_prefix(['w', 'W']) {
        Some(body) => (true, body.trim_start()),
        None => (false, text),
    };
    let action = if body.is_empty() {
        StepAction::Listen
    } else if body.eq_ignore_ascii_case("hangup") {
        StepAction::HangUp
    } else if let Some(secs) = body.strip_prefix(['p', 'P']) {
        let secs: f64 = secs.parse().map_err(|_| ScriptError::BadPause { step })?;
        if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
            return Err(ScriptError::BadPause { step });
        }
        StepAction::Pause(Duration::from_secs_f64(secs))
    } else {
        let keys: Vec<char> = body.chars().map(|key| key.to_ascii_uppercase()).collect();
        if !keys.iter().copied().all(is_key) {
            return Err(ScriptError::NotAKey { step });
        }
        StepAction::Keys(keys)
    };
    Ok(Step {
        after_prompt,
        action,
    })
}

/// What the keypad wants done this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeypadAction {
    /// Press `key`. `in_entry` when it belongs to a multi-key step (data entry, maybe PHI).
    Press {
        key: char,
        in_entry: bool,
    },
    HangUp,
}

/// What the caller keys at a TwiML `<Gather>` (a call with no media stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatherInput {
    Keys(Vec<char>),
    HangUp,
    /// No key: the script has no step left, or its next step only waits (`w`, `pSECS`).
    Nothing,
}

/// Sends the script's keys at the right moments (see the module docs).
#[derive(Debug, Default)]
pub struct Keypad {
    steps: VecDeque<Step>,
    /// Keys of the step in progress still to press.
    pressing: VecDeque<char>,
    in_entry: bool,
    /// Ticks to wait before the next key or step.
    cooldown: u32,
    pause: u32,
    heard_audio_on_stream: bool,
    /// careline sent audio since the previous step's last key.
    audio_since_step: bool,
    idle_ticks: u32,
}

impl Keypad {
    pub fn new(script: DigitScript) -> Self {
        Keypad {
            steps: script.steps.into(),
            ..Keypad::default()
        }
    }

    /// Add a step (interactive mode).
    pub fn push(&mut self, step: Step) {
        self.steps.push_back(step);
    }

    /// A new media stream opened: wait for its audio before pressing anything.
    pub fn stream_started(&mut self) {
        self.heard_audio_on_stream = false;
        self.audio_since_step = false;
        self.idle_ticks = 0;
    }

    /// careline sent audio.
    pub fn audio_arrived(&mut self) {
        self.heard_audio_on_stream = true;
        self.audio_since_step = true;
        self.idle_ticks = 0;
    }

    /// Steps not yet started, plus the one in progress.
    pub fn remaining_steps(&self) -> usize {
        self.steps.len() + usize::from(!self.pressing.is_empty())
    }

    /// One 20 ms tick; `playing` says whether playback still has audio after this tick.
    pub fn tick(&mut self, playing: bool) -> Option<KeypadAction> {
        self.idle_ticks = if playing {
            0
        } else {
            self.idle_ticks.saturating_add(1)
        };
        if self.cooldown > 0 {
            self.cooldown -= 1;
            return None;
        }
        if let Some(key) = self.press_next() {
            return Some(key);
        }
        if self.pause > 0 {
            self.pause -= 1;
            return None;
        }
        let step = self.steps.front()?;
        if !self.heard_audio_on_stream {
            return None;
        }
        if step.after_prompt && !(self.audio_since_step && self.idle_ticks >= SETTLE_TICKS) {
            return None;
        }
        let step = self.steps.pop_front()?;
        match step.action {
            StepAction::Keys(keys) => {
                self.in_entry = keys.len() > 1;
                self.pressing = keys.into();
                self.press_next()
            }
            StepAction::Listen => {
                self.audio_since_step = false;
                None
            }
            StepAction::Pause(duration) => {
                let ticks = duration.as_millis() / u128::from(FRAME_MS);
                self.pause = u32::try_from(ticks).unwrap_or(u32::MAX);
                None
            }
            StepAction::HangUp => Some(KeypadAction::HangUp),
        }
    }

    /// The next step, at a `<Gather>`: its keys, a hang-up, or nothing (a step that only
    /// waits is used up: it is how a script lets a `<Gather>` pass without a key).
    pub fn gather(&mut self) -> GatherInput {
        match self.steps.pop_front().map(|step| step.action) {
            Some(StepAction::Keys(keys)) => GatherInput::Keys(keys),
            Some(StepAction::HangUp) => GatherInput::HangUp,
            Some(StepAction::Listen | StepAction::Pause(_)) | None => GatherInput::Nothing,
        }
    }

    fn press_next(&mut self) -> Option<KeypadAction> {
        let key = self.pressing.pop_front()?;
        self.cooldown = KEY_GAP_TICKS - 1;
        if self.pressing.is_empty() {
            self.audio_since_step = false;
        }
        Some(KeypadAction::Press {
            key,
            in_entry: self.in_entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> StepAction {
        StepAction::Keys(text.chars().collect())
    }

    #[test]
    fn the_documented_script_parses() {
        let script: DigitScript = "1,w2,19700101#".parse().expect("valid");
        assert_eq!(
            script.steps,
            vec![
                Step {
                    after_prompt: false,
                    action: keys("1")
                },
                Step {
                    after_prompt: true,
                    action: keys("2")
                },
                Step {
                    after_prompt: false,
                    action: keys("19700101#")
                },
            ]
        );
    }

    #[test]
    fn waits_pauses_and_hangups_parse() {
        let script: DigitScript = " w , p8, p0.5 ,wHangup, *a, hangup".parse().expect("valid");
        let actions: Vec<(bool, StepAction)> = script
            .steps
            .into_iter()
            .map(|step| (step.after_prompt, step.action))
            .collect();
        assert_eq!(
            actions,
            vec![
                (true, StepAction::Listen),
                (false, StepAction::Pause(Duration::from_secs(8))),
                (false, StepAction::Pause(Duration::from_millis(500))),
                (true, StepAction::HangUp),
                (false, keys("*A")),
                (false, StepAction::HangUp),
            ]
        );
    }

    #[test]
    fn bad_scripts_name_the_step_but_not_its_digits() {
        assert_eq!(
            "1,,2".parse::<DigitScript>(),
            Err(ScriptError::EmptyStep { step: 2 })
        );
        let error = "1,w1970x0101"
            .parse::<DigitScript>()
            .expect_err("x is no key");
        assert_eq!(error, ScriptError::NotAKey { step: 2 });
        assert!(!error.to_string().contains("1970"));
        assert_eq!(
            "pfast".parse::<DigitScript>(),
            Err(ScriptError::BadPause { step: 1 })
        );
        assert_eq!(
            "p-1".parse::<DigitScript>(),
            Err(ScriptError::BadPause { step: 1 })
        );
    }

    /// Run `keypad` for `ticks` ticks with playback busy for the first `playing` of them.
    fn run(keypad: &mut Keypad, ticks: u32, playing: u32) -> Vec<(u32, KeypadAction)> {
        (0..ticks)
            .filter_map(|tick| keypad.tick(tick < playing).map(|action| (tick, action)))
            .collect()
    }

    #[test]
    fn nothing_is_pressed_before_careline_sends_audio() {
        let mut keypad = Keypad::new("1".parse().expect("valid"));
        assert!(run(&mut keypad, 50, 0).is_empty());
        keypad.audio_arrived();
        assert_eq!(
            run(&mut keypad, 1, 1),
            vec![(
                0,
                KeypadAction::Press {
                    key: '1',
                    in_entry: false
                }
            )]
        );
    }

    #[test]
    fn keys_of_a_step_go_a_hundred_milliseconds_apart() {
        let mut keypad = Keypad::new("123,4".parse().expect("valid"));
        keypad.audio_arrived();
        let presses: Vec<u32> = run(&mut keypad, 40, 40)
            .into_iter()
            .map(|(tick, _)| tick)
            .collect();
        assert_eq!(presses, vec![0, 5, 10, 15]);
    }

    #[test]
    fn a_waiting_step_goes_once_the_prompt_has_finished_playing() {
        let mut keypad = Keypad::new("w2".parse().expect("valid"));
        keypad.audio_arrived();
        let actions = run(&mut keypad, 100, 30);
        assert_eq!(
            actions,
            vec![(
                30 + SETTLE_TICKS - 1,
                KeypadAction::Press {
                    key: '2',
                    in_entry: false
                }
            )]
        );
    }

    #[test]
    fn a_waiting_step_needs_a_new_prompt_after_the_previous_step() {
        let mut keypad = Keypad::new("1,w2".parse().expect("valid"));
        keypad.audio_arrived();
        assert_eq!(run(&mut keypad, 1, 0).len(), 1);
        assert!(
            run(&mut keypad, 100, 0).is_empty(),
            "no prompt answered the 1 yet"
        );
        keypad.audio_arrived();
        assert_eq!(run(&mut keypad, 20, 10).len(), 1);
        assert_eq!(keypad.remaining_steps(), 0);
    }

    #[test]
    fn multi_key_steps_are_flagged_as_data_entry() {
        let mut keypad = Keypad::new("19#".parse().expect("valid"));
        keypad.audio_arrived();
        assert!(
            run(&mut keypad, 20, 0)
                .iter()
                .all(|(_, action)| matches!(action, KeypadAction::Press { in_entry: true, .. }))
        );
    }

    #[test]
    fn a_pause_delays_the_next_step() {
        let mut keypad = Keypad::new("p1,hangup".parse().expect("valid"));
        keypad.audio_arrived();
        assert_eq!(run(&mut keypad, 100, 0), vec![(51, KeypadAction::HangUp)]);
    }

    #[test]
    fn a_new_stream_waits_for_its_own_audio() {
        let mut keypad = Keypad::new("1,2".parse().expect("valid"));
        keypad.audio_arrived();
        assert_eq!(run(&mut keypad, 1, 0).len(), 1);
        keypad.stream_started();
        assert!(run(&mut keypad, 20, 0).is_empty());
        keypad.audio_arrived();
        assert_eq!(run(&mut keypad, 1, 0).len(), 1);
    }
}
