//! Routing rules as pure functions: schedules (time of day, holidays, overrides in the
//! hospital's time zone) decide whether a queue is open and whether an agent is on shift;
//! [`estimate::HandleTimes`] turns recent handle times into the wait a caller is told.
//!
//! Everything here is a pure function of rules and an instant the caller supplies, and looks
//! down at nothing but jiff: the configuration's `[schedules.*]` tables are this module's
//! [`schedule::ScheduleConfig`]. Which agents may take a queue's calls, and the tokio side that
//! asks the store for reservations, are `crate::dispatch`'s.

pub mod estimate;
pub mod schedule;
