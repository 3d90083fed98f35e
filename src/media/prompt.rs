//! Prompt audio: WAV files turned, once at load, into shared 8 kHz μ-law with its base64 ready.
//!
//! Any WAV an admin is likely to have (8/16/24/32-bit integer or 32-bit float, any rate, any
//! channel count) is downmixed by averaging, resampled to the wire rate with rubato's FFT
//! resampler, trimmed of long digital silence at either end (synthesizers pad generously, and a
//! menu that pauses before speaking feels broken), μ-law encoded, padded with μ-law silence to
//! whole 60 ms chunks and base64-encoded in one piece. Because a chunk is 480 bytes, a multiple
//! of 3, every chunk's base64 is a padding-free 640-character slice of the whole, so sending a
//! chunk costs neither a resample, an encode nor a copy.
//!
//! A prompt file may be at most [`MAX_FILE_BYTES`] (32 MiB) and play for at most
//! [`MAX_DURATION`] (10 minutes): a file over either limit is refused, naming the file, before
//! its audio is decoded, so one huge or damaged file cannot stall start-up or exhaust memory.
//! `careline check` decodes every prompt with this same loader, so a file `check` accepts is one
//! `serve` can play.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Cursor, Read};
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
const _: () = assert!(CHUNK_BYTES.is_multiple_of(3));

/// Silence kept at each end of a prompt: enough that a soft first syllable is not clipped, short
/// enough that back-to-back prompts ("welcome", "main menu") flow as one sentence.
const KEPT_SILENCE_SAMPLES: usize = SAMPLE_RATE as usize * 60 / 1000;

/// Samples at or below this magnitude count as silence: about -54 dBFS, well under the quietest
/// speech but above the ripple the resampler leaves around digital zero.
const SILENCE_THRESHOLD: i16 = 64;

/// Input block the FFT resampler aims for; rubato rounds it to fit the rate ratio exactly.
const RESAMPLER_CHUNK: usize = 1024;

/// The largest prompt file read. 32 MiB holds 10 minutes of 16-bit mono at 22.05 kHz, or three
/// minutes of CD-quality stereo hold music; decoding one needs at most four times its size.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The longest prompt: hold music loops, and no announcement lasts ten minutes.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 60);

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
        let unreadable = |source: io::Error| match source.kind() {
            io::ErrorKind::NotFound => PromptError::Missing {
                path: path.to_path_buf(),
            },
            _ => PromptError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        // Refuse an oversized file by its size, before reading any of it.
        let size = file.metadata().map_err(unreadable)?.len();
        if size > MAX_FILE_BYTES {
            return Err(PromptError::TooLarge {
                path: path.to_path_buf(),
                bytes: size,
            });
        }
        PromptAudio::from_wav_reader(file, path)
    }

    /// Read WAV data from `reader`; `name` is the file it came from, used only in errors. At
    /// most [`MAX_FILE_BYTES`] are read.
    pub fn from_wav_reader<R: Read>(reader: R, name: &Path) -> Result<PromptAudio, PromptError> {
        let mut bytes = Vec::new();
        reader
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| PromptError::Unreadable {
                path: name.to_path_buf(),
                source,
            })?;
        PromptAudio::from_wav_bytes(&bytes, name)
    }

    /// A whole WAV file in memory; `name` is used only in errors.
    pub fn from_wav_bytes(bytes: &[u8], name: &Path) -> Result<PromptAudio, PromptError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(PromptError::TooLarge {
                path: name.to_path_buf(),
                bytes: bytes.len() as u64,
            });
        }
        let (mono, sample_rate) = read_mono(bytes, name)?;
        if mono.is_empty() {
            return Err(PromptError::Empty {
                path: name.to_path_buf(),
            });
        }
        let resampled = resample_to_wire_rate(mono, sample_rate, name)?;
        let kept = without_long_silence(&resampled);
        Ok(PromptAudio::from_mulaw(
            kept.iter()
                .map(|&sample| ulaw::encode(to_i16(sample)))
                .collect(),
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

    #[error(
        "prompt file {} is {} MiB, more than the {} MiB a prompt may be: shorten it, or save it as mono or at a lower sample rate",
        .path.display(), .bytes.div_ceil(1024 * 1024), MAX_FILE_BYTES / (1024 * 1024)
    )]
    TooLarge { path: PathBuf, bytes: u64 },

    #[error(
        "prompt file {} plays for {} seconds, more than the {} a prompt may last: shorten it (hold music loops by itself)",
        .path.display(), .seconds, MAX_DURATION.as_secs()
    )]
    TooLong { path: PathBuf, seconds: u64 },
}

impl PromptError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PromptError::Missing { path }
            | PromptError::Unreadable { path, .. }
            | PromptError::NotWav { path, .. }
            | PromptError::UnsupportedFormat { path, .. }
            | PromptError::Empty { path }
            | PromptError::TooLarge { path, .. }
            | PromptError::TooLong { path, .. } => path,
        }
    }
}

fn wav_error(path: &Path, error: hound::Error) -> PromptError {
    let path = path.to_path_buf();
    match error {
        // hound reads from memory here, so its only I/O error is running out of data.
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

/// Decode every sample to `[-1, 1]` and average each frame's channels; also the sample rate.
///
/// hound parses the header; the samples are then converted straight from the data chunk's
/// bytes, because hound's sample-by-sample iterator was more than half of start-up time.
fn read_mono(bytes: &[u8], path: &Path) -> Result<(Vec<f32>, u32), PromptError> {
    let not_wav = |reason: &str| PromptError::NotWav {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let wav = hound::WavReader::new(Cursor::new(bytes)).map_err(|error| wav_error(path, error))?;
    let spec = wav.spec();
    if !SUPPORTED_RATES.contains(&spec.sample_rate) {
        return Err(PromptError::UnsupportedFormat {
            path: path.to_path_buf(),
            detail: format!("a sample rate of {} Hz", spec.sample_rate),
        });
    }
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(not_wav("the header declares zero channels"));
    }
    // Samples per channel over the rate, from the header: refused before anything is decoded.
    let frames = u64::from(wav.duration());
    if frames
        > MAX_DURATION
            .as_secs()
            .saturating_mul(u64::from(spec.sample_rate))
    {
        return Err(PromptError::TooLong {
            path: path.to_path_buf(),
            seconds: frames / u64::from(spec.sample_rate),
        });
    }
    let sample_count = wav.len() as usize;
    if sample_count == 0 {
        return Ok((Vec::new(), spec.sample_rate));
    }
    // hound stops right after the data chunk's 8-byte header ("data", length), and has checked
    // that the length is a whole number of samples; the sample width is not otherwise public.
    let data_start = wav.into_inner().position() as usize;
    let header = data_start
        .checked_sub(8)
        .and_then(|header_start| bytes.get(header_start..data_start))
        .filter(|header| header.starts_with(b"data"))
        .ok_or_else(|| not_wav("the data chunk could not be located"))?;
    let data_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let data = bytes
        .get(data_start..data_start.saturating_add(data_len))
        .ok_or_else(|| not_wav("the file ends early: it is truncated or not a WAV file"))?;
    let width = data_len / sample_count;

    let mono = match (spec.sample_format, width, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 1, 8) => downmix(data, width, channels, decode_u8),
        (hound::SampleFormat::Int, 2, 16) => downmix(data, width, channels, decode_i16),
        // 24 significant bits, packed in 3 bytes or right-aligned in 4 (WAVE_FORMAT_EXTENSIBLE).
        (hound::SampleFormat::Int, 3 | 4, 24) => downmix(data, width, channels, decode_i24),
        (hound::SampleFormat::Int, 4, 32) => downmix(data, width, channels, decode_i32),
        (hound::SampleFormat::Float, 4, 32) => downmix(data, width, channels, decode_f32),
        (format, width, bits) => {
            let kind = match format {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            };
            return Err(PromptError::UnsupportedFormat {
                path: path.to_path_buf(),
                detail: format!("{bits}-bit {kind} samples stored in {width} bytes"),
            });
        }
    };
    Ok((mono, spec.sample_rate))
}

fn decode_u8(bytes: &[u8]) -> f32 {
    (f32::from(bytes[0]) - 128.0) / 128.0
}

fn decode_i16(bytes: &[u8]) -> f32 {
    f32::from(i16::from_le_bytes([bytes[0], bytes[1]])) / 32_768.0
}

fn decode_i24(bytes: &[u8]) -> f32 {
    // The 24 bits go to the top of an i32; the arithmetic shift back extends the sign.
    (i32::from_le_bytes([0, bytes[0], bytes[1], bytes[2]]) >> 8) as f32 / 8_388_608.0
}

fn decode_i32(bytes: &[u8]) -> f32 {
    i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as f32 / 2_147_483_648.0
}

fn decode_f32(bytes: &[u8]) -> f32 {
    f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Generic over the decoder so each sample layout gets its own inlined loop.
fn downmix<D: Fn(&[u8]) -> f32>(data: &[u8], width: usize, channels: usize, decode: D) -> Vec<f32> {
    if channels == 1 {
        return data.chunks_exact(width).map(decode).collect();
    }
    data.chunks_exact(width * channels)
        .map(|frame| frame.chunks_exact(width).map(&decode).sum::<f32>() / channels as f32)
        .collect()
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
    // Float-to-int `as` saturates (resampler overshoot, out-of-range float files) and maps NaN
    // to 0; truncating instead of rounding is far below μ-law's step size.
    (sample * 32_768.0) as i16
}

/// The audio without silence beyond [`KEPT_SILENCE_SAMPLES`] at either end. Audio that is
/// silent throughout is kept whole: an admin may use a silent file as a deliberate pause.
fn without_long_silence(samples: &[f32]) -> &[f32] {
    let threshold = f32::from(SILENCE_THRESHOLD) / 32_768.0;
    let audible = |sample: &f32| sample.abs() > threshold;
    let (Some(first), Some(last)) = (
        samples.iter().position(audible),
        samples.iter().rposition(audible),
    ) else {
        return samples;
    };
    let start = first.saturating_sub(KEPT_SILENCE_SAMPLES);
    let end = (last + 1 + KEPT_SILENCE_SAMPLES).min(samples.len());
    &samples[start..end]
}

/// Decode `paths` on up to one thread per core; results come back in the order of `paths`.
/// What `serve` loads and `careline check` validates with.
pub fn load_in_parallel(paths: &[&Path]) -> Vec<Result<PromptAudio, PromptError>> {
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
