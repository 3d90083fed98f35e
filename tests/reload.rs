//! Hot reload: `POST /api/v1/reload` and `SIGHUP` re-read and re-check the configuration and its
//! prompts; a bad file is refused with `careline check`'s report and the running configuration
//! stays; calls in progress finish on the configuration they started with.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use careline::caller::{CallOptions, place_call};
use careline::store::CallPhase;
use common::http::require_tokens;
use common::{SHORT_FLOW, SHORT_PROMPTS, TestServer};

fn config_path(server: &TestServer) -> std::path::PathBuf {
    server
        .state
        .node
        .running
        .source()
        .expect("started from a file")
        .to_path_buf()
}

async fn post_reload(server: &TestServer) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/reload", server.base_url))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    (status, serde_json::from_str(&body).expect("JSON body"))
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read config");
    assert!(text.contains(from), "the test config has `{from}`");
    std::fs::write(path, text.replace(from, to)).expect("write config");
}

#[tokio::test]
async fn a_good_reload_applies_to_new_calls_while_a_call_in_progress_keeps_its_flow() {
    let server = TestServer::start().await;
    // A call that will press 2 (the `info` say node) after the reload.
    let before = tokio::spawn(place_call(
        CallOptions::new(&server.base_url)
            .digits("p2,2".parse().expect("script"))
            .max_duration(Duration::from_secs(20)),
    ));
    for _ in 0..200 {
        if server
            .state
            .node
            .calls
            .snapshot()
            .await
            .expect("the calls")
            .iter()
            .any(|call| call.phase == CallPhase::Menus)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let path = config_path(&server);
    edit(&path, "prompt = [\"info\"]", "prompt = [\"thanks\"]");
    let (status, body) = post_reload(&server).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["prompts"].as_u64().unwrap_or(0) > 0, "{body}");
    assert_eq!(body["restart_needed"], serde_json::json!([]));

    let old = before.await.expect("call task").expect("call completes");
    assert!(
        old.played_prompts().contains(&"info".to_owned()),
        "the call that started before the reload keeps its flow: {:?}",
        old.played_prompts()
    );
    let new = place_call(
        CallOptions::new(&server.base_url)
            .digits("2".parse().expect("script"))
            .max_duration(Duration::from_secs(20)),
    )
    .await
    .expect("call completes");
    let played = new.played_prompts();
    assert!(played.contains(&"thanks".to_owned()), "{played:?}");
    assert!(!played.contains(&"info".to_owned()), "{played:?}");
}

#[tokio::test]
async fn a_bad_configuration_is_refused_with_the_check_report_and_the_running_one_stays() {
    let server = TestServer::start().await;
    let path = config_path(&server);
    edit(&path, "next = \"thanks\"", "next = \"thankz\"");
    let (status, body) = post_reload(&server).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().expect("an error text");
    // The same findings `careline check` prints for this file.
    let loaded = careline::config::load(&path).expect("parses");
    let report = careline::config::check(&loaded);
    assert!(report.has_errors());
    for finding in report.errors() {
        assert!(
            error.contains(&finding.to_string()),
            "{finding} missing from:\n{error}"
        );
    }
    assert!(error.contains("thankz"), "{error}");

    // Calls still run on the configuration that was running.
    let report = place_call(
        CallOptions::new(&server.base_url)
            .digits("w1,w1234#".parse().expect("script"))
            .max_duration(Duration::from_secs(20)),
    )
    .await
    .expect("call completes");
    assert!(
        report.played_prompts().contains(&"thanks".to_owned()),
        "{:?}",
        report.played_prompts()
    );
}

#[tokio::test]
async fn only_a_supervisor_may_reload() {
    let server =
        TestServer::start_configured(SHORT_FLOW, &["en", "es"], &SHORT_PROMPTS, |_, state| {
            require_tokens(
                state,
                "viewer:look-only-token-0123456789,supervisor:in-charge-token-0123456789",
            );
        })
        .await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/reload", server.base_url);
    let none = client.post(&url).send().await.expect("request");
    assert_eq!(none.status().as_u16(), 401);
    let viewer = client
        .post(&url)
        .bearer_auth("look-only-token-0123456789")
        .send()
        .await
        .expect("request");
    assert_eq!(viewer.status().as_u16(), 403);
    let supervisor = client
        .post(&url)
        .bearer_auth("in-charge-token-0123456789")
        .send()
        .await
        .expect("request");
    assert_eq!(supervisor.status().as_u16(), 200);
}

#[cfg(unix)]
#[test]
fn sighup_reloads_a_running_careline() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let prompts = dir.path().join("prompts");
    common::write_prompts(&prompts, &["en", "es"], &SHORT_PROMPTS, 100);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("careline.toml");
    std::fs::write(
        &config,
        SHORT_FLOW
            .replace("PUBLIC_URL", &base)
            .replace("PROMPTS", &prompts.display().to_string())
            .replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
    )
    .expect("write config");
    let mut careline = Command::new(env!("CARGO_BIN_EXE_careline"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("careline starts");
    let stderr = careline.stderr.take().expect("stderr");
    let (lines, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| -> bool {
        while let Ok(line) = receive.recv_timeout(Duration::from_secs(30)) {
            if line.contains(needle) {
                return true;
            }
        }
        false
    };
    assert!(wait_for("careline listening"), "careline did not start");
    edit(&config, "prompt = [\"info\"]", "prompt = [\"thanks\"]");
    let pid = careline.id().to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let reloaded = wait_for("configuration reloaded");
    let _ = careline.kill();
    let _ = careline.wait();
    assert!(reloaded, "SIGHUP did not reload the configuration");
}

#[tokio::test]
async fn a_new_connection_cap_or_http_timeout_is_reported_as_needing_a_restart() {
    let server = TestServer::start().await;
    let path = config_path(&server);
    edit(
        &path,
        "shutdown_grace_secs = 10",
        "shutdown_grace_secs = 10\nmax_connections = 64\nidle_timeout_secs = 5",
    );
    let (status, body) = post_reload(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["restart_needed"],
        serde_json::json!(["server.max_connections", "server.idle_timeout_secs"])
    );
    // The running accept loop keeps what it started with.
    assert_eq!(server.state.limits.max_connections, 2048);
}
