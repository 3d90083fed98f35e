//! `GET /api/v1/events` on the real server: a dashboard's event stream sees an agent's status
//! change, on the node where it happened and on another node sharing the Redis; who may open
//! the stream; and that an open stream does not hold up shutdown.

mod common;

use std::time::Duration;

use common::TestServer;
use common::http::{SUPERVISOR, VIEWER, require_tokens};
use reqwest::StatusCode;
use serde_json::Value;

const ROSTER: &str = r#"
[queues.portal]
skills = ["portal"]

[[agents]]
id = "anguyen"
name = "An Nguyen"
skills = ["portal"]
client = "anguyen"
"#;

/// A node with the roster, on the Redis at `redis_url` if given.
async fn node(redis_url: Option<&str>) -> TestServer {
    let store = common::redis::store_section(redis_url, "careline-events-test");
    TestServer::start_short(&format!("{ROSTER}\n{store}"), |_, state| {
        require_tokens(state, &format!("viewer:{VIEWER},supervisor:{SUPERVISOR}"));
    })
    .await
}

/// One Server-Sent Event: its `event:` name and `data:`.
#[derive(Debug)]
struct Sent {
    name: String,
    data: String,
}

/// An open event stream, read event by event.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Open the stream with the token as a bearer token or `?token=`, and wait for `ready`.
    async fn open(server: &TestServer, bearer: Option<&str>, query: Option<&str>) -> EventStream {
        let response = open_request(server, bearer, query)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an SSE stream"
        );
        let mut stream = EventStream {
            response,
            buffer: String::new(),
        };
        let first = stream.next().await.expect("the stream opens with an event");
        assert_eq!(first.name, "ready");
        stream
    }

    /// The next event (comments skipped); `None` when the stream ended.
    async fn next(&mut self) -> Option<Sent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.trim_start().to_owned());
                    }
                }
                if data.is_empty() && name == "message" {
                    continue; // a keep-alive comment
                }
                return Some(Sent {
                    name,
                    data: data.join("\n"),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event within 20 s")
                .expect("the stream reads")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `change` event's JSON.
    async fn next_change(&mut self) -> Value {
        loop {
            let sent = self.next().await.expect("the stream stays open");
            if sent.name == "change" {
                return serde_json::from_str(&sent.data).expect("change data is JSON");
            }
        }
    }
}

fn open_request(
    server: &TestServer,
    bearer: Option<&str>,
    query: Option<&str>,
) -> reqwest::RequestBuilder {
    let url = match query {
        Some(token) => format!("{}/api/v1/events?token={token}", server.base_url),
        None => format!("{}/api/v1/events", server.base_url),
    };
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request
}

async fn set_status(server: &TestServer, agent: &str, status: &str) {
    let body = format!(r#"{{"status": "{status}"}}"#);
    let (answer, _) = common::http::set_status(server, agent, &body, Some(SUPERVISOR)).await;
    assert_eq!(answer, StatusCode::OK);
}

#[tokio::test]
async fn a_dashboard_sees_an_agent_going_on_break() {
    let server = node(None).await;
    let mut events = EventStream::open(&server, Some(VIEWER), None).await;
    set_status(&server, "anguyen", "break").await;
    let change = events.next_change().await;
    assert_eq!(change["kind"], "agent");
    assert_eq!(change["agent"], "anguyen");
    assert_eq!(change["change"], "status");
    assert!(change["at_ms"].as_i64().is_some_and(|at| at > 0));
}

#[tokio::test]
async fn the_stream_takes_the_token_in_the_query_because_browsers_cannot_send_headers() {
    let server = node(None).await;
    let mut events = EventStream::open(&server, None, Some(VIEWER)).await;
    set_status(&server, "anguyen", "available").await;
    assert_eq!(events.next_change().await["agent"], "anguyen");

    for (bearer, query) in [
        (None, None),
        (None, Some("wrong-token-0123456789")),
        // A header that is wrong is not rescued by a query token.
        (Some("wrong-token-0123456789"), Some(VIEWER)),
    ] {
        let response = open_request(&server, bearer, query)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{bearer:?} {query:?}"
        );
    }
    // The other API routes do not take a query token.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/agents?token={VIEWER}", server.base_url))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_status_change_on_one_node_reaches_a_dashboard_on_the_other() {
    let redis = common::redis::start();
    let first = node(Some(&redis.url())).await;
    let second = node(Some(&redis.url())).await;
    // A node relays only once it is subscribed to the Redis channel.
    for node in [&first, &second] {
        let mut relaying = node.state.node.events.relaying();
        tokio::time::timeout(Duration::from_secs(20), relaying.wait_for(|on| *on))
            .await
            .expect("the node subscribes within 20 s")
            .expect("the event bus is alive");
    }

    let mut on_second = EventStream::open(&second, Some(VIEWER), None).await;
    set_status(&first, "anguyen", "available").await;
    let change = on_second.next_change().await;
    assert_eq!(change["kind"], "agent");
    assert_eq!(change["agent"], "anguyen");
    assert_eq!(change["change"], "status");

    // And the first node's dashboards see the second node's changes.
    let mut on_first = EventStream::open(&first, Some(VIEWER), None).await;
    set_status(&second, "anguyen", "break").await;
    assert_eq!(on_first.next_change().await["agent"], "anguyen");
}

#[tokio::test]
async fn an_open_stream_ends_when_the_server_shuts_down() {
    let server = node(None).await;
    let mut events = EventStream::open(&server, Some(VIEWER), None).await;
    server.shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while events.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended");
    let served = tokio::time::timeout(Duration::from_secs(20), server.handle)
        .await
        .expect("the server stops with a stream open")
        .expect("the server task ends");
    assert!(served.is_ok());
}
