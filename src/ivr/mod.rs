//! The call engine: a pure state machine, events in, actions out — no I/O, no clock.
//!
//! [`flow::Flow`] is the checked configuration the engine runs; [`engine::Call`] is one call
//! walking through it. The server's session task turns Media Streams messages into
//! [`engine::Event`]s and carries out the [`engine::Action`]s.

pub mod engine;
pub mod flow;
pub use crate::config::system_prompts as prompts;

pub use engine::{Action, Call, Digits, Event, PlaybackId, TimerId};
pub use flow::Flow;

#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod tests;
