//! Voicemail: a caller's message written to `<dir>/<id>.wav` with a JSON sidecar `<id>.json`.
//!
//! The recorder takes the caller's μ-law frames as they arrive, decodes them to 16-bit PCM
//! (8 kHz mono, the wire's own rate) and writes them through one buffered `hound` writer: no
//! allocation per frame. Audio goes to `<id>.wav.part` and is renamed when the message ends,
//! and the sidecar is written (also through a rename) only after that, so a listing never shows
//! a half-written file. A caller who hangs up mid-message keeps what was recorded: the session
//! calls [`VoicemailRecorder::finish`] on hang-up too. Audio and its bytes are never logged.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{SAMPLE_RATE, ulaw};

/// Where voicemails go when the configuration has no `[recordings]` section.
pub const DEFAULT_DIR: &str = "var/voicemail";

/// Longest call sid kept in a recording id; Twilio's are 34 characters.
const MAX_CALL_SID_CHARS: usize = 64;

/// A recording's name on disk (`<id>.wav`, `<id>.json`): letters, digits, `-` and `_` only,
/// so an id from a URL can never leave the recordings directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordingId(String);

impl RecordingId {
    /// The id of a voicemail left on `call_sid` at `started_at`: the call sid (anything but
    /// letters, digits, `-` and `_` replaced by `_`) and the start time in base 36, which keeps
    /// two messages on one call apart.
    pub fn for_call(call_sid: &str, started_at: Timestamp) -> RecordingId {
        let mut id: String = call_sid
            .chars()
            .take(MAX_CALL_SID_CHARS)
            .map(|c| if is_id_char(c) { c } else { '_' })
            .collect();
        if id.is_empty() {
            id.push_str("call");
        }
        id.push('-');
        push_base36(&mut id, started_at.as_millisecond().unsigned_abs());
        RecordingId(id)
    }

    /// An id named from outside (a URL): `None` unless it could be one careline made.
    pub fn parse(text: &str) -> Option<RecordingId> {
        let valid = !text.is_empty()
            && text.len() <= MAX_CALL_SID_CHARS + 16
            && text.chars().all(is_id_char);
        valid.then(|| RecordingId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The audio file's name, `<id>.wav`.
    pub fn file_name(&self) -> String {
        format!("{}.wav", self.0)
    }
}

impl std::fmt::Display for RecordingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn push_base36(out: &mut String, mut value: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buffer = [0u8; 13];
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = DIGITS[(value % 36) as usize];
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.extend(buffer[start..].iter().map(|&b| char::from(b)));
}

/// The audio file of a recording in `dir`, if `id` is a valid recording id. Whether the file
/// exists is for the caller to find out.
pub fn audio_path(dir: &Path, id: &str) -> Option<PathBuf> {
    RecordingId::parse(id).map(|id| dir.join(id.file_name()))
}

/// A finished voicemail, as its sidecar `<id>.json` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Voicemail {
    pub id: String,
    pub call_sid: String,
    /// The caller id with all but its last two digits hidden (`•••••••••01`).
    pub caller_id_masked: String,
    /// The voicemail node (or queue) the message was left at.
    pub node: String,
    #[serde(with = "rfc3339")]
    pub started_at: Timestamp,
    /// When the message ended: the caller hung up, pressed a key, or ran out of time.
    #[serde(with = "rfc3339")]
    pub ended_at: Timestamp,
    /// Length of the recorded audio (at most the node's `max_secs`).
    pub duration_secs: f64,
    /// The audio file in the recordings directory, `<id>.wav`.
    pub file: String,
    /// When a supervisor or agent marked the message handled (RFC 3339), and who: a role
    /// (`supervisor`, `agent:<id>`), never a name the caller gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_by: Option<String>,
}

/// Timestamps as RFC 3339 text in the sidecars.
mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(at)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(
        "cannot create the recordings directory {}: {source} (create it and let careline write to it, or change [recordings] dir)",
        path.display()
    )]
    CreateDir { path: PathBuf, source: io::Error },
    #[error(
        "cannot write the voicemail file {}: {source} (check free disk space and that careline may write to [recordings] dir)",
        path.display()
    )]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "cannot write the voicemail audio {}: {source} (check free disk space and that careline may write to [recordings] dir)",
        path.display()
    )]
    Audio { path: PathBuf, source: hound::Error },
    #[error(
        "cannot read the recordings directory {}: {source} (check that careline may read it, or change [recordings] dir)",
        path.display()
    )]
    ReadDir { path: PathBuf, source: io::Error },
}

/// What a voicemail starts with, besides the directory.
#[derive(Debug, Clone)]
pub struct NewVoicemail<'a> {
    pub call_sid: &'a str,
    /// Already masked (`call::registry::mask_caller_id`): the recorder never sees the number.
    pub caller_id_masked: &'a str,
    /// The voicemail node (or queue) taking the message.
    pub node: &'a str,
    /// The longest message kept; audio past it is dropped.
    pub max: Duration,
    pub started_at: Timestamp,
}

/// One caller's message being recorded.
pub struct VoicemailRecorder {
    dir: PathBuf,
    id: RecordingId,
    call_sid: String,
    caller_id_masked: String,
    node: String,
    started_at: Timestamp,
    /// `max` in samples; [`VoicemailRecorder::push_mulaw`] writes no more than this.
    max_samples: u64,
    samples: u64,
    /// `<id>.wav.part` until [`VoicemailRecorder::finish`] renames it.
    part_path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
}

impl std::fmt::Debug for VoicemailRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoicemailRecorder")
            .field("id", &self.id)
            .field("node", &self.node)
            .field("samples", &self.samples)
            .field("max_samples", &self.max_samples)
            .finish_non_exhaustive()
    }
}

/// 16-bit PCM at the wire's rate, mono.
fn wav_spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

impl VoicemailRecorder {
    /// Start recording into `dir` (created if missing).
    pub fn create(
        dir: &Path,
        voicemail: NewVoicemail<'_>,
    ) -> Result<VoicemailRecorder, RecordingError> {
        fs::create_dir_all(dir).map_err(|source| RecordingError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let id = RecordingId::for_call(voicemail.call_sid, voicemail.started_at);
        let part_path = dir.join(format!("{id}.wav.part"));
        let file = File::create(&part_path).map_err(|source| RecordingError::Write {
            path: part_path.clone(),
            source,
        })?;
        let writer = hound::WavWriter::new(BufWriter::new(file), wav_spec()).map_err(|source| {
            RecordingError::Audio {
                path: part_path.clone(),
                source,
            }
        })?;
        let max_millis = u64::try_from(voicemail.max.as_millis()).unwrap_or(u64::MAX);
        Ok(VoicemailRecorder {
            dir: dir.to_path_buf(),
            id,
            call_sid: voicemail.call_sid.to_owned(),
            caller_id_masked: voicemail.caller_id_masked.to_owned(),
            node: voicemail.node.to_owned(),
            started_at: voicemail.started_at,
            max_samples: max_millis.saturating_mul(u64::from(SAMPLE_RATE)) / 1000,
            samples: 0,
            part_path,
            writer,
        })
    }

    pub fn id(&self) -> &RecordingId {
        &self.id
    }

    /// Append the caller's μ-law audio; whatever would go past `max` is dropped.
    pub fn push_mulaw(&mut self, bytes: &[u8]) -> Result<(), RecordingError> {
        let room = self.max_samples.saturating_sub(self.samples);
        let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        for &byte in &bytes[..take] {
            if let Err(source) = self.writer.write_sample(ulaw::decode(byte)) {
                return Err(RecordingError::Audio {
                    path: self.part_path.clone(),
                    source,
                });
            }
        }
        self.samples = self.samples.saturating_add(take as u64);
        Ok(())
    }

    /// The message has reached `max`: the session should end it.
    pub fn is_full(&self) -> bool {
        self.samples >= self.max_samples
    }

    /// Length of the audio recorded so far.
    pub fn recorded(&self) -> Duration {
        Duration::from_millis(self.samples.saturating_mul(1000) / u64::from(SAMPLE_RATE))
    }

    /// Close the audio, move it to `<id>.wav` and write the sidecar `<id>.json`. Called when
    /// the message ends for any reason, hang-up included: what was recorded is kept.
    pub fn finish(self, ended: Timestamp) -> Result<Voicemail, RecordingError> {
        let VoicemailRecorder {
            dir,
            id,
            call_sid,
            caller_id_masked,
            node,
            started_at,
            samples,
            part_path,
            writer,
            ..
        } = self;
        writer.finalize().map_err(|source| RecordingError::Audio {
            path: part_path.clone(),
            source,
        })?;
        let file = id.file_name();
        let audio_path = dir.join(&file);
        fs::rename(&part_path, &audio_path).map_err(|source| RecordingError::Write {
            path: audio_path.clone(),
            source,
        })?;
        let voicemail = Voicemail {
            id: id.as_str().to_owned(),
            call_sid,
            caller_id_masked,
            node,
            started_at,
            ended_at: ended,
            duration_secs: samples as f64 / f64::from(SAMPLE_RATE),
            file,
            handled_at: None,
            handled_by: None,
        };
        write_sidecar(&dir, &id, &voicemail)?;
        Ok(voicemail)
    }
}

/// `<id>.json`, through `<id>.json.part` so a listing never reads half of it.
fn write_sidecar(
    dir: &Path,
    id: &RecordingId,
    voicemail: &Voicemail,
) -> Result<(), RecordingError> {
    let part = dir.join(format!("{id}.json.part"));
    let path = dir.join(format!("{id}.json"));
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordingError::Write { path, source }
    };
    let json = serde_json::to_vec_pretty(voicemail)
        .map_err(io::Error::other)
        .map_err(write_error(&part))?;
    let mut file = File::create(&part).map_err(write_error(&part))?;
    file.write_all(&json).map_err(write_error(&part))?;
    file.sync_all().map_err(write_error(&part))?;
    fs::rename(&part, &path).map_err(write_error(&path))
}

/// Every finished voicemail in `dir`, newest first. A directory that does not exist yet holds
/// none; a sidecar that cannot be read, or whose audio is gone, is skipped with a warning.
pub fn list_voicemails(dir: &Path) -> Result<Vec<Voicemail>, RecordingError> {
    let read_error = |source| RecordingError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(read_error(error)),
    };
    let mut voicemails = Vec::new();
    for entry in entries {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        match read_sidecar(dir, &path) {
            Ok(voicemail) => voicemails.push(voicemail),
            Err(problem) => {
                tracing::warn!(path = %path.display(), %problem, "skipping a voicemail that cannot be listed");
            }
        }
    }
    voicemails.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    Ok(voicemails)
}

/// Mark the voicemail `id` in `dir` handled by `by` at `at`: its sidecar is rewritten (through
/// a rename, as when it was first written). Marking it again keeps the first mark. `Ok(None)`
/// when there is no such (finished) voicemail.
pub fn mark_handled(
    dir: &Path,
    id: &str,
    by: &str,
    at: Timestamp,
) -> Result<Option<Voicemail>, RecordingError> {
    let Some(id) = RecordingId::parse(id) else {
        return Ok(None);
    };
    let path = dir.join(format!("{id}.json"));
    if !path.is_file() {
        return Ok(None);
    }
    let mut voicemail = match read_sidecar(dir, &path) {
        Ok(voicemail) => voicemail,
        Err(problem) => {
            tracing::warn!(path = %path.display(), %problem, "a voicemail that cannot be read cannot be marked handled");
            return Ok(None);
        }
    };
    if voicemail.handled_at.is_none() {
        voicemail.handled_at = Some(at.to_string());
        voicemail.handled_by = Some(by.to_owned());
        write_sidecar(dir, &id, &voicemail)?;
    }
    Ok(Some(voicemail))
}

fn read_sidecar(dir: &Path, path: &Path) -> Result<Voicemail, String> {
    let text = fs::read(path).map_err(|error| format!("cannot read it: {error}"))?;
    let voicemail: Voicemail = serde_json::from_slice(&text)
        .map_err(|error| format!("not a voicemail description: {error}"))?;
    let stem = path.file_stem().and_then(|stem| stem.to_str());
    let id = RecordingId::parse(&voicemail.id)
        .filter(|id| Some(id.as_str()) == stem && voicemail.file == id.file_name())
        .ok_or("its id does not match its file name")?;
    if !dir.join(id.file_name()).is_file() {
        return Err(format!("its audio {} is missing", id.file_name()));
    }
    Ok(voicemail)
}

#[cfg(test)]
#[path = "tests/recording.rs"]
mod tests;
