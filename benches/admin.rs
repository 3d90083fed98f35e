//! What one `GET /api/v1/queues` costs on a large desk: 50 queues and 500 agents, a few calls
//! waiting and on the phone in every queue, and a day of statistics. Measured as the board
//! computation plus its JSON (what the route does after the token check), on the memory store
//! and on a `redis-server` on loopback that the bench starts itself; and the same for the
//! store-side gauges of a `/metrics` scrape.
//!
//! "Today" costs one day bucket per queue when the queue counts in UTC, and one bucket per
//! quarter hour since local midnight otherwise: both are measured, at 17:00 in Chicago
//! (69 quarter hours).
//!
//! Run with `cargo bench --bench admin`.

use std::path::Path;

use careline::server::AppState;
use careline::store::test_redis::TestRedis;
use careline::store::{AgentStatus, QueueStatEvent, QueuedCall, Store, Strategy};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const QUEUES: usize = 50;
const AGENTS: usize = 500;
const SKILLS: usize = 25;
const WAITING_PER_QUEUE: usize = 4;

/// 2026-01-05 00:00 UTC.
const JAN_5: i64 = 1_767_571_200_000;
const HOUR: i64 = 3_600_000;
/// 17:00 in Chicago (UTC-6).
const NOW_MS: i64 = JAN_5 + 23 * HOUR;
/// Chicago's midnight.
const LOCAL_DAY_START: i64 = JAN_5 + 6 * HOUR;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn queue_skills(queue: usize) -> Vec<String> {
    let mut skills = vec![format!("s{:02}", queue % SKILLS)];
    if queue >= SKILLS {
        skills.push("spanish".to_owned());
    }
    skills
}

fn agent_skills(agent: usize) -> Vec<String> {
    let mut skills: Vec<String> = [0, 7, 13]
        .iter()
        .map(|offset| format!("s{:02}", (agent + offset) % SKILLS))
        .collect();
    if agent.is_multiple_of(3) {
        skills.push("spanish".to_owned());
    }
    skills
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("\"{item}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The desk's configuration; with `zone`, every queue counts "today" in it.
fn config(prompts: &Path, store_url: Option<&str>, zone: Option<&str>) -> String {
    let mut toml = format!(
        "[server]\npublic_url = \"http://127.0.0.1:8080\"\n\n[prompts]\ndir = \"{}\"\n\n",
        prompts.display()
    );
    if let Some(url) = store_url {
        toml.push_str(&format!("[store]\nurl = \"{url}\"\n\n"));
    }
    toml.push_str(
        "[ivr]\nentry = \"main\"\noperator = \"main\"\n\n[nodes.main]\ntype = \"hangup\"\nprompt = [\"goodbye\"]\n\n",
    );
    if let Some(zone) = zone {
        toml.push_str(&format!(
            "[schedules.desk]\ntimezone = \"{zone}\"\nhours = [{{ days = \"mon-sun\", from = \"00:00\", to = \"24:00\" }}]\n\n"
        ));
    }
    for queue in 0..QUEUES {
        toml.push_str(&format!(
            "[queues.q{queue:02}]\nskills = [{}]\n",
            quoted(&queue_skills(queue))
        ));
        if zone.is_some() {
            toml.push_str("schedule = \"desk\"\nwhen_closed = \"main\"\n");
        }
        toml.push('\n');
    }
    for agent in 0..AGENTS {
        toml.push_str(&format!(
            "[[agents]]\nid = \"a{agent:03}\"\nname = \"Agent {agent}\"\nskills = [{}]\nclient = \"a{agent:03}\"\n\n",
            quoted(&agent_skills(agent))
        ));
    }
    toml
}

fn write_prompts(dir: &Path) {
    let ids = careline::ivr::prompts::system_prompts().chain(["goodbye"]);
    for id in ids {
        let path = dir.join("en").join(format!("{id}.wav"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).expect("create wav");
        for _ in 0..160 {
            writer.write_sample(0i16).expect("sample");
        }
        writer.finalize().expect("finalize");
    }
}

async fn load(dir: &Path, store_url: Option<&str>, zone: Option<&str>) -> AppState {
    let path = dir.join(format!("careline-{}.toml", zone.is_some()));
    let text = config(&dir.join("prompts"), store_url, zone);
    std::fs::write(&path, &text).expect("write config");
    let loaded = careline::config::parse(&path, text).expect("the desk's configuration parses");
    AppState::load(&loaded, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .state
}

fn call(queue: usize, n: usize, enqueued_at_ms: i64) -> QueuedCall {
    QueuedCall {
        call_sid: format!("CA-{queue:02}-{n:03}"),
        queue: format!("q{queue:02}"),
        node: "elsewhere".to_owned(),
        enqueued_at_ms,
        priority: 0,
        verification_failed: false,
        callback_id: None,
    }
}

/// A fifth of the agents offline, a fifth on break, the rest available; one call on the phone
/// and four waiting in every queue; a quarter-hourly offered/answered/abandoned history from
/// midnight UTC to now.
async fn busy_day(state: &AppState) {
    let store: &dyn Store = state.node.store.as_ref();
    for agent in 0..AGENTS {
        let status = match agent % 5 {
            0 => continue,
            1 => AgentStatus::Break,
            _ => AgentStatus::Available,
        };
        store
            .set_agent_status(&format!("a{agent:03}"), status, NOW_MS - HOUR)
            .await
            .expect("status");
    }
    for queue in 0..QUEUES {
        let skills = queue_skills(queue);
        let candidates: Vec<String> = (0..AGENTS)
            .filter(|&agent| {
                let has = agent_skills(agent);
                skills.iter().all(|skill| has.contains(skill))
            })
            .map(|agent| format!("a{agent:03}"))
            .collect();
        store
            .enqueue(&call(queue, 0, NOW_MS - 60_000))
            .await
            .expect("enqueue");
        if let Some(reservation) = store
            .reserve(
                &format!("q{queue:02}"),
                "elsewhere",
                &candidates,
                Strategy::LongestIdle,
                NOW_MS - 50_000,
            )
            .await
            .expect("reserve")
        {
            store
                .offer_answered(&reservation.agent_id, &reservation.call.call_sid, NOW_MS)
                .await
                .expect("answer");
        }
        for n in 1..=WAITING_PER_QUEUE {
            store
                .enqueue(&call(queue, n, NOW_MS - 10_000 * n as i64))
                .await
                .expect("enqueue");
        }
        let mut at = JAN_5;
        while at < NOW_MS {
            for event in [
                QueueStatEvent::Offered,
                QueueStatEvent::Answered { wait_ms: 25_000 },
                QueueStatEvent::Abandoned { wait_ms: 9_000 },
            ] {
                store
                    .record_queue_stat(&format!("q{queue:02}"), event, at)
                    .await
                    .expect("record");
            }
            at += 15 * 60_000;
        }
    }
}

fn bench_store(c: &mut Criterion, runtime: &Runtime, label: &str, store_url: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_prompts(&dir.path().join("prompts"));
    let (utc, chicago) = runtime.block_on(async {
        let utc = load(dir.path(), store_url, None).await;
        let mut chicago = load(dir.path(), store_url, Some("America/Chicago")).await;
        // One desk, two ways of counting today.
        chicago.node.store = utc.node.store.clone();
        busy_day(&utc).await;
        (utc, chicago)
    });
    let now = jiff::Timestamp::from_millisecond(NOW_MS).expect("a time");

    let board = runtime
        .block_on(careline::admin::queues::queue_board(&chicago.node, now))
        .expect("board");
    assert_eq!(board.len(), QUEUES);
    assert_eq!(board[0].waiting, WAITING_PER_QUEUE);
    // One call offered every quarter hour from Chicago's midnight up to 16:45.
    let quarter_hours_with_calls = (NOW_MS - LOCAL_DAY_START) / (15 * 60_000);
    assert_eq!(board[0].today.offered, quarter_hours_with_calls as u64);
    let agents_seen: u32 = board
        .iter()
        .map(|queue| {
            let a = queue.agents;
            a.available + a.reserved + a.on_call + a.wrap_up + a.on_break + a.offline
        })
        .sum();
    assert!(agents_seen > 0);

    let mut group = c.benchmark_group(format!("queues_request/{label}"));
    for (zone, state) in [("today_utc", &utc), ("today_chicago", &chicago)] {
        group.bench_function(zone, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let board = careline::admin::queues::queue_board(&state.node, now)
                        .await
                        .expect("board");
                    serde_json::to_vec(&board).expect("json")
                })
            });
        });
    }
    group.finish();

    c.bench_function(&format!("metrics_store_gauges/{label}"), |b| {
        b.iter(|| {
            runtime
                .block_on(careline::admin::queues::store_gauges(&utc.node, NOW_MS))
                .expect("gauges")
        });
    });
}

fn queue_board(c: &mut Criterion) {
    let runtime = runtime();
    bench_store(c, &runtime, "memory", None);
    let redis = TestRedis::start().expect("a redis-server of our own");
    bench_store(c, &runtime, "redis", Some(&redis.url()));
}

criterion_group!(benches, queue_board);
criterion_main!(benches);
