//! `careline check` on values that parse but cannot work: every duration and count has a
//! documented range, and a value outside it is an error at its key path and line — never a
//! panic in the first call that does arithmetic with it.

mod config_support;

use careline::config::Severity;
use config_support::{check_source, line_of};

/// Every duration and count key, each written out with an ordinary value, so a test can replace
/// one and see exactly one error.
const EVERY_LIMIT: &str = r#"
[server]
public_url = "https://ivr.example.org"
shutdown_grace_secs = 30
max_connections = 2048
header_timeout_secs = 10
idle_timeout_secs = 60
body_timeout_secs = 15

[prompts]
dir = 'PROMPTS'

[ivr]
entry = "main"
operator = "portal_queue"
first_digit_timeout_secs = 7
inter_digit_timeout_secs = 3
max_retries = 3

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "portal_queue", "2" = "account", "3" = "verify", "4" = "desk", "5" = "message" }

[nodes.account]
type = "collect"
prompt = ["main_menu"]
min_digits = 4
max_digits = 10
next = "goodbye"

[nodes.verify]
type = "verify"
identifiers = ["dob", "zip"]
on_success = "reset"
on_failure = "portal_queue"

[nodes.reset]
type = "password_reset"
method = "code"
next = "goodbye"

[nodes.desk]
type = "transfer"
number = "+13125550100"
timeout_secs = 30

[nodes.message]
type = "voicemail"
max_secs = 120

[nodes.portal_queue]
type = "queue"
queue = "portal"

[nodes.goodbye]
type = "hangup"

[queues.portal]
skills = ["portal"]
max_wait_secs = 900
announce_every_secs = 45
ring_timeout_secs = 20
wrap_up_secs = 30

[identity]
directory = { kind = "http", url = "https://portal.example.org/verify", timeout_ms = 2000 }
max_attempts = 3
lockout_failures = 5
lockout_window_hours = 24

[password_reset]
code_digits = 8
code_ttl_secs = 600

[callbacks]
caller_id = "+13125550100"
retry_after_secs = 900
max_attempts = 4
api_base = "http://127.0.0.1:9999"

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
dial = "+13125550101"
"#;

/// (key path, the line as written, whether the key is a u32)
const KEYS: &[(&str, &str, bool)] = &[
    (
        "server.shutdown_grace_secs",
        "shutdown_grace_secs = 30",
        false,
    ),
    ("server.max_connections", "max_connections = 2048", false),
    (
        "server.header_timeout_secs",
        "header_timeout_secs = 10",
        false,
    ),
    ("server.idle_timeout_secs", "idle_timeout_secs = 60", false),
    ("server.body_timeout_secs", "body_timeout_secs = 15", false),
    (
        "ivr.first_digit_timeout_secs",
        "first_digit_timeout_secs = 7",
        false,
    ),
    (
        "ivr.inter_digit_timeout_secs",
        "inter_digit_timeout_secs = 3",
        false,
    ),
    ("ivr.max_retries", "max_retries = 3", true),
    ("nodes.account.max_digits", "max_digits = 10", true),
    ("nodes.desk.timeout_secs", "timeout_secs = 30", false),
    ("nodes.message.max_secs", "max_secs = 120", false),
    ("queues.portal.max_wait_secs", "max_wait_secs = 900", false),
    (
        "queues.portal.announce_every_secs",
        "announce_every_secs = 45",
        false,
    ),
    (
        "queues.portal.ring_timeout_secs",
        "ring_timeout_secs = 20",
        false,
    ),
    ("queues.portal.wrap_up_secs", "wrap_up_secs = 30", false),
    ("identity.directory.timeout_ms", "timeout_ms = 2000", false),
    ("identity.max_attempts", "max_attempts = 3", true),
    ("identity.lockout_failures", "lockout_failures = 5", true),
    (
        "identity.lockout_window_hours",
        "lockout_window_hours = 24",
        false,
    ),
    ("password_reset.code_digits", "code_digits = 8", true),
    ("password_reset.code_ttl_secs", "code_ttl_secs = 600", false),
    (
        "callbacks.retry_after_secs",
        "retry_after_secs = 900",
        false,
    ),
    ("callbacks.max_attempts", "max_attempts = 4", true),
];

#[test]
fn the_configuration_with_every_limit_written_out_passes() {
    let (_dir, report) = check_source(EVERY_LIMIT);
    assert!(!report.has_errors(), "{report}");
}

#[test]
fn a_duration_or_count_too_large_for_the_clock_is_an_error_at_its_line() {
    for (key_path, written, is_u32) in KEYS {
        let (key, _) = written.split_once(" = ").expect("key = value");
        let huge = if *is_u32 {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        };
        let source = EVERY_LIMIT.replace(written, &format!("{key} = {huge}"));
        let (_dir, report) = check_source(&source);
        let errors: Vec<_> = report.errors().collect();
        assert_eq!(errors.len(), 1, "{key_path} = {huge}:\n{report}");
        let finding = errors[0];
        assert_eq!(finding.key_path, *key_path, "{finding}");
        assert_eq!(
            finding.line,
            Some(line_of(&source, &format!("{key} = {huge}"))),
            "{finding}"
        );
        assert!(
            finding.message.contains("outside the allowed range"),
            "{finding}"
        );
        assert!(finding.hint.starts_with("set it between"), "{finding}");
    }
}

#[test]
fn a_value_below_its_range_is_an_error_too() {
    let source = EVERY_LIMIT
        .replace("max_connections = 2048", "max_connections = 0")
        .replace("code_digits = 8", "code_digits = 4")
        .replace("announce_every_secs = 45", "announce_every_secs = 5");
    let (_dir, report) = check_source(&source);
    let paths: Vec<&str> = report.errors().map(|f| f.key_path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "server.max_connections",
            "queues.portal.announce_every_secs",
            "password_reset.code_digits"
        ],
        "{report}"
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.severity == Severity::Error),
        "{report}"
    );
}

#[test]
fn a_callback_caller_id_or_api_base_that_twilio_cannot_use_is_an_error() {
    let source = EVERY_LIMIT
        .replace(
            "caller_id = \"+13125550100\"",
            "caller_id = \"312-555-0100\"",
        )
        .replace(
            "api_base = \"http://127.0.0.1:9999\"",
            "api_base = \"127.0.0.1:9999\"",
        );
    let (_dir, report) = check_source(&source);
    let paths: Vec<&str> = report.errors().map(|f| f.key_path.as_str()).collect();
    assert_eq!(
        paths,
        ["callbacks.caller_id", "callbacks.api_base"],
        "{report}"
    );
}
