//! The routing steps of a call: waiting in a queue (hold audio, position and estimated wait,
//! the callback offer, the maximum wait), being connected to an agent, and the nodes that hand
//! a call to someone else: `transfer`, `voicemail` and `callback`.
//!
//! The engine decides what the caller hears and when; the session does the rest. It answers
//! [`Action::Enqueue`] with [`QueueEvent::Joined`], [`QueueEvent::Closed`] or
//! [`QueueEvent::Unavailable`], [`Action::AskQueueStatus`] with [`QueueEvent::Status`],
//! reports [`Event::AgentReserved`] when the router offers the call to an agent, and answers
//! [`Action::RequestCallback`] with [`Event::Callback`]. A callback number is keyed digits:
//! it lives in [`Digits`] and leaves the engine only inside the action.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::{Action, Call, Digits, Step};
use crate::config::limits;
use crate::config::{CallbackNode, Node, QueueNode, TransferNode, VoicemailNode};
use crate::ivr::prompts;

/// The router's and the store's answers about a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// The call is in its queue.
    Joined,
    /// The queue is closed (outside its schedule, or nobody on shift): its `when_closed` runs.
    Closed,
    /// The store cannot be reached: the caller hears an apology and the `when_closed` path.
    Unavailable,
    /// The caller's place (1-based) and the estimated wait; `None` when unknown.
    Status {
        position: Option<usize>,
        estimate: Option<Duration>,
    },
}

/// The outcome of [`Action::RequestCallback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The request is stored; an agent calls back while the queue is open.
    Scheduled,
    /// The request is stored for when the queue next opens.
    ScheduledLater,
    /// The request could not be stored.
    Failed,
}

/// Why a call leaves its queue without reaching an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The caller waited `max_wait_secs`.
    TimedOut,
    /// The caller asked to be called back instead.
    Callback,
}

/// Whom the call goes to when careline closes its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOff {
    /// The agent the router reserved for this call.
    Agent,
    /// An external number (a `transfer` node); `on_failure` runs when nobody answers.
    Transfer {
        number: Arc<str>,
        timeout: Duration,
        on_failure: Option<Arc<str>>,
    },
}

/// Where a queued call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ivr) struct Queueing {
    queue: Arc<str>,
    stage: QueueStage,
    /// When the call gives up waiting (`max_wait_secs` after it joined).
    deadline: Timestamp,
    /// When the next position announcement is due.
    next_announcement: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueStage {
    /// Waiting for the router to take the call in.
    Joining,
    /// Hold audio playing; the timer wakes the call for the next announcement or its deadline.
    Holding,
    /// Waiting for the caller's place and estimate.
    AskingStatus,
    /// Reading out the place and estimate; hold audio resumes after it.
    Announcing,
    /// Playing "connecting you now"; then the hand-off.
    Connecting,
}

/// Where a callback request is: reading back the number, keying another, or storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ivr) struct CallbackRequest {
    stage: CallbackStage,
    number: Digits,
    entry: Digits,
    queue: Option<Arc<str>>,
    /// Asked from a queue: the caller keeps their place until the request is stored, and goes
    /// back to waiting if it cannot be.
    from_queue: Option<Box<Queueing>>,
    /// After the request is stored (a `callback` node's `next`).
    next: Option<Arc<str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallbackStage {
    /// "We will call you back at ... press 1 ... press 2".
    Confirming,
    /// Keying another number, ended by `#`.
    Entering,
    /// Waiting for the store.
    Storing,
    /// Playing the confirmation, then hang up or `next`.
    Done,
}

/// Fewest and most digits of a callback number: a local number with its area code, up to E.164.
const CALLBACK_MIN_DIGITS: usize = 10;
const CALLBACK_MAX_DIGITS: usize = 15;

/// Below this an estimate is "less than a minute": a caller told "1 minute" who waits 50 s has
/// been told the truth; one told "0 minutes" has not.
const ONE_MINUTE: Duration = Duration::from_secs(60);

/// The minutes an estimate is read as: whole minutes rounded up, and from 20 minutes on rounded
/// to the nearest ten (an estimate that long is coarse anyway; "about thirty" is what it means).
fn spoken_minutes(wait: Duration) -> u64 {
    let minutes = wait.as_secs().div_ceil(60);
    if minutes < 20 {
        minutes
    } else {
        (minutes + 5) / 10 * 10
    }
}

/// The prompts that say `n`: 0–99 in words, larger numbers digit by digit.
pub fn number_prompts(n: u64, language: &str) -> Vec<Arc<str>> {
    let style = prompts::NumberStyle::of(language);
    if let Some(words) = u32::try_from(n)
        .ok()
        .and_then(|n| prompts::number_prompts(n, style))
    {
        return words.map(Arc::from).collect();
    }
    n.to_string()
        .bytes()
        .map(|byte| Arc::from(prompts::DIGITS[usize::from(byte - b'0')]))
        .collect()
}

fn spell_digits(digits: &Digits) -> impl Iterator<Item = Arc<str>> + '_ {
    digits
        .expose()
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|digit| Arc::from(prompts::DIGITS[usize::from(digit - b'0')]))
}

/// The digits of a caller ID (`+1 (312) 555-0101` → `13125550101`).
fn caller_number_digits(raw: &str) -> Digits {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    Digits::new(digits)
}

impl Call {
    /// The caller's number (Twilio's `From`), offered back when they ask for a callback.
    /// Withheld or non-numeric caller IDs leave the caller to key a number.
    pub fn set_caller_number(&mut self, raw: &str) {
        let digits = caller_number_digits(raw);
        if digits.len() >= CALLBACK_MIN_DIGITS && digits.len() <= CALLBACK_MAX_DIGITS {
            self.caller_number = Some(digits);
        }
    }

    /// Whether the call is waiting in (or being connected from) a queue: the session reports
    /// a hang-up to the router then.
    pub fn queue(&self) -> Option<&str> {
        match &self.step {
            Step::Queued(queueing) => Some(&queueing.queue),
            Step::Callback(request) => request.from_queue.as_ref().map(|q| q.queue.as_ref()),
            _ => None,
        }
    }

    pub(super) fn enter_queue(&mut self, node: &QueueNode, now: Timestamp, out: &mut Vec<Action>) {
        let Some(config) = self.flow.queues.get(&node.queue) else {
            tracing::error!(queue = %node.queue, "queue node names a queue that does not exist");
            return self.apologise_and_end(out);
        };
        let queue: Arc<str> = Arc::from(node.queue.as_str());
        self.type_ahead.clear();
        self.step = Step::Queued(Queueing {
            queue: queue.clone(),
            stage: QueueStage::Joining,
            deadline: add(now, limits::QUEUE_MAX_WAIT_SECS.secs(config.max_wait_secs)),
            next_announcement: now,
        });
        out.push(Action::Enqueue {
            queue,
            priority: node.priority,
            verification_failed: self.verification_failed,
        });
    }

    pub(super) fn on_queue_event(
        &mut self,
        event: QueueEvent,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let announce_every = self.announce_every();
        let Step::Queued(queueing) = &mut self.step else {
            return;
        };
        match (queueing.stage, event) {
            (QueueStage::Joining, QueueEvent::Joined) => {
                // The first announcement at once: a caller wants to know where they stand.
                queueing.stage = QueueStage::AskingStatus;
                let queue = queueing.queue.clone();
                out.push(Action::AskQueueStatus { queue });
            }
            (QueueStage::Joining, QueueEvent::Closed) => {
                let target = self.closed_target();
                self.goto_or_end(target, None, now, out);
            }
            (QueueStage::Joining, QueueEvent::Unavailable) => {
                let target = self.closed_target();
                self.goto_or_end(target, Some(prompts::QUEUE_UNAVAILABLE), now, out);
            }
            (QueueStage::AskingStatus, QueueEvent::Status { position, estimate }) => {
                queueing.stage = QueueStage::Announcing;
                queueing.next_announcement = add(now, announce_every);
                let mut list: Vec<Arc<str>> = Vec::new();
                if let Some(position) = position {
                    list.push(Arc::from(prompts::QUEUE_POSITION));
                    list.extend(number_prompts(position as u64, &self.language));
                }
                match estimate {
                    Some(wait) if wait < ONE_MINUTE => {
                        list.push(Arc::from(prompts::QUEUE_WAIT_LESS_THAN_MINUTE));
                    }
                    Some(wait) => {
                        list.push(Arc::from(prompts::QUEUE_WAIT_MINUTES));
                        list.extend(number_prompts(spoken_minutes(wait), &self.language));
                    }
                    None => {}
                }
                list.push(Arc::from(prompts::CALLBACK_OFFER));
                self.play(list, out);
            }
            (QueueStage::AskingStatus, QueueEvent::Unavailable) => {
                // The store is away for a moment: keep the caller waiting, try again later.
                self.hold(now, out);
            }
            _ => {}
        }
    }

    /// Hold audio until the next announcement or the deadline.
    fn hold(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let hold_prompt = self.hold_prompt();
        let Step::Queued(queueing) = &mut self.step else {
            return;
        };
        queueing.stage = QueueStage::Holding;
        let wake = queueing.next_announcement.min(queueing.deadline);
        let after = wake
            .duration_since(now)
            .try_into()
            .unwrap_or(Duration::ZERO);
        let playback = self.start_playback();
        out.push(Action::PlayHold {
            playback,
            language: self.language.clone(),
            prompt: hold_prompt,
        });
        self.arm_timer(after, out);
    }

    pub(super) fn queue_playback_done(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Step::Queued(queueing) = &self.step else {
            return;
        };
        match queueing.stage {
            QueueStage::Announcing => self.hold(now, out),
            QueueStage::Connecting => {
                self.step = Step::Ended;
                out.push(Action::HandOff(HandOff::Agent));
            }
            // Hold audio loops: it never finishes by itself.
            QueueStage::Holding | QueueStage::Joining | QueueStage::AskingStatus => {}
        }
    }

    pub(super) fn queue_timeout(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Step::Queued(queueing) = &mut self.step else {
            return;
        };
        if queueing.stage != QueueStage::Holding {
            return;
        }
        if now >= queueing.deadline {
            out.push(Action::LeaveQueue {
                reason: LeaveReason::TimedOut,
            });
            self.interrupt(out);
            let target = self.timeout_target();
            return self.goto_or_end(target, None, now, out);
        }
        queueing.stage = QueueStage::AskingStatus;
        let queue = queueing.queue.clone();
        out.push(Action::AskQueueStatus { queue });
    }

    /// While waiting only `1` (callback) acts; other keys, `0` included, change nothing.
    pub(super) fn queue_key(&mut self, key: char, out: &mut Vec<Action>) {
        let Step::Queued(queueing) = &self.step else {
            return;
        };
        if key != '1' || !matches!(queueing.stage, QueueStage::Holding | QueueStage::Announcing) {
            return;
        }
        let queueing = queueing.clone();
        self.interrupt(out);
        let queue = Some(queueing.queue.clone());
        self.start_callback(queue, Some(Box::new(queueing)), None, Vec::new(), out);
    }

    /// The router reserved an agent: "connecting you now", then the hand-off.
    pub(super) fn agent_reserved(&mut self, out: &mut Vec<Action>) {
        let queueing = match &self.step {
            Step::Queued(queueing) => queueing.clone(),
            // Still on the line while asking for a callback: a person beats a callback.
            Step::Callback(CallbackRequest {
                from_queue: Some(queueing),
                stage: CallbackStage::Confirming | CallbackStage::Entering,
                ..
            }) => (**queueing).clone(),
            // The callback is being stored: if that fails the caller is back in line, and this
            // agent is theirs then; if it succeeds, leaving the queue frees the agent.
            Step::Callback(CallbackRequest {
                from_queue: Some(_),
                stage: CallbackStage::Storing,
                ..
            }) => {
                self.agent_waiting = true;
                return;
            }
            _ => return,
        };
        self.interrupt(out);
        self.step = Step::Queued(Queueing {
            stage: QueueStage::Connecting,
            ..queueing
        });
        self.play(vec![Arc::from(prompts::CONNECTING)], out);
    }

    fn queue_config(&self) -> Option<&crate::config::QueueConfig> {
        let queue = self.queue()?;
        self.flow.queues.get(queue)
    }

    fn announce_every(&self) -> Duration {
        let secs = self
            .queue_config()
            .map_or(45, |config| config.announce_every_secs);
        limits::QUEUE_ANNOUNCE_EVERY_SECS.secs(secs)
    }

    fn hold_prompt(&self) -> Arc<str> {
        Arc::from(
            self.queue_config()
                .and_then(|config| config.hold_prompt.as_deref())
                .unwrap_or(prompts::HOLD_MUSIC),
        )
    }

    fn closed_target(&self) -> Option<Arc<str>> {
        self.queue_config()
            .and_then(|config| config.when_closed.as_deref())
            .map(Arc::from)
    }

    fn timeout_target(&self) -> Option<Arc<str>> {
        self.queue_config()
            .and_then(|config| {
                config
                    .on_timeout
                    .as_deref()
                    .or(config.when_closed.as_deref())
            })
            .map(Arc::from)
    }

    /// Go on to `target` (after an optional apology), or with nowhere to go apologise and end.
    fn goto_or_end(
        &mut self,
        target: Option<Arc<str>>,
        apology: Option<&'static str>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        match (target, apology) {
            (Some(target), None) => self.goto(&target, now, out),
            (Some(target), Some(apology)) => {
                self.step = Step::Announce { next: target };
                self.play(vec![Arc::from(apology)], out);
            }
            (None, apology) => {
                self.step = Step::HangingUp;
                self.play(
                    vec![Arc::from(apology.unwrap_or(prompts::QUEUE_UNAVAILABLE))],
                    out,
                );
            }
        }
    }

    // --- transfer and voicemail ---

    pub(super) fn start_transfer(&mut self, node: &TransferNode, out: &mut Vec<Action>) {
        self.type_ahead.clear();
        self.step = Step::Transferring;
        let mut list: Vec<Arc<str>> = node
            .prompt
            .iter()
            .map(|id| Arc::from(id.as_str()))
            .collect();
        if list.is_empty() {
            list.push(Arc::from(prompts::TRANSFERRING));
        }
        self.play(list, out);
    }

    pub(super) fn transfer_playback_done(&mut self, out: &mut Vec<Action>) {
        let Some(Node::Transfer(node)) = self.flow.nodes.get(&self.node) else {
            return;
        };
        let hand_off = HandOff::Transfer {
            number: Arc::from(node.number.as_str()),
            timeout: limits::TRANSFER_TIMEOUT_SECS.secs(node.timeout_secs),
            on_failure: node.on_failure.as_deref().map(Arc::from),
        };
        self.step = Step::Ended;
        out.push(Action::HandOff(hand_off));
    }

    pub(super) fn start_voicemail(&mut self, node: &VoicemailNode, out: &mut Vec<Action>) {
        self.type_ahead.clear();
        self.step = Step::Voicemail { recording: false };
        let mut list: Vec<Arc<str>> = node
            .prompt
            .iter()
            .map(|id| Arc::from(id.as_str()))
            .collect();
        if list.is_empty() {
            list.push(Arc::from(prompts::VOICEMAIL_INTRO));
        }
        self.play(list, out);
    }

    /// The greeting finished (or was skipped): record until `#` or `max_secs`. The "message
    /// recorded" prompt ends in an announce or hang-up step, never here.
    pub(super) fn voicemail_playback_done(&mut self, out: &mut Vec<Action>) {
        let Some(Node::Voicemail(node)) = self.flow.nodes.get(&self.node) else {
            return;
        };
        if self.step != (Step::Voicemail { recording: false }) {
            return;
        }
        let max = limits::VOICEMAIL_MAX_SECS.secs(node.max_secs);
        self.step = Step::Voicemail { recording: true };
        out.push(Action::StartRecording { max });
        self.arm_timer(max, out);
    }

    /// `#` or the maximum length ends a message; other keys are part of it.
    pub(super) fn voicemail_key(&mut self, key: char, out: &mut Vec<Action>) {
        match self.step {
            Step::Voicemail { recording: true } if key == '#' => self.finish_voicemail(out),
            Step::Voicemail { recording: false } if key == '#' => {
                // Skipping the greeting starts the recording at once.
                self.interrupt(out);
                self.voicemail_playback_done(out);
            }
            _ => {}
        }
    }

    pub(super) fn finish_voicemail(&mut self, out: &mut Vec<Action>) {
        let Some(Node::Voicemail(node)) = self.flow.nodes.get(&self.node) else {
            return;
        };
        let next = node.next.as_deref().map(Arc::from);
        self.interrupt(out);
        out.push(Action::StopRecording);
        self.step = match next {
            Some(next) => Step::Announce { next },
            None => Step::HangingUp,
        };
        self.play(vec![Arc::from(prompts::VOICEMAIL_SAVED)], out);
    }

    // --- callbacks ---

    pub(super) fn enter_callback_node(&mut self, node: &CallbackNode, out: &mut Vec<Action>) {
        let queue = node
            .queue
            .as_deref()
            .map(Arc::from)
            .or_else(|| self.operator_queue());
        let next = Some(Arc::from(node.next.as_str()));
        self.type_ahead.clear();
        // The node's own introduction, then the number.
        let intro = node
            .prompt
            .iter()
            .map(|id| Arc::from(id.as_str()))
            .collect();
        self.start_callback(queue, None, next, intro, out);
    }

    /// The queue behind the operator node, for a callback node that names none.
    fn operator_queue(&self) -> Option<Arc<str>> {
        match self.flow.nodes.get(&self.flow.operator) {
            Some(Node::Queue(node)) => Some(Arc::from(node.queue.as_str())),
            _ => self
                .flow
                .queues
                .keys()
                .next()
                .map(|name| Arc::from(name.as_str())),
        }
    }

    fn start_callback(
        &mut self,
        queue: Option<Arc<str>>,
        from_queue: Option<Box<Queueing>>,
        next: Option<Arc<str>>,
        intro: Vec<Arc<str>>,
        out: &mut Vec<Action>,
    ) {
        self.failures = 0;
        let number = self.caller_number.clone().unwrap_or_default();
        let stage = if number.is_empty() {
            CallbackStage::Entering
        } else {
            CallbackStage::Confirming
        };
        self.step = Step::Callback(CallbackRequest {
            stage,
            number,
            entry: Digits::default(),
            queue,
            from_queue,
            next,
        });
        self.callback_prompt(intro, out);
    }

    /// The prompt for the request's stage, after `lead` (an introduction or an apology).
    fn callback_prompt(&mut self, lead: Vec<Arc<str>>, out: &mut Vec<Action>) {
        let Step::Callback(request) = &self.step else {
            return;
        };
        let mut list = lead;
        match request.stage {
            CallbackStage::Confirming => {
                list.push(Arc::from(prompts::CALLBACK_CONFIRM_INTRO));
                list.extend(spell_digits(&request.number));
                list.push(Arc::from(prompts::CALLBACK_CONFIRM_CHOICE));
            }
            CallbackStage::Entering => list.push(Arc::from(prompts::CALLBACK_ENTER_NUMBER)),
            CallbackStage::Storing | CallbackStage::Done => return,
        }
        self.play(list, out);
    }

    pub(super) fn callback_key(&mut self, key: char, now: Timestamp, out: &mut Vec<Action>) {
        let repeat_key = self.flow.repeat_key;
        let Step::Callback(request) = &mut self.step else {
            return;
        };
        match request.stage {
            CallbackStage::Confirming => {
                self.interrupt(out);
                match key {
                    '1' => self.store_callback(out),
                    '2' => {
                        if let Step::Callback(request) = &mut self.step {
                            request.stage = CallbackStage::Entering;
                            request.entry = Digits::default();
                        }
                        self.callback_prompt(Vec::new(), out);
                    }
                    key if key == repeat_key => self.callback_prompt(Vec::new(), out),
                    _ => self.callback_failed(prompts::INVALID_CHOICE, now, out),
                }
            }
            CallbackStage::Entering => {
                if key == '#' && request.entry.is_empty() {
                    return;
                }
                self.interrupt(out);
                let Step::Callback(request) = &mut self.step else {
                    return;
                };
                if key == '#' {
                    return self.finish_callback_entry(now, out);
                }
                if key == repeat_key {
                    request.entry.clear();
                    return self.callback_prompt(Vec::new(), out);
                }
                if !key.is_ascii_digit() {
                    return;
                }
                request.entry.push(key);
                if request.entry.len() >= CALLBACK_MAX_DIGITS {
                    self.swallow_pound = true;
                    return self.finish_callback_entry(now, out);
                }
                let after = self.flow.inter_digit_timeout;
                self.arm_timer(after, out);
            }
            CallbackStage::Storing | CallbackStage::Done => {}
        }
    }

    fn finish_callback_entry(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Step::Callback(request) = &mut self.step else {
            return;
        };
        if request.entry.len() < CALLBACK_MIN_DIGITS {
            request.entry.clear();
            return self.callback_failed(prompts::INVALID_ENTRY, now, out);
        }
        request.number = std::mem::take(&mut request.entry);
        request.stage = CallbackStage::Confirming;
        self.failures = 0;
        self.callback_prompt(Vec::new(), out);
    }

    pub(super) fn callback_prompt_done(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Step::Callback(request) = &self.step else {
            return;
        };
        match request.stage {
            CallbackStage::Confirming => {
                let after = self.flow.first_digit_timeout;
                self.arm_timer(after, out);
            }
            CallbackStage::Entering => {
                let after = if request.entry.is_empty() {
                    self.flow.first_digit_timeout
                } else {
                    self.flow.inter_digit_timeout
                };
                self.arm_timer(after, out);
            }
            CallbackStage::Done => match request.next.clone() {
                Some(next) => self.goto(&next, now, out),
                None => self.end(out),
            },
            CallbackStage::Storing => {}
        }
    }

    pub(super) fn callback_timeout(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Step::Callback(request) = &self.step else {
            return;
        };
        match request.stage {
            CallbackStage::Entering if !request.entry.is_empty() => {
                self.finish_callback_entry(now, out)
            }
            CallbackStage::Confirming | CallbackStage::Entering => {
                self.callback_failed(prompts::NO_INPUT, now, out)
            }
            CallbackStage::Storing | CallbackStage::Done => {}
        }
    }

    /// A wrong or missing answer: ask again, or after `max_retries` give up on the callback —
    /// back to waiting when asked from a queue, else on to the operator.
    fn callback_failed(&mut self, apology: &'static str, now: Timestamp, out: &mut Vec<Action>) {
        self.failures = self.failures.saturating_add(1);
        if self.failures < self.flow.max_retries {
            return self.callback_prompt(vec![Arc::from(apology)], out);
        }
        let Step::Callback(request) = &mut self.step else {
            return;
        };
        match request.from_queue.take() {
            Some(queueing) => {
                self.step = Step::Queued(*queueing);
                self.failures = 0;
                self.hold(now, out);
            }
            None => {
                let operator = self.flow.operator.clone();
                self.goto(&operator, now, out);
            }
        }
    }

    fn store_callback(&mut self, out: &mut Vec<Action>) {
        let Step::Callback(request) = &mut self.step else {
            return;
        };
        request.stage = CallbackStage::Storing;
        out.push(Action::RequestCallback {
            queue: request.queue.clone(),
            number: request.number.clone(),
            keeps_place: request.from_queue.is_some(),
        });
    }

    pub(super) fn on_callback(
        &mut self,
        outcome: CallbackOutcome,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Step::Callback(request) = &mut self.step else {
            return;
        };
        if request.stage != CallbackStage::Storing {
            return;
        }
        let confirmation = match outcome {
            CallbackOutcome::Scheduled => prompts::CALLBACK_SCHEDULED,
            CallbackOutcome::ScheduledLater => prompts::CALLBACK_SCHEDULED_LATER,
            CallbackOutcome::Failed => {
                // Nothing was stored: a caller from a queue keeps waiting, others go on.
                return match request.from_queue.take() {
                    Some(queueing) => {
                        self.step = Step::Queued(*queueing);
                        if std::mem::take(&mut self.agent_waiting) {
                            self.agent_reserved(out);
                        } else {
                            self.announce_in_queue(&[prompts::TECHNICAL_DIFFICULTY], out);
                        }
                    }
                    None => {
                        let next = request.next.clone();
                        self.goto_or_end(next, Some(prompts::TECHNICAL_DIFFICULTY), now, out);
                    }
                };
            }
        };
        if request.from_queue.take().is_some() {
            out.push(Action::LeaveQueue {
                reason: LeaveReason::Callback,
            });
            // The confirmation says goodbye: the call ends after it.
            request.next = None;
        }
        request.stage = CallbackStage::Done;
        self.play(vec![Arc::from(confirmation)], out);
    }

    /// Play prompts to a queued caller, then hold audio again.
    fn announce_in_queue(&mut self, prompt_ids: &[&str], out: &mut Vec<Action>) {
        if let Step::Queued(queueing) = &mut self.step {
            queueing.stage = QueueStage::Announcing;
        }
        self.play(prompt_ids.iter().map(|id| Arc::from(*id)).collect(), out);
    }
}

fn add(at: Timestamp, after: Duration) -> Timestamp {
    at.checked_add(after).unwrap_or(Timestamp::MAX)
}
