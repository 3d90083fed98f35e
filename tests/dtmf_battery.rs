//! The in-band DTMF detector against an ITU-T Q.24 battery (pitch, duration, pauses, twist,
//! level, noise, talk-off), fed μ-law frames exactly as the wire carries them.

mod common;

use careline::media::FRAME_BYTES;
use careline::media::dtmf::DtmfDetector;
use common::alloc::{CountingAllocator, allocations};

// Shared with tools/spandsp-compare; each user takes the parts it needs.
#[allow(dead_code)]
#[path = "dtmf_battery/battery.rs"]
mod battery;

use battery::{Case, Signal, Tone};

/// Counts this thread's heap allocations, to show the detector makes none per frame.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The keys a call would hear, frame by frame.
fn heard(mulaw: &[u8]) -> String {
    let mut detector = DtmfDetector::new();
    mulaw
        .chunks(FRAME_BYTES)
        .filter_map(|frame| detector.push_mulaw(frame))
        .collect()
}

fn assert_all_heard_as_expected(cases: impl IntoIterator<Item = Case>) {
    let mut total = 0;
    let failures: Vec<String> = cases
        .into_iter()
        .inspect(|_| total += 1)
        .filter_map(|case| {
            let keys = heard(&case.mulaw);
            (keys != case.expected).then(|| {
                format!(
                    "  {}: expected {:?}, heard {keys:?}",
                    case.name, case.expected
                )
            })
        })
        .collect();
    assert!(total > 0, "the battery group is empty");
    assert!(
        failures.is_empty(),
        "{} of {total} cases heard wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn expecting_keys(cases: Vec<Case>) -> impl Iterator<Item = Case> {
    cases.into_iter().filter(|case| !case.expected.is_empty())
}

fn expecting_none(cases: Vec<Case>) -> impl Iterator<Item = Case> {
    cases.into_iter().filter(|case| case.expected.is_empty())
}

#[test]
fn every_key_pressed_ten_times_is_heard_ten_times() {
    assert_all_heard_as_expected(battery::keys());
}

#[test]
fn keys_up_to_one_and_a_half_percent_off_pitch_are_heard() {
    assert_all_heard_as_expected(expecting_keys(battery::frequency()));
}

#[test]
fn keys_three_and_a_half_percent_off_pitch_are_ignored() {
    assert_all_heard_as_expected(expecting_none(battery::frequency()));
}

#[test]
fn presses_of_forty_ms_are_heard_wherever_they_start() {
    assert_all_heard_as_expected(expecting_keys(battery::duration()));
}

#[test]
fn blips_of_twenty_ms_or_less_are_ignored() {
    assert_all_heard_as_expected(expecting_none(battery::duration()));
}

#[test]
fn a_forty_ms_pause_separates_presses_and_a_ten_ms_dropout_does_not() {
    assert_all_heard_as_expected(battery::pauses());
}

#[test]
fn twist_of_eight_db_normal_or_four_db_reverse_is_heard_and_more_is_not() {
    assert_all_heard_as_expected(battery::twist());
}

#[test]
fn keys_from_minus_three_to_minus_thirty_dbm0_are_heard() {
    assert_all_heard_as_expected(battery::level());
}

#[test]
fn keys_are_heard_through_noise_fifteen_db_below_them() {
    assert_all_heard_as_expected(battery::noise());
}

#[test]
fn music_sweeps_and_noise_never_produce_a_key() {
    assert_all_heard_as_expected(battery::talk_off());
}

#[test]
fn speech_never_produces_a_key() {
    match battery::speech() {
        Ok(clips) => {
            let seconds: f64 = clips.iter().map(Case::seconds).sum();
            assert!(seconds > 10.0, "only {seconds:.1} s of speech");
            assert_all_heard_as_expected(clips);
        }
        Err(reason) => println!("note: speech talk-off skipped: {reason}"),
    }
}

#[test]
fn a_long_press_is_reported_once_and_held_while_it_sounds() {
    let audio = Signal::new()
        .silence(20.0)
        .tone(Tone::new('#', 1500.0))
        .silence(100.0)
        .mulaw();
    let mut detector = DtmfDetector::new();
    let mut reports = String::new();
    let mut frames_held = 0;
    for frame in audio.chunks(FRAME_BYTES) {
        reports.extend(detector.push_mulaw(frame));
        if detector.held() == Some('#') {
            frames_held += 1;
        }
    }
    assert_eq!(reports, "#");
    // 1.5 s is 75 frames; the key is down from about 30 ms in to about 40 ms after.
    assert!(
        (73..=78).contains(&frames_held),
        "held for {frames_held} frames"
    );
    assert_eq!(detector.held(), None);
}

#[test]
fn the_same_keys_are_heard_however_the_audio_is_sliced() {
    let cases: Vec<Case> = battery::keys()
        .into_iter()
        .chain(battery::pauses())
        .collect();
    for case in &cases {
        let linear = case.linear();
        for slice in [1, 7, 101, 102, 103, 160, 1000, linear.len()] {
            let mut detector = DtmfDetector::new();
            let mut keys = String::new();
            for chunk in linear.chunks(slice) {
                detector.push_each(chunk, |key| keys.push(key));
            }
            assert_eq!(keys, case.expected, "{} in slices of {slice}", case.name);
        }
        let mut detector = DtmfDetector::new();
        let mut keys = String::new();
        detector.push_mulaw_each(&case.mulaw, |key| keys.push(key));
        assert_eq!(keys, case.expected, "{} as one μ-law slice", case.name);
    }
}

#[test]
fn listening_to_a_call_allocates_nothing() {
    let audio: Vec<u8> = battery::keys()
        .into_iter()
        .chain(battery::talk_off())
        .flat_map(|case| case.mulaw)
        .collect();
    let mut detector = DtmfDetector::new();
    detector.push_mulaw(&audio[..FRAME_BYTES]);
    let before = allocations();
    let mut presses = 0;
    for frame in audio.chunks(FRAME_BYTES) {
        presses += usize::from(detector.push_mulaw(frame).is_some());
    }
    assert_eq!(allocations(), before);
    assert_eq!(presses, 16 * 10);
}

#[test]
fn per_call_state_is_a_few_hundred_bytes() {
    let bytes = std::mem::size_of::<DtmfDetector>();
    println!("DtmfDetector: {bytes} bytes per call");
    assert!(bytes <= 256, "{bytes} bytes");
}
