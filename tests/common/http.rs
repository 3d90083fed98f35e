//! The admin API over HTTP: a token for each role, requests with or without a bearer token, the
//! answers as JSON or text, and the voice webhook announcing a call.

use careline::admin::access::AccessPolicy;
use careline::server::AppState;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::TestServer;

pub const VIEWER: &str = "viewer-token-0123456789";
pub const SUPERVISOR: &str = "supervisor-token-0123456789";
pub const ANGUYEN: &str = "anguyen-token-0123456789";

/// A token for each role: [`VIEWER`], [`SUPERVISOR`] and the agent anguyen's [`ANGUYEN`].
pub fn every_role() -> String {
    format!("viewer:{VIEWER},supervisor:{SUPERVISOR},agent:anguyen:{ANGUYEN}")
}

/// Let only `tokens` (`role:token,...`) into the admin API, from loopback too.
pub fn require_tokens(state: &mut AppState, tokens: &str) {
    state.access = AccessPolicy::parse(Some(tokens), false).expect("valid tokens");
}

/// The short flow with `extra` configuration after it, a token for every role, and `adjust`
/// applied to the state before serving.
pub async fn start_for_every_role(extra: &str, adjust: impl FnOnce(&mut AppState)) -> TestServer {
    TestServer::start_short(extra, |_, state| {
        require_tokens(state, &every_role());
        adjust(state);
    })
    .await
}

/// Send `request`, with `token` as its bearer token if there is one.
pub async fn send(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::Response {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("request reaches the server")
}

/// The status and the body as JSON (a JSON string holding the text if it is not JSON).
pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("response body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET path`, the answer as JSON.
pub async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    json_of(send(request_for(server, Method::GET, path), token).await).await
}

/// `GET path`, the answer as text.
pub async fn get_text(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let response = send(request_for(server, Method::GET, path), token).await;
    let status = response.status();
    (status, response.text().await.expect("response body"))
}

/// `POST path` with no body, the answer as JSON.
pub async fn post(server: &TestServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    json_of(send(request_for(server, Method::POST, path), token).await).await
}

fn request_for(server: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("{}{path}", server.base_url))
}

/// `PUT /api/v1/agents/{agent}/status` with the JSON `body`.
pub async fn set_status(
    server: &TestServer,
    agent: &str,
    body: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let path = format!("/api/v1/agents/{agent}/status");
    let request = request_for(server, Method::PUT, &path)
        .header("content-type", "application/json")
        .body(body.to_owned());
    json_of(send(request, token).await).await
}

/// Twilio's voice webhook announces call `call_sid` from `from`.
pub async fn call_arrives(server: &TestServer, call_sid: &str, from: &str) {
    let voice = reqwest::Client::new()
        .post(format!("{}/twilio/voice", server.base_url))
        .form(&[("CallSid", call_sid), ("From", from)])
        .send()
        .await
        .expect("voice webhook answers");
    assert!(voice.status().is_success());
}
