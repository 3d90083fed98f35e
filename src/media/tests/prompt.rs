//! Tests for prompt loading: every WAV flavour an admin may drop in comes out as clean 8 kHz
//! μ-law, and every broken file is reported by name.

use std::f32::consts::TAU;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::*;
use crate::media::{SAMPLE_RATE, ulaw};

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Int(u16),
    Float,
}

const ENCODINGS: [Encoding; 5] = [
    Encoding::Int(8),
    Encoding::Int(16),
    Encoding::Int(24),
    Encoding::Int(32),
    Encoding::Float,
];

const RATES: [u32; 5] = [8_000, 16_000, 22_050, 44_100, 48_000];

fn sine(rate: u32, seconds: f32, frequency: f32, amplitude: f32) -> Vec<f32> {
    let count = (rate as f32 * seconds).round() as usize;
    (0..count)
        .map(|n| amplitude * (TAU * frequency * n as f32 / rate as f32).sin())
        .collect()
}

fn silence(rate: u32, seconds: f32) -> Vec<f32> {
    vec![0.0; (rate as f32 * seconds).round() as usize]
}

/// Write `channels[c][n]` as a WAV; every channel must be the same length.
fn write_wav(path: &Path, rate: u32, encoding: Encoding, channels: &[Vec<f32>]) {
    let (bits_per_sample, sample_format) = match encoding {
        Encoding::Int(bits) => (bits, hound::SampleFormat::Int),
        Encoding::Float => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample,
        sample_format,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create test WAV");
    let frames = channels.first().map_or(0, Vec::len);
    for n in 0..frames {
        for channel in channels {
            let value = channel[n];
            match encoding {
                Encoding::Int(bits) => {
                    let full_scale = ((1i64 << (bits - 1)) - 1) as f32;
                    writer
                        .write_sample((value * full_scale).round() as i32)
                        .expect("write int sample");
                }
                Encoding::Float => writer.write_sample(value).expect("write float sample"),
            }
        }
    }
    writer.finalize().expect("finalize test WAV");
}

fn decoded(audio: &PromptAudio) -> Vec<f32> {
    audio
        .mulaw()
        .iter()
        .map(|&byte| f32::from(ulaw::decode(byte)) / 32768.0)
        .collect()
}

fn mean_square(samples: &[f32]) -> f32 {
    samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32
}

/// Power at `frequency` (Goertzel), scaled so a sine of amplitude A filling the window gives
/// A²/2 — the same as its mean square.
fn power_at(samples: &[f32], frequency: f32) -> f32 {
    let coefficient = 2.0 * (TAU * frequency / SAMPLE_RATE as f32).cos();
    let (mut previous, mut before_previous) = (0.0f32, 0.0f32);
    for &sample in samples {
        let current = sample + coefficient * previous - before_previous;
        before_previous = previous;
        previous = current;
    }
    let magnitude_squared = previous * previous + before_previous * before_previous
        - coefficient * previous * before_previous;
    2.0 * magnitude_squared / (samples.len() as f32 * samples.len() as f32)
}

fn assert_duration_near(audio: &PromptAudio, expected: Duration, what: &str) {
    let actual = audio.duration();
    let difference = actual.abs_diff(expected);
    assert!(
        difference <= CHUNK_DURATION,
        "{what}: lasts {actual:?}, expected {expected:?} within one chunk"
    );
}

#[test]
fn every_supported_wav_format_becomes_8khz_mulaw_with_the_tone_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    for rate in RATES {
        for encoding in ENCODINGS {
            for channel_count in [1usize, 2] {
                let what = format!("{rate} Hz {encoding:?} {channel_count} ch");
                let path = dir
                    .path()
                    .join(format!("{rate}_{encoding:?}_{channel_count}.wav"));
                let tone = sine(rate, 1.0, 1000.0, 0.5);
                write_wav(&path, rate, encoding, &vec![tone; channel_count]);

                let audio = PromptAudio::from_wav_file(&path).expect(&what);

                assert_duration_near(&audio, Duration::from_secs(1), &what);
                let samples = decoded(&audio);
                let total = mean_square(&samples);
                let at_1khz = power_at(&samples, 1000.0);
                assert!(
                    at_1khz > 0.8 * total,
                    "{what}: 1 kHz holds {:.0}% of the power",
                    100.0 * at_1khz / total
                );
                // A sine of amplitude 0.5 has a mean square of 0.125; allow about ±1 dB.
                assert!(
                    (0.1..0.16).contains(&total),
                    "{what}: level changed, mean square {total}"
                );
            }
        }
    }
}

#[test]
fn a_24_bit_wav_in_4_byte_containers_keeps_its_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("extensible.wav");
    let spec = hound::WavSpecEx {
        spec: hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        },
        bytes_per_sample: 4,
    };
    let file = std::fs::File::create(&path).expect("create");
    let mut writer = hound::WavWriter::new_with_spec_ex(file, spec).expect("WAV writer");
    for sample in sine(48_000, 1.0, 1000.0, 0.5) {
        writer
            .write_sample((sample * 8_388_607.0) as i32)
            .expect("write sample");
    }
    writer.finalize().expect("finalize");

    let audio = PromptAudio::from_wav_file(&path).expect("load");

    assert_duration_near(&audio, Duration::from_secs(1), "24-in-32 file");
    let samples = decoded(&audio);
    let total = mean_square(&samples);
    assert!(power_at(&samples, 1000.0) > 0.8 * total);
    assert!((0.1..0.16).contains(&total), "mean square {total}");
}

#[test]
fn stereo_is_downmixed_by_averaging_the_channels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("left_only.wav");
    let left = sine(16_000, 1.0, 1000.0, 0.8);
    let right = silence(16_000, 1.0);
    write_wav(&path, 16_000, Encoding::Int(16), &[left, right]);

    let audio = PromptAudio::from_wav_file(&path).expect("load");

    // Half of 0.8 is 0.4, whose sine has a mean square of 0.08.
    let total = mean_square(&decoded(&audio));
    assert!((0.064..0.1).contains(&total), "mean square {total}");
}

#[test]
fn long_silence_at_either_end_is_trimmed_but_pauses_inside_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("padded.wav");
    let rate = 22_050;
    let signal: Vec<f32> = [
        silence(rate, 0.5),
        sine(rate, 0.5, 1000.0, 0.5),
        silence(rate, 0.4),
        sine(rate, 0.5, 1000.0, 0.5),
        silence(rate, 0.7),
    ]
    .concat();
    write_wav(&path, rate, Encoding::Int(16), &[signal]);

    let audio = PromptAudio::from_wav_file(&path).expect("load");

    // 1.4 s from the first sound to the last, plus 60 ms kept at each end.
    assert_duration_near(&audio, Duration::from_millis(1520), "trimmed prompt");
    let samples = decoded(&audio);
    // The kept 60 ms, 0.5 s of tone, then the pause from 0.56 s to 0.96 s.
    let middle_of_the_pause = &samples[4800..7400];
    assert!(
        mean_square(middle_of_the_pause) < 1e-6,
        "the pause between the two tones must survive"
    );
}

#[test]
fn a_silent_file_keeps_its_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pause.wav");
    write_wav(&path, 8_000, Encoding::Int(16), &[silence(8_000, 0.96)]);

    let audio = PromptAudio::from_wav_file(&path).expect("load");

    assert_eq!(audio.duration(), Duration::from_millis(960));
    assert!(audio.mulaw().iter().all(|&byte| ulaw::decode(byte) == 0));
}

#[test]
fn a_missing_file_is_reported_by_name_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("welcome.wav");

    let error = PromptAudio::from_wav_file(&path).expect_err("missing file");

    assert!(matches!(error, PromptError::Missing { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("scripts/make-prompts"), "{message}");
}

#[test]
fn a_file_that_is_not_a_wav_is_reported_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("welcome.wav");
    std::fs::write(&path, "Welcome to the patient portal help desk.\n").expect("write");

    let error = PromptAudio::from_wav_file(&path).expect_err("text file");

    assert!(matches!(error, PromptError::NotWav { .. }), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()));
    assert_eq!(error.path(), path);
}

#[test]
fn a_truncated_wav_is_reported_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("goodbye.wav");
    write_wav(
        &path,
        16_000,
        Encoding::Int(16),
        &[sine(16_000, 0.5, 1000.0, 0.5)],
    );
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2 + 1]).expect("truncate");

    let error = PromptAudio::from_wav_file(&path).expect_err("truncated file");

    assert!(matches!(error, PromptError::NotWav { .. }), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()));
}

#[test]
fn an_empty_wav_is_reported_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.wav");
    write_wav(&path, 16_000, Encoding::Int(16), &[Vec::new()]);

    let error = PromptAudio::from_wav_file(&path).expect_err("empty file");

    assert!(matches!(error, PromptError::Empty { .. }), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()));
}

#[test]
fn an_absurd_sample_rate_is_reported_as_unsupported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("slow.wav");
    write_wav(
        &path,
        1_000,
        Encoding::Int(16),
        &[sine(1_000, 1.0, 100.0, 0.5)],
    );

    let error = PromptAudio::from_wav_file(&path).expect_err("1 kHz file");

    assert!(
        matches!(error, PromptError::UnsupportedFormat { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("1000 Hz") && message.contains(&path.display().to_string()));
}

#[test]
fn wav_data_from_any_reader_is_named_by_the_path_given() {
    let bytes = b"RIFF nonsense".to_vec();

    let error = PromptAudio::from_wav_reader(bytes.as_slice(), Path::new("uploads/menu.wav"))
        .expect_err("not a WAV");

    assert!(error.to_string().contains("uploads/menu.wav"), "{error}");
}

#[test]
fn raw_mulaw_is_padded_with_silence_to_whole_chunks() {
    let audio = PromptAudio::from_mulaw(vec![0x00; 100]);

    assert_eq!(audio.chunk_count(), 1);
    assert_eq!(audio.mulaw().len(), CHUNK_BYTES);
    assert!(audio.mulaw()[..100].iter().all(|&byte| byte == 0x00));
    assert!(
        audio.mulaw()[100..]
            .iter()
            .all(|&byte| byte == MULAW_SILENCE)
    );
    assert_eq!(audio.duration(), CHUNK_DURATION);
}

#[test]
fn base64_chunks_decode_back_to_the_same_bytes() {
    let bytes: Vec<u8> = (0..CHUNK_BYTES * 4).map(|n| (n * 7 % 256) as u8).collect();
    let audio = PromptAudio::from_mulaw(bytes.clone());

    let whole = BASE64
        .decode(audio.base64_chunks(0, audio.chunk_count()))
        .expect("valid base64");
    assert_eq!(whole, bytes);

    for first in 0..4 {
        let chunk = audio.base64_chunks(first, 1);
        assert_eq!(chunk.len(), CHUNK_BASE64);
        assert!(!chunk.contains('='), "chunk {first} needs no padding");
        let decoded = BASE64.decode(chunk).expect("valid base64");
        assert_eq!(
            decoded,
            &bytes[first * CHUNK_BYTES..(first + 1) * CHUNK_BYTES]
        );
    }
    let middle = BASE64
        .decode(audio.base64_chunks(1, 2))
        .expect("valid base64");
    assert_eq!(middle, &bytes[CHUNK_BYTES..3 * CHUNK_BYTES]);
}

#[test]
fn base64_chunks_past_the_end_are_cut_at_the_end() {
    let audio = PromptAudio::from_mulaw(vec![0x10; CHUNK_BYTES * 2]);

    assert_eq!(audio.base64_chunks(1, 5).len(), CHUNK_BASE64);
    assert_eq!(audio.base64_chunks(2, 1), "");
    assert_eq!(audio.base64_chunks(usize::MAX, usize::MAX), "");
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[test]
fn a_library_gives_each_language_its_own_prompt() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (language, frequency) in [("en", 500.0), ("es", 1500.0)] {
        std::fs::create_dir(dir.path().join(language)).expect("mkdir");
        for id in ["welcome", "goodbye"] {
            write_wav(
                &dir.path().join(language).join(format!("{id}.wav")),
                16_000,
                Encoding::Int(16),
                &[sine(16_000, 0.3, frequency, 0.5)],
            );
        }
    }

    let library = PromptLibrary::load(
        dir.path(),
        &strings(&["en", "es"]),
        &strings(&["welcome", "goodbye", "welcome"]),
    )
    .expect("load");

    assert_eq!(library.len(), 4);
    assert!(!library.is_empty());
    let spanish = decoded(library.get("es", "welcome").expect("es welcome"));
    assert!(power_at(&spanish, 1500.0) > 0.8 * mean_square(&spanish));
    let english = decoded(library.get("en", "goodbye").expect("en goodbye"));
    assert!(power_at(&english, 500.0) > 0.8 * mean_square(&english));
    assert!(library.get("fr", "welcome").is_none());
    assert!(library.get("en", "main_menu").is_none());
}

#[test]
fn a_library_reports_every_broken_file_not_just_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("en")).expect("mkdir");
    write_wav(
        &dir.path().join("en/welcome.wav"),
        8_000,
        Encoding::Int(16),
        &[sine(8_000, 0.3, 1000.0, 0.5)],
    );
    std::fs::write(dir.path().join("en/goodbye.wav"), "not audio").expect("write");

    let errors = PromptLibrary::load(
        dir.path(),
        &strings(&["en", "es"]),
        &strings(&["welcome", "goodbye"]),
    )
    .expect_err("broken library");

    let mut named: Vec<PathBuf> = errors.iter().map(|e| e.path().to_path_buf()).collect();
    named.sort();
    let expected: Vec<PathBuf> = ["en/goodbye.wav", "es/goodbye.wav", "es/welcome.wav"]
        .iter()
        .map(|file| dir.path().join(file))
        .collect();
    assert_eq!(named, expected);
    for error in &errors {
        assert!(
            error
                .to_string()
                .contains(&error.path().display().to_string())
        );
    }
}

#[test]
fn a_library_built_by_hand_serves_what_was_inserted() {
    let mut library = PromptLibrary::default();
    assert!(library.is_empty());

    library.insert("en", "beep", PromptAudio::from_mulaw(vec![0x00; 10]));
    library.insert("en", "beep", PromptAudio::from_mulaw(vec![0x80; 10]));

    assert_eq!(library.len(), 1);
    let beep = library.get("en", "beep").expect("inserted");
    assert_eq!(
        beep.mulaw()[0],
        0x80,
        "the second insert replaces the first"
    );
}

/// The prompts shipped in the repository: everything the example config, the engine and the
/// catalog name, in every language, loads.
#[test]
fn the_shipped_prompts_cover_the_example_config_the_engine_and_the_catalog() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = crate::config::load(&root.join("config/careline.toml")).expect("example config");
    let config = &loaded.config;

    let mut languages = BTreeSet::from([config.prompts.default_language.clone()]);
    let mut ids: BTreeSet<String> = crate::config::system_prompts::system_prompts()
        .map(str::to_owned)
        .collect();
    for node in config.nodes.values() {
        ids.extend(node.prompts().cloned());
        if let crate::config::Node::Language(switch) = node {
            languages.insert(switch.language.clone());
        }
    }
    ids.extend(config.queues.values().filter_map(|q| q.hold_prompt.clone()));

    let catalog_text =
        std::fs::read_to_string(root.join("prompts/catalog.toml")).expect("prompts/catalog.toml");
    let catalog: toml::Table = toml::from_str(&catalog_text).expect("catalog is valid TOML");
    let catalog_ids = |language: &str| -> BTreeSet<String> {
        catalog
            .get(language)
            .and_then(toml::Value::as_table)
            .map(|table| table.keys().cloned().collect())
            .unwrap_or_default()
    };
    for language in &languages {
        assert_eq!(
            catalog_ids(language),
            catalog_ids(&config.prompts.default_language),
            "catalog [{language}] must have the same prompt ids as the default language"
        );
        let missing_from_catalog: Vec<&String> = ids
            .iter()
            .filter(|id| !catalog_ids(language).contains(*id))
            .collect();
        assert!(
            missing_from_catalog.iter().all(|id| *id == "hold_music"),
            "catalog [{language}] lacks {missing_from_catalog:?}"
        );
        ids.extend(catalog_ids(language));
    }
    ids.insert("hold_music".to_owned());

    let languages: Vec<String> = languages.into_iter().collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let library = PromptLibrary::load(&root.join("prompts"), &languages, &ids)
        .unwrap_or_else(|errors| panic!("{errors:#?}"));
    assert_eq!(library.len(), languages.len() * ids.len());
    for language in &languages {
        for id in &ids {
            let audio = library.get(language, id).expect("loaded");
            assert!(
                audio.duration() >= Duration::from_millis(200),
                "{language}/{id} is suspiciously short: {:?}",
                audio.duration()
            );
        }
    }
}

/// A WAV header for `data_len` bytes of 16-bit PCM at `rate` with `channels`, and no data.
fn wav_header(rate: u32, channels: u16, data_len: u32) -> Vec<u8> {
    let block_align = channels * 2;
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(36 + data_len).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&channels.to_le_bytes());
    header.extend_from_slice(&rate.to_le_bytes());
    header.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    header.extend_from_slice(&block_align.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());
    header
}

#[test]
fn a_huge_prompt_file_is_refused_by_its_size_before_it_is_read() {
    // A valid header and a gigabyte of (sparse) audio: refused without reading or decoding it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.wav");
    let data_len: u32 = 1 << 30;
    std::fs::write(&path, wav_header(48_000, 2, data_len)).expect("header");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(44 + u64::from(data_len))
        .expect("sparse gigabyte");

    let error = PromptAudio::from_wav_file(&path).expect_err("too large");

    assert!(
        matches!(error, PromptError::TooLarge { bytes, .. } if bytes == 44 + u64::from(data_len)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("32 MiB"), "{message}");
}

#[test]
fn a_prompt_just_over_the_size_limit_is_refused_even_from_memory() {
    let data_len = u32::try_from(MAX_FILE_BYTES).expect("fits") - 40;
    let mut bytes = wav_header(48_000, 2, data_len);
    bytes.resize(44 + data_len as usize, 0);
    let error = PromptAudio::from_wav_bytes(&bytes, Path::new("big.wav")).expect_err("too large");
    assert!(matches!(error, PromptError::TooLarge { .. }), "{error:?}");
}

#[test]
fn a_prompt_longer_than_ten_minutes_is_refused_naming_the_file() {
    // Eleven minutes of 8 kHz mono: small enough in bytes, too long to be a prompt.
    let data_len = 11 * 60 * 8_000 * 2;
    let mut bytes = wav_header(8_000, 1, data_len);
    bytes.resize(44 + data_len as usize, 0);
    let error = PromptAudio::from_wav_bytes(&bytes, Path::new("prompts/en/long_hold.wav"))
        .expect_err("too long");
    assert!(
        matches!(error, PromptError::TooLong { seconds: 660, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("prompts/en/long_hold.wav"),
        "{error}"
    );
}

#[test]
fn a_ten_minute_prompt_is_still_accepted() {
    let data_len = 10 * 60 * 8_000 * 2;
    let mut bytes = wav_header(8_000, 1, data_len);
    bytes.resize(44 + data_len as usize, 0);
    let audio = PromptAudio::from_wav_bytes(&bytes, Path::new("ten_minutes.wav")).expect("fits");
    assert_eq!(audio.duration(), MAX_DURATION);
}
