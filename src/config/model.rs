//! The admin's TOML as typed values: every section and node type DESIGN.md specifies.
//!
//! These types only describe shape; whether names resolve, prompts exist and every path ends at
//! a person or a hang-up is decided by [`super::check`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use crate::routing::schedule::{HoursRule, OverrideRule, ScheduleConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub prompts: PromptsConfig,
    pub ivr: IvrConfig,
    #[serde(default)]
    pub nodes: BTreeMap<String, Node>,
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduleConfig>,
    #[serde(default)]
    pub identity: Option<IdentityConfig>,
    #[serde(default)]
    pub password_reset: Option<PasswordResetConfig>,
    #[serde(default)]
    pub recordings: Option<RecordingsConfig>,
    #[serde(default)]
    pub callbacks: Option<CallbacksConfig>,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base for TwiML URLs and signature checks; `http` maps to `ws`, `https` to `wss`.
    pub public_url: String,
    /// How long shutdown waits for calls in progress before closing their streams.
    /// 0–3600 s, default 30 ([`super::limits::SHUTDOWN_GRACE_SECS`]).
    #[serde(default = "default_drain_secs")]
    pub shutdown_grace_secs: u64,
    /// Open HTTP connections (media streams included) this node holds at most; beyond it the
    /// longest-quiet connection is closed, or the newcomer gets 503.
    /// [`super::limits::MAX_CONNECTIONS`], default 2048.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// How long a client may take to send a request's headers once it began.
    /// [`super::limits::HEADER_TIMEOUT_SECS`], default 10.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// How long a connection with no request in progress is kept open.
    /// [`super::limits::IDLE_TIMEOUT_SECS`], default 60.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// How long a client may take to send a request's body once its headers arrived.
    /// [`super::limits::BODY_TIMEOUT_SECS`], default 15.
    #[serde(default = "default_body_timeout_secs")]
    pub body_timeout_secs: u64,
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_drain_secs() -> u64 {
    30
}

fn default_max_connections() -> u64 {
    2048
}

fn default_header_timeout_secs() -> u64 {
    10
}

fn default_idle_timeout_secs() -> u64 {
    60
}

fn default_body_timeout_secs() -> u64 {
    15
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Absent (and no `sentinels`): the embedded in-memory store (one node).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// `host:port` of each Redis Sentinel, instead of `url`.
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// The name the Sentinels monitor the master under.
    #[serde(default)]
    pub master_name: Option<String>,
    /// TLS to the Sentinels and to the master they name.
    #[serde(default)]
    pub sentinels_tls: bool,
    /// PEM file of a private CA for `rediss://` and TLS Sentinels; relative to the config file.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            key_prefix: default_key_prefix(),
            sentinels: Vec::new(),
            master_name: None,
            sentinels_tls: false,
            tls_ca: None,
        }
    }
}

fn default_key_prefix() -> String {
    "careline".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// `<dir>/<lang>/<id>.wav`; a relative path is relative to the configuration file's folder
    /// (see [`super::LoadedConfig::resolve`]).
    #[serde(default = "default_prompts_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_language")]
    pub default_language: String,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: default_prompts_dir(),
            default_language: default_language(),
        }
    }
}

fn default_prompts_dir() -> PathBuf {
    PathBuf::from("prompts")
}

fn default_language() -> String {
    "en".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// Twilio `dtmf` messages.
    #[default]
    Events,
    /// Tones detected in the inbound audio.
    Inband,
    /// Either; a key reported both ways counts once.
    Both,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrConfig {
    /// A node name (which may be a `schedule` node).
    pub entry: String,
    /// Silence allowed after a prompt has played before the re-prompt. 1–60 s, default 7
    /// ([`super::limits::FIRST_DIGIT_TIMEOUT_SECS`]); under 5 s draws a warning.
    #[serde(default = "default_first_digit_timeout")]
    pub first_digit_timeout_secs: u64,
    /// Gap allowed between two digits of one entry. 1–30 s, default 3
    /// ([`super::limits::INTER_DIGIT_TIMEOUT_SECS`]).
    #[serde(default = "default_inter_digit_timeout")]
    pub inter_digit_timeout_secs: u64,
    /// Failed tries (no input or invalid input) at one node before its `on_failure`. 0–10,
    /// default 3 ([`super::limits::MAX_RETRIES`]); 0 behaves as 1.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default = "default_repeat_key")]
    pub repeat_key: String,
    /// The node `0` reaches from any menu.
    pub operator: String,
    #[serde(default)]
    pub dtmf: DtmfMode,
}

fn default_first_digit_timeout() -> u64 {
    7
}

fn default_inter_digit_timeout() -> u64 {
    3
}

fn default_max_retries() -> u32 {
    3
}

fn default_repeat_key() -> String {
    "*".to_owned()
}

/// A step of the call flow. The `type` key selects the variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    /// Single-key choices; a key interrupts the prompt.
    Menu(MenuNode),
    /// Multi-digit entry ended by `#`, by `max_digits` or by the inter-digit timeout.
    Collect(CollectNode),
    /// Identity check: date of birth plus one more identifier.
    Verify(VerifyNode),
    PasswordReset(PasswordResetNode),
    Queue(QueueNode),
    /// Branch on whether a schedule is open now.
    Schedule(ScheduleNode),
    Hangup(HangupNode),
    Say(SayNode),
    /// Switch the prompt language for the rest of the call.
    Language(LanguageNode),
    /// Dial an external number, such as an outsourced 24x7 desk.
    Transfer(TransferNode),
    Voicemail(VoicemailNode),
    Callback(CallbackNode),
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Menu(_) => "menu",
            Node::Collect(_) => "collect",
            Node::Verify(_) => "verify",
            Node::PasswordReset(_) => "password_reset",
            Node::Queue(_) => "queue",
            Node::Schedule(_) => "schedule",
            Node::Hangup(_) => "hangup",
            Node::Say(_) => "say",
            Node::Language(_) => "language",
            Node::Transfer(_) => "transfer",
            Node::Voicemail(_) => "voicemail",
            Node::Callback(_) => "callback",
        }
    }

    /// Every prompt id this node plays, in order: a menu's `intro`, then its `prompt`.
    pub fn prompts(&self) -> impl Iterator<Item = &String> {
        self.prompt_lists().into_iter().flat_map(|(_, list)| list)
    }

    /// The node's lists of prompt ids with the key each is written under: `intro` (menus
    /// only; empty elsewhere) and `prompt`.
    pub fn prompt_lists(&self) -> [(&'static str, &[String]); 2] {
        let intro: &[String] = match self {
            Node::Menu(node) => &node.intro,
            _ => &[],
        };
        [("intro", intro), ("prompt", self.main_prompt())]
    }

    /// The `prompt` list: a menu's choices, or what any other node says.
    fn main_prompt(&self) -> &[String] {
        match self {
            Node::Menu(node) => &node.prompt,
            Node::Collect(node) => &node.prompt,
            Node::Hangup(node) => &node.prompt,
            Node::Say(node) => &node.prompt,
            Node::Transfer(node) => &node.prompt,
            Node::Voicemail(node) => &node.prompt,
            Node::Callback(node) => &node.prompt,
            Node::Verify(_)
            | Node::PasswordReset(_)
            | Node::Queue(_)
            | Node::Schedule(_)
            | Node::Language(_) => &[],
        }
    }

    /// Every node this one can lead to, with the key that names it (for error messages).
    pub fn successors(&self) -> Vec<(String, &str)> {
        let mut out: Vec<(String, &str)> = Vec::new();
        fn push<'n>(out: &mut Vec<(String, &'n str)>, key: &str, target: &'n Option<String>) {
            if let Some(target) = target {
                out.push((key.to_owned(), target.as_str()));
            }
        }
        match self {
            Node::Menu(node) => {
                for (digit, target) in &node.options {
                    out.push((format!("options.\"{digit}\""), target.as_str()));
                }
                push(&mut out, "on_failure", &node.on_failure);
            }
            Node::Collect(node) => {
                out.push(("next".to_owned(), node.next.as_str()));
                push(&mut out, "on_failure", &node.on_failure);
            }
            Node::Verify(node) => {
                out.push(("on_success".to_owned(), node.on_success.as_str()));
                out.push(("on_failure".to_owned(), node.on_failure.as_str()));
            }
            Node::PasswordReset(node) => {
                out.push(("next".to_owned(), node.next.as_str()));
                push(&mut out, "on_failure", &node.on_failure);
            }
            Node::Queue(_) => {}
            Node::Schedule(node) => {
                out.push(("open".to_owned(), node.open.as_str()));
                out.push(("closed".to_owned(), node.closed.as_str()));
            }
            Node::Hangup(_) => {}
            Node::Say(node) => out.push(("next".to_owned(), node.next.as_str())),
            Node::Language(node) => out.push(("next".to_owned(), node.next.as_str())),
            Node::Transfer(node) => push(&mut out, "on_failure", &node.on_failure),
            Node::Voicemail(node) => push(&mut out, "next", &node.next),
            Node::Callback(node) => out.push(("next".to_owned(), node.next.as_str())),
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuNode {
    /// Played on entry only, before `prompt`: a welcome, an emergency notice. Not repeated
    /// after a wrong key or silence, nor by the repeat key.
    #[serde(default)]
    pub intro: Vec<String>,
    /// The choices: played on entry (after `intro`), after each apology and on the repeat key.
    /// A key interrupts them.
    pub prompt: Vec<String>,
    /// Key (`0-9`, `*`, `#`) → node.
    pub options: BTreeMap<String, String>,
    /// Default: the operator node.
    #[serde(default)]
    pub on_failure: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectNode {
    pub prompt: Vec<String>,
    /// Fewest digits that make an entry. 0–32, default 1, at most `max_digits`
    /// ([`super::limits::COLLECT_MIN_DIGITS`]).
    #[serde(default = "default_min_digits")]
    pub min_digits: u32,
    /// The entry ends by itself at this many digits. 1–32
    /// ([`super::limits::COLLECT_MAX_DIGITS`]).
    pub max_digits: u32,
    /// Never logged. Default true: what a caller keys in is presumed to be PHI.
    #[serde(default = "default_true")]
    pub sensitive: bool,
    pub next: String,
    #[serde(default)]
    pub on_failure: Option<String>,
}

fn default_min_digits() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Identifier {
    /// Date of birth, MMDDYYYY.
    Dob,
    /// Medical record number.
    Mrn,
    /// 5-digit ZIP code.
    Zip,
    /// Last four of the social security number.
    Ssn4,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyNode {
    pub identifiers: Vec<Identifier>,
    pub on_success: String,
    pub on_failure: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetMethod {
    /// A signed POST to the portal, which sends a reset link to the contact on file.
    Portal,
    /// A one-time code careline speaks and the portal redeems.
    Code,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetNode {
    pub method: ResetMethod,
    pub next: String,
    #[serde(default)]
    pub on_failure: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueNode {
    pub queue: String,
    #[serde(default)]
    pub priority: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleNode {
    pub schedule: String,
    pub open: String,
    pub closed: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangupNode {
    #[serde(default)]
    pub prompt: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SayNode {
    pub prompt: Vec<String>,
    pub next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageNode {
    pub language: String,
    pub next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferNode {
    #[serde(default)]
    pub prompt: Vec<String>,
    /// E.164 number to dial.
    pub number: String,
    /// How long the far end rings. 5–600 s, default 30
    /// ([`super::limits::TRANSFER_TIMEOUT_SECS`]).
    #[serde(default = "default_transfer_timeout")]
    pub timeout_secs: u64,
    /// Where the call goes if the far end does not answer; default: hang up.
    #[serde(default)]
    pub on_failure: Option<String>,
}

fn default_transfer_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailNode {
    #[serde(default)]
    pub prompt: Vec<String>,
    /// Longest message. 1–600 s, default 120 ([`super::limits::VOICEMAIL_MAX_SECS`]).
    #[serde(default = "default_voicemail_secs")]
    pub max_secs: u64,
    /// Default: hang up after the message.
    #[serde(default)]
    pub next: Option<String>,
}

fn default_voicemail_secs() -> u64 {
    120
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackNode {
    #[serde(default)]
    pub prompt: Vec<String>,
    pub next: String,
    /// The queue whose agents return the call; default: the operator's queue.
    #[serde(default)]
    pub queue: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    LongestIdle,
    RoundRobin,
    FewestCalls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub when_closed: Option<String>,
    /// Longest wait before `on_timeout`. 1–14400 s, default 900
    /// ([`super::limits::QUEUE_MAX_WAIT_SECS`]).
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: u64,
    #[serde(default)]
    pub on_timeout: Option<String>,
    #[serde(default)]
    pub hold_prompt: Option<String>,
    /// Place and estimated wait are announced this often. 10–3600 s, default 45
    /// ([`super::limits::QUEUE_ANNOUNCE_EVERY_SECS`]).
    #[serde(default = "default_announce_every")]
    pub announce_every_secs: u64,
    /// How long an agent's phone rings before the call goes back to the front of the queue.
    /// 1–600 s, default 20 ([`super::limits::QUEUE_RING_TIMEOUT_SECS`]).
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// After a call the agent is left alone this long. 0–3600 s, default 30
    /// ([`super::limits::QUEUE_WRAP_UP_SECS`]).
    #[serde(default = "default_wrap_up")]
    pub wrap_up_secs: u64,
}

fn default_max_wait() -> u64 {
    900
}

fn default_announce_every() -> u64 {
    45
}

fn default_ring_timeout() -> u64 {
    20
}

fn default_wrap_up() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub directory: DirectoryConfig,
    /// Append-only JSON lines; relative to the configuration file's folder.
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
    /// Failed directory checks per verify node in one call. 1–10, default 3
    /// ([`super::limits::IDENTITY_MAX_ATTEMPTS`]).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Failures for one patient record within the window that lock self-service. 1–100,
    /// default 5 ([`super::limits::IDENTITY_LOCKOUT_FAILURES`]).
    #[serde(default = "default_lockout_failures")]
    pub lockout_failures: u32,
    /// 1–8760 h, default 24 ([`super::limits::IDENTITY_LOCKOUT_WINDOW_HOURS`]).
    #[serde(default = "default_lockout_window")]
    pub lockout_window_hours: u64,
}

fn default_audit_log() -> PathBuf {
    PathBuf::from("var/audit.jsonl")
}

fn default_max_attempts() -> u32 {
    3
}

fn default_lockout_failures() -> u32 {
    5
}

fn default_lockout_window() -> u64 {
    24
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DirectoryConfig {
    File {
        /// Made by `careline directory import`; relative to the configuration file's folder.
        path: PathBuf,
    },
    Http {
        url: String,
        /// 100–30000 ms, default 2000 ([`super::limits::VERIFIER_TIMEOUT_MS`]).
        #[serde(default = "default_verifier_timeout")]
        timeout_ms: u64,
    },
}

fn default_verifier_timeout() -> u64 {
    2000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfig {
    #[serde(default)]
    pub portal_url: Option<String>,
    /// Length of a one-time code. 6–8, default 8 ([`super::limits::RESET_CODE_DIGITS`]).
    #[serde(default = "default_code_digits")]
    pub code_digits: u32,
    /// How long a one-time code can be redeemed. 60–3600 s, default 600
    /// ([`super::limits::RESET_CODE_TTL_SECS`]).
    #[serde(default = "default_code_ttl")]
    pub code_ttl_secs: u64,
}

fn default_code_digits() -> u32 {
    8
}

fn default_code_ttl() -> u64 {
    600
}

/// `[callbacks]`: careline places the callback calls itself through Twilio's REST API. The
/// account's credentials come from the environment (`TWILIO_ACCOUNT_SID` with
/// `CARELINE_TWILIO_AUTH_TOKEN`, or an API key pair), never from here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    /// The desk's number, E.164: what the patient's phone shows.
    pub caller_id: String,
    /// After an attempt that did not reach the patient (or an agent), the next try waits this
    /// long. 1–86400 s, default 900 ([`super::limits::CALLBACK_RETRY_AFTER_SECS`]).
    #[serde(default = "default_callback_retry_after")]
    pub retry_after_secs: u64,
    /// Tries of the patient before the request is marked failed. 1–10, default 3
    /// ([`super::limits::CALLBACK_MAX_ATTEMPTS`]).
    #[serde(default = "default_callback_max_attempts")]
    pub max_attempts: u32,
    /// Twilio's REST API; tests point it at a local fake. Default `https://api.twilio.com`.
    #[serde(default)]
    pub api_base: Option<String>,
    /// Leave the short `callback_machine` message when an answering machine picks up.
    #[serde(default)]
    pub machine_message: bool,
}

/// Where Twilio's REST API is, unless `[callbacks] api_base` says otherwise.
pub const TWILIO_API_BASE: &str = "https://api.twilio.com";

impl CallbacksConfig {
    pub fn api_base(&self) -> &str {
        self.api_base
            .as_deref()
            .unwrap_or(TWILIO_API_BASE)
            .trim_end_matches('/')
    }
}

fn default_callback_retry_after() -> u64 {
    900
}

fn default_callback_max_attempts() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Where voicemails are written; relative to the configuration file's folder.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub skills: Vec<String>,
    /// A schedule: the agent is on shift while it is open.
    #[serde(default)]
    pub shift: Option<String>,
    /// Exactly one of `dial`, `client`, `sip`.
    #[serde(default)]
    pub dial: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub sip: Option<String>,
}
