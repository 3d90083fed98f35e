//! `careline stats` against a running careline: the tables it prints, where it finds the server
//! and the token, what it says when refused, and `--watch` redrawing.

mod common;

use std::io::Read as _;
use std::process::{Command, Output, Stdio};

use careline::store::{AgentStatus, QueueStatEvent};
use common::http::{VIEWER, require_tokens};
use common::{TestServer, queued_call};

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
