//! `careline stats` against a running careline: the tables it prints, where it finds the server
//! and the token, what it says when refused, and `--watch` redrawing. And `GET /api/v1/stats`
//! in the desk's time zone: local hours added up exactly, and the CSV download with the very
//! figures of the JSON answer.

mod common;

use std::io::Read as _;
use std::process::{Command, Output, Stdio};

use careline::store::{AgentStatus, CallOutcomeStat, QueueStatEvent};
use common::http::{VIEWER, require_tokens};
use common::{TestServer, queued_call};
use serde_json::Value;

const DESK: &str = r#"
[queues.portal]
skills = ["portal"]

[[agents]]
id = "anguyen"
name = "An Nguyen"
skills = ["portal"]
client = "anguyen"

[[agents]]
id = "bsmith"
name = "Bea Smith"
skills = ["portal"]
client = "bsmith"
"#;

/// A desk with one caller waiting, one agent available and a few calls counted today.
async fn desk() -> TestServer {
    let server = TestServer::start_short(DESK, |_, state| {
        require_tokens(state, &format!("viewer:{VIEWER}"));
    })
    .await;
    let store = &server.state.node.store;
    let now = jiff::Timestamp::now().as_millisecond();
    store
        .set_agent_status("anguyen", AgentStatus::Available, now)
        .await
        .expect("available");
    store
        .enqueue(&queued_call(
            "CA-waiting",
            "portal",
            "another-node",
            now - 30_000,
        ))
        .await
        .expect("enqueue");
    for event in [
        QueueStatEvent::Offered,
        QueueStatEvent::Offered,
        QueueStatEvent::Answered { wait_ms: 8_000 },
        QueueStatEvent::Abandoned { wait_ms: 40_000 },
    ] {
        store
            .record_queue_stat("portal", event, now)
            .await
            .expect("record");
    }
    server
}

fn careline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_careline"));
    command.env_remove("CARELINE_ADMIN_TOKEN");
    command
}

/// Run to completion off the test's runtime, which keeps serving meanwhile.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("careline runs"))
        .await
        .expect("the run finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn it_prints_the_queues_and_the_agents() {
    let server = desk().await;
    let mut command = careline();
    command
        .args(["stats", "--url", &server.base_url])
        .env("CARELINE_ADMIN_TOKEN", VIEWER);
    let output = run(command).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("QUEUE "), "{text}");
    let portal: Vec<&str> = lines[1].split_whitespace().collect();
    // name, waiting, longest, available, reserved, on call, wrap-up, break, offline, offered,
    // answered, abandoned, callbacks, service level, ASA, abandon rate.
    assert_eq!(portal[0], "portal", "{text}");
    assert_eq!(portal[1], "1", "{text}");
    assert_eq!(&portal[3..9], ["1", "0", "0", "0", "0", "1"], "{text}");
    assert_eq!(
        &portal[9..],
        ["2", "1", "1", "0", "50.0%", "8s", "50.0%"],
        "{text}"
    );
    let anguyen = lines
        .iter()
        .find(|line| line.starts_with("anguyen "))
        .unwrap_or_else(|| panic!("anguyen is listed:\n{text}"));
    assert!(
        anguyen.contains("An Nguyen") && anguyen.contains("available"),
        "{text}"
    );
    assert!(
        lines.iter().any(|line| line.starts_with("bsmith ")),
        "{text}"
    );
}

#[tokio::test]
async fn the_token_may_also_be_given_on_the_command_line() {
    let server = desk().await;
    let mut command = careline();
    command.args(["stats", "--url", &server.base_url, "--token", VIEWER]);
    let output = run(command).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("portal"));
}

#[tokio::test]
async fn without_a_token_it_says_how_to_give_one() {
    let server = desk().await;
    let mut command = careline();
    command.args(["stats", "--url", &server.base_url]);
    let output = run(command).await;
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("CARELINE_ADMIN_TOKEN"), "{message}");
    assert!(message.contains("--token"), "{message}");
}

#[tokio::test]
async fn the_server_address_comes_from_the_configuration_by_default() {
    let server = desk().await;
    let addr = server.base_url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("careline.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\npublic_url = \"https://ivr.example.org\"\n\n[ivr]\nentry = \"main\"\noperator = \"main\"\n"
        ),
    )
    .expect("write config");
    let mut command = careline();
    command
        .args(["stats", "--config"])
        .arg(&config)
        .env("CARELINE_ADMIN_TOKEN", VIEWER);
    let output = run(command).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("portal"));

    let mut command = careline();
    command
        .args(["stats", "--config"])
        .arg(dir.path().join("missing.toml"));
    let output = run(command).await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--url"), "{}", stderr(&output));
}

#[tokio::test]
async fn watch_redraws_the_screen_until_stopped() {
    let server = desk().await;
    let mut command = careline();
    command
        .args(["stats", "--watch", "--url", &server.base_url])
        .env("CARELINE_ADMIN_TOKEN", VIEWER)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let screen = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("careline starts");
        let mut out = child.stdout.take().expect("piped stdout");
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        let clears = |text: &[u8]| text.windows(4).filter(|w| w == b"\x1b[2J").count();
        // The third redraw starting means the first two are complete.
        while clears(&seen) < 3 {
            let read = out.read(&mut buffer).expect("read stdout");
            if read == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..read]);
        }
        child.kill().expect("stop careline stats");
        child.wait().expect("reap careline stats");
        String::from_utf8_lossy(&seen).into_owned()
    })
    .await
    .expect("watching finishes");
    let frames: Vec<&str> = screen.split("\x1b[2J\x1b[H").skip(1).collect();
    assert!(frames.len() >= 3, "three redraws: {screen:?}");
    for frame in &frames[..2] {
        assert!(frame.contains("Ctrl-C"), "{frame}");
        assert!(
            frame.contains("QUEUE") && frame.contains("portal"),
            "{frame}"
        );
    }
}

const HOUR_MS: i64 = 3_600_000;

/// On top of [`desk`]'s calls now: calls an hour and three hours ago, and call-level outcomes.
async fn a_recorded_morning(server: &TestServer, now_ms: i64) {
    let store = &server.state.node.store;
    for (event, at) in [
        (QueueStatEvent::Offered, now_ms - HOUR_MS),
        (
            QueueStatEvent::Answered { wait_ms: 25_000 },
            now_ms - HOUR_MS,
        ),
        (QueueStatEvent::Offered, now_ms - 3 * HOUR_MS),
        (QueueStatEvent::CallbackRequested, now_ms - 3 * HOUR_MS),
    ] {
        store
            .record_queue_stat("portal", event, at)
            .await
            .expect("record");
    }
    for outcome in [
        CallOutcomeStat::Contained,
        CallOutcomeStat::Routed,
        CallOutcomeStat::VerificationPassed,
    ] {
        store
            .record_call_outcome(outcome, now_ms - HOUR_MS)
            .await
            .expect("record");
    }
}

async fn get_stats(server: &TestServer, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/v1/stats?{query}", server.base_url))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("the server answers")
}

async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"))
}

fn instant(rfc3339: &Value) -> i64 {
    rfc3339
        .as_str()
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(|| panic!("an RFC 3339 time: {rfc3339}"))
        .as_millisecond()
}

/// The JSON value as a CSV cell: the same text, empty for `null`.
fn as_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn local_hours_in_a_half_hour_zone_hold_each_call_where_it_happened() {
    let server = desk().await;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    a_recorded_morning(&server, now_ms).await;
    let from = jiff::Timestamp::from_millisecond(now_ms - 5 * HOUR_MS)
        .expect("a time")
        .to_string();
    let response = get_stats(
        &server,
        &format!("queue=portal&interval=hour&tz=Asia/Kolkata&from={from}"),
    )
    .await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let history = json_of(response).await;
    assert_eq!(history["timezone"], "Asia/Kolkata");
    let buckets = history["buckets"].as_array().expect("buckets");
    assert!(
        (6..=7).contains(&buckets.len()),
        "five hours and a bit: {history}"
    );
    for bucket in buckets {
        let start = bucket["start"].as_str().expect("start");
        assert!(start.ends_with(":00:00+05:30"), "a local hour: {start}");
        assert_eq!(instant(&bucket["end"]) - instant(&bucket["start"]), HOUR_MS);
    }
    // Each call is in the local hour it happened in: added up from UTC quarter hours, since
    // Kolkata's hours start on the half hour in UTC.
    for (ago, offered) in [(0, 2), (HOUR_MS, 1), (3 * HOUR_MS, 1)] {
        let at = now_ms - ago;
        let bucket = buckets
            .iter()
            .find(|bucket| instant(&bucket["start"]) <= at && at < instant(&bucket["end"]))
            .unwrap_or_else(|| panic!("a bucket holds {at}: {history}"));
        assert_eq!(bucket["offered"], offered, "{bucket}");
    }
    assert_eq!(history["total"]["offered"], 4);
    assert_eq!(history["total"]["handled"], 3);
    assert_eq!(history["total"]["callbacks"], 1);
}

#[tokio::test]
async fn csv_has_a_row_per_bucket_with_the_figures_of_the_json_answer() {
    let server = desk().await;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    a_recorded_morning(&server, now_ms).await;
    let from = jiff::Timestamp::from_millisecond(now_ms - 5 * HOUR_MS)
        .expect("a time")
        .to_string();
    let query = format!("queue=portal&interval=hour&tz=America/Chicago&from={from}");
    let json = json_of(get_stats(&server, &query).await).await;
    let response = get_stats(&server, &format!("{query}&format=csv")).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let header = |name: &str| {
        response.headers()[name]
            .to_str()
            .expect("an ASCII header")
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    let disposition = header("content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"careline-stats-portal-hour-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let text = response.text().await.expect("the CSV");
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().expect("a header row").split(',').collect();
    assert_eq!(&columns[..3], ["start", "end", "offered"]);
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    let buckets = json["buckets"].as_array().expect("buckets");
    assert_eq!(rows.len(), buckets.len(), "{text}");
    assert!(!rows.is_empty());
    for (row, bucket) in rows.iter().zip(buckets) {
        assert_eq!(row.len(), columns.len(), "{text}");
        for (column, cell) in columns.iter().zip(row) {
            assert_eq!(*cell, as_cell(&bucket[*column]), "{column} in {text}");
        }
    }
    // Every figure of a bucket is a column.
    let keys = buckets[0].as_object().expect("an object").len();
    assert_eq!(columns.len(), keys);
    let offered: u64 = rows
        .iter()
        .map(|row| row[2].parse::<u64>().expect("a count"))
        .sum();
    assert_eq!(offered, 4);
    assert!(
        rows.iter().any(
            |row| !row[columns.iter().position(|c| *c == "asa_secs").expect("asa")].is_empty()
        ),
        "figures are filled in: {text}"
    );
}

#[tokio::test]
async fn a_time_zone_that_does_not_exist_is_refused_by_name() {
    let server = desk().await;
    let response = get_stats(&server, "tz=America/Atlantis&format=csv").await;
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let body = json_of(response).await;
    let message = body["error"].as_str().expect("a message");
    assert!(
        message.contains("`tz`") && message.contains("IANA"),
        "{message}"
    );
}
