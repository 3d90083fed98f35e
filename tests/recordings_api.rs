//! The admin API for what callers left: voicemails recorded into `[recordings] dir` are listed
//! and fetched, callback requests are listed (the number masked for viewers) and marked done.

mod common;

use std::path::Path;
use std::time::Duration;

use careline::media::FRAME_BYTES;
use careline::media::recording::{NewVoicemail, Voicemail, VoicemailRecorder};
use careline::store::{CallbackRequest, CallbackStatus};
use common::TestServer;
use common::http::{ANGUYEN, SUPERVISOR, VIEWER, get, post, send};
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

const T0_MS: i64 = 1_767_268_800_000;

struct Desk {
    server: TestServer,
    recordings: TempDir,
}

impl Desk {
    fn dir(&self) -> &Path {
        self.recordings.path()
    }
}

/// A server whose `[recordings] dir` is a fresh directory, with a token per role.
async fn desk() -> Desk {
    let recordings = TempDir::new().expect("tempdir");
    let recordings_section = format!(
        "[recordings]\ndir = {}\n",
        toml_string(&recordings.path().display().to_string())
    );
    let server = common::http::start_for_every_role(&recordings_section, |_| {}).await;
    Desk { server, recordings }
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A caller leaves `millis` of a message at `started`, as the session would record it.
fn leave_message(dir: &Path, call_sid: &str, started: Timestamp, millis: usize) -> Voicemail {
    let mut recorder = VoicemailRecorder::create(
        dir,
        NewVoicemail {
            call_sid,
            caller_id_masked: "•••••••••01",
            node: "after_hours_voicemail",
            max: Duration::from_secs(120),
            started_at: started,
        },
    )
    .expect("start recording");
    let frames = millis / 20;
    for n in 0..frames {
        let frame = [if n % 2 == 0 { 0x10 } else { 0x90 }; FRAME_BYTES];
        recorder.push_mulaw(&frame).expect("record");
    }
    recorder
        .finish(started + SignedDuration::from_millis(millis as i64))
        .expect("finish recording")
}

fn t0() -> Timestamp {
    Timestamp::from_millisecond(T0_MS).expect("valid time")
}

#[tokio::test]
async fn voicemails_in_the_configured_directory_are_listed_newest_first() {
    let desk = desk().await;
    let (status, listed) = get(&desk.server, "/api/v1/voicemails", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, Value::Array(Vec::new()));

    let older = leave_message(desk.dir(), "CA_older", t0(), 1000);
    let newer = leave_message(
        desk.dir(),
        "CA_newer",
        t0() + SignedDuration::from_mins(5),
        500,
    );

    let (status, listed) = get(&desk.server, "/api/v1/voicemails", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().expect("a list");
    let ids: Vec<&str> = listed
        .iter()
        .map(|voicemail| voicemail["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [newer.id.as_str(), older.id.as_str()]);
    let first = &listed[0];
    assert_eq!(first["call_sid"], "CA_newer");
    assert_eq!(first["caller_id_masked"], "•••••••••01");
    assert_eq!(first["node"], "after_hours_voicemail");
    assert_eq!(first["duration_secs"], 0.5);
    assert_eq!(first["started_at"], "2026-01-01T12:05:00Z");
    assert_eq!(
        first["audio_url"],
        format!("/api/v1/voicemails/{}.wav", newer.id)
    );
}

#[tokio::test]
async fn staff_fetch_a_voicemail_as_wav_audio() {
    let desk = desk().await;
    let voicemail = leave_message(desk.dir(), "CA1", t0(), 1000);
    let url = format!(
        "{}/api/v1/voicemails/{}.wav",
        desk.server.base_url, voicemail.id
    );
    for token in [SUPERVISOR, ANGUYEN] {
        let response = send(reqwest::Client::new().get(&url), Some(token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "audio/wav",
            "content type"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body = response.bytes().await.expect("body");
        let reader = hound::WavReader::new(std::io::Cursor::new(body)).expect("a WAV");
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(reader.spec().bits_per_sample, 16);
        assert_eq!(reader.len(), 8000);
    }
}

#[tokio::test]
async fn a_viewer_lists_voicemails_but_cannot_hear_them() {
    let desk = desk().await;
    let voicemail = leave_message(desk.dir(), "CA1", t0(), 200);
    let path = format!("/api/v1/voicemails/{}.wav", voicemail.id);
    let (status, _) = get(&desk.server, &path, Some(VIEWER)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get(&desk.server, &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get(&desk.server, "/api/v1/voicemails", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_finished_voicemails_in_the_directory_can_be_fetched() {
    let desk = desk().await;
    let voicemail = leave_message(desk.dir(), "CA1", t0(), 200);
    // A WAV next to the recordings directory, which must stay out of reach.
    let dir_name = desk
        .dir()
        .file_name()
        .expect("a named directory")
        .to_string_lossy()
        .into_owned();
    let secret = format!("{dir_name}-secret");
    let outside = desk.dir().join("..").join(format!("{secret}.wav"));
    std::fs::write(&outside, b"not yours").expect("write a file outside");
    // A message still being recorded.
    let in_progress = VoicemailRecorder::create(
        desk.dir(),
        NewVoicemail {
            call_sid: "CA2",
            caller_id_masked: "",
            node: "voicemail",
            max: Duration::from_secs(10),
            started_at: t0(),
        },
    )
    .expect("start recording");
    let in_progress_id = in_progress.id().clone();

    for path in [
        format!("/api/v1/voicemails/..%2F{secret}.wav"),
        format!("/api/v1/voicemails/%2E%2E%2F{secret}.wav"),
        format!("/api/v1/voicemails/..%5C{secret}.wav"),
        format!("/api/v1/voicemails/{}.json", voicemail.id),
        format!("/api/v1/voicemails/{}", voicemail.id),
        format!("/api/v1/voicemails/{in_progress_id}.wav.part"),
        format!("/api/v1/voicemails/{in_progress_id}.wav"),
        "/api/v1/voicemails/CA_nobody-0.wav".to_owned(),
    ] {
        let (status, _) = get(&desk.server, &path, Some(SUPERVISOR)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = get(
        &desk.server,
        &format!("/api/v1/voicemails/{}.wav", voicemail.id),
        Some(SUPERVISOR),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the finished one is there");
    let _ = std::fs::remove_file(outside);
}

fn callback(id: &str, number: &str, place_ms: i64, due_at_ms: i64) -> CallbackRequest {
    CallbackRequest {
        id: id.to_owned(),
        queue: "portal".to_owned(),
        number: number.to_owned(),
        call_sid: format!("CA_{id}"),
        requested_at_ms: T0_MS,
        place_ms,
        due_at_ms,
        status: CallbackStatus::Pending,
        completed_at_ms: None,
        ..CallbackRequest::default()
    }
}

async fn callbacks_as(desk: &Desk, token: &str) -> Vec<Value> {
    let (status, listed) = get(&desk.server, "/api/v1/callbacks", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed.as_array().expect("a list").clone()
}

#[tokio::test]
async fn staff_see_the_full_number_and_viewers_only_its_last_two_digits() {
    let desk = desk().await;
    let store = &desk.server.state.node.store;
    store
        .add_callback(&callback(
            "cb_late",
            "+13125550147",
            T0_MS,
            T0_MS + 3_600_000,
        ))
        .await
        .expect("add");
    store
        .add_callback(&callback("cb_now", "3125550199", T0_MS - 60_000, T0_MS))
        .await
        .expect("add");

    for token in [SUPERVISOR, ANGUYEN] {
        let listed = callbacks_as(&desk, token).await;
        let ids: Vec<&str> = listed
            .iter()
            .map(|c| c["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["cb_now", "cb_late"]);
        assert_eq!(listed[0]["number"], "3125550199");
        assert_eq!(listed[1]["number"], "+13125550147");
        assert_eq!(listed[1]["queue"], "portal");
        assert_eq!(listed[1]["call_sid"], "CA_cb_late");
        assert_eq!(listed[1]["place_ms"], T0_MS);
        assert_eq!(listed[1]["due_at_ms"], T0_MS + 3_600_000);
        assert_eq!(listed[1]["status"], "pending");
        assert_eq!(listed[1]["completed_at_ms"], Value::Null);
    }

    let listed = callbacks_as(&desk, VIEWER).await;
    assert_eq!(listed[0]["number"], "••••••••99");
    assert_eq!(listed[1]["number"], "•••••••••47");
    let text = serde_json::to_string(&listed).expect("json");
    assert!(!text.contains("555"), "{text}");

    let (status, _) = get(&desk.server, "/api/v1/callbacks", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn staff_mark_a_callback_done_and_it_moves_after_the_pending_ones() {
    let desk = desk().await;
    let store = &desk.server.state.node.store;
    for request in [
        callback("first", "+13125550101", T0_MS - 60_000, T0_MS),
        callback("second", "+13125550102", T0_MS, T0_MS),
    ] {
        store.add_callback(&request).await.expect("add");
    }

    let (status, _) = post(&desk.server, "/api/v1/callbacks/first/done", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&desk.server, "/api/v1/callbacks/first/done", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, done) = post(&desk.server, "/api/v1/callbacks/first/done", Some(ANGUYEN)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "done");
    let listed = callbacks_as(&desk, SUPERVISOR).await;
    let order: Vec<(&str, &str)> = listed
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id"),
                c["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(order, [("second", "pending"), ("first", "done")]);
    assert!(listed[1]["completed_at_ms"].is_i64());

    // Again is fine (two agents returned the same call); an unknown id is not found.
    let (status, _) = post(
        &desk.server,
        "/api/v1/callbacks/first/done",
        Some(SUPERVISOR),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(
        &desk.server,
        "/api/v1/callbacks/nobody/done",
        Some(SUPERVISOR),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
