//! The call engine: a pure state machine, events in, actions out — no I/O, no clock.

pub mod prompts;
