//! What this node tells people about itself and the others: lock-free counters for `/metrics`
//! ([`metrics`]) and the change events that dashboards follow, shared across nodes through Redis
//! ([`events`]). No HTTP here: `crate::admin` serves both.

pub mod events;
pub mod metrics;

pub use events::{Change, ChangeEvent, EventBus, EventKind};
pub use metrics::{Counters, Metrics};
