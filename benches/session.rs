//! One call's session loop on the inbound hot path: `media` frames in through `run_session`
//! (classification, parse, streamSid check, the select over socket, timer and shutdown), with
//! the WebSocket itself replaced by an in-memory stream, so this is careline's own cost per
//! frame. Also the WebSocket layer on its own: reading one masked client frame with tungstenite,
//! at its default 128 KiB read buffer and at careline's.
//!
//! Run with `cargo bench --bench session`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use base64::Engine;
use careline::call::registry::CallRegistry;
use careline::call::session::{SessionContext, SessionEnd, run_session};
use careline::config::Config;
use careline::ivr::Flow;
use careline::media::prompt::{CHUNK_BYTES, PromptAudio, PromptLibrary};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_util::sync::CancellationToken;

const FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "goodbye"

[nodes.main]
type = "menu"
prompt = ["welcome"]
options = { "1" = "goodbye" }

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]
"#;

const STREAM_SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";
const CALL_SID: &str = "CA18ad3ab5a668481ce02b83e7395059f0";
const FRAMES: u64 = 5_000;

fn media_frame(sequence: u64) -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160]);
    format!(
        r#"{{"event":"media","sequenceNumber":"{sequence}","media":{{"track":"inbound","chunk":"{sequence}","timestamp":"{}","payload":"{payload}"}},"streamSid":"{STREAM_SID}"}}"#,
        sequence * 20
    )
}

fn context() -> SessionContext {
    let config: Config = toml::from_str(FLOW).expect("flow parses");
    let mut prompts = PromptLibrary::default();
    for id in ["welcome", "goodbye", "no_input", "invalid_choice"] {
        prompts.insert(
            "en",
            id,
            PromptAudio::from_mulaw(vec![0x55; 50 * CHUNK_BYTES]),
        );
    }
    let store: Arc<dyn careline::store::Store> =
        Arc::new(careline::store::memory::MemoryStore::new());
    SessionContext {
        flow: Arc::new(Flow::from_config(&config).expect("flow compiles")),
        prompts: Arc::new(prompts),
        calls: Arc::new(CallRegistry::new(store.clone(), "bench")),
        force_close: CancellationToken::new(),
        drain: CancellationToken::new(),
        dtmf: careline::config::DtmfMode::Events,
        identity: None,
        router: careline::dispatch::router::Router::new(store.clone(), &config, "bench".to_owned()),
        roster: Arc::default(),
        store,
        recordings_dir: Arc::from(std::path::Path::new("var/voicemail")),
        metrics: Arc::default(),
    }
}

/// Counts heap allocations, to show that an inbound frame makes none.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// One whole call: `start`, `frames`, `stop`.
fn call_messages(
    runtime: &tokio::runtime::Runtime,
    context: &SessionContext,
    frames: &[Message],
) -> Vec<Result<Message, std::io::Error>> {
    let token = runtime
        .block_on(context.calls.register(CALL_SID, "+13125550101"))
        .expect("registered");
    let start = format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC1","streamSid":"{STREAM_SID}","callSid":"{CALL_SID}","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"token":"{token}"}}}},"streamSid":"{STREAM_SID}"}}"#
    );
    let stop = format!(r#"{{"event":"stop","sequenceNumber":"9","streamSid":"{STREAM_SID}"}}"#);
    let mut messages = Vec::with_capacity(frames.len() + 2);
    messages.push(Ok(Message::Text(start.into())));
    messages.extend(frames.iter().cloned().map(Ok));
    messages.push(Ok(Message::Text(stop.into())));
    messages
}

/// Run one call through the session: how long it took and how many allocations it made.
fn run_call(
    runtime: &tokio::runtime::Runtime,
    context: &SessionContext,
    frames: &[Message],
) -> (Duration, u64) {
    let incoming = futures_util::stream::iter(call_messages(runtime, context, frames));
    let outgoing = futures_util::sink::drain();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let began = Instant::now();
    let end = runtime.block_on(run_session(incoming, outgoing, context.clone()));
    let elapsed = began.elapsed();
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    assert_eq!(end, SessionEnd::CallerHungUp);
    (elapsed, allocated)
}

fn session(c: &mut Criterion) {
    let context = context();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let frames: Vec<Message> = (2..FRAMES + 2)
        .map(|sequence| Message::Text(media_frame(sequence).into()))
        .collect();
    let (_, with_frames) = run_call(&runtime, &context, &frames);
    let (_, without_frames) = run_call(&runtime, &context, &[]);
    eprintln!(
        "session: {without_frames} heap allocations for a call's start and stop; {:.3} per inbound media frame",
        with_frames.saturating_sub(without_frames) as f64 / FRAMES as f64
    );
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(FRAMES));
    group.bench_function("inbound media frames through run_session", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| run_call(&runtime, &context, &frames).0)
                .sum()
        })
    });
    group.finish();
}

/// A socket that delivers one client frame per read, then "would block" until the next, as a
/// socket carrying one frame every 20 ms does; writes are dropped.
struct Frames {
    frames: std::collections::VecDeque<Vec<u8>>,
    /// The frame being read and how much of it has been.
    current: Option<(Vec<u8>, usize)>,
}

impl Read for Frames {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (frame, offset) = match self.current.take() {
            Some(current) => current,
            None => match self.frames.pop_front() {
                Some(frame) => (frame, 0),
                None => return Ok(0),
            },
        };
        let take = (frame.len() - offset).min(buf.len());
        buf[..take].copy_from_slice(&frame[offset..offset + take]);
        if offset + take < frame.len() {
            self.current = Some((frame, offset + take));
        } else {
            // The next frame has not arrived yet.
            self.current = Some((Vec::new(), 0));
        }
        if take == 0 {
            self.current = None;
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(take)
    }
}

impl Write for Frames {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `count` masked text frames, each as a client (Twilio) puts it on the wire.
fn client_frames(count: u64) -> std::collections::VecDeque<Vec<u8>> {
    let mut client =
        WebSocket::from_raw_socket(std::io::Cursor::new(Vec::<u8>::new()), Role::Client, None);
    (0..count)
        .map(|sequence| {
            client
                .send(tokio_tungstenite::tungstenite::Message::text(media_frame(
                    sequence,
                )))
                .expect("written");
            let wire = std::mem::take(client.get_mut().get_mut());
            client.get_mut().set_position(0);
            wire
        })
        .collect()
}

/// Read `wire` as careline does; how long it took and how many allocations it made.
fn read_frames(wire: &std::collections::VecDeque<Vec<u8>>, read_buffer: usize) -> (Duration, u64) {
    let config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let mut server = WebSocket::from_raw_socket(
        Frames {
            frames: wire.clone(),
            current: None,
        },
        Role::Server,
        Some(config),
    );
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let began = Instant::now();
    let mut read = 0;
    while read < wire.len() {
        match server.read() {
            Ok(message) => {
                std::hint::black_box(message.len());
                read += 1;
            }
            Err(tokio_tungstenite::tungstenite::Error::Io(error))
                if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("{error}"),
        }
    }
    let elapsed = began.elapsed();
    (elapsed, ALLOCATIONS.load(Ordering::Relaxed) - allocations)
}

fn websocket_read(c: &mut Criterion) {
    const COUNT: u64 = 1_000;
    let wire = client_frames(COUNT);
    let mut group = c.benchmark_group("websocket");
    group.throughput(Throughput::Elements(COUNT));
    for (label, read_buffer) in [
        (
            "read one media frame, 128 KiB read buffer (default)",
            128 * 1024,
        ),
        ("read one media frame, 2 KiB read buffer", 2 * 1024),
    ] {
        let (_, allocations) = read_frames(&wire, read_buffer);
        eprintln!(
            "websocket: {:.3} heap allocations per frame read with a {} KiB read buffer",
            allocations as f64 / COUNT as f64,
            read_buffer / 1024
        );
        group.bench_function(label, |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| read_frames(&wire, read_buffer).0)
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, session, websocket_read);
criterion_main!(benches);
