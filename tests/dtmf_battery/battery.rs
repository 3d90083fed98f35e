//! The DTMF battery: keypad signals, music, noise and speech, each with the keys an ITU-T Q.24
//! receiver must report, all sent through μ-law as on the wire. Shared by tests/dtmf_battery.rs
//! and the spandsp comparison (tools/spandsp-compare).

use std::f64::consts::PI;
use std::path::Path;
use std::process::Command;

use careline::media::ulaw;

pub const SAMPLE_RATE: f64 = 8000.0;
/// Samples in one wire frame (20 ms).
pub const FRAME: usize = 160;

const ROW_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMN_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
pub const KEYS: [char; 16] = [
    '1', '2', '3', 'A', '4', '5', '6', 'B', '7', '8', '9', 'C', '*', '0', '#', 'D',
];
/// One key per row and per column: enough to cover every tone where a group runs per key.
pub const DIAGONAL: [char; 4] = ['1', '5', '9', 'D'];
/// A full-scale μ-law sine is +3.14 dBm0 (G.711).
#[allow(clippy::approx_constant)] // G.711's +3.14 dBm0, not π.
const FULL_SCALE_SINE_DBM0: f64 = 3.14;

/// One signal and the keys a receiver must report for it, in order.
pub struct Case {
    pub group: &'static str,
    pub name: String,
    pub expected: String,
    /// μ-law bytes, as the provider sends them.
    pub mulaw: Vec<u8>,
}

impl Case {
    fn new(group: &'static str, name: String, expected: impl Into<String>, signal: Signal) -> Case {
        Case {
            group,
            name,
            expected: expected.into(),
            mulaw: signal.mulaw(),
        }
    }

    /// The audio as a receiver on the far side of the μ-law link hears it.
    pub fn linear(&self) -> Vec<i16> {
        self.mulaw.iter().map(|&byte| ulaw::decode(byte)).collect()
    }

    pub fn seconds(&self) -> f64 {
        self.mulaw.len() as f64 / SAMPLE_RATE
    }
}

/// A seeded xorshift generator, so every run hears the same noise.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn gaussian(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
    }
}

pub fn amplitude(dbm0: f64) -> f64 {
    32768.0 * 10f64.powf((dbm0 - FULL_SCALE_SINE_DBM0) / 20.0)
}

fn tones_of(key: char) -> (f64, f64) {
    let index = KEYS.iter().position(|&k| k == key).unwrap_or(0);
    (ROW_HZ[index / 4], COLUMN_HZ[index % 4])
}

/// One keypad tone pair as a phone might send it.
#[derive(Clone, Copy)]
pub struct Tone {
    pub key: char,
    pub ms: f64,
    /// Frequency error of each tone, as a fraction of nominal.
    pub row_offset: f64,
    pub column_offset: f64,
    pub row_dbm0: f64,
    pub column_dbm0: f64,
}

impl Tone {
    pub fn new(key: char, ms: f64) -> Tone {
        Tone {
            key,
            ms,
            row_offset: 0.0,
            column_offset: 0.0,
            row_dbm0: -10.0,
            column_dbm0: -10.0,
        }
    }

    pub fn detuned(self, row_offset: f64, column_offset: f64) -> Tone {
        Tone {
            row_offset,
            column_offset,
            ..self
        }
    }

    /// Positive: normal twist (column tone weaker); negative: reverse twist.
    pub fn twisted(self, db: f64) -> Tone {
        Tone {
            column_dbm0: self.row_dbm0 - db,
            ..self
        }
    }

    pub fn at_level(self, dbm0_per_tone: f64) -> Tone {
        Tone {
            row_dbm0: dbm0_per_tone,
            column_dbm0: dbm0_per_tone,
            ..self
        }
    }

    /// Mean-square power of the pair, in linear units squared.
    fn power(&self) -> f64 {
        (amplitude(self.row_dbm0).powi(2) + amplitude(self.column_dbm0).powi(2)) / 2.0
    }
}

/// Audio under construction, in floating point until it is put on the wire.
#[derive(Default)]
pub struct Signal {
    samples: Vec<f64>,
    /// Power of the keypad tones in it, the reference for signal-to-noise ratios.
    tone_power: f64,
    /// Starting phases vary from tone to tone, as they do from phone to phone.
    tones_made: u32,
}

fn samples_in(ms: f64) -> usize {
    (ms * SAMPLE_RATE / 1000.0).round() as usize
}

impl Signal {
    pub fn new() -> Signal {
        Signal::default()
    }

    pub fn silence(self, ms: f64) -> Signal {
        self.silent_samples(samples_in(ms))
    }

    pub fn silent_samples(mut self, count: usize) -> Signal {
        self.samples.resize(self.samples.len() + count, 0.0);
        self
    }

    pub fn tone(mut self, tone: Tone) -> Signal {
        let (row_hz, column_hz) = tones_of(tone.key);
        let (row_hz, column_hz) = (
            row_hz * (1.0 + tone.row_offset),
            column_hz * (1.0 + tone.column_offset),
        );
        let (row_amplitude, column_amplitude) =
            (amplitude(tone.row_dbm0), amplitude(tone.column_dbm0));
        self.tones_made += 1;
        let phase = 0.7 * self.tones_made as f64;
        for n in 0..samples_in(tone.ms) {
            let t = n as f64 / SAMPLE_RATE;
            self.samples.push(
                row_amplitude * (2.0 * PI * row_hz * t + phase).sin()
                    + column_amplitude * (2.0 * PI * column_hz * t + 2.3 * phase).sin(),
            );
        }
        self.tone_power = tone.power();
        self
    }

    /// Presses each key for `on_ms` with `off_ms` of silence after it.
    pub fn presses(self, keys: &str, on_ms: f64, off_ms: f64) -> Signal {
        keys.chars().fold(self, |signal, key| {
            signal.tone(Tone::new(key, on_ms)).silence(off_ms)
        })
    }

    /// Adds white noise `snr_db` below the keypad tones, over the whole signal.
    pub fn with_noise(mut self, snr_db: f64, rng: &mut Rng) -> Signal {
        let sigma = (self.tone_power / 10f64.powf(snr_db / 10.0)).sqrt();
        for sample in &mut self.samples {
            *sample += sigma * rng.gaussian();
        }
        self
    }

    pub fn then(mut self, other: Signal) -> Signal {
        self.samples.extend(other.samples);
        self.tone_power = self.tone_power.max(other.tone_power);
        self
    }

    pub fn from_linear(samples: &[i16]) -> Signal {
        Signal {
            samples: samples.iter().map(|&s| f64::from(s)).collect(),
            ..Signal::default()
        }
    }

    pub fn mulaw(&self) -> Vec<u8> {
        self.samples
            .iter()
            .map(|&sample| ulaw::encode(sample.round().clamp(-32768.0, 32767.0) as i16))
            .collect()
    }
}

/// Each key pressed ten times, 50 ms on and 50 ms off (spandsp's and Asterisk's first test).
pub fn keys() -> Vec<Case> {
    KEYS.iter()
        .map(|&key| {
            let keys: String = std::iter::repeat_n(key, 10).collect();
            let signal = Signal::new().silence(20.0).presses(&keys, 50.0, 50.0);
            Case::new("keys", format!("{key} ×10, 50/50 ms"), keys, signal)
        })
        .collect()
}

/// Each key with one or both tones off pitch: heard within 1.5 %, ignored from 3.5 %.
pub fn frequency() -> Vec<Case> {
    let heard = [
        (0.015, 0.0),
        (-0.015, 0.0),
        (0.0, 0.015),
        (0.0, -0.015),
        (0.015, 0.015),
        (-0.015, -0.015),
        (0.015, -0.015),
        (-0.015, 0.015),
    ];
    let ignored = [
        (0.035, 0.0),
        (-0.035, 0.0),
        (0.0, 0.035),
        (0.0, -0.035),
        (0.035, 0.035),
        (-0.035, -0.035),
    ];
    let mut cases = Vec::new();
    for (index, &key) in KEYS.iter().enumerate() {
        for (offsets, expected) in heard
            .iter()
            .map(|o| (o, key.to_string()))
            .chain(ignored.iter().map(|o| (o, String::new())))
        {
            let (row, column) = *offsets;
            let signal = Signal::new()
                .silent_samples(40 + index * 7)
                .tone(Tone::new(key, 100.0).detuned(row, column))
                .silence(60.0);
            let name = format!(
                "{key} row {:+.1}% column {:+.1}%",
                row * 100.0,
                column * 100.0
            );
            cases.push(Case::new("frequency", name, expected, signal));
        }
    }
    cases
}

/// Offsets of a tone's start within the detector's 102-sample blocks.
const ALIGNMENTS: [usize; 6] = [0, 17, 34, 51, 68, 85];

/// Single presses of 40 ms and longer are heard, 20 ms and shorter are not, at every alignment.
pub fn duration() -> Vec<Case> {
    let mut cases = Vec::new();
    for key in DIAGONAL {
        for ms in [40.0, 45.0, 20.0, 10.0] {
            for offset in ALIGNMENTS {
                let expected = if ms >= 40.0 {
                    key.to_string()
                } else {
                    String::new()
                };
                let signal = Signal::new()
                    .silent_samples(80 + offset)
                    .tone(Tone::new(key, ms))
                    .silence(80.0);
                let name = format!("{key} for {ms} ms, offset {offset}");
                cases.push(Case::new("duration", name, expected, signal));
            }
        }
    }
    cases
}

/// A 40 ms pause separates presses; a 10 ms dropout inside a press does not split it.
pub fn pauses() -> Vec<Case> {
    let mut cases = Vec::new();
    for key in DIAGONAL {
        for offset in ALIGNMENTS {
            let twice = Signal::new()
                .silent_samples(80 + offset)
                .tone(Tone::new(key, 50.0))
                .silence(40.0)
                .tone(Tone::new(key, 50.0))
                .silence(80.0);
            let name = format!("{key} 50 ms, pause 40 ms, {key} 50 ms, offset {offset}");
            cases.push(Case::new("pause", name, format!("{key}{key}"), twice));

            let dropout = Signal::new()
                .silent_samples(80 + offset)
                .tone(Tone::new(key, 45.0))
                .silence(10.0)
                .tone(Tone::new(key, 45.0))
                .silence(80.0);
            let name = format!("{key} 45 ms, dropout 10 ms, 45 ms more, offset {offset}");
            cases.push(Case::new("pause", name, key.to_string(), dropout));
        }
    }
    let dialled = "123A456B789C*0#D";
    for offset in [0, 34, 68] {
        let signal = Signal::new()
            .silent_samples(80 + offset)
            .presses(dialled, 40.0, 40.0);
        let name = format!("all 16 keys 40 ms on, 40 ms off, offset {offset}");
        cases.push(Case::new("pause", name, dialled, signal));
    }
    cases
}

/// Twist: the row tone up to 8 dB louder, or the column tone up to 4 dB louder, is heard.
pub fn twist() -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, &key) in KEYS.iter().enumerate() {
        for (db, heard) in [(8.0, true), (-4.0, true), (12.0, false), (-8.0, false)] {
            let signal = Signal::new()
                .silent_samples(40 + index * 5)
                .tone(Tone::new(key, 60.0).twisted(db))
                .silence(60.0);
            let kind = if db > 0.0 { "normal" } else { "reverse" };
            let name = format!("{key} {kind} twist {} dB", f64::abs(db));
            let expected = if heard {
                key.to_string()
            } else {
                String::new()
            };
            cases.push(Case::new("twist", name, expected, signal));
        }
    }
    cases
}

/// Levels from loud to Q.24's quietest (−25 dBm0 per tone, 26 dB of line loss); far below, none.
pub fn level() -> Vec<Case> {
    let mut cases = Vec::new();
    for key in DIAGONAL {
        for (dbm0, heard) in [(-3.0, true), (-25.0, true), (-30.0, true), (-50.0, false)] {
            let signal = Signal::new()
                .silence(20.0)
                .tone(Tone::new(key, 60.0).at_level(dbm0))
                .silence(60.0);
            let name = format!("{key} at {dbm0} dBm0 per tone");
            let expected = if heard {
                key.to_string()
            } else {
                String::new()
            };
            cases.push(Case::new("level", name, expected, signal));
        }
    }
    cases
}

/// Keys through white noise 15 dB below them.
pub fn noise() -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, &key) in KEYS.iter().enumerate() {
        let keys: String = std::iter::repeat_n(key, 10).collect();
        let signal = Signal::new()
            .silence(20.0)
            .presses(&keys, 50.0, 50.0)
            .with_noise(15.0, &mut Rng::new(index as u64 + 1));
        cases.push(Case::new(
            "noise",
            format!("{key} ×10, 15 dB SNR"),
            keys,
            signal,
        ));
    }
    let mut rng = Rng::new(99);
    let dialled: String = (0..160)
        .map(|_| KEYS[(rng.uniform() * 16.0) as usize % 16])
        .collect();
    let signal = Signal::new()
        .silence(20.0)
        .presses(&dialled, 50.0, 50.0)
        .with_noise(15.0, &mut rng);
    cases.push(Case::new(
        "noise",
        "160 random keys, 15 dB SNR".to_string(),
        dialled,
        signal,
    ));
    cases
}

fn midi_hz(note: u8) -> f64 {
    440.0 * 2f64.powf((f64::from(note) - 69.0) / 12.0)
}

/// How an instrument's harmonics fall off, and whether its notes die away.
struct Timbre {
    harmonics: &'static [f64],
    decay_ms: Option<f64>,
    vibrato: f64,
}

const PIANO: Timbre = Timbre {
    harmonics: &[1.0, 0.5, 0.35, 0.25, 0.2, 0.15, 0.1, 0.08],
    decay_ms: Some(350.0),
    vibrato: 0.0,
};
const ORGAN: Timbre = Timbre {
    harmonics: &[1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1],
    decay_ms: None,
    vibrato: 0.0,
};
const STRINGS: Timbre = Timbre {
    harmonics: &[1.0, 0.5, 0.33, 0.25, 0.2, 0.17, 0.14, 0.12, 0.11, 0.1],
    decay_ms: None,
    vibrato: 0.006,
};
const CLARINET: Timbre = Timbre {
    harmonics: &[1.0, 0.05, 0.5, 0.05, 0.3, 0.05, 0.2, 0.05, 0.1],
    decay_ms: None,
    vibrato: 0.0,
};

/// Mixes one note into `out` from sample `start`.
fn play(out: &mut Vec<f64>, start: usize, note: u8, ms: f64, dbm0: f64, timbre: &Timbre) {
    let hz = midi_hz(note);
    let length = samples_in(ms);
    if out.len() < start + length {
        out.resize(start + length, 0.0);
    }
    let attack = samples_in(10.0) as f64;
    let amplitude = amplitude(dbm0);
    let mut phase = 0.0;
    for n in 0..length {
        let t = n as f64 / SAMPLE_RATE;
        let envelope = (n as f64 / attack).min(1.0)
            * timbre
                .decay_ms
                .map_or(1.0, |decay| (-t * 1000.0 / decay).exp())
            * ((length - n) as f64 / attack).min(1.0);
        let instantaneous = hz * (1.0 + timbre.vibrato * (2.0 * PI * 5.5 * t).sin());
        phase += 2.0 * PI * instantaneous / SAMPLE_RATE;
        let mut value = 0.0;
        for (k, weight) in timbre.harmonics.iter().enumerate() {
            let harmonic = (k + 1) as f64;
            if harmonic * hz < 3800.0 {
                value += weight * (harmonic * phase + k as f64).sin();
            }
        }
        out[start + n] += amplitude * envelope * value;
    }
}

fn chords(progression: &[&[u8]], ms: f64, timbre: &Timbre) -> Signal {
    let mut samples = Vec::new();
    for (index, chord) in progression.iter().enumerate() {
        let start = samples_in(ms * index as f64);
        for &note in *chord {
            play(&mut samples, start, note, ms, -16.0, timbre);
        }
    }
    Signal {
        samples,
        ..Signal::default()
    }
}

/// A tone gliding from `from_hz` to `to_hz`; with `interval`, a second voice that far above.
fn sweep(from_hz: f64, to_hz: f64, ms: f64, interval: Option<f64>) -> Signal {
    let length = samples_in(ms);
    let amplitude = amplitude(-12.0);
    let mut phase = [0.0f64; 2];
    let samples = (0..length)
        .map(|n| {
            let hz = from_hz + (to_hz - from_hz) * n as f64 / length as f64;
            phase[0] += 2.0 * PI * hz / SAMPLE_RATE;
            phase[1] += 2.0 * PI * hz * interval.unwrap_or(0.0) / SAMPLE_RATE;
            amplitude * (phase[0].sin() + interval.map_or(0.0, |_| phase[1].sin()))
        })
        .collect();
    Signal {
        samples,
        ..Signal::default()
    }
}

fn white_noise(ms: f64, dbm0: f64, rng: &mut Rng) -> Vec<f64> {
    let sigma = amplitude(dbm0) / 2f64.sqrt();
    (0..samples_in(ms))
        .map(|_| sigma * rng.gaussian())
        .collect()
}

/// Music and noise a caller's line may carry while no key is pressed: must yield no keys.
///
/// The chords put notes where keypad tones lie (F5 ≈ 697 Hz, A♯5 ≈ 941 Hz, E6 ≈ 1336 Hz,
/// F♯6 ≈ 1477 Hz) with real instruments' harmonics; low notes put harmonics on keypad pairs
/// (F3's 4th and 7th harmonics fall on 697 and ≈1209 Hz).
pub fn talk_off() -> Vec<Case> {
    let mut cases = Vec::new();
    let progression: &[&[u8]] = &[
        &[60, 64, 67, 72],
        &[65, 69, 72, 77],
        &[67, 71, 74, 77],
        &[69, 72, 76, 81],
        &[77, 82, 88, 90],
        &[53, 65, 77, 90],
        &[82, 87, 90, 92],
        &[41, 53, 60, 65],
    ];
    for (name, timbre) in [
        ("piano", &PIANO),
        ("organ", &ORGAN),
        ("strings", &STRINGS),
        ("clarinet", &CLARINET),
    ] {
        let signal = chords(progression, 400.0, timbre);
        cases.push(Case::new(
            "talk-off",
            format!("{name} chords over keypad notes"),
            "",
            signal,
        ));
    }
    let arpeggio: Vec<&[u8]> = [77u8, 81, 84, 89, 90, 82, 88, 93, 65, 70, 74, 77]
        .iter()
        .cycle()
        .take(48)
        .map(std::slice::from_ref)
        .collect();
    cases.push(Case::new(
        "talk-off",
        "piano arpeggio, 60 ms notes".to_string(),
        "",
        chords(&arpeggio, 60.0, &PIANO),
    ));
    let mut melody_and_bass = chords(&arpeggio, 120.0, &ORGAN);
    let bass = chords(&[&[41], &[46], &[48], &[41]], 1440.0, &STRINGS);
    for (sample, low) in melody_and_bass.samples.iter_mut().zip(bass.samples) {
        *sample += low;
    }
    cases.push(Case::new(
        "talk-off",
        "organ melody over string bass".to_string(),
        "",
        melody_and_bass,
    ));
    cases.push(Case::new(
        "talk-off",
        "sweep 300→3400 Hz in 3 s and back".to_string(),
        "",
        sweep(300.0, 3400.0, 3000.0, None).then(sweep(3400.0, 300.0, 3000.0, None)),
    ));
    cases.push(Case::new(
        "talk-off",
        "two voices a fifth apart sweeping 400→1800 Hz".to_string(),
        "",
        sweep(400.0, 1800.0, 3000.0, Some(1.5)),
    ));
    let mut rng = Rng::new(7);
    cases.push(Case::new(
        "talk-off",
        "white noise at −20 dBm0".to_string(),
        "",
        Signal {
            samples: white_noise(3000.0, -20.0, &mut rng),
            ..Signal::default()
        },
    ));
    let mut low = 0.0;
    let rumble = white_noise(3000.0, -10.0, &mut rng)
        .into_iter()
        .map(|sample| {
            low = 0.9 * low + 0.1 * sample;
            low * 3.0
        })
        .collect();
    cases.push(Case::new(
        "talk-off",
        "low-passed noise (rumble)".to_string(),
        "",
        Signal {
            samples: rumble,
            ..Signal::default()
        },
    ));
    let bursts = (0..20).fold(Signal::new(), |signal, _| {
        let burst = Signal {
            samples: white_noise(50.0, -15.0, &mut rng),
            ..Signal::default()
        };
        signal.then(burst).silence(50.0)
    });
    cases.push(Case::new(
        "talk-off",
        "noise bursts, 50 ms on/off".to_string(),
        "",
        bursts,
    ));
    cases
}

/// Every synthetic group.
pub fn all() -> Vec<Case> {
    [
        keys(),
        frequency(),
        duration(),
        pauses(),
        twist(),
        level(),
        noise(),
        talk_off(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

const SPOKEN: [(&str, &str); 6] = [
    (
        "en-us",
        "Thank you for calling the patient portal help desk. Your call may be recorded.",
    ),
    (
        "en-us+f3",
        "To reset your password, press one. For billing questions, press two. \
         To speak with someone, press zero.",
    ),
    (
        "en-gb",
        "Please enter your date of birth as eight digits, followed by the pound key.",
    ),
    (
        "en-us+m3",
        "All of our agents are helping other patients. Your estimated wait is four minutes.",
    ),
    (
        "en-gb-x-rp+f2",
        "If this is a medical emergency, hang up and dial nine one one.",
    ),
    (
        "en-us+f4",
        "Sorry, I didn't catch that. Let's try again. Star takes you back to the menu.",
    ),
];

/// Speech as callers' lines carry it: the project's prompts (prompts/en/*.wav) when present,
/// and sentences spoken by espeak-ng when it is installed. Each clip must yield no keys.
/// Err says why there is none.
pub fn speech() -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en");
    if let Ok(entries) = std::fs::read_dir(&prompts) {
        let mut paths: Vec<_> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wav"))
            .collect();
        paths.sort();
        for path in paths {
            let samples = read_wav_at_8khz(&path)?;
            let name = format!("prompt {}", path.file_name().unwrap_or_default().display());
            cases.push(Case::new("speech", name, "", Signal::from_linear(&samples)));
        }
    }
    match espeak(&mut cases) {
        Ok(()) => Ok(cases),
        Err(reason) if !cases.is_empty() => {
            eprintln!("note: espeak-ng speech skipped: {reason}");
            Ok(cases)
        }
        Err(reason) => Err(reason),
    }
}

fn espeak(cases: &mut Vec<Case>) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    for (index, (voice, text)) in SPOKEN.iter().enumerate() {
        let path = dir.path().join(format!("speech-{index}.wav"));
        let status = Command::new("espeak-ng")
            .args(["-v", voice, "-s", "160", "-w"])
            .arg(&path)
            .arg(text)
            .status()
            .map_err(|e| format!("espeak-ng not runnable ({e}); install espeak-ng"))?;
        if !status.success() {
            return Err(format!("espeak-ng failed for voice {voice}: {status}"));
        }
        let samples = read_wav_at_8khz(&path)?;
        let name = format!("espeak-ng {voice}: \"{}…\"", &text[..24]);
        cases.push(Case::new("speech", name, "", Signal::from_linear(&samples)));
    }
    Ok(())
}

fn read_wav_at_8khz(path: &Path) -> Result<Vec<i16>, String> {
    let mut reader =
        hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<f64> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let full_scale = 2f64.powi(i32::from(spec.bits_per_sample) - 1);
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| f64::from(s) * 32768.0 / full_scale))
                .collect::<Result<_, _>>()
        }
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .map(|s| s.map(|s| f64::from(s) * 32767.0))
            .collect::<Result<_, _>>(),
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mono: Vec<f64> = samples
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f64>() / frame.len() as f64)
        .collect();
    Ok(resample(&mono, f64::from(spec.sample_rate), SAMPLE_RATE)
        .into_iter()
        .map(|s| s.round().clamp(-32768.0, 32767.0) as i16)
        .collect())
}

/// Windowed-sinc resampling with a 3.6 kHz low-pass: slow, but plenty for test audio.
fn resample(input: &[f64], from_hz: f64, to_hz: f64) -> Vec<f64> {
    if (from_hz - to_hz).abs() < 0.5 {
        return input.to_vec();
    }
    const TAPS: isize = 48;
    let cutoff = 3600.0 / from_hz;
    let length = (input.len() as f64 * to_hz / from_hz) as usize;
    (0..length)
        .map(|n| {
            let centre = n as f64 * from_hz / to_hz;
            let first = centre.floor() as isize - TAPS;
            (first..first + 2 * TAPS)
                .filter(|&k| k >= 0 && (k as usize) < input.len())
                .map(|k| {
                    let distance = centre - k as f64;
                    let sinc = if distance.abs() < 1e-9 {
                        2.0 * cutoff
                    } else {
                        (2.0 * PI * cutoff * distance).sin() / (PI * distance)
                    };
                    let window = 0.5 + 0.5 * (PI * distance / TAPS as f64).cos();
                    input[k as usize] * sinc * window
                })
                .sum()
        })
        .collect()
}
