//! `careline load`: a load generator that places many Twilio-faithful calls at once against a
//! careline server and reports what callers would notice under that load.
//!
//! Every call does what Twilio does (voice webhook, TwiML, media WebSocket with `connected`,
//! `start`, a `media` frame every 20 ms, `dtmf` keys, mark echoes as its simulated playback
//! reaches them, `stop`, the `<Connect action>` and status callbacks), through the test caller's
//! [`MediaStreamClient`](crate::caller::MediaStreamClient) and
//! [`PlaybackBuffer`](crate::caller::PlaybackBuffer) with audio counted rather than kept.
//!
//! - [`call`]: one call and what it measures ([`call::Sample`]);
//! - [`run`]: the plan (how many calls, ramp, hold, scripts) and the run that carries it out;
//! - [`report`]: the figures: calls, keypad → prompt latency, underruns, errors, CPU, memory;
//! - [`process`]: CPU time, RSS and the open-file limit of a process, from `/proc`;
//! - [`cli`]: the `careline load` command.
//!
//! What is measured:
//! - keypad → prompt: from a `dtmf` message leaving the caller to the first `media` message
//!   after it;
//! - underruns: the caller's playback buffer ran dry while careline was still in the middle of a
//!   prompt (the last mark played was a `pace:` mark, which careline puts between the pieces of
//!   one prompt): a prompt's audio arrived later than its playback time;
//! - server CPU and memory, from `/proc/<pid>` while all calls are up.

pub mod call;
pub mod cli;
pub mod process;
mod progress;
pub mod report;
pub mod run;

#[cfg(test)]
mod tests;

pub use cli::{LoadArgs, run_cli};
pub use report::LoadReport;
pub use run::{LoadPlan, run};
