//! The call flow the engine runs: the checked configuration's nodes and IVR settings, shared
//! read-only by every call that started on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::limits;
use crate::config::{Config, Node, QueueConfig};
use crate::routing::schedule::Schedule;

/// One configuration's flow. Calls hold an `Arc<Flow>` so a reload never changes a call midway.
#[derive(Debug)]
pub struct Flow {
    pub nodes: HashMap<Arc<str>, Node>,
    pub entry: Arc<str>,
    /// Reached by `0` from any menu that does not map `0` itself.
    pub operator: Arc<str>,
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    /// Failed tries at one node (no input or invalid input) before its `on_failure`.
    pub max_retries: u32,
    pub repeat_key: char,
    /// Failed directory checks per verify node in one call before its `on_failure`.
    pub verify_max_attempts: u32,
    pub default_language: Arc<str>,
    pub schedules: HashMap<String, Schedule>,
    /// `[queues]`: what a queued caller hears and how long they wait.
    pub queues: HashMap<String, QueueConfig>,
}

/// Why a configuration could not become a flow. `careline check` reports these with lines; this
/// error exists for configurations that skipped the check.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("schedule `{name}` is invalid: {message} (run `careline check` for details)")]
    Schedule { name: String, message: String },
    #[error("`ivr.repeat_key` must be one key of 0-9, * or # (run `careline check`)")]
    RepeatKey,
}

impl Flow {
    pub fn from_config(config: &Config) -> Result<Flow, FlowError> {
        let mut schedules = HashMap::new();
        for (name, rules) in &config.schedules {
            let schedule = Schedule::compile(rules).map_err(|problems| FlowError::Schedule {
                name: name.clone(),
                message: problems
                    .iter()
                    .map(|problem| problem.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
            schedules.insert(name.clone(), schedule);
        }
        let mut keys = config.ivr.repeat_key.chars();
        let repeat_key = match (keys.next(), keys.next()) {
            (Some(key), None) if is_key(key) => key,
            _ => return Err(FlowError::RepeatKey),
        };
        Ok(Flow {
            nodes: config
                .nodes
                .iter()
                .map(|(name, node)| (Arc::from(name.as_str()), node.clone()))
                .collect(),
            entry: Arc::from(config.ivr.entry.as_str()),
            operator: Arc::from(config.ivr.operator.as_str()),
            // Clamped to the ranges `careline check` enforces, so that a configuration that
            // skipped the check still cannot hand the session a timer that overflows its clock.
            first_digit_timeout: limits::FIRST_DIGIT_TIMEOUT_SECS
                .secs(config.ivr.first_digit_timeout_secs),
            inter_digit_timeout: limits::INTER_DIGIT_TIMEOUT_SECS
                .secs(config.ivr.inter_digit_timeout_secs),
            max_retries: limits::MAX_RETRIES.clamp_u32(config.ivr.max_retries).max(1),
            repeat_key,
            verify_max_attempts: config.identity.as_ref().map_or(3, |identity| {
                limits::IDENTITY_MAX_ATTEMPTS.clamp_u32(identity.max_attempts)
            }),
            default_language: Arc::from(config.prompts.default_language.as_str()),
            schedules,
            queues: config
                .queues
                .iter()
                .map(|(name, queue)| (name.clone(), queue.clone()))
                .collect(),
        })
    }

    /// The node called `name` with its shared name, if it exists.
    pub fn node(&self, name: &str) -> Option<(Arc<str>, &Node)> {
        self.nodes
            .get_key_value(name)
            .map(|(name, node)| (name.clone(), node))
    }
}

/// A telephone keypad key: `0-9`, `*`, `#` (and `A-D`, which some phones send).
pub fn is_key(key: char) -> bool {
    matches!(key, '0'..='9' | '*' | '#' | 'A'..='D')
}
