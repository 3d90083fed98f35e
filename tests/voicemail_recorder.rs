//! The voicemail recorder on the media path: a caller's frames go to disk without a heap
//! allocation per frame (hound's buffered writer is allocated once, when recording starts).

mod common;

use std::time::Duration;

use careline::media::FRAME_BYTES;
use careline::media::recording::{NewVoicemail, VoicemailRecorder};
use common::alloc::{CountingAllocator, allocations};

/// Counts this thread's heap allocations.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn recording_a_minute_of_frames_allocates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recorder = VoicemailRecorder::create(
        dir.path(),
        NewVoicemail {
            call_sid: "CA0123456789abcdef0123456789abcdef",
            caller_id_masked: "•••••••••01",
            node: "voicemail",
            max: Duration::from_secs(120),
            started_at: jiff::Timestamp::UNIX_EPOCH,
        },
    )
    .expect("start recording");
    let frame = [0x55u8; FRAME_BYTES];

    let before = allocations();
    // 50 frames of 160 bytes are one second.
    for _ in 0..60 * 50 {
        recorder.push_mulaw(&frame).expect("write audio");
    }
    let during = allocations() - before;

    assert_eq!(recorder.recorded(), Duration::from_secs(60));
    assert_eq!(during, 0, "allocations while recording a minute of audio");
    let voicemail = recorder
        .finish(jiff::Timestamp::UNIX_EPOCH)
        .expect("finish");
    assert_eq!(voicemail.duration_secs, 60.0);
}
