//! The people's side of careline over HTTP: who may use it ([`access`]), the live state of
//! agents, calls and queues, statistics over time, change events for dashboards, `/metrics`,
//! voicemails and callback requests, patients' lockouts and reset codes, configuration reload,
//! the wallboard page and the agent workspace page.
//!
//! Handlers read the node through [`crate::call::CallServices`] and check the caller's role with
//! [`access::AccessPolicy`]; each response carries nothing about a patient beyond what its
//! request named, and never a digit a caller keyed.

pub mod access;
pub mod agents;
pub mod dashboard;
pub mod events;
pub mod history;
pub mod metrics;
pub mod patients;
pub mod queues;
pub mod recordings;
pub mod reload;
pub mod workspace;
