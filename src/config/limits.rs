//! The range every duration and count in the configuration must fall in.
//!
//! serde accepts any `u64` for a timeout, and a timeout of 2^64-1 seconds overflows the first
//! clock arithmetic that touches it. So each duration and count key has a documented range here:
//! `careline check` reports a value outside it at its key path and line (see
//! [`super::check`]), and [`Limit::clamp`] lets code that runs on an unchecked configuration
//! (tests, the engine's [`crate::ivr::Flow`]) stay within the same bounds instead of trusting it.
//!
//! The README's "Limits" table lists the same ranges; change both together.

use std::time::Duration;

/// An inclusive range for one configuration key, with the unit and the reason for the bounds
/// as an admin reads them in `careline check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub min: u64,
    pub max: u64,
    /// `seconds`, `hours`, `digits`, ... as the key counts it.
    pub unit: &'static str,
    /// Why the bounds are where they are, for the hint.
    pub why: &'static str,
}

impl Limit {
    const fn new(min: u64, max: u64, unit: &'static str, why: &'static str) -> Limit {
        Limit {
            min,
            max,
            unit,
            why,
        }
    }

    pub fn contains(&self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// The value brought into the range.
    pub fn clamp(&self, value: u64) -> u64 {
        value.clamp(self.min, self.max)
    }

    /// [`Limit::clamp`] for a `u32` key.
    pub fn clamp_u32(&self, value: u32) -> u32 {
        u32::try_from(self.clamp(u64::from(value))).unwrap_or(u32::MAX)
    }

    /// A seconds key as a duration, brought into the range.
    pub fn secs(&self, value: u64) -> Duration {
        Duration::from_secs(self.clamp(value))
    }
}

/// `[server] shutdown_grace_secs`: calls in progress may finish for this long after SIGTERM.
pub const SHUTDOWN_GRACE_SECS: Limit = Limit::new(
    0,
    3_600,
    "seconds",
    "an orchestrator rarely waits longer than an hour; 0 closes streams at once",
);

/// `[server] max_connections`: open HTTP connections, media streams included.
pub const MAX_CONNECTIONS: Limit = Limit::new(
    1,
    1_000_000,
    "connections",
    "each connection holds a file descriptor and its buffers; a million is beyond one machine",
);

/// `[server] header_timeout_secs`: a request's headers arrive within this once they began.
pub const HEADER_TIMEOUT_SECS: Limit = Limit::new(
    1,
    300,
    "seconds",
    "headers are a few hundred bytes; a client slower than five minutes is holding the socket",
);

/// `[server] idle_timeout_secs`: a connection with no request in progress closes after this.
pub const IDLE_TIMEOUT_SECS: Limit = Limit::new(
    1,
    3_600,
    "seconds",
    "a kept-alive connection saves a handshake, not worth holding for more than an hour",
);

/// `[server] body_timeout_secs`: a request's body arrives within this once its headers did.
pub const BODY_TIMEOUT_SECS: Limit = Limit::new(
    1,
    300,
    "seconds",
    "careline's request bodies are small forms and JSON; five minutes is generous",
);

/// `[ivr] first_digit_timeout_secs`.
pub const FIRST_DIGIT_TIMEOUT_SECS: Limit = Limit::new(
    1,
    60,
    "seconds",
    "callers who have said nothing for a minute are helped by the re-prompt, not by more silence",
);

/// `[ivr] inter_digit_timeout_secs`.
pub const INTER_DIGIT_TIMEOUT_SECS: Limit = Limit::new(
    1,
    30,
    "seconds",
    "the gap allowed between two digits of one entry",
);

/// `[ivr] max_retries`: 0 behaves as 1 (and `careline check` warns about it).
pub const MAX_RETRIES: Limit = Limit::new(
    0,
    10,
    "tries",
    "after a few failed tries a caller needs a person, not the same menu again",
);

/// `min_digits` of a `collect` node.
pub const COLLECT_MIN_DIGITS: Limit = Limit::new(
    0,
    32,
    "digits",
    "no keypad entry a caller can be asked for is longer than 32 digits",
);

/// `max_digits` of a `collect` node.
pub const COLLECT_MAX_DIGITS: Limit = Limit::new(
    1,
    32,
    "digits",
    "no keypad entry a caller can be asked for is longer than 32 digits",
);

/// `timeout_secs` of a `transfer` node: how long the far end rings.
pub const TRANSFER_TIMEOUT_SECS: Limit = Limit::new(
    5,
    600,
    "seconds",
    "Twilio's <Dial timeout> accepts 5 to 600 seconds",
);

/// `max_secs` of a `voicemail` node.
pub const VOICEMAIL_MAX_SECS: Limit = Limit::new(
    1,
    600,
    "seconds",
    "ten minutes is a long message; longer recordings fill the disk for nobody's benefit",
);

/// `[queues.*] max_wait_secs`.
pub const QUEUE_MAX_WAIT_SECS: Limit = Limit::new(
    1,
    14_400,
    "seconds",
    "Twilio ends every call after four hours",
);

/// `[queues.*] announce_every_secs`.
pub const QUEUE_ANNOUNCE_EVERY_SECS: Limit = Limit::new(
    10,
    3_600,
    "seconds",
    "announcements closer than 10 s leave no hold audio between them",
);

/// `[queues.*] ring_timeout_secs`: how long an agent's phone rings.
pub const QUEUE_RING_TIMEOUT_SECS: Limit = Limit::new(
    1,
    600,
    "seconds",
    "Twilio's <Dial timeout> is at most 600 seconds (and rings at least 5)",
);

/// `[queues.*] wrap_up_secs`.
pub const QUEUE_WRAP_UP_SECS: Limit = Limit::new(
    0,
    3_600,
    "seconds",
    "an hour of notes after one call is a break, not wrap-up",
);

/// `[identity] max_attempts`: failed directory checks in one call.
pub const IDENTITY_MAX_ATTEMPTS: Limit = Limit::new(
    1,
    10,
    "attempts",
    "more tries only help someone guessing another patient's details",
);

/// `[identity] lockout_failures`: failures for one record within the window.
pub const IDENTITY_LOCKOUT_FAILURES: Limit = Limit::new(
    1,
    100,
    "failures",
    "a record that failed a hundred times is being attacked",
);

/// `[identity] lockout_window_hours`.
pub const IDENTITY_LOCKOUT_WINDOW_HOURS: Limit = Limit::new(
    1,
    8_760,
    "hours",
    "failures older than a year say nothing about a caller now",
);

/// `[identity] directory.timeout_ms` of an HTTP verifier.
pub const VERIFIER_TIMEOUT_MS: Limit = Limit::new(
    100,
    30_000,
    "milliseconds",
    "the caller waits in silence while the verifier answers",
);

/// `[password_reset] code_digits`.
pub const RESET_CODE_DIGITS: Limit = Limit::new(
    6,
    8,
    "digits",
    "shorter codes are guessable, longer ones cannot be written down from one hearing",
);

/// `[password_reset] code_ttl_secs`.
pub const RESET_CODE_TTL_SECS: Limit = Limit::new(
    60,
    3_600,
    "seconds",
    "a code must live long enough to be typed into the portal, and not much longer",
);

/// `[callbacks] retry_after_secs`: the wait before the next try of a callback.
pub const CALLBACK_RETRY_AFTER_SECS: Limit = Limit::new(
    1,
    86_400,
    "seconds",
    "a day at most between tries; a patient not reached in a day needs a person to decide",
);

/// `[callbacks] max_attempts`: tries of the patient before a callback is given up.
pub const CALLBACK_MAX_ATTEMPTS: Limit = Limit::new(
    1,
    10,
    "tries",
    "a patient who did not answer ten calls should not get an eleventh from a machine",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_brings_any_value_into_the_range() {
        assert_eq!(FIRST_DIGIT_TIMEOUT_SECS.clamp(u64::MAX), 60);
        assert_eq!(FIRST_DIGIT_TIMEOUT_SECS.clamp(0), 1);
        assert_eq!(MAX_RETRIES.clamp_u32(u32::MAX), 10);
        assert_eq!(VOICEMAIL_MAX_SECS.secs(u64::MAX), Duration::from_secs(600));
        assert!(RESET_CODE_DIGITS.contains(8) && !RESET_CODE_DIGITS.contains(9));
    }
}
