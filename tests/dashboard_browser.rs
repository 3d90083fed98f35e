//! The wallboard in a real headless Chromium, driven over the Chrome DevTools Protocol: the page
//! asks for the admin token, shows the portal queue with nobody waiting, and — with no reload —
//! shows the caller who joins the queue, then the queue empty again when they hang up, and the
//! abandoned call in the queue's chart of today's hours: one bar per hour with calls, exactly
//! the hours `/api/v1/stats` lists. Screenshots of the board with the caller waiting and of the
//! charts afterwards are written next to the build output.
//!
//! Needs Debian's `chromium` (`scripts/test` installs it); without it the test says so and
//! passes, so a developer without a browser can still run the suite.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use careline::caller::script::{Step, StepAction};
use careline::caller::{CallOptions, place_call};
use careline::store::{AgentStatus, QueueStatEvent};
use common::browser::{Browser, PAGE_CHECK_EVERY, PAGE_CHECKS, Page, find_chromium};
use common::http::require_tokens;
use common::{TestServer, script};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const VIEWER: &str = "wallboard-viewer-token-0123456789";

const FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 10

[prompts]
dir = "PROMPTS"
default_language = "en"

[ivr]
entry = "main"
operator = "desk"
first_digit_timeout_secs = 5
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
prompt = ["after_hours"]

[queues.portal]
skills = ["portal"]
when_closed = "closed"
max_wait_secs = 600
announce_every_secs = 30

[queues.billing]
skills = ["billing"]
when_closed = "closed"

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal", "billing"]
client = "anguyen"

[[agents]]
id = "bsmith"
name = "Bea Smith"
skills = ["portal"]
client = "bsmith"
"#;

/// The waiting count on the portal tile, or `null` before the tile is drawn.
const PORTAL_WAITING: &str = r#"document.querySelector('[data-queue="portal"] [data-field="waiting"]')?.textContent ?? null"#;

/// Each hour with calls in a queue's chart: `[start, offered, answered, abandoned]`.
fn chart_hours(queue: &str) -> String {
    format!(
        r#"Array.from(document.querySelectorAll('[data-queue="{queue}"] svg.hourly-chart g.hour'))
             .map((hour) => [hour.dataset.start, Number(hour.dataset.offered),
                             Number(hour.dataset.answered), Number(hour.dataset.abandoned)])"#
    )
}

/// The hours with calls in `queue` today as `/api/v1/stats` lists them, in the chart's form.
async fn stats_hours(server: &TestServer, queue: &str) -> Value {
    let client = reqwest::Client::new();
    let get = |path: String| {
        client
            .get(format!("{}{path}", server.base_url))
            .bearer_auth(VIEWER)
            .send()
    };
    let board: Value = serde_json::from_str(
        &get("/api/v1/queues".to_owned())
            .await
            .expect("the queue board answers")
            .text()
            .await
            .expect("a body"),
    )
    .expect("JSON");
    let today = &board
        .as_array()
        .and_then(|queues| queues.iter().find(|each| each["name"] == queue))
        .expect("the queue is on the board")["today"];
    let date = today["date"].as_str().expect("a date");
    let zone = today["timezone"].as_str().expect("a zone");
    let history: Value = serde_json::from_str(
        &get(format!(
            "/api/v1/stats?queue={queue}&interval=hour&from={date}&tz={zone}"
        ))
        .await
        .expect("the statistics answer")
        .text()
        .await
        .expect("a body"),
    )
    .expect("JSON");
    let hours: Vec<Value> = history["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter(|bucket| {
            ["offered", "answered", "abandoned"]
                .iter()
                .any(|field| bucket[field].as_u64() != Some(0))
        })
        .map(|bucket| {
            json!([
                bucket["start"],
                bucket["offered"],
                bucket["answered"],
                bucket["abandoned"]
            ])
        })
        .collect();
    Value::Array(hours)
}

/// `target/wallboard.png` (the build's target directory, wherever it is).
fn screenshot_path() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("wallboard.png")
}

#[tokio::test]
async fn the_wallboard_shows_a_caller_joining_and_leaving_the_queue_without_a_reload() {
    let Some(chromium) = find_chromium() else {
        eprintln!(
            "SKIPPED: no chromium on PATH (install it with `sudo apt-get install -y chromium`, \
             or set CARELINE_CHROMIUM); scripts/test installs it"
        );
        return;
    };
    let server =
        TestServer::start_configured(FLOW, &["en"], &["main_menu", "after_hours"], |_, state| {
            require_tokens(state, &format!("viewer:{VIEWER}"));
        })
        .await;
    // A call answered just after midnight (UTC: portal has no schedule): an earlier hour of
    // today in the chart, whenever the test runs.
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let midnight = now_ms - now_ms.rem_euclid(86_400_000);
    for event in [
        QueueStatEvent::Offered,
        QueueStatEvent::Answered { wait_ms: 12_000 },
    ] {
        server
            .state
            .node
            .store
            .record_queue_stat("portal", event, midnight + 5 * 60_000)
            .await
            .expect("the store answers");
    }
    // Bea is on a break; Anh stays offline, so the caller waits.
    server
        .state
        .node
        .store
        .set_agent_status(
            "bsmith",
            AgentStatus::Break,
            jiff::Timestamp::now().as_millisecond(),
        )
        .await
        .expect("the store answers");
    let browser = Browser::launch(&chromium).await;
    let mut page = Page::open(&browser).await;
    page.call(
        "Page.navigate",
        json!({"url": format!("{}/dashboard", server.base_url)}),
    )
    .await;

    // The API refuses the page without a token: it asks for one, once.
    page.until(
        "document.getElementById('token-overlay')?.hidden === false",
        json!(true),
    )
    .await;
    page.evaluate(&format!(
        "document.getElementById('token').value = '{VIEWER}'; \
         document.getElementById('token-form').requestSubmit(); true"
    ))
    .await;
    page.until(PORTAL_WAITING, json!("0")).await;
    page.until(
        "document.getElementById('connection').dataset.state",
        json!("live"),
    )
    .await;
    // The longest wait turns amber past 60 s and red past 180 s.
    assert_eq!(
        page.evaluate("[60, 61, 180, 181].map(waitLevel)").await,
        json!(["ok", "amber", "amber", "red"])
    );
    // Anything the page keeps survives only if it is never reloaded.
    page.evaluate("window.wallboardTestMark = 'loaded once'; true")
        .await;
    assert_eq!(
        page.evaluate(r#"document.querySelector('[data-agent="anguyen"]')?.dataset.state ?? null"#)
            .await,
        json!("offline")
    );
    assert_eq!(
        page.evaluate(r#"document.querySelector('[data-queue="portal"] [data-field="agents-break"]')?.textContent ?? null"#)
            .await,
        json!("1")
    );

    // Nobody is available: the caller waits in the portal queue.
    let (steps, live_steps) = mpsc::unbounded_channel();
    let call = tokio::spawn(place_call(
        CallOptions::new(&server.base_url)
            .digits(script("1"))
            .live_steps(live_steps)
            .max_duration(Duration::from_secs(120)),
    ));
    page.until(PORTAL_WAITING, json!("1")).await;
    assert_eq!(
        page.evaluate("window.wallboardTestMark ?? null").await,
        json!("loaded once"),
        "the board changed without a reload"
    );
    let screenshot = screenshot_path();
    page.screenshot(&screenshot).await;
    println!("wallboard screenshot: {}", screenshot.display());

    // The caller gives up: the tile empties again.
    steps
        .send(Step {
            after_prompt: false,
            action: StepAction::HangUp,
        })
        .expect("the call is still going");
    page.until(PORTAL_WAITING, json!("0")).await;
    assert_eq!(
        page.evaluate("window.wallboardTestMark ?? null").await,
        json!("loaded once")
    );

    // The chart catches up (its fetches are throttled): one bar per hour with calls, the very
    // hours the API lists, the abandoned call among them.
    let mut last = (Value::Null, Value::Null);
    let mut caught_up = false;
    for _ in 0..PAGE_CHECKS {
        let expected = stats_hours(&server, "portal").await;
        let drawn = page.evaluate(&chart_hours("portal")).await;
        let abandoned = expected
            .as_array()
            .is_some_and(|hours| hours.iter().any(|hour| hour[3].as_u64() >= Some(1)));
        if abandoned && drawn == expected {
            caught_up = true;
            break;
        }
        last = (expected, drawn);
        tokio::time::sleep(PAGE_CHECK_EVERY).await;
    }
    assert!(
        caught_up,
        "the chart shows {} where the API lists {}",
        last.1, last.0
    );
    let hours = stats_hours(&server, "portal").await;
    let hours = hours.as_array().expect("hours");
    assert!(
        (1..=2).contains(&hours.len()),
        "after midnight and now, which may be the same hour: {hours:?}"
    );
    assert_eq!(hours[0][2], 1, "the call answered after midnight");
    let hours_screenshot = screenshot.with_file_name("wallboard-hours.png");
    page.screenshot(&hours_screenshot).await;
    println!("wallboard screenshot: {}", hours_screenshot.display());
    assert_eq!(
        page.evaluate(
            r#"Array.from(document.querySelectorAll('[data-queue="portal"] svg.hourly-chart g.hour'))
                 .map((hour) => hour.querySelectorAll('rect').length)"#
        )
        .await,
        json!(vec![3; hours.len()]),
        "offered, answered and abandoned in each hour's bar"
    );
    assert!(
        page.evaluate(
            r#"document.querySelectorAll('[data-queue="portal"] svg.hourly-chart circle.service-level-point').length"#
        )
        .await
        .as_u64()
        .is_some_and(|points| points >= 1),
        "the hour with an answer has a service level"
    );
    // Billing had no calls: its chart is drawn, with no bars.
    assert_eq!(page.evaluate(&chart_hours("billing")).await, json!([]));
    assert_eq!(
        page.evaluate(
            r#"document.querySelectorAll('[data-queue="billing"] svg.hourly-chart').length"#
        )
        .await,
        json!(1)
    );
    assert_eq!(
        page.evaluate("window.wallboardTestMark ?? null").await,
        json!("loaded once")
    );
    call.await
        .expect("the call task ends")
        .expect("the call completes");
    server.shutdown.cancel();
}
