//! Routing: who should take a call and when. Schedules (time of day, holidays, overrides in the
//! hospital's time zone) decide whether a queue is open and whether an agent is on shift.
//!
//! Everything here is a pure function of configuration and an instant the caller supplies.

pub mod schedule;
