//! The HTTP verifier and the portal reset against a real portal stand-in on loopback: what
//! careline sends (signed, the agreed JSON) and what every kind of answer, or non-answer,
//! turns into. A portal that cannot answer never makes a caller verified.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use careline::config::Identifier;
use careline::identity::{
    Claim, Directory, DirectoryError, HttpVerifier, PatientRef, Pepper, PortalReset, ResetError,
    SIGNATURE_HEADER, Verification, WebhookSecret,
};
use jiff::civil::date;

const SECRET: &str = "webhook-secret-for-the-tests";
const CALL: &str = "CA0123456789abcdef0123456789abcdef";
/// Long enough for a loopback answer on a loaded CI machine, short next to `/slow`.
const TIMEOUT: Duration = Duration::from_millis(500);

fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).expect("long enough")
}

fn pepper() -> Arc<Pepper> {
    Arc::new(Pepper::new("0123456789abcdef0123456789abcdef").expect("long enough"))
}

/// What the stand-in portal received: each body and whether its signature verified.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(serde_json::Value, bool)>>>);

impl Received {
    fn note(&self, headers: &HeaderMap, body: &Bytes) -> bool {
        let signed = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|header| secret().verify(body, header));
        let json = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        self.0.lock().expect("not poisoned").push((json, signed));
        signed
    }

    fn all(&self) -> Vec<(serde_json::Value, bool)> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// P000123 is born 1970-01-31 and lives at ZIP 60601; anyone else claiming that birthday is
/// told no, with the record they were claiming.
async fn verify(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> Response {
    if !received.note(&headers, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = match (request["dob"].as_str(), request["zip"].as_str()) {
        (Some("1970-01-31"), Some("60601")) => {
            serde_json::json!({"verified": true, "patient_ref": "P000123"})
        }
        (Some("1970-01-31"), _) => serde_json::json!({"verified": false, "claimed_ref": "P000123"}),
        _ => serde_json::json!({"verified": false}),
    };
    axum::Json(answer).into_response()
}

async fn reset(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if received.note(&headers, &body) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn slow(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
    received.note(&headers, &body);
    tokio::time::sleep(Duration::from_secs(30)).await;
    "{\"verified\":true,\"patient_ref\":\"P000123\"}"
}

async fn portal() -> (SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/verify", post(verify))
        .route("/reset", post(reset))
        .route("/slow", post(slow))
        .route(
            "/error",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "{\"verified\":true}") }),
        )
        .route("/garbage", post(|| async { "<html>maintenance</html>" }))
        .route(
            "/verified-without-ref",
            post(|| async { "{\"verified\":true}" }),
        )
        .route(
            "/bad-ref",
            post(|| async { "{\"verified\":true,\"patient_ref\":\"P 1; DROP\"}" }),
        )
        .route(
            "/huge",
            post(|| async {
                format!("{{\"verified\":false,\"pad\":\"{}\"}}", "x".repeat(100_000))
            }),
        )
        .route("/moved", post(|| async { Redirect::temporary("/verify") }))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the stand-in portal runs");
    });
    (addr, received)
}

fn verifier(addr: SocketAddr, path: &str) -> HttpVerifier {
    HttpVerifier::new(&format!("http://{addr}{path}"), secret(), TIMEOUT, pepper())
        .expect("a loopback URL")
}

fn claim(dob: &str, zip: &str) -> Claim {
    Claim::from_keyed(Identifier::Zip, dob, zip, date(2026, 6, 1)).expect("well-formed claim")
}

fn assert_cannot_tell(result: Result<Verification, DirectoryError>) -> String {
    match result {
        Err(DirectoryError::Unavailable { reason }) => {
            for digits in ["1970", "0131", "60601"] {
                assert!(!reason.contains(digits), "identifier in `{reason}`");
            }
            reason
        }
        Ok(verification) => panic!("expected `cannot tell`, got {verification:?}"),
    }
}

#[tokio::test]
async fn matching_identifiers_verify_with_the_portals_patient_ref() {
    let (addr, _) = portal().await;
    let verification = verifier(addr, "/verify")
        .verify(CALL, &claim("01311970", "60601"))
        .await
        .expect("the portal answers");
    assert_eq!(
        verification,
        Verification::Match {
            patient_ref: PatientRef::new("P000123").expect("valid"),
            record: pepper().pseudonym("P000123"),
        }
    );
}

#[tokio::test]
async fn the_request_is_signed_json_with_the_claim_and_the_call() {
    let (addr, received) = portal().await;
    verifier(addr, "/verify")
        .verify(CALL, &claim("01311970", "60601"))
        .await
        .expect("the portal answers");
    let sent = received.all();
    assert_eq!(sent.len(), 1);
    let (body, signed) = &sent[0];
    assert!(
        signed,
        "the signature header verifies with the shared secret"
    );
    assert_eq!(
        body,
        &serde_json::json!({"call_sid": CALL, "dob": "1970-01-31", "zip": "60601"})
    );
}

#[tokio::test]
async fn the_second_identifier_is_sent_as_keyed_under_its_own_name() {
    let (addr, received) = portal().await;
    let claim = Claim::from_keyed(Identifier::Mrn, "01311970", "000123", date(2026, 6, 1))
        .expect("well-formed");
    let _ = verifier(addr, "/verify").verify(CALL, &claim).await;
    let (body, _) = &received.all()[0];
    assert_eq!(body["mrn"], "000123");
    assert!(body.get("zip").is_none() && body.get("ssn4").is_none());
}

#[tokio::test]
async fn a_mismatch_names_the_record_the_portal_says_was_claimed() {
    let (addr, _) = portal().await;
    let verifier = verifier(addr, "/verify");
    assert_eq!(
        verifier.verify(CALL, &claim("01311970", "60602")).await,
        Ok(Verification::NoMatch {
            claimed_records: vec![pepper().pseudonym("P000123")]
        })
    );
    assert_eq!(
        verifier.verify(CALL, &claim("02011970", "60601")).await,
        Ok(Verification::NoMatch {
            claimed_records: vec![]
        })
    );
}

#[tokio::test]
async fn a_server_error_is_never_verified() {
    let (addr, _) = portal().await;
    let reason = assert_cannot_tell(
        verifier(addr, "/error")
            .verify(CALL, &claim("01311970", "60601"))
            .await,
    );
    assert!(reason.contains("500"), "{reason}");
}

#[tokio::test]
async fn a_garbage_answer_is_never_verified() {
    let (addr, _) = portal().await;
    for path in [
        "/garbage",
        "/verified-without-ref",
        "/bad-ref",
        "/huge",
        "/moved",
    ] {
        assert_cannot_tell(
            verifier(addr, path)
                .verify(CALL, &claim("01311970", "60601"))
                .await,
        );
    }
}

#[tokio::test]
async fn a_portal_that_does_not_answer_in_time_is_never_verified() {
    let (addr, received) = portal().await;
    let reason = assert_cannot_tell(
        verifier(addr, "/slow")
            .verify(CALL, &claim("01311970", "60601"))
            .await,
    );
    assert!(reason.contains("no answer within"), "{reason}");
    assert_eq!(received.all().len(), 1, "the request did reach the portal");
}

#[tokio::test]
async fn a_portal_that_is_down_is_never_verified() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("bound address")
    };
    let reason = assert_cannot_tell(
        verifier(closed, "/verify")
            .verify(CALL, &claim("01311970", "60601"))
            .await,
    );
    assert!(reason.contains("cannot connect"), "{reason}");
}

#[tokio::test]
async fn a_request_signed_with_another_secret_is_refused_by_the_portal() {
    let (addr, received) = portal().await;
    let wrong = WebhookSecret::new("not-the-shared-secret-at-all").expect("long enough");
    let verifier = HttpVerifier::new(&format!("http://{addr}/verify"), wrong, TIMEOUT, pepper())
        .expect("a loopback URL");
    let reason = assert_cannot_tell(verifier.verify(CALL, &claim("01311970", "60601")).await);
    assert!(reason.contains("401"), "{reason}");
    assert!(!received.all()[0].1);
}

fn requested_at() -> jiff::Timestamp {
    "2026-06-01T14:03:07Z".parse().expect("valid timestamp")
}

#[tokio::test]
async fn a_portal_reset_posts_the_record_call_and_time_signed() {
    let (addr, received) = portal().await;
    let reset = PortalReset::new(&format!("http://{addr}/reset"), secret(), TIMEOUT)
        .expect("a loopback URL");
    let patient_ref = PatientRef::new("P000123").expect("valid");
    reset
        .request(&patient_ref, CALL, requested_at())
        .await
        .expect("the portal accepts");
    let sent = received.all();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].1,
        "the signature header verifies with the shared secret"
    );
    assert_eq!(
        sent[0].0,
        serde_json::json!({
            "patient_ref": "P000123",
            "call_sid": CALL,
            "requested_at": "2026-06-01T14:03:07Z"
        })
    );
}

#[tokio::test]
async fn a_portal_reset_that_fails_sends_the_caller_to_a_person() {
    let (addr, _) = portal().await;
    let patient_ref = PatientRef::new("P000123").expect("valid");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("bound address")
    };
    for url in [
        format!("http://{addr}/error"),
        format!("http://{addr}/slow"),
        format!("http://{addr}/moved"),
        format!("http://{closed}/reset"),
    ] {
        let reset = PortalReset::new(&url, secret(), TIMEOUT).expect("a loopback URL");
        let result = reset.request(&patient_ref, CALL, requested_at()).await;
        assert!(
            matches!(result, Err(ResetError::PortalUnavailable { .. })),
            "{url}: {result:?}"
        );
    }
}

#[test]
fn a_portal_url_in_plain_http_off_this_host_is_refused() {
    let error = HttpVerifier::new(
        "http://portal.example.org/ivr/verify",
        secret(),
        TIMEOUT,
        pepper(),
    )
    .err()
    .expect("refused");
    assert!(error.to_string().contains("https://"), "{error}");
    assert!(
        HttpVerifier::new(
            "https://portal.example.org/ivr/verify",
            secret(),
            TIMEOUT,
            pepper()
        )
        .is_ok()
    );
}
