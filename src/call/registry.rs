//! Every call on every node, through its record in the store ([`CallRecord`]): who it is, the
//! token its next stream must present, the node carrying its stream, and what Twilio should do
//! when a stream ends.
//!
//! `/twilio/voice` writes a call's record and hands Twilio a random token as a stream
//! `<Parameter>`; the first media stream to present it (on any node) consumes it, so nobody can
//! attach a stream to a call they did not place, and a token opens one stream only.
//! `/twilio/next` reads what careline decided when it closed the stream: a dial, a hang-up, or
//! — when the stream ended without careline deciding (its node died, its connection broke, its
//! node is draining) — a new stream that resumes the call where it was, in its queue with its
//! original place or at the menu it was in.
//!
//! Every change is a compare-and-set of the whole record, retried on a conflict, so any node
//! may serve any request. Records end with the call (a terminal status callback) or at their
//! safety deadline (`crate::dispatch::router` releases what was held for them): never by the
//! age of a registration.
//!
//! When the store loses its data (Redis restarted empty, or failed over before replicating),
//! the node carrying a call's stream writes the call's record again from its own last copy, at
//! its next lease renewal or change. A call announced while the store cannot be reached is
//! kept in this node's own records for its whole life: its menus work, and the queues apologise
//! until the store is back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::memory::MemoryStore;
use crate::store::{CallPhase, CallRecord, CallStep, QueuedCall, RecordWrite, Store, StoreError};

pub use crate::store::call_record::mask_caller_id;

/// How long a node's lease on a stream runs; it renews every [`LEASE_RENEW_EVERY`].
pub const STREAM_LEASE: Duration = Duration::from_secs(15);
/// How often a node renews the leases of the streams it carries.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);
/// Attempts at a compare-and-set before giving up (another node keeps winning).
const CAS_ATTEMPTS: usize = 16;

/// Where the router reads "now" from: the wall clock in service, a moveable one in tests.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// What a new media stream of a call picks up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamClaim {
    /// The node the call resumes at; `None`: the flow's entry (a new call).
    pub resume_at: Option<Arc<str>>,
    /// The call as it first joined its queue, to re-join with its original place.
    pub queued: Option<QueuedCall>,
    /// The call's first stream (counted once in the call statistics).
    pub first: bool,
    /// The caller failed identity verification on an earlier stream.
    pub verification_failed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("no call with this CallSid was announced by the voice webhook")]
    UnknownCall,
    #[error("the stream's call token does not match the one issued for this call (or was used)")]
    WrongToken,
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What `/twilio/next` tells Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Hangup,
    /// Run this dial (an agent, or a transfer number).
    Dial(CallStep),
    /// Open a new stream presenting `token`, with `from` as its parameter.
    Resume {
        token: String,
        from: String,
    },
}

/// One call as the admin API shows it: no caller identifier beyond the masked caller ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSnapshot {
    pub call_sid: String,
    pub phase: CallPhase,
    /// How long ago the voice webhook announced the call.
    pub age: Duration,
    pub caller_id_masked: String,
    /// The node carrying the call's stream; empty between streams.
    pub node: String,
    /// The queue the call waits in (or is being connected from), and since when it waits.
    pub queue: Option<(String, i64)>,
    pub verification_failed: bool,
}

/// The calls of every node, as the store keeps them, and the streams this node carries.
pub struct CallRegistry {
    store: Arc<dyn Store>,
    node_id: String,
    clock: Clock,
    /// The calls whose streams this node carries, with the record as this node last wrote
    /// it: their leases are renewed, and a record the store lost is written again from here.
    streams: Mutex<HashMap<String, CallRecord>>,
    /// Records of calls announced while the store could not be reached.
    local: MemoryStore,
    local_calls: Mutex<HashSet<String>>,
}

impl CallRegistry {
    pub fn new(store: Arc<dyn Store>, node_id: &str) -> CallRegistry {
        CallRegistry::with_clock(store, node_id, Arc::new(jiff::Timestamp::now))
    }

    pub fn with_clock(store: Arc<dyn Store>, node_id: &str, clock: Clock) -> CallRegistry {
        CallRegistry {
            store,
            node_id: node_id.to_owned(),
            clock,
            streams: Mutex::new(HashMap::new()),
            local: MemoryStore::new(),
            local_calls: Mutex::new(HashSet::new()),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn now_ms(&self) -> i64 {
        (self.clock)().as_millisecond()
    }

    /// Where `call_sid`'s record lives: the shared store, or this node's own for a call
    /// announced while the store was away.
    fn store_of(&self, call_sid: &str) -> &dyn Store {
        if lock(&self.local_calls).contains(call_sid) {
            &self.local
        } else {
            self.store.as_ref()
        }
    }

    /// The record as this node last wrote it, if it carries the call's stream: the base for
    /// writing it again after the store lost it.
    fn carried(&self, call_sid: &str) -> Option<CallRecord> {
        self.streams().get(call_sid).map(|record| {
            let mut record = record.clone();
            record.version = 0;
            record
        })
    }

    /// Keep this node's copy of a record it just wrote: while it carries the stream.
    fn written(&self, record: &CallRecord, version: u64) {
        let mut streams = self.streams();
        if record.stream_node == self.node_id && streams.contains_key(&record.call_sid) {
            let mut copy = record.clone();
            copy.version = version;
            streams.insert(record.call_sid.clone(), copy);
        }
    }

    /// Read, change and write back a call's record until the write wins. `change` returns
    /// `None` to write nothing (and `Ok(None)` comes back), so a change that no longer applies
    /// is not forced. A missing record gives `change` a `None`.
    async fn update<T>(
        &self,
        call_sid: &str,
        mut change: impl FnMut(Option<&mut CallRecord>, i64) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let store = self.store_of(call_sid);
        for _ in 0..CAS_ATTEMPTS {
            let now_ms = self.now_ms();
            let stored = store.call_record(call_sid).await?;
            let Some(mut record) = stored.or_else(|| self.carried(call_sid)) else {
                return Ok(change(None, now_ms));
            };
            let read = record.version;
            let Some(outcome) = change(Some(&mut record), now_ms) else {
                return Ok(None);
            };
            match store.replace_call_record(&record, read).await? {
                RecordWrite::Written { version } => {
                    self.written(&record, version);
                    return Ok(Some(outcome));
                }
                RecordWrite::Conflict => continue,
            }
        }
        Err(StoreError::Unavailable(format!(
            "the record of call {call_sid} kept changing under {CAS_ATTEMPTS} attempts"
        )))
    }

    /// The voice webhook announced a call; returns the token its stream must present. A
    /// repeated webhook for a live call gives it a new token and changes nothing else.
    pub async fn register(&self, call_sid: &str, from: &str) -> Result<String, StoreError> {
        let token = new_token();
        let hash = token_hash(&token);
        match self
            .register_in(self.store_of(call_sid), call_sid, from, &token, &hash)
            .await
        {
            Err(StoreError::Unavailable(reason)) => {
                tracing::warn!(%call_sid, %reason, "the store is unreachable: the call is kept on this node");
                lock(&self.local_calls).insert(call_sid.to_owned());
                self.register_in(&self.local, call_sid, from, &token, &hash)
                    .await
            }
            registered => registered,
        }
    }

    async fn register_in(
        &self,
        store: &dyn Store,
        call_sid: &str,
        from: &str,
        token: &str,
        hash: &str,
    ) -> Result<String, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let now_ms = self.now_ms();
            let (record, read) = match store.call_record(call_sid).await? {
                Some(mut record) => {
                    let read = record.version;
                    hash.clone_into(&mut record.token_hash);
                    (record, read)
                }
                None => (CallRecord::new(call_sid, from, hash.to_owned(), now_ms), 0),
            };
            if let RecordWrite::Written { .. } = store.replace_call_record(&record, read).await? {
                return Ok(token.to_owned());
            }
        }
        Err(StoreError::Unavailable(format!(
            "the record of call {call_sid} kept changing"
        )))
    }

    /// A media stream starts for `call_sid` on this node, presenting `token`: the token is used
    /// up and the stream's lease starts. Returns where the call resumes.
    pub async fn claim_stream(
        &self,
        call_sid: &str,
        token: &str,
    ) -> Result<StreamClaim, ClaimError> {
        let presented = token_hash(token);
        let mut refusal = None;
        let claim = self
            .update(call_sid, |record, now_ms| {
                let Some(record) = record else {
                    refusal = Some(ClaimError::UnknownCall);
                    return None;
                };
                let expected = record.token_hash.as_bytes();
                if expected.is_empty() || !bool::from(expected.ct_eq(presented.as_bytes())) {
                    refusal = Some(ClaimError::WrongToken);
                    return None;
                }
                refusal = None;
                record.token_hash.clear();
                record.streams = record.streams.saturating_add(1);
                record.stream_node.clone_from(&self.node_id);
                record.lease_until_ms = now_ms.saturating_add(millis(STREAM_LEASE));
                record.phase = if record.queued.is_some() {
                    CallPhase::Queued
                } else {
                    CallPhase::Menus
                };
                record.next = None;
                record.deadline_ms = record.deadline_for(now_ms);
                Some(StreamClaim {
                    resume_at: (record.streams > 1 && !record.at_node.is_empty())
                        .then(|| Arc::from(record.at_node.as_str())),
                    queued: record.queued.clone(),
                    first: record.streams == 1,
                    verification_failed: record.verification_failed,
                })
            })
            .await?;
        match (claim, refusal) {
            (Some(claim), _) => {
                if let Ok(Some(record)) = self.store_of(call_sid).call_record(call_sid).await {
                    self.streams().insert(call_sid.to_owned(), record);
                }
                Ok(claim)
            }
            (None, Some(refusal)) => Err(refusal),
            (None, None) => Err(ClaimError::UnknownCall),
        }
    }

    /// Write what the session carrying the call's stream on this node knows now: applied only
    /// while this node still carries it (a newer stream elsewhere wins).
    pub async fn note(
        &self,
        call_sid: &str,
        change: impl Fn(&mut CallRecord),
    ) -> Result<(), StoreError> {
        self.update(call_sid, |record, now_ms| {
            let record = record?;
            if record.stream_node != self.node_id {
                return None;
            }
            change(record);
            record.phase = if record.queued.is_some() {
                CallPhase::Queued
            } else {
                CallPhase::Menus
            };
            record.deadline_ms = record.deadline_for(now_ms);
            Some(())
        })
        .await?;
        Ok(())
    }

    /// The stream this node carried ended. `next` is what careline decided (a dial or a
    /// hang-up); `None` means the call resumes at its node when Twilio asks `/twilio/next`.
    pub async fn stream_ended(
        &self,
        call_sid: &str,
        next: Option<CallStep>,
    ) -> Result<(), StoreError> {
        let ended = self
            .update(call_sid, |record, now_ms| {
                let record = record?;
                if record.stream_node != self.node_id {
                    return None;
                }
                record.stream_node.clear();
                record.lease_until_ms = 0;
                record.phase = CallPhase::Between;
                record.next = next.clone();
                record.deadline_ms = record.deadline_for(now_ms);
                Some(())
            })
            .await;
        // Only now: until the end is written, this node's copy can restore a lost record.
        self.streams().remove(call_sid);
        ended?;
        Ok(())
    }

    /// `/twilio/next`: the stream is over; what now. A dial is remembered until
    /// `/twilio/dial-status`; a hang-up ends the record; a stream that ended without careline
    /// deciding resumes on a new stream (whatever node the old one was on).
    pub async fn next_step(&self, call_sid: &str) -> Result<NextStep, StoreError> {
        let token = new_token();
        let hash = token_hash(&token);
        let step = self
            .update(call_sid, |record, now_ms| {
                let record = record?;
                let step = match record.next.take() {
                    Some(CallStep::Hangup) => NextStep::Hangup,
                    Some(dial) => {
                        record.dial = Some(dial.clone());
                        record.answered_at_ms = 0;
                        record.phase = CallPhase::Ringing;
                        NextStep::Dial(dial)
                    }
                    None => {
                        record.token_hash.clone_from(&hash);
                        record.phase = CallPhase::Connecting;
                        NextStep::Resume {
                            token: token.clone(),
                            from: record.from.clone(),
                        }
                    }
                };
                record.stream_node.clear();
                record.deadline_ms = record.deadline_for(now_ms);
                Some(step)
            })
            .await?;
        match step {
            Some(NextStep::Hangup) => {
                self.end(call_sid).await?;
                Ok(NextStep::Hangup)
            }
            Some(step) => Ok(step),
            None => Ok(NextStep::Hangup),
        }
    }

    /// The far end of the call's dial answered: the dial, the first time only.
    pub async fn dial_answered(&self, call_sid: &str) -> Result<Option<CallStep>, StoreError> {
        self.update(call_sid, |record, now_ms| {
            let record = record?;
            if record.answered_at_ms != 0 {
                return None;
            }
            let dial = record.dial.clone()?;
            record.answered_at_ms = now_ms;
            record.phase = CallPhase::Connected;
            record.deadline_ms = record.deadline_for(now_ms);
            Some(dial)
        })
        .await
    }

    /// The dial ended: what it was and how long the far end talked (if it answered).
    pub async fn dial_finished(
        &self,
        call_sid: &str,
    ) -> Result<Option<(CallStep, Option<Duration>)>, StoreError> {
        self.update(call_sid, |record, now_ms| {
            let record = record?;
            let dial = record.dial.take()?;
            let talked = (record.answered_at_ms != 0).then(|| {
                Duration::from_millis(u64::try_from(now_ms - record.answered_at_ms).unwrap_or(0))
            });
            record.answered_at_ms = 0;
            record.phase = CallPhase::Between;
            record.deadline_ms = record.deadline_for(now_ms);
            Some((dial, talked))
        })
        .await
    }

    /// The call goes back to careline on a new stream resuming at `node` (after an unanswered
    /// offer or transfer); returns the token that stream must present and the caller ID for
    /// its `from` parameter. `None` when the call is gone (it hung up).
    pub async fn resume(
        &self,
        call_sid: &str,
        node: &str,
        queued: Option<QueuedCall>,
    ) -> Result<Option<(String, String)>, StoreError> {
        let token = new_token();
        let hash = token_hash(&token);
        self.update(call_sid, |record, now_ms| {
            let record = record?;
            record.token_hash.clone_from(&hash);
            record.at_node = node.to_owned();
            record.queued.clone_from(&queued);
            record.next = None;
            record.phase = CallPhase::Connecting;
            record.deadline_ms = record.deadline_for(now_ms);
            Some((token.clone(), record.from.clone()))
        })
        .await
    }

    /// The call ended: its record is gone. Returns it as it was, to release what it held.
    pub async fn end(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.streams().remove(call_sid);
        let store = self.store_of(call_sid);
        for _ in 0..CAS_ATTEMPTS {
            let Some(record) = store.call_record(call_sid).await? else {
                lock(&self.local_calls).remove(call_sid);
                return Ok(None);
            };
            if store.remove_call_record(call_sid, record.version).await? {
                lock(&self.local_calls).remove(call_sid);
                return Ok(Some(record));
            }
        }
        Err(StoreError::Unavailable(format!(
            "the record of call {call_sid} kept changing"
        )))
    }

    /// The caller ID of a call, masked.
    pub async fn caller_id_masked(&self, call_sid: &str) -> Option<String> {
        match self.store_of(call_sid).call_record(call_sid).await {
            Ok(record) => record.map(|record| record.from_masked()),
            Err(_) => None,
        }
    }

    /// Renew this node's leases on the streams it carries; a record the store lost is written
    /// again from this node's copy.
    pub async fn renew_leases(&self) -> Result<usize, StoreError> {
        let lease_until_ms = self.now_ms().saturating_add(millis(STREAM_LEASE));
        let (shared, local): (Vec<String>, Vec<String>) = {
            let local_calls = lock(&self.local_calls);
            self.streams()
                .keys()
                .cloned()
                .partition(|call_sid| !local_calls.contains(call_sid))
        };
        self.local
            .renew_stream_leases(&self.node_id, &local, lease_until_ms)
            .await?;
        let renewed = self
            .store
            .renew_stream_leases(&self.node_id, &shared, lease_until_ms)
            .await?;
        if renewed < shared.len() {
            for call_sid in &shared {
                if self.store.call_record(call_sid).await?.is_none()
                    && self.carried(call_sid).is_some()
                {
                    tracing::warn!(%call_sid, "the store lost this call's record; writing it again");
                    // The write itself starts from this node's copy.
                    self.note(call_sid, |_| {}).await?;
                }
            }
        }
        Ok(renewed)
    }

    /// Streams this node carries now.
    pub fn streams_here(&self) -> usize {
        self.streams().len()
    }

    /// Every call on every node, oldest first.
    pub async fn snapshot(&self) -> Result<Vec<CallSnapshot>, StoreError> {
        let now_ms = self.now_ms();
        let mut records = self.store.call_records().await?;
        records.extend(self.local.call_records().await?);
        Ok(records
            .into_iter()
            .map(|record| CallSnapshot {
                age: Duration::from_millis(
                    u64::try_from(now_ms - record.created_at_ms).unwrap_or(0),
                ),
                caller_id_masked: record.from_masked(),
                node: record.stream_node.clone(),
                queue: record
                    .queued
                    .as_ref()
                    .map(|call| (call.queue.clone(), call.enqueued_at_ms)),
                verification_failed: record.verification_failed,
                phase: record.phase,
                call_sid: record.call_sid,
            })
            .collect())
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallRecord>> {
        lock(&self.streams)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each change is one insert or remove: a poisoned map is still whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// What the store keeps of a token: its SHA-256, so a read of the store cannot open a stream.
fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn registry(node: &str, store: &Arc<dyn Store>) -> CallRegistry {
        CallRegistry::new(store.clone(), node)
    }

    fn store() -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn a_stream_must_present_the_token_issued_for_its_call_once() {
        let store = store();
        let calls = registry("node-a", &store);
        let token = calls
            .register("CA1", "+13125550101")
            .await
            .expect("registered");
        assert!(matches!(
            calls.claim_stream("CA1", "forged").await,
            Err(ClaimError::WrongToken)
        ));
        assert!(matches!(
            calls.claim_stream("CA2", &token).await,
            Err(ClaimError::UnknownCall)
        ));
        let claim = calls.claim_stream("CA1", &token).await.expect("claims");
        assert_eq!(claim.resume_at, None);
        assert!(claim.first);
        // Used up, on this node or any other.
        let other = registry("node-b", &store);
        assert!(matches!(
            other.claim_stream("CA1", &token).await,
            Err(ClaimError::WrongToken)
        ));
        assert!(matches!(
            calls.claim_stream("CA1", &token).await,
            Err(ClaimError::WrongToken)
        ));
    }

    #[tokio::test]
    async fn the_store_keeps_only_a_hash_of_the_token() {
        let store = store();
        let calls = registry("node-a", &store);
        let token = calls
            .register("CA1", "+13125550101")
            .await
            .expect("registered");
        let record = store.call_record("CA1").await.expect("read").expect("kept");
        assert_ne!(record.token_hash, token);
        assert!(!record.token_hash.contains(&token));
        assert_eq!(record.token_hash, token_hash(&token));
    }

    #[tokio::test]
    async fn a_lost_stream_resumes_on_another_node_where_it_was_with_its_place() {
        let store = store();
        let node_a = registry("node-a", &store);
        let node_b = registry("node-b", &store);
        let token = node_a
            .register("CA1", "+13125550101")
            .await
            .expect("registered");
        node_a.claim_stream("CA1", &token).await.expect("claims");
        let queued = QueuedCall {
            call_sid: "CA1".to_owned(),
            queue: "portal".to_owned(),
            node: "node-a".to_owned(),
            enqueued_at_ms: 1_000,
            priority: 0,
            verification_failed: true,
            callback_id: None,
        };
        node_a
            .note("CA1", |record| {
                record.at_node = "portal_queue".to_owned();
                record.queued = Some(queued.clone());
                record.verification_failed = true;
            })
            .await
            .expect("noted");
        // Node A dies: nothing more from it. Twilio's redirect lands on node B.
        let NextStep::Resume { token, from } = node_b.next_step("CA1").await.expect("next") else {
            panic!("the call resumes");
        };
        assert_eq!(from, "+13125550101");
        let claim = node_b.claim_stream("CA1", &token).await.expect("claims");
        assert_eq!(claim.resume_at.as_deref(), Some("portal_queue"));
        assert_eq!(claim.queued, Some(queued));
        assert!(!claim.first);
        assert!(claim.verification_failed);
        // Node A's late writes change nothing now that node B carries the stream.
        node_a
            .stream_ended("CA1", Some(CallStep::Hangup))
            .await
            .expect("late end");
        let record = store.call_record("CA1").await.expect("read").expect("kept");
        assert_eq!(record.stream_node, "node-b");
        assert_eq!(record.next, None);
    }

    #[tokio::test]
    async fn a_dial_is_remembered_until_its_status_and_timed_from_its_answer() {
        let store = store();
        let node_a = registry("node-a", &store);
        let node_b = registry("node-b", &store);
        let token = node_a
            .register("CA1", "+13125550101")
            .await
            .expect("registered");
        node_a.claim_stream("CA1", &token).await.expect("claims");
        let transfer = CallStep::Transfer {
            number: "+18005550100".to_owned(),
            timeout_secs: 30,
            on_failure: None,
        };
        node_a
            .stream_ended("CA1", Some(transfer.clone()))
            .await
            .expect("ended");
        assert_eq!(
            node_b.next_step("CA1").await.expect("next"),
            NextStep::Dial(transfer.clone())
        );
        assert_eq!(
            node_a.dial_answered("CA1").await.expect("answered"),
            Some(transfer.clone())
        );
        assert_eq!(
            node_b.dial_answered("CA1").await.expect("again"),
            None,
            "an answer counts once"
        );
        let (dial, talked) = node_b
            .dial_finished("CA1")
            .await
            .expect("finished")
            .expect("a dial");
        assert_eq!(dial, transfer);
        assert!(talked.is_some());
        assert_eq!(node_a.dial_finished("CA1").await.expect("again"), None);
    }

    #[tokio::test]
    async fn a_hang_up_ends_the_record_and_a_snapshot_never_shows_the_number() {
        let store = store();
        let calls = registry("node-a", &store);
        let token = calls
            .register("CA1", "+13125550101")
            .await
            .expect("registered");
        calls.claim_stream("CA1", &token).await.expect("claims");
        let snapshot = calls.snapshot().await.expect("snapshot");
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot[0].phase, CallPhase::Menus);
        assert_eq!(snapshot[0].caller_id_masked, "•••••••••01");
        assert_eq!(snapshot[0].node, "node-a");
        calls
            .stream_ended("CA1", Some(CallStep::Hangup))
            .await
            .expect("ended");
        assert_eq!(
            calls.next_step("CA1").await.expect("next"),
            NextStep::Hangup
        );
        assert!(calls.snapshot().await.expect("snapshot").is_empty());
        assert_eq!(
            calls.next_step("CA1").await.expect("unknown"),
            NextStep::Hangup
        );
    }

    #[test]
    fn caller_id_is_masked_to_the_last_two_digits() {
        assert_eq!(mask_caller_id("+13125550101"), "•••••••••01");
        assert_eq!(mask_caller_id("anonymous"), "");
    }
}
