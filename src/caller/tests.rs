//! The caller against stand-ins for careline: a raw WebSocket over an in-memory pipe (with
//! tokio's paused clock, so 20 ms ticks cost nothing) and a minimal axum app for whole calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::io::DuplexStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;
use crate::media::{FRAME_BYTES, MULAW_SILENCE};
use crate::twilio::signature::validate;
use crate::twilio::twiml::{self, DialTarget};
use crate::twilio::wire::{MarkName, Outbound, OutboundMedia, StreamEvent, parse_stream_event};

// ---------------------------------------------------------------------------------------------
// One stream over an in-memory pipe, paused clock.

type ServerSide = WebSocketStream<DuplexStream>;

async fn pipe() -> (MediaStreamClient<DuplexStream>, ServerSide, StreamIds) {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let ids = StreamIds::random();
    let client = MediaStreamClient::from_socket(
        WebSocketStream::from_raw_socket(client_io, Role::Client, None).await,
        ids.clone(),
    );
    let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
    (client, server, ids)
}

async fn started_pipe() -> (MediaStreamClient<DuplexStream>, ServerSide, StreamIds) {
    let (mut client, mut server, ids) = pipe().await;
    client.send_connected().await.expect("connected sent");
    client
        .send_start(BTreeMap::new())
        .await
        .expect("start sent");
    assert_eq!(next_json(&mut server).await["event"], "connected");
    assert_eq!(next_json(&mut server).await["event"], "start");
    (client, server, ids)
}

async fn next_json(server: &mut ServerSide) -> Value {
    loop {
        match server.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).expect("the caller sends JSON");
            }
            Some(Ok(_)) => continue,
            other => panic!("stream ended: {other:?}"),
        }
    }
}

/// Play the client until it has nothing more to report this instant, collecting events.
fn spawn_client(
    mut client: MediaStreamClient<DuplexStream>,
) -> tokio::task::JoinHandle<Vec<Heard>> {
    tokio::spawn(async move {
        let mut heard = Vec::new();
        loop {
            let event = client.next_event().await;
            let closed = matches!(event, Heard::Closed(_));
            if !matches!(event, Heard::Tick { .. }) {
                heard.push(event);
            }
            if closed {
                return heard;
            }
        }
    })
}

async fn send(server: &mut ServerSide, message: Outbound<'_>) {
    server
        .send(Message::text(message.to_json()))
        .await
        .expect("server send");
}

async fn send_audio(server: &mut ServerSide, stream_sid: &str, bytes: usize) {
    let payload = BASE64.encode(vec![0x20; bytes]);
    send(
        server,
        Outbound::Media {
            stream_sid,
            media: OutboundMedia { payload: &payload },
        },
    )
    .await;
}

async fn send_mark(server: &mut ServerSide, stream_sid: &str, name: &str) {
    send(
        server,
        Outbound::Mark {
            stream_sid,
            mark: MarkName {
                name: name.to_owned().into(),
            },
        },
    )
    .await;
}

/// Read until a mark echo arrives; returns its name and how many media frames came first.
async fn frames_until_mark(server: &mut ServerSide) -> (String, usize) {
    let mut frames = 0;
    loop {
        let message = next_json(server).await;
        match message["event"].as_str() {
            Some("media") => frames += 1,
            Some("mark") => {
                return (
                    message["mark"]["name"]
                        .as_str()
                        .expect("mark name")
                        .to_owned(),
                    frames,
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn close(mut server: ServerSide) {
    server.close(None).await.expect("close");
    while server.next().await.is_some() {}
}

#[tokio::test(start_paused = true)]
async fn messages_have_twilios_shapes_and_counters() {
    let (mut client, mut server, ids) = pipe().await;
    client.send_connected().await.expect("sent");
    let parameters = BTreeMap::from([("token".to_owned(), "abc".to_owned())]);
    client.send_start(parameters).await.expect("sent");
    let connected = next_json(&mut server).await;
    assert_eq!(
        connected,
        serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    let start = next_json(&mut server).await;
    assert_eq!(start["sequenceNumber"], "1");
    assert_eq!(start["streamSid"], ids.stream_sid.as_str());
    assert_eq!(start["start"]["streamSid"], ids.stream_sid.as_str());
    assert_eq!(start["start"]["callSid"], ids.call_sid.as_str());
    assert_eq!(start["start"]["accountSid"], ids.account_sid.as_str());
    assert_eq!(start["start"]["tracks"], serde_json::json!(["inbound"]));
    assert_eq!(start["start"]["customParameters"]["token"], "abc");
    assert_eq!(
        start["start"]["mediaFormat"],
        serde_json::json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
    );
    assert!(ids.stream_sid.starts_with("MZ") && ids.stream_sid.len() == 34);

    let handle = tokio::spawn(async move {
        for _ in 0..2 {
            client.next_event().await;
        }
        client
            .press('5', KeySignalling::Events)
            .await
            .expect("sent");
        client
    });
    let first = next_json(&mut server).await;
    let second = next_json(&mut server).await;
    let dtmf = next_json(&mut server).await;
    for (media, sequence, chunk, timestamp) in [(&first, "2", "1", "0"), (&second, "3", "2", "20")]
    {
        assert_eq!(media["event"], "media");
        assert_eq!(media["sequenceNumber"], sequence);
        assert_eq!(media["media"]["track"], "inbound");
        assert_eq!(media["media"]["chunk"], chunk);
        assert_eq!(media["media"]["timestamp"], timestamp);
        let payload = BASE64
            .decode(media["media"]["payload"].as_str().expect("payload"))
            .expect("base64");
        assert_eq!(payload, vec![MULAW_SILENCE; FRAME_BYTES]);
    }
    assert_eq!(
        dtmf,
        serde_json::json!({"event": "dtmf", "streamSid": ids.stream_sid, "sequenceNumber": "4",
                           "dtmf": {"track": "inbound_track", "digit": "5"}})
    );
    let mut client = handle.await.expect("client task");
    let hang_up = tokio::spawn(async move { client.hang_up().await });
    let stop = next_json(&mut server).await;
    assert_eq!(stop["event"], "stop");
    assert_eq!(stop["sequenceNumber"], "5");
    assert_eq!(stop["stop"]["callSid"], ids.call_sid.as_str());
    assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
    // Reading on sends tungstenite's reply to the caller's close frame.
    while server.next().await.is_some() {}
    let closed = hang_up.await.expect("task").expect("hung up");
    assert!(!closed.by_server);
}

#[tokio::test(start_paused = true)]
async fn a_mark_comes_back_once_the_audio_before_it_has_played() {
    let (client, mut server, ids) = started_pipe().await;
    let events = spawn_client(client);
    assert_eq!(next_json(&mut server).await["event"], "media");
    send_audio(&mut server, &ids.stream_sid, 5 * FRAME_BYTES).await;
    send_mark(&mut server, &ids.stream_sid, "prompt:en/welcome:1").await;
    let (name, frames) = frames_until_mark(&mut server).await;
    assert_eq!(name, "prompt:en/welcome:1");
    assert_eq!(
        frames, 4,
        "echoed on the fifth tick after 100 ms of audio, before that tick's frame"
    );
    close(server).await;
    let events = events.await.expect("client task");
    assert!(
        events
            .iter()
            .all(|event| !matches!(event, Heard::ProtocolError(_)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_mark_with_nothing_buffered_comes_back_at_once() {
    let (client, mut server, ids) = started_pipe().await;
    let events = spawn_client(client);
    assert_eq!(next_json(&mut server).await["event"], "media");
    send_mark(&mut server, &ids.stream_sid, "pace:1").await;
    assert_eq!(
        frames_until_mark(&mut server).await,
        ("pace:1".to_owned(), 0)
    );
    close(server).await;
    let events = events.await.expect("client task");
    assert!(events.contains(&Heard::MarkEchoed(MarkEcho {
        name: "pace:1".to_owned(),
        reason: EchoReason::Played
    })));
}

#[tokio::test(start_paused = true)]
async fn clear_flushes_the_audio_and_returns_every_pending_mark_in_order() {
    let (client, mut server, ids) = started_pipe().await;
    let events = spawn_client(client);
    assert_eq!(next_json(&mut server).await["event"], "media");
    send_audio(&mut server, &ids.stream_sid, 8000).await;
    send_mark(&mut server, &ids.stream_sid, "prompt:en/main_menu:1").await;
    send_audio(&mut server, &ids.stream_sid, 8000).await;
    send_mark(&mut server, &ids.stream_sid, "pace:2").await;
    assert_eq!(next_json(&mut server).await["event"], "media");
    send(
        &mut server,
        Outbound::Clear {
            stream_sid: &ids.stream_sid,
        },
    )
    .await;
    assert_eq!(
        frames_until_mark(&mut server).await,
        ("prompt:en/main_menu:1".to_owned(), 0)
    );
    assert_eq!(
        frames_until_mark(&mut server).await,
        ("pace:2".to_owned(), 0)
    );
    close(server).await;
    let events = events.await.expect("client task");
    let cleared: Vec<&Heard> = events
        .iter()
        .filter(|event| matches!(event, Heard::Cleared(_)))
        .collect();
    assert_eq!(
        cleared,
        vec![&Heard::Cleared(vec![
            MarkEcho {
                name: "prompt:en/main_menu:1".to_owned(),
                reason: EchoReason::Cleared
            },
            MarkEcho {
                name: "pace:2".to_owned(),
                reason: EchoReason::Cleared
            },
        ])]
    );
}

#[tokio::test(start_paused = true)]
async fn binary_frames_and_malformed_messages_are_protocol_errors() {
    let (client, mut server, ids) = started_pipe().await;
    let events = spawn_client(client);
    let sid = ids.stream_sid.as_str();
    let bad = [
        Message::binary(vec![1u8, 2, 3]),
        Message::text("not json"),
        Message::text(format!(r#"{{"event":"hello","streamSid":"{sid}"}}"#)),
        Message::text(format!(
            r#"{{"event":"clear","streamSid":"{sid}","extra":1}}"#
        )),
        Message::text(r#"{"event":"clear","streamSid":"MZ0"}"#),
        Message::text(format!(
            r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"!!"}}}}"#
        )),
        Message::text(format!(r#"{{"event":"mark","streamSid":"{sid}"}}"#)),
    ];
    let count = bad.len();
    for message in bad {
        server.send(message).await.expect("sent");
    }
    send_audio(&mut server, sid, 160).await;
    close(server).await;
    let events = events.await.expect("client task");
    let errors = events
        .iter()
        .filter(|event| matches!(event, Heard::ProtocolError(_)))
        .count();
    assert_eq!(errors, count);
    assert!(
        events.contains(&Heard::Audio { bytes: 160 }),
        "the stream goes on after a bad message"
    );
    assert!(matches!(
        events.last(),
        Some(Heard::Closed(StreamClose {
            by_server: true,
            ..
        }))
    ));
}

#[tokio::test(start_paused = true)]
async fn messages_before_start_are_protocol_errors() {
    let (client, mut server, ids) = pipe().await;
    let events = spawn_client(client);
    send_mark(&mut server, &ids.stream_sid, "early").await;
    close(server).await;
    let events = events.await.expect("client task");
    assert!(
        matches!(events.first(), Some(Heard::ProtocolError(error)) if error.contains("before"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_dropped_without_a_close_frame_is_reported_as_broken() {
    let (client, server, _) = started_pipe().await;
    let events = spawn_client(client);
    drop(server);
    let events = events.await.expect("client task");
    // A node that dies is not a node that breaks the protocol.
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Heard::ProtocolError(_))),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Heard::Closed(StreamClose {
            code: None,
            broken: true,
            by_server: true,
            ..
        }))
    ));
}

#[tokio::test(start_paused = true)]
async fn keys_as_tones_are_heard_in_the_inbound_audio() {
    let (mut client, mut server, _) = started_pipe().await;
    client
        .press('1', KeySignalling::Tones)
        .await
        .expect("queued");
    let handle = tokio::spawn(async move {
        for _ in 0..6 {
            client.next_event().await;
        }
    });
    let mut frames = Vec::new();
    for _ in 0..6 {
        let media = next_json(&mut server).await;
        assert_eq!(media["event"], "media", "tones send no dtmf message");
        frames.push(
            BASE64
                .decode(media["media"]["payload"].as_str().expect("payload"))
                .expect("base64"),
        );
    }
    handle.await.expect("client task");
    let silence = vec![MULAW_SILENCE; FRAME_BYTES];
    let tone: Vec<bool> = frames.iter().map(|frame| *frame != silence).collect();
    assert_eq!(tone, vec![true, true, true, false, false, false]);
}

// ---------------------------------------------------------------------------------------------
// Whole calls against a minimal careline stand-in on a real socket.

const TOKEN: &str = "test-auth-token";

/// A webhook request the stand-in received.
struct SeenRequest {
    path: String,
    params: Vec<(String, String)>,
    signed: bool,
}

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<SeenRequest>>>,
    upgrade_signed: Arc<Mutex<Vec<bool>>>,
    custom_parameters: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    digits: Arc<Mutex<String>>,
    stopped: Arc<Mutex<bool>>,
}

#[derive(Clone)]
struct Mock {
    addr: SocketAddr,
    seen: Seen,
}

impl Mock {
    fn record(&self, path: &str, headers: &HeaderMap, params: Vec<(String, String)>) -> bool {
        let url = format!("http://{}{path}", self.addr);
        let header = headers
            .get("x-twilio-signature")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let valid = validate(TOKEN, &url, &params, header);
        if let Ok(mut requests) = self.seen.requests.lock() {
            requests.push(SeenRequest {
                path: path.to_owned(),
                params,
                signed: valid,
            });
        }
        valid
    }

    fn requests(&self, path: &str) -> Vec<(Vec<(String, String)>, bool)> {
        self.seen
            .requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|seen| seen.path == path)
            .map(|seen| (seen.params.clone(), seen.signed))
            .collect()
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn twiml_response(xml: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/xml")], xml).into_response()
}

async fn start_mock() -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mock = Mock {
        addr: listener.local_addr().expect("addr"),
        seen: Seen::default(),
    };
    let app = Router::new()
        .route("/twilio/voice", post(voice))
        .route("/twilio/media", get(media))
        .route("/twilio/next", post(next))
        .route("/twilio/dial-status", post(dial_status))
        .route("/twilio/status", post(status))
        .route("/plain/twilio/voice", post(|| async { twiml::hangup() }))
        .route("/{failure}/twilio/voice", post(failing_voice))
        .route("/{failure}/twilio/media", get(failing_media))
        .route("/{failure}/twilio/status", post(failing_status))
        .with_state(mock.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    mock
}

async fn voice(
    State(mock): State<Mock>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    let from = param(&params, "From").unwrap_or_default().to_owned();
    if !mock.record("/twilio/voice", &headers, params) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let stream_url = format!("ws://{}/twilio/media", mock.addr);
    twiml_response(twiml::connect_stream(
        &stream_url,
        &[("from", &from), ("token", "per-call")],
        "/twilio/next",
    ))
}

async fn next(
    State(mock): State<Mock>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    mock.record("/twilio/next", &headers, params);
    twiml_response(twiml::dial(
        DialTarget::Client("agent-7".to_owned()),
        "/twilio/dial-status",
        5,
        None,
        None,
    ))
}

async fn dial_status(
    State(mock): State<Mock>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    mock.record("/twilio/dial-status", &headers, params);
    twiml_response(twiml::hangup())
}

async fn status(
    State(mock): State<Mock>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> StatusCode {
    mock.record("/twilio/status", &headers, params);
    StatusCode::NO_CONTENT
}

async fn media(
    State(mock): State<Mock>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let url = format!("ws://{}/twilio/media", mock.addr);
    let header = headers
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let valid = validate(TOKEN, &url, &[], header);
    mock.seen.upgrade_signed.lock().expect("lock").push(valid);
    if !valid {
        return StatusCode::FORBIDDEN.into_response();
    }
    upgrade.on_upgrade(move |socket| play_one_menu(socket, mock))
}

/// Welcome (1 s), then on a key: clear, "connecting" (100 ms), close once it has played.
async fn play_one_menu(mut socket: WebSocket, mock: Mock) {
    let mut stream_sid = String::new();
    while let Some(Ok(message)) = socket.recv().await {
        let ws::Message::Text(text) = message else {
            continue;
        };
        let Ok(event) = parse_stream_event(text.as_str()) else {
            continue;
        };
        let mut replies: Vec<Outbound<'_>> = Vec::new();
        let welcome = BASE64.encode(vec![0x30; 8000]);
        let connecting = BASE64.encode(vec![0x40; 800]);
        match event {
            StreamEvent::Start(start) => {
                stream_sid = start.stream_sid.to_string();
                mock.seen
                    .custom_parameters
                    .lock()
                    .expect("lock")
                    .push(start.custom_parameters.clone());
                replies.push(Outbound::Media {
                    stream_sid: &stream_sid,
                    media: OutboundMedia { payload: &welcome },
                });
                replies.push(Outbound::Mark {
                    stream_sid: &stream_sid,
                    mark: MarkName {
                        name: "prompt:en/welcome:1".into(),
                    },
                });
            }
            StreamEvent::Dtmf { digit, .. } => {
                mock.seen.digits.lock().expect("lock").push_str(&digit);
                replies.push(Outbound::Clear {
                    stream_sid: &stream_sid,
                });
                replies.push(Outbound::Media {
                    stream_sid: &stream_sid,
                    media: OutboundMedia {
                        payload: &connecting,
                    },
                });
                replies.push(Outbound::Mark {
                    stream_sid: &stream_sid,
                    mark: MarkName {
                        name: "prompt:en/connecting:2".into(),
                    },
                });
            }
            StreamEvent::Mark { name, .. } if name == "prompt:en/connecting:2" => {
                let _ = socket
                    .send(ws::Message::Close(Some(ws::CloseFrame {
                        code: 1000,
                        reason: "handoff".into(),
                    })))
                    .await;
            }
            StreamEvent::Stop { .. } => {
                *mock.seen.stopped.lock().expect("lock") = true;
            }
            _ => {}
        }
        for reply in replies {
            if socket
                .send(ws::Message::Text(reply.to_json().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// The voice webhook of calls whose stream fails as `/{failure}/` says: `breaks` (the node
/// dies once the stream started), `gone` (nothing listens any more), `draining` (503 to the
/// upgrade), `forbidden` (403 to the upgrade). The `<Redirect>` after `</Connect>` goes to the
/// stand-in's `/twilio/next`, which dials an agent.
async fn failing_voice(
    State(mock): State<Mock>,
    Path(failure): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    mock.record(&format!("/{failure}/twilio/voice"), &headers, params);
    let stream_url = if failure == "gone" {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        format!("ws://{addr}/twilio/media")
    } else {
        format!("ws://{}/{failure}/twilio/media", mock.addr)
    };
    twiml_response(twiml::connect_stream(
        &stream_url,
        &[("token", "per-call")],
        "/twilio/next",
    ))
}

async fn failing_media(Path(failure): Path<String>, upgrade: WebSocketUpgrade) -> Response {
    match failure.as_str() {
        "draining" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "forbidden" => StatusCode::FORBIDDEN.into_response(),
        _ => upgrade.on_upgrade(|mut socket| async move {
            // Once the stream started, the node dies: the socket goes without a close frame.
            while let Some(Ok(message)) = socket.recv().await {
                if let ws::Message::Text(text) = message
                    && matches!(parse_stream_event(text.as_str()), Ok(StreamEvent::Start(_)))
                {
                    return;
                }
            }
        }),
    }
}

async fn failing_status(
    State(mock): State<Mock>,
    Path(failure): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> StatusCode {
    mock.record(&format!("/{failure}/twilio/status"), &headers, params);
    StatusCode::NO_CONTENT
}

fn options(mock: &Mock, digits: &str) -> CallOptions {
    CallOptions::new(format!("http://{}", mock.addr))
        .auth_token(TOKEN)
        .digits(digits.parse().expect("valid script"))
        .max_duration(Duration::from_secs(20))
        .dial(vec![DialBehaviour::Answer {
            after: Duration::from_millis(50),
            talk: Duration::from_millis(50),
        }])
}

#[tokio::test]
async fn a_caller_who_waits_for_the_menu_hears_it_then_is_connected_to_an_agent() {
    let mock = start_mock().await;
    let report = place_call(options(&mock, "w1")).await.expect("call placed");

    assert_eq!(report.protocol_errors, Vec::<String>::new());
    assert_eq!(report.played_prompts(), vec!["welcome", "connecting"]);
    assert!(report.interrupted_prompts().is_empty());
    assert_eq!(report.sent_digits(), "1");
    assert_eq!(
        report.dials(),
        vec![(
            DialTarget::Client("agent-7".to_owned()),
            DialStatus::Completed
        )]
    );
    assert_eq!(report.ended, CallEnd::Hangup);
    assert_eq!(report.unsent_steps, 0);
    assert_eq!(report.stream_closes.len(), 1);
    assert_eq!(report.stream_closes[0].code, Some(1000));
    assert!(
        report
            .transcript
            .contains(&TranscriptEntry::StreamClosedByServer)
    );
    assert!(report.audio.contains(&0x30) && report.audio.contains(&0x40));

    assert_eq!(*mock.seen.upgrade_signed.lock().expect("lock"), vec![true]);
    let voice = mock.requests("/twilio/voice");
    assert_eq!(voice.len(), 1);
    let (params, signed) = &voice[0];
    assert!(signed);
    assert_eq!(param(params, "CallSid"), Some(report.call_sid.as_str()));
    assert_eq!(param(params, "CallStatus"), Some("ringing"));
    assert_eq!(param(params, "Direction"), Some("inbound"));
    assert_eq!(param(params, "From"), Some("+15555550100"));
    let custom = mock.seen.custom_parameters.lock().expect("lock").clone();
    assert_eq!(custom[0]["from"], "+15555550100");
    assert_eq!(custom[0]["token"], "per-call");

    let next = mock.requests("/twilio/next");
    assert_eq!(next.len(), 1);
    assert!(next[0].1);
    let dial_status = mock.requests("/twilio/dial-status");
    assert_eq!(
        param(&dial_status[0].0, "DialCallStatus"),
        Some("completed")
    );
    let status = mock.requests("/twilio/status");
    assert_eq!(status.len(), 1);
    assert!(status[0].1);
    assert_eq!(param(&status[0].0, "CallStatus"), Some("completed"));
}

#[tokio::test]
async fn a_caller_who_presses_during_the_welcome_cuts_it_off() {
    let mock = start_mock().await;
    let report = place_call(options(&mock, "1")).await.expect("call placed");
    assert_eq!(report.protocol_errors, Vec::<String>::new());
    assert_eq!(report.interrupted_prompts(), vec!["welcome"]);
    assert_eq!(report.played_prompts(), vec!["connecting"]);
}

#[tokio::test]
async fn a_caller_who_hangs_up_sends_stop_and_the_status_callback() {
    let mock = start_mock().await;
    let report = place_call(options(&mock, "whangup"))
        .await
        .expect("call placed");
    assert_eq!(report.protocol_errors, Vec::<String>::new());
    assert_eq!(report.played_prompts(), vec!["welcome"]);
    assert_eq!(report.transcript.last(), Some(&TranscriptEntry::HungUp));
    assert_eq!(report.ended, CallEnd::CallerHungUp);
    assert!(!report.stream_closes[0].by_server);
    assert!(mock.requests("/twilio/next").is_empty());
    let status = mock.requests("/twilio/status");
    assert_eq!(param(&status[0].0, "CallStatus"), Some("completed"));
    assert!(*mock.seen.stopped.lock().expect("lock"));
}

#[tokio::test]
async fn an_unsigned_call_to_a_server_that_checks_signatures_is_refused() {
    let mock = start_mock().await;
    let unsigned = CallOptions::new(format!("http://{}", mock.addr));
    let error = place_call(unsigned).await.expect_err("refused");
    assert!(matches!(
        error,
        CallerError::WebhookStatus { status: 403, .. }
    ));
}

#[tokio::test]
async fn twiml_served_as_plain_text_is_refused_like_twilio_does() {
    let mock = start_mock().await;
    let plain = CallOptions::new(format!("http://{}/plain", mock.addr));
    let error = place_call(plain).await.expect_err("refused");
    assert!(matches!(error, CallerError::ContentType { .. }));
}

#[tokio::test]
async fn a_badly_signed_upgrade_is_refused_with_403() {
    let mock = start_mock().await;
    let url = format!("ws://{}/twilio/media", mock.addr);
    let forged =
        MediaStreamClient::connect_with_signature(&url, Some("Zm9yZ2Vk"), StreamIds::random())
            .await;
    assert!(matches!(
        forged,
        Err(CallerError::HandshakeRefused { status: 403, .. })
    ));
    let signed = MediaStreamClient::connect(&url, Some(TOKEN), StreamIds::random()).await;
    assert!(signed.is_ok());
}

#[tokio::test]
async fn the_transcript_is_observed_as_it_happens() {
    let mock = start_mock().await;
    let (observer, mut entries) = tokio::sync::mpsc::unbounded_channel();
    let report = place_call(options(&mock, "w1").observer(observer))
        .await
        .expect("call placed");
    let mut observed = Vec::new();
    while let Some(entry) = entries.recv().await {
        observed.push(entry);
    }
    assert_eq!(observed, report.transcript);
}

/// A call whose stream fails as `failure` says (see [`failing_voice`]).
async fn call_whose_stream_fails(failure: &str) -> (Mock, CallReport) {
    let mock = start_mock().await;
    let options = CallOptions::new(format!("http://{}/{failure}", mock.addr))
        .auth_token(TOKEN)
        .max_duration(Duration::from_secs(20))
        .dial(vec![DialBehaviour::Answer {
            after: Duration::from_millis(50),
            talk: Duration::from_millis(50),
        }]);
    let report = place_call(options).await.expect("call placed");
    (mock, report)
}

/// Twilio runs the TwiML after `</Connect>` when the stream's connection goes: the caller was
/// redirected to `/twilio/next`, dialed and connected, and the call did not end with the stream.
fn assert_went_on_after_connect(mock: &Mock, report: &CallReport) {
    assert_eq!(mock.requests("/twilio/next").len(), 1, "{report:?}");
    assert_eq!(
        report.dials(),
        vec![(
            DialTarget::Client("agent-7".to_owned()),
            DialStatus::Completed
        )]
    );
    assert_eq!(report.ended, CallEnd::Hangup);
    assert_eq!(report.stream_closes.len(), 1);
}

/// The stream was lost, not refused by careline's fault: no protocol error, a broken close,
/// and the caller went on after `</Connect>`.
async fn assert_lost_then_went_on(failure: &str) {
    let (mock, report) = call_whose_stream_fails(failure).await;
    assert_went_on_after_connect(&mock, &report);
    assert_eq!(report.protocol_errors, Vec::<String>::new());
    assert!(report.stream_closes[0].broken);
    assert!(report.transcript.contains(&TranscriptEntry::StreamLost));
}

#[tokio::test]
async fn a_stream_whose_node_dies_goes_on_to_the_twiml_after_connect() {
    assert_lost_then_went_on("breaks").await;
}

#[tokio::test]
async fn a_stream_to_a_node_that_is_gone_goes_on_to_the_twiml_after_connect() {
    assert_lost_then_went_on("gone").await;
}

#[tokio::test]
async fn a_stream_refused_by_a_draining_node_goes_on_to_the_twiml_after_connect() {
    assert_lost_then_went_on("draining").await;
}

#[tokio::test]
async fn a_stream_refused_with_403_is_a_protocol_error_and_the_call_goes_on() {
    let (mock, report) = call_whose_stream_fails("forbidden").await;
    assert_went_on_after_connect(&mock, &report);
    assert_eq!(
        report.protocol_errors.len(),
        1,
        "{:?}",
        report.protocol_errors
    );
    assert!(report.protocol_errors[0].contains("403"));
    assert!(!report.stream_closes[0].broken);
    assert!(!report.transcript.contains(&TranscriptEntry::StreamLost));
}

#[tokio::test]
async fn the_longest_silence_counts_the_gap_between_streams_but_not_the_dialed_call() {
    // Welcome (1 s), "connecting", close; then a dial whose talk (3 s) is not silence.
    let mock = start_mock().await;
    let report = place_call(options(&mock, "w1").dial(vec![DialBehaviour::Answer {
        after: Duration::from_millis(50),
        talk: Duration::from_secs(3),
    }]))
    .await
    .expect("call placed");
    assert_eq!(report.protocol_errors, Vec::<String>::new());
    assert!(
        report.longest_silence < Duration::from_secs(2),
        "{:?}",
        report.longest_silence
    );
}
