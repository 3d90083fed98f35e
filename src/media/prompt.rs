//! Prompt audio: WAV files turned, once at load, into shared 8 kHz μ-law with its base64 ready.
//!
//! Any WAV an admin is likely to have (8/16/24/32-bit integer or 32-bit float, any rate, any
//! channel count) is downmixed by averaging, resampled to the wire rate with rubato's FFT
//! resampler, trimmed of long digital silence at either end (synthesizers pad generously, and a
//! menu that pauses before speaking feels broken), μ-law encoded, padded with μ-law silence to
//! whole 60 ms chunks and base64-encoded in one piece. Because a chunk is 480 bytes, a multiple
//! of 3, every chunk's base64 is a padding-free 640-character slice of the whole, so sending a
//! chunk costs neither a resample, an encode nor a copy.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

use super::{FRAME_BYTES, FRAME_MS, MULAW_SILENCE, SAMPLE_RATE, ulaw};

/// Frames sent per `media` message: 60 ms keeps the message rate low without making barge-in
/// (which discards what is already buffered at the provider) any less responsive.
pub const CHUNK_FRAMES: usize = 3;
/// μ-law bytes in one chunk.
pub const CHUNK_BYTES: usize = CHUNK_FRAMES * FRAME_BYTES;
/// base64 characters in one chunk: exactly 4 per 3 bytes, with no `=` padding.
pub const CHUNK_BASE64: usize = CHUNK_BYTES / 3 * 4;
/// Playing time of one chunk.
pub const CHUNK_DURATION: Duration = Duration::from_millis(FRAME_MS * CHUNK_FRAMES as u64);

const _: () = assert!(CHUNK_BYTES == 480 && CHUNK_BASE64 == 640);
// Slicing the pre-encoded base64 at chunk boundaries is only valid if no chunk needs padding.
const _: () = assert!(CHUNK_BYTES % 3 == 0);

/// Silence kept at each end of a prompt: enough that a soft first syllable is not clipped, short
/// enough that back-to-back prompts ("welcome", "main menu") flow as one sentence.
const KEPT_SILENCE_SAMPLES: usize = SAMPLE_RATE as usize * 60 / 1000;

/// Samples at or below this magnitude count as silence: about -54 dBFS, well under the quietest
/// speech but above the ripple the resampler leaves around digital zero.
const SILENCE_THRESHOLD: i16 = 64;

/// Input block the FFT resampler aims for; rubato rounds it to fit the rate ratio exactly.
const RESAMPLER_CHUNK: usize = 1024;

/// Sample rates accepted from a WAV header. Outside this a file is almost certainly damaged, and
/// an absurd rate would make the resampler plan an absurd FFT.
const SUPPORTED_RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;

/// One prompt, ready to stream: immutable, shared between calls behind an [`Arc`].
#[derive(Clone, PartialEq, Eq)]
pub struct PromptAudio {
    /// 8 kHz μ-law, always a whole number of chunks (the tail padded with μ-law silence), so a
    /// chunk index never points at a partial chunk.
    mulaw: Box<[u8]>,
    /// base64 of all of `mulaw`, encoded once; chunk `n` is `base64[n * 640..(n + 1) * 640]`.
    base64: Box<str>,
}

impl PromptAudio {
    /// Read a WAV file: see the module docs for what is accepted and what is done to it.
    pub fn from_wav_file(path: &Path) -> Result<PromptAudio, PromptError> {
        let file = std::fs::File::open(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => PromptError::Missing {
                path: path.to_path_buf(),
            },
            _ => PromptError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        })?;
        PromptAudio::from_wav_reader(file, path)
    }

    /// Read WAV data from `reader`; `name` is the file it came from, used only in errors.
    pub fn from_wav_reader<R: Read>(reader: R, name: &Path) -> Result<PromptAudio, PromptError> {
        let wav = hound::WavReader::new(BufReader::new(reader))
            .map_err(|error| wav_error(name, error))?;
        let spec = wav.spec();
        if !SUPPORTED_RATES.contains(&spec.sample_rate) {
            return Err(PromptError::UnsupportedFormat {
                path: name.to_path_buf(),
                detail: format!("a sample rate of {} Hz", spec.sample_rate),
            });
        }
        let mono = read_mono(wav, name)?;
        if mono.is_empty() {
            return Err(PromptError::Empty {
                path: name.to_path_buf(),
            });
        }
        let resampled = resample_to_wire_rate(mono, spec.sample_rate, name)?;
        let mut pcm: Vec<i16> = resampled.iter().map(|&sample| to_i16(sample)).collect();
        trim_silence(&mut pcm);
        Ok(PromptAudio::from_mulaw(
            pcm.into_iter().map(ulaw::encode).collect(),
        ))
    }

    /// Wrap μ-law bytes as they are, padded with μ-law silence to whole chunks.
    pub fn from_mulaw(mut bytes: Vec<u8>) -> PromptAudio {
        let padded_len = bytes.len().div_ceil(CHUNK_BYTES) * CHUNK_BYTES;
        bytes.resize(padded_len, MULAW_SILENCE);
        let base64 = BASE64.encode(&bytes).into_boxed_str();
        PromptAudio {
            mulaw: bytes.into_boxed_slice(),
            base64,
        }
    }

    /// The 8 kHz μ-law samples, a whole number of chunks long.
    pub fn mulaw(&self) -> &[u8] {
        &self.mulaw
    }

    pub fn chunk_count(&self) -> usize {
        self.mulaw.len() / CHUNK_BYTES
    }

    /// Playing time, padding included.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.mulaw.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }

    /// base64 of chunks [first, first+count): a slice of the pre-encoded string, no copy.
    ///
    /// A range reaching past the end is cut at the end, so asking beyond the last chunk gives
    /// an empty string rather than a panic.
    pub fn base64_chunks(&self, first: usize, count: usize) -> &str {
        let chunks = self.chunk_count();
        let start = first.min(chunks);
        let end = first.saturating_add(count).min(chunks);
        &self.base64[start * CHUNK_BASE64..end * CHUNK_BASE64]
    }
}

impl fmt::Debug for PromptAudio {
    // Thousands of samples in a test failure message help nobody; the shape does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptAudio")
            .field("chunks", &self.chunk_count())
            .field("duration", &self.duration())
            .finish()
    }
}

/// Every prompt of every configured language, loaded once and shared by all calls.
#[derive(Debug, Clone, Default)]
pub struct PromptLibrary {
    /// language → prompt id → audio; nested so a lookup by `&str` allocates nothing.
    by_language: HashMap<String, HashMap<String, Arc<PromptAudio>>>,
}

impl PromptLibrary {
    /// Load prompts/<lang>/<id>.wav for every language × id; returns ALL errors, each naming the file.
    ///
    /// Files are decoded on as many threads as there are cores, since resampling dominates
    /// start-up and a reload should not keep the old configuration waiting for long.
    pub fn load(
        dir: &Path,
        languages: &[String],
        ids: &[String],
    ) -> Result<PromptLibrary, Vec<PromptError>> {
        let languages: BTreeSet<&str> = languages.iter().map(String::as_str).collect();
        let ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let jobs: Vec<(&str, &str, PathBuf)> = languages
            .iter()
            .flat_map(|&language| {
                ids.iter().map(move |&id| {
                    let path = dir.join(language).join(format!("{id}.wav"));
                    (language, id, path)
                })
            })
            .collect();
        let paths: Vec<&Path> = jobs.iter().map(|(_, _, path)| path.as_path()).collect();

        let mut library = PromptLibrary::default();
        let mut errors = Vec::new();
        for ((language, id, _), result) in jobs.iter().zip(load_in_parallel(&paths)) {
            match result {
                Ok(audio) => library.insert(language, id, audio),
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Ok(library)
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, language: &str, id: &str) -> Option<&Arc<PromptAudio>> {
        self.by_language.get(language)?.get(id)
    }

    /// Number of prompts across all languages.
    pub fn len(&self) -> usize {
        self.by_language.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add or replace one prompt.
    pub fn insert(&mut self, language: &str, id: &str, audio: PromptAudio) {
        self.by_language
            .entry(language.to_owned())
            .or_default()
            .insert(id.to_owned(), Arc::new(audio));
    }
}

/// Why a prompt file could not be used. Every message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(
        "prompt file {} is missing: record it under that name, or run scripts/make-prompts to generate it",
        .path.display()
    )]
    Missing { path: PathBuf },

    #[error("prompt file {} cannot be read ({source}): check that careline may read it", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "prompt file {} is not a usable WAV file ({reason}): save or export it again as a PCM WAV",
        .path.display()
    )]
    NotWav { path: PathBuf, reason: String },

    #[error(
        "prompt file {} uses an unsupported format ({detail}): export it as a PCM WAV of 8, 16, 24 or 32-bit integer or 32-bit float samples",
        .path.display()
    )]
    UnsupportedFormat { path: PathBuf, detail: String },

    #[error("prompt file {} contains no audio: record it again or run scripts/make-prompts", .path.display())]
    Empty { path: PathBuf },
}

impl PromptError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PromptError::Missing { path }
            | PromptError::Unreadable { path, .. }
            | PromptError::NotWav { path, .. }
            | PromptError::UnsupportedFormat { path, .. }
            | PromptError::Empty { path } => path,
        }
    }
}

fn wav_error(path: &Path, error: hound::Error) -> PromptError {
    let path = path.to_path_buf();
    match error {
        // A failure of the disk or the OS carries an OS error code; everything else hound
        // reports as I/O (an EOF, "failed to read enough bytes") means the data ran out early.
        hound::Error::IoError(source) if source.raw_os_error().is_some() => {
            PromptError::Unreadable { path, source }
        }
        hound::Error::IoError(_) => PromptError::NotWav {
            path,
            reason: "the file ends early: it is truncated or not a WAV file".to_owned(),
        },
        hound::Error::Unsupported | hound::Error::TooWide => PromptError::UnsupportedFormat {
            path,
            detail: "a sample encoding other than plain PCM or 32-bit float".to_owned(),
        },
        other => PromptError::NotWav {
            path,
            reason: other.to_string(),
        },
    }
}

/// Decode every sample to `[-1, 1]` and average each frame's channels.
fn read_mono<R: Read>(wav: hound::WavReader<R>, path: &Path) -> Result<Vec<f32>, PromptError> {
    let spec = wav.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(PromptError::NotWav {
            path: path.to_path_buf(),
            reason: "the header declares zero channels".to_owned(),
        });
    }
    let mut mono = Vec::with_capacity(wav.duration() as usize);
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            let samples = wav
                .into_samples::<i32>()
                .map(|sample| sample.map(|value| value as f32 * scale));
            downmix(samples, channels, &mut mono, path)?;
        }
        (hound::SampleFormat::Float, 32) => {
            downmix(wav.into_samples::<f32>(), channels, &mut mono, path)?;
        }
        (format, bits) => {
            let kind = match format {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            };
            return Err(PromptError::UnsupportedFormat {
                path: path.to_path_buf(),
                detail: format!("{bits}-bit {kind} samples"),
            });
        }
    }
    Ok(mono)
}

fn downmix(
    samples: impl Iterator<Item = hound::Result<f32>>,
    channels: usize,
    mono: &mut Vec<f32>,
    path: &Path,
) -> Result<(), PromptError> {
    let mut sum = 0.0f32;
    let mut in_frame = 0;
    for sample in samples {
        sum += sample.map_err(|error| wav_error(path, error))?;
        in_frame += 1;
        if in_frame == channels {
            mono.push(sum / channels as f32);
            sum = 0.0;
            in_frame = 0;
        }
    }
    Ok(())
}

fn resample_to_wire_rate(
    mono: Vec<f32>,
    sample_rate: u32,
    path: &Path,
) -> Result<Vec<f32>, PromptError> {
    if sample_rate == SAMPLE_RATE {
        return Ok(mono);
    }
    let unsupported = |detail: String| PromptError::UnsupportedFormat {
        path: path.to_path_buf(),
        detail,
    };
    let mut resampler = Fft::<f32>::new(
        sample_rate as usize,
        SAMPLE_RATE as usize,
        RESAMPLER_CHUNK,
        1,
        FixedSync::Both,
    )
    .map_err(|error| unsupported(format!("{sample_rate} Hz cannot be resampled: {error}")))?;
    let input = InterleavedSlice::new(&mono, 1, mono.len())
        .map_err(|error| unsupported(format!("resampler input: {error}")))?;
    let output = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|error| unsupported(format!("resampling from {sample_rate} Hz: {error}")))?;
    Ok(output.take_data())
}

fn to_i16(sample: f32) -> i16 {
    // NaN becomes 0 under `as`; out-of-range floats (and resampler overshoot) saturate.
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Drop silence beyond [`KEPT_SILENCE_SAMPLES`] at each end. Audio that is silent throughout is
/// left alone: an admin may use a silent file as a deliberate pause.
fn trim_silence(pcm: &mut Vec<i16>) {
    let audible = |sample: &i16| sample.unsigned_abs() > SILENCE_THRESHOLD.unsigned_abs();
    let (Some(first), Some(last)) = (pcm.iter().position(audible), pcm.iter().rposition(audible))
    else {
        return;
    };
    let end = (last + 1 + KEPT_SILENCE_SAMPLES).min(pcm.len());
    let start = first.saturating_sub(KEPT_SILENCE_SAMPLES);
    pcm.truncate(end);
    pcm.drain(..start);
}

/// Decode `paths` on up to one thread per core; results come back in the order of `paths`.
fn load_in_parallel(paths: &[&Path]) -> Vec<Result<PromptAudio, PromptError>> {
    let workers = thread::available_parallelism()
        .map_or(1, usize::from)
        .min(paths.len());
    if workers <= 1 {
        return paths
            .iter()
            .map(|path| PromptAudio::from_wav_file(path))
            .collect();
    }
    // Work is handed out one file at a time: prompt lengths vary too much for a fixed split.
    let next = AtomicUsize::new(0);
    let mut indexed: Vec<(usize, Result<PromptAudio, PromptError>)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(index) else {
                            return done;
                        };
                        done.push((index, PromptAudio::from_wav_file(path)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    indexed.sort_by_key(|(index, _)| *index);
    indexed.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
#[path = "tests/prompt.rs"]
mod tests;
