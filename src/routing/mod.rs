//! Routing: who should take a call and when. Schedules (time of day, holidays, overrides in the
//! hospital's time zone) decide whether a queue is open and whether an agent is on shift;
//! [`eligibility::QueuePolicy`] turns them and the agents' skills into each queue's candidates;
//! [`estimate::HandleTimes`] turns recent handle times into the wait a caller is told.
//!
//! Everything here is a pure function of configuration and an instant the caller supplies. The
//! tokio side (the per-node dispatcher that asks the store for reservations) is
//! `crate::server::router`.

pub mod eligibility;
pub mod estimate;
pub mod schedule;
