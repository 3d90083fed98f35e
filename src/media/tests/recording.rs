use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::media::{FRAME_BYTES, SAMPLE_RATE, ulaw};

/// 2026-01-01 12:00 UTC.
fn t0() -> Timestamp {
    Timestamp::from_second(1_767_268_800).expect("valid time")
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

/// `millis` of a 440 Hz tone, μ-law, as the wire carries a caller's voice.
fn mulaw_tone(millis: usize) -> Vec<u8> {
    let samples = millis * SAMPLE_RATE as usize / 1000;
    (0..samples)
        .map(|n| {
            let phase = n as f32 * 440.0 * std::f32::consts::TAU / SAMPLE_RATE as f32;
            ulaw::encode((phase.sin() * 12_000.0) as i16)
        })
        .collect()
}

fn start(dir: &Path, call_sid: &str, max_secs: u64, started_at: Timestamp) -> VoicemailRecorder {
    VoicemailRecorder::create(
        dir,
        NewVoicemail {
            call_sid,
            caller_id_masked: "•••••••••01",
            node: "after_hours_voicemail",
            max: Duration::from_secs(max_secs),
            started_at,
        },
    )
    .expect("start recording")
}

fn record_frames(recorder: &mut VoicemailRecorder, audio: &[u8]) {
    for frame in audio.chunks(FRAME_BYTES) {
        recorder.push_mulaw(frame).expect("write audio");
    }
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).expect("a readable WAV");
    let samples = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("16-bit samples");
    (reader.spec(), samples)
}

#[test]
fn a_message_is_kept_as_a_wav_with_a_description_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tone = mulaw_tone(1500);
    let mut recorder = start(dir.path(), "CA0123456789abcdef", 120, t0());
    record_frames(&mut recorder, &tone);
    let voicemail = recorder.finish(at(2)).expect("finish recording");

    let (spec, samples) = read_wav(&dir.path().join(&voicemail.file));
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(spec.channels, 1);
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(samples.len(), 12_000);
    let decoded: Vec<i16> = tone.iter().map(|&byte| ulaw::decode(byte)).collect();
    assert_eq!(samples, decoded, "the audio is the caller's, decoded");

    assert!(voicemail.id.starts_with("CA0123456789abcdef-"));
    assert_eq!(voicemail.file, format!("{}.wav", voicemail.id));
    assert_eq!(voicemail.duration_secs, 1.5);
    let sidecar = std::fs::read_to_string(dir.path().join(format!("{}.json", voicemail.id)))
        .expect("sidecar written");
    let described: serde_json::Value = serde_json::from_str(&sidecar).expect("sidecar is JSON");
    assert_eq!(described["id"], voicemail.id.as_str());
    assert_eq!(described["call_sid"], "CA0123456789abcdef");
    assert_eq!(described["caller_id_masked"], "•••••••••01");
    assert_eq!(described["node"], "after_hours_voicemail");
    assert_eq!(described["started_at"], "2026-01-01T12:00:00Z");
    assert_eq!(described["ended_at"], "2026-01-01T12:00:02Z");
    assert_eq!(described["duration_secs"], 1.5);
    assert_eq!(described["file"], voicemail.file.as_str());

    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        left.len(),
        2,
        "only the WAV and its sidecar remain: {left:?}"
    );
}

#[test]
fn fifty_frames_make_one_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recorder = start(dir.path(), "CA1", 120, t0());
    for _ in 0..50 {
        recorder
            .push_mulaw(&[0x55; FRAME_BYTES])
            .expect("write audio");
    }
    assert_eq!(recorder.recorded(), Duration::from_secs(1));
    let voicemail = recorder.finish(at(1)).expect("finish");
    assert_eq!(voicemail.duration_secs, 1.0);
}

#[test]
fn a_message_stops_at_its_maximum_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recorder = start(dir.path(), "CA2", 1, t0());
    record_frames(&mut recorder, &mulaw_tone(900));
    assert!(!recorder.is_full());
    record_frames(&mut recorder, &mulaw_tone(600));
    assert!(recorder.is_full());
    record_frames(&mut recorder, &mulaw_tone(500));
    let voicemail = recorder.finish(at(2)).expect("finish");
    let (_, samples) = read_wav(&dir.path().join(&voicemail.file));
    assert_eq!(samples.len(), 8000, "one second and not a sample more");
    assert_eq!(voicemail.duration_secs, 1.0);
}

#[test]
fn a_caller_who_hangs_up_mid_message_keeps_what_was_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recorder = start(dir.path(), "CA3", 120, t0());
    record_frames(&mut recorder, &mulaw_tone(340));
    // Before the end, nothing is listed: the audio is still a `.part` file.
    assert!(list_voicemails(dir.path()).expect("list").is_empty());
    assert!(
        dir.path()
            .join(format!("{}.wav.part", recorder.id()))
            .is_file()
    );

    let voicemail = recorder.finish(at(1)).expect("finish on hang-up");
    let (_, samples) = read_wav(&dir.path().join(&voicemail.file));
    assert_eq!(samples.len(), 340 * 8);
    assert_eq!(list_voicemails(dir.path()).expect("list"), [voicemail]);
}

#[test]
fn an_empty_message_is_still_a_valid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let voicemail = start(dir.path(), "CA4", 120, t0())
        .finish(t0())
        .expect("finish");
    let (_, samples) = read_wav(&dir.path().join(&voicemail.file));
    assert!(samples.is_empty());
    assert_eq!(voicemail.duration_secs, 0.0);
}

#[test]
fn voicemails_are_listed_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (sid, started) in [("CA_old", 0), ("CA_new", 600), ("CA_mid", 300)] {
        let mut recorder = start(dir.path(), sid, 120, at(started));
        record_frames(&mut recorder, &mulaw_tone(100));
        recorder.finish(at(started + 1)).expect("finish");
    }
    let listed: Vec<String> = list_voicemails(dir.path())
        .expect("list")
        .into_iter()
        .map(|voicemail| voicemail.call_sid)
        .collect();
    assert_eq!(listed, ["CA_new", "CA_mid", "CA_old"]);
}

#[test]
fn unreadable_or_orphaned_descriptions_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recorder = start(dir.path(), "CA5", 120, t0());
    record_frames(&mut recorder, &mulaw_tone(100));
    let kept = recorder.finish(at(1)).expect("finish");

    std::fs::write(dir.path().join("garbage.json"), "{ not json").expect("write");
    let orphan = start(dir.path(), "CA6", 120, at(5))
        .finish(at(6))
        .expect("finish");
    std::fs::remove_file(dir.path().join(&orphan.file)).expect("remove audio");
    // A description naming a file outside its own id.
    let mut forged = kept.clone();
    forged.id = "forged".to_owned();
    forged.file = "../elsewhere.wav".to_owned();
    std::fs::write(
        dir.path().join("forged.json"),
        serde_json::to_string(&forged).expect("json"),
    )
    .expect("write");

    assert_eq!(list_voicemails(dir.path()).expect("list"), [kept]);
}

#[test]
fn a_missing_directory_is_created_for_recording_and_lists_as_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("var").join("voicemail");
    assert!(list_voicemails(&nested).expect("list").is_empty());
    let voicemail = start(&nested, "CA7", 120, t0())
        .finish(t0())
        .expect("finish");
    assert!(nested.join(voicemail.file).is_file());
}

#[test]
fn a_directory_that_cannot_be_created_is_reported_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not_a_dir");
    std::fs::write(&blocker, "a file").expect("write");
    let error = VoicemailRecorder::create(
        &blocker.join("voicemail"),
        NewVoicemail {
            call_sid: "CA8",
            caller_id_masked: "",
            node: "voicemail",
            max: Duration::from_secs(10),
            started_at: t0(),
        },
    )
    .expect_err("cannot create a directory under a file");
    let message = error.to_string();
    assert!(message.contains("not_a_dir"), "{message}");
    assert!(message.contains("[recordings] dir"), "{message}");
}

#[test]
fn recording_ids_cannot_leave_the_directory() {
    let id = RecordingId::for_call("../../etc/passwd", t0());
    assert!(
        id.as_str()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_eq!(RecordingId::parse(id.as_str()), Some(id.clone()));
    for bad in ["", "..", "a/b", "a.wav", "a\\b", "%2e%2e"] {
        assert_eq!(RecordingId::parse(bad), None, "{bad}");
        assert_eq!(audio_path(Path::new("/var/voicemail"), bad), None, "{bad}");
    }
    assert_eq!(
        audio_path(Path::new("/var/voicemail"), "CA1-abc"),
        Some(Path::new("/var/voicemail/CA1-abc.wav").to_path_buf())
    );
}

#[test]
fn two_messages_on_one_call_get_their_own_ids() {
    let first = RecordingId::for_call("CA9", t0());
    let second = RecordingId::for_call("CA9", t0() + SignedDuration::from_millis(1));
    assert_ne!(first, second);
}

#[test]
fn a_voicemail_marked_handled_keeps_its_first_mark() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut recorder = start(dir.path(), "CA1", 60, t0());
    record_frames(&mut recorder, &mulaw_tone(200));
    let voicemail = recorder.finish(at(1)).expect("finished");
    assert_eq!(voicemail.handled_at, None);
    let marked = mark_handled(dir.path(), &voicemail.id, "agent:anguyen", at(60))
        .expect("marked")
        .expect("found");
    assert_eq!(marked.handled_by.as_deref(), Some("agent:anguyen"));
    let again = mark_handled(dir.path(), &voicemail.id, "supervisor", at(120))
        .expect("marked")
        .expect("found");
    assert_eq!(again.handled_at, marked.handled_at, "the first mark stays");
    assert_eq!(again.handled_by.as_deref(), Some("agent:anguyen"));
    let listed = list_voicemails(dir.path()).expect("listed");
    assert_eq!(listed[0].handled_at, marked.handled_at);
    assert_eq!(
        mark_handled(dir.path(), "CA404-x", "supervisor", at(1)).expect("no error"),
        None
    );
    assert_eq!(
        mark_handled(dir.path(), "../escape", "supervisor", at(1)).expect("no error"),
        None
    );
}
