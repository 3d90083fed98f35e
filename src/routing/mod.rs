//! Routing: schedules.
pub mod schedule;
