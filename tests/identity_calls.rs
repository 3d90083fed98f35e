//! Identity verification and password reset in whole calls: the hashed directory, the one-time
//! code read out and redeemed by the portal, lockout across calls, and the audit log.

mod common;

use careline::caller::CallReport;
use careline::identity::WebhookSecret;
use common::desk::{DOB, Desk, SECRET, ZIP, help_desk};

async fn call(desk: &Desk, digits: &str) -> CallReport {
    common::call_keying(&desk.server, digits, 40).await
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

/// Calls whose verification was decided, (passed, failed): in this node's metrics and in
/// the store's statistics, which must agree.
async fn verdicts(desk: &Desk) -> (u64, u64) {
    let counters = desk.server.state.node.metrics.counters();
    let now = jiff::Timestamp::now().as_millisecond();
    // The last hour by the hour: the calls of a test that runs over midnight still add up.
    let hour = careline::store::StatsInterval::Hour;
    let buckets = desk
        .server
        .state
        .node
        .store
        .call_outcome_stats(now - 3_600_000, now + 1, hour)
        .await
        .expect("statistics");
    let stats = careline::store::stats::total(&buckets);
    assert_eq!(
        (counters.verifications_passed, counters.verifications_failed),
        (stats.verification_passed, stats.verification_failed),
        "metrics and statistics count the same verdicts"
    );
    (stats.verification_passed, stats.verification_failed)
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
    assert_eq!(verdicts(&desk).await, (1, 0));
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
    // (Identifiers and codes in the audit log are checked without its timestamps in
    // tests/phi_redaction.rs.)
    assert!(
        !audit.contains("P000101"),
        "the audit log holds the patient reference"
    );
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
    assert_eq!(
        verdicts(&desk).await,
        (0, 1),
        "three failed attempts are one failed verification"
    );
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
    assert_eq!(
        verdicts(&desk).await,
        (1, 3),
        "two calls out of attempts, one locked out, one verified after the unlock"
    );
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

#[tokio::test]
async fn a_lockout_holds_across_nodes_sharing_redis_and_across_a_restart() {
    let redis = common::redis::start();
    let url = redis.url();
    let wrong = format!("w1,w{DOB}#,w99999#,w{DOB}#,w99999#,w{DOB}#,w99999#");
    // Two careline nodes on one Redis: three failures on each.
    let first = common::desk::help_desk_on(Some(&url)).await;
    let second = common::desk::help_desk_on(Some(&url)).await;
    let (one, two) = tokio::join!(call(&first, &wrong), call(&second, &wrong));
    assert!(!one.played_prompts().contains(&"verified".to_owned()));
    assert!(!two.played_prompts().contains(&"verified".to_owned()));
    first.server.shutdown.cancel();
    second.server.shutdown.cancel();
    drop((first, second));

    // careline restarts; the store remembers.
    let restarted = common::desk::help_desk_on(Some(&url)).await;
    let report = call(&restarted, &format!("w1,w{DOB}#,w{ZIP}#")).await;
    let played = report.played_prompts();
    assert!(
        !played.contains(&"verified".to_owned()),
        "locked: {played:?}"
    );
    assert!(played.contains(&"operator_hours".to_owned()));
    let audit = std::fs::read_to_string(&restarted.audit).expect("audit log");
    assert!(
        audit.contains("\"lockout\""),
        "the restarted node audits the lockout"
    );
}
