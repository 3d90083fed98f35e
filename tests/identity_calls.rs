//! Identity verification and password reset in whole calls: the hashed directory, the one-time
//! code read out and redeemed by the portal, lockout across calls, and the audit log.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use careline::caller::{CallOptions, CallReport, place_call};
use careline::identity::{IdentityService, ImportOptions, Pepper, WebhookSecret, import_file};
use common::TestServer;
use tempfile::TempDir;

const PEPPER: &str = "test-pepper-0123456789abcdef0123456789";
const SECRET: &str = "test-webhook-secret-0123456789abcdef";

/// Patient P000101 in config/patients.example.csv: born 1948-03-12, ZIP 60601.
const DOB: &str = "03121948";
const ZIP: &str = "60601";

const FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"

[prompts]
dir = "PROMPTS"

[ivr]
entry = "main"
operator = "operator"
first_digit_timeout_secs = 2
inter_digit_timeout_secs = 1

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "verify" }

[nodes.verify]
type = "verify"
identifiers = ["dob", "zip"]
on_success = "reset"
on_failure = "operator"

[nodes.reset]
type = "password_reset"
method = "code"
next = "goodbye"
on_failure = "operator"

[nodes.operator]
type = "say"
prompt = ["operator_hours"]
next = "goodbye"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]

[identity]
directory = { kind = "file", path = "DIRECTORY" }
audit_log = "AUDIT"
max_attempts = 3
lockout_failures = 5

[password_reset]
code_digits = 6
"#;

struct Desk {
    server: TestServer,
    audit: PathBuf,
    _dir: TempDir,
}

async fn help_desk() -> Desk {
    let dir = TempDir::new().expect("tempdir");
    let directory = dir.path().join("directory.jsonl");
    let audit = dir.path().join("audit.jsonl");
    let pepper = Pepper::new(PEPPER).expect("pepper");
    import_file(
        Path::new("config/patients.example.csv"),
        &directory,
        &pepper,
        &ImportOptions {
            today: jiff::civil::date(2026, 11, 25),
            skip_invalid: false,
        },
    )
    .expect("import the example patients");
    let flow = FLOW
        .replace("DIRECTORY", &directory.display().to_string())
        .replace("AUDIT", &audit.display().to_string());
    let server = TestServer::start_configured(
        &flow,
        &["en"],
        &["main_menu", "operator_hours", "goodbye"],
        |loaded, state| {
            let identity = IdentityService::open(
                &loaded.config,
                |path| path.to_path_buf(),
                Arc::new(Pepper::new(PEPPER).expect("pepper")),
                Some(WebhookSecret::new(SECRET).expect("secret")),
                state.store.clone(),
            )
            .expect("identity opens")
            .expect("identity configured");
            state.identity = Some(Arc::new(identity));
            state.webhook_secret = Some(Arc::new(WebhookSecret::new(SECRET).expect("secret")));
        },
    )
    .await;
    Desk {
        server,
        audit,
        _dir: dir,
    }
}

async fn call(desk: &Desk, digits: &str) -> CallReport {
    let report = place_call(
        CallOptions::new(&desk.server.base_url)
            .digits(digits.parse().expect("script"))
            .max_duration(Duration::from_secs(40)),
    )
    .await
    .expect("call completes");
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    report
}

/// The code the caller heard, from the digit prompts between intro and repeat.
fn code_heard(report: &CallReport) -> String {
    let played = report.played_prompts();
    let start = played
        .iter()
        .position(|prompt| prompt == "reset_code_intro")
        .expect("the code was introduced");
    played[start + 1..]
        .iter()
        .take_while(|prompt| prompt.starts_with("digit_"))
        .map(|prompt| prompt.trim_start_matches("digit_"))
        .collect()
}

async fn redeem(desk: &Desk, patient_ref: &str, code: &str) -> serde_json::Value {
    let body = serde_json::json!({ "patient_ref": patient_ref, "code": code }).to_string();
    let signature = WebhookSecret::new(SECRET)
        .expect("secret")
        .sign(body.as_bytes());
    reqwest::Client::new()
        .post(format!(
            "{}/api/v1/reset-codes/verify",
            desk.server.base_url
        ))
        .header("content-type", "application/json")
        .header("x-careline-signature", signature)
        .body(body)
        .send()
        .await
        .expect("redeem request")
        .text()
        .await
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .expect("json answer")
}

#[tokio::test]
async fn a_verified_caller_hears_a_one_time_code_the_portal_can_redeem_once() {
    let desk = help_desk().await;
    let report = call(&desk, &format!("w1,w{DOB}#,w{ZIP}#")).await;
    let played = report.played_prompts();
    assert!(played.contains(&"verified".to_owned()), "{played:?}");
    let code = code_heard(&report);
    assert_eq!(code.len(), 6, "a six-digit code was read digit by digit");

    assert_eq!(
        redeem(&desk, "P000102", &code).await["valid"],
        false,
        "not another patient's"
    );
    assert_eq!(redeem(&desk, "P000101", &code).await["valid"], true);
    assert_eq!(
        redeem(&desk, "P000101", &code).await["valid"],
        false,
        "single use"
    );

    let audit = std::fs::read_to_string(&desk.audit).expect("audit log written");
    for event in ["verify_success", "reset_code_issued", "reset_code_redeemed"] {
        assert!(audit.contains(event), "{event} audited:\n{audit}");
    }
    for secret in [DOB, ZIP, code.as_str(), "P000101"] {
        assert!(!audit.contains(secret), "the audit log holds {secret}");
    }
}

#[tokio::test]
async fn three_wrong_answers_send_the_caller_to_a_person() {
    let desk = help_desk().await;
    let wrong = format!("w1,w{DOB}#,w99999#,w{DOB}#,w99999#,w{DOB}#,w99999#");
    let report = call(&desk, &wrong).await;
    let played = report.played_prompts();
    assert_eq!(
        played
            .iter()
            .filter(|prompt| *prompt == "verify_failed")
            .count(),
        3,
        "{played:?}"
    );
    assert!(!played.contains(&"verified".to_owned()));
    assert_eq!(played[played.len() - 2..], ["operator_hours", "goodbye"]);
}

#[tokio::test]
async fn five_failures_across_calls_lock_the_record_until_an_agent_unlocks_it() {
    let desk = help_desk().await;
    let wrong = format!("w1,w{DOB}#,w99999#,w{DOB}#,w99999#,w{DOB}#,w99999#");
    call(&desk, &wrong).await;
    call(&desk, &wrong).await;
    // The right answers no longer help: the record is locked.
    let report = call(&desk, &format!("w1,w{DOB}#,w{ZIP}#")).await;
    let played = report.played_prompts();
    assert!(!played.contains(&"verified".to_owned()), "{played:?}");
    assert!(played.contains(&"operator_hours".to_owned()));

    let unlocked = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/patients/P000101/unlock",
            desk.server.base_url
        ))
        .send()
        .await
        .expect("unlock request");
    assert_eq!(unlocked.status(), 200);
    let report = call(&desk, &format!("w1,w{DOB}#,w{ZIP}#")).await;
    assert!(report.played_prompts().contains(&"verified".to_owned()));
    let audit = std::fs::read_to_string(&desk.audit).expect("audit log");
    assert!(audit.contains("\"lockout\""), "lockout audited");
}

#[tokio::test]
async fn an_unsigned_redemption_is_refused() {
    let desk = help_desk().await;
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/reset-codes/verify",
            desk.server.base_url
        ))
        .body(r#"{"patient_ref":"P000101","code":"123456"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 403);
}
