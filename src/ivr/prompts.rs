//! The prompt ids the engine itself plays, beyond those the admin's nodes name.
//!
//! Every configured language must have each of these; `careline check` enforces it.

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

/// Spoken digits, `digit_0` .. `digit_9`, for reading numbers back.
pub const DIGITS: [&str; 10] = [
    "digit_0", "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7",
    "digit_8", "digit_9",
];

/// Every prompt id the engine may play on its own.
pub fn system_prompts() -> impl Iterator<Item = &'static str> {
    [
        INVALID_CHOICE,
        NO_INPUT,
        INVALID_ENTRY,
        CONNECTING,
        TECHNICAL_DIFFICULTY,
    ]
    .into_iter()
    .chain(DIGITS)
}
