//! Clients that do not behave: peers that stop reading, go quiet, echo marks at once, hold
//! sockets open or send headers a byte at a time; and configurations and command lines that
//! would open the admin API or overflow the clock. Each against a real server on loopback
//! (`careline serve` as a process where the command line is the point).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use careline::config::Config;
use careline::dispatch::router::Router;
use careline::store::Store;
use careline::store::memory::MemoryStore;
use common::{SHORT_FLOW, SHORT_PROMPTS};
use tempfile::TempDir;

/// How long a `careline serve` process may take to start or to give up.
const PROCESS_LIMIT: Duration = Duration::from_secs(60);

/// `flow` written out as a configuration file, with prompts, in a folder of its own; its
/// public URL and listen address are `listen`.
fn configuration(flow: &str, listen: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("tempdir");
    let prompts = dir.path().join("prompts");
    common::write_prompts(&prompts, &["en", "es"], &SHORT_PROMPTS, 100);
    let path = dir.path().join("careline.toml");
    std::fs::write(
        &path,
        flow.replace("PUBLIC_URL", &format!("http://{listen}"))
            .replace("PROMPTS", &prompts.display().to_string())
            .replace("127.0.0.1:0", listen),
    )
    .expect("write config");
    (dir, path)
}

/// Run `careline serve --config config` with `args` and `env` until it exits by itself;
/// returns whether it succeeded and what it printed on stderr.
async fn serve_until_it_exits(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_careline"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CARELINE_ADMIN_TOKENS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(
        PROCESS_LIMIT,
        command.spawn().expect("careline starts").wait_with_output(),
    )
    .await
    .expect("careline serve gave up by itself")
    .expect("careline serve ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_refuses_a_timeout_too_long_for_the_clock_and_says_which() {
    let flow = SHORT_FLOW.replace(
        "first_digit_timeout_secs = 2",
        &format!("first_digit_timeout_secs = {}", u64::MAX),
    );
    let (_dir, config) = configuration(&flow, "127.0.0.1:0");
    let (started, stderr) = serve_until_it_exits(&config, &[], &[]).await;
    assert!(!started, "serve must refuse the configuration:\n{stderr}");
    assert!(
        stderr.contains("ivr.first_digit_timeout_secs")
            && stderr.contains("outside the allowed range"),
        "the message names the key and the problem:\n{stderr}"
    );
}

#[tokio::test]
async fn a_start_up_error_is_printed_once() {
    let (_dir, config) = configuration(SHORT_FLOW, "127.0.0.1:0");
    let (started, stderr) =
        serve_until_it_exits(&config, &[], &[("CARELINE_ADMIN_TOKENS", "viewer:short")]).await;
    assert!(!started, "{stderr}");
    assert_eq!(
        stderr
            .matches("has a token shorter than 16 characters")
            .count(),
        1,
        "{stderr}"
    );
}

#[tokio::test]
async fn a_port_in_use_is_reported_once_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let (_dir, config) = configuration(SHORT_FLOW, &address);
    let (started, stderr) = serve_until_it_exits(&config, &[], &[]).await;
    assert!(!started, "{stderr}");
    let line = stderr
        .lines()
        .find(|line| line.starts_with("careline: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    assert!(line.contains("cannot listen on"), "{line}");
    assert!(
        line.contains("is another server using that port?"),
        "{line}"
    );
    assert_eq!(line.matches("in use").count(), 1, "the cause, once: {line}");
}

#[tokio::test]
async fn a_wrap_up_too_long_for_the_clock_is_taken_in_stride() {
    let flow = format!(
        "{}\n{}",
        SHORT_FLOW.replace("PUBLIC_URL", "http://127.0.0.1:8080"),
        r#"
[queues.portal]
skills = ["portal"]
wrap_up_secs = 18446744073709551615

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
dial = "+13125550101"
"#
    );
    let config: Config = toml::from_str(&flow).expect("the flow parses");
    let store = std::sync::Arc::new(MemoryStore::new());
    let now = jiff::Timestamp::now();
    store
        .register_agents(&["anguyen".to_owned()], now.as_millisecond())
        .await
        .expect("agent registered");
    let router = Router::new(store, &config, "hostile".to_owned());
    router
        .call_finished("anguyen", "CA1", "portal", Duration::from_secs(60), now)
        .await
        .expect("the call is finished, its wrap-up never ending");
}
