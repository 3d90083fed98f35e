//! One call's walk through the flow: a sans-IO state machine.
//!
//! The session task feeds [`Event`]s (stream started, key pressed, prompt finished, timer fired,
//! caller hung up) together with the current time, and carries out the [`Action`]s that come
//! back (play, clear, arm a timer, hang up). Nothing here touches a socket or reads a clock, so
//! every path through a menu is a list of events a test can replay in microseconds.
//!
//! Behaviour a caller relies on:
//! - a key pressed during a prompt interrupts it at once (barge-in: `clear`, then act);
//! - timeouts start when the prompt has finished playing (its mark came back), not when sent;
//! - entering a menu plays its `intro` (a welcome, an emergency notice) then its `prompt` (the
//!   choices); after that only the choices are replayed;
//! - a menu gives `max_retries` tries (no input or an invalid key each use one), re-prompting in
//!   between with an apology and the choices, then goes to its `on_failure` (default: the
//!   operator);
//! - the repeat key replays the choices (not the intro); `0` reaches the operator from any menu;
//! - keys typed ahead (during a `say`, or several at once) are kept for the next node.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

mod queue;
mod verify;

pub use crate::identity::{Digits, PatientRef, ResetOutcome, VerifyOutcome};
pub use queue::{CallbackOutcome, HandOff, LeaveReason, QueueEvent, number_prompts};

use super::flow::{Flow, is_key};
use super::prompts;
use crate::config::limits;
use crate::config::{CollectNode, Identifier, MenuNode, Node, ResetMethod};

/// Identifies one `Play` action, so a late "finished" for an interrupted prompt is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlaybackId(pub u64);

/// Identifies one armed timer; a stale one firing after it was superseded is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The media stream started: enter the flow.
    Started,
    /// The caller pressed a key.
    Digit(char),
    /// Everything a `Play` sent has been played (its last mark came back).
    PlaybackDone(PlaybackId),
    TimerFired(TimerId),
    /// The directory's answer to [`Action::Verify`].
    Verification(VerifyOutcome),
    /// The outcome of [`Action::RequestReset`].
    Reset(ResetOutcome),
    /// The router's or the store's answer about the call's queue.
    Queue(QueueEvent),
    /// The router reserved an agent for this queued call.
    AgentReserved,
    /// The outcome of [`Action::RequestCallback`].
    Callback(CallbackOutcome),
    /// The caller hung up or the stream ended.
    HungUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these prompts in order, in `language`; report [`Event::PlaybackDone`] at the end.
    Play {
        playback: PlaybackId,
        language: Arc<str>,
        prompts: Vec<Arc<str>>,
    },
    /// Stop whatever is playing and drop what is buffered (Twilio `clear`).
    StopPlayback,
    /// Report [`Event::TimerFired`] after this long. Replaces any armed timer.
    StartTimer { timer: TimerId, after: Duration },
    /// Disarm the timer.
    CancelTimer,
    /// Check these identifiers against the patient directory; answer with
    /// [`Event::Verification`]. `attempt` counts from 1 within the call (for the audit log).
    Verify {
        node: Arc<str>,
        attempt: u32,
        dob: Digits,
        identifier: Identifier,
        value: Digits,
    },
    /// Ask for a password reset for the verified patient; answer with [`Event::Reset`].
    RequestReset {
        node: Arc<str>,
        method: ResetMethod,
        patient: PatientRef,
    },
    /// Put the call in `queue`; answer with [`Event::Queue`] (joined, closed or unavailable),
    /// then [`Event::AgentReserved`] when an agent is offered the call.
    Enqueue {
        queue: Arc<str>,
        priority: i32,
        verification_failed: bool,
    },
    /// Ask for the call's place and estimated wait; answer with [`QueueEvent::Status`].
    AskQueueStatus { queue: Arc<str> },
    /// Take the call out of its queue (it will not wait for an agent any more).
    LeaveQueue { reason: LeaveReason },
    /// Loop `prompt` (hold audio) with a bounded lead until [`Action::StopPlayback`]; it never
    /// reports [`Event::PlaybackDone`].
    PlayHold {
        playback: PlaybackId,
        language: Arc<str>,
        prompt: Arc<str>,
    },
    /// Close the stream and hand the call over (Twilio then asks `/twilio/next`).
    HandOff(HandOff),
    /// Record the caller's audio (a voicemail) for at most `max`.
    StartRecording { max: Duration },
    /// Finish and keep the recording.
    StopRecording,
    /// Store a callback request for `number`; answer with [`Event::Callback`]. `keeps_place`:
    /// asked from a queue, the request takes the caller's place in line.
    RequestCallback {
        queue: Option<Arc<str>>,
        number: Digits,
        keeps_place: bool,
    },
    /// End the call.
    Hangup,
}

/// What the call is doing at its current node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Waiting for the stream to start.
    NotStarted,
    /// A menu: prompts playing (`playing`) or waiting for a key.
    Menu,
    /// A collect: prompts playing or gathering keys into `entry`.
    Collect { entry: Digits },
    /// Prompts playing, then `next` (a `say`, or what follows a verification or reset).
    Announce { next: Arc<str> },
    /// Identity verification: keying the date of birth, then the second identifier, then
    /// waiting for the directory's answer.
    Verify(verify::Verifying),
    /// Waiting for the password reset to be requested.
    Resetting,
    /// A one-time code was read out; the repeat key reads it again, anything else goes on.
    ReadingCode { code: Digits, next: Arc<str> },
    /// Waiting in a queue, or being connected from it.
    Queued(queue::Queueing),
    /// Asking for a callback: the number read back, another keyed, the request stored.
    Callback(queue::CallbackRequest),
    /// A transfer's prompt playing, then the hand-off.
    Transferring,
    /// A voicemail node: the greeting, then `recording`.
    Voicemail { recording: bool },
    /// Playing the goodbye, then hang up.
    HangingUp,
    /// The call is over.
    Ended,
}

/// Keys kept for later are bounded: a stuck key must not grow a call's memory.
const TYPE_AHEAD_LIMIT: usize = 32;

/// Keys typed before the node that reads them: a caller may key a date of birth ahead, so
/// like [`Digits`] they show only their count in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
struct TypeAhead(VecDeque<char>);

impl TypeAhead {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn push_back(&mut self, key: char) {
        self.0.push_back(key);
    }

    fn pop_front(&mut self) -> Option<char> {
        self.0.pop_front()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

impl fmt::Debug for TypeAhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypeAhead(<{} redacted>)", self.0.len())
    }
}

/// Guards against a configuration whose nodes loop without playing anything.
const MAX_SILENT_HOPS: usize = 64;

/// One call in the IVR.
#[derive(Debug)]
pub struct Call {
    flow: Arc<Flow>,
    language: Arc<str>,
    node: Arc<str>,
    step: Step,
    /// Failed tries at the current node.
    failures: u32,
    /// The playback whose end the current step waits for.
    playing: Option<PlaybackId>,
    next_playback: u64,
    /// The timer the current step waits for.
    timer: Option<TimerId>,
    next_timer: u64,
    type_ahead: TypeAhead,
    /// What each collect node gathered, by node name.
    collected: Vec<(Arc<str>, Digits)>,
    /// Set once the caller passed a verify node in this call.
    patient: Option<PatientRef>,
    /// The caller failed identity verification; whoever takes the call must know.
    verification_failed: bool,
    /// The last entry ended by reaching its full length: a `#` right after it is dropped.
    swallow_pound: bool,
    /// The caller ID as digits, offered back for a callback; `None` when withheld.
    caller_number: Option<Digits>,
    /// An agent was reserved while a callback request was being stored.
    agent_waiting: bool,
}

impl Call {
    pub fn new(flow: Arc<Flow>) -> Call {
        let language = flow.default_language.clone();
        let node = flow.entry.clone();
        Call {
            flow,
            language,
            node,
            step: Step::NotStarted,
            failures: 0,
            playing: None,
            next_playback: 0,
            timer: None,
            next_timer: 0,
            type_ahead: TypeAhead::default(),
            collected: Vec::new(),
            patient: None,
            verification_failed: false,
            swallow_pound: false,
            caller_number: None,
            agent_waiting: false,
        }
    }

    /// A call that resumes at `node` on a new media stream (back to its queue after an agent
    /// did not answer, or on to a transfer's `on_failure`).
    pub fn resuming_at(flow: Arc<Flow>, node: &str) -> Call {
        let mut call = Call::new(flow);
        call.node = Arc::from(node);
        call
    }

    /// The node the call is at.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn language(&self) -> &str {
        &self.language
    }

    pub fn is_ended(&self) -> bool {
        self.step == Step::Ended
    }

    /// The verified patient, if the caller passed verification in this call.
    pub fn patient(&self) -> Option<&PatientRef> {
        self.patient.as_ref()
    }

    /// Whether the caller failed identity verification in this call.
    pub fn verification_failed(&self) -> bool {
        self.verification_failed
    }

    /// What a collect node gathered in this call.
    pub fn collected(&self, node: &str) -> Option<&Digits> {
        self.collected
            .iter()
            .rev()
            .find(|(name, _)| name.as_ref() == node)
            .map(|(_, digits)| digits)
    }

    /// Feed one event; returns what the session must do, in order.
    pub fn handle(&mut self, event: Event, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Started => {
                if self.step == Step::NotStarted {
                    let start = self.node.clone();
                    self.goto(&start, now, &mut out);
                }
            }
            Event::Digit(key) => {
                if is_key(key) {
                    self.on_key(key, now, &mut out);
                }
            }
            Event::PlaybackDone(playback) => {
                if self.playing == Some(playback) {
                    self.playing = None;
                    self.on_playback_done(now, &mut out);
                }
            }
            Event::TimerFired(timer) => {
                if self.timer == Some(timer) {
                    self.timer = None;
                    self.on_timeout(now, &mut out);
                }
            }
            Event::Verification(outcome) => {
                if matches!(&self.step, Step::Verify(verifying) if verifying.is_checking()) {
                    self.on_verification(outcome, now, &mut out);
                }
            }
            Event::Reset(outcome) => {
                if self.step == Step::Resetting {
                    self.on_reset(outcome, now, &mut out);
                }
            }
            Event::Queue(event) => self.on_queue_event(event, now, &mut out),
            Event::AgentReserved => self.agent_reserved(&mut out),
            Event::Callback(outcome) => self.on_callback(outcome, now, &mut out),
            Event::HungUp => {
                self.step = Step::Ended;
                self.playing = None;
                self.timer = None;
            }
        }
        out
    }

    fn on_key(&mut self, key: char, now: Timestamp, out: &mut Vec<Action>) {
        // Callers told to "press pound" do so even after an entry that ended by itself at its
        // full length; that `#` closes the entry before and must not act on what follows.
        if std::mem::take(&mut self.swallow_pound) && key == '#' {
            return;
        }
        match self.step {
            Step::Menu | Step::Collect { .. } => {
                self.interrupt(out);
                self.accept_key(key, now, out);
            }
            Step::Verify(_) => self.verify_key(key, now, out),
            Step::ReadingCode { .. } => self.code_key(key, out),
            Step::Resetting | Step::Transferring => {}
            Step::Queued(_) => self.queue_key(key, out),
            Step::Callback(_) => self.callback_key(key, now, out),
            Step::Voicemail { .. } => self.voicemail_key(key, out),
            Step::Announce { .. } | Step::NotStarted => {
                if self.type_ahead.len() < TYPE_AHEAD_LIMIT {
                    self.type_ahead.push_back(key);
                }
            }
            Step::HangingUp | Step::Ended => {}
        }
    }

    /// Barge-in: stop the prompt and the timer before acting on a key.
    fn interrupt(&mut self, out: &mut Vec<Action>) {
        if self.playing.take().is_some() {
            out.push(Action::StopPlayback);
        }
        if self.timer.take().is_some() {
            out.push(Action::CancelTimer);
        }
    }

    fn accept_key(&mut self, key: char, now: Timestamp, out: &mut Vec<Action>) {
        let flow = Arc::clone(&self.flow);
        match flow.nodes.get(&self.node) {
            Some(Node::Menu(menu)) => self.menu_key(menu, key, now, out),
            Some(Node::Collect(collect)) => self.collect_key(collect, key, now, out),
            Some(_) => {}
            None => self.fail_to_operator(now, out),
        }
    }

    fn menu_key(&mut self, menu: &MenuNode, key: char, now: Timestamp, out: &mut Vec<Action>) {
        if key == self.flow.repeat_key {
            self.prompt(&menu.prompt, None, out);
            return;
        }
        let mut buffer = [0u8; 4];
        if let Some(target) = menu.options.get(key.encode_utf8(&mut buffer) as &str) {
            return self.goto(target, now, out);
        }
        if key == '0' {
            let operator = self.flow.operator.clone();
            return self.goto(&operator, now, out);
        }
        self.retry_or_fail(
            prompts::INVALID_CHOICE,
            &menu.prompt,
            menu.on_failure.as_deref(),
            now,
            out,
        );
    }

    fn collect_key(
        &mut self,
        collect: &CollectNode,
        key: char,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Step::Collect { entry } = &mut self.step else {
            return;
        };
        if key == '#' {
            return self.finish_collect(collect, now, out);
        }
        if key == self.flow.repeat_key {
            entry.clear();
            self.prompt(&collect.prompt, None, out);
            return;
        }
        entry.push(key);
        if entry.len() >= limits::COLLECT_MAX_DIGITS.clamp_u32(collect.max_digits) as usize {
            self.swallow_pound = true;
            return self.finish_collect(collect, now, out);
        }
        let after = self.flow.inter_digit_timeout;
        self.arm_timer(after, out);
    }

    fn finish_collect(&mut self, collect: &CollectNode, now: Timestamp, out: &mut Vec<Action>) {
        let Step::Collect { entry } = &mut self.step else {
            return;
        };
        if entry.len() < limits::COLLECT_MIN_DIGITS.clamp_u32(collect.min_digits) as usize {
            entry.clear();
            return self.retry_or_fail(
                prompts::INVALID_ENTRY,
                &collect.prompt,
                collect.on_failure.as_deref(),
                now,
                out,
            );
        }
        let entry = std::mem::take(entry);
        let node = self.node.clone();
        self.collected.retain(|(name, _)| *name != node);
        self.collected.push((node, entry));
        self.goto(&collect.next, now, out);
    }

    fn on_playback_done(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        match &self.step {
            Step::Menu => {
                let after = self.flow.first_digit_timeout;
                self.arm_timer(after, out);
            }
            Step::Collect { entry } => {
                let after = if entry.is_empty() {
                    self.flow.first_digit_timeout
                } else {
                    self.flow.inter_digit_timeout
                };
                self.arm_timer(after, out);
            }
            Step::Announce { next } => {
                let next = next.clone();
                self.goto(&next, now, out);
            }
            Step::Verify(_) => self.verify_prompt_done(out),
            Step::ReadingCode { .. } => {
                let after = self.flow.first_digit_timeout;
                self.arm_timer(after, out);
            }
            Step::HangingUp => self.end(out),
            Step::Queued(_) => self.queue_playback_done(now, out),
            Step::Callback(_) => self.callback_prompt_done(now, out),
            Step::Transferring => self.transfer_playback_done(out),
            Step::Voicemail { .. } => self.voicemail_playback_done(out),
            Step::Resetting | Step::NotStarted | Step::Ended => {}
        }
    }

    fn on_timeout(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let flow = Arc::clone(&self.flow);
        let Some(node) = flow.nodes.get(&self.node) else {
            return;
        };
        match (node, &self.step) {
            (Node::Menu(menu), Step::Menu) => {
                self.retry_or_fail(
                    prompts::NO_INPUT,
                    &menu.prompt,
                    menu.on_failure.as_deref(),
                    now,
                    out,
                );
            }
            (Node::Collect(collect), Step::Collect { entry }) => {
                if entry.is_empty() {
                    self.retry_or_fail(
                        prompts::NO_INPUT,
                        &collect.prompt,
                        collect.on_failure.as_deref(),
                        now,
                        out,
                    );
                } else {
                    self.finish_collect(collect, now, out);
                }
            }
            (Node::Verify(node), Step::Verify(_)) => self.verify_timeout(node, now, out),
            (_, Step::ReadingCode { next, .. }) => {
                let next = next.clone();
                self.goto(&next, now, out);
            }
            (_, Step::Queued(_)) => self.queue_timeout(now, out),
            (_, Step::Callback(_)) => self.callback_timeout(now, out),
            (_, Step::Voicemail { recording: true }) => self.finish_voicemail(out),
            _ => {}
        }
    }

    /// One failed try: re-prompt with an apology, or after the last try go to `on_failure`.
    fn retry_or_fail(
        &mut self,
        apology: &str,
        node_prompts: &[String],
        on_failure: Option<&str>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        self.failures = self.failures.saturating_add(1);
        // Keys typed after a wrong one were meant for a menu the caller never reached.
        self.type_ahead.clear();
        if self.failures >= self.flow.max_retries {
            let target: Arc<str> = on_failure
                .map(Arc::from)
                .unwrap_or_else(|| self.flow.operator.clone());
            return self.goto(&target, now, out);
        }
        self.prompt(node_prompts, Some(apology), out);
    }

    fn fail_to_operator(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let operator = self.flow.operator.clone();
        if operator != self.node {
            self.goto(&operator, now, out);
        } else {
            self.end(out);
        }
    }

    /// Enter a node, following nodes that play nothing (language, schedule) until one that does.
    fn goto(&mut self, target: &str, now: Timestamp, out: &mut Vec<Action>) {
        let flow = Arc::clone(&self.flow);
        let mut target: Arc<str> = Arc::from(target);
        for _ in 0..MAX_SILENT_HOPS {
            let Some((name, node)) = flow.node(&target) else {
                tracing::error!(node = %target, "call reached a node that does not exist");
                return self.apologise_and_end(out);
            };
            self.node = name;
            self.failures = 0;
            self.interrupt(out);
            tracing::debug!(node = %self.node, kind = node.type_name(), "call entered node");
            match node {
                Node::Menu(menu) => {
                    self.step = Step::Menu;
                    return self.enter_with_type_ahead(&menu.intro, &menu.prompt, now, out);
                }
                Node::Collect(collect) => {
                    self.step = Step::Collect {
                        entry: Digits::default(),
                    };
                    return self.enter_with_type_ahead(&[], &collect.prompt, now, out);
                }
                Node::Say(say) => {
                    self.step = Step::Announce {
                        next: Arc::from(say.next.as_str()),
                    };
                    if say.prompt.is_empty() {
                        target = Arc::from(say.next.as_str());
                        continue;
                    }
                    return self.prompt(&say.prompt, None, out);
                }
                Node::Hangup(hangup) => {
                    if hangup.prompt.is_empty() {
                        return self.end(out);
                    }
                    self.step = Step::HangingUp;
                    self.type_ahead.clear();
                    return self.prompt(&hangup.prompt, None, out);
                }
                Node::Language(language) => {
                    self.language = Arc::from(language.language.as_str());
                    target = Arc::from(language.next.as_str());
                }
                Node::Schedule(schedule) => {
                    let open = flow
                        .schedules
                        .get(&schedule.schedule)
                        .is_some_and(|rules| rules.is_open(now));
                    target = Arc::from(if open {
                        schedule.open.as_str()
                    } else {
                        schedule.closed.as_str()
                    });
                }
                Node::Verify(node) => return self.start_verify(node, out),
                Node::PasswordReset(node) => return self.start_reset(node, now, out),
                Node::Queue(node) => return self.enter_queue(node, now, out),
                Node::Transfer(node) => return self.start_transfer(node, out),
                Node::Voicemail(node) => return self.start_voicemail(node, out),
                Node::Callback(node) => return self.enter_callback_node(node, out),
            }
        }
        tracing::error!(node = %target, "call flow loops without playing anything");
        self.apologise_and_end(out);
    }

    /// Keys typed before the node's prompt began act at once, without playing it.
    fn enter_with_type_ahead(
        &mut self,
        intro: &[String],
        node_prompts: &[String],
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        if let Some(key) = self.type_ahead.pop_front() {
            self.accept_key(key, now, out);
            // Drain the rest while the call stays at an input node.
            while matches!(self.step, Step::Menu | Step::Collect { .. }) && self.playing.is_none() {
                let Some(key) = self.type_ahead.pop_front() else {
                    break;
                };
                self.interrupt(out);
                self.accept_key(key, now, out);
            }
            return;
        }
        let mut list: Vec<Arc<str>> = Vec::with_capacity(intro.len() + node_prompts.len());
        list.extend(intro.iter().map(|id| Arc::from(id.as_str())));
        list.extend(node_prompts.iter().map(|id| Arc::from(id.as_str())));
        self.play(list, out);
    }

    /// Play an optional apology then the node's prompts (a menu's choices, without its intro);
    /// the step waits for the end.
    fn prompt(&mut self, node_prompts: &[String], apology: Option<&str>, out: &mut Vec<Action>) {
        let mut list: Vec<Arc<str>> = Vec::with_capacity(node_prompts.len() + 1);
        if let Some(apology) = apology {
            list.push(Arc::from(apology));
        }
        list.extend(node_prompts.iter().map(|id| Arc::from(id.as_str())));
        self.play(list, out);
    }

    fn play(&mut self, prompts: Vec<Arc<str>>, out: &mut Vec<Action>) {
        let playback = self.start_playback();
        out.push(Action::Play {
            playback,
            language: self.language.clone(),
            prompts,
        });
    }

    /// A new playback the step now waits for; an older one finishing is stale from here on.
    fn start_playback(&mut self) -> PlaybackId {
        self.next_playback = self.next_playback.wrapping_add(1);
        let playback = PlaybackId(self.next_playback);
        self.playing = Some(playback);
        playback
    }

    fn arm_timer(&mut self, after: Duration, out: &mut Vec<Action>) {
        self.next_timer = self.next_timer.wrapping_add(1);
        let timer = TimerId(self.next_timer);
        self.timer = Some(timer);
        out.push(Action::StartTimer { timer, after });
    }

    fn apologise_and_end(&mut self, out: &mut Vec<Action>) {
        self.step = Step::HangingUp;
        self.play(vec![Arc::from(prompts::TECHNICAL_DIFFICULTY)], out);
    }

    fn end(&mut self, out: &mut Vec<Action>) {
        self.interrupt(out);
        self.step = Step::Ended;
        out.push(Action::Hangup);
    }
}
