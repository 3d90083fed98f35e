//! Who may take a queue's calls at an instant, and whether the queue takes calls at all.
//!
//! [`QueuePolicy`] is compiled once from the configuration: the `[[agents]]` with their skills
//! and shifts, the `[queues]`, and the `[schedules]` both refer to. It answers from configuration
//! and the instant it is given only. Whether a candidate is `available` and idle is the store's
//! business: [`crate::store::Store::reserve`] decides that atomically, across nodes, so nothing
//! here reads agent state.
//!
//! A schedule that does not compile (which `careline check` prevents) counts as closed, so a
//! mistake keeps calls out of a queue rather than routing them to people who are not there.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use crate::config::{AgentConfig, Config, QueueConfig, Strategy};
use crate::routing::schedule::Schedule;

/// The routing rules of every queue, compiled from the configuration.
#[derive(Debug, Clone, Default)]
pub struct QueuePolicy {
    /// `[[agents]]`, in configuration order.
    agents: Vec<AgentConfig>,
    queues: BTreeMap<String, QueueConfig>,
    /// Only the schedules that compiled: a name missing here is closed at every instant.
    schedules: HashMap<String, Schedule>,
}

impl QueuePolicy {
    pub fn from_config(config: &Config) -> QueuePolicy {
        let schedules = config
            .schedules
            .iter()
            .filter_map(|(name, rules)| {
                Schedule::compile(rules)
                    .ok()
                    .map(|schedule| (name.clone(), schedule))
            })
            .collect();
        QueuePolicy::new(config.agents.clone(), config.queues.clone(), schedules)
    }

    pub fn new(
        agents: Vec<AgentConfig>,
        queues: BTreeMap<String, QueueConfig>,
        schedules: HashMap<String, Schedule>,
    ) -> QueuePolicy {
        QueuePolicy {
            agents,
            queues,
            schedules,
        }
    }

    /// The configured queues, by name.
    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(String::as_str)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.get(name)
    }

    /// How the queue picks among its free candidates (the default for an unknown queue).
    pub fn strategy(&self, queue: &str) -> Strategy {
        self.queue(queue)
            .map(|config| config.strategy)
            .unwrap_or_default()
    }

    /// Every configured agent id, in configuration order.
    pub fn agent_ids(&self) -> Vec<String> {
        self.agents.iter().map(|agent| agent.id.clone()).collect()
    }

    /// Whether `agent` is on shift at `now`: always without a shift, otherwise while the
    /// shift's schedule is open.
    pub fn on_shift(&self, agent: &AgentConfig, now: Timestamp) -> bool {
        match &agent.shift {
            None => true,
            Some(name) => self.schedule_open(name, now),
        }
    }

    /// Agents who may be offered the queue's calls at `now`: on shift, with every skill the
    /// queue needs. Empty for an unknown queue.
    pub fn candidates(&self, queue: &str, now: Timestamp) -> Vec<String> {
        self.qualified_on_shift(queue, now)
            .map(|agent| agent.id.clone())
            .collect()
    }

    /// How many agents could take the queue's calls at `now` (the estimate divides by it).
    pub fn agents_on_shift(&self, queue: &str, now: Timestamp) -> usize {
        self.qualified_on_shift(queue, now).count()
    }

    /// Whether the queue takes calls at `now`: its schedule (if it has one) is open and at least
    /// one agent with its skills is on shift. An unknown queue is closed.
    pub fn is_open(&self, queue: &str, now: Timestamp) -> bool {
        let Some(config) = self.queue(queue) else {
            return false;
        };
        let hours_open = match &config.schedule {
            None => true,
            Some(name) => self.schedule_open(name, now),
        };
        hours_open && self.qualified_on_shift(queue, now).next().is_some()
    }

    fn qualified_on_shift(
        &self,
        queue: &str,
        now: Timestamp,
    ) -> impl Iterator<Item = &AgentConfig> {
        let needed: &[String] = self.queue(queue).map_or(&[], |config| &config.skills);
        let known = self.queue(queue).is_some();
        self.agents.iter().filter(move |agent| {
            known
                && needed.iter().all(|skill| agent.skills.contains(skill))
                && self.on_shift(agent, now)
        })
    }

    fn schedule_open(&self, name: &str, now: Timestamp) -> bool {
        self.schedules
            .get(name)
            .is_some_and(|schedule| schedule.is_open(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weekdays 08:00–17:00 in Chicago; nights 22:00–06:00; a schedule that cannot compile.
    const CONFIG: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "main"

[schedules.days]
timezone = "America/Chicago"
hours = [{ days = "mon-fri", from = "08:00", to = "17:00" }]

[schedules.nights]
timezone = "America/Chicago"
hours = [{ days = "mon-sun", from = "22:00", to = "06:00" }]

[schedules.broken]
timezone = "Mars/Olympus_Mons"
hours = [{ days = "mon-sun", from = "00:00", to = "24:00" }]

[queues.portal]
skills = ["portal"]

[queues.portal_spanish]
skills = ["portal", "spanish"]
strategy = "round_robin"

[queues.billing]
skills = ["billing"]
schedule = "days"

[queues.anyone]

[queues.mars]
schedule = "broken"

[[agents]]
id = "day-portal"
name = "Day Portal"
skills = ["portal"]
shift = "days"
dial = "+15550000001"

[[agents]]
id = "night-bilingual"
name = "Night Bilingual"
skills = ["spanish", "portal"]
shift = "nights"
dial = "+15550000002"

[[agents]]
id = "always-billing"
name = "Always Billing"
skills = ["billing"]
dial = "+15550000003"

[[agents]]
id = "broken-shift"
name = "Broken Shift"
skills = ["portal", "billing", "spanish"]
shift = "broken"
dial = "+15550000004"
"#;

    fn policy() -> QueuePolicy {
        let config: Config = toml::from_str(CONFIG).expect("test config parses");
        QueuePolicy::from_config(&config)
    }

    /// A wall-clock time in Chicago. 2026-12-01 is a Tuesday.
    fn chicago(datetime: &str) -> Timestamp {
        format!("{datetime}[America/Chicago]")
            .parse::<jiff::Zoned>()
            .expect("test time parses")
            .timestamp()
    }

    #[test]
    fn a_day_agent_takes_portal_calls_during_the_day_only() {
        let policy = policy();
        let tuesday_noon = chicago("2026-12-01T12:00");
        let tuesday_night = chicago("2026-12-01T23:00");
        assert_eq!(policy.candidates("portal", tuesday_noon), ["day-portal"]);
        assert_eq!(
            policy.candidates("portal", tuesday_night),
            ["night-bilingual"]
        );
        assert_eq!(policy.agents_on_shift("portal", tuesday_noon), 1);
    }

    #[test]
    fn a_queue_needing_two_skills_gets_only_agents_with_both() {
        let policy = policy();
        assert!(
            policy
                .candidates("portal_spanish", chicago("2026-12-01T12:00"))
                .is_empty()
        );
        assert!(!policy.is_open("portal_spanish", chicago("2026-12-01T12:00")));
        assert_eq!(
            policy.candidates("portal_spanish", chicago("2026-12-02T03:00")),
            ["night-bilingual"]
        );
        assert!(policy.is_open("portal_spanish", chicago("2026-12-02T03:00")));
        assert_eq!(policy.strategy("portal_spanish"), Strategy::RoundRobin);
    }

    #[test]
    fn an_agent_without_a_shift_is_always_on_shift_but_the_queue_keeps_its_hours() {
        let policy = policy();
        let saturday_noon = chicago("2026-12-05T12:00");
        let tuesday_noon = chicago("2026-12-01T12:00");
        assert_eq!(
            policy.candidates("billing", saturday_noon),
            ["always-billing"]
        );
        assert!(!policy.is_open("billing", saturday_noon));
        assert!(policy.is_open("billing", tuesday_noon));
        assert!(!policy.is_open("billing", chicago("2026-12-01T17:00")));
    }

    #[test]
    fn a_queue_without_skills_takes_everyone_on_shift() {
        let policy = policy();
        assert_eq!(
            policy.candidates("anyone", chicago("2026-12-01T12:00")),
            ["day-portal", "always-billing"]
        );
        assert_eq!(
            policy.agents_on_shift("anyone", chicago("2026-12-05T12:00")),
            1
        );
    }

    #[test]
    fn nobody_on_shift_with_the_skills_closes_the_queue() {
        let policy = policy();
        let saturday_noon = chicago("2026-12-05T12:00");
        assert!(policy.candidates("portal", saturday_noon).is_empty());
        assert_eq!(policy.agents_on_shift("portal", saturday_noon), 0);
        assert!(!policy.is_open("portal", saturday_noon));
    }

    #[test]
    fn a_schedule_that_does_not_compile_is_closed() {
        let policy = policy();
        let any_time = chicago("2026-12-01T12:00");
        assert!(!policy.is_open("mars", any_time));
        assert!(
            !policy
                .candidates("anyone", any_time)
                .contains(&"broken-shift".to_owned())
        );
    }

    #[test]
    fn an_unknown_queue_is_closed_and_has_no_candidates() {
        let policy = policy();
        let now = chicago("2026-12-01T12:00");
        assert!(!policy.is_open("nowhere", now));
        assert!(policy.candidates("nowhere", now).is_empty());
        assert_eq!(policy.strategy("nowhere"), Strategy::LongestIdle);
    }

    #[test]
    fn agent_ids_follow_the_configuration() {
        assert_eq!(
            policy().agent_ids(),
            [
                "day-portal",
                "night-bilingual",
                "always-billing",
                "broken-shift"
            ]
        );
    }
}
