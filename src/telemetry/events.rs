//! Live change events: what changed in a queue, for an agent or on a call, as small JSON
//! messages that `GET /api/v1/events` (`crate::admin::events`) streams to dashboards.
//!
//! An event is a hint to refetch, not a copy of the state: it names the queue, agent or call
//! that changed and how, never a caller's number, a digit a caller keyed, or anything about a
//! patient (a call is named only by its Twilio call sid). Handlers and the router
//! [`EventBus::publish`]; every subscriber on this node gets the event at once.
//!
//! With a Redis store the nodes share one event stream: each event is also published on the
//! Redis channel `{key_prefix}:events` with the publishing node's id, and every node relays the
//! events of the *other* nodes to its own subscribers ([`EventBus::run`]). The relay reconnects
//! with backoff while Redis is down and never stops the server; events published meanwhile are
//! lost, which dashboards survive because they also refresh on a timer. With Sentinels, each
//! reconnection asks them for the master afresh, so the relay follows a failover. With the
//! memory store (one node) events stay local.
//!
//! A subscriber too slow to keep up skips the events it missed and is sent a `resync` event
//! instead, telling it to refetch everything.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;
use crate::store::redis_access::RedisAccess;
use crate::store::sentinel::connect_to_master;

/// Events a subscriber may fall behind by before it skips to a `resync`.
pub const SUBSCRIBER_BUFFER: usize = 1024;
/// Events waiting to be published on Redis; more are dropped (and counted in the log).
const OUTGOING_BUFFER: usize = 4096;
/// A Redis connection attempt or `PUBLISH` that takes longer than this has failed.
const REDIS_DEADLINE: Duration = Duration::from_secs(2);
/// How often the relay pings Redis on its subscription: a Redis that stops answering without
/// closing the connection is noticed within this (plus [`REDIS_DEADLINE`]).
const RELAY_PING_EVERY: Duration = Duration::from_secs(15);
/// First and longest pause between the relay's reconnection attempts.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_LONGEST: Duration = Duration::from_secs(5);

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Queue,
    Agent,
    Call,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A call joined its queue.
    Joined,
    /// A call left its queue: it timed out or asked for a callback.
    Left,
    /// The caller hung up while queued.
    Abandoned,
    /// A call was reserved for an agent (the agent's phone is about to ring).
    Reserved,
    /// A reservation was released because the call's stream never came back.
    Released,
    /// The agent answered the offer.
    Answered,
    /// The agent did not answer; the call is back at the front of its queue.
    Missed,
    /// The agent's call ended; wrap-up starts.
    Finished,
    /// A wrap-up ended: the agent may take calls again.
    WrapUpEnded,
    /// An agent's status (available, break, offline) was set.
    Status,
    /// A callback request changed: careline started or ended an attempt to place it.
    Callback,
}

/// One change, as dashboards receive it (`event: change`, this as JSON data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The call's Twilio call sid: opaque, and never the caller's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    pub change: Change,
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
}

impl ChangeEvent {
    pub fn new(kind: EventKind, change: Change, at_ms: i64) -> ChangeEvent {
        ChangeEvent {
            kind,
            queue: None,
            agent: None,
            call: None,
            change,
            at_ms,
        }
    }

    pub fn queue(mut self, name: &str) -> ChangeEvent {
        self.queue = Some(name.to_owned());
        self
    }

    pub fn agent(mut self, id: &str) -> ChangeEvent {
        self.agent = Some(id.to_owned());
        self
    }

    pub fn call(mut self, call_sid: &str) -> ChangeEvent {
        self.call = Some(call_sid.to_owned());
        self
    }
}

/// An event on the Redis channel: the event and the node that published it.
#[derive(Debug, Serialize, Deserialize)]
struct RelayedEvent {
    node: String,
    event: ChangeEvent,
}

/// Where the events of the other nodes come from: the Redis channel of the store.
struct RedisRelay {
    access: RedisAccess,
    /// `{key_prefix}:events`.
    channel: String,
    outgoing: mpsc::Sender<ChangeEvent>,
    /// Taken by [`EventBus::run`], which publishes what `outgoing` carries.
    outgoing_receiver: Mutex<Option<mpsc::Receiver<ChangeEvent>>>,
}

/// This node's change events. Share it as `Arc<EventBus>`.
pub struct EventBus {
    node_id: String,
    local: broadcast::Sender<ChangeEvent>,
    /// Only the other nodes' events: the router wakes on them.
    remote: broadcast::Sender<ChangeEvent>,
    redis: Option<RedisRelay>,
    /// Cancelled when the server shuts down: open event streams end, so they do not hold the
    /// graceful shutdown open.
    closed: CancellationToken,
    /// Whether the relay is subscribed to the Redis channel now (always `false` without Redis).
    relaying: watch::Sender<bool>,
}

impl EventBus {
    /// Events on this node only (the memory store).
    pub fn local(node_id: String) -> EventBus {
        EventBus::build(node_id, None)
    }

    /// Events shared with every node on the Redis at `url` (as `[store] url`), on the channel
    /// `{key_prefix}:events`. Nothing connects until [`EventBus::run`].
    pub fn shared(node_id: String, url: &str, key_prefix: &str) -> Result<EventBus, StoreError> {
        let access = RedisAccess::url(url);
        if let crate::store::redis_access::RedisTarget::Url(url) = access.target() {
            // A URL careline cannot use is a start-up error, not a relay that never connects.
            access.url_client(url)?;
        }
        Ok(EventBus::shared_on(node_id, &access, key_prefix))
    }

    /// Events shared with every node on the Redis `access` reaches (a URL or Sentinels), on
    /// the channel `{key_prefix}:events`. Nothing connects until [`EventBus::run`].
    pub fn shared_on(node_id: String, access: &RedisAccess, key_prefix: &str) -> EventBus {
        let (outgoing, receiver) = mpsc::channel(OUTGOING_BUFFER);
        EventBus::build(
            node_id,
            Some(RedisRelay {
                access: access.clone(),
                channel: format!("{key_prefix}:events"),
                outgoing,
                outgoing_receiver: Mutex::new(Some(receiver)),
            }),
        )
    }

    fn build(node_id: String, redis: Option<RedisRelay>) -> EventBus {
        let (local, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let (remote, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        EventBus {
            node_id,
            local,
            remote,
            redis,
            closed: CancellationToken::new(),
            relaying: watch::channel(false).0,
        }
    }

    /// Tell every subscriber, here and (with Redis) on the other nodes. Never waits.
    pub fn publish(&self, event: ChangeEvent) {
        if let Some(redis) = &self.redis {
            match redis.outgoing.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(
                        "events: the Redis publisher is behind; an event stays on this node"
                    );
                }
                // The relay is not running (the server is shutting down): local only.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        // No subscriber is not an error: nobody is watching.
        let _ = self.local.send(event);
    }

    /// Every event from now on, this node's and (with Redis) the other nodes'.
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.local.subscribe()
    }

    /// Only the events other nodes publish (none without Redis): a change there — an agent
    /// freed, a call queued — may let this node reserve one of its calls at once.
    pub fn subscribe_remote(&self) -> broadcast::Receiver<ChangeEvent> {
        self.remote.subscribe()
    }

    /// Cancelled once the server is shutting down.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Whether events from other nodes reach this one now.
    pub fn relaying(&self) -> watch::Receiver<bool> {
        self.relaying.subscribe()
    }

    /// Publish this node's events on Redis and relay the other nodes', until `shutdown`; then
    /// end every open event stream. Without Redis it only waits for `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        if let Some(redis) = &self.redis {
            let outgoing = redis
                .outgoing_receiver
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            match outgoing {
                Some(outgoing) => {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = self.publish_to_redis(redis, outgoing) => {}
                        () = self.relay_from_redis(redis) => {}
                    }
                }
                None => {
                    tracing::warn!(
                        "events: the Redis relay is already running; not starting it twice"
                    );
                    shutdown.cancelled().await;
                }
            }
        } else {
            shutdown.cancelled().await;
        }
        self.relaying.send_replace(false);
        self.closed.cancel();
    }

    /// Send this node's events to the channel, one `PUBLISH` each. While Redis is down they are
    /// dropped: the other nodes' dashboards catch up on their timed refresh.
    async fn publish_to_redis(
        &self,
        redis: &RedisRelay,
        mut outgoing: mpsc::Receiver<ChangeEvent>,
    ) {
        let mut connection: Option<redis::aio::MultiplexedConnection> = None;
        let mut failing = false;
        // While Redis is unreachable, connection attempts are spaced out (events meanwhile stay
        // on this node), so a burst of events does not become a burst of Sentinel queries.
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut pause = RECONNECT_FIRST;
        while let Some(event) = outgoing.recv().await {
            if connection.is_none() && retry_at.is_some_and(|at| tokio::time::Instant::now() < at) {
                continue;
            }
            let payload = match serde_json::to_string(&RelayedEvent {
                node: self.node_id.clone(),
                event,
            }) {
                Ok(payload) => payload,
                Err(error) => {
                    tracing::warn!(%error, "events: an event could not be encoded");
                    continue;
                }
            };
            let result = publish_once(redis, &mut connection, &payload).await;
            match result {
                Ok(()) if failing => {
                    failing = false;
                    retry_at = None;
                    pause = RECONNECT_FIRST;
                    tracing::info!("events: publishing to Redis again");
                }
                Ok(()) => {}
                Err(reason) => {
                    if connection.is_none() {
                        retry_at = Some(tokio::time::Instant::now() + pause);
                        pause = (pause * 2).min(RECONNECT_LONGEST);
                    }
                    connection = None;
                    if !failing {
                        failing = true;
                        tracing::warn!(%reason, "events: cannot publish to Redis; other nodes miss this node's events until it answers");
                    }
                }
            }
        }
    }

    /// Subscribe to the channel and hand the other nodes' events to local subscribers;
    /// reconnect with backoff whenever the subscription is lost. Never returns.
    async fn relay_from_redis(&self, redis: &RedisRelay) {
        let mut pause = RECONNECT_FIRST;
        let mut failing = false;
        loop {
            let lost = self.relay_once(redis).await;
            self.relaying.send_replace(false);
            if lost.was_subscribed {
                // It was working: start over quickly, and say so if it fails again.
                pause = RECONNECT_FIRST;
                failing = false;
            }
            if failing {
                tracing::debug!(reason = %lost.reason, "events: Redis subscription still failing");
            } else {
                failing = true;
                tracing::warn!(reason = %lost.reason, "events: no subscription to Redis; events from other nodes are missed until it answers");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RECONNECT_LONGEST);
        }
    }

    /// One subscription, from connecting until it is lost.
    async fn relay_once(&self, redis: &RedisRelay) -> SubscriptionLost {
        let lost = |was_subscribed: bool, reason: String| SubscriptionLost {
            was_subscribed,
            reason,
        };
        let client = match connect_to_master(&redis.access, REDIS_DEADLINE).await {
            Ok((client, _checked)) => client,
            Err(error) => return lost(false, error.to_string()),
        };
        let connecting = tokio::time::timeout(REDIS_DEADLINE, client.get_async_pubsub());
        let pubsub = match connecting.await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(error)) => return lost(false, error.to_string()),
            Err(_) => return lost(false, "no connection within the deadline".to_owned()),
        };
        let (mut sink, mut messages) = pubsub.split();
        match tokio::time::timeout(REDIS_DEADLINE, sink.subscribe(&redis.channel)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return lost(false, error.to_string()),
            Err(_) => return lost(false, "SUBSCRIBE was not answered".to_owned()),
        }
        self.relaying.send_replace(true);
        tracing::info!(channel = %redis.channel, "events: relaying other nodes' events from Redis");
        let mut ping = tokio::time::interval(RELAY_PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return lost(true, "the connection closed".to_owned());
                    };
                    self.relay(message.get_payload_bytes());
                }
                _ = ping.tick() => {
                    match tokio::time::timeout(REDIS_DEADLINE, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return lost(true, error.to_string()),
                        Err(_) => return lost(true, "PING was not answered".to_owned()),
                    }
                }
            }
        }
    }

    /// A message from the channel: another node's event goes to local subscribers; this node's
    /// own (it already had them) and anything unreadable are dropped.
    fn relay(&self, payload: &[u8]) {
        match serde_json::from_slice::<RelayedEvent>(payload) {
            Ok(relayed) if relayed.node != self.node_id => {
                let _ = self.remote.send(relayed.event.clone());
                let _ = self.local.send(relayed.event);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "events: a message on the Redis channel is not a careline event; ignored");
            }
        }
    }
}

/// Why a subscription ended, and whether it had been working.
struct SubscriptionLost {
    was_subscribed: bool,
    reason: String,
}

async fn publish_once(
    redis: &RedisRelay,
    connection: &mut Option<redis::aio::MultiplexedConnection>,
    payload: &str,
) -> Result<(), String> {
    let mut live = match connection.take() {
        Some(live) => live,
        None => match connect_to_master(&redis.access, REDIS_DEADLINE).await {
            Ok((_, live)) => live,
            Err(error) => return Err(error.to_string()),
        },
    };
    let mut command = redis::cmd("PUBLISH");
    command.arg(&redis.channel).arg(payload);
    let publishing = command.query_async::<i64>(&mut live);
    match tokio::time::timeout(REDIS_DEADLINE, publishing).await {
        Ok(Ok(_receivers)) => {
            *connection = Some(live);
            Ok(())
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("PUBLISH was not answered".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_only_what_changed() {
        let event = ChangeEvent::new(EventKind::Call, Change::Reserved, 1_764_000_000_000)
            .queue("portal")
            .agent("anguyen")
            .call("CA123");
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "call", "queue": "portal", "agent": "anguyen", "call": "CA123",
                "change": "reserved", "at_ms": 1_764_000_000_000_i64
            })
        );
        let status = ChangeEvent::new(EventKind::Agent, Change::Status, 5).agent("bsmith");
        assert_eq!(
            serde_json::to_value(&status).expect("serializes"),
            serde_json::json!({"kind": "agent", "agent": "bsmith", "change": "status", "at_ms": 5})
        );
    }

    #[tokio::test]
    async fn every_local_subscriber_gets_each_event() {
        let bus = EventBus::local("node-a".to_owned());
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        let event = ChangeEvent::new(EventKind::Agent, Change::Status, 1).agent("anguyen");
        bus.publish(event.clone());
        assert_eq!(first.recv().await.expect("event"), event);
        assert_eq!(second.recv().await.expect("event"), event);
    }

    #[test]
    fn a_node_drops_its_own_events_coming_back_from_redis() {
        let bus = EventBus::local("node-a".to_owned());
        let mut subscriber = bus.subscribe();
        let event = ChangeEvent::new(EventKind::Queue, Change::Joined, 1).queue("portal");
        let own = serde_json::to_vec(&RelayedEvent {
            node: "node-a".to_owned(),
            event: event.clone(),
        })
        .expect("encodes");
        bus.relay(&own);
        bus.relay(b"not json");
        assert!(subscriber.try_recv().is_err());
        let other = serde_json::to_vec(&RelayedEvent {
            node: "node-b".to_owned(),
            event: event.clone(),
        })
        .expect("encodes");
        bus.relay(&other);
        assert_eq!(subscriber.try_recv().expect("relayed"), event);
    }

    async fn next_event(receiver: &mut broadcast::Receiver<ChangeEvent>) -> ChangeEvent {
        tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("an event within 10 s")
            .expect("an event")
    }

    async fn until_relaying(bus: &EventBus, relaying: bool) {
        let mut watch = bus.relaying();
        tokio::time::timeout(
            Duration::from_secs(20),
            watch.wait_for(|now| *now == relaying),
        )
        .await
        .expect("the relay changes state within 20 s")
        .expect("the bus is alive");
    }

    #[tokio::test]
    async fn events_reach_the_other_node_through_redis_and_again_after_redis_restarts() {
        let mut redis = match crate::store::test_redis::TestRedis::start() {
            Ok(redis) => redis,
            Err(error) => panic!("redis-server is needed for this test: {error}"),
        };
        let a = std::sync::Arc::new(
            EventBus::shared("node-a".to_owned(), &redis.url(), "careline").expect("bus a"),
        );
        let b = std::sync::Arc::new(
            EventBus::shared("node-b".to_owned(), &redis.url(), "careline").expect("bus b"),
        );
        let shutdown = CancellationToken::new();
        for bus in [&a, &b] {
            let (bus, shutdown) = (bus.clone(), shutdown.clone());
            tokio::spawn(async move { bus.run(shutdown).await });
        }
        until_relaying(&b, true).await;
        let mut on_b = b.subscribe();
        let mut on_a = a.subscribe();
        let event = ChangeEvent::new(EventKind::Agent, Change::Status, 1).agent("anguyen");
        a.publish(event.clone());
        assert_eq!(next_event(&mut on_b).await, event);
        assert_eq!(next_event(&mut on_a).await, event);

        redis.stop();
        until_relaying(&b, false).await;
        redis.start_again().expect("redis restarts");
        until_relaying(&b, true).await;
        // The publisher's connection died with the server: the first event after the restart
        // may be lost while it reconnects, so publish until one arrives.
        let later = ChangeEvent::new(EventKind::Agent, Change::Status, 2).agent("bsmith");
        let mut arrived = None;
        for _ in 0..20 {
            a.publish(later.clone());
            if let Ok(Ok(event)) =
                tokio::time::timeout(Duration::from_millis(500), on_b.recv()).await
            {
                arrived = Some(event);
                break;
            }
        }
        assert_eq!(arrived, Some(later));
        assert!(
            !a.closed().is_cancelled(),
            "streams stay open until shutdown"
        );
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), a.closed().cancelled())
            .await
            .expect("shutdown closes the streams");
    }
}
