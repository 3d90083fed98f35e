//! Start-up cost of prompt audio: decoding, resampling and μ-law encoding the shipped prompt set
//! (both languages, on all cores), and one typical studio-format file on its own.
//!
//! Run with `cargo bench --bench prompts`.

use std::f32::consts::TAU;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use careline::media::prompt::{PromptAudio, PromptLibrary};
use criterion::{Criterion, criterion_group, criterion_main};

fn shipped_prompts() -> (PathBuf, Vec<String>, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let languages = vec!["en".to_owned(), "es".to_owned()];
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("en"))
        .expect("prompts/en exists")
        .filter_map(|entry| {
            let path = entry.expect("readable directory entry").path();
            let is_wav = path.extension().is_some_and(|ext| ext == "wav");
            is_wav.then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    ids.sort();
    (dir, languages, ids)
}

/// Three seconds of a 1 kHz tone as a 44.1 kHz 16-bit stereo WAV, the format of most recordings.
fn studio_wav() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("WAV writer");
    for n in 0..44_100 * 3 {
        let sample = (16_000.0 * (TAU * 1000.0 * n as f32 / 44_100.0).sin()) as i16;
        writer.write_sample(sample).expect("left sample");
        writer.write_sample(sample).expect("right sample");
    }
    writer.finalize().expect("finalize WAV");
    bytes.into_inner()
}

fn prompt_loading(c: &mut Criterion) {
    let (dir, languages, ids) = shipped_prompts();
    let mut group = c.benchmark_group("prompts");
    group.sample_size(10);
    group.bench_function("load shipped prompt set (en + es)", |b| {
        b.iter(|| {
            let library =
                PromptLibrary::load(&dir, &languages, &ids).expect("shipped prompts load");
            assert_eq!(library.len(), languages.len() * ids.len());
            library
        })
    });
    group.finish();

    let wav = studio_wav();
    c.bench_function("one 3 s 44.1 kHz stereo WAV", |b| {
        b.iter(|| {
            PromptAudio::from_wav_reader(wav.as_slice(), Path::new("studio.wav"))
                .expect("generated WAV loads")
        })
    });
}

criterion_group!(benches, prompt_loading);
criterion_main!(benches);
