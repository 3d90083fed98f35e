//! careline: an IVR and call router for hospital patient-portal help desks.
//!
//! The telephony provider streams each call's audio over a WebSocket in Twilio's Media Streams
//! protocol. The layers, in the order a call's data flows through them, each looking only down:
//!
//! - [`twilio`]: wire types, TwiML builders and signature checks (no I/O);
//! - [`media`]: μ-law, prompt loading and resampling, framing, keypad tones;
//! - [`routing`]: schedules (time of day, holidays) and wait estimates, as pure functions;
//! - [`config`]: the admin's TOML, its validation (`careline check`);
//! - [`store`]: shared state (queues, agents, reservations, counters) in memory or Redis;
//! - [`telemetry`]: this node's counters and the change events dashboards follow;
//! - [`identity`]: caller verification, reset codes, the audit log (PHI stays inside);
//! - [`ivr`]: the call engine, a pure state machine (events in, actions out);
//! - [`dispatch`]: queue eligibility, the roster, and the router that reserves agents;
//! - [`call`]: one call on this node: Twilio's routes and the session task driving the engine;
//! - [`admin`]: the people's HTTP side: access, live state, statistics, events, reload, pages;
//! - [`connections`]: the node's HTTP connections: the accept loop, the connection cap, the
//!   header, body and idle timeouts;
//! - [`server`]: the thin axum app: state, route table, bind, shutdown, logging;
//! - [`caller`]: a Twilio-faithful test caller (`careline call`);
//! - [`load`]: the load generator (`careline load`);
//! - [`cli`]: the command line.

pub mod admin;
pub mod call;
pub mod caller;
pub mod cli;
pub mod config;
pub mod connections;
pub mod dispatch;
pub mod identity;
pub mod ivr;
pub mod load;
pub mod media;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod twilio;
