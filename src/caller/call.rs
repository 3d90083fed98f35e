//! A whole call, as Twilio would place it: the voice webhook, the TwiML it returns, each media
//! stream, `<Redirect>`s, `<Dial>`s, and the final status callback.
//!
//! [`place_call`] is what `careline call` and the end-to-end tests use. Failures before the call
//! is answered (careline unreachable, a refused or unreadable voice webhook) are errors; anything
//! careline gets wrong after that is recorded in the [`CallReport`] and ends the call the way
//! Twilio would. [`answer_outbound_call`] is the other direction: the patient answering a call
//! careline asked Twilio's REST API to place (a callback), from its `Url` to its
//! `StatusCallback`, `<Gather>` and `<Play>` included.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use reqwest::Url;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::audio::{InboundAudio, KeySignalling};
use super::error::CallerError;
use super::playback::MarkEcho;
use super::script::{DigitScript, GatherInput, Keypad, KeypadAction, Step};
use super::stream::{Heard, MediaStreamClient, StreamIds, random_sid};
use super::transcript::{
    CallEnd, CallReport, DialStatus, PromptMark, StreamClose, TranscriptEntry,
};
use crate::media::MULAW_SILENCE;
use crate::twilio::signature::{SIGNATURE_HEADER, signature};
use crate::twilio::twiml::{self, Method, Verb};

/// Twilio gives up on a webhook after 15 seconds.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);
/// Twilio's default `<Dial timeout>`.
const DEFAULT_DIAL_TIMEOUT_SECS: u32 = 30;

/// How the far end answers a `<Dial>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialBehaviour {
    /// Answer after `after`, talk for `talk`, then hang up (`DialCallStatus=completed`).
    Answer { after: Duration, talk: Duration },
    /// Ring until the Dial's `timeout` (`no-answer`).
    NoAnswer,
    /// `busy` at once.
    Busy,
    /// `failed` at once.
    Failed,
}

impl Default for DialBehaviour {
    fn default() -> Self {
        DialBehaviour::Answer {
            after: Duration::from_secs(1),
            talk: Duration::from_secs(5),
        }
    }
}

/// Everything about the call to place. Build with [`CallOptions::new`] and the setters.
pub struct CallOptions {
    /// careline's base URL, e.g. `http://127.0.0.1:8080`; webhooks go to `{base}/twilio/...`.
    pub base_url: String,
    /// The call's `CallSid`; a fresh random one if unset.
    pub call_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub account_sid: String,
    /// Sign every request like Twilio when set.
    pub auth_token: Option<String>,
    pub script: DigitScript,
    /// More steps as they come (interactive mode).
    pub live_steps: Option<mpsc::UnboundedReceiver<Step>>,
    /// The caller hangs up once the call has lasted this long.
    pub max_duration: Duration,
    /// One per `<Dial>`, in order; the last one repeats. Empty: [`DialBehaviour::default`].
    pub dial: Vec<DialBehaviour>,
    pub key_signalling: KeySignalling,
    /// The caller's voice on the first stream (silence if unset).
    pub inbound_audio: Option<Box<dyn InboundAudio>>,
    /// Receives each transcript entry as it happens.
    pub observer: Option<mpsc::UnboundedSender<TranscriptEntry>>,
}

impl CallOptions {
    pub fn new(base_url: impl Into<String>) -> Self {
        CallOptions {
            base_url: base_url.into(),
            call_sid: None,
            from: "+15555550100".to_owned(),
            to: "+15555550199".to_owned(),
            account_sid: random_sid("AC"),
            auth_token: None,
            script: DigitScript::default(),
            live_steps: None,
            max_duration: Duration::from_secs(60),
            dial: Vec::new(),
            key_signalling: KeySignalling::Events,
            inbound_audio: None,
            observer: None,
        }
    }

    /// Use this `CallSid` (tests that follow the call in careline's API need to know it).
    pub fn call_sid(mut self, call_sid: impl Into<String>) -> Self {
        self.call_sid = Some(call_sid.into());
        self
    }

    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = from.into();
        self
    }

    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to = to.into();
        self
    }

    pub fn account_sid(mut self, account_sid: impl Into<String>) -> Self {
        self.account_sid = account_sid.into();
        self
    }

    pub fn auth_token(mut self, auth_token: impl Into<String>) -> Self {
        self.auth_token = Some(auth_token.into());
        self
    }

    pub fn digits(mut self, script: DigitScript) -> Self {
        self.script = script;
        self
    }

    pub fn live_steps(mut self, steps: mpsc::UnboundedReceiver<Step>) -> Self {
        self.live_steps = Some(steps);
        self
    }

    pub fn max_duration(mut self, max_duration: Duration) -> Self {
        self.max_duration = max_duration;
        self
    }

    pub fn dial(mut self, outcomes: Vec<DialBehaviour>) -> Self {
        self.dial = outcomes;
        self
    }

    pub fn key_signalling(mut self, signalling: KeySignalling) -> Self {
        self.key_signalling = signalling;
        self
    }

    pub fn inbound_audio(mut self, inbound: Box<dyn InboundAudio>) -> Self {
        self.inbound_audio = Some(inbound);
        self
    }

    pub fn observer(mut self, observer: mpsc::UnboundedSender<TranscriptEntry>) -> Self {
        self.observer = Some(observer);
        self
    }
}

/// Place a call against careline and carry it through to the end.
pub async fn place_call(options: CallOptions) -> Result<CallReport, CallerError> {
    let base = Url::parse(options.base_url.trim_end_matches('/')).map_err(|error| {
        CallerError::InvalidUrl {
            url: options.base_url.clone(),
            reason: error.to_string(),
        }
    })?;
    let http = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .build()
        .map_err(|source| CallerError::Http {
            url: options.base_url.clone(),
            source,
        })?;
    let mut call = Call::new(options, http);
    let voice_url = call.endpoint(&base, "/twilio/voice")?;
    let verbs = call
        .fetch_twiml(&voice_url, Method::Post, "ringing")
        .await?;
    call.carry_out(voice_url, verbs).await;
    call.post_status(&base).await;
    Ok(call.into_report())
}

/// A call careline placed through Twilio's REST API, as Twilio runs it once the far end picks
/// up: the `Url` and `StatusCallback` careline gave, and who answered.
#[derive(Debug, Clone)]
pub struct OutboundAnswer {
    pub url: String,
    pub status_callback: Option<String>,
    /// Twilio's `AnsweredBy`: `human`, `machine_start`, `fax`, `unknown`...
    pub answered_by: String,
}

/// Answer a call careline placed (see [`OutboundAnswer`]): fetch its TwiML with `AnsweredBy`,
/// carry it out (a `<Gather>` takes the script's next step as its keys), then report the end
/// to the `StatusCallback`. `options.base_url` is only used to resolve relative URLs; `from`
/// and `to` are the desk's and the patient's numbers as Twilio would send them.
pub async fn answer_outbound_call(
    options: CallOptions,
    answer: OutboundAnswer,
) -> Result<CallReport, CallerError> {
    let http = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .build()
        .map_err(|source| CallerError::Http {
            url: answer.url.clone(),
            source,
        })?;
    let parse = |url: &str| {
        Url::parse(url).map_err(|error| CallerError::InvalidUrl {
            url: url.to_owned(),
            reason: error.to_string(),
        })
    };
    let answer_url = parse(&answer.url)?;
    let status_url = answer.status_callback.as_deref().map(parse).transpose()?;
    let mut call = Call::new(options, http);
    call.outbound = true;
    let mut params = call.call_params("in-progress");
    params.push(("AnsweredBy".to_owned(), answer.answered_by.clone()));
    let verbs = call
        .request_twiml(&answer_url, Method::Post, params)
        .await?;
    call.carry_out(answer_url, verbs).await;
    if let Some(url) = status_url {
        call.post_status_to(url).await;
    }
    Ok(call.into_report())
}

/// What a stream's end means for the TwiML.
enum StreamOutcome {
    /// careline closed it, or its connection broke: Twilio runs what follows `</Connect>`.
    ServerClosed,
    CallerHungUp,
    /// The stream could not be opened; Twilio moves on as if it had ended.
    Failed,
}

struct Call {
    options: CallOptions,
    http: reqwest::Client,
    call_sid: String,
    started: Instant,
    deadline: Instant,
    keypad: Keypad,
    dials_done: usize,
    /// Since when the caller has heard nothing from careline; `None` while audio plays or a
    /// dialed party is on the line.
    silent_since: Option<Instant>,
    /// careline placed the call (a callback): Twilio says `Direction=outbound-api`.
    outbound: bool,
    report: CallReport,
}

impl Call {
    fn new(mut options: CallOptions, http: reqwest::Client) -> Self {
        let started = Instant::now();
        let call_sid = options.call_sid.clone().unwrap_or_else(|| random_sid("CA"));
        let keypad = Keypad::new(std::mem::take(&mut options.script));
        let report = CallReport {
            call_sid: call_sid.clone(),
            account_sid: options.account_sid.clone(),
            stream_sids: Vec::new(),
            transcript: Vec::new(),
            protocol_errors: Vec::new(),
            stream_closes: Vec::new(),
            audio: Vec::new(),
            ended: CallEnd::TwimlEnded,
            unsent_steps: 0,
            duration: Duration::ZERO,
            longest_silence: Duration::ZERO,
        };
        Call {
            deadline: started + options.max_duration,
            options,
            http,
            call_sid,
            started,
            keypad,
            dials_done: 0,
            silent_since: Some(started),
            outbound: false,
            report,
        }
    }

    fn note(&mut self, entry: TranscriptEntry) {
        if let Some(observer) = &self.options.observer {
            let _ = observer.send(entry.clone());
        }
        self.report.transcript.push(entry);
    }

    fn protocol_error(&mut self, error: String) {
        tracing::warn!(call_sid = %self.call_sid, "protocol error: {error}");
        self.report.protocol_errors.push(error);
    }

    fn into_report(mut self) -> CallReport {
        self.silence_ends();
        self.report.unsent_steps = self.keypad.remaining_steps();
        self.report.duration = self.started.elapsed();
        self.report
    }

    /// Whatever the caller was hearing nothing of is over (audio arrived, someone answered, the
    /// call ended): count how long it lasted.
    fn silence_ends(&mut self) {
        if let Some(since) = self.silent_since.take() {
            self.report.longest_silence = self.report.longest_silence.max(since.elapsed());
        }
    }

    /// One 20 ms tick of what the caller heard.
    fn heard(&mut self, frame: &[u8]) {
        if frame.iter().all(|&byte| byte == MULAW_SILENCE) {
            self.silent_since.get_or_insert_with(Instant::now);
        } else {
            self.silence_ends();
        }
    }

    fn endpoint(&self, base: &Url, path: &str) -> Result<Url, CallerError> {
        let joined = format!("{}{path}", base.as_str().trim_end_matches('/'));
        Url::parse(&joined).map_err(|error| CallerError::InvalidUrl {
            url: joined,
            reason: error.to_string(),
        })
    }

    /// Twilio's standard request parameters, as sent with every voice webhook.
    fn call_params(&self, call_status: &str) -> Vec<(String, String)> {
        let options = &self.options;
        let mut params: Vec<(String, String)> = [
            ("AccountSid", options.account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", self.call_sid.as_str()),
            ("CallStatus", call_status),
            ("Called", options.to.as_str()),
            ("Caller", options.from.as_str()),
            (
                "Direction",
                if self.outbound {
                    "outbound-api"
                } else {
                    "inbound"
                },
            ),
            ("From", options.from.as_str()),
            ("To", options.to.as_str()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        // Twilio adds the caller's and callee's geography, often empty; signatures cover them.
        for place in ["Called", "Caller", "From", "To"] {
            for (field, value) in [("City", ""), ("State", ""), ("Zip", ""), ("Country", "US")] {
                params.push((format!("{place}{field}"), value.to_owned()));
            }
        }
        params
    }

    /// Request a TwiML document the way Twilio does: signed, form-encoded POST (or GET with the
    /// parameters in the query string).
    async fn request_twiml(
        &self,
        url: &Url,
        method: Method,
        params: Vec<(String, String)>,
    ) -> Result<Vec<Verb>, CallerError> {
        let request = match method {
            Method::Post => {
                let mut request = self.http.post(url.clone()).form(&params);
                if let Some(token) = &self.options.auth_token {
                    request =
                        request.header(SIGNATURE_HEADER, signature(token, url.as_str(), &params));
                }
                request
            }
            Method::Get => {
                let mut url = url.clone();
                url.query_pairs_mut().extend_pairs(&params);
                let mut request = self.http.get(url.clone());
                if let Some(token) = &self.options.auth_token {
                    request = request.header(SIGNATURE_HEADER, signature(token, url.as_str(), &[]));
                }
                request
            }
        };
        let http_error = |source| CallerError::Http {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(http_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(CallerError::WebhookStatus {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !is_twiml_content_type(&content_type) {
            return Err(CallerError::ContentType {
                url: url.to_string(),
                content_type,
            });
        }
        let body = response.text().await.map_err(http_error)?;
        twiml::parse(&body).map_err(|source| CallerError::Twiml {
            url: url.to_string(),
            source,
        })
    }

    async fn fetch_twiml(
        &mut self,
        url: &Url,
        method: Method,
        call_status: &str,
    ) -> Result<Vec<Verb>, CallerError> {
        let params = self.call_params(call_status);
        self.request_twiml(url, method, params).await
    }

    /// Fetch the next document after the current one; a failure ends the call.
    async fn follow(
        &mut self,
        url: Url,
        method: Method,
        extra: Vec<(String, String)>,
    ) -> Option<(Url, Vec<Verb>)> {
        let mut params = self.call_params("in-progress");
        params.extend(extra);
        match self.request_twiml(&url, method, params).await {
            Ok(verbs) => Some((url, verbs)),
            Err(error) => {
                let error = error.to_string();
                self.protocol_error(error.clone());
                self.report.ended = CallEnd::Failed(error);
                None
            }
        }
    }

    fn resolve(&mut self, document: &Url, target: &str) -> Option<Url> {
        match document.join(target) {
            Ok(url) => Some(url),
            Err(error) => {
                let error = format!("TwiML points at `{target}`, which is not a URL: {error}");
                self.protocol_error(error.clone());
                self.report.ended = CallEnd::Failed(error);
                None
            }
        }
    }

    /// Run TwiML until the call ends.
    async fn carry_out(&mut self, mut document: Url, verbs: Vec<Verb>) {
        let mut verbs: VecDeque<Verb> = verbs.into();
        loop {
            let Some(verb) = verbs.pop_front() else {
                self.report.ended = CallEnd::TwimlEnded;
                return;
            };
            self.note(TranscriptEntry::Twiml(verb.summary()));
            let next = match verb {
                Verb::ConnectStream {
                    url,
                    parameters,
                    action,
                } => {
                    let Some(stream_url) = self.resolve(&document, &url) else {
                        return;
                    };
                    let outcome = self.stream(stream_url, parameters).await;
                    // Whatever played is over: silence until the next audio.
                    self.silent_since.get_or_insert_with(Instant::now);
                    match outcome {
                        StreamOutcome::CallerHungUp => {
                            self.report.ended = CallEnd::CallerHungUp;
                            return;
                        }
                        StreamOutcome::ServerClosed | StreamOutcome::Failed => match action {
                            Some(action) => {
                                let Some(url) = self.resolve(&document, &action) else {
                                    return;
                                };
                                Some((url, Method::Post, Vec::new()))
                            }
                            None => None,
                        },
                    }
                }
                Verb::Redirect { url, method } => {
                    let Some(url) = self.resolve(&document, &url) else {
                        return;
                    };
                    Some((url, method, Vec::new()))
                }
                Verb::Hangup | Verb::Reject { .. } => {
                    self.report.ended = CallEnd::Hangup;
                    return;
                }
                Verb::Dial {
                    action,
                    timeout,
                    target,
                    answered_url,
                    ..
                } => {
                    let answered_url = answered_url.and_then(|url| self.resolve(&document, &url));
                    // Ringing and talking are not careline's silence.
                    self.silence_ends();
                    let (status, talked) = self.dial(timeout, answered_url.as_ref()).await;
                    self.silent_since = Some(Instant::now());
                    self.note(TranscriptEntry::Dialed { target, status });
                    if Instant::now() >= self.deadline {
                        self.note(TranscriptEntry::HungUp);
                        self.report.ended = CallEnd::CallerHungUp;
                        return;
                    }
                    match action {
                        Some(action) => {
                            let Some(url) = self.resolve(&document, &action) else {
                                return;
                            };
                            let mut extra = vec![
                                ("DialCallStatus".to_owned(), status.as_str().to_owned()),
                                ("DialCallSid".to_owned(), random_sid("CA")),
                            ];
                            if status == DialStatus::Completed {
                                extra.push((
                                    "DialCallDuration".to_owned(),
                                    talked.as_secs().to_string(),
                                ));
                            }
                            Some((url, Method::Post, extra))
                        }
                        None => None,
                    }
                }
                Verb::Pause { length } => {
                    let until = Instant::now() + Duration::from_secs(u64::from(length));
                    if until >= self.deadline {
                        tokio::time::sleep_until(self.deadline).await;
                        self.note(TranscriptEntry::HungUp);
                        self.report.ended = CallEnd::CallerHungUp;
                        return;
                    }
                    tokio::time::sleep_until(until).await;
                    None
                }
                Verb::Play { url } => {
                    self.hear(&document, &url).await;
                    None
                }
                Verb::Gather {
                    action,
                    num_digits,
                    plays,
                    ..
                } => {
                    for url in &plays {
                        self.hear(&document, url).await;
                    }
                    match self.keypad.gather() {
                        GatherInput::HangUp => {
                            self.note(TranscriptEntry::HungUp);
                            self.report.ended = CallEnd::CallerHungUp;
                            return;
                        }
                        // Twilio goes on to the next verb.
                        GatherInput::Nothing => None,
                        GatherInput::Keys(keys) => {
                            let limit = num_digits.map_or(usize::MAX, |n| n as usize);
                            let keys: Vec<char> = keys.into_iter().take(limit).collect();
                            for &digit in &keys {
                                self.note(TranscriptEntry::SentDigit {
                                    digit,
                                    in_entry: keys.len() > 1,
                                });
                            }
                            // Without an action Twilio posts back to the document itself.
                            let target = action.unwrap_or_else(|| document.to_string());
                            let Some(url) = self.resolve(&document, &target) else {
                                return;
                            };
                            let digits: String = keys.into_iter().collect();
                            Some((url, Method::Post, vec![("Digits".to_owned(), digits)]))
                        }
                    }
                }
                Verb::Record { .. } | Verb::Say { .. } => None,
            };
            if let Some((url, method, extra)) = next {
                match self.follow(url, method, extra).await {
                    Some((url, next_verbs)) => {
                        document = url;
                        verbs = next_verbs.into();
                    }
                    None => return,
                }
            }
        }
    }

    /// Fetch a `<Play>`'s audio as Twilio does; it must be a WAV careline serves.
    async fn hear(&mut self, document: &Url, target: &str) {
        let Some(url) = self.resolve(document, target) else {
            return;
        };
        let fetched = async {
            let response = self
                .http
                .get(url.clone())
                .send()
                .await
                .map_err(|error| error.to_string())?;
            if !response.status().is_success() {
                return Err(format!("answered HTTP {}", response.status().as_u16()));
            }
            let bytes = response.bytes().await.map_err(|error| error.to_string())?;
            let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
                .map_err(|error| format!("is not a WAV: {error}"))?;
            let spec = reader.spec();
            let frames = u64::from(reader.duration());
            Ok(frames * 1000 / u64::from(spec.sample_rate.max(1)))
        };
        match fetched.await {
            Ok(duration_ms) => self.note(TranscriptEntry::Heard {
                url: url.to_string(),
                duration_ms,
            }),
            Err(problem) => self.protocol_error(format!("<Play> {url} {problem}")),
        }
    }

    /// Ring the far end as the options say; returns the status and how long they talked. An
    /// answer is reported to the noun's `statusCallback` first, as Twilio does.
    async fn dial(
        &mut self,
        timeout: Option<u32>,
        answered_url: Option<&Url>,
    ) -> (DialStatus, Duration) {
        let behaviour = self
            .options
            .dial
            .get(self.dials_done)
            .or(self.options.dial.last())
            .copied()
            .unwrap_or_default();
        self.dials_done += 1;
        let ring_limit =
            Duration::from_secs(u64::from(timeout.unwrap_or(DEFAULT_DIAL_TIMEOUT_SECS)));
        match behaviour {
            DialBehaviour::Answer { after, .. } if after >= ring_limit => {
                self.sleep_within_call(ring_limit).await;
                (DialStatus::NoAnswer, Duration::ZERO)
            }
            DialBehaviour::Answer { after, talk } => {
                self.sleep_within_call(after).await;
                if let Some(url) = answered_url {
                    self.post_answered(url).await;
                }
                let talked_from = Instant::now();
                self.sleep_within_call(talk).await;
                (DialStatus::Completed, talked_from.elapsed())
            }
            DialBehaviour::NoAnswer => {
                self.sleep_within_call(ring_limit).await;
                (DialStatus::NoAnswer, Duration::ZERO)
            }
            DialBehaviour::Busy => (DialStatus::Busy, Duration::ZERO),
            DialBehaviour::Failed => (DialStatus::Failed, Duration::ZERO),
        }
    }

    async fn sleep_within_call(&self, duration: Duration) {
        tokio::time::sleep_until((Instant::now() + duration).min(self.deadline)).await;
    }

    /// Open one media stream and stay on it until one side ends it.
    async fn stream(&mut self, url: Url, parameters: Vec<(String, String)>) -> StreamOutcome {
        if url.query().is_some() {
            self.protocol_error(format!(
                "<Stream url> `{url}` has a query string, which Twilio does not support; use <Parameter>s"
            ));
        }
        if !matches!(url.scheme(), "wss" | "ws") {
            self.protocol_error(format!(
                "<Stream url> `{url}` is not a wss:// URL (Twilio error 31922)"
            ));
            return StreamOutcome::Failed;
        }
        let ids = StreamIds::for_call(&self.options.account_sid, &self.call_sid);
        self.report.stream_sids.push(ids.stream_sid.clone());
        let token = self.options.auth_token.clone();
        let mut client = match MediaStreamClient::connect(url.as_str(), token.as_deref(), ids).await
        {
            Ok(client) => client,
            Err(error) => return self.stream_failed(error),
        };
        if let Some(inbound) = self.options.inbound_audio.take() {
            client.set_inbound_audio(inbound);
        }
        let custom_parameters: BTreeMap<String, String> = parameters.into_iter().collect();
        let opened = async {
            client.send_connected().await?;
            client.send_start(custom_parameters).await
        };
        if let Err(error) = opened.await {
            return self.stream_failed(error);
        }
        self.keypad.stream_started();
        loop {
            if Instant::now() >= self.deadline {
                return self.hang_up(&mut client).await;
            }
            match client.next_event().await {
                Heard::Tick {
                    heard,
                    echoes,
                    playing,
                } => {
                    self.heard(&heard);
                    self.report.audio.extend_from_slice(&heard);
                    self.echoes(echoes);
                    self.take_live_steps();
                    match self.keypad.tick(playing) {
                        Some(KeypadAction::Press { key, in_entry }) => {
                            let signalling = self.options.key_signalling;
                            match client.press(key, signalling).await {
                                Ok(()) => self.note(TranscriptEntry::SentDigit {
                                    digit: key,
                                    in_entry,
                                }),
                                // The socket is going away; the next event says how.
                                Err(error) => tracing::debug!("key not sent: {error}"),
                            }
                        }
                        Some(KeypadAction::HangUp) => return self.hang_up(&mut client).await,
                        None => {}
                    }
                }
                Heard::Audio { .. } => self.keypad.audio_arrived(),
                Heard::MarkEchoed(echo) => self.echoes(vec![echo]),
                Heard::Cleared(echoes) => self.echoes(echoes),
                Heard::ProtocolError(error) => self.protocol_error(error),
                Heard::Closed(close) => {
                    let entry = if close.broken {
                        TranscriptEntry::StreamLost
                    } else {
                        TranscriptEntry::StreamClosedByServer
                    };
                    self.report.stream_closes.push(close);
                    self.note(entry);
                    return StreamOutcome::ServerClosed;
                }
            }
        }
    }

    /// The stream could not be opened or started. A lost connection (the node is gone or
    /// draining) is how Twilio sees a node go away, not careline breaking the protocol;
    /// anything else (a 403, a bad URL) is a protocol error. Either way Twilio moves on.
    fn stream_failed(&mut self, error: CallerError) -> StreamOutcome {
        let broken = error.is_connection_lost();
        self.report.stream_closes.push(StreamClose {
            code: None,
            reason: error.to_string(),
            by_server: true,
            broken,
        });
        if broken {
            self.note(TranscriptEntry::StreamLost);
        } else {
            self.protocol_error(format!("could not open the media stream: {error}"));
        }
        StreamOutcome::Failed
    }

    fn take_live_steps(&mut self) {
        if let Some(steps) = &mut self.options.live_steps {
            while let Ok(step) = steps.try_recv() {
                self.keypad.push(step);
            }
        }
    }

    fn echoes(&mut self, echoes: Vec<MarkEcho>) {
        for echo in echoes {
            match PromptMark::parse(&echo.name) {
                Ok(Some(prompt)) => {
                    self.note(TranscriptEntry::from_prompt_echo(prompt, echo.reason));
                }
                Ok(None) => {}
                Err(error) => self.protocol_error(error.to_string()),
            }
        }
    }

    async fn hang_up(&mut self, client: &mut MediaStreamClient) -> StreamOutcome {
        let close = match client.hang_up().await {
            Ok(close) => close,
            Err(error) => StreamClose {
                code: None,
                reason: error.to_string(),
                by_server: false,
                broken: false,
            },
        };
        self.report.stream_closes.push(close);
        self.note(TranscriptEntry::HungUp);
        StreamOutcome::CallerHungUp
    }

    /// The dialed leg's `answered` status callback: its own CallSid, the caller's as parent.
    async fn post_answered(&mut self, url: &Url) {
        let params: Vec<(String, String)> = [
            ("AccountSid", self.options.account_sid.clone()),
            ("CallSid", random_sid("CA")),
            ("ParentCallSid", self.call_sid.clone()),
            ("CallStatus", "in-progress".to_owned()),
            ("CallbackSource", "call-progress-events".to_owned()),
            ("Direction", "outbound-dial".to_owned()),
            ("SequenceNumber", "0".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        let mut request = self.http.post(url.clone()).form(&params);
        if let Some(token) = &self.options.auth_token {
            request = request.header(SIGNATURE_HEADER, signature(token, url.as_str(), &params));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => self.protocol_error(format!(
                "{url} answered the dialed leg's status callback with HTTP {}",
                response.status().as_u16()
            )),
            Err(error) => {
                self.protocol_error(format!("answered callback to {url} failed: {error}"))
            }
        }
    }

    /// The call status callback: careline learns the call is over.
    async fn post_status(&mut self, base: &Url) {
        match self.endpoint(base, "/twilio/status") {
            Ok(url) => self.post_status_to(url).await,
            Err(error) => self.protocol_error(error.to_string()),
        }
    }

    /// The call status callback to `url`.
    async fn post_status_to(&mut self, url: Url) {
        let mut params = self.call_params("completed");
        params.push((
            "CallDuration".to_owned(),
            self.started.elapsed().as_secs().to_string(),
        ));
        params.push((
            "CallbackSource".to_owned(),
            "call-progress-events".to_owned(),
        ));
        params.push(("SequenceNumber".to_owned(), "0".to_owned()));
        params.push((
            "Timestamp".to_owned(),
            jiff::fmt::rfc2822::to_string(
                &jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC),
            )
            .unwrap_or_default(),
        ));
        let mut request = self.http.post(url.clone()).form(&params);
        if let Some(token) = &self.options.auth_token {
            request = request.header(SIGNATURE_HEADER, signature(token, url.as_str(), &params));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => self.protocol_error(format!(
                "{url} answered the status callback with HTTP {}",
                response.status().as_u16()
            )),
            Err(error) => self.protocol_error(format!("status callback to {url} failed: {error}")),
        }
    }
}

/// Whether Twilio would run a response of this type as TwiML.
fn is_twiml_content_type(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    ["text/xml", "application/xml", "text/html"]
        .iter()
        .any(|twiml| mime.eq_ignore_ascii_case(twiml))
}
