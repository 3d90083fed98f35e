//! The Media Streams messages, both directions, as serde types.
//!
//! Twilio → careline messages are parsed into [`StreamEvent`], borrowing from the frame text
//! (a media payload is not copied). careline → Twilio messages ([`Outbound`]) are serialized
//! here too, and the test caller uses the mirror images ([`TwilioMessage`] to send,
//! [`OutboundOwned`] to read) so that both ends speak one definition of the protocol.
//!
//! Numeric-looking fields (`sequenceNumber`, `chunk`, `timestamp`) are JSON strings on the wire.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why an inbound text frame could not be understood. Never carries the frame's payload.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame is not valid JSON for a Media Streams message (line {line}, column {column})")]
    InvalidJson { line: usize, column: usize },
    #[error("unknown event type")]
    UnknownEvent,
    #[error("`{event}` message lacks its `{field}` field")]
    MissingField {
        event: &'static str,
        field: &'static str,
    },
}

/// One message from Twilio, borrowing its strings from the frame.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent<'a> {
    Connected,
    Start(StreamStart<'a>),
    Media {
        stream_sid: Cow<'a, str>,
        /// base64 μ-law, still encoded.
        payload: Cow<'a, str>,
    },
    Dtmf {
        stream_sid: Cow<'a, str>,
        digit: Cow<'a, str>,
    },
    Mark {
        stream_sid: Cow<'a, str>,
        name: Cow<'a, str>,
    },
    Stop {
        stream_sid: Option<Cow<'a, str>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamStart<'a> {
    pub stream_sid: Cow<'a, str>,
    pub call_sid: Cow<'a, str>,
    pub account_sid: Cow<'a, str>,
    pub custom_parameters: BTreeMap<String, String>,
    pub encoding: Cow<'a, str>,
    pub sample_rate: u32,
    pub channels: u32,
}

impl StreamEvent<'_> {
    /// The stream this message claims to belong to, where it names one.
    pub fn stream_sid(&self) -> Option<&str> {
        match self {
            StreamEvent::Connected => None,
            StreamEvent::Start(start) => Some(&start.stream_sid),
            StreamEvent::Media { stream_sid, .. }
            | StreamEvent::Dtmf { stream_sid, .. }
            | StreamEvent::Mark { stream_sid, .. } => Some(stream_sid),
            StreamEvent::Stop { stream_sid } => stream_sid.as_deref(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            StreamEvent::Connected => "connected",
            StreamEvent::Start(_) => "start",
            StreamEvent::Media { .. } => "media",
            StreamEvent::Dtmf { .. } => "dtmf",
            StreamEvent::Mark { .. } => "mark",
            StreamEvent::Stop { .. } => "stop",
        }
    }
}

/// The flat shape every inbound message fits: one pass, no buffering of the tagged enum.
#[derive(Deserialize)]
struct RawInbound<'a> {
    #[serde(borrow)]
    event: JsonStr<'a>,
    #[serde(rename = "streamSid", borrow, default)]
    stream_sid: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    start: Option<RawStart<'a>>,
    #[serde(borrow, default)]
    media: Option<RawMedia<'a>>,
    #[serde(borrow, default)]
    dtmf: Option<RawDtmf<'a>>,
    #[serde(borrow, default)]
    mark: Option<RawMark<'a>>,
}

#[derive(Deserialize)]
struct RawStart<'a> {
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Option<JsonStr<'a>>,
    #[serde(rename = "callSid", borrow)]
    call_sid: Option<JsonStr<'a>>,
    #[serde(rename = "accountSid", borrow, default)]
    account_sid: JsonStr<'a>,
    #[serde(rename = "customParameters", default)]
    custom_parameters: BTreeMap<String, String>,
    #[serde(rename = "mediaFormat", borrow, default)]
    media_format: Option<RawMediaFormat<'a>>,
}

#[derive(Deserialize)]
struct RawMediaFormat<'a> {
    #[serde(borrow, default)]
    encoding: JsonStr<'a>,
    #[serde(rename = "sampleRate", default)]
    sample_rate: u32,
    #[serde(default)]
    channels: u32,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(borrow)]
    payload: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct RawDtmf<'a> {
    #[serde(borrow)]
    digit: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct RawMark<'a> {
    #[serde(borrow)]
    name: Option<JsonStr<'a>>,
}

/// A JSON string that borrows from the frame unless it had escapes to undo.
///
/// (`#[serde(borrow)]` alone does not borrow through `Option<Cow<str>>`.)
#[derive(Default)]
struct JsonStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = JsonStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

/// Parse one text frame from Twilio.
pub fn parse_stream_event(text: &str) -> Result<StreamEvent<'_>, WireError> {
    if let Some(media) = media_fast_path::scan(text) {
        return Ok(media);
    }
    parse_with_serde(text)
}

fn parse_with_serde(text: &str) -> Result<StreamEvent<'_>, WireError> {
    let raw: RawInbound<'_> =
        serde_json::from_str(text).map_err(|error| WireError::InvalidJson {
            line: error.line(),
            column: error.column(),
        })?;
    match raw.event.0.as_ref() {
        "connected" => Ok(StreamEvent::Connected),
        "start" => {
            let start = raw.start.ok_or(WireError::MissingField {
                event: "start",
                field: "start",
            })?;
            let stream_sid = start.stream_sid.or(raw.stream_sid).map(|sid| sid.0).ok_or(
                WireError::MissingField {
                    event: "start",
                    field: "streamSid",
                },
            )?;
            let call_sid = start
                .call_sid
                .map(|sid| sid.0)
                .ok_or(WireError::MissingField {
                    event: "start",
                    field: "callSid",
                })?;
            let format = start.media_format.unwrap_or(RawMediaFormat {
                encoding: JsonStr::default(),
                sample_rate: 0,
                channels: 0,
            });
            Ok(StreamEvent::Start(StreamStart {
                stream_sid,
                call_sid,
                account_sid: start.account_sid.0,
                custom_parameters: start.custom_parameters,
                encoding: format.encoding.0,
                sample_rate: format.sample_rate,
                channels: format.channels,
            }))
        }
        "media" => Ok(StreamEvent::Media {
            stream_sid: required_sid("media", raw.stream_sid)?,
            payload: raw
                .media
                .and_then(|media| media.payload)
                .map(|payload| payload.0)
                .ok_or(WireError::MissingField {
                    event: "media",
                    field: "media.payload",
                })?,
        }),
        "dtmf" => Ok(StreamEvent::Dtmf {
            stream_sid: required_sid("dtmf", raw.stream_sid)?,
            digit: raw
                .dtmf
                .and_then(|dtmf| dtmf.digit)
                .map(|digit| digit.0)
                .ok_or(WireError::MissingField {
                    event: "dtmf",
                    field: "dtmf.digit",
                })?,
        }),
        "mark" => Ok(StreamEvent::Mark {
            stream_sid: required_sid("mark", raw.stream_sid)?,
            name: raw
                .mark
                .and_then(|mark| mark.name)
                .map(|name| name.0)
                .ok_or(WireError::MissingField {
                    event: "mark",
                    field: "mark.name",
                })?,
        }),
        "stop" => Ok(StreamEvent::Stop {
            stream_sid: raw.stream_sid.map(|sid| sid.0),
        }),
        _ => Err(WireError::UnknownEvent),
    }
}

/// A `media` message in the shape Twilio sends fifty times a second per call, read in one pass.
///
/// serde spent most of careline's own per-frame time on these (about 4,000 instructions of
/// 10,000). The scanner accepts only a subset of JSON: an object whose values are strings or
/// objects of strings, no escape sequences, `event` = `media` and no duplicate or unexpected
/// field that serde would treat differently. Anything else is `None` and goes to serde, so the
/// result is always what serde would have produced.
mod media_fast_path {
    use std::borrow::Cow;

    use super::StreamEvent;

    pub(super) fn scan(text: &str) -> Option<StreamEvent<'_>> {
        let mut scanner = Scanner {
            bytes: text.as_bytes(),
            text,
            at: 0,
        };
        let mut event = None;
        let mut stream_sid = None;
        let mut payload = None;
        let mut media_seen = false;
        scanner.object(|scanner, key| match key {
            "event" => set_once(&mut event, scanner.string()?),
            "streamSid" => set_once(&mut stream_sid, scanner.string()?),
            "media" => {
                if std::mem::replace(&mut media_seen, true) {
                    return None;
                }
                scanner.object(|scanner, key| match key {
                    "payload" => set_once(&mut payload, scanner.string()?),
                    _ => scanner.string().map(drop),
                })
            }
            // serde would read these as the other events' bodies.
            "start" | "dtmf" | "mark" => None,
            _ => scanner.string().map(drop),
        })?;
        scanner.whitespace();
        if scanner.at != scanner.bytes.len() || event? != "media" {
            return None;
        }
        Some(StreamEvent::Media {
            stream_sid: Cow::Borrowed(stream_sid?),
            payload: Cow::Borrowed(payload?),
        })
    }

    fn set_once<'a>(slot: &mut Option<&'a str>, value: &'a str) -> Option<()> {
        match slot.replace(value) {
            Some(_) => None,
            None => Some(()),
        }
    }

    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

    /// The high bit of byte `n` set if byte `n` of `word` may be a quote, a backslash or a
    /// control character; the lowest one set always is one (the classic "has zero byte" test:
    /// a borrow can only mark bytes above a real match). Zero if there is none.
    fn special_bytes(word: u64) -> u64 {
        let zero_bytes = |value: u64| value.wrapping_sub(ONES) & !value & HIGH_BITS;
        zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS)
    }

    struct Scanner<'a> {
        bytes: &'a [u8],
        text: &'a str,
        at: usize,
    }

    impl<'a> Scanner<'a> {
        fn whitespace(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
                self.at += 1;
            }
        }

        fn expect(&mut self, byte: u8) -> Option<()> {
            self.whitespace();
            (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
        }

        /// A string without escapes or control characters, borrowed.
        fn string(&mut self) -> Option<&'a str> {
            self.expect(b'"')?;
            let start = self.at;
            // Eight bytes at a time, jumping straight to the first that ends the string or needs
            // a closer look (see `special_bytes`); byte by byte only at the end of the message.
            loop {
                let word = self
                    .bytes
                    .get(self.at..self.at + 8)
                    .and_then(|word| <[u8; 8]>::try_from(word).ok());
                let Some(word) = word else {
                    match *self.bytes.get(self.at)? {
                        b'"' => break,
                        b'\\' | 0..=0x1f => return None,
                        _ => self.at += 1,
                    }
                    continue;
                };
                let special = special_bytes(u64::from_le_bytes(word));
                if special == 0 {
                    self.at += 8;
                    continue;
                }
                let offset = special.trailing_zeros() as usize / 8;
                if word.get(offset) != Some(&b'"') {
                    return None;
                }
                self.at += offset;
                break;
            }
            // Both ends are ASCII quotes, so the slice falls on character boundaries.
            let value = self.text.get(start..self.at)?;
            self.at += 1;
            Some(value)
        }

        /// `{ "key": value, ... }`, handing each key to `member`, which reads its value.
        fn object(
            &mut self,
            mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
        ) -> Option<()> {
            self.expect(b'{')?;
            self.whitespace();
            if self.bytes.get(self.at) == Some(&b'}') {
                self.at += 1;
                return Some(());
            }
            loop {
                let key = self.string()?;
                self.expect(b':')?;
                member(self, key)?;
                self.whitespace();
                match self.bytes.get(self.at)? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }
    }
}

fn required_sid<'a>(
    event: &'static str,
    sid: Option<JsonStr<'a>>,
) -> Result<Cow<'a, str>, WireError> {
    sid.map(|sid| sid.0).ok_or(WireError::MissingField {
        event,
        field: "streamSid",
    })
}

/// One message from careline to Twilio.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Outbound<'a> {
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        media: OutboundMedia<'a>,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        mark: MarkName<'a>,
    },
    Clear {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboundMedia<'a> {
    pub payload: &'a str,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MarkName<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

impl Outbound<'_> {
    /// The message as JSON text, exactly as serde would write it.
    ///
    /// Written directly: serde escapes a string one character at a time, which made a 480 ms
    /// media message (5 KiB of base64) cost about 10 µs; base64 and SIDs never need escaping,
    /// so each string is checked in one pass and copied whole.
    pub fn to_json(&self) -> String {
        let (event, stream_sid) = match self {
            Outbound::Media { stream_sid, .. } => ("media", stream_sid),
            Outbound::Mark { stream_sid, .. } => ("mark", stream_sid),
            Outbound::Clear { stream_sid } => ("clear", stream_sid),
        };
        let payload_len = match self {
            Outbound::Media { media, .. } => media.payload.len(),
            Outbound::Mark { mark, .. } => mark.name.len(),
            Outbound::Clear { .. } => 0,
        };
        let mut json = String::with_capacity(64 + stream_sid.len() + payload_len);
        json.push_str(r#"{"event":""#);
        json.push_str(event);
        json.push_str(r#"","streamSid":"#);
        push_json_string(&mut json, stream_sid);
        match self {
            Outbound::Media { media, .. } => {
                json.push_str(r#","media":{"payload":"#);
                push_json_string(&mut json, media.payload);
                json.push_str("}}");
            }
            Outbound::Mark { mark, .. } => {
                json.push_str(r#","mark":{"name":"#);
                push_json_string(&mut json, &mark.name);
                json.push_str("}}");
            }
            Outbound::Clear { .. } => json.push('}'),
        }
        json
    }
}

/// Append `value` as a JSON string: copied whole when nothing in it needs escaping (the check
/// has no early exit, so it compiles to a vector loop), through serde otherwise.
fn push_json_string(json: &mut String, value: &str) {
    let needs_escape = value.bytes().fold(false, |needs, byte| {
        needs | (byte < 0x20) | (byte == b'"') | (byte == b'\\')
    });
    if needs_escape {
        // Serializing a string cannot fail.
        json.push_str(&serde_json::to_string(value).unwrap_or_default());
    } else {
        json.push('"');
        json.push_str(value);
        json.push('"');
    }
}

/// A careline → Twilio message as the test caller reads it (owned, strict about shape).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutboundOwned {
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        media: OutboundMediaOwned,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        mark: MarkNameOwned,
    },
    Clear {
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutboundMediaOwned {
    pub payload: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MarkNameOwned {
    pub name: String,
}

/// A Twilio → careline message as the test caller writes it, field for field as Twilio does.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum TwilioMessage {
    Connected {
        protocol: &'static str,
        version: &'static str,
    },
    Start {
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        start: StartBody,
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
    Media {
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        media: MediaBody,
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
    Dtmf {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        dtmf: DtmfBody,
    },
    Mark {
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        #[serde(rename = "streamSid")]
        stream_sid: String,
        mark: MarkNameOwned,
    },
    Stop {
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        stop: StopBody,
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct StartBody {
    #[serde(rename = "accountSid")]
    pub account_sid: String,
    #[serde(rename = "streamSid")]
    pub stream_sid: String,
    #[serde(rename = "callSid")]
    pub call_sid: String,
    pub tracks: Vec<&'static str>,
    #[serde(rename = "mediaFormat")]
    pub media_format: MediaFormat,
    #[serde(rename = "customParameters")]
    pub custom_parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MediaFormat {
    pub encoding: &'static str,
    #[serde(rename = "sampleRate")]
    pub sample_rate: u32,
    pub channels: u32,
}

impl MediaFormat {
    /// The only format Twilio streams: G.711 μ-law, 8 kHz, mono.
    pub const MULAW_8K: MediaFormat = MediaFormat {
        encoding: "audio/x-mulaw",
        sample_rate: 8000,
        channels: 1,
    };
}

#[derive(Debug, Clone, Serialize)]
pub struct MediaBody {
    pub track: &'static str,
    pub chunk: String,
    pub timestamp: String,
    pub payload: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DtmfBody {
    pub track: &'static str,
    pub digit: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StopBody {
    #[serde(rename = "accountSid")]
    pub account_sid: String,
    #[serde(rename = "callSid")]
    pub call_sid: String,
}

impl TwilioMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_start_message() {
        let text = r#"{"event":"start","sequenceNumber":"1",
 "start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],
          "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},
          "customParameters":{"FirstName":"Jane"}},
 "streamSid":"MZ1"}"#;
        let StreamEvent::Start(start) = parse_stream_event(text).expect("valid start") else {
            panic!("not a start");
        };
        assert_eq!(start.stream_sid, "MZ1");
        assert_eq!(start.call_sid, "CA1");
        assert_eq!(start.sample_rate, 8000);
        assert_eq!(start.custom_parameters["FirstName"], "Jane");
    }

    #[test]
    fn media_payload_is_borrowed_from_the_frame() {
        let text = r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+JhoaJjpzS"},"streamSid":"MZ1"}"#;
        let event = parse_stream_event(text).expect("valid media");
        let StreamEvent::Media { payload, .. } = event else {
            panic!("not media");
        };
        assert!(matches!(payload, Cow::Borrowed("no+JhoaJjpzS")));
    }

    #[test]
    fn escaped_payload_still_parses() {
        let text = r#"{"event":"media","media":{"payload":"ab\/cd"},"streamSid":"MZ1"}"#;
        let StreamEvent::Media { payload, .. } = parse_stream_event(text).expect("valid") else {
            panic!("not media");
        };
        assert_eq!(payload, "ab/cd");
    }

    #[test]
    fn dtmf_mark_and_stop_parse() {
        let dtmf = r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#;
        assert!(
            matches!(parse_stream_event(dtmf), Ok(StreamEvent::Dtmf { digit, .. }) if digit == "1")
        );
        let mark =
            r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"p7"}}"#;
        assert!(
            matches!(parse_stream_event(mark), Ok(StreamEvent::Mark { name, .. }) if name == "p7")
        );
        let stop = r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#;
        assert!(matches!(
            parse_stream_event(stop),
            Ok(StreamEvent::Stop { stream_sid: Some(sid) }) if sid == "MZ1"
        ));
    }

    #[test]
    fn bad_frames_are_errors_without_payload() {
        assert!(matches!(
            parse_stream_event("not json"),
            Err(WireError::InvalidJson { .. })
        ));
        assert_eq!(
            parse_stream_event(r#"{"event":"hello"}"#),
            Err(WireError::UnknownEvent)
        );
        let error = parse_stream_event(r#"{"event":"media","streamSid":"MZ1"}"#)
            .expect_err("media without payload");
        assert_eq!(
            error,
            WireError::MissingField {
                event: "media",
                field: "media.payload"
            }
        );
    }

    #[test]
    fn outbound_messages_have_the_documented_shape() {
        let media = Outbound::Media {
            stream_sid: "MZ1",
            media: OutboundMedia { payload: "AAAA" },
        };
        assert_eq!(
            media.to_json(),
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA"}}"#
        );
        let mark = Outbound::Mark {
            stream_sid: "MZ1",
            mark: MarkName {
                name: Cow::Borrowed("p1"),
            },
        };
        assert_eq!(
            mark.to_json(),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"p1"}}"#
        );
        let clear = Outbound::Clear { stream_sid: "MZ1" };
        assert_eq!(clear.to_json(), r#"{"event":"clear","streamSid":"MZ1"}"#);
        let parsed: OutboundOwned = serde_json::from_str(&mark.to_json()).expect("round trip");
        assert!(matches!(parsed, OutboundOwned::Mark { mark, .. } if mark.name == "p1"));
    }

    #[test]
    fn the_media_fast_path_agrees_with_serde_on_every_shape() {
        let twilio = r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+JhoaJjpzS"},"streamSid":"MZ1"}"#;
        let shapes = [
            twilio,
            r#" { "streamSid" : "MZ1" ,"media" :{ "payload":"AAAA" } , "event":"media" }
"#,
            r#"{"event":"media","media":{},"streamSid":"MZ1"}"#,
            r#"{"event":"media","media":{"payload":"AAAA"}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"ab\/cd"}}"#,
            r#"{"event":"media","streamSid":"MZ\u0031","media":{"payload":"AAAA"}}"#,
            r#"{"event":"media","streamSid":"MZ1","streamSid":"MZ2","media":{"payload":"A"}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A","payload":"B"}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A"},"media":{}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A"}} trailing"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A"},"sequenceNumber":4}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A","chunk":2}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":"AAAA"}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A"},"mark":{"name":"x"}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A"},"extra":{"a":"b"}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"tab	inside"}}"#,
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"p1"}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A"}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"A"},}"#,
            r#"{"event":"média","streamSid":"MZ1","media":{"payload":"ü"}}"#,
            r#"{}"#,
            "",
        ];
        for text in shapes {
            assert_eq!(parse_stream_event(text), parse_with_serde(text), "{text}");
        }
        assert!(
            media_fast_path::scan(twilio).is_some(),
            "Twilio's shape takes the fast path"
        );
        assert!(
            media_fast_path::scan(shapes[1]).is_some(),
            "so do spacing and field order"
        );
    }

    #[test]
    fn the_fast_path_finds_the_first_quote_backslash_or_control_character_in_any_position() {
        for position in 0..40 {
            for special in ['"', '\\', '\u{1f}'] {
                let mut value: String = "aé/+9".chars().cycle().take(40).collect();
                let boundary = value
                    .char_indices()
                    .map(|(index, _)| index)
                    .find(|&index| index >= position)
                    .unwrap_or(value.len());
                value.insert(boundary, special);
                let text = format!(
                    r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{value}"}}}}"#
                );
                assert_eq!(parse_stream_event(&text), parse_with_serde(&text), "{text}");
            }
        }
    }

    #[test]
    fn outbound_json_is_what_serde_writes_even_for_strings_that_need_escaping() {
        for text in [
            "MZ1",
            "AAAA+/==",
            "quote\" back\\slash",
            "tab\tnew\nline\u{1}",
            "ünï",
        ] {
            let messages = [
                Outbound::Media {
                    stream_sid: text,
                    media: OutboundMedia { payload: text },
                },
                Outbound::Mark {
                    stream_sid: text,
                    mark: MarkName {
                        name: Cow::Borrowed(text),
                    },
                },
                Outbound::Clear { stream_sid: text },
            ];
            for message in messages {
                let serde = serde_json::to_string(&message).expect("serializes");
                assert_eq!(message.to_json(), serde);
            }
        }
    }
}
