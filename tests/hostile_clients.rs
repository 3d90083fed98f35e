//! Clients that do not behave: peers that stop reading, go quiet, echo marks at once, hold
//! sockets open or send headers a byte at a time; and configurations and command lines that
//! would open the admin API or overflow the clock. Each against a real server on loopback
//! (`careline serve` as a process where the command line is the point).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use careline::admin::access::loopback_only;
use careline::config::Config;
use careline::connections::ConnectionLimits;
use careline::dispatch::router::Router;
use careline::store::Store;
use careline::store::memory::MemoryStore;
use common::{SHORT_FLOW, SHORT_PROMPTS, TestServer};
use futures_util::{SinkExt, StreamExt};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every caller waits in a queue whose one agent is on shift but not available, with endless
/// hold music.
const QUEUE_FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"
shutdown_grace_secs = 10

[prompts]
dir = "PROMPTS"
default_language = "en"

[ivr]
entry = "portal_queue"
operator = "portal_queue"

[nodes.portal_queue]
type = "queue"
queue = "portal"

[queues.portal]
skills = ["portal"]
hold_prompt = "hold_music"

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
dial = "+13125550101"
"#;

/// A server on [`QUEUE_FLOW`].
async fn queue_desk() -> TestServer {
    TestServer::start_configured(QUEUE_FLOW, &["en"], &["hold_music"], |_, _| {}).await
}

type RawStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A media stream opened by hand for a call the voice webhook announced, `start` sent: the
/// test decides everything it does from here, down to whether it reads.
async fn started_stream(server: &TestServer, call_sid: &str) -> RawStream {
    let token = voice_token(server, call_sid).await;
    let tcp = TcpStream::connect(address(server)).await.expect("connects");
    started_stream_on(server, call_sid, &token, tcp).await
}

/// The stream token the voice webhook hands out for `call_sid`.
async fn voice_token(server: &TestServer, call_sid: &str) -> String {
    let twiml = plain_client()
        .post(format!("{}/twilio/voice", server.base_url))
        .form(&[("CallSid", call_sid), ("From", "+13125550101")])
        .send()
        .await
        .expect("voice webhook")
        .text()
        .await
        .expect("twiml");
    twiml
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a token parameter")
        .to_owned()
}

/// [`started_stream`] with `token` over `tcp`, a connection to the server set up as the test
/// likes.
async fn started_stream_on(
    server: &TestServer,
    call_sid: &str,
    token: &str,
    tcp: TcpStream,
) -> RawStream {
    let (mut socket, _) =
        tokio_tungstenite::client_async(server.ws_url(), MaybeTlsStream::Plain(tcp))
            .await
            .expect("stream opens");
    let start = format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC1","streamSid":"MZ{call_sid}","callSid":"{call_sid}","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"from":"+13125550101","token":"{token}"}}}},"streamSid":"MZ{call_sid}"}}"#
    );
    socket
        .send(Message::text(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        ))
        .await
        .expect("connected sent");
    socket.send(Message::text(start)).await.expect("start sent");
    socket
}

/// A peer that keeps its call up with media and echoes, in order and as fast as it can, every
/// mark careline may have sent (`pace:1`, `pace:2`, ...), but never reads a byte, over a
/// connection with a small receive buffer: what careline writes piles up in the sockets until
/// a write cannot go on.
async fn a_peer_that_stops_reading(server: &TestServer, call_sid: &str) -> StuckReader {
    let token = voice_token(server, call_sid).await;
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096)
        .expect("a small receive buffer");
    let tcp = tcp.connect(address(server)).await.expect("connects");
    let socket = started_stream_on(server, call_sid, &token, tcp).await;
    let (mut sink, unread) = socket.split();
    let sid = format!("MZ{call_sid}");
    let writer = tokio::spawn(async move {
        let payload = "/".repeat(212) + "8=";
        let mut mark = 0u64;
        for n in 1u64.. {
            let media = format!(
                r#"{{"event":"media","sequenceNumber":"{n}","media":{{"track":"inbound","chunk":"{n}","timestamp":"{}","payload":"{payload}"}},"streamSid":"{sid}"}}"#,
                n * 20
            );
            if sink.send(Message::text(media)).await.is_err() {
                return;
            }
            for _ in 0..25 {
                mark += 1;
                let echo = format!(
                    r#"{{"event":"mark","sequenceNumber":"{n}","streamSid":"{sid}","mark":{{"name":"pace:{mark}"}}}}"#
                );
                if sink.send(Message::text(echo)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    StuckReader {
        _unread: unread,
        writer,
    }
}

/// See [`a_peer_that_stops_reading`]; stops writing when dropped.
struct StuckReader {
    _unread: futures_util::stream::SplitStream<RawStream>,
    writer: tokio::task::JoinHandle<()>,
}

impl Drop for StuckReader {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// A counter or gauge from `/metrics` (0 if absent).
async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = plain_client()
        .get(format!("{}/metrics", server.base_url))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Read what careline sends until it closes the stream; the close code.
async fn read_until_closed(socket: &mut RawStream) -> Option<u16> {
    while let Some(message) = socket.next().await {
        match message {
            Ok(Message::Close(frame)) => return frame.map(|frame| u16::from(frame.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

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

/// A `careline serve` process, killed when dropped, its log in a file.
struct ServeProcess {
    process: tokio::process::Child,
    log: PathBuf,
}

impl ServeProcess {
    /// Start `careline serve --config config` with `args`, no admin tokens, and wait until it
    /// answers `/healthz` at `reach`.
    async fn start(config: &Path, args: &[&str], reach: SocketAddr) -> ServeProcess {
        let log = config.with_extension("log");
        let file = || std::fs::File::create(&log).expect("log file");
        let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_careline"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("CARELINE_ADMIN_TOKENS")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file())
            .kill_on_drop(true)
            .spawn()
            .expect("careline starts");
        let mut serving = ServeProcess { process, log };
        let client = plain_client();
        let give_up = tokio::time::Instant::now() + PROCESS_LIMIT;
        while tokio::time::Instant::now() < give_up {
            if let Ok(Some(status)) = serving.process.try_wait() {
                panic!("careline exited ({status}):\n{}", serving.log());
            }
            let healthy = client
                .get(format!("http://{reach}/healthz"))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if healthy {
                return serving;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("careline did not answer /healthz:\n{}", serving.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A client that never goes through a proxy from the environment.
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// An address of this machine other than loopback (the one its default route leaves from),
/// if it has one. Connecting a UDP socket sends nothing; it only picks the route.
fn non_loopback_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A port free on every address now (another process may take it before careline does).
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn listen_on_every_address_keeps_the_admin_api_closed_without_tokens() {
    let port = free_port();
    let loopback = SocketAddr::from(([127, 0, 0, 1], port));
    // The file says loopback, and so does the public URL: only `--listen` opens it up.
    let (_dir, config) = configuration(SHORT_FLOW, &loopback.to_string());
    let wildcard = format!("0.0.0.0:{port}");
    let Some(outside) = non_loopback_address() else {
        // No address but loopback here: the rule itself, with what `--listen` binds.
        let bound: SocketAddr = wildcard.parse().expect("address");
        assert!(!loopback_only(bound, &format!("http://{loopback}")));
        return;
    };
    let careline = ServeProcess::start(&config, &["--listen", &wildcard], loopback).await;
    let client = plain_client();
    for from in [outside, loopback.ip()] {
        let url = format!("http://{}/api/v1/agents", SocketAddr::new(from, port));
        let answer = client.get(&url).send().await.expect("careline answers");
        assert_eq!(
            answer.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "GET {url} without a token"
        );
    }
    let log = careline.log();
    assert_eq!(
        log.matches("CARELINE_ADMIN_TOKENS is not set").count(),
        1,
        "one warning line at start-up:\n{log}"
    );
    drop(careline);

    // The same file with the listener where it says: open to this machine.
    let careline = ServeProcess::start(&config, &[], loopback).await;
    let answer = client
        .get(format!("http://{loopback}/api/v1/agents"))
        .send()
        .await
        .expect("careline answers");
    assert_eq!(
        answer.status(),
        reqwest::StatusCode::OK,
        "{}",
        careline.log()
    );
}

#[tokio::test]
async fn a_loopback_listener_behind_a_public_url_stays_closed_without_tokens() {
    // As behind a TLS proxy on the same host: loopback bound, reached at a public name.
    let flow = SHORT_FLOW.replace("PUBLIC_URL", "https://ivr.example.org");
    let server =
        common::TestServer::start_configured(&flow, &["en", "es"], &SHORT_PROMPTS, |_, _| {}).await;
    assert!(server.state.access.refuses_everyone());
    let answer = plain_client()
        .get(format!("{}/api/v1/agents", server.base_url))
        .send()
        .await
        .expect("careline answers");
    assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn a_lower_case_bearer_scheme_is_accepted() {
    let server = common::TestServer::start_short("", |_, state| {
        common::http::require_tokens(state, &common::http::every_role());
    })
    .await;
    let answer = plain_client()
        .get(format!("{}/api/v1/agents", server.base_url))
        .header("authorization", format!("bearer {}", common::http::VIEWER))
        .send()
        .await
        .expect("careline answers");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    server.stop().await;
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

#[tokio::test]
async fn a_queued_stream_that_goes_quiet_is_ended_and_counted_as_abandoned() {
    let server = queue_desk().await;
    let mut socket = started_stream(&server, "CA0quiet").await;
    // It reads, but sends nothing more: no media, no mark echoes, no close.
    let closed = tokio::time::timeout(Duration::from_secs(30), read_until_closed(&mut socket))
        .await
        .expect("careline ends a quiet stream");
    assert_eq!(closed, Some(1000));
    let mut abandoned = 0;
    for _ in 0..100 {
        abandoned = metric(&server, "careline_calls_abandoned_total").await;
        if abandoned == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(abandoned, 1, "a caller gone while queued is abandoned");
    server.stop().await;
}

// That such a peer is dropped once a write waits 5 s, and counted, is shown with paused time in
// `src/call/tests.rs`: here, with audio sent in real time, filling the kernel's buffers of a
// loopback connection (a 64 KiB MSS) takes minutes.
#[tokio::test]
async fn shutdown_ends_soon_after_its_grace_period_with_a_peer_that_stopped_reading() {
    let grace = Duration::from_secs(1);
    let (_dir, server) = queue_desk_with_grace(grace).await;
    let _peer = a_peer_that_stopped_reading_for_a_while(&server).await;
    server.shutdown.cancel();
    // Liveness, not timing: without bounded writes this never ended.
    let stopped = tokio::time::timeout(grace + careline::server::AFTER_GRACE * 5, server.handle)
        .await
        .expect("shutdown ends within the grace period and a second (and some slack)");
    stopped.expect("server task").expect("server stops cleanly");
}

/// A stuck peer on `server` that has been pushing marks for two seconds.
async fn a_peer_that_stopped_reading_for_a_while(server: &TestServer) -> StuckReader {
    let peer = a_peer_that_stops_reading(server, "CA0shutdown").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    peer
}

/// [`queue_desk`] with calls given `grace` to finish at shutdown; the folder it runs from.
async fn queue_desk_with_grace(grace: Duration) -> (TempDir, TestServer) {
    let dir = TempDir::new().expect("tempdir");
    let prompts = dir.path().join("prompts");
    common::write_prompts(&prompts, &["en"], &["hold_music"], 240);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let path = dir.path().join("careline.toml");
    std::fs::write(
        &path,
        QUEUE_FLOW
            .replace("PUBLIC_URL", &common::base_url(&listener))
            .replace("PROMPTS", &prompts.display().to_string()),
    )
    .expect("write config");
    let (loaded, _) =
        careline::server::load_config(&path).unwrap_or_else(|error| panic!("{error}"));
    let server = TestServer::serve(listener, &loaded, grace, |_, _| {}).await;
    (dir, server)
}

#[tokio::test]
async fn a_peer_echoing_marks_at_once_gets_audio_no_faster_than_real_time() {
    let server = queue_desk().await;
    let began = tokio::time::Instant::now();
    let mut socket = started_stream(&server, "CA0echo").await;
    let listen_for = Duration::from_secs(4);
    let mut audio_bytes = 0usize;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout_at(began + listen_for, socket.next()).await
    {
        let Message::Text(text) = message else {
            continue;
        };
        let message: serde_json::Value = serde_json::from_str(&text).expect("JSON from careline");
        match message["event"].as_str() {
            Some("media") => {
                let payload = message["media"]["payload"].as_str().unwrap_or_default();
                audio_bytes += payload.len() / 4 * 3;
            }
            Some("mark") => {
                let echo = serde_json::json!({
                    "event": "mark",
                    "sequenceNumber": "2",
                    "streamSid": message["streamSid"],
                    "mark": message["mark"],
                });
                socket
                    .send(Message::text(echo.to_string()))
                    .await
                    .expect("echo sent");
            }
            _ => {}
        }
    }
    let elapsed = began.elapsed();
    // μ-law at 8 kHz: 8 bytes a millisecond.
    let audio = Duration::from_millis(audio_bytes as u64 / 8);
    assert!(
        audio <= elapsed + careline::call::player::LEAD,
        "{audio:?} of audio in {elapsed:?}"
    );
    assert!(audio > Duration::ZERO, "hold music was sent");
    server.stop().await;
}

/// [`TestServer::start`]'s short flow with the connection cap and HTTP timeouts set.
async fn desk_with_limits(limits: ConnectionLimits) -> TestServer {
    TestServer::start_short("", move |_, state| state.limits = limits).await
}

/// Generous limits, for a test to tighten the one it is about.
const ROOMY: ConnectionLimits = ConnectionLimits {
    max_connections: 2048,
    header_timeout: Duration::from_secs(60),
    idle_timeout: Duration::from_secs(60),
    body_timeout: Duration::from_secs(60),
};

fn address(server: &TestServer) -> SocketAddr {
    server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .expect("server address")
}

/// Read from `tcp` until careline closes it (`true`) or `within` passes (`false`); what it
/// sent meanwhile is appended to `got`.
async fn closed_within(tcp: &mut TcpStream, within: Duration, got: &mut Vec<u8>) -> bool {
    use tokio::io::AsyncReadExt as _;
    let reading = async {
        let mut buffer = [0u8; 4096];
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(within, reading).await.is_ok()
}

async fn send(tcp: &mut TcpStream, bytes: &str) {
    use tokio::io::AsyncWriteExt as _;
    tcp.write_all(bytes.as_bytes()).await.expect("request sent");
}

#[tokio::test]
async fn an_idle_flood_beyond_the_cap_closes_the_quietest_and_calls_still_get_through() {
    let cap = 32;
    let server = desk_with_limits(ConnectionLimits {
        max_connections: cap,
        ..ROOMY
    })
    .await;
    let mut flood = Vec::new();
    for n in 0..300 {
        let mut tcp = TcpStream::connect(address(&server))
            .await
            .expect("connects");
        // Every third one starts a request and never finishes its headers.
        if n % 3 == 0 {
            send(&mut tcp, "GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        }
        flood.push(tcp);
    }
    let health = plain_client()
        .get(format!("{}/healthz", server.base_url))
        .send()
        .await
        .expect("/healthz answers during the flood");
    assert_eq!(health.status(), 200);
    let twiml = plain_client()
        .post(format!("{}/twilio/voice", server.base_url))
        .form(&[("CallSid", "CA0flood"), ("From", "+13125550101")])
        .send()
        .await
        .expect("the voice webhook answers during the flood");
    assert_eq!(twiml.status(), 200);
    assert!(twiml.text().await.expect("TwiML").contains("<Stream"));
    let counters = server.state.node.metrics.counters();
    assert!(
        counters.http_connections <= cap as u64,
        "{} open, over the cap of {cap}",
        counters.http_connections
    );
    assert!(
        counters.http_connections_displaced >= 300 - cap as u64,
        "{counters:?}"
    );
    assert_eq!(counters.http_connections_refused, 0, "{counters:?}");
    // What was displaced is closed for its client too.
    let mut closed = 0;
    for tcp in &mut flood {
        if closed_within(tcp, Duration::from_millis(100), &mut Vec::new()).await {
            closed += 1;
        }
    }
    assert!(closed >= 300 - cap, "{closed} of the flood closed");
    drop(flood);
    server.stop().await;
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_closed_after_the_header_timeout() {
    let server = desk_with_limits(ConnectionLimits {
        header_timeout: Duration::from_secs(1),
        ..ROOMY
    })
    .await;
    let mut tcp = TcpStream::connect(address(&server))
        .await
        .expect("connects");
    send(&mut tcp, "GET /healthz HTTP/1.1\r\n").await;
    // A header byte now and then, never the blank line that ends them.
    let trickle = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            use tokio::io::AsyncWriteExt as _;
            if tcp.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), trickle)
        .await
        .expect("careline closes a client that trickles its headers");
    assert!(closed_within(&mut tcp, Duration::from_secs(5), &mut Vec::new()).await);
    assert_eq!(timed_out(&server), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed_after_the_idle_timeout() {
    let limits = ConnectionLimits {
        idle_timeout: Duration::from_secs(1),
        ..ROOMY
    };
    let answer = answer_before_a_timeout(limits, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_request_body_that_never_ends_is_answered_400_after_the_body_timeout() {
    let limits = ConnectionLimits {
        body_timeout: Duration::from_secs(1),
        ..ROOMY
    };
    let request = "POST /twilio/voice HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nCallSid=CA";
    let answer = answer_before_a_timeout(limits, request).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// What careline answers `request`, sent on a fresh connection to a desk with `limits`, before
/// it closes the connection for a timeout (which it counts).
async fn answer_before_a_timeout(limits: ConnectionLimits, request: &str) -> String {
    let server = desk_with_limits(limits).await;
    let mut tcp = TcpStream::connect(address(&server))
        .await
        .expect("connects");
    send(&mut tcp, request).await;
    let mut answer = Vec::new();
    assert!(
        closed_within(&mut tcp, Duration::from_secs(15), &mut answer).await,
        "careline closes the connection"
    );
    assert_eq!(timed_out(&server), 1);
    server.stop().await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Connections closed (or requests refused) for a timeout so far.
fn timed_out(server: &TestServer) -> u64 {
    server
        .state
        .node
        .metrics
        .counters()
        .http_connections_timed_out
}

#[tokio::test]
async fn media_streams_hold_their_slots_and_a_newcomer_beyond_them_gets_503() {
    let cap = 3;
    let server =
        TestServer::start_configured(QUEUE_FLOW, &["en"], &["hold_music"], move |_, state| {
            state.limits = ConnectionLimits {
                max_connections: cap,
                ..ROOMY
            }
        })
        .await;
    let mut streams = Vec::new();
    for n in 0..cap {
        streams.push(started_stream(&server, &format!("CA0cap{n}")).await);
    }
    // Every slot carries a call: the webhook connections that set them up were displaced.
    let mut tcp = TcpStream::connect(address(&server))
        .await
        .expect("connects");
    send(&mut tcp, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut answer = Vec::new();
    assert!(closed_within(&mut tcp, Duration::from_secs(15), &mut answer).await);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let counters = server.state.node.metrics.counters();
    assert_eq!(counters.http_connections_refused, 1, "{counters:?}");
    assert_eq!(counters.http_connections, cap as u64, "{counters:?}");
    // A call that ends gives its slot back.
    let mut ended = streams.pop().expect("a stream");
    ended.close(None).await.expect("closes");
    read_until_closed(&mut ended).await;
    let mut health = None;
    for _ in 0..100 {
        match plain_client()
            .get(format!("{}/healthz", server.base_url))
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => {
                health = Some(response);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(health.is_some(), "a slot came back when a call ended");
    drop(streams);
    server.stop().await;
}
