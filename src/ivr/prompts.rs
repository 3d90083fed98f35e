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
        ENTER_DOB,
        ENTER_MRN,
        ENTER_ZIP,
        ENTER_SSN4,
        VERIFY_FAILED,
        VERIFIED,
        RESET_LINK_SENT,
        RESET_CODE_INTRO,
        RESET_CODE_REPEAT,
    ]
    .into_iter()
    .chain(DIGITS)
}
