//! The configured agents and queues as the running configuration holds them: who may be routed
//! to and which queues exist, read by the live-state routes and the queue board.

use std::collections::BTreeMap;

use crate::config::{AgentConfig, Config, QueueConfig};

/// The configured agents and queues, as the live-state routes need them.
#[derive(Debug, Default)]
pub struct Roster {
    /// `[[agents]]`, in configuration order; their shifts are schedules in the flow.
    pub agents: Vec<AgentConfig>,
    /// The names of `[queues]`, for finding where a call waits.
    pub queues: Vec<String>,
    /// `[queues]` with their settings (skills, schedule), for the queue board.
    pub queue_configs: BTreeMap<String, QueueConfig>,
}

impl Roster {
    pub fn from_config(config: &Config) -> Roster {
        Roster {
            agents: config.agents.clone(),
            queues: config.queues.keys().cloned().collect(),
            queue_configs: config.queues.clone(),
        }
    }
}
