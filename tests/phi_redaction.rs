//! Keyed digits are protected health information: whole calls that enter them — a collect, a
//! full identity verification and a one-time reset code — run with every log at `trace`, must
//! leave no trace of them in the logs or the audit log.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use careline::caller::{CallOptions, place_call};
use careline::server::logging::phi_safe;
use common::TestServer;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every test in this file logs into one capture at `trace`.
fn capture() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            tracing_subscriber::fmt()
                .with_env_filter(phi_safe(EnvFilter::new("trace")))
                .with_writer(captured.clone())
                .with_ansi(false)
                // Microsecond timestamps would contain any short digit string by chance.
                .without_time()
                .init();
            captured
        })
        .clone()
}

fn logs(captured: &Captured) -> String {
    String::from_utf8_lossy(&captured.0.lock().expect("logs").clone()).into_owned()
}

/// `text` without what may hold any digit string by chance: Twilio SIDs and other long hex
/// values (call ids, pseudonyms) and TCP port numbers.
fn without_random_numbers(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut token = String::new();
    let mut after_colon = false;
    let flush = |token: &mut String, kept: &mut String, after_colon: bool| {
        let long_hex = token.len() >= 16 && token.bytes().all(|byte| byte.is_ascii_hexdigit());
        let sid = token.len() == 34
            && ["CA", "MZ", "AC"]
                .iter()
                .any(|prefix| token.starts_with(prefix));
        let port = after_colon && token.len() == 5 && token.bytes().all(|b| b.is_ascii_digit());
        if !(long_hex || sid || port) {
            kept.push_str(token);
        }
        token.clear();
    };
    for character in text.chars() {
        if character.is_ascii_alphanumeric() {
            token.push(character);
        } else {
            flush(&mut token, &mut kept, after_colon);
            after_colon = character == ':';
            kept.push(character);
        }
    }
    flush(&mut token, &mut kept, after_colon);
    kept
}

/// Neither the value nor a keypad frame carrying it (as text or a hex dump) is in `logs`.
fn assert_absent(logs: &str, secret: &str) {
    assert!(
        !without_random_numbers(logs).contains(secret),
        "{secret} leaked into the logs"
    );
    assert!(!logs.contains("\"digit\""), "a dtmf frame reached the logs");
    assert!(
        !logs.contains("6469676974"),
        "a hex dump of a dtmf frame reached the logs"
    );
}

#[tokio::test]
async fn a_full_verification_and_reset_code_leave_no_identifier_in_logs_or_audit() {
    let captured = capture();
    let desk = common::desk::help_desk().await;
    let report = place_call(
        CallOptions::new(&desk.server.base_url)
            .digits(
                format!("w1,w{},w{}#", common::desk::DOB, common::desk::ZIP)
                    .parse()
                    .expect("script"),
            )
            .max_duration(Duration::from_secs(40)),
    )
    .await
    .expect("call completes");
    let played = report.played_prompts();
    assert!(played.contains(&"verified".to_owned()), "{played:?}");
    let code: String = played
        .iter()
        .skip_while(|prompt| *prompt != "reset_code_intro")
        .skip(1)
        .take_while(|prompt| prompt.starts_with("digit_"))
        .map(|prompt| prompt.trim_start_matches("digit_"))
        .collect();
    assert_eq!(code.len(), 6, "the code was read out: {played:?}");

    let logs = logs(&captured);
    assert!(
        logs.contains("call entered node"),
        "engine traces are in the capture"
    );
    let audit = std::fs::read_to_string(&desk.audit).expect("audit log");
    // Each audit line without its time (which may hold any digits) and its hex ids.
    let audit_fields: String = audit
        .lines()
        .map(|line| {
            let mut entry: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            if let Some(fields) = entry.as_object_mut() {
                fields.remove("time");
            }
            without_random_numbers(&entry.to_string())
        })
        .collect();
    assert!(audit_fields.contains("verify_success"), "{audit}");
    for secret in [common::desk::DOB, common::desk::ZIP, code.as_str()] {
        assert_absent(&logs, secret);
        assert!(
            !audit_fields.contains(secret),
            "{secret} is in the audit log"
        );
    }
    assert!(
        !audit.contains("P000101"),
        "the patient reference is in the audit log"
    );
}

#[tokio::test]
async fn digits_keyed_into_a_collect_never_reach_a_log_even_at_trace() {
    let captured = capture();

    let server = TestServer::start().await;
    let entry = "90817263";
    let report = place_call(
        CallOptions::new(&server.base_url)
            .digits(format!("w1,w{entry}").parse().expect("script"))
            .max_duration(Duration::from_secs(30)),
    )
    .await
    .expect("call completes");
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("goodbye"),
        "the entry was accepted and the call ended normally"
    );

    let logs = logs(&captured);
    assert!(
        logs.len() > 1000,
        "trace logging captured the call ({} bytes)",
        logs.len()
    );
    assert!(
        logs.contains("call entered node"),
        "engine traces are in the capture"
    );
    assert!(
        !logs.contains(entry),
        "the keyed entry leaked into the logs"
    );
    // Nor any keypad frame, as text or as a hex dump of the WebSocket frame ("digit" in hex).
    assert!(!logs.contains("\"digit\""), "a dtmf frame reached the logs");
    assert!(
        !logs.contains("6469676974"),
        "a hex dump of a dtmf frame reached the logs"
    );
}

const CALLBACK_FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"

[prompts]
dir = "PROMPTS"
default_language = "en"

[recordings]
dir = "RECORDINGS"

[ivr]
entry = "main"
operator = "desk"
first_digit_timeout_secs = 2
inter_digit_timeout_secs = 1

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "desk" }

[nodes.desk]
type = "queue"
queue = "portal"

[nodes.closed]
type = "hangup"
prompt = ["goodbye"]

[queues.portal]
skills = ["portal"]
when_closed = "closed"

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
client = "anguyen"
"#;

#[tokio::test]
async fn a_callback_number_keyed_in_a_queue_never_reaches_a_log_even_at_trace() {
    let captured = capture();
    let server =
        TestServer::start_with(CALLBACK_FLOW, &["en"], &["main_menu", "goodbye"], None).await;
    let caller_id = "3125550188";
    let keyed = "7735550123";
    let report = place_call(
        CallOptions::new(&server.base_url)
            .from(format!("+1{caller_id}"))
            .digits(
                format!("1,p1,1,p1,2,p0.5,{keyed}#,p1,1")
                    .parse()
                    .expect("script"),
            )
            .max_duration(Duration::from_secs(30)),
    )
    .await
    .expect("call completes");
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("callback_scheduled"),
        "{:?}",
        report.played_prompts()
    );
    let stored = server
        .state
        .node
        .store
        .callbacks()
        .await
        .expect("store answers");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].number, keyed, "the agent gets the number");
    let logs = logs(&captured);
    assert!(
        logs.contains("call entered node"),
        "engine traces are in the capture"
    );
    assert_absent(&logs, keyed);
    assert_absent(&logs, caller_id);
}
