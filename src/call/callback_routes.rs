//! `POST /twilio/callback/*`: the webhooks of the calls careline places to return callback
//! requests ([`super::callback`]), and `GET /twilio/callback/prompt/{language}/{id}.wav`, the
//! prompt audio those calls `<Play>`.
//!
//! Every URL careline gives Twilio for an attempt names the request and the attempt
//! (`?id=…&attempt=N`), so any node answers, from the request in the store:
//!
//! - `answer` (the call's `Url`): a person (or an undecided detection) hears "this is the
//!   patient portal help desk returning your call; press 1" in the language they called in,
//!   inside a `<Gather numDigits="1">`, twice; a machine gets the short `callback_machine`
//!   message if `[callbacks] machine_message` is on, and the attempt ends.
//! - `connect` (the `<Gather>`'s action): `1` dials the agent reserved for the attempt;
//!   anything else, or nothing, ends the attempt (`no_response`) with an apology.
//! - `dial-status` (the `<Dial>`'s action and its answered callback): the agent answered
//!   (the request is done), the call ended (wrap-up), or the agent missed it (the miss counts
//!   for the agent; the patient hears an apology and is called again later).
//! - `status` (the call's `StatusCallback`): no answer, busy, failed, or a hang-up before
//!   anything was decided ends the attempt; the agent is freed and the request retried.
//!
//! Each request is signed like every `/twilio/*` one. Nothing here logs the number called or
//! the key pressed.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::CallServices;
use super::callback::finish_attempt;
use super::routes::{TwilioForm, TwilioRequestError, dial_target, twiml_response};
use crate::config::system_prompts::{CALLBACK_MACHINE, CALLBACK_RETURNING, CALLBACK_SORRY};
use crate::dispatch::router::LeaveReason;
use crate::store::callback::queue_call_sid;
use crate::store::{
    AgentActivity, AttemptOutcome, CallbackAttempt, CallbackRequest, CallbackStatus, QueuedCall,
};
use crate::twilio::rest::AnsweredBy;
use crate::twilio::twiml::{self, Method, Verb};

/// How long the patient has to press 1 after the prompt, once per prompt (DESIGN: generous).
const GATHER_TIMEOUT_SECS: u32 = 7;
/// The agent's ring time when their queue is gone from the configuration.
const DEFAULT_AGENT_RING_SECS: u32 = 20;

/// The request and attempt a callback URL names.
struct AttemptRef {
    id: String,
    number: u32,
}

impl AttemptRef {
    fn of(uri: &Uri) -> Option<AttemptRef> {
        let mut id = None;
        let mut number = None;
        for (name, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            match name.as_ref() {
                "id" => id = Some(value.into_owned()),
                "attempt" => number = value.parse().ok(),
                _ => {}
            }
        }
        Some(AttemptRef {
            id: id.filter(|id| !id.is_empty())?,
            number: number?,
        })
    }

    /// `?id=…&attempt=N`, for the next URL of the same attempt.
    fn query(&self) -> String {
        format!(
            "id={}&attempt={}",
            form_urlencoded::byte_serialize(self.id.as_bytes()).collect::<String>(),
            self.number
        )
    }
}

fn not_ours() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "not a callback URL careline made (it needs ?id=…&attempt=N)",
    )
        .into_response()
}

/// The request and the attempt `at` names, if both exist.
async fn find(
    state: &CallServices,
    at: &AttemptRef,
) -> Result<Option<(CallbackRequest, CallbackAttempt)>, Response> {
    match state.store.callback(&at.id).await {
        Ok(Some(request)) => {
            let attempt = request
                .attempts
                .iter()
                .find(|attempt| attempt.number == at.number)
                .cloned();
            Ok(attempt.map(|attempt| (request, attempt)))
        }
        Ok(None) => Ok(None),
        Err(error) => {
            state.metrics.store_error();
            tracing::warn!(callback = %at.id, %error, "the callback request could not be read; Twilio asks again");
            Err(StatusCode::SERVICE_UNAVAILABLE.into_response())
        }
    }
}

/// The store did not answer a TwiML request: a second of silence, then Twilio asks again.
fn ask_again(state: &CallServices, path: &str, at: &AttemptRef) -> Response {
    twiml_response(twiml::pause_then_redirect(
        1,
        &format!("{}{path}?{}", state.public_base, at.query()),
    ))
}

/// A prompt careline serves for the call, in the request's language when there is audio for it.
fn prompt_url(state: &CallServices, request: &CallbackRequest, id: &str) -> String {
    let prompts = state.prompts();
    let language = if !request.language.is_empty() && prompts.get(&request.language, id).is_some() {
        request.language.clone()
    } else {
        state.flow().default_language.to_string()
    };
    format!(
        "{}/twilio/callback/prompt/{language}/{id}.wav",
        state.public_base
    )
}

/// An apology, then the end of the call.
fn sorry(state: &CallServices, request: &CallbackRequest) -> Response {
    twiml_response(twiml::render(&[
        Verb::Play {
            url: prompt_url(state, request, CALLBACK_SORRY),
        },
        Verb::Hangup,
    ]))
}

/// The queue entry the attempt's reservation was made for.
fn queue_entry(request: &CallbackRequest, node: &str) -> QueuedCall {
    QueuedCall {
        call_sid: queue_call_sid(&request.id),
        queue: request.queue.clone(),
        node: node.to_owned(),
        enqueued_at_ms: request.place_ms,
        priority: 0,
        verification_failed: request.verification_failed,
        callback_id: Some(request.id.clone()),
    }
}

/// `POST /twilio/callback/answer`: the patient's phone was answered.
pub async fn answer(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let Some(at) = AttemptRef::of(&uri) else {
        return Ok(not_ours());
    };
    let (request, attempt) = match find(&state, &at).await {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(twiml_response(twiml::hangup())),
        Err(_) => return Ok(ask_again(&state, "/twilio/callback/answer", &at)),
    };
    if attempt.outcome.is_some() || request.status != CallbackStatus::Pending {
        // Marked done meanwhile, or ended by a crossing webhook: nothing to say.
        return Ok(twiml_response(twiml::hangup()));
    }
    let answered_by = AnsweredBy::parse(form.get("AnsweredBy"));
    tracing::info!(callback = %at.id, attempt = at.number, ?answered_by, "callback call answered");
    if answered_by == AnsweredBy::Machine {
        finish_attempt(&state, &at.id, at.number, AttemptOutcome::Machine).await;
        let leave_message = state
            .running
            .current()
            .callbacks
            .as_ref()
            .is_some_and(|settings| settings.machine_message);
        let mut verbs = Vec::new();
        if leave_message {
            verbs.push(Verb::Play {
                url: prompt_url(&state, &request, CALLBACK_MACHINE),
            });
        }
        verbs.push(Verb::Hangup);
        return Ok(twiml_response(twiml::render(&verbs)));
    }
    let connect = format!(
        "{}/twilio/callback/connect?{}",
        state.public_base,
        at.query()
    );
    let gather = Verb::Gather {
        action: Some(connect.clone()),
        num_digits: Some(1),
        timeout: Some(GATHER_TIMEOUT_SECS),
        plays: vec![prompt_url(&state, &request, CALLBACK_RETURNING)],
    };
    // Twice, for someone who missed it; then on to `connect` with no key.
    Ok(twiml_response(twiml::render(&[
        gather.clone(),
        gather,
        Verb::Redirect {
            url: connect,
            method: Method::Post,
        },
    ])))
}

/// `POST /twilio/callback/connect`: the patient pressed a key (or none).
pub async fn connect(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let Some(at) = AttemptRef::of(&uri) else {
        return Ok(not_ours());
    };
    let (request, attempt) = match find(&state, &at).await {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(twiml_response(twiml::hangup())),
        Err(_) => return Ok(ask_again(&state, "/twilio/callback/connect", &at)),
    };
    if attempt.outcome.is_some() || request.status != CallbackStatus::Pending {
        return Ok(twiml_response(twiml::hangup()));
    }
    if form.get("Digits") != Some("1") {
        tracing::info!(callback = %at.id, attempt = at.number, "the patient did not ask to be connected");
        finish_attempt(&state, &at.id, at.number, AttemptOutcome::NoResponse).await;
        return Ok(sorry(&state, &request));
    }
    let Some(target) = dial_target(&state, &attempt.agent_id) else {
        tracing::warn!(callback = %at.id, agent = %attempt.agent_id, "the agent reserved for a callback can no longer be dialed");
        finish_attempt(&state, &at.id, at.number, AttemptOutcome::AgentMissed).await;
        return Ok(sorry(&state, &request));
    };
    let ring_secs =
        state
            .roster()
            .queue_configs
            .get(&request.queue)
            .map_or(DEFAULT_AGENT_RING_SECS, |queue| {
                crate::config::limits::QUEUE_RING_TIMEOUT_SECS
                    .clamp_u32(u32::try_from(queue.ring_timeout_secs).unwrap_or(u32::MAX))
            });
    let dial_status = format!(
        "{}/twilio/callback/dial-status?{}",
        state.public_base,
        at.query()
    );
    tracing::info!(callback = %at.id, attempt = at.number, agent = %attempt.agent_id, "the patient pressed 1: dialing the agent");
    Ok(twiml_response(twiml::dial(
        target,
        &dial_status,
        ring_secs,
        None,
        Some(&dial_status),
    )))
}

/// `POST /twilio/callback/dial-status`: the agent's leg answered, or the `<Dial>` ended.
pub async fn dial_status(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let Some(at) = AttemptRef::of(&uri) else {
        return Ok(not_ours());
    };
    let (request, attempt) = match find(&state, &at).await {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(twiml_response(twiml::hangup())),
        Err(response) => return Ok(response),
    };
    let call_sid = queue_call_sid(&request.id);
    let agent_id = attempt.agent_id.as_str();
    let now = state.router.now();
    let Some(outcome) = form.get("DialCallStatus") else {
        if form.get("CallStatus") == Some("in-progress") {
            tracing::info!(callback = %at.id, agent = %agent_id, "agent answered the callback");
            if let Err(error) = state.router.offer_answered(agent_id, &call_sid, now).await {
                tracing::warn!(%error, "the answer could not be recorded in the store");
            }
            finish_attempt(&state, &at.id, at.number, AttemptOutcome::Connected).await;
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    tracing::info!(callback = %at.id, outcome, "callback dial finished");
    match outcome {
        "completed" => {
            let talked = std::time::Duration::from_secs(
                form.get("DialCallDuration")
                    .and_then(|secs| secs.parse().ok())
                    .unwrap_or(0),
            );
            // The answered callback may not have come (a number without one): it counts now.
            if attempt.outcome.is_none() {
                finish_attempt(&state, &at.id, at.number, AttemptOutcome::Connected).await;
            }
            if let Err(error) = state
                .router
                .call_finished(agent_id, &call_sid, &request.queue, talked, now)
                .await
            {
                tracing::warn!(%error, "the end of the agent's call could not be recorded");
            }
            Ok(twiml_response(twiml::hangup()))
        }
        "no-answer" | "busy" | "failed" => {
            let entry = queue_entry(&request, state.router.node_id());
            if let Err(error) = state.router.offer_missed(agent_id, &entry, now).await {
                tracing::warn!(%error, "the missed offer could not be recorded");
            }
            finish_attempt(&state, &at.id, at.number, AttemptOutcome::AgentMissed).await;
            Ok(sorry(&state, &request))
        }
        // The patient hung up while the agent's phone rang.
        _ => {
            finish_attempt(&state, &at.id, at.number, AttemptOutcome::NoResponse).await;
            Ok(twiml_response(twiml::hangup()))
        }
    }
}

/// `POST /twilio/callback/status`: how the call to the patient ended.
pub async fn status(
    State(state): State<CallServices>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, TwilioRequestError> {
    let form = TwilioForm::parse(&state, &uri, &headers, &body)?;
    let Some(at) = AttemptRef::of(&uri) else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    let status = form.get("CallStatus").unwrap_or("");
    let outcome = match status {
        "no-answer" | "canceled" => AttemptOutcome::NoAnswer,
        "busy" => AttemptOutcome::Busy,
        "failed" => AttemptOutcome::Failed,
        // Answered, and over before the patient asked for the agent (or the agent answered,
        // which ended the attempt already).
        "completed" => AttemptOutcome::NoResponse,
        _ => return Ok(StatusCode::NO_CONTENT),
    };
    let (request, attempt) = match find(&state, &at).await {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(StatusCode::NO_CONTENT),
        Err(_) => return Ok(StatusCode::SERVICE_UNAVAILABLE),
    };
    tracing::info!(callback = %at.id, attempt = at.number, status, "callback call ended");
    let call_sid = queue_call_sid(&request.id);
    if attempt.outcome.is_none() {
        finish_attempt(&state, &at.id, at.number, outcome).await;
        return Ok(StatusCode::NO_CONTENT);
    }
    // Connected, and the dial's own status never came: the agent's call ends now.
    let talking = match state.store.agent(&attempt.agent_id).await {
        Ok(Some(agent)) => matches!(
            &agent.activity,
            AgentActivity::OnCall { call_sid: held, .. } if *held == call_sid
        ),
        _ => false,
    };
    if talking {
        let talked = std::time::Duration::from_secs(
            form.get("CallDuration")
                .and_then(|secs| secs.parse().ok())
                .unwrap_or(0),
        );
        let now = state.router.now();
        if let Err(error) = state
            .router
            .call_finished(&attempt.agent_id, &call_sid, &request.queue, talked, now)
            .await
        {
            tracing::warn!(%error, "the end of the agent's call could not be recorded");
        }
    } else {
        // Whatever was held for it goes: nothing waits for this call any more.
        state.router.leave(&call_sid, LeaveReason::Callback).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /twilio/callback/prompt/{language}/{id}.wav`: a callback prompt as a 16-bit 8 kHz WAV,
/// for Twilio's `<Play>`. Only the callback prompts, in a configured language: nothing else
/// of the library is served.
pub async fn prompt(
    State(state): State<CallServices>,
    Path((language, file)): Path<(String, String)>,
) -> Response {
    let Some(id) = file.strip_suffix(".wav") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if ![CALLBACK_RETURNING, CALLBACK_MACHINE, CALLBACK_SORRY].contains(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let prompts = state.prompts();
    let Some(audio) = prompts.get(&language, id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match wav_of(audio.mulaw()) {
        Ok(wav) => (
            [
                (header::CONTENT_TYPE, "audio/wav"),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            wav,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "a callback prompt could not be written as WAV");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// μ-law audio as a 16-bit PCM WAV at the wire's rate.
fn wav_of(mulaw: &[u8]) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: crate::media::SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + mulaw.len() * 2));
    {
        let mut writer = hound::WavWriter::new(&mut out, spec)?;
        for &byte in mulaw {
            writer.write_sample(crate::media::ulaw::decode(byte))?;
        }
        writer.finalize()?;
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_url_names_its_request_and_attempt() {
        let uri: Uri = "/twilio/callback/answer?id=CA1-17%3Ax&attempt=3"
            .parse()
            .expect("uri");
        let at = AttemptRef::of(&uri).expect("parsed");
        assert_eq!((at.id.as_str(), at.number), ("CA1-17:x", 3));
        assert_eq!(at.query(), "id=CA1-17%3Ax&attempt=3");
        let missing: Uri = "/twilio/callback/answer?id=CA1".parse().expect("uri");
        assert!(AttemptRef::of(&missing).is_none());
    }

    #[test]
    fn a_prompt_is_served_as_a_wav_of_the_same_length() {
        let wav = wav_of(&[0xFF; 8000]).expect("written");
        let reader = hound::WavReader::new(std::io::Cursor::new(wav)).expect("a WAV");
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.duration(), 8000);
    }
}
