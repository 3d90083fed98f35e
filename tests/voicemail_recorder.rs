//! The voicemail recorder on the media path: a caller's frames go to disk without a heap
//! allocation per frame (hound's buffered writer is allocated once, when recording starts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use careline::media::FRAME_BYTES;
use careline::media::recording::{NewVoicemail, VoicemailRecorder};

/// Counts this thread's heap allocations.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

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
