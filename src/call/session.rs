//! One call's media stream: turns Media Streams messages into engine events and the engine's
//! actions into messages, with the call's timer.
//!
//! Generic over the message stream and sink, so tests drive it with channels and paused tokio
//! time. Bad input from the stream (invalid JSON, unknown events, a wrong `streamSid`, binary
//! frames) is logged without its payload and skipped; `media` or `dtmf` before `start`, an
//! oversized message, or a stream that does not present its call's token closes the stream
//! with the policy-violation code. Nothing here can affect another call.
//!
//! Twilio sends `media` all through a call (50 frames a second, silence included), so a
//! started stream from which nothing arrives for [`QUIET_STREAM_TIMEOUT`] has lost its caller:
//! it ends as a hang-up.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::Instrument;

use super::keypad::Keypad;
use super::player::{Outgoing, Player};
use super::record_notes::{Note, RecordNotes};
use super::registry::{CallRegistry, StreamClaim};
use crate::config::DtmfMode;
use crate::dispatch::Roster;
use crate::dispatch::router::{self, JoinRefusal, Router};
use crate::identity::IdentityService;
use crate::ivr::engine::CallbackOutcome;
use crate::ivr::engine::{HandOff, LeaveReason, QueueEvent, ResetOutcome, VerifyOutcome};
use crate::ivr::{Action, Call, Event, Flow, TimerId};
use crate::media::prompt::PromptLibrary;
use crate::media::recording::{NewVoicemail, VoicemailRecorder};
use crate::store::stats::{CallOutcomeStat, QueueStatEvent};
use crate::store::{CallStep, CallbackRequest, CallbackStatus, QueuedCall, Reservation, Store};
use crate::telemetry::Metrics;
use crate::twilio::wire::{MarkName, Outbound, OutboundMedia, StreamEvent, parse_stream_event};

/// Inbound frames a call counts before adding them to the node's metrics: one second's worth.
const FRAME_COUNT_BATCH: u64 = 50;
/// 20 ms frames in one 60 ms prompt chunk, for the outbound frame count.
const FRAMES_PER_CHUNK: u64 = 3;
/// Largest inbound message accepted; Twilio's are a few hundred bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Initial WebSocket read buffer per stream: Twilio's messages are a few hundred bytes (a larger
/// one grows it). tungstenite zero-fills the free part of its read buffer before every read, so
/// its 128 KiB default cost a cold 128 KiB memset per inbound frame (40% of the server's CPU
/// under load) and 128 KiB of memory per call.
pub const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Unsent outbound data a stream may hold: the player keeps about 1.5 s of audio (~16 KiB of
/// messages) in flight, so more means the peer stopped reading; it is cut off rather than
/// allowed to grow the server's memory.
pub const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The WebSocket settings of a media stream (see the constants). Messages are written to the
/// socket as they are queued rather than gathered into a batch first: the write buffer then
/// only ever holds one message, where batching kept up to 32 KiB per call. (The listener sets
/// TCP_NODELAY, so a batch written as several messages goes out at once.)
pub fn configure_upgrade(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
}
/// WebSocket close code for protocol abuse (RFC 6455 §7.4.1).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
const CLOSE_NORMAL: u16 = 1000;
/// How long closing a stream may take: the close frame out, then the peer's close frame in.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// How long a broken stream lingers after its close frame before the socket is dropped.
const CLOSE_LINGER: Duration = Duration::from_millis(250);
/// How long one batch of messages may take to reach the socket. Twilio reads all the time, so
/// a write that waits this long is to a peer that stopped reading; the stream is dropped.
pub const STREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long closing may take once the server stops waiting for calls: shutdown ends within a
/// second of its grace period.
const SHUTDOWN_CLOSE: Duration = Duration::from_millis(500);
/// A deadline this far off never comes while the process runs (tokio's own "far future").
const NEVER: Duration = Duration::from_secs(86_400 * 365 * 30);
/// A started stream from which no message at all has come for this long has lost its caller
/// (Twilio sends a `media` frame every 20 ms): it ends as a hang-up, so a queued caller counts
/// as abandoned and nothing is held for a call that is gone.
pub const QUIET_STREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// A stream that has not sent `start` by then is closed.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What a session needs from the server; cheap to clone.
#[derive(Clone)]
pub struct SessionContext {
    pub flow: Arc<Flow>,
    pub prompts: Arc<PromptLibrary>,
    pub calls: Arc<CallRegistry>,
    /// Cancelled when the server stops waiting for calls to finish.
    pub force_close: CancellationToken,
    /// Cancelled when this node drains (SIGTERM with other nodes to take over): the stream
    /// closes at once and Twilio resumes the call on another node where it was.
    pub drain: CancellationToken,
    /// Where keypad presses come from: Twilio's `dtmf` messages, tones in the audio, or both.
    pub dtmf: DtmfMode,
    /// Verification and reset; `None` sends verify nodes' callers to a person.
    pub identity: Option<Arc<IdentityService>>,
    /// Queues: joining, place and estimate, reservations.
    pub router: Arc<Router>,
    /// The configured agents, for dialing the one a call is reserved for.
    pub roster: Arc<Roster>,
    /// Callback requests go here.
    pub store: Arc<dyn Store>,
    /// Where voicemails are written.
    pub recordings_dir: Arc<std::path::Path>,
    /// This node's `/metrics` counters.
    pub metrics: Arc<Metrics>,
}

/// How a session ended, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The IVR finished the call (careline closed the stream).
    HungUpByCareline,
    /// Twilio sent `stop` or closed the socket.
    CallerHungUp,
    /// The stream broke the protocol and was closed with 1008.
    PolicyViolation(&'static str),
    /// The server shut down before the call finished.
    Shutdown,
    /// This node drained: the call resumes on another node.
    Drained,
    /// Sending to Twilio failed: the connection is gone.
    ConnectionLost,
    /// The peer stopped reading: a write did not complete within [`STREAM_WRITE_TIMEOUT`] and
    /// the stream was dropped as broken.
    WriteStalled,
}

/// Drive one media stream to its end.
pub async fn run_session<I, O, E>(
    mut incoming: I,
    mut outgoing: O,
    context: SessionContext,
) -> SessionEnd
where
    I: Stream<Item = Result<Message, E>> + Unpin,
    O: Sink<Message> + Unpin,
    E: std::fmt::Display,
{
    let start = match wait_for_start(&mut incoming, &context).await {
        Ok(start) => start,
        Err(end) => {
            if let SessionEnd::PolicyViolation(reason) = &end {
                close(
                    &mut incoming,
                    &mut outgoing,
                    CLOSE_POLICY_VIOLATION,
                    reason,
                    CLOSE_DRAIN,
                )
                .await;
            }
            return end;
        }
    };
    let span = tracing::info_span!("call", call_sid = %start.call_sid);
    drive(start, incoming, outgoing, context)
        .instrument(span)
        .await
}

/// The started stream's event loop.
async fn drive<I, O, E>(
    start: Started,
    mut incoming: I,
    mut outgoing: O,
    context: SessionContext,
) -> SessionEnd
where
    I: Stream<Item = Result<Message, E>> + Unpin,
    O: Sink<Message> + Unpin,
    E: std::fmt::Display,
{
    tracing::info!(
        resumed = start.claim.resume_at.is_some(),
        "media stream started"
    );
    // A call's first stream decides whether it ended in self-service; later ones resume a
    // call that was already routed to a person.
    let first_stream = start.claim.first;
    let notes = RecordNotes::start(context.calls.clone(), start.call_sid.clone());
    if start.claim.verification_failed {
        notes.send(Note::VerificationFailed);
    }
    context.metrics.call_started();
    let mut call = match &start.claim.resume_at {
        Some(node) => Call::resuming_at(context.flow.clone(), node),
        None => Call::new(context.flow.clone()),
    };
    call.set_caller_number(&start.from);
    let mut stream = CallStream {
        call,
        player: Player::new(),
        stream_sid: start.stream_sid,
        call_sid: start.call_sid,
        timer: None,
        sends: Vec::new(),
        context: context.clone(),
        hung_up: false,
        frames_in: 0,
        last_heard: Instant::now(),
        keys: Keypad::new(context.dtmf),
        lookup: None,
        reservations: None,
        reservation: None,
        queued: start.claim.queued,
        next: CallStep::Hangup,
        notes,
        noted_node: String::new(),
        noted_patient: false,
        caller_id_masked: super::registry::mask_caller_id(&start.from),
        recorder: None,
        recorded_audio: Vec::new(),
        routed: false,
        first_stream,
    };
    // Both wait for the whole call rather than being created anew for every frame: a new
    // `cancelled()` future locked the server-wide token's waiter list twice per frame, and a
    // new sleep registered and removed a timer. The child token's list is this call's alone.
    let shutdown = context.force_close.child_token().cancelled_owned();
    let drain = context.drain.child_token().cancelled_owned();
    let timer = tokio::time::sleep_until(Instant::now());
    // When the player may send audio it holds back to stay within real time.
    let paced = tokio::time::sleep_until(Instant::now());
    // Re-armed only when it fires, from the last message heard: a frame costs no timer work.
    let quiet = tokio::time::sleep_until(stream.last_heard + QUIET_STREAM_TIMEOUT);
    tokio::pin!(shutdown, drain, timer, paced, quiet);
    stream.feed(Event::Started);
    let mut stop = stream
        .flush(&mut outgoing, shutdown.as_mut(), drain.as_mut())
        .await
        .err();
    let mut timer_set_for = None;
    let mut paced_for = None;
    let end = loop {
        if let Some(stop) = stop.take() {
            break stop.end(&mut stream, &mut incoming, &mut outgoing).await;
        }
        if stream.hung_up {
            // What Twilio does next must be in the store before the stream closes: its
            // `/twilio/next` may reach any node the moment the socket is gone.
            let next = std::mem::replace(&mut stream.next, CallStep::Hangup);
            stream.notes.end(Some(next)).await;
            close(
                &mut incoming,
                &mut outgoing,
                CLOSE_NORMAL,
                "call complete",
                CLOSE_DRAIN,
            )
            .await;
            break SessionEnd::HungUpByCareline;
        }
        let deadline = stream.timer.map(|(_, at)| at);
        if let Some(at) = deadline
            && timer_set_for != Some(at)
        {
            timer.as_mut().reset(at);
            timer_set_for = Some(at);
        }
        let send_more_at = stream.player.send_more_at().map(Instant::from_std);
        if let Some(at) = send_more_at
            && paced_for != Some(at)
        {
            paced.as_mut().reset(at);
            paced_for = Some(at);
        }
        let mut lookup = stream.lookup.take();
        tokio::select! {
            answer = answer_of(&mut lookup) => {
                lookup = None;
                match answer {
                    Answer::Event(event) => stream.feed(event),
                    Answer::Joined(reservations) => {
                        stream.reservations = Some(reservations);
                        stream.feed(Event::Queue(QueueEvent::Joined));
                    }
                    Answer::JoinRefused(refusal) => {
                        // Never in the store: nothing to take out when the call ends.
                        stream.queued = None;
                        stream.feed(Event::Queue(refusal));
                    }
                }
            }
            reservation = next_reservation(&mut stream.reservations) => {
                match reservation {
                    Some(reservation) => {
                        tracing::info!(agent = %reservation.agent_id, "agent reserved for the call");
                        stream.reservation = Some(reservation);
                        stream.feed(Event::AgentReserved);
                    }
                    // A later join of this call took over its reservations.
                    None => stream.reservations = None,
                }
            }
            message = incoming.next() => {
                stream.last_heard = Instant::now();
                match stream.on_message(message) {
                    Continuation::Continue => {}
                    Continuation::End(end) => {
                        if let SessionEnd::PolicyViolation(reason) = &end {
                            close(&mut incoming, &mut outgoing, CLOSE_POLICY_VIOLATION, reason, CLOSE_DRAIN).await;
                        }
                        break end;
                    }
                }
            }
            () = &mut timer, if deadline.is_some() => {
                timer_set_for = None;
                if let Some((timer, _)) = stream.timer.take() {
                    stream.feed(Event::TimerFired(timer));
                }
            }
            () = &mut paced, if send_more_at.is_some() => {
                paced_for = None;
                stream.player.resume(Instant::now().into_std(), &mut stream.sends);
            }
            () = &mut quiet => {
                let quiet_until = stream.last_heard + QUIET_STREAM_TIMEOUT;
                if Instant::now() >= quiet_until {
                    tracing::info!(
                        secs = QUIET_STREAM_TIMEOUT.as_secs(),
                        "nothing came on the media stream; ending it as a hang-up"
                    );
                    stream.feed(Event::HungUp);
                    // Nobody is reading: the close frame goes out, nobody is waited for.
                    close(&mut incoming, &mut outgoing, CLOSE_NORMAL, "stream quiet", CLOSE_LINGER).await;
                    break SessionEnd::CallerHungUp;
                }
                quiet.as_mut().reset(quiet_until);
            }
            () = &mut drain => stop = Some(Stop::Drain),
            () = &mut shutdown => stop = Some(Stop::Shutdown),
        }
        if lookup.is_some() {
            stream.lookup = lookup;
        }
        if stop.is_none() {
            stop = stream
                .flush(&mut outgoing, shutdown.as_mut(), drain.as_mut())
                .await
                .err();
        }
    };
    stream.finish(end)
}

/// Why a started stream stops other than by the call's own course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The node drains: the call resumes on another node.
    Drain,
    /// The server stopped waiting for calls to finish.
    Shutdown,
    /// Sending failed: the connection is gone.
    Broken,
    /// A write did not complete within [`STREAM_WRITE_TIMEOUT`]: the peer stopped reading.
    Stalled,
}

impl Stop {
    async fn end<I, O, E>(
        self,
        stream: &mut CallStream,
        incoming: &mut I,
        outgoing: &mut O,
    ) -> SessionEnd
    where
        I: Stream<Item = Result<Message, E>> + Unpin,
        O: Sink<Message> + Unpin,
    {
        match self {
            Stop::Drain => {
                stream.notes.end(None).await;
                close(incoming, outgoing, CLOSE_NORMAL, "resume", CLOSE_DRAIN).await;
                SessionEnd::Drained
            }
            Stop::Shutdown => {
                close(
                    incoming,
                    outgoing,
                    CLOSE_NORMAL,
                    "server shutting down",
                    SHUTDOWN_CLOSE,
                )
                .await;
                SessionEnd::Shutdown
            }
            Stop::Broken => SessionEnd::ConnectionLost,
            Stop::Stalled => {
                // Nothing more can be written; the socket is dropped with the session.
                tracing::warn!(
                    secs = STREAM_WRITE_TIMEOUT.as_secs(),
                    "the media stream stopped taking what careline sends; closed as broken"
                );
                stream.context.metrics.stream_stalled();
                SessionEnd::WriteStalled
            }
        }
    }
}

struct Started {
    stream_sid: String,
    call_sid: String,
    /// Where the call resumes, if this is not its first stream.
    claim: StreamClaim,
    /// The caller ID from the stream's `from` parameter (offered back for a callback).
    from: String,
}

/// Read until `start`: `connected` is expected, junk is skipped, early media is a violation.
async fn wait_for_start<I, E>(
    incoming: &mut I,
    context: &SessionContext,
) -> Result<Started, SessionEnd>
where
    I: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let message = tokio::select! {
            message = incoming.next() => message,
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!("media stream sent no `start` in time; closing it");
                return Err(SessionEnd::PolicyViolation("no start message"));
            }
            () = context.force_close.cancelled() => return Err(SessionEnd::Shutdown),
        };
        let text = match classify(message) {
            Inbound::Text(text) => text,
            Inbound::Skip => continue,
            Inbound::Closed => return Err(SessionEnd::CallerHungUp),
            Inbound::Violation(reason) => return Err(SessionEnd::PolicyViolation(reason)),
        };
        match parse_stream_event(&text) {
            Ok(StreamEvent::Connected) => {}
            Ok(StreamEvent::Start(start)) => {
                if !is_sid(&start.stream_sid) || !is_sid(&start.call_sid) {
                    tracing::warn!("`start` carries a malformed streamSid or callSid; closing");
                    return Err(SessionEnd::PolicyViolation("malformed start"));
                }
                let token = start
                    .custom_parameters
                    .get("token")
                    .map(String::as_str)
                    .unwrap_or("");
                let claim = match context.calls.claim_stream(&start.call_sid, token).await {
                    Ok(claim) => claim,
                    Err(error) => {
                        tracing::warn!(call_sid = %start.call_sid, %error, "media stream refused");
                        return Err(SessionEnd::PolicyViolation(
                            "stream not authorised for this call",
                        ));
                    }
                };
                let from = start
                    .custom_parameters
                    .get("from")
                    .cloned()
                    .unwrap_or_default();
                return Ok(Started {
                    stream_sid: start.stream_sid.into_owned(),
                    call_sid: start.call_sid.into_owned(),
                    claim,
                    from,
                });
            }
            Ok(StreamEvent::Stop { .. }) => return Err(SessionEnd::CallerHungUp),
            Ok(event @ (StreamEvent::Media { .. } | StreamEvent::Dtmf { .. })) => {
                tracing::warn!(
                    event = event.kind(),
                    "media stream sent audio before `start`; closing"
                );
                return Err(SessionEnd::PolicyViolation("media before start"));
            }
            Ok(StreamEvent::Mark { .. }) => {
                tracing::warn!("mark before `start`; skipped");
            }
            Err(error) => tracing::warn!(%error, "unreadable media stream message skipped"),
        }
    }
}

enum Inbound {
    Text(axum::extract::ws::Utf8Bytes),
    Skip,
    Closed,
    Violation(&'static str),
}

fn classify<E: std::fmt::Display>(message: Option<Result<Message, E>>) -> Inbound {
    match message {
        Some(Ok(Message::Text(text))) => {
            if text.len() > MAX_MESSAGE_BYTES {
                tracing::warn!(
                    bytes = text.len(),
                    "oversized media stream message; closing"
                );
                Inbound::Violation("message too large")
            } else {
                Inbound::Text(text)
            }
        }
        Some(Ok(Message::Binary(bytes))) => {
            tracing::warn!(
                bytes = bytes.len(),
                "binary frame on a media stream skipped (Twilio sends text)"
            );
            Inbound::Skip
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Inbound::Skip,
        Some(Ok(Message::Close(_))) | None => Inbound::Closed,
        Some(Err(error)) => {
            let text = error.to_string();
            if text.contains("too long") || text.contains("too big") || text.contains("Space limit")
            {
                tracing::warn!(%error, "oversized media stream message; closing");
                Inbound::Violation("message too large")
            } else {
                tracing::info!(%error, "media stream connection failed");
                Inbound::Closed
            }
        }
    }
}

/// `after` from `now`; a duration too long for the clock (a configured one that was never
/// checked) is as good as never.
pub(super) fn deadline_after(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or(now + NEVER)
}

/// Twilio SIDs: two letters and hex; accept any short alphanumeric so odd providers work.
fn is_sid(sid: &str) -> bool {
    !sid.is_empty() && sid.len() <= 64 && sid.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

enum Continuation {
    Continue,
    End(SessionEnd),
}

/// A started stream: the engine, its player and timer.
struct CallStream {
    call: Call,
    player: Player,
    stream_sid: String,
    call_sid: String,
    timer: Option<(TimerId, Instant)>,
    /// Messages waiting to go out; reused between events.
    sends: Vec<Outgoing>,
    context: SessionContext,
    hung_up: bool,
    frames_in: u64,
    /// When the last message of any kind came from the peer (see [`QUIET_STREAM_TIMEOUT`]).
    last_heard: Instant,
    keys: Keypad,
    /// A verification, reset, queue or callback request in progress; its answer becomes the
    /// engine's next event.
    lookup: Option<Lookup>,
    /// Where the router delivers the call's reservation while it waits in a queue.
    reservations: Option<tokio::sync::mpsc::UnboundedReceiver<Reservation>>,
    /// The agent reserved for the call, until the hand-off.
    reservation: Option<Reservation>,
    /// The call as it first joined its queue: joining again keeps its place.
    queued: Option<QueuedCall>,
    /// What Twilio does once careline closes the stream.
    next: CallStep,
    /// Writes what the call's record must know (its node, its queue), in order.
    notes: RecordNotes,
    /// The IVR node last written to the record.
    noted_node: String,
    /// The verified patient has been written to the call's record (for the agent's screen).
    noted_patient: bool,
    /// The caller ID, all but its last two digits hidden (for voicemails).
    caller_id_masked: String,
    /// A voicemail being recorded from the caller's audio.
    recorder: Option<VoicemailRecorder>,
    /// Decoded inbound audio for the recorder, reused for every frame.
    recorded_audio: Vec<u8>,
    /// The call went to a person's path (a queue, transfer, voicemail or callback): it did not
    /// end in self-service.
    routed: bool,
    /// The call's first media stream (not one resuming it after a dial).
    first_stream: bool,
}

/// A step running outside the engine (a directory, portal, router or store request).
type Lookup = std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>;

/// What a [`Lookup`] comes back with.
enum Answer {
    Event(Event),
    /// The call is in its queue; its reservation will come on this receiver.
    Joined(tokio::sync::mpsc::UnboundedReceiver<Reservation>),
    /// The call is in no queue (closed, or the store is away).
    JoinRefused(QueueEvent),
}

async fn answer_of(lookup: &mut Option<Lookup>) -> Answer {
    match lookup {
        Some(lookup) => lookup.await,
        None => std::future::pending().await,
    }
}

async fn next_reservation(
    reservations: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Reservation>>,
) -> Option<Reservation> {
    match reservations {
        Some(reservations) => reservations.recv().await,
        None => std::future::pending().await,
    }
}

impl CallStream {
    fn on_message<E: std::fmt::Display>(
        &mut self,
        message: Option<Result<Message, E>>,
    ) -> Continuation {
        let text = match classify(message) {
            Inbound::Text(text) => text,
            Inbound::Skip => return Continuation::Continue,
            Inbound::Closed => {
                self.feed(Event::HungUp);
                return Continuation::End(SessionEnd::CallerHungUp);
            }
            Inbound::Violation(reason) => {
                return Continuation::End(SessionEnd::PolicyViolation(reason));
            }
        };
        let event = match parse_stream_event(&text) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "unreadable media stream message skipped");
                return Continuation::Continue;
            }
        };
        if let Some(sid) = event.stream_sid()
            && sid != self.stream_sid
        {
            tracing::warn!(
                event = event.kind(),
                "message for another streamSid skipped"
            );
            return Continuation::Continue;
        }
        match event {
            StreamEvent::Media { payload, .. } => {
                self.frames_in += 1;
                if self.frames_in.is_multiple_of(FRAME_COUNT_BATCH) {
                    self.context.metrics.frames_in(FRAME_COUNT_BATCH);
                }
                if self.recorder.is_some() {
                    self.record(&payload);
                }
                let mut heard = [None; 4];
                let mut count = 0;
                self.keys.listen(&payload, |key| {
                    if count < heard.len() {
                        heard[count] = Some(key);
                        count += 1;
                    }
                });
                for key in heard.into_iter().flatten() {
                    tracing::trace!("keypad tone heard");
                    self.feed(Event::Digit(key));
                }
            }
            StreamEvent::Dtmf { digit, .. } => {
                let mut keys = digit.chars();
                match (keys.next(), keys.next()) {
                    (Some(key), None) => {
                        if self.keys.event(key) {
                            tracing::trace!("keypad event received");
                            self.feed(Event::Digit(key));
                        }
                    }
                    _ => tracing::warn!("dtmf message with a malformed digit skipped"),
                }
            }
            StreamEvent::Mark { name, .. } => {
                let now = Instant::now().into_std();
                if let Some(playback) = self.player.on_mark(&name, now, &mut self.sends) {
                    self.feed(Event::PlaybackDone(playback));
                }
            }
            StreamEvent::Stop { .. } => {
                self.feed(Event::HungUp);
                return Continuation::End(SessionEnd::CallerHungUp);
            }
            StreamEvent::Connected => {}
            StreamEvent::Start(_) => tracing::warn!("second `start` on one stream skipped"),
        }
        Continuation::Continue
    }

    /// Hand an event to the engine and carry out its actions (and any answers they get at once).
    fn feed(&mut self, event: Event) {
        let mut events = std::collections::VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            self.apply(event, &mut events);
        }
        // Where a lost stream resumes: written when the call moves to another node.
        if self.call.node() != self.noted_node {
            self.noted_node = self.call.node().to_owned();
            self.notes.send(Note::AtNode(self.noted_node.clone()));
        }
        if !self.noted_patient
            && let Some(patient) = self.call.patient()
        {
            self.noted_patient = true;
            self.notes.send(Note::Verified(patient.clone()));
        }
    }

    fn apply(&mut self, event: Event, answers: &mut std::collections::VecDeque<Event>) {
        let actions = self.call.handle(event, jiff::Timestamp::now());
        for action in actions {
            match action {
                Action::Play {
                    playback,
                    language,
                    prompts,
                } => self.player.play(
                    &self.context.prompts,
                    playback,
                    &language,
                    &prompts,
                    Instant::now().into_std(),
                    &mut self.sends,
                ),
                Action::StopPlayback => self.player.clear(&mut self.sends),
                Action::StartTimer { timer, after } => {
                    self.timer = Some((timer, deadline_after(Instant::now(), after)));
                }
                Action::CancelTimer => self.timer = None,
                Action::Hangup => self.hung_up = true,
                Action::PlayHold {
                    language, prompt, ..
                } => self.player.play_looped(
                    &self.context.prompts,
                    &language,
                    &prompt,
                    Instant::now().into_std(),
                    &mut self.sends,
                ),
                Action::Enqueue {
                    queue,
                    priority,
                    verification_failed,
                } => {
                    self.routed = true;
                    self.join_queue(&queue, priority, verification_failed);
                }
                Action::AskQueueStatus { queue } => {
                    let router = self.context.router.clone();
                    let call_sid = self.call_sid.clone();
                    self.lookup = Some(Box::pin(async move {
                        let status = router
                            .status(&queue, &call_sid, jiff::Timestamp::now())
                            .await;
                        Answer::Event(Event::Queue(match status {
                            Ok(status) => QueueEvent::Status {
                                position: status.position,
                                estimate: status.estimate,
                            },
                            Err(error) => {
                                tracing::warn!(%error, "queue position could not be read");
                                QueueEvent::Unavailable
                            }
                        }))
                    }));
                }
                Action::LeaveQueue { reason } => {
                    let reason = match reason {
                        LeaveReason::TimedOut => router::LeaveReason::TimedOut,
                        LeaveReason::Callback => router::LeaveReason::Callback,
                    };
                    self.leave_queue(reason);
                }
                Action::HandOff(hand_off) => self.hand_off(hand_off),
                Action::StartRecording { max } => {
                    self.routed = true;
                    self.start_recording(max);
                }
                Action::StopRecording => self.stop_recording(),
                Action::RequestCallback {
                    queue,
                    number,
                    keeps_place,
                } => {
                    self.routed = true;
                    self.request_callback(queue.as_deref(), number, keeps_place);
                }
                Action::Verify {
                    node,
                    attempt,
                    dob,
                    identifier,
                    value,
                } => match &self.context.identity {
                    Some(identity) => {
                        let identity = identity.clone();
                        let call_sid = self.call_sid.clone();
                        self.lookup = Some(Box::pin(async move {
                            let outcome = identity
                                .verify(
                                    &call_sid,
                                    &node,
                                    attempt,
                                    &dob,
                                    identifier,
                                    &value,
                                    jiff::Timestamp::now(),
                                )
                                .await;
                            Answer::Event(Event::Verification(outcome))
                        }));
                    }
                    None => {
                        // No patient directory on this server: never "verified".
                        tracing::warn!("verification requested but identity is not configured");
                        answers.push_back(Event::Verification(VerifyOutcome::Unavailable));
                    }
                },
                Action::RequestReset {
                    node,
                    method,
                    patient,
                } => match &self.context.identity {
                    Some(identity) => {
                        let identity = identity.clone();
                        let call_sid = self.call_sid.clone();
                        self.lookup = Some(Box::pin(async move {
                            let outcome = identity
                                .reset(&call_sid, &node, method, &patient, jiff::Timestamp::now())
                                .await;
                            Answer::Event(Event::Reset(outcome))
                        }));
                    }
                    None => {
                        tracing::warn!("password reset requested but identity is not configured");
                        answers.push_back(Event::Reset(ResetOutcome::Failed));
                    }
                },
            }
        }
    }

    fn start_recording(&mut self, max: Duration) {
        let masked = self.caller_id_masked.clone();
        let voicemail = NewVoicemail {
            call_sid: &self.call_sid,
            caller_id_masked: &masked,
            node: self.call.node(),
            max,
            started_at: jiff::Timestamp::now(),
        };
        match VoicemailRecorder::create(&self.context.recordings_dir, voicemail) {
            Ok(recorder) => {
                tracing::info!(voicemail = %recorder.id().as_str(), "recording a voicemail");
                self.recorder = Some(recorder);
            }
            // The caller still hears the flow go on; the admin learns why nothing was kept.
            Err(error) => tracing::error!(%error, "voicemail cannot be recorded"),
        }
    }

    fn stop_recording(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        match recorder.finish(jiff::Timestamp::now()) {
            Ok(voicemail) => {
                tracing::info!(voicemail = %voicemail.id, secs = voicemail.duration_secs, "voicemail saved");
            }
            Err(error) => tracing::error!(%error, "voicemail could not be saved"),
        }
    }

    /// The caller's audio into the voicemail being recorded.
    fn record(&mut self, payload: &str) {
        use base64::Engine;
        self.recorded_audio.clear();
        if base64::engine::general_purpose::STANDARD
            .decode_vec(payload.as_bytes(), &mut self.recorded_audio)
            .is_err()
        {
            return;
        }
        if let Some(recorder) = &mut self.recorder
            && let Err(error) = recorder.push_mulaw(&self.recorded_audio)
        {
            tracing::error!(%error, "voicemail audio could not be written; the message ends here");
            self.stop_recording();
        }
    }

    /// Store a callback request: due now while the queue is open, else when it next opens.
    fn request_callback(
        &mut self,
        queue: Option<&str>,
        number: crate::ivr::Digits,
        keeps_place: bool,
    ) {
        let queue = queue
            .map(str::to_owned)
            .or_else(|| self.context.flow.queues.keys().next().cloned())
            .unwrap_or_default();
        let now = jiff::Timestamp::now();
        let now_ms = now.as_millisecond();
        let open_now = self.context.router.policy().is_open(&queue, now);
        let due_at_ms = if open_now {
            now_ms
        } else {
            self.context
                .flow
                .queues
                .get(&queue)
                .and_then(|config| config.schedule.as_ref())
                .and_then(|schedule| self.context.flow.schedules.get(schedule))
                .and_then(|schedule| schedule.next_open(now))
                .map_or(now_ms, |at| at.as_millisecond())
        };
        // A caller who asked from a queue keeps their place; anyone else is placed when the
        // request falls due (now, or when the queue opens), behind those already waiting then.
        let place_ms = match &self.queued {
            Some(call) if keeps_place => call.enqueued_at_ms,
            _ => due_at_ms,
        };
        let request = CallbackRequest {
            id: format!("{}-{now_ms}", self.call_sid),
            queue,
            number: number.expose().to_owned(),
            call_sid: self.call_sid.clone(),
            requested_at_ms: now_ms,
            place_ms,
            due_at_ms,
            status: CallbackStatus::Pending,
            completed_at_ms: None,
            language: self.call.language().to_owned(),
            patient_ref: self
                .call
                .patient()
                .map(|patient| patient.as_str().to_owned()),
            verification_failed: self.call.verification_failed(),
            ..CallbackRequest::default()
        };
        let store = self.context.store.clone();
        let router = self.context.router.clone();
        let metrics = self.context.metrics.clone();
        self.lookup = Some(Box::pin(async move {
            let stored = store.add_callback(&request).await;
            if stored.is_ok() {
                router.record(&request.queue, QueueStatEvent::CallbackRequested);
            }
            Answer::Event(Event::Callback(match stored {
                Ok(()) if open_now => CallbackOutcome::Scheduled,
                Ok(()) => CallbackOutcome::ScheduledLater,
                Err(error) => {
                    tracing::warn!(%error, "callback request could not be stored");
                    metrics.store_error();
                    CallbackOutcome::Failed
                }
            }))
        }));
    }

    /// Count how the call went, in the background.
    fn record_outcome(&self, outcome: CallOutcomeStat) {
        let store = self.context.store.clone();
        let metrics = self.context.metrics.clone();
        let now_ms = jiff::Timestamp::now().as_millisecond();
        tokio::spawn(async move {
            if let Err(error) = store.record_call_outcome(outcome, now_ms).await {
                tracing::debug!(%error, "a call outcome was not counted");
                metrics.store_error();
            }
        });
    }

    /// Join the call's queue through the router; the answer comes back as a lookup.
    fn join_queue(&mut self, queue: &str, priority: i32, verification_failed: bool) {
        let first_join = !matches!(&self.queued, Some(call) if call.queue == queue);
        let call = match self.queued.clone() {
            // The same queue again (a new stream after an unanswered offer): same place.
            Some(call) if call.queue == queue => call,
            _ => QueuedCall {
                call_sid: self.call_sid.clone(),
                queue: queue.to_owned(),
                node: self.context.router.node_id().to_owned(),
                enqueued_at_ms: jiff::Timestamp::now().as_millisecond(),
                priority,
                verification_failed,
                callback_id: None,
            },
        };
        if call.verification_failed {
            self.notes.send(Note::VerificationFailed);
        }
        self.queued = Some(call.clone());
        let router = self.context.router.clone();
        // The record says the call waits before the store has it waiting: a join that lands
        // after the caller left finds the record saying otherwise and adds nothing.
        let queued = self.notes.queued(Some(call.clone()));
        let notes = self.notes.clone();
        self.lookup = Some(Box::pin(async move {
            queued.await;
            let queue = call.queue.clone();
            let call_sid = call.call_sid.clone();
            match router.join(call, jiff::Timestamp::now()).await {
                Ok(reservations) => {
                    if first_join {
                        router.record(&queue, QueueStatEvent::Offered);
                    }
                    Answer::Joined(reservations)
                }
                Err(JoinRefusal::Closed) => {
                    notes.send(Note::Queued(None, None));
                    Answer::JoinRefused(QueueEvent::Closed)
                }
                Err(refusal @ (JoinRefusal::Unavailable(_) | JoinRefusal::Gone)) => {
                    tracing::warn!(error = %refusal, "the call could not join its queue");
                    // The join may still land when the store answers again: the record says
                    // the call waits nowhere (so a late join adds nothing), and whatever
                    // landed before that is taken out.
                    let withdrawn = notes.queued(None);
                    tokio::spawn(async move {
                        withdrawn.await;
                        router.withdraw(&call_sid).await;
                    });
                    Answer::JoinRefused(QueueEvent::Unavailable)
                }
            }
        }));
    }

    /// The call stops waiting: out of the store (in the background), no reservation expected.
    fn leave_queue(&mut self, reason: router::LeaveReason) {
        self.reservations = None;
        self.reservation = None;
        self.queued = None;
        let router = self.context.router.clone();
        let call_sid = self.call_sid.clone();
        let left = self.notes.queued(None);
        tokio::spawn(async move {
            left.await;
            router.leave(&call_sid, reason).await;
        });
    }

    /// Close the stream and tell Twilio whom to dial next.
    fn hand_off(&mut self, hand_off: HandOff) {
        self.hung_up = true;
        self.routed = true;
        match hand_off {
            HandOff::Agent => {
                let dial = self.reservation.take().and_then(|reservation| {
                    let agent = self
                        .context
                        .roster
                        .agents
                        .iter()
                        .find(|agent| agent.id == reservation.agent_id)?;
                    // `careline check` gives every agent a way to be dialed.
                    if agent.dial.is_none() && agent.client.is_none() && agent.sip.is_none() {
                        return None;
                    }
                    let ring_timeout_secs = self
                        .context
                        .flow
                        .queues
                        .get(&reservation.call.queue)
                        .map_or(20, |queue| queue.ring_timeout_secs);
                    Some(CallStep::Agent {
                        agent_id: reservation.agent_id.clone(),
                        ring_timeout_secs: u32::try_from(ring_timeout_secs).unwrap_or(u32::MAX),
                        call: self.queued.take().unwrap_or(reservation.call),
                        queue_node: self.call.node().to_owned(),
                    })
                });
                self.reservations = None;
                match dial {
                    Some(dial) => self.next = dial,
                    None => {
                        tracing::error!("the reserved agent cannot be dialed; releasing the call");
                        self.leave_queue(router::LeaveReason::HungUp);
                    }
                }
            }
            HandOff::Transfer {
                number,
                timeout,
                on_failure,
            } => {
                self.next = CallStep::Transfer {
                    number: number.to_string(),
                    timeout_secs: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
                    on_failure: on_failure.map(|node| node.to_string()),
                };
            }
        }
    }

    /// Send everything queued, in order, within [`STREAM_WRITE_TIMEOUT`]; a shutdown or a
    /// drain is heard meanwhile, so a peer that stops reading holds up neither.
    async fn flush<O: Sink<Message> + Unpin>(
        &mut self,
        outgoing: &mut O,
        shutdown: Pin<&mut WaitForCancellationFutureOwned>,
        drain: Pin<&mut WaitForCancellationFutureOwned>,
    ) -> Result<(), Stop> {
        if self.sends.is_empty() {
            return Ok(());
        }
        // The write comes first: on a socket that takes it at once, no timer is ever armed.
        tokio::select! {
            biased;
            written = tokio::time::timeout(STREAM_WRITE_TIMEOUT, self.write_queued(outgoing)) => {
                match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(())) => Err(Stop::Broken),
                    Err(_) => Err(Stop::Stalled),
                }
            }
            () = shutdown => Err(Stop::Shutdown),
            () = drain => Err(Stop::Drain),
        }
    }

    /// Write everything queued, in order, and flush it to the socket.
    async fn write_queued<O: Sink<Message> + Unpin>(&mut self, outgoing: &mut O) -> Result<(), ()> {
        for send in self.sends.drain(..) {
            let text = match &send {
                Outgoing::Media {
                    audio,
                    first,
                    count,
                } => Outbound::Media {
                    stream_sid: &self.stream_sid,
                    media: OutboundMedia {
                        payload: audio.base64_chunks(*first, *count),
                    },
                }
                .to_json(),
                Outgoing::Mark(name) => Outbound::Mark {
                    stream_sid: &self.stream_sid,
                    mark: MarkName {
                        name: std::borrow::Cow::Borrowed(name),
                    },
                }
                .to_json(),
                Outgoing::Clear => Outbound::Clear {
                    stream_sid: &self.stream_sid,
                }
                .to_json(),
            };
            if let Outgoing::Media { count, .. } = &send {
                self.context
                    .metrics
                    .frame_out(*count as u64 * FRAMES_PER_CHUNK);
            }
            outgoing
                .feed(Message::Text(text.into()))
                .await
                .map_err(|_| ())?;
        }
        outgoing.flush().await.map_err(|_| ())
    }

    fn finish(mut self, end: SessionEnd) -> SessionEnd {
        self.context.metrics.call_ended();
        self.context
            .metrics
            .frames_in(self.frames_in % FRAME_COUNT_BATCH);
        // A caller who hangs up mid-message still leaves what they said.
        self.stop_recording();
        if self.first_stream {
            // Counted once per call: a stream resuming a call belongs to a routed one.
            self.record_outcome(if self.routed {
                CallOutcomeStat::Routed
            } else {
                CallOutcomeStat::Contained
            });
        }
        match end {
            // The record was written before the stream closed.
            SessionEnd::HungUpByCareline | SessionEnd::Drained => {}
            SessionEnd::CallerHungUp => {
                if self.queued.is_some() || self.reservation.is_some() {
                    // Gone while waiting (or while being connected): out of every queue at
                    // once, and any agent reserved for the call is free again. The record
                    // keeps the call's place should Twilio still bring it back.
                    let router = self.context.router.clone();
                    let call_sid = self.call_sid.clone();
                    tokio::spawn(async move {
                        router.leave(&call_sid, router::LeaveReason::HungUp).await;
                    });
                }
                self.notes.send(Note::End(None, None));
            }
            // The stream broke or careline closed it without deciding: Twilio runs the
            // `<Redirect>` after `</Connect>` and the call resumes where it was, its place in
            // its queue kept. This node stops waiting on its behalf.
            SessionEnd::ConnectionLost
            | SessionEnd::WriteStalled
            | SessionEnd::PolicyViolation(_)
            | SessionEnd::Shutdown => {
                self.context.router.forget(&self.call_sid);
                self.notes.send(Note::End(None, None));
            }
        }
        tracing::info!(
            node = self.call.node(),
            frames_in = self.frames_in,
            end = ?end,
            "media stream ended"
        );
        end
    }
}

/// Send a close frame, then wait (briefly) for the peer's close so the frame is read before
/// the socket goes away: dropping a socket with unread input makes the kernel reset the
/// connection, and the peer may never see the close code. All of it within `within`: a peer
/// that reads nothing cannot hold the session open.
async fn close<I, O, E>(
    incoming: &mut I,
    outgoing: &mut O,
    code: u16,
    reason: &'static str,
    within: Duration,
) where
    I: Stream<Item = Result<Message, E>> + Unpin,
    O: Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let closing = async {
        // The peer may already be gone; there is nobody left to tell.
        if outgoing.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        loop {
            match incoming.next().await {
                Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    // The connection is unusable; give the peer a moment to read our close.
                    tokio::time::sleep(CLOSE_LINGER).await;
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(within, closing).await;
}
