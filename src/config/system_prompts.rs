//! The prompt ids careline plays by itself, beyond those the admin's nodes name, and how a
//! number is said with them.
//!
//! Part of the configuration's contract: every configured language's prompt folder must hold
//! each of these (`careline check` enforces it, start-up loads them). The engine plays them as
//! `crate::ivr::prompts`.

/// "Sorry, that is not a valid choice."
pub const INVALID_CHOICE: &str = "invalid_choice";
/// "Sorry, I did not hear a choice."
pub const NO_INPUT: &str = "no_input";
/// "Sorry, that entry is not valid."
pub const INVALID_ENTRY: &str = "invalid_entry";
/// "Connecting you now."
pub const CONNECTING: &str = "connecting";
/// "We are sorry, we are having technical difficulties."
pub const TECHNICAL_DIFFICULTY: &str = "technical_difficulty";

/// "Please enter your date of birth as two digits for the month, ..."
pub const ENTER_DOB: &str = "enter_dob";
/// "Please enter your medical record number, then press pound."
pub const ENTER_MRN: &str = "enter_mrn";
/// "Please enter the five digit ZIP code of your home address, then press pound."
pub const ENTER_ZIP: &str = "enter_zip";
/// "Please enter the last four digits of your Social Security number, then press pound."
pub const ENTER_SSN4: &str = "enter_ssn4";
/// "Sorry, we could not verify that information." (never says which item was wrong)
pub const VERIFY_FAILED: &str = "verify_failed";
/// "Thank you. Your identity has been verified."
pub const VERIFIED: &str = "verified";
/// "We have sent a password reset link to the email address or mobile phone ... on file."
pub const RESET_LINK_SENT: &str = "reset_link_sent";
/// "Please have a pen ready. Your one-time password reset code is"
pub const RESET_CODE_INTRO: &str = "reset_code_intro";
/// "... To hear the code again, press star."
pub const RESET_CODE_REPEAT: &str = "reset_code_repeat";

/// "Your place in line is" (followed by the place, see [`number_prompts`]).
pub const QUEUE_POSITION: &str = "queue_position";
/// "Your estimated wait time is less than one minute."
pub const QUEUE_WAIT_LESS_THAN_MINUTE: &str = "queue_wait_less_than_minute";
/// "Your estimated wait time, in minutes, is" (followed by the minutes).
pub const QUEUE_WAIT_MINUTES: &str = "queue_wait_minutes";
/// "To have us call you back without losing your place in line, press 1."
pub const CALLBACK_OFFER: &str = "callback_offer";
/// Music while waiting, when a queue names no `hold_prompt` of its own.
pub const HOLD_MUSIC: &str = "hold_music";
/// "We are sorry, we cannot place you in line right now." (the store is unreachable)
pub const QUEUE_UNAVAILABLE: &str = "queue_unavailable";
/// "Please hold while we transfer your call."
pub const TRANSFERRING: &str = "transferring";

/// "Please leave your name, a phone number ... after the tone." (ends with the tone)
pub const VOICEMAIL_INTRO: &str = "voicemail_intro";
/// "Thank you. Your message has been recorded."
pub const VOICEMAIL_SAVED: &str = "voicemail_saved";

/// "We will call you back at" (followed by the number, digit by digit).
pub const CALLBACK_CONFIRM_INTRO: &str = "callback_confirm_intro";
/// "If that is correct, press 1. To enter a different number, press 2."
pub const CALLBACK_CONFIRM_CHOICE: &str = "callback_confirm_choice";
/// "Please enter the phone number we should call, including the area code, then press pound."
pub const CALLBACK_ENTER_NUMBER: &str = "callback_enter_number";
/// "Thank you. You keep your place in line, and an agent will call you back. Goodbye."
pub const CALLBACK_SCHEDULED: &str = "callback_scheduled";
/// "Thank you. An agent will call you back when the help desk opens. Goodbye."
pub const CALLBACK_SCHEDULED_LATER: &str = "callback_scheduled_later";

/// Played to a patient careline calls back (`<Play>` in a `<Gather>`): "This is the patient
/// portal help desk returning your call. To be connected with an agent now, press 1."
pub const CALLBACK_RETURNING: &str = "callback_returning";
/// Left on an answering machine when `[callbacks] machine_message` is on: "This is the patient
/// portal help desk returning your call. We will try again later."
pub const CALLBACK_MACHINE: &str = "callback_machine";
/// To a patient who pressed 1 when the agent could not be reached, or who pressed nothing:
/// "We are sorry, we could not connect you now. We will call you back. Goodbye."
pub const CALLBACK_SORRY: &str = "callback_sorry";

/// Spoken digits, `digit_0` .. `digit_9`, for reading numbers back.
pub const DIGITS: [&str; 10] = [
    "digit_0", "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7",
    "digit_8", "digit_9",
];

/// "ten" .. "nineteen": `TEENS[n - 10]`.
pub const TEENS: [&str; 10] = [
    "number_10",
    "number_11",
    "number_12",
    "number_13",
    "number_14",
    "number_15",
    "number_16",
    "number_17",
    "number_18",
    "number_19",
];

/// "twenty" .. "ninety": `TENS[n / 10 - 2]`.
pub const TENS: [&str; 8] = [
    "number_20",
    "number_30",
    "number_40",
    "number_50",
    "number_60",
    "number_70",
    "number_80",
    "number_90",
];

/// "twenty-one" .. "twenty-nine": `TWENTIES[n - 21]`. One word in Spanish ("veintiuno"), so
/// every language has them as single prompts.
pub const TWENTIES: [&str; 9] = [
    "number_21",
    "number_22",
    "number_23",
    "number_24",
    "number_25",
    "number_26",
    "number_27",
    "number_28",
    "number_29",
];

/// "and" between tens and units where the language says it ("treinta y uno").
pub const NUMBER_AND: &str = "number_and";

/// How a language joins tens and units from 31 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberStyle {
    /// "thirty", "one" (English).
    TensThenUnit,
    /// "treinta", "y", "uno" (Spanish).
    TensAndUnit,
}

impl NumberStyle {
    /// The style of a prompt language (`es`, `es-419`, ... join with "y").
    pub fn of(language: &str) -> NumberStyle {
        if language == "es" || language.starts_with("es-") {
            NumberStyle::TensAndUnit
        } else {
            NumberStyle::TensThenUnit
        }
    }
}

/// The prompts that say `n`, for 0 to 99: one prompt below 30 and for whole tens, else the
/// tens, "and" if the language says it, then the digit. `None` above 99: say it digit by digit.
pub fn number_prompts(n: u32, style: NumberStyle) -> Option<impl Iterator<Item = &'static str>> {
    let n = usize::try_from(n).ok().filter(|&n| n < 100)?;
    let and = (style == NumberStyle::TensAndUnit).then_some(NUMBER_AND);
    let ids = match n {
        0..=9 => [Some(DIGITS[n]), None, None],
        10..=19 => [Some(TEENS[n - 10]), None, None],
        21..=29 => [Some(TWENTIES[n - 21]), None, None],
        _ if n % 10 == 0 => [Some(TENS[n / 10 - 2]), None, None],
        _ => [Some(TENS[n / 10 - 2]), and, Some(DIGITS[n % 10])],
    };
    Some(ids.into_iter().flatten())
}

/// Every prompt id the engine may play on its own.
pub fn system_prompts() -> impl Iterator<Item = &'static str> {
    [
        INVALID_CHOICE,
        NO_INPUT,
        INVALID_ENTRY,
        CONNECTING,
        TECHNICAL_DIFFICULTY,
        ENTER_DOB,
        ENTER_MRN,
        ENTER_ZIP,
        ENTER_SSN4,
        VERIFY_FAILED,
        VERIFIED,
        RESET_LINK_SENT,
        RESET_CODE_INTRO,
        RESET_CODE_REPEAT,
        QUEUE_POSITION,
        QUEUE_WAIT_LESS_THAN_MINUTE,
        QUEUE_WAIT_MINUTES,
        CALLBACK_OFFER,
        HOLD_MUSIC,
        QUEUE_UNAVAILABLE,
        TRANSFERRING,
        VOICEMAIL_INTRO,
        VOICEMAIL_SAVED,
        CALLBACK_CONFIRM_INTRO,
        CALLBACK_CONFIRM_CHOICE,
        CALLBACK_ENTER_NUMBER,
        CALLBACK_SCHEDULED,
        CALLBACK_SCHEDULED_LATER,
        CALLBACK_RETURNING,
        CALLBACK_MACHINE,
        CALLBACK_SORRY,
    ]
    .into_iter()
    .chain(DIGITS)
    .chain(TEENS)
    .chain(TENS)
    .chain(TWENTIES)
    .chain([NUMBER_AND])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(n: u32) -> Option<Vec<&'static str>> {
        number_prompts(n, NumberStyle::TensThenUnit).map(Iterator::collect)
    }

    fn dicho(n: u32) -> Option<Vec<&'static str>> {
        number_prompts(n, NumberStyle::of("es")).map(Iterator::collect)
    }

    #[test]
    fn numbers_up_to_99_are_said_in_words() {
        assert_eq!(said(0), Some(vec!["digit_0"]));
        assert_eq!(said(7), Some(vec!["digit_7"]));
        assert_eq!(said(10), Some(vec!["number_10"]));
        assert_eq!(said(19), Some(vec!["number_19"]));
        assert_eq!(said(20), Some(vec!["number_20"]));
        assert_eq!(said(23), Some(vec!["number_23"]));
        assert_eq!(said(42), Some(vec!["number_40", "digit_2"]));
        assert_eq!(said(90), Some(vec!["number_90"]));
        assert_eq!(said(99), Some(vec!["number_90", "digit_9"]));
        assert_eq!(said(100), None);
        assert_eq!(said(u32::MAX), None);
    }

    #[test]
    fn spanish_says_veintiuno_and_treinta_y_uno() {
        assert_eq!(dicho(21), Some(vec!["number_21"]));
        assert_eq!(dicho(31), Some(vec!["number_30", "number_and", "digit_1"]));
        assert_eq!(dicho(40), Some(vec!["number_40"]));
        assert_eq!(NumberStyle::of("es-419"), NumberStyle::TensAndUnit);
        assert_eq!(NumberStyle::of("en"), NumberStyle::TensThenUnit);
    }

    #[test]
    fn every_number_prompt_is_a_system_prompt() {
        let system: Vec<&str> = system_prompts().collect();
        for n in 0..100 {
            for id in number_prompts(n, NumberStyle::TensAndUnit)
                .into_iter()
                .flatten()
            {
                assert!(system.contains(&id), "{id}");
            }
        }
        let mut unique = system.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), system.len(), "no id listed twice");
    }
}
