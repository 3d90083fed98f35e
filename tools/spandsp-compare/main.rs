//! Dev tool: runs careline's DTMF battery through spandsp's `dtmf_rx` (default settings, Debian's
//! libspandsp) and through careline's detector, and prints their decisions side by side, sweeps
//! of where each stops hearing keys, and the cost of each per second of audio.
//!
//! Run: `cargo run --release --features spandsp-compare --example spandsp-compare [-- --all]`
//! (`--all` lists every case, not only those where a detector misses the expected keys).

use std::ffi::{c_char, c_int, c_void};
use std::hint::black_box;
use std::process::ExitCode;
use std::ptr::NonNull;
use std::time::Instant;

use careline::media::FRAME_BYTES;
use careline::media::dtmf::DtmfDetector;

// The battery of tests/dtmf_battery.rs; this tool uses the parts it needs.
#[allow(dead_code)]
#[path = "../../tests/dtmf_battery/battery.rs"]
mod battery;

use battery::{Case, DIAGONAL, KEYS, Rng, Signal, Tone};

/// spandsp's `dtmf_rx_state_t`, opaque.
#[repr(C)]
struct DtmfRxState {
    _private: [u8; 0],
}

type DigitsCallback = unsafe extern "C" fn(*mut c_void, *const c_char, c_int);

#[link(name = "spandsp")]
unsafe extern "C" {
    fn dtmf_rx_init(
        state: *mut DtmfRxState,
        callback: Option<DigitsCallback>,
        user_data: *mut c_void,
    ) -> *mut DtmfRxState;
    fn dtmf_rx(state: *mut DtmfRxState, amp: *const i16, samples: c_int) -> c_int;
    fn dtmf_rx_get(state: *mut DtmfRxState, digits: *mut c_char, max: c_int) -> usize;
    fn dtmf_rx_free(state: *mut DtmfRxState) -> c_int;
}

/// One spandsp receiver with its default settings (no dial-tone filter, 8 dB / 4 dB twist,
/// −42 dBm0 threshold), as Asterisk-class systems run it.
struct Spandsp(NonNull<DtmfRxState>);

impl Spandsp {
    fn new() -> Spandsp {
        // SAFETY: with a null state, dtmf_rx_init allocates and initialises one; a null
        // callback makes it queue digits for dtmf_rx_get.
        let state = unsafe { dtmf_rx_init(std::ptr::null_mut(), None, std::ptr::null_mut()) };
        Spandsp(NonNull::new(state).expect("spandsp could not allocate a receiver"))
    }

    /// Feeds one frame and appends the digits it completed.
    fn push(&mut self, frame: &[i16], digits: &mut String) {
        let mut buffer = [0 as c_char; 128];
        // SAFETY: the state is live; `frame` is valid for its length, which is at most a few
        // hundred samples; `buffer` holds the 128 digits spandsp can queue at most.
        unsafe {
            dtmf_rx(self.0.as_ptr(), frame.as_ptr(), frame.len() as c_int);
            let count = dtmf_rx_get(self.0.as_ptr(), buffer.as_mut_ptr(), buffer.len() as c_int);
            digits.extend(buffer[..count].iter().map(|&byte| byte as u8 as char));
        }
    }
}

impl Drop for Spandsp {
    fn drop(&mut self) {
        // SAFETY: the state came from dtmf_rx_init and is freed once.
        unsafe {
            dtmf_rx_free(self.0.as_ptr());
        }
    }
}

fn spandsp_hears(linear: &[i16]) -> String {
    let mut receiver = Spandsp::new();
    let mut digits = String::new();
    for frame in linear.chunks(FRAME_BYTES) {
        receiver.push(frame, &mut digits);
    }
    digits
}

fn careline_hears(mulaw: &[u8]) -> String {
    let mut detector = DtmfDetector::new();
    mulaw
        .chunks(FRAME_BYTES)
        .filter_map(|frame| detector.push_mulaw(frame))
        .collect()
}

fn shown(keys: &str) -> String {
    if keys.is_empty() {
        "–".to_string()
    } else if keys.len() > 12 {
        format!("{}…({})", &keys[..10], keys.len())
    } else {
        keys.to_string()
    }
}

struct Tally {
    group: &'static str,
    cases: usize,
    spandsp_right: usize,
    careline_right: usize,
    agree: usize,
}

fn compare(cases: &[Case], list_all: bool) -> (usize, usize) {
    let mut tallies: Vec<Tally> = Vec::new();
    println!("## Decisions (✗ = differs from the expected keys)\n");
    println!("| group | case | expected | spandsp | careline |");
    println!("|---|---|---|---|---|");
    for case in cases {
        let spandsp = spandsp_hears(&case.linear());
        let careline = careline_hears(&case.mulaw);
        let mark = |keys: &str| {
            if keys == case.expected {
                shown(keys)
            } else {
                format!("{} ✗", shown(keys))
            }
        };
        if list_all || spandsp != case.expected || careline != case.expected {
            println!(
                "| {} | {} | {} | {} | {} |",
                case.group,
                case.name,
                shown(&case.expected),
                mark(&spandsp),
                mark(&careline)
            );
        }
        if tallies.last().is_none_or(|tally| tally.group != case.group) {
            tallies.push(Tally {
                group: case.group,
                cases: 0,
                spandsp_right: 0,
                careline_right: 0,
                agree: 0,
            });
        }
        if let Some(tally) = tallies.last_mut() {
            tally.cases += 1;
            tally.spandsp_right += usize::from(spandsp == case.expected);
            tally.careline_right += usize::from(careline == case.expected);
            tally.agree += usize::from(spandsp == careline);
        }
    }
    println!("\n## Summary\n");
    println!("| group | cases | spandsp as expected | careline as expected | same decision |");
    println!("|---|---|---|---|---|");
    let (mut spandsp_wrong, mut careline_wrong) = (0, 0);
    for tally in &tallies {
        println!(
            "| {} | {} | {} | {} | {} |",
            tally.group, tally.cases, tally.spandsp_right, tally.careline_right, tally.agree
        );
        spandsp_wrong += tally.cases - tally.spandsp_right;
        careline_wrong += tally.cases - tally.careline_right;
    }
    (spandsp_wrong, careline_wrong)
}

/// How many of `signals` each detector hears exactly as expected.
fn sweep_row(label: String, signals: Vec<(Signal, String)>) {
    let total = signals.len();
    let (mut spandsp, mut careline) = (0, 0);
    for (signal, expected) in signals {
        let mulaw = signal.mulaw();
        let linear: Vec<i16> = mulaw
            .iter()
            .map(|&b| careline::media::ulaw::decode(b))
            .collect();
        spandsp += usize::from(spandsp_hears(&linear) == expected);
        careline += usize::from(careline_hears(&mulaw) == expected);
    }
    println!("| {label} | {spandsp}/{total} | {careline}/{total} |");
}

fn sweeps() {
    println!("\n## Sweeps: share of signals heard exactly as written\n");
    println!("| signal | spandsp | careline |");
    println!("|---|---|---|");
    for percent in [1.5, 2.0, 2.5, 3.0, 3.5] {
        for sign in [1.0, -1.0] {
            let offset = sign * percent / 100.0;
            for (which, row, column) in [("row", offset, 0.0), ("column", 0.0, offset)] {
                let signals = KEYS
                    .iter()
                    .enumerate()
                    .map(|(index, &key)| {
                        let signal = Signal::new()
                            .silent_samples(index * 3)
                            .tone(Tone::new(key, 100.0).detuned(row, column))
                            .silence(60.0);
                        (signal, key.to_string())
                    })
                    .collect();
                sweep_row(
                    format!(
                        "{which} tone {:+.1} % off, 100 ms, each key",
                        offset * 100.0
                    ),
                    signals,
                );
            }
        }
    }
    for db in [8.0, 8.5, 9.0, 10.0, -4.0, -4.5, -5.0, -6.0] {
        let signals = KEYS
            .iter()
            .enumerate()
            .flat_map(|(index, &key)| {
                (0..5).map(move |step| {
                    let signal = Signal::new()
                        .silent_samples(step * 20 + index)
                        .tone(Tone::new(key, 60.0).twisted(db))
                        .silence(60.0);
                    (signal, key.to_string())
                })
            })
            .collect();
        let kind = if db > 0.0 { "normal" } else { "reverse" };
        sweep_row(
            format!("{kind} twist {} dB, each key × 5 alignments", f64::abs(db)),
            signals,
        );
    }
    for ms in [20.0, 23.0, 25.0, 30.0, 35.0, 40.0] {
        let signals = DIAGONAL
            .iter()
            .flat_map(|&key| {
                (0..102).step_by(3).map(move |offset| {
                    let signal = Signal::new()
                        .silent_samples(80 + offset)
                        .tone(Tone::new(key, ms))
                        .silence(80.0);
                    (signal, key.to_string())
                })
            })
            .collect();
        sweep_row(
            format!("one {ms} ms press, 34 alignments × 4 keys"),
            signals,
        );
    }
    for ms in [10.0, 20.0, 30.0, 40.0] {
        let signals = DIAGONAL
            .iter()
            .flat_map(|&key| {
                (0..102).step_by(3).map(move |offset| {
                    let signal = Signal::new()
                        .silent_samples(80 + offset)
                        .tone(Tone::new(key, 50.0))
                        .silence(ms)
                        .tone(Tone::new(key, 50.0))
                        .silence(80.0);
                    (signal, format!("{key}{key}"))
                })
            })
            .collect();
        sweep_row(
            format!("two 50 ms presses, {ms} ms apart, heard as two"),
            signals,
        );
    }
    for snr in [15.0, 12.0, 10.0, 8.0] {
        let mut rng = Rng::new(5);
        let keys: String = (0..400)
            .map(|_| KEYS[(rng.uniform() * 16.0) as usize % 16])
            .collect();
        let signal = Signal::new()
            .silence(20.0)
            .presses(&keys, 50.0, 50.0)
            .with_noise(snr, &mut rng);
        // One long signal: count keys heard in order rather than all-or-nothing.
        let mulaw = signal.mulaw();
        let linear: Vec<i16> = mulaw
            .iter()
            .map(|&b| careline::media::ulaw::decode(b))
            .collect();
        let score = |heard: String| {
            if heard == keys {
                "400/400".to_string()
            } else {
                format!("{} heard, not exact", heard.len())
            }
        };
        println!(
            "| 400 random keys, 50/50 ms, {snr} dB SNR | {} | {} |",
            score(spandsp_hears(&linear)),
            score(careline_hears(&mulaw))
        );
    }
}

/// Nanoseconds each detector spends per second of `mulaw` audio, fed 20 ms frames as a call
/// would: the best of seven rounds, the detectors taking turns so that load from elsewhere on
/// the machine falls on all of them alike.
fn cost_per_second(mulaw: &[u8]) -> [f64; 3] {
    let linear: Vec<i16> = mulaw
        .iter()
        .map(|&b| careline::media::ulaw::decode(b))
        .collect();
    let seconds = mulaw.len() as f64 / 8000.0;
    let repeats = (20.0 / seconds).ceil().max(1.0) as usize;
    let spandsp = || {
        let mut receiver = Spandsp::new();
        let mut digits = String::new();
        for frame in linear.chunks(FRAME_BYTES) {
            receiver.push(black_box(frame), &mut digits);
        }
        black_box(digits);
    };
    let careline_linear = || {
        let mut detector = DtmfDetector::new();
        for frame in linear.chunks(FRAME_BYTES) {
            black_box(detector.push(black_box(frame)));
        }
    };
    let careline_mulaw = || {
        let mut detector = DtmfDetector::new();
        for frame in mulaw.chunks(FRAME_BYTES) {
            black_box(detector.push_mulaw(black_box(frame)));
        }
    };
    let runs: [&dyn Fn(); 3] = [&spandsp, &careline_linear, &careline_mulaw];
    let mut best = [f64::INFINITY; 3];
    for _ in 0..7 {
        for (run, best) in runs.iter().zip(&mut best) {
            let start = Instant::now();
            for _ in 0..repeats {
                run();
            }
            let per_second = start.elapsed().as_nanos() as f64 / (repeats as f64 * seconds);
            *best = best.min(per_second);
        }
    }
    best
}

fn costs(cases: &[Case], speech: &[Case]) {
    println!("\n## Cost per second of audio (20 ms frames, one core, best of 7 rounds)\n");
    println!(
        "| audio | seconds | spandsp (linear) | careline (linear) | careline (μ-law in) | calls per core, careline μ-law |"
    );
    println!("|---|---|---|---|---|---|");
    let concatenated = |cases: &[Case]| -> Vec<u8> {
        cases
            .iter()
            .flat_map(|case| case.mulaw.iter().copied())
            .collect()
    };
    let mut rng = Rng::new(11);
    let dialled: String = (0..300)
        .map(|_| KEYS[(rng.uniform() * 16.0) as usize % 16])
        .collect();
    let keypad = Signal::new().presses(&dialled, 50.0, 50.0).mulaw();
    let talk_off: Vec<Case> = battery::talk_off();
    let mut workloads = vec![
        ("whole battery", concatenated(cases)),
        ("keypad, 50/50 ms non-stop", keypad),
        ("music and noise (talk-off)", concatenated(&talk_off)),
        ("silence", vec![0xFF; 8000 * 30]),
    ];
    if !speech.is_empty() {
        workloads.push(("speech", concatenated(speech)));
    }
    for (label, mulaw) in workloads {
        let [spandsp, careline_linear, careline_mulaw] = cost_per_second(&mulaw);
        println!(
            "| {label} | {:.0} | {:.1} µs | {:.1} µs ({:.2}×) | {:.1} µs | {:.0} |",
            mulaw.len() as f64 / 8000.0,
            spandsp / 1000.0,
            careline_linear / 1000.0,
            spandsp / careline_linear,
            careline_mulaw / 1000.0,
            1e9 / careline_mulaw
        );
    }
}

fn main() -> ExitCode {
    let list_all = std::env::args().any(|arg| arg == "--all");
    let mut cases = battery::all();
    let speech = match battery::speech() {
        Ok(clips) => clips,
        Err(reason) => {
            eprintln!("note: speech talk-off skipped: {reason}");
            Vec::new()
        }
    };
    cases.extend(speech.iter().map(|case| Case {
        group: case.group,
        name: case.name.clone(),
        expected: case.expected.clone(),
        mulaw: case.mulaw.clone(),
    }));
    let (spandsp_wrong, careline_wrong) = compare(&cases, list_all);
    println!(
        "\n{} cases: spandsp differs from the expected keys in {spandsp_wrong}, careline in {careline_wrong}.",
        cases.len()
    );
    sweeps();
    costs(&cases, &speech);
    if careline_wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
