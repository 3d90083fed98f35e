//! A Twilio-faithful test caller (`careline call`): a fake Twilio that places calls against
//! careline the way Twilio does, for the end-to-end tests and for admins.
//!
//! - [`call`]: the whole call: webhooks, TwiML, streams, `<Dial>`, `<Gather>`, status callback;
//!   and a call careline places itself (a callback), answered as Twilio runs it;
//! - [`stream`]: one Media Streams WebSocket from Twilio's side ([`MediaStreamClient`]);
//! - [`playback`]: Twilio's playback buffer, simulated (marks, `clear`), sans-IO;
//! - [`script`]: the digit script and when each key goes, sans-IO;
//! - [`transcript`]: what the caller noticed, and the [`CallReport`];
//! - [`audio`]: the caller's voice (silence, frames, DTMF tones) and WAV recording;
//! - [`cli`]: the `careline call` command.
//!
//! ```no_run
//! # async fn example() -> Result<(), careline::caller::CallerError> {
//! use careline::caller::{CallOptions, place_call};
//!
//! let report = place_call(
//!     CallOptions::new("http://127.0.0.1:8080")
//!         .auth_token("the same token careline has")
//!         .digits("w1,w19700101#".parse()?)
//!         .max_duration(std::time::Duration::from_secs(30)),
//! )
//! .await?;
//! assert!(report.protocol_errors.is_empty());
//! assert_eq!(report.played_prompts()[0], "welcome");
//! # Ok(())
//! # }
//! ```

pub mod audio;
pub mod call;
pub mod cli;
pub mod error;
pub mod playback;
pub mod script;
pub mod stream;
pub mod transcript;

#[cfg(test)]
mod tests;

pub use audio::{Frames, InboundAudio, KeySignalling, Silence};
pub use call::{CallOptions, DialBehaviour, OutboundAnswer, answer_outbound_call, place_call};
pub use cli::{CallArgs, run_cli};
pub use error::CallerError;
pub use playback::{EchoReason, MarkEcho, PlaybackBuffer};
pub use script::{DigitScript, Step, StepAction};
pub use stream::{Heard, MediaStreamClient, StreamIds};
pub use transcript::{CallEnd, CallReport, DialStatus, StreamClose, TranscriptEntry};
