//! The per-node dispatcher: matches the calls this node carries with free agents, through the
//! store, and hands each reservation to the call's session.
//!
//! A session [`Router::join`]s its call to a queue and waits on the receiver it gets back. The
//! dispatch loop ([`Router::run`]) runs a round whenever something changed ([`Router::wake`]: a
//! call joined or left, an agent came free) and at least every [`ROUND_EVERY`] (shifts start and
//! end, wrap-ups run out, agents change on other nodes), every [`BUSY_ROUND_EVERY`] while
//! callers wait here. A round asks the store to reserve the
//! head of each queue for one of its candidates ([`QueuePolicy::candidates`]) until it has
//! nothing more to give; the store makes every reservation atomically and exactly once across
//! all nodes, so this module only has to deliver what it is given to the right session.
//!
//! What this node keeps, and why:
//!
//! - **Waiters**: one per joined call, until its reservation is delivered (one reservation per
//!   join) or the call leaves. They are also the record of what to put back in the store should
//!   it lose its data: the store's data epoch is checked at the start of every round, and a new
//!   epoch (Redis restarted, or a failover promoted a replica) means registering the agents
//!   again and re-enqueueing every waiter with its original enqueue time, so callers get their
//!   old places back.
//! - **Pending reservations**: a reservation for a call with no waiter here. After an unanswered
//!   offer the call is back at the front of its queue before its next media stream has joined;
//!   the reservation is held [`PENDING_HOLD`] for that stream and released (the call removed,
//!   the agent freed) if none comes.
//! - **Handle times** per queue, for the estimated wait ([`HandleTimes`]).
//! - **Offers and calls in progress** it handed out, by agent, until their outcome: should the
//!   store lose them (a failover promoting a replica that missed the last writes), they are
//!   put back ([`Store::restore_offer`]) before anything is reserved, and every node waits
//!   [`SETTLE_AFTER_NEW_EPOCH`] before reserving, so that an agent ringing or talking on one
//!   node is not offered a second call by another that noticed the change first.
//!
//! Waiters are also re-enqueued now and then ([`REFRESH_EVERY`]): a call whose next stream joined
//! on this node while another node held the call as pending is taken out of the store when that
//! node releases it, and the refresh puts it back, with its original place, under this node.
//!
//! Store errors never stop the loop: they are logged (once per outage, with no caller data) and
//! the next round tries again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::eligibility::QueuePolicy;
use crate::config::Config;
use crate::routing::estimate::HandleTimes;
use crate::store::call_record::{CONNECTED_DEADLINE_MS, RING_GRACE_MS};
use crate::store::stats::QueueStatEvent;
use crate::store::{
    AgentStatus, CallStep, Enqueued, MissedOffer, QueuedCall, Reservation, Store, StoreError,
};
use crate::telemetry::Metrics;
use crate::telemetry::{Change, ChangeEvent, EventBus, EventKind};

/// Offers an agent may miss in a row before they are put on break.
pub const MAX_MISSED_OFFERS: u32 = 2;
/// A round runs at least this often, woken or not.
pub const ROUND_EVERY: Duration = Duration::from_secs(1);
/// ... and this often while callers wait on this node. The store never skips the head of a
/// queue, and only the node carrying the head call may reserve it; when an agent comes free on
/// another node, nothing wakes this one (the store has no change notification), so this is how
/// long the head call can wait behind a free agent. (In `tests/routing_two_nodes.rs`, 200
/// callers interleaved over two nodes took 18.7 s to serve with one round a second and 2.3 s
/// with this.) The cost is a store exchange per queue per round, only on nodes with callers
/// waiting.
pub const BUSY_ROUND_EVERY: Duration = Duration::from_millis(100);
/// After the store's data epoch changed, how long a node reserves nothing: long enough for
/// every other node to notice the change and put back the offers it handed out (a node finds
/// the new master within the Sentinel pause, at most 1 s, and checks the epoch at its next
/// round, at most [`ROUND_EVERY`] later).
pub const SETTLE_AFTER_NEW_EPOCH: Duration = Duration::from_secs(2);
/// How long a reservation for a call with no waiter here is kept for the call's next stream.
pub const PENDING_HOLD: Duration = Duration::from_secs(10);
/// How often, and how many times, a failed join is taken out of a store that did not answer.
const WITHDRAW_RETRY_EVERY: Duration = Duration::from_secs(1);
const WITHDRAW_ATTEMPTS: usize = 60;
/// How often a round looks for calls whose records passed their safety deadline.
const EXPIRY_EVERY: Duration = Duration::from_secs(5);
/// Most expired records one round releases.
const EXPIRY_BATCH: usize = 64;
/// After the store failed, expired records wait this long: the nodes renew their leases
/// first (every few seconds), so a record the outage held up is not taken for a lost call.
const EXPIRY_AFTER_OUTAGE: Duration = Duration::from_secs(20);
/// How often each waiter's call is put in the store again (see the module documentation).
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// Wait for another node's change that may let this node reserve a call: an agent freed or
/// made available, or a call queued or put back. `false` once the event bus is gone.
async fn remote_change(
    elsewhere: &mut Option<tokio::sync::broadcast::Receiver<ChangeEvent>>,
) -> RemoteChange {
    let Some(receiver) = elsewhere else {
        return std::future::pending().await;
    };
    loop {
        match receiver.recv().await {
            Ok(event) => {
                if matches!(
                    event.change,
                    Change::Status
                        | Change::Finished
                        | Change::WrapUpEnded
                        | Change::Missed
                        | Change::Released
                        | Change::Left
                        | Change::Abandoned
                        | Change::Joined
                ) {
                    return RemoteChange::Event(event);
                }
            }
            // Missed some: one round covers whatever they were.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                return RemoteChange::Missed;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return RemoteChange::Gone,
        }
    }
}

/// What [`remote_change`] saw.
enum RemoteChange {
    Event(ChangeEvent),
    /// Some events were missed.
    Missed,
    /// The event bus is gone.
    Gone,
}

/// How often the router notes the agents' statuses, to restore them if the store loses its data.
const STATUS_SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
/// Most waiters re-enqueued by one round's refresh, so a node with many callers spreads the
/// work over several rounds instead of delaying one round's reservations.
const REFRESH_BATCH: usize = 64;
/// Added to a wrap-up's end before the round that frees the agent: the store compares
/// milliseconds, and a round a hair early would find the agent still wrapping up.
const WRAP_UP_SLACK: Duration = Duration::from_millis(2);

/// Where the router reads "now" from: the wall clock in service, a moveable one in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Why a call cannot join its queue.
#[derive(Debug, thiserror::Error)]
pub enum JoinRefusal {
    /// Outside the queue's schedule, nobody with its skills on shift, or no such queue: the
    /// queue's `when_closed` node runs.
    #[error("the queue is closed (outside its hours or nobody with its skills on shift)")]
    Closed,
    /// The store cannot be reached: the caller gets the apology path.
    #[error("{0}")]
    Unavailable(StoreError),
    /// The call's record says it waits in no queue (it left, or ended): this join came late.
    #[error("the call is no longer waiting for a queue")]
    Gone,
}

/// What a waiting caller is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    /// 1-based place in the queue; `None` once the call is reserved (or unknown to the store).
    pub position: Option<usize>,
    /// `None` when there is no position or nobody is on shift for the queue.
    pub estimate: Option<Duration>,
}

/// Why a call left its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The caller hung up: an abandoned call if it was still waiting or ringing an agent.
    HungUp,
    /// The queue's `max_wait_secs` ran out.
    TimedOut,
    /// The caller asked to be called back.
    Callback,
}

/// The dispatcher of one careline node. Share it as `Arc<Router>`.
pub struct Router {
    store: Arc<dyn Store>,
    /// This node's id: the store gives this router only the calls enqueued under it.
    node_id: String,
    /// Replaced whole by a configuration reload; a round works on one snapshot.
    policy: std::sync::RwLock<Arc<QueuePolicy>>,
    clock: Clock,
    handle_times: Mutex<HandleTimes>,
    /// Waiters and pending reservations under one lock: a reservation that arrives as its call
    /// joins must end up with the joining session, whichever happens first.
    calls: Mutex<Calls>,
    wake: Notify,
    /// Ends of wrap-ups started on this node, earliest first: a round runs as each ends, so the
    /// agent is offered the next call at once rather than at the next periodic round.
    wrap_up_ends: Mutex<BinaryHeap<Reverse<Instant>>>,
    /// This node's `/metrics` counters, once the server attached them.
    metrics: std::sync::OnceLock<Arc<Metrics>>,
    /// Where joins, reservations, answers and hang-ups are announced (dashboards); none in
    /// tests and tools that do not watch.
    events: Option<Arc<EventBus>>,
}

#[derive(Default)]
struct Calls {
    /// By call id.
    waiters: HashMap<String, Waiter>,
    /// By call id.
    pending: HashMap<String, Pending>,
    /// By agent id: offers this node made (delivered or held) and calls it saw answered, until
    /// their outcome. What goes back in the store if the store loses it.
    engaged: HashMap<String, Engaged>,
}

struct Engaged {
    call: QueuedCall,
    since_ms: i64,
    answered: bool,
}

struct Waiter {
    /// As the session joined it: what goes back in the store if the store loses it.
    call: QueuedCall,
    deliver: mpsc::UnboundedSender<Reservation>,
    /// When the call was last put in the store.
    enqueued: Instant,
}

struct Pending {
    reservation: Reservation,
    release_at: Instant,
}

/// What the loop remembers between rounds.
struct LoopState {
    /// The store's data epoch the agents and calls were last registered under.
    epoch: Option<String>,
    /// The store failed in an earlier round and has not answered a whole round since.
    store_failing: bool,
    /// The agents' statuses (with when each was set) as last read from the store, and when:
    /// after the store loses its data, agents come back with these rather than all `offline`.
    statuses: HashMap<String, (AgentStatus, i64)>,
    statuses_read: Option<Instant>,
    /// When the next look for expired call records may run: every [`EXPIRY_EVERY`], and not
    /// until the nodes have renewed their leases after the store failed (a record whose
    /// renewals an outage held up is not a lost call).
    expiry_after: Instant,
    /// No reservation before this: the data epoch changed a moment ago.
    settle_until: Option<Instant>,
}

impl Router {
    /// A router reading the wall clock.
    pub fn new(store: Arc<dyn Store>, config: &Config, node_id: String) -> Arc<Router> {
        Router::with_clock(store, config, node_id, Arc::new(Timestamp::now))
    }

    /// A router reading `clock` (tests move it with tokio's paused time).
    pub fn with_clock(
        store: Arc<dyn Store>,
        config: &Config,
        node_id: String,
        clock: Clock,
    ) -> Arc<Router> {
        Arc::new(Router::build(store, config, node_id, clock, None))
    }

    /// A router reading `clock` that publishes every change it makes to `events`.
    pub fn with_events(
        store: Arc<dyn Store>,
        config: &Config,
        node_id: String,
        clock: Clock,
        events: Arc<EventBus>,
    ) -> Arc<Router> {
        Arc::new(Router::build(store, config, node_id, clock, Some(events)))
    }

    fn build(
        store: Arc<dyn Store>,
        config: &Config,
        node_id: String,
        clock: Clock,
        events: Option<Arc<EventBus>>,
    ) -> Router {
        Router {
            store,
            node_id,
            policy: std::sync::RwLock::new(Arc::new(QueuePolicy::from_config(config))),
            clock,
            handle_times: Mutex::new(HandleTimes::new()),
            calls: Mutex::new(Calls::default()),
            wake: Notify::new(),
            wrap_up_ends: Mutex::new(BinaryHeap::new()),
            events,
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// Count reservations and abandoned calls in this node's `/metrics`.
    pub fn attach_metrics(&self, metrics: Arc<Metrics>) {
        // Set once at start-up; a second call changes nothing.
        let _ = self.metrics.set(metrics);
    }

    /// Count a queue statistic in the store, in the background: a caller never waits for it,
    /// and a store that cannot take it loses one count, not the call.
    pub fn record(&self, queue: &str, event: QueueStatEvent) {
        let store = self.store.clone();
        let queue = queue.to_owned();
        let now_ms = (self.clock)().as_millisecond();
        let metrics = self.metrics.get().cloned();
        tokio::spawn(async move {
            if let Err(error) = store.record_queue_stat(&queue, event, now_ms).await {
                tracing::debug!(%error, %queue, "a queue statistic was not counted");
                if let Some(metrics) = metrics {
                    metrics.store_error();
                }
            }
        });
    }

    /// Announce a change, stamped with the router's clock.
    fn publish(
        &self,
        kind: EventKind,
        change: Change,
        fill: impl FnOnce(ChangeEvent) -> ChangeEvent,
    ) {
        if let Some(events) = &self.events {
            let at_ms = (self.clock)().as_millisecond();
            events.publish(fill(ChangeEvent::new(kind, change, at_ms)));
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// "Now" by the router's clock: what every change to queues and agents is stamped with.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// The queues' routing rules (open/closed, candidates, agents on shift).
    pub fn policy(&self) -> Arc<QueuePolicy> {
        self.policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A reloaded configuration's queues, agents and shifts; the next round uses them.
    pub fn reload(&self, config: &Config) {
        *self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::new(QueuePolicy::from_config(config));
        self.wake();
    }

    /// A call this node carries joins its queue; `call.node` is set to this node. Joining is
    /// idempotent: a call that is already waiting (a re-join after an unanswered offer) keeps
    /// its original place, so pass the call as it first joined. The receiver gets the call's
    /// reservation, once; a later join of the same call replaces this one (its receiver then
    /// ends). A reservation this node already holds for the call is delivered at once.
    ///
    /// A closed queue refuses new calls without queueing them; a call the store still has
    /// waiting is a re-join and keeps its place even if the queue closed meanwhile.
    pub async fn join(
        &self,
        mut call: QueuedCall,
        now: Timestamp,
    ) -> Result<mpsc::UnboundedReceiver<Reservation>, JoinRefusal> {
        call.node.clone_from(&self.node_id);
        let (deliver, receiver) = mpsc::unbounded_channel();
        if self.deliver_held(&call.call_sid, &deliver) {
            return Ok(receiver);
        }
        if !self.policy().is_open(&call.queue, now) {
            if self.policy().queue(&call.queue).is_none() {
                tracing::warn!(queue = %call.queue, "a call asked for a queue the configuration does not have");
                return Err(JoinRefusal::Closed);
            }
            let place = self
                .store
                .position(&call.queue, &call.call_sid)
                .await
                .map_err(JoinRefusal::Unavailable)?;
            if place.is_none() {
                return Err(JoinRefusal::Closed);
            }
        }
        {
            let mut calls = self.calls();
            // Checked again under the lock that delivery takes: a reservation held from here
            // on finds the waiter instead.
            if let Some(pending) = calls.pending.remove(&call.call_sid) {
                let _ = deliver.send(pending.reservation);
                return Ok(receiver);
            }
            calls.waiters.insert(
                call.call_sid.clone(),
                Waiter {
                    call: call.clone(),
                    deliver: deliver.clone(),
                    enqueued: Instant::now(),
                },
            );
        }
        let refused = match self.store.enqueue(&call).await {
            Ok(Enqueued::Waiting) => None,
            // Reserved under the node that carried the call before (it died, or the call's
            // stream moved): the reservation is this node's to hand over now.
            Ok(Enqueued::Reserved(reservation)) => {
                self.hand_over(reservation);
                return Ok(receiver);
            }
            Ok(Enqueued::Refused) => Some(JoinRefusal::Gone),
            Err(error) => Some(JoinRefusal::Unavailable(error)),
        };
        if let Some(refusal) = refused {
            let mut calls = self.calls();
            if calls
                .waiters
                .get(&call.call_sid)
                .is_some_and(|waiter| waiter.deliver.same_channel(&deliver))
            {
                calls.waiters.remove(&call.call_sid);
            }
            return Err(refusal);
        }
        self.publish(EventKind::Queue, Change::Joined, |event| {
            event.queue(&call.queue).call(&call.call_sid)
        });
        self.wake();
        Ok(receiver)
    }

    /// Hand a reservation held for `call_sid` to a joining session, if there is one.
    fn deliver_held(&self, call_sid: &str, deliver: &mpsc::UnboundedSender<Reservation>) -> bool {
        let Some(pending) = self.calls().pending.remove(call_sid) else {
            return false;
        };
        tracing::debug!(%call_sid, agent = %pending.reservation.agent_id,
            "held reservation delivered to the call's new stream");
        // The caller holds the receiver: this send cannot fail.
        let _ = deliver.send(pending.reservation);
        true
    }

    /// The call's place in its queue and the estimated wait.
    pub async fn status(
        &self,
        queue: &str,
        call_sid: &str,
        now: Timestamp,
    ) -> Result<QueueStatus, StoreError> {
        let position = self.store.position(queue, call_sid).await?;
        let estimate = position.and_then(|position| {
            let on_shift = self.policy().agents_on_shift(queue, now);
            self.handle_times().estimate(queue, position, on_shift)
        });
        Ok(QueueStatus { position, estimate })
    }

    /// The call left its queue (hang-up, max wait, callback): it leaves the store, freeing an
    /// agent reserved for it, and a round runs so a freed agent takes the next call. Not for a
    /// call handed to its agent: that one is settled by the offer's outcome. A store
    /// that cannot be reached now is retried by the loop: the call stays under this node with no
    /// waiter, so it is reserved and released like any call nobody is waiting for.
    pub async fn leave(&self, call_sid: &str, reason: LeaveReason) {
        {
            let mut calls = self.calls();
            calls.waiters.remove(call_sid);
            // A hang-up while ringing frees the agent; an answered call ends by its outcome.
            calls
                .engaged
                .retain(|_, engaged| engaged.answered || engaged.call.call_sid != call_sid);
        }
        match self.store.remove_call(call_sid).await {
            Ok(removed) => {
                self.calls().pending.remove(call_sid);
                match removed {
                    // Only a call still waiting or ringing an agent was abandoned; a hang-up
                    // after the agent answered (or for a call never queued) is not.
                    Some(call) if reason == LeaveReason::HungUp => {
                        tracing::info!(%call_sid, queue = %call.queue, "caller hung up while queued (abandoned)");
                        let wait_ms = (self.clock)().as_millisecond() - call.enqueued_at_ms;
                        self.record(
                            &call.queue,
                            QueueStatEvent::Abandoned {
                                wait_ms: wait_ms.max(0),
                            },
                        );
                        if let Some(metrics) = self.metrics.get() {
                            metrics.abandoned();
                        }
                        self.publish(EventKind::Queue, Change::Abandoned, |event| {
                            event.queue(&call.queue).call(call_sid)
                        });
                    }
                    Some(call) => {
                        tracing::debug!(%call_sid, queue = %call.queue, ?reason, "call left its queue");
                        self.publish(EventKind::Queue, Change::Left, |event| {
                            event.queue(&call.queue).call(call_sid)
                        });
                    }
                    None => {}
                }
            }
            Err(error) => {
                tracing::warn!(%call_sid, ?reason, %error, "the call could not be taken out of its queue; the router will release it");
            }
        }
        self.wake();
    }

    /// This node stops waiting on behalf of a call whose stream ended without the call leaving
    /// its queue (the stream broke, or this node drains): the call keeps its place and its
    /// reservation in the store for its next stream, on whichever node that lands.
    pub fn forget(&self, call_sid: &str) {
        let mut calls = self.calls();
        calls.waiters.remove(call_sid);
        calls.pending.remove(call_sid);
    }

    /// A join that failed (the store did not answer in time) may still land later: take out
    /// whatever it left under this node once the store answers, trying for a while.
    pub async fn withdraw(&self, call_sid: &str) {
        self.forget(call_sid);
        for _ in 0..WITHDRAW_ATTEMPTS {
            match self
                .store
                .remove_call_of_node(call_sid, &self.node_id)
                .await
            {
                Ok(removed) => {
                    if removed {
                        tracing::info!(%call_sid, "a join that had failed landed late; taken out");
                        self.wake();
                    }
                    return;
                }
                Err(error) => {
                    tracing::debug!(%call_sid, %error, "a failed join cannot be withdrawn yet");
                    tokio::time::sleep(WITHDRAW_RETRY_EVERY).await;
                }
            }
        }
        tracing::warn!(%call_sid, "a failed join could not be withdrawn; the record's deadline releases it");
    }

    /// The offer of `call_sid` to `agent_id` has its outcome: nothing to put back any more.
    fn disengage(&self, agent_id: &str, call_sid: &str) {
        let mut calls = self.calls();
        if calls
            .engaged
            .get(agent_id)
            .is_some_and(|engaged| engaged.call.call_sid == call_sid)
        {
            calls.engaged.remove(agent_id);
        }
    }

    /// Something changed (an agent became available, a call joined): a round runs at once.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The agent answered the offer.
    pub async fn offer_answered(
        &self,
        agent_id: &str,
        call_sid: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.store
            .offer_answered(agent_id, call_sid, now.as_millisecond())
            .await?;
        if let Some(engaged) = self.calls().engaged.get_mut(agent_id)
            && engaged.call.call_sid == call_sid
        {
            engaged.answered = true;
            engaged.since_ms = now.as_millisecond();
        }
        self.publish(EventKind::Call, Change::Answered, |event| {
            event.agent(agent_id).call(call_sid)
        });
        Ok(())
    }

    /// The agent did not answer: the call goes back to the front of its queue, the agent is
    /// freed, or put on break after [`MAX_MISSED_OFFERS`] misses in a row.
    pub async fn offer_missed(
        &self,
        agent_id: &str,
        call: &QueuedCall,
        now: Timestamp,
    ) -> Result<MissedOffer, StoreError> {
        let outcome = self
            .store
            .offer_missed(agent_id, call, MAX_MISSED_OFFERS, now.as_millisecond())
            .await?;
        self.disengage(agent_id, &call.call_sid);
        self.publish(EventKind::Call, Change::Missed, |event| {
            event
                .queue(&call.queue)
                .agent(agent_id)
                .call(&call.call_sid)
        });
        if outcome == MissedOffer::PutOnBreak {
            tracing::info!(agent = %agent_id, misses = MAX_MISSED_OFFERS,
                "agent missed offers in a row and was put on break");
        }
        self.wake();
        Ok(outcome)
    }

    /// The agent's call ended after `handled` (answer to hang-up): wrap-up for the queue's
    /// `wrap_up_secs`, then free again. `handled` plus the wrap-up is the time the call took
    /// the agent, and feeds the queue's estimated waits.
    pub async fn call_finished(
        &self,
        agent_id: &str,
        call_sid: &str,
        queue: &str,
        handled: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let wrap_up = Duration::from_secs(
            self.policy()
                .queue(queue)
                .map_or(0, |config| config.wrap_up_secs),
        );
        let wrap_up_ms = i64::try_from(wrap_up.as_millis()).unwrap_or(i64::MAX);
        let now_ms = now.as_millisecond();
        self.store
            .call_finished(
                agent_id,
                call_sid,
                now_ms.saturating_add(wrap_up_ms),
                now_ms,
            )
            .await?;
        self.disengage(agent_id, call_sid);
        self.publish(EventKind::Call, Change::Finished, |event| {
            event.queue(queue).agent(agent_id).call(call_sid)
        });
        self.handle_times()
            .record(queue, handled.saturating_add(wrap_up));
        // A wrap-up too long for the clock never ends while this process runs: nothing to wake.
        if !wrap_up.is_zero()
            && let Some(at) = Instant::now().checked_add(wrap_up.saturating_add(WRAP_UP_SLACK))
        {
            self.wrap_up_ends().push(Reverse(at));
        }
        self.wake();
        Ok(())
    }

    /// The dispatch loop, until `shutdown` is cancelled. Reservations it holds for calls that
    /// never joined are released on the way out.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut state = LoopState {
            epoch: None,
            store_failing: false,
            statuses: HashMap::new(),
            statuses_read: None,
            expiry_after: Instant::now(),
            settle_until: None,
        };
        // Another node freeing an agent or queuing a call wakes this one at once, instead of at
        // its next timed round (one Redis round trip rather than up to a round's period).
        let mut elsewhere = self.events.as_ref().map(|events| events.subscribe_remote());
        // The first round registers the agents and learns the store's data epoch.
        self.round(&mut state).await;
        loop {
            let every = if self.calls().waiters.is_empty() {
                ROUND_EVERY
            } else {
                BUSY_ROUND_EVERY
            };
            let next_round = self.next_round_at(Instant::now() + every);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(next_round) => {}
                change = remote_change(&mut elsewhere) => match change {
                    // Any node answers a call's dial status: an offer this node made may have
                    // its outcome on another, and is then nothing to put back any more.
                    RemoteChange::Event(event) => {
                        if matches!(event.change, Change::Finished | Change::Missed | Change::Released)
                            && let (Some(agent), Some(call)) = (&event.agent, &event.call)
                        {
                            self.disengage(agent, call);
                        }
                    }
                    RemoteChange::Missed => {}
                    RemoteChange::Gone => elsewhere = None,
                }
            }
            // A round is never cut short: a reservation the store made must reach its waiter.
            self.round(&mut state).await;
        }
        self.release_all_pending().await;
    }

    /// When the loop must run a round at the latest: the periodic round, the end of a wrap-up
    /// or the release of a held reservation, whichever comes first.
    fn next_round_at(&self, periodic: Instant) -> Instant {
        let wrap_up_end = self.wrap_up_ends().peek().map(|Reverse(at)| *at);
        let release = self
            .calls()
            .pending
            .values()
            .map(|pending| pending.release_at)
            .min();
        [wrap_up_end, release]
            .into_iter()
            .flatten()
            .fold(periodic, Instant::min)
    }

    async fn round(&self, state: &mut LoopState) {
        {
            let started = Instant::now();
            let mut ends = self.wrap_up_ends();
            let mut ended = false;
            while ends.peek().is_some_and(|Reverse(at)| *at <= started) {
                ends.pop();
                ended = true;
            }
            drop(ends);
            if ended {
                // The heap keeps only times: the event says an agent is free, not who.
                self.publish(EventKind::Agent, Change::WrapUpEnded, |event| event);
            }
        }
        let outcome = self.dispatch_round(state).await;
        match outcome {
            Ok(()) if state.store_failing => {
                state.store_failing = false;
                tracing::info!("routing: the store answers again");
            }
            Ok(()) => {}
            Err(error) if !state.store_failing => {
                state.store_failing = true;
                state.expiry_after = Instant::now() + EXPIRY_AFTER_OUTAGE;
                tracing::warn!(%error, "routing: the store failed; retrying every round until it answers");
            }
            Err(error) => {
                state.expiry_after = Instant::now() + EXPIRY_AFTER_OUTAGE;
                tracing::debug!(%error, "routing: the store still fails");
            }
        }
    }

    /// Reserve what can be reserved, then housekeeping. Stops at the first store error: the
    /// next round starts over.
    async fn dispatch_round(&self, state: &mut LoopState) -> Result<(), StoreError> {
        let now = (self.clock)();
        // First: on a store that lost data (restarted, or a replica promoted by a failover),
        // nothing is reserved before this node's agents and calls are back in it.
        self.check_epoch(state, now).await?;
        let mut first_error = None;
        let policy = self.policy();
        let settling = state
            .settle_until
            .is_some_and(|until| Instant::now() < until);
        for queue in policy.queue_names().filter(|_| !settling) {
            let candidates = policy.candidates(queue, now);
            if candidates.is_empty() {
                continue;
            }
            let strategy = policy.strategy(queue);
            loop {
                let reserved = self
                    .store
                    .reserve(
                        queue,
                        &self.node_id,
                        &candidates,
                        strategy,
                        now.as_millisecond(),
                    )
                    .await;
                match reserved {
                    Ok(Some(reservation)) => self.deliver(reservation),
                    Ok(None) => break,
                    // Unreachable: every other queue would wait out the same deadline.
                    Err(error @ StoreError::Unavailable(_)) => return Err(error),
                    // Something wrong with this queue's data must not stop the other queues.
                    Err(error) => {
                        tracing::debug!(%queue, %error, "routing: the queue could not be served this round");
                        first_error.get_or_insert(error);
                        break;
                    }
                }
            }
        }
        self.release_expired_pending().await?;
        self.snapshot_statuses(state).await?;
        self.expire_lost_calls(state, now).await?;
        self.refresh_waiters().await?;
        first_error.map_or(Ok(()), Err)
    }

    /// A reservation this node's round made: counted, announced, handed over.
    fn deliver(&self, reservation: Reservation) {
        if let Some(metrics) = self.metrics.get() {
            metrics.reservation();
        }
        self.publish(EventKind::Call, Change::Reserved, |event| {
            event
                .queue(&reservation.call.queue)
                .agent(&reservation.agent_id)
                .call(&reservation.call.call_sid)
        });
        self.hand_over(reservation);
    }

    /// Hand a reservation to its call's waiter, or hold it for the call's next stream.
    fn hand_over(&self, reservation: Reservation) {
        let mut calls = self.calls();
        let call_sid = reservation.call.call_sid.clone();
        calls.engaged.insert(
            reservation.agent_id.clone(),
            Engaged {
                call: reservation.call.clone(),
                since_ms: reservation.reserved_at_ms,
                answered: false,
            },
        );
        let reservation = match calls.waiters.remove(&call_sid) {
            Some(waiter) => match waiter.deliver.send(reservation) {
                Ok(()) => {
                    tracing::debug!(%call_sid, "call reserved");
                    return;
                }
                // The session dropped its receiver without leaving: hold the reservation as
                // for any call without a waiter.
                Err(mpsc::error::SendError(reservation)) => reservation,
            },
            None => reservation,
        };
        tracing::debug!(%call_sid, agent = %reservation.agent_id,
            "reservation for a call with no waiter here; held for its next stream");
        calls.pending.insert(
            call_sid,
            Pending {
                reservation,
                release_at: Instant::now() + PENDING_HOLD,
            },
        );
    }

    /// Release held reservations whose call never joined: the call leaves the store and the
    /// agent is free.
    async fn release_expired_pending(&self) -> Result<(), StoreError> {
        let now = Instant::now();
        let expired: Vec<Pending> = {
            let mut calls = self.calls();
            let sids: Vec<String> = calls
                .pending
                .iter()
                .filter(|(_, pending)| pending.release_at <= now)
                .map(|(sid, _)| sid.clone())
                .collect();
            sids.iter()
                .filter_map(|sid| calls.pending.remove(sid))
                .collect()
        };
        let mut expired = expired.into_iter();
        while let Some(pending) = expired.next() {
            if let Err(error) = self.release(&pending.reservation).await {
                // Keep what was not released for the next round.
                let mut calls = self.calls();
                for unreleased in std::iter::once(pending).chain(expired) {
                    let sid = unreleased.reservation.call.call_sid.clone();
                    calls.pending.entry(sid).or_insert(unreleased);
                }
                return Err(error);
            }
        }
        Ok(())
    }

    async fn release(&self, reservation: &Reservation) -> Result<(), StoreError> {
        let call_sid = &reservation.call.call_sid;
        let released = self
            .store
            .remove_call_of_node(call_sid, &self.node_id)
            .await?;
        self.disengage(&reservation.agent_id, call_sid);
        if !released {
            tracing::debug!(%call_sid, "a held reservation's call moved to another node; left to it");
            return Ok(());
        }
        self.publish(EventKind::Call, Change::Released, |event| {
            event
                .queue(&reservation.call.queue)
                .agent(&reservation.agent_id)
                .call(call_sid)
        });
        tracing::info!(%call_sid, agent = %reservation.agent_id,
            "no stream joined for a reserved call; the call was removed and the agent freed");
        // The call's stream may have joined while the release was on its way: its join found
        // the call reserved and changed nothing, so put it back now.
        let rejoined = self
            .calls()
            .waiters
            .get(call_sid)
            .map(|waiter| waiter.call.clone());
        if let Some(call) = rejoined {
            self.enqueue_again(vec![call]).await?;
        }
        self.wake();
        Ok(())
    }

    async fn release_all_pending(&self) {
        let held: Vec<Pending> = self.calls().pending.drain().map(|(_, p)| p).collect();
        for pending in held {
            self.disengage(
                &pending.reservation.agent_id,
                &pending.reservation.call.call_sid,
            );
            if let Err(error) = self
                .store
                .remove_call_of_node(&pending.reservation.call.call_sid, &self.node_id)
                .await
            {
                tracing::warn!(call_sid = %pending.reservation.call.call_sid, %error,
                    "a held reservation could not be released at shutdown");
            }
        }
    }

    /// A new data epoch means the store may have lost data (or this is the first round):
    /// register the agents, give back the statuses the store lost, and put every waiting call
    /// back, with its original enqueue time.
    async fn check_epoch(&self, state: &mut LoopState, now: Timestamp) -> Result<(), StoreError> {
        let epoch = self.store.data_epoch().await?;
        if state.epoch.as_deref() == Some(epoch.as_str()) {
            return Ok(());
        }
        let agent_ids = self.policy().agent_ids();
        // What the store still knows: after a failover, usually everything but the last
        // few writes; after an empty restart, nothing.
        let kept: HashMap<String, (AgentStatus, i64)> = if state.epoch.is_some() {
            self.store
                .agents()
                .await?
                .into_iter()
                .map(|agent| (agent.id, (agent.status, agent.status_changed_ms)))
                .collect()
        } else {
            HashMap::new()
        };
        if !agent_ids.is_empty() {
            self.store
                .register_agents(&agent_ids, now.as_millisecond())
                .await?;
        }
        if state.epoch.is_some() {
            // Agents who were at their desks still are: a status the store lost (the agent
            // is gone, or has an older status than this node last read) is set again.
            for (agent_id, (status, changed_ms)) in &state.statuses {
                let lost = kept
                    .get(agent_id)
                    .is_none_or(|(kept, kept_ms)| kept != status && kept_ms < changed_ms);
                if lost && *status != AgentStatus::Offline && agent_ids.contains(agent_id) {
                    self.store
                        .set_agent_status(agent_id, *status, now.as_millisecond())
                        .await?;
                }
            }
        }
        if state.epoch.is_some() {
            self.restore_offers(now).await?;
            state.settle_until = Some(Instant::now() + SETTLE_AFTER_NEW_EPOCH);
        }
        let waiting: Vec<QueuedCall> = self
            .calls()
            .waiters
            .values()
            .map(|waiter| waiter.call.clone())
            .collect();
        let count = waiting.len();
        self.enqueue_again(waiting).await?;
        if state.epoch.is_some() {
            tracing::warn!(
                calls = count,
                agents = agent_ids.len(),
                "the store's data changed hands (Redis restarted, or a failover promoted a replica): agents registered again, lost statuses restored and this node's waiting calls put back"
            );
        }
        state.epoch = Some(epoch);
        // The agents are back (as the store now has them): match them at once.
        self.wake();
        Ok(())
    }

    /// Calls whose records passed their safety deadline have lost every signal (no stream
    /// lease renewed, no dial status, no status callback): the record ends, and what was held
    /// for the call is released — its place in a queue, an agent reserved for it or talking to
    /// it. Counted in `/metrics` and logged. Each record is released by one node only.
    async fn expire_lost_calls(
        &self,
        state: &mut LoopState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if Instant::now() < state.expiry_after {
            return Ok(());
        }
        state.expiry_after = Instant::now() + EXPIRY_EVERY;
        let now_ms = now.as_millisecond();
        for record in self
            .store
            .expired_call_records(now_ms, EXPIRY_BATCH)
            .await?
        {
            let call_sid = &record.call_sid;
            if !self
                .store
                .remove_call_record(call_sid, record.version)
                .await?
            {
                continue;
            }
            self.forget(call_sid);
            if let Some(agent) = record.held_agent() {
                self.disengage(agent, call_sid);
            }
            let released = self.store.remove_call(call_sid).await?;
            let talking_agent = match &record.dial {
                Some(CallStep::Agent { agent_id, .. }) if record.answered_at_ms != 0 => {
                    Some(agent_id.as_str())
                }
                _ => None,
            };
            if let Some(agent_id) = talking_agent {
                self.store
                    .call_finished(agent_id, call_sid, now_ms, now_ms)
                    .await?;
            }
            if let Some(metrics) = self.metrics.get() {
                metrics.call_expired();
            }
            let agent = talking_agent.or_else(|| record.held_agent());
            tracing::warn!(%call_sid, phase = record.phase.as_str(), agent = agent.unwrap_or("-"),
                queued = released.is_some(),
                "a call lost every signal (no stream, dial status or status callback) past its deadline; released");
            self.publish(EventKind::Call, Change::Released, |event| {
                let event = event.call(call_sid);
                match agent {
                    Some(agent) => event.agent(agent),
                    None => event,
                }
            });
        }
        self.wake();
        Ok(())
    }

    /// Put back in the store the offers and calls in progress this node handed out, which the
    /// store may have lost: their agents must not be offered another call.
    async fn restore_offers(&self, now: Timestamp) -> Result<(), StoreError> {
        let now_ms = now.as_millisecond();
        // An offer or a call whose outcome never reached this node (the node that served it
        // was lost too) is not put back forever: no longer than any ring, or any call.
        self.calls().engaged.retain(|_, engaged| {
            let bound = if engaged.answered {
                CONNECTED_DEADLINE_MS
            } else {
                RING_GRACE_MS
            };
            now_ms.saturating_sub(engaged.since_ms) <= bound
        });
        let engaged: Vec<(String, QueuedCall, bool, i64)> = self
            .calls()
            .engaged
            .iter()
            .map(|(agent, engaged)| {
                (
                    agent.clone(),
                    engaged.call.clone(),
                    engaged.answered,
                    engaged.since_ms,
                )
            })
            .collect();
        for (agent_id, call, answered, since_ms) in engaged {
            let held = self
                .store
                .restore_offer(
                    &agent_id,
                    &call,
                    answered,
                    since_ms.min(now.as_millisecond()),
                )
                .await?;
            if !held {
                tracing::warn!(agent = %agent_id, call_sid = %call.call_sid,
                    "after the store's data changed hands, an agent this node offered a call holds another one");
            }
        }
        Ok(())
    }

    /// Remember the agents' statuses every [`STATUS_SNAPSHOT_EVERY`], for [`Router::check_epoch`].
    async fn snapshot_statuses(&self, state: &mut LoopState) -> Result<(), StoreError> {
        if state
            .statuses_read
            .is_some_and(|read| read.elapsed() < STATUS_SNAPSHOT_EVERY)
        {
            return Ok(());
        }
        let agents = self.store.agents().await?;
        state.statuses = agents
            .into_iter()
            .map(|agent| (agent.id, (agent.status, agent.status_changed_ms)))
            .collect();
        state.statuses_read = Some(Instant::now());
        Ok(())
    }

    /// Put waiters' calls back in the store in batches (see [`REFRESH_EVERY`]).
    async fn refresh_waiters(&self) -> Result<(), StoreError> {
        let now = Instant::now();
        let stale: Vec<QueuedCall> = {
            let mut calls = self.calls();
            calls
                .waiters
                .values_mut()
                .filter(|waiter| now.saturating_duration_since(waiter.enqueued) >= REFRESH_EVERY)
                .take(REFRESH_BATCH)
                .map(|waiter| {
                    waiter.enqueued = now;
                    waiter.call.clone()
                })
                .collect()
        };
        if stale.is_empty() {
            return Ok(());
        }
        self.enqueue_again(stale).await?;
        // A refreshed call may be waiting again under this node.
        self.wake();
        Ok(())
    }

    /// Enqueue calls this node has waiters for. A caller who left meanwhile (their `leave` may
    /// have reached the store before this enqueue) is taken out again.
    async fn enqueue_again(&self, calls: Vec<QueuedCall>) -> Result<(), StoreError> {
        for call in calls {
            match self.store.enqueue(&call).await? {
                Enqueued::Waiting => {}
                Enqueued::Reserved(reservation) => self.hand_over(reservation),
                // The caller is leaving: their session takes the call out.
                Enqueued::Refused => {
                    self.calls().waiters.remove(&call.call_sid);
                    continue;
                }
            }
            let still_waiting = self.calls().waiters.contains_key(&call.call_sid);
            if !still_waiting {
                self.store
                    .remove_call_of_node(&call.call_sid, &self.node_id)
                    .await?;
            }
        }
        Ok(())
    }

    fn calls(&self) -> MutexGuard<'_, Calls> {
        // No change to the maps can panic halfway, so a poisoned lock still guards whole maps.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn handle_times(&self) -> MutexGuard<'_, HandleTimes> {
        self.handle_times
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wrap_up_ends(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Instant>>> {
        self.wrap_up_ends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{AgentActivity, AgentStatus};

    /// `portal` (30 s wrap-up) and `billing` (weekdays 08:00–17:00 UTC) are served by anguyen
    /// (both skills) and bsmith (portal only); nobody has `overnight`.
    const CONFIG: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "main"
operator = "main"

[schedules.weekdays]
timezone = "UTC"
hours = [{ days = "mon-fri", from = "08:00", to = "17:00" }]

[queues.portal]
skills = ["portal"]
wrap_up_secs = 30

[queues.billing]
skills = ["billing"]
schedule = "weekdays"

[queues.overnight]
skills = ["overnight"]

[[agents]]
id = "anguyen"
name = "A. Nguyen"
skills = ["portal", "billing"]
dial = "+15550000001"

[[agents]]
id = "bsmith"
name = "B. Smith"
skills = ["portal"]
dial = "+15550000002"
"#;

    /// A Tuesday, noon UTC: billing is open.
    const TUESDAY_NOON: &str = "2026-12-01T12:00:00Z";
    const SATURDAY_NOON: &str = "2026-12-05T12:00:00Z";

    struct Desk {
        store: Arc<MemoryStore>,
        router: Arc<Router>,
        events: Arc<EventBus>,
        shutdown: CancellationToken,
        running: tokio::task::JoinHandle<()>,
    }

    /// A router on a memory store, its loop running, with a clock that starts at `start` and
    /// moves with tokio's (paused) time.
    async fn desk(start: &str) -> Desk {
        let start: Timestamp = start.parse().expect("test start time");
        let origin = Instant::now();
        let clock: Clock = Arc::new(move || {
            let elapsed = i64::try_from((Instant::now() - origin).as_millis()).expect("elapsed");
            Timestamp::from_millisecond(start.as_millisecond() + elapsed).expect("clock time")
        });
        let config: Config = toml::from_str(CONFIG).expect("test config parses");
        let store = Arc::new(MemoryStore::new());
        let events = Arc::new(EventBus::local("node-a".to_owned()));
        let router = Router::with_events(
            store.clone(),
            &config,
            "node-a".to_owned(),
            clock,
            events.clone(),
        );
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(router.clone().run(shutdown.clone()));
        settle().await;
        Desk {
            store,
            router,
            events,
            shutdown,
            running,
        }
    }

    impl Desk {
        fn now(&self) -> Timestamp {
            (self.router.clock)()
        }

        fn call(&self, sid: &str, queue: &str) -> QueuedCall {
            QueuedCall {
                call_sid: sid.to_owned(),
                queue: queue.to_owned(),
                node: "node-a".to_owned(),
                enqueued_at_ms: self.now().as_millisecond(),
                priority: 0,
                verification_failed: false,
                callback_id: None,
            }
        }

        async fn available(&self, agent: &str) {
            self.store
                .set_agent_status(agent, AgentStatus::Available, self.now().as_millisecond())
                .await
                .expect("status");
            self.router.wake();
        }

        async fn join(&self, call: &QueuedCall) -> mpsc::UnboundedReceiver<Reservation> {
            self.router
                .join(call.clone(), self.now())
                .await
                .expect("the queue takes the call")
        }

        async fn activity(&self, agent: &str) -> AgentActivity {
            self.store
                .agent(agent)
                .await
                .expect("agent")
                .expect("registered")
                .activity_at(self.now().as_millisecond())
        }

        async fn waiting(&self, queue: &str) -> Vec<String> {
            self.store
                .waiting(queue)
                .await
                .expect("waiting")
                .into_iter()
                .map(|call| call.call_sid)
                .collect()
        }
    }

    /// Let the loop finish what it was woken for (the memory store never makes it wait).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn reserved_for(call_sid: &str) -> impl Fn(&AgentActivity) -> bool + '_ {
        move |activity| matches!(activity, AgentActivity::Reserved { call_sid: held, .. } if held == call_sid)
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_is_offered_to_an_idle_agent_on_shift() {
        let desk = desk(TUESDAY_NOON).await;
        desk.available("anguyen").await;
        let call = desk.call("CA1", "portal");
        let mut offers = desk.join(&call).await;
        let reservation = offers.recv().await.expect("a reservation");
        assert_eq!(reservation.agent_id, "anguyen");
        assert_eq!(reservation.call, call);
        assert!(reserved_for("CA1")(&desk.activity("anguyen").await));
        assert_eq!(offers.recv().await, None, "one reservation per join");
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_becoming_available_is_matched_at_once_not_at_the_next_round() {
        let desk = desk(TUESDAY_NOON).await;
        let mut offers = desk.join(&desk.call("CA1", "portal")).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        desk.available("bsmith").await;
        let asked = Instant::now();
        let reservation = offers.recv().await.expect("a reservation");
        assert_eq!(reservation.agent_id, "bsmith");
        assert_eq!(
            Instant::now(),
            asked,
            "no timer had to fire before the reservation"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_change_a_call_goes_through_is_announced() {
        let desk = desk(TUESDAY_NOON).await;
        let mut events = desk.events.subscribe();
        let call = desk.call("CA1", "portal");
        let mut offers = desk.join(&call).await;
        desk.available("anguyen").await;
        let offer = offers.recv().await.expect("offer");
        desk.router
            .offer_answered("anguyen", "CA1", desk.now())
            .await
            .expect("answered");
        desk.router
            .call_finished(
                "anguyen",
                "CA1",
                &offer.call.queue,
                Duration::from_secs(60),
                desk.now(),
            )
            .await
            .expect("finished");
        let _second = desk.join(&desk.call("CA2", "portal")).await;
        desk.router.leave("CA2", LeaveReason::HungUp).await;
        // Past the 30 s wrap-up.
        tokio::time::sleep(Duration::from_secs(31)).await;
        let mut changes = Vec::new();
        while let Ok(event) = events.try_recv() {
            changes.push((event.change, event.queue, event.agent, event.call));
        }

        let some = |text: &str| Some(text.to_owned());
        assert_eq!(
            changes,
            [
                (Change::Joined, some("portal"), None, some("CA1")),
                (
                    Change::Reserved,
                    some("portal"),
                    some("anguyen"),
                    some("CA1")
                ),
                (Change::Answered, None, some("anguyen"), some("CA1")),
                (
                    Change::Finished,
                    some("portal"),
                    some("anguyen"),
                    some("CA1")
                ),
                (Change::Joined, some("portal"), None, some("CA2")),
                (Change::Abandoned, some("portal"), None, some("CA2")),
                (Change::WrapUpEnded, None, None, None),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_queue_refuses_the_call_without_queueing_it() {
        let weekend = desk(SATURDAY_NOON).await;
        weekend.available("anguyen").await;
        let refused = weekend
            .router
            .join(weekend.call("CA1", "billing"), weekend.now())
            .await;
        assert!(matches!(refused, Err(JoinRefusal::Closed)));
        assert!(weekend.waiting("billing").await.is_empty());

        let weekday = desk(TUESDAY_NOON).await;
        for queue in ["overnight", "no-such-queue"] {
            let refused = weekday
                .router
                .join(weekday.call("CA2", queue), weekday.now())
                .await;
            assert!(matches!(refused, Err(JoinRefusal::Closed)), "{queue}");
            assert!(weekday.waiting(queue).await.is_empty());
        }
        assert!(
            weekday
                .router
                .join(weekday.call("CA3", "billing"), weekday.now())
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_that_joins_again_after_closing_time_keeps_its_place() {
        let desk = desk("2026-12-01T16:59:50Z").await;
        let early = desk.call("CA1", "billing");
        let _offers = desk.join(&early).await;
        tokio::time::sleep(Duration::from_secs(20)).await;

        let late = desk
            .router
            .join(desk.call("CA2", "billing"), desk.now())
            .await;
        assert!(matches!(late, Err(JoinRefusal::Closed)));
        let _rejoined = desk.join(&early).await;
        assert_eq!(desk.waiting("billing").await, ["CA1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn two_missed_offers_put_the_agent_on_break_and_the_call_back_in_front() {
        let desk = desk(TUESDAY_NOON).await;
        let first = desk.call("CA1", "portal");
        let mut first_offers = desk.join(&first).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut second_offers = desk.join(&desk.call("CA2", "portal")).await;
        desk.available("anguyen").await;

        let offer = first_offers.recv().await.expect("first offer");
        assert_eq!(offer.agent_id, "anguyen");
        let missed = desk
            .router
            .offer_missed("anguyen", &offer.call, desk.now())
            .await
            .expect("missed");
        assert_eq!(missed, MissedOffer::BackToIdle);

        // The caller's next stream joins again, as the call first joined.
        let mut rejoined = desk.join(&first).await;
        let offer = rejoined.recv().await.expect("second offer");
        assert_eq!(offer.agent_id, "anguyen");
        assert_eq!(offer.call.enqueued_at_ms, first.enqueued_at_ms);
        let missed = desk
            .router
            .offer_missed("anguyen", &offer.call, desk.now())
            .await
            .expect("missed");
        assert_eq!(missed, MissedOffer::PutOnBreak);

        let _rejoined = desk.join(&first).await;
        settle().await;
        let agent = desk
            .store
            .agent("anguyen")
            .await
            .expect("agent")
            .expect("known");
        assert_eq!(agent.status, AgentStatus::Break);
        assert_eq!(desk.waiting("portal").await, ["CA1", "CA2"]);
        let status = desk
            .router
            .status("portal", "CA1", desk.now())
            .await
            .expect("status");
        assert_eq!(status.position, Some(1));
        assert!(second_offers.try_recv().is_err(), "nobody is free for CA2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_for_a_call_with_no_waiter_is_held_and_delivered_when_it_joins() {
        let desk = desk(TUESDAY_NOON).await;
        // The call is back in the queue, but its next stream has not joined yet.
        let call = desk.call("CA1", "portal");
        desk.store.enqueue(&call).await.expect("enqueue");
        desk.available("anguyen").await;
        settle().await;
        assert!(reserved_for("CA1")(&desk.activity("anguyen").await));

        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut offers = desk.join(&call).await;
        let reservation = offers.try_recv().expect("delivered at once");
        assert_eq!(reservation.agent_id, "anguyen");
        assert_eq!(reservation.call.call_sid, "CA1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_reservation_nobody_joins_for_is_released_after_ten_seconds() {
        let desk = desk(TUESDAY_NOON).await;
        desk.store
            .enqueue(&desk.call("CA1", "portal"))
            .await
            .expect("enqueue");
        desk.available("anguyen").await;
        settle().await;

        tokio::time::sleep(PENDING_HOLD - Duration::from_millis(10)).await;
        assert!(reserved_for("CA1")(&desk.activity("anguyen").await));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(desk.activity("anguyen").await, AgentActivity::Idle);
        assert!(desk.waiting("portal").await.is_empty());
        assert_eq!(
            desk.store
                .position("portal", "CA1")
                .await
                .expect("position"),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_removes_the_call_and_frees_its_agent_for_the_next_caller() {
        let desk = desk(TUESDAY_NOON).await;
        desk.available("anguyen").await;
        let mut first = desk.join(&desk.call("CA1", "portal")).await;
        assert_eq!(first.recv().await.expect("offer").agent_id, "anguyen");
        let mut second = desk.join(&desk.call("CA2", "portal")).await;
        settle().await;
        assert_eq!(desk.waiting("portal").await, ["CA2"]);

        desk.router.leave("CA1", LeaveReason::HungUp).await;
        let offer = second.recv().await.expect("the freed agent takes CA2");
        assert_eq!(offer.agent_id, "anguyen");

        let _third = desk.join(&desk.call("CA3", "portal")).await;
        settle().await;
        assert_eq!(desk.waiting("portal").await, ["CA3"]);
        desk.router.leave("CA3", LeaveReason::TimedOut).await;
        assert!(desk.waiting("portal").await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_call_the_agent_wraps_up_then_takes_the_next_caller() {
        let desk = desk(TUESDAY_NOON).await;
        desk.available("anguyen").await;
        let mut first = desk.join(&desk.call("CA1", "portal")).await;
        let offer = first.recv().await.expect("offer");
        desk.router
            .offer_answered("anguyen", "CA1", desk.now())
            .await
            .expect("answered");
        let mut second = desk.join(&desk.call("CA2", "portal")).await;

        tokio::time::sleep(Duration::from_secs(60)).await;
        let finished = Instant::now();
        desk.router
            .call_finished(
                "anguyen",
                "CA1",
                &offer.call.queue,
                Duration::from_secs(60),
                desk.now(),
            )
            .await
            .expect("finished");
        assert!(matches!(
            desk.activity("anguyen").await,
            AgentActivity::WrapUp { .. }
        ));
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(second.try_recv().is_err(), "still wrapping up");

        let offer = second.recv().await.expect("offer after wrap-up");
        assert_eq!(offer.agent_id, "anguyen");
        let waited = Instant::now() - finished;
        assert!(
            waited >= Duration::from_secs(30) && waited <= ROUND_EVERY + Duration::from_secs(30)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn status_gives_the_place_and_an_estimate_from_handle_times_and_agents_on_shift() {
        let desk = desk(TUESDAY_NOON).await;
        for sid in ["CA1", "CA2", "CA3"] {
            let _ = desk.join(&desk.call(sid, "portal")).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let status = desk
            .router
            .status("portal", "CA3", desk.now())
            .await
            .expect("status");
        // Two agents on shift for portal, no history yet: the second wave, 2 × 5 min.
        assert_eq!(
            status,
            QueueStatus {
                position: Some(3),
                estimate: Some(Duration::from_secs(600))
            }
        );

        desk.router
            .call_finished(
                "bsmith",
                "CA0",
                "portal",
                Duration::from_secs(60),
                desk.now(),
            )
            .await
            .expect("finished");
        let status = desk
            .router
            .status("portal", "CA3", desk.now())
            .await
            .expect("status");
        // 60 s talk + 30 s wrap-up per call.
        assert_eq!(status.estimate, Some(Duration::from_secs(180)));

        let overnight = desk.call("CA9", "overnight");
        desk.store.enqueue(&overnight).await.expect("enqueue");
        let status = desk
            .router
            .status("overnight", "CA9", desk.now())
            .await
            .expect("status");
        assert_eq!(
            status,
            QueueStatus {
                position: Some(1),
                estimate: None
            }
        );
        let status = desk
            .router
            .status("portal", "CA-unknown", desk.now())
            .await
            .expect("status");
        assert_eq!(
            status,
            QueueStatus {
                position: None,
                estimate: None
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_releases_reservations_held_for_calls_that_never_joined() {
        let mut desk = desk(TUESDAY_NOON).await;
        desk.store
            .enqueue(&desk.call("CA1", "portal"))
            .await
            .expect("enqueue");
        desk.available("anguyen").await;
        settle().await;
        assert!(reserved_for("CA1")(&desk.activity("anguyen").await));

        desk.shutdown.cancel();
        (&mut desk.running).await.expect("the loop ends");
        assert_eq!(desk.activity("anguyen").await, AgentActivity::Idle);
    }
}
