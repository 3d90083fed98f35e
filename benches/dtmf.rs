//! Cost of listening for keypad tones in one call, per second of its audio.
//!
//! `cargo bench --bench dtmf`. Each benchmark feeds a detector ten seconds of μ-law in 20 ms
//! frames, as a call's media arrives. Criterion's throughput is in seconds of audio per second
//! of one core's time: the number of calls one core can screen at once.

use std::hint::black_box;

use careline::media::FRAME_BYTES;
use careline::media::dtmf::DtmfDetector;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

// The signals of tests/dtmf_battery.rs; this benchmark uses the parts it needs.
#[allow(dead_code)]
#[path = "../tests/dtmf_battery/battery.rs"]
mod battery;

use battery::{Case, KEYS, Rng, Signal};

const SECONDS: usize = 10;

/// The first ten seconds of `mulaw`, repeated if it is shorter.
fn ten_seconds(mulaw: Vec<u8>) -> Vec<u8> {
    mulaw.into_iter().cycle().take(8000 * SECONDS).collect()
}

fn audio_kinds() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng::new(3);
    let dialled: String = (0..SECONDS * 10)
        .map(|_| KEYS[(rng.uniform() * 16.0) as usize % 16])
        .collect();
    let joined =
        |cases: Vec<Case>| -> Vec<u8> { cases.into_iter().flat_map(|c| c.mulaw).collect() };
    let mut kinds = vec![
        ("silence", vec![0xFF; 8000 * SECONDS]),
        (
            "keypad non-stop",
            ten_seconds(Signal::new().presses(&dialled, 50.0, 50.0).mulaw()),
        ),
        ("music and noise", ten_seconds(joined(battery::talk_off()))),
    ];
    match battery::speech() {
        Ok(clips) => kinds.push(("speech", ten_seconds(joined(clips)))),
        Err(reason) => eprintln!("note: no speech benchmark: {reason}"),
    }
    kinds
}

fn detection(c: &mut Criterion) {
    let mut group = c.benchmark_group("dtmf per call");
    group.throughput(Throughput::Elements(SECONDS as u64));
    for (kind, mulaw) in audio_kinds() {
        group.bench_with_input(BenchmarkId::new("push_mulaw", kind), &mulaw, |b, mulaw| {
            let mut detector = DtmfDetector::new();
            b.iter(|| {
                for frame in mulaw.chunks(FRAME_BYTES) {
                    black_box(detector.push_mulaw(black_box(frame)));
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, detection);
criterion_main!(benches);
