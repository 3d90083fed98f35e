//! Three careline nodes on one Redis behind HAProxy with no stickiness (issue 12): calls
//! through the balancer are each answered exactly once; callers whose node is killed are back
//! in their places within 3 s and answered in order; SIGTERM drains a node without dropping
//! or silencing anyone; a stream token works once, on any node; a Redis that freezes across a
//! queue join leaves no ghost in the queue.
//!
//! Each test starts its own cluster (`common::cluster`: real `careline serve` processes and a
//! real `haproxy` running `deploy/haproxy.cfg`), and they run one at a time: the figures they
//! print (time back in the queue, silence heard, time to exit) mean something only on a machine
//! that is not running another cluster at once. Skipped, with the reason printed, when
//! `haproxy` or `redis-server` is missing; `scripts/test` installs both.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use careline::caller::stream::random_sid;
use careline::caller::{
    CallEnd, CallOptions, CallReport, DialBehaviour, DialStatus, Heard, MediaStreamClient,
    StreamIds, TranscriptEntry, place_call,
};
use careline::twilio::signature::{SIGNATURE_HEADER, signature};
use careline::twilio::twiml::{self, DialTarget, Verb};
use common::cluster::{Cluster, TWILIO_TOKEN, missing_tools};
use common::script;
use serde_json::Value;
use tokio::task::JoinHandle;

/// Short prompts, a menu that loops (`2` → info → menu), a queue (`1`) served by four agents
/// who are rung on a number, and a transfer when the queue cannot take the caller.
const FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 10

[prompts]
dir = "PROMPTS"
default_language = "en"

[store]
key_prefix = "careline-cluster"

[ivr]
entry = "main"
operator = "desk"
inter_digit_timeout_secs = 1
max_retries = 2

[nodes.main]
type = "menu"
prompt = ["welcome", "main_menu"]
options = { "1" = "desk", "2" = "info" }

[nodes.info]
type = "say"
prompt = ["info"]
next = "main"

[nodes.desk]
type = "queue"
queue = "portal"

[nodes.outsourced]
type = "transfer"
number = "+18005550199"
timeout_secs = 5

[queues.portal]
skills = ["portal"]
when_closed = "outsourced"
max_wait_secs = 600
announce_every_secs = 120
ring_timeout_secs = 5
wrap_up_secs = 0

[[agents]]
id = "agent1"
name = "Agent One"
skills = ["portal"]
dial = "+13125550101"

[[agents]]
id = "agent2"
name = "Agent Two"
skills = ["portal"]
dial = "+13125550102"

[[agents]]
id = "agent3"
name = "Agent Three"
skills = ["portal"]
dial = "+13125550103"

[[agents]]
id = "agent4"
name = "Agent Four"
skills = ["portal"]
dial = "+13125550104"
"#;

const PROMPTS: [&str; 3] = ["welcome", "main_menu", "info"];
const AGENTS: [(&str, &str); 4] = [
    ("agent1", "+13125550101"),
    ("agent2", "+13125550102"),
    ("agent3", "+13125550103"),
    ("agent4", "+13125550104"),
];
const NODES: usize = 3;

/// The far end of every `<Dial>`: picks up after a short ring, talks briefly.
const PICKS_UP: DialBehaviour = DialBehaviour::Answer {
    after: Duration::from_millis(300),
    talk: Duration::from_millis(500),
};

/// Into the queue once the menu has played.
const TO_THE_QUEUE: &str = "w1";
/// Round the menu and the info prompt, again and again: audio all the time, never a wait for
/// a key that would be silence by design.
fn menu_loop() -> String {
    vec!["w2"; 60].join(",")
}

/// One cluster at a time (see the module's note).
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn cluster() -> Option<Cluster> {
    if let Some(reason) = missing_tools() {
        println!("skipped: {reason}");
        return None;
    }
    Some(Cluster::start(FLOW, &PROMPTS, NODES).await)
}

/// A call placed in the background, watched as it happens.
struct Placed {
    call_sid: String,
    handle: JoinHandle<CallReport>,
    /// When careline first answered with `<Dial>`.
    dialed_at: Arc<Mutex<Option<Instant>>>,
    /// How many prompts have played to their end so far.
    prompts_played: Arc<Mutex<usize>>,
}

impl Placed {
    fn prompts_played(&self) -> usize {
        *self.prompts_played.lock().expect("lock")
    }

    /// The report, once the call is over (panics after `limit`).
    async fn report(self, limit: Duration) -> CallReport {
        tokio::time::timeout(limit, self.handle)
            .await
            .unwrap_or_else(|_| panic!("call {} still going after {limit:?}", self.call_sid))
            .expect("the call task")
    }
}

/// Place a call through the balancer, keying `digits`, hanging up after `max_secs` at the
/// latest; every `<Dial>` is picked up.
fn place(cluster: &Cluster, digits: &str, max_secs: u64) -> Placed {
    let call_sid = random_sid("CA");
    let (observer, mut entries) = tokio::sync::mpsc::unbounded_channel();
    let dialed_at = Arc::new(Mutex::new(None));
    let prompts_played = Arc::new(Mutex::new(0));
    tokio::spawn({
        let dialed_at = dialed_at.clone();
        let prompts_played = prompts_played.clone();
        async move {
            while let Some(entry) = entries.recv().await {
                match entry {
                    TranscriptEntry::Twiml(summary) if summary.starts_with("Dial") => {
                        dialed_at
                            .lock()
                            .expect("lock")
                            .get_or_insert_with(Instant::now);
                    }
                    TranscriptEntry::Played { .. } => *prompts_played.lock().expect("lock") += 1,
                    _ => {}
                }
            }
        }
    });
    let options = CallOptions::new(&cluster.balancer_url)
        .call_sid(&call_sid)
        .auth_token(TWILIO_TOKEN)
        .digits(script(digits))
        .max_duration(Duration::from_secs(max_secs))
        .dial(vec![PICKS_UP])
        .observer(observer);
    let handle = tokio::spawn(async move {
        place_call(options)
            .await
            .unwrap_or_else(|error| panic!("the call could not be placed: {error}"))
    });
    Placed {
        call_sid,
        handle,
        dialed_at,
        prompts_played,
    }
}

/// The call as the caller lived it, for assertion messages.
fn describe(report: &CallReport) -> String {
    let mut text = format!(
        "call {} ({:.1}s, ended {:?}, longest silence {:.2}s)\n",
        report.call_sid,
        report.duration.as_secs_f64(),
        report.ended,
        report.longest_silence.as_secs_f64()
    );
    for entry in &report.transcript {
        text.push_str(&format!("  {entry}\n"));
    }
    for close in &report.stream_closes {
        text.push_str(&format!("  stream close: {close:?}\n"));
    }
    for error in &report.protocol_errors {
        text.push_str(&format!("  protocol error: {error}\n"));
    }
    text
}

/// The caller reached an agent exactly once: one `<Dial>`, to an agent, answered; careline
/// kept to the protocol; careline hung up after the agent's call, as `/twilio/dial-status` does.
fn answered_once(report: &CallReport) -> Result<(), String> {
    if !report.protocol_errors.is_empty() {
        return Err(format!("protocol errors: {:?}", report.protocol_errors));
    }
    let dials = report.dials();
    match dials.as_slice() {
        [(DialTarget::Number(number), DialStatus::Completed)]
            if AGENTS.iter().any(|(_, dial)| dial == number) => {}
        _ => return Err(format!("dials {dials:?}, not one answered agent")),
    }
    if report.ended != CallEnd::Hangup {
        return Err(format!("ended {:?}", report.ended));
    }
    Ok(())
}

/// Try `check` every 100 ms until it gives a value or `limit` passes.
async fn eventually<T>(limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let give_up = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= give_up {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every agent is idle (no call offered, on or wrapping up), and each of `available` has
/// status `available`, as `/api/v1/agents` through the balancer says; what it says otherwise.
async fn agents_settled(cluster: &Cluster, available: &[&str]) -> Result<(), Value> {
    let agents = cluster.get("/api/v1/agents").await;
    let settled = agents.as_array().is_some_and(|agents| {
        agents.len() == AGENTS.len()
            && agents.iter().all(|agent| {
                agent["state"] == "idle"
                    && (!available.iter().any(|id| agent["id"] == *id)
                        || agent["status"] == "available")
            })
    });
    if settled { Ok(()) } else { Err(agents) }
}

/// Calls waiting in the portal queue, as `/api/v1/queues` through the balancer says.
async fn waiting(cluster: &Cluster) -> u64 {
    let queues = cluster.get("/api/v1/queues").await;
    queues
        .as_array()
        .and_then(|queues| queues.iter().find(|queue| queue["name"] == "portal"))
        .and_then(|queue| queue["waiting"].as_u64())
        .unwrap_or_else(|| panic!("no portal queue in {queues}"))
}

/// Wait until `call` is carried by a node in `state` (`queued`, `ivr`); the calls by node then.
/// Panics with what the caller and the nodes said if it never is.
async fn wait_until_listed(
    cluster: &mut Cluster,
    call: &mut Placed,
    state: &str,
) -> HashMap<String, (usize, Value)> {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = cluster.calls_by_node().await;
        if calls
            .get(&call.call_sid)
            .is_some_and(|(_, view)| view["state"] == state)
        {
            return calls;
        }
        if call.handle.is_finished() {
            let report = (&mut call.handle).await.expect("the call task");
            panic!(
                "the call ended instead of being {state}:\n{}\nthe nodes' log lines about it:\n{}",
                describe(&report),
                cluster.log_lines(&call.call_sid)
            );
        }
        assert!(
            Instant::now() < give_up,
            "call {} never listed as {state}; calls by node: {calls:?}\nthe nodes' log lines about it:\n{}",
            call.call_sid,
            cluster.log_lines(&call.call_sid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls listed as `state`, by the node carrying them.
fn count_by_node(calls: &HashMap<String, (usize, Value)>, state: &str) -> Vec<usize> {
    let mut counts = vec![0; NODES];
    for (node, view) in calls.values() {
        if view["state"] == state {
            counts[*node] += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_calls_through_the_balancer_are_each_answered_exactly_once() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let Some(cluster) = cluster().await else {
        return;
    };
    for (agent, _) in AGENTS {
        cluster.set_agent_status(agent, "available").await;
    }
    let started = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..30 {
        calls.push(place(&cluster, TO_THE_QUEUE, 50));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let mut failures = Vec::new();
    for call in calls {
        let report = call.report(Duration::from_secs(55)).await;
        if let Err(why) = answered_once(&report) {
            failures.push(format!("{why}\n{}", describe(&report)));
        }
    }
    println!(
        "30 calls through HAProxy over {NODES} nodes: {} answered exactly once, all done in {:.1}s",
        30 - failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of 30 calls were not answered exactly once; the first:\n{}\nthe first warnings on the nodes:\n{}",
        failures.len(),
        failures[0],
        cluster
            .log_lines(" WARN ")
            .lines()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let every_agent: Vec<&str> = AGENTS.iter().map(|(id, _)| *id).collect();
    let settled = eventually(Duration::from_secs(10), async || {
        agents_settled(&cluster, &every_agent).await.ok()
    })
    .await;
    assert!(
        settled.is_some(),
        "agents not all back to available and idle: {:?}",
        agents_settled(&cluster, &every_agent).await
    );
    assert_eq!(waiting(&cluster).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_whose_node_is_killed_are_back_in_their_places_within_3_s_and_answered_in_order() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let Some(mut cluster) = cluster().await else {
        return;
    };
    for (agent, _) in AGENTS {
        cluster.set_agent_status(agent, "offline").await;
    }
    // Round robin decides where each stream lands: place callers until one node carries five.
    let mut calls: Vec<Placed> = Vec::new();
    let (chosen, before) = loop {
        assert!(
            calls.len() < 16,
            "16 callers and no node carries five of them"
        );
        let mut call = place(&cluster, TO_THE_QUEUE, 58);
        let listed = wait_until_listed(&mut cluster, &mut call, "queued").await;
        calls.push(call);
        let counts = count_by_node(&listed, "queued");
        if let Some(node) = counts.iter().position(|&count| count >= 5) {
            break (node, listed);
        }
    };
    let places: HashMap<String, Value> = before
        .iter()
        .filter(|(_, (_, view))| view["state"] == "queued")
        .map(|(call_sid, (_, view))| (call_sid.clone(), view["position"].clone()))
        .collect();
    let on_chosen: Vec<String> = before
        .iter()
        .filter(|(_, (node, view))| *node == chosen && view["state"] == "queued")
        .map(|(call_sid, _)| call_sid.clone())
        .collect();
    println!(
        "{} callers waiting, {} of them on {}: kill -9",
        places.len(),
        on_chosen.len(),
        cluster.nodes[chosen].name
    );

    cluster.kill(chosen);
    let killed = Instant::now();
    let back = eventually(Duration::from_secs(10), async || {
        let now = cluster.calls_by_node().await;
        // Carried again (by a node still running), waiting, at the same place.
        places
            .iter()
            .all(|(call_sid, place)| {
                now.get(call_sid).is_some_and(|(node, view)| {
                    *node != chosen && view["state"] == "queued" && view["position"] == *place
                })
            })
            .then(|| killed.elapsed())
    })
    .await;
    let Some(back) = back else {
        panic!(
            "the killed node's callers never all came back to their places; before: {places:?}\nnow: {:?}\nwhat the nodes logged about them:\n{}",
            cluster.calls_by_node().await,
            on_chosen
                .iter()
                .map(|call_sid| cluster.log_lines(call_sid))
                .collect::<String>()
        );
    };
    println!(
        "the {} callers of the killed node were back in their places after {:.2}s",
        on_chosen.len(),
        back.as_secs_f64()
    );
    assert!(back <= Duration::from_secs(3), "back after {back:?}");
    assert_eq!(waiting(&cluster).await, places.len() as u64);

    cluster.set_agent_status("agent1", "available").await;
    let mut answered: Vec<(Instant, Value, String)> = Vec::new();
    for call in calls {
        let dialed_at = call.dialed_at.clone();
        let report = call.report(Duration::from_secs(60)).await;
        if let Err(why) = answered_once(&report) {
            panic!("{why}\n{}", describe(&report));
        }
        if on_chosen.contains(&report.call_sid) {
            assert!(
                report.transcript.contains(&TranscriptEntry::StreamLost),
                "the stream on the killed node did not break?\n{}",
                describe(&report)
            );
        }
        let dialed_at = dialed_at.lock().expect("lock").expect("dialed");
        answered.push((dialed_at, places[&report.call_sid].clone(), report.call_sid));
    }
    answered.sort_by_key(|(dialed_at, _, _)| *dialed_at);
    let order: Vec<&Value> = answered.iter().map(|(_, place, _)| place).collect();
    let mut expected = order.clone();
    expected.sort_by_key(|place| place.as_u64());
    assert_eq!(order, expected, "answered out of their places in the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_node_without_dropping_or_silencing_a_caller() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let Some(mut cluster) = cluster().await else {
        return;
    };
    for (agent, _) in AGENTS {
        cluster.set_agent_status(agent, "offline").await;
    }
    let menu = menu_loop();
    // Callers in the queue and in the menus, until one node carries some of each.
    let mut queued: Vec<Placed> = Vec::new();
    let mut in_menus: Vec<Placed> = Vec::new();
    let (chosen, listed) = loop {
        assert!(
            queued.len() < 8,
            "no node carries both a queued caller and one in the menus"
        );
        let mut call = place(&cluster, TO_THE_QUEUE, 45);
        wait_until_listed(&mut cluster, &mut call, "queued").await;
        queued.push(call);
        let mut call = place(&cluster, &menu, 25);
        let listed = wait_until_listed(&mut cluster, &mut call, "ivr").await;
        in_menus.push(call);
        let waiting = count_by_node(&listed, "queued");
        let browsing = count_by_node(&listed, "ivr");
        let best = (0..NODES)
            .filter(|&node| waiting[node] > 0 && browsing[node] > 0)
            .max_by_key(|&node| waiting[node] + browsing[node]);
        if let Some(node) = best
            && queued.len() >= 3
        {
            break (node, listed);
        }
    };
    let on_chosen = listed.values().filter(|(node, _)| *node == chosen).count();
    let played_before: Vec<usize> = in_menus.iter().map(Placed::prompts_played).collect();
    println!(
        "{} callers queued and {} in the menus; SIGTERM to {}, which carries {on_chosen}",
        queued.len(),
        in_menus.len(),
        cluster.nodes[chosen].name
    );

    cluster.terminate(chosen);
    let terminated = Instant::now();
    let out = cluster
        .wait_out_of_service(&cluster.nodes[chosen].name.clone(), Duration::from_secs(5))
        .await;
    let exit = cluster.wait_for_exit(chosen, Duration::from_secs(20)).await;
    let exit_after = terminated.elapsed();
    println!(
        "{} out of the balancer: {out}; exited {exit:?} after {:.2}s",
        cluster.nodes[chosen].name,
        exit_after.as_secs_f64()
    );

    cluster.set_agent_status("agent1", "available").await;
    cluster.set_agent_status("agent2", "available").await;
    let mut failures = Vec::new();
    let mut loudest_gap = (Duration::ZERO, String::new());
    for call in queued {
        let report = call.report(Duration::from_secs(50)).await;
        if let Err(why) = answered_once(&report) {
            failures.push(format!("queued caller: {why}\n{}", describe(&report)));
        }
        if report.longest_silence > loudest_gap.0 {
            loudest_gap = (report.longest_silence, report.call_sid.clone());
        }
        if report.longest_silence > Duration::from_millis(1500) {
            failures.push(format!(
                "queued caller heard silence\n{}",
                describe(&report)
            ));
        }
    }
    for (call, before) in in_menus.into_iter().zip(played_before) {
        let report = call.report(Duration::from_secs(30)).await;
        let played = report.played_prompts().len();
        // Still in the menus, as scripted, until the caller hung up at their time limit.
        let kept = report.protocol_errors.is_empty()
            && report.ended == CallEnd::CallerHungUp
            && report.dials().is_empty()
            && played > before;
        if !kept {
            failures.push(format!(
                "caller in the menus not kept ({before} prompts before SIGTERM, {played} at the end)\n{}",
                describe(&report)
            ));
        }
        if report.longest_silence > loudest_gap.0 {
            loudest_gap = (report.longest_silence, report.call_sid.clone());
        }
        if report.longest_silence > Duration::from_millis(1500) {
            failures.push(format!(
                "caller in the menus heard silence\n{}",
                describe(&report)
            ));
        }
    }
    println!(
        "longest silence any caller heard: {:.2}s ({})",
        loudest_gap.0.as_secs_f64(),
        loudest_gap.1
    );
    assert!(
        failures.is_empty(),
        "{} callers were dropped or left in silence; the first:\n{}\nthe drained node's log:\n{}",
        failures.len(),
        failures[0],
        cluster.nodes[chosen].log()
    );
    assert!(out, "HAProxy never took the draining node out of service");
    let exit = exit.expect("the node exits after SIGTERM");
    assert!(exit.success(), "exit status {exit}");
    assert!(
        exit_after <= Duration::from_secs(5),
        "the node took {exit_after:?} to exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_token_works_once_on_any_node() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let Some(cluster) = cluster().await else {
        return;
    };
    let call_sid = random_sid("CA");
    let account_sid = random_sid("AC");
    let voice_url = format!("{}/twilio/voice", cluster.balancer_url);
    let params: Vec<(String, String)> = [
        ("AccountSid", account_sid.as_str()),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("From", "+15555550100"),
        ("To", "+15555550199"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let response = reqwest::Client::new()
        .post(&voice_url)
        .header(
            SIGNATURE_HEADER,
            signature(TWILIO_TOKEN, &voice_url, &params),
        )
        .form(&params)
        .send()
        .await
        .expect("the voice webhook answers");
    assert!(response.status().is_success(), "{}", response.status());
    let verbs = twiml::parse(&response.text().await.expect("TwiML")).expect("valid TwiML");
    let Some(Verb::ConnectStream {
        url, parameters, ..
    }) = verbs.first()
    else {
        panic!("no <Connect><Stream> first: {verbs:?}");
    };
    assert_eq!(
        url,
        &cluster.media_url(),
        "the stream goes through the balancer"
    );
    let custom: std::collections::BTreeMap<String, String> = parameters.iter().cloned().collect();
    // Twilio signs the URL of the TwiML (the balancer's), whichever node the socket reaches.
    let upgrade_signature = signature(TWILIO_TOKEN, url, &[]);

    // The first stream on a node that did not take the webhook (when the log says which did),
    // the second on a third one.
    let webhook_node = cluster.nodes.iter().position(|node| {
        node.log()
            .lines()
            .any(|line| line.contains(&call_sid) && line.contains("incoming call"))
    });
    let first = (0..NODES)
        .find(|&node| Some(node) != webhook_node)
        .unwrap_or(0);
    let second = (0..NODES)
        .find(|&node| node != first && Some(node) != webhook_node)
        .unwrap_or((first + 1) % NODES);
    println!(
        "webhook on {:?}, first stream on {}, second on {}",
        webhook_node.map(|node| cluster.nodes[node].name.clone()),
        cluster.nodes[first].name,
        cluster.nodes[second].name
    );

    let open = async |node: usize| {
        let direct = format!("ws://{}/twilio/media", cluster.nodes[node].addr);
        let mut client = MediaStreamClient::connect_with_signature(
            &direct,
            Some(&upgrade_signature),
            StreamIds::for_call(&account_sid, &call_sid),
        )
        .await
        .expect("the upgrade is accepted");
        client.send_connected().await.expect("connected");
        client.send_start(custom.clone()).await.expect("start");
        client
    };
    let mut stream = open(first).await;
    let heard = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match stream.next_event().await {
                Heard::Audio { .. } => return Ok(()),
                Heard::Closed(close) => return Err(close),
                _ => {}
            }
        }
    })
    .await;
    match heard {
        Ok(Ok(())) => {}
        Ok(Err(close)) => panic!(
            "the token was refused on {}, which had not seen the call before: {close:?}\nits log about the call:\n{}",
            cluster.nodes[first].name,
            cluster.log_lines(&call_sid)
        ),
        Err(_) => panic!("no audio on the first stream within 3 s"),
    }

    let mut replay = open(second).await;
    let close = replay.wait_for_close(Duration::from_secs(3)).await;
    assert_eq!(
        close.as_ref().and_then(|close| close.code),
        Some(1008),
        "the token was accepted a second time on {}: {close:?}",
        cluster.nodes[second].name
    );
    // The refused replay did not end the call's stream either.
    let closed = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Heard::Closed(close) = stream.next_event().await {
                return close;
            }
        }
    })
    .await;
    assert!(closed.is_err(), "the first stream was closed: {closed:?}");
    let _ = stream.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_frozen_across_a_queue_join_leaves_no_ghost_in_the_queue() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let Some(cluster) = cluster().await else {
        return;
    };
    cluster.set_agent_status("agent1", "available").await;
    // A caller before, through the queue to agent1: Redis has run every script of a join
    // (Redis runs a late script only if it already knows it).
    let earlier = place(&cluster, TO_THE_QUEUE, 30)
        .report(Duration::from_secs(35))
        .await;
    answered_once(&earlier).unwrap_or_else(|why| panic!("{why}\n{}", describe(&earlier)));
    // The caller talks to whoever picks up for long enough to look for a ghost meanwhile.
    let call_sid = random_sid("CA");
    let (observer, mut entries) = tokio::sync::mpsc::unbounded_channel();
    let options = CallOptions::new(&cluster.balancer_url)
        .call_sid(&call_sid)
        .auth_token(TWILIO_TOKEN)
        .digits(script(TO_THE_QUEUE))
        .max_duration(Duration::from_secs(40))
        .dial(vec![DialBehaviour::Answer {
            after: Duration::from_millis(300),
            talk: Duration::from_secs(8),
        }])
        .observer(observer);
    let call = tokio::spawn(async move { place_call(options).await });
    // Freeze Redis once the welcome has played: the caller keys 1 right after the menu.
    loop {
        match entries.recv().await {
            Some(TranscriptEntry::Played { prompt, .. }) if prompt == "welcome" => break,
            Some(_) => {}
            None => {
                let report = call
                    .await
                    .expect("the call task")
                    .expect("the call is placed");
                panic!(
                    "the call ended before the welcome played:\n{}\nthe nodes' log lines about it:\n{}",
                    describe(&report),
                    cluster.log_lines(&call_sid)
                );
            }
        }
    }
    cluster.redis.freeze().expect("SIGSTOP redis");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.redis.thaw().expect("SIGCONT redis");
    let thawed = Instant::now();

    // For 4 s after Redis is back: is the call in the queue, or is an agent held for it?
    let mut seen_waiting = 0;
    let mut seen_reserved = None;
    while thawed.elapsed() < Duration::from_secs(4) && !call.is_finished() {
        seen_waiting = seen_waiting.max(waiting(&cluster).await);
        let agents = cluster.get("/api/v1/agents").await;
        if let Some(agent) = agents.as_array().and_then(|agents| {
            agents
                .iter()
                .find(|agent| agent["call_sid"] == call_sid.as_str())
        }) {
            seen_reserved.get_or_insert_with(|| agent.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = tokio::time::timeout(Duration::from_secs(40), call)
        .await
        .expect("the call ends")
        .expect("the call task")
        .expect("the call is placed");
    println!("{}", describe(&report));
    assert!(report.protocol_errors.is_empty(), "{}", describe(&report));
    let told_unavailable = report
        .played_prompts()
        .iter()
        .any(|prompt| prompt == "queue_unavailable");
    if told_unavailable {
        // The join failed and the caller went on (the transfer): nothing of the call may be
        // left in the queue or holding an agent once Redis runs the late command.
        assert_eq!(
            seen_waiting,
            0,
            "a ghost waited in the queue after Redis came back\n{}",
            cluster.log_lines(&call_sid)
        );
        assert!(
            seen_reserved.is_none(),
            "an agent was held for a caller who was not queued: {seen_reserved:?}\n{}",
            cluster.log_lines(&call_sid)
        );
    } else {
        // The join waited for Redis: the caller was queued and reached an agent, once.
        answered_once(&report).unwrap_or_else(|why| panic!("{why}\n{}", describe(&report)));
    }
    let settled = eventually(Duration::from_secs(10), async || {
        (waiting(&cluster).await == 0 && agents_settled(&cluster, &["agent1"]).await.is_ok())
            .then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "after the call: {} waiting, agents {:?}",
        waiting(&cluster).await,
        agents_settled(&cluster, &["agent1"]).await
    );
}
