//! One Media Streams WebSocket, from Twilio's side: [`MediaStreamClient`] sends what Twilio sends
//! (`connected`, `start`, a `media` frame every 20 ms, `dtmf`, mark echoes, `stop`), plays what
//! careline sends through the simulated [`PlaybackBuffer`], and reports every protocol breach.
//!
//! The client is usable on its own, so tests can misbehave on purpose (binary frames, media
//! before `start`, oversized or malformed messages) and observe how careline closes the socket.
//! It is generic over the socket, so unit tests can run it over an in-memory duplex pipe with
//! tokio's paused clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::audio::{Frame, InboundAudio, KeySignalling, Silence, TONE_MS, dtmf_tone};
use super::error::CallerError;
use super::playback::{BufferOverflow, MarkEcho, PlaybackBuffer};
use super::script::KEY_GAP_TICKS;
use super::transcript::StreamClose;
use crate::media::{FRAME_BYTES, FRAME_MS, MULAW_SILENCE};
use crate::twilio::signature::{SIGNATURE_HEADER, signature};
use crate::twilio::wire::{
    DtmfBody, MarkNameOwned, MediaBody, MediaFormat, OutboundOwned, StartBody, StopBody,
    TwilioMessage,
};

/// How long to wait for the other side's close frame once the stream is ending.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Initial read buffer per stream (careline's larger messages grow it). tungstenite zero-fills
/// the free part of its read buffer before every read, so its 128 KiB default cost more than
/// the rest of receiving a message, and the load generator holds thousands of streams.
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// The identifiers Twilio puts in a stream's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIds {
    pub account_sid: String,
    pub call_sid: String,
    pub stream_sid: String,
}

impl StreamIds {
    /// A fresh stream (`MZ…`) of the given call.
    pub fn for_call(account_sid: &str, call_sid: &str) -> Self {
        StreamIds {
            account_sid: account_sid.to_owned(),
            call_sid: call_sid.to_owned(),
            stream_sid: random_sid("MZ"),
        }
    }

    /// A stream of a made-up call.
    pub fn random() -> Self {
        StreamIds::for_call(&random_sid("AC"), &random_sid("CA"))
    }
}

/// A Twilio-style SID: a two-letter prefix and 32 lowercase hex digits.
pub fn random_sid(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

/// What happened on the stream, as [`MediaStreamClient::next_event`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// 20 ms passed: one inbound `media` frame went out (once started) and playback advanced.
    Tick {
        heard: Frame,
        /// Marks that playback reached (already echoed to careline).
        echoes: Vec<MarkEcho>,
        /// Whether audio is still buffered after this tick.
        playing: bool,
    },
    /// careline sent this many bytes of audio (now buffered).
    Audio { bytes: usize },
    /// A mark came back at once because nothing was buffered ahead of it.
    MarkEchoed(MarkEcho),
    /// careline sent `clear`; these marks came back.
    Cleared(Vec<MarkEcho>),
    /// careline broke the protocol; the stream goes on (Twilio only warns).
    ProtocolError(String),
    /// The socket is closed: by careline, by the caller, or broken (see [`StreamClose`]).
    Closed(StreamClose),
}

/// Twilio's end of one Media Streams WebSocket.
pub struct MediaStreamClient<S = MaybeTlsStream<TcpStream>> {
    socket: WebSocketStream<S>,
    ids: StreamIds,
    /// The last `sequenceNumber` used; `connected` is not counted, so `start` is 1.
    sequence: u64,
    /// `media` messages sent so far.
    chunks: u64,
    started: bool,
    stopped: bool,
    /// Send a `media` frame every tick once started (Twilio does; tests may turn it off).
    auto_media: bool,
    /// Keep the bytes of careline's audio (the test caller records them); the load generator
    /// keeps only their length.
    keep_audio: bool,
    inbound: Box<dyn InboundAudio>,
    /// Tone frames to say before `inbound` resumes.
    tones: VecDeque<Frame>,
    playback: PlaybackBuffer,
    ticker: Interval,
    overflow_reported: bool,
    closed: Option<StreamClose>,
}

impl MediaStreamClient {
    /// Open the stream at `url` as Twilio does, signing the upgrade with `auth_token` if given.
    pub async fn connect(
        url: &str,
        auth_token: Option<&str>,
        ids: StreamIds,
    ) -> Result<Self, CallerError> {
        let header = auth_token.map(|token| signature(token, url, &[]));
        Self::connect_with_signature(url, header.as_deref(), ids).await
    }

    /// Open the stream with exactly this `x-twilio-signature` header (or none).
    pub async fn connect_with_signature(
        url: &str,
        signature_header: Option<&str>,
        ids: StreamIds,
    ) -> Result<Self, CallerError> {
        let mut request = url
            .into_client_request()
            .map_err(|error| CallerError::InvalidUrl {
                url: url.to_owned(),
                reason: error.to_string(),
            })?;
        if let Some(header) = signature_header {
            let value = HeaderValue::from_str(header).map_err(|_| CallerError::InvalidUrl {
                url: url.to_owned(),
                reason: "the signature is not a valid header value".to_owned(),
            })?;
            request.headers_mut().insert(SIGNATURE_HEADER, value);
        }
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        // Without TCP_NODELAY a key press can wait behind an unacknowledged media frame, and the
        // delay would be charged to careline.
        match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
            Ok((socket, _response)) => Ok(MediaStreamClient::from_socket(socket, ids)),
            Err(tungstenite::Error::Http(response)) => Err(CallerError::HandshakeRefused {
                url: url.to_owned(),
                status: response.status().as_u16(),
            }),
            Err(source) => Err(CallerError::Handshake {
                url: url.to_owned(),
                source: Box::new(source),
            }),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MediaStreamClient<S> {
    /// Drive an already-open WebSocket.
    pub fn from_socket(socket: WebSocketStream<S>, ids: StreamIds) -> Self {
        let mut ticker = tokio::time::interval(Duration::from_millis(FRAME_MS));
        // Twilio's frames arrive in bursts after a stall rather than going missing.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        MediaStreamClient {
            socket,
            ids,
            sequence: 0,
            chunks: 0,
            started: false,
            stopped: false,
            auto_media: true,
            keep_audio: true,
            inbound: Box::new(Silence),
            tones: VecDeque::new(),
            playback: PlaybackBuffer::new(),
            ticker,
            overflow_reported: false,
            closed: None,
        }
    }

    pub fn ids(&self) -> &StreamIds {
        &self.ids
    }

    /// Where the caller's voice comes from (silence by default).
    pub fn set_inbound_audio(&mut self, inbound: Box<dyn InboundAudio>) {
        self.inbound = inbound;
    }

    /// Whether a `media` frame goes out every tick once started.
    pub fn set_auto_media(&mut self, on: bool) {
        self.auto_media = on;
    }

    /// Whether to keep careline's audio (default) or only its length: playback, marks and
    /// [`Heard`] are the same either way, but what was heard is silence.
    pub fn set_keep_audio(&mut self, keep: bool) {
        self.keep_audio = keep;
    }

    /// Whether careline's audio is still waiting to be played.
    pub fn is_playing(&self) -> bool {
        self.playback.is_playing()
    }

    /// How the socket closed, once it has.
    pub fn close_state(&self) -> Option<&StreamClose> {
        self.closed.as_ref()
    }

    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    async fn send_message(&mut self, message: &TwilioMessage) -> Result<(), CallerError> {
        self.send_raw(Message::text(message.to_json())).await
    }

    /// Send any frame, however wrong (for tests of careline's defences).
    pub async fn send_raw(&mut self, message: Message) -> Result<(), CallerError> {
        if self.closed.is_some() {
            return Err(CallerError::StreamClosed);
        }
        self.socket.send(message).await?;
        Ok(())
    }

    /// `connected`: the first message, with no sequence number.
    pub async fn send_connected(&mut self) -> Result<(), CallerError> {
        self.send_message(&TwilioMessage::Connected {
            protocol: "Call",
            version: "1.0.0",
        })
        .await
    }

    /// `start`, with the `<Parameter>`s of the TwiML as `customParameters`.
    pub async fn send_start(
        &mut self,
        custom_parameters: BTreeMap<String, String>,
    ) -> Result<(), CallerError> {
        let sequence_number = self.next_sequence();
        let message = TwilioMessage::Start {
            sequence_number,
            start: StartBody {
                account_sid: self.ids.account_sid.clone(),
                stream_sid: self.ids.stream_sid.clone(),
                call_sid: self.ids.call_sid.clone(),
                tracks: vec!["inbound"],
                media_format: MediaFormat::MULAW_8K,
                custom_parameters,
            },
            stream_sid: self.ids.stream_sid.clone(),
        };
        self.send_message(&message).await?;
        self.started = true;
        Ok(())
    }

    /// One `media` message of the caller's audio (normally 160 bytes).
    pub async fn send_media(&mut self, audio: &[u8]) -> Result<(), CallerError> {
        self.chunks += 1;
        self.sequence += 1;
        let text = media_json(self.sequence, self.chunks, &self.ids.stream_sid, audio);
        self.send_raw(Message::text(text)).await
    }

    /// A `dtmf` message for `key`.
    pub async fn send_dtmf(&mut self, key: char) -> Result<(), CallerError> {
        let sequence_number = self.next_sequence();
        let message = TwilioMessage::Dtmf {
            stream_sid: self.ids.stream_sid.clone(),
            sequence_number,
            dtmf: DtmfBody {
                track: "inbound_track",
                digit: key.to_string(),
            },
        };
        self.send_message(&message).await
    }

    /// Press `key` the way `signalling` says: a `dtmf` message, a tone in the next frames, or both.
    pub async fn press(&mut self, key: char, signalling: KeySignalling) -> Result<(), CallerError> {
        if matches!(signalling, KeySignalling::Tones | KeySignalling::Both) {
            self.tones.extend(dtmf_tone(key, TONE_MS));
            let tone_frames = TONE_MS.div_ceil(FRAME_MS as u32);
            let gap_frames = KEY_GAP_TICKS.saturating_sub(tone_frames).max(1);
            self.tones
                .extend((0..gap_frames).map(|_| [MULAW_SILENCE; FRAME_BYTES]));
        }
        if matches!(signalling, KeySignalling::Events | KeySignalling::Both) {
            self.send_dtmf(key).await?;
        }
        Ok(())
    }

    /// `stop`: the call ended on Twilio's side.
    pub async fn send_stop(&mut self) -> Result<(), CallerError> {
        let sequence_number = self.next_sequence();
        let message = TwilioMessage::Stop {
            sequence_number,
            stop: StopBody {
                account_sid: self.ids.account_sid.clone(),
                call_sid: self.ids.call_sid.clone(),
            },
            stream_sid: self.ids.stream_sid.clone(),
        };
        self.send_message(&message).await?;
        self.stopped = true;
        Ok(())
    }

    /// The caller hangs up: `stop`, then a normal close, then wait for careline's close frame.
    pub async fn hang_up(&mut self) -> Result<StreamClose, CallerError> {
        if let Some(close) = &self.closed {
            return Ok(close.clone());
        }
        self.send_stop().await?;
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.socket.close(Some(frame)).await?;
        let mut close = StreamClose {
            code: None,
            reason: String::new(),
            by_server: false,
            broken: false,
        };
        let drain = async {
            while let Some(message) = self.socket.next().await {
                match message {
                    Ok(Message::Close(Some(frame))) => {
                        close.code = Some(frame.code.into());
                        close.reason = frame.reason.to_string();
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
        self.closed = Some(close.clone());
        Ok(close)
    }

    /// Wait for the next thing worth reporting, sending inbound media and advancing playback
    /// every 20 ms meanwhile. Once the socket is closed, returns [`Heard::Closed`] every time.
    pub async fn next_event(&mut self) -> Heard {
        loop {
            if let Some(close) = &self.closed {
                return Heard::Closed(close.clone());
            }
            tokio::select! {
                message = self.socket.next() => {
                    if let Some(event) = self.on_message(message).await {
                        return event;
                    }
                }
                _ = self.ticker.tick() => return self.on_tick().await,
            }
        }
    }

    /// Run until careline closes the socket or `limit` passes, returning the close if it came.
    pub async fn wait_for_close(&mut self, limit: Duration) -> Option<StreamClose> {
        let wait = async {
            loop {
                if let Heard::Closed(close) = self.next_event().await {
                    return close;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok()
    }

    async fn on_tick(&mut self) -> Heard {
        let tick = self.playback.tick();
        for echo in &tick.echoes {
            self.echo_mark(&echo.name).await;
        }
        if self.started && !self.stopped && self.auto_media {
            let frame = match self.tones.pop_front() {
                Some(tone) => tone,
                None => self.inbound.next_frame(),
            };
            // A failed send means the socket is going away; the read side reports how.
            let _ = self.send_media(&frame).await;
        }
        Heard::Tick {
            heard: tick.heard,
            echoes: tick.echoes,
            playing: self.playback.is_playing(),
        }
    }

    async fn echo_mark(&mut self, name: &str) {
        let sequence_number = self.next_sequence();
        let message = TwilioMessage::Mark {
            sequence_number,
            stream_sid: self.ids.stream_sid.clone(),
            mark: MarkNameOwned {
                name: name.to_owned(),
            },
        };
        let _ = self.send_message(&message).await;
    }

    async fn on_message(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Option<Heard> {
        match message {
            None => Some(self.closed_abruptly("the connection ended without a close frame")),
            Some(Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )
                | tungstenite::Error::Io(_),
            )) => Some(self.closed_abruptly("the connection ended without a close handshake")),
            // Not a broken connection but careline breaking the WebSocket protocol (a bad
            // frame, an oversized message): reported, then the stream is over.
            Some(Err(error)) => {
                let what = format!("WebSocket error: {error}");
                self.closed_abruptly(&what);
                Some(Heard::ProtocolError(format!(
                    "careline's media stream: {what}"
                )))
            }
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
            Some(Ok(Message::Binary(bytes))) => Some(Heard::ProtocolError(format!(
                "careline sent a binary frame of {} bytes; Media Streams messages are JSON text (Twilio warning 31950)",
                bytes.len()
            ))),
            Some(Ok(Message::Close(frame))) => Some(self.closed_by_server(frame).await),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => None,
        }
    }

    /// The connection went away without a WebSocket close: the node carrying the stream died
    /// or was cut off. Not a protocol error: Twilio treats it as the stream's end and runs the
    /// TwiML after `</Connect>`; the close says it broke.
    fn closed_abruptly(&mut self, what: &str) -> Heard {
        let close = StreamClose {
            code: None,
            reason: what.to_owned(),
            by_server: true,
            broken: true,
        };
        self.closed = Some(close.clone());
        Heard::Closed(close)
    }

    async fn closed_by_server(&mut self, frame: Option<CloseFrame>) -> Heard {
        let close = StreamClose {
            code: frame.as_ref().map(|frame| frame.code.into()),
            reason: frame
                .as_ref()
                .map(|frame| frame.reason.to_string())
                .unwrap_or_default(),
            by_server: true,
            broken: false,
        };
        // Reading on lets tungstenite answer the close frame and see the TCP close.
        let drain = async { while let Some(Ok(_)) = self.socket.next().await {} };
        let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
        self.closed = Some(close.clone());
        Heard::Closed(close)
    }

    fn buffer_audio(&mut self, pushed: Result<(), BufferOverflow>, bytes: usize) -> Option<Heard> {
        match pushed {
            Ok(()) if bytes == 0 => None,
            Ok(()) => Some(Heard::Audio { bytes }),
            Err(overflow) if !self.overflow_reported => {
                self.overflow_reported = true;
                Some(Heard::ProtocolError(overflow.to_string()))
            }
            Err(_) => None,
        }
    }

    async fn on_text(&mut self, text: &str) -> Option<Heard> {
        if self.stopped {
            return None;
        }
        let message: OutboundOwned = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                return Some(Heard::ProtocolError(format!(
                    "careline sent an invalid message (Twilio warning 31951): {error}"
                )));
            }
        };
        let (event, stream_sid) = match &message {
            OutboundOwned::Media { stream_sid, .. } => ("media", stream_sid),
            OutboundOwned::Mark { stream_sid, .. } => ("mark", stream_sid),
            OutboundOwned::Clear { stream_sid } => ("clear", stream_sid),
        };
        if !self.started {
            return Some(Heard::ProtocolError(format!(
                "careline sent `{event}` before the stream's `start`"
            )));
        }
        if *stream_sid != self.ids.stream_sid {
            return Some(Heard::ProtocolError(format!(
                "careline sent `{event}` with the wrong streamSid (Twilio warning 31951)"
            )));
        }
        match message {
            OutboundOwned::Media { media, .. } if !self.keep_audio => {
                let Some(bytes) = base64_decoded_len(&media.payload) else {
                    return Some(Heard::ProtocolError(
                        "careline sent `media` whose payload is not base64".to_owned(),
                    ));
                };
                let pushed = self.playback.push_audio_len(bytes);
                self.buffer_audio(pushed, bytes)
            }
            OutboundOwned::Media { media, .. } => {
                let audio = match BASE64.decode(media.payload.as_bytes()) {
                    Ok(audio) => audio,
                    Err(_) => {
                        return Some(Heard::ProtocolError(
                            "careline sent `media` whose payload is not base64".to_owned(),
                        ));
                    }
                };
                let bytes = audio.len();
                if audio.starts_with(b"RIFF") {
                    return Some(Heard::ProtocolError(
                        "careline sent `media` starting with a WAV header; payloads are raw μ-law"
                            .to_owned(),
                    ));
                }
                let pushed = self.playback.push_audio(audio);
                self.buffer_audio(pushed, bytes)
            }
            OutboundOwned::Mark { mark, .. } => {
                let echo = self.playback.push_mark(mark.name)?;
                self.echo_mark(&echo.name).await;
                Some(Heard::MarkEchoed(echo))
            }
            OutboundOwned::Clear { .. } => {
                let echoes = self.playback.clear();
                for echo in &echoes {
                    self.echo_mark(&echo.name).await;
                }
                Some(Heard::Cleared(echoes))
            }
        }
    }
}

/// Twilio's `media` message exactly as serializing [`TwilioMessage::Media`] writes it, built
/// directly: a caller sends fifty a second, and the load generator thousands of callers' worth.
fn media_json(sequence: u64, chunk: u64, stream_sid: &str, audio: &[u8]) -> String {
    use std::fmt::Write as _;

    let timestamp = (chunk - 1) * FRAME_MS;
    if stream_sid
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        return TwilioMessage::Media {
            sequence_number: sequence.to_string(),
            media: MediaBody {
                track: "inbound",
                chunk: chunk.to_string(),
                timestamp: timestamp.to_string(),
                payload: BASE64.encode(audio),
            },
            stream_sid: stream_sid.to_owned(),
        }
        .to_json();
    }
    let mut text = String::with_capacity(160 + stream_sid.len() + audio.len().div_ceil(3) * 4);
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        r#"{{"event":"media","sequenceNumber":"{sequence}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp}","payload":""#
    );
    BASE64.encode_string(audio, &mut text);
    text.push_str(r#""},"streamSid":""#);
    text.push_str(stream_sid);
    text.push_str(r#""}"#);
    text
}

/// The length of what a base64 string decodes to, if it is well-formed padded base64 (the
/// characters themselves are not checked: the load generator only needs the length).
fn base64_decoded_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes
        .iter()
        .rev()
        .take(2)
        .filter(|&&byte| byte == b'=')
        .count();
    Some(bytes.len() / 4 * 3 - padding)
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn media_messages_are_written_exactly_as_twilio_message_serializes_them() {
        let audio: Vec<u8> = (0..160u16).map(|n| (n * 7) as u8).collect();
        for sid in ["MZ18ad3ab5a668481ce02b83e7395059f0", "odd \"sid\""] {
            let expected = TwilioMessage::Media {
                sequence_number: "42".to_owned(),
                media: MediaBody {
                    track: "inbound",
                    chunk: "41".to_owned(),
                    timestamp: "800".to_owned(),
                    payload: BASE64.encode(&audio),
                },
                stream_sid: sid.to_owned(),
            }
            .to_json();
            assert_eq!(media_json(42, 41, sid, &audio), expected);
        }
    }

    #[test]
    fn decoded_length_follows_the_padding() {
        assert_eq!(base64_decoded_len("AAAA"), Some(3));
        assert_eq!(base64_decoded_len("AAA="), Some(2));
        assert_eq!(base64_decoded_len("AA=="), Some(1));
        assert_eq!(base64_decoded_len(""), Some(0));
        assert_eq!(base64_decoded_len("AAAAA"), None);
    }
}
