//! careline: an IVR and call router for hospital patient-portal help desks.
//!
//! The telephony provider streams each call's audio over a WebSocket in Twilio's Media Streams
//! protocol. The layers, from the wire inwards:
//!
//! - [`twilio`]: wire types, TwiML builders and signature checks (no I/O);
//! - [`media`]: μ-law, prompt loading and resampling, framing;
//! - [`ivr`]: the call engine, a pure state machine (events in, actions out);
//! - [`routing`]: schedules (time of day, holidays) and queue policy;
//! - [`config`]: the admin's TOML, its validation (`careline check`);
//! - [`identity`]: caller verification, reset codes, the audit log (PHI stays inside);
//! - [`server`]: the axum app and the per-call session task that drives the engine;
//! - [`caller`]: a Twilio-faithful test caller (`careline call`);
//! - [`cli`]: the command line.

pub mod caller;
pub mod cli;
pub mod config;
pub mod identity;
pub mod ivr;
pub mod load;
pub mod media;
pub mod routing;
pub mod server;
pub mod store;
pub mod twilio;
