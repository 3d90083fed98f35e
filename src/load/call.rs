//! One load call, from the voice webhook to the status callback, reporting what it measures as
//! [`Sample`]s while it runs.
//!
//! Lean on purpose: thousands run in one process, next to the server, on the same cores. A call
//! keeps no transcript and no audio (the stream client counts careline's audio instead of
//! decoding it), and shares the HTTP client with every other call.

use std::time::Duration;

use reqwest::Url;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::caller::playback::EchoReason;
use crate::caller::script::{Keypad, KeypadAction};
use crate::caller::stream::random_sid;
use crate::caller::{CallerError, DigitScript, Heard, KeySignalling, MediaStreamClient, StreamIds};
use crate::twilio::signature::{SIGNATURE_HEADER, signature};
use crate::twilio::twiml::{self, Verb};

/// Twilio gives up on a webhook after 15 seconds.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// What a call reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// The call is being placed (voice webhook).
    Placed,
    /// The media stream is up.
    StreamOpened,
    /// The media stream is over.
    StreamClosed,
    /// A key's `dtmf` left the caller this long before the first `media` message after it.
    KeyToPrompt(Duration),
    /// Playback ran dry mid-prompt for this long before careline's next audio arrived.
    Underrun(Duration),
    /// Something went wrong; the text is the kind (no call-specific detail, no digits).
    Error(String),
    /// The call is over: `true` if nothing went wrong.
    Finished { ok: bool },
}

/// What every call of a run shares.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub http: reqwest::Client,
    /// careline's base URL, without a trailing slash.
    pub base: Url,
    pub auth_token: Option<String>,
    pub signalling: KeySignalling,
    pub account_sid: String,
}

/// One call to place.
pub struct LoadCall<'a> {
    pub context: &'a CallContext,
    pub script: &'a DigitScript,
    /// Start the script again whenever it runs out.
    pub repeat: bool,
    /// The caller hangs up then, if careline has not ended the call before.
    pub hang_up_at: Instant,
    pub samples: &'a mpsc::UnboundedSender<Sample>,
}

impl LoadCall<'_> {
    /// Place the call and carry it to its end. Returns whether it went without an error.
    pub async fn run(self) -> bool {
        self.sample(Sample::Placed);
        let mut call = Running {
            call: &self,
            call_sid: random_sid("CA"),
            ok: true,
        };
        call.place().await;
        let ok = call.ok;
        self.sample(Sample::Finished { ok });
        ok
    }

    fn sample(&self, sample: Sample) {
        // The run has stopped listening only once every call is over.
        let _ = self.samples.send(sample);
    }
}

struct Running<'a, 'b> {
    call: &'b LoadCall<'a>,
    call_sid: String,
    ok: bool,
}

/// What the playback simulation says about underruns, updated every 20 ms tick.
#[derive(Debug, Default)]
struct UnderrunWatch {
    /// The last mark playback reached was a `pace:` mark: careline is mid-prompt.
    mid_prompt: bool,
    was_playing: bool,
    dry_since: Option<Instant>,
}

impl UnderrunWatch {
    fn tick(&mut self, echoes: &[crate::caller::MarkEcho], playing: bool, now: Instant) {
        for echo in echoes {
            if echo.reason == EchoReason::Played {
                self.mid_prompt = echo.name.starts_with("pace:");
            }
        }
        if self.was_playing && !playing && self.mid_prompt {
            self.dry_since = Some(now);
        }
        self.was_playing = playing;
    }

    /// careline's audio arrived: an underrun in progress is over.
    fn audio(&mut self, now: Instant) -> Option<Duration> {
        self.was_playing = true;
        self.dry_since.take().map(|since| now - since)
    }

    /// A `clear` emptied the buffer on purpose.
    fn cleared(&mut self) {
        *self = UnderrunWatch::default();
    }
}

impl Running<'_, '_> {
    fn error(&mut self, kind: impl Into<String>) {
        self.ok = false;
        self.call.sample(Sample::Error(kind.into()));
    }

    /// Twilio's standard webhook parameters.
    fn params(&self, call_status: &str) -> Vec<(String, String)> {
        [
            ("AccountSid", self.call.context.account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", self.call_sid.as_str()),
            ("CallStatus", call_status),
            ("Called", "+15555550199"),
            ("Caller", "+15555550100"),
            ("Direction", "inbound"),
            ("From", "+15555550100"),
            ("To", "+15555550199"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    /// POST a signed form; the body if careline answered 2xx.
    async fn post(&self, url: &Url, params: &[(String, String)]) -> Result<String, &'static str> {
        let context = self.call.context;
        let mut request = context.http.post(url.clone()).form(params);
        if let Some(token) = &context.auth_token {
            request = request.header(SIGNATURE_HEADER, signature(token, url.as_str(), params));
        }
        let response = request.send().await.map_err(|error| {
            if error.is_timeout() {
                "webhook timed out (15 s)"
            } else {
                "webhook request failed"
            }
        })?;
        if !response.status().is_success() {
            return Err(match response.status().as_u16() {
                403 => "webhook refused: HTTP 403 (signature)",
                400..=499 => "webhook refused: HTTP 4xx",
                _ => "webhook failed: HTTP 5xx",
            });
        }
        response
            .text()
            .await
            .map_err(|_| "webhook response unreadable")
    }

    async fn place(&mut self) {
        let base = &self.call.context.base;
        let Ok(voice) = base.join("twilio/voice") else {
            return self.error("base URL cannot take /twilio/voice");
        };
        let body = match self.post(&voice, &self.params("ringing")).await {
            Ok(body) => body,
            Err(kind) => return self.error(kind),
        };
        let Ok(verbs) = twiml::parse(&body) else {
            return self.error("voice webhook answered with unusable TwiML");
        };
        let Some(Verb::ConnectStream {
            url,
            parameters,
            action,
        }) = verbs.into_iter().next()
        else {
            return self.error("voice webhook did not answer with <Connect><Stream>");
        };
        let Ok(stream_url) = voice.join(&url) else {
            return self.error("<Stream url> is not a URL");
        };
        let careline_hung_up = self.stream(&stream_url, parameters).await;
        if careline_hung_up && let Some(action) = action {
            match voice.join(&action) {
                Ok(next) => {
                    if let Err(kind) = self.post(&next, &self.params("in-progress")).await {
                        self.error(format!("<Connect action>: {kind}"));
                    }
                }
                Err(_) => self.error("<Connect action> is not a URL"),
            }
        }
        let Ok(status) = base.join("twilio/status") else {
            return;
        };
        let mut params = self.params("completed");
        params.push((
            "CallbackSource".to_owned(),
            "call-progress-events".to_owned(),
        ));
        if let Err(kind) = self.post(&status, &params).await {
            self.error(format!("status callback: {kind}"));
        }
    }

    /// Stay on the media stream until one side ends it; `true` if careline ended it normally.
    async fn stream(&mut self, url: &Url, parameters: Vec<(String, String)>) -> bool {
        let context = self.call.context;
        let ids = StreamIds::for_call(&context.account_sid, &self.call_sid);
        let mut client = match MediaStreamClient::connect(
            url.as_str(),
            context.auth_token.as_deref(),
            ids,
        )
        .await
        {
            Ok(client) => client,
            Err(CallerError::HandshakeRefused { status, .. }) => {
                self.error(format!("media stream upgrade refused: HTTP {status}"));
                return false;
            }
            Err(_) => {
                self.error("media stream could not be opened");
                return false;
            }
        };
        client.set_keep_audio(false);
        let opened = async {
            client.send_connected().await?;
            client.send_start(parameters.into_iter().collect()).await
        };
        if opened.await.is_err() {
            self.error("media stream failed before `start`");
            return false;
        }
        self.call.sample(Sample::StreamOpened);
        let careline_hung_up = self.converse(&mut client).await;
        self.call.sample(Sample::StreamClosed);
        careline_hung_up
    }

    async fn converse(&mut self, client: &mut MediaStreamClient) -> bool {
        let script = self.call.script;
        let mut keypad = Keypad::new(script.clone());
        keypad.stream_started();
        let mut pressed_at: Option<Instant> = None;
        let mut underruns = UnderrunWatch::default();
        loop {
            if Instant::now() >= self.call.hang_up_at {
                self.hang_up(client).await;
                return false;
            }
            match client.next_event().await {
                Heard::Tick {
                    echoes, playing, ..
                } => {
                    underruns.tick(&echoes, playing, Instant::now());
                    if self.call.repeat && keypad.remaining_steps() == 0 {
                        for step in &script.steps {
                            keypad.push(step.clone());
                        }
                    }
                    match keypad.tick(playing) {
                        Some(KeypadAction::Press { key, .. }) => {
                            let sent = client.press(key, self.call.context.signalling).await;
                            // A failed send means the stream is going; the next event says how.
                            pressed_at = sent.is_ok().then(Instant::now);
                        }
                        Some(KeypadAction::HangUp) => {
                            self.hang_up(client).await;
                            return false;
                        }
                        None => {}
                    }
                }
                Heard::Audio { .. } => {
                    let now = Instant::now();
                    keypad.audio_arrived();
                    if let Some(at) = pressed_at.take() {
                        self.call.sample(Sample::KeyToPrompt(now - at));
                    }
                    if let Some(gap) = underruns.audio(now) {
                        self.call.sample(Sample::Underrun(gap));
                    }
                }
                Heard::MarkEchoed(_) => {}
                Heard::Cleared(_) => underruns.cleared(),
                Heard::ProtocolError(error) => self.error(protocol_error_kind(&error)),
                Heard::Closed(close) => {
                    if close.by_server && close.code == Some(1000) {
                        return true;
                    }
                    match close.code {
                        Some(code) => {
                            self.error(format!("careline closed the stream with code {code}"))
                        }
                        None => self.error("careline's stream ended without a close frame"),
                    }
                    return false;
                }
            }
        }
    }

    async fn hang_up(&mut self, client: &mut MediaStreamClient) {
        match client.hang_up().await {
            Ok(close) if close.code.is_none_or(|code| code == 1000) => {}
            Ok(_) => self.error("careline answered the hang-up with an error close code"),
            Err(_) => self.error("hang-up failed: the stream was already gone"),
        }
    }
}

/// A protocol error's kind: its text with numbers blanked, so that errors that differ only in
/// a byte count or a sequence number are counted together.
pub fn protocol_error_kind(error: &str) -> String {
    let mut kind = String::from("protocol: ");
    let mut in_number = false;
    for character in error.chars().take(120) {
        if character.is_ascii_digit() {
            if !in_number {
                kind.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            kind.push(character);
        }
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::MarkEcho;

    fn played(name: &str) -> MarkEcho {
        MarkEcho {
            name: name.to_owned(),
            reason: EchoReason::Played,
        }
    }

    #[test]
    fn running_dry_after_a_pace_mark_is_an_underrun_and_after_a_prompt_mark_is_not() {
        let start = Instant::now();
        let at = |millis| start + Duration::from_millis(millis);
        let mut watch = UnderrunWatch::default();
        assert_eq!(watch.audio(at(0)), None);
        watch.tick(&[], true, at(20));
        watch.tick(&[played("pace:1")], false, at(40));
        assert_eq!(watch.audio(at(100)), Some(Duration::from_millis(60)));
        watch.tick(&[played("prompt:en/welcome:2")], false, at(120));
        assert_eq!(
            watch.audio(at(500)),
            None,
            "a prompt that ended is no underrun"
        );
    }

    #[test]
    fn a_clear_is_not_an_underrun() {
        let start = Instant::now();
        let mut watch = UnderrunWatch::default();
        watch.audio(start);
        watch.tick(&[played("pace:1")], true, start);
        watch.cleared();
        watch.tick(&[], false, start + Duration::from_millis(20));
        assert_eq!(watch.audio(start + Duration::from_millis(40)), None);
    }

    #[test]
    fn protocol_errors_that_differ_in_numbers_count_as_one_kind() {
        assert_eq!(
            protocol_error_kind("careline sent a binary frame of 12 bytes"),
            protocol_error_kind("careline sent a binary frame of 3400 bytes"),
        );
    }
}
