//! What happened on a call, as the caller experienced it, and the report a call leaves behind.
//!
//! careline names its marks so that the caller can tell what was played: a mark named
//! `prompt:{lang}/{id}:{n}` follows that prompt's last audio; any other mark (e.g. `pace:{n}`
//! for hold audio) is not a prompt.

use std::fmt;
use std::time::Duration;

use super::playback::EchoReason;
use crate::twilio::twiml::DialTarget;

/// A prompt named by a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMark {
    pub language: String,
    pub prompt: String,
}

/// Why a mark name starting with `prompt:` is not a prompt mark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mark `{name}` starts with `prompt:` but is not `prompt:{{lang}}/{{id}}:{{n}}`")]
pub struct BadPromptMark {
    pub name: String,
}

impl PromptMark {
    /// `Ok(None)` for marks that are not about prompts.
    pub fn parse(name: &str) -> Result<Option<PromptMark>, BadPromptMark> {
        let Some(rest) = name.strip_prefix("prompt:") else {
            return Ok(None);
        };
        let bad = || BadPromptMark {
            name: name.to_owned(),
        };
        let (path, counter) = rest.rsplit_once(':').ok_or_else(bad)?;
        let (language, prompt) = path.split_once('/').ok_or_else(bad)?;
        if language.is_empty()
            || prompt.is_empty()
            || counter.is_empty()
            || !counter.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        Ok(Some(PromptMark {
            language: language.to_owned(),
            prompt: prompt.to_owned(),
        }))
    }
}

/// How a `<Dial>` went, as the caller's fake Twilio decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialStatus {
    Completed,
    NoAnswer,
    Busy,
    Failed,
}

impl DialStatus {
    /// The `DialCallStatus` value Twilio posts.
    pub fn as_str(self) -> &'static str {
        match self {
            DialStatus::Completed => "completed",
            DialStatus::NoAnswer => "no-answer",
            DialStatus::Busy => "busy",
            DialStatus::Failed => "failed",
        }
    }
}

/// One thing the caller noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptEntry {
    /// careline answered a webhook with this verb (a one-line summary).
    Twiml(String),
    /// A prompt played to its end.
    Played { language: String, prompt: String },
    /// A prompt was cut short by a `clear`.
    Interrupted { language: String, prompt: String },
    /// The caller pressed a key; `in_entry` when it was part of a multi-key entry.
    SentDigit { digit: char, in_entry: bool },
    /// careline closed the media stream.
    StreamClosedByServer,
    /// The media stream's connection broke (reset, or closed without a WebSocket close), or
    /// could not be opened (refused, or the upgrade answered 502/503/504): the node carrying
    /// it went away or is draining. Twilio then runs the TwiML after `</Connect>`.
    StreamLost,
    /// A `<Dial>` rang `target`.
    Dialed {
        target: DialTarget,
        status: DialStatus,
    },
    /// A `<Play>` (alone or in a `<Gather>`) was fetched: a WAV this long.
    Heard { url: String, duration_ms: u64 },
    /// The caller hung up.
    HungUp,
}

impl TranscriptEntry {
    pub(crate) fn from_prompt_echo(prompt: PromptMark, reason: EchoReason) -> Self {
        let PromptMark { language, prompt } = prompt;
        match reason {
            EchoReason::Played => TranscriptEntry::Played { language, prompt },
            EchoReason::Cleared => TranscriptEntry::Interrupted { language, prompt },
        }
    }
}

/// The line the CLI prints. Keys of a multi-key entry print as `*`: they may be PHI.
impl fmt::Display for TranscriptEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranscriptEntry::Twiml(summary) => write!(f, "twiml      {summary}"),
            TranscriptEntry::Played { language, prompt } => {
                write!(f, "played     {language}/{prompt}")
            }
            TranscriptEntry::Interrupted { language, prompt } => {
                write!(f, "cut off    {language}/{prompt}")
            }
            TranscriptEntry::SentDigit { digit, in_entry } => {
                let shown = if *in_entry { '*' } else { *digit };
                write!(f, "pressed    {shown}")
            }
            TranscriptEntry::StreamClosedByServer => write!(f, "stream     closed by careline"),
            TranscriptEntry::StreamLost => write!(f, "stream     connection lost"),
            TranscriptEntry::Dialed { target, status } => {
                write!(f, "dialed     {target}: {}", status.as_str())
            }
            TranscriptEntry::Heard { url, duration_ms } => {
                write!(
                    f,
                    "heard      {url} ({:.1} s)",
                    *duration_ms as f64 / 1000.0
                )
            }
            TranscriptEntry::HungUp => write!(f, "hung up"),
        }
    }
}

/// How a WebSocket ended, from the caller's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamClose {
    /// The close code careline sent, if it sent a close frame with one.
    pub code: Option<u16>,
    pub reason: String,
    /// Whether the server closed it (rather than the caller hanging up).
    pub by_server: bool,
    /// The connection broke or never opened, with no WebSocket close from careline: what a
    /// node that died, or refused the stream while draining, looks like from Twilio's side.
    pub broken: bool,
}

/// Why the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// The caller hung up (`hangup` step or the call's time limit).
    CallerHungUp,
    /// careline answered with `<Hangup/>` or `<Reject>`.
    Hangup,
    /// careline's TwiML ran out of verbs, so Twilio ended the call.
    TwimlEnded,
    /// A webhook failed or returned something Twilio could not act on.
    Failed(String),
}

/// Everything a call left behind.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub call_sid: String,
    pub account_sid: String,
    /// One per media stream opened, in order.
    pub stream_sids: Vec<String>,
    pub transcript: Vec<TranscriptEntry>,
    /// Every way careline broke the protocol; a faithful server leaves this empty.
    pub protocol_errors: Vec<String>,
    /// One per media stream, in order.
    pub stream_closes: Vec<StreamClose>,
    /// What the caller heard, μ-law at 8 kHz, silence where nothing played (stream time only).
    pub audio: Vec<u8>,
    pub ended: CallEnd,
    /// Script steps never started.
    pub unsent_steps: usize,
    pub duration: Duration,
    /// The longest the caller heard nothing (20 ms resolution) while on careline's side of
    /// the call: from the call's start to the first audio, within streams (waiting for a key
    /// included), between one stream's end and the next one's audio, and until the caller
    /// hung up. Time with a dialed party on the line does not count.
    pub longest_silence: Duration,
}

impl CallReport {
    /// Prompt ids that played to their end, in order.
    pub fn played_prompts(&self) -> Vec<String> {
        self.transcript
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Played { prompt, .. } => Some(prompt.clone()),
                _ => None,
            })
            .collect()
    }

    /// `(language, prompt)` of prompts that played to their end, in order.
    pub fn played_prompts_with_language(&self) -> Vec<(String, String)> {
        self.transcript
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Played { language, prompt } => {
                    Some((language.clone(), prompt.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Prompt ids cut short by a `clear`, in order.
    pub fn interrupted_prompts(&self) -> Vec<String> {
        self.transcript
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Interrupted { prompt, .. } => Some(prompt.clone()),
                _ => None,
            })
            .collect()
    }

    /// The keys pressed, in order.
    pub fn sent_digits(&self) -> String {
        self.transcript
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::SentDigit { digit, .. } => Some(*digit),
                _ => None,
            })
            .collect()
    }

    /// Who was dialed and how each went, in order.
    pub fn dials(&self) -> Vec<(DialTarget, DialStatus)> {
        self.transcript
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Dialed { target, status } => Some((target.clone(), *status)),
                _ => None,
            })
            .collect()
    }

    /// Summaries of the TwiML verbs careline answered with, in order.
    pub fn twiml(&self) -> Vec<String> {
        self.transcript
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Twiml(summary) => Some(summary.clone()),
                _ => None,
            })
            .collect()
    }

    /// Save what the caller heard as a 16-bit PCM WAV.
    pub fn write_wav(&self, path: &std::path::Path) -> Result<(), hound::Error> {
        super::audio::write_wav(path, &self.audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_marks_name_language_and_prompt() {
        assert_eq!(
            PromptMark::parse("prompt:es/main_menu:12"),
            Ok(Some(PromptMark {
                language: "es".to_owned(),
                prompt: "main_menu".to_owned()
            }))
        );
        assert_eq!(PromptMark::parse("pace:3"), Ok(None));
        assert!(PromptMark::parse("prompt:welcome").is_err());
        assert!(PromptMark::parse("prompt:en/welcome:x").is_err());
        assert!(PromptMark::parse("prompt:/welcome:1").is_err());
    }

    #[test]
    fn data_entry_digits_print_masked() {
        let entry = TranscriptEntry::SentDigit {
            digit: '7',
            in_entry: true,
        };
        assert_eq!(entry.to_string(), "pressed    *");
        let choice = TranscriptEntry::SentDigit {
            digit: '1',
            in_entry: false,
        };
        assert_eq!(choice.to_string(), "pressed    1");
    }
}
