//! Several careline nodes as real processes on one test Redis, behind a real HAProxy.
//!
//! [`Cluster::start`] starts a `redis-server` of the test's own, N `careline serve` processes
//! (the binary this crate builds) on free loopback ports, and HAProxy in front of them. Every
//! node's `public_url` is the balancer's URL, so every webhook, every TwiML URL and every media
//! stream goes through HAProxy, which balances round robin with no stickiness, as in
//! production. The balancer's configuration is `deploy/haproxy.cfg` itself with only its
//! `global` section, its `bind` address and its `server` addresses replaced, so the tests run
//! what ships. Signatures are checked ([`TWILIO_TOKEN`]) and the admin API wants a token
//! ([`ADMIN_TOKEN`], a supervisor).
//!
//! A test can kill a node (`kill -9`), send it SIGTERM, wait for it to exit, read its log, ask
//! HAProxy which nodes are in service, and reach the admin API through the balancer or on one
//! node. Dropping the cluster stops every process it started and removes its files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use careline::store::test_redis::TestRedis;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

/// The Twilio auth token every node checks signatures with; the test caller signs with it.
pub const TWILIO_TOKEN: &str = "cluster-twilio-auth-token-0123456789";
/// A supervisor's token for the admin API.
pub const ADMIN_TOKEN: &str = "cluster-supervisor-token-0123456789";

/// How long a node may take to load its prompts and answer `/healthz`.
const NODE_STARTUP: Duration = Duration::from_secs(30);
/// How long HAProxy may take to see every node in service.
const BALANCER_STARTUP: Duration = Duration::from_secs(15);
/// Logging: careline's own lines (calls, streams, hand-offs) without per-frame detail.
const RUST_LOG: &str = "info";

/// Why the cluster cannot run on this machine, if it cannot: `haproxy` or `redis-server` is
/// missing (`scripts/test` installs both).
pub fn missing_tools() -> Option<String> {
    for (tool, version) in [("haproxy", "-v"), ("redis-server", "--version")] {
        let runs = Command::new(tool)
            .arg(version)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !runs {
            return Some(format!(
                "`{tool}` is not installed (scripts/test installs it with apt-get)"
            ));
        }
    }
    None
}

/// One `careline serve` process.
pub struct Node {
    /// `node1`, `node2`, … (HAProxy's server names too).
    pub name: String,
    /// `127.0.0.1:PORT`, where it listens.
    pub addr: String,
    pub pid: u32,
    /// `None` once it has exited and been reaped.
    process: Option<Child>,
    exit: Option<ExitStatus>,
    log: PathBuf,
}

impl Node {
    /// `http://ADDR`: the node itself, bypassing the balancer.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its stderr and stdout so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running (reaping it if it has exited).
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Some(process) = &mut self.process
            && let Ok(Some(status)) = process.try_wait()
        {
            self.exit = Some(status);
            self.process = None;
        }
        self.exit
    }

    /// Whether careline's `node` id names this process (it carries the pid).
    fn is_named_by(&self, node_id: &str) -> bool {
        node_id.contains(&format!("-{}-", self.pid))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// `http://127.0.0.1:PORT`: HAProxy's frontend, every node's `public_url`.
    pub balancer_url: String,
    balancer: Child,
    stats_socket: PathBuf,
    balancer_log: PathBuf,
    pub redis: TestRedis,
    http: reqwest::Client,
    /// Prompts, configuration, logs; removed on drop (after the processes above are gone).
    pub dir: TempDir,
}

impl Cluster {
    /// `nodes` careline nodes running `flow` (a configuration with `PUBLIC_URL` and `PROMPTS`
    /// placeholders; its `[store]` comes from `CARELINE_REDIS_URL`), every prompt of
    /// `prompt_ids` (and careline's own) a 240 ms tone in English, behind HAProxy. Returns once
    /// HAProxy answers and sees every node in service.
    pub async fn start(flow: &str, prompt_ids: &[&str], nodes: usize) -> Cluster {
        let dir = TempDir::new().expect("tempdir");
        let redis = super::redis::start();
        let prompts = dir.path().join("prompts");
        super::write_prompts(&prompts, &["en"], prompt_ids, 240);
        let balancer_port = free_port();
        let balancer_url = format!("http://127.0.0.1:{balancer_port}");
        let config = dir.path().join("careline.toml");
        std::fs::write(
            &config,
            flow.replace("PUBLIC_URL", &balancer_url)
                .replace("PROMPTS", &prompts.display().to_string()),
        )
        .expect("write the configuration");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let mut started = Vec::new();
        for index in 1..=nodes {
            started.push(
                start_node(&format!("node{index}"), &config, &redis, dir.path(), &http).await,
            );
        }
        let stats_socket = dir.path().join("haproxy.sock");
        let balancer_config = dir.path().join("haproxy.cfg");
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.cfg"))
                .expect("deploy/haproxy.cfg");
        let servers: Vec<(String, String)> = started
            .iter()
            .map(|node| (node.name.clone(), node.addr.clone()))
            .collect();
        std::fs::write(
            &balancer_config,
            balancer_config_from(
                &shipped,
                &format!("127.0.0.1:{balancer_port}"),
                &servers,
                &stats_socket,
            ),
        )
        .expect("write the balancer's configuration");
        let balancer_log = dir.path().join("haproxy.log");
        let balancer = Command::new("haproxy")
            .arg("-f")
            .arg(&balancer_config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log_file(&balancer_log))
            .stderr(log_file(&balancer_log))
            .spawn()
            .expect("haproxy starts");
        let mut cluster = Cluster {
            nodes: started,
            balancer_url,
            balancer,
            stats_socket,
            balancer_log,
            redis,
            http,
            dir,
        };
        cluster.wait_for_balancer().await;
        cluster
    }

    async fn wait_for_balancer(&mut self) {
        let give_up = Instant::now() + BALANCER_STARTUP;
        loop {
            if let Ok(Some(status)) = self.balancer.try_wait() {
                panic!(
                    "haproxy exited ({status}) at start; its log:\n{}",
                    self.balancer_log()
                );
            }
            let answers = self
                .http
                .get(format!("{}/healthz", self.balancer_url))
                .send()
                .await
                .is_ok_and(|response| response.status() == StatusCode::OK);
            let names: Vec<String> = self.nodes.iter().map(|node| node.name.clone()).collect();
            if answers && self.wait_in_service(&names, Duration::ZERO).await {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "HAProxy never saw every node in service: {:?}; its log:\n{}",
                self.server_states().await,
                self.balancer_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// HAProxy's view of each node: `UP`, `DOWN`, `UP 1/2` (coming up), … by server name.
    pub async fn server_states(&self) -> HashMap<String, String> {
        let Ok(csv) = stats_command(&self.stats_socket, "show stat").await else {
            return HashMap::new();
        };
        let mut lines = csv.lines();
        let Some(header) = lines.next() else {
            return HashMap::new();
        };
        let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        let column = |name: &str| columns.iter().position(|column| *column == name);
        let (Some(proxy), Some(server), Some(status)) =
            (column("pxname"), column("svname"), column("status"))
        else {
            return HashMap::new();
        };
        lines
            .map(|line| line.split(',').collect::<Vec<&str>>())
            .filter(|fields| fields.get(proxy) == Some(&"careline_nodes"))
            .filter_map(|fields| {
                let name = fields.get(server)?;
                let state = fields.get(status)?;
                (*name != "BACKEND").then(|| (name.to_string(), state.to_string()))
            })
            .collect()
    }

    /// Wait up to `limit` until HAProxy has each of `names` in service (`UP`); whether it did.
    pub async fn wait_in_service(&self, names: &[String], limit: Duration) -> bool {
        self.wait_for_states(limit, |states| {
            names
                .iter()
                .all(|name| states.get(name).is_some_and(|state| state == "UP"))
        })
        .await
    }

    /// Wait up to `limit` until HAProxy has taken `name` out of service; whether it did.
    pub async fn wait_out_of_service(&self, name: &str, limit: Duration) -> bool {
        self.wait_for_states(limit, |states| {
            states
                .get(name)
                .is_some_and(|state| state.starts_with("DOWN"))
        })
        .await
    }

    async fn wait_for_states(
        &self,
        limit: Duration,
        done: impl Fn(&HashMap<String, String>) -> bool,
    ) -> bool {
        let give_up = Instant::now() + limit;
        loop {
            if done(&self.server_states().await) {
                return true;
            }
            if Instant::now() >= give_up {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every line of every node's log that contains `needle`, after the node's name.
    pub fn log_lines(&self, needle: &str) -> String {
        let mut found = String::new();
        for node in &self.nodes {
            for line in node.log().lines().filter(|line| line.contains(needle)) {
                found.push_str(&format!("{}: {line}\n", node.name));
            }
        }
        found
    }

    pub fn balancer_log(&self) -> String {
        std::fs::read_to_string(&self.balancer_log).unwrap_or_default()
    }

    /// `ws://…/twilio/media` through the balancer, as careline's TwiML names it.
    pub fn media_url(&self) -> String {
        format!(
            "{}/twilio/media",
            self.balancer_url.replacen("http", "ws", 1)
        )
    }

    /// `kill -9` node `index` (0-based) and reap it.
    pub fn kill(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        if let Some(mut process) = node.process.take() {
            let _ = process.kill();
            node.exit = process.wait().ok();
        }
    }

    /// Send SIGTERM to node `index`: it drains and exits.
    pub fn terminate(&mut self, index: usize) {
        let pid = self.nodes[index].pid.to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}: {status}");
    }

    /// Wait up to `limit` for node `index` to exit; its exit status if it did.
    pub async fn wait_for_exit(&mut self, index: usize, limit: Duration) -> Option<ExitStatus> {
        let give_up = Instant::now() + limit;
        loop {
            if let Some(status) = self.nodes[index].try_exit() {
                return Some(status);
            }
            if Instant::now() >= give_up {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Indexes of the nodes still running.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&index| self.nodes[index].is_running())
            .collect()
    }

    /// Which node a `node` id from careline's API names, if one of ours.
    pub fn node_named(&self, node_id: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.is_named_by(node_id))
    }

    /// `GET path` through the balancer with the supervisor's token, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.get_from(&self.balancer_url, path).await
    }

    /// `GET path` on `base` (the balancer or one node's [`Node::url`]), as JSON.
    pub async fn get_from(&self, base: &str, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {base}{path}: {error}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {base}{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("GET {path}: {error}: {text}"))
    }

    /// Set `agent`'s status (`available`, `break`, `offline`) through the balancer.
    pub async fn set_agent_status(&self, agent: &str, status: &str) {
        let url = format!("{}/api/v1/agents/{agent}/status", self.balancer_url);
        let response = self
            .http
            .put(&url)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "status": status }).to_string())
            .send()
            .await
            .unwrap_or_else(|error| panic!("PUT {url}: {error}"));
        let code = response.status();
        assert!(
            code.is_success(),
            "PUT {url} {status}: {code} {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Each call some running node carries, with the index of that node, from each node's
    /// `/api/v1/calls` (asked directly): the call's `node` field when careline gives one;
    /// otherwise the node that listed it, or, if several list it (a cluster-wide list without
    /// `node`), the node whose log last says its media stream started.
    pub async fn calls_by_node(&mut self) -> HashMap<String, (usize, Value)> {
        let mut listed_by: HashMap<String, (Vec<usize>, Value)> = HashMap::new();
        for index in self.running() {
            let listed = self
                .get_from(&self.nodes[index].url(), "/api/v1/calls")
                .await;
            for call in listed.as_array().cloned().unwrap_or_default() {
                let Some(call_sid) = call["call_sid"].as_str().map(str::to_owned) else {
                    continue;
                };
                let entry = listed_by
                    .entry(call_sid)
                    .or_insert_with(|| (Vec::new(), call.clone()));
                entry.0.push(index);
            }
        }
        listed_by
            .into_iter()
            .filter_map(|(call_sid, (listers, call))| {
                let carrier = match (call["node"].as_str(), listers.as_slice()) {
                    (Some(node_id), _) => self.node_named(node_id)?,
                    (None, [only]) => *only,
                    (None, _) => self.streaming_node_in_logs(&call_sid)?,
                };
                Some((call_sid, (carrier, call)))
            })
            .collect()
    }

    /// The node whose log's last word on `call_sid`'s media stream is that it started.
    pub fn streaming_node_in_logs(&self, call_sid: &str) -> Option<usize> {
        self.nodes.iter().position(|node| {
            node.process.is_some()
                && node
                    .log()
                    .lines()
                    .rev()
                    .filter(|line| line.contains(call_sid))
                    .find_map(|line| {
                        if line.contains("media stream started") {
                            Some(true)
                        } else if line.contains("media stream ended") {
                            Some(false)
                        } else {
                            None
                        }
                    })
                    .unwrap_or(false)
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nodes first (they hold streams through the balancer), then the balancer; the Redis
        // and the directory go when their fields drop.
        self.nodes.clear();
        let _ = self.balancer.kill();
        let _ = self.balancer.wait();
    }
}

/// Start `careline serve` as `name`, on a free port, and wait until it answers `/healthz`.
async fn start_node(
    name: &str,
    config: &Path,
    redis: &TestRedis,
    dir: &Path,
    http: &reqwest::Client,
) -> Node {
    let log = dir.join(format!("{name}.log"));
    // Another process may take the free port between the probe and careline's bind.
    for _ in 0..3 {
        let addr = format!("127.0.0.1:{}", free_port());
        let process = Command::new(env!("CARGO_BIN_EXE_careline"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", &addr])
            .env("CARELINE_REDIS_URL", redis.url())
            .env("CARELINE_TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
            .env("CARELINE_ADMIN_TOKENS", format!("supervisor:{ADMIN_TOKEN}"))
            .env("RUST_LOG", RUST_LOG)
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .expect("careline starts");
        let mut node = Node {
            name: name.to_owned(),
            pid: process.id(),
            addr,
            process: Some(process),
            exit: None,
            log: log.clone(),
        };
        let give_up = Instant::now() + NODE_STARTUP;
        while node.is_running() && Instant::now() < give_up {
            let healthy = http
                .get(format!("{}/healthz", node.url()))
                .send()
                .await
                .is_ok_and(|response| response.status() == StatusCode::OK);
            if healthy {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !node.is_running(),
            "{name} did not answer /healthz within {NODE_STARTUP:?}; its log:\n{}",
            node.log()
        );
    }
    panic!(
        "{name} could not start; its log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// `shipped` with a `global` section of the test's own (a stats socket at `stats`), its first
/// `bind` listening on `listen`, and its `server` lines replaced by one per `(name, address)`
/// with the options of the first shipped `server` line.
pub fn balancer_config_from(
    shipped: &str,
    listen: &str,
    servers: &[(String, String)],
    stats: &Path,
) -> String {
    let mut config = format!(
        "global\n    log stdout format raw local0 info\n    stats socket {} mode 600 level admin\n",
        stats.display()
    );
    let mut in_global = false;
    let mut bound = false;
    let mut served = false;
    for line in shipped.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let starts_section = !line.starts_with(char::is_whitespace)
            && words.first().is_some_and(|word| !word.starts_with('#'));
        if starts_section {
            in_global = words.first() == Some(&"global");
        }
        if in_global {
            continue;
        }
        match words.first() {
            Some(&"bind") => {
                if !bound {
                    config.push_str(&format!("    bind {listen}\n"));
                    bound = true;
                }
            }
            Some(&"server") => {
                if !served {
                    let options = words.get(3..).unwrap_or_default().join(" ");
                    for (name, address) in servers {
                        config.push_str(&format!("    server {name} {address} {options}\n"));
                    }
                    served = true;
                }
            }
            _ => {
                config.push_str(line);
                config.push('\n');
            }
        }
    }
    assert!(
        bound && served,
        "deploy/haproxy.cfg has no `bind` or no `server` line for the tests to replace"
    );
    config
}

/// Send one command to HAProxy's stats socket; its whole answer.
async fn stats_command(socket: &Path, command: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("the stats socket did not answer"))??;
    Ok(answer)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("local address")
        .port()
}

/// `path` opened for appending, for a child's stdout or stderr.
fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a log file")
}
