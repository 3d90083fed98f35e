//! `careline check`: every problem in a configuration, found at once, each with its place.
//!
//! A [`Finding`] names the file, the TOML key path, the line where known, what is wrong and what
//! to do about it. Errors stop `serve`; warnings (long menus, no way to a person, short
//! timeouts, skills nobody has) are printed only.
//!
//! [`check`] runs on a configuration that parsed (parse failures are reported by
//! `parse_errors`): names and references, menu keys, node settings, schedules (compiled by
//! [`crate::routing::schedule`], so the syntax lives in one place), agents, the call flow as a
//! graph ([`super::call_flow`]) and the prompt recordings for every configured language, each
//! decoded by the loader `serve` uses ([`crate::media::prompt`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::LoadedConfig;
use super::call_flow::CallFlow;
use super::limits::{self, Limit};
use super::locate::{KeyPath, Locator};
use super::model::{Config, DirectoryConfig, Identifier, MenuNode, Node, ResetMethod};
use super::system_prompts::system_prompts;
use crate::media::prompt::load_in_parallel;
use crate::routing::schedule::Schedule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub file: PathBuf,
    /// Dotted TOML key path, e.g. `nodes.main.options."1"`; empty for the whole file.
    pub key_path: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    pub message: String,
    /// What the admin should do.
    pub hint: String,
}

impl Finding {
    pub fn error(
        file: &Path,
        key_path: &str,
        line: Option<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            severity: Severity::Error,
            file: file.to_path_buf(),
            key_path: key_path.to_owned(),
            line,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn warning(
        file: &Path,
        key_path: &str,
        line: Option<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(file, key_path, line, message, hint)
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}: {}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key_path.is_empty() {
            write!(f, ": {}", self.key_path)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

/// All findings for one configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn single(finding: Finding) -> Report {
        Report {
            findings: vec![finding],
        }
    }

    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|finding| finding.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|finding| finding.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|finding| finding.severity == Severity::Warning)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

/// Turn a TOML syntax or type error into a finding with its key path and line.
pub fn finding_from_toml_error(file: &Path, source: &str, error: &toml::de::Error) -> Finding {
    super::parse_errors::finding(file, source, &Locator::new(source), error)
}

/// Find every problem in a parsed configuration.
pub fn check(loaded: &LoadedConfig) -> Report {
    let config = &loaded.config;
    let mut checker = Checker {
        file: &loaded.path,
        locator: Locator::new(&loaded.source),
        config,
        findings: Vec::new(),
    };
    checker.server();
    checker.store(loaded);
    checker.ivr();
    checker.nodes();
    checker.queues();
    checker.schedules();
    checker.agents();
    checker.identity();
    checker.callbacks();
    checker.call_flow();
    checker.prompt_files(&loaded.prompts_dir());

    let mut findings = checker.findings;
    findings.sort_by_key(|finding| {
        (
            std::cmp::Reverse(finding.severity),
            finding.line.unwrap_or(usize::MAX),
        )
    });
    Report { findings }
}

/// Nodes where a caller reaches a person or leaves a message for one.
fn reaches_person_itself(node: &Node) -> bool {
    matches!(
        node,
        Node::Queue(_) | Node::Transfer(_) | Node::Voicemail(_) | Node::Callback(_)
    )
}

/// `[a-z0-9_]+`: node names, prompt ids, queue, schedule and agent names.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A language is a folder under the prompts directory.
fn is_language(language: &str) -> bool {
    !language.is_empty()
        && language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_key(key: &str) -> bool {
    matches!(key.as_bytes(), [b'0'..=b'9' | b'*' | b'#'])
}

const NAME_HINT: &str =
    "use only lowercase letters a-z, digits and _, and rename every reference to it";

fn path(text: &str) -> KeyPath {
    KeyPath::parse(text)
}

fn node_path(name: &str) -> KeyPath {
    KeyPath::root().key("nodes").key(name)
}

struct Checker<'c> {
    file: &'c Path,
    locator: Locator,
    config: &'c Config,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    fn error(&mut self, at: &KeyPath, message: impl Into<String>, hint: impl Into<String>) {
        let line = self.locator.line_of(at);
        self.findings.push(Finding::error(
            self.file,
            &at.to_string(),
            line,
            message,
            hint,
        ));
    }

    fn warning(&mut self, at: &KeyPath, message: impl Into<String>, hint: impl Into<String>) {
        let line = self.locator.line_of(at);
        self.findings.push(Finding::warning(
            self.file,
            &at.to_string(),
            line,
            message,
            hint,
        ));
    }

    /// A duration or count must fall in its documented range (see [`limits`]).
    fn within(&mut self, at: &KeyPath, value: u64, limit: &Limit) {
        if limit.contains(value) {
            return;
        }
        let Limit {
            min,
            max,
            unit,
            why,
        } = *limit;
        self.error(
            at,
            format!("{value} {unit} is outside the allowed range of {min} to {max} {unit}"),
            format!("set it between {min} and {max}: {why}"),
        );
    }

    fn name(&mut self, at: &KeyPath, what: &str, name: &str) {
        if !is_name(name) {
            self.error(
                at,
                format!("{what} `{name}` is not made of a-z, 0-9 and _"),
                NAME_HINT,
            );
        }
    }

    /// `target` must name a node.
    fn node_reference(&mut self, at: &KeyPath, target: &str) {
        if !self.config.nodes.contains_key(target) {
            let hint = suggest(target, self.config.nodes.keys(), "node", "[nodes.NAME]");
            self.error(at, format!("there is no node `{target}`"), hint);
        }
    }

    fn queue_reference(&mut self, at: &KeyPath, target: &str) {
        if !self.config.queues.contains_key(target) {
            let hint = suggest(target, self.config.queues.keys(), "queue", "[queues.NAME]");
            self.error(at, format!("there is no queue `{target}`"), hint);
        }
    }

    fn schedule_reference(&mut self, at: &KeyPath, target: &str) {
        if !self.config.schedules.contains_key(target) {
            let hint = suggest(
                target,
                self.config.schedules.keys(),
                "schedule",
                "[schedules.NAME]",
            );
            self.error(at, format!("there is no schedule `{target}`"), hint);
        }
    }

    fn server(&mut self) {
        let server = &self.config.server;
        if server.listen.parse::<SocketAddr>().is_err() {
            self.error(
                &path("server.listen"),
                format!("`{}` is not an IP address and port", server.listen),
                "write it like \"127.0.0.1:8080\", or \"0.0.0.0:8080\" to listen on every interface",
            );
        }
        let host = server
            .public_url
            .strip_prefix("https://")
            .or_else(|| server.public_url.strip_prefix("http://"));
        let host_is_named = host.is_some_and(|rest| {
            rest.split(['/', '?', '#'])
                .next()
                .is_some_and(|authority| !authority.is_empty())
        });
        if !host_is_named {
            self.error(
                &path("server.public_url"),
                format!("`{}` is not an http:// or https:// URL", server.public_url),
                "give the base URL Twilio reaches this server at, e.g. \"https://ivr.example.org\"",
            );
        }
        self.within(
            &path("server.shutdown_grace_secs"),
            server.shutdown_grace_secs,
            &limits::SHUTDOWN_GRACE_SECS,
        );
        let connection_limits = [
            (
                "server.max_connections",
                server.max_connections,
                &limits::MAX_CONNECTIONS,
            ),
            (
                "server.header_timeout_secs",
                server.header_timeout_secs,
                &limits::HEADER_TIMEOUT_SECS,
            ),
            (
                "server.idle_timeout_secs",
                server.idle_timeout_secs,
                &limits::IDLE_TIMEOUT_SECS,
            ),
            (
                "server.body_timeout_secs",
                server.body_timeout_secs,
                &limits::BODY_TIMEOUT_SECS,
            ),
        ];
        for (key, value, limit) in connection_limits {
            self.within(&path(key), value, limit);
        }
    }

    /// `[store]`: one Redis form, Sentinel addresses, TLS settings (`super::store_forms`).
    fn store(&mut self, loaded: &LoadedConfig) {
        for problem in super::store_forms::problems(&self.config.store, |path| loaded.resolve(path))
        {
            self.error(&problem.at, problem.message, problem.hint);
        }
    }

    fn ivr(&mut self) {
        let ivr = &self.config.ivr;
        self.node_reference(&path("ivr.entry"), &ivr.entry);
        self.node_reference(&path("ivr.operator"), &ivr.operator);
        if !is_key(&ivr.repeat_key) {
            self.error(
                &path("ivr.repeat_key"),
                format!("repeat key `{}` is not a single key", ivr.repeat_key),
                "use one of 0-9, * or #; \"*\" is what callers expect",
            );
        } else if ivr.repeat_key == "0" {
            self.error(
                &path("ivr.repeat_key"),
                "`0` is the operator key at every menu and cannot also repeat the menu",
                "use \"*\" as the repeat key",
            );
        }
        if ivr.first_digit_timeout_secs == 0 {
            self.error(
                &path("ivr.first_digit_timeout_secs"),
                "callers get no time at all to press a key",
                "allow at least 5 seconds; 7 suits callers who are new to phone menus",
            );
        } else if !limits::FIRST_DIGIT_TIMEOUT_SECS.contains(ivr.first_digit_timeout_secs) {
            self.within(
                &path("ivr.first_digit_timeout_secs"),
                ivr.first_digit_timeout_secs,
                &limits::FIRST_DIGIT_TIMEOUT_SECS,
            );
        } else if ivr.first_digit_timeout_secs < 5 {
            self.warning(
                &path("ivr.first_digit_timeout_secs"),
                format!(
                    "{} seconds to press the first key is short for older callers",
                    ivr.first_digit_timeout_secs
                ),
                "allow at least 5 seconds; 7 is the recommended default",
            );
        }
        if ivr.inter_digit_timeout_secs == 0 {
            self.error(
                &path("ivr.inter_digit_timeout_secs"),
                "callers get no time between digits of a number",
                "allow a few seconds between digits; 3 is the default",
            );
        } else {
            self.within(
                &path("ivr.inter_digit_timeout_secs"),
                ivr.inter_digit_timeout_secs,
                &limits::INTER_DIGIT_TIMEOUT_SECS,
            );
        }
        self.within(
            &path("ivr.max_retries"),
            u64::from(ivr.max_retries),
            &limits::MAX_RETRIES,
        );
        if ivr.max_retries == 0 {
            self.warning(
                &path("ivr.max_retries"),
                "callers who miss a menu get no second try",
                "allow at least one retry; 3 is the default",
            );
        }
    }

    fn nodes(&mut self) {
        let config = self.config;
        for (name, node) in &config.nodes {
            let at = node_path(name);
            self.name(&at, "node name", name);
            for (key, list) in node.prompt_lists() {
                for (index, prompt) in list.iter().enumerate() {
                    self.name(&at.key(key).index(index), "prompt id", prompt);
                }
            }
            for (key, target) in node.successors() {
                self.node_reference(&at.join(&KeyPath::parse(&key)), target);
            }
            match node {
                Node::Menu(menu) => self.menu(&at, menu),
                Node::Collect(collect) => {
                    if collect.max_digits == 0 {
                        self.error(
                            &at.key("max_digits"),
                            "a collect node with max_digits = 0 accepts no digits",
                            "set max_digits to the longest entry callers may key in",
                        );
                    } else if !limits::COLLECT_MAX_DIGITS.contains(u64::from(collect.max_digits)) {
                        self.within(
                            &at.key("max_digits"),
                            u64::from(collect.max_digits),
                            &limits::COLLECT_MAX_DIGITS,
                        );
                    } else if collect.min_digits > collect.max_digits {
                        self.error(
                            &at.key("min_digits"),
                            format!(
                                "min_digits ({}) is more than max_digits ({})",
                                collect.min_digits, collect.max_digits
                            ),
                            "make min_digits at most max_digits",
                        );
                    }
                }
                Node::Verify(verify) => {
                    let others = verify
                        .identifiers
                        .iter()
                        .filter(|id| **id != Identifier::Dob)
                        .count();
                    let dobs = verify.identifiers.len() - others;
                    if dobs != 1 || others != 1 {
                        self.error(
                            &at.key("identifiers"),
                            "identity is checked with the date of birth plus exactly one other identifier",
                            "write identifiers = [\"dob\", \"mrn\"]; \"zip\" or \"ssn4\" may take the place of \"mrn\"",
                        );
                    }
                    if config.identity.is_none() {
                        self.error(
                            &at,
                            "a verify node needs an [identity] section with a patient directory",
                            "add [identity] with directory = { kind = \"file\", path = \"...\" } or kind = \"http\"",
                        );
                    }
                }
                Node::PasswordReset(reset) => {
                    let portal_url = config
                        .password_reset
                        .as_ref()
                        .and_then(|reset| reset.portal_url.as_ref());
                    if reset.method == ResetMethod::Portal && portal_url.is_none() {
                        self.error(
                            &at.key("method"),
                            "method = \"portal\" needs the portal's reset endpoint",
                            "set portal_url in [password_reset], or use method = \"code\"",
                        );
                    }
                }
                Node::Queue(queue) => self.queue_reference(&at.key("queue"), &queue.queue),
                Node::Schedule(schedule) => {
                    self.schedule_reference(&at.key("schedule"), &schedule.schedule)
                }
                Node::Callback(callback) => {
                    if let Some(queue) = &callback.queue {
                        self.queue_reference(&at.key("queue"), queue);
                    }
                }
                Node::Language(language) => {
                    if !is_language(&language.language) {
                        self.error(
                            &at.key("language"),
                            format!("`{}` cannot name a prompt folder", language.language),
                            "use a language code such as \"en\" or \"es\"",
                        );
                    }
                }
                Node::Transfer(transfer) => {
                    self.within(
                        &at.key("timeout_secs"),
                        transfer.timeout_secs,
                        &limits::TRANSFER_TIMEOUT_SECS,
                    );
                    let digits = transfer.number.strip_prefix('+').unwrap_or("");
                    let e164 = (8..=15).contains(&digits.len())
                        && digits.bytes().all(|b| b.is_ascii_digit());
                    if !e164 {
                        self.error(
                            &at.key("number"),
                            format!("`{}` is not an E.164 phone number", transfer.number),
                            "write the number with + and country code, e.g. \"+13125550100\"",
                        );
                    }
                }
                Node::Voicemail(voicemail) => self.within(
                    &at.key("max_secs"),
                    voicemail.max_secs,
                    &limits::VOICEMAIL_MAX_SECS,
                ),
                Node::Hangup(_) | Node::Say(_) => {}
            }
        }
    }

    fn menu(&mut self, at: &KeyPath, menu: &MenuNode) {
        if menu.prompt.is_empty() {
            self.error(
                &at.key("prompt"),
                "this menu says no choices: callers hear silence, then \"not a valid choice\"",
                "list the recordings that say the options, e.g. prompt = [\"main_menu\"]",
            );
        }
        if menu.options.is_empty() {
            self.error(
                &at.key("options"),
                "this menu has no options: no key but 0 leads anywhere",
                "add options, e.g. options = { \"1\" = \"next_node\" }, or use a say node that leads on",
            );
        }
        let repeat_key = &self.config.ivr.repeat_key;
        for key in menu.options.keys() {
            let option = at.key("options").key(key);
            if !is_key(key) {
                self.error(
                    &option,
                    format!("`{key}` is not a key on a phone keypad"),
                    "menu options are single keys: one of 0-9, * or #",
                );
            } else if key == repeat_key {
                self.error(
                    &option,
                    format!("`{key}` is the repeat key (ivr.repeat_key) at every menu"),
                    "use another key for this option",
                );
            }
        }
        if menu.options.len() > 5 {
            self.warning(
                &at.key("options"),
                format!(
                    "{} options is more than callers can keep in mind",
                    menu.options.len()
                ),
                "keep menus to 5 options or fewer; move the rest into a sub-menu",
            );
        }
    }

    fn queues(&mut self) {
        let config = self.config;
        for (name, queue) in &config.queues {
            let at = KeyPath::root().key("queues").key(name);
            self.name(&at, "queue name", name);
            if let Some(schedule) = &queue.schedule {
                self.schedule_reference(&at.key("schedule"), schedule);
            }
            if let Some(node) = &queue.when_closed {
                self.node_reference(&at.key("when_closed"), node);
            }
            if let Some(node) = &queue.on_timeout {
                self.node_reference(&at.key("on_timeout"), node);
            }
            if let Some(prompt) = &queue.hold_prompt {
                self.name(&at.key("hold_prompt"), "prompt id", prompt);
            }
            for (key, value, limit) in [
                (
                    "max_wait_secs",
                    queue.max_wait_secs,
                    &limits::QUEUE_MAX_WAIT_SECS,
                ),
                (
                    "announce_every_secs",
                    queue.announce_every_secs,
                    &limits::QUEUE_ANNOUNCE_EVERY_SECS,
                ),
                (
                    "ring_timeout_secs",
                    queue.ring_timeout_secs,
                    &limits::QUEUE_RING_TIMEOUT_SECS,
                ),
                (
                    "wrap_up_secs",
                    queue.wrap_up_secs,
                    &limits::QUEUE_WRAP_UP_SECS,
                ),
            ] {
                self.within(&at.key(key), value, limit);
            }

            let has_skill = |skill: &String| config.agents.iter().any(|a| a.skills.contains(skill));
            let unknown: Vec<&str> = queue
                .skills
                .iter()
                .filter(|skill| !has_skill(skill))
                .map(String::as_str)
                .collect();
            let qualified = config.agents.iter().any(|agent| {
                queue
                    .skills
                    .iter()
                    .all(|skill| agent.skills.contains(skill))
            });
            if config.agents.is_empty() {
                self.warning(
                    &at,
                    "no agents are configured, so nobody can answer this queue",
                    "add [[agents]] entries",
                );
            } else if !unknown.is_empty() {
                self.warning(
                    &at.key("skills"),
                    format!("no agent has the skill {}", quoted_list(&unknown)),
                    "add the skill to the agents who can take these calls, or fix its spelling",
                );
            } else if !qualified {
                self.warning(
                    &at.key("skills"),
                    "no single agent has every skill this queue needs, so nobody can answer it",
                    "give at least one agent all of the queue's skills, or require fewer",
                );
            }
        }
    }

    fn schedules(&mut self) {
        for (name, config) in &self.config.schedules {
            let at = KeyPath::root().key("schedules").key(name);
            self.name(&at, "schedule name", name);
            match Schedule::compile(config) {
                Ok(schedule) => {
                    if !schedule.has_hours() {
                        self.warning(
                            &at,
                            "this schedule has no hours, so it is never open",
                            "add hours = [{ days = \"mon-fri\", from = \"07:00\", to = \"19:00\" }]",
                        );
                    }
                }
                Err(problems) => {
                    for problem in problems {
                        let key = at.join(&KeyPath::parse(&problem.key_path));
                        self.error(&key, problem.message, problem.hint);
                    }
                }
            }
        }
    }

    fn agents(&mut self) {
        let mut first_with_id: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, agent) in self.config.agents.iter().enumerate() {
            let at = KeyPath::root().key("agents").index(index);
            self.name(&at.key("id"), "agent id", &agent.id);
            if let Some(first) = first_with_id.get(agent.id.as_str()) {
                self.error(
                    &at.key("id"),
                    format!("agent id `{}` is already used by agents[{first}]", agent.id),
                    "give every agent a different id",
                );
            } else {
                first_with_id.insert(&agent.id, index);
            }
            let ways = [&agent.dial, &agent.client, &agent.sip]
                .into_iter()
                .filter(|way| way.is_some())
                .count();
            if ways != 1 {
                self.error(
                    &at,
                    format!(
                        "agent `{}` has {ways} ways to be reached; exactly one is needed",
                        agent.id
                    ),
                    "set exactly one of dial = a phone number, client = a Twilio client name, or sip = a SIP URI",
                );
            }
            if let Some(shift) = &agent.shift {
                self.schedule_reference(&at.key("shift"), shift);
            }
        }
    }

    /// `[identity]` and `[password_reset]`: their counts and durations.
    fn identity(&mut self) {
        let config = self.config;
        if let Some(identity) = &config.identity {
            let at = KeyPath::root().key("identity");
            self.within(
                &at.key("max_attempts"),
                u64::from(identity.max_attempts),
                &limits::IDENTITY_MAX_ATTEMPTS,
            );
            self.within(
                &at.key("lockout_failures"),
                u64::from(identity.lockout_failures),
                &limits::IDENTITY_LOCKOUT_FAILURES,
            );
            self.within(
                &at.key("lockout_window_hours"),
                identity.lockout_window_hours,
                &limits::IDENTITY_LOCKOUT_WINDOW_HOURS,
            );
            if let DirectoryConfig::Http { timeout_ms, .. } = &identity.directory {
                self.within(
                    &at.key("directory").key("timeout_ms"),
                    *timeout_ms,
                    &limits::VERIFIER_TIMEOUT_MS,
                );
            }
        }
        if let Some(reset) = &config.password_reset {
            let at = KeyPath::root().key("password_reset");
            self.within(
                &at.key("code_digits"),
                u64::from(reset.code_digits),
                &limits::RESET_CODE_DIGITS,
            );
            self.within(
                &at.key("code_ttl_secs"),
                reset.code_ttl_secs,
                &limits::RESET_CODE_TTL_SECS,
            );
        }
    }

    /// `[callbacks]`: the caller ID Twilio must accept, the REST API's address, and the
    /// retry counts and delays.
    fn callbacks(&mut self) {
        let Some(callbacks) = &self.config.callbacks else {
            return;
        };
        let at = KeyPath::root().key("callbacks");
        let digits = callbacks.caller_id.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            self.error(
                &at.key("caller_id"),
                "caller_id is not a phone number in E.164 form",
                "write the desk's Twilio number as + and the country code, e.g. \"+13125550100\"",
            );
        }
        if let Some(base) = &callbacks.api_base {
            let valid = match base.split_once("://") {
                Some(("http" | "https", rest)) => {
                    !rest.is_empty() && !rest.contains(char::is_whitespace)
                }
                _ => false,
            };
            if !valid {
                self.error(
                    &at.key("api_base"),
                    "api_base is not an http:// or https:// address",
                    "leave it out to use Twilio's own API, or give a base like \"http://127.0.0.1:9999\"",
                );
            }
        }
        self.within(
            &at.key("retry_after_secs"),
            callbacks.retry_after_secs,
            &limits::CALLBACK_RETRY_AFTER_SECS,
        );
        self.within(
            &at.key("max_attempts"),
            u64::from(callbacks.max_attempts),
            &limits::CALLBACK_MAX_ATTEMPTS,
        );
    }

    /// Reachability, dead ends, routes to a person and verification before self-service.
    fn call_flow(&mut self) {
        let config = self.config;
        let flow = CallFlow::new(config);

        let mut roots = vec![config.ivr.entry.as_str(), config.ivr.operator.as_str()];
        for queue in config.queues.values() {
            roots.extend(queue.when_closed.as_deref());
            roots.extend(queue.on_timeout.as_deref());
        }
        let reachable = flow.reachable_from(&roots, |_, _| true);
        for name in config.nodes.keys() {
            if !reachable.contains(name.as_str()) {
                self.error(
                    &node_path(name),
                    format!("no call can reach node `{name}`"),
                    "lead to it from a menu option or another node's next, or delete it",
                );
            }
        }

        let finishes =
            flow.can_reach(|node| reaches_person_itself(node) || matches!(node, Node::Hangup(_)));
        for name in config.nodes.keys() {
            if !finishes.contains(name.as_str()) {
                self.error(
                    &node_path(name),
                    format!("no path from node `{name}` reaches a person or a hang-up"),
                    "make its next, or a node after it, lead to a queue, transfer, voicemail, callback or hangup node",
                );
            }
        }

        let reaches_person = flow.can_reach(reaches_person_itself);
        let any_person = reachable
            .iter()
            .any(|name| config.nodes.get(*name).is_some_and(reaches_person_itself));
        if !any_person {
            self.warning(
                &path("ivr.operator"),
                "no call can reach a person: there is no reachable queue, transfer, voicemail or callback node",
                "point ivr.operator at a queue or transfer node so that 0 reaches someone",
            );
        } else {
            let operator_reaches_person = reaches_person.contains(config.ivr.operator.as_str());
            for (name, node) in &config.nodes {
                let Node::Menu(menu) = node else { continue };
                let by_option = menu
                    .options
                    .values()
                    .any(|target| reaches_person.contains(target.as_str()));
                let by_zero = !menu.options.contains_key("0") && operator_reaches_person;
                if !by_option && !by_zero {
                    self.warning(
                        &node_path(name),
                        format!("callers at menu `{name}` have no way to reach a person"),
                        "leave 0 free for the operator, or add an option that leads to a queue",
                    );
                }
            }
        }

        // Self-service acts on a patient's account: it must sit behind a successful verify.
        let unverified = flow.reachable_from(&roots, |node, key| {
            !(matches!(node, Node::Verify(_)) && key == "on_success")
        });
        for (name, node) in &config.nodes {
            if matches!(node, Node::PasswordReset(_)) && unverified.contains(name.as_str()) {
                self.error(
                    &node_path(name),
                    format!(
                        "callers can reach password reset `{name}` without verifying who they are"
                    ),
                    "reach this node only through a verify node's on_success",
                );
            }
        }
    }

    fn prompt_files(&mut self, dir: &Path) {
        let config = self.config;
        let mut languages: Vec<(&str, KeyPath)> = vec![(
            config.prompts.default_language.as_str(),
            path("prompts.default_language"),
        )];
        for (name, node) in &config.nodes {
            if let Node::Language(node) = node
                && !languages
                    .iter()
                    .any(|(language, _)| *language == node.language)
            {
                languages.push((&node.language, node_path(name).key("language")));
            }
        }
        if !is_language(&config.prompts.default_language) {
            self.error(
                &path("prompts.default_language"),
                format!(
                    "`{}` cannot name a prompt folder",
                    config.prompts.default_language
                ),
                "use a language code such as \"en\"",
            );
        }

        // Each prompt once, at the place it is first written; the engine's own prompts at the
        // directory setting. (prompt id, where, what to call it)
        let mut prompts: Vec<(&str, KeyPath, &str)> = Vec::new();
        for (name, node) in &config.nodes {
            for (key, list) in node.prompt_lists() {
                for (index, prompt) in list.iter().enumerate() {
                    let at = node_path(name).key(key).index(index);
                    prompts.push((prompt, at, "prompt"));
                }
            }
        }
        for (name, queue) in &config.queues {
            if let Some(prompt) = &queue.hold_prompt {
                let at = KeyPath::root().key("queues").key(name).key("hold_prompt");
                prompts.push((prompt, at, "hold prompt"));
            }
        }
        prompts.sort_by_cached_key(|(_, at, _)| self.locator.line_of(at).unwrap_or(usize::MAX));
        let mut seen = BTreeSet::new();
        prompts.retain(|(prompt, _, _)| is_name(prompt) && seen.insert(*prompt));
        for prompt in system_prompts() {
            if seen.insert(prompt) {
                prompts.push((prompt, path("prompts.dir"), "system prompt"));
            }
        }

        if !dir.is_dir() {
            self.error(
                &path("prompts.dir"),
                format!("the prompt directory {} does not exist", dir.display()),
                "create it with a folder per language holding <prompt id>.wav files, or fix [prompts] dir",
            );
            return;
        }
        // Recordings that exist, with the key that names them, to decode below.
        let mut present: Vec<(PathBuf, KeyPath)> = Vec::new();
        for (language, declared_at) in &languages {
            if !is_language(language) {
                continue;
            }
            let folder = dir.join(language);
            if !folder.is_dir() {
                self.error(
                    declared_at,
                    format!(
                        "there are no prompts for language `{language}`: {} does not exist",
                        folder.display()
                    ),
                    format!(
                        "record every prompt in this language as {}/<prompt id>.wav",
                        folder.display()
                    ),
                );
                continue;
            }
            for (prompt, at, what) in &prompts {
                let file = folder.join(format!("{prompt}.wav"));
                if file.is_file() {
                    present.push((file, at.clone()));
                } else {
                    self.error(
                        at,
                        format!("{what} `{prompt}` has no `{language}` recording: {} is missing", file.display()),
                        "add the WAV file (any sample rate, bit depth or channels), or fix the prompt id",
                    );
                }
            }
        }

        // Decode every recording with the loader `serve` uses, so that a file `check` accepts
        // is one `serve` can play (a truncated or oversized WAV is found here, not at start-up).
        let paths: Vec<&Path> = present.iter().map(|(file, _)| file.as_path()).collect();
        for ((_, at), result) in present.iter().zip(load_in_parallel(&paths)) {
            if let Err(error) = result {
                self.error(
                    at,
                    error.to_string(),
                    "`careline serve` refuses to start until the file is fixed",
                );
            }
        }
    }
}

/// A hint for an unknown name: the closest existing one, or how to define it.
fn suggest<'n>(
    wanted: &str,
    existing: impl Iterator<Item = &'n String>,
    what: &str,
    define: &str,
) -> String {
    let closest = existing
        .map(|name| (edit_distance(wanted, name), name))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    match closest {
        Some((_, name)) => {
            format!("did you mean `{name}`? Otherwise define the {what} with {define}")
        }
        None => format!("define the {what} with {define}, or name one that exists"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
